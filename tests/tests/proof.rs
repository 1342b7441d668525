//! Every OK is proven: what rests on an AK (a cloud-format wrap for a
//! host's compat KEK, a receipt) is refused until the AK is proven to live in
//! the EK's TPM, by enrolment (kept in the registry) or a challenge. Forged
//! evidence (a genuine EK beside software keys) is refused on both paths;
//! the registry pins each EK to its host and AK.

use byok_protocol::formats::{Document, Evidence, HostRecord};
use byok_tests::forgery::{forge_receipt, forge_with};
use byok_tests::{enroll, keygen, nonce, tpm_a, tpm_b, verifier, Host};
use predicates::str::contains;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

fn evidence_of(p: &Path) -> Evidence {
    Evidence::from_cbor(&std::fs::read(p).unwrap()).unwrap()
}

/// `init` (with `extra`) and fresh evidence of `world` into `dir`.
fn world(host: &Host, world: &str, extra: &[&str], dir: &Path) -> (String, PathBuf) {
    host.agent()
        .args(["init", "--world", world])
        .args(extra)
        .assert()
        .success();
    let n = nonce();
    let p = dir.join(format!("{world}-{}.evidence", host.tpm.port));
    host.evidence(world, &n, &p);
    (n, p)
}

fn verify(
    host: &Host,
    ev: &Path,
    n: &str,
    extra: &[&std::ffi::OsStr],
) -> assert_cmd::assert::Assert {
    verifier()
        .args(["verify", "--nonce", n, "--evidence"])
        .arg(ev)
        .arg("--roots")
        .arg(&host.ca_bundle)
        .args(extra)
        .assert()
}

#[test]
fn a_compat_kek_from_forged_evidence_gets_no_key() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let w = work.path();
    let (n, genuine) = world(&host, "eu", &["--compat-kek"], w);
    // A genuine EK beside a software AK, KEK and compat KEK: every signed
    // field is consistent, so evidence alone passes ...
    let forged = forge_with(&evidence_of(&genuine), true);
    let forged_path = w.join("forged.evidence");
    std::fs::write(&forged_path, forged.evidence.to_cbor()).unwrap();
    verify(&host, &forged_path, &n, &[])
        .success()
        .stdout(contains("AK-EK link: not proven"));
    // ... but nothing that rests on the AK alone is handed out: the cloud
    // wrap would encrypt the key to the attacker's software compat KEK.
    let key = keygen("rsa2048", w.join("k.pem"));
    let wrap = |ev: &Path, extra: &[&std::ffi::OsStr]| {
        verifier()
            .args(["wrap", "--format", "azure", "--nonce", &n, "--evidence"])
            .arg(ev)
            .arg("--roots")
            .arg(&host.ca_bundle)
            .arg("--key")
            .arg(&key)
            .arg("-o")
            .arg(w.join("k.byok"))
            .args(extra)
            .assert()
    };
    wrap(&forged_path, &[]).code(10).stderr(contains(
        "wrapping for a host's compat KEK (--format azure|gcp|aws --evidence) needs the AK proven",
    ));
    assert!(!w.join("k.byok").exists());
    wrap(&genuine, &[]).code(10);

    // The genuine host, enrolled once, gets the key; the forged evidence,
    // whose EK is now enrolled with the genuine AK, is refused by name.
    let registry = w.join("registry");
    enroll(&host, "eu", &genuine, &n, &registry, &["--host", "web-1"])
        .success()
        .stdout(contains("enrolled host web-1 for world \"eu\""));
    let reg = ["--registry".as_ref(), registry.as_os_str()];
    wrap(&forged_path, &reg).code(10).stderr(contains(
        "host \"web-1\" is enrolled with another AK for world \"eu\"",
    ));
    assert!(!w.join("k.byok").exists());
    wrap(&genuine, &reg)
        .success()
        .stdout(contains("host web-1, EK certificate SHA-256"));
    // A challenge answered now proves it too (without a registry).
    let c = w.join("c.cbor");
    let a = w.join("a.cbor");
    verifier()
        .args(["challenge", "--nonce", &n, "--evidence"])
        .arg(&genuine)
        .arg("--roots")
        .arg(&host.ca_bundle)
        .arg("-o")
        .arg(&c)
        .assert()
        .success();
    host.agent()
        .args(["activate", "--world", "eu", "--in"])
        .arg(&c)
        .arg("-o")
        .arg(&a)
        .assert()
        .success();
    std::fs::remove_file(w.join("k.byok")).unwrap();
    wrap(
        &genuine,
        &[
            "--challenge".as_ref(),
            c.as_os_str(),
            "--activation".as_ref(),
            a.as_os_str(),
        ],
    )
    .success();
}

