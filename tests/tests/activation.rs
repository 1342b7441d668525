//! Verification before activation: `byok-verifier challenge` ->
//! `byok-agent activate` -> `byok-verifier verify --activation`, and evidence
//! whose AK and KEK are software keys claiming TPM attributes beside a genuine
//! EK certificate: it passes plain `verify` (evidence alone cannot prove the
//! AK-EK binding, and verify says so), fails `verify --activation`, and its
//! package cannot be imported by the real TPM that owns the EK.

use byok_protocol::formats::{Challenge, Document, Evidence};
use byok_protocol::public::TpmtPublic;
use byok_tests::forgery::forge;
use byok_tests::{keygen, nonce, tpm_a, verifier, Host};
use predicates::str::contains;
use serde_bytes::ByteBuf;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

fn verify_cmd(host: &Host, ev: &Path, n: &str) -> assert_cmd::Command {
    let mut c = verifier();
    c.args(["verify", "--nonce", n, "--evidence"])
        .arg(ev)
        .arg("--roots")
        .arg(&host.ca_bundle);
    c
}

fn challenge(host: &Host, ev: &Path, n: &str, out: &Path) -> assert_cmd::assert::Assert {
    verifier()
        .args(["challenge", "--nonce", n, "--evidence"])
        .arg(ev)
        .arg("--roots")
        .arg(&host.ca_bundle)
        .arg("-o")
        .arg(out)
        .assert()
}

#[test]
fn activation_proves_the_ak_ek_binding() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let w = work.path();
    host.init("eu");
    let n = nonce();
    let ev = w.join("eu.evidence");
    host.evidence("eu", &n, &ev);
    verify_cmd(&host, &ev, &n)
        .assert()
        .success()
        .stdout(contains("enforced by the TPM at import"));
    challenge(&host, &ev, &n, &w.join("c.cbor")).success();
    host.agent()
        .args(["activate", "--world", "eu", "--in"])
        .arg(w.join("c.cbor"))
        .arg("-o")
        .arg(w.join("a.cbor"))
        .assert()
        .success();
    verify_cmd(&host, &ev, &n)
        .arg("--challenge")
        .arg(w.join("c.cbor"))
        .arg("--activation")
        .arg(w.join("a.cbor"))
        .assert()
        .success()
        .stdout(contains("AK-EK link: proven"));
    // A second challenge: the first answer does not fit it.
    challenge(&host, &ev, &n, &w.join("c2.cbor")).success();
    verify_cmd(&host, &ev, &n)
        .arg("--challenge")
        .arg(w.join("c2.cbor"))
        .arg("--activation")
        .arg(w.join("a.cbor"))
        .assert()
        .code(10)
        .stderr(contains("the returned secret is not the challenge's"));
}

