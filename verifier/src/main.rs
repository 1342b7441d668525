//! byok-verifier command line: parses arguments, runs the library's checks
//! (`pipeline.rs`, `verify.rs`, `registry.rs`, `receipt.rs`) and prints
//! (`report.rs`).
#![forbid(unsafe_code)]

use byok_protocol::formats::{Document, Receipt, TransferPackage};
use byok_protocol::keys::{KeyAlg, TargetKey};
use byok_protocol::text::inert;
use byok_verifier::cloud::{self, Cloud, CloudKey, KeyType};
use byok_verifier::error::VerifyError;
use byok_verifier::pipeline::{resolve_policy, trust_store, Pipeline, ProofFlags, TrustFlags};
use byok_verifier::policy::PolicyFile;
use byok_verifier::report::{
    identity_text, inert_json, verified_json, verified_text, with_identity,
};
use byok_verifier::verify::{parse_nonce, require_proven_ak};
use byok_verifier::{
    inspect, read, read_document, receipt, registry, wrap, write_output, MAX_INPUT_SIZE,
};
use clap::{Args, Parser, Subcommand};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

#[derive(Parser)]
#[command(
    name = "byok-verifier",
    version,
    about = "tpm-byok verifier: check TPM evidence and wrap keys offline"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Trust {
    /// Trust anchors: a PEM/DER file or a directory of them (else the policy's roots).
    #[arg(long)]
    roots: Option<PathBuf>,
    /// Extra intermediate CA certificates (file or directory).
    #[arg(long)]
    intermediates: Option<PathBuf>,
    /// Accept SHA-1 signatures on attestations and certificates.
    #[arg(long)]
    allow_sha1: bool,
    /// Policy file (TOML, docs/policy.md): roots, reference PCRs, algorithms per world.
    #[arg(long)]
    policy: Option<PathBuf>,
}

