//! The agent as a guest on a TPM that restarts, is used concurrently, and
//! loses objects: each against its own swtpm.

use byok_protocol::formats::{Document, Evidence};
use byok_tests::{keygen, nonce, tpm_a, verifier, world, wrap, Host};
use predicates::str::contains;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

fn evidence_of(p: &Path) -> Evidence {
    Evidence::from_cbor(&std::fs::read(p).unwrap()).unwrap()
}

/// Relabel a package as if made for `ev` (world, KEK and AK names): the

#[test]
fn agent_survives_tpm_restart_and_concurrent_use() {
    let mut host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let w = world(&host, "eu", work.path());
    let keys: Vec<PathBuf> = (0..2)
        .map(|i| {
            let key = work.path().join(format!("k{i}.pem"));
            keygen("p256", &key);
            let pkg = work.path().join(format!("k{i}.transfer"));
            wrap(&host, &w, &key, &pkg).success();
            pkg
        })
        .collect();
    // Two agents at once on one state directory and TPM: the lock serialises them.
    std::thread::scope(|s| {
        for (i, pkg) in keys.iter().enumerate() {
            let host = &host;
            s.spawn(move || {
                host.import("eu", &format!("k{i}"), pkg).success();
            });
        }
    });
    assert_eq!(
        host.stored_keys(),
        vec!["k0.cbor".to_string(), "k1.cbor".to_string()]
    );

    // TPM restart: persistent KEK and stored blobs work without re-init.
    host.tpm.restart();
    let msg = work.path().join("m");
    std::fs::write(&msg, b"after restart").unwrap();
    host.agent()
        .args(["sign", "--key", "k1", "--in"])
        .arg(&msg)
        .arg("-o")
        .arg(work.path().join("sig"))
        .assert()
        .success();
    let n = nonce();
    host.evidence("eu", &n, &work.path().join("again.evidence"));
    verifier()
        .args(["verify", "--nonce", &n, "--evidence"])
        .arg(work.path().join("again.evidence"))
        .arg("--roots")
        .arg(&host.ca_bundle)
        .assert()
        .success();
}

#[test]
fn agent_leaves_other_programs_objects_and_recovers_an_evicted_kek() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let w = world(&host, "eu", work.path());

    // Another process left all three transient slots full (swtpm has no
    // resource manager to clean up after it).
    for i in 0..3 {
        host.tpm2("tpm2_createprimary")
            .args(["-C", "o", "-G", "ecc256", "-c"])
            .arg(work.path().join(format!("leftover{i}.ctx")))
            .assert()
            .success();
    }
    host.tpm2("tpm2_getcap")
        .arg("handles-transient")
        .assert()
        .success()
        .stdout(contains("0x80000002"));
    // They are not the agent's: it does not flush them, it says what is wrong.
    let n = nonce();
    host.agent()
        .args(["evidence", "--world", "eu", "--nonce", &n, "-o"])
        .arg(work.path().join("full.evidence"))
        .assert()
        .code(3)
        .stderr(contains("no free slot"))
        .stderr(contains("tpm2_flushcontext"));
    host.tpm2("tpm2_getcap")
        .arg("handles-transient")
        .assert()
        .success()
        .stdout(contains("0x80000002"));
    host.tpm2("tpm2_flushcontext").arg("-t").assert().success();
    host.evidence("eu", &n, &work.path().join("after-leftovers.evidence"));
    // ... and it leaves nothing loaded itself.
    let left = host
        .tpm2("tpm2_getcap")
        .arg("handles-transient")
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&left.stdout).contains("0x8000"),
        "agent left transient objects"
    );

    // The persistent KEK evicted behind the agent's back.
    host.tpm2("tpm2_evictcontrol")
        .args(["-C", "o", "-c", "0x81000100"])
        .assert()
        .success();
    // The next command re-creates the same key (same template, same owner
    // seed) at the same handle, and says so.
    host.agent()
        .args(["evidence", "--world", "eu", "--nonce", &n, "-o"])
        .arg(work.path().join("recreated.evidence"))
        .assert()
        .success()
        .stderr(contains(
            "world eu: the KEK at 0x81000100 was not in the TPM (evicted); re-created from its template",
        ));
    let before = evidence_of(&w.evidence).kek.public;
    let after = evidence_of(&work.path().join("recreated.evidence"))
        .kek
        .public;
    assert_eq!(before, after);
    verifier()
        .args(["verify", "--nonce", &n, "--evidence"])
        .arg(work.path().join("recreated.evidence"))
        .arg("--roots")
        .arg(&host.ca_bundle)
        .assert()
        .success();
}
