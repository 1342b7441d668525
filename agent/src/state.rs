//! The agent's state directory: one file per world and per key, each written
//! atomically (temp file, fsync, rename, fsync of the directory) with mode 0600,
//! under an exclusive lock so that two agents never interleave.
//!
//! Layout: `D/.lock`, `D/worlds/<world>.cbor`, `D/keys/<name>.cbor`,
//! `D/intents/<handle>.cbor` (persistent objects being made or unmade: see
//! [`PersistIntent`]).
//! Only public areas and TPM-encrypted private blobs are stored: nothing in
//! the state can be used without the TPM that wrapped it.

use crate::error::{io, AgentError, Result};
use byok_protocol::policy::PcrSpec;
use byok_protocol::public::TpmtPublic;
use byok_protocol::templates::KekAlg;
use byok_protocol::world::WorldId;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_bytes::ByteBuf;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A world on this host: its EK and AK, its current KEK and the KEKs it
/// replaced (kept for the keys stored under them).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(from = "WorldFile", into = "WorldFile")]
pub struct WorldState {
    pub world: WorldId,
    /// Persistent handle of the EK the AK was created under.
    pub ek_handle: u32,
    /// The AK's public area (TPM2B_PUBLIC on disk) and TPM2B_PRIVATE (a child of the EK).
    pub ak_public: TpmtPublic,
    pub ak_private: ByteBuf,
    /// The current KEK (with the compat KEK's public area, if any).
    pub kek: KekRecord,
    /// The compat KEK's TPM2B_PRIVATE (`init --compat-kek`: an unrestricted
    /// RSA-3072 decryption key, a child of the current KEK).
    pub compat_private: Option<ByteBuf>,
    /// KEKs replaced by `kek rotate`.
    pub retired: Vec<KekRecord>,
}

/// A world's state file (`worlds/<world>.cbor`), flat as every version of
/// the agent has written it: the current KEK's fields beside the world's.
#[derive(Serialize, Deserialize)]
struct WorldFile {
    world: WorldId,
    kek_handle: u32,
    kek_public: TpmtPublic,
    ek_handle: u32,
    ak_public: TpmtPublic,
    ak_private: ByteBuf,
    #[serde(default)]
    compat_public: Option<TpmtPublic>,
    #[serde(default)]
    compat_private: Option<ByteBuf>,
    /// Absent: rsa2048.
    #[serde(default)]
    kek_alg: Option<KekAlg>,
    #[serde(default)]
    kek_generation: u32,
    #[serde(default)]
    kek_pcrs: Option<PcrSpec>,
    #[serde(default)]
    kek_pcr_values: Vec<ByteBuf>,
    #[serde(default)]
    retired_keks: Vec<KekRecord>,
}

impl From<WorldFile> for WorldState {
    fn from(f: WorldFile) -> Self {
        WorldState {
            world: f.world,
            ek_handle: f.ek_handle,
            ak_public: f.ak_public,
            ak_private: f.ak_private,
            kek: KekRecord {
                handle: f.kek_handle,
                public: f.kek_public,
                alg: f.kek_alg,
                generation: f.kek_generation,
                pcrs: f.kek_pcrs,
                pcr_values: f.kek_pcr_values,
                compat_public: f.compat_public,
            },
            compat_private: f.compat_private,
            retired: f.retired_keks,
        }
    }
}

impl From<WorldState> for WorldFile {
    fn from(w: WorldState) -> Self {
        WorldFile {
            world: w.world,
            kek_handle: w.kek.handle,
            kek_public: w.kek.public,
            ek_handle: w.ek_handle,
            ak_public: w.ak_public,
            ak_private: w.ak_private,
            compat_public: w.kek.compat_public,
            compat_private: w.compat_private,
            kek_alg: w.kek.alg,
            kek_generation: w.kek.generation,
            kek_pcrs: w.kek.pcrs,
            kek_pcr_values: w.kek.pcr_values,
            retired_keks: w.retired,
        }
    }
}

/// One KEK of a world: where it is and how to re-create it from its template.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KekRecord {
    pub handle: u32,
    /// TPM2B_PUBLIC on disk.
    pub public: TpmtPublic,
    #[serde(default)]
    pub alg: Option<KekAlg>,
    #[serde(default)]
    pub generation: u32,
    #[serde(default)]
    pub pcrs: Option<PcrSpec>,
    #[serde(default)]
    pub pcr_values: Vec<ByteBuf>,
    /// The compat KEK that lived under it, if any (TPM2B_PUBLIC on disk).
    #[serde(default)]
    pub compat_public: Option<TpmtPublic>,
}

