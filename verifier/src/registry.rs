//! The registry of enrolled hosts: the registrar step Keylime runs online,
//! kept offline as a plain directory (one `tpm-byok/host` CBOR file per host,
//! `DIR/<host>.cbor`; docs/formats.md). Enrolment verifies evidence and a
//! credential activation once, and records the EK and, per world, the AK the
//! activation proved to live in that EK's TPM. Afterwards evidence whose EK
//! and AK match a record is proven without a new challenge; evidence whose EK
//! is enrolled with another AK is refused.
//!
//! The registry is trusted configuration, like the roots: keep it where the
//! roots are kept (for example in git). A record that does not read is an
//! error, never skipped.

use crate::check::enrolment::{ak_name, check_enrolment};
use crate::error::VerifyError;
use crate::verified::{AkBinding, Verified};
use byok_protocol::formats::{Document, EnrolledEk, EnrolledWorld, HostRecord, HOST_TYPE, VERSION};
use byok_protocol::world::valid_id;
use serde_bytes::ByteBuf;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The enrolled hosts of one registry directory, indexed by EK Name.
#[derive(Debug, Default)]
pub struct Registry {
    hosts: Vec<HostRecord>,
    by_ek: HashMap<Vec<u8>, usize>,
    /// (world, AK Name) → host: a receipt names its host by its AK.
    by_ak: HashMap<(String, Vec<u8>), usize>,
}

fn registry_err(path: &Path, detail: impl Into<String>) -> VerifyError {
    VerifyError::Registry {
        path: path.display().to_string(),
        detail: detail.into(),
    }
}

fn record_path(dir: &Path, host: &str) -> PathBuf {
    dir.join(format!("{host}.cbor"))
}

impl Registry {
    /// Read every host record of `dir` (which must exist).
    pub fn open(dir: &Path) -> Result<Registry, VerifyError> {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            registry_err(
                dir,
                format!("{e} (create it with the first `byok-verifier enroll --registry`)"),
            )
        })?;
        let mut reg = Registry::default();
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                !name.starts_with('.') && name.ends_with(".cbor")
            })
            .collect();
        files.sort();
        // Read and decoded on all cores (a fleet's registry has thousands of
        // records), then checked and indexed in file order.
        let records =
            crate::parallel::parallel(&files, &byok_protocol::progress::Progress::none(), |f| {
                let bytes = byok_protocol::files::read_capped(f, HostRecord::MAX_SIZE)
                    .map_err(|e| registry_err(f, e.to_string()))?;
                // Byte strings decode to vectors of their exact size: a
                // fleet's records stay small in memory.
                HostRecord::from_cbor(&bytes).map_err(|e| registry_err(f, e.to_string()))
            });
        for (f, rec) in files.iter().zip(records) {
            let rec = rec?;
            let stem = f.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            if rec.host != stem || !valid_id(&rec.host) {
                return Err(registry_err(
                    f,
                    format!(
                        "the record names host {:?}; its file must be <host>.cbor",
                        byok_protocol::text::inert(&rec.host)
                    ),
                ));
            }
            let i = reg.hosts.len();
            if let Some(other) = reg.by_ek.insert(rec.ek.name.to_vec(), i) {
                return Err(registry_err(
                    f,
                    format!(
                        "its EK is also enrolled as host {:?}: one EK, one host",
                        reg.hosts[other].host
                    ),
                ));
            }
            for (world, w) in &rec.worlds {
                if let Some(name) = ak_name(&w.ak_public) {
                    reg.by_ak.entry((world.to_string(), name)).or_insert(i);
                }
            }
            reg.hosts.push(rec);
        }
        Ok(reg)
    }

    pub fn hosts(&self) -> &[HostRecord] {
        &self.hosts
    }

    /// The record of the host with this EK.
    pub fn by_ek(&self, ek_name: &[u8]) -> Option<&HostRecord> {
        self.by_ek.get(ek_name).map(|i| &self.hosts[*i])
    }

    /// The record of the host whose AK for `world` has this Name.
    pub fn by_ak(&self, world: &str, ak_name: &[u8]) -> Option<&HostRecord> {
        self.by_ak
            .get(&(world.to_string(), ak_name.to_vec()))
            .map(|i| &self.hosts[*i])
    }

    pub fn by_host(&self, host: &str) -> Option<&HostRecord> {
        self.hosts.iter().find(|h| h.host == host)
    }

    /// Apply the registry to verified evidence: the enrolment check
    /// ([`check_enrolment`]) with this EK's record.
    pub fn check(&self, verified: &mut Verified, require: bool) -> Result<(), VerifyError> {
        let record = self.by_ek(&verified.ek_name);
        check_enrolment(record, verified, require)
    }
}

/// What an enrolment changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrolOutcome {
    /// A new host record.
    Created,
    /// A world added to (or its KEK name updated in) an existing host.
    Updated,
    /// The host already had this EK and this AK for this world.
    Unchanged,
    /// `--replace`: an existing record (another EK, another AK, another host
    /// name for this EK) was replaced.
    Replaced,
}

impl EnrolOutcome {
    pub fn describe(self) -> &'static str {
        match self {
            EnrolOutcome::Created => "enrolled",
            EnrolOutcome::Updated => "enrolled (record updated)",
            EnrolOutcome::Unchanged => "already enrolled (nothing changed)",
            EnrolOutcome::Replaced => "enrolled (replacing the earlier record)",
        }
    }
}