#[test]
fn a_receipt_signed_by_a_software_ak_is_refused() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let w = work.path();
    let (n, genuine) = world(&host, "eu", &[], w);
    let forged = forge_with(&evidence_of(&genuine), false);
    let forged_path = w.join("forged.evidence");
    std::fs::write(&forged_path, forged.evidence.to_cbor()).unwrap();
    // "generated inside the TPM, not duplicable, under the KEK" for a key
    // whose private half the forger holds.
    let rn = nonce();
    let receipt = w.join("forged.receipt");
    std::fs::write(
        &receipt,
        forge_receipt(&forged, "eu", &hex::decode(&rn).unwrap()).to_cbor(),
    )
    .unwrap();
    let check = |extra: &[&std::ffi::OsStr]| {
        verifier()
            .args([
                "check-receipt",
                "--nonce",
                &rn,
                "--evidence-nonce",
                &n,
                "--receipt",
            ])
            .arg(&receipt)
            .arg("--evidence")
            .arg(&forged_path)
            .arg("--roots")
            .arg(&host.ca_bundle)
            .args(extra)
            .assert()
    };
    check(&[])
        .code(10)
        .stderr(contains("check-receipt needs the AK proven"));
    let registry = w.join("registry");
    enroll(&host, "eu", &genuine, &n, &registry, &[]).success();
    check(&["--registry".as_ref(), registry.as_os_str()])
        .code(10)
        .stderr(contains("is enrolled with another AK for world \"eu\""));
}

