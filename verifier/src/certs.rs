//! EK certificate path validation: from the EK certificate through
//! intermediates to a configured trust anchor, checking signatures, validity
//! and CA constraints. TPM EK certificates carry a critical directoryName SAN
//! and the TCG EK EKU (2.23.133.8.1), which web-PKI validators refuse; they are
//! accepted here. A trust anchor need not be self-signed (a manufacturer root
//! that is itself issued by another CA can be configured as the anchor).

use crate::error::VerifyError;
use const_oid::ObjectIdentifier;
use der::{Decode, Encode};
use std::path::Path;
use std::time::SystemTime;
use x509_cert::Certificate;

const MAX_DEPTH: usize = 8;

const RSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const RSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const RSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
const KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.15");

/// The certificates an operator trusts, and intermediates to build paths with.
#[derive(Default, Clone)]
pub struct TrustStore {
    pub anchors: Vec<Certificate>,
    pub intermediates: Vec<Certificate>,
}

/// Read every certificate in a PEM/DER file, or in every file of a directory.
pub fn load_certificates(path: &Path) -> Result<Vec<Certificate>, VerifyError> {
    let roots_err = |detail: String| VerifyError::Roots {
        path: path.display().to_string(),
        detail,
    };
    let mut files = Vec::new();
    if path.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .map_err(|e| roots_err(e.to_string()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        entries.sort();
        files.extend(entries);
    } else {
        files.push(path.to_path_buf());
    }
    let mut out = Vec::new();
    for f in &files {
        let bytes = std::fs::read(f).map_err(|e| roots_err(format!("{}: {e}", f.display())))?;
        out.extend(
            parse_certificates(&bytes).map_err(|e| roots_err(format!("{}: {e}", f.display())))?,
        );
    }
    if out.is_empty() {
        return Err(roots_err("no certificate found".into()));
    }
    Ok(out)
}

/// Parse PEM (one or more CERTIFICATE blocks) or a single DER certificate.
pub fn parse_certificates(bytes: &[u8]) -> Result<Vec<Certificate>, String> {
    if bytes.starts_with(b"-----")
        || std::str::from_utf8(bytes).is_ok_and(|s| s.contains("-----BEGIN CERTIFICATE-----"))
    {
        Certificate::load_pem_chain(bytes).map_err(|e| e.to_string())
    } else {
        Certificate::from_der(bytes)
            .map(|c| vec![c])
            .map_err(|e| e.to_string())
    }
}

pub fn subject(c: &Certificate) -> String {
    c.tbs_certificate.subject.to_string()
}

fn issuer(c: &Certificate) -> String {
    c.tbs_certificate.issuer.to_string()
}

fn names_equal(a: &x509_cert::name::Name, b: &x509_cert::name::Name) -> bool {
    match (a.to_der(), b.to_der()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

fn check_validity(c: &Certificate, now: SystemTime) -> Result<(), VerifyError> {
    let v = &c.tbs_certificate.validity;
    let nb = v.not_before.to_system_time();
    let na = v.not_after.to_system_time();
    if now < nb || now > na {
        return Err(VerifyError::CertificateNotValidNow {
            subject: subject(c),
            not_before: v.not_before.to_string(),
            not_after: v.not_after.to_string(),
        });
    }
    Ok(())
}

/// An issuer must be a CA: basicConstraints cA = true, and keyCertSign if it has keyUsage.
fn check_ca(c: &Certificate) -> Result<(), VerifyError> {
    let exts = c.tbs_certificate.extensions.as_deref().unwrap_or(&[]);
    let not_ca = || VerifyError::IssuerNotCa {
        subject: subject(c),
    };
    let bc = exts
        .iter()
        .find(|e| e.extn_id == BASIC_CONSTRAINTS)
        .ok_or_else(not_ca)?;
    let bc = x509_cert::ext::pkix::BasicConstraints::from_der(bc.extn_value.as_bytes())
        .map_err(|_| not_ca())?;
    if !bc.ca {
        return Err(not_ca());
    }
    if let Some(ku) = exts.iter().find(|e| e.extn_id == KEY_USAGE) {
        let ku = x509_cert::ext::pkix::KeyUsage::from_der(ku.extn_value.as_bytes())
            .map_err(|_| not_ca())?;
        if !ku.key_cert_sign() {
            return Err(not_ca());
        }
    }
    Ok(())
}

/// Check that `issuer_cert` signed `cert`.
pub fn check_signature(cert: &Certificate, issuer_cert: &Certificate) -> Result<(), VerifyError> {
    use sha2::Digest;
    let tbs = cert
        .tbs_certificate
        .to_der()
        .map_err(|e| VerifyError::EkCertificateUnparseable(e.to_string()))?;
    let sig = cert.signature.raw_bytes();
    let spki = issuer_cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| VerifyError::EkCertificateUnparseable(e.to_string()))?;
    // RFC 5280 4.1.1.2: the outer algorithm, which the signature does not
    // cover, must equal the signed one.
    if cert.signature_algorithm != cert.tbs_certificate.signature {
        return Err(VerifyError::EkCertificateUnparseable(format!(
            "certificate {:?}: signatureAlgorithm differs from tbsCertificate.signature",
            subject(cert)
        )));
    }
    if cert.signature.unused_bits() != 0 {
        return Err(VerifyError::EkCertificateUnparseable(format!(
            "certificate {:?}: signature BIT STRING has unused bits",
            subject(cert)
        )));
    }
    let oid = cert.signature_algorithm.oid;
    let invalid = || VerifyError::CertificateSignatureInvalid {
        subject: subject(cert),
        issuer: subject(issuer_cert),
    };
    let ok = if oid == RSA_SHA256 || oid == RSA_SHA384 || oid == RSA_SHA512 {
        use spki::DecodePublicKey;
        let pk = rsa::RsaPublicKey::from_public_key_der(&spki).map_err(|_| invalid())?;
        let (scheme, digest) = if oid == RSA_SHA256 {
            (
                rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
                sha2::Sha256::digest(&tbs).to_vec(),
            )
        } else if oid == RSA_SHA384 {
            (
                rsa::Pkcs1v15Sign::new::<sha2::Sha384>(),
                sha2::Sha384::digest(&tbs).to_vec(),
            )
        } else {
            (
                rsa::Pkcs1v15Sign::new::<sha2::Sha512>(),
                sha2::Sha512::digest(&tbs).to_vec(),
            )
        };
        pk.verify(scheme, &digest, sig).is_ok()
    } else if oid == ECDSA_SHA256 || oid == ECDSA_SHA384 {
        use ecdsa::signature::hazmat::PrehashVerifier;
        use spki::DecodePublicKey;
        let digest = if oid == ECDSA_SHA256 {
            sha2::Sha256::digest(&tbs).to_vec()
        } else {
            sha2::Sha384::digest(&tbs).to_vec()
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
            subject: subject(cert),
            oid: oid.to_string(),
        });
    };
    if ok {
        Ok(())
    } else {
        Err(invalid())
    }
}

/// Build and check a path from `leaf` to an anchor. `extra` are
/// intermediates shipped with the evidence (from the TPM's NV).
/// Returns the subjects along the path, leaf first, anchor last.
pub fn verify_path(
    leaf: &Certificate,
    extra: &[Certificate],
    store: &TrustStore,
    now: SystemTime,
) -> Result<Vec<String>, VerifyError> {
    check_validity(leaf, now)?;
    let mut path = vec![subject(leaf)];
    let mut current = leaf.clone();
    for _ in 0..MAX_DEPTH {
        // A configured anchor that issued the current certificate ends the path.
        let mut last_err = None;
        for anchor in store
            .anchors
            .iter()
            .filter(|a| names_equal(&a.tbs_certificate.subject, &current.tbs_certificate.issuer))
        {
            match check_signature(&current, anchor) {
                Ok(()) => {
                    check_validity(anchor, now)?;
                    path.push(subject(anchor));
                    return Ok(path);
                }
                Err(e) => last_err = Some(e),
            }
        }
        // Otherwise continue through an intermediate that issued it.
        let next = store
            .intermediates
            .iter()
            .chain(extra.iter())
            .filter(|c| names_equal(&c.tbs_certificate.subject, &current.tbs_certificate.issuer))
            .find(|c| check_signature(&current, c).is_ok())
            .cloned();
        match next {
            Some(n) => {
                check_validity(&n, now)?;
                check_ca(&n)?;
                path.push(subject(&n));
                current = n;
            }
            None => {
                if let Some(e @ VerifyError::CertificateAlgorithmUnsupported { .. }) = last_err {
                    return Err(e);
                }
                return Err(VerifyError::EkChainUntrusted {
                    subject: subject(leaf),
                    issuer: issuer(&current),
                    reason: if last_err.is_some() {
                        "a configured root has the issuer's name, but the signature does not verify with its key"
                    } else {
                        "no configured root or intermediate has the issuer's name"
                    },
                });
            }
        }
    }
    Err(VerifyError::EkChainUntrusted {
        subject: subject(leaf),
        issuer: issuer(&current),
        reason: "the path is longer than 8 certificates",
    })
}
