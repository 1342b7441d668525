//! The path from a certificate to a configured trust anchor: issuer names
//! and signatures, validity, CA constraints (basicConstraints, keyCertSign,
//! pathLenConstraint), and no critical extension this verifier does not
//! understand on any certificate of it.

use super::{
    check_ek_profile, check_signature, extensions, issuer, names_equal, subject, Cert, TrustStore,
    BASIC_CONSTRAINTS, EXT_KEY_USAGE, KEY_USAGE, SUBJECT_ALT_NAME,
};
use crate::error::VerifyError;
use const_oid::ObjectIdentifier;
use der::Decode;
use std::time::SystemTime;

const MAX_DEPTH: usize = 8;

const NAME_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.30");

/// Extensions whose meaning this verifier knows, so that they may be critical:
/// the ones it checks (basicConstraints, keyUsage, extKeyUsage), the TCG EK
/// certificate's critical subjectAltName, and the ones that constrain nothing
/// it relies on (certificatePolicies, which 27 real TPM CA certificates mark
/// critical; key identifiers, CRL and AIA pointers, subject directory
/// attributes, issuerAltName). nameConstraints is known, and refused.
const KNOWN_EXTENSIONS: [ObjectIdentifier; 11] = [
    BASIC_CONSTRAINTS,
    KEY_USAGE,
    EXT_KEY_USAGE,
    SUBJECT_ALT_NAME,
    ObjectIdentifier::new_unwrap("2.5.29.32"), // certificatePolicies
    ObjectIdentifier::new_unwrap("2.5.29.35"), // authorityKeyIdentifier
    ObjectIdentifier::new_unwrap("2.5.29.14"), // subjectKeyIdentifier
    ObjectIdentifier::new_unwrap("2.5.29.31"), // cRLDistributionPoints
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.1.1"), // authorityInfoAccess
    ObjectIdentifier::new_unwrap("2.5.29.9"),  // subjectDirectoryAttributes
    ObjectIdentifier::new_unwrap("2.5.29.18"), // issuerAltName
];

fn check_validity(c: &Cert, now: SystemTime) -> Result<(), VerifyError> {
    let v = &c.cert.tbs_certificate.validity;
    let nb = v.not_before.to_system_time();
    let na = v.not_after.to_system_time();
    if now < nb || now > na {
        return Err(VerifyError::CertificateNotValidNow {
            subject: subject(c),
            not_before: v.not_before.to_string(),
            not_after: v.not_after.to_string(),
        });
    }
    Ok(())
}

/// An issuer must be a CA: basicConstraints cA = true, and keyCertSign if it has keyUsage.
fn check_ca(c: &Cert) -> Result<(), VerifyError> {
    let exts = c.cert.tbs_certificate.extensions.as_deref().unwrap_or(&[]);
    let not_ca = || VerifyError::IssuerNotCa {
        subject: subject(c),
    };
    let bc = exts
        .iter()
        .find(|e| e.extn_id == BASIC_CONSTRAINTS)
        .ok_or_else(not_ca)?;
    let bc = x509_cert::ext::pkix::BasicConstraints::from_der(bc.extn_value.as_bytes())
        .map_err(|_| not_ca())?;
    if !bc.ca {
        return Err(not_ca());
    }
    if let Some(ku) = exts.iter().find(|e| e.extn_id == KEY_USAGE) {
        let ku = x509_cert::ext::pkix::KeyUsage::from_der(ku.extn_value.as_bytes())
            .map_err(|_| not_ca())?;
        if !ku.key_cert_sign() {
            return Err(not_ca());
        }
    }
    Ok(())
}

/// No critical extension this verifier does not understand (RFC 5280 4.2),
/// and no nameConstraints.
fn check_extensions(c: &Cert) -> Result<(), VerifyError> {
    for e in extensions(c) {
        if e.extn_id == NAME_CONSTRAINTS {
            return Err(VerifyError::NameConstraintsUnsupported {
                subject: subject(c),
            });
        }
        if e.critical && !KNOWN_EXTENSIONS.contains(&e.extn_id) {
            return Err(VerifyError::CertificateCriticalExtension {
                subject: subject(c),
                oid: e.extn_id.to_string(),
            });
        }
    }
    Ok(())
}

/// The CA's pathLenConstraint, if any.
fn path_len(c: &Cert) -> Option<u8> {
    let bc = extensions(c)
        .iter()
        .find(|e| e.extn_id == BASIC_CONSTRAINTS)?;
    x509_cert::ext::pkix::BasicConstraints::from_der(bc.extn_value.as_bytes())
        .ok()?
        .path_len_constraint
}

