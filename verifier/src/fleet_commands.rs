//! The fleet commands (docs/fleet.md): `nonces`, `wrap --nonces --out-dir`
//! and `check-receipt --receipts --nonces`. Each prints one line per host
//! and a summary ("3 wrapped, 1 failed"), or with `--json` one object; the
//! exit code is the most serious failure's, 0 only when every host passed.

use crate::cli::{proof, CheckReceiptArgs, NoncesArgs, WrapArgs, WrapFormat};
use crate::commands::{shown, usage};
use byok_protocol::fleet::{NonceSet, MAX_NONCES_SIZE};
use byok_protocol::keys::{SymmetricKey, SymmetricKind, TargetKey, TpmObjectKey};
use byok_protocol::text::inert;
use byok_verifier::batch::thousands;
use byok_verifier::cloud::{self, Cloud, CloudKey, KeyType};
use byok_verifier::error::{Failure, VerifyError};
use byok_verifier::fleet::{self, FleetTarget, HostLine};
use byok_verifier::pipeline::Pipeline;
use byok_verifier::registry::Registry;
use byok_verifier::{batch, read, write_output};
use serde::Serialize;
use std::path::Path;

type Result<T> = std::result::Result<T, VerifyError>;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn nonces(a: NoncesArgs) -> Result<()> {
    byok_protocol::output::check_output(&a.out)?;
    let registry = Registry::open(&a.registry)?;
    let enrolled: Vec<String> = registry
        .hosts()
        .iter()
        .filter(|h| h.worlds.contains_key(&a.world))
        .map(|h| h.host.clone())
        .collect();
    let hosts = match &a.hosts {
        None => enrolled,
        Some(asked) => {
            let missing: Vec<&str> = asked
                .iter()
                .filter(|h| !enrolled.contains(h))
                .map(|h| h.as_str())
                .collect();
            if !missing.is_empty() {
                return Err(usage(&format!(
                    "not enrolled for world {:?} in {}: {} (enroll them first, or leave them out)",
                    inert(&a.world),
                    shown(&a.registry),
                    inert(&missing.join(", "))
                )));
            }
            asked.clone()
        }
    };
    if hosts.is_empty() {
        return Err(usage(&format!(
            "no host of {} is enrolled for world {:?}: enroll hosts first",
            shown(&a.registry),
            inert(&a.world)
        )));
    }
    let set = NonceSet::fresh(a.world.clone(), hosts, now());
    write_output(&a.out, &set.to_json(), 0o644)?;
    byok_protocol::said_to!(
        &a.out,
        "wrote a nonce for each of {} host(s) of world {:?} to {}",
        thousands(set.hosts.len()),
        inert(&set.world),
        shown(&a.out)
    );
    Ok(())
}

fn read_nonces(path: &Path) -> Result<NonceSet> {
    let bytes = read(path, MAX_NONCES_SIZE)?;
    NonceSet::from_json(&bytes).map_err(|e| VerifyError::Usage(format!("{}: {e}", shown(path))))
}

#[derive(Serialize)]
struct FleetReport<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    world: &'a str,
    ok: usize,
    failed: usize,
    hosts: Vec<HostLine>,
    /// check-receipt: the hosts of the world (enrolled) that hold the key,
    /// and those that do not.
    #[serde(skip_serializing_if = "Option::is_none")]
    holders: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lacking: Option<Vec<String>>,
    /// check-receipt: hosts enrolled for the world that the nonce set leaves out.
    #[serde(skip_serializing_if = "Option::is_none")]
    not_asked: Option<Vec<String>>,
}

fn label(host: &Option<String>, file: &Option<std::path::PathBuf>) -> String {
    match (host, file) {
        (Some(h), Some(f)) => format!("{} ({})", inert(h), shown(f)),
        (Some(h), None) => inert(h).into_owned(),
        (None, Some(f)) => shown(f),
        (None, None) => "?".into(),
    }
}

