//! A certificate's signature by its issuer's key: RSA PKCS#1 v1.5 with
//! SHA-256/384/512 (SHA-1 only when allowed), ECDSA P-256/P-384 with
//! SHA-256/384, over the exact TBSCertificate bytes.

use super::{subject, Cert};
use crate::error::VerifyError;
use byok_protocol::signature::{verify_rsa_pkcs1, SignatureError};
use byok_protocol::HashAlg;
use const_oid::ObjectIdentifier;
use der::Encode;

const RSA_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.5");
const RSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const RSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const RSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");

// Long on purpose: one branch per signature algorithm accepted.
/// Check that `issuer_cert` signed `cert`.
pub fn check_signature(c: &Cert, issuer_cert: &Cert, allow_sha1: bool) -> Result<(), VerifyError> {
    use sha2::Digest;
    let cert = &c.cert;
    let tbs = c.tbs_der();
    let sig = cert.signature.raw_bytes();
    let spki = issuer_cert
        .cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| VerifyError::EkCertificateUnparseable(e.to_string()))?;
    // RFC 5280 4.1.1.2: the outer algorithm, which the signature does not
    // cover, must equal the signed one.
    if cert.signature_algorithm != cert.tbs_certificate.signature {
        return Err(VerifyError::EkCertificateUnparseable(format!(
            "certificate {:?}: signatureAlgorithm differs from tbsCertificate.signature",
            subject(c)
        )));
    }
    if cert.signature.unused_bits() != 0 {
        return Err(VerifyError::EkCertificateUnparseable(format!(
            "certificate {:?}: signature BIT STRING has unused bits",
            subject(c)
        )));
    }
    let oid = cert.signature_algorithm.oid;
    let invalid = || VerifyError::CertificateSignatureInvalid {
        subject: subject(c),
        issuer: subject(issuer_cert),
    };
    if oid == RSA_SHA1 && !allow_sha1 {
        return Err(VerifyError::CertificateSha1 {
            subject: subject(c),
        });
    }
    let seen = seen_key(c, &spki, allow_sha1);
    if VERIFIED.with(|v| v.borrow().contains(&seen)) {
        return Ok(());
    }
    let ok = if [RSA_SHA1, RSA_SHA256, RSA_SHA384, RSA_SHA512].contains(&oid) {
        use rsa::traits::PublicKeyParts;
        use spki::DecodePublicKey;
        let pk = rsa::RsaPublicKey::from_public_key_der(&spki).map_err(|_| invalid())?;
        let hash = match oid {
            RSA_SHA1 => HashAlg::Sha1,
            RSA_SHA256 => HashAlg::Sha256,
            RSA_SHA384 => HashAlg::Sha384,
            _ => HashAlg::Sha512,
        };
        match verify_rsa_pkcs1(&pk.n().to_bytes_be(), &pk.e().to_bytes_be(), hash, tbs, sig) {
            Ok(()) => true,
            Err(SignatureError::BadKey(detail)) => {
                return Err(VerifyError::CertificateAlgorithmUnsupported {
                    subject: subject(c),
                    oid: format!("{oid} with the issuer's key: {detail}"),
                })
            }
            Err(_) => false,
        }
    } else if oid == ECDSA_SHA256 || oid == ECDSA_SHA384 {
        use ecdsa::signature::hazmat::PrehashVerifier;
        use spki::DecodePublicKey;
        let digest = if oid == ECDSA_SHA256 {
            sha2::Sha256::digest(tbs).to_vec()
        } else {
            sha2::Sha384::digest(tbs).to_vec()
        };
        if let Ok(vk) = p256::ecdsa::VerifyingKey::from_public_key_der(&spki) {
            let s = p256::ecdsa::Signature::from_der(sig).map_err(|_| invalid())?;
            vk.verify_prehash(&digest, &s).is_ok()
        } else if let Ok(vk) = p384::ecdsa::VerifyingKey::from_public_key_der(&spki) {
            let s = p384::ecdsa::Signature::from_der(sig).map_err(|_| invalid())?;
            vk.verify_prehash(&digest, &s).is_ok()
        } else {
            return Err(invalid());
        }
    } else {
        return Err(VerifyError::CertificateAlgorithmUnsupported {
            subject: subject(c),
            oid: oid.to_string(),
        });
    };
    if ok {
        VERIFIED.with(|v| {
            let mut v = v.borrow_mut();
            if v.len() >= VERIFIED_MAX {
                v.clear();
            }
            v.insert(seen);
        });
        Ok(())
    } else {
        Err(invalid())
    }
}

/// The most signatures [`VERIFIED`] remembers per thread (32 bytes each).
const VERIFIED_MAX: usize = 4096;

thread_local! {
    /// Certificate signatures this thread has verified, by [`seen_key`]. A
    /// batch's EK certificates come from a few CAs, whose own certificates
    /// (intermediate by root) are the same in every file: each is verified
    /// once per thread, not once per file. Only successes are kept, keyed by
    /// the exact bytes checked, so a hit is the same computation's result.
    static VERIFIED: std::cell::RefCell<std::collections::HashSet<[u8; 32]>> =
        std::cell::RefCell::new(std::collections::HashSet::new());
}

