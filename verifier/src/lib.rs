//! byok-verifier: checks TPM evidence offline and wraps keys for verified KEKs.
//! Pure Rust: no TPM software is needed on the operator's workstation.
#![forbid(unsafe_code)]

pub mod certs;
pub mod cloud;
pub mod error;
pub mod inspect;
pub mod policy;
pub mod receipt;
pub mod verify;
pub mod wrap;

use error::{io, VerifyError};
use std::path::Path;

/// Read a file, naming it in the error.
pub fn read(path: &Path) -> Result<Vec<u8>, VerifyError> {
    std::fs::read(path).map_err(io(path))
}

/// Write a new output file atomically (temp file, fsync, rename), refusing to
/// leave a partial file behind.
pub fn write_output(path: &Path, data: &[u8], mode: u32) -> Result<(), VerifyError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let r = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(io(&tmp))?;
        f.write_all(data).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io(path))
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}
