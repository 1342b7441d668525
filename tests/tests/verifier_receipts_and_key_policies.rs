//! `check-receipt` and `wrap --key-pcrs` through the library, on receipts and
//! evidence from swtpm: each receipt check refused with its named failure,
//! what a receipt reports (origin, duplicability), and the PCR policy the
//! wrapper writes into an imported key.

use byok_protocol::formats::{Activation, Document, Evidence, Receipt, TransferPackage};
use byok_protocol::keys::{KeyAlg, TargetKey};
use byok_protocol::policy::{PcrSpec, PolicyDigest};
use byok_protocol::public::TpmtPublic;
use byok_protocol::tpm::attr;
use byok_tests::{nonce, tpm_a, Host};
use byok_verifier::certs::{load_certificates, TrustStore};
use byok_verifier::error::VerifyError;
use byok_verifier::receipt::check_receipt;
use byok_verifier::verify::{
    check_activation, make_challenge, verify_evidence, AkBinding, Options, Verified,
};
use serde_bytes::ByteBuf;
use std::path::Path;
use std::time::SystemTime;
use tempfile::TempDir;

fn verified(host: &Host, world: &str, work: &Path) -> Verified {
    let n = nonce();
    let p = work.join(format!("{world}.evidence"));
    host.agent()
        .args([
            "evidence",
            "--world",
            world,
            "--nonce",
            &n,
            "--pcrs",
            "0,7,16,23",
            "-o",
        ])
        .arg(&p)
        .assert()
        .success();
    let ev = Evidence::from_cbor(&std::fs::read(&p).unwrap()).unwrap();
    let store = TrustStore {
        anchors: load_certificates(&host.ca_bundle, byok_verifier::certs::CertSource::Roots)
            .unwrap()
            .certs,
        ..Default::default()
    };
    let opts = Options {
        nonce: hex::decode(&n).unwrap(),
        world: Some(world.parse().unwrap()),
        policy: Default::default(),
        now: SystemTime::now(),
    };
    let mut v = verify_evidence(&ev, &store, &opts).unwrap();
    // Receipts need the AK proven: a real challenge answered by the TPM.
    let ch = make_challenge(&v).unwrap();
    let cp = work.join(format!("{world}.challenge"));
    let ap = work.join(format!("{world}.activation"));
    std::fs::write(&cp, ch.to_cbor()).unwrap();
    host.agent()
        .args(["activate", "--world", world, "--in"])
        .arg(&cp)
        .arg("-o")
        .arg(&ap)
        .assert()
        .success();
    let act = Activation::from_cbor(&std::fs::read(&ap).unwrap()).unwrap();
    check_activation(&mut v, &ch, &act).unwrap();
    v
}

fn import(host: &Host, world: &str, name: &str, pkg: &TransferPackage, work: &Path) {
    let p = work.join(format!("{name}.transfer"));
    std::fs::write(&p, pkg.to_cbor()).unwrap();
    host.import(world, name, &p).success();
}

fn receipt(host: &Host, key: &str, n: &str, work: &Path) -> Receipt {
    let p = work.join(format!("{key}.receipt"));
    host.agent()
        .args(["attest-key", "--key", key, "--nonce", n, "-o"])
        .arg(&p)
        .assert()
        .success();
    Receipt::from_cbor(&std::fs::read(&p).unwrap()).unwrap()
}

