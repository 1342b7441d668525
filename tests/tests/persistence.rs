//! Persistent slots and records: rotation and `kek gc` evict KEKs no key
//! lives under, `worlds list` names objects no record names, a full TPM is
//! named before anything is written, and an unreadable record is named and
//! skipped without blocking the other worlds and keys.

use byok_tests::faults::{kek_handles_named, kek_range_in_tpm};
use byok_tests::{tpm_a, Host};
use predicates::prelude::*;
use predicates::str::contains;
use tempfile::TempDir;

fn key_create(host: &Host, world: &str, name: &str) {
    host.agent()
        .args([
            "key", "create", "--world", world, "--name", name, "--alg", "p256",
        ])
        .assert()
        .success();
}

fn init_p256(host: &Host, world: &str) {
    host.agent()
        .args(["init", "--world", world, "--kek-alg", "p256"])
        .assert()
        .success();
}

#[test]
fn rotation_and_gc_evict_the_keks_no_key_lives_under() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    init_p256(&host, "eu");
    // No key under the KEK: rotation evicts it at once (10 rotations, one slot).
    for _ in 0..3 {
        host.agent()
            .args(["kek", "rotate", "--world", "eu"])
            .assert()
            .success()
            .stdout(contains("had no keys under it and was evicted"));
    }
    assert_eq!(kek_range_in_tpm(&host).len(), 1);
    // A key under it: the old KEK is kept for it.
    key_create(&host, "eu", "k");
    host.agent()
        .args(["kek", "rotate", "--world", "eu"])
        .assert()
        .success()
        .stdout(contains("stays for the 1 key(s)"));
    assert_eq!(kek_range_in_tpm(&host).len(), 2);
    host.agent()
        .args(["kek", "gc"])
        .assert()
        .success()
        .stdout(contains("world eu: no retired KEK without keys"));
    host.sign("k", work.path()).success();
    // Its last key gone, gc evicts it; the state and the TPM agree.
    host.agent()
        .args(["keys", "delete", "k", "--yes"])
        .assert()
        .success();
    host.agent()
        .args(["kek", "gc", "--world", "eu"])
        .assert()
        .success()
        .stdout(contains("world eu: 1 retired KEK(s) without keys evicted"));
    let (named, orphans) = kek_handles_named(&host);
    assert_eq!(kek_range_in_tpm(&host), named);
    assert!(orphans.is_empty());
    assert_eq!(named.len(), 1);
}

/// Make `handle` a persistent ECC primary with tpm2-tools (another program's object).
fn foreign_persistent(host: &Host, handle: &str, work: &std::path::Path) {
    let ctx = work.join(format!("{handle}.ctx"));
    host.tpm2("tpm2_createprimary")
        .args(["-C", "o", "-G", "ecc256", "-c"])
        .arg(&ctx)
        .assert()
        .success();
    host.tpm2("tpm2_evictcontrol")
        .args(["-C", "o", "-c"])
        .arg(&ctx)
        .arg(handle)
        .assert()
        .success();
    host.tpm2("tpm2_flushcontext").arg("-t").assert().success();
}

// Long on purpose: filling swtpm's NV takes a while, so the orphan and full-TPM checks share it.
#[test]
fn orphans_are_listed_and_a_full_tpm_is_named_before_anything_is_written() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    init_p256(&host, "eu");
    foreign_persistent(&host, "0x81000150", work.path());
    host.agent()
        .args(["worlds", "list"])
        .assert()
        .success()
        .stdout(contains(
            "orphan 0x81000150: a persistent object in the KEK range that no world here names",
        ));
    let (_, orphans) = kek_handles_named(&host);
    assert_eq!(orphans, vec!["0x81000150".to_string()]);
    // The agent never takes or evicts it.
    host.agent()
        .args(["world", "destroy", "--world", "eu", "--yes"])
        .assert()
        .success();
    assert!(kek_range_in_tpm(&host).contains(&0x8100_0150));

    // Fill the TPM's persistent storage with other programs' objects.
    host.fill_persistent_storage(work.path());
    host.agent()
        .args(["init", "--world", "eu", "--kek-alg", "p256"])
        .assert()
        .code(3)
        .stderr(contains(
            "the TPM has no room for another persistent object",
        ))
        .stderr(contains("byok-agent kek gc"));
    assert!(!host.state.path().join("worlds/eu.cbor").exists());
    assert!(std::fs::read_dir(host.state.path().join("intents"))
        .unwrap()
        .next()
        .is_none());
}

