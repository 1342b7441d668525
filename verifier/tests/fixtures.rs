//! The verifier on real files from two swtpm hosts (tests/fixtures/, written
//! by tpm-setup/fixtures.sh): no TPM, no swtpm, no tpm2-tools needed, so these
//! run anywhere `cargo test -p byok-verifier --test fixtures` does.

use assert_cmd::Command;
use byok_protocol::formats::{Activation, Challenge, Document, Evidence, Receipt, TransferPackage};
use byok_verifier::certs::{load_certificates, TrustStore};
use byok_verifier::check::activation::check_activation;
use byok_verifier::error::VerifyError;
use byok_verifier::receipt::check_receipt;
use byok_verifier::registry::Registry;
use byok_verifier::verified::AkBinding;
use byok_verifier::verify::{verify_evidence, Options, Verified};
use predicates::prelude::PredicateBooleanExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

const N1: &str = "00112233445566778899aabbccddeeff";
const N2: &str = "ffeeddccbbaa99887766554433221100";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name)
}

fn read<D: Document>(name: &str) -> D {
    D::from_cbor(&std::fs::read(fixture(name)).unwrap()).unwrap()
}

fn store(ca: &str) -> TrustStore {
    TrustStore {
        anchors: load_certificates(&fixture(ca), byok_verifier::certs::CertSource::Roots)
            .unwrap()
            .certs,
        ..Default::default()
    }
}

fn opts(world: &str) -> Options {
    Options {
        nonce: hex::decode(N1).unwrap(),
        world: Some(world.parse().unwrap()),
        policy: Default::default(),
        now: SystemTime::now(),
    }
}

fn verify(ev: &Evidence, ca: &str, world: &str) -> Result<Verified, VerifyError> {
    verify_evidence(ev, &store(ca), &opts(world))
}

/// a-eu.evidence, verified and proven by its challenge and activation.
fn proven() -> Verified {
    let mut v = verify(&read("a-eu.evidence"), "a-ca.pem", "eu").unwrap();
    check_activation(
        &mut v,
        &read::<Challenge>("a-eu.challenge"),
        &read::<Activation>("a-eu.activation"),
    )
    .unwrap();
    v
}

#[test]
fn genuine_evidence_verifies_but_is_not_proven_by_itself() {
    let v = verify(&read("a-eu.evidence"), "a-ca.pem", "eu").unwrap();
    assert_eq!(v.world, "eu");
    assert!(matches!(v.ak_binding, AkBinding::AtImport));
    assert!(!v.ak_binding.proven());
    let us = verify(&read("a-us.evidence"), "a-ca.pem", "us").unwrap();
    assert_eq!(us.ek_name, v.ek_name, "one host, one EK");
    assert_ne!(us.ak_name, v.ak_name, "one AK per world");
    assert_ne!(us.kek_name, v.kek_name, "one KEK per world");
}

#[test]
fn evidence_is_refused_for_another_ca_world_or_nonce() {
    assert!(matches!(
        verify(&read("b-eu.evidence"), "a-ca.pem", "eu"),
        Err(VerifyError::EkChainUntrusted { .. })
    ));
    verify(&read("b-eu.evidence"), "b-ca.pem", "eu").unwrap();
    assert!(matches!(
        verify(&read("a-us.evidence"), "a-ca.pem", "eu"),
        Err(VerifyError::WorldMismatch { .. })
    ));
    let mut o = opts("eu");
    o.nonce[0] ^= 1;
    let r = verify_evidence(&read("a-eu.evidence"), &store("a-ca.pem"), &o);
    assert!(
        matches!(r, Err(VerifyError::EvidenceNonceMismatch)),
        "{r:?}"
    );
}

