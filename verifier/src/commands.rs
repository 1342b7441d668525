//! One function per byok-verifier command: read the inputs, run the
//! library's checks, write the output, print the result.

use crate::cli::{
    proof, ChallengeArgs, CheckReceiptArgs, EkCertArgs, EnrollArgs, InspectArgs, KeygenArgs,
    VerifyArgs, WrapArgs, WrapFormat,
};
use byok_protocol::formats::{Document, Receipt, TransferPackage};
use byok_protocol::keys::{GeneratedKey, SymmetricKey, SymmetricKind, TargetKey, TpmObjectKey};
use byok_protocol::text::inert;
use byok_verifier::cloud::{self, Cloud, CloudKey, KeyType};
use byok_verifier::error::VerifyError;
use byok_verifier::pipeline::{Pipeline, ProofFlags};
use byok_verifier::policy::PolicyFile;
use byok_verifier::report::{
    identity_text, inert_json, json_line, EkCertReport, EnrolReport, Identity, ReceiptJson,
    WrapReport,
};
use byok_verifier::trust::{resolve_policy, trust_store};
use byok_verifier::verify::{make_challenge, parse_nonce, require_proven_ak, Verified};
use byok_verifier::{
    batch, inspect, read, read_document, receipt, registry, wrap, write_output, MAX_INPUT_SIZE,
};
use std::path::Path;
use std::time::SystemTime;

type Result<T> = std::result::Result<T, VerifyError>;

pub(crate) fn usage(what: &str) -> VerifyError {
    VerifyError::Usage(what.to_string())
}

pub(crate) fn shown(p: &Path) -> String {
    inert(&p.display().to_string()).into_owned()
}

pub fn verify(a: VerifyArgs) -> Result<()> {
    if a.answer.activation.is_some() && a.evidence.len() != 1 {
        return Err(usage("--activation checks one evidence file"));
    }
    let pipeline = Pipeline::new(
        &a.trust.flags(),
        &proof(&a.registered, Some(&a.answer)),
        parse_nonce(&a.nonce)?,
        a.world,
    )?;
    let files = batch::expand(&a.evidence)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    batch::verify_files(&files, &pipeline, a.json, &mut out)
}

pub fn challenge(a: ChallengeArgs) -> Result<()> {
    let pipeline = Pipeline::new(
        &a.trust.flags(),
        &proof(&a.registered, None),
        parse_nonce(&a.nonce)?,
        a.world,
    )?
    .enrolling();
    let verified = pipeline.check_file(&a.evidence)?;
    let ch = make_challenge(&verified)?;
    write_output(&a.out, &ch.to_cbor(), 0o644)?;
    byok_protocol::said_to!(
        &a.out,
        "challenge for the AK of world {:?} ({}) written to {} (keep a copy: enroll and verify --challenge need it)",
        inert(&verified.world),
        identity_text(&verified),
        shown(&a.out)
    );
    Ok(())
}

