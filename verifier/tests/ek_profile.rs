//! The TCG EK certificate profile on the leaf, and the path rules OpenSSL
//! applies: certificates made by OpenSSL that are not EK certificates (a CA,
//! a signing-only key usage, a TLS server EKU, an unknown critical
//! extension, an RSA-1024 key), a path that breaks its root's
//! pathLenConstraint, and nameConstraints. Each is refused with its named
//! error by the library, by `ek-cert` and by `verify` (the bogus leaf in
//! otherwise genuine evidence, signed by the swtpm host's own CA); OpenSSL
//! itself refuses the unknown critical extension and the path length.

use byok_protocol::formats::{Document, Evidence};
use byok_verifier::certs::{parse_certificates, verify_ek_path, verify_path, Cert, TrustStore};
use byok_verifier::error::VerifyError;
use predicates::str::contains;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};
use tempfile::TempDir;

fn openssl(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn ok(dir: &Path, args: &[&str]) {
    let out = openssl(dir, args);
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn load(dir: &Path, f: &str) -> Cert {
    parse_certificates(&std::fs::read(dir.join(f)).unwrap())
        .unwrap()
        .remove(0)
}

/// A self-signed root with `bc` as its basicConstraints.
fn root(dir: &Path, name: &str, bc: &str) {
    ok(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-subj",
            &format!("/CN={name}"),
            "-days",
            "3650",
            "-addext",
            &format!("basicConstraints=critical,{bc}"),
            "-addext",
            "keyUsage=critical,keyCertSign",
        ],
    );
}

/// A certificate for a new `key` ("rsa:2048", "ec" …) named `name`, issued by
/// `ca` (its .pem and .key in `dir`) with the extensions `ext`.
fn issue(dir: &Path, name: &str, key: &str, ca: &str, ext: &str) {
    std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
    let mut req = vec!["req", "-newkey", key, "-nodes"];
    // "ec" is P-256; "rsa:N" and "ed25519" need no parameters.
    if key == "ec" {
        req.extend(["-pkeyopt", "ec_paramgen_curve:P-256"]);
    }
    let (k, csr) = (format!("{name}.key"), format!("{name}.csr"));
    let subj = format!("/CN={name}");
    req.extend(["-keyout", &k, "-out", &csr, "-subj", &subj]);
    ok(dir, &req);
    ok(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "3650",
            "-sha256",
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

const CA: &str = "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n";
const EK: &str = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,keyEncipherment\nextendedKeyUsage=2.23.133.8.1\n";

/// A bogus leaf: its name, key, extensions, and the error it must give.
type Bogus = (&'static str, &'static str, String, fn(&VerifyError) -> bool);

/// The bogus leaves.
fn bogus() -> Vec<Bogus> {
    vec![
        (
            "ca-leaf",
            "rsa:2048",
            "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyEncipherment\n".into(),
            |e| matches!(e, VerifyError::EkCertificateProfile { problem, .. } if problem.contains("CA certificate")),
        ),
        (
            "sign-only",
            "rsa:2048",
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n".into(),
            |e| matches!(e, VerifyError::EkCertificateProfile { problem, .. } if problem.contains("keyEncipherment")),
        ),
        (
            "ecc-no-agreement",
            "ec",
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n".into(),
            |e| matches!(e, VerifyError::EkCertificateProfile { problem, .. } if problem.contains("keyAgreement")),
        ),
        (
            "tls-server",
            "rsa:2048",
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,keyEncipherment\nextendedKeyUsage=serverAuth\n".into(),
            |e| matches!(e, VerifyError::EkCertificateProfile { problem, .. } if problem.contains("2.23.133.8.1")),
        ),
        (
            "unknown-critical",
            "rsa:2048",
            format!("{EK}1.2.3.4.5=critical,ASN1:NULL\n"),
            |e| matches!(e, VerifyError::CertificateCriticalExtension { oid, .. } if oid == "1.2.3.4.5"),
        ),
        (
            "rsa1024",
            "rsa:1024",
            EK.into(),
            |e| matches!(e, VerifyError::EkKeyTooWeak { key, .. } if key == "RSA-1024"),
        ),
    ]
}

// Long on purpose: one table of cases, each checked the same way.
#[test]
fn non_ek_leaves_and_broken_paths_are_refused() {
    let work = TempDir::new().unwrap();
    let d = work.path();
    let now = SystemTime::now() + Duration::from_secs(60);
    root(d, "root", "CA:TRUE");
    issue(d, "int", "rsa:2048", "root", CA);
    let store = TrustStore {
        anchors: vec![load(d, "root.pem")],
        intermediates: vec![load(d, "int.pem")],
        ..Default::default()
    };
    // A leaf of the TCG profile passes, RSA and ECC.
    issue(d, "ek", "rsa:2048", "int", EK);
    verify_ek_path(&load(d, "ek.pem"), &[], &store, now).expect("an EK certificate");
    issue(
        d,
        "ek-ecc",
        "ec",
        "int",
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,keyAgreement\n",
    );
    verify_ek_path(&load(d, "ek-ecc.pem"), &[], &store, now).expect("an ECC EK certificate");
    for (name, key, ext, expect) in bogus() {
        issue(d, name, key, "int", &ext);
        let r = verify_ek_path(&load(d, &format!("{name}.pem")), &[], &store, now);
        assert!(r.as_ref().is_err_and(expect), "{name}: {r:?}");
    }
    // OpenSSL refuses the unknown critical extension too.
    let out = openssl(
        d,
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "int.pem",
            "unknown-critical.pem",
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("unhandled critical extension")
            || String::from_utf8_lossy(&out.stderr).contains("unhandled critical extension")
    );

    // A root that allows no intermediate CA (pathlen:0) above an intermediate.
    root(d, "root0", "CA:TRUE,pathlen:0");
    issue(d, "int0", "rsa:2048", "root0", CA);
    issue(d, "ek0", "rsa:2048", "int0", EK);
    let store0 = TrustStore {
        anchors: vec![load(d, "root0.pem")],
        intermediates: vec![load(d, "int0.pem")],
        ..Default::default()
    };
    let r = verify_ek_path(&load(d, "ek0.pem"), &[], &store0, now);
    assert!(
        matches!(&r, Err(VerifyError::PathLengthExceeded { path_len: 0, below: 1, subject }) if subject == "CN=root0"),
        "{r:?}"
    );
    let out = openssl(
        d,
        &[
            "verify",
            "-CAfile",
            "root0.pem",
            "-untrusted",
            "int0.pem",
            "ek0.pem",
        ],
    );
    assert!(
        !out.status.success(),
        "OpenSSL accepts the broken path length"
    );
    // Directly under it, it is fine.
    issue(d, "ek00", "rsa:2048", "root0", EK);
    verify_ek_path(&load(d, "ek00.pem"), &[], &store0, now).expect("no intermediate");
    // An intermediate with pathlen:0 above another intermediate.
    issue(
        d,
        "int-p0",
        "rsa:2048",
        "root",
        "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign\n",
    );
    issue(d, "int-below", "rsa:2048", "int-p0", CA);
    issue(d, "ek-deep", "rsa:2048", "int-below", EK);
    let deep = TrustStore {
        anchors: vec![load(d, "root.pem")],
        intermediates: vec![load(d, "int-p0.pem"), load(d, "int-below.pem")],
        ..Default::default()
    };
    let r = verify_ek_path(&load(d, "ek-deep.pem"), &[], &deep, now);
    assert!(
        matches!(&r, Err(VerifyError::PathLengthExceeded { subject, .. }) if subject == "CN=int-p0"),
        "{r:?}"
    );

    // nameConstraints on an intermediate: refused, not half-evaluated.
    issue(
        d,
        "int-nc",
        "rsa:2048",
        "root",
        &format!("{CA}nameConstraints=critical,permitted;DNS:example.com\n"),
    );
    issue(d, "ek-nc", "rsa:2048", "int-nc", EK);
    let nc = TrustStore {
        anchors: vec![load(d, "root.pem")],
        intermediates: vec![load(d, "int-nc.pem")],
        ..Default::default()
    };
    let r = verify_path(&load(d, "ek-nc.pem"), &[], &nc, now);
    assert!(
        matches!(r, Err(VerifyError::NameConstraintsUnsupported { .. })),
        "{r:?}"
    );

    // A key of another type (Ed25519) is no EK key.
    issue(d, "ek-ed25519", "ed25519", "int", EK);
    let r = verify_ek_path(&load(d, "ek-ed25519.pem"), &[], &store, now);
    assert!(
        matches!(&r, Err(VerifyError::EkKeyTooWeak { key, .. }) if key.contains("1.3.101.112")),
        "{r:?}"
    );

    // A self-issued intermediate (a key rollover: the root's name, a new key,
    // signed by the root) does not count against pathLenConstraint
    // (RFC 5280 6.1.4), as OpenSSL agrees.
    ok(
        d,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "roll.key",
            "-out",
            "roll.csr",
            "-subj",
            "/CN=root0",
        ],
    );
    std::fs::write(d.join("roll.ext"), CA).unwrap();
    ok(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "roll.csr",
            "-CA",
            "root0.pem",
            "-CAkey",
            "root0.key",
            "-CAcreateserial",
            "-out",
            "roll.pem",
            "-days",
            "3650",
            "-sha256",
            "-extfile",
            "roll.ext",
        ],
    );
    issue(d, "ek-roll", "rsa:2048", "roll", EK);
    let rolled = TrustStore {
        anchors: vec![load(d, "root0.pem")],
        intermediates: vec![load(d, "roll.pem")],
        ..Default::default()
    };
    let path = verify_ek_path(&load(d, "ek-roll.pem"), &[], &rolled, now).expect("self-issued");
    assert_eq!(path.len(), 3, "{path:?}");
    let out = openssl(
        d,
        &[
            "verify",
            "-CAfile",
            "root0.pem",
            "-untrusted",
            "roll.pem",
            "ek-roll.pem",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The policy may raise the RSA minimum.
    let strict = TrustStore {
        min_rsa_bits: 3072,
        ..store.clone()
    };
    let r = verify_ek_path(&load(d, "ek.pem"), &[], &strict, now);
    assert!(matches!(r, Err(VerifyError::EkKeyTooWeak { .. })), "{r:?}");

    // ek-cert: a CA certificate is not an EK certificate.
    verifier()
        .args(["ek-cert", "--cert", "root.pem", "--roots", "root.pem"])
        .current_dir(d)
        .assert()
        .code(10)
        .stderr(contains(
            "is not a TPM EK certificate: it is a CA certificate",
        ));
    verifier()
        .args([
            "ek-cert",
            "--cert",
            "ek.pem",
            "--roots",
            "root.pem",
            "--intermediates",
            "int.pem",
        ])
        .current_dir(d)
        .assert()
        .success()
        .stdout(contains("RSA-2048 EK certificate, SHA-256"));
}

fn verifier() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("byok-verifier").unwrap()
}

/// tests/fixtures/ (tpm-setup/fixtures.sh): real evidence and its host's CA.
fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name)
}

