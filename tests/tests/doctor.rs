//! `byok-agent doctor`: a ready swtpm passes; a swtpm made to show every
//! problem doctor knows (no EK certificate, an owner password, lockout, the
//! sha256 bank deallocated, persistent storage full) gets each named with
//! its fix, and a non-zero exit.

use byok_tests::{tpm_a, Host};
use predicates::prelude::*;
use predicates::str::contains;
use tempfile::TempDir;

#[test]
fn a_ready_host_passes() {
    let host = Host::new(tpm_a());
    // An agent state (the agent makes its directory 0700).
    host.agent().args(["keys", "list"]).assert().success();
    host.agent()
        .arg("doctor")
        .assert()
        .success()
        .stdout(contains("ok    ek-certificate: in NV: rsa (0x01c00002)"))
        .stdout(contains("ok    pcr-banks"))
        .stdout(contains("FIX").not())
        .stderr("");
    host.agent()
        .args(["doctor", "--json"])
        .assert()
        .success()
        .stdout(contains("\"ready\":true"));
}

/// Three wrong passwords for a DA-protected object: swtpm locks out.
fn lock_out(host: &Host, work: &std::path::Path) {
    let prim = work.join("da.ctx");
    host.tpm2("tpm2_createprimary")
        .args(["-C", "o", "-G", "ecc256", "-p", "right", "-c"])
        .arg(&prim)
        .assert()
        .success();
    for _ in 0..3 {
        host.tpm2("tpm2_create")
            .arg("-C")
            .arg(&prim)
            .args(["-P", "wrong", "-G", "ecc256", "-u"])
            .arg(work.join("x.pub"))
            .arg("-r")
            .arg(work.join("x.priv"))
            .assert()
            .failure();
    }
    host.tpm2("tpm2_flushcontext").arg("-t").assert().success();
}

// Long on purpose: five problems made on one swtpm, each asserted.
#[test]
fn every_problem_is_named_with_its_fix() {
    let mut host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let wd = work.path();
    host.agent().args(["keys", "list"]).assert().success();
    host.fill_persistent_storage(wd);
    lock_out(&host, wd);
    host.tpm2("tpm2_pcrallocate")
        .arg("sha1:all+sha256:none")
        .assert()
        .success();
    host.tpm.restart();
    host.remove_ek_certificates();
    host.tpm2("tpm2_changeauth")
        .args(["-c", "o", "pw"])
        .assert()
        .success();

    host.agent()
        .arg("doctor")
        .assert()
        .code(13)
        .stdout(contains("FIX   ek-certificate: no EK certificate in NV"))
        .stdout(contains("--ek-cert FILE"))
        .stdout(contains(
            "FIX   pcr-banks: the sha256 PCR bank is not allocated",
        ))
        .stdout(contains("tpm2_pcrallocate sha256:all"))
        .stdout(contains(
            "FIX   persistent-storage: no room for another KEK",
        ))
        .stdout(contains("FIX   dictionary-attack: in lockout"))
        .stdout(contains("tpm2_dictionarylockout --clear-lockout"))
        .stdout(contains(
            "FIX   owner-password: the owner hierarchy has a password",
        ))
        .stdout(contains("--owner-auth"))
        .stderr(contains("not ready for byok-agent: 5 problem(s)"));
    host.agent()
        .args(["--owner-auth", "str:pw", "doctor", "--json"])
        .assert()
        .code(13)
        .stdout(contains("\"ready\":false"))
        .stdout(contains("\"check\":\"owner-password\",\"status\":\"ok\""));
}
