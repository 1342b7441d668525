//! The byok-verifier command line (clap derive). Enum-like options are
//! `ValueEnum`s, so `--help` lists their values and bad values are refused
//! by clap with the list.

use byok_protocol::keys::KeygenAlg;
use byok_protocol::world::WorldId;
use byok_verifier::cloud::KeyType;
use byok_verifier::pipeline::ProofFlags;
use byok_verifier::trust::TrustFlags;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "byok-verifier",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("BYOK_COMMIT"), ")"),
    about = "tpm-byok verifier: check TPM evidence and wrap keys offline"
)]
pub struct Cli {
    /// Print errors only (no status lines; verdicts, listings and JSON still print).
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Let outputs (-o) replace existing files (refused otherwise).
    #[arg(long, global = true)]
    pub force: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Clone)]
pub struct Trust {
    /// Trust anchors: a PEM/DER file or a directory of them (else the policy's roots).
    #[arg(long)]
    pub roots: Option<PathBuf>,
    /// Extra intermediate CA certificates (file or directory).
    #[arg(long)]
    pub intermediates: Option<PathBuf>,
    /// Accept SHA-1 signatures on attestations and certificates.
    #[arg(long)]
    pub allow_sha1: bool,
    /// Policy file (TOML, docs/policy.md): roots, reference PCRs, algorithms per world.
    #[arg(long)]
    pub policy: Option<PathBuf>,
}

impl Trust {
    pub fn flags(&self) -> TrustFlags {
        TrustFlags {
            roots: self.roots.clone(),
            intermediates: self.intermediates.clone(),
            allow_sha1: self.allow_sha1,
            policy: self.policy.clone(),
        }
    }
}

/// The registry of enrolled hosts (`byok-verifier enroll`).
#[derive(Args, Clone)]
pub struct Registered {
    /// Registry of enrolled hosts: an enrolled EK with its enrolled AK is
    /// proven; an enrolled EK with another AK is refused.
    #[arg(long)]
    pub registry: Option<PathBuf>,
    /// Refuse EKs that are not enrolled in --registry for the evidence's world.
    #[arg(long, requires = "registry")]
    pub require_enrolled: bool,
}

/// A challenge and its answer: proves the AK lives in the EK's TPM now.
#[derive(Args, Clone)]
pub struct Answer {
    /// The operator's copy of the challenge (`byok-verifier challenge`).
    #[arg(long, requires = "activation")]
    pub challenge: Option<PathBuf>,
    /// The host's answer to it (`byok-agent activate`).
    #[arg(long, requires = "challenge")]
    pub activation: Option<PathBuf>,
}

pub fn proof(r: &Registered, a: Option<&Answer>) -> ProofFlags {
    ProofFlags {
        registry: r.registry.clone(),
        require_enrolled: r.require_enrolled,
        challenge: a.and_then(|a| a.challenge.clone()),
        activation: a.and_then(|a| a.activation.clone()),
    }
}