// Long on purpose: each kind of bad record against each command, on one host.
#[test]
fn an_unreadable_record_is_named_and_skipped() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    init_p256(&host, "eu");
    init_p256(&host, "us");
    key_create(&host, "eu", "good");
    key_create(&host, "us", "other");
    let keys = host.state.path().join("keys");
    // A truncated key record, an empty one, junk, and a broken world.
    let good = std::fs::read(keys.join("good.cbor")).unwrap();
    std::fs::write(keys.join("cut.cbor"), &good[..good.len() / 2]).unwrap();
    std::fs::write(keys.join("empty.cbor"), b"").unwrap();
    std::fs::write(keys.join("junk.cbor"), b"\xff\xfe not cbor").unwrap();
    std::fs::write(host.state.path().join("worlds/xx.cbor"), b"{").unwrap();
    // A temporary file of an interrupted write is not a record.
    std::fs::write(keys.join(".good.cbor.tmp.1.2"), b"x").unwrap();

    host.agent()
        .args(["keys", "list"])
        .assert()
        .code(4)
        .stdout(contains("good\teu").and(contains("other\tus")))
        .stderr(contains("3 state file(s) could not be read"))
        .stderr(contains(
            "cut.cbor is corrupt: the file ends early: truncated after",
        ))
        .stderr(contains("empty.cbor is corrupt: the file is empty"))
        .stderr(contains("junk.cbor is corrupt: not a record of this agent"))
        .stderr(contains("UnexpectedEof").not())
        .stderr(contains(".good.cbor.tmp").not());
    host.agent()
        .args(["worlds", "list"])
        .assert()
        .code(4)
        .stdout(contains("eu\t0x81000100").and(contains("us\t0x81000101")))
        .stderr(contains("xx.cbor is corrupt"));
    // Other worlds and keys work; commands that need them all warn.
    host.sign("good", work.path()).success();
    host.sign("other", work.path()).success();
    host.agent()
        .args(["kek", "rotate", "--world", "us"])
        .assert()
        .success()
        .stderr(contains("warning: skipped"));
    // An unreadable key might live under a retired KEK: gc refuses.
    host.agent()
        .args(["kek", "gc", "--world", "us"])
        .assert()
        .code(4)
        .stderr(contains("cut.cbor"));
    host.agent()
        .args(["world", "destroy", "--world", "eu", "--yes"])
        .assert()
        .success();
    host.sign("other", work.path()).success();
}

/// `byok-agent keys list` on a bare state directory (no TPM needed).
fn keys_list(state: &std::path::Path) -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("byok-agent").unwrap();
    c.arg("--state-dir").arg(state).args(["keys", "list"]);
    c
}

#[test]
fn a_held_lock_is_named_and_lock_timeout_ends_the_wait() {
    let state = TempDir::new().unwrap();
    keys_list(state.path()).assert().success();
    // Stale temporaries of an interrupted write go once the lock is taken.
    let stale = state.path().join("keys/.k.cbor.tmp.4242.0123456789abcdef");
    std::fs::write(&stale, b"partial").unwrap();
    keys_list(state.path()).assert().success().stderr("");
    assert!(!stale.exists());

    // Another process holds the lock for 3 s (util-linux flock).
    let lock = state.path().join(".lock");
    let mut holder = std::process::Command::new("flock")
        .arg("-x")
        .arg(&lock)
        .args(["sleep", "3"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    keys_list(state.path())
        .args(["--lock-timeout", "0.5"])
        .assert()
        .code(4)
        .stderr(contains("after 0.5 s (--lock-timeout)"))
        .stderr(contains(".lock"));
    // Without a timeout it waits, says so after a second, then works.
    keys_list(state.path())
        .assert()
        .success()
        .stderr(contains("waiting for byok-agent (pid"));
    holder.wait().unwrap();
}
