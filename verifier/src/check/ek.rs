//! The EK: the public area in the evidence is the key the (verified) EK
//! certificate certifies, and a restricted decryption key bound to its TPM
//! (the credential of a package is encrypted to it).

use super::missing;
use crate::error::VerifyError;
use byok_protocol::public::{PublicId, PublicParams, TpmtPublic};
use byok_protocol::tpm::{attr, curve};

/// The key an EK certificate certifies, decoded once per certificate (a
/// batch's certificate checks are cached, and this with them): an RSA key as
/// its integers, any other as its SubjectPublicKeyInfo DER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertifiedKey {
    /// Modulus and exponent, big-endian, without leading zeros.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    Spki(Vec<u8>),
}

impl CertifiedKey {
    pub fn from_spki(spki: &[u8]) -> CertifiedKey {
        match rsa_public_key_parts(spki) {
            Some((n, e)) => CertifiedKey::Rsa {
                n: strip(n).to_vec(),
                e: strip(e).to_vec(),
            },
            None => CertifiedKey::Spki(spki.to_vec()),
        }
    }
}

/// `b` without its leading zero bytes.
fn strip(b: &[u8]) -> &[u8] {
    &b[b.iter().take_while(|x| **x == 0).count()..]
}

/// The EK public area must be the key the EK certificate certifies.
pub fn check_ek_matches_certificate(
    ek: &TpmtPublic,
    certified: &CertifiedKey,
) -> Result<(), VerifyError> {
    // Compare keys, not encodings: key values on both sides.
    let same = match (&ek.params, &ek.unique, certified) {
        (
            PublicParams::Rsa { exponent, .. },
            PublicId::Rsa(n),
            CertifiedKey::Rsa { n: cn, e: ce },
        ) => {
            // Integer values from the certificate's RSAPublicKey (DER INTEGERs,
            // minimal) against the TPM's modulus and exponent bytes, without
            // building big integers (this runs once per evidence file).
            let e = if *exponent == 0 { 65537 } else { *exponent };
            cn.as_slice() == strip(n) && ce.as_slice() == strip(&e.to_be_bytes())
        }
        (PublicParams::Ecc { curve: c, .. }, PublicId::Ecc { .. }, CertifiedKey::Spki(spki)) => {
            use spki::DecodePublicKey;
            let Ok(ours) = byok_protocol::keys::public_key_der(ek) else {
                return Err(VerifyError::EkPublicMismatch);
            };
            match *c {
                curve::NIST_P256 => matches!(
                    (p256::PublicKey::from_public_key_der(spki), p256::PublicKey::from_public_key_der(&ours)),
                    (Ok(a), Ok(b)) if a == b
                ),
                curve::NIST_P384 => matches!(
                    (p384::PublicKey::from_public_key_der(spki), p384::PublicKey::from_public_key_der(&ours)),
                    (Ok(a), Ok(b)) if a == b
                ),
                _ => false,
            }
        }
        _ => false,
    };
    if same {
        Ok(())
    } else {
        Err(VerifyError::EkPublicMismatch)
    }
}

/// (modulus, exponent) of an rsaEncryption SubjectPublicKeyInfo.
fn rsa_public_key_parts(spki_der: &[u8]) -> Option<(&[u8], &[u8])> {
    use der::Decode;
    let info = spki::SubjectPublicKeyInfoRef::from_der(spki_der).ok()?;
    if info.algorithm.oid != const_oid::db::rfc5912::RSA_ENCRYPTION {
        return None;
    }
    let key = pkcs1::RsaPublicKey::from_der(info.subject_public_key.as_bytes()?).ok()?;
    Some((key.modulus.as_bytes(), key.public_exponent.as_bytes()))
}

pub fn check_ek(ek: &TpmtPublic) -> Result<(), VerifyError> {
    let problems = missing(
        ek,
        &[
            (attr::FIXED_TPM, "fixedTPM"),
            (attr::FIXED_PARENT, "fixedParent"),
            (attr::SENSITIVE_DATA_ORIGIN, "sensitiveDataOrigin"),
            (attr::RESTRICTED, "restricted"),
            (attr::DECRYPT, "decrypt"),
        ],
        &[(attr::SIGN, "sign")],
    );
    if !problems.is_empty() {
        return Err(VerifyError::EkAttributes(problems.join(", ")));
    }
    Ok(())
}
