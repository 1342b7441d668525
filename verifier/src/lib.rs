//! byok-verifier: checks TPM evidence offline and wraps keys for verified KEKs.
//! Pure Rust: no TPM software is needed on the operator's workstation.
#![forbid(unsafe_code)]

pub mod batch;
pub mod certs;
pub mod check;
pub mod cloud;
pub mod error;
pub mod fleet;
pub mod inspect;
pub mod parallel;
pub mod pipeline;
pub mod policy;
pub mod receipt;
pub mod registry;
pub mod report;
pub mod trust;
pub mod verified;
pub mod verify;
pub mod wrap;

use error::{io, VerifyError};
use std::path::Path;

/// Read a file of at most `max` bytes, naming it in the error: a bigger file
/// is refused after reading `max + 1` bytes (key files, certificates and
/// other inputs that are not documents).
pub fn read(path: &Path, max: usize) -> Result<Vec<u8>, VerifyError> {
    let bytes = byok_protocol::files::read_capped(path, max).map_err(io(path))?;
    if bytes.len() > max {
        return Err(VerifyError::TooLarge {
            path: path.display().to_string(),
            max,
        });
    }
    Ok(bytes)
}

/// Read and decode a tpm-byok document, refusing files larger than the
/// type's cap (`max`, usually `D::MAX_SIZE`) before decoding anything.
pub fn read_document<D: byok_protocol::formats::Document>(
    path: &Path,
    what: &'static str,
    max: usize,
) -> Result<D, VerifyError> {
    let bytes = byok_protocol::files::read_capped(path, max).map_err(io(path))?;
    D::from_cbor_limited(&bytes, max).map_err(|source| VerifyError::Format { what, source })
}

/// The largest key, certificate or JWK file read.
pub const MAX_INPUT_SIZE: usize = 1 << 20;

/// Write an output file atomically (see `byok_protocol::files::write_atomic`).
pub fn write_output(path: &Path, data: &[u8], mode: u32) -> Result<(), VerifyError> {
    Ok(byok_protocol::output::write_output(path, data, mode)?)
}
