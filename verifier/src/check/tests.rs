//! Attribute checks on public areas built in software. A TPM refuses to
//! create fixedTPM keys without fixedParent or sensitiveDataOrigin, so those
//! checks cannot be reached with TPM-made keys (tests/tests/verifier_forged_keks.rs
//! covers the reachable ones); they are defence in depth, defended here.
use super::ak::check_ak;
use super::ek::check_ek;
use super::kek::{check_compat_kek, check_kek};
use crate::error::VerifyError;
use crate::policy::Policy;
use byok_protocol::public::{PublicId, PublicParams, Scheme, SymDef, TpmtPublic};
use byok_protocol::tpm::{alg, attr};

fn rsa(attributes: u32, symmetric: SymDef, key_bits: u16) -> TpmtPublic {
    TpmtPublic::build(
        alg::RSA,
        alg::SHA256,
        attributes,
        vec![],
        PublicParams::Rsa {
            symmetric,
            scheme: Scheme::NULL,
            key_bits,
            exponent: 0,
        },
        PublicId::Rsa(vec![0xc5; key_bits as usize / 8]),
    )
}

fn ecc(curve: u16, symmetric: SymDef, name_alg: u16) -> TpmtPublic {
    ecc_point(curve, symmetric, name_alg, &[0xc5; 32], &[0x5c; 32])
}

/// A storage-key-like ECC public area with the point (x, y).
fn ecc_point(curve: u16, symmetric: SymDef, name_alg: u16, x: &[u8], y: &[u8]) -> TpmtPublic {
    TpmtPublic::build(
        alg::ECC,
        name_alg,
        KEK,
        vec![],
        PublicParams::Ecc {
            symmetric,
            scheme: Scheme::NULL,
            curve,
            kdf: Scheme::NULL,
        },
        PublicId::Ecc {
            x: x.to_vec(),
            y: y.to_vec(),
        },
    )
}

const KEK: u32 = byok_protocol::templates::KEK_ATTRIBUTES;
const AK: u32 = attr::FIXED_TPM
    | attr::FIXED_PARENT
    | attr::SENSITIVE_DATA_ORIGIN
    | attr::USER_WITH_AUTH
    | attr::RESTRICTED
    | attr::SIGN;

#[test]
fn kek_attribute_checks() {
    assert!(check_kek(&rsa(KEK, SymDef::AES_128_CFB, 2048), &Policy::default()).is_ok());
    assert!(matches!(
        check_kek(
            &rsa(KEK & !attr::FIXED_TPM, SymDef::AES_128_CFB, 2048),
            &Policy::default()
        ),
        Err(VerifyError::KekNotFixedTpm)
    ));
    assert!(matches!(
        check_kek(
            &rsa(KEK & !attr::FIXED_PARENT, SymDef::AES_128_CFB, 2048),
            &Policy::default()
        ),
        Err(VerifyError::KekNotFixedParent)
    ));
    assert!(matches!(
        check_kek(
            &rsa(
                KEK & !attr::SENSITIVE_DATA_ORIGIN,
                SymDef::AES_128_CFB,
                2048
            ),
            &Policy::default()
        ),
        Err(VerifyError::KekNotSensitiveDataOrigin)
    ));
    assert!(
        matches!(check_kek(&rsa(KEK & !attr::RESTRICTED, SymDef::AES_128_CFB, 2048), &Policy::default()), Err(VerifyError::KekNotStorageKey(d)) if d == "lacks restricted")
    );
    assert!(
        matches!(check_kek(&rsa(KEK & !attr::DECRYPT, SymDef::AES_128_CFB, 2048), &Policy::default()), Err(VerifyError::KekNotStorageKey(d)) if d == "lacks decrypt")
    );
    assert!(
        matches!(check_kek(&rsa(KEK | attr::SIGN, SymDef::AES_128_CFB, 2048), &Policy::default()), Err(VerifyError::KekNotStorageKey(d)) if d == "has sign")
    );
    assert!(matches!(
        check_kek(&rsa(KEK, SymDef::NULL, 2048), &Policy::default()),
        Err(VerifyError::KekKeyUnsupported(_))
    ));
    assert!(matches!(
        check_kek(&rsa(KEK, SymDef::AES_128_CFB, 1024), &Policy::default()),
        Err(VerifyError::KekKeyUnsupported(_))
    ));
}

#[test]
fn ecc_kek_checks() {
    use byok_protocol::tpm::curve;
    let p = Policy::default();
    check_kek(&ecc(curve::NIST_P256, SymDef::AES_128_CFB, alg::SHA256), &p).unwrap();
    check_kek(&ecc(curve::NIST_P384, SymDef::AES_128_CFB, alg::SHA256), &p).unwrap();
    // Another curve, no symmetric scheme, or a SHA-1 name: not a KEK we wrap for.
    for k in [
        ecc(curve::NIST_P521, SymDef::AES_128_CFB, alg::SHA256),
        ecc(curve::NIST_P256, SymDef::NULL, alg::SHA256),
        ecc(curve::NIST_P256, SymDef::AES_128_CFB, alg::SHA1),
    ] {
        assert!(
            matches!(check_kek(&k, &p), Err(VerifyError::KekKeyUnsupported(_))),
            "{}",
            k.describe_key()
        );
    }
}