/// SHA-256 over the certificate's exact DER (TBS, algorithm, signature), the
/// issuer's SubjectPublicKeyInfo and the SHA-1 setting.
fn seen_key(c: &Cert, issuer_spki: &[u8], allow_sha1: bool) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update((c.der.len() as u64).to_be_bytes());
    h.update(&c.der);
    h.update(issuer_spki);
    h.update([u8::from(allow_sha1)]);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::{load_certificates, CertSource};
    use byok_protocol::formats::{Document, Evidence};

    fn fixture(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures")
            .join(name)
    }

    fn only(name: &str) -> Cert {
        let mut certs = load_certificates(&fixture(name), CertSource::Roots)
            .unwrap()
            .certs;
        certs.remove(0)
    }

    /// An issuer's RSA key outside 2048-8192 bits (here RSA-1024, made by
    /// OpenSSL) is refused as unsupported, whatever its signature says.
    #[test]
    fn a_certificate_signed_by_an_rsa_1024_issuer_is_refused() {
        let d = tempfile::TempDir::new().unwrap();
        let run = |args: &[&str]| {
            let out = std::process::Command::new("openssl")
                .args(args)
                .current_dir(d.path())
                .output()
                .expect("openssl");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:1024",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=weak CA",
            "-days",
            "30",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ]);
        run(&[
            "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "leaf.key", "-out",
            "leaf.csr", "-subj", "/CN=leaf",
        ]);
        run(&[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-out",
            "leaf.pem",
            "-days",
            "30",
            "-set_serial",
            "2",
            "-sha256",
        ]);
        let load = |f: &str| {
            load_certificates(&d.path().join(f), CertSource::Roots)
                .unwrap()
                .certs
                .remove(0)
        };
        let r = check_signature(&load("leaf.pem"), &load("ca.pem"), false);
        assert!(
            matches!(&r, Err(VerifyError::CertificateAlgorithmUnsupported { oid, .. }) if oid.contains("2048-8192 bits")),
            "{r:?}"
        );
    }

    fn openssl(dir: &std::path::Path, args: &[&str]) {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// RSA signatures with each hash a certificate may use verify (OpenSSL
    /// signs them), and are remembered one entry each, within the bound.
    #[test]
    fn rsa_certificates_with_each_hash_verify_and_are_remembered_within_the_bound() {
        let d = tempfile::TempDir::new().unwrap();
        let p = d.path();
        openssl(
            p,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-subj",
                "/CN=test CA",
                "-days",
                "30",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign",
            ],
        );
        openssl(
            p,
            &[
                "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "leaf.key", "-out",
                "leaf.csr", "-subj", "/CN=leaf",
            ],
        );
        let load = |f: &str| {
            load_certificates(&p.join(f), CertSource::Roots)
                .unwrap()
                .certs
                .remove(0)
        };
        let ca = load("ca.pem");
        VERIFIED.with(|v| v.borrow_mut().clear());
        for (i, hash) in ["-sha256", "-sha384", "-sha512"].into_iter().enumerate() {
            let out = format!("leaf{i}.pem");
            openssl(
                p,
                &[
                    "x509",
                    "-req",
                    "-in",
                    "leaf.csr",
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-out",
                    &out,
                    "-days",
                    "30",
                    "-set_serial",
                    &format!("{}", i + 2),
                    hash,
                ],
            );
            check_signature(&load(&out), &ca, false).unwrap_or_else(|e| panic!("{hash}: {e}"));
            assert_eq!(VERIFIED.with(|v| v.borrow().len()), i + 1);
        }
        // Full: cleared before the next success is remembered.
        VERIFIED.with(|v| {
            let mut v = v.borrow_mut();
            v.clear();
            for n in 0..VERIFIED_MAX {
                v.insert(seen_key(&ca, &(n as u64).to_be_bytes(), false));
            }
        });
        check_signature(&load("leaf0.pem"), &ca, false).unwrap();
        assert_eq!(VERIFIED.with(|v| v.borrow().len()), 1);
    }

    /// A remembered success covers those exact bytes and that issuer key:
    /// on the same thread, the same certificate with its signature altered,
    /// or checked against another CA, still fails.
    #[test]
    fn a_remembered_signature_covers_only_its_exact_bytes_and_issuer() {
        let ev = Evidence::from_cbor(&std::fs::read(fixture("a-eu.evidence")).unwrap()).unwrap();
        let leaf = Cert::from_der(&ev.ek.certificate).unwrap();
        let issuer = only("a-issuer.pem");
        check_signature(&leaf, &issuer, false).unwrap();
        check_signature(&leaf, &issuer, false).unwrap();
        let mut der = leaf.der.clone();
        let last = der.len() - 1;
        der[last] ^= 1;
        let altered = Cert::from_der(&der).unwrap();
        assert!(matches!(
            check_signature(&altered, &issuer, false),
            Err(VerifyError::CertificateSignatureInvalid { .. })
        ));
        let other_ca = only("b-ca.pem");
        assert!(matches!(
            check_signature(&leaf, &other_ca, false),
            Err(VerifyError::CertificateSignatureInvalid { .. })
        ));
        check_signature(&leaf, &issuer, false).unwrap();
    }
}
