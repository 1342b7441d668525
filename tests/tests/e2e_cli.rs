//! The command line end to end: bad arguments, `inspect` of every file type,
//! and a policy file that supplies roots and reference PCRs.

use assert_cmd::Command;
use byok_protocol::formats::{Document, Evidence};
use byok_protocol::hash::HashAlg;
use byok_tests::{keygen, nonce, tpm_a, verifier, world, wrap, Host};
use predicates::str::contains;
use std::path::Path;
use tempfile::TempDir;

fn evidence_of(p: &Path) -> Evidence {
    Evidence::from_cbor(&std::fs::read(p).unwrap()).unwrap()
}

/// Relabel a package as if made for `ev` (world, KEK and AK names): the

#[test]
fn bad_arguments_get_one_clear_line() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    host.agent()
        .args([
            "evidence",
            "--world",
            "nope",
            "--nonce",
            "0011223344556677",
            "-o",
        ])
        .arg(work.path().join("e"))
        .assert()
        .code(6)
        .stderr(contains("world \"nope\" is not initialised"));
    host.agent()
        .args(["init", "--world", "../etc"])
        .assert()
        .code(2)
        .stderr(contains("invalid world"));
    host.agent()
        .args(["evidence", "--world", "eu", "--nonce", "0011", "-o"])
        .arg(work.path().join("e"))
        .assert()
        .code(2)
        .stderr(contains("--nonce"));
    host.agent()
        .args(["sign", "--key", "missing", "--in", "/dev/null", "-o"])
        .arg(work.path().join("s"))
        .assert()
        .code(6);
    let key = work.path().join("k.pem");
    keygen("p256", &key);
    verifier()
        .args(["keygen", "--alg", "p256", "-o"])
        .arg(&key)
        .assert()
        .code(4)
        .stderr(contains("k.pem: exists; add --force to replace it"));
    // A key type outside the listed ones is a usage error (clap lists them).
    verifier()
        .args(["keygen", "--alg", "dsa", "-o"])
        .arg(work.path().join("d.pem"))
        .assert()
        .code(2)
        .stderr(contains(
            "[possible values: rsa2048, rsa3072, rsa4096, p256, p384, aes128, aes256, hmac-sha256]",
        ));
    std::fs::write(work.path().join("junk"), b"\xa1\x61x\x01").unwrap();
    verifier()
        .args(["inspect"])
        .arg(work.path().join("junk"))
        .assert()
        .code(3)
        .stderr(contains("not a tpm-byok file"));
    // A TCTI that goes nowhere.
    Command::cargo_bin("byok-agent")
        .unwrap()
        .args(["--tcti", "swtpm:host=127.0.0.1,port=1", "--state-dir"])
        .arg(work.path().join("st"))
        .args(["init", "--world", "eu"])
        .env("TSS2_LOG", "all+none")
        .assert()
        .code(3)
        .stderr(contains("cannot reach the TPM through TCTI"));
    // The host check names what to fix.
    Command::cargo_bin("byok-agent")
        .unwrap()
        .args(["--tcti", "device:/dev/no-such-tpm", "--state-dir"])
        .arg(work.path().join("st"))
        .arg("doctor")
        .env("TSS2_LOG", "all+none")
        .assert()
        .code(13)
        .stdout(contains(
            "FIX   tpm: cannot use the TPM through device:/dev/no-such-tpm",
        ));
}

