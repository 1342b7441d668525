//! The context every command works in: where the TPM and the state are
//! (`Ctx`), the checks of names and stored public areas, and the world's
//! objects in the TPM: its EK, its current or retired KEK as a parent (an
//! evicted KEK re-created from its template, a cleared TPM recognised), and
//! the PCR binding evidence reports.

use crate::error::{io, AgentError, Result};
use crate::state::{KekRecord, KeyState, StateDir, WorldState};
use crate::tpm::{EkKind, KekAt, Parent, ParentPolicy, Tpm};
use byok_protocol::tcti::Tcti;
use byok_protocol::templates::{kek_template, KekAlg, KekSpec};
use byok_protocol::world::WorldId;
use byok_protocol::world::{pcr_bound_kek_policy, valid_id, world_policy};
use std::path::{Path, PathBuf};

/// Where a command finds the TPM and the state. Each command takes what it
/// needs from here, in the order it needs it: the locked state directory
/// first (two agents never interleave), the TPM only once the inputs have
/// been checked (bad input is refused before any TPM work). What a command
/// loaded is released when its `Tpm` and `StateDir` are dropped.
pub struct Ctx {
    /// `--tcti` or the environment's, parsed.
    pub tcti: Tcti,
    pub state_dir: PathBuf,
    pub lock_timeout: Option<std::time::Duration>,
    /// Hierarchy passwords (`--owner-auth`, `--endorsement-auth`).
    pub auth: crate::tpm::HierarchyAuth,
}

impl Ctx {
    /// The state directory, locked for the whole command.
    pub(crate) fn state(&self) -> Result<StateDir> {
        StateDir::open(&self.state_dir, self.lock_timeout)
    }

    /// The TPM (its context flushes what it loaded when dropped), with what
    /// an interrupted command left in it settled (see [`settle_intents`]).
    pub(crate) fn tpm(&self, state: &StateDir) -> Result<Tpm> {
        let mut tpm = Tpm::open(&self.tcti, self.lock_timeout, &self.auth)?;
        settle_intents(state, &mut tpm)?;
        Ok(tpm)
    }

    /// The TPM without settling intents (for `doctor`, which reports them).
    pub(crate) fn tpm_as_found(&self) -> Result<Tpm> {
        Tpm::open(&self.tcti, self.lock_timeout, &self.auth)
    }

    /// The locked state and one world in it.
    pub(crate) fn world(&self, world: &WorldId) -> Result<(StateDir, WorldState)> {
        let state = self.state()?;
        let w = state.world(world)?;
        Ok((state, w))
    }

    /// The locked state, the key `name` and the world it lives in.
    pub(crate) fn key(&self, name: &str) -> Result<(StateDir, KeyState, WorldState)> {
        check_id("key name", name)?;
        let state = self.state()?;
        let k = state.key(name)?;
        let w = state.world(&k.world)?;
        Ok((state, k, w))
    }
}

/// Settle the intents an interrupted command left (under the state lock):
/// a persistent object its world's record names is kept; one the TPM holds
/// (same handle, same Name) that no record names is evicted; then the
/// intent goes. An intent whose world file cannot be read stays, with a
/// warning: that record may name the object.
pub(crate) fn settle_intents(state: &StateDir, tpm: &mut Tpm) -> Result<()> {
    for i in state.intents()?.warn() {
        let named = match state.world(&i.world) {
            Ok(w) => w
                .kek_at(i.handle)
                .is_some_and(|k| k.public.name() == i.name.as_slice()),
            Err(AgentError::UnknownWorld(_)) => false,
            Err(e) => {
                eprintln!(
                    "byok-agent: warning: the persistent object at {:#010x} may belong to world {}, whose record is unreadable; left as it is ({e})",
                    i.handle, i.world
                );
                continue;
            }
        };
        if !named && tpm.persistent_name(i.handle)?.as_deref() == Some(i.name.as_slice()) {
            tpm.evict(i.handle)?;
        }
        state.delete_intent(i.handle)?;
    }
    Ok(())
}

/// Record that the persistent object `(handle, public)` of `world` is being
/// made or unmade (see [`crate::state::PersistIntent`]).
pub(crate) fn intend(
    state: &StateDir,
    world: &WorldId,
    handle: u32,
    public: &byok_protocol::public::TpmtPublic,
) -> Result<()> {
    state.put_intent(&crate::state::PersistIntent {
        handle,
        name: serde_bytes::ByteBuf::from(public.name()),
        world: world.clone(),
    })
}

pub(crate) fn check_id(what: &'static str, v: &str) -> Result<()> {
    if valid_id(v) {
        Ok(())
    } else {
        Err(AgentError::InvalidId {
            what,
            value: v.to_string(),
        })
    }
}

/// A command's output (`-o`): `-` is standard output; an existing file is
/// replaced only with `--force`; files are written atomically, mode 0600.
pub(crate) fn write_output(path: &Path, data: &[u8]) -> Result<()> {
    Ok(byok_protocol::output::write_output(path, data, 0o600)?)
}

