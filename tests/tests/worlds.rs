//! The life of a world: KEK rotation, destruction, and what the agent says
//! after the TPM is cleared. Every command goes through the binaries on swtpm.

use byok_tests::{keygen, nonce, tpm_a, verifier, world, wrap, Host, World};
use predicates::prelude::*;
use predicates::str::contains;
use std::path::Path;
use tempfile::TempDir;

fn transfer(host: &Host, w: &World, world_name: &str, name: &str, work: &Path) {
    let pkg = work.join(format!("{name}.transfer"));
    wrap(
        host,
        w,
        &keygen("p256", work.join(format!("{name}.pem"))),
        &pkg,
    )
    .success();
    host.import(world_name, name, &pkg).success();
}

fn persistent_handles(host: &Host) -> String {
    let out = host
        .tpm2("tpm2_getcap")
        .arg("handles-persistent")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_lowercase()
}

// Long on purpose: one swtpm per test costs seconds, so the checks that share a host share a test, in order.
#[test]
fn kek_rotation_keeps_old_keys_and_refuses_old_packages() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let wd = work.path();
    let w0 = world(&host, "eu", wd);
    transfer(&host, &w0, "eu", "before", wd);
    host.agent()
        .args([
            "key", "create", "--world", "eu", "--name", "born", "--alg", "rsa2048",
        ])
        .assert()
        .success();
    let late = wd.join("late.transfer");
    wrap(&host, &w0, &keygen("p256", wd.join("late.pem")), &late).success();

    host.agent()
        .args(["kek", "rotate", "--world", "eu"])
        .assert()
        .success()
        .stdout(contains("KEK rotated to generation 1 at 0x81000101"))
        .stdout(contains(
            "the previous KEK at 0x81000100 stays for the 2 key(s)",
        ));

    // Keys under the old KEK keep working.
    host.sign("before", wd).success();
    host.sign("born", wd).success();
    // A package wrapped for the old KEK is refused, naming the rotation.
    host.import("eu", "late", &late).code(7).stderr(contains(
        "KEK generation 0 of world \"eu\", which was rotated",
    ));
    assert!(!host.stored_keys().contains(&"late.cbor".to_string()));

    // New evidence shows a new KEK, still bound to world eu; packages for it import.
    let n = nonce();
    let ev1 = wd.join("eu-gen1.evidence");
    host.evidence("eu", &n, &ev1);
    verifier()
        .args(["verify", "--nonce", &n, "--world", "eu", "--evidence"])
        .arg(&ev1)
        .arg("--roots")
        .arg(&host.ca_bundle)
        .assert()
        .success();
    let ev0 = std::fs::read(&w0.evidence).unwrap();
    assert_ne!(ev0, std::fs::read(&ev1).unwrap());
    let w1 = World {
        nonce: n,
        evidence: ev1,
    };
    transfer(&host, &w1, "eu", "after", wd);
    host.sign("after", wd).success();

    // Key files name the KEK each key lives under.
    for (key, parent) in [
        ("before", "INTEGER           :81000100"),
        ("after", "INTEGER           :81000101"),
    ] {
        let kf = wd.join(format!("{key}.tss.pem"));
        host.agent()
            .args(["keyfile", "--key", key, "-o"])
            .arg(&kf)
            .assert()
            .success();
        byok_tests::openssl()
            .args(["asn1parse", "-in"])
            .arg(&kf)
            .assert()
            .success()
            .stdout(contains(parent));
    }
    host.agent()
        .args(["worlds", "list"])
        .assert()
        .success()
        .stdout(contains(
            "eu\t0x81000101\tRSA-2048\t1\t-\t3\tok (1 retired KEK(s) kept for older keys)",
        ));
    // init does not change an existing world's KEK; rotation does.
    host.agent()
        .args(["init", "--world", "eu", "--pcrs", "sha256:23"])
        .assert()
        .code(2)
        .stderr(contains("kek rotate --world eu --pcrs"));
    host.agent()
        .args(["init", "--world", "eu", "--kek-alg", "p256"])
        .assert()
        .code(2)
        .stderr(contains("exists with a rsa2048 KEK"));
    // A second rotation (now bound to PCR 23) keeps both older KEKs.
    host.agent()
        .args(["kek", "rotate", "--world", "eu", "--pcrs", "sha256:23"])
        .assert()
        .success()
        .stdout(contains("generation 2"))
        .stdout(contains("bound to PCRs sha256:23"));
    let n = nonce();
    let ev2 = wd.join("eu-gen2.evidence");
    host.evidence("eu", &n, &ev2);
    verifier()
        .args(["verify", "--nonce", &n, "--world", "eu", "--evidence"])
        .arg(&ev2)
        .arg("--roots")
        .arg(&host.ca_bundle)
        .assert()
        .success()
        .stdout(contains(
            "KEK use:    only while PCRs sha256:23 hold these values",
        ));
    host.sign("before", wd).success();
    host.sign("after", wd).success();
}

