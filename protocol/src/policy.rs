//! TPM enhanced-authorization policy digests, computed in software so the
//! agent can put them in a template and the verifier can recompute them from
//! a public area (TCG TPM 2.0 Library Part 3, the "policyDigest" update of
//! each TPM2_Policy* command). Only the commands tpm-byok uses are here.

use crate::hash::HashAlg;
use crate::wire::Writer;

/// TPM_CC values of the policy commands below.
pub mod cc {
    pub const POLICY_SECRET: u32 = 0x0000_0151;
    pub const POLICY_COMMAND_CODE: u32 = 0x0000_016c;
    pub const POLICY_PCR: u32 = 0x0000_017f;
    pub const POLICY_OR: u32 = 0x0000_0171;
    pub const POLICY_AUTHORIZE_NV: u32 = 0x0000_0192;
}

/// A PCR selection in one bank: "sha256:0,7".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcrSpec {
    pub bank: HashAlg,
    /// Sorted, distinct, 0..=23.
    pub pcrs: Vec<u32>,
}

impl PcrSpec {
    /// Parse "sha256:0,7" (the bank may be sha1, sha256, sha384 or sha512;
    /// without "bank:" it is sha256).
    pub fn parse(s: &str) -> Result<PcrSpec, String> {
        let (bank, list) = match s.split_once(':') {
            Some((b, l)) => (b.trim(), l),
            None => ("sha256", s),
        };
        let bank = HashAlg::from_name(bank).ok_or_else(|| {
            format!("unknown PCR bank {bank:?} (use sha256, sha384, sha512 or sha1)")
        })?;
        let mut pcrs = Vec::new();
        for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let i: u32 = part
                .parse()
                .map_err(|_| format!("{part:?} is not a PCR index"))?;
            if i > 23 {
                return Err(format!("PCR {i} does not exist (0-23)"));
            }
            if !pcrs.contains(&i) {
                pcrs.push(i);
            }
        }
        if pcrs.is_empty() {
            return Err("select at least one PCR".into());
        }
        pcrs.sort();
        Ok(PcrSpec { bank, pcrs })
    }

    /// TPML_PCR_SELECTION with this one bank: 3 select bytes (PCRs 0-23, what
    /// every PC-client TPM has), more only if a higher index is listed.
    pub fn selection_bytes(&self) -> Vec<u8> {
        let highest = self.pcrs.iter().copied().max().unwrap_or(0) as usize;
        let mut select = vec![0u8; (highest / 8 + 1).max(3)];
        for &i in &self.pcrs {
            select[i as usize / 8] |= 1 << (i % 8);
        }
        let mut w = Writer::new();
        w.u32(1)
            .u16(self.bank.tpm_id())
            .u8(select.len() as u8)
            .raw(&select);
        w.into_vec()
    }

    pub fn describe(&self) -> String {
        let list: Vec<String> = self.pcrs.iter().map(|i| i.to_string()).collect();
        format!("{}:{}", self.bank.name(), list.join(","))
    }
}

/// A PCR that software can reset and then extend to any value it likes: 16
/// (debug) and 23 (application) at any locality; 17-22 by a dynamic launch
/// (DRTM), unless the caller trusts that (`allow_drtm`). A binding to such
/// PCRs alone says nothing about how the platform booted.
pub fn resettable_pcr(index: u32, allow_drtm: bool) -> bool {
    matches!(index, 16 | 23) || (!allow_drtm && (17..=22).contains(&index))
}

/// The one PCR syntax, as command lines read it (`--pcrs sha256:0,7`).
impl std::str::FromStr for PcrSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<PcrSpec, String> {
        PcrSpec::parse(s)
    }
}

impl std::fmt::Display for PcrSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// Stored and sent as its text ("sha256:0,7"), parsed by [`PcrSpec::parse`]
/// on the way in: state files and packages keep their format, and a value is
/// parsed once, where it is read.
impl serde::Serialize for PcrSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.describe())
    }
}

