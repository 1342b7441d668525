//! Fleets (docs/fleet.md): one key to every enrolled host of a world.
//!
//! Stateless apart from the registry: `nonces` gives each host of the world
//! a fresh nonce; `wrap` finds each evidence file's host by its EK in the
//! registry, verifies it against that host's nonce (its AK proven by the
//! enrolment) and writes one package per host that passes (a transfer
//! package, or a `.byok` file for the host's compat KEK); `check-receipt`
//! gives one verdict per host and the roster of the hosts that hold the key.
//!
//! Work runs on all cores. Each worker reads, verifies and wraps one file at
//! a time and keeps only its small result (a package is about 1.5 KB), so
//! memory grows with the number of hosts by kilobytes, not by evidence files.

use crate::cloud::{self, Cloud, CloudKey, CloudMethod};
use crate::error::{Failure, VerifyError};
use crate::parallel::{in_windows, parallel};
use crate::pipeline::Pipeline;
use crate::receipt::{check_receipt_trusted, ReceiptTrust};
use crate::registry::Registry;
use crate::verify::Verified;
use byok_protocol::fleet::NonceSet;
use byok_protocol::formats::{Document, Evidence, Receipt, TransferPackage};
use byok_protocol::keys::TpmObjectKey;
use byok_protocol::policy::PcrSpec;
use byok_protocol::public::TpmtPublic;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What happened to one host (or to one file no host claims).
#[derive(Debug)]
pub struct HostOutcome {
    /// The registry's name; `None` for a file whose EK is not enrolled.
    pub host: Option<String>,
    /// The evidence or receipt file, when there was one.
    pub file: Option<PathBuf>,
    pub result: Result<PathBuf, VerifyError>,
}

/// The evidence's EK Name, read before anything is verified: it only picks
/// the host (and so the nonce) that every later check is held to.
fn ek_name(ev: &Evidence) -> Result<Vec<u8>, VerifyError> {
    TpmtPublic::parse_tpm2b(&ev.ek.public)
        .map(|p| p.name())
        .map_err(|source| VerifyError::Malformed {
            field: "EK public",
            source,
        })
}

/// What a fleet wrap writes for each verified host.
pub enum FleetTarget<'a> {
    /// A transfer package (`wrap --format tpm`): TPM2_Import under the KEK,
    /// bound by its credential to the TPM of the EK and AK.
    Package {
        key: &'a (dyn TpmObjectKey + Sync),
        label: Option<&'a String>,
        key_pcrs: Option<&'a PcrSpec>,
    },
    /// An Azure `.byok` file for the host's compat KEK (`wrap --format
    /// azure`): the weaker path of docs/cloud.md, for hosts whose AK the
    /// registry proves.
    CompatByok {
        key: &'a CloudKey,
        method: Option<CloudMethod>,
    },
}

impl FleetTarget<'_> {
    /// The file name suffix of a host's transfer package.
    pub const PACKAGE_EXTENSION: &'static str = "transfer";

    /// The file name suffix of what is written for a host.
    pub fn extension(&self) -> &'static str {
        match self {
            FleetTarget::Package { .. } => Self::PACKAGE_EXTENSION,
            FleetTarget::CompatByok { .. } => "byok",
        }
    }

    /// The bytes for one verified host.
    fn wrap_for(&self, v: &Verified) -> Result<Vec<u8>, VerifyError> {
        match self {
            FleetTarget::Package {
                key,
                label,
                key_pcrs,
            } => Ok(crate::wrap::wrap(v, *key, label.cloned(), *key_pcrs)?.to_cbor()),
            FleetTarget::CompatByok { key, method } => {
                let kek = cloud::compat_kek_public(v)?;
                let plan = cloud::plan(Cloud::Azure, *method, key, &kek.key)?;
                cloud::wrap(Cloud::Azure, &plan, &kek, None, key)
            }
        }
    }
}

/// One evidence file: its host, and what is written for it.
fn wrap_one(
    file: &Path,
    pipeline: &Pipeline,
    registry: &Registry,
    nonces: &NonceSet,
    target: &FleetTarget,
) -> (Option<String>, Result<Vec<u8>, VerifyError>) {
    let ev = match pipeline.read_evidence(file) {
        Ok(ev) => ev,
        Err(e) => return (None, Err(e)),
    };
    let host = match ek_name(&ev) {
        Ok(name) => registry.by_ek(&name).map(|r| r.host.clone()),
        Err(e) => return (None, Err(e)),
    };
    let Some(host) = host else {
        return (None, Err(VerifyError::FleetEkNotEnrolled));
    };
    let Some(nonce) = nonces.hosts.get(&host) else {
        return (Some(host.clone()), Err(VerifyError::FleetNoNonce { host }));
    };
    let r = pipeline
        .check_with_nonce(&ev, Some(nonce.as_bytes()))
        .and_then(|v| {
            if v.world != nonces.world {
                return Err(VerifyError::WorldMismatch {
                    expected: nonces.world.clone(),
                    found: v.world.clone(),
                });
            }
            target.wrap_for(&v)
        });
    (Some(host), r)
}

