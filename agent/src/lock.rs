//! Waiting for a lock another byok-agent holds (the state directory's, the
//! TPM's): saying whom we wait for after a second, giving up after
//! `--lock-timeout`, and leaving our pid for the next one that waits.

use crate::error::{io, AgentError, Result};
use std::fs::{self, File};
use std::path::Path;
use std::time::{Duration, Instant};

/// Write our pid into a lock file we hold, for the next agent that has to wait.
pub fn write_holder(lock: &mut File) {
    use std::io::{Seek, Write};
    let _ = lock.set_len(0).and_then(|_| {
        lock.seek(std::io::SeekFrom::Start(0))?;
        write!(lock, "{}", std::process::id())
    });
}

/// Take the exclusive lock on `file`, saying after a second whom we wait for.
pub fn wait_for_lock(file: &File, path: &Path, timeout: Option<Duration>) -> Result<()> {
    let start = Instant::now();
    let mut said = false;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => return Err(io(path)(e)),
        }
        let waited = start.elapsed();
        let holder = || {
            fs::read_to_string(path)
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
                .map(|pid| format!("byok-agent (pid {pid})"))
                .unwrap_or_else(|| "another byok-agent".into())
        };
        if let Some(t) = timeout {
            if waited >= t {
                return Err(AgentError::LockTimeout {
                    path: path.display().to_string(),
                    holder: holder(),
                    secs: t.as_secs_f64(),
                });
            }
        }
        if !said && waited >= Duration::from_secs(1) {
            eprintln!(
                "byok-agent: waiting for {} to release {}",
                holder(),
                path.display()
            );
            said = true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
