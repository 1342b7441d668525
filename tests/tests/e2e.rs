//! End-to-end tests of the whole protocol through the two binaries, each
//! against its own swtpm.

use byok_protocol::formats::{Document, Evidence, Receipt, TransferPackage};
use byok_protocol::public::TpmtPublic;
use byok_tests::{keygen, nonce, openssl, tpm_a, tpm_b, verifier, world, wrap, Host, World};
use predicates::str::contains;
use serde_bytes::ByteBuf;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

fn read_package(p: &Path) -> TransferPackage {
    TransferPackage::from_cbor(&std::fs::read(p).unwrap()).unwrap()
}

fn write_package(p: &Path, t: &TransferPackage) {
    std::fs::write(p, t.to_cbor()).unwrap();
}

fn evidence_of(p: &Path) -> Evidence {
    Evidence::from_cbor(&std::fs::read(p).unwrap()).unwrap()
}

/// Relabel a package as if made for `ev` (world, KEK and AK names): the
/// agent's own checks then pass, and only the TPM can refuse it.
fn relabel(t: &TransferPackage, ev: &Evidence) -> TransferPackage {
    let mut t = t.clone();
    t.world = ev.world.clone();
    t.kek_name = ByteBuf::from(TpmtPublic::parse_tpm2b(&ev.kek.public).unwrap().name());
    t.ak_name = ByteBuf::from(TpmtPublic::parse_tpm2b(&ev.ak.public).unwrap().name());
    t
}

/// Ask the TPM through tpm2-tools (independently of the agent).
fn tpm_supports(host: &Host, alg: &str) -> bool {
    host.tpm2("tpm2_testparms")
        .arg(alg)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn openssl_ok(args: &[&str]) {
    openssl().args(args).assert().success();
}

fn public_pem_of(key: &Path, work: &Path) -> PathBuf {
    let out = work.join(format!(
        "{}.pub.pem",
        key.file_name().unwrap().to_string_lossy()
    ));
    openssl()
        .args(["pkey", "-pubout", "-in"])
        .arg(key)
        .arg("-out")
        .arg(&out)
        .assert()
        .success();
    out
}

/// Keys from independent sources and in every accepted encoding.
fn make_keys(work: &Path) -> Vec<(&'static str, PathBuf)> {
    let p = |n: &str| work.join(n);
    let s = |p: &PathBuf| p.to_str().unwrap().to_string();
    // RSA-2048: OpenSSL, PKCS#8 PEM.
    openssl_ok(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        &s(&p("rsa2048.pem")),
    ]);
    // RSA-3072: our keygen, PKCS#8 PEM.
    keygen("rsa3072", p("rsa3072.pem"));
    // RSA-4096: OpenSSL, PKCS#1 DER.
    openssl_ok(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:4096",
        "-out",
        &s(&p("rsa4096.pem")),
    ]);
    openssl_ok(&[
        "rsa",
        "-in",
        &s(&p("rsa4096.pem")),
        "-traditional",
        "-outform",
        "DER",
        "-out",
        &s(&p("rsa4096.der")),
    ]);
    // P-256: OpenSSL, SEC1 PEM.
    openssl_ok(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        &s(&p("p256-pkcs8.pem")),
    ]);
    openssl_ok(&[
        "ec",
        "-in",
        &s(&p("p256-pkcs8.pem")),
        "-out",
        &s(&p("p256.pem")),
    ]);
    // P-384: our keygen, then SEC1 DER and PKCS#8 DER through OpenSSL.
    keygen("p384", p("p384.pem"));
    openssl_ok(&[
        "ec",
        "-in",
        &s(&p("p384.pem")),
        "-outform",
        "DER",
        "-out",
        &s(&p("p384.der")),
    ]);
    vec![
        ("rsa2048", p("rsa2048.pem")),
        ("rsa3072", p("rsa3072.pem")),
        ("rsa4096", p("rsa4096.der")),
        ("p256", p("p256.pem")),
        ("p384", p("p384.der")),
    ]
}

