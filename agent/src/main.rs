//! byok-agent: the TPM host side of tpm-byok.
#![forbid(unsafe_code)]

mod cli;
mod cmd;
mod context;
mod error;
mod state;
mod tpm;

use clap::Parser;
use cli::{Cli, Command, KekAction, KeysAction, WorldAction, WorldsAction};
use std::path::PathBuf;

fn tcti(cli: &Option<String>) -> String {
    cli.clone()
        .or_else(|| std::env::var("BYOK_TCTI").ok())
        .or_else(|| std::env::var("TPM2TOOLS_TCTI").ok())
        .or_else(|| std::env::var("TCTI").ok())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "device:/dev/tpmrm0".to_string())
}

fn state_dir(cli: &Option<PathBuf>) -> PathBuf {
    if let Some(d) = cli {
        return d.clone();
    }
    if let Some(d) = std::env::var_os("BYOK_STATE_DIR").filter(|s| !s.is_empty()) {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|s| !s.is_empty()) {
        return PathBuf::from(d).join("tpm-byok");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/state/tpm-byok")
}

// Long on purpose: one arm per command, the dispatch table.
fn main() {
    let cli = Cli::parse();
    let ctx = context::Ctx {
        tcti: tcti(&cli.tcti),
        state_dir: state_dir(&cli.state_dir),
        lock_timeout: cli
            .lock_timeout
            .map(|s| std::time::Duration::from_secs_f64(s.clamp(0.0, 1e9))),
    };
    let r = match cli.command {
        Command::Init {
            world,
            compat_kek,
            kek_alg,
            ek,
            pcrs,
        } => cmd::world::init(
            &ctx,
            &world,
            &cmd::world::InitOptions {
                compat: compat_kek,
                kek_alg,
                ek: ek.kind(),
                pcrs: pcrs.as_ref(),
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
            out,
        } => cmd::attest::evidence(&ctx, &world, &nonce, &pcrs, &out),
        Command::Import { world, input, name } => {
            cmd::transfer::import(&ctx, &world, &input, &name)
        }
        Command::Activate { world, input, out } => {
            cmd::attest::activate(&ctx, &world, &input, &out)
        }
        Command::Keys { action } => match action.unwrap_or(KeysAction::List { world: None }) {
            KeysAction::List { world } => cmd::keys::keys_list(&ctx, world.as_ref()),
            KeysAction::Show { name } => cmd::keys::keys_show(&ctx, &name),
            KeysAction::Delete { name } => cmd::keys::keys_delete(&ctx, &name),
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
    if let Err(e) = r {
        let e = e.diagnosed(&ctx.tcti, state::changed());
        eprintln!(
            "byok-agent: error: {}",
            byok_protocol::text::inert(&e.to_string())
        );
        std::process::exit(e.exit_code());
    }
}