// Long on purpose: one swtpm per test costs seconds, so the checks that share a host share a test, in order.
#[test]
fn each_receipt_check_refuses_its_forgery() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let w = work.path();
    host.init("eu");
    host.init("us");
    let eu = verified(&host, "eu", w);
    let us = verified(&host, "us", w);
    let policy = Default::default();
    let key = TargetKey::generate(KeyAlg::P256).unwrap();
    let pkg = byok_verifier::wrap::wrap(&eu, &key, None, None).unwrap();
    import(&host, "eu", "k", &pkg, w);
    let other =
        byok_verifier::wrap::wrap(&eu, &TargetKey::generate(KeyAlg::P256).unwrap(), None, None)
            .unwrap();
    import(&host, "eu", "k2", &other, w);
    host.agent()
        .args([
            "key", "create", "--world", "eu", "--name", "born", "--alg", "p256",
        ])
        .assert()
        .success();
    let rn = nonce();
    let nb = hex::decode(&rn).unwrap();
    let r = receipt(&host, "k", &rn, w);

    let ok = check_receipt(&r, &eu, &nb, &policy, Some(&pkg)).unwrap();
    // Without the package: an imported key with an empty authPolicy is still
    // provably not duplicable.
    let alone = check_receipt(&r, &eu, &nb, &policy, None).unwrap();
    assert_eq!(
        (alone.duplicable, alone.matches_transfer),
        (Some(false), None)
    );
    // The same evidence without a proven AK: the receipt proves nothing.
    let mut unproven = eu.clone();
    unproven.ak_binding = AkBinding::AtImport;
    let e = check_receipt(&r, &unproven, &nb, &policy, Some(&pkg)).unwrap_err();
    assert!(matches!(e, VerifyError::AkNotProven { .. }), "{e}");
    assert_eq!(ok.origin, "imported");
    assert_eq!(ok.duplicable, Some(false));
    assert_eq!(ok.matches_transfer, Some(true));
    assert_eq!(ok.world, "eu");

    // Another world's evidence; relabelled, the AK gives it away.
    let e = check_receipt(&r, &us, &nb, &policy, None).unwrap_err();
    assert!(
        matches!(e, VerifyError::ReceiptWorldMismatch { .. }),
        "{e:?}"
    );
    let mut relabelled = r.clone();
    relabelled.world = "us".parse().unwrap();
    let e = check_receipt(&relabelled, &us, &nb, &policy, None).unwrap_err();
    assert!(matches!(e, VerifyError::ReceiptAkMismatch), "{e:?}");
    // The same AK, but the certify is a replay (another nonce).
    let e = check_receipt(&r, &eu, &hex::decode(nonce()).unwrap(), &policy, None).unwrap_err();
    assert!(matches!(e, VerifyError::NonceMismatch { .. }), "{e:?}");
    // The receipt's key public swapped for another key's: not the certified name.
    let mut swapped = r.clone();
    swapped.key.public = other.object.public.clone();
    let e = check_receipt(&swapped, &eu, &nb, &policy, None).unwrap_err();
    assert!(matches!(e, VerifyError::CertifiedNameMismatch), "{e:?}");
    // A receipt for another key than the package's.
    let r2 = receipt(&host, "k2", &rn, w);
    let e = check_receipt(&r2, &eu, &nb, &policy, Some(&pkg)).unwrap_err();
    assert!(matches!(e, VerifyError::ReceiptKeyNotTransferred), "{e:?}");
    // A package for another KEK.
    let mut for_us = pkg.clone();
    for_us.kek_name = ByteBuf::from(us.kek_name.clone());
    let e = check_receipt(&r, &eu, &nb, &policy, Some(&for_us)).unwrap_err();
    assert!(matches!(e, VerifyError::TransferKekMismatch), "{e:?}");
    // Evidence whose KEK is not the key's parent: us's KEK with eu's AK and
    // world (the receipt's qualified name places the key under eu's KEK).
    let mut moved = eu.clone();
    moved.kek_name = us.kek_name.clone();
    let e = check_receipt(&r, &moved, &nb, &policy, None).unwrap_err();
    assert!(matches!(e, VerifyError::ReceiptKeyNotUnderKek), "{e:?}");
    // A key generated in the TPM.
    let born = check_receipt(&receipt(&host, "born", &rn, w), &eu, &nb, &policy, None).unwrap();
    assert_eq!(born.origin, "generated inside the TPM");
    assert_eq!(born.duplicable, Some(false));
    assert_eq!(born.matches_transfer, None);
    // Sealed data: made in the TPM, from data the host supplied.
    let secret = w.join("secret");
    std::fs::write(&secret, b"s").unwrap();
    host.agent()
        .args(["seal", "--world", "eu", "--name", "sealed", "--in"])
        .arg(&secret)
        .assert()
        .success();
    let sealed = check_receipt(&receipt(&host, "sealed", &rn, w), &eu, &nb, &policy, None).unwrap();
    assert_eq!(
        sealed.origin,
        "created in the TPM from data the host supplied (sealed data)"
    );
}

#[test]
fn key_pcr_policies_bind_the_quoted_values() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let w = work.path();
    host.init("eu");
    host.tpm2("tpm2_pcrextend")
        .arg(format!("23:sha256={}", hex::encode([7u8; 32])))
        .assert()
        .success();
    let eu = verified(&host, "eu", w);
    let key = TargetKey::generate(KeyAlg::P256).unwrap();
    let spec = PcrSpec::parse("sha256:16,23").unwrap();
    let pkg = byok_verifier::wrap::wrap(&eu, &key, None, Some(&spec)).unwrap();
    let public = TpmtPublic::parse_tpm2b(&pkg.object.public).unwrap();
    let values = vec![eu.pcrs[&16].clone(), eu.pcrs[&23].clone()];
    assert_ne!(values[1], vec![0u8; 32]);
    assert_eq!(
        public.auth_policy,
        PolicyDigest::new().pcr(&spec, &values).into_vec()
    );
    assert!(!public.has(attr::USER_WITH_AUTH));
    assert_eq!(
        pkg.key.pcrs.as_ref().map(|p| p.describe()).as_deref(),
        Some("sha256:16,23")
    );
    // Without --key-pcrs: empty policy, usable with the auth value.
    let plain = byok_verifier::wrap::wrap(&eu, &key, None, None).unwrap();
    let plain = TpmtPublic::parse_tpm2b(&plain.object.public).unwrap();
    assert!(plain.auth_policy.is_empty() && plain.has(attr::USER_WITH_AUTH));
    // Only quoted sha256 PCRs can be bound.
    for bad in ["sha256:15", "sha384:16"] {
        let e = byok_verifier::wrap::wrap(&eu, &key, None, Some(&PcrSpec::parse(bad).unwrap()))
            .unwrap_err();
        assert!(matches!(e, VerifyError::Usage(_)), "{bad}: {e:?}");
    }
    // The package with a PCR-only policy: the receipt says it cannot be duplicated.
    import(&host, "eu", "bound", &pkg, w);
    let rn = nonce();
    let r = receipt(&host, "bound", &rn, w);
    let nb = hex::decode(&rn).unwrap();
    let report = check_receipt(&r, &eu, &nb, &Default::default(), Some(&pkg)).unwrap();
    assert_eq!(report.duplicable, Some(false));
    let report = check_receipt(&r, &eu, &nb, &Default::default(), None).unwrap();
    assert_eq!(
        report.duplicable, None,
        "an authPolicy the verifier cannot read"
    );
}
