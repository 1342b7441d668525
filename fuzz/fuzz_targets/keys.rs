//! Key inputs: PEM/DER private keys, TSS2 PRIVATE KEY files, PCR lists,
//! AES key unwrap (RFC 5649) with a fixed key.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = byok_protocol::keys::TargetKey::from_bytes(data);
    let _ = byok_protocol::keyfile::TpmKeyFile::from_der(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = byok_protocol::keyfile::TpmKeyFile::from_pem(text);
        let _ = byok_protocol::policy::PcrSpec::parse(text);
    }
    let _ = byok_protocol::ckm::kwp_unwrap(&[7u8; 32], data);
});
