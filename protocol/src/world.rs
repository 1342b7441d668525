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

/// A world id, checked once where it is read (command line, file): every
/// world in the program is a valid one, safe as a file name and as a JWK
/// `kid` part. On disk and in CBOR it is the plain string.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WorldId(String);

/// A world id that breaks the rule of [`valid_id`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid world {:?}: use 1-64 characters of A-Z a-z 0-9 . _ - (not starting with a dot)", crate::text::inert(.0))]
pub struct InvalidWorldId(pub String);

impl WorldId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for WorldId {
    type Error = InvalidWorldId;
    fn try_from(s: String) -> Result<WorldId, InvalidWorldId> {
        if valid_id(&s) {
            Ok(WorldId(s))
        } else {
            Err(InvalidWorldId(s))
        }
    }
}

impl std::str::FromStr for WorldId {
    type Err = InvalidWorldId;
    fn from_str(s: &str) -> Result<WorldId, InvalidWorldId> {
        WorldId::try_from(s.to_string())
    }
}

impl From<WorldId> for String {
    fn from(w: WorldId) -> String {
        w.0
    }
}

impl std::ops::Deref for WorldId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for WorldId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl AsRef<std::path::Path> for WorldId {
    fn as_ref(&self) -> &std::path::Path {
        self.0.as_ref()
    }
}

impl std::borrow::Borrow<str> for WorldId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// Like the string it is (`"eu"`), as error messages print it.
impl std::fmt::Debug for WorldId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.0, f)
    }
}

impl std::fmt::Display for WorldId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for WorldId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for WorldId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
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
