//! The AK proven to live in the EK's TPM: a credential for the EK bound to
//! the AK's Name, released by the TPM (a challenge and its activation), or
//! an enrolment that did so once (the registry). What may rest on it.

use crate::error::VerifyError;
use crate::verified::{AkBinding, Verified};
use subtle::ConstantTimeEq;

/// Refuse what would rest on evidence claims alone: `what` needs an AK
/// proven to live in the EK's TPM (enrolment, or challenge and activation).
pub fn require_proven_ak(verified: &Verified, what: &'static str) -> Result<(), VerifyError> {
    if verified.ak_binding.proven() {
        Ok(())
    } else {
        Err(VerifyError::AkNotProven { what })
    }
}

/// A credential challenge for the AK and EK of verified evidence:
/// MakeCredential(EK, Name(AK), S) for a fresh 32-byte secret S, and the
/// commitment to S. Only a TPM holding that EK and an object with that exact
/// AK name can recover S (`byok-agent activate`); [`check_activation`] checks
/// the answer against the commitment.
pub fn make_challenge(
    verified: &Verified,
) -> Result<byok_protocol::formats::Challenge, VerifyError> {
    use byok_protocol::formats::{
        activation_commitment, Challenge, CredentialBlob, CHALLENGE_TYPE, VERSION,
    };
    use serde_bytes::ByteBuf;
    let mut secret = zeroize::Zeroizing::new([0u8; 32]);
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret[..]);
    let cred = byok_protocol::credential::make_credential(
        &verified.ek_public,
        &verified.ak_name,
        &secret[..],
    )?;
    Ok(Challenge {
        kind: CHALLENGE_TYPE.into(),
        version: VERSION,
        world: verified.world.clone(),
        ek_name: ByteBuf::from(verified.ek_name.clone()),
        ak_name: ByteBuf::from(verified.ak_name.clone()),
        credential: CredentialBlob {
            id_object: ByteBuf::from(cred.id_object),
            encrypted_secret: ByteBuf::from(cred.encrypted_secret),
        },
        commitment: ByteBuf::from(activation_commitment(&secret[..])),
    })
}

/// Check an answered challenge against verified evidence: the challenge was
/// made for this evidence's EK and AK, and the host returned the secret whose
/// commitment the operator's copy of the challenge holds.
pub fn check_activation(
    verified: &mut Verified,
    challenge: &byok_protocol::formats::Challenge,
    activation: &byok_protocol::formats::Activation,
) -> Result<(), VerifyError> {
    if challenge.ak_name.as_slice() != verified.ak_name.as_slice()
        || challenge.ek_name.as_slice() != verified.ek_name.as_slice()
    {
        return Err(VerifyError::ActivationMismatch(
            "the challenge was made for another EK or AK than this evidence's",
        ));
    }
    if activation.ak_name.as_slice() != verified.ak_name.as_slice()
        || activation.world != verified.world
    {
        return Err(VerifyError::ActivationMismatch(
            "the activation answers for another AK or world",
        ));
    }
    let commitment = byok_protocol::formats::activation_commitment(&activation.secret);
    if !bool::from(commitment.as_slice().ct_eq(challenge.commitment.as_slice())) {
        return Err(VerifyError::ActivationMismatch(
            "the returned secret is not the challenge's: the AK and EK are not in one TPM",
        ));
    }
    if !verified.ak_binding.proven() {
        verified.ak_binding = AkBinding::Activated;
    }
    Ok(())
}
