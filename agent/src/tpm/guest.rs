//! Sharing the TPM: one byok-agent at a time per TPM (a lock keyed by the
//! TCTI, not by the state directory), and a journal of the transient objects
//! and sessions this process loaded, so the next agent can flush exactly
//! what a killed one left behind and nothing another program loaded.
//!
//! Without a resource manager (swtpm, `/dev/tpm0`) every program shares the
//! TPM's few slots; a killed process's objects stay until someone flushes
//! them. The journal names them: objects by handle and Name (checked before
//! the flush), sessions by handle, with the TPM's boot epoch (resetCount,
//! restartCount): after a TPM restart the journal is void, as the handles
//! may have been handed to another program since. Under a resource manager
//! (`/dev/tpmrm0`, tabrmd) it flushes a dead client's handles itself, so the
//! agent keeps no journal and flushes nothing at start.

use super::Tpm;
use crate::error::{io, AgentError, Result};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::PathBuf;
use std::time::Duration;
use tss_esapi::constants::CapabilityType;
use tss_esapi::handles::{KeyHandle, ObjectHandle, TpmHandle};
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{CapabilityData, Data, SignatureScheme};

/// Where per-TPM locks live: `BYOK_LOCK_DIR`, else `/run/lock/tpm-byok` for
/// root, else `$XDG_RUNTIME_DIR/tpm-byok`, else `/tmp/tpm-byok-UID`.
fn lock_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("BYOK_LOCK_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let uid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0);
    if uid == 0 {
        return PathBuf::from("/run/lock/tpm-byok");
    }
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("tpm-byok");
    }
    PathBuf::from(format!("/tmp/tpm-byok-{uid}"))
}

/// The exclusive lock on one TPM, held for the life of a `Tpm`.
pub struct TpmLock {
    _file: File,
    journal: PathBuf,
}

impl TpmLock {
    pub fn acquire(tcti: &byok_protocol::tcti::Tcti, timeout: Option<Duration>) -> Result<TpmLock> {
        let dir = lock_dir();
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        // In a shared /tmp the directory must be ours, not a planted one.
        let meta = std::fs::symlink_metadata(&dir).map_err(io(&dir))?;
        let me = std::fs::metadata("/proc/self")
            .map(|m| m.uid())
            .unwrap_or(0);
        if !meta.is_dir() || meta.uid() != me {
            return Err(AgentError::InvalidArgument {
                what: "lock directory",
                detail: format!(
                    "{} is not a directory owned by this user; remove it or set BYOK_LOCK_DIR",
                    dir.display()
                ),
            });
        }
        // The same TCTI string is the same TPM; a short digest keeps the name safe.
        let key = hex::encode(&Sha256::digest(tcti.to_string().as_bytes())[..8]);
        let path = dir.join(format!("{key}.lock"));
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(io(&path))?;
        crate::lock::wait_for_lock(&file, &path, timeout)?;
        crate::lock::write_holder(&mut file);
        Ok(TpmLock {
            _file: file,
            journal: dir.join(format!("{key}.held")),
        })
    }

    pub fn read_journal(&self) -> Journal {
        std::fs::read(&self.journal)
            .ok()
            .and_then(|b| ciborium::from_reader(&b[..]).ok())
            .unwrap_or_default()
    }

    pub fn write_journal(&self, j: &Journal) -> Result<()> {
        if j.objects.is_empty() && j.sessions.is_empty() && j.pending.is_empty() {
            return match std::fs::remove_file(&self.journal) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&self.journal)(e)),
                _ => Ok(()),
            };
        }
        let mut out = Vec::new();
        ciborium::into_writer(j, &mut out)
            .map_err(|e| AgentError::Protocol(format!("journal: {e}")))?;
        // Rename without fsync: the journal must survive the process (a
        // kill), not a power loss, after which the TPM has restarted and
        // holds no transient object anyway.
        let tmp = self.journal.with_extension("held.tmp");
        std::fs::write(&tmp, &out)
            .and_then(|_| std::fs::rename(&tmp, &self.journal))
            .map_err(io(&self.journal))
    }
}