/// Refuse an existing output file before any work (see `write_output`).
pub(crate) fn check_output(path: &Path) -> Result<()> {
    Ok(byok_protocol::output::check_output(path)?)
}

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(io(path))
}

/// The template inputs of a recorded KEK.
pub(crate) fn kek_spec(world: &WorldId, rec: &KekRecord) -> Result<KekSpec> {
    let alg = rec.alg.unwrap_or(KekAlg::Rsa2048);
    let values: Vec<Vec<u8>> = rec.pcr_values.iter().map(|v| v.to_vec()).collect();
    Ok(KekSpec {
        alg,
        generation: rec.generation,
        auth_policy: rec
            .pcrs
            .as_ref()
            .map(|s| pcr_bound_kek_policy(world, s, &values)),
    })
}

/// The KEK of `rec` as a parent: checked against its recorded public area;
/// re-created from its template when it was evicted; an error naming every
/// lost world when the owner seed changed (TPM2_Clear).
pub(crate) fn kek_parent(
    tpm: &mut Tpm,
    state: &StateDir,
    world: &WorldId,
    rec: &KekRecord,
) -> Result<Parent> {
    let handle = match tpm.kek(rec.handle, &rec.public)? {
        KekAt::Recorded(k) => k,
        KekAt::Other => {
            return Err(AgentError::KekChanged {
                world: world.clone(),
                handle: rec.handle,
            })
        }
        KekAt::Missing => {
            let template = kek_template(world, &kek_spec(world, rec)?);
            if !tpm.restore_kek(&template, rec.handle, &rec.public)? {
                return Err(owner_seed_changed(tpm, state)?);
            }
            eprintln!(
                "byok-agent: note: world {}: the KEK at {:#010x} was not in the TPM (evicted); re-created from its template",
                world, rec.handle
            );
            match tpm.kek(rec.handle, &rec.public)? {
                KekAt::Recorded(k) => k,
                _ => return Err(AgentError::TpmUnexpected("KEK just restored")),
            }
        }
    };
    let policy = rec.pcrs.clone().map(|pcrs| ParentPolicy {
        pcrs,
        policy_ref: world_policy(world).to_vec(),
    });
    Ok(Parent { handle, policy })
}

/// The world's current KEK.
pub(crate) fn world_kek(tpm: &mut Tpm, state: &StateDir, w: &WorldState) -> Result<Parent> {
    kek_parent(tpm, state, &w.world, &w.kek)
}

/// The KEK key `k` lives under (the current one, or a retired one after rotation).
pub(crate) fn key_parent(
    tpm: &mut Tpm,
    state: &StateDir,
    w: &WorldState,
    k: &KeyState,
) -> Result<Parent> {
    let handle = k.kek_handle.unwrap_or(w.kek.handle);
    let rec = w.kek_at(handle).ok_or_else(|| AgentError::CorruptState {
        path: format!("key {}", k.name),
        detail: format!("its KEK {handle:#010x} is not a KEK of world {}", w.world),
    })?;
    kek_parent(tpm, state, &w.world, rec)
}

/// Which worlds' KEKs are gone, for the "TPM was cleared" error.
pub(crate) fn owner_seed_changed(tpm: &mut Tpm, state: &StateDir) -> Result<AgentError> {
    let mut lost = Vec::new();
    for w in state.worlds()?.items {
        let intact = matches!(tpm.kek(w.kek.handle, &w.kek.public)?, KekAt::Recorded(_));
        if !intact {
            lost.push(w.world);
        }
    }
    let keys = state
        .keys()?
        .items
        .iter()
        .filter(|k| lost.contains(&k.world))
        .count();
    Ok(AgentError::OwnerSeedChanged { worlds: lost, keys })
}

/// The record name of a retired KEK whose name is `kek_name`, if any.
pub(crate) fn retired_generation(w: &WorldState, kek_name: &[u8]) -> Option<u32> {
    w.retired
        .iter()
        .find(|r| r.public.name() == kek_name)
        .map(|r| r.generation)
}

/// The EK the world's AK was created under.
pub(crate) fn world_ek(
    tpm: &mut Tpm,
    w: &WorldState,
) -> Result<(tss_esapi::handles::KeyHandle, EkKind)> {
    let kind = EkKind::from_handle(w.ek_handle).ok_or_else(|| AgentError::CorruptState {
        path: format!("world {}", w.world),
        detail: format!("unknown EK handle {:#010x}", w.ek_handle),
    })?;
    Ok((tpm.ek(kind)?, kind))
}

/// Evidence's `kek.pcr_binding`: the PCR values a PCR-bound KEK's authPolicy
/// was computed from (bank => index => value), for the verifier to recompute.
pub(crate) fn kek_pcr_binding(
    w: &WorldState,
) -> Result<Option<byok_protocol::formats::PcrBinding>> {
    let Some(spec) = &w.kek.pcrs else {
        return Ok(None);
    };
    byok_protocol::formats::pcr_binding(spec, &w.kek.pcr_values)
        .map(Some)
        .ok_or_else(|| AgentError::CorruptState {
            path: format!("world {}", w.world),
            detail: "KEK PCR values do not match its PCR list".into(),
        })
}
