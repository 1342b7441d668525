//! The KEK (and the compat KEK): a storage key generated in this TPM and
//! bound to it, of a supported type, bound to the evidence's world by its
//! authPolicy, with the policy's rules for PCR-bound KEKs.

use super::missing;
use crate::error::VerifyError;
use crate::policy::Policy;
use crate::verified::KekPcrBinding;
use byok_protocol::formats::Evidence;
use byok_protocol::hash::HashAlg;
use byok_protocol::public::{PublicParams, TpmtPublic};
use byok_protocol::tpm::{alg, attr, curve};
use byok_protocol::world::world_policy;

/// The KEK's authPolicy binds it to the evidence's world: either the plain
/// binding (a digest no policy session reaches; the KEK is used with its auth
/// value), or a PCR binding (PolicyPCR over the values the evidence reports,
/// then PolicySecret(owner) with the world as policyRef; userWithAuth clear so
/// the TPM enforces it). The reported PCR values are trusted only because
/// they recompute the signed authPolicy. The policy's rules then apply
/// ([`check_kek_pcr_rules`]).
pub fn check_kek_binding(
    ev: &Evidence,
    kek: &TpmtPublic,
    policy: &Policy,
) -> Result<Option<KekPcrBinding>, VerifyError> {
    let plain = world_policy(&ev.world);
    let mismatch = || VerifyError::KekWorldMismatch {
        world: ev.world.clone(),
    };
    let binding = match &ev.kek.pcr_binding {
        None => {
            if kek.auth_policy != plain {
                return Err(mismatch());
            }
            check_kek_pcr_rules(None, policy)?;
            return Ok(None);
        }
        Some(b) => b,
    };
    let (spec, values) = byok_protocol::formats::read_pcr_binding(binding)
        .map_err(VerifyError::KekPcrBindingMalformed)?;
    let expected = byok_protocol::world::pcr_bound_kek_policy(&ev.world, &spec, &values);
    if kek.auth_policy != expected {
        return Err(mismatch());
    }
    if kek.has(attr::USER_WITH_AUTH) {
        return Err(VerifyError::KekPcrBindingNotEnforced);
    }
    let binding = KekPcrBinding { pcrs: spec, values };
    check_kek_pcr_rules(Some(&binding), policy)?;
    Ok(Some(binding))
}

/// The policy's rules for a KEK's PCR binding:
/// - bound values equal the policy's reference values, where it has them;
/// - when the policy requires a binding (`require_kek_pcrs`): there is one,
///   it includes every PCR the policy names (or, for `true`, at least one),
///   a PCR software can reset (16, 23; 17-22 unless `allow_drtm_pcrs`)
///   never counts, and every bound PCR has a reference value, so the binding
///   pins a platform state the operator chose.
fn check_kek_pcr_rules(
    binding: Option<&KekPcrBinding>,
    policy: &Policy,
) -> Result<(), VerifyError> {
    use crate::policy::{resettable_pcr, KekPcrRequirement};
    let Some(b) = binding else {
        return if policy.require_kek_pcrs.is_required() {
            Err(VerifyError::KekNotPcrBound)
        } else {
            Ok(())
        };
    };
    let bank = b.pcrs.bank;
    let refs = policy.reference_pcrs.get(&bank);
    for (i, v) in b.pcrs.pcrs.iter().zip(&b.values) {
        match refs.and_then(|r| r.get(i)) {
            Some(want) if want != v => {
                return Err(VerifyError::KekPcrBindingMismatch {
                    bank,
                    index: *i,
                    expected: hex::encode(want),
                    found: hex::encode(v),
                })
            }
            Some(_) => {}
            None if policy.require_kek_pcrs.is_required() => {
                return Err(VerifyError::KekPcrUnreferenced { bank, index: *i })
            }
            None => {}
        }
    }
    let counted: Vec<u32> = b
        .pcrs
        .pcrs
        .iter()
        .copied()
        .filter(|i| !resettable_pcr(*i, policy.allow_drtm_pcrs))
        .collect();
    match &policy.require_kek_pcrs {
        KekPcrRequirement::None => Ok(()),
        KekPcrRequirement::Any if counted.is_empty() => Err(VerifyError::KekPcrResettable {
            bound: b.pcrs.describe(),
        }),
        KekPcrRequirement::Any => Ok(()),
        KekPcrRequirement::These(required) => {
            let missing: Vec<String> = required
                .iter()
                .filter(|i| !counted.contains(i))
                .map(|i| i.to_string())
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(VerifyError::KekPcrsMissing {
                    bound: b.pcrs.describe(),
                    missing: missing.join(","),
                })
            }
        }
    }
}

/// KEK: generated in this TPM (fixedTPM, sensitiveDataOrigin), bound to its
/// parent (fixedParent), a storage key (restricted|decrypt, not sign).
pub fn check_kek(kek: &TpmtPublic, policy: &Policy) -> Result<(), VerifyError> {
    if !kek.has(attr::FIXED_TPM) {
        return Err(VerifyError::KekNotFixedTpm);
    }
    if !kek.has(attr::FIXED_PARENT) {
        return Err(VerifyError::KekNotFixedParent);
    }
    if !kek.has(attr::SENSITIVE_DATA_ORIGIN) {
        return Err(VerifyError::KekNotSensitiveDataOrigin);
    }
    let problems = missing(
        kek,
        &[(attr::RESTRICTED, "restricted"), (attr::DECRYPT, "decrypt")],
        &[(attr::SIGN, "sign")],
    );
    if !problems.is_empty() {
        return Err(VerifyError::KekNotStorageKey(problems.join(", ")));
    }
    let ok = match &kek.params {
        PublicParams::Rsa {
            key_bits,
            symmetric,
            ..
        } => *key_bits >= policy.min_rsa_bits.max(2048) && symmetric.algorithm == alg::AES,
        // ECC storage keys: the seed is then derived by ECDH and KDFe.
        PublicParams::Ecc {
            curve: c,
            symmetric,
            ..
        } => matches!(*c, curve::NIST_P256 | curve::NIST_P384) && symmetric.algorithm == alg::AES,
        _ => false,
    };
    if !ok || kek.name_hash() == HashAlg::Sha1 {
        return Err(VerifyError::KekKeyUnsupported(kek.describe_key()));
    }
    Ok(())
}

/// The compat KEK: an RSA decryption key generated in this TPM, bound to it,
/// unrestricted (it decrypts OAEP blocks for `.byok` files), never signing.
pub fn check_compat_kek(p: &TpmtPublic) -> Result<(), VerifyError> {
    let mut problems = missing(
        p,
        &[
            (attr::FIXED_TPM, "fixedTPM"),
            (attr::FIXED_PARENT, "fixedParent"),
            (attr::SENSITIVE_DATA_ORIGIN, "sensitiveDataOrigin"),
            (attr::DECRYPT, "decrypt"),
        ],
        &[(attr::SIGN, "sign"), (attr::RESTRICTED, "restricted")],
    );
    match &p.params {
        PublicParams::Rsa { key_bits, .. } if *key_bits >= 2048 => {}
        _ => problems.push(format!("{} is not RSA >= 2048", p.describe_key())),
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(VerifyError::CompatKekAttributes(problems.join(", ")))
    }
}
