//! byok-agent: the TPM host side of tpm-byok.
#![forbid(unsafe_code)]

mod cli;
mod cmd;
mod context;
mod error;
mod lock;
mod report;
mod state;
mod tpm;
mod trace;

use clap::Parser;
use cli::{Cli, Command, KekAction, KeysAction, WorldAction, WorldsAction};
use std::path::PathBuf;

/// `--tcti`, else BYOK_TCTI, TPM2TOOLS_TCTI, TCTI, else device:/dev/tpmrm0.
fn tcti(cli: Option<&str>) -> Result<byok_protocol::tcti::Tcti, byok_protocol::tcti::TctiError> {
    byok_protocol::tcti::Tcti::resolve(cli, |var| std::env::var(var).ok())
}

/// The state directory: `--state-dir`, `BYOK_STATE_DIR`, else the default
/// for this user (see [`default_state_dir`]).
fn state_dir(cli: &Option<PathBuf>) -> Result<PathBuf, error::AgentError> {
    if let Some(d) = cli {
        return Ok(d.clone());
    }
    if let Some(d) = std::env::var_os("BYOK_STATE_DIR").filter(|s| !s.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    default_state_dir(
        uid,
        std::env::var_os("XDG_STATE_HOME"),
        std::env::var_os("HOME"),
    )
}

/// `/var/lib/tpm-byok` for root (a system service's state), else
/// `$XDG_STATE_HOME/tpm-byok`, else `$HOME/.local/state/tpm-byok`; relative
/// values are ignored (the XDG rule), and with neither it is an error, never
/// the current directory.
fn default_state_dir(
    uid: Option<u32>,
    xdg_state_home: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Result<PathBuf, error::AgentError> {
    if uid == Some(0) {
        return Ok(PathBuf::from("/var/lib/tpm-byok"));
    }
    let absolute = |v: Option<std::ffi::OsString>| v.map(PathBuf::from).filter(|p| p.is_absolute());
    if let Some(d) = absolute(xdg_state_home) {
        return Ok(d.join("tpm-byok"));
    }
    if let Some(h) = absolute(home) {
        return Ok(h.join(".local/state/tpm-byok"));
    }
    Err(error::AgentError::InvalidArgument {
        what: "state directory",
        detail: "HOME and XDG_STATE_HOME are not set (or not absolute paths); pass --state-dir DIR or set BYOK_STATE_DIR".into(),
    })
}

/// `man`: the pages into a directory, or the main page on standard output.
fn man_pages(dir: Option<&std::path::Path>) -> Result<(), error::AgentError> {
    use clap::CommandFactory;
    let r = match dir {
        Some(d) => byok_protocol::cli_docs::write_man_pages(Cli::command(), d).map(|files| {
            byok_protocol::say!("{} man pages written to {}", files.len(), d.display());
        }),
        None => byok_protocol::cli_docs::write_man_page(Cli::command(), &mut std::io::stdout()),
    };
    r.map_err(error::io(
        dir.unwrap_or(std::path::Path::new("(standard output)")),
    ))
}

/// An auth option's value as the typed secret; a malformed one is a usage
/// error that names the option and the form, never the value.
fn auth_value(
    opt: &'static str,
    text: Option<String>,
) -> Result<Option<byok_protocol::auth::AuthValue>, error::AgentError> {
    let Some(text) = text.map(zeroize::Zeroizing::new) else {
        return Ok(None);
    };
    text.parse()
        .map(Some)
        .map_err(|detail| error::AgentError::InvalidArgument { what: opt, detail })
}

// Long on purpose: one arm per command, the dispatch table.
fn main() {
    // Die quietly of SIGPIPE when the reader goes away (`| head`), as every
    // Unix tool does, instead of panicking in println!.
    sigpipe::reset();
    let mut cli = Cli::parse();
    byok_protocol::output::set_quiet(cli.quiet);
    byok_protocol::output::set_force(cli.force);
    // What needs neither the TPM nor the state (packaging runs these).
    let docs = match &cli.command {
        Command::Completions { shell } => Some({
            use clap::CommandFactory;
            byok_protocol::cli_docs::write_completions(
                &mut Cli::command(),
                *shell,
                &mut std::io::stdout(),
            )
            .map_err(error::io(std::path::Path::new("(standard output)")))
        }),
        Command::Man { out_dir } => Some(man_pages(out_dir.as_deref())),
        _ => None,
    };
    if let Some(r) = docs {
        exit_on_error(r, "");
        return;
    }
    let auth = match (
        auth_value("--owner-auth", cli.owner_auth.take()),
        auth_value("--endorsement-auth", cli.endorsement_auth.take()),
    ) {
        (Ok(owner), Ok(endorsement)) => tpm::HierarchyAuth { owner, endorsement },
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("byok-agent: error: {e}");
            std::process::exit(e.exit_code());
        }
    };
    // A bad TCTI is a usage error, refused before anything is created.
    let tcti = match tcti(cli.tcti.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            let e = error::AgentError::BadTcti(e);
            eprintln!(
                "byok-agent: error: {}",
                byok_protocol::text::inert(&e.to_string())
            );
            std::process::exit(e.exit_code());
        }
    };
    let ctx = context::Ctx {
        tcti,
        state_dir: match state_dir(&cli.state_dir) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("byok-agent: error: {e}");
                std::process::exit(e.exit_code());
            }
        },
        lock_timeout: cli
            .lock_timeout
            .map(|s| std::time::Duration::from_secs_f64(s.clamp(0.0, 1e9))),
        auth,
    };
    // The TPM software stack logs to standard error on its own (for one, an
    // ERROR line for every Esys_TR_Close of a handle it already closed):
    // silent unless asked. -v: one line per TPM command with its response
    // code (trace.rs); -vv: the ESYS layer's own trace in full. Set before
    // the first TSS call reads it; the process has one thread here (and
    // nothing below exits before the trace is finished).
    let mut tracer = None;
    if std::env::var_os("TSS2_LOG").is_none() {
        match cli.verbose {
            0 => std::env::set_var("TSS2_LOG", "all+none"),
            1 => tracer = trace::Tracer::start(),
            _ => std::env::set_var("TSS2_LOG", "all+warning,esys+trace"),
        }
    }
    let r = match cli.command {
        Command::Completions { .. } | Command::Man { .. } => unreachable!("handled above"),
        Command::Doctor { json } => cmd::doctor::doctor(&ctx, json),
        Command::Init {
            world,
            compat_kek,
            kek_alg,
            ek,
            pcrs,
            ek_cert_elsewhere,
            json,
        } => cmd::world::init(
            &ctx,
            &world,
            &cmd::world::InitOptions {
                compat: compat_kek,
                kek_alg,
                ek: ek.kind(),
                pcrs: pcrs.as_ref(),
                ek_cert_elsewhere,
                json,
            },
        ),
        Command::Kek { action } => match action {
            KekAction::Export { world, format, out } => {
                cmd::transfer::export_kek(&ctx, &world, format, out.as_deref())
            }
            KekAction::Rotate { world, pcrs } => {
                cmd::world::kek_rotate(&ctx, &world, pcrs.as_ref())
            }
            KekAction::Gc { world } => cmd::world::kek_gc(&ctx, world.as_ref()),
        },
        Command::Worlds { action } => match action.unwrap_or(WorldsAction::List { json: false }) {
            WorldsAction::List { json } => cmd::world::worlds_list(&ctx, json),
        },
        Command::World { action } => match action {
            WorldAction::Destroy { world, yes } => cmd::world::world_destroy(&ctx, &world, yes),
        },
        Command::Evidence {
            world,
            nonce,
            pcrs,
            ek_cert,
            out,
        } => cmd::attest::evidence(&ctx, &world, &nonce, &pcrs, ek_cert.as_deref(), &out),
        Command::Import {
            world,
            input,
            name,
            json,
        } => cmd::transfer::import(&ctx, &world, &input, &name, json),
        Command::Activate { world, input, out } => {
            cmd::attest::activate(&ctx, &world, &input, &out)
        }
        Command::Keys { action } => match action.unwrap_or(KeysAction::List {
            world: None,
            json: false,
        }) {
            KeysAction::List { world, json } => cmd::keys::keys_list(&ctx, world.as_ref(), json),
            KeysAction::Show { name, json } => cmd::keys::keys_show(&ctx, &name, json),
            KeysAction::Delete { name, yes } => cmd::keys::keys_delete(&ctx, &name, yes),
            KeysAction::Create {
                world,
                name,
                alg,
                pcrs,
            } => cmd::keys::create(&ctx, &world, &name, alg, pcrs.as_ref()),
        },
        Command::Public { key, out } => cmd::keys::public(&ctx, &key, &out),
        Command::Sign {
            key,
            input,
            out,
            hash,
            scheme,
        } => cmd::keys::sign(&ctx, &key, &input, &out, hash, scheme),
        Command::Decrypt {
            key,
            input,
            out,
            hash,
        } => cmd::keys::decrypt(&ctx, &key, &input, &out, hash),
        Command::Encrypt { key, input, out } => cmd::keys::encrypt(&ctx, &key, &input, &out),
        Command::Hmac { key, input, out } => cmd::keys::hmac(&ctx, &key, &input, &out),
        Command::Seal {
            world,
            name,
            input,
            pcrs,
        } => cmd::keys::seal(&ctx, &world, &name, &input, pcrs.as_ref()),
        Command::Unseal { name, out } => cmd::keys::unseal(&ctx, &name, &out),
        Command::Keyfile { key, out } => cmd::keys::keyfile(&ctx, &key, &out),
        Command::AttestKey { key, nonce, out } => cmd::attest::attest_key(&ctx, &key, &nonce, &out),
    };
    if let Some(t) = tracer.as_mut() {
        t.finish();
    }
    exit_on_error(r, &ctx.tcti.to_string());
}