#[test]
fn a_sample_of_flipped_signed_bytes_is_refused() {
    let ev: Evidence = read("a-eu.evidence");
    // Every 7th byte of each signed structure (the swtpm suite flips every one).
    for i in (0..ev.kek.certify.attest.len()).step_by(7) {
        let mut e = ev.clone();
        e.kek.certify.attest[i] ^= 1;
        assert!(verify(&e, "a-ca.pem", "eu").is_err(), "certify byte {i}");
    }
    for i in (0..ev.quote.attest.len()).step_by(7) {
        let mut e = ev.clone();
        e.quote.attest[i] ^= 1;
        assert!(verify(&e, "a-ca.pem", "eu").is_err(), "quote byte {i}");
    }
    for i in (0..ev.kek.public.len()).step_by(7) {
        let mut e = ev.clone();
        e.kek.public[i] ^= 1;
        assert!(verify(&e, "a-ca.pem", "eu").is_err(), "KEK public byte {i}");
    }
}

#[test]
fn the_activation_proves_the_ak_and_a_foreign_one_does_not() {
    assert!(matches!(proven().ak_binding, AkBinding::Activated));
    // The same answer for another world's evidence (another AK).
    let mut us = verify(&read("a-us.evidence"), "a-ca.pem", "us").unwrap();
    assert!(matches!(
        check_activation(
            &mut us,
            &read::<Challenge>("a-eu.challenge"),
            &read::<Activation>("a-eu.activation"),
        ),
        Err(VerifyError::ActivationMismatch(_))
    ));
    // A wrong secret.
    let mut v = verify(&read("a-eu.evidence"), "a-ca.pem", "eu").unwrap();
    let mut answer: Activation = read("a-eu.activation");
    answer.secret[0] ^= 1;
    assert!(check_activation(&mut v, &read::<Challenge>("a-eu.challenge"), &answer).is_err());
    assert!(!v.ak_binding.proven());
}

#[test]
fn the_registry_proves_the_enrolled_ak_only() {
    let reg = Registry::open(&fixture("registry")).unwrap();
    let mut v = verify(&read("a-eu.evidence"), "a-ca.pem", "eu").unwrap();
    reg.check(&mut v, true).unwrap();
    assert!(matches!(v.ak_binding, AkBinding::Enrolled { ref host, .. } if host == "host-a"));
    // Host A's other world is not enrolled; host B is not at all.
    let mut us = verify(&read("a-us.evidence"), "a-ca.pem", "us").unwrap();
    assert!(matches!(
        reg.check(&mut us, true),
        Err(VerifyError::WorldNotEnrolled { .. })
    ));
    let mut b = verify(&read("b-eu.evidence"), "b-ca.pem", "eu").unwrap();
    assert!(matches!(
        reg.check(&mut b, true),
        Err(VerifyError::EkNotEnrolled { .. })
    ));
}

#[test]
fn the_receipt_shows_the_wrapped_key_imported_and_not_duplicable() {
    let v = proven();
    let receipt: Receipt = read("a-eu.receipt");
    let transfer: TransferPackage = read("a-eu.transfer");
    let n2 = hex::decode(N2).unwrap();
    let r = check_receipt(&receipt, &v, &n2, &Default::default(), Some(&transfer)).unwrap();
    assert_eq!(r.origin, "imported");
    assert_eq!(r.duplicable, Some(false));
    assert_eq!(r.matches_transfer, Some(true));
    // The evidence's nonce is not the receipt's.
    assert!(matches!(
        check_receipt(
            &receipt,
            &v,
            &hex::decode(N1).unwrap(),
            &Default::default(),
            None
        ),
        Err(VerifyError::NonceMismatch { .. })
    ));
    // Unproven evidence proves nothing about a receipt.
    let unproven = verify(&read("a-eu.evidence"), "a-ca.pem", "eu").unwrap();
    assert!(check_receipt(&receipt, &unproven, &n2, &Default::default(), None).is_err());
}

fn verifier() -> Command {
    Command::cargo_bin("byok-verifier").unwrap()
}

