//! Attestation: `evidence` (the KEK certified and the PCRs quoted by the
//! world's AK), `activate` (answering a credential challenge with the AK and
//! the EK) and `attest-key` (a receipt: a key certified by the AK).

use crate::context::{
    check_output, kek_pcr_binding, key_parent, read_file, world_ek, world_kek, Ctx,
};
use crate::error::{AgentError, Result};
use byok_protocol::formats::{
    Document, EkEvidence, Evidence, KekEvidence, PublicOnly, QuoteEvidence, Receipt, TpmInfo,
};
use byok_protocol::policy::PcrSpec;
use byok_protocol::world::WorldId;
use serde_bytes::ByteBuf;
use std::collections::BTreeMap;
use std::path::Path;

fn parse_nonce(hex_nonce: &str) -> Result<Vec<u8>> {
    byok_protocol::nonce::Nonce::parse_hex(hex_nonce)
        .map(|n| n.into_bytes())
        .map_err(|e| AgentError::InvalidArgument {
            what: "--nonce",
            detail: e.to_string(),
        })
}

/// `evidence --pcrs`: the one PCR syntax (`sha256:0,7`, or bare `0,7`);
/// quotes are of the sha256 bank.
fn quoted_pcrs(spec: &PcrSpec) -> Result<Vec<u32>> {
    if spec.bank != byok_protocol::HashAlg::Sha256 {
        return Err(AgentError::InvalidArgument {
            what: "--pcrs",
            detail: format!("{}: evidence quotes the sha256 bank", spec.describe()),
        });
    }
    Ok(spec.pcrs.clone())
}

/// The EK certificate and its chain for evidence: the file given with
/// `--ek-cert` (its first certificate; the rest are chain) or the one in NV,
/// then the chain from the TCG NV range; at most MAX_EK_CHAIN in all.
fn ek_certificates(
    tpm: &mut crate::tpm::Tpm,
    ek_kind: crate::tpm::EkKind,
    given: Option<Vec<Vec<u8>>>,
) -> Result<(Vec<u8>, Vec<Vec<u8>>)> {
    let (ek_certificate, mut chain) = match given {
        Some(mut certs) => {
            let leaf = certs.remove(0);
            (leaf, certs)
        }
        None => (
            tpm.ek_certificate(ek_kind).map_err(|e| match e {
                AgentError::NoEkCertificate { index, detail } => AgentError::NoEkCertificate {
                    index,
                    detail: format!("{detail} (if the manufacturer publishes it online, pass it with --ek-cert FILE)"),
                },
                e => e,
            })?,
            Vec::new(),
        ),
    };
    chain.extend(tpm.ek_chain()?);
    if chain.len() > byok_protocol::formats::MAX_EK_CHAIN {
        eprintln!(
            "byok-agent: warning: {} EK chain certificates; evidence carries the first {}",
            chain.len(),
            byok_protocol::formats::MAX_EK_CHAIN
        );
        chain.truncate(byok_protocol::formats::MAX_EK_CHAIN);
    }
    Ok((ek_certificate, chain))
}

/// The certificates of an `--ek-cert` file (checked to hold some).
fn read_ek_cert(p: &Path) -> Result<Vec<Vec<u8>>> {
    byok_protocol::der::certificates_from_file(&crate::context::read_file(p)?).map_err(|detail| {
        AgentError::InvalidArgument {
            what: "--ek-cert",
            detail: format!("{}: {detail}", p.display()),
        }
    })
}

