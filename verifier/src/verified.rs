//! What a verified evidence file establishes ([`Verified`]) and how its AK
//! is tied to the EK's TPM ([`AkBinding`]): the facts the checks in `check/`
//! produce and the commands rest on. No check lives here, so every module
//! can use these types without depending on the pipeline.

use byok_protocol::attest::ClockInfo;
use byok_protocol::public::TpmtPublic;
use byok_protocol::world::WorldId;
use std::collections::BTreeMap;

/// The facts an evidence file establishes once verified.
#[derive(Debug, Clone)]
pub struct Verified {
    pub world: WorldId,
    pub ek_public: TpmtPublic,
    /// The EK's Name: the key it is enrolled under in a registry.
    pub ek_name: Vec<u8>,
    /// SHA-256 of the EK certificate's DER.
    pub ek_certificate_sha256: [u8; 32],
    /// The registry's name for this EK's host, when it is enrolled.
    pub host: Option<String>,
    pub ak_public: TpmtPublic,
    pub ak_name: Vec<u8>,
    pub ak_qualified_name: Vec<u8>,
    pub kek_public: TpmtPublic,
    pub kek_name: Vec<u8>,
    /// The EK certificate's path, leaf first (shared with the run's cache).
    pub ek_chain: std::sync::Arc<[String]>,
    pub certify_clock: ClockInfo,
    pub quote_clock: ClockInfo,
    pub firmware_version: u64,
    pub pcrs: BTreeMap<u32, Vec<u8>>,
    pub tpm_manufacturer: String,
    pub tpm_vendor: String,
    pub ak_binding: AkBinding,
    /// The world's compat KEK, certified and checked, when the evidence has one.
    pub compat_kek: Option<TpmtPublic>,
    /// A PCR-bound KEK: the PCRs and values the TPM requires before it uses it.
    pub kek_pcr_binding: Option<KekPcrBinding>,
}

/// How the AK is tied to the EK's TPM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AkBinding {
    /// Not proven by evidence alone (a software key could have signed it):
    /// a transfer package is still safe, because the TPM enforces the binding
    /// at import (the key is released only to the TPM holding this EK and an
    /// object with this AK's name). Nothing else may rest on it.
    AtImport,
    /// Proven now: the TPM holding the EK released a credential bound to the
    /// AK's name (`challenge`, `activate`, `--activation`).
    Activated,
    /// Proven at enrolment (a credential activation), kept in the registry.
    Enrolled { host: String, enrolled: u64 },
}

impl AkBinding {
    /// A TPM activated a credential for this AK under this EK: the AK is a
    /// key of that TPM, so what it signs is TPM-made.
    pub fn proven(&self) -> bool {
        !matches!(self, AkBinding::AtImport)
    }

    pub fn describe(&self) -> String {
        match self {
            AkBinding::AtImport => "not proven by evidence alone: enforced by the TPM at import (the key is released only to the TPM holding this EK and an object with this AK's name); enroll the host to prove it".into(),
            AkBinding::Activated => "proven: the TPM holding this EK released a credential bound to this AK's name (challenge and activation)".into(),
            AkBinding::Enrolled { host, enrolled } => format!(
                "proven (host {}, enrolled {})",
                byok_protocol::text::inert(host),
                utc(*enrolled)
            ),
        }
    }
}

/// The PCR binding of a KEK, recomputed from its signed authPolicy.
#[derive(Debug, Clone)]
pub struct KekPcrBinding {
    pub pcrs: byok_protocol::policy::PcrSpec,
    pub values: Vec<Vec<u8>>,
}

/// A Unix time as "YYYY-MM-DD HH:MM:SS UTC".
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::utc;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_796_222_096), "2026-12-02 14:34:56 UTC");
        assert_eq!(utc(4_102_444_799), "2099-12-31 23:59:59 UTC");
        // Century and 400-year leap rules (checked with GNU date).
        assert_eq!(utc(4_107_542_399), "2100-02-28 23:59:59 UTC");
        assert_eq!(utc(4_107_542_400), "2100-03-01 00:00:00 UTC");
        assert_eq!(utc(13_574_563_200), "2400-02-29 00:00:00 UTC");
        assert_eq!(utc(946_684_799), "1999-12-31 23:59:59 UTC");
        assert_eq!(utc(1_709_164_800), "2024-02-29 00:00:00 UTC");
    }
}
