//! Cloud BYOK formats, checked with an independent implementation: every
//! output is unwrapped with OpenSSL (`pkeyutl -decrypt` with the method's OAEP
//! options, then `enc -d -id-aes256-wrap-pad`) and compared with the original key.

use base64::Engine as _;
use byok_tests::{openssl, verifier};
use predicates::str::contains;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tempfile::TempDir;

struct Keys {
    dir: TempDir,
}

impl Keys {
    fn p(&self, n: &str) -> PathBuf {
        self.dir.path().join(n)
    }
}

// Long on purpose: one table of cases.
/// KEKs and target keys, made once by OpenSSL.
fn keys() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| {
        let k = Keys {
            dir: TempDir::new().unwrap(),
        };
        let s = |n: &str| k.p(n).to_str().unwrap().to_string();
        for bits in [2048, 3072, 4096] {
            let kek = s(&format!("kek{bits}.pem"));
            openssl()
                .args([
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    &format!("rsa_keygen_bits:{bits}"),
                    "-out",
                    &kek,
                ])
                .assert()
                .success();
            openssl()
                .args([
                    "pkey",
                    "-in",
                    &kek,
                    "-pubout",
                    "-out",
                    &s(&format!("kek{bits}.pub")),
                ])
                .assert()
                .success();
        }
        openssl()
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                &s("rsa2048.pem"),
            ])
            .assert()
            .success();
        openssl()
            .args([
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                &s("p256.pem"),
            ])
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
                &s("p384-pkcs8.pem"),
            ])
            .assert()
            .success();
        // SEC1 form: converted to PKCS#8 by the verifier.
        openssl()
            .args([
                "ec",
                "-in",
                &s("p384-pkcs8.pem"),
                "-out",
                &s("p384-sec1.pem"),
            ])
            .assert()
            .success();
        for (n, len) in [
            ("aes128", 16),
            ("aes192", 24),
            ("aes256", 32),
            ("hmac32", 32),
            ("hmac64", 64),
        ] {
            openssl()
                .args(["rand", "-out", &s(n), &len.to_string()])
                .assert()
                .success();
        }
        k
    })
}

