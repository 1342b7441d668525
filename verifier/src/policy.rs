//! The operator's policy (TOML, see docs/policy.md): per world, the trust
//! anchors and intermediates, reference PCR values, allowed algorithms and
//! minimum key sizes, and whether SHA-1 is accepted. Command-line flags
//! override it or stand in for it.

use crate::error::VerifyError;
use byok_protocol::hash::HashAlg;
use byok_protocol::tpm::curve;
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
    pub reference_pcrs: BTreeMap<String, BTreeMap<u32, Vec<u8>>>,
    pub roots: Vec<PathBuf>,
    pub intermediates: Vec<PathBuf>,
    /// Refuse KEKs that are not PCR-bound (`init --pcrs`).
    pub require_kek_pcrs: bool,
}

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
            require_kek_pcrs: false,
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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rules {
    allow_sha1: Option<bool>,
    min_rsa_bits: Option<u16>,
    allowed_hashes: Option<Vec<String>>,
    allowed_curves: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorldRules {
    allow_sha1: Option<bool>,
    min_rsa_bits: Option<u16>,
    allowed_hashes: Option<Vec<String>>,
    allowed_curves: Option<Vec<String>>,
    #[serde(default)]
    roots: Vec<PathBuf>,
    #[serde(default)]
    intermediates: Vec<PathBuf>,
    #[serde(default)]
    pcrs: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(default)]
    require_kek_pcrs: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    defaults: Rules,
    #[serde(default)]
    worlds: BTreeMap<String, WorldRules>,
}

fn bad(path: &Path, detail: impl Into<String>) -> VerifyError {
    VerifyError::Policy {
        path: path.display().to_string(),
        detail: detail.into(),
    }
}

