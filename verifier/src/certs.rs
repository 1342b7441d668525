//! EK certificate path validation: from the EK certificate through
//! intermediates to a configured trust anchor, checking signatures, validity
//! and CA constraints. TPM EK certificates carry a critical directoryName SAN
//! and the TCG EK EKU (2.23.133.8.1), which web-PKI validators refuse; they are
//! accepted here. A trust anchor need not be self-signed (a manufacturer root
//! that is itself issued by another CA can be configured as the anchor).
//!
//! The leaf must also fit the TCG EK Credential Profile ([`check_ek_profile`]):
//! not a CA, keyUsage (when present) for key transport (RSA) or key agreement
//! (ECC), the TCG EK EKU when an EKU is present, an RSA key of at least 2048
//! bits or a P-256/P-384 key. On every certificate of the path an unknown
//! critical extension is refused (as RFC 5280 and OpenSSL do), every CA's
//! pathLenConstraint is enforced, and nameConstraints are refused (EK
//! certificates name TPMs in directoryName SANs; we do not evaluate them).

use crate::error::VerifyError;
use const_oid::ObjectIdentifier;
use der::{Decode, Encode};
use std::path::Path;
use std::time::SystemTime;
use x509_cert::Certificate;

const MAX_DEPTH: usize = 8;

const RSA_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.5");
const RSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const RSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const RSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
const KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.15");
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

/// A parsed certificate with the exact DER it came from: signatures are
/// checked over the original TBSCertificate bytes, never a re-encoding (some
/// real roots, e.g. Nuvoton TPM Root CA 2110, carry a multi-valued RDN whose SET
/// is not in DER order: a re-encoding would change the signed bytes).
#[derive(Clone, Debug)]
pub struct Cert {
    pub cert: Certificate,
    der: Vec<u8>,
}

impl Cert {
    /// Parse the certificate at the start of `der`. Bytes after it are
    /// ignored: they are not covered by any signature, and real EK
    /// certificates carry them (an STMicroelectronics EK certificate has 431
    /// bytes after its DER; NV indices are padded), as OpenSSL also ignores them.
    pub fn from_der(der: &[u8]) -> Result<Cert, String> {
        let (_, total) = tlv(der).ok_or("not a DER certificate")?;
        let der = &der[..total];
        let cert = Certificate::from_der(der).map_err(|e| e.to_string())?;
        // Certificate ::= SEQUENCE { tbsCertificate, ... }: the TBS is the first element.
        tbs_range(der).ok_or("certificate has no TBSCertificate")?;
        Ok(Cert {
            cert,
            der: der.to_vec(),
        })
    }

    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The TBSCertificate exactly as signed.
    pub fn tbs_der(&self) -> &[u8] {
        match tbs_range(&self.der) {
            Some((a, b)) => &self.der[a..b],
            None => &[],
        }
    }
}

use byok_protocol::der::element as tlv;

fn tbs_range(der: &[u8]) -> Option<(usize, usize)> {
    let (outer_hdr, _) = tlv(der)?;
    let (_, tbs_len) = tlv(&der[outer_hdr..])?;
    Some((outer_hdr, outer_hdr + tbs_len))
}

/// The certificates an operator trusts, and intermediates to build paths with.
#[derive(Clone)]
pub struct TrustStore {
    pub anchors: Vec<Cert>,
    pub intermediates: Vec<Cert>,
    /// Accept SHA-1 certificate signatures (older Infineon and Nationz CAs).
    pub allow_sha1: bool,
    /// The smallest RSA EK key accepted (never below 2048).
    pub min_rsa_bits: u16,
    /// Paths already verified in this run (one `now`, one set of anchors),
    /// keyed by the leaf's and the shipped intermediates' DER: a batch of
    /// evidence files from hosts with the same EK chain checks it once.
    pub cache: PathCache,
}

impl Default for TrustStore {
    fn default() -> Self {
        TrustStore {
            anchors: Vec::new(),
            intermediates: Vec::new(),
            allow_sha1: false,
            min_rsa_bits: 2048,
            cache: PathCache::default(),
        }
    }
}

/// Successful EK checks shared by the threads of one run: (path, SPKI DER)
/// keyed by the EK certificate's and shipped intermediates' bytes and the time.
#[derive(Default, Clone)]
pub struct PathCache(
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<Vec<u8>, CheckedEk>>>,
);

/// A verified EK certificate: the path's subjects and the SubjectPublicKeyInfo DER.
pub type CheckedEk = (Vec<String>, Vec<u8>);

impl PathCache {
    fn key(leaf: &[u8], extra: &[&[u8]], now: SystemTime) -> Vec<u8> {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        // Validity depends on the time of the check.
        let t = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        h.update(t.to_be_bytes());
        for c in std::iter::once(leaf).chain(extra.iter().copied()) {
            h.update((c.len() as u64).to_be_bytes());
            h.update(c);
        }
        h.finalize().to_vec()
    }
}