impl Trust {
    fn flags(&self) -> TrustFlags {
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
struct Registered {
    /// Registry of enrolled hosts: an enrolled EK with its enrolled AK is
    /// proven; an enrolled EK with another AK is refused.
    #[arg(long)]
    registry: Option<PathBuf>,
    /// Refuse EKs that are not enrolled in --registry for the evidence's world.
    #[arg(long, requires = "registry")]
    require_enrolled: bool,
}

/// A challenge and its answer: proves the AK lives in the EK's TPM now.
#[derive(Args, Clone)]
struct Answer {
    /// The operator's copy of the challenge (`byok-verifier challenge`).
    #[arg(long, requires = "activation")]
    challenge: Option<PathBuf>,
    /// The host's answer to it (`byok-agent activate`).
    #[arg(long, requires = "challenge")]
    activation: Option<PathBuf>,
}

fn proof(r: &Registered, a: Option<&Answer>) -> ProofFlags {
    ProofFlags {
        registry: r.registry.clone(),
        require_enrolled: r.require_enrolled,
        challenge: a.and_then(|a| a.challenge.clone()),
        activation: a.and_then(|a| a.activation.clone()),
    }
}

#[derive(Subcommand)]
enum Command {
    /// Verify evidence files (in parallel).
    Verify {
        /// Evidence files or directories of them.
        #[arg(long, num_args = 1.., required = true)]
        evidence: Vec<PathBuf>,
        #[arg(long)]
        nonce: String,
        #[command(flatten)]
        trust: Trust,
        #[arg(long)]
        world: Option<String>,
        /// One JSON line per file.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        registered: Registered,
        #[command(flatten)]
        answer: Answer,
    },
    /// Verify evidence, then write a credential challenge for its AK and EK
    /// (answered by `byok-agent activate`, checked by `enroll` or `verify --activation`).
    Challenge {
        #[arg(long)]
        evidence: PathBuf,
        #[arg(long)]
        nonce: String,
        #[command(flatten)]
        trust: Trust,
        #[arg(long)]
        world: Option<String>,
        #[command(flatten)]
        registered: Registered,
        #[arg(short = 'o', long)]
        out: PathBuf,
    },
    /// Enroll a host: verify its evidence and its answer to a challenge, and
    /// record its EK and the world's AK in the registry (once per host and world).
    Enroll {
        #[arg(long)]
        evidence: PathBuf,
        #[arg(long)]
        nonce: String,
        #[command(flatten)]
        trust: Trust,
        #[arg(long)]
        world: Option<String>,
        /// The operator's copy of the challenge (`byok-verifier challenge`).
        #[arg(long)]
        challenge: PathBuf,
        /// The host's answer (`byok-agent activate`).
        #[arg(long)]
        activation: PathBuf,
        /// The registry directory (created if missing).
        #[arg(long)]
        registry: PathBuf,
        /// The host's name in the registry (default: its existing name, else ek-<certificate hash>).
        #[arg(long)]
        host: Option<String>,
        /// Replace a record that conflicts (another EK under this name,
        /// another name for this EK, another AK for this world).
        #[arg(long)]
        replace: bool,
        #[arg(long)]
        json: bool,
    },
    /// Wrap a key: for a verified TPM KEK (default), or for a cloud KMS KEK.
    Wrap {
        /// tpm (a transfer package for verified evidence), azure, gcp or aws.
        #[arg(long, default_value = "tpm")]
        format: String,
        /// Evidence to verify first (tpm format; or a host's compat KEK).
        #[arg(long)]
        evidence: Option<PathBuf>,
        #[arg(long)]
        nonce: Option<String>,
        #[command(flatten)]
        trust: Trust,
        #[arg(long)]
        world: Option<String>,
        #[command(flatten)]
        registered: Registered,
        #[command(flatten)]
        answer: Answer,
        /// Private key: PEM or DER (PKCS#8, PKCS#1, SEC1), or raw bytes with --key-type aes|hmac.
        #[arg(long)]
        key: PathBuf,
        /// auto (PEM/DER RSA or EC), aes or hmac (raw bytes; cloud formats).
        #[arg(long, default_value = "auto")]
        key_type: String,
        #[arg(short = 'o', long)]
        out: PathBuf,
        /// Free-text label carried in the package (unsigned, informational).
        #[arg(long)]
        label: Option<String>,
        /// Bind the key to the quoted values of these PCRs (e.g. sha256:0,7):
        /// the TPM will use it only in that platform state (TPM2_PolicyPCR).
        #[arg(long)]
        key_pcrs: Option<String>,
        /// Cloud KEK public key: PEM (SPKI or PKCS#1), DER or JWK.
        #[arg(long)]
        kek_public: Option<PathBuf>,
        /// Azure KEK id (else the JWK's "kid").
        #[arg(long)]
        kid: Option<String>,
        /// The cloud's own method name (GCP import method, AWS wrapping algorithm).
        #[arg(long)]
        method: Option<String>,
        /// Write GCP/AWS output as base64 text instead of raw bytes.
        #[arg(long)]
        base64: bool,
    },
    /// Check a receipt from `byok-agent attest-key` against verified evidence
    /// of an enrolled host (or one that answered a challenge).
    CheckReceipt {
        #[arg(long)]
        receipt: PathBuf,
        /// The receipt's nonce.
        #[arg(long)]
        nonce: String,
        #[arg(long)]
        evidence: PathBuf,
        /// The evidence's nonce (defaults to --nonce).
        #[arg(long)]
        evidence_nonce: Option<String>,
        #[command(flatten)]
        trust: Trust,
        #[command(flatten)]
        registered: Registered,
        #[command(flatten)]
        answer: Answer,
        /// The transfer package the key was imported from.
        #[arg(long)]
        transfer: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Check one EK certificate against manufacturer roots (before enrolling a host).
    EkCert {
        /// The EK certificate (PEM or DER).
        #[arg(long)]
        cert: PathBuf,
        #[command(flatten)]
        trust: Trust,
        #[arg(long)]
        json: bool,
    },
    /// Show what a tpm-byok file holds (nothing is verified).
    Inspect {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Generate a key offline (PKCS#8 PEM, mode 0600).
    Keygen {
        /// rsa2048, rsa3072, rsa4096, p256 or p384.
        #[arg(long)]
        alg: String,
        #[arg(short = 'o', long)]
        out: PathBuf,
    },
}

fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, VerifyError> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            // The entry's type comes with the directory listing (no stat per
            // file); symbolic links are followed.
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(byok_verifier::error::io(p))?
                .filter_map(|e| e.ok())
                .filter(|e| match e.file_type() {
                    Ok(t) if t.is_symlink() => e.path().is_file(),
                    Ok(t) => t.is_file(),
                    Err(_) => false,
                })
                .map(|e| e.path())
                .collect();
            files.sort();
            out.extend(files);
        } else {
            out.push(p.clone());
        }
    }
    if out.is_empty() {
        return Err(VerifyError::Usage(
            "--evidence names no file (the directories are empty)".into(),
        ));
    }
    Ok(out)
}

fn cmd_verify(files: &[PathBuf], pipeline: &Pipeline, as_json: bool) -> Result<(), VerifyError> {
    let files = expand(files)?;
    // Files are independent: verify them on all cores.
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(files.len().max(1));
    // Each worker verifies its share and formats the report; the main thread
    // writes them in file order through one buffered writer.
    let mut results: Vec<Option<(String, Option<VerifyError>)>> =
        (0..files.len()).map(|_| None).collect();
    let chunk = files.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        for (chunk_files, chunk_results) in files.chunks(chunk).zip(results.chunks_mut(chunk)) {
            s.spawn(move || {
                for (f, r) in chunk_files.iter().zip(chunk_results.iter_mut()) {
                    *r = Some(match pipeline.check_file(f) {
                        Ok(v) if as_json => (format!("{}\n", verified_json(f, &v)), None),
                        Ok(v) => (verified_text(f, &v), None),
                        Err(e) if as_json => (
                            format!(
                                "{}\n",
                                inert_json(json!({"file": f.display().to_string(), "ok": false, "error": e.to_string()}))
                            ),
                            Some(e),
                        ),
                        Err(e) => (
                            format!("FAIL {}: {}\n", inert(&f.display().to_string()), inert(&e.to_string())),
                            Some(e),
                        ),
                    });
                }
            });
        }
    });
    let mut first_err = None;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    use std::io::Write as _;
    for (text, err) in results.into_iter().flatten() {
        out.write_all(text.as_bytes())
            .map_err(byok_verifier::error::io(Path::new("(standard output)")))?;
        if let Some(e) = err {
            first_err.get_or_insert(e);
        }
    }
    out.flush()
        .map_err(byok_verifier::error::io(Path::new("(standard output)")))?;
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn run(cli: Cli) -> Result<(), VerifyError> {
    match cli.command {
        Command::Verify {
            evidence,
            nonce,
            trust,
            world,
            json,
            registered,
            answer,
        } => {
            if answer.activation.is_some() && evidence.len() != 1 {
                return Err(VerifyError::Usage(
                    "--activation checks one evidence file".into(),
                ));
            }
            let pipeline = Pipeline::new(
                &trust.flags(),
                &proof(&registered, Some(&answer)),
                parse_nonce(&nonce)?,
                world,
            )?;
            cmd_verify(&evidence, &pipeline, json)
        }
        Command::Challenge {
            evidence,
            nonce,
            trust,
            world,
            registered,
            out,
        } => {
            let pipeline = Pipeline::new(
                &trust.flags(),
                &proof(&registered, None),
                parse_nonce(&nonce)?,
                world,
            )?
            .enrolling();
            let verified = pipeline.check_file(&evidence)?;
            let ch = byok_verifier::verify::make_challenge(&verified)?;
            write_output(&out, &ch.to_cbor(), 0o644)?;
            println!(
                "challenge for the AK of world {:?} ({}) written to {} (keep a copy: enroll and verify --challenge need it)",
                inert(&verified.world),
                identity_text(&verified),
                inert(&out.display().to_string())
            );
            Ok(())
        }
        Command::Enroll {
            evidence,
            nonce,
            trust,
            world,
            challenge,
            activation,
            registry: dir,
            host,
            replace,
            json,
        } => {
            // Enrolment proves the AK by the activation; an existing record
            // for this EK is what it may update, so it is not consulted here.
            let pipeline = Pipeline::new(
                &trust.flags(),
                &ProofFlags {
                    challenge: Some(challenge),
                    activation: Some(activation),
                    ..Default::default()
                },
                parse_nonce(&nonce)?,
                world,
            )?
            .enrolling();
            let mut verified = pipeline.check_file(&evidence)?;
            let (record, outcome) =
                registry::enroll(&dir, &verified, host.as_deref(), replace, now_secs())?;
            verified.host = Some(record.host.clone());
            if json {
                let v = json!({
                    "ok": true, "outcome": outcome.describe(), "world": verified.world,
                    "ak_name": hex::encode(&verified.ak_name), "kek_name": hex::encode(&verified.kek_name),
                    "record": dir.join(format!("{}.cbor", record.host)).display().to_string(),
                });
                println!("{}", with_identity(v, &verified));
            } else {
                println!(
                    "{} host {} for world {:?}: AK {} proven in this EK's TPM ({})",
                    outcome.describe(),
                    inert(&record.host),
                    inert(&verified.world),
                    hex::encode(&verified.ak_name),
                    identity_text(&verified)
                );
            }
            Ok(())
        }
        Command::Wrap {
            format,
            evidence,
            nonce,
            trust,
            world,
            registered,
            answer,
            key,
            key_type,
            out,
            label,
            key_pcrs,
            kek_public,
            kid,
            method,
            base64,
        } => {
            let usage = |what: &str| VerifyError::Usage(what.to_string());
            let cloud = match format.as_str() {
                "tpm" => None,
                "azure" => Some(Cloud::Azure),
                "gcp" => Some(Cloud::Gcp),
                "aws" => Some(Cloud::Aws),
                other => {
                    return Err(usage(&format!(
                        "--format {:?}: use tpm, azure, gcp or aws",
                        inert(other)
                    )))
                }
            };
            let key_bytes = zeroize::Zeroizing::new(read(&key, MAX_INPUT_SIZE)?);
            let pipeline = |nonce: &str| {
                Pipeline::new(
                    &trust.flags(),
                    &proof(&registered, Some(&answer)),
                    parse_nonce(nonce)?,
                    world.clone(),
                )
            };
            let Some(cloud) = cloud else {
                if kek_public.is_some() || method.is_some() || kid.is_some() {
                    return Err(usage(
                        "--kek-public, --kid and --method are for --format azure|gcp|aws",
                    ));
                }
                let (Some(evidence), Some(nonce)) = (evidence, nonce) else {
                    return Err(usage(
                        "--format tpm needs --evidence and --nonce (and --roots or --policy)",
                    ));
                };
                // One pass: the package's credential binds it to the TPM that
                // holds this EK and this AK, so an unproven AK is safe here.
                let verified = pipeline(&nonce)?.check_file(&evidence)?;
                let key_pcrs = key_pcrs
                    .as_deref()
                    .map(|s| {
                        byok_protocol::policy::PcrSpec::parse(s)
                            .map_err(|e| usage(&format!("--key-pcrs: {e}")))
                    })
                    .transpose()?;
                use byok_protocol::keys::{SymmetricKey, SymmetricKind, TpmObjectKey};
                let target: Box<dyn TpmObjectKey> = match key_type.as_str() {
                    "auto" => Box::new(TargetKey::from_bytes(&key_bytes)?),
                    "aes" => Box::new(SymmetricKey::new(SymmetricKind::Aes, &key_bytes)?),
                    "hmac" => Box::new(SymmetricKey::new(SymmetricKind::HmacSha256, &key_bytes)?),
                    other => {
                        return Err(usage(&format!(
                            "--key-type {:?}: use auto, aes or hmac",
                            inert(other)
                        )))
                    }
                };
                let package = wrap::wrap(&verified, target.as_ref(), label, key_pcrs.as_ref())?;
                write_output(&out, &package.to_cbor(), 0o644)?;
                println!(
                    "wrapped {} key for world {:?} (KEK {}; {}) into {}",
                    target.alg_name(),
                    inert(&verified.world),
                    hex::encode(&verified.kek_name),
                    identity_text(&verified),
                    inert(&out.display().to_string())
                );
                return Ok(());
            };
            if key_pcrs.is_some() {
                return Err(usage("--key-pcrs is for --format tpm"));
            }
            // The cloud KEK: given as a public key, or a tpm-byok host's compat
            // KEK taken from evidence that is verified first.
            let mut identity = None;
            let kek = match (kek_public, evidence) {
                (Some(_), Some(_)) => {
                    return Err(usage("give --kek-public or --evidence, not both"))
                }
                (None, None) => return Err(usage(
                    "cloud formats need --kek-public, or --evidence of a host with a compat KEK",
                )),
                (Some(path), None) => cloud::read_kek_public(&read(&path, MAX_INPUT_SIZE)?)?,
                (None, Some(evidence)) => {
                    let Some(nonce) = nonce else {
                        return Err(usage("--evidence needs --nonce (and --roots or --policy)"));
                    };
                    let verified = pipeline(&nonce)?.check_file(&evidence)?;
                    let compat = verified
                        .compat_kek
                        .as_ref()
                        .ok_or(VerifyError::NoCompatKek)?;
                    // Nothing binds this key to the TPM but the evidence: the
                    // AK that certified the compat KEK must be proven.
                    require_proven_ak(
                        &verified,
                        "wrapping for a host's compat KEK (--format azure|gcp|aws --evidence)",
                    )?;
                    let der = byok_protocol::keys::public_key_der(compat)?;
                    use spki::DecodePublicKey;
                    let key = rsa::RsaPublicKey::from_public_key_der(&der)
                        .map_err(|e| VerifyError::KekPublicUnreadable(e.to_string()))?;
                    identity = Some(identity_text(&verified));
                    cloud::KekPublic {
                        key,
                        kid: Some(byok_protocol::world::compat_kid(
                            &verified.world,
                            &compat.name(),
                        )),
                    }
                }
            };
            let key_type = match key_type.as_str() {
                "auto" => KeyType::Auto,
                "aes" => KeyType::Aes,
                "hmac" => KeyType::Hmac,
                other => {
                    return Err(usage(&format!(
                        "--key-type {:?}: use auto, aes or hmac",
                        inert(other)
                    )))
                }
            };
            let target = CloudKey::read(&key_bytes, key_type)?;
            let plan = cloud::plan(cloud, method.as_deref(), &target, &kek.key)?;
            let mut blob = cloud::wrap(cloud, &plan, &kek, kid.as_deref(), &target)?;
            if base64 && cloud != Cloud::Azure {
                use ::base64::Engine as _;
                blob = ::base64::engine::general_purpose::STANDARD
                    .encode(&blob)
                    .into_bytes();
                blob.push(b'\n');
            }
            write_output(&out, &blob, 0o644)?;
            println!(
                "wrapped {} for {} with {}{} into {}",
                target.describe(),
                cloud.name(),
                plan.method,
                identity.map(|i| format!(" ({i})")).unwrap_or_default(),
                inert(&out.display().to_string())
            );
            Ok(())
        }
        Command::CheckReceipt {
            receipt: receipt_path,
            nonce,
            evidence,
            evidence_nonce,
            trust,
            registered,
            answer,
            transfer,
            json,
        } => {
            let pipeline = Pipeline::new(
                &trust.flags(),
                &proof(&registered, Some(&answer)),
                parse_nonce(evidence_nonce.as_deref().unwrap_or(&nonce))?,
                None,
            )?;
            let verified = pipeline.check_file(&evidence)?;
            // A receipt is signed by the AK alone: only an AK proven to live
            // in the EK's TPM makes it a statement of that TPM (checked first
            // by check_receipt; here before reading more files).
            require_proven_ak(&verified, "check-receipt")?;
            let r: Receipt = read_document(&receipt_path, "receipt", Receipt::MAX_SIZE)?;
            let t = match &transfer {
                Some(p) => Some(read_document::<TransferPackage>(
                    p,
                    "transfer package",
                    TransferPackage::MAX_SIZE,
                )?),
                None => None,
            };
            let policy = &pipeline.for_world(&verified.world)?.opts.policy;
            let report =
                receipt::check_receipt(&r, &verified, &parse_nonce(&nonce)?, policy, t.as_ref())?;
            if json {
                let v = json!({
                    "ok": true, "world": report.world, "key_name": hex::encode(&report.key_name), "key": report.key,
                    "attributes": report.attributes, "origin": report.origin, "duplicable": report.duplicable,
                    "matches_transfer": report.matches_transfer, "kek_name": hex::encode(&verified.kek_name),
                    "ak_ek_binding": verified.ak_binding.describe(),
                });
                println!("{}", with_identity(v, &verified));
            } else {
                println!(
                    "OK receipt {}: {} key {} lives under the KEK of world {:?}",
                    inert(&receipt_path.display().to_string()),
                    report.key,
                    hex::encode(&report.key_name),
                    inert(&report.world)
                );
                println!("  identity:    {}", identity_text(&verified));
                println!("  AK-EK link:  {}", verified.ak_binding.describe());
                println!("  origin:      {}", report.origin);
                println!("  attributes:  {}", report.attributes.join("|"));
                println!(
                    "  duplicable:  {}",
                    match report.duplicable {
                        Some(false) => "no (fixedParent, an empty authPolicy, or exactly the package's PolicyPCR-only policy: TPM2_Duplicate can never be authorised)",
                        Some(true) => "yes",
                        None => "cannot tell (the key has an authPolicy the verifier cannot read; give --transfer with the package it was imported from)",
                    }
                );
                if report.matches_transfer == Some(true) {
                    println!("  transfer:    the certified key is exactly the wrapped one");
                }
            }
            Ok(())
        }
        Command::EkCert { cert, trust, json } => {
            let flags = trust.flags();
            let file = flags.policy.as_deref().map(PolicyFile::load).transpose()?;
            let policy = resolve_policy(
                file.as_ref(),
                &flags,
                file.as_ref().and_then(|f| f.only_world()),
            )?;
            let store = trust_store(&flags, &policy)?;
            let certs = byok_verifier::certs::parse_certificates(&read(&cert, MAX_INPUT_SIZE)?)
                .map_err(VerifyError::EkCertificateUnparseable)?;
            let leaf = certs
                .first()
                .ok_or_else(|| VerifyError::EkCertificateUnparseable("no certificate".into()))?;
            let path =
                byok_verifier::certs::verify_ek_path(leaf, &certs[1..], &store, SystemTime::now())?;
            let id = byok_verifier::certs::tpm_identity(leaf);
            let key = byok_verifier::certs::key_description(leaf);
            let sha = hex::encode(byok_protocol::hash::sha256(leaf.der()));
            if json {
                println!(
                    "{}",
                    inert_json(
                        json!({"ok": true, "path": path, "key": key, "certificate_sha256": sha,
                           "tpm_manufacturer": id.manufacturer, "tpm_model": id.model,
                           "tpm_version": id.version, "tcg_ek_eku": id.ek_eku})
                    )
                );
            } else {
                let t = |s: &Option<String>| inert(s.as_deref().unwrap_or("-")).into_owned();
                println!(
                    "OK {}: {} EK certificate, SHA-256 {sha}",
                    inert(&cert.display().to_string()),
                    key
                );
                println!(
                    "  path:  {}",
                    path.iter()
                        .map(|s| inert(s).into_owned())
                        .collect::<Vec<_>>()
                        .join(" -> ")
                );
                println!(
                    "  TPM:   manufacturer {} model {} version {}",
                    t(&id.manufacturer),
                    t(&id.model),
                    t(&id.version)
                );
                println!(
                    "  TCG EK EKU (2.23.133.8.1): {}",
                    if id.ek_eku { "present" } else { "absent" }
                );
            }
            Ok(())
        }
        Command::Inspect { file, json } => {
            let bytes = read(&file, byok_protocol::formats::MAX_DOCUMENT_SIZE)?;
            let v = inspect::describe(&bytes).map_err(|e| VerifyError::Format {
                what: "file",
                source: byok_protocol::error::FormatError::Cbor(e),
            })?;
            let v = inert_json(v);
            if json {
                println!("{v}");
            } else {
                let mut s = String::new();
                inspect::to_text(&v, 0, &mut s);
                print!("{s}");
            }
            Ok(())
        }
        Command::Keygen { alg, out } => {
            let alg = KeyAlg::from_name(&alg).ok_or_else(|| {
                VerifyError::Key(byok_protocol::error::KeyError::Unsupported(format!(
                    "--alg {:?}; use rsa2048, rsa3072, rsa4096, p256 or p384",
                    inert(&alg)
                )))
            })?;
            if out.exists() {
                return Err(VerifyError::Io {
                    path: out.display().to_string(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::AlreadyExists,
                        "exists; not overwriting a key",
                    ),
                });
            }
            let key = TargetKey::generate(alg)?;
            let pem = key.to_pkcs8_pem()?;
            write_output(&out, pem.as_bytes(), 0o600)?;
            println!(
                "generated {} key in {}",
                alg.name(),
                inert(&out.display().to_string())
            );
            Ok(())
        }
    }
}

// Batch verification allocates many small buffers on every core; glibc's
// per-thread arenas showed up in profiles (sysmalloc, mprotect).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("byok-verifier: error: {}", inert(&e.to_string()));
        std::process::exit(e.exit_code());
    }
}
