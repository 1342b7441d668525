//! The agent's commands: what each reads, which TPM operations it runs (see
//! `tpm.rs`) and what it writes.

use crate::error::{io, AgentError, Result};
use crate::state::{write_atomic, KeyState, StateDir};
use crate::tpm::Tpm;
use crate::world::{kek_pcr_binding, key_parent, retired_generation, world_ek, world_kek};
use byok_protocol::formats::{
    Document, EkEvidence, Evidence, KekEvidence, PublicOnly, QuoteEvidence, Receipt, Signed,
    TpmInfo, TransferPackage,
};
use byok_protocol::public::TpmtPublic;
use byok_protocol::text::inert;
use byok_protocol::world::valid_id;
use serde_bytes::ByteBuf;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub struct Ctx {
    pub tcti: String,
    pub state_dir: PathBuf,
}

pub(crate) fn check_id(what: &'static str, v: &str) -> Result<()> {
    if valid_id(v) {
        Ok(())
    } else {
        Err(AgentError::InvalidId {
            what,
            value: v.to_string(),
        })
    }
}

fn parse_nonce(hex_nonce: &str) -> Result<Vec<u8>> {
    byok_protocol::nonce::Nonce::parse_hex(hex_nonce)
        .map(|n| n.into_bytes())
        .map_err(|e| AgentError::InvalidArgument {
            what: "--nonce",
            detail: e.to_string(),
        })
}

pub(crate) fn parse_public(bytes: &[u8], what: &str) -> Result<TpmtPublic> {
    TpmtPublic::parse_tpm2b(bytes).map_err(|e| AgentError::CorruptState {
        path: what.to_string(),
        detail: e.to_string(),
    })
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(io(path))
}

fn signed(a: crate::tpm::SignedAttest) -> Signed {
    Signed {
        attest: ByteBuf::from(a.attest),
        signature: ByteBuf::from(a.signature),
    }
}

/// `evidence --pcrs`: the one PCR syntax (`sha256:0,7`, or bare `0,7`);
/// quotes are of the sha256 bank.
fn parse_pcrs(s: &str) -> Result<Vec<u32>> {
    let spec =
        byok_protocol::policy::PcrSpec::parse(s).map_err(|detail| AgentError::InvalidArgument {
            what: "--pcrs",
            detail,
        })?;
    if spec.bank != byok_protocol::HashAlg::Sha256 {
        return Err(AgentError::InvalidArgument {
            what: "--pcrs",
            detail: format!("{}: evidence quotes the sha256 bank", spec.describe()),
        });
    }
    Ok(spec.pcrs)
}

pub fn evidence(ctx: &Ctx, world: &str, nonce: &str, pcrs: &str, out: &Path) -> Result<()> {
    check_id("world", world)?;
    let nonce = parse_nonce(nonce)?;
    let pcrs = parse_pcrs(pcrs)?;
    let state = StateDir::open(&ctx.state_dir)?;
    let w = state.world(world)?;
    let mut tpm = Tpm::open(&ctx.tcti)?;
    let kek = world_kek(&mut tpm, &state, &w)?;
    let (ek, ek_kind) = world_ek(&mut tpm, &w)?;
    let ek_public = tpm.ek_public(ek)?;
    let ek_certificate = tpm.ek_certificate(ek_kind)?;
    let identity = tpm.identity()?;

    let ak = tpm.load_ak(ek, &w.ak_public, &w.ak_private)?;
    let attested = (|| {
        let certify = tpm.certify(kek.handle.into(), ak, &nonce)?;
        let quote = tpm.quote(ak, &nonce, &pcrs)?;
        let compat = match (&w.compat_public, &w.compat_private) {
            (Some(public), Some(private)) => {
                let key = tpm.load(&kek, public, private)?;
                let c = tpm.certify(key.into(), ak, &nonce);
                tpm.flush(key);
                Some(KekEvidence {
                    public: public.clone(),
                    certify: signed(c?),
                    pcr_binding: None,
                })
            }
            _ => None,
        };
        Ok::<_, AgentError>((certify, quote, compat))
    })();
    tpm.flush(ak);
    let (certify, (quote, values), compat_kek) = attested?;

    let mut bank = BTreeMap::new();
    for (i, v) in values {
        bank.insert(i, ByteBuf::from(v));
    }
    let mut banks = BTreeMap::new();
    banks.insert("sha256".to_string(), bank);
    let ev = Evidence {
        kind: byok_protocol::formats::EVIDENCE_TYPE.into(),
        version: byok_protocol::formats::VERSION,
        world: world.to_string(),
        nonce: ByteBuf::from(nonce),
        tpm: TpmInfo {
            manufacturer: identity.manufacturer,
            vendor: identity.vendor,
            firmware: identity.firmware,
        },
        ek: EkEvidence {
            public: ByteBuf::from(ek_public),
            certificate: ByteBuf::from(ek_certificate),
            chain: Vec::new(),
        },
        ak: PublicOnly {
            public: w.ak_public.clone(),
        },
        kek: KekEvidence {
            public: w.kek_public.clone(),
            certify: Signed {
                attest: ByteBuf::from(certify.attest),
                signature: ByteBuf::from(certify.signature),
            },
            pcr_binding: kek_pcr_binding(&w)?,
        },
        quote: QuoteEvidence {
            attest: ByteBuf::from(quote.attest),
            signature: ByteBuf::from(quote.signature),
            pcrs: banks,
        },
        compat_kek,
        agent: Some(format!("byok-agent {}", byok_protocol::VERSION)),
    };
    write_atomic(out, &ev.to_cbor())?;
    println!("evidence for world {world} written to {}", out.display());
    Ok(())
}

