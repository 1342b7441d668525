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
//!
//! Files: `path.rs` (the path and its constraints), `profile.rs` (the EK
//! profile and what an EK certificate says about its TPM), `signature.rs`.

mod path;
mod profile;
mod signature;

pub use path::{verify_ek_path, verify_path};
pub use profile::{check_ek_profile, key_description, tpm_identity, TpmIdentity};
pub use signature::check_signature;

use crate::error::VerifyError;
use der::{Decode, Encode};
use std::path::Path;
use std::time::SystemTime;
use x509_cert::Certificate;

use const_oid::ObjectIdentifier;

pub(crate) const BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
pub(crate) const KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.15");
pub(crate) const SUBJECT_ALT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");
pub(crate) const EXT_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
pub(crate) const TCG_EK_CERTIFICATE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("2.23.133.8.1");

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

pub(crate) fn issuer(c: &Cert) -> String {
    c.cert.tbs_certificate.issuer.to_string()
}

pub(crate) fn names_equal(a: &x509_cert::name::Name, b: &x509_cert::name::Name) -> bool {
    match (a.to_der(), b.to_der()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

pub(crate) fn extensions(c: &Cert) -> &[x509_cert::ext::Extension] {
    c.cert.tbs_certificate.extensions.as_deref().unwrap_or(&[])
}
