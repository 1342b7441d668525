//! X.509 certificates (DER or PEM bundles) as the verifier reads EK
//! certificates and CA files.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = byok_verifier::certs::Cert::from_der(data);
    let _ = byok_verifier::certs::parse_certificates(data);
});