pub fn import(ctx: &Ctx, world: &str, input: &Path, name: &str) -> Result<()> {
    check_id("world", world)?;
    check_id("key name", name)?;
    let bytes = read_file(input)?;
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        return crate::byok::import_byok(ctx, world, &bytes, name);
    }
    let pkg =
        TransferPackage::from_cbor(&bytes).map_err(|e| AgentError::BadPackage(e.to_string()))?;
    let state = StateDir::open(&ctx.state_dir)?;
    if state.has_key(name) {
        return Err(AgentError::KeyExists(name.to_string()));
    }
    if pkg.world != world {
        return Err(AgentError::PackageWorldMismatch {
            package: pkg.world,
            world: world.to_string(),
        });
    }
    let w = state.world(world)?;
    let kek_name = parse_public(&w.kek_public, "KEK public")?.name();
    if let Some(generation) = retired_generation(&w, &pkg.kek_name) {
        return Err(AgentError::KekRotated {
            world: world.to_string(),
            generation,
        });
    }
    if pkg.kek_name.as_ref() != kek_name.as_slice() {
        return Err(AgentError::PackageKekMismatch {
            world: world.to_string(),
            package: hex::encode(&pkg.kek_name),
            ours: hex::encode(kek_name),
        });
    }
    let ak_name = parse_public(&w.ak_public, "AK public")?.name();
    if pkg.ak_name.as_ref() != ak_name.as_slice() {
        return Err(AgentError::PackageAkMismatch {
            world: world.to_string(),
            package: hex::encode(&pkg.ak_name),
            ours: hex::encode(ak_name),
        });
    }
    if pkg.object.inner != "aes128cfb" {
        return Err(AgentError::BadPackage(format!(
            "inner wrapper {:?} is not supported",
            pkg.object.inner
        )));
    }
    let object = TpmtPublic::parse_tpm2b(&pkg.object.public)
        .map_err(|e| AgentError::BadPackage(format!("object public: {e}")))?;
    // Only the objects `wrap` writes: an empty authPolicy or exactly the
    // package's PolicyPCR, adminWithPolicy clear, the transfer attributes.
    // Anything else could be taken out again with TPM2_Duplicate.
    let key_pcrs = match byok_protocol::transfer::check_transfer_object(&object, &pkg.key)? {
        byok_protocol::transfer::TransferAuth::AuthValue => None,
        byok_protocol::transfer::TransferAuth::Pcrs(spec) => Some(spec),
    };

    let mut tpm = Tpm::open(&ctx.tcti)?;
    if !tpm.supports(&pkg.object.public)? {
        return Err(AgentError::UnsupportedByTpm(object.describe_key()));
    }
    let kek = world_kek(&mut tpm, &state, &w)?;
    let (ek, _) = world_ek(&mut tpm, &w)?;
    let ak = tpm.load_ak(ek, &w.ak_public, &w.ak_private)?;
    let inner_key = tpm.activate_credential(
        ak,
        ek,
        kek.handle,
        &pkg.credential.id_object,
        &pkg.credential.encrypted_secret,
    );
    tpm.flush(ak);
    let inner_key = inner_key?;
    let private = tpm.import(
        &kek,
        &inner_key,
        &pkg.object.public,
        &pkg.object.duplicate,
        &pkg.object.seed,
    )?;
    drop(inner_key);
    // Prove the imported blob loads before recording it.
    let loaded = tpm.load(&kek, &pkg.object.public, &private)?;
    tpm.flush(loaded);

    let key = KeyState {
        name: name.to_string(),
        world: world.to_string(),
        alg: pkg.key.alg.clone(),
        origin: "imported".into(),
        public: pkg.object.public.clone(),
        private: ByteBuf::from(private),
        label: pkg.key.label.clone(),
        policy_pcrs: key_pcrs.map(|s| s.describe()),
        kek_handle: None,
    };
    state.put_key(&key)?;
    println!(
        "imported {} key {name:?} into world {world} (name {})",
        object.describe_key(),
        hex::encode(object.name())
    );
    Ok(())
}

