//! The TPM itself in trouble: dictionary-attack lockout after unclean
//! restarts, and a TPM lost in the middle of a command. Each is named as
//! such (its own exit code, or the TPM-error code), never as a refusal of
//! the package.

use byok_tests::{keygen, nonce, tpm_a, world, wrap, Host};
use predicates::prelude::*;
use predicates::str::contains;
use tempfile::TempDir;

/// Replace world `w`'s AK by `tpm2_createak`'s (an AK without noDA, as
/// agents before this version made them) in its state file.
fn give_world_an_ak_without_noda(host: &Host, w: &str, work: &std::path::Path) {
    let (pubf, privf) = (work.join("ak.pub"), work.join("ak.priv"));
    host.tpm2("tpm2_createak")
        .args(["-C", "0x81010001", "-c"])
        .arg(work.join("ak.ctx"))
        .args(["-G", "rsa", "-g", "sha256", "-s", "rsassa", "-u"])
        .arg(&pubf)
        .arg("-r")
        .arg(&privf)
        .assert()
        .success();
    host.tpm2("tpm2_flushcontext").arg("-t").assert().success();
    host.tpm2("tpm2_flushcontext").arg("-s").assert().success();
    let path = host.state.path().join(format!("worlds/{w}.cbor"));
    let mut v: ciborium::Value = ciborium::from_reader(&std::fs::read(&path).unwrap()[..]).unwrap();
    for (k, val) in v.as_map_mut().unwrap() {
        match k.as_text() {
            Some("ak_public") => *val = ciborium::Value::Bytes(std::fs::read(&pubf).unwrap()),
            Some("ak_private") => *val = ciborium::Value::Bytes(std::fs::read(&privf).unwrap()),
            _ => {}
        }
    }
    let mut out = Vec::new();
    ciborium::into_writer(&v, &mut out).unwrap();
    std::fs::write(&path, out).unwrap();
}

// Long on purpose: five unclean restarts cost seconds, so both AK kinds share them.
#[test]
fn five_unclean_restarts_lock_out_nothing_the_agent_made() {
    let mut host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let wd = work.path();
    let w = world(&host, "eu", wd);
    let pkg = wd.join("k.transfer");
    wrap(&host, &w, &keygen("p256", wd.join("k.pem")), &pkg).success();
    host.init("old");
    give_world_an_ak_without_noda(&host, "old", wd);
    host.agent()
        .args(["evidence", "--world", "old", "--nonce", &nonce(), "-o"])
        .arg(wd.join("old.evidence"))
        .assert()
        .success();

    // A non-orderly stop counts as a failure when a DA-protected object was
    // used since the last orderly one: the old AK is, before each.
    for i in 0..5 {
        let _ = host
            .agent()
            .args(["evidence", "--world", "old", "--nonce", &nonce(), "-o"])
            .arg(wd.join(format!("old-{i}.evidence")))
            .output();
        host.evidence("eu", &nonce(), &wd.join(format!("eu-{i}.evidence")));
        host.tpm.restart(); // killed: no TPM2_Shutdown
    }
    // The TPM is in lockout: a DA-protected object is refused...
    host.agent()
        .args(["evidence", "--world", "old", "--nonce", &nonce(), "-o"])
        .arg(wd.join("old2.evidence"))
        .assert()
        .code(12)
        .stderr(contains("dictionary-attack lockout"))
        .stderr(contains("tpm2_dictionarylockout --clear-lockout"));
    // ...but the agent's own objects carry noDA and work.
    host.evidence("eu", &nonce(), &wd.join("eu2.evidence"));
    host.import("eu", "k", &pkg).success();
    host.agent()
        .args(["attest-key", "--key", "k", "--nonce", &nonce(), "-o"])
        .arg(wd.join("k.receipt"))
        .assert()
        .success();
    host.sign("k", wd).success();
    // Cleared with the (empty) lockout authorisation, the old AK works again.
    host.tpm2("tpm2_dictionarylockout")
        .arg("--clear-lockout")
        .assert()
        .success();
    host.agent()
        .args(["evidence", "--world", "old", "--nonce", &nonce(), "-o"])
        .arg(wd.join("old3.evidence"))
        .assert()
        .success();
}

/// Run `args` with its `n`-th write (a TPM command, or a state file) held
/// back 1.5 s, and swtpm killed meanwhile.
fn lose_the_tpm_during(host: &mut Host, args: &[&str], n: usize) -> std::process::Output {
    let child = byok_tests::faults::agent_under_strace(
        host,
        args,
        &format!("inject=write:delay_enter=1500000:when={n}"),
        std::path::Path::new("/dev/null"),
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    host.tpm.kill();
    let out = child.wait_with_output().unwrap();
    host.tpm.start_again();
    out
}

#[test]
fn a_tpm_lost_mid_command_is_named_and_changes_nothing() {
    let mut host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let wd = work.path();
    let w = world(&host, "eu", wd);
    let pkg = wd.join("k.transfer");
    wrap(&host, &w, &keygen("p256", wd.join("k.pem")), &pkg).success();
    let pkg_s = pkg.to_str().unwrap().to_string();
    let import = [
        "import",
        "--world",
        "eu",
        "--name",
        "k",
        "--in",
        pkg_s.as_str(),
    ];
    let ev = wd.join("e.evidence");
    let n = nonce();
    let evidence = [
        "evidence",
        "--world",
        "eu",
        "--nonce",
        &n,
        "-o",
        ev.to_str().unwrap(),
    ];
    for (args, write) in [(&import[..], 6), (&evidence[..], 4)] {
        let out = lose_the_tpm_during(&mut host, args, write);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {stderr}");
        assert!(
            predicate::str::contains("lost the connection to the TPM (TCTI swtpm:").eval(&stderr),
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains("nothing was changed"), "{stderr}");
        for wrong in ["altered", "no EK certificate", "refused"] {
            assert!(!stderr.contains(wrong), "{args:?} misdiagnosed: {stderr}");
        }
    }
    assert!(host.stored_keys().is_empty());
    assert!(!ev.exists());
    // The TPM back, the same commands work.
    host.import("eu", "k", &pkg).success();
    host.evidence("eu", &nonce(), &ev);
}
