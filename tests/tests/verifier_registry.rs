//! The registry through the library (the binaries' tests are in
//! tests/tests/proof.rs): enrolment needs a real activation; the check proves
//! an enrolled EK and AK, refuses an enrolled EK with another AK, and (when
//! required) an EK or world that is not enrolled; each conflict of `enroll`
//! is refused unless replaced.

use byok_protocol::formats::{Activation, Document, Evidence};
use byok_tests::{nonce, tpm_a, tpm_b, Host};
use byok_verifier::certs::{load_certificates, TrustStore};
use byok_verifier::error::VerifyError;
use byok_verifier::registry::{enroll, EnrolOutcome, Registry};
use byok_verifier::verify::{
    check_activation, make_challenge, verify_evidence, AkBinding, Options, Verified,
};
use std::path::Path;
use std::time::SystemTime;
use tempfile::TempDir;

/// Fresh evidence of `world` on `host`, verified (the AK not yet proven).
fn verified(host: &Host, world: &str, work: &Path) -> Verified {
    let n = nonce();
    let p = work.join(format!("{world}-{}.evidence", host.tpm.port));
    host.evidence(world, &n, &p);
    let ev = Evidence::from_cbor(&std::fs::read(&p).unwrap()).unwrap();
    let store = TrustStore {
        anchors: load_certificates(&host.ca_bundle, byok_verifier::certs::CertSource::Roots)
            .unwrap()
            .certs,
        ..Default::default()
    };
    let opts = Options {
        nonce: hex::decode(&n).unwrap(),
        world: None,
        now: SystemTime::now(),
        policy: Default::default(),
    };
    verify_evidence(&ev, &store, &opts).unwrap()
}

/// The same, with the AK proven by the host's TPM answering a challenge.
fn activated(host: &Host, world: &str, work: &Path) -> Verified {
    let mut v = verified(host, world, work);
    let ch = make_challenge(&v).unwrap();
    let cp = work.join("c.cbor");
    let ap = work.join("a.cbor");
    std::fs::write(&cp, ch.to_cbor()).unwrap();
    host.agent()
        .args(["--force", "activate", "--world", world, "--in"])
        .arg(&cp)
        .arg("-o")
        .arg(&ap)
        .assert()
        .success();
    let act = Activation::from_cbor(&std::fs::read(&ap).unwrap()).unwrap();
    check_activation(&mut v, &ch, &act).unwrap();
    assert_eq!(v.ak_binding, AkBinding::Activated);
    v
}