#[test]
fn destroying_a_world_evicts_its_keks_and_spares_the_others() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let wd = work.path();
    let eu = world(&host, "eu", wd);
    let us = world(&host, "us", wd);
    transfer(&host, &eu, "eu", "eu-key", wd);
    transfer(&host, &us, "us", "us-key", wd);
    host.agent()
        .args(["kek", "rotate", "--world", "eu"])
        .assert()
        .success();
    let handles = persistent_handles(&host);
    assert!(
        handles.contains("0x81000100")
            && handles.contains("0x81000101")
            && handles.contains("0x81000102")
    );

    // Without --yes nothing happens.
    host.agent()
        .args(["world", "destroy", "--world", "eu"])
        .assert()
        .code(2)
        .stderr(contains(
            "evicts 2 KEK(s) of world eu from the TPM and deletes its 1 key(s) for good; add --yes",
        ));
    host.sign("eu-key", wd).success();

    host.agent()
        .args(["world", "destroy", "--world", "eu", "--yes"])
        .assert()
        .success()
        .stdout(contains(
            "world eu destroyed: 2 KEK(s) evicted from the TPM, 1 key(s) deleted",
        ));
    let handles = persistent_handles(&host);
    assert!(!handles.contains("0x81000100") && !handles.contains("0x81000102"));
    assert!(handles.contains("0x81000101"), "world us's KEK stays");
    assert_eq!(host.stored_keys(), vec!["us-key.cbor".to_string()]);
    host.sign("us-key", wd).success();
    host.sign("eu-key", wd).code(6);
    host.agent()
        .args(["evidence", "--world", "eu", "--nonce", &nonce(), "-o"])
        .arg(wd.join("x"))
        .assert()
        .code(6)
        .stderr(contains("world \"eu\" is not initialised"));
    host.agent()
        .args(["worlds", "list"])
        .assert()
        .success()
        .stdout(contains("us\t0x81000101"))
        .stdout(contains("eu\t").not());
    // The world can be made again from scratch.
    world(&host, "eu", wd);
}

#[test]
fn after_a_tpm_clear_the_agent_names_the_lost_worlds() {
    let mut host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let wd = work.path();
    let eu = world(&host, "eu", wd);
    world(&host, "us", wd);
    transfer(&host, &eu, "eu", "k", wd);

    // A restart is not a clear: everything works without init.
    host.tpm.restart();
    host.sign("k", wd).success();

    host.tpm2("tpm2_clear").assert().success();
    host.sign("k", wd).code(11).stderr(contains(
        "the TPM's owner seed changed (it was cleared): the KEKs of world(s) eu, us cannot be re-created, so they and their 1 stored key(s) are lost",
    ));
    host.agent()
        .args(["evidence", "--world", "us", "--nonce", &nonce(), "-o"])
        .arg(wd.join("x"))
        .assert()
        .code(11);
    // Listed, and the exit says a world is lost.
    host.agent()
        .args(["worlds", "list"])
        .assert()
        .code(11)
        .stdout(contains(
            "eu\t0x81000100\tRSA-2048\t0\t-\t1\tLOST: the TPM's owner seed changed (TPM cleared)",
        ))
        .stderr(contains("world(s) eu, us cannot be re-created"));
    // Starting over: destroy (nothing left to evict) and init again.
    for w in ["eu", "us"] {
        host.agent()
            .args(["world", "destroy", "--world", w, "--yes"])
            .assert()
            .success()
            .stdout(contains("0 KEK(s) evicted"));
    }
    let again = world(&host, "eu", wd);
    transfer(&host, &again, "eu", "k2", wd);
    host.sign("k2", wd).success();
}
