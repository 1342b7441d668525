//! Certificate path checks against chains made by OpenSSL: issuers that are
//! not CAs, an issuer without keyCertSign, an expired intermediate, names
//! that match with the wrong key.

use byok_verifier::certs::{parse_certificates, verify_path, Cert, TrustStore};
use byok_verifier::error::VerifyError;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};
use tempfile::TempDir;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
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

// Long on purpose: one table of cases.
/// root (CA) -> intermediate (extensions from `ext`, valid `days`) -> leaf.
fn chain(dir: &Path, tag: &str, ext: &str, days: &str) -> (Cert, Cert, Cert) {
    let f = |s: &str| format!("{tag}-{s}");
    std::fs::write(dir.join(f("int.ext")), ext).unwrap();
    std::fs::write(
        dir.join("leaf.ext"),
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,keyEncipherment\n",
    )
    .unwrap();
    openssl(
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
            &f("root.key"),
            "-out",
            &f("root.pem"),
            "-subj",
            &format!("/CN={tag} Root"),
            "-days",
            "3650",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &f("int.key"),
            "-out",
            &f("int.csr"),
            "-subj",
            &format!("/CN={tag} Intermediate"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &f("int.csr"),
            "-CA",
            &f("root.pem"),
            "-CAkey",
            &f("root.key"),
            "-CAcreateserial",
            "-out",
            &f("int.pem"),
            "-days",
            days,
            "-sha256",
            "-extfile",
            &f("int.ext"),
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &f("leaf.key"),
            "-out",
            &f("leaf.csr"),
            "-subj",
            &format!("/CN={tag} EK"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &f("leaf.csr"),
            "-CA",
            &f("int.pem"),
            "-CAkey",
            &f("int.key"),
            "-CAcreateserial",
            "-out",
            &f("leaf.pem"),
            "-days",
            "3650",
            "-sha256",
            "-extfile",
            "leaf.ext",
        ],
    );
    (
        load(dir, &f("root.pem")),
        load(dir, &f("int.pem")),
        load(dir, &f("leaf.pem")),
    )
}

const CA_EXT: &str = "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n";

// Long on purpose: one table of cases, each checked the same way.
#[test]
fn issuer_constraints_and_validity() {
    let work = TempDir::new().unwrap();
    let d = work.path();
    // A minute ahead: certificates made this second are valid from this second.
    let now = SystemTime::now() + Duration::from_secs(60);
    let store = |root: &Cert, int: &Cert| TrustStore {
        anchors: vec![root.clone()],
        intermediates: vec![int.clone()],
        ..Default::default()
    };

    // A proper chain verifies.
    let (root, int, leaf) = chain(d, "good", CA_EXT, "3650");
    assert_eq!(
        verify_path(&leaf, &[], &store(&root, &int), now)
            .unwrap()
            .len(),
        3
    );
    // The intermediate shipped with the evidence instead of configured.
    let only_root = TrustStore {
        anchors: vec![root.clone()],
        ..Default::default()
    };
    assert_eq!(
        verify_path(&leaf, std::slice::from_ref(&int), &only_root, now)
            .unwrap()
            .len(),
        3
    );

    // Issuer that is not a CA.
    let (root, int, leaf) = chain(
        d,
        "notca",
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,keyCertSign\n",
        "3650",
    );
    assert!(matches!(
        verify_path(&leaf, &[], &store(&root, &int), now),
        Err(VerifyError::IssuerNotCa { .. })
    ));
    // Issuer with no basicConstraints at all.
    let (root, int, leaf) = chain(d, "nobc", "keyUsage=critical,keyCertSign\n", "3650");
    assert!(matches!(
        verify_path(&leaf, &[], &store(&root, &int), now),
        Err(VerifyError::IssuerNotCa { .. })
    ));
    // A CA without keyCertSign.
    let (root, int, leaf) = chain(
        d,
        "noku",
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,digitalSignature\n",
        "3650",
    );
    assert!(matches!(
        verify_path(&leaf, &[], &store(&root, &int), now),
        Err(VerifyError::IssuerNotCa { .. })
    ));

    // An expired intermediate (valid one day; checked as of three days later).
    let (root, int, leaf) = chain(d, "expired", CA_EXT, "1");
    let later = now + Duration::from_secs(3 * 86400);
    let r = verify_path(&leaf, &[], &store(&root, &int), later);
    assert!(
        matches!(&r, Err(VerifyError::CertificateNotValidNow { subject, .. }) if subject.contains("expired Intermediate")),
        "{r:?}"
    );
    // ... while the same chain verifies today.
    verify_path(&leaf, &[], &store(&root, &int), now).unwrap();
    // Leaf and anchor validity too: all expired in 20 years.
    let far = now + Duration::from_secs(20 * 365 * 86400);
    assert!(matches!(
        verify_path(&leaf, &[], &store(&root, &int), far),
        Err(VerifyError::CertificateNotValidNow { .. })
    ));

    // Same names, other keys: a second "good" chain's root does not vouch for the first.
    let (_, int1, leaf1) = chain(d, "twin", CA_EXT, "3650");
    let (root2, _, _) = chain(d, "twin", CA_EXT, "3650");
    let r = verify_path(&leaf1, &[], &store(&root2, &int1), now);
    assert!(
        matches!(&r, Err(VerifyError::EkChainUntrusted { reason, .. }) if reason.contains("signature does not verify")),
        "{r:?}"
    );
    // No certificate with the issuer's name at all.
    let (root3, _, _) = chain(d, "other", CA_EXT, "3650");
    let r = verify_path(
        &leaf,
        &[],
        &TrustStore {
            anchors: vec![root3],
            ..Default::default()
        },
        now,
    );
    assert!(
        matches!(&r, Err(VerifyError::EkChainUntrusted { reason, .. }) if reason.contains("no configured root or intermediate has the issuer's name")),
        "{r:?}"
    );
}
