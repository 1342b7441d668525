//! Verification failures. Each variant names the check that failed.

use byok_protocol::error::{CryptoError, FormatError, KeyError, WireError};
use byok_protocol::hash::HashAlg;
use byok_protocol::world::WorldId;
use thiserror::Error;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum VerifyError {
    #[error("usage: {0}")]
    Usage(String),
    #[error("policy {path}: {detail}")]
    Policy { path: String, detail: String },
    #[error("PCR {bank}:{index} is {found}, the policy expects {expected}")]
    PcrValueMismatch {
        bank: HashAlg,
        index: u32,
        expected: String,
        found: String,
    },
    #[error("the policy sets PCR {bank}:{index}, but the quote does not cover it")]
    PcrNotQuoted { bank: HashAlg, index: u32 },
    // --- the file itself
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is larger than {max} bytes, the most read for this input")]
    TooLarge { path: String, max: usize },
    #[error("unreadable {what}: {source}")]
    Format {
        what: &'static str,
        #[source]
        source: FormatError,
    },
    // --- fleets (docs/fleet.md)
    #[error("its EK is not enrolled in the registry: enroll the host first (`byok-verifier enroll`, or enroll.yml)")]
    FleetEkNotEnrolled,
    #[error("its AK is not an enrolled AK of the world in the registry")]
    FleetAkNotEnrolled,
    #[error("host {host:?} has no nonce in the nonce file (made before it was enrolled, or for other hosts): make a new one with `byok-verifier nonces`")]
    FleetNoNonce { host: String },
    #[error("a second file for host {host:?} ({first} came first): one per host, so none is written twice")]
    FleetDuplicate { host: String, first: String },
    #[error("no evidence from host {host:?} (it has a nonce): fetch its evidence, or leave it out with `nonces --hosts`")]
    FleetNoEvidence { host: String },
    #[error("no receipt from host {host:?}: it does not hold the key (yet)")]
    FleetNoReceipt { host: String },
    #[error("{failed} of {total} failed (each named above)")]
    FleetFailed {
        failed: usize,
        total: usize,
        worst: Failure,
    },
    #[error("cannot inspect {path}: {detail}")]
    Uninspectable { path: String, detail: String },
    #[error("{field} is malformed: {source}")]
    Malformed {
        field: &'static str,
        #[source]
        source: WireError,
    },
    #[error("{what}: TPMS_ATTEST magic is {found:#010x}, not TPM_GENERATED_VALUE: not produced by a TPM")]
    AttestMagic { what: &'static str, found: u64 },
    #[error("{what}: attestation type is {found:#06x}, expected {expected}")]
    AttestType {
        what: &'static str,
        found: u64,
        expected: &'static str,
    },

    // --- trust anchors and the EK certificate
    #[error("cannot use {flag} {path}: {detail}")]
    CaCertificates {
        flag: &'static str,
        path: String,
        detail: String,
    },
    #[error("EK certificate cannot be parsed: {0}")]
    EkCertificateUnparseable(String),
    #[error("EK certificate chain is not trusted: no path from {subject:?} (issuer {issuer:?}) to a configured root: {reason}")]
    EkChainUntrusted {
        subject: String,
        issuer: String,
        reason: &'static str,
    },
    #[error("certificate {subject:?} has an invalid signature from {issuer:?}")]
    CertificateSignatureInvalid { subject: String, issuer: String },
    #[error(
        "certificate {subject:?} is signed with SHA-1, which is not accepted without --allow-sha1"
    )]
    CertificateSha1 { subject: String },
    #[error("certificate {subject:?} uses signature algorithm {oid}, which is not accepted")]
    CertificateAlgorithmUnsupported { subject: String, oid: String },
    #[error("certificate {subject:?} is not valid now (valid {not_before} to {not_after})")]
    CertificateNotValidNow {
        subject: String,
        not_before: String,
        not_after: String,
    },
    #[error("certificate {subject:?} issues other certificates but is not a CA (basicConstraints/keyUsage)")]
    IssuerNotCa { subject: String },
    #[error("certificate {subject:?} is not a TPM EK certificate: {problem}")]
    EkCertificateProfile { subject: String, problem: String },
    #[error("EK certificate {subject:?} has key {key}; an EK needs RSA of at least {min_rsa_bits} bits or ECC P-256/P-384")]
    EkKeyTooWeak {
        subject: String,
        key: String,
        min_rsa_bits: u16,
    },
    #[error("certificate {subject:?} has a critical extension {oid} this verifier does not understand, so it must refuse the certificate (RFC 5280 4.2)")]
    CertificateCriticalExtension { subject: String, oid: String },
    #[error("CA certificate {subject:?} allows {path_len} intermediate CA(s) below it (pathLenConstraint), but the path has {below}")]
    PathLengthExceeded {
        subject: String,
        path_len: u8,
        below: usize,
    },
    #[error("CA certificate {subject:?} has nameConstraints, which this verifier does not evaluate: refused")]
    NameConstraintsUnsupported { subject: String },
    #[error("the EK public area in the evidence is not the key in the EK certificate")]
    EkPublicMismatch,
    #[error("EK public area is not a restricted decryption key bound to the TPM: {0}")]
    EkAttributes(String),

    // --- the AK
    #[error("AK is not a restricted signing key generated in and bound to the TPM: {0}")]
    AkAttributes(String),
    #[error("AK key {0} is too weak or unsupported (RSA >= 2048, P-256 or P-384)")]
    AkKeyUnsupported(String),

    // --- signatures over attestations
    #[error("{what}: signature does not verify with the AK")]
    SignatureInvalid { what: &'static str },
    #[error("{what}: signature cannot be checked: {detail}")]
    SignatureUnusable { what: &'static str, detail: String },
    #[error("{what}: signed with {hash}, which is not allowed (SHA-1 needs --allow-sha1)")]
    SignatureHashNotAllowed {
        what: &'static str,
        hash: &'static str,
    },
    #[error("{what}: qualifyingData/extraData is not the operator's nonce (replayed or for another challenge)")]
    NonceMismatch { what: &'static str },
    #[error("{what}: signer's qualified name is not the AK under this EK")]
    QualifiedSignerMismatch { what: &'static str },

    // --- the KEK
    #[error("certified name is not the name of the KEK public area in the evidence")]
    CertifiedNameMismatch,
    #[error("KEK lacks fixedTPM: it may have been generated or imported from outside the TPM")]
    KekNotFixedTpm,
    #[error("KEK lacks fixedParent")]
    KekNotFixedParent,
    #[error("KEK lacks sensitiveDataOrigin: its private part was not generated by the TPM")]
    KekNotSensitiveDataOrigin,
    #[error("KEK is not a restricted decryption (storage) key: {0}")]
    KekNotStorageKey(String),
    #[error("KEK key {0} is unsupported (RSA >= 2048 or ECC P-256/P-384, with AES-CFB)")]
    KekKeyUnsupported(String),
    #[error("KEK's qualified name does not place it in the owner hierarchy ({0})")]
    KekHierarchy(String),
    #[error(
        "KEK is bound to another world than {world:?} (its authPolicy is not the world binding)"
    )]
    KekWorldMismatch { world: WorldId },
    #[error(
        "KEK is not bound to PCRs, and the policy requires a PCR-bound KEK (require_kek_pcrs); make it with `byok-agent init --pcrs` or `kek rotate --pcrs`"
    )]
    KekNotPcrBound,
    #[error("KEK is bound to {bound} only: software can reset those PCRs and extend them to any value, so the binding proves nothing about the platform (require_kek_pcrs needs PCRs 0-15; 17-22 with allow_drtm_pcrs)")]
    KekPcrResettable { bound: String },
    #[error(
        "KEK is bound to {bound}, but the policy requires PCR(s) {missing} too (require_kek_pcrs)"
    )]
    KekPcrsMissing { bound: String, missing: String },
    #[error("KEK is bound to PCR {bank}:{index}, which has no reference value in the policy: a required binding must pin values the operator chose (add it under [worlds.W.pcrs.{bank}])")]
    KekPcrUnreferenced { bank: HashAlg, index: u32 },
    #[error("KEK PCR binding in the evidence is malformed: {0}")]
    KekPcrBindingMalformed(String),
    #[error("KEK has a PCR policy but userWithAuth set: its auth value bypasses the policy")]
    KekPcrBindingNotEnforced,
    #[error("KEK is bound to PCR {bank}:{index} = {found}, but the policy's reference value is {expected}")]
    KekPcrBindingMismatch {
        bank: HashAlg,
        index: u32,
        expected: String,
        found: String,
    },

    // --- the compat KEK (unrestricted RSA decryption key for .byok files)
    #[error("compat KEK: certified name is not the name of its public area")]
    CompatKekNameMismatch,
    #[error("compat KEK is not a child of the attested KEK (qualified name differs)")]
    CompatKekNotUnderKek,
    #[error("compat KEK is not an RSA decryption key generated in and bound to the TPM: {0}")]
    CompatKekAttributes(String),
    #[error("the evidence has no compat KEK (byok-agent init --compat-kek) to wrap a cloud-format key for")]
    NoCompatKek,

    // --- PCRs
    #[error("quote selects no PCRs")]
    PcrSelectionEmpty,
    #[error("quote's PCR selection ({quoted}) is not the evidence's PCR list ({listed})")]
    PcrSelectionMismatch { quoted: String, listed: String },
    #[error("PCR values in the evidence do not hash to the quote's pcrDigest")]
    PcrDigestMismatch,
    #[error("PCR {bank}:{index} value has {len} bytes")]
    PcrValueLength {
        bank: HashAlg,
        index: u32,
        len: usize,
    },

    // --- unsigned fields that must agree
    #[error("evidence is for world {found:?}, expected {expected:?}")]
    WorldMismatch { expected: WorldId, found: WorldId },
    #[error("evidence's nonce field is not the operator's nonce")]
    EvidenceNonceMismatch,
    #[error("invalid nonce: {0}")]
    BadNonce(#[from] byok_protocol::nonce::NonceError),

    #[error("the evidence ships {found} chain certificates; at most {max} are read")]
    EkChainTooLong { found: usize, max: usize },

    // --- proof that the AK lives in the EK's TPM
    #[error("activation does not prove the AK-EK binding: {0}")]
    ActivationMismatch(&'static str),
    #[error("{what} needs the AK proven to live in the EK's TPM, which evidence alone cannot show (a software key could have signed it): enroll the host once (`byok-verifier enroll`, then give --registry DIR), or give --challenge and --activation")]
    AkNotProven { what: &'static str },
    #[error("host {host:?} is enrolled with another AK for world {world:?}: this evidence's AK was never proven to live in that host's TPM (if the world was re-initialised, enroll it again with --replace)")]
    AkNotEnrolled { host: String, world: WorldId },
    #[error("host {host:?} (this EK) is enrolled, but not for world {world:?}, and enrolment is required: enroll it for this world (`byok-verifier enroll`)")]
    WorldNotEnrolled { host: String, world: WorldId },
    #[error("the EK (certificate SHA-256 {ek_certificate_sha256}) is not enrolled in the registry, and enrolment is required: enroll the host first (`byok-verifier enroll`)")]
    EkNotEnrolled { ek_certificate_sha256: String },
    #[error("registry {path}: {detail}")]
    Registry { path: String, detail: String },
    #[error("registry: host {host:?} is enrolled with another EK (certificate SHA-256 {enrolled}); give --replace to replace it, or choose another --host")]
    HostEkConflict { host: String, enrolled: String },
    #[error("registry: this EK is already enrolled as host {host:?}; give --host {host} (or --replace to enrol it under the new name)")]
    EkEnrolledAs { host: String },
    #[error("registry: host {host:?} is enrolled with another AK for world {world:?}; give --replace if the world was re-initialised")]
    WorldAkConflict { host: String, world: WorldId },

    // --- receipts
    #[error("receipt is for world {receipt:?}, not {evidence:?} of the evidence")]
    ReceiptWorldMismatch { receipt: WorldId, evidence: WorldId },
    #[error("receipt's AK is not the AK of the verified evidence")]
    ReceiptAkMismatch,
    #[error("receipt's key does not live under the attested KEK (qualified name differs)")]
    ReceiptKeyNotUnderKek,
    #[error("receipt certifies a key other than the one in the transfer package")]
    ReceiptKeyNotTransferred,
    #[error("transfer package was not made for this evidence's KEK")]
    TransferKekMismatch,

    // --- wrapping
    #[error("{cloud} would refuse this: {reason}")]
    CloudRefused { cloud: &'static str, reason: String },
    #[error("cannot read --kek-public: {0}")]
    KekPublicUnreadable(String),
    #[error("cannot wrap the key: {0}")]
    Wrap(#[from] CryptoError),
    #[error("cannot use the key: {0}")]
    Key(#[from] KeyError),
}

/// What kind of failure an error is; each kind has one exit code. Every
/// variant is classified below without a wildcard, so a new variant does not
/// compile until it is put in its kind: exit 10 means a verification check
/// failed, and nothing else, by construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Bad command-line use (2).
    Usage,
    /// An input that cannot be read as what it should be: a malformed file,
    /// policy, nonce or key (3).
    Unreadable,
    /// A file, directory, trust anchor or registry that cannot be read or written (4).
    Io,
    /// The key cannot be wrapped for the KEK (5).
    CannotWrap,
    /// A verification check failed, including a malformed TPM structure
    /// inside the evidence (10).
    Check,
}

impl Failure {
    /// How serious a failure is, for a batch's exit code: a failed check
    /// (possibly a forgery) first, then inputs that cannot be read, files
    /// that cannot be opened, keys that cannot be wrapped, usage.
    pub fn severity(self) -> u8 {
        match self {
            Failure::Check => 4,
            Failure::Unreadable => 3,
            Failure::Io => 2,
            Failure::CannotWrap => 1,
            Failure::Usage => 0,
        }
    }

    pub fn exit_code(self) -> i32 {
        match self {
            Failure::Usage => 2,
            Failure::Unreadable => 3,
            Failure::Io => 4,
            Failure::CannotWrap => 5,
            Failure::Check => 10,
        }
    }
}

impl VerifyError {
    pub fn failure(&self) -> Failure {
        use VerifyError::*;
        match self {
            Usage { .. } => Failure::Usage,
            Policy { .. }
            | TooLarge { .. }
            | Format { .. }
            | Uninspectable { .. }
            | BadNonce { .. }
            | KekPublicUnreadable { .. }
            | Key { .. } => Failure::Unreadable,
            Io { .. }
            | CaCertificates { .. }
            | Registry { .. }
            | FleetNoEvidence { .. }
            | FleetNoReceipt { .. } => Failure::Io,
            FleetNoNonce { .. } | FleetDuplicate { .. } => Failure::Usage,
            FleetFailed { worst, .. } => *worst,
            CloudRefused { .. } | Wrap { .. } => Failure::CannotWrap,
            PcrValueMismatch { .. }
            | PcrNotQuoted { .. }
            | Malformed { .. }
            | AttestMagic { .. }
            | AttestType { .. }
            | EkCertificateUnparseable { .. }
            | EkChainUntrusted { .. }
            | CertificateSignatureInvalid { .. }
            | CertificateSha1 { .. }
            | CertificateAlgorithmUnsupported { .. }
            | CertificateNotValidNow { .. }
            | IssuerNotCa { .. }
            | EkCertificateProfile { .. }
            | EkKeyTooWeak { .. }
            | CertificateCriticalExtension { .. }
            | PathLengthExceeded { .. }
            | NameConstraintsUnsupported { .. }
            | EkPublicMismatch
            | EkAttributes { .. }
            | AkAttributes { .. }
            | AkKeyUnsupported { .. }
            | SignatureInvalid { .. }
            | SignatureUnusable { .. }
            | SignatureHashNotAllowed { .. }
            | NonceMismatch { .. }
            | QualifiedSignerMismatch { .. }
            | CertifiedNameMismatch
            | KekNotFixedTpm
            | KekNotFixedParent
            | KekNotSensitiveDataOrigin
            | KekNotStorageKey { .. }
            | KekKeyUnsupported { .. }
            | KekHierarchy { .. }
            | KekWorldMismatch { .. }
            | KekNotPcrBound
            | KekPcrResettable { .. }
            | KekPcrsMissing { .. }
            | KekPcrUnreferenced { .. }
            | KekPcrBindingMalformed { .. }
            | KekPcrBindingNotEnforced
            | KekPcrBindingMismatch { .. }
            | CompatKekNameMismatch
            | CompatKekNotUnderKek
            | CompatKekAttributes { .. }
            | NoCompatKek
            | PcrSelectionEmpty
            | PcrSelectionMismatch { .. }
            | PcrDigestMismatch
            | PcrValueLength { .. }
            | WorldMismatch { .. }
            | EvidenceNonceMismatch
            | EkChainTooLong { .. }
            | ActivationMismatch { .. }
            | AkNotProven { .. }
            | AkNotEnrolled { .. }
            | WorldNotEnrolled { .. }
            | EkNotEnrolled { .. }
            | HostEkConflict { .. }
            | EkEnrolledAs { .. }
            | WorldAkConflict { .. }
            | ReceiptWorldMismatch { .. }
            | ReceiptAkMismatch
            | ReceiptKeyNotUnderKek
            | ReceiptKeyNotTransferred
            | TransferKekMismatch
            | FleetEkNotEnrolled
            | FleetAkNotEnrolled => Failure::Check,
        }
    }

    /// 2 usage, 3 unreadable input, 4 I/O, 5 cannot wrap, 10 a verification
    /// check failed ([`Failure`]).
    pub fn exit_code(&self) -> i32 {
        self.failure().exit_code()
    }
}

impl From<byok_protocol::files::FileError> for VerifyError {
    fn from(e: byok_protocol::files::FileError) -> VerifyError {
        VerifyError::Io {
            path: e.path.display().to_string(),
            source: e.source,
        }
    }
}

pub fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> VerifyError + '_ {
    move |source| VerifyError::Io {
        path: path.display().to_string(),
        source,
    }
}
