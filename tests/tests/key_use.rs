//! Keys generated inside the TPM, their use (sign, decrypt, encrypt, HMAC),
//! sealing with and without PCR policies, and the TPM's refusals, all through
//! the binaries against swtpm; signatures and decryptions checked with OpenSSL.

use byok_tests::{nonce, openssl, tpm_a, verifier, world, Host};
use predicates::str::contains;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

fn file(work: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = work.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

fn create(host: &Host, world: &str, name: &str, alg: &str) {
    host.agent()
        .args([
            "key", "create", "--world", world, "--name", name, "--alg", alg,
        ])
        .assert()
        .success()
        .stdout(contains("inside the TPM"));
}

fn public_pem(host: &Host, name: &str, work: &Path) -> PathBuf {
    let p = work.join(format!("{name}.pub.pem"));
    host.agent()
        .args(["--force", "public", "--key", name, "-o"])
        .arg(&p)
        .assert()
        .success();
    p
}

/// Run an agent command that reads `--in input` and writes `-o out`; returns out.
/// `byok-agent ARGS --in INPUT -o OUT`, replacing OUT (the tests reuse names).
fn agent_io(host: &Host, args: &[&str], input: &Path, out: &Path) -> assert_cmd::assert::Assert {
    host.agent()
        .arg("--force")
        .args(args)
        .arg("--in")
        .arg(input)
        .arg("-o")
        .arg(out)
        .assert()
}

// Long on purpose: one swtpm per test costs seconds, so the checks that share a host share a test, in order.
#[test]
fn keys_born_in_the_tpm_sign_decrypt_encrypt_and_mac() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let w = work.path();
    host.init("eu");
    for alg in [
        "rsa2048",
        "rsa3072",
        "p256",
        "p384",
        "aes256",
        "hmac-sha256",
    ] {
        create(&host, "eu", alg, alg);
        host.agent()
            .args(["keys", "show", alg])
            .assert()
            .success()
            .stdout(contains("origin:     generated"))
            .stdout(contains(
                "fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|noDA",
            ));
    }
    let msg = file(w, "msg", b"signed inside the TPM");

    // Signatures, checked by OpenSSL with the public key.
    for (key, hash, scheme, ossl) in [
        ("rsa2048", "sha256", "pkcs1", vec![]),
        (
            "rsa2048",
            "sha512",
            "pss",
            vec![
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:auto",
            ],
        ),
        (
            "rsa3072",
            "sha384",
            "pss",
            vec![
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:auto",
            ],
        ),
        ("p256", "sha256", "pkcs1", vec![]),
        ("p384", "sha384", "pkcs1", vec![]),
        ("p384", "sha512", "pkcs1", vec![]),
    ] {
        let sig = w.join(format!("{key}-{hash}-{scheme}.sig"));
        host.agent()
            .args([
                "sign", "--key", key, "--hash", hash, "--scheme", scheme, "--in",
            ])
            .arg(&msg)
            .arg("-o")
            .arg(&sig)
            .assert()
            .success();
        let pem = public_pem(&host, key, w);
        openssl()
            .args(["dgst", &format!("-{hash}"), "-verify"])
            .arg(&pem)
            .args(&ossl)
            .arg("-signature")
            .arg(&sig)
            .arg(&msg)
            .assert()
            .success()
            .stdout(contains("Verified OK"));
        // And a signature over other data does not verify.
        openssl()
            .args(["dgst", &format!("-{hash}"), "-verify"])
            .arg(&pem)
            .args(&ossl)
            .arg("-signature")
            .arg(&sig)
            .arg(&pem)
            .assert()
            .failure();
    }

    // RSA-OAEP: OpenSSL encrypts to the public key, the TPM decrypts.
    for (key, hash) in [
        ("rsa2048", "sha256"),
        ("rsa3072", "sha384"),
        ("rsa3072", "sha256"),
    ] {
        let pem = public_pem(&host, key, w);
        let ct = w.join(format!("{key}-{hash}.oaep"));
        openssl()
            .args(["pkeyutl", "-encrypt", "-pubin", "-inkey"])
            .arg(&pem)
            .args(["-pkeyopt", "rsa_padding_mode:oaep"])
            .args(["-pkeyopt", &format!("rsa_oaep_md:{hash}")])
            .args(["-pkeyopt", &format!("rsa_mgf1_md:{hash}")])
            .arg("-in")
            .arg(&msg)
            .arg("-out")
            .arg(&ct)
            .assert()
            .success();
        let pt = w.join(format!("{key}-{hash}.plain"));
        host.agent()
            .args(["decrypt", "--key", key, "--hash", hash, "--in"])
            .arg(&ct)
            .arg("-o")
            .arg(&pt)
            .assert()
            .success();
        assert_eq!(std::fs::read(&pt).unwrap(), std::fs::read(&msg).unwrap());
        // The wrong OAEP hash: the TPM refuses, nothing is written.
        let wrong = w.join("wrong.plain");
        host.agent()
            .args(["decrypt", "--key", key, "--hash", "sha512", "--in"])
            .arg(&ct)
            .arg("-o")
            .arg(&wrong)
            .assert()
            .code(3)
            .stderr(contains("TPM2_RSA_Decrypt"));
        assert!(!wrong.exists());
    }

    // AES-256-CFB inside the TPM, over several TPM buffers.
    let big: Vec<u8> = (0..5000u32).map(|i| (i * 7 + 3) as u8).collect();
    let plain = file(w, "big", &big);
    let (c1, c2) = (w.join("big.1"), w.join("big.2"));
    agent_io(&host, &["encrypt", "--key", "aes256"], &plain, &c1).success();
    agent_io(&host, &["encrypt", "--key", "aes256"], &plain, &c2).success();
    let (e1, e2) = (std::fs::read(&c1).unwrap(), std::fs::read(&c2).unwrap());
    assert_eq!(e1.len(), 16 + big.len());
    assert_ne!(e1, e2, "a fresh IV each time");
    assert_ne!(&e1[16..], &big[..]);
    let back = w.join("big.back");
    agent_io(&host, &["decrypt", "--key", "aes256"], &c1, &back).success();
    assert_eq!(std::fs::read(&back).unwrap(), big);
    // Another AES key of the TPM gives other bytes.
    create(&host, "eu", "aes256-b", "aes256");
    agent_io(&host, &["decrypt", "--key", "aes256-b"], &c1, &back).success();
    assert_ne!(std::fs::read(&back).unwrap(), big);

    // HMAC-SHA-256 inside the TPM: deterministic per key, distinct across keys.
    create(&host, "eu", "hmac-b", "hmac-sha256");
    let mac = |key: &str| {
        let out = w.join(format!("{key}.mac"));
        agent_io(&host, &["hmac", "--key", key], &msg, &out).success();
        std::fs::read(out).unwrap()
    };
    let m1 = mac("hmac-sha256");
    assert_eq!(m1.len(), 32);
    assert_eq!(m1, mac("hmac-sha256"));
    assert_ne!(m1, mac("hmac-b"));
    agent_io(
        &host,
        &["hmac", "--key", "hmac-sha256"],
        &plain,
        &w.join("x"),
    )
    .code(2)
    .stderr(contains("TPM2_HMAC takes at most 1024 bytes"));

    // Operations a key type does not have are refused with one line.
    agent_io(&host, &["sign", "--key", "aes256"], &msg, &w.join("x"))
        .code(2)
        .stderr(contains("\"aes256\" is AES-256 and cannot sign"));
    agent_io(&host, &["encrypt", "--key", "rsa2048"], &msg, &w.join("x"))
        .code(2)
        .stderr(contains("RSA encryption needs only the public key"));
    agent_io(&host, &["hmac", "--key", "p256"], &msg, &w.join("x"))
        .code(2)
        .stderr(contains("cannot compute an HMAC"));
    host.agent()
        .args([
            "key", "create", "--world", "eu", "--name", "x", "--alg", "rsa1024",
        ])
        .assert()
        .code(2)
        .stderr(contains(
            "[possible values: rsa2048, rsa3072, p256, p384, aes256, hmac-sha256]",
        ));
    host.agent()
        .args([
            "key", "create", "--world", "eu", "--name", "p256", "--alg", "p256",
        ])
        .assert()
        .code(6)
        .stderr(contains("already exists"));
    assert!(!w.join("x").exists());
}