impl<'de> serde::Deserialize<'de> for PcrSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        PcrSpec::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A policy digest being built, as a trial session would (starting from
/// zeros; SHA-256 unless made [`PolicyDigest::with_hash`]).
#[derive(Debug, Clone)]
pub struct PolicyDigest {
    hash: HashAlg,
    digest: Vec<u8>,
}

impl Default for PolicyDigest {
    fn default() -> Self {
        PolicyDigest::with_hash(HashAlg::Sha256)
    }
}

impl PolicyDigest {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_hash(hash: HashAlg) -> Self {
        PolicyDigest {
            hash,
            digest: vec![0u8; hash.size()],
        }
    }

    fn extend(&mut self, parts: &[&[u8]]) {
        let mut all: Vec<&[u8]> = vec![&self.digest];
        all.extend_from_slice(parts);
        self.digest = self.hash.digest(&all);
    }

    /// TPM2_PolicyOR: the digest is reset, then H(0… || TPM_CC_PolicyOR ||
    /// the branch digests).
    pub fn or(mut self, branches: &[&[u8]]) -> Self {
        self.digest = vec![0u8; self.hash.size()];
        let mut parts: Vec<&[u8]> = Vec::new();
        let cc = cc::POLICY_OR.to_be_bytes();
        parts.push(&cc);
        parts.extend_from_slice(branches);
        self.extend(&parts);
        self
    }

    /// TPM2_PolicyAuthorizeNV: H(old || TPM_CC_PolicyAuthorizeNV || nvIndexName).
    pub fn authorize_nv(mut self, nv_name: &[u8]) -> Self {
        self.extend(&[&cc::POLICY_AUTHORIZE_NV.to_be_bytes(), nv_name]);
        self
    }

    /// TPM2_PolicyPCR: H(old || TPM_CC_PolicyPCR || pcrs || digestTPM), where
    /// digestTPM is H(the selected PCR values in selection order).
    pub fn pcr(mut self, spec: &PcrSpec, values: &[Vec<u8>]) -> Self {
        let concat: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
        let digest_tpm = HashAlg::Sha256.digest(&concat);
        self.extend(&[
            &cc::POLICY_PCR.to_be_bytes(),
            &spec.selection_bytes(),
            &digest_tpm,
        ]);
        self
    }

    /// TPM2_PolicySecret: H(H(old || TPM_CC_PolicySecret || authName) || policyRef).
    pub fn secret(mut self, auth_name: &[u8], policy_ref: &[u8]) -> Self {
        self.extend(&[&cc::POLICY_SECRET.to_be_bytes(), auth_name]);
        self.extend(&[policy_ref]);
        self
    }

    /// TPM2_PolicyCommandCode: H(old || TPM_CC_PolicyCommandCode || code).
    pub fn command_code(mut self, code: u32) -> Self {
        self.extend(&[&cc::POLICY_COMMAND_CODE.to_be_bytes(), &code.to_be_bytes()]);
        self
    }

    pub fn into_vec(self) -> Vec<u8> {
        self.digest
    }
}

/// The authorisation policies of the TCG EK Credential Profile's EK
/// templates in `hash`: `secret` (PolicyA: PolicySecret(TPM_RH_ENDORSEMENT),
/// the low-range templates' whole policy), `authorize_nv` (PolicyC:
/// PolicyAuthorizeNV of the profile's policy index) and `or` (the high-range
/// templates' policy: PolicyOR(PolicyA, PolicyC)). Computed from their
/// definitions (profile 2.5, section 2.1.5): the SHA-256 values match the
/// profile's tables (tests); for other hashes the index and its size follow
/// the same pattern, and the agent only uses them when they give the EK's
/// actual authPolicy.
pub struct EkPolicies {
    pub secret: Vec<u8>,
    pub authorize_nv: Vec<u8>,
    pub or: Vec<u8>,
}

pub fn ek_policies(hash: HashAlg) -> EkPolicies {
    const TPM_RH_ENDORSEMENT: u32 = 0x4000_000b;
    let secret = PolicyDigest::with_hash(hash)
        .secret(&TPM_RH_ENDORSEMENT.to_be_bytes(), &[])
        .into_vec();
    // The policy index (I-1 0x01C07F01 for SHA-256, …), whose nameAlg is
    // `hash`, whose authPolicy is PolicyA and which holds a TPMT_HA.
    let index: u32 = match hash {
        HashAlg::Sha384 => 0x01c0_7f02,
        HashAlg::Sha512 => 0x01c0_7f03,
        _ => 0x01c0_7f01,
    };
    // TPMA_NV: POLICYWRITE | WRITEALL | PPREAD | OWNERREAD | AUTHREAD |
    // POLICYREAD | NO_DA | WRITTEN.
    let attributes: u32 = (1 << 3)
        | (1 << 12)
        | (1 << 16)
        | (1 << 17)
        | (1 << 18)
        | (1 << 19)
        | (1 << 25)
        | (1 << 29);
    let data_size = (2 + hash.size()) as u16;
    let mut nv_public = Vec::new();
    nv_public.extend_from_slice(&index.to_be_bytes());
    nv_public.extend_from_slice(&hash.tpm_id().to_be_bytes());
    nv_public.extend_from_slice(&attributes.to_be_bytes());
    nv_public.extend_from_slice(&(secret.len() as u16).to_be_bytes());
    nv_public.extend_from_slice(&secret);
    nv_public.extend_from_slice(&data_size.to_be_bytes());
    let mut nv_name = hash.tpm_id().to_be_bytes().to_vec();
    nv_name.extend(hash.digest(&[&nv_public]));
    let authorize_nv = PolicyDigest::with_hash(hash)
        .authorize_nv(&nv_name)
        .into_vec();
    let or = PolicyDigest::with_hash(hash)
        .or(&[&secret, &authorize_nv])
        .into_vec();
    EkPolicies {
        secret,
        authorize_nv,
        or,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ek_policies_match_the_tcg_profile() {
        let p = ek_policies(HashAlg::Sha256);
        // EK Credential Profile: PolicyA_SHA256 (the L-1/L-2 authPolicy) and
        // the high-range H-1/H-2 authPolicy PolicyOR(PolicyA, PolicyC).
        assert_eq!(
            hex::encode(&p.secret),
            "837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa"
        );
        assert_eq!(
            hex::encode(&p.or),
            "ca3d0a99a2b93906f7a3342414efcfb3a385d44cd1fd459089d19b5071c0b7a0"
        );
        assert_eq!(ek_policies(HashAlg::Sha384).secret.len(), 48);
    }

    #[test]
    fn parses_pcr_specs() {
        let s = PcrSpec::parse("sha256:7,0,7").unwrap();
        assert_eq!(s.pcrs, vec![0, 7]);
        assert_eq!(s.describe(), "sha256:0,7");
        assert_eq!(PcrSpec::parse("16").unwrap().bank, HashAlg::Sha256);
        assert!(PcrSpec::parse("sha256:24").is_err());
        assert!(PcrSpec::parse("md5:1").is_err());
        assert!(PcrSpec::parse("sha256:").is_err());
        assert_eq!(
            PcrSpec::parse("sha256:0,7,16,23")
                .unwrap()
                .selection_bytes(),
            vec![0, 0, 0, 1, 0, 0x0b, 3, 0x81, 0x00, 0x81]
        );
    }
}
