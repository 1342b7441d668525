//! The operator-side inputs that decide trust: registry host records, policy
//! files, the transfer-object rule the agent applies before TPM2_Import, and
//! the sanitiser every unsigned string is printed through.
#![no_main]
use byok_protocol::formats::{Document, HostRecord, TransferPackage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = HostRecord::from_cbor(data);
    if let Ok(t) = TransferPackage::from_cbor(data) {
        if let Ok(p) = byok_protocol::TpmtPublic::parse_tpm2b(&t.object.public) {
            let _ = byok_protocol::transfer::check_transfer_object(&p, &t.key);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = byok_protocol::text::inert(text);
        if let Ok(file) =
            byok_verifier::policy::PolicyFile::from_text(std::path::Path::new("policy.toml"), text)
        {
            let _ = file.resolve(None);
            let _ = file.resolve(file.only_world());
        }
    }
});
