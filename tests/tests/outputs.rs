//! Output files: an existing one is never replaced without `--force` (and
//! the refusal comes before any work); `-o -` is standard output, with no
//! status line mixed in; every command that writes says so in one line;
//! `keys delete` wants `--yes` when no terminal can confirm.

use byok_protocol::formats::{Document, Evidence, TransferPackage};
use byok_tests::{keygen, nonce, openssl, tpm_a, verifier, Host};
use predicates::prelude::*;
use predicates::str::contains;
use tempfile::TempDir;

// Long on purpose: one host, each output rule on the commands that write.
#[test]
fn outputs_are_never_replaced_silently_and_dash_is_stdout() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let wd = work.path();
    host.agent()
        .args(["init", "--world", "eu", "--compat-kek"])
        .assert()
        .success();
    let n = nonce();
    let ev = wd.join("eu.evidence");
    std::fs::write(&ev, b"keep me").unwrap();
    host.agent()
        .args(["evidence", "--world", "eu", "--nonce", &n, "-o"])
        .arg(&ev)
        .assert()
        .code(4)
        .stderr(contains("eu.evidence: exists; add --force to replace it"));
    assert_eq!(std::fs::read(&ev).unwrap(), b"keep me");
    host.agent()
        .args(["--force", "evidence", "--world", "eu", "--nonce", &n, "-o"])
        .arg(&ev)
        .assert()
        .success()
        .stdout(contains("evidence for world eu written to"));
    // -o -: the evidence itself on standard output, nothing else.
    let out = host
        .agent()
        .args(["evidence", "--world", "eu", "--nonce", &n, "-o", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    Evidence::from_cbor(&out.stdout).expect("stdout is the evidence document");
    assert!(!wd.join("-").exists());

    // The verifier: wrap to standard output, import from the file saved.
    let key = keygen("p256", wd.join("k.pem"));
    let out = verifier()
        .args(["wrap", "--nonce", &n, "--evidence"])
        .arg(&ev)
        .arg("--roots")
        .arg(&host.ca_bundle)
        .arg("--key")
        .arg(&key)
        .args(["-o", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    TransferPackage::from_cbor(&out.stdout).expect("stdout is the package");
    let pkg = wd.join("k.transfer");
    std::fs::write(&pkg, &out.stdout).unwrap();
    host.import("eu", "k", &pkg).success();
    // keygen to standard output: a PEM key, and an existing file refused.
    verifier()
        .args(["keygen", "--alg", "p256", "-o", "-"])
        .assert()
        .success()
        .stdout(contains("-----BEGIN PRIVATE KEY-----"));

    // Every command that writes says what it wrote.
    std::fs::write(wd.join("msg"), b"hello").unwrap();
    let sig = wd.join("sig");
    host.agent()
        .args(["sign", "--key", "k", "--in"])
        .arg(wd.join("msg"))
        .arg("-o")
        .arg(&sig)
        .assert()
        .success()
        .stdout(contains("signed").and(contains("signature in")));
    let public = wd.join("k.pub.pem");
    host.agent()
        .args(["public", "--key", "k", "-o"])
        .arg(&public)
        .assert()
        .success()
        .stdout(contains("public key of \"k\""));
    openssl()
        .args(["dgst", "-sha256", "-verify"])
        .arg(&public)
        .arg("-signature")
        .arg(&sig)
        .arg(wd.join("msg"))
        .assert()
        .success();
    // A signature to standard output is the DER signature alone.
    let out = host
        .agent()
        .args(["sign", "--key", "k", "--in"])
        .arg(wd.join("msg"))
        .args(["-o", "-"])
        .output()
        .unwrap();
    assert_eq!(out.stdout.first(), Some(&0x30), "a DER ECDSA signature");
    std::fs::write(wd.join("s"), b"s3").unwrap();
    host.agent()
        .args(["seal", "--world", "eu", "--name", "s", "--in"])
        .arg(wd.join("s"))
        .assert()
        .success();
    host.agent()
        .args(["unseal", "--name", "s", "-o"])
        .arg(wd.join("s.out"))
        .assert()
        .success()
        .stdout(contains("unsealed \"s\" (2 bytes)"));
    host.agent()
        .args(["kek", "export", "--world", "eu", "-o"])
        .arg(wd.join("kek.pem"))
        .assert()
        .success()
        .stdout(contains("compat KEK public key of world eu written to"));

    // keys delete: without a terminal to confirm, --yes or nothing.
    host.agent()
        .args(["keys", "delete", "k"])
        .assert()
        .code(2)
        .stderr(contains("add --yes"));
    host.sign("k", wd).success();
    host.agent()
        .args(["keys", "delete", "k", "--yes"])
        .assert()
        .success();
    host.sign("k", wd).code(6);
}
