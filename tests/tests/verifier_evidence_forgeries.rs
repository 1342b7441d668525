//! The verifier's checks fed real evidence from swtpm, then forged or
//! tampered variants of it; each must fail with its named error.

use byok_protocol::formats::{Document, Evidence};
use byok_protocol::hash::HashAlg;
use byok_tests::{nonce, tpm_a, tpm_b, Host};
use byok_verifier::certs::{load_certificates, TrustStore};
use byok_verifier::error::VerifyError;
use byok_verifier::verify::{verify_evidence, Options};
use serde_bytes::ByteBuf;
use std::time::SystemTime;
use tempfile::TempDir;

struct Case {
    ev: Evidence,
    opts: Options,
    store: TrustStore,
}

fn case(host: &Host, world: &str, work: &TempDir) -> Case {
    host.init(world);
    let n = nonce();
    let path = work
        .path()
        .join(format!("{world}-{}.evidence", host.tpm.port));
    host.evidence(world, &n, &path);
    Case {
        ev: Evidence::from_cbor(&std::fs::read(&path).unwrap()).unwrap(),
        opts: Options {
            nonce: hex::decode(&n).unwrap(),
            world: Some(world.parse().unwrap()),
            policy: Default::default(),
            now: SystemTime::now(),
        },
        store: TrustStore {
            anchors: load_certificates(&host.ca_bundle, byok_verifier::certs::CertSource::Roots)
                .unwrap()
                .certs,
            ..Default::default()
        },
    }
}

fn check(c: &Case, ev: &Evidence) -> Result<(), VerifyError> {
    verify_evidence(ev, &c.store, &c.opts).map(|_| ())
}

#[test]
fn every_flipped_byte_of_a_tpm_signed_field_is_refused() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let c = case(&host, "eu", &work);
    check(&c, &c.ev).expect("genuine evidence verifies");

    type Field = fn(&mut Evidence) -> &mut ByteBuf;
    let fields: [(&str, Field); 7] = [
        ("kek.certify.attest", |e| &mut e.kek.certify.attest),
        ("kek.certify.signature", |e| &mut e.kek.certify.signature),
        ("kek.public", |e| &mut e.kek.public),
        ("ak.public", |e| &mut e.ak.public),
        ("ek.public", |e| &mut e.ek.public),
        ("quote.attest", |e| &mut e.quote.attest),
        ("quote.signature", |e| &mut e.quote.signature),
    ];
    let mut count = 0;
    for (name, get) in fields {
        let len = get(&mut c.ev.clone()).len();
        for i in 0..len {
            for bit in [0x01u8, 0x80] {
                let mut ev = c.ev.clone();
                get(&mut ev)[i] ^= bit;
                assert!(
                    check(&c, &ev).is_err(),
                    "{name}[{i}] ^ {bit:#x} was accepted"
                );
                count += 1;
            }
        }
        // Truncated and extended structures.
        let mut ev = c.ev.clone();
        get(&mut ev).pop();
        assert!(check(&c, &ev).is_err(), "{name} truncated was accepted");
        let mut ev = c.ev.clone();
        get(&mut ev).push(0);
        assert!(check(&c, &ev).is_err(), "{name} extended was accepted");
    }
    // Every PCR value.
    for i in c.ev.quote.pcrs[&HashAlg::Sha256]
        .keys()
        .copied()
        .collect::<Vec<_>>()
    {
        let mut ev = c.ev.clone();
        ev.quote
            .pcrs
            .get_mut(&HashAlg::Sha256)
            .unwrap()
            .get_mut(&i)
            .unwrap()[0] ^= 1;
        assert!(
            matches!(check(&c, &ev), Err(VerifyError::PcrDigestMismatch)),
            "PCR {i}"
        );
    }
    // Every byte of the EK certificate.
    for i in 0..c.ev.ek.certificate.len() {
        let mut ev = c.ev.clone();
        ev.ek.certificate[i] ^= 0x01;
        assert!(
            check(&c, &ev).is_err(),
            "EK certificate byte {i} was accepted"
        );
    }
    assert!(count > 2000);
}

