//! What the operator trusts: the trust anchors and intermediates, and the
//! policy, from the command line's flags over the policy file (`--roots`,
//! `--intermediates`, `--allow-sha1`, `--policy`). Every command that checks
//! a certificate gets its trust here, `ek-cert` included.

use crate::certs::{load_certificates, TrustStore};
use crate::error::VerifyError;
use crate::policy::{Policy, PolicyFile};
use std::path::PathBuf;

/// The trust inputs of a command line (each overrides the policy file).
#[derive(Debug, Clone, Default)]
pub struct TrustFlags {
    pub roots: Option<PathBuf>,
    pub intermediates: Option<PathBuf>,
    pub allow_sha1: bool,
    pub policy: Option<PathBuf>,
}

/// Build the trust store a policy (and the flags over it) names.
pub fn trust_store(flags: &TrustFlags, policy: &Policy) -> Result<TrustStore, VerifyError> {
    let roots = match &flags.roots {
        Some(r) => vec![r.clone()],
        None => policy.roots.clone(),
    };
    if roots.is_empty() {
        return Err(VerifyError::Usage(
            "give --roots, or a --policy whose world (or [defaults]) has roots".into(),
        ));
    }
    let intermediates = match &flags.intermediates {
        Some(i) => vec![i.clone()],
        None => policy.intermediates.clone(),
    };
    let mut store = TrustStore {
        allow_sha1: policy.allow_sha1,
        min_rsa_bits: policy.min_rsa_bits,
        ..Default::default()
    };
    for r in &roots {
        store.anchors.extend(load_certificates(r)?);
    }
    for i in &intermediates {
        store.intermediates.extend(load_certificates(i)?);
    }
    Ok(store)
}

/// The policy file (if any) resolved for `world`, with the flags applied.
pub fn resolve_policy(
    file: Option<&PolicyFile>,
    flags: &TrustFlags,
    world: Option<&str>,
) -> Result<Policy, VerifyError> {
    let mut policy = match file {
        Some(f) => f.resolve(world)?,
        None => Policy::default(),
    };
    if flags.allow_sha1 {
        policy.allow_sha1 = true;
    }
    Ok(policy)
}
