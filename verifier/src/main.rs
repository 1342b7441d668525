//! byok-verifier command line.
#![forbid(unsafe_code)]

use byok_protocol::formats::{Activation, Challenge, Document, Evidence, Receipt, TransferPackage};
use byok_protocol::keys::{KeyAlg, TargetKey};
use byok_verifier::certs::{load_certificates, TrustStore};
use byok_verifier::cloud::{self, Cloud, CloudKey, KeyType};
use byok_verifier::error::VerifyError;
use byok_verifier::policy::{self, Policy};
use byok_verifier::verify::{check_activation, parse_nonce, verify_evidence, Options, Verified};
use byok_verifier::{inspect, read, receipt, wrap, write_output};
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
        /// The host's answer to a challenge (`byok-agent activate`): proves the
        /// AK-EK binding now instead of at import. Needs --challenge.
        #[arg(long, requires = "challenge")]
        activation: Option<PathBuf>,
        /// The operator's copy of the challenge the activation answers.
        #[arg(long, requires = "activation")]
        challenge: Option<PathBuf>,
    },
    /// Verify evidence, then write a credential challenge for its AK and EK
    /// (answered by `byok-agent activate`, checked by `verify --activation`).
    Challenge {
        #[arg(long)]
        evidence: PathBuf,
        #[arg(long)]
        nonce: String,
        #[command(flatten)]
        trust: Trust,
        #[arg(long)]
        world: Option<String>,
        #[arg(short = 'o', long)]
        out: PathBuf,
    },
    /// Wrap a key: for a verified TPM KEK (default), or for a cloud KMS KEK.
    Wrap {
        /// tpm (a transfer package for verified evidence), azure, gcp or aws.
        #[arg(long, default_value = "tpm")]
        format: String,
        /// Evidence to verify first (tpm format).
        #[arg(long)]
        evidence: Option<PathBuf>,
        #[arg(long)]
        nonce: Option<String>,
        #[command(flatten)]
        trust: Trust,
        #[arg(long)]
        world: Option<String>,
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
    /// Check a receipt from `byok-agent attest-key` against verified evidence.
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

/// The trust store and options for one run: the policy file resolved for the
/// world, then the command-line flags over it.
fn resolve(
    t: &Trust,
    nonce: &str,
    world: Option<String>,
) -> Result<(TrustStore, Options), VerifyError> {
    let mut policy = match &t.policy {
        Some(p) => policy::load(p, world.as_deref())?.0,
        None => Policy::default(),
    };
    if t.allow_sha1 {
        policy.allow_sha1 = true;
    }
    let roots = match &t.roots {
        Some(r) => vec![r.clone()],
        None => policy.roots.clone(),
    };
    if roots.is_empty() {
        return Err(VerifyError::Usage(
            "give --roots, or a --policy whose world has roots".into(),
        ));
    }
    let intermediates = match &t.intermediates {
        Some(i) => vec![i.clone()],
        None => policy.intermediates.clone(),
    };
    let mut store = TrustStore {
        allow_sha1: policy.allow_sha1,
        ..Default::default()
    };
    for r in &roots {
        store.anchors.extend(load_certificates(r)?);
    }
    for i in &intermediates {
        store.intermediates.extend(load_certificates(i)?);
    }
    let opts = Options {
        nonce: parse_nonce(nonce)?,
        world,
        now: SystemTime::now(),
        policy,
    };
    Ok((store, opts))
}

fn load_evidence(path: &Path) -> Result<Evidence, VerifyError> {
    Evidence::from_cbor(&read(path)?).map_err(|source| VerifyError::Format {
        what: "evidence",
        source,
    })
}

fn verify_file(path: &Path, store: &TrustStore, opts: &Options) -> Result<Verified, VerifyError> {
    verify_evidence(&load_evidence(path)?, store, opts)
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
    Ok(out)
}

fn verified_json(path: &Path, v: &Verified) -> serde_json::Value {
    json!({
        "file": path.display().to_string(),
        "ok": true,
        "world": v.world,
        "ek_chain": v.ek_chain,
        "ak_name": hex::encode(&v.ak_name),
        "kek_name": hex::encode(&v.kek_name),
        "kek": v.kek_public.describe_key(),
        "tpm": {"manufacturer": v.tpm_manufacturer, "vendor": v.tpm_vendor, "firmware": format!("{:#018x}", v.firmware_version)},
        "reset_count": v.quote_clock.reset_count,
        "restart_count": v.quote_clock.restart_count,
        "clock": v.quote_clock.clock,
        "pcrs": v.pcrs.iter().map(|(i, d)| (format!("sha256:{i}"), json!(hex::encode(d)))).collect::<serde_json::Map<_, _>>(),
        "ak_ek_binding": v.ak_binding,
        "kek_pcr_binding": v.kek_pcr_binding.as_ref().map(|b| json!({
            "pcrs": b.pcrs.describe(),
            "values": b.pcrs.pcrs.iter().zip(&b.values).map(|(i, d)| (format!("{}:{i}", b.pcrs.bank.name()), json!(hex::encode(d)))).collect::<serde_json::Map<_, _>>(),
        })),
        "compat_kek": v.compat_kek.as_ref().map(|c| serde_json::json!({
            "key": c.describe_key(),
            "kid": byok_protocol::world::compat_kid(&v.world, &c.name()),
        })),
    })
}

fn verified_text(path: &Path, v: &Verified) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(o, "OK {}: world {:?}", path.display(), v.world);
    let _ = writeln!(o, "  EK chain:   {}", v.ek_chain.join(" -> "));
    let _ = writeln!(
        o,
        "  TPM:        {} {} firmware {:#018x}",
        v.tpm_manufacturer, v.tpm_vendor, v.firmware_version
    );
    let _ = writeln!(
        o,
        "  KEK:        {} name {}",
        v.kek_public.describe_key(),
        hex::encode(&v.kek_name)
    );
    let _ = writeln!(
        o,
        "  AK:         {} name {}",
        v.ak_public.describe_key(),
        hex::encode(&v.ak_name)
    );
    let _ = writeln!(
        o,
        "  clock:      {} ms, resetCount {}, restartCount {}",
        v.quote_clock.clock, v.quote_clock.reset_count, v.quote_clock.restart_count
    );
    let _ = writeln!(
        o,
        "  PCRs:       sha256:{}",
        v.pcrs
            .keys()
            .map(|k| k.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    let _ = writeln!(o, "  AK-EK link: {}", v.ak_binding);
    match &v.kek_pcr_binding {
        Some(b) => {
            let _ = writeln!(
                o,
                "  KEK use:    only while PCRs {} hold these values (TPM-enforced policy):",
                b.pcrs.describe()
            );
            for (i, d) in b.pcrs.pcrs.iter().zip(&b.values) {
                let _ = writeln!(
                    o,
                    "              {}:{i} = {}",
                    b.pcrs.bank.name(),
                    hex::encode(d)
                );
            }
        }
        None => {
            let _ = writeln!(o, "  KEK use:    not bound to PCRs");
        }
    }
    if let Some(c) = &v.compat_kek {
        let _ = writeln!(
            o,
            "  compat KEK: {} kid {} (unrestricted decryption, child of the KEK)",
            c.describe_key(),
            byok_protocol::world::compat_kid(&v.world, &c.name())
        );
    }
    o
}

fn cmd_verify(
    evidence: &[PathBuf],
    nonce: &str,
    trust: &Trust,
    world: Option<String>,
    as_json: bool,
) -> Result<(), VerifyError> {
    let (store, opts) = resolve(trust, nonce, world)?;
    let files = expand(evidence)?;
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
            let store = &store;
            let opts = &opts;
            s.spawn(move || {
                for (f, r) in chunk_files.iter().zip(chunk_results.iter_mut()) {
                    *r = Some(match verify_file(f, store, opts) {
                        Ok(v) if as_json => (format!("{}\n", verified_json(f, &v)), None),
                        Ok(v) => (verified_text(f, &v), None),
                        Err(e) if as_json => (
                            format!(
                                "{}\n",
                                json!({"file": f.display().to_string(), "ok": false, "error": e.to_string()})
                            ),
                            Some(e),
                        ),
                        Err(e) => (format!("FAIL {}: {e}\n", f.display()), Some(e)),
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

fn run(cli: Cli) -> Result<(), VerifyError> {
    match cli.command {
        Command::Verify {
            evidence,
            nonce,
            trust,
            world,
            json,
            activation: None,
            challenge: _,
        } => cmd_verify(&evidence, &nonce, &trust, world, json),
        Command::Verify {
            evidence,
            nonce,
            trust,
            world,
            json,
            activation: Some(activation),
            challenge,
        } => {
            let [evidence] = evidence.as_slice() else {
                return Err(VerifyError::Usage(
                    "--activation checks one evidence file".into(),
                ));
            };
            let (store, opts) = resolve(&trust, &nonce, world)?;
            let mut verified = verify_file(evidence, &store, &opts)?;
            let challenge_path = challenge
                .ok_or_else(|| VerifyError::Usage("--activation needs --challenge".into()))?;
            let ch = Challenge::from_cbor(&read(&challenge_path)?).map_err(|source| {
                VerifyError::Format {
                    what: "challenge",
                    source,
                }
            })?;
            let act = Activation::from_cbor(&read(&activation)?).map_err(|source| {
                VerifyError::Format {
                    what: "activation",
                    source,
                }
            })?;
            check_activation(&mut verified, &ch, &act)?;
            if json {
                println!("{}", verified_json(evidence, &verified));
            } else {
                print!("{}", verified_text(evidence, &verified));
            }
            Ok(())
        }
        Command::Challenge {
            evidence,
            nonce,
            trust,
            world,
            out,
        } => {
            let (store, opts) = resolve(&trust, &nonce, world)?;
            let verified = verify_file(&evidence, &store, &opts)?;
            let mut secret = zeroize::Zeroizing::new([0u8; 32]);
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret[..]);
            let cred = byok_protocol::credential::make_credential(
                &verified.ek_public,
                &verified.ak_name,
                &secret[..],
            )?;
            let ch = Challenge {
                kind: byok_protocol::formats::CHALLENGE_TYPE.into(),
                version: byok_protocol::formats::VERSION,
                world: verified.world.clone(),
                ek_name: serde_bytes::ByteBuf::from(verified.ek_public.name()),
                ak_name: serde_bytes::ByteBuf::from(verified.ak_name.clone()),
                credential: byok_protocol::formats::CredentialBlob {
                    id_object: serde_bytes::ByteBuf::from(cred.id_object),
                    encrypted_secret: serde_bytes::ByteBuf::from(cred.encrypted_secret),
                },
                commitment: serde_bytes::ByteBuf::from(
                    byok_protocol::formats::activation_commitment(&secret[..]),
                ),
            };
            write_output(&out, &ch.to_cbor(), 0o644)?;
            println!("challenge for the AK of world {:?} written to {} (keep a copy: verify --challenge needs it)", verified.world, out.display());
            Ok(())
        }
        Command::Wrap {
            format,
            evidence,
            nonce,
            trust,
            world,
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
                        "--format {other:?}: use tpm, azure, gcp or aws"
                    )))
                }
            };
            let key_bytes = zeroize::Zeroizing::new(read(&key)?);
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
                let (store, opts) = resolve(&trust, &nonce, world)?;
                let verified = verify_file(&evidence, &store, &opts)?;
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
                            "--key-type {other:?}: use auto, aes or hmac"
                        )))
                    }
                };
                let package = wrap::wrap(&verified, target.as_ref(), label, key_pcrs.as_ref())?;
                write_output(&out, &package.to_cbor(), 0o644)?;
                println!(
                    "wrapped {} key for world {:?} (KEK {}) into {}",
                    target.alg_name(),
                    verified.world,
                    hex::encode(&verified.kek_name),
                    out.display()
                );
                return Ok(());
            };
            if key_pcrs.is_some() {
                return Err(usage("--key-pcrs is for --format tpm"));
            }
            // The cloud KEK: given as a public key, or a tpm-byok host's compat
            // KEK taken from evidence that is verified first.
            let kek = match (kek_public, evidence) {
                (Some(_), Some(_)) => {
                    return Err(usage("give --kek-public or --evidence, not both"))
                }
                (None, None) => return Err(usage(
                    "cloud formats need --kek-public, or --evidence of a host with a compat KEK",
                )),
                (Some(path), None) => cloud::read_kek_public(&read(&path)?)?,
                (None, Some(evidence)) => {
                    let Some(nonce) = nonce else {
                        return Err(usage("--evidence needs --nonce (and --roots or --policy)"));
                    };
                    let (store, opts) = resolve(&trust, &nonce, world)?;
                    let verified = verify_file(&evidence, &store, &opts)?;
                    let compat = verified
                        .compat_kek
                        .as_ref()
                        .ok_or(VerifyError::NoCompatKek)?;
                    let der = byok_protocol::keys::public_key_der(compat)?;
                    use spki::DecodePublicKey;
                    let key = rsa::RsaPublicKey::from_public_key_der(&der)
                        .map_err(|e| VerifyError::KekPublicUnreadable(e.to_string()))?;
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
                        "--key-type {other:?}: use auto, aes or hmac"
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
                "wrapped {} for {} with {} into {}",
                target.describe(),
                cloud.name(),
                plan.method,
                out.display()
            );
            Ok(())
        }
        Command::CheckReceipt {
            receipt: receipt_path,
            nonce,
            evidence,
            evidence_nonce,
            trust,
            transfer,
            json,
        } => {
            let (store, opts) = resolve(&trust, evidence_nonce.as_deref().unwrap_or(&nonce), None)?;
            let verified = verify_file(&evidence, &store, &opts)?;
            let r = Receipt::from_cbor(&read(&receipt_path)?).map_err(|source| {
                VerifyError::Format {
                    what: "receipt",
                    source,
                }
            })?;
            let t = match &transfer {
                Some(p) => Some(TransferPackage::from_cbor(&read(p)?).map_err(|source| {
                    VerifyError::Format {
                        what: "transfer package",
                        source,
                    }
                })?),
                None => None,
            };
            let report = receipt::check_receipt(
                &r,
                &verified,
                &parse_nonce(&nonce)?,
                &opts.policy,
                t.as_ref(),
            )?;
            if json {
                println!(
                    "{}",
                    json!({
                        "ok": true, "world": report.world, "key_name": hex::encode(&report.key_name), "key": report.key,
                        "attributes": report.attributes, "origin": report.origin, "duplicable": report.duplicable,
                        "matches_transfer": report.matches_transfer, "kek_name": hex::encode(&verified.kek_name),
                    })
                );
            } else {
                println!(
                    "OK receipt {}: {} key {} lives under the KEK of world {:?}",
                    receipt_path.display(),
                    report.key,
                    hex::encode(&report.key_name),
                    report.world
                );
                println!("  origin:      {}", report.origin);
                println!("  attributes:  {}", report.attributes.join("|"));
                println!(
                    "  duplicable:  {}",
                    match report.duplicable {
                        Some(false) => "no (fixedParent, an empty authPolicy or a PCR-only policy: TPM2_Duplicate can never be authorised)",
                        Some(true) => "yes",
                        None => "cannot tell (the key has an authPolicy the verifier cannot read)",
                    }
                );
                if report.matches_transfer == Some(true) {
                    println!("  transfer:    the certified key is exactly the wrapped one");
                }
            }
            Ok(())
        }
        Command::EkCert { cert, trust, json } => {
            // The nonce is not used here; resolve() wants one.
            let (store, _) = resolve(&trust, "0000000000000000", None)?;
            let certs = byok_verifier::certs::parse_certificates(&read(&cert)?)
                .map_err(VerifyError::EkCertificateUnparseable)?;
            let leaf = certs
                .first()
                .ok_or_else(|| VerifyError::EkCertificateUnparseable("no certificate".into()))?;
            let path =
                byok_verifier::certs::verify_path(leaf, &certs[1..], &store, SystemTime::now())?;
            let id = byok_verifier::certs::tpm_identity(leaf);
            let key = byok_verifier::certs::key_description(leaf);
            if json {
                println!(
                    "{}",
                    json!({"ok": true, "path": path, "key": key, "tpm_manufacturer": id.manufacturer,
                           "tpm_model": id.model, "tpm_version": id.version, "tcg_ek_eku": id.ek_eku})
                );
            } else {
                println!("OK {}: {} EK certificate", cert.display(), key);
                println!("  path:  {}", path.join(" -> "));
                println!(
                    "  TPM:   manufacturer {} model {} version {}",
                    id.manufacturer.as_deref().unwrap_or("-"),
                    id.model.as_deref().unwrap_or("-"),
                    id.version.as_deref().unwrap_or("-")
                );
                println!(
                    "  TCG EK EKU (2.23.133.8.1): {}",
                    if id.ek_eku { "present" } else { "absent" }
                );
            }
            Ok(())
        }
        Command::Inspect { file, json } => {
            let bytes = read(&file)?;
            let v = inspect::describe(&bytes).map_err(|e| VerifyError::Format {
                what: "file",
                source: byok_protocol::error::FormatError::Cbor(e),
            })?;
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
                    "--alg {alg:?}; use rsa2048, rsa3072, rsa4096, p256 or p384"
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
            println!("generated {} key in {}", alg.name(), out.display());
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
        eprintln!("byok-verifier: error: {e}");
        std::process::exit(e.exit_code());
    }
}