// Long on purpose: one swtpm per test costs seconds, so the checks that share a host share a test, in order.
#[test]
fn forged_evidence_fails_with_the_named_check() {
    let a = Host::new(tpm_a());
    let b = Host::new(tpm_b());
    let work = TempDir::new().unwrap();
    let c = case(&a, "eu", &work);
    let other_world = case(&a, "us", &work);
    let other_tpm = case(&b, "eu", &work);

    // Attestation magic and type.
    let mut ev = c.ev.clone();
    ev.kek.certify.attest[0] ^= 0xff;
    assert!(matches!(
        check(&c, &ev),
        Err(VerifyError::AttestMagic {
            what: "KEK certify",
            ..
        })
    ));
    let mut ev = c.ev.clone();
    ev.kek.certify = byok_protocol::formats::Signed {
        attest: c.ev.quote.attest.clone(),
        signature: c.ev.quote.signature.clone(),
    };
    assert!(matches!(
        check(&c, &ev),
        Err(VerifyError::AttestType {
            what: "KEK certify",
            expected: "TPM_ST_ATTEST_CERTIFY",
            found: 0x8018,
        })
    ));
    // A type the parser does not know (TPM_ST_ATTEST_SESSION_AUDIT) in each attestation.
    let mut ev = c.ev.clone();
    ev.kek.certify.attest[4..6].copy_from_slice(&0x8016u16.to_be_bytes());
    assert!(matches!(
        check(&c, &ev),
        Err(VerifyError::AttestType {
            what: "KEK certify",
            expected: "TPM_ST_ATTEST_CERTIFY",
            found: 0x8016
        })
    ));
    let mut ev = c.ev.clone();
    ev.quote.attest[4..6].copy_from_slice(&0x8016u16.to_be_bytes());
    assert!(matches!(
        check(&c, &ev),
        Err(VerifyError::AttestType {
            what: "quote",
            expected: "TPM_ST_ATTEST_QUOTE",
            found: 0x8016
        })
    ));
    // Another invalid field (clockInfo.safe = 2) is malformed, not a type problem.
    let mut ev = c.ev.clone();
    let parsed = byok_protocol::TpmsAttest::parse(&c.ev.kek.certify.attest).unwrap();
    let safe = 4 + 2 + 2 + parsed.qualified_signer.len() + 2 + parsed.extra_data.len() + 8 + 4 + 4;
    ev.kek.certify.attest[safe] = 2;
    assert!(matches!(
        check(&c, &ev),
        Err(VerifyError::Malformed {
            field: "KEK certify",
            ..
        })
    ));
    let mut ev = c.ev.clone();
    ev.quote.attest[0] ^= 0x80;
    assert!(matches!(
        check(&c, &ev),
        Err(VerifyError::AttestMagic { what: "quote", .. })
    ));

    // A KEK public area that is not the certified object (the AK's, the other world's KEK).
    let mut ev = c.ev.clone();
    ev.kek.public = c.ev.ak.public.clone();
    assert!(matches!(
        check(&c, &ev),
        Err(VerifyError::CertifiedNameMismatch)
    ));
    let mut ev = c.ev.clone();
    ev.kek.public = other_world.ev.kek.public.clone();
    assert!(matches!(
        check(&c, &ev),
        Err(VerifyError::CertifiedNameMismatch)
    ));

    // Certify and quote made for another nonce (from evidence with another nonce).
    let mut ev = other_world.ev.clone();
    ev.nonce = c.ev.nonce.clone();
    ev.world = "eu".parse().unwrap();
    let mut opts = c.opts.clone();
    opts.world = None;
    let r = verify_evidence(&ev, &c.store, &opts).map(|_| ());
    assert!(
        matches!(
            r,
            Err(VerifyError::NonceMismatch {
                what: "KEK certify"
            })
        ),
        "{r:?}"
    );
    let n2 = nonce();
    let again = work.path().join("again.evidence");
    a.evidence("eu", &n2, &again);
    let again = Evidence::from_cbor(&std::fs::read(&again).unwrap()).unwrap();
    let mut ev = c.ev.clone();
    ev.quote.attest = again.quote.attest.clone();
    ev.quote.signature = again.quote.signature.clone();
    let r = check(&c, &ev);
    assert!(
        matches!(r, Err(VerifyError::NonceMismatch { what: "quote" })),
        "{r:?}"
    );

    // Attestations signed by another AK (the other world's), the AK swapped in too.
    let mut ev = c.ev.clone();
    ev.ak.public = other_world.ev.ak.public.clone();
    assert!(matches!(
        check(&c, &ev),
        Err(VerifyError::SignatureInvalid {
            what: "KEK certify"
        })
    ));

    // The EK public of another TPM beside this TPM's certificate.
    let mut ev = c.ev.clone();
    ev.ek.public = other_tpm.ev.ek.public.clone();
    assert!(matches!(check(&c, &ev), Err(VerifyError::EkPublicMismatch)));
    // Another TPM's EK certificate and EK: the AK's qualified name no longer
    // chains to that EK.
    let mut ev = c.ev.clone();
    ev.ek = other_tpm.ev.ek.clone();
    let mut c2 = Case {
        ev: ev.clone(),
        opts: c.opts.clone(),
        store: other_tpm.store.clone(),
    };
    c2.store.anchors.extend(c.store.anchors.clone());
    assert!(matches!(
        check(&c2, &ev),
        Err(VerifyError::QualifiedSignerMismatch {
            what: "KEK certify"
        })
    ));
    // Another CA's roots.
    let foreign_roots = Case {
        ev: c.ev.clone(),
        opts: c.opts.clone(),
        store: other_tpm.store.clone(),
    };
    assert!(matches!(
        check(&foreign_roots, &c.ev),
        Err(VerifyError::EkChainUntrusted { .. })
    ));

    // PCRs: a value changed, one left out, one added, a short value.
    let mut ev = c.ev.clone();
    ev.quote.pcrs.get_mut(&HashAlg::Sha256).unwrap().remove(&7);
    assert!(matches!(
        check(&c, &ev),
        Err(VerifyError::PcrSelectionMismatch { quoted, listed })
            if quoted == "sha256:0,1,2,3,4,5,6,7" && listed == "sha256:0,1,2,3,4,5,6"
    ));
    // An extra bank listed beside the quoted one.
    let mut ev = c.ev.clone();
    let extra: std::collections::BTreeMap<u32, ByteBuf> =
        [(0u32, ByteBuf::from(vec![0u8; 20]))].into_iter().collect();
    ev.quote.pcrs.insert(HashAlg::Sha1, extra);
    assert!(matches!(
        check(&c, &ev),
        Err(VerifyError::PcrSelectionMismatch { .. })
    ));
    let mut ev = c.ev.clone();
    ev.quote
        .pcrs
        .get_mut(&HashAlg::Sha256)
        .unwrap()
        .insert(9, ByteBuf::from(vec![0u8; 32]));
    assert!(matches!(
        check(&c, &ev),
        Err(VerifyError::PcrSelectionMismatch { .. })
    ));
    let mut ev = c.ev.clone();
    ev.quote
        .pcrs
        .get_mut(&HashAlg::Sha256)
        .unwrap()
        .get_mut(&0)
        .unwrap()
        .pop();
    assert!(matches!(
        check(&c, &ev),
        Err(VerifyError::PcrValueLength { index: 0, .. })
    ));
    let mut ev = c.ev.clone();
    let bank = ev.quote.pcrs.remove(&HashAlg::Sha256).unwrap();
    ev.quote.pcrs.insert(HashAlg::Sha1, bank);
    assert!(matches!(
        check(&c, &ev),
        Err(VerifyError::PcrSelectionMismatch { .. })
    ));

    // World: asked for another; the unsigned world field rewritten.
    let mut opts = c.opts.clone();
    opts.world = Some("us".parse().unwrap());
    assert!(matches!(
        verify_evidence(&c.ev, &c.store, &opts),
        Err(VerifyError::WorldMismatch { .. })
    ));
    let mut ev = c.ev.clone();
    ev.world = "us".parse().unwrap();
    assert!(matches!(
        verify_evidence(&ev, &c.store, &opts),
        Err(VerifyError::KekWorldMismatch { .. })
    ));

    // Expired: verification as of a time after the certificates' validity.
    let mut opts = c.opts.clone();
    opts.now = SystemTime::UNIX_EPOCH;
    assert!(matches!(
        verify_evidence(&c.ev, &c.store, &opts),
        Err(VerifyError::CertificateNotValidNow { .. })
    ));
}

