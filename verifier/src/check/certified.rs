//! The object a TPM2_Certify names: the one check the KEK, the compat KEK
//! and receipt keys share. The certified Name must be the Name computed from
//! the public area in the file; the qualified name the TPM signed then says
//! where the object lives (a primary of a hierarchy, or a child of the KEK),
//! which each caller checks against what it expects.

use byok_protocol::attest::{Attested, TpmsAttest};
use byok_protocol::public::TpmtPublic;

/// The qualified name a TPM2_Certify gives `public`, when the Name it
/// certifies is `public`'s; `None` for another object or another attestation.
pub fn certified_qualified_name<'a>(
    attest: &'a TpmsAttest,
    public: &TpmtPublic,
) -> Option<&'a [u8]> {
    match &attest.attested {
        Attested::Certify {
            name,
            qualified_name,
        } if *name == public.name() => Some(qualified_name),
        _ => None,
    }
}