// Long on purpose: one swtpm per test costs seconds, so the checks that share a host share a test, in order.
#[test]
fn enrolment_round_trip_and_conflicts() {
    let a = Host::new(tpm_a());
    let b = Host::new(tpm_b());
    let work = TempDir::new().unwrap();
    let w = work.path();
    let registry = w.join("registry");
    let (na, eva) = world(&a, "eu", &[], w);
    let reg = ["--registry".as_ref(), registry.as_os_str()];

    // Enrol A as "db-1": its record is a tpm-byok/host file; verify then
    // names the host and says the link is proven.
    enroll(
        &a,
        "eu",
        &eva,
        &na,
        &registry,
        &["--host", "db-1", "--json"],
    )
    .success()
    .stdout(contains("\"outcome\":\"enrolled\""))
    .stdout(contains("\"host\":\"db-1\""));
    let rec = HostRecord::from_cbor(&std::fs::read(registry.join("db-1.cbor")).unwrap()).unwrap();
    assert_eq!(rec.host, "db-1");
    let ev = evidence_of(&eva);
    assert_eq!(
        rec.ek.certificate_sha256.as_slice(),
        byok_protocol::hash::sha256(&ev.ek.certificate)
    );
    assert_eq!(rec.worlds["eu"].ak_public, ev.ak.public);
    verify(&a, &eva, &na, &reg)
        .success()
        .stdout(contains("AK-EK link: proven (host db-1, enrolled 20"))
        .stdout(contains("host:       db-1"));
    verify(&a, &eva, &na, &[&reg[..], &["--json".as_ref()]].concat())
        .success()
        .stdout(contains("\"ak_proven\":true"))
        .stdout(contains("\"host\":\"db-1\""))
        .stdout(contains(format!(
            "\"ek_certificate_sha256\":\"{}\"",
            hex::encode(byok_protocol::hash::sha256(&ev.ek.certificate))
        )));
    verify(&a, &eva, &na, &["--json".as_ref()])
        .success()
        .stdout(contains("\"ak_proven\":false"));
    // Enrolling again changes nothing.
    enroll(&a, "eu", &eva, &na, &registry, &[])
        .success()
        .stdout(contains("already enrolled (nothing changed) host db-1"));

    // A second host name for the enrolled EK.
    enroll(&a, "eu", &eva, &na, &registry, &["--host", "db-2"])
        .code(10)
        .stderr(contains("this EK is already enrolled as host \"db-1\""));
    // Another TPM under an enrolled host name.
    let (nb, evb) = world(&b, "eu", &[], w);
    enroll(&b, "eu", &evb, &nb, &registry, &["--host", "db-1"])
        .code(10)
        .stderr(contains("host \"db-1\" is enrolled with another EK"));
    assert!(!registry.join("db-2.cbor").exists());

    // --require-enrolled: B is not enrolled.
    verifier()
        .args(["verify", "--nonce", &nb, "--evidence"])
        .arg(&evb)
        .arg("--roots")
        .arg(&b.ca_bundle)
        .args(reg)
        .arg("--require-enrolled")
        .assert()
        .code(10)
        .stderr(contains(
            "is not enrolled in the registry, and enrolment is required",
        ));
    // ... and through the policy (require_enrolled per world), which also needs a registry.
    let policy = w.join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "[worlds.eu]\nroots = [{:?}]\nrequire_enrolled = true\n",
            b.ca_bundle
        ),
    )
    .unwrap();
    let by_policy = |extra: &[&std::ffi::OsStr]| {
        verifier()
            .args(["verify", "--nonce", &nb, "--evidence"])
            .arg(&evb)
            .arg("--policy")
            .arg(&policy)
            .args(extra)
            .assert()
    };
    by_policy(&[])
        .code(2)
        .stderr(contains("give --registry DIR"));
    by_policy(&reg)
        .code(10)
        .stderr(contains("enrolment is required"));
    enroll(&b, "eu", &evb, &nb, &registry, &["--host", "db-9"]).success();
    by_policy(&reg).success();

    // A second AK for an enrolled EK: the world re-initialised on A.
    a.agent()
        .args(["world", "destroy", "--world", "eu", "--yes"])
        .assert()
        .success();
    let (na2, eva2) = world(&a, "eu", &[], w);
    verify(&a, &eva2, &na2, &reg).code(10).stderr(contains(
        "host \"db-1\" is enrolled with another AK for world \"eu\"",
    ));
    enroll(&a, "eu", &eva2, &na2, &registry, &[])
        .code(10)
        .stderr(contains("give --replace if the world was re-initialised"));
    enroll(&a, "eu", &eva2, &na2, &registry, &["--replace"])
        .success()
        .stdout(contains("replacing the earlier record"));
    verify(&a, &eva2, &na2, &reg)
        .success()
        .stdout(contains("proven (host db-1"));
    verify(&a, &eva, &na, &reg).code(10);

    // A second world of an enrolled host is not proven until enrolled, and
    // refused under --require-enrolled.
    let (nu, evu) = world(&a, "us", &[], w);
    verify(&a, &evu, &nu, &reg)
        .success()
        .stdout(contains("host:       db-1"))
        .stdout(contains("AK-EK link: not proven"));
    verify(
        &a,
        &evu,
        &nu,
        &[&reg[..], &["--require-enrolled".as_ref()]].concat(),
    )
    .code(10)
    .stderr(contains("enrolled, but not for world \"us\""));
    enroll(&a, "us", &evu, &nu, &registry, &[])
        .success()
        .stdout(contains(
            "enrolled (record updated) host db-1 for world \"us\"",
        ));

    // A record that does not read stops every command that uses the registry.
    std::fs::write(registry.join("junk.cbor"), b"not cbor").unwrap();
    verify(&a, &evu, &nu, &reg)
        .code(4)
        .stderr(contains("junk.cbor"));
}

#[test]
fn a_world_policy_applies_without_world() {
    // [worlds.w1] demands a PCR-bound KEK; evidence of w1 is checked against
    // it although no --world is given (the world comes from the signed KEK).
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let w = work.path();
    let (n1, ev1) = world(&host, "w1", &[], w);
    let (n2, ev2) = world(&host, "w2", &[], w);
    let policy = w.join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "[defaults]\nroots = [{:?}]\n[worlds.w1]\nrequire_kek_pcrs = true\n[worlds.w2]\n",
            host.ca_bundle
        ),
    )
    .unwrap();
    let key = keygen("p256", w.join("k.pem"));
    let wrap = |ev: &Path, n: &str| {
        verifier()
            .args(["wrap", "--nonce", n, "--evidence"])
            .arg(ev)
            .arg("--policy")
            .arg(&policy)
            .arg("--key")
            .arg(&key)
            .arg("-o")
            .arg(w.join("k.transfer"))
            .assert()
    };
    wrap(&ev1, &n1).code(10).stderr(contains(
        "KEK is not bound to PCRs, and the policy requires",
    ));
    assert!(!w.join("k.transfer").exists());
    wrap(&ev2, &n2).success();
    verifier()
        .args(["verify", "--nonce", &n1, "--evidence"])
        .arg(&ev1)
        .arg("--policy")
        .arg(&policy)
        .assert()
        .code(10);
}

