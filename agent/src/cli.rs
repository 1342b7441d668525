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
    version,
    about = "tpm-byok agent: keys in TPM custody (runs on the TPM host)"
)]
pub struct Cli {
    /// Print errors only (no status lines; listings and JSON still print).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Show the TPM software stack's warnings (-v) and trace each TPM
    /// command (-vv); TSS2_LOG, when set, is left as it is.
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
    /// (Parsed after clap, so that a malformed value is never echoed.)
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
    /// Check that this host is ready (TPM, EK certificates, PCR banks, room,
    /// lockout, passwords, state directory); each problem with its fix.
    /// Exits 0 only when nothing needs fixing.
    Doctor {
        /// One JSON object on standard output.
        #[arg(long)]
        json: bool,
    },
    /// Create the world's KEK and AK in the TPM (the EK is taken from the TPM).
    Init {
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
        #[arg(short = 'o', long)]
        out: PathBuf,
    },
    /// Import a transfer package (or an Azure-style .byok file for the compat KEK) under the world's KEK.
    Import {
        #[arg(long)]
        world: WorldId,
        #[arg(long = "in")]
        input: PathBuf,
        #[arg(long)]
        name: String,
        /// Report the imported key as one JSON object (docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// Answer a credential challenge from `byok-verifier challenge` (proves the
    /// AK and the EK are in this TPM).
    Activate {
        #[arg(long)]
        world: WorldId,
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
        /// The digest signed.
        #[arg(long, value_enum, default_value_t = Digest::Sha256)]
        hash: Digest,
        /// RSA padding (EC keys always use ECDSA).
        #[arg(long, value_enum, default_value_t = RsaPadding::Pkcs1)]
        scheme: RsaPadding,
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
        /// OAEP hash (and MGF1 hash) for RSA keys.
        #[arg(long, value_enum, default_value_t = Digest::Sha256)]
        hash: Digest,
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
        world: WorldId,
        #[arg(long)]
        name: String,
        #[arg(long = "in")]
        input: PathBuf,
        /// Release only while these PCRs keep their current values, e.g. sha256:0,7.
        #[arg(long)]
        pcrs: Option<PcrSpec>,
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
pub enum KekAction {
    /// Export the world's compat KEK public key (PEM or JWK with a kid).
    Export {
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
    Rotate {
        #[arg(long)]
        world: WorldId,
        /// PCR binding of the new KEK (e.g. sha256:0,7, or "none"); default:
        /// the old KEK's PCRs at their current values.
        #[arg(long)]
        pcrs: Option<RotatePcrs>,
    },
    /// Evict retired KEKs that no stored key lives under (all worlds, or one).
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
    List {
        /// One JSON object on standard output.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum WorldAction {
    /// Evict the world's KEKs and delete its keys and state (irreversible).
    Destroy {
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
    List {
        #[arg(long)]
        world: Option<WorldId>,
        /// One JSON object: {"keys": [...], "unreadable": [...]} (docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// A stored key's details.
    Show {
        name: String,
        /// One JSON object (docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// Delete a stored key for good (its TPM-encrypted blob; the key cannot
    /// be loaded again). Asks on a terminal; scripts pass --yes.
    Delete {
        name: String,
        /// Confirm without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Generate a key inside the TPM under the world's KEK (never leaves the TPM).
    Create {
        #[arg(long)]
        world: WorldId,
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