// Long on purpose: one swtpm per test costs seconds, so the checks that share a host share a test, in order.
#[test]
fn software_ak_and_kek_beside_a_genuine_ek_fail_activation_and_import() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let w = work.path();
    host.init("eu");
    let n = nonce();
    let genuine_path = w.join("genuine.evidence");
    host.evidence("eu", &n, &genuine_path);
    let forged =
        forge(&Evidence::from_cbor(&std::fs::read(&genuine_path).unwrap()).unwrap()).evidence;
    let forged_path: PathBuf = w.join("forged.evidence");
    std::fs::write(&forged_path, forged.to_cbor()).unwrap();

    // Evidence alone cannot tell: every signed field is consistent. verify says
    // the binding is left to the TPM at import.
    verify_cmd(&host, &forged_path, &n)
        .assert()
        .success()
        .stdout(contains("enforced by the TPM at import"));

    // The challenge for the forged AK cannot be answered by the real TPM ...
    challenge(&host, &forged_path, &n, &w.join("c.cbor")).success();
    host.agent()
        .args(["activate", "--world", "eu", "--in"])
        .arg(w.join("c.cbor"))
        .arg("-o")
        .arg(w.join("a.cbor"))
        .assert()
        .code(7);
    // ... not even relabelled with the real AK's name: the credential is bound to the forged name.
    let mut ch = Challenge::from_cbor(&std::fs::read(w.join("c.cbor")).unwrap()).unwrap();
    let genuine = Evidence::from_cbor(&std::fs::read(&genuine_path).unwrap()).unwrap();
    ch.ak_name = ByteBuf::from(TpmtPublic::parse_tpm2b(&genuine.ak.public).unwrap().name());
    std::fs::write(w.join("relabelled.cbor"), ch.to_cbor()).unwrap();
    host.agent()
        .args(["activate", "--world", "eu", "--in"])
        .arg(w.join("relabelled.cbor"))
        .arg("-o")
        .arg(w.join("a.cbor"))
        .assert()
        .code(8)
        .stderr(contains("TPM2_ActivateCredential"));
    // The refusal left nothing loaded in the TPM: no transient object, no session.
    for what in ["handles-transient", "handles-loaded-session"] {
        let out = host.tpm2("tpm2_getcap").arg(what).assert().success();
        assert!(
            out.get_output().stdout.is_empty(),
            "{what}: {}",
            String::from_utf8_lossy(&out.get_output().stdout)
        );
    }
    assert!(!w.join("a.cbor").exists());
    // A made-up answer fails verify --activation.
    let fake = byok_protocol::formats::Activation {
        kind: byok_protocol::formats::ACTIVATION_TYPE.into(),
        version: 1,
        world: "eu".parse().unwrap(),
        ak_name: ByteBuf::from(TpmtPublic::parse_tpm2b(&forged.ak.public).unwrap().name()),
        secret: ByteBuf::from(vec![7u8; 32]),
    };
    std::fs::write(w.join("fake.cbor"), fake.to_cbor()).unwrap();
    verify_cmd(&host, &forged_path, &n)
        .arg("--challenge")
        .arg(w.join("c.cbor"))
        .arg("--activation")
        .arg(w.join("fake.cbor"))
        .assert()
        .code(10)
        .stderr(contains("the AK and EK are not in one TPM"));
    // A genuine answer to a genuine challenge does not transfer to the forged evidence.
    challenge(&host, &genuine_path, &n, &w.join("gc.cbor")).success();
    host.agent()
        .args(["activate", "--world", "eu", "--in"])
        .arg(w.join("gc.cbor"))
        .arg("-o")
        .arg(w.join("ga.cbor"))
        .assert()
        .success();
    verify_cmd(&host, &forged_path, &n)
        .arg("--challenge")
        .arg(w.join("gc.cbor"))
        .arg("--activation")
        .arg(w.join("ga.cbor"))
        .assert()
        .code(10)
        .stderr(contains("made for another EK or AK"));

    // The package wrapped for the forged evidence: the real TPM refuses it.
    let key = w.join("k.pem");
    keygen("p256", &key);
    let pkg = w.join("k.transfer");
    verifier()
        .args(["wrap", "--nonce", &n, "--evidence"])
        .arg(&forged_path)
        .arg("--roots")
        .arg(&host.ca_bundle)
        .arg("--key")
        .arg(&key)
        .arg("-o")
        .arg(&pkg)
        .assert()
        .success();
    host.import("eu", "k", &pkg).code(7);
    let mut t =
        byok_protocol::formats::TransferPackage::from_cbor(&std::fs::read(&pkg).unwrap()).unwrap();
    t.kek_name = ByteBuf::from(TpmtPublic::parse_tpm2b(&genuine.kek.public).unwrap().name());
    t.ak_name = ByteBuf::from(TpmtPublic::parse_tpm2b(&genuine.ak.public).unwrap().name());
    std::fs::write(&pkg, t.to_cbor()).unwrap();
    host.import("eu", "k", &pkg).code(8);
    assert!(host.stored_keys().is_empty());
}
