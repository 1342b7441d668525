//! The byok-agent command line (clap derive). Enum-like options are
//! `ValueEnum`s: `--help` lists their values and clap refuses others.

use byok_protocol::policy::PcrSpec;
use byok_protocol::templates::{BornKeyAlg, KekAlg};
use byok_protocol::world::WorldId;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "byok-agent",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("BYOK_COMMIT"), ")"),
    about = "tpm-byok agent: keys in TPM custody (runs on the TPM host)"
)]
pub struct Cli {
    /// Print errors only (no status lines; listings and JSON still print).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Trace each TPM command with its response code, and show the TPM
    /// software stack's warnings (-v); the stack's own ESYS trace in full
    /// (-vv). TSS2_LOG, when set, is left as it is.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Let outputs (-o) replace existing files (refused otherwise).
    #[arg(long, global = true)]
    pub force: bool,
    /// TPM2 TCTI (else BYOK_TCTI, TPM2TOOLS_TCTI, TCTI, device:/dev/tpmrm0).
    #[arg(long, global = true)]
    pub tcti: Option<String>,
    /// State directory (else BYOK_STATE_DIR, else /var/lib/tpm-byok for root,
    /// $XDG_STATE_HOME/tpm-byok or ~/.local/state/tpm-byok for others).
    #[arg(long, global = true)]
    pub state_dir: Option<PathBuf>,
    /// Give up waiting for another byok-agent using the same state directory
    /// after this many seconds (default: wait, saying so after a second).
    #[arg(long, global = true, value_name = "SECS")]
    pub lock_timeout: Option<f64>,
    /// The TPM owner hierarchy's password, if it has one (`tpm2_changeauth -c o`):
    /// str:TEXT, hex:HEX, file:PATH (- for stdin) or env:NAME, as tpm2-tools' -P.
    // Parsed after clap, so that a malformed value is never echoed.
    #[arg(long, global = true, value_name = "AUTH")]
    pub owner_auth: Option<String>,
    /// The endorsement hierarchy's password, if it has one (same forms).
    #[arg(long, global = true, value_name = "AUTH")]
    pub endorsement_auth: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Print a shell completion script.
    #[command(
        after_help = "Example:\n  byok-agent completions bash > /etc/bash_completion.d/byok-agent"
    )]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: byok_protocol::cli_docs::Shell,
    },
    /// Write the man pages (one per subcommand) into a directory, or the
    /// main page on standard output.
    #[command(after_help = "Example:\n  byok-agent man -o /usr/local/share/man/man1")]
    Man {
        /// The directory for NAME.1 and NAME-SUBCOMMAND.1 (default: the main
        /// page on standard output).
        #[arg(short = 'o', long)]
        out_dir: Option<PathBuf>,
    },
    /// Check that this host is ready (TPM, EK certificates, PCR banks, room,
    /// lockout, passwords, state directory); each problem with its fix.
    /// Exits 0 only when nothing needs fixing.
    #[command(after_help = "Example:\n  byok-agent doctor --tcti device:/dev/tpmrm0")]
    Doctor {
        /// One JSON object on standard output.
        #[arg(long)]
        json: bool,
    },
    /// Create the world's KEK and AK in the TPM (the EK is taken from the TPM).
    #[command(after_help = "Example:\n  byok-agent init --world eu-west --kek-alg p256")]
    Init {
        /// The world (a region or tenant: the id given to `init`).
        #[arg(long)]
        world: WorldId,
        /// Also create an unrestricted RSA-3072 decryption KEK for Azure-style
        /// `.byok` files (CKM_RSA_AES_KEY_WRAP; see docs/cloud.md for its weaker property).
        #[arg(long)]
        compat_kek: bool,
        /// The KEK's type.
        #[arg(long, value_enum, default_value_t = KekAlg::Rsa2048)]
        kek_alg: KekAlg,
        /// The EK that vouches for the AK (auto: the first with a certificate
        /// in NV: RSA, then ECC P-256, then ECC P-384).
        #[arg(long, value_enum, default_value_t = EkChoice::Auto)]
        ek: EkChoice,
        /// Bind the KEK to the current values of these PCRs (e.g. sha256:0,7):
        /// the TPM imports and loads keys under it only in that platform state.
        #[arg(long)]
        pcrs: Option<PcrSpec>,
        /// The EK certificate is not in NV (firmware TPMs that publish it
        /// online): init without it there; pass the file to `evidence`. Needs --ek.
        #[arg(long)]
        ek_cert_elsewhere: bool,
        /// Report the world as one JSON object (docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// The world's KEK: export the compat KEK's public key, or rotate the KEK.
    #[command(after_help = "Example:\n  byok-agent kek rotate --world eu-west")]
    Kek {
        #[command(subcommand)]
        action: KekAction,
    },
    /// List the worlds on this host and the state of their KEKs in the TPM.
    #[command(after_help = "Example:\n  byok-agent worlds list --json")]
    Worlds {
        #[command(subcommand)]
        action: Option<WorldsAction>,
    },
    /// Destroy a world: evict its KEKs from the TPM, delete its keys and state.
    #[command(after_help = "Example:\n  byok-agent world destroy --world eu-west --yes")]
    World {
        #[command(subcommand)]
        action: WorldAction,
    },
    /// Write TPM-signed evidence for the world's KEK.
    #[command(
        after_help = "Example:\n  byok-agent evidence --world eu-west --nonce $NONCE -o eu-west.evidence"
    )]
    Evidence {
        /// The world (a region or tenant: the id given to `init`).
        #[arg(long)]
        world: WorldId,
        /// The operator's nonce, hex (8-64 bytes).
        #[arg(long)]
        nonce: String,
        /// PCRs to quote: sha256:0,7 (or bare 0,7; the sha256 bank).
        #[arg(long, default_value = "0,1,2,3,4,5,6,7")]
        pcrs: PcrSpec,
        /// The EK certificate (PEM or DER; further certificates in the file
        /// go into the chain) instead of the one in NV, for TPMs whose
        /// manufacturer publishes it online.
        #[arg(long, value_name = "FILE")]
        ek_cert: Option<PathBuf>,
        /// Where to write the evidence. Output file (- for standard output; an existing file is replaced only with --force).
        #[arg(short = 'o', long)]
        out: PathBuf,
    },
    /// Import a transfer package (or an Azure-style .byok file for the compat KEK) under the world's KEK.
    #[command(
        after_help = "Example:\n  byok-agent import --world eu-west --name k1 --in k1.transfer"
    )]
    Import {
        /// The world (a region or tenant: the id given to `init`).
        #[arg(long)]
        world: WorldId,
        /// The transfer package from `byok-verifier wrap` (or an Azure-style .byok file for the compat KEK).
        #[arg(long = "in")]
        input: PathBuf,
        /// Name to store the key under (1-64 of A-Z a-z 0-9 . _ -).
        #[arg(long)]
        name: String,
        /// Report the imported key as one JSON object (docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// Answer a credential challenge from `byok-verifier challenge` (proves the
    /// AK and the EK are in this TPM).
    #[command(
        after_help = "Example:\n  byok-agent activate --world eu-west --in host.challenge -o host.activation"
    )]
    Activate {
        /// The world (a region or tenant: the id given to `init`).
        #[arg(long)]
        world: WorldId,
        /// The challenge from `byok-verifier challenge`.
        #[arg(long = "in")]
        input: PathBuf,
        /// Where to write the activation (for `byok-verifier enroll`). Output file (- for standard output; an existing file is replaced only with --force).
        #[arg(short = 'o', long)]
        out: PathBuf,
    },
    /// List, show, delete or create keys (`key` works too).
    #[command(alias = "key")]
    #[command(after_help = "Example:\n  byok-agent keys list --world eu-west")]
    Keys {
        #[command(subcommand)]
        action: Option<KeysAction>,
    },
    /// Write a key's public key as PEM (SubjectPublicKeyInfo).
    #[command(after_help = "Example:\n  byok-agent public --key k1 -o k1.pub.pem")]
    Public {
        /// The stored key's name (see `keys list`).
        #[arg(long)]
        key: String,
        /// Output file (- for standard output; an existing file is replaced only with --force).
        #[arg(short = 'o', long)]
        out: PathBuf,
    },
    /// Sign a file with a key inside the TPM.
    #[command(
        after_help = "Example:\n  byok-agent sign --key k1 --in msg -o msg.sig && openssl dgst -sha256 -verify k1.pub.pem -signature msg.sig msg"
    )]
    Sign {
        /// The stored key's name (see `keys list`).
        #[arg(long)]
        key: String,
        /// The message to sign (hashed here with --hash).
        #[arg(long = "in")]
        input: PathBuf,
        /// Output file (- for standard output; an existing file is replaced only with --force).
        #[arg(short = 'o', long)]
        out: PathBuf,
        /// The digest signed.
        #[arg(long, value_enum, default_value_t = Digest::Sha256)]
        hash: Digest,
        /// RSA padding (EC keys always use ECDSA).
        #[arg(long, value_enum, default_value_t = RsaPadding::Pkcs1)]
        scheme: RsaPadding,
    },
    /// Decrypt with a key inside the TPM: RSA-OAEP for RSA keys, AES-256-CFB
    /// (input: 16-byte IV || ciphertext, as `encrypt` writes) for AES keys.
    #[command(after_help = "Example:\n  byok-agent decrypt --key k1 --in secret.enc -o secret")]
    Decrypt {
        /// The stored key's name (see `keys list`).
        #[arg(long)]
        key: String,
        /// The ciphertext (for AES keys: the 16-byte IV, then the ciphertext).
        #[arg(long = "in")]
        input: PathBuf,
        /// Output file (- for standard output; an existing file is replaced only with --force).
        #[arg(short = 'o', long)]
        out: PathBuf,
        /// OAEP hash (and MGF1 hash) for RSA keys.
        #[arg(long, value_enum, default_value_t = Digest::Sha256)]
        hash: Digest,
    },
    /// Encrypt with an AES key inside the TPM (AES-256-CFB, random IV; writes IV || ciphertext).
    #[command(after_help = "Example:\n  byok-agent encrypt --key aes1 --in data -o data.enc")]
    Encrypt {
        /// The stored key's name (see `keys list`).
        #[arg(long)]
        key: String,
        /// The plaintext.
        #[arg(long = "in")]
        input: PathBuf,
        /// Output file (- for standard output; an existing file is replaced only with --force).
        #[arg(short = 'o', long)]
        out: PathBuf,
    },
    /// HMAC-SHA-256 of a file (at most 1024 bytes) with an HMAC key inside the TPM.
    #[command(after_help = "Example:\n  byok-agent hmac --key mac1 --in data -o data.mac")]
    Hmac {
        /// The stored key's name (see `keys list`).
        #[arg(long)]
        key: String,
        /// The data to authenticate.
        #[arg(long = "in")]
        input: PathBuf,
        /// Output file (- for standard output; an existing file is replaced only with --force).
        #[arg(short = 'o', long)]
        out: PathBuf,
    },
    /// Seal a secret (at most 128 bytes) to this TPM under the world's KEK,
    /// optionally to the current values of some PCRs.
    #[command(
        after_help = "Example:\n  byok-agent seal --world eu-west --name disk --in secret --pcrs sha256:0,7"
    )]
    Seal {
        /// The world (a region or tenant: the id given to `init`).
        #[arg(long)]
        world: WorldId,
        /// Name to store the sealed data under.
        #[arg(long)]
        name: String,
        /// The secret to seal (at most 128 bytes).
        #[arg(long = "in")]
        input: PathBuf,
        /// Release only while these PCRs keep their current values, e.g. sha256:0,7.
        #[arg(long)]
        pcrs: Option<PcrSpec>,
    },
    /// Unseal a sealed secret (the TPM checks its PCR policy, if any).
    #[command(after_help = "Example:\n  byok-agent unseal --name disk -o secret")]
    Unseal {
        /// The sealed data's name (see `keys list`).
        #[arg(long)]
        name: String,
        /// Where to write the secret (mode 0600). Output file (- for standard output; an existing file is replaced only with --force).
        #[arg(short = 'o', long)]
        out: PathBuf,
    },
    /// Write a key as a TSS2 PRIVATE KEY file for OpenSSL's tpm2 provider
    /// (the private part stays TPM-encrypted; the world's KEK is the parent).
    #[command(after_help = "Example:\n  byok-agent keyfile --key k1 -o k1.tss.pem")]
    Keyfile {
        /// The stored key's name (see `keys list`).
        #[arg(long)]
        key: String,
        /// Output file (- for standard output; an existing file is replaced only with --force).
        #[arg(short = 'o', long)]
        out: PathBuf,
    },
    /// Certify a key with the world's AK and write a receipt.
    #[command(
        after_help = "Example:\n  byok-agent attest-key --key k1 --nonce $NONCE -o k1.receipt"
    )]
    AttestKey {
        /// The stored key's name (see `keys list`).
        #[arg(long)]
        key: String,
        /// The verifier's fresh nonce, hex (8-64 bytes): the receipt answers it.
        #[arg(long)]
        nonce: String,
        /// Where to write the receipt. Output file (- for standard output; an existing file is replaced only with --force).
        #[arg(short = 'o', long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum KekAction {
    /// Export the world's compat KEK public key (PEM or JWK with a kid).
    #[command(
        after_help = "Example:\n  byok-agent kek export --world eu-west --format jwk -o kek.jwk"
    )]
    Export {
        /// The world (a region or tenant: the id given to `init`).
        #[arg(long)]
        world: WorldId,
        /// The public key's form: PEM (SubjectPublicKeyInfo) or a JWK with a kid.
        #[arg(long, value_enum, default_value_t = KeyFormat::Pem)]
        format: KeyFormat,
        /// Output file (default: standard output).
        #[arg(short = 'o', long)]
        out: Option<PathBuf>,
    },
    /// Replace the world's KEK by a new one (the old one stays for the keys under it).
    #[command(
        after_help = "Example:\n  byok-agent kek rotate --world eu-west --pcrs sha256:0,2,4,7"
    )]
    Rotate {
        /// The world (a region or tenant: the id given to `init`).
        #[arg(long)]
        world: WorldId,
        /// PCR binding of the new KEK (e.g. sha256:0,7, or "none"); default:
        /// the old KEK's PCRs at their current values.
        #[arg(long)]
        pcrs: Option<RotatePcrs>,
    },
    /// Evict retired KEKs that no stored key lives under (all worlds, or one).
    #[command(after_help = "Example:\n  byok-agent kek gc --world eu-west")]
    Gc {
        /// Only this world.
        #[arg(long)]
        world: Option<WorldId>,
    },
}