/// One line on standard error and the error's exit code, if `r` failed.
fn exit_on_error(r: Result<(), error::AgentError>, tcti: &str) {
    if let Err(e) = r {
        let e = e.diagnosed(tcti, state::changed());
        eprintln!(
            "byok-agent: error: {}",
            byok_protocol::text::inert(&e.to_string())
        );
        std::process::exit(e.exit_code());
    }
}

#[cfg(test)]
mod tests {
    use super::default_state_dir;
    use std::path::PathBuf;

    #[test]
    fn the_default_state_directory_is_never_the_current_one() {
        let s = |v: &str| Some(std::ffi::OsString::from(v));
        let dir = |uid, x, h| default_state_dir(uid, x, h).ok();
        assert_eq!(
            dir(Some(0), s("/x"), s("/h")),
            Some(PathBuf::from("/var/lib/tpm-byok"))
        );
        assert_eq!(
            dir(Some(7), s("/x"), s("/h")),
            Some(PathBuf::from("/x/tpm-byok"))
        );
        assert_eq!(
            dir(Some(7), None, s("/h")),
            Some(PathBuf::from("/h/.local/state/tpm-byok"))
        );
        assert_eq!(
            dir(Some(7), s("rel"), s("/h")),
            Some(PathBuf::from("/h/.local/state/tpm-byok"))
        );
        assert_eq!(dir(Some(7), None, None), None);
        assert_eq!(dir(Some(7), s(""), s("")), None);
        assert_eq!(dir(None, None, s("relative")), None);
    }
}