impl WorldState {
    /// The KEK at `handle`: the current one or a retired one.
    pub fn kek_at(&self, handle: u32) -> Option<&KekRecord> {
        std::iter::once(&self.kek)
            .chain(&self.retired)
            .find(|k| k.handle == handle)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyState {
    pub name: String,
    pub world: WorldId,
    pub alg: String,
    pub origin: byok_protocol::formats::KeyOrigin,
    /// TPM2B_PUBLIC on disk.
    pub public: TpmtPublic,
    /// TPM2B_PRIVATE, encrypted by the TPM under the world's KEK.
    pub private: ByteBuf,
    #[serde(default)]
    pub label: Option<String>,
    /// The PCRs (e.g. "sha256:0,7") whose values at creation are in the
    /// object's authPolicy (TPM2_PolicyPCR); None: used with its empty auth value.
    #[serde(default)]
    pub policy_pcrs: Option<PcrSpec>,
    /// The persistent handle of the KEK it lives under when that is not the
    /// world's current KEK (set by `kek rotate`); None: the current KEK.
    #[serde(default)]
    pub kek_handle: Option<u32>,
}

/// A persistent object whose existence the state is about to change: written
/// durably before TPM2_EvictControl makes it persistent, and before a world
/// record stops naming it (rotation, `kek gc`, `world destroy`). The next
/// command, under the lock, settles it: kept if a record names it, evicted
/// if the TPM holds it (same handle, same Name) and no record does. So a
/// crash at any step leaves no persistent object that no record names.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PersistIntent {
    pub handle: u32,
    /// The object's Name (nameAlg || digest of its public area).
    pub name: ByteBuf,
    pub world: WorldId,
}

/// Whether this process has written to or deleted from a state directory
/// (for the error after a lost TPM: "nothing was changed" must be true).
static CHANGED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn changed() -> bool {
    CHANGED.load(std::sync::atomic::Ordering::SeqCst)
}

fn mark_changed() {
    CHANGED.store(true, std::sync::atomic::Ordering::SeqCst);
}

pub struct StateDir {
    root: PathBuf,
    _lock: File,
}

impl StateDir {
    /// Open (creating if needed) and lock the state directory for the whole
    /// command. Waiting for another agent says so after a second (naming its
    /// pid); `lock_timeout` ends the wait with an error. Once locked, temporary
    /// files of interrupted writes are removed (no writer can be running).
    pub fn open(root: &Path, lock_timeout: Option<Duration>) -> Result<StateDir> {
        // A file in the way would surface as "File exists (os error 17)".
        if let Some(file) = root
            .ancestors()
            .find(|p| fs::metadata(p).is_ok_and(|m| !m.is_dir()))
        {
            return Err(AgentError::StateDirNotDirectory {
                state_dir: root.display().to_string(),
                file: file.display().to_string(),
            });
        }
        for d in [
            root.to_path_buf(),
            root.join("worlds"),
            root.join("keys"),
            root.join("intents"),
        ] {
            fs::create_dir_all(&d).map_err(io(&d))?;
            fs::set_permissions(&d, fs::Permissions::from_mode(0o700)).map_err(io(&d))?;
        }
        let lock_path = root.join(".lock");
        let mut lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        crate::lock::wait_for_lock(&lock, &lock_path, lock_timeout)?;
        crate::lock::write_holder(&mut lock);
        let state = StateDir {
            root: root.to_path_buf(),
            _lock: lock,
        };
        state.remove_stale_temporaries();
        Ok(state)
    }

