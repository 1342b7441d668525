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
        let (_, total) =
            tlv(der).ok_or("neither a PEM CERTIFICATE block nor a DER X.509 certificate")?;
        let der = &der[..total];
        if der.first() != Some(&0x30) {
            return Err("neither a PEM CERTIFICATE block nor a DER X.509 certificate".into());
        }
        let cert = Certificate::from_der(der)
            .map_err(|e| format!("DER, but not an X.509 certificate ({e})"))?;
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
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<[u8; 32], CheckedEk>>>,
);

/// A verified EK certificate, shared (a cache hit costs no copy).
#[derive(Debug, Clone)]
pub struct CheckedEk {
    /// The path's subjects, leaf first.
    pub path: std::sync::Arc<[String]>,
    /// The key the certificate certifies.
    pub key: std::sync::Arc<crate::check::ek::CertifiedKey>,
}

impl PathCache {
    /// The EK certificate by its SHA-256 (which the caller has for its report),
    /// the shipped intermediates by their bytes, the time of the check.
    fn key(leaf_sha256: &[u8; 32], extra: &[&[u8]], now: SystemTime) -> [u8; 32] {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        // Validity depends on the time of the check.
        let t = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        h.update(t.to_be_bytes());
        h.update(leaf_sha256);
        for c in extra {
            h.update((c.len() as u64).to_be_bytes());
            h.update(c);
        }
        h.finalize().into()
    }
}

/// Check an EK certificate (bytes as found in evidence, with their SHA-256)
/// and the intermediates shipped with it; returns the path and the key the
/// certificate certifies. Successes are cached in the store,
/// so a batch of files with the same EK certificate parses and checks it
/// once; failures are always recomputed.
pub fn verify_ek_certificate(
    cert: &[u8],
    cert_sha256: &[u8; 32],
    chain: &[&[u8]],
    store: &TrustStore,
    now: SystemTime,
) -> Result<CheckedEk, VerifyError> {
    let key = PathCache::key(cert_sha256, chain, now);
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
    let checked = CheckedEk {
        path: path.into(),
        key: std::sync::Arc::new(crate::check::ek::CertifiedKey::from_spki(&spki)),
    };
    if let Ok(mut m) = store.cache.0.lock() {
        m.insert(key, checked.clone());
    }
    Ok(checked)
}

/// Where a set of CA certificates came from, for messages: the flag (or the
/// policy key) that named it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertSource {
    Roots,
    Intermediates,
}

impl CertSource {
    pub fn flag(self) -> &'static str {
        match self {
            CertSource::Roots => "--roots",
            CertSource::Intermediates => "--intermediates",
        }
    }
}

/// CA certificates read from a file or a directory, and the files of the
/// directory that were skipped because they hold no certificate.
#[derive(Debug, Default)]
pub struct LoadedCertificates {
    pub certs: Vec<Cert>,
    pub skipped: Vec<(std::path::PathBuf, String)>,
}

/// Read every certificate in a PEM/DER file, or in every file of a
/// directory. A file named on its own must be certificates; in a directory
/// (often /etc/ssl-style, with a README or keys beside the certificates)
/// files that are not certificates are skipped and listed, and only a
/// directory with no certificate at all is refused.
pub fn load_certificates(
    path: &Path,
    source: CertSource,
) -> Result<LoadedCertificates, VerifyError> {
    let err = |detail: String| VerifyError::CaCertificates {
        flag: source.flag(),
        path: path.display().to_string(),
        detail,
    };
    let meta = std::fs::metadata(path).map_err(|e| {
        err(match e.kind() {
            std::io::ErrorKind::NotFound => {
                "no such file or directory; give a PEM/DER certificate file or a directory of them"
                    .into()
            }
            _ => e.to_string(),
        })
    })?;
    let read = |f: &Path| -> Result<Vec<Cert>, String> {
        let bytes = byok_protocol::files::read_capped(f, crate::MAX_INPUT_SIZE)
            .map_err(|e| e.to_string())?;
        if bytes.len() > crate::MAX_INPUT_SIZE {
            return Err(format!("larger than {} bytes", crate::MAX_INPUT_SIZE));
        }
        parse_certificates(&bytes)
    };
    let mut out = LoadedCertificates::default();
    if !meta.is_dir() {
        out.certs = read(path).map_err(err)?;
        return Ok(out);
    }
    let mut files: Vec<_> = std::fs::read_dir(path)
        .map_err(|e| err(e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    for f in files {
        match read(&f) {
            Ok(certs) => out.certs.extend(certs),
            Err(why) => out.skipped.push((f, why)),
        }
    }
    if out.certs.is_empty() {
        let why = match out.skipped.len() {
            0 => "the directory holds no files".to_string(),
            n => format!(
                "none of its {n} file(s) is a certificate ({})",
                out.skipped
                    .iter()
                    .map(|(f, why)| format!("{}: {why}", f.display()))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        };
        return Err(err(why));
    }
    Ok(out)
}

/// Parse PEM (one or more CERTIFICATE blocks) or a single DER certificate.
pub fn parse_certificates(bytes: &[u8]) -> Result<Vec<Cert>, String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    if bytes.is_empty() {
        return Err("the file is empty".into());
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Cert::from_der(bytes).map(|c| vec![c]);
    };
    if !text.contains(BEGIN) {
        if let Some(label) = pem_label(text) {
            return Err(format!(
                "holds a PEM \"{label}\" block, not a certificate (-----BEGIN CERTIFICATE-----)"
            ));
        }
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

/// The label of the first PEM block in `text` ("PRIVATE KEY", ...), if it
/// is a plausible one (so it can be printed as it is).
fn pem_label(text: &str) -> Option<&str> {
    let start = text.find("-----BEGIN ")? + "-----BEGIN ".len();
    let len = text[start..].find("-----")?;
    let label = &text[start..start + len];
    let plausible = len <= 64
        && label
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == ' ');
    plausible.then_some(label)
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
