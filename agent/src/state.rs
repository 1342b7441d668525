//! The agent's state directory: one file per world and per key, each written
//! atomically (temp file, fsync, rename, fsync of the directory) with mode 0600,
//! under an exclusive lock so that two agents never interleave.
//!
//! Layout: `D/.lock`, `D/worlds/<world>.cbor`, `D/keys/<name>.cbor`.
//! Only public areas and TPM-encrypted private blobs are stored: nothing in
//! the state can be used without the TPM that wrapped it.

use crate::error::{io, AgentError, Result};
use byok_protocol::policy::PcrSpec;
use byok_protocol::templates::KekAlg;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_bytes::ByteBuf;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorldState {
    pub world: String,
    /// Persistent handle of the world's KEK (an owner-hierarchy primary).
    pub kek_handle: u32,
    /// TPM2B_PUBLIC of the KEK.
    pub kek_public: ByteBuf,
    /// Persistent handle of the EK the AK was created under.
    pub ek_handle: u32,
    /// TPM2B_PUBLIC and TPM2B_PRIVATE of the AK (a child of the EK).
    pub ak_public: ByteBuf,
    pub ak_private: ByteBuf,
    /// The compat KEK (`init --compat-kek`): TPM2B_PUBLIC and TPM2B_PRIVATE of
    /// an unrestricted RSA-3072 decryption key, a child of the KEK.
    #[serde(default)]
    pub compat_public: Option<ByteBuf>,
    #[serde(default)]
    pub compat_private: Option<ByteBuf>,
    /// The KEK's type (absent: rsa2048).
    #[serde(default)]
    pub kek_alg: Option<KekAlg>,
    /// Incremented by `kek rotate`; part of the KEK's template.
    #[serde(default)]
    pub kek_generation: u32,
    /// A PCR-bound KEK (`init --pcrs`): the PCRs and their values at init,
    /// from which its authPolicy is computed.
    #[serde(default)]
    pub kek_pcrs: Option<PcrSpec>,
    #[serde(default)]
    pub kek_pcr_values: Vec<ByteBuf>,
    /// KEKs replaced by `kek rotate`, kept for the keys stored under them.
    #[serde(default)]
    pub retired_keks: Vec<KekRecord>,
}

/// One KEK of a world: where it is and how to re-create it from its template.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KekRecord {
    pub handle: u32,
    /// TPM2B_PUBLIC.
    pub public: ByteBuf,
    #[serde(default)]
    pub alg: Option<KekAlg>,
    #[serde(default)]
    pub generation: u32,
    #[serde(default)]
    pub pcrs: Option<PcrSpec>,
    #[serde(default)]
    pub pcr_values: Vec<ByteBuf>,
    /// The compat KEK that lived under it, if any (TPM2B_PUBLIC).
    #[serde(default)]
    pub compat_public: Option<ByteBuf>,
}

impl WorldState {
    /// The world's current KEK as a record.
    pub fn current_kek(&self) -> KekRecord {
        KekRecord {
            handle: self.kek_handle,
            public: self.kek_public.clone(),
            alg: self.kek_alg,
            generation: self.kek_generation,
            pcrs: self.kek_pcrs.clone(),
            pcr_values: self.kek_pcr_values.clone(),
            compat_public: self.compat_public.clone(),
        }
    }

    /// The KEK at `handle`: the current one or a retired one.
    pub fn kek_at(&self, handle: u32) -> Option<KekRecord> {
        if handle == self.kek_handle {
            return Some(self.current_kek());
        }
        self.retired_keks
            .iter()
            .find(|k| k.handle == handle)
            .cloned()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyState {
    pub name: String,
    pub world: String,
    pub alg: String,
    pub origin: byok_protocol::formats::KeyOrigin,
    /// TPM2B_PUBLIC.
    pub public: ByteBuf,
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

pub struct StateDir {
    root: PathBuf,
    _lock: File,
}

impl StateDir {
    /// Open (creating if needed) and lock the state directory for the whole command.
    pub fn open(root: &Path) -> Result<StateDir> {
        for d in [root.to_path_buf(), root.join("worlds"), root.join("keys")] {
            fs::create_dir_all(&d).map_err(io(&d))?;
            fs::set_permissions(&d, fs::Permissions::from_mode(0o700)).map_err(io(&d))?;
        }
        let lock_path = root.join(".lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        lock.lock().map_err(io(&lock_path))?;
        Ok(StateDir {
            root: root.to_path_buf(),
            _lock: lock,
        })
    }

    fn world_path(&self, world: &str) -> PathBuf {
        self.root.join("worlds").join(format!("{world}.cbor"))
    }

    fn key_path(&self, name: &str) -> PathBuf {
        self.root.join("keys").join(format!("{name}.cbor"))
    }

    pub fn world(&self, world: &str) -> Result<WorldState> {
        read(&self.world_path(world))?.ok_or_else(|| AgentError::UnknownWorld(world.to_string()))
    }

    pub fn worlds(&self) -> Result<Vec<WorldState>> {
        list(&self.root.join("worlds"))
    }

    pub fn delete_world(&self, world: &str) -> Result<()> {
        let p = self.world_path(world);
        fs::remove_file(&p).map_err(io(&p))?;
        Ok(byok_protocol::files::sync_dir(
            p.parent().unwrap_or(&self.root),
        )?)
    }

    pub fn has_world(&self, world: &str) -> bool {
        self.world_path(world).exists()
    }

    pub fn put_world(&self, w: &WorldState) -> Result<()> {
        write_atomic(&self.world_path(&w.world), &cbor(w))
    }

    pub fn key(&self, name: &str) -> Result<KeyState> {
        read(&self.key_path(name))?.ok_or_else(|| AgentError::UnknownKey(name.to_string()))
    }

    pub fn has_key(&self, name: &str) -> bool {
        self.key_path(name).exists()
    }

    pub fn keys(&self) -> Result<Vec<KeyState>> {
        list(&self.root.join("keys"))
    }

    pub fn put_key(&self, k: &KeyState) -> Result<()> {
        write_atomic(&self.key_path(&k.name), &cbor(k))
    }

    pub fn delete_key(&self, name: &str) -> Result<()> {
        let p = self.key_path(name);
        if !p.exists() {
            return Err(AgentError::UnknownKey(name.to_string()));
        }
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
            detail: e.to_string(),
        })
}

fn list<T: DeserializeOwned>(dir: &Path) -> Result<Vec<T>> {
    let mut names: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "cbor"))
        .collect();
    names.sort();
    names.iter().filter_map(|p| read(p).transpose()).collect()
}

/// Write `data` to `path` atomically: a 0600 temp file in the same
/// directory, fsync, rename over the target, fsync the directory.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    Ok(byok_protocol::files::write_atomic(path, data, 0o600)?)
}