fn is_self_issued(c: &Cert) -> bool {
    names_equal(
        &c.cert.tbs_certificate.subject,
        &c.cert.tbs_certificate.issuer,
    )
}

/// A CA with `below` intermediate CAs under it in the path respects its
/// pathLenConstraint.
fn check_path_len(ca: &Cert, below: usize) -> Result<(), VerifyError> {
    match path_len(ca) {
        Some(max) if below > usize::from(max) => Err(VerifyError::PathLengthExceeded {
            subject: subject(ca),
            path_len: max,
            below,
        }),
        _ => Ok(()),
    }
}

/// An EK certificate: the TCG EK profile on the leaf ([`check_ek_profile`]),
/// then its path to an anchor ([`verify_path`]). What `verify`, `enroll`,
/// `wrap` and `ek-cert` use.
pub fn verify_ek_path(
    leaf: &Cert,
    extra: &[Cert],
    store: &TrustStore,
    now: SystemTime,
) -> Result<Vec<String>, VerifyError> {
    check_ek_profile(leaf, store.min_rsa_bits)?;
    verify_path(leaf, extra, store, now)
}

// Long on purpose: the path-building loop (RFC 5280 6.1) with its
// constraints, kept whole so the order of the checks reads as one algorithm.
/// Build and check a path from `leaf` (any certificate) to an anchor. `extra` are
/// intermediates shipped with the evidence (from the TPM's NV).
/// Returns the subjects along the path, leaf first, anchor last.
pub fn verify_path(
    leaf: &Cert,
    extra: &[Cert],
    store: &TrustStore,
    now: SystemTime,
) -> Result<Vec<String>, VerifyError> {
    check_validity(leaf, now)?;
    check_extensions(leaf)?;
    let mut path = vec![subject(leaf)];
    // Intermediates below the current CA that count against its
    // pathLenConstraint (RFC 5280 6.1.4: self-issued ones do not).
    let mut below = 0usize;
    let mut current = leaf.clone();
    let issued_by = |c: &Cert, by: &Cert| {
        names_equal(
            &by.cert.tbs_certificate.subject,
            &c.cert.tbs_certificate.issuer,
        )
    };
    for _ in 0..MAX_DEPTH {
        // A configured anchor that issued the current certificate ends the path.
        // An anchor need not be self-signed.
        let mut last_err = None;
        for anchor in store.anchors.iter().filter(|a| issued_by(&current, a)) {
            match check_signature(&current, anchor, store.allow_sha1) {
                Ok(()) => {
                    check_validity(anchor, now)?;
                    if anchor.der != current.der {
                        check_extensions(anchor)?;
                        check_ca(anchor)?;
                        check_path_len(anchor, below)?;
                        path.push(subject(anchor));
                    }
                    return Ok(path);
                }
                Err(e) => last_err = Some(e),
            }
        }
        // Otherwise continue through an intermediate that issued it.
        let mut next = None;
        for c in store
            .intermediates
            .iter()
            .chain(extra.iter())
            .filter(|c| issued_by(&current, c) && c.der != current.der)
        {
            match check_signature(&current, c, store.allow_sha1) {
                Ok(()) => {
                    next = Some(c.clone());
                    break;
                }
                Err(e) => last_err = Some(e),
            }
        }
        match next {
            Some(n) => {
                check_validity(&n, now)?;
                check_extensions(&n)?;
                check_ca(&n)?;
                check_path_len(&n, below)?;
                if !is_self_issued(&n) {
                    below += 1;
                }
                path.push(subject(&n));
                current = n;
            }
            None => {
                if let Some(
                    e @ (VerifyError::CertificateAlgorithmUnsupported { .. }
                    | VerifyError::CertificateSha1 { .. }),
                ) = last_err
                {
                    return Err(e);
                }
                return Err(VerifyError::EkChainUntrusted {
                    subject: subject(leaf),
                    issuer: issuer(&current),
                    reason: if last_err.is_some() {
                        "a configured certificate has the issuer's name, but the signature does not verify with its key"
                    } else {
                        "no configured root or intermediate has the issuer's name"
                    },
                });
            }
        }
    }
    Err(VerifyError::EkChainUntrusted {
        subject: subject(leaf),
        issuer: issuer(&current),
        reason: "the path is longer than 8 certificates",
    })
}
