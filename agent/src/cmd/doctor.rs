//! `doctor`: is this host ready for byok-agent, and if not, what to do. Each
//! check says ok, FIX (with the fix) or note; the command exits 0 only when
//! nothing needs fixing. It reads the TPM and the state and changes neither
//! (intents an interrupted command left are reported, not settled), beyond
//! what every agent start does (flushing what a killed agent left).

use crate::context::Ctx;
use crate::error::{AgentError, Result};
use crate::tpm::{EkKind, Tpm, ENDORSEMENT_AUTH_SET, OWNER_AUTH_SET};
use serde::Serialize;
use std::os::unix::fs::MetadataExt;

#[derive(Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    Fix,
    Note,
}

#[derive(Serialize)]
struct Check {
    check: &'static str,
    status: Status,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

#[derive(Serialize)]
struct Report {
    ready: bool,
    checks: Vec<Check>,
}

#[derive(Default)]
struct Checks(Vec<Check>);

impl Checks {
    fn ok(&mut self, check: &'static str, detail: String) {
        self.0.push(Check {
            check,
            status: Status::Ok,
            detail,
            fix: None,
        });
    }
    fn fix(&mut self, check: &'static str, detail: String, fix: String) {
        self.0.push(Check {
            check,
            status: Status::Fix,
            detail,
            fix: Some(fix),
        });
    }
    fn note(&mut self, check: &'static str, detail: String) {
        self.0.push(Check {
            check,
            status: Status::Note,
            detail,
            fix: None,
        });
    }
}

pub fn doctor(ctx: &Ctx, json: bool) -> Result<()> {
    let mut c = Checks::default();
    match ctx.tpm_as_found() {
        Ok(mut tpm) => tpm_checks(ctx, &mut tpm, &mut c)?,
        Err(e) => c.fix(
            "tpm",
            format!("cannot use the TPM through {}: {e}", ctx.tcti),
            "check the device (/dev/tpmrm0 present, readable and writable by this user: group tss) or pass --tcti"
                .into(),
        ),
    }
    state_checks(ctx, &mut c);
    let ready = !c.0.iter().any(|x| x.status == Status::Fix);
    let report = Report { ready, checks: c.0 };
    if json {
        println!(
            "{}",
            serde_json::to_string(&report).map_err(|e| AgentError::Protocol(e.to_string()))?
        );
    } else {
        for x in &report.checks {
            let tag = match x.status {
                Status::Ok => "ok   ",
                Status::Fix => "FIX  ",
                Status::Note => "note ",
            };
            println!("{tag} {}: {}", x.check, x.detail);
            if let Some(f) = &x.fix {
                println!("      fix: {f}");
            }
        }
    }
    if ready {
        Ok(())
    } else {
        let n = report
            .checks
            .iter()
            .filter(|x| x.status == Status::Fix)
            .count();
        Err(AgentError::NotReady(n))
    }
}

// Long on purpose: one check after another, each with its fix.
fn tpm_checks(ctx: &Ctx, tpm: &mut Tpm, c: &mut Checks) -> Result<()> {
    c.note(
        "tcti",
        format!(
            "{} ({})",
            ctx.tcti,
            if tpm.resource_manager {
                "resource manager: objects of other programs are swapped, not shared"
            } else {
                "no resource manager: three transient slots shared with every program"
            }
        ),
    );
    let id = tpm.identity()?;
    c.note(
        "tpm",
        format!(
            "manufacturer {} ({}), firmware {}.{}",
            id.manufacturer,
            id.vendor,
            id.firmware >> 48,
            (id.firmware >> 32) & 0xffff
        ),
    );

    // EK certificates, by template.
    let present = tpm.nv_indices(0x01c0_0000, 0x01c0_00ff)?;
    let certs: Vec<String> = EkKind::ALL
        .into_iter()
        .filter(|k| present.contains(&k.certificate_index()))
        .map(|k| format!("{} ({:#010x})", k.name(), k.certificate_index()))
        .collect();
    if certs.is_empty() {
        c.fix(
            "ek-certificate",
            "no EK certificate in NV (0x01c00002 RSA, 0x01c0000a ECC P-256, 0x01c00016 ECC P-384)".into(),
            "if the manufacturer publishes it online: `init --ek rsa --ek-cert-elsewhere` and `evidence --ek-cert FILE`; otherwise ask the platform vendor".into(),
        );
    } else {
        c.ok("ek-certificate", format!("in NV: {}", certs.join(", ")));
    }
    let chain = tpm.nv_indices(0x01c0_0100, 0x01c0_01ff)?;
    if !chain.is_empty() {
        c.note(
            "ek-chain",
            format!(
                "{} chain index(es) in 0x01c00100..0x01c001ff (shipped with evidence)",
                chain.len()
            ),
        );
    }

    // PCR banks (sha256 carries the quote and PCR bindings).
    let banks = tpm.pcr_banks()?;
    let listed: Vec<String> = banks
        .iter()
        .map(|(b, n)| format!("{b}: {n} PCRs"))
        .collect();
    match banks.iter().find(|(b, _)| b == "sha256") {
        Some((_, n)) if *n > 0 => c.ok("pcr-banks", listed.join(", ")),
        _ => c.fix(
            "pcr-banks",
            format!(
                "the sha256 PCR bank is not allocated ({})",
                listed.join(", ")
            ),
            "enable it in firmware, or `tpm2_pcrallocate sha256:all` and restart the TPM (reboot)"
                .into(),
        ),
    }

    // Room for KEKs.
    let room = tpm.persistent_room()?;
    // The TPM's figure is an estimate (NV is shared with indices and sized
    // per object): below two, the next KEK may well not fit.
    if room < 2 {
        c.fix(
            "persistent-storage",
            format!("no room for another KEK (TPM_PT_HR_PERSISTENT_AVAIL {room}, an estimate)"),
            "`byok-agent kek gc`; `byok-agent worlds list` shows orphans; `tpm2_getcap handles-persistent` and `tpm2_evictcontrol -C o -c HANDLE` for objects nobody uses".into(),
        );
    } else {
        c.ok(
            "persistent-storage",
            format!("room for about {room} more persistent object(s)"),
        );
    }

    // Dictionary-attack state.
    let da = tpm.da_state()?;
    if da.in_lockout {
        c.fix(
            "dictionary-attack",
            format!(
                "in lockout ({} of {} failures; unclean restarts count)",
                da.failures, da.max_tries
            ),
            format!(
                "wait (one failure is forgiven every {} s) or `tpm2_dictionarylockout --clear-lockout` with the lockout authorisation; stop swtpm with TPM2_Shutdown (tpm-setup/swtpm.sh stop)",
                da.recovery_secs
            ),
        );
    } else {
        c.ok(
            "dictionary-attack",
            format!(
                "not in lockout ({} of {} failures)",
                da.failures, da.max_tries
            ),
        );
    }

    // Hierarchy passwords.
    let permanent = da.permanent;
    for (bit, given, name, opt) in [
        (
            OWNER_AUTH_SET,
            ctx.auth.owner.is_some(),
            "owner",
            "--owner-auth",
        ),
        (
            ENDORSEMENT_AUTH_SET,
            ctx.auth.endorsement.is_some(),
            "endorsement",
            "--endorsement-auth",
        ),
    ] {
        let check = if name == "owner" {
            "owner-password"
        } else {
            "endorsement-password"
        };
        match (permanent & bit != 0, given) {
            (false, _) => c.ok(check, format!("the {name} hierarchy has no password")),
            (true, true) => c.ok(
                check,
                format!("the {name} hierarchy has a password; {opt} given"),
            ),
            (true, false) => c.fix(
                check,
                format!("the {name} hierarchy has a password"),
                format!("pass it to every command with {opt} (str:, hex:, file:, env:)"),
            ),
        }
    }

    // Orphans and interrupted commands, if there is a state.
    if ctx.state_dir.join("worlds").is_dir() {
        let state = ctx.state()?;
        let named: Vec<u32> = state
            .worlds()?
            .items
            .iter()
            .flat_map(|w| std::iter::once(w.kek.handle).chain(w.retired.iter().map(|k| k.handle)))
            .collect();
        let orphans: Vec<String> = tpm
            .kek_range_handles()?
            .into_iter()
            .filter(|h| !named.contains(h))
            .map(|h| format!("{h:#010x}"))
            .collect();
        if !orphans.is_empty() {
            c.note(
                "orphans",
                format!(
                    "persistent objects in the KEK range no world here names: {} (another state directory's, or leaked; see `worlds list`)",
                    orphans.join(", ")
                ),
            );
        }
        let intents = state.intents()?.items.len();
        if intents > 0 {
            c.note(
                "interrupted",
                format!(
                    "{intents} intent(s) of an interrupted command; the next command settles them"
                ),
            );
        }
    }
    Ok(())
}

fn state_checks(ctx: &Ctx, c: &mut Checks) {
    let dir = &ctx.state_dir;
    match std::fs::metadata(dir) {
        Err(_) => c.note(
            "state-directory",
            format!(
                "{} does not exist yet (`init` creates it, mode 0700)",
                dir.display()
            ),
        ),
        Ok(m) if !m.is_dir() => c.fix(
            "state-directory",
            format!("{} is not a directory", dir.display()),
            "move it away or pass --state-dir".into(),
        ),
        Ok(m) => {
            let me = std::fs::metadata("/proc/self")
                .map(|p| p.uid())
                .unwrap_or(0);
            if m.uid() != me {
                c.fix(
                    "state-directory",
                    format!(
                        "{} belongs to uid {}, not to this user",
                        dir.display(),
                        m.uid()
                    ),
                    "run as its owner, or pass --state-dir".into(),
                );
            } else if m.mode() & 0o077 != 0 {
                c.fix(
                    "state-directory",
                    format!(
                        "{} is mode {:o}: others can read it",
                        dir.display(),
                        m.mode() & 0o777
                    ),
                    format!("chmod 700 {}", dir.display()),
                );
            } else {
                c.ok("state-directory", format!("{} (mode 700)", dir.display()));
            }
        }
    }
}
