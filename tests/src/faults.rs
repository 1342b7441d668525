//! Crash injection: run an agent command under strace, killed (SIGKILL) at
//! the N-th call of one system call, for every N the command reaches; after
//! each kill, a retry and a comparison of what the TPM holds with what the
//! state names.

use crate::Host;
use std::collections::BTreeSet;
use std::process::Command;

/// The system calls at which a command is killed: every write (state files
/// and each TPM command sent to swtpm), rename, fsync and unlink.
pub const CALLS: [&str; 4] = ["write", "rename", "fsync", "unlink"];

/// How many times `args` (an agent command) makes each of [`CALLS`], from
/// one uninterrupted run under strace (which must succeed).
pub fn count_calls(host: &Host, args: &[&str]) -> Vec<(&'static str, usize)> {
    let log = tempfile::NamedTempFile::new().expect("strace log");
    let out = strace(
        host,
        args,
        &format!("trace={}", CALLS.join(",")),
        log.path(),
    );
    assert!(
        out.status.success(),
        "{args:?} under strace failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(log.path()).expect("strace log");
    CALLS
        .iter()
        .map(|c| {
            let n = text
                .lines()
                .filter(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .is_some_and(|s| s.starts_with(&format!("{c}(")))
                })
                .count();
            (*c, n)
        })
        .collect()
}

/// Run `args` killed at the `n`-th `call`. Returns true if the kill happened
/// (false: the command ended first).
pub fn killed_at(host: &Host, args: &[&str], call: &str, n: usize) -> bool {
    let log = tempfile::NamedTempFile::new().expect("strace log");
    let out = strace(
        host,
        args,
        &format!("inject={call}:signal=KILL:when={n}"),
        log.path(),
    );
    !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("SIGKILL")
        || std::fs::read_to_string(log.path())
            .unwrap_or_default()
            .contains("+++ killed by SIGKILL")
}

fn strace(host: &Host, args: &[&str], expr: &str, log: &std::path::Path) -> std::process::Output {
    agent_under_strace(host, args, expr, log)
        .output()
        .expect("run strace (tpm-setup/install-deps.sh installs it)")
}

/// The host's agent running `args` under `strace -f -e EXPR` (log in `log`),
/// with the environment `Host::agent` gives it.
pub fn agent_under_strace(
    host: &Host,
    args: &[&str],
    expr: &str,
    log: &std::path::Path,
) -> Command {
    let mut c = Command::new("strace");
    c.args(["-f", "-qq", "-o"])
        .arg(log)
        .arg("-e")
        .arg(expr)
        .arg(assert_cmd::cargo::cargo_bin("byok-agent"))
        .arg("--tcti")
        .arg(host.tpm.tcti())
        .arg("--state-dir")
        .arg(host.state.path())
        .args(args)
        .env("TSS2_LOG", "all+none")
        .env("BYOK_LOCK_DIR", host.tpm.dir.path());
    c
}

/// Persistent handles in the KEK range, as tpm2-tools sees them.
pub fn kek_range_in_tpm(host: &Host) -> BTreeSet<u32> {
    let out = host
        .tpm2("tpm2_getcap")
        .arg("handles-persistent")
        .output()
        .expect("tpm2_getcap");
    assert!(
        out.status.success(),
        "tpm2_getcap handles-persistent failed"
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- 0x"))
        .filter_map(|h| u32::from_str_radix(h.trim(), 16).ok())
        .filter(|h| (0x8100_0100..=0x8100_01ff).contains(h))
        .collect()
}

/// The KEK handles the agent's state names (current and retired), from
/// `worlds list --json`, and the orphans it reports.
pub fn kek_handles_named(host: &Host) -> (BTreeSet<u32>, Vec<String>) {
    let out = host
        .agent()
        .args(["worlds", "list", "--json"])
        .output()
        .expect("worlds list");
    assert!(
        out.status.success(),
        "worlds list --json failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("worlds list JSON");
    let hex = |h: &serde_json::Value| {
        u32::from_str_radix(h.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
    };
    let mut named = BTreeSet::new();
    for w in v["worlds"].as_array().unwrap() {
        named.insert(hex(&w["kek"]["handle"]));
        for r in w["retired"].as_array().unwrap() {
            named.insert(hex(&r["handle"]));
        }
    }
    let orphans = v["orphans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().unwrap().to_string())
        .collect();
    (named, orphans)
}

/// What one sweep found.
#[derive(Default, Debug)]
pub struct Sweep {
    /// Kill points tried (the command was killed there).
    pub points: usize,
    /// Retries that failed.
    pub failed_retries: Vec<String>,
    /// Points after which (and a retry) the TPM held KEK-range objects the
    /// state did not name, or the state named objects the TPM lacked.
    pub leaks: Vec<String>,
}
