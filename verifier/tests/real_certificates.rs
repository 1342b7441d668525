//! Real TPM manufacturer certificates (../shared/testdata, see its README),
//! through the library and through `byok-verifier ek-cert`. Skipped with a
//! message where that folder is absent.

use assert_cmd::Command;
use byok_verifier::certs::{
    parse_certificates, tpm_identity, verify_ek_path, verify_path, Cert, TrustStore,
};
use byok_verifier::error::VerifyError;
use std::path::PathBuf;
use std::time::SystemTime;

/// ../shared/testdata (or $BYOK_TESTDATA). Absent, the tests fail with a
/// clear message rather than pass without checking anything; a machine that
/// truly has no copy sets BYOK_SKIP_TESTDATA=1 to skip them, by choice.
fn testdata() -> Option<PathBuf> {
    let p = std::env::var_os("BYOK_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata"));
    if p.join("ek-ca").is_dir() {
        return Some(p);
    }
    if std::env::var_os("BYOK_SKIP_TESTDATA").is_some_and(|v| v == "1") {
        eprintln!("skipping (BYOK_SKIP_TESTDATA=1): {} is absent", p.display());
        return None;
    }
    panic!(
        "{} is absent: the real TPM certificates these tests check live there \
         (a checkout beside ../shared, or BYOK_TESTDATA=DIR); \
         set BYOK_SKIP_TESTDATA=1 to skip these tests deliberately",
        p.display()
    );
}

fn cert(d: &std::path::Path, p: &str) -> Cert {
    parse_certificates(&std::fs::read(d.join(p)).unwrap())
        .unwrap()
        .remove(0)
}

fn all_cas(d: &std::path::Path) -> Vec<Cert> {
    byok_verifier::certs::load_certificates(
        &d.join("ek-ca"),
        byok_verifier::certs::CertSource::Roots,
    )
    .unwrap()
    .certs
}