/// Answer a credential challenge: TPM2_ActivateCredential with the world's AK
/// and the EK releases the secret only if this TPM holds both.
pub fn activate(ctx: &Ctx, world: &str, input: &Path, out: &Path) -> Result<()> {
    use byok_protocol::formats::{Activation, Challenge, ACTIVATION_TYPE, VERSION};
    check_id("world", world)?;
    let ch = Challenge::from_cbor(&read_file(input)?)
        .map_err(|e| AgentError::BadPackage(format!("challenge: {e}")))?;
    if ch.world != world {
        return Err(AgentError::PackageWorldMismatch {
            package: ch.world,
            world: world.to_string(),
        });
    }
    let state = StateDir::open(&ctx.state_dir)?;
    let w = state.world(world)?;
    let ak_name = parse_public(&w.ak_public, "AK public")?.name();
    if ch.ak_name.as_ref() != ak_name.as_slice() {
        return Err(AgentError::PackageAkMismatch {
            world: world.to_string(),
            package: hex::encode(&ch.ak_name),
            ours: hex::encode(&ak_name),
        });
    }
    let mut tpm = Tpm::open(&ctx.tcti)?;
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
    );
    tpm.flush(ak);
    let secret = secret?;
    let answer = Activation {
        kind: ACTIVATION_TYPE.into(),
        version: VERSION,
        world: world.to_string(),
        ak_name: ByteBuf::from(ak_name),
        secret: ByteBuf::from(secret.to_vec()),
    };
    write_atomic(out, &answer.to_cbor())?;
    println!("activation for world {world} written to {}", out.display());
    Ok(())
}

pub fn keys_list(ctx: &Ctx, world: Option<&str>) -> Result<()> {
    let state = StateDir::open(&ctx.state_dir)?;
    if let Some(w) = world {
        check_id("world", w)?;
        state.world(w)?;
    }
    for k in state
        .keys()?
        .into_iter()
        .filter(|k| world.is_none_or(|w| k.world == w))
    {
        println!(
            "{}\t{}\t{}\t{}",
            k.name,
            k.world,
            inert(&k.alg),
            inert(&k.origin)
        );
    }
    Ok(())
}

pub fn keys_show(ctx: &Ctx, name: &str) -> Result<()> {
    check_id("key name", name)?;
    let state = StateDir::open(&ctx.state_dir)?;
    let k = state.key(name)?;
    let p = parse_public(&k.public, "key public")?;
    println!("name:       {}", k.name);
    println!("world:      {}", k.world);
    println!("algorithm:  {} ({})", inert(&k.alg), p.describe_key());
    println!("origin:     {}", inert(&k.origin));
    println!("tpm name:   {}", hex::encode(p.name()));
    println!(
        "attributes: {}",
        byok_protocol::tpm::attr::names(p.attributes).join("|")
    );
    if !p.auth_policy.is_empty() {
        println!("authPolicy: {}", hex::encode(&p.auth_policy));
    }
    if let Some(pcrs) = &k.policy_pcrs {
        println!("bound to:   PCRs {pcrs} (TPM2_PolicyPCR; use fails once they change)");
    }
    if let Some(l) = &k.label {
        println!("label:      {}", inert(l));
    }
    Ok(())
}

pub fn keys_delete(ctx: &Ctx, name: &str) -> Result<()> {
    check_id("key name", name)?;
    let state = StateDir::open(&ctx.state_dir)?;
    state.delete_key(name)?;
    println!(
        "deleted key {name:?} (its TPM-encrypted blob is gone; the key cannot be loaded again)"
    );
    Ok(())
}

pub fn public(ctx: &Ctx, name: &str, out: &Path) -> Result<()> {
    check_id("key name", name)?;
    let state = StateDir::open(&ctx.state_dir)?;
    let k = state.key(name)?;
    let p = parse_public(&k.public, "key public")?;
    let pem =
        byok_protocol::keys::public_key_pem(&p).map_err(|e| AgentError::Protocol(e.to_string()))?;
    write_atomic(out, pem.as_bytes())?;
    Ok(())
}

pub fn attest_key(ctx: &Ctx, name: &str, nonce: &str, out: &Path) -> Result<()> {
    check_id("key name", name)?;
    let nonce = parse_nonce(nonce)?;
    let state = StateDir::open(&ctx.state_dir)?;
    let k = state.key(name)?;
    let w = state.world(&k.world)?;
    let mut tpm = Tpm::open(&ctx.tcti)?;
    let kek = key_parent(&mut tpm, &state, &w, &k)?;
    let (ek, _) = world_ek(&mut tpm, &w)?;
    let ak = tpm.load_ak(ek, &w.ak_public, &w.ak_private)?;
    let key = match tpm.load(&kek, &k.public, &k.private) {
        Ok(key) => key,
        Err(e) => {
            tpm.flush(ak);
            return Err(e);
        }
    };
    let certify = tpm.certify(key.into(), ak, &nonce);
    tpm.flush(key);
    tpm.flush(ak);
    let certify = certify?;
    let receipt = Receipt {
        kind: byok_protocol::formats::RECEIPT_TYPE.into(),
        version: byok_protocol::formats::VERSION,
        world: k.world.clone(),
        nonce: ByteBuf::from(nonce),
        ak: PublicOnly {
            public: w.ak_public.clone(),
        },
        key: PublicOnly {
            public: k.public.clone(),
        },
        certify: Signed {
            attest: ByteBuf::from(certify.attest),
            signature: ByteBuf::from(certify.signature),
        },
    };
    write_atomic(out, &receipt.to_cbor())?;
    println!("receipt for key {name:?} written to {}", out.display());
    Ok(())
}