#[test]
fn ak_attribute_checks() {
    assert!(check_ak(&rsa(AK, SymDef::NULL, 2048), &Policy::default()).is_ok());
    for (a, what) in [
        (attr::FIXED_TPM, "lacks fixedTPM"),
        (attr::FIXED_PARENT, "lacks fixedParent"),
        (attr::SENSITIVE_DATA_ORIGIN, "lacks sensitiveDataOrigin"),
        (attr::RESTRICTED, "lacks restricted"),
        (attr::SIGN, "lacks sign"),
    ] {
        assert!(
            matches!(check_ak(&rsa(AK & !a, SymDef::NULL, 2048), &Policy::default()), Err(VerifyError::AkAttributes(d)) if d == what),
            "{what}"
        );
    }
    assert!(
        matches!(check_ak(&rsa(AK | attr::DECRYPT, SymDef::NULL, 2048), &Policy::default()), Err(VerifyError::AkAttributes(d)) if d == "has decrypt")
    );
    assert!(matches!(
        check_ak(&rsa(AK, SymDef::NULL, 1024), &Policy::default()),
        Err(VerifyError::AkKeyUnsupported(_))
    ));
}

#[test]
fn ek_attribute_checks() {
    let ek = KEK | attr::ADMIN_WITH_POLICY;
    assert!(check_ek(&rsa(ek, SymDef::AES_128_CFB, 2048)).is_ok());
    assert!(
        matches!(check_ek(&rsa(ek & !attr::FIXED_TPM, SymDef::AES_128_CFB, 2048)), Err(VerifyError::EkAttributes(d)) if d == "lacks fixedTPM")
    );
    assert!(
        matches!(check_ek(&rsa(ek | attr::SIGN, SymDef::AES_128_CFB, 2048)), Err(VerifyError::EkAttributes(d)) if d == "has sign")
    );
}

#[test]
fn compat_kek_attribute_checks() {
    let compat = byok_protocol::templates::COMPAT_KEK_ATTRIBUTES;
    assert!(check_compat_kek(&rsa(compat, SymDef::NULL, 3072)).is_ok());
    for (a, what) in [
        (attr::FIXED_TPM, "lacks fixedTPM"),
        (attr::FIXED_PARENT, "lacks fixedParent"),
        (attr::SENSITIVE_DATA_ORIGIN, "lacks sensitiveDataOrigin"),
        (attr::DECRYPT, "lacks decrypt"),
    ] {
        assert!(
            matches!(check_compat_kek(&rsa(compat & !a, SymDef::NULL, 3072)), Err(VerifyError::CompatKekAttributes(d)) if d == what),
            "{what}"
        );
    }
    assert!(
        matches!(check_compat_kek(&rsa(compat | attr::SIGN, SymDef::NULL, 3072)), Err(VerifyError::CompatKekAttributes(d)) if d == "has sign")
    );
    assert!(
        matches!(check_compat_kek(&rsa(compat | attr::RESTRICTED, SymDef::NULL, 3072)), Err(VerifyError::CompatKekAttributes(d)) if d == "has restricted")
    );
    assert!(matches!(
        check_compat_kek(&rsa(compat, SymDef::NULL, 1024)),
        Err(VerifyError::CompatKekAttributes(_))
    ));
}

#[test]
fn an_ecc_ek_public_area_is_compared_with_its_certified_key_on_its_curve() {
    use super::ek::{check_ek_matches_certificate, CertifiedKey};
    use byok_protocol::tpm::curve;
    use p384::elliptic_curve::sec1::ToEncodedPoint;
    use spki::EncodePublicKey;
    // A P-384 key as an EK certificate carries it (no real P-384 EK
    // certificate is at hand), and a public area with its point.
    let secret = p384::SecretKey::random(&mut rand::thread_rng());
    let point = secret.public_key().to_encoded_point(false);
    let spki = secret.public_key().to_public_key_der().unwrap();
    let certified = CertifiedKey::from_spki(spki.as_bytes());
    let public = |x: &[u8], y: &[u8], c: u16| ecc_point(c, SymDef::AES_128_CFB, alg::SHA384, x, y);
    let (x, y) = (point.x().unwrap().to_vec(), point.y().unwrap().to_vec());
    check_ek_matches_certificate(&public(&x, &y, curve::NIST_P384), &certified).unwrap();
    let mut other = y.clone();
    other[47] ^= 1;
    assert!(matches!(
        check_ek_matches_certificate(&public(&x, &other, curve::NIST_P384), &certified),
        Err(VerifyError::EkPublicMismatch)
    ));
    // An RSA public area against it.
    assert!(matches!(
        check_ek_matches_certificate(&rsa(attr::DECRYPT, SymDef::AES_128_CFB, 2048), &certified),
        Err(VerifyError::EkPublicMismatch)
    ));
}
