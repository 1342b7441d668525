//! Binding a world to its KEK.
//!
//! The KEK's authPolicy holds `SHA-256("tpm-byok/world\0" || world)`. The
//! authPolicy is part of the public area, so the world id is covered by the
//! KEK's Name and therefore by the TPM-signed TPM2_Certify: the verifier can
//! check which world a KEK belongs to from signed bytes alone, and every world
//! gets a distinct primary key (the template differs). The digest is not the
//! result of any policy-command chain (reaching it would need a SHA-256
//! preimage), so no policy session can ever satisfy it; the KEK is used through
//! its (empty) auth value, with userWithAuth set and adminWithPolicy clear.

use crate::hash::sha256;

pub const WORLD_POLICY_LABEL: &[u8] = b"tpm-byok/world\0";

pub fn world_policy(world: &str) -> [u8; 32] {
    let mut data = WORLD_POLICY_LABEL.to_vec();
    data.extend_from_slice(world.as_bytes());
    sha256(&data)
}

/// World ids and key names: 1–64 of `[A-Za-z0-9._-]`, not starting with a dot,
/// so they are safe as file names on every platform.
pub fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// The key id a world's compat KEK goes by in JWKs and `.byok` headers.
pub fn compat_kid(world: &str, name: &[u8]) -> String {
    format!("tpm-byok:{world}:{}", hex::encode(name))
}

/// The authPolicy of a PCR-bound KEK (`byok-agent init --pcrs`):
/// TPM2_PolicyPCR over the bound PCRs' values, then TPM2_PolicySecret on the
/// owner hierarchy with the world binding as policyRef. The world stays
/// covered by the KEK's Name (the verifier recomputes this digest from the
/// world and the PCR values the evidence reports); unlike the plain binding
/// this policy is satisfiable, and userWithAuth is clear, so the TPM lets the
/// KEK import or load keys only while the PCRs hold those values.
pub fn pcr_bound_kek_policy(
    world: &str,
    pcrs: &crate::policy::PcrSpec,
    values: &[Vec<u8>],
) -> Vec<u8> {
    crate::policy::PolicyDigest::new()
        .pcr(pcrs, values)
        .secret(&crate::tpm::rh::OWNER.to_be_bytes(), &world_policy(world))
        .into_vec()
}