/// The file written for `host` in `out_dir`: `HOST.transfer` or `HOST.byok`.
pub fn package_path(out_dir: &Path, host: &str, extension: &str) -> PathBuf {
    out_dir.join(format!("{host}.{extension}"))
}

/// Wrap for every host of `nonces` whose evidence is in `files`. Each
/// host's file is written as `OUT/<host>.transfer` or `.byok` (never
/// replacing one without `--force`); every host of the nonce set and every
/// file gets an outcome, in host order then file order.
pub fn wrap_fleet(
    pipeline: &Pipeline,
    nonces: &NonceSet,
    files: &[PathBuf],
    target: &FleetTarget,
    out_dir: &Path,
) -> Result<Vec<HostOutcome>, VerifyError> {
    let registry = pipeline
        .registry()
        .ok_or_else(|| VerifyError::Usage("a fleet wrap needs --registry".into()))?;
    std::fs::create_dir_all(out_dir).map_err(crate::error::io(out_dir))?;
    // The target key's public area once, not once per host.
    let prepared;
    let target = match target {
        FleetTarget::Package {
            key,
            label,
            key_pcrs,
        } => {
            prepared = byok_protocol::keys::PreparedKey::new(*key);
            &FleetTarget::Package {
                key: &prepared,
                label: *label,
                key_pcrs: *key_pcrs,
            }
        }
        other => other,
    };
    let progress =
        byok_protocol::progress::Progress::bar(files.len(), "hosts verified and wrapped");
    // Which file's package each host gets: the first that passed, in file
    // order; a second passing file for a host is refused, not written.
    let mut outcomes = Vec::with_capacity(files.len());
    let mut done: std::collections::HashMap<String, PathBuf> = Default::default();
    in_windows(
        files,
        &progress,
        |f| wrap_one(f, pipeline, registry, nonces, target),
        |window, results| {
            let mut packages: Vec<(usize, PathBuf, Vec<u8>)> = Vec::new();
            for (file, (host, result)) in window.iter().zip(results) {
                let result = match (&host, result) {
                    (Some(h), Ok(package)) => match done.get(h) {
                        Some(first) => Err(VerifyError::FleetDuplicate {
                            host: h.clone(),
                            first: first.display().to_string(),
                        }),
                        None => {
                            done.insert(h.clone(), file.clone());
                            let path = package_path(out_dir, h, target.extension());
                            packages.push((outcomes.len(), path.clone(), package));
                            Ok(path)
                        }
                    },
                    (_, Err(e)) => Err(e),
                    (None, Ok(_)) => Err(VerifyError::FleetEkNotEnrolled),
                };
                outcomes.push(HostOutcome {
                    host,
                    file: Some(file.clone()),
                    result,
                });
            }
            // Written on all cores, each file fsynced (a crash never leaves
            // a partial package); the directory is synced once at the end.
            let written = parallel(
                &packages,
                &byok_protocol::progress::Progress::none(),
                |(i, path, package)| {
                    (
                        *i,
                        byok_protocol::output::write_output_in_batch(path, package, 0o644),
                    )
                },
            );
            for (i, r) in written {
                if let Err(e) = r {
                    outcomes[i].result = Err(e.into());
                }
            }
            Ok::<(), VerifyError>(())
        },
    )?;
    drop(progress);
    byok_protocol::files::sync_dir(out_dir)?;
    let hosts_seen: std::collections::HashSet<&str> =
        outcomes.iter().filter_map(|o| o.host.as_deref()).collect();
    let mut missing = Vec::new();
    for host in nonces.hosts.keys() {
        if !hosts_seen.contains(host.as_str()) {
            missing.push(HostOutcome {
                host: Some(host.clone()),
                file: None,
                result: Err(VerifyError::FleetNoEvidence { host: host.clone() }),
            });
        }
    }
    outcomes.extend(missing);
    Ok(outcomes)
}
/// One receipt file: its host (by its AK among the world's enrolled AKs)
/// and the verdict.
fn check_one(
    file: &Path,
    pipeline: &Pipeline,
    registry: &Registry,
    nonces: &NonceSet,
    transfers: Option<&Path>,
) -> (Option<String>, Result<String, VerifyError>) {
    let r: Receipt = match crate::read_document(file, "receipt", Receipt::MAX_SIZE) {
        Ok(r) => r,
        Err(e) => return (None, Err(e)),
    };
    let ak_name = match TpmtPublic::parse_tpm2b(&r.ak.public) {
        Ok(p) => p.name(),
        Err(source) => {
            return (
                None,
                Err(VerifyError::Malformed {
                    field: "receipt AK public",
                    source,
                }),
            )
        }
    };
    let record = registry.by_ak(&nonces.world, &ak_name);
    let Some(record) = record else {
        return (None, Err(VerifyError::FleetAkNotEnrolled));
    };
    let host = record.host.clone();
    let Some(nonce) = nonces.hosts.get(&host) else {
        return (Some(host.clone()), Err(VerifyError::FleetNoNonce { host }));
    };
    let verdict = (|| {
        // The KEK the key must live under: the one its package was made for
        // (made by this verifier from verified evidence of this AK), else
        // the one enrolled.
        let transfer = match transfers {
            Some(dir) => {
                let t: TransferPackage = crate::read_document(
                    &package_path(dir, &host, FleetTarget::PACKAGE_EXTENSION),
                    "transfer package",
                    TransferPackage::MAX_SIZE,
                )?;
                if t.ak_name.as_ref() != ak_name.as_slice() || t.world != nonces.world {
                    return Err(VerifyError::ReceiptAkMismatch);
                }
                Some(t)
            }
            None => None,
        };
        let kek_name = match &transfer {
            Some(t) => t.kek_name.to_vec(),
            None => record.worlds[&nonces.world].kek_name.to_vec(),
        };
        let trust = ReceiptTrust::from_enrolment(record, &nonces.world, kek_name)?;
        let policy = pipeline.for_world(&nonces.world)?;
        let report = check_receipt_trusted(
            &r,
            &trust,
            nonce.as_bytes(),
            &policy.opts.policy,
            transfer.as_ref(),
        )?;
        Ok(hex::encode(report.key_name))
    })();
    (Some(host), verdict)
}

