//! The operator's policy (TOML, see docs/policy.md): per world, the trust
//! anchors and intermediates, reference PCR values, the PCRs a KEK must be
//! bound to, allowed algorithms and minimum key sizes, whether SHA-1 is
//! accepted and whether hosts must be enrolled. Command-line flags override
//! it or stand in for it. A file is loaded once ([`PolicyFile`]) and resolved
//! for the world of each evidence file ([`PolicyFile::resolve`]): the world
//! the TPM signed (through the KEK's world binding), so its rules apply with
//! or without `--world`.

use crate::error::VerifyError;
use byok_protocol::hash::HashAlg;
use byok_protocol::tpm::curve;
use byok_protocol::world::WorldId;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The rules `verify` applies, resolved for one world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub allow_sha1: bool,
    pub min_rsa_bits: u16,
    /// Hashes allowed on attestation signatures (SHA-1 also needs `allow_sha1`).
    pub allowed_hashes: Vec<HashAlg>,
    /// TPM_ECC_CURVE ids allowed for ECC AKs.
    pub allowed_curves: Vec<u16>,
    /// Reference PCR values: bank name -> index -> value.
    pub reference_pcrs: BTreeMap<HashAlg, BTreeMap<u32, Vec<u8>>>,
    pub roots: Vec<PathBuf>,
    pub intermediates: Vec<PathBuf>,
    /// The PCR binding a KEK must have (`init --pcrs`).
    pub require_kek_pcrs: KekPcrRequirement,
    /// PCRs 17-22 (reset by a dynamic launch, DRTM) may make a required
    /// binding; without this only 0-15 do.
    pub allow_drtm_pcrs: bool,
    /// Refuse EKs that are not enrolled in the registry (`--registry`).
    pub require_enrolled: bool,
    /// The largest evidence file read (bytes).
    pub max_evidence_bytes: usize,
}

/// What the policy demands of a KEK's PCR binding.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum KekPcrRequirement {
    /// Nothing: a binding is reported, and checked against reference values
    /// where the policy has them.
    #[default]
    None,
    /// Bound to at least one PCR that software cannot reset
    /// (`require_kek_pcrs = true`).
    Any,
    /// Bound to at least these PCRs (`require_kek_pcrs = [0, 2, 4, 7]`).
    These(Vec<u32>),
}

impl KekPcrRequirement {
    pub fn is_required(&self) -> bool {
        *self != KekPcrRequirement::None
    }
}

/// PCRs software can reset never satisfy a required KEK binding.
pub use byok_protocol::policy::resettable_pcr;

impl Default for Policy {
    fn default() -> Self {
        Policy {
            allow_sha1: false,
            min_rsa_bits: 2048,
            allowed_hashes: vec![HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512],
            allowed_curves: vec![curve::NIST_P256, curve::NIST_P384],
            reference_pcrs: BTreeMap::new(),
            roots: Vec::new(),
            intermediates: Vec::new(),
            require_kek_pcrs: KekPcrRequirement::None,
            allow_drtm_pcrs: false,
            require_enrolled: false,
            max_evidence_bytes: byok_protocol::formats::MIB,
        }
    }
}

impl Policy {
    pub fn allows_hash(&self, h: HashAlg) -> bool {
        if h == HashAlg::Sha1 {
            return self.allow_sha1;
        }
        self.allowed_hashes.contains(&h)
    }
}