// Long on purpose: one swtpm per test costs seconds, so the checks that share a host share a test, in order.
#[test]
fn enrolment_and_the_registry_check() {
    let a = Host::new(tpm_a());
    let b = Host::new(tpm_b());
    let work = TempDir::new().unwrap();
    let w = work.path();
    let dir = w.join("registry");
    a.init("eu");
    b.init("eu");

    // Evidence alone is not enough to enrol.
    let unproven = verified(&a, "eu", w);
    let e = enroll(&dir, &unproven, Some("a"), false, 1).unwrap_err();
    assert!(matches!(e, VerifyError::AkNotProven { .. }), "{e}");
    assert!(!dir.join("a.cbor").exists());
    // An invalid host name.
    let va = activated(&a, "eu", w);
    let e = enroll(&dir, &va, Some("../a"), false, 1).unwrap_err();
    assert!(matches!(e, VerifyError::Usage(_)), "{e}");

    let (rec, outcome) = enroll(&dir, &va, Some("a"), false, 100).unwrap();
    assert_eq!(outcome, EnrolOutcome::Created);
    assert_eq!(outcome.describe(), "enrolled");
    // Files that are not records (a README in the git checkout) are not read.
    std::fs::write(dir.join("README.md"), "enrolled hosts").unwrap();
    assert_eq!(rec.enrolled, 100);
    assert_eq!(rec.worlds["eu"].enrolled, 100);
    assert_eq!(
        enroll(&dir, &va, None, false, 200).unwrap().1,
        EnrolOutcome::Unchanged
    );

    // The check: proven for the enrolled EK and AK, with host and time.
    let reg = Registry::open(&dir).unwrap();
    assert_eq!(reg.hosts().len(), 1);
    let mut v = verified(&a, "eu", w);
    reg.check(&mut v, true).unwrap();
    assert_eq!(
        v.ak_binding,
        AkBinding::Enrolled {
            host: "a".into(),
            enrolled: 100
        }
    );
    assert!(v.ak_binding.proven());
    assert_eq!(
        v.ak_binding.describe(),
        "proven (host a, enrolled 1970-01-01 00:01:40 UTC)"
    );
    assert_eq!(v.host.as_deref(), Some("a"));
    // Another AK for the enrolled EK and world: refused, required or not.
    let mut other = verified(&a, "eu", w);
    other.ak_name[5] ^= 1;
    for require in [false, true] {
        let e = reg.check(&mut other.clone(), require).unwrap_err();
        assert!(
            matches!(e, VerifyError::AkNotEnrolled { ref host, .. } if host == "a"),
            "{e}"
        );
    }
    // An EK that is not enrolled: fine unless required.
    let mut vb = verified(&b, "eu", w);
    reg.check(&mut vb, false).unwrap();
    assert_eq!(vb.ak_binding, AkBinding::AtImport);
    assert_eq!(vb.host, None);
    let e = reg.check(&mut vb, true).unwrap_err();
    assert!(matches!(e, VerifyError::EkNotEnrolled { .. }), "{e}");
    // A world of an enrolled EK that is not enrolled: fine unless required.
    a.init("us");
    let mut vu = verified(&a, "us", w);
    reg.check(&mut vu, false).unwrap();
    assert_eq!(vu.ak_binding, AkBinding::AtImport);
    assert_eq!(vu.host.as_deref(), Some("a"));
    let e = reg.check(&mut vu, true).unwrap_err();
    assert!(matches!(e, VerifyError::WorldNotEnrolled { .. }), "{e}");

    // Conflicts: B under A's name; A under a second name; another AK for A's world.
    let vb = activated(&b, "eu", w);
    let e = enroll(&dir, &vb, Some("a"), false, 300).unwrap_err();
    assert!(matches!(e, VerifyError::HostEkConflict { .. }), "{e}");
    // Without a name, a new EK gets one from its certificate.
    let other_dir = w.join("other-registry");
    let (rec, _) = enroll(&other_dir, &vb, None, false, 300).unwrap();
    assert_eq!(
        rec.host,
        format!("ek-{}", &hex::encode(vb.ek_certificate_sha256)[..12])
    );
    let e = enroll(&dir, &va, Some("a2"), false, 300).unwrap_err();
    assert!(
        matches!(e, VerifyError::EkEnrolledAs { ref host } if host == "a"),
        "{e}"
    );
    let mut va_other = va.clone();
    va_other.ak_public = vb.ak_public.clone();
    va_other.ak_name = vb.ak_name.clone();
    let e = enroll(&dir, &va_other, None, false, 300).unwrap_err();
    assert!(matches!(e, VerifyError::WorldAkConflict { .. }), "{e}");
    assert_eq!(
        Registry::open(&dir).unwrap().hosts().len(),
        1,
        "a refusal wrote nothing"
    );

    // A second world updates the record; --replace moves the EK to a new name.
    let vau = activated(&a, "us", w);
    assert_eq!(
        enroll(&dir, &vau, None, false, 400).unwrap().1,
        EnrolOutcome::Updated
    );
    let (rec, outcome) = enroll(&dir, &va, Some("a2"), true, 500).unwrap();
    assert_eq!(outcome, EnrolOutcome::Replaced);
    assert_eq!(
        outcome.describe(),
        "enrolled (replacing the earlier record)"
    );
    assert_eq!(rec.host, "a2");
    assert!(!dir.join("a.cbor").exists() && dir.join("a2.cbor").exists());
    let reg = Registry::open(&dir).unwrap();
    assert_eq!(reg.hosts().len(), 1);
    assert!(reg.by_host("a2").is_some() && reg.by_host("a").is_none());
    // B replaces A's name when told to.
    assert_eq!(
        enroll(&dir, &vb, Some("a2"), true, 600).unwrap().1,
        EnrolOutcome::Replaced
    );
    let reg = Registry::open(&dir).unwrap();
    assert_eq!(reg.by_ek(&vb.ek_name).unwrap().host, "a2");
    assert!(reg.by_ek(&va.ek_name).is_none());

    // A record under the wrong file name, a duplicate EK and junk are errors.
    std::fs::copy(dir.join("a2.cbor"), dir.join("copy.cbor")).unwrap();
    let e = Registry::open(&dir).unwrap_err();
    assert!(
        e.to_string().contains("its file must be <host>.cbor"),
        "{e}"
    );
    let mut twin =
        byok_protocol::formats::HostRecord::from_cbor(&std::fs::read(dir.join("a2.cbor")).unwrap())
            .unwrap();
    twin.host = "copy".into();
    std::fs::write(dir.join("copy.cbor"), twin.to_cbor()).unwrap();
    let e = Registry::open(&dir).unwrap_err();
    assert!(e.to_string().contains("one EK, one host"), "{e}");
    std::fs::remove_file(dir.join("copy.cbor")).unwrap();
    std::fs::write(dir.join("junk.cbor"), b"junk").unwrap();
    assert!(matches!(
        Registry::open(&dir),
        Err(VerifyError::Registry { .. })
    ));
    std::fs::remove_file(dir.join("junk.cbor")).unwrap();
    Registry::open(&dir).unwrap();
    assert!(matches!(
        Registry::open(&w.join("missing")),
        Err(VerifyError::Registry { .. })
    ));
}

