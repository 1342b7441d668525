//! Fleets of compat KEKs: `wrap --format azure --nonces --out-dir` writes one
//! Azure `.byok` file per enrolled host, for the compat KEK its verified
//! evidence certifies, on three swtpm hosts. A host without a compat KEK gets
//! nothing and is named; the others import their file and sign with the key;
//! OpenSSL checks each signature with the original public key, and their
//! receipts make the roster. Formats that wrap for a cloud's own KEK (gcp,
//! aws) are refused for fleets.

use byok_tests::fleet::{
    attest_key, check_signature, enrol_all, json_run, nonce_for, public_key_of, FleetRun,
};
use byok_tests::{keygen, tpm_a, tpm_b, tpm_c, Host};
use predicates::str::contains;
use tempfile::TempDir;

// Long on purpose: one flow (three hosts enrolled, nonces, evidence, batch
// wrap, import, signatures), and each swtpm costs seconds.
#[test]
fn a_byok_file_for_each_hosts_compat_kek() {
    let work = TempDir::new().unwrap();
    let w = work.path();
    let hosts = [
        ("web-a", Host::new(tpm_a()), true),
        ("web-b", Host::new(tpm_b()), true),
        ("web-c", Host::new(tpm_c()), false),
    ];
    for (_, host, compat) in &hosts {
        let mut init = host.agent();
        init.args(["init", "--world", "eu"]);
        if *compat {
            init.arg("--compat-kek");
        }
        init.assert().success();
    }
    let named: Vec<(&str, &Host)> = hosts.iter().map(|(n, h, _)| (*n, h)).collect();
    let (roots, registry) = enrol_all(&named, "eu", w);
    let nonces = w.join("nonces.json");
    byok_tests::fleet::nonces("eu", &registry, &nonces).success();
    let evidence = w.join("evidence");
    std::fs::create_dir(&evidence).unwrap();
    for (name, host, _) in &hosts {
        host.evidence(
            "eu",
            &nonce_for(&nonces, name),
            &evidence.join(format!("{name}.evidence")),
        );
    }
    let key = keygen("p256", w.join("k.pem"));
    let out = w.join("out");
    let files = FleetRun {
        nonces: &nonces,
        registry: &registry,
        roots: &roots,
        evidence: &evidence,
        key: &key,
        out: &out,
    };
    let fleet_wrap = |format: &str| files.wrap(format);

    // gcp and aws wrap for a cloud's KEK: no fleet of them; nothing written.
    for format in ["gcp", "aws"] {
        fleet_wrap(format)
            .assert()
            .code(2)
            .stderr(contains("gcp and aws wrap for the cloud's own KEK"));
    }
    // What a cloud blob cannot carry (the rule of every wrap), and what a
    // host's own compat KEK replaces.
    for (flag, value) in [("--key-pcrs", "sha256:7"), ("--label", "x")] {
        fleet_wrap("azure")
            .args([flag, value])
            .assert()
            .code(2)
            .stderr(contains("--key-pcrs and --label are for --format tpm"));
    }
    for args in [
        &["--kek-public", "kek.pem"][..],
        &["--kid", "https://vault/keys/k"],
        &["--base64"],
    ] {
        fleet_wrap("azure")
            .args(args)
            .assert()
            .code(2)
            .stderr(contains("--kek-public, --kid and --base64 do not apply"));
    }
    // What no host's KEK changes is refused once, before any host: a key
    // type Azure does not import, a method that is not Azure's.
    let hmac = w.join("hmac.key");
    std::fs::write(&hmac, [7u8; 32]).unwrap();
    let refused = FleetRun {
        key: &hmac,
        ..files
    }
    .wrap("azure")
    .args(["--key-type", "hmac"])
    .assert()
    .code(5);
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).to_string();
    assert_eq!(
        stderr.matches("do not import HMAC keys").count(),
        1,
        "{stderr}"
    );
    fleet_wrap("azure")
        .args(["--method", "rsa-oaep-3072-sha256-aes-256"])
        .assert()
        .code(5)
        .stderr(contains("unknown method"));
    assert!(!out.exists());

    let report = json_run(
        fleet_wrap("azure").arg("--json"),
        10,
        "byok-verifier wrap --nonces --json",
    );
    assert_eq!(
        (report["ok"].as_u64(), report["failed"].as_u64()),
        (Some(2), Some(1))
    );
    let line = |host: &str| {
        report["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["host"] == host)
            .unwrap()
            .clone()
    };
    assert!(
        line("web-c")["reason"]
            .as_str()
            .unwrap()
            .contains("no compat KEK"),
        "{report}"
    );
    let mut written: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    written.sort();
    assert_eq!(written, ["web-a.byok", "web-b.byok"]);

    // Each file names its host's compat KEK, imports there, and the key
    // signs what OpenSSL verifies with the original public key.
    let public = public_key_of(&key, &w.join("k.pub"));
    for (name, host, _) in &hosts[..2] {
        let file = out.join(format!("{name}.byok"));
        assert_eq!(line(name)["package"], file.display().to_string());
        let byok: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert!(
            byok["header"]["kid"]
                .as_str()
                .unwrap()
                .starts_with("tpm-byok:eu:"),
            "{byok}"
        );
        host.import("eu", "k", &file).success();
        let dir = w.join(format!("sig-{name}"));
        std::fs::create_dir(&dir).unwrap();
        host.sign("k", &dir).success();
        check_signature(&public, &dir);
    }
    // The other host's file does not import on a host.
    hosts[0]
        .1
        .import("eu", "other", &out.join("web-b.byok"))
        .failure();

    // Receipts: checked against each host's enrolled AK and KEK (a .byok file
    // names no TPM object, so there is no --transfers); the roster names the
    // host without the key.
    let receipts = w.join("receipts");
    std::fs::create_dir(&receipts).unwrap();
    for (name, host, _) in &hosts[..2] {
        attest_key(
            host,
            &nonce_for(&nonces, name),
            &receipts.join(format!("{name}.receipt")),
        );
    }
    // Exit 4: web-c has no receipt (it never got the key).
    let roster = json_run(
        files.check_receipts(&receipts).arg("--json"),
        4,
        "byok-verifier check-receipt --receipts --json",
    );
    assert_eq!(
        roster["holders"],
        serde_json::json!(["web-a", "web-b"]),
        "{roster}"
    );
    assert_eq!(roster["lacking"], serde_json::json!(["web-c"]), "{roster}");
}