// Long on purpose: one swtpm per test costs seconds, so the checks that share a host share a test, in order.
#[test]
fn unsigned_text_reaches_the_terminal_inert() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let w = work.path();
    let (n, genuine) = world(&host, "eu", &[], w);
    // Unsigned fields carrying a newline, a fake line and escape sequences.
    let fake = "IBM\n  AK-EK link: proven (host db-1)\x1b[2K\x1b]0;owned\x07\u{9b}31m\u{202e}";
    let mut ev = evidence_of(&genuine);
    ev.tpm.manufacturer = fake.into();
    ev.tpm.vendor = fake.into();
    ev.agent = Some(fake.into());
    let hostile = w.join("hostile\x1b[31m.evidence");
    std::fs::write(&hostile, ev.to_cbor()).unwrap();
    let clean = |out: &[u8]| {
        let text = String::from_utf8(out.to_vec()).unwrap();
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n') && !text.contains('\u{202e}'),
            "control characters reach the terminal: {text:?}"
        );
        // The real AK-EK line says "not proven": a line saying "proven" is the fake.
        assert!(
            !text
                .lines()
                .any(|l| l.trim_start().starts_with("AK-EK link: proven")),
            "a faked line: {text}"
        );
        text
    };
    let out = verify(&host, &hostile, &n, &[]).success();
    let text = clean(&out.get_output().stdout);
    assert!(text.contains("IBM\\u{a}  AK-EK link: proven (host db-1)\\u{1b}[2K"));
    assert!(text.contains("AK-EK link: not proven"));
    clean(
        &verify(&host, &hostile, &n, &["--json".as_ref()])
            .success()
            .get_output()
            .stdout,
    );
    for json in [false, true] {
        let mut c = verifier();
        c.arg("inspect").arg(&hostile);
        if json {
            c.arg("--json");
        }
        clean(&c.assert().success().get_output().stdout);
    }
    // A failure message naming hostile text is inert too: another nonce, and
    // a world id with escapes (not a world id at all: refused as the file is
    // read, and the message names it inertly).
    let out = verify(&host, &hostile, &nonce(), &[]).code(10);
    clean(&out.get_output().stderr);
    let mut doc: ciborium::Value =
        ciborium::from_reader(std::fs::read(&genuine).unwrap().as_slice()).unwrap();
    let ciborium::Value::Map(fields) = &mut doc else {
        panic!("evidence is a CBOR map")
    };
    for (k, v) in fields.iter_mut() {
        if k.as_text() == Some("world") {
            *v = ciborium::Value::Text(fake.into());
        }
    }
    let mut bytes = Vec::new();
    ciborium::into_writer(&doc, &mut bytes).unwrap();
    let relabelled = w.join("world.evidence");
    std::fs::write(&relabelled, bytes).unwrap();
    let out = verify(&host, &relabelled, &n, &[]).code(3);
    let err = clean(&out.get_output().stderr);
    assert!(err.contains("invalid world"), "{err}");

    // A label in a transfer package: shown by inspect and by the agent.
    let key = keygen("p256", w.join("k.pem"));
    let pkg = w.join("k.transfer");
    verifier()
        .args(["wrap", "--nonce", &n, "--evidence"])
        .arg(&genuine)
        .arg("--roots")
        .arg(&host.ca_bundle)
        .arg("--key")
        .arg(&key)
        .arg("--label")
        .arg(fake)
        .arg("-o")
        .arg(&pkg)
        .assert()
        .success();
    // The key's algorithm name is unsigned too.
    let mut t =
        byok_protocol::formats::TransferPackage::from_cbor(&std::fs::read(&pkg).unwrap()).unwrap();
    t.key.alg = fake.into();
    std::fs::write(&pkg, t.to_cbor()).unwrap();
    let out = verifier().arg("inspect").arg(&pkg).assert().success();
    clean(&out.get_output().stdout);
    host.import("eu", "k", &pkg).success();
    let out = host.agent().args(["keys", "show", "k"]).assert().success();
    clean(&out.get_output().stdout);
    // `keys list` separates its columns with tabs: those are its own.
    let out = host.agent().args(["keys", "list"]).assert().success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(
        text.contains("\\u{1b}") && !text.contains('\x1b') && !text.contains('\u{9b}'),
        "{text:?}"
    );
    assert_eq!(text.lines().count(), 1, "{text:?}");
}
