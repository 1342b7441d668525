//! One run of checks over evidence files: every file is read with its size
//! cap, verified with the policy of the world it is for (the world the TPM
//! signed, through the KEK's world binding; `--world` only narrows it), then
//! the AK's link to the EK is proven where the operator gave the means (the
//! registry of enrolled hosts, or a challenge and its activation).
//!
//! The order, for each file:
//! 1. read at most the evidence cap (`max_evidence_bytes`, 1 MiB by default);
//! 2. resolve the policy for the evidence's world: `[defaults]`, then
//!    `[worlds.W]`, then the command-line flags; its trust store is built once
//!    per world and shared by the threads;
//! 3. [`verify_evidence`]: every TPM-signed claim and the EK certificate path;
//! 4. the registry ([`Registry::check`]): proven when the EK and AK are
//!    enrolled, refused when the EK is enrolled with another AK, and refused
//!    when not enrolled if enrolment is required (`--require-enrolled` or the
//!    world's `require_enrolled`);
//! 5. the activation, when given ([`check_activation`]).

use crate::certs::TrustStore;
use crate::error::VerifyError;
use crate::policy::PolicyFile;
use crate::registry::Registry;
use crate::trust::{resolve_policy, trust_store, TrustFlags};
use crate::verify::{check_activation, verify_evidence, Options, Verified};
use byok_protocol::formats::{Activation, Challenge, Document, Evidence};
use byok_protocol::world::WorldId;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// How the operator lets the AK be proven.
#[derive(Debug, Clone, Default)]
pub struct ProofFlags {
    pub registry: Option<PathBuf>,
    pub require_enrolled: bool,
    /// The operator's copy of a challenge and the host's activation.
    pub challenge: Option<PathBuf>,
    pub activation: Option<PathBuf>,
}

/// A trust store and the options for one world.
pub struct Resolved {
    pub store: TrustStore,
    pub opts: Options,
}

/// The checks of one command run.
pub struct Pipeline {
    flags: TrustFlags,
    policy: Option<PolicyFile>,
    nonce: Vec<u8>,
    world: Option<WorldId>,
    now: SystemTime,
    registry: Option<Registry>,
    require_enrolled: bool,
    answer: Option<(Challenge, Activation)>,
    /// For `challenge` and `enroll`: the steps that make a proof must not
    /// demand one (see [`Pipeline::enrolling`]).
    enrolling: bool,
    max_evidence_bytes: usize,
    resolved: Mutex<HashMap<String, Arc<Resolved>>>,
}

impl Pipeline {
    pub fn new(
        flags: &TrustFlags,
        proof: &ProofFlags,
        nonce: Vec<u8>,
        world: Option<WorldId>,
    ) -> Result<Pipeline, VerifyError> {
        let policy = flags.policy.as_deref().map(PolicyFile::load).transpose()?;
        if let (Some(p), Some(w)) = (&policy, &world) {
            if !p.has_world(w) {
                return Err(VerifyError::Policy {
                    path: p.path().display().to_string(),
                    detail: format!("no [worlds.{w}] table"),
                });
            }
        }
        let registry = proof.registry.as_deref().map(Registry::open).transpose()?;
        let answer = match (&proof.challenge, &proof.activation) {
            (Some(c), Some(a)) => Some((
                crate::read_document::<Challenge>(c, "challenge", Challenge::MAX_SIZE)?,
                crate::read_document::<Activation>(a, "activation", Activation::MAX_SIZE)?,
            )),
            (None, None) => None,
            _ => {
                return Err(VerifyError::Usage(
                    "--challenge and --activation go together".into(),
                ))
            }
        };
        let max_evidence_bytes = resolve_policy(policy.as_ref(), flags, None)?.max_evidence_bytes;
        Ok(Pipeline {
            enrolling: false,
            max_evidence_bytes,
            flags: flags.clone(),
            policy,
            nonce,
            world,
            now: SystemTime::now(),
            registry,
            require_enrolled: proof.require_enrolled,
            answer,
            resolved: Mutex::new(HashMap::new()),
        })
    }

    /// A pipeline for `challenge` and `enroll`, which make the proof the
    /// others demand: enrolment is not required (a host is not enrolled yet,
    /// or is being enrolled again after its world was re-initialised), and the
    /// registry only names the host.
    pub fn enrolling(mut self) -> Pipeline {
        self.enrolling = true;
        self
    }

    /// The trust store and options for `world`, built once per run.
    pub fn for_world(&self, world: &str) -> Result<Arc<Resolved>, VerifyError> {
        if let Some(r) = self
            .resolved
            .lock()
            .ok()
            .and_then(|m| m.get(world).cloned())
        {
            return Ok(r);
        }
        let policy = resolve_policy(self.policy.as_ref(), &self.flags, Some(world))?;
        let store = trust_store(&self.flags, &policy)?;
        let r = Arc::new(Resolved {
            store,
            opts: Options {
                nonce: self.nonce.clone(),
                world: self.world.clone(),
                now: self.now,
                policy,
            },
        });
        if let Ok(mut m) = self.resolved.lock() {
            m.entry(world.to_string()).or_insert_with(|| r.clone());
        }
        Ok(r)
    }

    pub fn read_evidence(&self, path: &Path) -> Result<Evidence, VerifyError> {
        crate::read_document::<Evidence>(path, "evidence", self.max_evidence_bytes)
    }

    /// Every check on one evidence file (see the module comment).
    pub fn check_file(&self, path: &Path) -> Result<Verified, VerifyError> {
        self.check(&self.read_evidence(path)?)
    }

    /// Every check on decoded evidence.
    pub fn check(&self, ev: &Evidence) -> Result<Verified, VerifyError> {
        self.check_with_nonce(ev, None)
    }

    /// The registry of this run, if one was given.
    pub fn registry(&self) -> Option<&Registry> {
        self.registry.as_ref()
    }

    /// Every check on decoded evidence, against `nonce` instead of the
    /// run's (a fleet run gives each host its own).
    pub fn check_with_nonce(
        &self,
        ev: &Evidence,
        nonce: Option<&[u8]>,
    ) -> Result<Verified, VerifyError> {
        let resolved = self.for_world(&ev.world)?;
        let mut verified = match nonce {
            None => verify_evidence(ev, &resolved.store, &resolved.opts)?,
            Some(n) => {
                let opts = Options {
                    nonce: n.to_vec(),
                    ..resolved.opts.clone()
                };
                verify_evidence(ev, &resolved.store, &opts)?
            }
        };
        let require = self.require_enrolled || resolved.opts.policy.require_enrolled;
        match &self.registry {
            Some(reg) if self.enrolling => {
                verified.host = reg.by_ek(&verified.ek_name).map(|r| r.host.clone());
            }
            Some(reg) => reg.check(&mut verified, require)?,
            None if self.enrolling => {}
            None if require => {
                return Err(VerifyError::Usage(format!(
                    "enrolment is required for world {:?} (--require-enrolled or the policy's require_enrolled): give --registry DIR",
                    byok_protocol::text::inert(&verified.world)
                )))
            }
            None => {}
        }
        if let Some((challenge, activation)) = &self.answer {
            check_activation(&mut verified, challenge, activation)?;
        }
        Ok(verified)
    }
}