#[test]
fn an_activation_answers_exactly_its_challenge() {
    // Each field of the challenge and the answer must match the evidence:
    // the challenge's EK and AK names, the answer's AK name and world, and
    // the secret against the commitment.
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let w = work.path();
    host.init("eu");
    let v = verified(&host, "eu", w);
    let ch = make_challenge(&v).unwrap();
    let cp = w.join("c.cbor");
    let ap = w.join("a.cbor");
    std::fs::write(&cp, ch.to_cbor()).unwrap();
    host.agent()
        .args(["activate", "--world", "eu", "--in"])
        .arg(&cp)
        .arg("-o")
        .arg(&ap)
        .assert()
        .success();
    let act = Activation::from_cbor(&std::fs::read(&ap).unwrap()).unwrap();
    let refused = |ch: &byok_protocol::formats::Challenge, act: &Activation| {
        let mut v = v.clone();
        let r = check_activation(&mut v, ch, act);
        assert_eq!(v.ak_binding, AkBinding::AtImport);
        matches!(r, Err(VerifyError::ActivationMismatch(_)))
    };
    let flip = |b: &serde_bytes::ByteBuf| {
        let mut b = b.to_vec();
        b[4] ^= 1;
        serde_bytes::ByteBuf::from(b)
    };
    let mut c = ch.clone();
    c.ek_name = flip(&c.ek_name);
    assert!(refused(&c, &act), "another EK");
    let mut c = ch.clone();
    c.ak_name = flip(&c.ak_name);
    assert!(refused(&c, &act), "another AK in the challenge");
    let mut a = act.clone();
    a.ak_name = flip(&a.ak_name);
    assert!(refused(&ch, &a), "another AK in the answer");
    let mut a = act.clone();
    a.world = "us".parse().unwrap();
    assert!(refused(&ch, &a), "another world");
    let mut a = act.clone();
    a.secret = flip(&a.secret);
    assert!(refused(&ch, &a), "another secret");
    let mut v2 = v.clone();
    check_activation(&mut v2, &ch, &act).unwrap();
    assert_eq!(v2.ak_binding, AkBinding::Activated);
}

