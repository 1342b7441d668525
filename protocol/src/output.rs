//! What the binaries print on success, in one place: status lines go
//! through [`say!`], which `-q` silences; results a command was asked for
//! (listings, JSON, verdicts on standard output) are printed directly.
//! Errors always reach standard error.

use std::sync::atomic::{AtomicBool, Ordering};

static QUIET: AtomicBool = AtomicBool::new(false);

/// `-q`: status lines off for the rest of the process.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
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