#[derive(Subcommand)]
pub enum WorldsAction {
    /// Each world, its KEKs, keys and state in the TPM; persistent objects in
    /// the KEK range that no record names.
    #[command(after_help = "Example:\n  byok-agent worlds list")]
    List {
        /// One JSON object on standard output.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum WorldAction {
    /// Evict the world's KEKs and delete its keys and state (irreversible).
    #[command(after_help = "Example:\n  byok-agent world destroy --world eu-west --yes")]
    Destroy {
        /// The world (a region or tenant: the id given to `init`).
        #[arg(long)]
        world: WorldId,
        /// Confirm.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand)]
pub enum KeysAction {
    /// List keys (name, world, algorithm, origin), optionally of one world.
    #[command(after_help = "Example:\n  byok-agent keys list --json")]
    List {
        /// Only this world's keys.
        #[arg(long)]
        world: Option<WorldId>,
        /// One JSON object: {"keys": [...], "unreadable": [...]} (docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// A stored key's details.
    #[command(after_help = "Example:\n  byok-agent keys show k1 --json")]
    Show {
        /// The key's name (see `keys list`).
        name: String,
        /// One JSON object (docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// Delete a stored key for good (its TPM-encrypted blob; the key cannot
    /// be loaded again). Asks on a terminal; scripts pass --yes.
    #[command(after_help = "Example:\n  byok-agent keys delete k1 --yes")]
    Delete {
        /// The key's name (see `keys list`).
        name: String,
        /// Confirm without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Generate a key inside the TPM under the world's KEK (never leaves the TPM).
    #[command(
        after_help = "Example:\n  byok-agent key create --world eu-west --name k2 --alg rsa3072"
    )]
    Create {
        /// The world (a region or tenant: the id given to `init`).
        #[arg(long)]
        world: WorldId,
        /// Name to store the key under (1-64 of A-Z a-z 0-9 . _ -).
        #[arg(long)]
        name: String,
        /// The key type.
        #[arg(long, value_enum)]
        alg: BornKeyAlg,
        /// Usable only while these PCRs keep their current values, e.g. sha256:0,7.
        #[arg(long)]
        pcrs: Option<PcrSpec>,
    },
}

/// `init --ek`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EkChoice {
    /// The first EK whose certificate is in NV: RSA, then ECC P-256, then ECC P-384.
    Auto,
    /// TCG template L-1 (RSA-2048).
    Rsa,
    /// TCG template L-2 (ECC P-256).
    EccP256,
    /// ECC P-384 (swtpm_setup's ECC EK).
    EccP384,
}

impl EkChoice {
    pub fn kind(self) -> Option<crate::tpm::EkKind> {
        use crate::tpm::EkKind;
        match self {
            EkChoice::Auto => None,
            EkChoice::Rsa => Some(EkKind::Rsa2048),
            EkChoice::EccP256 => Some(EkKind::EccP256),
            EkChoice::EccP384 => Some(EkKind::EccP384),
        }
    }
}

/// `sign --hash`, `decrypt --hash`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Digest {
    Sha256,
    Sha384,
    Sha512,
}

/// `sign --scheme`: the RSA signature padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RsaPadding {
    /// RSASSA-PKCS1-v1_5.
    Pkcs1,
    /// RSASSA-PSS.
    Pss,
}

/// `kek export --format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KeyFormat {
    Pem,
    Jwk,
}

/// `kek rotate --pcrs`: a PCR selection, or "none" for a KEK with no binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotatePcrs {
    Unbound,
    Bound(PcrSpec),
}

impl std::str::FromStr for RotatePcrs {
    type Err = String;
    fn from_str(s: &str) -> Result<RotatePcrs, String> {
        if s == "none" {
            Ok(RotatePcrs::Unbound)
        } else {
            s.parse().map(RotatePcrs::Bound)
        }
    }
}