// Long on purpose: one swtpm per test costs seconds, so the checks that share a host share a test, in order.
#[test]
fn a_run_applies_the_world_policy_the_registry_and_the_activation() {
    use byok_verifier::pipeline::{Pipeline, ProofFlags};
    use byok_verifier::trust::TrustFlags;
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let w = work.path();
    host.init("w1");
    host.init("w2");
    let n = nonce();
    let evidence = |world: &str| {
        let p = w.join(format!("{world}.evidence"));
        host.evidence(world, &n, &p);
        p
    };
    let (e1, e2) = (evidence("w1"), evidence("w2"));
    let policy = w.join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "[defaults]\nroots = [{:?}]\n[worlds.w1]\nrequire_kek_pcrs = true\n[worlds.w2]\nrequire_enrolled = true\n",
            host.ca_bundle
        ),
    )
    .unwrap();
    let flags = TrustFlags {
        policy: Some(policy.clone()),
        ..Default::default()
    };
    let run = |proof: &ProofFlags, world: Option<&str>| {
        Pipeline::new(
            &flags,
            proof,
            hex::decode(&n).unwrap(),
            world.map(|w| w.parse().unwrap()),
        )
    };
    let none = ProofFlags::default();
    // Each file gets its own world's rules, without --world.
    let p = run(&none, None).unwrap();
    assert!(matches!(
        p.check_file(&e1),
        Err(VerifyError::KekNotPcrBound)
    ));
    // w2 requires enrolment: without a registry, a usage error naming it.
    let e = p.check_file(&e2).unwrap_err();
    assert!(
        matches!(e, VerifyError::Usage(ref m) if m.contains("--registry")),
        "{e}"
    );
    // ... which does not stop the steps that enrol.
    let v = run(&none, None)
        .unwrap()
        .enrolling()
        .check_file(&e2)
        .unwrap();
    assert_eq!(v.ak_binding, AkBinding::AtImport);
    // With the registry, after enrolment: proven.
    let dir = w.join("registry");
    let va = activated(&host, "w2", w);
    enroll(&dir, &va, Some("h"), false, 7).unwrap();
    let reg = ProofFlags {
        registry: Some(dir.clone()),
        ..Default::default()
    };
    let v = run(&reg, None).unwrap().check_file(&e2).unwrap();
    assert_eq!(
        v.ak_binding,
        AkBinding::Enrolled {
            host: "h".into(),
            enrolled: 7
        }
    );
    // --require-enrolled applies to worlds whose policy does not ask for it.
    let strict = ProofFlags {
        require_enrolled: true,
        ..reg.clone()
    };
    assert!(matches!(
        run(&strict, None).unwrap().check_file(&e1),
        Err(VerifyError::KekNotPcrBound)
    ));
    let mut relaxed = std::fs::read_to_string(&policy).unwrap();
    relaxed = relaxed.replace("require_kek_pcrs = true", "");
    std::fs::write(&policy, &relaxed).unwrap();
    let e = run(&strict, None).unwrap().check_file(&e1).unwrap_err();
    assert!(matches!(e, VerifyError::WorldNotEnrolled { .. }), "{e}");
    assert_eq!(
        run(&reg, None).unwrap().check_file(&e1).unwrap().ak_binding,
        AkBinding::AtImport
    );
    // --world narrows the run; a world the policy has no table for is a typo.
    assert!(matches!(
        run(&none, Some("w1")).unwrap().check_file(&e2),
        Err(VerifyError::WorldMismatch { .. })
    ));
    assert!(matches!(
        run(&none, Some("w3")),
        Err(VerifyError::Policy { .. })
    ));
    // A challenge and its answer, both or neither.
    let c = ProofFlags {
        challenge: Some(w.join("c.cbor")),
        ..Default::default()
    };
    assert!(matches!(run(&c, None), Err(VerifyError::Usage(_))));
    // The policy's RSA minimum reaches the EK certificate check.
    std::fs::write(
        &policy,
        format!(
            "[defaults]\nroots = [{:?}]\nmin_rsa_bits = 3072\n",
            host.ca_bundle
        ),
    )
    .unwrap();
    let e = run(&none, None).unwrap().check_file(&e1).unwrap_err();
    assert!(
        matches!(
            e,
            VerifyError::EkKeyTooWeak {
                min_rsa_bits: 3072,
                ..
            }
        ),
        "{e}"
    );
    // The evidence cap of [defaults].
    std::fs::write(
        &policy,
        format!(
            "[defaults]\nroots = [{:?}]\nmax_evidence_bytes = 4096\n",
            host.ca_bundle
        ),
    )
    .unwrap();
    let mut big = Evidence::from_cbor(&std::fs::read(&e1).unwrap()).unwrap();
    big.ek.chain = vec![big.ek.certificate.clone(); 4];
    let big_path = w.join("big.evidence");
    std::fs::write(&big_path, big.to_cbor()).unwrap();
    assert!(std::fs::metadata(&big_path).unwrap().len() > 4096);
    let p = run(&none, None).unwrap();
    p.check_file(&e1).expect("under the cap");
    let e = p.check_file(&big_path).unwrap_err();
    assert!(
        matches!(
            e,
            VerifyError::Format {
                source: byok_protocol::error::FormatError::TooLarge { max: 4096, .. },
                ..
            }
        ),
        "{e}"
    );
}