#[derive(Subcommand)]
pub enum Command {
    /// Verify evidence files (in parallel).
    #[command(
        after_help = "Example:\n  byok-verifier verify --nonce $NONCE --roots ca.pem --evidence evidence/"
    )]
    Verify(VerifyArgs),
    /// Verify evidence, then write a credential challenge for its AK and EK
    /// (answered by `byok-agent activate`, checked by `enroll` or `verify --activation`).
    #[command(
        after_help = "Example:\n  byok-verifier challenge --nonce $NONCE --roots ca.pem --evidence host.evidence -o host.challenge"
    )]
    Challenge(ChallengeArgs),
    /// Enroll a host: verify its evidence and its answer to a challenge, and
    /// record its EK and the world's AK in the registry (once per host and world).
    #[command(
        after_help = "Example:\n  byok-verifier enroll --nonce $NONCE --roots ca.pem --evidence host.evidence --challenge host.challenge --activation host.activation --registry registry/"
    )]
    Enroll(EnrollArgs),
    /// Wrap a key: for a verified TPM KEK (default), or for a cloud KMS KEK.
    #[command(
        after_help = "Example:\n  byok-verifier wrap --nonce $NONCE --roots ca.pem --registry registry/ --evidence host.evidence --key k1.pem -o k1.transfer"
    )]
    Wrap(WrapArgs),
    /// Check a receipt from `byok-agent attest-key` against verified evidence
    /// of an enrolled host (or one that answered a challenge).
    #[command(
        after_help = "Example:\n  byok-verifier check-receipt --nonce $N2 --evidence-nonce $NONCE --receipt k1.receipt --evidence host.evidence --roots ca.pem --registry registry/"
    )]
    CheckReceipt(CheckReceiptArgs),
    /// A fresh nonce for each enrolled host of a world (for a fleet run:
    /// `evidence`, `wrap --nonces`, `attest-key`, `check-receipt --nonces`).
    #[command(
        after_help = "Example:\n  byok-verifier nonces --registry registry/ --world eu -o nonces.json"
    )]
    Nonces(NoncesArgs),
    /// Check one EK certificate against manufacturer roots (before enrolling a host).
    #[command(after_help = "Example:\n  byok-verifier ek-cert --cert ek.der --roots ca.pem")]
    EkCert(EkCertArgs),
    /// Show what a tpm-byok file holds (nothing is verified).
    #[command(after_help = "Example:\n  byok-verifier inspect host.evidence")]
    Inspect(InspectArgs),
    /// Generate a key offline: RSA or EC (PKCS#8 PEM), or a raw AES or HMAC key (mode 0600).
    #[command(
        after_help = "Example:\n  byok-verifier keygen --alg p256 -o k1.pem\n  byok-verifier keygen --alg aes256 -o k2.bin   # then: wrap --key-type aes --key k2.bin"
    )]
    Keygen(KeygenArgs),
    /// Print a shell completion script.
    #[command(
        after_help = "Example:\n  byok-verifier completions bash > /etc/bash_completion.d/byok-verifier"
    )]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: byok_protocol::cli_docs::Shell,
    },
    /// Write the man pages (one per subcommand) into a directory, or the
    /// main page on standard output.
    #[command(after_help = "Example:\n  byok-verifier man -o /usr/local/share/man/man1")]
    Man {
        /// The directory for NAME.1 and NAME-SUBCOMMAND.1 (default: the main
        /// page on standard output).
        #[arg(short = 'o', long)]
        out_dir: Option<PathBuf>,
    },
}

#[derive(Args)]
pub struct VerifyArgs {
    /// Evidence files or directories of them.
    #[arg(long, num_args = 1.., required = true)]
    pub evidence: Vec<PathBuf>,
    /// The nonce the evidence must answer, hex (the one given to `byok-agent evidence --nonce`).
    #[arg(long)]
    pub nonce: String,
    #[command(flatten)]
    pub trust: Trust,
    /// Require the evidence's KEK to be bound to this world.
    #[arg(long)]
    pub world: Option<WorldId>,
    /// One JSON line per file.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub registered: Registered,
    #[command(flatten)]
    pub answer: Answer,
}

#[derive(Args)]
pub struct NoncesArgs {
    /// Registry of enrolled hosts (`byok-verifier enroll`).
    #[arg(long)]
    pub registry: PathBuf,
    /// The world: its enrolled hosts get a nonce.
    #[arg(long)]
    pub world: WorldId,
    /// Only these hosts (registry names, comma-separated); each must be
    /// enrolled for the world.
    #[arg(long, value_delimiter = ',')]
    pub hosts: Option<Vec<String>>,
    /// Where to write the nonces (JSON, docs/fleet.md). Output file (- for standard output; an existing file is replaced only with --force).
    #[arg(short = 'o', long)]
    pub out: PathBuf,
}

