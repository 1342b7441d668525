//! What the operator trusts: the trust anchors and intermediates, and the
//! policy, from the command line's flags over the policy file (`--roots`,
//! `--intermediates`, `--allow-sha1`, `--policy`). Every command that checks
//! a certificate gets its trust here, `ek-cert` included.

use crate::certs::{load_certificates, CertSource, TrustStore};
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
    for (paths, source) in [
        (&roots, CertSource::Roots),
        (&intermediates, CertSource::Intermediates),
    ] {
        for path in paths {
            let loaded = load_certificates(path, source)?;
            warn_skipped(source, path, &loaded.skipped);
            match source {
                CertSource::Roots => store.anchors.extend(loaded.certs),
                CertSource::Intermediates => store.intermediates.extend(loaded.certs),
            }
        }
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

/// One warning line for the files of a CA directory that hold no
/// certificate (a README, a key beside its certificate): skipped, not fatal.
fn warn_skipped(source: CertSource, dir: &std::path::Path, skipped: &[(PathBuf, String)]) {
    if skipped.is_empty() || byok_protocol::output::quiet() {
        return;
    }
    let name = |f: &PathBuf| {
        f.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let what = match skipped {
        [(f, why)] => format!("{} ({why})", name(f)),
        _ => skipped
            .iter()
            .map(|(f, _)| name(f))
            .collect::<Vec<_>>()
            .join(", "),
    };
    eprintln!(
        "byok-verifier: warning: {} {}: skipped {} file(s) that hold no certificate: {}",
        source.flag(),
        dir.display(),
        skipped.len(),
        byok_protocol::text::inert(&what)
    );
}