/// Print the report and turn the worst failure into the exit code.
fn finish(report: FleetReport, json: bool, done: &str, worst: Option<Failure>) -> Result<()> {
    if json {
        println!("{}", byok_verifier::report::json_line(&report));
    } else {
        for h in &report.hosts {
            let who = label(&h.host, &h.file.as_ref().map(Into::into));
            match (&h.package, &h.key_name, &h.reason) {
                (_, _, Some(reason)) => println!("FAIL {who}: {}", inert(reason)),
                (Some(p), _, _) => println!("OK   {who}: {}", inert(p)),
                (_, Some(k), _) => println!("OK   {who}: holds key {k}"),
                _ => println!("OK   {who}"),
            }
        }
        if let (Some(holders), Some(lacking)) = (&report.holders, &report.lacking) {
            println!(
                "roster of world {:?}: {} hold(s) the key{}{}",
                inert(report.world),
                thousands(holders.len()),
                if holders.is_empty() { "" } else { ": " },
                inert(&holders.join(", "))
            );
            if !lacking.is_empty() {
                println!("  without it: {}", inert(&lacking.join(", ")));
            }
            if let Some(not_asked) = report.not_asked.as_ref().filter(|n| !n.is_empty()) {
                println!(
                    "  not asked (enrolled, not in the nonce file): {}",
                    inert(&not_asked.join(", "))
                );
            }
        }
        if !byok_protocol::output::quiet() {
            println!(
                "{} {done}, {} failed",
                thousands(report.ok),
                thousands(report.failed)
            );
        }
    }
    match worst {
        Some(worst) => Err(VerifyError::FleetFailed {
            failed: report.failed,
            total: report.ok + report.failed,
            worst,
        }),
        None => Ok(()),
    }
}

/// Keep the most serious failure's kind (a failed check first).
fn keep_worst(worst: &mut Option<Failure>, e: &VerifyError) {
    let f = e.failure();
    if worst.is_none_or(|w| f.severity() > w.severity()) {
        *worst = Some(f);
    }
}

pub fn wrap(a: &WrapArgs, key: &[u8]) -> Result<()> {
    // Which flags go with which format: commands::check_format_flags.
    match a.format {
        WrapFormat::Tpm => {}
        WrapFormat::Azure => {
            if a.kek_public.is_some() || a.kid.is_some() || a.base64 {
                return Err(usage(
                    "a fleet wrap --format azure wraps for each host's compat KEK, taken from its verified evidence: --kek-public, --kid and --base64 do not apply",
                ));
            }
        }
        WrapFormat::Gcp | WrapFormat::Aws => {
            return Err(usage(
                "a fleet wrap (--nonces) writes for each host's TPM: --format tpm (transfer packages) or azure (.byok files for the hosts' compat KEKs); gcp and aws wrap for the cloud's own KEK, once per key, without --nonces",
            ));
        }
    }
    let (Some(nonces), Some(out_dir), Some(evidence)) = (&a.nonces, &a.out_dir, &a.evidence) else {
        return Err(usage(
            "a fleet wrap needs --nonces, --out-dir, --registry and --evidence DIR",
        ));
    };
    let nonces = read_nonces(nonces)?;
    if let Some(w) = &a.world {
        if *w != nonces.world {
            return Err(usage(&format!(
                "--world {:?}, but the nonces are for world {:?}",
                inert(w),
                inert(&nonces.world)
            )));
        }
    }
    // The key, read once, in the form the format carries.
    enum FleetKey {
        Tpm(Box<dyn TpmObjectKey + Sync>),
        Cloud(CloudKey),
    }
    let fleet_key = match (a.format, a.key_type) {
        (WrapFormat::Azure, kind) => {
            let key = CloudKey::read(key, kind)?;
            // Refused once here, not once per host: what needs no host's KEK.
            cloud::check_method_and_key(Cloud::Azure, a.method, &key)?;
            FleetKey::Cloud(key)
        }
        (_, KeyType::Auto) => FleetKey::Tpm(Box::new(TargetKey::from_bytes(key)?)),
        (_, KeyType::Aes) => FleetKey::Tpm(Box::new(SymmetricKey::new(SymmetricKind::Aes, key)?)),
        (_, KeyType::Hmac) => {
            FleetKey::Tpm(Box::new(SymmetricKey::new(SymmetricKind::HmacSha256, key)?))
        }
    };
    let target = match &fleet_key {
        FleetKey::Cloud(key) => FleetTarget::CompatByok {
            key,
            method: a.method,
        },
        FleetKey::Tpm(key) => FleetTarget::Package {
            key: key.as_ref(),
            label: a.label.as_ref(),
            key_pcrs: a.key_pcrs.as_ref(),
        },
    };
    let mut flags = proof(&a.registered, Some(&a.answer));
    // Every host of a fleet is proven by its enrolment.
    flags.require_enrolled = true;
    // The pipeline's own nonce is never used: each host has its own.
    let pipeline = Pipeline::new(
        &a.trust.flags(),
        &flags,
        Vec::new(),
        Some(nonces.world.clone()),
    )?;
    let files = batch::list_files(std::slice::from_ref(evidence))?;
    let outcomes = fleet::wrap_fleet(&pipeline, &nonces, &files, &target, out_dir)?;
    let mut worst = None;
    let mut lines = Vec::new();
    let (mut ok, mut failed) = (0, 0);
    for o in outcomes {
        let (package, reason) = match &o.result {
            Ok(p) => {
                ok += 1;
                (Some(p.display().to_string()), None)
            }
            Err(e) => {
                failed += 1;
                keep_worst(&mut worst, e);
                (None, Some(e.to_string()))
            }
        };
        lines.push(HostLine {
            host: o.host,
            file: o.file.map(|f| f.display().to_string()),
            ok: o.result.is_ok(),
            package,
            key_name: None,
            reason,
        });
    }
    let report = FleetReport {
        kind: "tpm-byok/fleet-wrap",
        world: &nonces.world,
        ok,
        failed,
        hosts: lines,
        holders: None,
        lacking: None,
        not_asked: None,
    };
    if !a.json && ok > 0 {
        let file = format!("HOST.{}", target.extension());
        byok_protocol::say!(
            "next: copy each {file} of {} to its host and run there: byok-agent import --world {} --in {file} --name NAME",
            shown(out_dir),
            inert(&nonces.world)
        );
    }
    finish(report, a.json, "wrapped", worst)
}