#[test]
fn verify_refuses_evidence_with_a_non_ek_certificate_under_the_hosts_ca() {
    let work = TempDir::new().unwrap();
    let d = work.path();
    let n = "00112233445566778899aabbccddeeff"; // the fixtures' evidence nonce
    let genuine = fixture("a-eu.evidence");
    let ca_bundle = fixture("a-ca.pem");
    // The host's own CA (the provisioning CA's intermediate signs EK certificates).
    std::fs::copy(fixture("a-issuer.pem"), d.join("hostca.pem")).unwrap();
    std::fs::copy(fixture("a-issuer.key"), d.join("hostca.key")).unwrap();
    for (name, key, ext, expect) in bogus() {
        issue(d, name, key, "hostca", &ext);
        let mut ev = Evidence::from_cbor(&std::fs::read(&genuine).unwrap()).unwrap();
        let pem = std::fs::read(d.join(format!("{name}.pem"))).unwrap();
        ev.ek.certificate =
            serde_bytes::ByteBuf::from(parse_certificates(&pem).unwrap()[0].der().to_vec());
        let forged = d.join(format!("{name}.evidence"));
        std::fs::write(&forged, ev.to_cbor()).unwrap();
        let out = verifier()
            .args(["verify", "--nonce", n, "--evidence"])
            .arg(&forged)
            .arg("--roots")
            .arg(&ca_bundle)
            .assert()
            .code(10);
        let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
        // The same check, through the library, names the same variant.
        let store = TrustStore {
            anchors: byok_verifier::certs::load_certificates(
                &ca_bundle,
                byok_verifier::certs::CertSource::Roots,
            )
            .unwrap()
            .certs,
            ..Default::default()
        };
        let r = byok_verifier::verify::verify_evidence(
            &ev,
            &store,
            &byok_verifier::verify::Options {
                nonce: hex::decode(n).unwrap(),
                world: None,
                now: SystemTime::now(),
                policy: Default::default(),
            },
        );
        assert!(r.as_ref().is_err_and(expect), "{name}: {r:?} ({stderr})");
    }
}
