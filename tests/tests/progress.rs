//! Progress on a terminal: run under `script` (a real pseudo-terminal), a
//! TPM key generation shows its spinner and a batch of evidence files its
//! bar; with `-q`, or without a terminal (tests/tests/quiet.rs), nothing.
//! And `-v`: a trace line per TPM command.

use byok_tests::{nonce, tpm_a, Host};
use std::process::Command;
use tempfile::TempDir;

/// Run `args` of `bin` on a pseudo-terminal; returns what the terminal got
/// (stdout and stderr together) and whether the command succeeded.
fn on_terminal(host: &Host, bin: &str, args: &[String]) -> (String, bool) {
    let mut line = shell_quote(&assert_cmd::cargo::cargo_bin(bin).display().to_string());
    for a in args {
        line.push(' ');
        line.push_str(&shell_quote(a));
    }
    let out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env_remove("TSS2_LOG")
        .env("BYOK_LOCK_DIR", host.tpm.dir.path())
        .output()
        .expect("script (util-linux)");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.success(),
    )
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[test]
fn key_generation_and_batches_show_progress_on_a_terminal_only() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    host.init("eu");
    let agent_args = |extra: &[&str]| -> Vec<String> {
        let mut v = vec![
            "--tcti".to_string(),
            host.tpm.tcti(),
            "--state-dir".to_string(),
            host.state.path().display().to_string(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let (seen, ok) = on_terminal(
        &host,
        "byok-agent",
        &agent_args(&[
            "key", "create", "--world", "eu", "--name", "k", "--alg", "rsa3072",
        ]),
    );
    assert!(ok, "{seen}");
    assert!(
        seen.contains("the TPM is generating the key (TPM2_Create)"),
        "no spinner: {seen:?}"
    );
    let (seen, ok) = on_terminal(
        &host,
        "byok-agent",
        &agent_args(&[
            "-q", "key", "create", "--world", "eu", "--name", "k2", "--alg", "rsa3072",
        ]),
    );
    assert!(ok, "{seen}");
    assert!(seen.is_empty(), "-q drew on the terminal: {seen:?}");

    // A batch of five evidence files: a bar, cleared before the reports.
    let n = nonce();
    let dir = work.path().join("evidence");
    std::fs::create_dir(&dir).unwrap();
    host.evidence("eu", &n, &dir.join("e0"));
    for i in 1..5 {
        std::fs::copy(dir.join("e0"), dir.join(format!("e{i}"))).unwrap();
    }
    let (seen, ok) = on_terminal(
        &host,
        "byok-verifier",
        &[
            "verify".into(),
            "--nonce".into(),
            n.clone(),
            "--roots".into(),
            host.ca_bundle.display().to_string(),
            "--evidence".into(),
            dir.display().to_string(),
        ],
    );
    assert!(ok, "{seen}");
    assert!(seen.contains("evidence files verified"), "no bar: {seen:?}");
    assert!(seen.contains("5 ok, 0 failed"), "{seen}");

    // -v: each TPM command with its response code, nothing else on stderr.
    let out = host
        .agent()
        .env_remove("TSS2_LOG")
        .args(["-v", "evidence", "--world", "eu", "--nonce", &n, "-o"])
        .arg(work.path().join("traced"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for cmd in ["TPM2_Certify", "TPM2_Quote", "TPM2_PCR_Read"] {
        assert!(
            stderr.contains(&format!("byok-agent: tpm: {cmd}: TPM_RC_SUCCESS\n")),
            "{cmd} not traced: {stderr}"
        );
    }
    assert!(
        stderr
            .lines()
            .all(|l| l.starts_with("byok-agent: tpm: TPM2_")),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("evidence for world eu written"));
}