    /// Temporary files (`.NAME.tmp.*`) an interrupted write left behind.
    fn remove_stale_temporaries(&self) {
        for sub in ["worlds", "keys", "intents"] {
            let Ok(entries) = fs::read_dir(self.root.join(sub)) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if name.starts_with('.') && name.contains(".tmp.") {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
    }

    fn world_path(&self, world: &WorldId) -> PathBuf {
        self.root.join("worlds").join(format!("{world}.cbor"))
    }

    fn key_path(&self, name: &str) -> PathBuf {
        self.root.join("keys").join(format!("{name}.cbor"))
    }

    pub fn world(&self, world: &WorldId) -> Result<WorldState> {
        read(&self.world_path(world))?.ok_or_else(|| AgentError::UnknownWorld(world.clone()))
    }

    /// Every readable world; unreadable world files are reported, not fatal.
    pub fn worlds(&self) -> Result<Records<WorldState>> {
        list(&self.root.join("worlds"))
    }

    pub fn delete_world(&self, world: &WorldId) -> Result<()> {
        mark_changed();
        let p = self.world_path(world);
        fs::remove_file(&p).map_err(io(&p))?;
        Ok(byok_protocol::files::sync_dir(
            p.parent().unwrap_or(&self.root),
        )?)
    }

    pub fn has_world(&self, world: &WorldId) -> bool {
        self.world_path(world).exists()
    }

    pub fn put_world(&self, w: &WorldState) -> Result<()> {
        mark_changed();
        write_atomic(&self.world_path(&w.world), &cbor(w))
    }

    pub fn key(&self, name: &str) -> Result<KeyState> {
        read(&self.key_path(name))?.ok_or_else(|| AgentError::UnknownKey(name.to_string()))
    }

    pub fn has_key(&self, name: &str) -> bool {
        self.key_path(name).exists()
    }

    /// Every readable key; unreadable key files are reported, not fatal.
    pub fn keys(&self) -> Result<Records<KeyState>> {
        list(&self.root.join("keys"))
    }

    pub fn put_key(&self, k: &KeyState) -> Result<()> {
        mark_changed();
        write_atomic(&self.key_path(&k.name), &cbor(k))
    }

    fn intent_path(&self, handle: u32) -> PathBuf {
        self.root.join("intents").join(format!("{handle:08x}.cbor"))
    }

    /// Record, durably, that the persistent object `i` is being made or unmade.
    pub fn put_intent(&self, i: &PersistIntent) -> Result<()> {
        mark_changed();
        write_atomic(&self.intent_path(i.handle), &cbor(i))
    }

    /// Intents left by a command that did not finish.
    pub fn intents(&self) -> Result<Records<PersistIntent>> {
        list(&self.root.join("intents"))
    }

    pub fn delete_intent(&self, handle: u32) -> Result<()> {
        mark_changed();
        let p = self.intent_path(handle);
        match fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(&p)(e)),
        }
        Ok(byok_protocol::files::sync_dir(
            p.parent().unwrap_or(&self.root),
        )?)
    }

    pub fn delete_key(&self, name: &str) -> Result<()> {
        let p = self.key_path(name);
        if !p.exists() {
            return Err(AgentError::UnknownKey(name.to_string()));
        }
        mark_changed();
        fs::remove_file(&p).map_err(io(&p))?;
        Ok(byok_protocol::files::sync_dir(
            p.parent().unwrap_or(&self.root),
        )?)
    }
}

fn cbor<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    if let Err(e) = ciborium::into_writer(v, &mut out) {
        unreachable!("CBOR encoding of state failed: {e}");
    }
    out
}

fn read<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path)(e)),
    };
    ciborium::from_reader(&bytes[..])
        .map(Some)
        .map_err(|e| AgentError::CorruptState {
            path: path.display().to_string(),
            detail: cbor_problem(&e, bytes.len()),
        })
}

/// What is wrong with a record, in words, and what to do.
fn cbor_problem(e: &ciborium::de::Error<std::io::Error>, len: usize) -> String {
    let what = match e {
        ciborium::de::Error::Semantic(_, msg) => format!("not a record of this agent ({msg})"),
        _ => byok_protocol::formats::cbor_problem(e, len),
    };
    format!("{what}; restore it from a backup, or remove it to drop that record")
}

/// The records of one directory: those that could be read, and the files
/// that could not (each named, so one bad file never hides the others).
pub struct Records<T> {
    pub items: Vec<T>,
    pub corrupt: Vec<AgentError>,
}

impl<T> Records<T> {
    /// The readable records, after a warning on stderr for each unreadable
    /// one (for commands that work on the others).
    pub fn warn(self) -> Vec<T> {
        for e in &self.corrupt {
            eprintln!("byok-agent: warning: skipped: {e}");
        }
        self.items
    }

    /// An error naming every unreadable record, if there is one.
    pub fn corrupt_error(&self) -> Result<()> {
        match self.corrupt.len() {
            0 => Ok(()),
            _ => Err(AgentError::CorruptRecords(
                self.corrupt.iter().map(|e| e.to_string()).collect(),
            )),
        }
    }
}

