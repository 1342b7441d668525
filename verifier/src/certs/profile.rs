//! The TCG EK Credential Profile on the leaf, and what an EK certificate
//! says about its TPM.

use super::{
    extensions, subject, Cert, BASIC_CONSTRAINTS, EXT_KEY_USAGE, KEY_USAGE, SUBJECT_ALT_NAME,
    TCG_EK_CERTIFICATE,
};
use crate::error::VerifyError;
use const_oid::ObjectIdentifier;
use der::{Decode, Encode};

const TPM_MANUFACTURER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.2.1");
const TPM_MODEL: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.2.2");
const TPM_VERSION: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.2.3");

/// The leaf as a TCG EK certificate: not a CA; keyUsage, when present,
/// allows keyEncipherment (RSA EK) or keyAgreement (ECC EK); an extended key
/// usage, when present, includes the TCG EK certificate purpose
/// (2.23.133.8.1); an RSA key of at least `min_rsa_bits` (and 2048) bits or a
/// P-256/P-384 key.
pub fn check_ek_profile(c: &Cert, min_rsa_bits: u16) -> Result<(), VerifyError> {
    let profile = |problem: String| VerifyError::EkCertificateProfile {
        subject: subject(c),
        problem,
    };
    let exts = extensions(c);
    if let Some(bc) = exts.iter().find(|e| e.extn_id == BASIC_CONSTRAINTS) {
        let bc = x509_cert::ext::pkix::BasicConstraints::from_der(bc.extn_value.as_bytes())
            .map_err(|e| profile(format!("basicConstraints unreadable: {e}")))?;
        if bc.ca {
            return Err(profile(
                "it is a CA certificate (basicConstraints cA=TRUE), not an EK certificate".into(),
            ));
        }
    }
    use spki::DecodePublicKey;
    let spki = c
        .cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| VerifyError::EkCertificateUnparseable(e.to_string()))?;
    let rsa_bits = rsa::RsaPublicKey::from_public_key_der(&spki).ok().map(|k| {
        use rsa::traits::PublicKeyParts;
        k.n().bits()
    });
    let is_ec = p256::PublicKey::from_public_key_der(&spki).is_ok()
        || p384::PublicKey::from_public_key_der(&spki).is_ok();
    match rsa_bits {
        Some(bits) if bits < usize::from(min_rsa_bits.max(2048)) => {
            return Err(VerifyError::EkKeyTooWeak {
                subject: subject(c),
                key: format!("RSA-{bits}"),
                min_rsa_bits: min_rsa_bits.max(2048),
            })
        }
        Some(_) => {}
        None if is_ec => {}
        None => {
            return Err(VerifyError::EkKeyTooWeak {
                subject: subject(c),
                key: format!(
                    "of another type ({})",
                    c.cert.tbs_certificate.subject_public_key_info.algorithm.oid
                ),
                min_rsa_bits: min_rsa_bits.max(2048),
            })
        }
    }
    if let Some(ku) = exts.iter().find(|e| e.extn_id == KEY_USAGE) {
        let ku = x509_cert::ext::pkix::KeyUsage::from_der(ku.extn_value.as_bytes())
            .map_err(|e| profile(format!("keyUsage unreadable: {e}")))?;
        let (ok, want) = if rsa_bits.is_some() {
            (
                ku.key_encipherment(),
                "keyEncipherment (an RSA EK decrypts)",
            )
        } else {
            (ku.key_agreement(), "keyAgreement (an ECC EK does ECDH)")
        };
        if !ok {
            return Err(profile(format!("its keyUsage lacks {want}")));
        }
    }
    if let Some(eku) = exts.iter().find(|e| e.extn_id == EXT_KEY_USAGE) {
        let eku = x509_cert::ext::pkix::ExtendedKeyUsage::from_der(eku.extn_value.as_bytes())
            .map_err(|e| profile(format!("extendedKeyUsage unreadable: {e}")))?;
        if !eku.0.contains(&TCG_EK_CERTIFICATE) {
            return Err(profile(
                "its extendedKeyUsage does not include the TCG EK certificate purpose 2.23.133.8.1"
                    .into(),
            ));
        }
    }
    Ok(())
}

/// What a TCG EK certificate says about its TPM (subjectAltName directoryName).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TpmIdentity {
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub version: Option<String>,
    /// The TCG EK certificate EKU (2.23.133.8.1) is present.
    pub ek_eku: bool,
}

/// Read the TPM identity from an EK certificate (informational; the TPM's own
/// manufacturer property is encoded differently, e.g. "id:00001014" vs "IBM").
pub fn tpm_identity(c: &Cert) -> TpmIdentity {
    let mut id = TpmIdentity::default();
    for ext in c.cert.tbs_certificate.extensions.as_deref().unwrap_or(&[]) {
        if ext.extn_id == SUBJECT_ALT_NAME {
            let Ok(san) = x509_cert::ext::pkix::SubjectAltName::from_der(ext.extn_value.as_bytes())
            else {
                continue;
            };
            for name in san.0 {
                let x509_cert::ext::pkix::name::GeneralName::DirectoryName(dn) = name else {
                    continue;
                };
                for rdn in dn.0.iter() {
                    for atv in rdn.0.iter() {
                        let text = String::from_utf8_lossy(atv.value.value()).to_string();
                        if atv.oid == TPM_MANUFACTURER {
                            id.manufacturer = Some(text);
                        } else if atv.oid == TPM_MODEL {
                            id.model = Some(text);
                        } else if atv.oid == TPM_VERSION {
                            id.version = Some(text);
                        }
                    }
                }
            }
        } else if ext.extn_id == EXT_KEY_USAGE {
            if let Ok(eku) =
                x509_cert::ext::pkix::ExtendedKeyUsage::from_der(ext.extn_value.as_bytes())
            {
                id.ek_eku = eku.0.contains(&TCG_EK_CERTIFICATE);
            }
        }
    }
    id
}

/// "RSA-2048", "EC P-256" … of a certificate's subject key.
pub fn key_description(c: &Cert) -> String {
    use spki::DecodePublicKey;
    let Ok(spki) = c.cert.tbs_certificate.subject_public_key_info.to_der() else {
        return "unknown key".into();
    };
    if let Ok(k) = rsa::RsaPublicKey::from_public_key_der(&spki) {
        use rsa::traits::PublicKeyParts;
        return format!("RSA-{}", k.n().bits());
    }
    if p256::PublicKey::from_public_key_der(&spki).is_ok() {
        return "EC P-256".into();
    }
    if p384::PublicKey::from_public_key_der(&spki).is_ok() {
        return "EC P-384".into();
    }
    "unsupported key".into()
}
