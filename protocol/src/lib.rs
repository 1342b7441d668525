//! tpm-byok shared library: the file formats, strict parsing of TPM wire
//! structures, object names, KDFa, and the software side of TPM crypto
//! (MakeCredential and duplication blobs). Pure Rust: no TPM library.
#![forbid(unsafe_code)]

pub mod attest;
pub mod auth;
pub mod byok;
pub mod ckm;
#[cfg(feature = "clap")]
pub mod cli_docs;
pub mod credential;
pub mod der;
pub mod duplicate;
pub mod error;
pub mod files;
pub mod fleet;
pub mod formats;
pub mod hash;
pub mod kdf;
pub mod keyfile;
pub mod keys;
pub mod nonce;
pub mod output;
pub mod policy;
#[cfg(feature = "clap")]
pub mod progress;
pub mod public;
pub mod signature;
pub mod tcti;
pub mod templates;
pub mod text;
pub mod tpm;
pub mod transfer;
pub mod wire;
pub mod world;

pub use attest::TpmsAttest;
pub use hash::HashAlg;
pub use public::TpmtPublic;
pub use signature::TpmtSignature;

/// Software version, for the `agent` field and `generator` strings.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
