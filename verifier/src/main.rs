//! byok-verifier: parse the command line (`cli.rs`), run the command
//! (`commands.rs`, on the library's checks), print one error line and exit
//! with the error's code on failure.
#![forbid(unsafe_code)]

mod cli;
mod commands;

use byok_protocol::text::inert;
use clap::Parser;
use cli::{Cli, Command};

// Batch verification allocates many small buffers on every core; glibc's
// per-thread arenas showed up in profiles (sysmalloc, mprotect).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = Cli::parse();
    byok_protocol::output::set_quiet(cli.quiet);
    byok_protocol::output::set_force(cli.force);
    let r = match cli.command {
        Command::Verify(a) => commands::verify(a),
        Command::Challenge(a) => commands::challenge(a),
        Command::Enroll(a) => commands::enroll(a),
        Command::Wrap(a) => commands::wrap(a),
        Command::CheckReceipt(a) => commands::check_receipt(a),
        Command::EkCert(a) => commands::ek_cert(a),
        Command::Inspect(a) => commands::inspect(a),
        Command::Keygen(a) => commands::keygen(a),
    };
    if let Err(e) = r {
        eprintln!("byok-verifier: error: {}", inert(&e.to_string()));
        std::process::exit(e.exit_code());
    }
}