// Long on purpose: one swtpm per test costs seconds, so the checks that share a host share a test, in order.
#[test]
fn every_key_type_transfers_and_signs_verifiably() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let w = world(&host, "eu-west", work.path());
    verifier()
        .args([
            "verify",
            "--nonce",
            &w.nonce,
            "--world",
            "eu-west",
            "--json",
            "--evidence",
        ])
        .arg(&w.evidence)
        .arg("--roots")
        .arg(&host.ca_bundle)
        .assert()
        .success()
        .stdout(contains("\"ok\":true"));

    let msg = work.path().join("message.txt");
    std::fs::write(&msg, b"tpm-byok signs this\n").unwrap();
    for (alg, key) in make_keys(work.path()) {
        let pkg = work.path().join(format!("{alg}.transfer"));
        wrap(&host, &w, &key, &pkg).success();
        assert_eq!(read_package(&pkg).key.alg, alg);
        let name = format!("k-{alg}");
        if alg == "rsa4096" && !tpm_supports(&host, "rsa4096") {
            // libtpms 0.9 (Debian 12's swtpm) has no RSA-4096: the agent
            // asks the TPM first and refuses cleanly, storing nothing.
            host.import("eu-west", &name, &pkg)
                .code(9)
                .stderr(contains("this TPM does not support RSA-4096 keys"));
            assert!(!host.stored_keys().contains(&format!("{name}.cbor")));
            eprintln!(
                "note: this swtpm has no RSA-4096; its import was checked to be refused cleanly"
            );
            continue;
        }
        host.import("eu-west", &name, &pkg).success();

        // The public key the TPM holds is the original one.
        let original_pub = public_pem_of(&key, work.path());
        let tpm_pub = work.path().join(format!("{alg}.tpm.pub.pem"));
        host.agent()
            .args(["public", "--key", &name, "-o"])
            .arg(&tpm_pub)
            .assert()
            .success();
        assert_eq!(
            std::fs::read_to_string(&original_pub).unwrap().trim(),
            std::fs::read_to_string(&tpm_pub).unwrap().trim(),
            "{alg}: public key differs"
        );

        // A signature made inside the TPM verifies with the original public key (OpenSSL).
        let sig = work.path().join(format!("{alg}.sig"));
        host.agent()
            .args(["sign", "--key", &name, "--in"])
            .arg(&msg)
            .arg("-o")
            .arg(&sig)
            .assert()
            .success();
        openssl()
            .args(["dgst", "-sha256", "-verify"])
            .arg(&original_pub)
            .arg("-signature")
            .arg(&sig)
            .arg(&msg)
            .assert()
            .success()
            .stdout(contains("Verified OK"));
        if alg.starts_with("rsa") {
            let pss = work.path().join(format!("{alg}.pss.sig"));
            host.agent()
                .args([
                    "sign", "--key", &name, "--scheme", "pss", "--hash", "sha384", "--in",
                ])
                .arg(&msg)
                .arg("-o")
                .arg(&pss)
                .assert()
                .success();
            openssl()
                .args([
                    "dgst",
                    "-sha384",
                    "-sigopt",
                    "rsa_padding_mode:pss",
                    "-sigopt",
                    "rsa_pss_saltlen:auto",
                    "-verify",
                ])
                .arg(&original_pub)
                .arg("-signature")
                .arg(&pss)
                .arg(&msg)
                .assert()
                .success()
                .stdout(contains("Verified OK"));
        }
    }
    host.agent()
        .args(["keys", "list"])
        .assert()
        .success()
        .stdout(contains("k-p384\teu-west\tp384\timported"));
    // State files are private.
    use std::os::unix::fs::PermissionsExt;
    for f in std::fs::read_dir(host.state.path().join("keys")).unwrap() {
        let mode = f.unwrap().metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}

#[test]
fn package_for_one_world_fails_in_another_world_of_the_same_tpm() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let eu = world(&host, "eu", work.path());
    let us = world(&host, "us", work.path());
    let key = work.path().join("k.pem");
    keygen("p256", &key);
    let pkg = work.path().join("eu.transfer");
    wrap(&host, &eu, &key, &pkg).success();

    // The agent sees the package is for another world.
    host.import("us", "k", &pkg)
        .code(7)
        .stderr(contains("transfer package is for world \"eu\", not \"us\""));
    assert!(host.stored_keys().is_empty());

    // Relabelled to pass the agent's checks, the TPM itself refuses it:
    // the credential is bound to eu's AK and the blob to eu's KEK.
    let forged = work.path().join("relabelled.transfer");
    write_package(
        &forged,
        &relabel(&read_package(&pkg), &evidence_of(&us.evidence)),
    );
    host.import("us", "k", &forged)
        .code(8)
        .stderr(contains("the TPM refused"));
    assert!(host.stored_keys().is_empty());

    // The genuine world still takes it.
    host.import("eu", "k", &pkg).success();
    assert_eq!(host.stored_keys(), vec!["k.cbor".to_string()]);
}