fn list<T: DeserializeOwned>(dir: &Path) -> Result<Records<T>> {
    let mut names: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "cbor"))
        .filter(|p| {
            // Temporary files of interrupted writes (".NAME.cbor.tmp.*") end
            // otherwise; only "NAME.cbor" is a record.
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    names.sort();
    let mut records = Records {
        items: Vec::new(),
        corrupt: Vec::new(),
    };
    for p in &names {
        match read(p) {
            Ok(Some(v)) => records.items.push(v),
            Ok(None) => {}
            Err(e) => records.corrupt.push(e),
        }
    }
    Ok(records)
}

/// Write `data` to `path` atomically: a 0600 temp file in the same
/// directory, fsync, rename over the target, fsync the directory.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    Ok(byok_protocol::files::write_atomic(path, data, 0o600)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ciborium::Value;

    fn text(s: &str) -> Value {
        Value::Text(s.into())
    }

    /// Real public areas (TPM2B_PUBLIC), as the state holds them.
    fn kek(generation: u32) -> TpmtPublic {
        byok_protocol::templates::kek_template(
            "eu",
            &byok_protocol::templates::KekSpec {
                alg: KekAlg::P256,
                generation,
                auth_policy: None,
            },
        )
    }

    fn public(p: &TpmtPublic) -> Value {
        Value::Bytes(p.to_tpm2b())
    }

    /// A world file as the agent has always written it (flat), with a
    /// PCR-bound KEK and one retired KEK.
    fn flat() -> Value {
        let bytes = |b: u8| Value::Bytes(vec![b; 4]);
        Value::Map(vec![
            (text("world"), text("eu")),
            (text("kek_handle"), Value::Integer(0x8100_0101u32.into())),
            (text("kek_public"), public(&kek(1))),
            (text("ek_handle"), Value::Integer(0x8101_0001u32.into())),
            (
                text("ak_public"),
                public(&byok_protocol::templates::ak_template()),
            ),
            (text("ak_private"), bytes(3)),
            (
                text("compat_public"),
                public(&byok_protocol::templates::compat_kek_template()),
            ),
            (text("compat_private"), bytes(5)),
            (text("kek_alg"), text("p256")),
            (text("kek_generation"), Value::Integer(1.into())),
            (text("kek_pcrs"), text("sha256:0,7")),
            (
                text("kek_pcr_values"),
                Value::Array(vec![bytes(6), bytes(7)]),
            ),
            (
                text("retired_keks"),
                Value::Array(vec![Value::Map(vec![
                    (text("handle"), Value::Integer(0x8100_0100u32.into())),
                    (text("public"), public(&kek(0))),
                    (text("alg"), text("p256")),
                ])]),
            ),
        ])
    }

    #[test]
    fn world_files_keep_their_flat_form() {
        let mut cbor = Vec::new();
        ciborium::into_writer(&flat(), &mut cbor).unwrap();
        let w: WorldState = ciborium::from_reader(&cbor[..]).unwrap();
        assert_eq!(w.kek.handle, 0x8100_0101);
        assert_eq!(w.kek.alg, Some(KekAlg::P256));
        assert_eq!(w.kek.generation, 1);
        assert_eq!(
            w.kek.pcrs.as_ref().map(|p| p.describe()).as_deref(),
            Some("sha256:0,7")
        );
        assert_eq!(
            w.kek.compat_public,
            Some(byok_protocol::templates::compat_kek_template())
        );
        assert_eq!(w.kek.public, kek(1));
        assert_eq!(w.retired[0].public.name(), kek(0).name());
        assert_eq!(
            w.compat_private.as_deref().map(|b| b.as_slice()),
            Some(&[5u8; 4][..])
        );
        assert_eq!(w.retired.len(), 1);
        assert_eq!(w.kek_at(0x8100_0100).map(|k| k.generation), Some(0));
        // Written back: the same flat fields.
        let mut out = Vec::new();
        ciborium::into_writer(&w, &mut out).unwrap();
        let v: Value = ciborium::from_reader(&out[..]).unwrap();
        let keys: Vec<&str> = v
            .as_map()
            .unwrap()
            .iter()
            .filter_map(|(k, _)| k.as_text())
            .collect();
        for k in [
            "world",
            "kek_handle",
            "kek_public",
            "kek_alg",
            "kek_pcrs",
            "retired_keks",
        ] {
            assert!(keys.contains(&k), "{k} missing from {keys:?}");
        }
        let again: WorldState = ciborium::from_reader(&out[..]).unwrap();
        assert_eq!(again.kek.pcr_values, w.kek.pcr_values);
        // Public areas are written back byte for byte.
        let field = |name: &str| {
            v.as_map()
                .unwrap()
                .iter()
                .find(|(k, _)| k.as_text() == Some(name))
                .map(|(_, v)| v.clone())
        };
        assert_eq!(field("kek_public"), Some(public(&kek(1))));
        // A file of the oldest form (no kek_alg): an RSA-2048 KEK.
        let mut old = flat();
        if let Value::Map(m) = &mut old {
            m.retain(|(k, _)| k.as_text() != Some("kek_alg"));
        }
        let mut cbor = Vec::new();
        ciborium::into_writer(&old, &mut cbor).unwrap();
        let w: WorldState = ciborium::from_reader(&cbor[..]).unwrap();
        assert_eq!(w.kek.alg, None);
    }
}
