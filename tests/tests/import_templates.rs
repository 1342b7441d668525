//! The agent imports only the objects `byok-verifier wrap` writes. Anyone
//! can build a package from public evidence data (the EK, AK name and KEK
//! public are all in it); one whose key carries a duplication policy
//! (PolicyCommandCode(TPM2_Duplicate)) would be accepted by TPM2_Import and
//! could then be taken out with `tpm2_duplicate`. The agent checks the
//! package's public area first and refuses anything else with nothing stored.

use byok_protocol::formats::{Document, Evidence, KeyInfo};
use byok_protocol::keys::{KeyAlg, TargetKey};
use byok_protocol::policy::{PcrSpec, PolicyDigest};
use byok_protocol::public::TpmtPublic;
use byok_protocol::tpm::attr;
use byok_tests::{hand_made_package, nonce, tpm_a, Host};
use predicates::str::contains;
use tempfile::TempDir;

/// TPM_CC_Duplicate.
const CC_DUPLICATE: u32 = 0x0000_014b;

/// The packages' inner wrapper key (the credential secret).
const INNER: [u8; 16] = [0x5a; 16];

fn info(pcrs: Option<(&str, Vec<Vec<u8>>)>) -> KeyInfo {
    let spec = pcrs.as_ref().map(|(s, _)| PcrSpec::parse(s).unwrap());
    KeyInfo::new(
        "p256".into(),
        None,
        spec.as_ref().zip(pcrs.as_ref().map(|(_, v)| v.as_slice())),
    )
}

fn with_attributes(p: &TpmtPublic, attributes: u32) -> TpmtPublic {
    TpmtPublic::build(
        p.object_type,
        p.name_alg,
        attributes,
        p.auth_policy.clone(),
        p.params.clone(),
        p.unique.clone(),
    )
}

// Long on purpose: one swtpm per test costs seconds, so the checks that share a host share a test, in order.
#[test]
fn packages_with_other_objects_are_refused_before_import() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let w = work.path();
    host.init("eu");
    let n = nonce();
    let evp = w.join("eu.evidence");
    host.evidence("eu", &n, &evp);
    let ev = Evidence::from_cbor(&std::fs::read(&evp).unwrap()).unwrap();
    let key = TargetKey::generate(KeyAlg::P256).unwrap();
    let dup_policy = PolicyDigest::new().command_code(CC_DUPLICATE).into_vec();
    let zero = vec![0u8; 32];

    let cases: Vec<(&str, TpmtPublic, KeyInfo, &str)> = vec![
        (
            "duplication policy",
            key.tpm_public_with_policy(dup_policy.clone()),
            info(None),
            "object has an authPolicy",
        ),
        (
            "duplication policy claiming a PCR binding",
            key.tpm_public_with_policy(dup_policy),
            info(Some(("sha256:0", vec![zero.clone()]))),
            "object authPolicy is not PolicyPCR",
        ),
        (
            "adminWithPolicy",
            with_attributes(
                &key.tpm_public(),
                key.tpm_public().attributes | attr::ADMIN_WITH_POLICY,
            ),
            info(None),
            "object attributes are",
        ),
        (
            "PCRs without values (an older wrap)",
            key.tpm_public_with_policy(
                PolicyDigest::new()
                    .pcr(
                        &PcrSpec::parse("sha256:0").unwrap(),
                        std::slice::from_ref(&zero),
                    )
                    .into_vec(),
            ),
            KeyInfo {
                pcr_values: None,
                ..info(Some(("sha256:0", vec![zero.clone()])))
            },
            "without their values",
        ),
    ];
    for (what, public, key_info, message) in cases {
        let pkg = hand_made_package(&ev, &key, &public, key_info, &INNER);
        let p = w.join("forged.transfer");
        std::fs::write(&p, pkg.to_cbor()).unwrap();
        host.import("eu", "k", &p)
            .code(5)
            .stderr(contains("refused before any TPM work"))
            .stderr(contains(message));
        assert!(
            host.stored_keys().is_empty(),
            "{what}: something was stored"
        );
    }

    // The same construction with the object wrap writes is imported and used.
    let pkg = hand_made_package(&ev, &key, &key.tpm_public(), info(None), &INNER);
    let p = w.join("good.transfer");
    std::fs::write(&p, pkg.to_cbor()).unwrap();
    host.import("eu", "k", &p).success();
    host.sign("k", w).success();
    // A PolicyPCR over the package's own PCRs and values is imported too.
    let spec = PcrSpec::parse("sha256:0").unwrap();
    let bound = key.tpm_public_with_policy(
        PolicyDigest::new()
            .pcr(&spec, std::slice::from_ref(&zero))
            .into_vec(),
    );
    let pkg = hand_made_package(
        &ev,
        &key,
        &bound,
        info(Some(("sha256:0", vec![zero]))),
        &INNER,
    );
    std::fs::write(&p, pkg.to_cbor()).unwrap();
    host.import("eu", "k-bound", &p).success();
    host.sign("k-bound", w).success();
}