/// Check an EK certificate (bytes as found in evidence) and the intermediates
/// shipped with it; returns the path and the certificate's SubjectPublicKeyInfo
/// DER. Successes are cached in the store, so a batch of files with the same
/// EK certificate parses and checks it once; failures are always recomputed.
pub fn verify_ek_certificate(
    cert: &[u8],
    chain: &[&[u8]],
    store: &TrustStore,
    now: SystemTime,
) -> Result<(Vec<String>, Vec<u8>), VerifyError> {
    let key = PathCache::key(cert, chain, now);
    if let Some(hit) = store.cache.0.lock().ok().and_then(|m| m.get(&key).cloned()) {
        return Ok(hit);
    }
    let leaf = parse_certificates(cert)
        .map_err(VerifyError::EkCertificateUnparseable)?
        .into_iter()
        .next()
        .ok_or_else(|| VerifyError::EkCertificateUnparseable("empty".into()))?;
    let mut extra = Vec::new();
    for c in chain {
        extra.extend(parse_certificates(c).map_err(VerifyError::EkCertificateUnparseable)?);
    }
    let path = verify_ek_path(&leaf, &extra, store, now)?;
    let spki = leaf
        .cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| VerifyError::EkCertificateUnparseable(e.to_string()))?;
    if let Ok(mut m) = store.cache.0.lock() {
        m.insert(key, (path.clone(), spki.clone()));
    }
    Ok((path, spki))
}

/// Read every certificate in a PEM/DER file, or in every file of a directory.
pub fn load_certificates(path: &Path) -> Result<Vec<Cert>, VerifyError> {
    let roots_err = |detail: String| VerifyError::Roots {
        path: path.display().to_string(),
        detail,
    };
    let mut files = Vec::new();
    if path.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .map_err(|e| roots_err(e.to_string()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        entries.sort();
        files.extend(entries);
    } else {
        files.push(path.to_path_buf());
    }
    let mut out = Vec::new();
    for f in &files {
        let bytes = byok_protocol::files::read_capped(f, crate::MAX_INPUT_SIZE)
            .map_err(|e| roots_err(format!("{}: {e}", f.display())))?;
        if bytes.len() > crate::MAX_INPUT_SIZE {
            return Err(roots_err(format!(
                "{}: larger than {} bytes",
                f.display(),
                crate::MAX_INPUT_SIZE
            )));
        }
        out.extend(
            parse_certificates(&bytes).map_err(|e| roots_err(format!("{}: {e}", f.display())))?,
        );
    }
    if out.is_empty() {
        return Err(roots_err("no certificate found".into()));
    }
    Ok(out)
}

/// Parse PEM (one or more CERTIFICATE blocks) or a single DER certificate.
pub fn parse_certificates(bytes: &[u8]) -> Result<Vec<Cert>, String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Cert::from_der(bytes).map(|c| vec![c]);
    };
    if !text.contains(BEGIN) {
        return Cert::from_der(bytes).map(|c| vec![c]);
    }
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let body_start = start + BEGIN.len();
        let end = rest[body_start..]
            .find(END)
            .ok_or("PEM block without END line")?
            + body_start;
        let b64: String = rest[body_start..end]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        use base64::Engine as _;
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| format!("PEM base64: {e}"))?;
        out.push(Cert::from_der(&der)?);
        rest = &rest[end + END.len()..];
    }
    Ok(out)
}

/// The subject for messages; EK certificates often have an empty subject and
/// name the TPM in their subjectAltName instead.
pub fn subject(c: &Cert) -> String {
    let s = c.cert.tbs_certificate.subject.to_string();
    if s.is_empty() {
        format!(
            "(empty subject, serial {})",
            c.cert.tbs_certificate.serial_number
        )
    } else {
        s
    }
}

fn issuer(c: &Cert) -> String {
    c.cert.tbs_certificate.issuer.to_string()
}

