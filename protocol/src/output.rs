//! What the binaries print on success, in one place: status lines go
//! through [`say!`], which `-q` silences; results a command was asked for
//! (listings, JSON, verdicts on standard output) are printed directly.
//! Errors always reach standard error.

use std::sync::atomic::{AtomicBool, Ordering};

static QUIET: AtomicBool = AtomicBool::new(false);
static FORCE: AtomicBool = AtomicBool::new(false);

/// `-q`: status lines off for the rest of the process.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// `--force`: outputs may replace existing files.
pub fn set_force(force: bool) {
    FORCE.store(force, Ordering::Relaxed);
}

pub fn force() -> bool {
    FORCE.load(Ordering::Relaxed)
}

/// `-o -`: the output goes to standard output.
pub fn is_stdout(path: &std::path::Path) -> bool {
    path.as_os_str() == "-"
}

/// Write a command's output: `-` is standard output; a file is written
/// atomically (mode `mode`) and an existing one is replaced only with
/// `--force`, so a mistyped `-o` never destroys a key or a signature.
pub fn write_output(
    path: &std::path::Path,
    data: &[u8],
    mode: u32,
) -> Result<(), crate::files::FileError> {
    use std::io::Write;
    if is_stdout(path) {
        let mut out = std::io::stdout().lock();
        return match out.write_all(data).and_then(|_| out.flush()) {
            // The reader stopped reading (`| head`): not this command's failure.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            r => r.map_err(|source| crate::files::FileError {
                path: "(standard output)".into(),
                source,
            }),
        };
    }
    check_output(path)?;
    crate::files::write_atomic(path, data, mode)
}

/// [`write_output`] for one file of a batch in one directory (never
/// standard output): the caller syncs the directory once after the batch
/// (`files::sync_dir`).
pub fn write_output_in_batch(
    path: &std::path::Path,
    data: &[u8],
    mode: u32,
) -> Result<(), crate::files::FileError> {
    check_output(path)?;
    crate::files::write_atomic_unsynced(path, data, mode)
}

/// Refuse an output path that exists (without `--force`): commands call it
/// before any work, so a refusal costs nothing and changes nothing.
pub fn check_output(path: &std::path::Path) -> Result<(), crate::files::FileError> {
    if !is_stdout(path) && !force() && std::fs::symlink_metadata(path).is_ok() {
        return Err(crate::files::FileError {
            path: path.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "exists; add --force to replace it",
            ),
        });
    }
    Ok(())
}

/// A status line about an output file ("wrote … to PATH"), unless the
/// output went to standard output (where it would corrupt the data) or -q.
#[macro_export]
macro_rules! said_to {
    ($path:expr, $($arg:tt)*) => {
        if !$crate::output::is_stdout($path) {
            $crate::say!($($arg)*);
        }
    };
}

/// A status line on standard output ("wrote …", "world eu: initialised"),
/// unless `-q` was given.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        if !$crate::output::quiet() {
            println!($($arg)*);
        }
    };
}