#[test]
fn package_for_one_tpm_fails_on_another_tpm() {
    let a = Host::new(tpm_a());
    let b = Host::new(tpm_b());
    let work = TempDir::new().unwrap();
    let wa = world(&a, "eu", work.path());
    let wb = world(&b, "eu", work.path());
    let key = work.path().join("k.pem");
    keygen("rsa2048", &key);
    let pkg = work.path().join("a.transfer");
    wrap(&a, &wa, &key, &pkg).success();

    b.import("eu", "k", &pkg)
        .code(7)
        .stderr(contains("was wrapped for KEK"));
    let forged = work.path().join("relabelled.transfer");
    write_package(
        &forged,
        &relabel(&read_package(&pkg), &evidence_of(&wb.evidence)),
    );
    b.import("eu", "k", &forged)
        .code(8)
        .stderr(contains("TPM2_ActivateCredential"));
    assert!(b.stored_keys().is_empty());

    // TPM B's evidence does not chain to TPM A's CA.
    verifier()
        .args(["verify", "--nonce", &wb.nonce, "--evidence"])
        .arg(&wb.evidence)
        .arg("--roots")
        .arg(&a.ca_bundle)
        .assert()
        .code(10)
        .stdout(contains("EK certificate chain is not trusted"));
}

#[test]
fn tampered_packages_are_refused_and_leave_nothing() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let w = world(&host, "eu", work.path());
    let key = work.path().join("k.pem");
    keygen("p256", &key);
    let pkg_path = work.path().join("k.transfer");
    wrap(&host, &w, &key, &pkg_path).success();
    let pkg = read_package(&pkg_path);

    type Field = fn(&mut TransferPackage) -> &mut ByteBuf;
    let fields: [(&str, Field, usize); 5] = [
        ("credential.id_object", |t| &mut t.credential.id_object, 1),
        (
            "credential.encrypted_secret",
            |t| &mut t.credential.encrypted_secret,
            5,
        ),
        ("object.public", |t| &mut t.object.public, 1),
        ("object.duplicate", |t| &mut t.object.duplicate, 1),
        ("object.seed", |t| &mut t.object.seed, 5),
    ];
    let bad = work.path().join("bad.transfer");
    let mut tried = 0;
    for (field, get, stride) in fields {
        let len = get(&mut pkg.clone()).len();
        // Every byte of the small structures; a stride through the 256-byte
        // RSA ciphertexts, always with their first and last bytes.
        let positions = (0..len).filter(|i| i % stride == 0 || *i == len - 1);
        for i in positions {
            let mut t = pkg.clone();
            get(&mut t)[i] ^= 0x01;
            write_package(&bad, &t);
            let out = host
                .agent()
                .args(["import", "--world", "eu", "--name", "k", "--in"])
                .arg(&bad)
                .output()
                .unwrap();
            let code = out.status.code();
            assert!(
                code == Some(5) || code == Some(8),
                "{field}[{i}] flipped: expected refusal (5 or 8), got {code:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            tried += 1;
        }
        assert!(
            host.stored_keys().is_empty(),
            "{field}: something was stored"
        );
    }
    assert!(tried > 300);

    // Truncated and foreign files.
    let bytes = std::fs::read(&pkg_path).unwrap();
    std::fs::write(&bad, &bytes[..bytes.len() / 2]).unwrap();
    host.import("eu", "k", &bad)
        .code(5)
        .stderr(contains("transfer package is unreadable"));
    host.import("eu", "k", &w.evidence)
        .code(5)
        .stderr(contains("expected \"tpm-byok/transfer\""));
    assert!(host.stored_keys().is_empty());

    // The untouched package still imports: the refusals came from the tampering.
    host.import("eu", "k", &pkg_path).success();
}

#[test]
fn wrong_nonce_or_world_is_refused_before_anything_is_written() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let w = world(&host, "eu", work.path());
    let key = work.path().join("k.pem");
    keygen("p256", &key);
    let out = work.path().join("k.transfer");

    // Another nonce than the one the evidence was made for.
    let other = World {
        nonce: nonce(),
        evidence: w.evidence.clone(),
    };
    wrap(&host, &other, &key, &out)
        .code(10)
        .stderr(contains("nonce"));
    assert!(!out.exists());

    // The unsigned nonce field rewritten to the operator's: the signed
    // qualifyingData still gives it away.
    let mut ev = evidence_of(&w.evidence);
    ev.nonce = ByteBuf::from(hex::decode(&other.nonce).unwrap());
    let forged = work.path().join("forged-nonce.evidence");
    std::fs::write(&forged, ev.to_cbor()).unwrap();
    verifier()
        .args(["verify", "--nonce", &other.nonce, "--evidence"])
        .arg(&forged)
        .arg("--roots")
        .arg(&host.ca_bundle)
        .assert()
        .code(10)
        .stdout(contains(
            "KEK certify: qualifyingData/extraData is not the operator's nonce",
        ));

    // Wrong world asked for; and the unsigned world field rewritten: the
    // KEK's signed world binding gives it away.
    verifier()
        .args(["verify", "--nonce", &w.nonce, "--world", "us", "--evidence"])
        .arg(&w.evidence)
        .arg("--roots")
        .arg(&host.ca_bundle)
        .assert()
        .code(10)
        .stdout(contains("evidence is for world \"eu\", expected \"us\""));
    let mut ev = evidence_of(&w.evidence);
    ev.world = "us".parse().unwrap();
    std::fs::write(&forged, ev.to_cbor()).unwrap();
    verifier()
        .args(["wrap", "--nonce", &w.nonce, "--world", "us", "--evidence"])
        .arg(&forged)
        .arg("--roots")
        .arg(&host.ca_bundle)
        .arg("--key")
        .arg(&key)
        .arg("-o")
        .arg(&out)
        .assert()
        .code(10)
        .stderr(contains("KEK is bound to another world than \"us\""));
    assert!(!out.exists());
}

