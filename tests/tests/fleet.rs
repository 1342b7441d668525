//! Fleets: one key to every enrolled host of a world with the batch
//! commands (`nonces`, `wrap --nonces --out-dir`, `check-receipt --receipts
//! --nonces`), on three swtpm hosts with three EKs and three CAs. One host's
//! evidence file is replaced by another TPM's: it gets no package, the
//! others do, and the summary names both the file and the host.

use byok_tests::fleet::nonces as nonces_cmd;
use byok_tests::fleet::{
    attest_key, check_signature, enrol_all, json_run, nonce_for, public_key_of, FleetRun,
};
use byok_tests::{keygen, tpm_a, tpm_b, tpm_c, verifier, Host};
use predicates::str::contains;
use tempfile::TempDir;

fn host_line<'a>(
    report: &'a serde_json::Value,
    host: &str,
    file_end: Option<&str>,
) -> &'a serde_json::Value {
    report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| {
            l["host"] == host
                && match file_end {
                    Some(end) => l["file"].as_str().is_some_and(|f| f.ends_with(end)),
                    None => l["file"].is_null(),
                }
        })
        .unwrap_or_else(|| panic!("no line for {host} {file_end:?}: {report}"))
}

// Long on purpose: a fleet run is one flow (three hosts enrolled, nonces,
// evidence, batch wrap, import, receipts, roster, signatures), and each
// swtpm costs seconds.
#[test]
fn one_key_to_every_enrolled_host_and_a_roster_of_who_holds_it() {
    let work = TempDir::new().unwrap();
    let w = work.path();
    let hosts = [
        ("web-a", Host::new(tpm_a())),
        ("web-b", Host::new(tpm_b())),
        ("web-c", Host::new(tpm_c())),
    ];
    for (_, host) in &hosts {
        host.init("eu");
    }
    let named: Vec<(&str, &Host)> = hosts.iter().map(|(n, h)| (*n, h)).collect();
    let (roots, registry) = enrol_all(&named, "eu", w);

    // A nonce per enrolled host.
    let nonces = w.join("nonces.json");
    nonces_cmd("eu", &registry, &nonces).success().stdout(
        "wrote a nonce for each of 3 host(s) of world \"eu\" to ".to_string()
            + &nonces.display().to_string()
            + "\n",
    );
    let nonce_of = |h: &str| nonce_for(&nonces, h);
    verifier()
        .args([
            "nonces",
            "--world",
            "eu",
            "--hosts",
            "web-a,web-z",
            "--registry",
        ])
        .arg(&registry)
        .arg("-o")
        .arg(w.join("never.json"))
        .assert()
        .code(2)
        .stderr(contains("not enrolled for world \"eu\""))
        .stderr(contains("web-z"));

    // Evidence from each host for its own nonce; web-c's file is replaced by
    // web-a's TPM answering web-c's nonce.
    let evidence = w.join("evidence");
    std::fs::create_dir(&evidence).unwrap();
    for (name, host) in &hosts[..2] {
        host.evidence(
            "eu",
            &nonce_of(name),
            &evidence.join(format!("{name}.evidence")),
        );
    }
    hosts[0]
        .1
        .evidence("eu", &nonce_of("web-c"), &evidence.join("web-c.evidence"));

    let key = keygen("p256", w.join("k.pem"));
    let out = w.join("out");
    let run_files = FleetRun {
        nonces: &nonces,
        registry: &registry,
        roots: &roots,
        evidence: &evidence,
        key: &key,
        out: &out,
    };
    let report = json_run(
        run_files.wrap("tpm").arg("--json"),
        10,
        "byok-verifier wrap --nonces --json",
    );
    assert_eq!(report["type"], "tpm-byok/fleet-wrap");
    assert_eq!(
        (report["ok"].as_u64(), report["failed"].as_u64()),
        (Some(2), Some(2))
    );
    for name in ["web-a", "web-b"] {
        let line = host_line(&report, name, Some(&format!("{name}.evidence")));
        assert_eq!(line["ok"], true);
        assert_eq!(
            line["package"],
            out.join(format!("{name}.transfer")).display().to_string()
        );
    }
    let forged = host_line(&report, "web-a", Some("web-c.evidence"));
    assert_eq!(forged["ok"], false);
    assert!(
        forged["reason"].as_str().unwrap().contains("nonce"),
        "{forged}"
    );
    let missing = host_line(&report, "web-c", None);
    assert!(missing["reason"]
        .as_str()
        .unwrap()
        .contains("no evidence from host \"web-c\""));
    assert!(!out.join("web-c.transfer").exists());
    let mut written: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    written.sort();
    assert_eq!(written, ["web-a.transfer", "web-b.transfer"]);

    // The same run as text: a line per host and the summary; existing
    // packages are not replaced without --force.
    run_files
        .wrap("tpm")
        .assert()
        .code(10)
        .stdout(contains("FAIL web-a ("))
        .stdout(contains("exists; add --force to replace it"))
        .stdout(contains("0 wrapped, 4 failed"))
        .stderr("byok-verifier: error: 4 of 4 failed (each named above)\n");

    // Import, receipts, roster.
    let receipts = w.join("receipts");
    std::fs::create_dir(&receipts).unwrap();
    for (name, host) in &hosts[..2] {
        host.import("eu", "k", &out.join(format!("{name}.transfer")))
            .success();
        attest_key(
            host,
            &nonce_of(name),
            &receipts.join(format!("{name}.receipt")),
        );
    }
    let report = json_run(
        run_files
            .check_receipts(&receipts)
            .arg("--json")
            .arg("--transfers")
            .arg(&out),
        4,
        "byok-verifier check-receipt --receipts --json",
    );
    assert_eq!(report["holders"], serde_json::json!(["web-a", "web-b"]));
    assert_eq!(report["lacking"], serde_json::json!(["web-c"]));
    assert!(host_line(&report, "web-c", None)["reason"]
        .as_str()
        .unwrap()
        .contains("no receipt"));

    // A receipt answering another host's nonce is refused.
    std::fs::copy(receipts.join("web-a.receipt"), w.join("a.receipt")).unwrap();
    hosts[0]
        .1
        .agent()
        .args([
            "--force",
            "attest-key",
            "--key",
            "k",
            "--nonce",
            &nonce_of("web-b"),
            "-o",
        ])
        .arg(receipts.join("web-a.receipt"))
        .assert()
        .success();
    run_files
        .check_receipts(&receipts)
        .assert()
        .code(10)
        .stdout(contains("FAIL web-a ("))
        .stdout(contains("roster of world \"eu\": 1 hold(s) the key: web-b"))
        .stdout(contains("  without it: web-a, web-c"));
    // A nonce file for some hosts: the others are "not asked".
    let some = w.join("some.json");
    verifier()
        .args(["nonces", "--world", "eu", "--hosts", "web-b", "--registry"])
        .arg(&registry)
        .arg("-o")
        .arg(&some)
        .assert()
        .success();
    verifier()
        .args(["check-receipt", "--json", "--nonces"])
        .arg(&some)
        .arg("--registry")
        .arg(&registry)
        .arg("--roots")
        .arg(&roots)
        .arg("--receipts")
        .arg(w.join("no-such-dir"))
        .assert()
        .code(4)
        .stdout(contains(
            r#""lacking":["web-b"],"not_asked":["web-a","web-c"]"#,
        ));

    // Each holder signs with the key; OpenSSL checks with the original.
    let public = public_key_of(&key, &w.join("k.pub"));
    for (name, host) in &hosts[..2] {
        let dir = w.join(format!("sig-{name}"));
        std::fs::create_dir(&dir).unwrap();
        host.sign("k", &dir).success();
        check_signature(&public, &dir);
    }
}
