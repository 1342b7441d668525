//! What a transfer package may carry: exactly the objects `wrap` writes. The
//! attributes live here once; `keys.rs` builds public areas with them, the
//! agent refuses any other object before TPM2_Import, and `check-receipt`
//! proves with the same rule that an imported key can never be duplicated.
//!
//! Why it matters: TPM2_Import takes any public area whose attributes allow
//! import (fixedTPM and fixedParent clear). Whoever builds a package chooses
//! that area, and an authPolicy such as PolicyCommandCode(TPM2_Duplicate)
//! would let `tpm2_duplicate` take the "imported" key out again. The keys
//! `wrap` writes have an empty authPolicy (no policy session, which the DUP
//! role always needs, can match it), or a PolicyPCR-only one (a DUP-role
//! session must also carry TPM_CC_Duplicate, which PolicyPCR never sets),
//! and adminWithPolicy clear.

use crate::formats::KeyInfo;
use crate::policy::{PcrSpec, PolicyDigest};
use crate::public::TpmtPublic;
use crate::tpm::{alg, attr};
use thiserror::Error;

/// The kinds of object a package carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferKind {
    /// RSA or ECC: signing and decryption.
    Asymmetric,
    /// AES (TPM2_EncryptDecrypt2: `sign` allows encryption, `decrypt` decryption).
    Aes,
    /// HMAC (TPM2_HMAC: `sign`).
    Hmac,
}

impl TransferKind {
    pub fn of(object_type: u16) -> Option<TransferKind> {
        match object_type {
            alg::RSA | alg::ECC => Some(TransferKind::Asymmetric),
            alg::SYMCIPHER => Some(TransferKind::Aes),
            alg::KEYEDHASH => Some(TransferKind::Hmac),
            _ => None,
        }
    }
}

/// The attributes of an object `wrap` writes: its uses, noDA for the empty
/// auth value, userWithAuth only without a PCR policy; never fixedTPM or
/// fixedParent (TPM2_Import requires them clear), sensitiveDataOrigin,
/// adminWithPolicy, restricted or encryptedDuplication.
pub fn transfer_attributes(kind: TransferKind, pcr_bound: bool) -> u32 {
    let usage = match kind {
        TransferKind::Asymmetric | TransferKind::Aes => attr::SIGN | attr::DECRYPT,
        TransferKind::Hmac => attr::SIGN,
    };
    let user = if pcr_bound { 0 } else { attr::USER_WITH_AUTH };
    usage | attr::NO_DA | user
}

/// How an object that passed [`check_transfer_object`] is authorised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferAuth {
    /// Empty authPolicy, used with its empty auth value.
    AuthValue,
    /// A PolicyPCR-only authPolicy over these PCRs.
    Pcrs(PcrSpec),
}

/// Why a package's object is not one `wrap` writes.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TransferObjectError {
    #[error("object type {0:#06x} is not an RSA, ECC, AES or HMAC key")]
    ObjectType(u16),
    #[error("object nameAlg {0:#06x} is not SHA-256")]
    NameAlg(u16),
    #[error("object attributes are {found} instead of {expected}")]
    Attributes { found: String, expected: String },
    #[error("object has an authPolicy ({0}) but the package names no PCRs: a policy other than PolicyPCR could authorise TPM2_Duplicate")]
    UnexplainedPolicy(String),
    #[error("the package names PCRs {0} but the object has no authPolicy")]
    MissingPolicy(String),
    #[error("object authPolicy is not PolicyPCR over the package's PCRs and values: a policy other than PolicyPCR could authorise TPM2_Duplicate")]
    PolicyMismatch,
    #[error("the package's PCR binding is malformed: {0}")]
    PcrBinding(String),
}