// Long on purpose: the TPM work, then the evidence document field by field, in one place.
pub fn evidence(
    ctx: &Ctx,
    world: &WorldId,
    nonce: &str,
    pcrs: &PcrSpec,
    ek_cert: Option<&Path>,
    out: &Path,
) -> Result<()> {
    check_output(out)?;
    let nonce = parse_nonce(nonce)?;
    let pcrs = quoted_pcrs(pcrs)?;
    // A certificate file given is read before any TPM work.
    let given = ek_cert.map(read_ek_cert).transpose()?;
    let (state, w) = ctx.world(world)?;
    let mut tpm = ctx.tpm(&state)?;
    let kek = world_kek(&mut tpm, &state, &w)?;
    let (ek, ek_kind) = world_ek(&mut tpm, &w)?;
    let ek_public = tpm.ek_public(ek)?;
    let (ek_certificate, chain) = ek_certificates(&mut tpm, ek_kind, given)?;
    let identity = tpm.identity()?;

    // What is loaded is flushed when `tpm` goes out of scope, on any path;
    // the AK and the compat KEK are flushed as soon as they are done with
    // (swtpm has three slots).
    let ak = tpm.load_ak(ek, &w.ak_public, &w.ak_private)?;
    let certify = tpm.certify(kek.handle.into(), ak, &nonce)?;
    let (quote, values) = tpm.quote(ak, &nonce, &pcrs)?;
    let compat_kek = match (&w.kek.compat_public, &w.compat_private) {
        (Some(public), Some(private)) => {
            let key = tpm.load(&kek, public, private)?;
            let c = tpm.certify(key.into(), ak, &nonce)?;
            tpm.flush(key);
            Some(KekEvidence {
                public: ByteBuf::from(public.to_tpm2b()),
                certify: c,
                pcr_binding: None,
            })
        }
        _ => None,
    };
    tpm.flush(ak);

    let bank = values
        .into_iter()
        .map(|(i, v)| (i, ByteBuf::from(v)))
        .collect::<BTreeMap<_, _>>();
    let banks = BTreeMap::from([(byok_protocol::hash::HashAlg::Sha256, bank)]);
    let ev = Evidence {
        kind: byok_protocol::formats::EVIDENCE_TYPE.into(),
        version: byok_protocol::formats::VERSION,
        world: world.clone(),
        nonce: ByteBuf::from(nonce),
        tpm: TpmInfo {
            manufacturer: identity.manufacturer,
            vendor: identity.vendor,
            firmware: identity.firmware,
        },
        ek: EkEvidence {
            public: ByteBuf::from(ek_public),
            certificate: ByteBuf::from(ek_certificate),
            chain: chain.into_iter().map(ByteBuf::from).collect(),
        },
        ak: PublicOnly {
            public: ByteBuf::from(w.ak_public.to_tpm2b()),
        },
        kek: KekEvidence {
            public: ByteBuf::from(w.kek.public.to_tpm2b()),
            certify,
            pcr_binding: kek_pcr_binding(&w)?,
        },
        quote: QuoteEvidence {
            attest: quote.attest,
            signature: quote.signature,
            pcrs: banks,
        },
        compat_kek,
        agent: Some(format!("byok-agent {}", byok_protocol::VERSION)),
    };
    crate::context::write_output(out, &ev.to_cbor())?;
    byok_protocol::said_to!(
        out,
        "evidence for world {world} written to {}",
        out.display()
    );
    Ok(())
}

/// Answer a credential challenge: TPM2_ActivateCredential with the world's AK
/// and the EK releases the secret only if this TPM holds both.
pub fn activate(ctx: &Ctx, world: &WorldId, input: &Path, out: &Path) -> Result<()> {
    use byok_protocol::formats::{Activation, Challenge, ACTIVATION_TYPE, VERSION};
    check_output(out)?;
    let ch = Challenge::from_cbor(&read_file(input)?)
        .map_err(|e| AgentError::BadPackage(format!("challenge: {e}")))?;
    if ch.world != *world {
        return Err(AgentError::PackageWorldMismatch {
            package: ch.world,
            world: world.clone(),
        });
    }
    let (state, w) = ctx.world(world)?;
    let ak_name = w.ak_public.name();
    if ch.ak_name.as_ref() != ak_name.as_slice() {
        return Err(AgentError::PackageAkMismatch {
            world: world.clone(),
            package: hex::encode(&ch.ak_name),
            ours: hex::encode(&ak_name),
        });
    }
    let mut tpm = ctx.tpm(&state)?;
    let (ek, _) = world_ek(&mut tpm, &w)?;
    let ak = tpm.load_ak(ek, &w.ak_public, &w.ak_private)?;
    // A challenge's secret goes back to the verifier in the activation file
    // anyway: the EK salts its session.
    let secret = tpm.activate_credential(
        ak,
        ek,
        ek,
        &ch.credential.id_object,
        &ch.credential.encrypted_secret,
    )?;
    tpm.flush(ak);
    let answer = Activation {
        kind: ACTIVATION_TYPE.into(),
        version: VERSION,
        world: world.clone(),
        ak_name: ByteBuf::from(ak_name),
        secret: ByteBuf::from(secret.to_vec()),
    };
    crate::context::write_output(out, &answer.to_cbor())?;
    byok_protocol::said_to!(
        out,
        "activation for world {world} written to {}",
        out.display()
    );
    Ok(())
}

pub fn attest_key(ctx: &Ctx, name: &str, nonce: &str, out: &Path) -> Result<()> {
    check_output(out)?;
    let nonce = parse_nonce(nonce)?;
    let (state, k, w) = ctx.key(name)?;
    let mut tpm = ctx.tpm(&state)?;
    let kek = key_parent(&mut tpm, &state, &w, &k)?;
    let (ek, _) = world_ek(&mut tpm, &w)?;
    let ak = tpm.load_ak(ek, &w.ak_public, &w.ak_private)?;
    let key = tpm.load(&kek, &k.public, &k.private)?;
    let certify = tpm.certify(key.into(), ak, &nonce)?;
    tpm.flush(key);
    tpm.flush(ak);
    let receipt = Receipt {
        kind: byok_protocol::formats::RECEIPT_TYPE.into(),
        version: byok_protocol::formats::VERSION,
        world: k.world.clone(),
        nonce: ByteBuf::from(nonce),
        ak: PublicOnly {
            public: ByteBuf::from(w.ak_public.to_tpm2b()),
        },
        key: PublicOnly {
            public: ByteBuf::from(k.public.to_tpm2b()),
        },
        certify,
    };
    crate::context::write_output(out, &receipt.to_cbor())?;
    byok_protocol::said_to!(out, "receipt for key {name:?} written to {}", out.display());
    Ok(())
}