fn pem_body(p: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(p).unwrap();
    let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

#[derive(Clone, Copy)]
enum Wrapping {
    RsaAes(&'static str),
    Oaep(&'static str),
}

/// Unwrap `blob` with OpenSSL and the KEK's private key.
fn openssl_unwrap(blob: &[u8], kek_bits: usize, kek: &Path, w: Wrapping, work: &Path) -> Vec<u8> {
    let decrypt = |input: &[u8], md: &str, out: &str| {
        std::fs::write(work.join("in.bin"), input).unwrap();
        openssl()
            .args(["pkeyutl", "-decrypt", "-inkey"])
            .arg(kek)
            .args([
                "-pkeyopt",
                "rsa_padding_mode:oaep",
                "-pkeyopt",
                &format!("rsa_oaep_md:{md}"),
                "-pkeyopt",
                &format!("rsa_mgf1_md:{md}"),
                "-in",
            ])
            .arg(work.join("in.bin"))
            .arg("-out")
            .arg(work.join(out))
            .assert()
            .success();
        std::fs::read(work.join(out)).unwrap()
    };
    match w {
        Wrapping::Oaep(md) => decrypt(blob, md, "plain.bin"),
        Wrapping::RsaAes(md) => {
            let (rsa_block, kwp) = blob.split_at(kek_bits / 8);
            let aes = decrypt(rsa_block, md, "aes.bin");
            assert_eq!(aes.len(), 32, "ephemeral key is AES-256");
            std::fs::write(work.join("kwp.bin"), kwp).unwrap();
            openssl()
                .args([
                    "enc",
                    "-d",
                    "-id-aes256-wrap-pad",
                    "-iv",
                    "A65959A6",
                    "-K",
                    &hex::encode(aes),
                    "-in",
                ])
                .arg(work.join("kwp.bin"))
                .arg("-out")
                .arg(work.join("key.out"))
                .assert()
                .success();
            std::fs::read(work.join("key.out")).unwrap()
        }
    }
}

struct Case {
    format: &'static str,
    method: &'static str,
    kek_bits: usize,
    wrapping: Wrapping,
}

const CASES: &[Case] = &[
    Case {
        format: "azure",
        method: "CKM_RSA_AES_KEY_WRAP",
        kek_bits: 2048,
        wrapping: Wrapping::RsaAes("sha1"),
    },
    Case {
        format: "azure",
        method: "CKM_RSA_AES_KEY_WRAP",
        kek_bits: 4096,
        wrapping: Wrapping::RsaAes("sha1"),
    },
    Case {
        format: "azure",
        method: "RSA_AES_KEY_WRAP_256",
        kek_bits: 3072,
        wrapping: Wrapping::RsaAes("sha256"),
    },
    Case {
        format: "gcp",
        method: "RSA_OAEP_3072_SHA256_AES_256",
        kek_bits: 3072,
        wrapping: Wrapping::RsaAes("sha256"),
    },
    Case {
        format: "gcp",
        method: "RSA_OAEP_4096_SHA256_AES_256",
        kek_bits: 4096,
        wrapping: Wrapping::RsaAes("sha256"),
    },
    Case {
        format: "gcp",
        method: "RSA_OAEP_3072_SHA1_AES_256",
        kek_bits: 3072,
        wrapping: Wrapping::RsaAes("sha1"),
    },
    Case {
        format: "gcp",
        method: "RSA_OAEP_4096_SHA1_AES_256",
        kek_bits: 4096,
        wrapping: Wrapping::RsaAes("sha1"),
    },
    Case {
        format: "gcp",
        method: "RSA_OAEP_3072_SHA256",
        kek_bits: 3072,
        wrapping: Wrapping::Oaep("sha256"),
    },
    Case {
        format: "gcp",
        method: "RSA_OAEP_4096_SHA256",
        kek_bits: 4096,
        wrapping: Wrapping::Oaep("sha256"),
    },
    Case {
        format: "aws",
        method: "RSA_AES_KEY_WRAP_SHA_256",
        kek_bits: 2048,
        wrapping: Wrapping::RsaAes("sha256"),
    },
    Case {
        format: "aws",
        method: "RSA_AES_KEY_WRAP_SHA_1",
        kek_bits: 4096,
        wrapping: Wrapping::RsaAes("sha1"),
    },
    Case {
        format: "aws",
        method: "RSAES_OAEP_SHA_256",
        kek_bits: 3072,
        wrapping: Wrapping::Oaep("sha256"),
    },
    Case {
        format: "aws",
        method: "RSAES_OAEP_SHA_1",
        kek_bits: 2048,
        wrapping: Wrapping::Oaep("sha1"),
    },
];

/// (file, --key-type, what the cloud must receive, accepted by clouds)
fn targets(k: &Keys) -> Vec<(&'static str, &'static str, Vec<u8>, &'static [&'static str])> {
    let raw = |n: &str| std::fs::read(k.p(n)).unwrap();
    vec![
        (
            "rsa2048.pem",
            "auto",
            pem_body(&k.p("rsa2048.pem")),
            &["azure", "gcp", "aws"],
        ),
        (
            "p256.pem",
            "auto",
            pem_body(&k.p("p256.pem")),
            &["azure", "gcp", "aws"],
        ),
        (
            "p384-sec1.pem",
            "auto",
            Vec::new(),
            &["azure", "gcp", "aws"],
        ),
        ("aes128", "aes", raw("aes128"), &["azure", "gcp"]),
        ("aes192", "aes", raw("aes192"), &["azure"]),
        ("aes256", "aes", raw("aes256"), &["azure", "gcp", "aws"]),
        ("hmac32", "hmac", raw("hmac32"), &["gcp", "aws"]),
        ("hmac64", "hmac", raw("hmac64"), &["gcp", "aws"]),
    ]
}

fn same_private_key(der: &[u8], original: &Path, work: &Path) {
    std::fs::write(work.join("got.der"), der).unwrap();
    let pub_of = |args: &[&str], p: &Path| {
        let out = openssl()
            .args(["pkey"])
            .args(args)
            .arg("-in")
            .arg(p)
            .args(["-pubout"])
            .output()
            .unwrap();
        assert!(out.status.success());
        out.stdout
    };
    assert_eq!(
        pub_of(&["-inform", "DER"], &work.join("got.der")),
        pub_of(&[], original)
    );
    // PKCS#8 specifically.
    openssl()
        .args(["pkcs8", "-nocrypt", "-inform", "DER", "-in"])
        .arg(work.join("got.der"))
        .assert()
        .success();
}

#[test]
fn every_format_and_key_type_unwraps_with_openssl() {
    let k = keys();
    let work = TempDir::new().unwrap();
    let mut checked = 0;
    for case in CASES {
        for (file, key_type, expected, clouds) in targets(k) {
            let asym = key_type == "auto";
            let oaep_only = matches!(case.wrapping, Wrapping::Oaep(_));
            let accepted = clouds.contains(&case.format) && !(oaep_only && asym);
            let out = work
                .path()
                .join(format!("{}-{}-{file}.out", case.format, case.method));
            let mut cmd = verifier();
            cmd.args([
                "--force",
                "wrap",
                "--format",
                case.format,
                "--method",
                case.method,
                "--key-type",
                key_type,
                "--kid",
                "kek-1",
                "--kek-public",
            ])
            .arg(k.p(&format!("kek{}.pub", case.kek_bits)))
            .arg("--key")
            .arg(k.p(file))
            .arg("-o")
            .arg(&out);
            if !accepted {
                cmd.assert().code(5).stderr(contains("would refuse this"));
                assert!(!out.exists());
                continue;
            }
            cmd.assert().success();
            let written = std::fs::read(&out).unwrap();
            let blob = if case.format == "azure" {
                let v: serde_json::Value = serde_json::from_slice(&written).unwrap();
                assert_eq!(v["schema_version"], "1.0.0");
                assert_eq!(v["header"]["kid"], "kek-1");
                assert_eq!(v["header"]["alg"], "dir");
                assert_eq!(v["header"]["enc"], case.method);
                assert!(v["generator"].as_str().unwrap().starts_with("tpm-byok/"));
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(v["ciphertext"].as_str().unwrap())
                    .unwrap()
            } else {
                written
            };
            let got = openssl_unwrap(
                &blob,
                case.kek_bits,
                &k.p(&format!("kek{}.pem", case.kek_bits)),
                case.wrapping,
                work.path(),
            );
            if expected.is_empty() {
                same_private_key(&got, &k.p(file), work.path());
            } else {
                assert_eq!(got, expected, "{} {} {file}", case.format, case.method);
            }
            checked += 1;
        }
    }
    assert!(checked >= 40, "{checked}");
}

#[test]
fn cloud_rules_are_enforced_before_writing() {
    let k = keys();
    let work = TempDir::new().unwrap();
    let out = work.path().join("x");
    let run = |format: &str, method: Option<&str>, kek: usize, key: &str, key_type: &str| {
        let mut c = verifier();
        c.args([
            "wrap",
            "--format",
            format,
            "--key-type",
            key_type,
            "--kid",
            "k",
            "--kek-public",
        ])
        .arg(k.p(&format!("kek{kek}.pub")))
        .arg("--key")
        .arg(k.p(key))
        .arg("-o")
        .arg(&out);
        if let Some(m) = method {
            c.args(["--method", m]);
        }
        c.assert()
    };
    run("gcp", None, 2048, "p256.pem", "auto")
        .code(5)
        .stderr(contains("needs an RSA-3072 KEK, this one is RSA-2048"));
    run(
        "gcp",
        Some("RSA_OAEP_4096_SHA256_AES_256"),
        3072,
        "p256.pem",
        "auto",
    )
    .code(5)
    .stderr(contains("needs an RSA-4096 KEK"));
    run("aws", Some("RSAES_OAEP_SHA_1"), 2048, "rsa2048.pem", "auto")
        .code(5)
        .stderr(contains("wraps small symmetric keys only"));
    run("azure", None, 3072, "hmac32", "hmac")
        .code(5)
        .stderr(contains("do not import HMAC keys"));
    run("aws", None, 3072, "aes128", "aes")
        .code(5)
        .stderr(contains("256-bit AES keys only"));
    run("gcp", None, 3072, "aes192", "aes")
        .code(5)
        .stderr(contains("not AES-192"));
    run("aws", Some("RSA_OAEP_3072_SHA256"), 3072, "aes256", "aes")
        .code(5)
        .stderr(contains("unknown method"));
    run("azure", None, 3072, "aes256", "auto")
        .code(3)
        .stderr(contains("cannot use the key"));
    assert!(!out.exists());
    // Azure needs a kid.
    verifier()
        .args(["wrap", "--format", "azure", "--kek-public"])
        .arg(k.p("kek3072.pub"))
        .arg("--key")
        .arg(k.p("p256.pem"))
        .arg("-o")
        .arg(&out)
        .assert()
        .code(5)
        .stderr(contains("give --kid"));
    assert!(!out.exists());
}

// Long on purpose: one table of cases, each checked the same way.
#[test]
fn kek_public_as_jwk_pkcs1_and_der_and_base64_output() {
    use rsa::pkcs8::DecodePublicKey;
    use rsa::traits::PublicKeyParts;
    let k = keys();
    let work = TempDir::new().unwrap();
    let w = work.path();
    let pk = rsa::RsaPublicKey::from_public_key_pem(
        &std::fs::read_to_string(k.p("kek3072.pub")).unwrap(),
    )
    .unwrap();
    let b64 = |v: Vec<u8>| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    // As `az keyvault key show` prints it.
    let az = serde_json::json!({
        "attributes": {"enabled": true},
        "key": {"kid": "https://v.vault.azure.net/keys/kek/abc", "kty": "RSA-HSM", "key_ops": ["import"],
                "n": b64(pk.n().to_bytes_be()), "e": b64(pk.e().to_bytes_be())}
    });
    std::fs::write(w.join("kek.json"), az.to_string()).unwrap();
    verifier()
        .args(["wrap", "--format", "azure", "--kek-public"])
        .arg(w.join("kek.json"))
        .arg("--key")
        .arg(k.p("p256.pem"))
        .arg("-o")
        .arg(w.join("a.byok"))
        .assert()
        .success();
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.join("a.byok")).unwrap()).unwrap();
    assert_eq!(v["header"]["kid"], "https://v.vault.azure.net/keys/kek/abc");
    let blob = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(v["ciphertext"].as_str().unwrap())
        .unwrap();
    let got = openssl_unwrap(
        &blob,
        3072,
        &k.p("kek3072.pem"),
        Wrapping::RsaAes("sha1"),
        w,
    );
    assert_eq!(got, pem_body(&k.p("p256.pem")));

    // PKCS#1 PEM and DER public keys; base64 output.
    openssl()
        .args(["rsa", "-pubin", "-in"])
        .arg(k.p("kek3072.pub"))
        .args(["-RSAPublicKey_out", "-out"])
        .arg(w.join("kek.pkcs1.pem"))
        .assert()
        .success();
    openssl()
        .args(["pkey", "-pubin", "-in"])
        .arg(k.p("kek3072.pub"))
        .args(["-outform", "DER", "-out"])
        .arg(w.join("kek.der"))
        .assert()
        .success();
    for kek in ["kek.pkcs1.pem", "kek.der"] {
        verifier()
            .args([
                "--force",
                "wrap",
                "--format",
                "gcp",
                "--base64",
                "--key-type",
                "aes",
                "--kek-public",
            ])
            .arg(w.join(kek))
            .arg("--key")
            .arg(k.p("aes256"))
            .arg("-o")
            .arg(w.join("g.b64"))
            .assert()
            .success();
        let text = std::fs::read_to_string(w.join("g.b64")).unwrap();
        let blob = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .unwrap();
        assert_eq!(
            openssl_unwrap(
                &blob,
                3072,
                &k.p("kek3072.pem"),
                Wrapping::RsaAes("sha256"),
                w
            ),
            std::fs::read(k.p("aes256")).unwrap()
        );
    }
    // Unreadable KEKs.
    std::fs::write(w.join("bad.json"), r#"{"kty":"EC","crv":"P-256"}"#).unwrap();
    verifier()
        .args(["wrap", "--format", "gcp", "--kek-public"])
        .arg(w.join("bad.json"))
        .arg("--key")
        .arg(k.p("p256.pem"))
        .arg("-o")
        .arg(w.join("x"))
        .assert()
        .code(3)
        .stderr(contains("is not RSA"));
}

// Long on purpose: each spelling and file an operator brings from a cloud's
// own CLI, unwrapped by OpenSSL, with the upload line that follows.
/// gcloud's method spelling (any case), AWS's `get-parameters-for-import`
/// JSON and its base64 DER public key, keys from `keygen --alg
/// aes256|hmac-sha256`, and the upload command printed after each wrap.
#[test]
fn the_clouds_own_spellings_and_files_are_accepted() {
    let k = keys();
    let work = TempDir::new().unwrap();
    let w = work.path();
    let der = {
        let out = openssl()
            .args(["pkey", "-pubin", "-in"])
            .arg(k.p("kek4096.pub"))
            .args(["-outform", "DER"])
            .output()
            .unwrap();
        assert!(out.status.success());
        out.stdout
    };
    let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
    // As `aws kms get-parameters-for-import --output json` prints it.
    let params = serde_json::json!({
        "KeyId": "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "ImportToken": "AQECAHh0b2tlbg==",
        "PublicKey": b64,
        "ParametersValidTo": "2026-12-06T21:00:00+00:00"
    });
    std::fs::write(w.join("params.json"), params.to_string()).unwrap();
    // As `--query PublicKey --output text` prints it.
    std::fs::write(w.join("kek.b64"), format!("{b64}\n")).unwrap();

    for (alg, file, key_type) in [
        ("aes256", "k.aes", "aes"),
        ("hmac-sha256", "k.hmac", "hmac"),
    ] {
        let out = verifier()
            .args(["keygen", "--alg", alg, "-o"])
            .arg(w.join(file))
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!(
                "generated {alg} key (32 raw bytes) in {}; wrap it with --key-type {key_type}\n",
                w.join(file).display()
            )
        );
        let meta = std::fs::metadata(w.join(file)).unwrap();
        assert_eq!(meta.len(), 32);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
    // A raw key without --key-type is refused with the fix.
    verifier()
        .args(["wrap", "--format", "aws", "--kek-public"])
        .arg(w.join("params.json"))
        .arg("--key")
        .arg(w.join("k.aes"))
        .arg("-o")
        .arg(w.join("never"))
        .assert()
        .code(3)
        .stderr(contains("add --key-type aes or --key-type hmac"));
    assert!(!w.join("never").exists());

    // AWS: the JSON and the base64 text, default methods by key type (the
    // import token must be for the same wrapping algorithm: the line says so).
    // (KEK file, case, extra flags, wrapping, key file, method)
    type AwsCase<'a> = (&'a str, &'a str, &'a [&'a str], Wrapping, PathBuf, &'a str);
    let cases: [AwsCase; 3] = [
        (
            "params.json",
            "k.aes",
            &["--key-type", "aes"],
            Wrapping::Oaep("sha256"),
            w.join("k.aes"),
            "RSAES_OAEP_SHA_256",
        ),
        (
            "kek.b64",
            "k.hmac",
            &["--key-type", "hmac"],
            Wrapping::Oaep("sha256"),
            w.join("k.hmac"),
            "RSAES_OAEP_SHA_256",
        ),
        (
            "params.json",
            "p256",
            &[],
            Wrapping::RsaAes("sha256"),
            k.p("p256.pem"),
            "RSA_AES_KEY_WRAP_SHA_256",
        ),
    ];
    for (kek, name, extra, wrapping, key, method) in cases {
        let out_file = w.join(format!("{name}.aws"));
        let out = verifier()
            .args(["wrap", "--format", "aws", "--kek-public"])
            .arg(w.join(kek))
            .args(extra)
            .arg("--key")
            .arg(&key)
            .arg("-o")
            .arg(&out_file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stderr.is_empty());
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains(&format!(
                "upload: aws kms import-key-material --key-id KEY --encrypted-key-material fileb://{} --import-token fileb://TOKEN --expiration-model KEY_MATERIAL_DOES_NOT_EXPIRE (TOKEN from `aws kms get-parameters-for-import --key-id KEY --wrapping-algorithm {method} --wrapping-key-spec RSA_4096`)",
                out_file.display()
            )),
            "{stdout}"
        );
        let got = openssl_unwrap(
            &std::fs::read(&out_file).unwrap(),
            4096,
            &k.p("kek4096.pem"),
            wrapping,
            w,
        );
        let want = if name == "p256" {
            pem_body(&key)
        } else {
            std::fs::read(&key).unwrap()
        };
        assert_eq!(got, want, "{name}");
    }

    // gcloud's spelling in any case; --json carries the upload line.
    for spelling in [
        "rsa-oaep-4096-sha256-aes-256",
        "RSA_OAEP_4096_SHA256_AES_256",
        "Rsa_Oaep_4096_Sha256_Aes_256",
    ] {
        let out_file = w.join("g.wrapped");
        let out = verifier()
            .args([
                "--force",
                "wrap",
                "--format",
                "gcp",
                "--json",
                "--method",
                spelling,
                "--kek-public",
            ])
            .arg(k.p("kek4096.pub"))
            .arg("--key")
            .arg(k.p("p384-pkcs8.pem"))
            .arg("-o")
            .arg(&out_file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{spelling}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["format"], "gcp");
        assert_eq!(v["method"], "RSA_OAEP_4096_SHA256_AES_256");
        assert_eq!(
            v["upload"],
            format!("gcloud kms keys versions import --import-job JOB --location LOCATION --keyring KEYRING --key KEY --algorithm ec-sign-p384-sha384 --wrapped-key-file {} (an import job made with --import-method rsa-oaep-4096-sha256-aes-256)", out_file.display())
        );
        let got = openssl_unwrap(
            &std::fs::read(&out_file).unwrap(),
            4096,
            &k.p("kek4096.pem"),
            Wrapping::RsaAes("sha256"),
            w,
        );
        assert_eq!(got, pem_body(&k.p("p384-pkcs8.pem")));
    }
    verifier()
        .args([
            "wrap",
            "--format",
            "gcp",
            "--method",
            "rsa-oaep-4096-sha512-aes-256",
            "--kek-public",
        ])
        .arg(k.p("kek4096.pub"))
        .arg("--key")
        .arg(k.p("p256.pem"))
        .arg("-o")
        .arg(w.join("never"))
        .assert()
        .code(2)
        .stderr(contains(
            "invalid value 'rsa-oaep-4096-sha512-aes-256' for '--method <METHOD>'",
        ));

    // Azure: the upload line names the key type.
    let az = serde_json::json!({"kid": "https://v.vault.azure.net/keys/kek/1", "kty": "RSA-HSM",
        "n": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode({
            use rsa::pkcs8::DecodePublicKey; use rsa::traits::PublicKeyParts;
            rsa::RsaPublicKey::from_public_key_der(&der).unwrap().n().to_bytes_be() }),
        "e": "AQAB"});
    std::fs::write(w.join("kek.jwk"), az.to_string()).unwrap();
    for (key, kty) in [
        (
            k.p("p256.pem"),
            "--vault-name VAULT --name KEY --byok-file OUT --kty EC-HSM --curve P-256",
        ),
        (
            k.p("rsa2048.pem"),
            "--vault-name VAULT --name KEY --byok-file OUT --kty RSA-HSM",
        ),
        (
            w.join("k.aes"),
            "--hsm-name HSM --name KEY --byok-file OUT --kty oct-HSM",
        ),
    ] {
        let out_file = w.join("a.byok");
        let mut c = verifier();
        c.args(["--force", "wrap", "--format", "azure", "--kek-public"])
            .arg(w.join("kek.jwk"))
            .arg("--key")
            .arg(&key);
        if key.ends_with("k.aes") {
            c.args(["--key-type", "aes"]);
        }
        let out = c.arg("-o").arg(&out_file).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let want = format!(
            "upload: az keyvault key import {}\n",
            kty.replace("OUT", &out_file.display().to_string())
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).ends_with(&want),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        // inspect reads what was written.
        verifier()
            .arg("inspect")
            .arg(&out_file)
            .assert()
            .success()
            .stdout(contains("enc: CKM_RSA_AES_KEY_WRAP"));
    }
}
