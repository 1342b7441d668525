//! Progress on standard error for the binaries (indicatif): a spinner for
//! a TPM command that takes seconds (key generation: up to a minute on some
//! real TPMs) and a bar for batches. Drawn only when standard error is a
//! terminal and `-q` was not given, and cleared when done, so scripts, logs
//! and pipes see nothing.

use std::io::IsTerminal;
use std::time::Duration;

/// A batch needs a bar only above this many files.
pub const BATCH_BAR_MIN: usize = 4;

/// A spinner or a bar; does nothing when progress is not shown. Cleared
/// when dropped; shared between threads by reference.
pub struct Progress(Option<indicatif::ProgressBar>);

fn shown() -> bool {
    !crate::output::quiet() && std::io::stderr().is_terminal()
}

impl Progress {
    /// A spinner with `message` while a long operation runs.
    pub fn spinner(message: impl Into<String>) -> Progress {
        if !shown() {
            return Progress(None);
        }
        let p = indicatif::ProgressBar::new_spinner();
        p.set_message(message.into());
        p.enable_steady_tick(Duration::from_millis(120));
        Progress(Some(p))
    }

    /// No progress shown.
    pub fn none() -> Progress {
        Progress(None)
    }

    /// A bar over `len` items (files); none for a handful.
    pub fn bar(len: usize, what: &str) -> Progress {
        if len < BATCH_BAR_MIN || !shown() {
            return Progress(None);
        }
        let p = indicatif::ProgressBar::new(len as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{bar:40} {human_pos}/{human_len} {msg} ({per_sec}, {eta} left)",
        ) {
            p.set_style(style);
        }
        p.set_message(what.to_string());
        Progress(Some(p))
    }

    pub fn inc(&self) {
        if let Some(p) = &self.0 {
            p.inc(1);
        }
    }

    /// Run `f` (which writes to the terminal) with the bar cleared.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.0 {
            Some(p) => p.suspend(f),
            None => f(),
        }
    }

    pub fn is_shown(&self) -> bool {
        self.0.is_some()
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            p.finish_and_clear();
        }
    }
}