pub fn check_receipts(a: &CheckReceiptArgs) -> Result<()> {
    let (Some(receipts), Some(nonces)) = (&a.receipts, &a.nonces) else {
        return Err(usage(
            "a fleet check-receipt needs --receipts, --nonces and --registry",
        ));
    };
    let nonces = read_nonces(nonces)?;
    let mut flags = proof(&a.registered, Some(&a.answer));
    flags.require_enrolled = true;
    let pipeline = Pipeline::new(
        &a.trust.flags(),
        &flags,
        Vec::new(),
        Some(nonces.world.clone()),
    )?;
    let files = batch::list_files(receipts)?;
    let outcomes = fleet::check_receipts(&pipeline, &nonces, &files, a.transfers.as_deref())?;
    let mut worst = None;
    let mut lines = Vec::new();
    let (mut ok, mut failed) = (0, 0);
    let mut holders = Vec::new();
    for o in outcomes {
        let (key_name, reason) = match &o.result {
            Ok(k) => {
                ok += 1;
                if let Some(h) = &o.host {
                    holders.push(h.clone());
                }
                (Some(k.clone()), None)
            }
            Err(e) => {
                failed += 1;
                keep_worst(&mut worst, e);
                (None, Some(e.to_string()))
            }
        };
        lines.push(HostLine {
            host: o.host,
            file: o.file.map(|f| f.display().to_string()),
            ok: o.result.is_ok(),
            package: None,
            key_name,
            reason,
        });
    }
    holders.sort();
    let registry = pipeline
        .registry()
        .ok_or_else(|| usage("a fleet check-receipt needs --registry"))?;
    let enrolled = registry
        .hosts()
        .iter()
        .filter(|h| h.worlds.contains_key(&nonces.world) && !holders.contains(&h.host));
    let (lacking, not_asked): (Vec<String>, Vec<String>) = enrolled
        .map(|h| h.host.clone())
        .partition(|h| nonces.hosts.contains_key(h));
    let report = FleetReport {
        kind: "tpm-byok/fleet-receipts",
        world: &nonces.world,
        ok,
        failed,
        hosts: lines,
        holders: Some(holders),
        lacking: Some(lacking),
        not_asked: Some(not_asked),
    };
    finish(report, a.json, "hold the key", worst)
}