#[test]
fn the_binary_verifies_the_fixtures_quietly_and_refuses_the_foreign_ca() {
    let ev = fixture("a-eu.evidence");
    verifier()
        .args(["verify", "--nonce", N1, "--world", "eu", "--roots"])
        .arg(fixture("a-ca.pem"))
        .arg("--evidence")
        .arg(&ev)
        .assert()
        .success()
        .stderr("");
    verifier()
        .args(["verify", "--nonce", N1, "--world", "eu", "--roots"])
        .arg(fixture("a-ca.pem"))
        .arg("--evidence")
        .arg(fixture("b-eu.evidence"))
        .assert()
        .code(10);
    // Proven through the registry (read only: nothing is written to it).
    let before = std::fs::read_dir(fixture("registry")).unwrap().count();
    verifier()
        .args([
            "verify",
            "--nonce",
            N1,
            "--json",
            "--require-enrolled",
            "--roots",
        ])
        .arg(fixture("a-ca.pem"))
        .arg("--registry")
        .arg(fixture("registry"))
        .arg("--evidence")
        .arg(&ev)
        .assert()
        .success()
        .stdout(predicates::str::contains("host-a"))
        .stderr("");
    assert_eq!(
        std::fs::read_dir(fixture("registry")).unwrap().count(),
        before
    );
}

/// `world`'s evidence from host A checked with `policy`.
fn with_policy(
    file: &str,
    world: &str,
    policy: byok_verifier::policy::Policy,
) -> Result<Verified, VerifyError> {
    let mut o = opts(world);
    o.policy = policy;
    verify_evidence(&read(file), &store("a-ca.pem"), &o)
}

fn pcr_policy(
    require: byok_verifier::policy::KekPcrRequirement,
    refs: &[(u32, Vec<u8>)],
) -> byok_verifier::policy::Policy {
    let mut p = byok_verifier::policy::Policy {
        require_kek_pcrs: require,
        ..Default::default()
    };
    p.reference_pcrs.insert(
        byok_protocol::hash::HashAlg::Sha256,
        refs.iter().cloned().collect(),
    );
    p
}

#[test]
fn a_pcr_bound_kek_is_held_to_the_policys_pcr_rules() {
    use byok_verifier::policy::KekPcrRequirement::{Any, None as NotRequired, These};
    let v = verify(&read("a-pcr.evidence"), "a-ca.pem", "pcr").unwrap();
    let b = v.kek_pcr_binding.clone().expect("a PCR binding");
    assert_eq!(b.pcrs.describe(), "sha256:0,23");
    let (v0, v23) = (b.values[0].clone(), b.values[1].clone());
    let mut wrong = v0.clone();
    wrong[0] ^= 1;

    // Reference values: equal passes, another value is refused.
    with_policy(
        "a-pcr.evidence",
        "pcr",
        pcr_policy(NotRequired, &[(0, v0.clone())]),
    )
    .unwrap();
    let r = with_policy(
        "a-pcr.evidence",
        "pcr",
        pcr_policy(NotRequired, &[(0, wrong)]),
    );
    assert!(
        matches!(r, Err(VerifyError::KekPcrBindingMismatch { index: 0, .. })),
        "{r:?}"
    );
    // Required: every bound PCR needs a reference value, and a PCR software
    // can reset (23) never counts.
    let both = [(0, v0.clone()), (23, v23.clone())];
    with_policy("a-pcr.evidence", "pcr", pcr_policy(Any, &both)).unwrap();
    let r = with_policy("a-pcr.evidence", "pcr", pcr_policy(Any, &[(0, v0.clone())]));
    assert!(
        matches!(r, Err(VerifyError::KekPcrUnreferenced { index: 23, .. })),
        "{r:?}"
    );
    with_policy("a-pcr.evidence", "pcr", pcr_policy(These(vec![0]), &both)).unwrap();
    let r = with_policy(
        "a-pcr.evidence",
        "pcr",
        pcr_policy(These(vec![0, 7]), &both),
    );
    assert!(
        matches!(r, Err(VerifyError::KekPcrsMissing { ref missing, .. }) if missing == "7"),
        "{r:?}"
    );
    let r = with_policy("a-pcr.evidence", "pcr", pcr_policy(These(vec![23]), &both));
    assert!(
        matches!(r, Err(VerifyError::KekPcrsMissing { .. })),
        "{r:?}"
    );
    let r = with_policy("a-pcr23.evidence", "pcr23", pcr_policy(Any, &[(23, v23)]));
    assert!(
        matches!(r, Err(VerifyError::KekPcrResettable { .. })),
        "{r:?}"
    );
    // A KEK with no binding, where one is required.
    let r = with_policy("a-eu.evidence", "eu", pcr_policy(Any, &both));
    assert!(matches!(r, Err(VerifyError::KekNotPcrBound)), "{r:?}");
    // Not required: a plain KEK passes (the reference value is the quote's).
    with_policy("a-eu.evidence", "eu", pcr_policy(NotRequired, &[(0, v0)])).unwrap();
}