/// A host's verdict on its receipt.
#[derive(Debug)]
pub struct ReceiptOutcome {
    pub host: Option<String>,
    pub file: Option<PathBuf>,
    /// The certified key's Name.
    pub result: Result<String, VerifyError>,
}

/// Check every receipt in `files` for the hosts of `nonces`; every host of
/// the nonce set and every file gets an outcome.
pub fn check_receipts(
    pipeline: &Pipeline,
    nonces: &NonceSet,
    files: &[PathBuf],
    transfers: Option<&Path>,
) -> Result<Vec<ReceiptOutcome>, VerifyError> {
    let registry = pipeline
        .registry()
        .ok_or_else(|| VerifyError::Usage("a fleet check-receipt needs --registry".into()))?;
    let progress = byok_protocol::progress::Progress::bar(files.len(), "receipts checked");
    let results = parallel(files, &progress, |f| {
        check_one(f, pipeline, registry, nonces, transfers)
    });
    drop(progress);
    let mut outcomes = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (file, (host, result)) in files.iter().zip(results) {
        let result = match (&host, result) {
            (Some(h), Ok(_)) if !seen.insert(h.clone()) => Err(VerifyError::FleetDuplicate {
                host: h.clone(),
                first: "another receipt".into(),
            }),
            (_, r) => r,
        };
        outcomes.push(ReceiptOutcome {
            host,
            file: Some(file.clone()),
            result,
        });
    }
    let hosts_seen: std::collections::HashSet<String> =
        outcomes.iter().filter_map(|o| o.host.clone()).collect();
    for host in nonces.hosts.keys() {
        if !hosts_seen.contains(host) {
            outcomes.push(ReceiptOutcome {
                host: Some(host.clone()),
                file: None,
                result: Err(VerifyError::FleetNoReceipt { host: host.clone() }),
            });
        }
    }
    Ok(outcomes)
}

/// One line of a fleet report (`--json`: one object with all of them).
#[derive(Serialize)]
pub struct HostLine {
    pub host: Option<String>,
    pub file: Option<String>,
    pub ok: bool,
    /// The package written (wrap) or the certified key's Name (receipts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The most serious failure of a run, for its exit code.
pub fn worst<'a>(errors: impl Iterator<Item = &'a VerifyError>) -> Option<Failure> {
    errors.map(|e| e.failure()).max_by_key(|f| f.severity())
}
