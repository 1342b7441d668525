//! byok-agent: the TPM host side of tpm-byok.
#![forbid(unsafe_code)]

mod byok;
mod commands;
mod error;
mod keys;
mod state;
mod tpm;
mod world;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "byok-agent",
    version,
    about = "tpm-byok agent: keys in TPM custody (runs on the TPM host)"
)]
struct Cli {
    /// TPM2 TCTI (else BYOK_TCTI, TPM2TOOLS_TCTI, TCTI, device:/dev/tpmrm0).
    #[arg(long, global = true)]
    tcti: Option<String>,
    /// State directory (else BYOK_STATE_DIR, else a per-user default).
    #[arg(long, global = true)]
    state_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the world's KEK and AK in the TPM (the EK is taken from the TPM).
    Init {
        #[arg(long)]
        world: String,
        /// Also create an unrestricted RSA-3072 decryption KEK for Azure-style
        /// `.byok` files (CKM_RSA_AES_KEY_WRAP; see docs/cloud.md for its weaker property).
        #[arg(long)]
        compat_kek: bool,
        /// The KEK's type: rsa2048, p256 or p384.
        #[arg(long, default_value = "rsa2048")]
        kek_alg: String,
        /// The EK that vouches for the AK: auto (the first with a certificate
        /// in NV: RSA, then ECC P-256, then ECC P-384), rsa, ecc-p256 or ecc-p384.
        #[arg(long, default_value = "auto")]
        ek: String,
        /// Bind the KEK to the current values of these PCRs (e.g. sha256:0,7):
        /// the TPM imports and loads keys under it only in that platform state.
        #[arg(long)]
        pcrs: Option<String>,
    },
    /// The world's KEK: export the compat KEK's public key, or rotate the KEK.
    Kek {
        #[command(subcommand)]
        action: KekAction,
    },
    /// List the worlds on this host and the state of their KEKs in the TPM.
    Worlds {
        #[command(subcommand)]
        action: Option<WorldsAction>,
    },
    /// Destroy a world: evict its KEKs from the TPM, delete its keys and state.
    World {
        #[command(subcommand)]
        action: WorldAction,
    },
    /// Write TPM-signed evidence for the world's KEK.
    Evidence {
        #[arg(long)]
        world: String,
        /// The operator's nonce, hex (8-64 bytes).
        #[arg(long)]
        nonce: String,
        /// PCRs to quote: sha256:0,7 (or bare 0,7; the sha256 bank).
        #[arg(long, default_value = "0,1,2,3,4,5,6,7")]
        pcrs: String,
        #[arg(short = 'o', long)]
        out: PathBuf,
    },
    /// Import a transfer package (or an Azure-style .byok file for the compat KEK) under the world's KEK.
    Import {
        #[arg(long)]
        world: String,
        #[arg(long = "in")]
        input: PathBuf,
        #[arg(long)]
        name: String,
    },
    /// Answer a credential challenge from `byok-verifier challenge` (proves the
    /// AK and the EK are in this TPM).
    Activate {
        #[arg(long)]
        world: String,
        #[arg(long = "in")]
        input: PathBuf,
        #[arg(short = 'o', long)]
        out: PathBuf,
    },
    /// List, show, delete or create keys (`key` works too).
    #[command(alias = "key")]
    Keys {
        #[command(subcommand)]
        action: Option<KeysAction>,
    },
    /// Write a key's public key as PEM (SubjectPublicKeyInfo).
    Public {
        #[arg(long)]
        key: String,
        #[arg(short = 'o', long)]
        out: PathBuf,
    },
    /// Sign a file with a key inside the TPM.
    Sign {
        #[arg(long)]
        key: String,
        #[arg(long = "in")]
        input: PathBuf,
        #[arg(short = 'o', long)]
        out: PathBuf,
        /// sha256, sha384 or sha512.
        #[arg(long, default_value = "sha256")]
        hash: String,
        /// RSA padding: pkcs1 or pss (EC keys always use ECDSA).
        #[arg(long, default_value = "pkcs1")]
        scheme: String,
    },
    /// Decrypt with a key inside the TPM: RSA-OAEP for RSA keys, AES-256-CFB
    /// (input: 16-byte IV || ciphertext, as `encrypt` writes) for AES keys.
    Decrypt {
        #[arg(long)]
        key: String,
        #[arg(long = "in")]
        input: PathBuf,
        #[arg(short = 'o', long)]
        out: PathBuf,
        /// OAEP hash (and MGF1 hash) for RSA keys: sha256, sha384 or sha512.
        #[arg(long, default_value = "sha256")]
        hash: String,
    },
    /// Encrypt with an AES key inside the TPM (AES-256-CFB, random IV; writes IV || ciphertext).
    Encrypt {
        #[arg(long)]
        key: String,
        #[arg(long = "in")]
        input: PathBuf,
        #[arg(short = 'o', long)]
        out: PathBuf,
    },
    /// HMAC-SHA-256 of a file (at most 1024 bytes) with an HMAC key inside the TPM.
    Hmac {
        #[arg(long)]
        key: String,
        #[arg(long = "in")]
        input: PathBuf,
        #[arg(short = 'o', long)]
        out: PathBuf,
    },
    /// Seal a secret (at most 128 bytes) to this TPM under the world's KEK,
    /// optionally to the current values of some PCRs.
    Seal {
        #[arg(long)]
        world: String,
        #[arg(long)]
        name: String,
        #[arg(long = "in")]
        input: PathBuf,
        /// Release only while these PCRs keep their current values, e.g. sha256:0,7.
        #[arg(long)]
        pcrs: Option<String>,
    },
    /// Unseal a sealed secret (the TPM checks its PCR policy, if any).
    Unseal {
        #[arg(long)]
        name: String,
        #[arg(short = 'o', long)]
        out: PathBuf,
    },
    /// Write a key as a TSS2 PRIVATE KEY file for OpenSSL's tpm2 provider
    /// (the private part stays TPM-encrypted; the world's KEK is the parent).
    Keyfile {
        #[arg(long)]
        key: String,
        #[arg(short = 'o', long)]
        out: PathBuf,
    },
    /// Certify a key with the world's AK and write a receipt.
    AttestKey {
        #[arg(long)]
        key: String,
        #[arg(long)]
        nonce: String,
        #[arg(short = 'o', long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum KekAction {
    /// Export the world's compat KEK public key (PEM or JWK with a kid).
    Export {
        #[arg(long)]
        world: String,
        /// pem or jwk.
        #[arg(long, default_value = "pem")]
        format: String,
        /// Output file (default: standard output).
        #[arg(short = 'o', long)]
        out: Option<PathBuf>,
    },
    /// Replace the world's KEK by a new one (the old one stays for the keys under it).
    Rotate {
        #[arg(long)]
        world: String,
        /// PCR binding of the new KEK (e.g. sha256:0,7, or "none"); default:
        /// the old KEK's PCRs at their current values.
        #[arg(long)]
        pcrs: Option<String>,
    },
}

#[derive(Subcommand)]
enum WorldsAction {
    List,
}

#[derive(Subcommand)]
enum WorldAction {
    /// Evict the world's KEKs and delete its keys and state (irreversible).
    Destroy {
        #[arg(long)]
        world: String,
        /// Confirm.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand)]
enum KeysAction {
    /// List keys (name, world, algorithm, origin), optionally of one world.
    List {
        #[arg(long)]
        world: Option<String>,
    },
    Show {
        name: String,
    },
    Delete {
        name: String,
    },
    /// Generate a key inside the TPM under the world's KEK (never leaves the TPM).
    Create {
        #[arg(long)]
        world: String,
        #[arg(long)]
        name: String,
        /// rsa2048, rsa3072, p256, p384, aes256 or hmac-sha256.
        #[arg(long)]
        alg: String,
        /// Usable only while these PCRs keep their current values, e.g. sha256:0,7.
        #[arg(long)]
        pcrs: Option<String>,
    },
}

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

fn main() {
    let cli = Cli::parse();
    let ctx = commands::Ctx {
        tcti: tcti(&cli.tcti),
        state_dir: state_dir(&cli.state_dir),
    };
    let r = match cli.command {
        Command::Init {
            world,
            compat_kek,
            kek_alg,
            ek,
            pcrs,
        } => world::init(
            &ctx,
            &world,
            &world::InitOptions {
                compat: compat_kek,
                kek_alg: &kek_alg,
                ek: &ek,
                pcrs: pcrs.as_deref(),
            },
        ),
        Command::Kek { action } => match action {
            KekAction::Export { world, format, out } => {
                byok::export_kek(&ctx, &world, &format, out.as_deref())
            }
            KekAction::Rotate { world, pcrs } => world::kek_rotate(&ctx, &world, pcrs.as_deref()),
        },
        Command::Worlds { action } => match action.unwrap_or(WorldsAction::List) {
            WorldsAction::List => world::worlds_list(&ctx),
        },
        Command::World { action } => match action {
            WorldAction::Destroy { world, yes } => world::world_destroy(&ctx, &world, yes),
        },
        Command::Evidence {
            world,
            nonce,
            pcrs,
            out,
        } => commands::evidence(&ctx, &world, &nonce, &pcrs, &out),
        Command::Import { world, input, name } => commands::import(&ctx, &world, &input, &name),
        Command::Activate { world, input, out } => commands::activate(&ctx, &world, &input, &out),
        Command::Keys { action } => match action.unwrap_or(KeysAction::List { world: None }) {
            KeysAction::List { world } => commands::keys_list(&ctx, world.as_deref()),
            KeysAction::Show { name } => commands::keys_show(&ctx, &name),
            KeysAction::Delete { name } => commands::keys_delete(&ctx, &name),
            KeysAction::Create {
                world,
                name,
                alg,
                pcrs,
            } => keys::create(&ctx, &world, &name, &alg, pcrs.as_deref()),
        },
        Command::Public { key, out } => commands::public(&ctx, &key, &out),
        Command::Sign {
            key,
            input,
            out,
            hash,
            scheme,
        } => keys::sign(&ctx, &key, &input, &out, &hash, &scheme),
        Command::Decrypt {
            key,
            input,
            out,
            hash,
        } => keys::decrypt(&ctx, &key, &input, &out, &hash),
        Command::Encrypt { key, input, out } => keys::encrypt(&ctx, &key, &input, &out),
        Command::Hmac { key, input, out } => keys::hmac(&ctx, &key, &input, &out),
        Command::Seal {
            world,
            name,
            input,
            pcrs,
        } => keys::seal(&ctx, &world, &name, &input, pcrs.as_deref()),
        Command::Unseal { name, out } => keys::unseal(&ctx, &name, &out),
        Command::Keyfile { key, out } => keys::keyfile(&ctx, &key, &out),
        Command::AttestKey { key, nonce, out } => commands::attest_key(&ctx, &key, &nonce, &out),
    };
    if let Err(e) = r {
        eprintln!(
            "byok-agent: error: {}",
            byok_protocol::text::inert(&e.to_string())
        );
        std::process::exit(e.exit_code());
    }
}