#[test]
fn every_manufacturer_ca_certificate_parses() {
    let Some(d) = testdata() else { return };
    let mut n = 0;
    for e in std::fs::read_dir(d.join("ek-ca")).unwrap() {
        let p = e.unwrap().path();
        let certs = parse_certificates(&std::fs::read(&p).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert_eq!(certs.len(), 1, "{}", p.display());
        n += 1;
    }
    assert_eq!(n, 51);
}

#[test]
fn stm_rsa_ek_verifies_to_the_stm_root_and_to_globalsign_above_it() {
    let Some(d) = testdata() else { return };
    let ek = cert(&d, "ek-real/stm-ek-rsa-by-STM_RSA_05I-extra-data.pem");
    let now = SystemTime::now();
    // The STM root as the trust anchor (it is not self-signed: GlobalSign issued it).
    let stm = TrustStore {
        anchors: vec![cert(&d, "ek-ca/STM_RSA_RT.pem")],
        intermediates: all_cas(&d),
        ..Default::default()
    };
    let path = verify_ek_path(&ek, &[], &stm, now).unwrap();
    assert_eq!(path.len(), 3, "{path:?}");
    assert!(path[1].contains("STM TPM EK Intermediate CA 05"));
    assert!(path[2].contains("STM TPM EK Root CA"));
    // The GlobalSign root as anchor, the STM root as an intermediate.
    let gs = TrustStore {
        anchors: vec![cert(&d, "ek-ca/GS_TPM_RT.pem")],
        intermediates: all_cas(&d),
        ..Default::default()
    };
    let path = verify_ek_path(&ek, &[], &gs, now).unwrap();
    assert!(
        path.last()
            .unwrap()
            .contains("GlobalSign Trusted Platform Module Root CA"),
        "{path:?}"
    );
    // The SAN names the TPM; the TCG EK EKU is there.
    let id = tpm_identity(&ek);
    assert_eq!(id.manufacturer.as_deref(), Some("id:53544D20"));
    assert_eq!(id.model.as_deref(), Some("ST33HTPHAHB4"));
    assert_eq!(id.version.as_deref(), Some("id:00490004"));
    assert!(id.ek_eku);
    // Another manufacturer's root: untrusted.
    for other in [
        "ek-ca/IFX_RSA_RT.pem",
        "ek-ca/INTEL_RT.pem",
        "ek-ca/STM_ECC_01RT.pem",
    ] {
        let wrong = TrustStore {
            anchors: vec![cert(&d, other)],
            intermediates: Vec::new(),
            ..Default::default()
        };
        let r = verify_ek_path(&ek, &[], &wrong, now);
        assert!(
            matches!(r, Err(VerifyError::EkChainUntrusted { .. })),
            "{other}: {r:?}"
        );
    }
    // Without its intermediate: untrusted.
    let r = verify_ek_path(
        &ek,
        &[],
        &TrustStore {
            anchors: vec![cert(&d, "ek-ca/STM_RSA_RT.pem")],
            ..Default::default()
        },
        now,
    );
    assert!(matches!(r, Err(VerifyError::EkChainUntrusted { .. })));
}

#[test]
fn stm_ecc_ek_verifies_to_its_root() {
    let Some(d) = testdata() else { return };
    let ek = cert(&d, "ek-real/stm-ek-ecc-by-STM_ECC_01I.pem");
    let store = TrustStore {
        anchors: vec![cert(&d, "ek-ca/STM_ECC_01RT.pem")],
        intermediates: all_cas(&d),
        ..Default::default()
    };
    let path = verify_ek_path(&ek, &[], &store, SystemTime::now()).unwrap();
    assert!(path.last().unwrap().contains("STM TPM ECC Root CA 01"));
    assert_eq!(byok_verifier::certs::key_description(&ek), "EC P-256");
}

#[test]
fn nuvoton_root_with_unsorted_set_is_accepted_as_openssl_does() {
    // Its RDN SET is not in DER order; its self-signature is checked over the
    // bytes as signed, so it verifies (a re-encoding would not).
    let Some(d) = testdata() else { return };
    let root = cert(&d, "ek-real/nuvoton-root-2110-ecc-malformed-set-order.pem");
    let store = TrustStore {
        anchors: vec![root.clone()],
        ..Default::default()
    };
    let path = verify_path(&root, &[], &store, SystemTime::now()).unwrap();
    assert_eq!(path.len(), 1);
    assert!(path[0].contains("Nuvoton TPM Root CA 2110"));
    // Byte-identical to the copy in ek-ca, and exactly the PEM's DER.
    assert_eq!(root.der(), cert(&d, "ek-ca/NUVO_2110.pem").der());
    let pem =
        std::fs::read_to_string(d.join("ek-real/nuvoton-root-2110-ecc-malformed-set-order.pem"))
            .unwrap();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    use base64::Engine as _;
    assert_eq!(
        root.der(),
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap()
            .as_slice()
    );
}

#[test]
fn sha1_signed_manufacturer_certificates_need_allow_sha1() {
    let Some(d) = testdata() else { return };
    let intermediate = cert(&d, "ek-ca/IFX_RSA_05I.pem");
    let mut store = TrustStore {
        anchors: vec![cert(&d, "ek-ca/IFX_RSA_RT.pem")],
        ..Default::default()
    };
    let r = verify_path(&intermediate, &[], &store, SystemTime::now());
    assert!(
        matches!(r, Err(VerifyError::CertificateSha1 { .. })),
        "{r:?}"
    );
    store.allow_sha1 = true;
    verify_path(&intermediate, &[], &store, SystemTime::now()).unwrap();
}

#[test]
fn ek_cert_command() {
    let Some(d) = testdata() else { return };
    let bin = || Command::cargo_bin("byok-verifier").unwrap();
    bin()
        .args(["ek-cert", "--json", "--cert"])
        .arg(d.join("ek-real/stm-ek-rsa-by-STM_RSA_05I-extra-data.pem"))
        .arg("--roots")
        .arg(d.join("ek-ca/STM_RSA_RT.pem"))
        .arg("--intermediates")
        .arg(d.join("ek-ca"))
        .assert()
        .success()
        .stdout(predicates::str::contains(
            "\"tpm_manufacturer\":\"id:53544D20\"",
        ))
        .stdout(predicates::str::contains("\"key\":\"RSA-2048\""));
    bin()
        .args(["ek-cert", "--cert"])
        .arg(d.join("ek-real/stm-ek-rsa-by-STM_RSA_05I-extra-data.pem"))
        .arg("--roots")
        .arg(d.join("ek-ca/INTEL_RT.pem"))
        .arg("--intermediates")
        .arg(d.join("ek-ca"))
        .assert()
        .code(10)
        .stderr(predicates::str::contains(
            "EK certificate chain is not trusted",
        ));
}

/// An EK's public area (a restricted decryption key of the endorsement
/// hierarchy's template) with these parameters and key.
fn ek_area(
    object_type: u16,
    params: byok_protocol::public::PublicParams,
    unique: byok_protocol::public::PublicId,
) -> byok_protocol::public::TpmtPublic {
    use byok_protocol::tpm::{alg, attr};
    byok_protocol::public::TpmtPublic::build(
        object_type,
        alg::SHA256,
        attr::FIXED_TPM
            | attr::FIXED_PARENT
            | attr::SENSITIVE_DATA_ORIGIN
            | attr::ADMIN_WITH_POLICY
            | attr::RESTRICTED
            | attr::DECRYPT,
        vec![],
        params,
        unique,
    )
}

#[test]
fn ecc_ek_public_area_must_be_the_certified_point() {
    use byok_protocol::public::{PublicId, PublicParams, Scheme, SymDef};
    use byok_protocol::tpm::{alg, curve};
    use byok_verifier::check::ek::{check_ek_matches_certificate, CertifiedKey};
    use der::Encode;
    let Some(d) = testdata() else { return };
    let ek = cert(&d, "ek-real/stm-ek-ecc-by-STM_ECC_01I.pem");
    let spki = ek
        .cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .unwrap();
    let point = ek
        .cert
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes()
        .to_vec();
    assert_eq!(point.len(), 65);
    let public = |x: &[u8], y: &[u8], c: u16| {
        ek_area(
            alg::ECC,
            PublicParams::Ecc {
                symmetric: SymDef::AES_128_CFB,
                scheme: Scheme::NULL,
                curve: c,
                kdf: Scheme::NULL,
            },
            PublicId::Ecc {
                x: x.to_vec(),
                y: y.to_vec(),
            },
        )
    };
    check_ek_matches_certificate(
        &public(&point[1..33], &point[33..], curve::NIST_P256),
        &CertifiedKey::from_spki(&spki),
    )
    .unwrap();
    let mut other = point.clone();
    other[64] ^= 1;
    assert!(check_ek_matches_certificate(
        &public(&other[1..33], &other[33..], curve::NIST_P256),
        &CertifiedKey::from_spki(&spki)
    )
    .is_err());
    // The same coordinates on another curve.
    assert!(check_ek_matches_certificate(
        &public(&point[1..33], &point[33..], curve::NIST_P384),
        &CertifiedKey::from_spki(&spki)
    )
    .is_err());
    // An RSA EK certificate against this ECC public area.
    let rsa = cert(&d, "ek-real/stm-ek-rsa-by-STM_RSA_05I-extra-data.pem");
    let rsa_spki = rsa
        .cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .unwrap();
    assert!(check_ek_matches_certificate(
        &public(&point[1..33], &point[33..], curve::NIST_P256),
        &CertifiedKey::from_spki(&rsa_spki)
    )
    .is_err());
}

#[test]
fn self_signed_manufacturer_roots_verify_their_own_signatures() {
    // Every algorithm the manufacturers use: RSA with SHA-1/256/384, ECDSA
    // P-256/P-384 with SHA-256/384.
    let Some(d) = testdata() else { return };
    let mut checked = 0;
    for c in all_cas(&d) {
        if c.cert.tbs_certificate.subject != c.cert.tbs_certificate.issuer {
            continue;
        }
        let store = TrustStore {
            anchors: vec![c.clone()],
            allow_sha1: true,
            ..Default::default()
        };
        verify_path(&c, &[], &store, SystemTime::now())
            .unwrap_or_else(|e| panic!("{}: {e}", byok_verifier::certs::subject(&c)));
        // One flipped signature bit is refused.
        let mut der = c.der().to_vec();
        let last = der.len() - 1;
        der[last] ^= 1;
        let bad = Cert::from_der(&der).unwrap();
        let store = TrustStore {
            anchors: vec![bad.clone()],
            allow_sha1: true,
            ..Default::default()
        };
        assert!(verify_path(&bad, &[], &store, SystemTime::now()).is_err());
        checked += 1;
    }
    assert!(checked >= 10, "{checked}");
}

#[test]
fn rsa_ek_public_area_must_be_the_certified_key() {
    use byok_protocol::public::{PublicId, PublicParams, Scheme, SymDef};
    use byok_protocol::tpm::alg;
    use byok_verifier::check::ek::{check_ek_matches_certificate, CertifiedKey};
    use der::{Decode, Encode};
    let Some(d) = testdata() else { return };
    let ek = cert(&d, "ek-real/stm-ek-rsa-by-STM_RSA_05I-extra-data.pem");
    let info = &ek.cert.tbs_certificate.subject_public_key_info;
    let certified = CertifiedKey::from_spki(&info.to_der().unwrap());
    let key = pkcs1::RsaPublicKey::from_der(info.subject_public_key.raw_bytes()).unwrap();
    // The TPM's modulus is the key's size exactly; DER may add a zero byte.
    let n: Vec<u8> = key
        .modulus
        .as_bytes()
        .iter()
        .copied()
        .skip_while(|b| *b == 0)
        .collect();
    assert_eq!(n.len(), 256);
    assert_eq!(key.public_exponent.as_bytes(), [1, 0, 1]);
    let public = |n: &[u8], exponent: u32| {
        ek_area(
            alg::RSA,
            PublicParams::Rsa {
                symmetric: SymDef::AES_128_CFB,
                scheme: Scheme::NULL,
                key_bits: 2048,
                exponent,
            },
            PublicId::Rsa(n.to_vec()),
        )
    };
    // Exponent 0 is the TPM's spelling of 65537.
    for e in [0, 65537] {
        check_ek_matches_certificate(&public(&n, e), &certified).unwrap();
    }
    let mut other = n.clone();
    other[200] ^= 1;
    assert!(check_ek_matches_certificate(&public(&other, 0), &certified).is_err());
    assert!(check_ek_matches_certificate(&public(&n, 3), &certified).is_err());
    // The ECC certificate's key is no RSA key.
    let ecc = cert(&d, "ek-real/stm-ek-ecc-by-STM_ECC_01I.pem");
    let ecc = CertifiedKey::from_spki(
        &ecc.cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .unwrap(),
    );
    assert!(check_ek_matches_certificate(&public(&n, 0), &ecc).is_err());
}
