//! A certificate's signature by its issuer's key: RSA PKCS#1 v1.5 with
//! SHA-256/384/512 (SHA-1 only when allowed), ECDSA P-256/P-384 with
//! SHA-256/384, over the exact TBSCertificate bytes.

use super::{subject, Cert};
use crate::error::VerifyError;
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
    let ok = if [RSA_SHA1, RSA_SHA256, RSA_SHA384, RSA_SHA512].contains(&oid) {
        use spki::DecodePublicKey;
        let pk = rsa::RsaPublicKey::from_public_key_der(&spki).map_err(|_| invalid())?;
        let (scheme, digest) = if oid == RSA_SHA1 {
            (
                rsa::Pkcs1v15Sign::new::<sha1::Sha1>(),
                sha1::Sha1::digest(tbs).to_vec(),
            )
        } else if oid == RSA_SHA256 {
            (
                rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
                sha2::Sha256::digest(tbs).to_vec(),
            )
        } else if oid == RSA_SHA384 {
            (
                rsa::Pkcs1v15Sign::new::<sha2::Sha384>(),
                sha2::Sha384::digest(tbs).to_vec(),
            )
        } else {
            (
                rsa::Pkcs1v15Sign::new::<sha2::Sha512>(),
                sha2::Sha512::digest(tbs).to_vec(),
            )
        };
        pk.verify(scheme, &digest, sig).is_ok()
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
        Ok(())
    } else {
        Err(invalid())
    }
}