#[test]
fn receipts_say_generated_inside_the_tpm() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let wd = work.path();
    let w = world(&host, "eu", wd);
    create(&host, "eu", "born", "p256");
    let rn = nonce();
    let receipt = wd.join("born.receipt");
    host.agent()
        .args(["attest-key", "--key", "born", "--nonce", &rn, "-o"])
        .arg(&receipt)
        .assert()
        .success();
    let registry = wd.join("registry");
    byok_tests::enroll(&host, "eu", &w.evidence, &w.nonce, &registry, &[]).success();
    verifier()
        .args([
            "check-receipt",
            "--json",
            "--nonce",
            &rn,
            "--evidence-nonce",
            &w.nonce,
            "--receipt",
        ])
        .arg(&receipt)
        .arg("--evidence")
        .arg(&w.evidence)
        .arg("--roots")
        .arg(&host.ca_bundle)
        .arg("--registry")
        .arg(&registry)
        .assert()
        .success()
        .stdout(contains("\"origin\":\"generated inside the TPM\""))
        .stdout(contains("\"duplicable\":false"));
}

/// The world field of a stored key, rewritten (what a confused or malicious
/// state edit would do).
fn move_key_to_world(host: &Host, key: &str, world: &str) {
    let mut v = host.key_state(key);
    for (k, val) in v.as_map_mut().unwrap() {
        if k.as_text() == Some("world") {
            *val = ciborium::Value::Text(world.into());
        }
    }
    host.write_key_state(key, &v);
}

