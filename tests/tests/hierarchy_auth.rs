//! A TPM whose owner and endorsement hierarchies have passwords (set with
//! `tpm2_changeauth`): the agent takes them as tpm2-tools' `-P` does
//! (str:, hex:, file:, env:), names a missing or wrong one, and never prints it.

use byok_tests::{keygen, nonce, tpm_a, Host};
use predicates::prelude::*;
use predicates::str::contains;
use tempfile::TempDir;

const OWNER: &str = "owner-S3cret";
const ENDORSEMENT: &str = "endorse-S3cret";

// Long on purpose: one swtpm with passwords, every form and command against it.
#[test]
fn hierarchy_passwords_are_taken_and_a_missing_one_is_named() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let wd = work.path();
    host.tpm2("tpm2_changeauth")
        .args(["-c", "o", OWNER])
        .assert()
        .success();
    host.tpm2("tpm2_changeauth")
        .args(["-c", "e", ENDORSEMENT])
        .assert()
        .success();
    let secret_free = || contains(OWNER).not().and(contains(ENDORSEMENT).not());

    // Without the passwords, or with a wrong one: named, nothing written.
    host.agent()
        .args(["init", "--world", "eu"])
        .assert()
        .code(3)
        .stderr(contains("--owner-auth"))
        .stderr(secret_free());
    host.agent()
        .args(["--owner-auth", "str:wrong", "init", "--world", "eu"])
        .assert()
        .code(3)
        .stderr(contains("a wrong one"));
    assert!(!host.state.path().join("worlds/eu.cbor").exists());

    let pwfile = wd.join("owner.pw");
    std::fs::write(&pwfile, OWNER).unwrap();
    let owner_file = format!("file:{}", pwfile.display());
    let endorsement_hex = format!("hex:{}", hex::encode(ENDORSEMENT));
    let with_auth = |args: &[&str]| {
        let mut c = host.agent();
        c.args([
            "--owner-auth",
            &owner_file,
            "--endorsement-auth",
            &endorsement_hex,
        ])
        .args(args);
        c
    };
    with_auth(&["init", "--world", "eu"])
        .assert()
        .success()
        .stderr("");
    // A PCR-bound KEK: PolicySecret(owner) on every use.
    with_auth(&[
        "init",
        "--world",
        "pcr",
        "--kek-alg",
        "p256",
        "--pcrs",
        "sha256:0,7",
    ])
    .assert()
    .success();
    with_auth(&[
        "key", "create", "--world", "pcr", "--name", "bound", "--alg", "p256",
    ])
    .assert()
    .success();

    // Evidence needs the endorsement password (the AK loads under the EK).
    let n = nonce();
    let ev = wd.join("eu.evidence");
    host.agent()
        .args([
            "--owner-auth",
            &format!("str:{OWNER}"),
            "evidence",
            "--world",
            "eu",
            "--nonce",
            &n,
            "-o",
        ])
        .arg(&ev)
        .assert()
        .code(3)
        .stderr(contains("--endorsement-auth"))
        .stderr(secret_free());
    with_auth(&[
        "evidence",
        "--world",
        "eu",
        "--nonce",
        &n,
        "-o",
        ev.to_str().unwrap(),
    ])
    .assert()
    .success();
    let pkg = wd.join("k.transfer");
    let world = byok_tests::World {
        nonce: n.clone(),
        evidence: ev.clone(),
    };
    byok_tests::wrap_with(
        &host,
        &world,
        &keygen("p256", wd.join("k.pem")),
        &pkg,
        &["--world", "eu"],
    )
    .success();
    // env: keeps the password out of the process list.
    host.agent()
        .env("BYOK_TEST_OWNER", OWNER)
        .env("BYOK_TEST_ENDORSEMENT", ENDORSEMENT)
        .args([
            "--owner-auth",
            "env:BYOK_TEST_OWNER",
            "--endorsement-auth",
            "env:BYOK_TEST_ENDORSEMENT",
            "import",
            "--world",
            "eu",
            "--name",
            "k",
            "--in",
        ])
        .arg(&pkg)
        .assert()
        .success();
    with_auth(&["sign", "--key", "bound", "--in"])
        .arg(&pwfile)
        .arg("-o")
        .arg(wd.join("bound.sig"))
        .assert()
        .success();
    host.sign("k", wd).success();
    // A bad form is a usage error that does not echo the value.
    host.agent()
        .args(["--owner-auth", "hex:zz-S3cret", "worlds", "list"])
        .assert()
        .code(2)
        .stderr(contains("S3cret").not());
}
