//! Files: reading inputs with a size cap (a hostile or mistaken input, a
//! disk image or a 512 MB CBOR array, is refused after reading at most one
//! byte more than the cap, never loaded whole), and writing outputs and state
//! atomically. Both binaries use these; no other code opens files for writing.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// An I/O failure on a named file.
#[derive(Debug, Error)]
#[error("{}: {source}", path.display())]
pub struct FileError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

fn at(path: &Path) -> impl FnOnce(std::io::Error) -> FileError + '_ {
    move |source| FileError {
        path: path.to_path_buf(),
        source,
    }
}

/// fsync a directory, so a rename or unlink in it survives a crash.
pub fn sync_dir(dir: &Path) -> Result<(), FileError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(at(dir))
}

/// Write `data` to `path` atomically: a new temporary file beside it (mode
/// `mode`, a name no other writer uses), fsync, rename over `path`, fsync of
/// the directory. A failure removes the temporary file and leaves `path` as
/// it was; a crash leaves at most a `.NAME.tmp.*` file, never a partial `path`.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), FileError> {
    write_atomic_unsynced(path, data, mode)?;
    sync_dir(parent(path))
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// [`write_atomic`] without the fsync of the directory: for a batch of files
/// in one directory (a fleet's packages), which the caller syncs once with
/// [`sync_dir`] after the last. Until then a crash may lose a rename, never
/// leave a partial file.
pub fn write_atomic_unsynced(path: &Path, data: &[u8], mode: u32) -> Result<(), FileError> {
    let dir = parent(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    // The process id alone repeats across boots and containers: a random
    // suffix keeps a stale temporary file from blocking the write.
    let tmp = dir.join(format!(
        ".{name}.tmp.{}.{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let r = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(at(&tmp))?;
        f.write_all(data).map_err(at(&tmp))?;
        f.sync_all().map_err(at(&tmp))?;
        std::fs::rename(&tmp, path).map_err(at(path))
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// The first buffer of [`read_capped`]: evidence files are 3-5 KiB.
const FIRST_READ: u64 = 16 * 1024;

/// The first `max + 1` bytes of `path` at most: a result longer than `max`
/// means the file is too big (the decoders refuse it by length).
pub fn read_capped(path: &Path, max: usize) -> std::io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let cap = (max as u64).saturating_add(1);
    // No stat for the size: a batch reads thousands of small files, and a
    // first buffer that holds a typical one makes it two reads (the second
    // sees the end) and no system call more.
    let mut out = Vec::with_capacity(cap.min(FIRST_READ) as usize);
    file.take(cap).read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::read_capped;

    #[test]
    fn atomic_writes_replace_whole_files_with_their_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("byok-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f");
        super::write_atomic(&p, b"one", 0o600).unwrap();
        super::write_atomic(&p, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // A missing directory: an error naming the temporary file, nothing left.
        let e = super::write_atomic(&dir.join("no/f"), b"x", 0o600).unwrap_err();
        assert!(e.path.starts_with(dir.join("no")));
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reads_at_most_one_byte_past_the_cap() {
        let dir = std::env::temp_dir().join(format!("byok-capped-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f");
        std::fs::write(&p, vec![7u8; 100]).unwrap();
        assert_eq!(read_capped(&p, 1000).unwrap().len(), 100);
        assert_eq!(read_capped(&p, 100).unwrap().len(), 100);
        assert_eq!(read_capped(&p, 10).unwrap().len(), 11);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