#[test]
fn agent_quote_passes_tpm2_checkquote() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let c = case(&host, "eu", &work);
    let w = work.path();
    std::fs::write(w.join("ak.pub"), &c.ev.ak.public).unwrap();
    std::fs::write(w.join("quote.msg"), &c.ev.quote.attest).unwrap();
    std::fs::write(w.join("quote.sig"), &c.ev.quote.signature).unwrap();
    let run = |msg: &str| {
        assert_cmd::Command::new("tpm2_checkquote")
            .args([
                "-u",
                "ak.pub",
                "-m",
                msg,
                "-s",
                "quote.sig",
                "-g",
                "sha256",
                "-q",
                &hex::encode(&c.ev.nonce),
            ])
            .current_dir(w)
            .env("TSS2_LOG", "all+none")
            .assert()
    };
    run("quote.msg").success();
    let mut forged = c.ev.quote.attest.to_vec();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    std::fs::write(w.join("forged.msg"), forged).unwrap();
    run("forged.msg").failure();
}

#[test]
fn ecc_p384_ek_evidence_verifies_and_another_ek_key_is_refused() {
    // A TPM whose only EK certificate is ECC: TPM A without its RSA EK.
    let host = Host::new(tpm_a());
    host.tpm2("tpm2_nvundefine")
        .args(["-C", "p", "0x01c00002"])
        .assert()
        .success();
    host.tpm2("tpm2_evictcontrol")
        .args(["-C", "o", "-c", "0x81010001"])
        .assert()
        .success();
    let work = TempDir::new().unwrap();
    let c = case(&host, "eu", &work);
    let ek = byok_protocol::public::TpmtPublic::parse_tpm2b(&c.ev.ek.public).unwrap();
    assert_eq!(ek.describe_key(), "ECC NIST P-384");
    check(&c, &c.ev).expect("P-384 EK evidence verifies");
    // The EK public's x coordinate changed: not the certified key.
    let mut ev = c.ev.clone();
    let last = ev.ek.public.len() - 60;
    ev.ek.public[last] ^= 1;
    let r = check(&c, &ev);
    assert!(matches!(r, Err(VerifyError::EkPublicMismatch)), "{r:?}");
}