#[derive(Args)]
pub struct ChallengeArgs {
    /// The evidence file from `byok-agent evidence`.
    #[arg(long)]
    pub evidence: PathBuf,
    /// The nonce the evidence must answer, hex (the one given to `byok-agent evidence --nonce`).
    #[arg(long)]
    pub nonce: String,
    #[command(flatten)]
    pub trust: Trust,
    /// Require the evidence's KEK to be bound to this world.
    #[arg(long)]
    pub world: Option<WorldId>,
    #[command(flatten)]
    pub registered: Registered,
    /// Where to write the challenge (for `byok-agent activate`). Output file (- for standard output; an existing file is replaced only with --force).
    #[arg(short = 'o', long)]
    pub out: PathBuf,
}

#[derive(Args)]
pub struct EnrollArgs {
    /// The evidence file from `byok-agent evidence`.
    #[arg(long)]
    pub evidence: PathBuf,
    /// The nonce the evidence must answer, hex (the one given to `byok-agent evidence --nonce`).
    #[arg(long)]
    pub nonce: String,
    #[command(flatten)]
    pub trust: Trust,
    /// Require the evidence's KEK to be bound to this world.
    #[arg(long)]
    pub world: Option<WorldId>,
    /// The operator's copy of the challenge (`byok-verifier challenge`).
    #[arg(long)]
    pub challenge: PathBuf,
    /// The host's answer (`byok-agent activate`).
    #[arg(long)]
    pub activation: PathBuf,
    /// The registry directory (created if missing).
    #[arg(long)]
    pub registry: PathBuf,
    /// The host's name in the registry (default: its existing name, else ek-<certificate hash>).
    #[arg(long)]
    pub host: Option<String>,
    /// Replace a record that conflicts (another EK under this name,
    /// another name for this EK, another AK for this world).
    #[arg(long)]
    pub replace: bool,
    /// One JSON object on standard output (docs/json.md).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct WrapArgs {
    /// What to write: a transfer package for verified evidence, or a cloud KMS import blob.
    #[arg(long, value_enum, default_value_t = WrapFormat::Tpm)]
    pub format: WrapFormat,
    /// Evidence to verify first (tpm format; or a host's compat KEK).
    #[arg(long)]
    pub evidence: Option<PathBuf>,
    /// The nonce the evidence must answer, hex (the one given to `byok-agent evidence --nonce`).
    #[arg(long)]
    pub nonce: Option<String>,
    #[command(flatten)]
    pub trust: Trust,
    /// Require the evidence's KEK to be bound to this world.
    #[arg(long)]
    pub world: Option<WorldId>,
    #[command(flatten)]
    pub registered: Registered,
    #[command(flatten)]
    pub answer: Answer,
    /// Private key: PEM or DER (PKCS#8, PKCS#1, SEC1), or raw bytes with --key-type aes|hmac.
    #[arg(long)]
    pub key: PathBuf,
    /// How to read --key: auto (PEM/DER RSA or EC), aes or hmac (raw bytes).
    #[arg(long, value_enum, default_value_t = KeyType::Auto)]
    pub key_type: KeyType,
    /// Where to write the transfer package or cloud blob. Output file (- for standard output; an existing file is replaced only with --force).
    #[arg(short = 'o', long, required_unless_present = "out_dir")]
    pub out: Option<PathBuf>,
    /// Fleet: the hosts' nonces (`byok-verifier nonces`); --evidence is then
    /// a directory (or files) of their evidence, each host found by its EK
    /// in --registry.
    #[arg(long, requires_all = ["registry", "out_dir"], conflicts_with = "nonce")]
    pub nonces: Option<PathBuf>,
    /// Fleet: where each host's package goes, as HOST.transfer (HOST.byok with --format azure).
    #[arg(long, requires = "nonces", conflicts_with = "out")]
    pub out_dir: Option<PathBuf>,
    /// Free-text label carried in the package (unsigned, informational).
    #[arg(long)]
    pub label: Option<String>,
    /// Bind the key to the quoted values of these PCRs (e.g. sha256:0,7):
    /// the TPM will use it only in that platform state (TPM2_PolicyPCR).
    #[arg(long)]
    pub key_pcrs: Option<byok_protocol::policy::PcrSpec>,
    /// Cloud KEK public key: PEM (SPKI or PKCS#1), DER or JWK.
    #[arg(long)]
    pub kek_public: Option<PathBuf>,
    /// Azure KEK id (else the JWK's "kid").
    #[arg(long)]
    pub kid: Option<String>,
    /// The cloud's own method name (Azure key-wrap mechanism, GCP import
    /// method, AWS wrapping algorithm), in any case, also as gcloud spells
    /// it (rsa-oaep-3072-sha256-aes-256); default: the cloud's recommended one.
    #[arg(long, value_enum, ignore_case = true)]
    pub method: Option<byok_verifier::cloud::CloudMethod>,
    /// Write GCP/AWS output as base64 text instead of raw bytes.
    #[arg(long)]
    pub base64: bool,
    /// Report the result as one JSON object (docs/json.md).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct CheckReceiptArgs {
    /// The receipt from `byok-agent attest-key`.
    #[arg(long, required_unless_present = "receipts")]
    pub receipt: Option<PathBuf>,
    /// The receipt's nonce.
    #[arg(long, required_unless_present = "nonces")]
    pub nonce: Option<String>,
    /// The evidence of the host (from `byok-agent evidence`) that holds the key.
    #[arg(long, required_unless_present = "receipts")]
    pub evidence: Option<PathBuf>,
    /// Fleet: a directory (or files) of receipts, each host found by its AK
    /// among the world's enrolled AKs in --registry.
    #[arg(long, num_args = 1.., requires_all = ["registry", "nonces"], conflicts_with_all = ["receipt", "evidence"])]
    pub receipts: Option<Vec<PathBuf>>,
    /// Fleet: the hosts' nonces (`byok-verifier nonces`), which the receipts answer.
    #[arg(long, requires = "receipts", conflicts_with = "nonce")]
    pub nonces: Option<PathBuf>,
    /// Fleet: the packages' directory (`wrap --out-dir`): each receipt's key
    /// must be exactly its host's package.
    #[arg(long, requires = "receipts", conflicts_with = "transfer")]
    pub transfers: Option<PathBuf>,
    /// The evidence's nonce (defaults to --nonce).
    #[arg(long)]
    pub evidence_nonce: Option<String>,
    #[command(flatten)]
    pub trust: Trust,
    #[command(flatten)]
    pub registered: Registered,
    #[command(flatten)]
    pub answer: Answer,
    /// The transfer package the key was imported from.
    #[arg(long)]
    pub transfer: Option<PathBuf>,
    /// One JSON object on standard output (docs/json.md).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct EkCertArgs {
    /// The EK certificate (PEM or DER).
    #[arg(long)]
    pub cert: PathBuf,
    #[command(flatten)]
    pub trust: Trust,
    /// One JSON object on standard output (docs/json.md).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct InspectArgs {
    /// Any tpm-byok file: evidence, transfer package, challenge, activation,
    /// receipt, host record, or a .byok file.
    pub file: PathBuf,
    /// One JSON object on standard output (docs/json.md).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct KeygenArgs {
    /// The key type: a private key (PKCS#8 PEM) or a raw AES/HMAC key.
    #[arg(long, value_enum)]
    pub alg: KeygenAlg,
    /// Where to write the key (PKCS#8 PEM, or raw bytes for aes*/hmac-*; mode 0600). Output file (- for standard output; an existing file is replaced only with --force).
    #[arg(short = 'o', long)]
    pub out: PathBuf,
}

/// `wrap --format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum WrapFormat {
    /// A tpm-byok transfer package for a verified TPM KEK.
    Tpm,
    /// Azure Key Vault / Managed HSM `.byok`.
    Azure,
    /// Google Cloud KMS import job.
    Gcp,
    /// AWS KMS import.
    Aws,
}