#[test]
fn two_worlds_on_one_tpm_never_use_each_others_keys() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    host.init("eu");
    host.init("us");
    create(&host, "eu", "eu-key", "p256");
    let msg = file(work.path(), "msg", b"m");
    agent_io(
        &host,
        &["sign", "--key", "eu-key"],
        &msg,
        &work.path().join("s"),
    )
    .success();
    // Presented as a key of world "us", the blob is loaded under the us KEK:
    // the TPM's integrity check of the private blob fails.
    host.agent()
        .args(["keys", "list", "--world", "us"])
        .assert()
        .success()
        .stdout(predicates::str::is_empty());
    host.agent()
        .args(["keys", "list", "--world", "eu"])
        .assert()
        .success()
        .stdout(contains("eu-key\teu\tp256\tgenerated"));
    move_key_to_world(&host, "eu-key", "us");
    agent_io(
        &host,
        &["sign", "--key", "eu-key"],
        &msg,
        &work.path().join("s2"),
    )
    .code(3)
    .stderr(contains("TPM2_Load"));
    assert!(!work.path().join("s2").exists());
}

fn unseal(host: &Host, name: &str, out: &Path) -> assert_cmd::assert::Assert {
    host.agent()
        .args(["unseal", "--name", name, "-o"])
        .arg(out)
        .assert()
}

// Long on purpose: one swtpm per test costs seconds, so the checks that share a host share a test, in order.
#[test]
fn sealed_secrets_follow_their_pcr_policy() {
    let mut host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let w = work.path();
    host.init("eu");
    let secret = file(w, "secret", b"disk key 0123456789abcdef");

    // No PCRs: released to whoever holds the state and the TPM.
    host.agent()
        .args(["seal", "--world", "eu", "--name", "plain", "--in"])
        .arg(&secret)
        .assert()
        .success();
    unseal(&host, "plain", &w.join("plain.out")).success();
    assert_eq!(
        std::fs::read(w.join("plain.out")).unwrap(),
        std::fs::read(&secret).unwrap()
    );

    // Bound to PCRs 16 and 23 after extending 23 once.
    host.extend_pcr(23, 1);
    host.agent()
        .args([
            "seal",
            "--world",
            "eu",
            "--name",
            "bound",
            "--pcrs",
            "sha256:16,23",
            "--in",
        ])
        .arg(&secret)
        .assert()
        .success()
        .stdout(contains("released only while PCRs sha256:16,23"));
    let out = w.join("bound.out");
    unseal(&host, "bound", &out).success();
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(&secret).unwrap()
    );
    std::fs::remove_file(&out).unwrap();

    // The authPolicy is exactly what tpm2_createpolicy computes with the TPM.
    let pol = w.join("pcr.policy");
    host.tpm2("tpm2_createpolicy")
        .args(["--policy-pcr", "-l", "sha256:16,23", "-L"])
        .arg(&pol)
        .assert()
        .success();
    host.agent()
        .args(["keys", "show", "bound"])
        .assert()
        .success()
        .stdout(contains(format!(
            "authPolicy: {}",
            hex::encode(std::fs::read(&pol).unwrap())
        )))
        .stdout(contains("fixedTPM|fixedParent|noDA"));

    // PCR 23 extended again: the TPM refuses TPM2_Unseal.
    host.extend_pcr(23, 2);
    unseal(&host, "bound", &out).code(8).stderr(contains(
        "the TPM refused TPM2_Unseal: the PCRs sha256:16,23 do not have the values",
    ));
    assert!(!out.exists());
    // Reset and re-extended to the sealed state: released again.
    host.tpm2("tpm2_pcrreset").arg("23").assert().success();
    host.extend_pcr(23, 1);
    unseal(&host, "bound", &out).success();
    std::fs::remove_file(&out).unwrap();

    // A TPM restart resets PCR 23: refused until the platform reaches the state again.
    host.tpm.restart();
    unseal(&host, "bound", &out)
        .code(8)
        .stderr(contains("PCR policy failed"));
    host.extend_pcr(23, 1);
    unseal(&host, "bound", &out).success();
    unseal(&host, "plain", &w.join("plain.again")).success();

    // A key generated bound to PCRs 16 and 23: the TPM signs only in that state.
    host.agent()
        .args([
            "key",
            "create",
            "--world",
            "eu",
            "--name",
            "bound-key",
            "--alg",
            "rsa2048",
            "--pcrs",
            "sha256:16,23",
        ])
        .assert()
        .success()
        .stdout(contains("usable only while PCRs sha256:16,23"));
    let sig = w.join("bound.sig");
    agent_io(&host, &["sign", "--key", "bound-key"], &secret, &sig).success();
    host.extend_pcr(23, 9);
    std::fs::remove_file(&sig).unwrap();
    agent_io(&host, &["sign", "--key", "bound-key"], &secret, &sig)
        .code(8)
        .stderr(contains("the TPM refused TPM2_Sign: the PCRs sha256:16,23"));
    assert!(!sig.exists());

    // Too much data: refused before the TPM, nothing stored.
    let big = file(w, "big", &[7u8; 129]);
    host.agent()
        .args(["seal", "--world", "eu", "--name", "big", "--in"])
        .arg(&big)
        .assert()
        .code(2)
        .stderr(contains("at most 128 bytes"));
    assert!(!host.stored_keys().contains(&"big.cbor".to_string()));
    // A key is not sealed data.
    create(&host, "eu", "k", "p256");
    unseal(&host, "k", &w.join("k.out"))
        .code(2)
        .stderr(contains("is not sealed data"));
}
// Long on purpose: one swtpm per test costs seconds, so the checks that share a host share a test, in order.

