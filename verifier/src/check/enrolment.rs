//! Enrolment: the AK proven by a registry record. An activation once, kept as
//! the host's record (`byok-verifier enroll`), proves the AK of later
//! evidence without a new challenge when the EK and the world's AK are the
//! enrolled ones.

use crate::error::VerifyError;
use crate::verified::{AkBinding, Verified};
use byok_protocol::formats::HostRecord;

/// `record` is the registry's record of the evidence's EK, if any. An
/// enrolled EK with its enrolled AK for this world is proven
/// (`AkBinding::Enrolled`); an enrolled EK with another AK is refused; with
/// `require`, an EK that is not enrolled (or not for this world) is refused.
pub fn check_enrolment(
    record: Option<&HostRecord>,
    verified: &mut Verified,
    require: bool,
) -> Result<(), VerifyError> {
    let Some(rec) = record else {
        return if require {
            Err(VerifyError::EkNotEnrolled {
                ek_certificate_sha256: hex::encode(verified.ek_certificate_sha256),
            })
        } else {
            Ok(())
        };
    };
    verified.host = Some(rec.host.clone());
    match rec.worlds.get(&verified.world) {
        Some(w) if ak_name(&w.ak_public).as_deref() == Some(verified.ak_name.as_slice()) => {
            verified.ak_binding = AkBinding::Enrolled {
                host: rec.host.clone(),
                enrolled: w.enrolled,
            };
            Ok(())
        }
        Some(_) => Err(VerifyError::AkNotEnrolled {
            host: rec.host.clone(),
            world: verified.world.clone(),
        }),
        None if require => Err(VerifyError::WorldNotEnrolled {
            host: rec.host.clone(),
            world: verified.world.clone(),
        }),
        None => Ok(()),
    }
}

/// The Name of a recorded AK public area (None when it does not parse).
pub(crate) fn ak_name(public: &[u8]) -> Option<Vec<u8>> {
    byok_protocol::TpmtPublic::parse_tpm2b(public)
        .ok()
        .map(|p| p.name())
}