fn apply(
    p: &mut Policy,
    path: &Path,
    allow_sha1: Option<bool>,
    min_rsa_bits: Option<u16>,
    hashes: &Option<Vec<String>>,
    curves: &Option<Vec<String>>,
) -> Result<(), VerifyError> {
    if let Some(v) = allow_sha1 {
        p.allow_sha1 = v;
    }
    if let Some(v) = min_rsa_bits {
        if v < 1024 {
            return Err(bad(path, format!("min_rsa_bits {v} is below 1024")));
        }
        p.min_rsa_bits = v;
    }
    if let Some(hs) = hashes {
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
    if let Some(cs) = curves {
        p.allowed_curves = cs
            .iter()
            .map(|c| match c.as_str() {
                "P-256" => Ok(curve::NIST_P256),
                "P-384" => Ok(curve::NIST_P384),
                other => Err(bad(path, format!("unknown curve {other:?} (P-256, P-384)"))),
            })
            .collect::<Result<_, _>>()?;
    }
    Ok(())
}

/// Load a policy file and resolve it for `world`: `[defaults]`, then the
/// world's table. With no `world`, a file with exactly one world uses it.
/// Relative root and intermediate paths are relative to the policy file.
pub fn load(path: &Path, world: Option<&str>) -> Result<(Policy, Option<String>), VerifyError> {
    let text = std::fs::read_to_string(path).map_err(|e| bad(path, e.to_string()))?;
    let file: PolicyFile = toml::from_str(&text).map_err(|e| bad(path, e.to_string()))?;
    let mut p = Policy::default();
    let d = &file.defaults;
    apply(
        &mut p,
        path,
        d.allow_sha1,
        d.min_rsa_bits,
        &d.allowed_hashes,
        &d.allowed_curves,
    )?;
    let world = match world {
        Some(w) => Some(w.to_string()),
        None if file.worlds.len() == 1 => file.worlds.keys().next().cloned(),
        None => None,
    };
    if let Some(w) = &world {
        let Some(rules) = file.worlds.get(w) else {
            return Err(bad(path, format!("no [worlds.{w}] table")));
        };
        apply(
            &mut p,
            path,
            rules.allow_sha1,
            rules.min_rsa_bits,
            &rules.allowed_hashes,
            &rules.allowed_curves,
        )?;
        let base = path.parent().unwrap_or(Path::new("."));
        p.roots = rules.roots.iter().map(|r| base.join(r)).collect();
        p.intermediates = rules.intermediates.iter().map(|r| base.join(r)).collect();
        p.require_kek_pcrs = rules.require_kek_pcrs;
        for (bank, values) in &rules.pcrs {
            let h = HashAlg::from_name(bank)
                .ok_or_else(|| bad(path, format!("unknown PCR bank {bank:?}")))?;
            let mut out = BTreeMap::new();
            for (index, value) in values {
                let i: u32 = index
                    .parse()
                    .ok()
                    .filter(|i| *i < 24)
                    .ok_or_else(|| bad(path, format!("PCR index {index:?} in bank {bank}")))?;
                let v = hex::decode(value)
                    .map_err(|_| bad(path, format!("PCR {bank}:{i} is not hex")))?;
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
            p.reference_pcrs.insert(bank.clone(), out);
        }
    }
    Ok((p, world))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(s: &str) -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::TempDir::new().unwrap();
        let p = d.path().join("policy.toml");
        std::fs::write(&p, s).unwrap();
        (d, p)
    }

    #[test]
    fn defaults_then_world() {
        let (_d, p) = write(
            r#"
[defaults]
min_rsa_bits = 3072
[worlds.eu]
roots = ["ca.pem"]
allow_sha1 = true
allowed_curves = ["P-384"]
[worlds.eu.pcrs.sha256]
0 = "0000000000000000000000000000000000000000000000000000000000000000"
"#,
        );
        let (pol, w) = load(&p, None).unwrap();
        assert_eq!(w.as_deref(), Some("eu"));
        assert_eq!(pol.min_rsa_bits, 3072);
        assert!(pol.allow_sha1 && pol.allows_hash(HashAlg::Sha1));
        assert_eq!(pol.allowed_curves, vec![curve::NIST_P384]);
        assert_eq!(pol.reference_pcrs["sha256"][&0], vec![0u8; 32]);
        assert_eq!(pol.roots, vec![p.parent().unwrap().join("ca.pem")]);
        assert!(!Policy::default().allows_hash(HashAlg::Sha1));
    }

    #[test]
    fn mistakes_are_named() {
        for (text, expect) in [
            ("[defaults]\nallow_sha2 = true\n", "unknown field"),
            ("[worlds.eu.pcrs.sha256]\n0 = \"00\"\n", "has 1 bytes"),
            ("[worlds.eu.pcrs.sha256]\n24 = \"00\"\n", "PCR index"),
            ("[worlds.eu]\nallowed_hashes = [\"md5\"]\n", "unknown hash"),
            ("[defaults]\nmin_rsa_bits = 512\n", "below 1024"),
        ] {
            let (_d, p) = write(text);
            let e = load(&p, None).unwrap_err().to_string();
            assert!(e.contains(expect), "{text}: {e}");
        }
        let (_d, p) = write("[worlds.eu]\n");
        assert!(load(&p, Some("us"))
            .unwrap_err()
            .to_string()
            .contains("no [worlds.us] table"));
        // Two worlds and none named: only the defaults apply.
        let (_d, p) = write("[worlds.eu]\nroots = [\"a.pem\"]\n[worlds.us]\nroots = [\"b.pem\"]\n");
        let (pol, w) = load(&p, None).unwrap();
        assert_eq!(w, None);
        assert!(pol.roots.is_empty());
        let (pol, _) = load(&p, Some("us")).unwrap();
        assert_eq!(pol.roots, vec![p.parent().unwrap().join("b.pem")]);
        let (_d, p) = write("[defaults]\nmin_rsa_bits = 1024\n");
        assert_eq!(load(&p, None).unwrap().0.min_rsa_bits, 1024);
    }
}