pub fn enroll(a: EnrollArgs) -> Result<()> {
    // Enrolment proves the AK by the activation; an existing record for this
    // EK is what it may update, so the registry is not consulted here.
    let pipeline = Pipeline::new(
        &a.trust.flags(),
        &ProofFlags {
            challenge: Some(a.challenge),
            activation: Some(a.activation),
            ..Default::default()
        },
        parse_nonce(&a.nonce)?,
        a.world,
    )?
    .enrolling();
    let mut verified = pipeline.check_file(&a.evidence)?;
    let (record, outcome) = registry::enroll(
        &a.registry,
        &verified,
        a.host.as_deref(),
        a.replace,
        now_secs(),
    )?;
    verified.host = Some(record.host.clone());
    if a.json {
        let report = EnrolReport {
            ok: true,
            outcome: outcome.describe(),
            world: &verified.world,
            ak_name: hex::encode(&verified.ak_name),
            kek_name: hex::encode(&verified.kek_name),
            record: a
                .registry
                .join(format!("{}.cbor", record.host))
                .display()
                .to_string(),
            identity: Identity::of(&verified),
        };
        println!("{}", json_line(&report));
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

/// Flags only one kind of format reads, refused with the others, for single
/// and fleet wraps alike: a cloud blob carries no PCR policy and no label; a
/// transfer package needs no cloud KEK, kid or method.
fn check_format_flags(a: &WrapArgs) -> Result<()> {
    if a.format == WrapFormat::Tpm {
        if a.kek_public.is_some() || a.method.is_some() || a.kid.is_some() {
            return Err(usage(
                "--kek-public, --kid and --method are for --format azure|gcp|aws",
            ));
        }
    } else if a.key_pcrs.is_some() || a.label.is_some() {
        return Err(usage(
            "--key-pcrs and --label are for --format tpm (a cloud blob carries neither)",
        ));
    }
    Ok(())
}

pub fn wrap(a: WrapArgs) -> Result<()> {
    let key = zeroize::Zeroizing::new(read(&a.key, MAX_INPUT_SIZE)?);
    check_format_flags(&a)?;
    if a.nonces.is_some() {
        return crate::fleet_commands::wrap(&a, &key);
    }
    let Some(out) = a.out.clone() else {
        return Err(usage(
            "give -o FILE (or --nonces and --out-dir for a fleet)",
        ));
    };
    let pipeline = || -> Result<Pipeline> {
        let nonce = a
            .nonce
            .as_deref()
            .ok_or_else(|| usage("--evidence needs --nonce (and --roots or --policy)"))?;
        Pipeline::new(
            &a.trust.flags(),
            &proof(&a.registered, Some(&a.answer)),
            parse_nonce(nonce)?,
            a.world.clone(),
        )
    };
    let cloud = match a.format {
        WrapFormat::Tpm => return wrap_tpm(&a, &out, &key, pipeline),
        WrapFormat::Azure => Cloud::Azure,
        WrapFormat::Gcp => Cloud::Gcp,
        WrapFormat::Aws => Cloud::Aws,
    };
    // The cloud KEK: given as a public key, or a tpm-byok host's compat KEK
    // taken from evidence that is verified first (with a proven AK).
    let (kek, identity) = match (&a.kek_public, &a.evidence) {
        (Some(_), Some(_)) => return Err(usage("give --kek-public or --evidence, not both")),
        (None, None) => {
            return Err(usage(
                "cloud formats need --kek-public, or --evidence of a host with a compat KEK",
            ))
        }
        (Some(path), None) => (cloud::read_kek_public(&read(path, MAX_INPUT_SIZE)?)?, None),
        (None, Some(evidence)) => {
            let verified = pipeline()?.check_file(evidence)?;
            (cloud::compat_kek_public(&verified)?, Some(verified))
        }
    };
    let target = CloudKey::read(&key, a.key_type)?;
    let plan = cloud::plan(cloud, a.method, &target, &kek.key)?;
    let mut blob = cloud::wrap(cloud, &plan, &kek, a.kid.as_deref(), &target)?;
    if a.base64 && cloud != Cloud::Azure {
        use base64::Engine as _;
        blob = base64::engine::general_purpose::STANDARD
            .encode(&blob)
            .into_bytes();
        blob.push(b'\n');
    }
    write_output(&out, &blob, 0o644)?;
    use rsa::traits::PublicKeyParts;
    let upload = cloud::upload_hint(
        cloud,
        &plan,
        &target,
        kek.key.size() * 8,
        &out.display().to_string(),
    );
    if a.json {
        println!(
            "{}",
            json_line(&WrapReport {
                ok: true,
                format: cloud.id(),
                key: target.describe(),
                out: out.display().to_string(),
                method: Some(plan.method.to_string()),
                upload: Some(upload),
                world: identity.as_ref().map(|v| &v.world),
                kek_name: identity.as_ref().map(|v| hex::encode(&v.kek_name)),
                identity: identity.as_ref().map(Identity::of),
            })
        );
        return Ok(());
    }
    byok_protocol::said_to!(
        &out,
        "wrapped {} for {} with {}{} into {}",
        target.describe(),
        cloud.name(),
        plan.method,
        identity
            .as_ref()
            .map(|v| format!(" ({})", identity_text(v)))
            .unwrap_or_default(),
        shown(&out)
    );
    byok_protocol::said_to!(&out, "upload: {}", upload);
    Ok(())
}

/// `wrap --format tpm`: one pass. The package's credential binds it to the
/// TPM that holds this EK and this AK, so an unproven AK is safe here.
fn wrap_tpm(
    a: &WrapArgs,
    out: &Path,
    key: &[u8],
    pipeline: impl Fn() -> Result<Pipeline>,
) -> Result<()> {
    let (Some(evidence), Some(_)) = (&a.evidence, &a.nonce) else {
        return Err(usage(
            "--format tpm needs --evidence and --nonce (and --roots or --policy)",
        ));
    };
    let verified = pipeline()?.check_file(evidence)?;
    let target: Box<dyn TpmObjectKey> = match a.key_type {
        KeyType::Auto => Box::new(TargetKey::from_bytes(key)?),
        KeyType::Aes => Box::new(SymmetricKey::new(SymmetricKind::Aes, key)?),
        KeyType::Hmac => Box::new(SymmetricKey::new(SymmetricKind::HmacSha256, key)?),
    };
    let package = wrap::wrap(
        &verified,
        target.as_ref(),
        a.label.clone(),
        a.key_pcrs.as_ref(),
    )?;
    write_output(out, &package.to_cbor(), 0o644)?;
    if a.json {
        println!(
            "{}",
            json_line(&WrapReport {
                ok: true,
                format: "tpm",
                key: target.alg_name().to_string(),
                out: out.display().to_string(),
                method: None,
                upload: Some(import_hint(&verified.world, out)),
                world: Some(&verified.world),
                kek_name: Some(hex::encode(&verified.kek_name)),
                identity: Some(Identity::of(&verified)),
            })
        );
        return Ok(());
    }
    byok_protocol::said_to!(
        out,
        "wrapped {} key for world {:?} (KEK {}; {}) into {}",
        target.alg_name(),
        inert(&verified.world),
        hex::encode(&verified.kek_name),
        identity_text(&verified),
        shown(out)
    );
    byok_protocol::said_to!(out, "next: {}", import_hint(&verified.world, out));
    Ok(())
}

/// What the operator does with a transfer package: copy it to the host and
/// import it there.
pub(crate) fn import_hint(world: &byok_protocol::world::WorldId, out: &Path) -> String {
    let file = out
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| out.display().to_string());
    format!(
        "copy {} to the host, then run there: byok-agent import --world {} --in {} --name NAME",
        inert(&out.display().to_string()),
        inert(world),
        inert(&file)
    )
}

pub fn check_receipt(a: CheckReceiptArgs) -> Result<()> {
    if a.receipts.is_some() {
        return crate::fleet_commands::check_receipts(&a);
    }
    let (Some(receipt_path), Some(nonce), Some(evidence)) = (&a.receipt, &a.nonce, &a.evidence)
    else {
        return Err(usage(
            "give --receipt, --nonce and --evidence (or --receipts and --nonces for a fleet)",
        ));
    };
    let pipeline = Pipeline::new(
        &a.trust.flags(),
        &proof(&a.registered, Some(&a.answer)),
        parse_nonce(a.evidence_nonce.as_deref().unwrap_or(nonce))?,
        None,
    )?;
    let verified = pipeline.check_file(evidence)?;
    // A receipt is signed by the AK alone: only an AK proven to live in the
    // EK's TPM makes it a statement of that TPM (checked first by
    // check_receipt; here before reading more files).
    require_proven_ak(&verified, "check-receipt")?;
    let r: Receipt = read_document(receipt_path, "receipt", Receipt::MAX_SIZE)?;
    let t = match &a.transfer {
        Some(p) => Some(read_document::<TransferPackage>(
            p,
            "transfer package",
            TransferPackage::MAX_SIZE,
        )?),
        None => None,
    };
    let policy = &pipeline.for_world(&verified.world)?.opts.policy;
    let report = receipt::check_receipt(&r, &verified, &parse_nonce(nonce)?, policy, t.as_ref())?;
    if a.json {
        let json = ReceiptJson {
            ok: true,
            world: &report.world,
            key_name: hex::encode(&report.key_name),
            key: &report.key,
            attributes: &report.attributes,
            origin: report.origin,
            duplicable: report.duplicable,
            matches_transfer: report.matches_transfer,
            kek_name: hex::encode(&verified.kek_name),
            ak_ek_binding: verified.ak_binding.describe(),
            identity: Identity::of(&verified),
        };
        println!("{}", json_line(&json));
        return Ok(());
    }
    print_receipt(receipt_path, &report, &verified);
    Ok(())
}

fn print_receipt(path: &Path, report: &receipt::ReceiptReport, verified: &Verified) {
    println!(
        "OK receipt {}: {} key {} lives under the KEK of world {:?}",
        shown(path),
        report.key,
        hex::encode(&report.key_name),
        inert(&report.world)
    );
    println!("  identity:    {}", identity_text(verified));
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

pub fn ek_cert(a: EkCertArgs) -> Result<()> {
    let flags = a.trust.flags();
    let file = flags.policy.as_deref().map(PolicyFile::load).transpose()?;
    let policy = resolve_policy(
        file.as_ref(),
        &flags,
        file.as_ref().and_then(|f| f.only_world()),
    )?;
    let store = trust_store(&flags, &policy)?;
    let certs = byok_verifier::certs::parse_certificates(&read(&a.cert, MAX_INPUT_SIZE)?)
        .map_err(VerifyError::EkCertificateUnparseable)?;
    let leaf = certs
        .first()
        .ok_or_else(|| VerifyError::EkCertificateUnparseable("no certificate".into()))?;
    let path = byok_verifier::certs::verify_ek_path(leaf, &certs[1..], &store, SystemTime::now())?;
    let id = byok_verifier::certs::tpm_identity(leaf);
    let key = byok_verifier::certs::key_description(leaf);
    let sha = hex::encode(byok_protocol::hash::sha256(leaf.der()));
    if a.json {
        let report = EkCertReport {
            ok: true,
            path: &path,
            key: key.clone(),
            certificate_sha256: sha.clone(),
            tpm_manufacturer: id.manufacturer.clone(),
            tpm_model: id.model.clone(),
            tpm_version: id.version.clone(),
            tcg_ek_eku: id.ek_eku,
        };
        println!("{}", json_line(&report));
        return Ok(());
    }
    let t = |s: &Option<String>| inert(s.as_deref().unwrap_or("-")).into_owned();
    println!(
        "OK {}: {} EK certificate, SHA-256 {sha}",
        shown(&a.cert),
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
    Ok(())
}

pub fn inspect(a: InspectArgs) -> Result<()> {
    let bytes = read(&a.file, byok_protocol::formats::MAX_DOCUMENT_SIZE)?;
    let v = inspect::describe(&bytes).map_err(|detail| VerifyError::Uninspectable {
        path: a.file.display().to_string(),
        detail,
    })?;
    let v = inert_json(v);
    if a.json {
        println!("{v}");
    } else {
        let mut s = String::new();
        inspect::to_text(&v, 0, &mut s);
        print!("{s}");
    }
    Ok(())
}

pub fn keygen(a: KeygenArgs) -> Result<()> {
    let alg = a.alg;
    byok_protocol::output::check_output(&a.out)?;
    match alg.generate()? {
        GeneratedKey::Pem(pem) => {
            write_output(&a.out, pem.as_bytes(), 0o600)?;
            byok_protocol::said_to!(&a.out, "generated {} key in {}", alg.name(), shown(&a.out));
        }
        GeneratedKey::Raw { bytes, key_type } => {
            write_output(&a.out, &bytes, 0o600)?;
            byok_protocol::said_to!(
                &a.out,
                "generated {} key ({} raw bytes) in {}; wrap it with --key-type {key_type}",
                alg.name(),
                bytes.len(),
                shown(&a.out)
            );
        }
    }
    Ok(())
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