/// What this process holds in the TPM (TPM handles; objects with their Name).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Journal {
    /// The TPM's (resetCount, restartCount) when the entries were made.
    #[serde(default)]
    pub epoch: Option<(u32, u32)>,
    pub objects: Vec<(u32, ByteBuf)>,
    pub sessions: Vec<u32>,
    #[serde(default)]
    pub pending: Vec<Pending>,
}

/// A transient object or session this process loaded.
pub struct Held {
    pub esys: ObjectHandle,
    pub handle: u32,
    /// The object's Name; None for a session.
    pub name: Option<Vec<u8>>,
}

/// A load or session start under way, journaled before the command is sent:
/// a kill after the TPM answered but before the handle was journaled leaves
/// a pending entry, from which the next agent finds the handle.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub id: u64,
    /// A session (TPM handles 0x02/0x03…) rather than an object (0x80…).
    pub session: bool,
    /// The loaded and active handles before the command.
    pub before: Vec<u32>,
    /// The object's Name where it is known before the load (TPM2_Load).
    pub name: Option<ByteBuf>,
}

/// Other programs' objects and sessions come and go: a full TPM
/// (TPM_RC_OBJECT_MEMORY, TPM_RC_SESSION_MEMORY) is waited out for up to
/// ten seconds before it is reported.
pub(super) fn retry_while_full<T>(
    tpm: &mut Tpm,
    mut f: impl FnMut(&mut Tpm) -> Result<T>,
) -> Result<T> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut pause = Duration::from_millis(10);
    loop {
        let r = f(tpm);
        let full = matches!(&r, Err(AgentError::Tpm { source, .. })
            if crate::error::tpm_fault(source) == Some(crate::error::TpmFault::Full));
        if !full || std::time::Instant::now() >= deadline {
            return r;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

fn is_session(handle: u32) -> bool {
    matches!(handle >> 24, 0x02 | 0x03)
}

impl Tpm {
    /// The TPM's (resetCount, restartCount), from an unsigned TPM2_GetTime
    /// (signHandle TPM_RH_NULL): equal values mean no TPM reset or restart in
    /// between, so a transient handle seen then and now is the same object
    /// or session. (tss-esapi 7.7 has no TPM2_ReadClock.)
    fn boot_epoch(&mut self) -> Option<(u32, u32)> {
        let (attest, _) = self
            .ctx
            .execute_with_sessions(
                (
                    Some(AuthSession::Password),
                    Some(AuthSession::Password),
                    None,
                ),
                |c| c.get_time(KeyHandle::Null, Data::default(), SignatureScheme::Null),
            )
            .ok()?;
        let clock = attest.clock_info();
        Some((clock.reset_count(), clock.restart_count()))
    }

    /// Loaded transient objects and sessions (everyone's, without a
    /// resource manager).
    fn loaded(&mut self) -> Option<Vec<u32>> {
        let mut all = Vec::new();
        // TPM_HT_TRANSIENT, and TPM_HT_LOADED_SESSION (which lists HMAC
        // sessions 0x02… and policy sessions 0x03… alike).
        for first in [0x8000_0000u32, 0x0200_0000] {
            let Ok((CapabilityData::Handles(list), _)) =
                self.ctx.get_capability(CapabilityType::Handles, first, 64)
            else {
                return None;
            };
            all.extend(
                list.into_inner()
                    .into_iter()
                    .map(u32::from)
                    .filter(|h| (h >> 24 == 0x80) == (first == 0x8000_0000)),
            );
        }
        Some(all)
    }

    /// Flush what a killed agent left, and only that: nothing when the TPM
    /// restarted since (the handles may now be another program's); objects
    /// only when their Name matches; a pending load's or session start's
    /// handle only when exactly one new handle of its kind (and Name, where
    /// known) appeared after it.
    pub(super) fn flush_leftovers(&mut self) -> Result<()> {
        let journal = self.lock.read_journal();
        if journal.objects.is_empty() && journal.sessions.is_empty() && journal.pending.is_empty() {
            return Ok(());
        }
        if journal.epoch.is_none() || journal.epoch != self.boot_epoch() {
            return self.lock.write_journal(&Journal::default());
        }
        let mut doomed: Vec<(u32, Option<Vec<u8>>)> = journal
            .objects
            .iter()
            .map(|(h, n)| (*h, Some(n.to_vec())))
            .chain(journal.sessions.iter().map(|h| (*h, None)))
            .collect();
        if !journal.pending.is_empty() {
            let known: Vec<u32> = doomed.iter().map(|(h, _)| *h).collect();
            let now = self.loaded().unwrap_or_default();
            for p in &journal.pending {
                let new: Vec<u32> = now
                    .iter()
                    .copied()
                    .filter(|h| !p.before.contains(h) && !known.contains(h))
                    .filter(|h| is_session(*h) == p.session)
                    .collect();
                match (&p.name, &new[..]) {
                    (Some(name), _) => doomed.extend(new.iter().map(|h| (*h, Some(name.to_vec())))),
                    (None, [one]) => doomed.push((*one, None)),
                    _ => {}
                }
            }
        }
        for (handle, name) in doomed {
            self.flush_if_ours(handle, name.as_deref());
        }
        self.lock.write_journal(&Journal::default())
    }

    /// Flush `handle` if it is there (and, for an object with a known Name,
    /// if its Name matches).
    fn flush_if_ours(&mut self, handle: u32, name: Option<&[u8]>) {
        let Ok(h) = TpmHandle::try_from(handle) else {
            return;
        };
        let Ok(mut obj) = self
            .ctx
            .execute_without_session(|c| c.tr_from_tpm_public(h))
        else {
            return;
        };
        let ours = match name {
            None => true,
            Some(name) => self.ctx.tr_get_name(obj).is_ok_and(|n| n.value() == name),
        };
        if ours {
            let _ = self.ctx.flush_context(obj);
        } else {
            let _ = self.ctx.tr_close(&mut obj);
        }
    }

    /// Run `f`, which loads an object or starts a session (`session`), with
    /// the load journaled around it: pending before, held after. `name`: the
    /// object's Name where it is known beforehand. Under a resource manager
    /// it only runs `f`.
    pub(super) fn tracked<T>(
        &mut self,
        session: bool,
        name: Option<Vec<u8>>,
        mut f: impl FnMut(&mut Tpm) -> Result<T>,
        esys_of: impl Fn(&T) -> ObjectHandle,
    ) -> Result<T> {
        if self.resource_manager {
            return retry_while_full(self, f);
        }
        let Some(before) = self.loaded() else {
            return retry_while_full(self, f);
        };
        if self.epoch.is_none() {
            self.epoch = self.boot_epoch();
        }
        let id = rand::random::<u64>();
        self.pending.push(Pending {
            id,
            session,
            before: before.clone(),
            name: name.map(ByteBuf::from),
        });
        self.save_journal();
        let r = retry_while_full(self, &mut f);
        self.pending.retain(|p| p.id != id);
        if let Ok(v) = &r {
            let esys = esys_of(v);
            let new: Vec<u32> = self
                .loaded()
                .unwrap_or_default()
                .into_iter()
                .filter(|h| !before.contains(h) && is_session(*h) == session)
                .filter(|h| !self.held.iter().any(|x| x.handle == *h))
                .collect();
            if let [handle] = new[..] {
                let name = if session {
                    None
                } else {
                    self.ctx.tr_get_name(esys).ok().map(|n| n.value().to_vec())
                };
                if session || name.is_some() {
                    self.held.push(Held { esys, handle, name });
                }
            }
        }
        self.save_journal();
        r
    }

    fn save_journal(&mut self) {
        let j = Journal {
            epoch: self.epoch,
            objects: self
                .held
                .iter()
                .filter_map(|h| h.name.clone().map(|n| (h.handle, ByteBuf::from(n))))
                .collect(),
            sessions: self
                .held
                .iter()
                .filter(|h| h.name.is_none())
                .map(|h| h.handle)
                .collect(),
            pending: self.pending.clone(),
        };
        // Best effort: without the journal a crash leaves these for a human.
        let _ = self.lock.write_journal(&j);
    }

    /// `esys` was flushed: out of the journal. (A kill between the two leaves
    /// a journaled handle that is no longer ours: an object's Name guards
    /// it; a session handle the TPM hands to another program within those
    /// microseconds, and that program still holds when the next agent starts,
    /// would be flushed: the one case the journal cannot tell apart.)
    pub(super) fn released(&mut self, esys: ObjectHandle) {
        let n = self.held.len();
        self.held.retain(|h| h.esys != esys);
        if self.held.len() != n {
            self.save_journal();
        }
    }
}
