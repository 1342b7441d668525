//! The whole `verify` path on arbitrary evidence bytes: decoding, then every
//! check, against an empty trust store (the path stops at the EK chain), and
//! every TPM-signed check without the chain (`check_signed_claims`, what
//! `inspect` runs), so mutated TPM structures reach the deep checks.
#![no_main]
use byok_protocol::formats::{Document, Evidence};
use byok_verifier::certs::TrustStore;
use byok_verifier::verify::{verify_evidence, Options};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(ev) = Evidence::from_cbor(data) {
        let opts = Options {
            nonce: ev.nonce.to_vec(),
            world: None,
            now: std::time::SystemTime::UNIX_EPOCH,
            policy: Default::default(),
        };
        let _ = verify_evidence(&ev, &TrustStore::default(), &opts);
        let _ = byok_verifier::verify::check_signed_claims(&ev);
    }
});