#[test]
fn a_tampered_pcr_binding_is_refused() {
    use byok_protocol::hash::HashAlg;
    let ev: Evidence = read("a-pcr.evidence");
    // Another value: the recomputed authPolicy is not the signed one.
    let mut e = ev.clone();
    let bank = e.kek.pcr_binding.as_mut().unwrap();
    bank.get_mut(&HashAlg::Sha256).unwrap().get_mut(&0).unwrap()[0] ^= 1;
    let r = verify(&e, "a-ca.pem", "pcr");
    assert!(
        matches!(r, Err(VerifyError::KekWorldMismatch { .. })),
        "{r:?}"
    );
    // No binding at all: the KEK's authPolicy is not the plain world binding.
    let mut e = ev.clone();
    e.kek.pcr_binding = None;
    let r = verify(&e, "a-ca.pem", "pcr");
    assert!(
        matches!(r, Err(VerifyError::KekWorldMismatch { .. })),
        "{r:?}"
    );
    // Two banks, a PCR past 23, a value of the wrong size.
    let mut e = ev.clone();
    let b = e.kek.pcr_binding.as_mut().unwrap();
    b.insert(HashAlg::Sha1, Default::default());
    let r = verify(&e, "a-ca.pem", "pcr");
    assert!(
        matches!(r, Err(VerifyError::KekPcrBindingMalformed(_))),
        "{r:?}"
    );
    let mut e = ev.clone();
    let b = e.kek.pcr_binding.as_mut().unwrap();
    b.get_mut(&HashAlg::Sha256)
        .unwrap()
        .insert(24, serde_bytes::ByteBuf::from(vec![0u8; 32]));
    let r = verify(&e, "a-ca.pem", "pcr");
    assert!(
        matches!(r, Err(VerifyError::KekPcrBindingMalformed(_))),
        "{r:?}"
    );
    let mut e = ev;
    let b = e.kek.pcr_binding.as_mut().unwrap();
    b.get_mut(&HashAlg::Sha256)
        .unwrap()
        .get_mut(&0)
        .unwrap()
        .pop();
    let r = verify(&e, "a-ca.pem", "pcr");
    assert!(
        matches!(r, Err(VerifyError::KekPcrBindingMalformed(_))),
        "{r:?}"
    );
}

/// A directory of evidence files for a batch: `names` copied from the fixtures.
fn batch_dir(names: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::TempDir::new().unwrap();
    for (from, to) in names {
        std::fs::copy(fixture(from), dir.path().join(to)).unwrap();
    }
    dir
}

