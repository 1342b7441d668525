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

/// A policy digest being built, as a trial session would (SHA-256, starting
/// from zeros).
#[derive(Debug, Clone)]
pub struct PolicyDigest(Vec<u8>);

impl Default for PolicyDigest {
    fn default() -> Self {
        PolicyDigest(vec![0u8; 32])
    }
}

impl PolicyDigest {
    pub fn new() -> Self {
        Self::default()
    }

    fn extend(&mut self, parts: &[&[u8]]) {
        let mut all: Vec<&[u8]> = vec![&self.0];
        all.extend_from_slice(parts);
        self.0 = HashAlg::Sha256.digest(&all);
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
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
