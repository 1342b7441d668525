//! Error types of the protocol crate. Each variant names what failed.

use thiserror::Error;

/// A TPM wire structure that does not parse strictly.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum WireError {
    #[error("{structure}: truncated at byte {offset} while reading {field}")]
    Truncated {
        structure: &'static str,
        field: &'static str,
        offset: usize,
    },
    #[error("{structure}: {count} trailing byte(s) after the structure")]
    TrailingBytes {
        structure: &'static str,
        count: usize,
    },
    #[error("{structure}: {field} has size {size} at byte {offset}, more than the {max} allowed")]
    TooLarge {
        structure: &'static str,
        field: &'static str,
        offset: usize,
        size: usize,
        max: usize,
    },
    #[error("{structure}: unsupported or invalid {field} value {value:#x}")]
    BadValue {
        structure: &'static str,
        field: &'static str,
        value: u64,
    },
    #[error("{structure}: empty")]
    Empty { structure: &'static str },
}

/// A file (evidence, transfer package, receipt) that cannot be read.
#[derive(Debug, Error)]
pub enum FormatError {
    #[error("the file is empty (expected a {expected} document)")]
    Empty { expected: &'static str },
    #[error("not a CBOR document of the expected shape: {0}")]
    Cbor(String),
    #[error("file type is {found:?}, expected {expected:?}")]
    WrongType {
        expected: &'static str,
        found: String,
    },
    #[error("{kind} file is larger than {max} bytes, the most this build reads (docs/formats.md)")]
    TooLarge { kind: &'static str, max: usize },
    #[error("{kind} version {found} is not supported (this build reads version {supported})")]
    UnsupportedVersion {
        kind: &'static str,
        found: u64,
        supported: u64,
    },
}

/// Software-side TPM crypto failures (building credentials and duplication blobs).
#[derive(Debug, Error)]
pub enum CryptoError {
    #[error("{what}: unsupported algorithm {alg:#06x}")]
    UnsupportedAlgorithm { what: &'static str, alg: u16 },
    #[error("{0} is not an RSA public area")]
    NotRsa(&'static str),
    #[error("RSA public key of {0} is invalid: {1}")]
    BadRsaKey(&'static str, String),
    #[error("RSA-OAEP encryption failed: {0}")]
    Oaep(String),
    #[error(transparent)]
    Wire(#[from] WireError),
}

/// A key file that cannot be used as a transfer target.
#[derive(Debug, Error)]
pub enum KeyError {
    #[error("cannot read key: not PEM or DER in PKCS#8, PKCS#1 or SEC1 form ({0})")]
    Unrecognised(String),
    #[error("unsupported key: {0}")]
    Unsupported(String),
}