#[test]
fn imported_aes_and_hmac_keys_agree_with_openssl() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let wd = work.path();
    let w = byok_tests::world(&host, "eu", wd);
    let plain = file(
        wd,
        "plain",
        &(0..3000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>(),
    );
    for (name, key_type, key) in [
        ("aes128", "aes", vec![0x11u8; 16]),
        ("aes256", "aes", (0..32u8).collect()),
        ("hmac", "hmac", vec![0x42u8; 32]),
    ] {
        let raw = file(wd, &format!("{name}.raw"), &key);
        let pkg = wd.join(format!("{name}.transfer"));
        verifier()
            .args([
                "wrap",
                "--key-type",
                key_type,
                "--nonce",
                &w.nonce,
                "--evidence",
            ])
            .arg(&w.evidence)
            .arg("--roots")
            .arg(&host.ca_bundle)
            .arg("--key")
            .arg(&raw)
            .arg("-o")
            .arg(&pkg)
            .assert()
            .success();
        host.import("eu", name, &pkg).success();
        if key_type == "hmac" {
            let mac = wd.join("mac");
            let small = file(wd, "small", b"HMAC computed inside the TPM");
            agent_io(&host, &["hmac", "--key", name], &small, &mac).success();
            openssl()
                .args(["dgst", "-sha256", "-mac", "HMAC", "-macopt"])
                .arg(format!("hexkey:{}", hex::encode(&key)))
                .arg(&small)
                .assert()
                .success()
                .stdout(contains(hex::encode(std::fs::read(&mac).unwrap())));
            continue;
        }
        let cipher = format!("-aes-{}-cfb", key.len() * 8);
        // TPM encrypts, OpenSSL decrypts.
        let ct = wd.join(format!("{name}.ct"));
        agent_io(&host, &["encrypt", "--key", name], &plain, &ct).success();
        let bytes = std::fs::read(&ct).unwrap();
        let body = file(wd, "body", &bytes[16..]);
        openssl()
            .args([
                "enc",
                "-d",
                &cipher,
                "-K",
                &hex::encode(&key),
                "-iv",
                &hex::encode(&bytes[..16]),
                "-in",
            ])
            .arg(&body)
            .assert()
            .success()
            .stdout(std::fs::read(&plain).unwrap());
        // OpenSSL encrypts, TPM decrypts.
        let iv = [0x24u8; 16];
        let out = openssl()
            .args([
                "enc",
                "-e",
                &cipher,
                "-K",
                &hex::encode(&key),
                "-iv",
                &hex::encode(iv),
                "-in",
            ])
            .arg(&plain)
            .output()
            .unwrap();
        assert!(out.status.success());
        let mut ours = iv.to_vec();
        ours.extend_from_slice(&out.stdout);
        let input = file(wd, "ossl.ct", &ours);
        let back = wd.join("back");
        agent_io(&host, &["decrypt", "--key", name], &input, &back).success();
        assert_eq!(
            std::fs::read(&back).unwrap(),
            std::fs::read(&plain).unwrap()
        );
    }
    // Wrong sizes are refused before anything is written.
    let bad = file(wd, "bad.raw", &[1u8; 20]);
    verifier()
        .args([
            "wrap",
            "--key-type",
            "aes",
            "--nonce",
            &w.nonce,
            "--evidence",
        ])
        .arg(&w.evidence)
        .arg("--roots")
        .arg(&host.ca_bundle)
        .arg("--key")
        .arg(&bad)
        .arg("-o")
        .arg(wd.join("bad.transfer"))
        .assert()
        .code(3)
        .stderr(contains("an AES key has 16, 24 or 32 bytes, not 20"));
    assert!(!wd.join("bad.transfer").exists());
}
