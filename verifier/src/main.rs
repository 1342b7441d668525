//! byok-verifier: parse the command line (`cli.rs`), run the command
//! (`commands.rs`, on the library's checks), print one error line and exit
//! with the error's code on failure.
#![forbid(unsafe_code)]

mod cli;
mod commands;
mod fleet_commands;

use byok_protocol::text::inert;
use clap::Parser;
use cli::{Cli, Command};

// Batch verification allocates many small buffers on every core; glibc's
// per-thread arenas showed up in profiles (sysmalloc, mprotect).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `man`: the pages into a directory, or the main page on standard output.
fn man_pages(dir: Option<&std::path::Path>) -> Result<(), byok_verifier::error::VerifyError> {
    use clap::CommandFactory;
    let r = match dir {
        Some(d) => byok_protocol::cli_docs::write_man_pages(Cli::command(), d).map(|files| {
            byok_protocol::say!("{} man pages written to {}", files.len(), d.display());
        }),
        None => byok_protocol::cli_docs::write_man_page(Cli::command(), &mut std::io::stdout()),
    };
    r.map_err(byok_verifier::error::io(
        dir.unwrap_or(std::path::Path::new("(standard output)")),
    ))
}

fn main() {
    // Die quietly of SIGPIPE when the reader goes away (`| head`), as every
    // Unix tool does, instead of panicking in println!.
    sigpipe::reset();
    let cli = Cli::parse();
    byok_protocol::output::set_quiet(cli.quiet);
    byok_protocol::output::set_force(cli.force);
    let r = match cli.command {
        Command::Verify(a) => commands::verify(a),
        Command::Challenge(a) => commands::challenge(a),
        Command::Enroll(a) => commands::enroll(a),
        Command::Wrap(a) => commands::wrap(a),
        Command::CheckReceipt(a) => commands::check_receipt(a),
        Command::Nonces(a) => fleet_commands::nonces(a),
        Command::EkCert(a) => commands::ek_cert(a),
        Command::Inspect(a) => commands::inspect(a),
        Command::Keygen(a) => commands::keygen(a),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            byok_protocol::cli_docs::write_completions(
                &mut Cli::command(),
                shell,
                &mut std::io::stdout(),
            )
            .map_err(byok_verifier::error::io(std::path::Path::new(
                "(standard output)",
            )))
        }
        Command::Man { out_dir } => man_pages(out_dir.as_deref()),
    };
    if let Err(e) = r {
        eprintln!("byok-verifier: error: {}", inert(&e.to_string()));
        std::process::exit(e.exit_code());
    }
}