#[test]
fn a_batch_ends_with_a_summary_and_the_most_serious_failure_decides_the_exit() {
    // In name order: an unreadable file first (exit 3 alone), then evidence
    // of another TPM's CA (a failed check, exit 10), then two good ones.
    let dir = batch_dir(&[
        ("a-eu.evidence", "c-good.evidence"),
        ("a-us.evidence", "d-good.evidence"),
        ("b-eu.evidence", "b-foreign.evidence"),
    ]);
    std::fs::write(dir.path().join("a-junk.evidence"), b"not cbor").unwrap();
    verifier()
        .args(["verify", "--nonce", N1, "--roots"])
        .arg(fixture("a-ca.pem"))
        .arg("--evidence")
        .arg(dir.path())
        .assert()
        .code(10)
        .stdout(predicates::str::contains("FAIL "))
        .stdout(predicates::str::ends_with("2 ok, 2 failed\n"));
    verifier()
        .args(["verify", "--json", "--nonce", N1, "--roots"])
        .arg(fixture("a-ca.pem"))
        .arg("--evidence")
        .arg(dir.path())
        .assert()
        .code(10)
        .stdout(predicates::str::ends_with(
            "{\"summary\":true,\"ok\":2,\"failed\":2}\n",
        ));
    // All good: the summary and exit 0; -q keeps the verdicts, drops the summary.
    let good = batch_dir(&[("a-eu.evidence", "1"), ("a-us.evidence", "2")]);
    verifier()
        .args(["verify", "--nonce", N1, "--roots"])
        .arg(fixture("a-ca.pem"))
        .arg("--evidence")
        .arg(good.path())
        .assert()
        .success()
        .stdout(predicates::str::ends_with("2 ok, 0 failed\n"))
        .stderr("");
    verifier()
        .args(["-q", "verify", "--nonce", N1, "--roots"])
        .arg(fixture("a-ca.pem"))
        .arg("--evidence")
        .arg(good.path())
        .assert()
        .success()
        .stdout(predicates::str::contains("ok, 0 failed").not());
    // An empty set is an error, not a silent success.
    let empty = tempfile::TempDir::new().unwrap();
    verifier()
        .args(["verify", "--nonce", N1, "--roots"])
        .arg(fixture("a-ca.pem"))
        .arg("--evidence")
        .arg(empty.path())
        .assert()
        .code(2)
        .stderr(predicates::str::contains("names no file"));
}

#[test]
fn the_text_reports_name_what_was_verified() {
    use byok_verifier::report::{identity_text, verified_text};
    let v = proven();
    let cert = hex::encode(v.ek_certificate_sha256);
    let ek = hex::encode(&v.ek_name);
    assert_eq!(
        identity_text(&v),
        format!("host (not enrolled), EK certificate SHA-256 {cert}, EK name {ek}")
    );
    let text = verified_text(Path::new("a-eu.evidence"), &v);
    for line in [
        "OK a-eu.evidence: world \"eu\"\n".to_string(),
        "  host:       (not enrolled)\n".into(),
        format!("  EK:         certificate SHA-256 {cert}, name {ek}\n"),
        format!("  EK chain:   {}\n", v.ek_chain.join(" -> ")),
        format!("  KEK:        RSA-2048 name {}\n", hex::encode(&v.kek_name)),
        format!("  AK:         RSA-2048 name {}\n", hex::encode(&v.ak_name)),
    ] {
        assert!(text.contains(&line), "{line:?} not in:\n{text}");
    }
}

#[test]
fn a_cloud_blob_refuses_what_only_a_transfer_package_carries() {
    let d = tempfile::TempDir::new().unwrap();
    let key = d.path().join("k.pem");
    verifier()
        .args(["keygen", "--alg", "p256", "-o"])
        .arg(&key)
        .assert()
        .success();
    for (flag, value) in [("--key-pcrs", "sha256:7"), ("--label", "x")] {
        for format in ["azure", "gcp", "aws"] {
            verifier()
                .args(["wrap", "--format", format, flag, value, "--key"])
                .arg(&key)
                .arg("-o")
                .arg(d.path().join("out"))
                .assert()
                .code(2)
                .stderr(predicates::str::contains(
                    "--key-pcrs and --label are for --format tpm",
                ));
        }
    }
    assert!(!d.path().join("out").exists());
}
