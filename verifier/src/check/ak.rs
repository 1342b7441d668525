//! The AK: a restricted signing key generated in and bound to its TPM (a
//! restricted key signs only TPM-made structures), of an allowed strength.

use super::missing;
use crate::error::VerifyError;
use crate::policy::Policy;
use byok_protocol::hash::HashAlg;
use byok_protocol::public::{PublicParams, TpmtPublic};
use byok_protocol::tpm::attr;

pub fn check_ak(ak: &TpmtPublic, policy: &Policy) -> Result<(), VerifyError> {
    let problems = missing(
        ak,
        &[
            (attr::FIXED_TPM, "fixedTPM"),
            (attr::FIXED_PARENT, "fixedParent"),
            (attr::SENSITIVE_DATA_ORIGIN, "sensitiveDataOrigin"),
            (attr::RESTRICTED, "restricted"),
            (attr::SIGN, "sign"),
        ],
        &[(attr::DECRYPT, "decrypt")],
    );
    if !problems.is_empty() {
        return Err(VerifyError::AkAttributes(problems.join(", ")));
    }
    let ok = match &ak.params {
        PublicParams::Rsa { key_bits, .. } => *key_bits >= policy.min_rsa_bits.max(2048),
        PublicParams::Ecc { curve: c, .. } => policy.allowed_curves.contains(c),
        _ => false,
    };
    if !ok || ak.name_hash() == HashAlg::Sha1 {
        return Err(VerifyError::AkKeyUnsupported(ak.describe_key()));
    }
    Ok(())
}