// Long on purpose: one swtpm per test costs seconds, so the checks that share a host share a test, in order.
#[test]
fn receipts_prove_the_key_lives_under_the_attested_kek() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let w = world(&host, "eu", work.path());
    let mut pkgs = Vec::new();
    for (i, alg) in ["p256", "rsa2048"].iter().enumerate() {
        let key = work.path().join(format!("k{i}.pem"));
        keygen(alg, &key);
        let pkg = work.path().join(format!("k{i}.transfer"));
        wrap(&host, &w, &key, &pkg).success();
        host.import("eu", &format!("k{i}"), &pkg).success();
        pkgs.push(pkg);
    }
    let rn = nonce();
    let receipt = work.path().join("k0.receipt");
    host.agent()
        .args(["attest-key", "--key", "k0", "--nonce", &rn, "-o"])
        .arg(&receipt)
        .assert()
        .success();
    // A receipt is signed by the AK alone: without proof that the AK lives in
    // the EK's TPM it proves nothing, so check-receipt wants the host enrolled.
    let registry = work.path().join("registry");
    let unproven = || {
        verifier()
            .args([
                "check-receipt",
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
            .assert()
    };
    unproven()
        .code(10)
        .stderr(contains("check-receipt needs the AK proven"));
    byok_tests::enroll(&host, "eu", &w.evidence, &w.nonce, &registry, &[]).success();
    let check = |receipt: &Path, n: &str, transfer: &Path| {
        let mut c = verifier();
        c.args([
            "check-receipt",
            "--json",
            "--nonce",
            n,
            "--evidence-nonce",
            &w.nonce,
            "--receipt",
        ])
        .arg(receipt)
        .arg("--evidence")
        .arg(&w.evidence)
        .arg("--roots")
        .arg(&host.ca_bundle)
        .arg("--registry")
        .arg(&registry)
        .arg("--transfer")
        .arg(transfer);
        c.assert()
    };
    check(&receipt, &rn, &pkgs[0])
        .success()
        .stdout(contains("\"origin\":\"imported\""))
        .stdout(contains("\"duplicable\":false"))
        .stdout(contains("\"matches_transfer\":true"));

    // A receipt for another key does not match the package.
    let other = work.path().join("k1.receipt");
    host.agent()
        .args(["attest-key", "--key", "k1", "--nonce", &rn, "-o"])
        .arg(&other)
        .assert()
        .success();
    check(&other, &rn, &pkgs[0]).code(10).stderr(contains(
        "receipt certifies a key other than the one in the transfer package",
    ));
    // A replayed receipt (another nonce).
    check(&receipt, &nonce(), &pkgs[0])
        .code(10)
        .stderr(contains("key certify: qualifyingData"));
    // A receipt checked against another world's evidence; and relabelled to
    // that world, the AK (another world's) gives it away.
    let us = world(&host, "us", work.path());
    byok_tests::enroll(&host, "us", &us.evidence, &us.nonce, &registry, &[]).success();
    let against_us = |receipt: &Path| {
        verifier()
            .args([
                "check-receipt",
                "--nonce",
                &rn,
                "--evidence-nonce",
                &us.nonce,
                "--receipt",
            ])
            .arg(receipt)
            .arg("--evidence")
            .arg(&us.evidence)
            .arg("--roots")
            .arg(&host.ca_bundle)
            .arg("--registry")
            .arg(&registry)
            .assert()
    };
    against_us(&receipt)
        .code(10)
        .stderr(contains("receipt is for world \"eu\", not \"us\""));
    let mut r = Receipt::from_cbor(&std::fs::read(&receipt).unwrap()).unwrap();
    r.world = "us".parse().unwrap();
    let relabelled = work.path().join("relabelled.receipt");
    std::fs::write(&relabelled, r.to_cbor()).unwrap();
    against_us(&relabelled).code(10).stderr(contains(
        "receipt's AK is not the AK of the verified evidence",
    ));
}