/// One table of the file: `[defaults]` or `[worlds.NAME]` (the same keys;
/// `max_evidence_bytes` only in `[defaults]`, as files are read before their
/// world is known).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rules {
    allow_sha1: Option<bool>,
    min_rsa_bits: Option<u16>,
    allowed_hashes: Option<Vec<String>>,
    allowed_curves: Option<Vec<String>>,
    roots: Option<Vec<PathBuf>>,
    intermediates: Option<Vec<PathBuf>>,
    require_enrolled: Option<bool>,
    max_evidence_bytes: Option<usize>,
    pcrs: Option<BTreeMap<String, BTreeMap<String, String>>>,
    require_kek_pcrs: Option<RequireKekPcrs>,
    allow_drtm_pcrs: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum RequireKekPcrs {
    Flag(bool),
    List(Vec<u32>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyText {
    #[serde(default)]
    defaults: Rules,
    #[serde(default)]
    worlds: BTreeMap<WorldId, Rules>,
}

fn bad(path: &Path, detail: impl Into<String>) -> VerifyError {
    VerifyError::Policy {
        path: path.display().to_string(),
        detail: detail.into(),
    }
}

// Long on purpose: one block per policy key, in the order docs/policy.md
// lists them.
/// Apply one table over `p`. Relative root and intermediate paths are
/// relative to the policy file; reference PCR values add to (and override,
/// index by index) those already set.
fn apply(
    p: &mut Policy,
    path: &Path,
    r: &Rules,
    require: &mut Option<RequireKekPcrs>,
) -> Result<(), VerifyError> {
    if let Some(v) = r.allow_sha1 {
        p.allow_sha1 = v;
    }
    if let Some(v) = r.min_rsa_bits {
        if v < 1024 {
            return Err(bad(path, format!("min_rsa_bits {v} is below 1024")));
        }
        p.min_rsa_bits = v;
    }
    if let Some(hs) = &r.allowed_hashes {
        p.allowed_hashes = hs
            .iter()
            .map(|h| {
                HashAlg::from_name(h).ok_or_else(|| {
                    bad(
                        path,
                        format!("unknown hash {h:?} (sha1, sha256, sha384, sha512)"),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
    }
    if let Some(cs) = &r.allowed_curves {
        p.allowed_curves = cs
            .iter()
            .map(|c| match c.as_str() {
                "P-256" => Ok(curve::NIST_P256),
                "P-384" => Ok(curve::NIST_P384),
                other => Err(bad(path, format!("unknown curve {other:?} (P-256, P-384)"))),
            })
            .collect::<Result<_, _>>()?;
    }
    let base = path.parent().unwrap_or(Path::new("."));
    if let Some(roots) = &r.roots {
        p.roots = roots.iter().map(|r| base.join(r)).collect();
    }
    if let Some(ints) = &r.intermediates {
        p.intermediates = ints.iter().map(|r| base.join(r)).collect();
    }
    if let Some(v) = r.require_enrolled {
        p.require_enrolled = v;
    }
    if let Some(v) = r.max_evidence_bytes {
        if v < 4096 {
            return Err(bad(path, format!("max_evidence_bytes {v} is below 4096")));
        }
        p.max_evidence_bytes = v;
    }
    if let Some(v) = r.allow_drtm_pcrs {
        p.allow_drtm_pcrs = v;
    }
    if let Some(v) = &r.require_kek_pcrs {
        *require = Some(v.clone());
    }
    for (bank, values) in r.pcrs.iter().flatten() {
        let h = HashAlg::from_name(bank)
            .ok_or_else(|| bad(path, format!("unknown PCR bank {bank:?}")))?;
        let out = p.reference_pcrs.entry(h).or_default();
        for (index, value) in values {
            let i: u32 = index
                .parse()
                .ok()
                .filter(|i| *i < 24)
                .ok_or_else(|| bad(path, format!("PCR index {index:?} in bank {bank}")))?;
            let v =
                hex::decode(value).map_err(|_| bad(path, format!("PCR {bank}:{i} is not hex")))?;
            if v.len() != h.size() {
                return Err(bad(
                    path,
                    format!(
                        "PCR {bank}:{i} has {} bytes, a {bank} value has {}",
                        v.len(),
                        h.size()
                    ),
                ));
            }
            out.insert(i, v);
        }
    }
    Ok(())
}

/// The KEK PCR requirement of a resolved table, checked: a list names real
/// PCRs that software cannot reset.
fn requirement(
    path: &Path,
    table: &str,
    r: Option<RequireKekPcrs>,
    allow_drtm: bool,
) -> Result<KekPcrRequirement, VerifyError> {
    Ok(match r {
        None | Some(RequireKekPcrs::Flag(false)) => KekPcrRequirement::None,
        Some(RequireKekPcrs::Flag(true)) => KekPcrRequirement::Any,
        Some(RequireKekPcrs::List(mut list)) => {
            list.sort();
            list.dedup();
            if list.is_empty() {
                return Err(bad(
                    path,
                    format!(
                        "[{table}] require_kek_pcrs = [] names no PCR (use true, false or a list)"
                    ),
                ));
            }
            if let Some(i) = list.iter().find(|i| **i > 23) {
                return Err(bad(
                    path,
                    format!("[{table}] require_kek_pcrs: PCR {i} does not exist (0-23)"),
                ));
            }
            if let Some(i) = list.iter().find(|i| resettable_pcr(**i, allow_drtm)) {
                return Err(bad(path, format!("[{table}] require_kek_pcrs: PCR {i} can be reset by software, so a binding to it proves nothing about the platform (use PCRs 0-15; 17-22 need allow_drtm_pcrs = true)")));
            }
            KekPcrRequirement::These(list)
        }
    })
}

/// A policy file, read and checked once; resolved per world.
#[derive(Debug)]
pub struct PolicyFile {
    path: PathBuf,
    text: PolicyText,
}

impl PolicyFile {
    /// Read and check the whole file: every world's table is resolved once
    /// here, so a mistake anywhere is reported before any evidence is read.
    pub fn load(path: &Path) -> Result<PolicyFile, VerifyError> {
        let bytes = byok_protocol::files::read_capped(path, POLICY_MAX_SIZE)
            .map_err(|e| bad(path, e.to_string()))?;
        if bytes.len() > POLICY_MAX_SIZE {
            return Err(bad(path, format!("larger than {POLICY_MAX_SIZE} bytes")));
        }
        let text = String::from_utf8(bytes).map_err(|_| bad(path, "not UTF-8 text"))?;
        Self::from_text(path, &text)
    }

    /// Parse and check policy `text` (read from `path`, against which
    /// relative roots resolve).
    pub fn from_text(path: &Path, text: &str) -> Result<PolicyFile, VerifyError> {
        let text: PolicyText = toml::from_str(text).map_err(|e| bad(path, e.to_string()))?;
        for (w, rules) in &text.worlds {
            if rules.max_evidence_bytes.is_some() {
                return Err(bad(
                    path,
                    format!("[worlds.{w}] max_evidence_bytes: set it in [defaults] (files are read before their world is known)"),
                ));
            }
        }
        let file = PolicyFile {
            path: path.to_path_buf(),
            text,
        };
        file.resolve(None)?;
        for w in file.text.worlds.keys() {
            file.resolve(Some(w))?;
        }
        Ok(file)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn has_world(&self, world: &str) -> bool {
        self.text.worlds.contains_key(world)
    }

    /// The only world of a one-world file (for commands that have no
    /// evidence to take a world from, such as `ek-cert`).
    pub fn only_world(&self) -> Option<&str> {
        let mut worlds = self.text.worlds.keys();
        match (worlds.next(), worlds.next()) {
            (Some(w), None) => Some(w),
            _ => None,
        }
    }

    /// The rules for `world`: `[defaults]`, then `[worlds.WORLD]` when the
    /// file has that table.
    pub fn resolve(&self, world: Option<&str>) -> Result<Policy, VerifyError> {
        let path = self.path.as_path();
        let mut p = Policy::default();
        let mut require = None;
        apply(&mut p, path, &self.text.defaults, &mut require)?;
        let mut table = "defaults".to_string();
        if let Some((w, rules)) = world.and_then(|w| self.text.worlds.get_key_value(w)) {
            apply(&mut p, path, rules, &mut require)?;
            table = format!("worlds.{w}");
        }
        p.require_kek_pcrs = requirement(path, &table, require, p.allow_drtm_pcrs)?;
        Ok(p)
    }
}

/// The largest policy file read.
const POLICY_MAX_SIZE: usize = 1 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    fn write(s: &str) -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::TempDir::new().unwrap();
        let p = d.path().join("policy.toml");
        std::fs::write(&p, s).unwrap();
        (d, p)
    }

    fn load(p: &Path, world: Option<&str>) -> Result<Policy, VerifyError> {
        PolicyFile::load(p)?.resolve(world)
    }

    #[test]
    fn defaults_then_world() {
        let (_d, p) = write(
            r#"
[defaults]
min_rsa_bits = 3072
require_enrolled = true
[worlds.eu]
roots = ["ca.pem"]
allow_sha1 = true
allowed_curves = ["P-384"]
require_kek_pcrs = [7, 0]
[worlds.eu.pcrs.sha256]
0 = "0000000000000000000000000000000000000000000000000000000000000000"
"#,
        );
        let file = PolicyFile::load(&p).unwrap();
        assert_eq!(file.only_world(), Some("eu"));
        let pol = file.resolve(Some("eu")).unwrap();
        assert_eq!(pol.min_rsa_bits, 3072);
        assert!(pol.require_enrolled);
        assert!(pol.allow_sha1 && pol.allows_hash(HashAlg::Sha1));
        assert_eq!(pol.allowed_curves, vec![curve::NIST_P384]);
        assert_eq!(pol.reference_pcrs[&HashAlg::Sha256][&0], vec![0u8; 32]);
        assert_eq!(pol.roots, vec![p.parent().unwrap().join("ca.pem")]);
        assert_eq!(pol.require_kek_pcrs, KekPcrRequirement::These(vec![0, 7]));
        assert!(!Policy::default().allows_hash(HashAlg::Sha1));
        // Another world gets the defaults only.
        let other = file.resolve(Some("us")).unwrap();
        assert!(other.roots.is_empty() && other.require_enrolled);
        assert_eq!(other.require_kek_pcrs, KekPcrRequirement::None);
    }

    #[test]
    fn mistakes_are_named() {
        for (text, expect) in [
            ("[defaults]\nallow_sha2 = true\n", "unknown field"),
            ("[worlds.eu.pcrs.sha256]\n0 = \"00\"\n", "has 1 bytes"),
            ("[worlds.eu.pcrs.sha256]\n24 = \"00\"\n", "PCR index"),
            ("[worlds.eu]\nallowed_hashes = [\"md5\"]\n", "unknown hash"),
            ("[defaults]\nmin_rsa_bits = 512\n", "below 1024"),
            (
                "[worlds.eu]\nrequire_kek_pcrs = [0, 23]\n",
                "PCR 23 can be reset",
            ),
            (
                "[worlds.eu]\nrequire_kek_pcrs = [17]\n",
                "PCR 17 can be reset",
            ),
            (
                "[worlds.eu]\nrequire_kek_pcrs = [24]\n",
                "PCR 24 does not exist",
            ),
            ("[worlds.eu]\nrequire_kek_pcrs = []\n", "names no PCR"),
            (
                "[worlds.eu]\nmax_evidence_bytes = 9999\n",
                "set it in [defaults]",
            ),
            ("[defaults]\nmax_evidence_bytes = 10\n", "below 4096"),
        ] {
            let (_d, p) = write(text);
            let e = PolicyFile::load(&p).unwrap_err().to_string();
            assert!(e.contains(expect), "{text}: {e}");
        }
        // DRTM PCRs are allowed when the policy trusts the dynamic launch.
        let (_d, p) = write("[worlds.eu]\nallow_drtm_pcrs = true\nrequire_kek_pcrs = [17]\n");
        assert_eq!(
            load(&p, Some("eu")).unwrap().require_kek_pcrs,
            KekPcrRequirement::These(vec![17])
        );
        // Two worlds: each resolves its own table.
        let (_d, p) = write("[worlds.eu]\nroots = [\"a.pem\"]\n[worlds.us]\nroots = [\"b.pem\"]\n");
        let file = PolicyFile::load(&p).unwrap();
        assert_eq!(file.only_world(), None);
        assert!(file.resolve(None).unwrap().roots.is_empty());
        assert_eq!(
            file.resolve(Some("us")).unwrap().roots,
            vec![p.parent().unwrap().join("b.pem")]
        );
        let (_d, p) = write("[defaults]\nmin_rsa_bits = 1024\n");
        assert_eq!(load(&p, None).unwrap().min_rsa_bits, 1024);
    }

    #[test]
    fn resettable_pcrs() {
        for i in [16, 23, 17, 20, 22] {
            assert!(resettable_pcr(i, false), "{i}");
        }
        for i in [0, 7, 15] {
            assert!(!resettable_pcr(i, false), "{i}");
        }
        assert!(!resettable_pcr(17, true) && resettable_pcr(23, true));
    }
}