/// The default host name of an EK: "ek-" and the first 12 hex digits of its
/// certificate's SHA-256.
pub fn default_host_name(verified: &Verified) -> String {
    format!("ek-{}", &hex::encode(verified.ek_certificate_sha256)[..12])
}

/// Record `verified` (whose AK an activation proved: `AkBinding::Activated`)
/// in the registry at `dir` (created if missing), under `host` or the EK's
/// existing host name or [`default_host_name`]. Under the registry's lock:
/// a different EK under an existing host name, a second host name for an
/// enrolled EK, or another AK for an enrolled world is refused unless
/// `replace`.
pub fn enroll(
    dir: &Path,
    verified: &Verified,
    host: Option<&str>,
    replace: bool,
    now: u64,
) -> Result<(HostRecord, EnrolOutcome), VerifyError> {
    if verified.ak_binding != AkBinding::Activated {
        return Err(VerifyError::AkNotProven { what: "enrolment" });
    }
    if let Some(h) = host {
        if !valid_id(h) {
            return Err(VerifyError::Usage(format!(
                "--host {:?}: use 1-64 characters of A-Z a-z 0-9 . _ - (not starting with a dot)",
                byok_protocol::text::inert(h)
            )));
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| registry_err(dir, e.to_string()))?;
    let lock_path = dir.join(".lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| registry_err(&lock_path, e.to_string()))?;
    lock.lock()
        .map_err(|e| registry_err(&lock_path, e.to_string()))?;
    let reg = Registry::open(dir)?;
    let (record, outcome, replaced) = decide(&reg, verified, host, replace, now)?;
    if outcome != EnrolOutcome::Unchanged {
        byok_protocol::files::write_atomic(
            &record_path(dir, &record.host),
            &record.to_cbor(),
            0o644,
        )?;
        if let Some(old) = replaced {
            let old = record_path(dir, &old);
            std::fs::remove_file(&old).map_err(|e| registry_err(&old, e.to_string()))?;
            byok_protocol::files::sync_dir(dir)?;
        }
    }
    drop(lock);
    Ok((record, outcome))
}

// Long on purpose: the conflict rules as one match over what the registry
// holds for this host name and this EK.
/// What enrolling `verified` changes in `reg` (read under the lock): the
/// record to write, the outcome, and the host whose record it replaces
/// (this EK under another name, with `replace`). The conflicts of
/// [`enroll`] are refused here.
fn decide(
    reg: &Registry,
    verified: &Verified,
    host: Option<&str>,
    replace: bool,
    now: u64,
) -> Result<(HostRecord, EnrolOutcome, Option<String>), VerifyError> {
    let by_ek = reg.by_ek(&verified.ek_name).cloned();
    let name = match (host, &by_ek) {
        (Some(h), _) => h.to_string(),
        (None, Some(rec)) => rec.host.clone(),
        (None, None) => default_host_name(verified),
    };
    let world = EnrolledWorld {
        ak_public: ByteBuf::from(verified.ak_public.to_tpm2b()),
        kek_name: ByteBuf::from(verified.kek_name.clone()),
        enrolled: now,
    };
    let fresh = || HostRecord {
        kind: HOST_TYPE.into(),
        version: VERSION,
        host: name.clone(),
        ek: EnrolledEk {
            certificate_sha256: ByteBuf::from(verified.ek_certificate_sha256.to_vec()),
            name: ByteBuf::from(verified.ek_name.clone()),
            public: ByteBuf::from(verified.ek_public.to_tpm2b()),
        },
        worlds: [(verified.world.clone(), world.clone())]
            .into_iter()
            .collect(),
        enrolled: now,
    };
    // This EK under another host name.
    let mut remove = None;
    if let Some(rec) = by_ek.as_ref().filter(|r| r.host != name) {
        if !replace {
            return Err(VerifyError::EkEnrolledAs {
                host: rec.host.clone(),
            });
        }
        remove = Some(rec.host.clone());
    }
    let (record, outcome) = match reg.by_host(&name) {
        None if remove.is_some() => (fresh(), EnrolOutcome::Replaced),
        None => (fresh(), EnrolOutcome::Created),
        Some(rec) if rec.ek.name.as_slice() != verified.ek_name.as_slice() => {
            if !replace {
                return Err(VerifyError::HostEkConflict {
                    host: name.clone(),
                    enrolled: hex::encode(&rec.ek.certificate_sha256),
                });
            }
            (fresh(), EnrolOutcome::Replaced)
        }
        Some(rec) => {
            let mut rec = rec.clone();
            let outcome = match rec.worlds.get(&verified.world) {
                Some(w)
                    if ak_name(&w.ak_public).as_deref() != Some(verified.ak_name.as_slice()) =>
                {
                    if !replace {
                        return Err(VerifyError::WorldAkConflict {
                            host: name.clone(),
                            world: verified.world.clone(),
                        });
                    }
                    EnrolOutcome::Replaced
                }
                Some(w) if w.kek_name.as_slice() == verified.kek_name.as_slice() => {
                    EnrolOutcome::Unchanged
                }
                _ => EnrolOutcome::Updated,
            };
            if outcome != EnrolOutcome::Unchanged {
                rec.worlds.insert(verified.world.clone(), world);
            }
            (rec, outcome)
        }
    };
    Ok((record, outcome, remove))
}
