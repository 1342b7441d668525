//! The compat path on the agent: `.byok` files for the world's compat KEK,
//! made by our verifier (from a JWK, or from verified evidence) and by a plain
//! OpenSSL pipeline as Azure users write it, imported and used inside the TPM.

use base64::Engine as _;
use byok_protocol::formats::{Document, Evidence};
use byok_tests::{keygen, nonce, openssl, tpm_a, tpm_b, verifier, Host};
use predicates::str::contains;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

fn compat_world(host: &Host, work: &Path) -> (String, PathBuf) {
    host.agent()
        .args(["init", "--world", "eu", "--compat-kek"])
        .assert()
        .success()
        .stdout(contains("compat KEK  RSA-3072"));
    let n = nonce();
    let ev = work.join(format!("eu-{}.evidence", host.tpm.port));
    host.evidence("eu", &n, &ev);
    (n, ev)
}

fn import(host: &Host, file: &Path, name: &str) -> assert_cmd::assert::Assert {
    host.import("eu", name, file)
}

fn signs_like(host: &Host, name: &str, original: &Path, work: &Path) {
    let msg = work.join("msg");
    std::fs::write(&msg, b"signed after a .byok import").unwrap();
    let sig = work.join(format!("{name}.sig"));
    host.agent()
        .args(["sign", "--key", name, "--in"])
        .arg(&msg)
        .arg("-o")
        .arg(&sig)
        .assert()
        .success();
    let public = work.join(format!("{name}.pub"));
    openssl()
        .args(["pkey", "-pubout", "-in"])
        .arg(original)
        .arg("-out")
        .arg(&public)
        .assert()
        .success();
    openssl()
        .args(["dgst", "-sha256", "-verify"])
        .arg(&public)
        .arg("-signature")
        .arg(&sig)
        .arg(&msg)
        .assert()
        .success()
        .stdout(contains("Verified OK"));
}

// Long on purpose: one swtpm per test costs seconds, so the checks that share a host share a test, in order.
#[test]
fn byok_files_from_our_verifier_and_from_openssl_import_and_sign() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let w = work.path();
    let (n, ev) = compat_world(&host, w);

    // The evidence certifies the compat KEK as a child of the KEK.
    verifier()
        .args(["verify", "--nonce", &n, "--evidence"])
        .arg(&ev)
        .arg("--roots")
        .arg(&host.ca_bundle)
        .assert()
        .success()
        .stdout(contains("compat KEK: RSA-3072 kid tpm-byok:eu:"));

    // 1. From the exported JWK (what any .byok tool would be given).
    host.agent()
        .args(["kek", "export", "--world", "eu", "--format", "jwk", "-o"])
        .arg(w.join("kek.jwk"))
        .assert()
        .success();
    let jwk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.join("kek.jwk")).unwrap()).unwrap();
    assert!(jwk["kid"].as_str().unwrap().starts_with("tpm-byok:eu:000b"));
    openssl()
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(w.join("p256.pem"))
        .assert()
        .success();
    verifier()
        .args(["wrap", "--format", "azure", "--kek-public"])
        .arg(w.join("kek.jwk"))
        .arg("--key")
        .arg(w.join("p256.pem"))
        .arg("-o")
        .arg(w.join("p256.byok"))
        .assert()
        .success();
    verifier()
        .arg("inspect")
        .arg(w.join("p256.byok"))
        .assert()
        .success()
        .stdout(contains("enc: CKM_RSA_AES_KEY_WRAP"));
    import(&host, &w.join("p256.byok"), "from-jwk")
        .success()
        .stdout(contains("from a .byok file"));
    signs_like(&host, "from-jwk", &w.join("p256.pem"), w);

    // 2. From verified evidence (the compat KEK's key and kid come from
    // TPM-signed bytes): only once the host's AK is proven (enrolled), since
    // nothing else binds this key to the TPM.
    keygen("rsa2048", w.join("rsa.pem"));
    let wrap_from_evidence = |extra: &[&std::ffi::OsStr]| {
        verifier()
            .args(["wrap", "--format", "azure", "--nonce", &n, "--evidence"])
            .arg(&ev)
            .arg("--roots")
            .arg(&host.ca_bundle)
            .arg("--key")
            .arg(w.join("rsa.pem"))
            .arg("-o")
            .arg(w.join("rsa.byok"))
            .args(extra)
            .assert()
    };
    wrap_from_evidence(&[])
        .code(10)
        .stderr(contains("needs the AK proven to live in the EK's TPM"));
    assert!(!w.join("rsa.byok").exists());
    let registry = w.join("registry");
    byok_tests::enroll(&host, "eu", &ev, &n, &registry, &[]).success();
    wrap_from_evidence(&["--registry".as_ref(), registry.as_os_str()]).success();
    import(&host, &w.join("rsa.byok"), "from-evidence").success();
    signs_like(&host, "from-evidence", &w.join("rsa.pem"), w);

    // 3. A hand-written OpenSSL pipeline, as Azure users build .byok files.
    host.agent()
        .args(["kek", "export", "--world", "eu", "--format", "pem", "-o"])
        .arg(w.join("kek.pem"))
        .assert()
        .success();
    openssl()
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-out",
        ])
        .arg(w.join("p384.pem"))
        .assert()
        .success();
    let s = |p: &str| w.join(p).to_str().unwrap().to_string();
    openssl()
        .args(["rand", "-out", &s("aes.key"), "32"])
        .assert()
        .success();
    openssl()
        .args([
            "pkeyutl",
            "-encrypt",
            "-pubin",
            "-inkey",
            &s("kek.pem"),
            "-pkeyopt",
            "rsa_padding_mode:oaep",
        ])
        .args([
            "-pkeyopt",
            "rsa_oaep_md:sha1",
            "-pkeyopt",
            "rsa_mgf1_md:sha1",
            "-in",
            &s("aes.key"),
            "-out",
            &s("rsa.block"),
        ])
        .assert()
        .success();
    openssl()
        .args([
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-outform",
            "DER",
            "-in",
            &s("p384.pem"),
            "-out",
            &s("p384.der"),
        ])
        .assert()
        .success();
    let aes_hex = hex::encode(std::fs::read(w.join("aes.key")).unwrap());
    openssl()
        .args([
            "enc",
            "-id-aes256-wrap-pad",
            "-iv",
            "A65959A6",
            "-K",
            &aes_hex,
            "-in",
            &s("p384.der"),
            "-out",
            &s("kwp.bin"),
        ])
        .assert()
        .success();
    let mut blob = std::fs::read(w.join("rsa.block")).unwrap();
    blob.extend(std::fs::read(w.join("kwp.bin")).unwrap());
    let doc = serde_json::json!({
        "schema_version": "1.0.0",
        "header": {"kid": jwk["kid"], "alg": "dir", "enc": "CKM_RSA_AES_KEY_WRAP"},
        "ciphertext": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&blob),
        "generator": "openssl pipeline"
    });
    std::fs::write(w.join("openssl.byok"), doc.to_string()).unwrap();
    import(&host, &w.join("openssl.byok"), "from-openssl").success();
    signs_like(&host, "from-openssl", &w.join("p384.pem"), w);
    host.agent()
        .args(["keys", "show", "from-openssl"])
        .assert()
        .success()
        .stdout(contains("origin:     imported (.byok)"));
}

