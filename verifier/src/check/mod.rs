//! The checks of `verify`, one module per claim. `verify::verify_evidence`
//! runs them in order; each names its failure (`error.rs`).
//!
//! - [`ek`]: the EK public area is the certified key, a restricted
//!   decryption key bound to its TPM;
//! - [`ak`]: the AK is a restricted signing key bound to its TPM, a child of
//!   the EK;
//! - [`attest`]: a TPM2_Certify or TPM2_Quote is TPM-made, signed by the AK
//!   with an allowed hash, for the operator's nonce;
//! - [`certified`]: the object a TPM2_Certify names is the one in the file,
//!   with the qualified name the TPM signed (KEK, compat KEK, receipt keys);
//! - [`kek`]: the KEK is a storage key generated in this TPM, bound to the
//!   world, with the policy's PCR rules;
//! - [`pcrs`]: the quoted PCRs are the listed ones, with these values;
//! - [`activation`]: the AK proven to live in the EK's TPM;
//! - [`enrolment`]: the AK proven by a registry record (an activation kept).

pub mod activation;
pub mod ak;
pub mod attest;
pub mod certified;
pub mod ek;
pub mod enrolment;
pub mod kek;
pub mod pcrs;

#[cfg(test)]
mod tests;

use crate::error::VerifyError;
use byok_protocol::error::WireError;
use byok_protocol::public::TpmtPublic;

/// A TPM structure in the file that does not parse, named.
pub(crate) fn malformed(field: &'static str) -> impl FnOnce(WireError) -> VerifyError {
    move |source| VerifyError::Malformed { field, source }
}

/// The attributes `p` lacks of `required` and has of `forbidden`, named.
pub(crate) fn missing(
    p: &TpmtPublic,
    required: &[(u32, &'static str)],
    forbidden: &[(u32, &'static str)],
) -> Vec<String> {
    let mut out: Vec<String> = required
        .iter()
        .filter(|(a, _)| !p.has(*a))
        .map(|(_, n)| format!("lacks {n}"))
        .collect();
    out.extend(
        forbidden
            .iter()
            .filter(|(a, _)| p.has(*a))
            .map(|(_, n)| format!("has {n}")),
    );
    out
}