fn names_equal(a: &x509_cert::name::Name, b: &x509_cert::name::Name) -> bool {
    match (a.to_der(), b.to_der()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

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

fn extensions(c: &Cert) -> &[x509_cert::ext::Extension] {
    c.cert.tbs_certificate.extensions.as_deref().unwrap_or(&[])
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

/// The leaf as a TCG EK certificate: not a CA; keyUsage, when present,
/// allows keyEncipherment (RSA EK) or keyAgreement (ECC EK); an extended key
/// usage, when present, includes the TCG EK certificate purpose
/// (2.23.133.8.1); an RSA key of at least `min_rsa_bits` (and 2048) bits or a
/// P-256/P-384 key.
pub fn check_ek_profile(c: &Cert, min_rsa_bits: u16) -> Result<(), VerifyError> {
    let profile = |problem: String| VerifyError::EkCertificateProfile {
        subject: subject(c),
        problem,
    };
    let exts = extensions(c);
    if let Some(bc) = exts.iter().find(|e| e.extn_id == BASIC_CONSTRAINTS) {
        let bc = x509_cert::ext::pkix::BasicConstraints::from_der(bc.extn_value.as_bytes())
            .map_err(|e| profile(format!("basicConstraints unreadable: {e}")))?;
        if bc.ca {
            return Err(profile(
                "it is a CA certificate (basicConstraints cA=TRUE), not an EK certificate".into(),
            ));
        }
    }
    use spki::DecodePublicKey;
    let spki = c
        .cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| VerifyError::EkCertificateUnparseable(e.to_string()))?;
    let rsa_bits = rsa::RsaPublicKey::from_public_key_der(&spki).ok().map(|k| {
        use rsa::traits::PublicKeyParts;
        k.n().bits()
    });
    let is_ec = p256::PublicKey::from_public_key_der(&spki).is_ok()
        || p384::PublicKey::from_public_key_der(&spki).is_ok();
    match rsa_bits {
        Some(bits) if bits < usize::from(min_rsa_bits.max(2048)) => {
            return Err(VerifyError::EkKeyTooWeak {
                subject: subject(c),
                key: format!("RSA-{bits}"),
                min_rsa_bits: min_rsa_bits.max(2048),
            })
        }
        Some(_) => {}
        None if is_ec => {}
        None => {
            return Err(VerifyError::EkKeyTooWeak {
                subject: subject(c),
                key: format!(
                    "of another type ({})",
                    c.cert.tbs_certificate.subject_public_key_info.algorithm.oid
                ),
                min_rsa_bits: min_rsa_bits.max(2048),
            })
        }
    }
    if let Some(ku) = exts.iter().find(|e| e.extn_id == KEY_USAGE) {
        let ku = x509_cert::ext::pkix::KeyUsage::from_der(ku.extn_value.as_bytes())
            .map_err(|e| profile(format!("keyUsage unreadable: {e}")))?;
        let (ok, want) = if rsa_bits.is_some() {
            (
                ku.key_encipherment(),
                "keyEncipherment (an RSA EK decrypts)",
            )
        } else {
            (ku.key_agreement(), "keyAgreement (an ECC EK does ECDH)")
        };
        if !ok {
            return Err(profile(format!("its keyUsage lacks {want}")));
        }
    }
    if let Some(eku) = exts.iter().find(|e| e.extn_id == EXT_KEY_USAGE) {
        let eku = x509_cert::ext::pkix::ExtendedKeyUsage::from_der(eku.extn_value.as_bytes())
            .map_err(|e| profile(format!("extendedKeyUsage unreadable: {e}")))?;
        if !eku.0.contains(&TCG_EK_CERTIFICATE) {
            return Err(profile(
                "its extendedKeyUsage does not include the TCG EK certificate purpose 2.23.133.8.1"
                    .into(),
            ));
        }
    }
    Ok(())
}

/// Check that `issuer_cert` signed `cert`.
pub fn check_signature(c: &Cert, issuer_cert: &Cert, allow_sha1: bool) -> Result<(), VerifyError> {
    use sha2::Digest;
    let cert = &c.cert;
    let tbs = c.tbs_der();
    let sig = cert.signature.raw_bytes();
    let spki = issuer_cert
        .cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| VerifyError::EkCertificateUnparseable(e.to_string()))?;
    // RFC 5280 4.1.1.2: the outer algorithm, which the signature does not
    // cover, must equal the signed one.
    if cert.signature_algorithm != cert.tbs_certificate.signature {
        return Err(VerifyError::EkCertificateUnparseable(format!(
            "certificate {:?}: signatureAlgorithm differs from tbsCertificate.signature",
            subject(c)
        )));
    }
    if cert.signature.unused_bits() != 0 {
        return Err(VerifyError::EkCertificateUnparseable(format!(
            "certificate {:?}: signature BIT STRING has unused bits",
            subject(c)
        )));
    }
    let oid = cert.signature_algorithm.oid;
    let invalid = || VerifyError::CertificateSignatureInvalid {
        subject: subject(c),
        issuer: subject(issuer_cert),
    };
    if oid == RSA_SHA1 && !allow_sha1 {
        return Err(VerifyError::CertificateSha1 {
            subject: subject(c),
        });
    }
    let ok = if [RSA_SHA1, RSA_SHA256, RSA_SHA384, RSA_SHA512].contains(&oid) {
        use spki::DecodePublicKey;
        let pk = rsa::RsaPublicKey::from_public_key_der(&spki).map_err(|_| invalid())?;
        let (scheme, digest) = if oid == RSA_SHA1 {
            (
                rsa::Pkcs1v15Sign::new::<sha1::Sha1>(),
                sha1::Sha1::digest(tbs).to_vec(),
            )
        } else if oid == RSA_SHA256 {
            (
                rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
                sha2::Sha256::digest(tbs).to_vec(),
            )
        } else if oid == RSA_SHA384 {
            (
                rsa::Pkcs1v15Sign::new::<sha2::Sha384>(),
                sha2::Sha384::digest(tbs).to_vec(),
            )
        } else {
            (
                rsa::Pkcs1v15Sign::new::<sha2::Sha512>(),
                sha2::Sha512::digest(tbs).to_vec(),
            )
        };
        pk.verify(scheme, &digest, sig).is_ok()
    } else if oid == ECDSA_SHA256 || oid == ECDSA_SHA384 {
        use ecdsa::signature::hazmat::PrehashVerifier;
        use spki::DecodePublicKey;
        let digest = if oid == ECDSA_SHA256 {
            sha2::Sha256::digest(tbs).to_vec()
        } else {
            sha2::Sha384::digest(tbs).to_vec()
        };
        if let Ok(vk) = p256::ecdsa::VerifyingKey::from_public_key_der(&spki) {
            let s = p256::ecdsa::Signature::from_der(sig).map_err(|_| invalid())?;
            vk.verify_prehash(&digest, &s).is_ok()
        } else if let Ok(vk) = p384::ecdsa::VerifyingKey::from_public_key_der(&spki) {
            let s = p384::ecdsa::Signature::from_der(sig).map_err(|_| invalid())?;
            vk.verify_prehash(&digest, &s).is_ok()
        } else {
            return Err(invalid());
        }
    } else {
        return Err(VerifyError::CertificateAlgorithmUnsupported {
            subject: subject(c),
            oid: oid.to_string(),
        });
    };
    if ok {
        Ok(())
    } else {
        Err(invalid())
    }
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

const SUBJECT_ALT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");
const EXT_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
const TCG_EK_CERTIFICATE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.8.1");
const TPM_MANUFACTURER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.2.1");
const TPM_MODEL: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.2.2");
const TPM_VERSION: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.2.3");

/// What a TCG EK certificate says about its TPM (subjectAltName directoryName).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TpmIdentity {
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub version: Option<String>,
    /// The TCG EK certificate EKU (2.23.133.8.1) is present.
    pub ek_eku: bool,
}

/// Read the TPM identity from an EK certificate (informational; the TPM's own
/// manufacturer property is encoded differently, e.g. "id:00001014" vs "IBM").
pub fn tpm_identity(c: &Cert) -> TpmIdentity {
    let mut id = TpmIdentity::default();
    for ext in c.cert.tbs_certificate.extensions.as_deref().unwrap_or(&[]) {
        if ext.extn_id == SUBJECT_ALT_NAME {
            let Ok(san) = x509_cert::ext::pkix::SubjectAltName::from_der(ext.extn_value.as_bytes())
            else {
                continue;
            };
            for name in san.0 {
                let x509_cert::ext::pkix::name::GeneralName::DirectoryName(dn) = name else {
                    continue;
                };
                for rdn in dn.0.iter() {
                    for atv in rdn.0.iter() {
                        let text = String::from_utf8_lossy(atv.value.value()).to_string();
                        if atv.oid == TPM_MANUFACTURER {
                            id.manufacturer = Some(text);
                        } else if atv.oid == TPM_MODEL {
                            id.model = Some(text);
                        } else if atv.oid == TPM_VERSION {
                            id.version = Some(text);
                        }
                    }
                }
            }
        } else if ext.extn_id == EXT_KEY_USAGE {
            if let Ok(eku) =
                x509_cert::ext::pkix::ExtendedKeyUsage::from_der(ext.extn_value.as_bytes())
            {
                id.ek_eku = eku.0.contains(&TCG_EK_CERTIFICATE);
            }
        }
    }
    id
}

/// "RSA-2048", "EC P-256" … of a certificate's subject key.
pub fn key_description(c: &Cert) -> String {
    use spki::DecodePublicKey;
    let Ok(spki) = c.cert.tbs_certificate.subject_public_key_info.to_der() else {
        return "unknown key".into();
    };
    if let Ok(k) = rsa::RsaPublicKey::from_public_key_der(&spki) {
        use rsa::traits::PublicKeyParts;
        return format!("RSA-{}", k.n().bits());
    }
    if p256::PublicKey::from_public_key_der(&spki).is_ok() {
        return "EC P-256".into();
    }
    if p384::PublicKey::from_public_key_der(&spki).is_ok() {
        return "EC P-384".into();
    }
    "unsupported key".into()
}
