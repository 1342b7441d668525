//! TPM wire structures: TPMT_PUBLIC / TPM2B_PUBLIC, TPMS_ATTEST, TPMT_SIGNATURE.
//! Every input must give Ok or Err, never a panic; what parses must re-marshal
//! to the same bytes (the parsers keep exact bytes for names and signatures).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = byok_protocol::public::TpmtPublic::parse(data) {
        assert_eq!(p.as_bytes(), data);
        let _ = p.name();
        let _ = p.describe_key();
        let _ = byok_protocol::keys::public_key_der(&p);
    }
    let _ = byok_protocol::public::TpmtPublic::parse_tpm2b(data);
    let _ = byok_protocol::TpmsAttest::parse(data);
    let _ = byok_protocol::TpmtSignature::parse(data);
});