// Long on purpose: one swtpm per test costs seconds, so the checks that share a host share a test, in order.
#[test]
fn inspect_decodes_every_file_type() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let w = world(&host, "eu", work.path());
    let key = work.path().join("k.pem");
    keygen("p384", &key);
    let pkg = work.path().join("k.transfer");
    wrap(&host, &w, &key, &pkg).success();
    host.import("eu", "k", &pkg).success();
    let receipt = work.path().join("k.receipt");
    host.agent()
        .args(["attest-key", "--key", "k", "--nonce", &w.nonce, "-o"])
        .arg(&receipt)
        .assert()
        .success();
    for (file, expect) in [
        (&w.evidence, "tpm-byok/evidence"),
        (&pkg, "tpm-byok/transfer"),
        (&receipt, "tpm-byok/receipt"),
    ] {
        let out = verifier()
            .arg("inspect")
            .arg("--json")
            .arg(file)
            .output()
            .unwrap();
        assert!(out.status.success());
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["type"], expect);
        assert_eq!(v["world"], "eu");
        verifier()
            .arg("inspect")
            .arg(file)
            .assert()
            .success()
            .stdout(contains(format!("type: {expect}")));
    }
    let v: serde_json::Value = serde_json::from_slice(
        &verifier()
            .args(["inspect", "--json"])
            .arg(&pkg)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(
        v["key"]["public"]["attributes"],
        serde_json::json!(["userWithAuth", "noDA", "decrypt", "sign"])
    );
    assert_eq!(v["key"]["public"]["auth_policy"], "");
    let v: serde_json::Value = serde_json::from_slice(
        &verifier()
            .args(["inspect", "--json"])
            .arg(&w.evidence)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(v["checks"]["tpm_signed_claims"]
        .as_str()
        .unwrap()
        .starts_with("pass"));
    assert_eq!(
        v["kek"]["public"]["attributes"],
        serde_json::json!([
            "fixedTPM",
            "fixedParent",
            "sensitiveDataOrigin",
            "userWithAuth",
            "noDA",
            "restricted",
            "decrypt"
        ])
    );
    assert!(v["quote"]["attest"]["reset_count"].is_number());
    // A tampered file shows the failed check.
    let mut ev = evidence_of(&w.evidence);
    let last = ev.kek.certify.signature.len() - 1;
    ev.kek.certify.signature[last] ^= 1;
    let bad = work.path().join("bad.evidence");
    std::fs::write(&bad, ev.to_cbor()).unwrap();
    verifier()
        .arg("inspect")
        .arg(&bad)
        .assert()
        .success()
        .stdout(contains("FAIL: KEK certify: signature does not verify"));
}

#[test]
fn policy_file_supplies_roots_and_reference_pcrs() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let w = world(&host, "eu", work.path());
    let ev = evidence_of(&w.evidence);
    let pcr = |i: u32| hex::encode(&ev.quote.pcrs[&HashAlg::Sha256][&i]);
    let policy = work.path().join("policy.toml");
    let write_policy = |pcr7: &str, extra: &str| {
        std::fs::write(
            &policy,
            format!(
                "[defaults]\nmin_rsa_bits = 2048\n\n[worlds.eu]\nroots = [{:?}]\n\n[worlds.eu.pcrs.sha256]\n0 = \"{}\"\n7 = \"{pcr7}\"\n{extra}",
                host.ca_bundle.display().to_string(),
                pcr(0)
            ),
        )
        .unwrap();
    };
    let verify = |evidence: &Path, n: &str| {
        verifier()
            .args(["verify", "--nonce", n, "--world", "eu", "--policy"])
            .arg(&policy)
            .arg("--evidence")
            .arg(evidence)
            .assert()
    };
    // Roots from the policy, and the reference values match.
    write_policy(&pcr(7), "");
    verify(&w.evidence, &w.nonce).success();

    // The platform state changes (PCR 7 extended in the TPM): refused by name.
    host.tpm2("tpm2_pcrextend")
        .arg("7:sha256=0000000000000000000000000000000000000000000000000000000000000001")
        .assert()
        .success();
    let n = nonce();
    let after = work.path().join("after.evidence");
    host.evidence("eu", &n, &after);
    verify(&after, &n)
        .code(10)
        .stdout(contains("PCR sha256:7 is"));
    // And wrap refuses too, writing nothing.
    let key = work.path().join("k.pem");
    keygen("p256", &key);
    let out = work.path().join("k.transfer");
    verifier()
        .args(["wrap", "--nonce", &n, "--world", "eu", "--policy"])
        .arg(&policy)
        .arg("--evidence")
        .arg(&after)
        .arg("--key")
        .arg(&key)
        .arg("-o")
        .arg(&out)
        .assert()
        .code(10);
    assert!(!out.exists());

    // A reference PCR the quote does not cover.
    write_policy(
        &pcr(7),
        "9 = \"0000000000000000000000000000000000000000000000000000000000000000\"\n",
    );
    verify(&w.evidence, &w.nonce).code(10).stdout(contains(
        "the policy sets PCR sha256:9, but the quote does not cover it",
    ));
    // A policy mistake is named.
    std::fs::write(&policy, "[worlds.eu]\nroots = []\nallow_sha3 = true\n").unwrap();
    verify(&w.evidence, &w.nonce)
        .code(3)
        .stderr(contains("unknown field"));
}