// Long on purpose: one swtpm per test costs seconds, so the checks that share a host share a test, in order.
#[test]
fn bad_byok_files_are_refused_and_leave_nothing() {
    let a = Host::new(tpm_a());
    let b = Host::new(tpm_b());
    let work = TempDir::new().unwrap();
    let w = work.path();
    compat_world(&a, w);
    compat_world(&b, w);
    a.agent()
        .args(["kek", "export", "--world", "eu", "--format", "jwk", "-o"])
        .arg(w.join("a.jwk"))
        .assert()
        .success();
    b.agent()
        .args(["kek", "export", "--world", "eu", "--format", "jwk", "-o"])
        .arg(w.join("b.jwk"))
        .assert()
        .success();
    keygen("p256", w.join("k.pem"));
    verifier()
        .args(["wrap", "--format", "azure", "--kek-public"])
        .arg(w.join("b.jwk"))
        .arg("--key")
        .arg(w.join("k.pem"))
        .arg("-o")
        .arg(w.join("for-b.byok"))
        .assert()
        .success();

    // For another KEK: the kid says so.
    import(&a, &w.join("for-b.byok"), "k")
        .code(7)
        .stderr(contains(".byok file is for KEK"));
    // Relabelled with our kid: the TPM cannot decrypt the RSA block.
    let a_kid =
        serde_json::from_slice::<serde_json::Value>(&std::fs::read(w.join("a.jwk")).unwrap())
            .unwrap()["kid"]
            .clone();
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.join("for-b.byok")).unwrap()).unwrap();
    doc["header"]["kid"] = a_kid.clone();
    std::fs::write(w.join("relabelled.byok"), doc.to_string()).unwrap();
    import(&a, &w.join("relabelled.byok"), "k")
        .code(8)
        .stderr(contains("TPM2_RSA_Decrypt"));

    // A genuine file for A, then truncated and with flipped bytes.
    verifier()
        .args(["wrap", "--format", "azure", "--kek-public"])
        .arg(w.join("a.jwk"))
        .arg("--key")
        .arg(w.join("k.pem"))
        .arg("-o")
        .arg(w.join("for-a.byok"))
        .assert()
        .success();
    let good: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.join("for-a.byok")).unwrap()).unwrap();
    let ct = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(good["ciphertext"].as_str().unwrap())
        .unwrap();
    let with_ct = |bytes: &[u8], file: &str| {
        let mut d = good.clone();
        d["ciphertext"] = serde_json::Value::String(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
        );
        std::fs::write(w.join(file), d.to_string()).unwrap();
        w.join(file)
    };
    import(&a, &with_ct(&ct[..300], "short.byok"), "k")
        .code(5)
        .stderr(contains("less than the 384-byte RSA block"));
    for i in [0, 200, 383, 384, 390, ct.len() - 1] {
        let mut bad = ct.clone();
        bad[i] ^= 1;
        let out = a
            .agent()
            .args(["import", "--world", "eu", "--name", "k", "--in"])
            .arg(with_ct(&bad, "flipped.byok"))
            .output()
            .unwrap();
        assert!(
            matches!(out.status.code(), Some(5) | Some(8)),
            "byte {i}: {:?} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::write(w.join("junk.byok"), b"{not json").unwrap();
    import(&a, &w.join("junk.byok"), "k")
        .code(5)
        .stderr(contains(".byok file is unreadable"));
    let keys: Vec<_> = std::fs::read_dir(a.state.path().join("keys"))
        .unwrap()
        .collect();
    assert!(keys.is_empty(), "a refused .byok left a key behind");
    // And the genuine one imports.
    import(&a, &w.join("for-a.byok"), "k").success();
}

#[test]
fn compat_kek_evidence_is_checked() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let (n, ev_path) = compat_world(&host, work.path());
    let ev = Evidence::from_cbor(&std::fs::read(&ev_path).unwrap()).unwrap();
    let check = |ev: &Evidence| {
        let p = work.path().join("t.evidence");
        std::fs::write(&p, ev.to_cbor()).unwrap();
        verifier()
            .args(["verify", "--nonce", &n, "--evidence"])
            .arg(&p)
            .arg("--roots")
            .arg(&host.ca_bundle)
            .assert()
    };
    check(&ev).success();
    let c = ev.compat_kek.clone().unwrap();
    // Every byte of its certify and public area.
    for i in 0..c.certify.attest.len() {
        let mut e = ev.clone();
        e.compat_kek.as_mut().unwrap().certify.attest[i] ^= 1;
        check(&e).code(10);
    }
    let mut e = ev.clone();
    e.compat_kek.as_mut().unwrap().public = ev.kek.public.clone();
    check(&e).code(10).stdout(contains(
        "compat KEK: certified name is not the name of its public area",
    ));
    // The storage KEK's certify presented as the compat KEK's.
    let mut e = ev.clone();
    e.compat_kek.as_mut().unwrap().public = ev.kek.public.clone();
    e.compat_kek.as_mut().unwrap().certify = ev.kek.certify.clone();
    check(&e)
        .code(10)
        .stdout(contains("compat KEK is not a child of the attested KEK"));
}

#[test]
fn a_raw_aes_key_in_a_byok_file_imports_and_encrypts_as_openssl_decrypts() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let w = work.path();
    compat_world(&host, w);
    host.agent()
        .args(["kek", "export", "--world", "eu", "--format", "jwk", "-o"])
        .arg(w.join("kek.jwk"))
        .assert()
        .success();
    let key = [0x5au8; 32];
    std::fs::write(w.join("aes.raw"), key).unwrap();
    verifier()
        .args([
            "wrap",
            "--format",
            "azure",
            "--key-type",
            "aes",
            "--kek-public",
        ])
        .arg(w.join("kek.jwk"))
        .arg("--key")
        .arg(w.join("aes.raw"))
        .arg("-o")
        .arg(w.join("aes.byok"))
        .assert()
        .success();
    import(&host, &w.join("aes.byok"), "aes").success();
    let plain = w.join("plain");
    std::fs::write(
        &plain,
        b"encrypted inside the TPM with a key from a .byok file",
    )
    .unwrap();
    host.agent()
        .args(["encrypt", "--key", "aes", "--in"])
        .arg(&plain)
        .arg("-o")
        .arg(w.join("ct"))
        .assert()
        .success();
    let ct = std::fs::read(w.join("ct")).unwrap();
    std::fs::write(w.join("ct.body"), &ct[16..]).unwrap();
    openssl()
        .args([
            "enc",
            "-d",
            "-aes-256-cfb",
            "-K",
            &hex::encode(key),
            "-iv",
            &hex::encode(&ct[..16]),
            "-in",
        ])
        .arg(w.join("ct.body"))
        .assert()
        .success()
        .stdout(std::fs::read(&plain).unwrap());
}
