//! X.509 certificates (DER or PEM bundles) as the verifier reads EK
//! certificates and CA files, then the EK profile and path checks on them.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = byok_verifier::certs::Cert::from_der(data);
    if let Ok(certs) = byok_verifier::certs::parse_certificates(data) {
        // The EK profile and the path rules (critical extensions, path
        // length) on whatever parsed, with the first as leaf and the rest as
        // the anchors.
        if let Some((leaf, rest)) = certs.split_first() {
            let _ = byok_verifier::certs::check_ek_profile(leaf, 2048);
            let store = byok_verifier::certs::TrustStore {
                anchors: rest.to_vec(),
                ..Default::default()
            };
            let _ = byok_verifier::certs::verify_ek_path(
                leaf,
                rest,
                &store,
                std::time::SystemTime::UNIX_EPOCH,
            );
        }
    }
});
