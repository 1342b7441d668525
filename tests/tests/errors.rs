//! Errors of the agent that name what is wrong and how to fix it, for the
//! cases that need a scratch directory (the golden cases are in
//! `tests/cmd/errors.md`): no TPM behind the TCTI, swtpm without its control
//! port, a state directory that is a file, a TCTI from the environment.

use assert_cmd::Command;
use predicates::prelude::*;
use std::net::TcpListener;
use tempfile::TempDir;

fn agent(tcti: &str, state: &std::path::Path) -> Command {
    let mut c = Command::cargo_bin("byok-agent").unwrap();
    c.arg("--tcti")
        .arg(tcti)
        .arg("--state-dir")
        .arg(state)
        .env_remove("TSS2_LOG")
        .env_remove("BYOK_TCTI")
        .env_remove("TPM2TOOLS_TCTI")
        .env_remove("TCTI");
    c
}

/// A port nothing listens on (bound, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn no_tpm_behind_the_tcti_is_named_with_what_to_start() {
    let dir = TempDir::new().unwrap();
    let port = free_port();
    let tcti = format!("swtpm:host=127.0.0.1,port={port}");
    agent(&tcti, &dir.path().join("state"))
        .args(["init", "--world", "eu"])
        .assert()
        .code(3)
        .stderr(format!(
            "byok-agent: error: cannot reach the TPM through TCTI \"{tcti}\": nothing listens on 127.0.0.1:{port}: is swtpm running? (start one with `tpm-setup/swtpm.sh start DIR`, which prints its TCTI, or `swtpm socket --tpm2 --server type=tcp,port={port} --ctrl type=tcp,port={} --tpmstate dir=DIR --flags startup-clear`)\n",
            port + 1
        ));

    // Something listens on the command port, but no control port beside it.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let tcti = format!("swtpm:host=127.0.0.1,port={port}");
    agent(&tcti, &dir.path().join("state"))
        .args(["init", "--world", "eu"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains(format!(
            "127.0.0.1:{port} answers, but swtpm's control port {} does not",
            port + 1
        )));

    let missing = dir.path().join("tpmrm9");
    agent(
        &format!("device:{}", missing.display()),
        &dir.path().join("state"),
    )
    .args(["init", "--world", "eu"])
    .assert()
    .code(3)
    .stderr(predicate::str::contains(format!(
        "{} does not exist: this host shows no TPM there (see `ls /dev/tpm*`",
        missing.display()
    )))
    .stderr(predicate::str::contains("response code").not());
}

#[test]
fn a_state_directory_that_is_a_file_is_named() {
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("state");
    std::fs::write(&file, b"").unwrap();
    for state in [file.clone(), file.join("sub")] {
        agent("swtpm:host=127.0.0.1,port=2321", &state)
            .args(["keys", "list"])
            .assert()
            .code(4)
            .stderr(format!(
                "byok-agent: error: the state directory {} cannot be used: {} is a file, not a directory; give another --state-dir (or BYOK_STATE_DIR), or move that file away\n",
                state.display(),
                file.display()
            ));
    }
}

#[test]
fn a_bad_tcti_from_the_environment_names_the_variable_and_creates_nothing() {
    let dir = TempDir::new().unwrap();
    let state = dir.path().join("state");
    let mut c = Command::cargo_bin("byok-agent").unwrap();
    c.arg("--state-dir")
        .arg(&state)
        .env_remove("BYOK_TCTI")
        .env("TPM2TOOLS_TCTI", "bogus:foo")
        .args(["init", "--world", "eu"])
        .assert()
        .code(2)
        .stderr(predicate::str::starts_with(
            "byok-agent: error: unknown TCTI \"bogus\" in \"bogus:foo\" (from TPM2TOOLS_TCTI): use device:/dev/tpmrm0",
        ));
    assert!(!state.exists(), "a usage error created the state directory");
    // What needs no TPM still works with that environment.
    let mut c = Command::cargo_bin("byok-agent").unwrap();
    c.env("TPM2TOOLS_TCTI", "bogus:foo")
        .args(["completions", "bash"])
        .assert()
        .success()
        .stderr("");
}