/// Check that `public` (with the package's `key` info) is an object `wrap`
/// writes: a supported type, SHA-256 names, exactly the transfer attributes,
/// and an empty authPolicy or exactly PolicyPCR over `key.pcrs` with
/// `key.pcr_values`.
pub fn check_transfer_object(
    public: &TpmtPublic,
    key: &KeyInfo,
) -> Result<TransferAuth, TransferObjectError> {
    if public.name_alg != alg::SHA256 {
        return Err(TransferObjectError::NameAlg(public.name_alg));
    }
    let auth = match (&key.pcrs, &key.pcr_values) {
        (None, None) => {
            if !public.auth_policy.is_empty() {
                return Err(TransferObjectError::UnexplainedPolicy(hex::encode(
                    &public.auth_policy,
                )));
            }
            TransferAuth::AuthValue
        }
        (Some(spec), Some(values)) => {
            let spec = spec.clone();
            if public.auth_policy.is_empty() {
                return Err(TransferObjectError::MissingPolicy(spec.describe()));
            }
            let listed: Vec<u32> = values.keys().copied().collect();
            if listed != spec.pcrs {
                return Err(TransferObjectError::PcrBinding(format!(
                    "values are given for PCRs {listed:?}, the binding names {}",
                    spec.describe()
                )));
            }
            if values.values().any(|v| v.len() != spec.bank.size()) {
                return Err(TransferObjectError::PcrBinding(format!(
                    "a {} PCR value has {} bytes",
                    spec.bank.name(),
                    spec.bank.size()
                )));
            }
            let values: Vec<Vec<u8>> = values.values().map(|v| v.to_vec()).collect();
            if PolicyDigest::new().pcr(&spec, &values).into_vec() != public.auth_policy {
                return Err(TransferObjectError::PolicyMismatch);
            }
            TransferAuth::Pcrs(spec)
        }
        (Some(spec), None) => {
            return Err(TransferObjectError::PcrBinding(format!(
            "PCRs {} without their values (wrapped by an older byok-verifier: wrap the key again)",
            spec.describe()
        )))
        }
        (None, Some(_)) => {
            return Err(TransferObjectError::PcrBinding(
                "PCR values without the PCRs they belong to".into(),
            ))
        }
    };
    let pcr_bound = matches!(auth, TransferAuth::Pcrs(_));
    let kind = TransferKind::of(public.object_type)
        .ok_or(TransferObjectError::ObjectType(public.object_type))?;
    let expected = transfer_attributes(kind, pcr_bound);
    if public.attributes != expected {
        return Err(TransferObjectError::Attributes {
            found: attr::names(public.attributes).join("|"),
            expected: attr::names(expected).join("|"),
        });
    }
    Ok(auth)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{KeyAlg, SymmetricKey, SymmetricKind, TargetKey, TpmObjectKey};

    fn info(pcrs: Option<(&str, Vec<Vec<u8>>)>) -> KeyInfo {
        let spec = pcrs.as_ref().map(|(s, _)| PcrSpec::parse(s).unwrap());
        KeyInfo::new(
            "x".into(),
            None,
            spec.as_ref().zip(pcrs.as_ref().map(|(_, v)| v.as_slice())),
        )
    }

    fn objects() -> Vec<Box<dyn TpmObjectKey>> {
        vec![
            Box::new(TargetKey::generate(KeyAlg::P256).unwrap()),
            Box::new(TargetKey::generate(KeyAlg::P384).unwrap()),
            Box::new(SymmetricKey::new(SymmetricKind::Aes, &[1; 32]).unwrap()),
            Box::new(SymmetricKey::new(SymmetricKind::HmacSha256, &[2; 32]).unwrap()),
        ]
    }

    #[test]
    fn the_transfer_attributes_are_the_documented_ones() {
        // docs/formats.md: userWithAuth|noDA|sign|decrypt (HMAC: no decrypt),
        // userWithAuth clear when PCR-bound; nothing else.
        use TransferKind::*;
        let (u, n, s, d) = (attr::USER_WITH_AUTH, attr::NO_DA, attr::SIGN, attr::DECRYPT);
        assert_eq!(transfer_attributes(Asymmetric, false), u | n | s | d);
        assert_eq!(transfer_attributes(Asymmetric, true), n | s | d);
        assert_eq!(transfer_attributes(Aes, false), u | n | s | d);
        assert_eq!(transfer_attributes(Aes, true), n | s | d);
        assert_eq!(transfer_attributes(Hmac, false), u | n | s);
        assert_eq!(transfer_attributes(Hmac, true), n | s);
        assert_eq!(transfer_attributes(Asymmetric, false), 0x0006_0440);
        assert_eq!(TransferKind::of(alg::RSA), Some(Asymmetric));
        assert_eq!(TransferKind::of(alg::ECC), Some(Asymmetric));
        assert_eq!(TransferKind::of(alg::SYMCIPHER), Some(Aes));
        assert_eq!(TransferKind::of(alg::KEYEDHASH), Some(Hmac));
        assert_eq!(TransferKind::of(alg::NULL), None);
    }

    #[test]
    fn every_object_wrap_writes_passes() {
        let spec = PcrSpec::parse("sha256:0,7").unwrap();
        let values = vec![vec![0u8; 32], vec![7u8; 32]];
        let policy = PolicyDigest::new().pcr(&spec, &values).into_vec();
        for k in objects() {
            let plain = k.tpm_public_with_policy(Vec::new());
            assert_eq!(
                check_transfer_object(&plain, &info(None)),
                Ok(TransferAuth::AuthValue)
            );
            let bound = k.tpm_public_with_policy(policy.clone());
            assert_eq!(
                check_transfer_object(&bound, &info(Some(("sha256:0,7", values.clone())))),
                Ok(TransferAuth::Pcrs(spec.clone()))
            );
        }
    }

    #[test]
    fn other_objects_are_refused() {
        let k = TargetKey::generate(KeyAlg::P256).unwrap();
        let dup = PolicyDigest::new().command_code(0x14b).into_vec();
        // A duplication policy, with and without a claimed PCR binding.
        let p = k.tpm_public_with_policy(dup.clone());
        assert!(matches!(
            check_transfer_object(&p, &info(None)),
            Err(TransferObjectError::UnexplainedPolicy(_))
        ));
        assert_eq!(
            check_transfer_object(&p, &info(Some(("sha256:0", vec![vec![0; 32]])))),
            Err(TransferObjectError::PolicyMismatch)
        );
        // Attributes: each bit flipped is refused.
        let plain = k.tpm_public();
        for bit in 0..32 {
            let a = plain.attributes ^ (1 << bit);
            let q = TpmtPublic::build(
                plain.object_type,
                plain.name_alg,
                a,
                vec![],
                plain.params.clone(),
                plain.unique.clone(),
            );
            assert!(
                matches!(
                    check_transfer_object(&q, &info(None)),
                    Err(TransferObjectError::Attributes { .. })
                ),
                "bit {bit}"
            );
        }
        // A PCR binding without values, values without PCRs, wrong lengths.
        let mut i = info(Some(("sha256:0", vec![vec![0; 32]])));
        i.pcr_values = None;
        assert!(matches!(
            check_transfer_object(&plain, &i),
            Err(TransferObjectError::PcrBinding(_))
        ));
        let mut i = info(Some(("sha256:0", vec![vec![0; 20]])));
        let pol = PolicyDigest::new()
            .pcr(&PcrSpec::parse("0").unwrap(), &[vec![0; 20]])
            .into_vec();
        assert!(matches!(
            check_transfer_object(&k.tpm_public_with_policy(pol.clone()), &i),
            Err(TransferObjectError::PcrBinding(_))
        ));
        i.pcrs = None;
        assert!(matches!(
            check_transfer_object(&k.tpm_public_with_policy(pol), &i),
            Err(TransferObjectError::PcrBinding(_))
        ));
        assert!(matches!(
            check_transfer_object(&plain, &info(Some(("sha256:0", vec![vec![0; 32]])))),
            Err(TransferObjectError::MissingPolicy(_))
        ));
    }
}
