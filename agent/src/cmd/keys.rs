//! Keys in use: generated inside the TPM (`keys create`), sealed data
//! (`seal`/`unseal`), and every operation on a stored key (sign, decrypt,
//! encrypt, hmac). Each command loads the key under its world's KEK, runs one
//! TPM operation (with a PolicyPCR session when the key is PCR-bound) and
//! flushes the key.
//! Also the stored keys themselves: `keys list|show|delete` and `public`.

use crate::cli::{Digest, RsaPadding};
use crate::context::{check_id, check_output, key_parent, world_kek, write_output, Ctx};
use crate::error::{io, AgentError, Result};
use crate::report::{print_json, KeyReport};
use crate::state::KeyState;
use crate::tpm::{Hashing, Parent, Tpm, TpmHashScheme, TpmSignature, TpmSignatureScheme};
use byok_protocol::formats::KeyOrigin;
use byok_protocol::policy::{PcrSpec, PolicyDigest};
use byok_protocol::public::TpmtPublic;
use byok_protocol::templates::{born_key_template, sealed_data_template, BornKeyAlg};
use byok_protocol::text::inert;
use byok_protocol::tpm::alg;
use byok_protocol::world::WorldId;
use rand::RngCore;
use serde_bytes::ByteBuf;
use sha2::Digest as _;
use std::path::Path;
use tss_esapi::handles::KeyHandle;
use zeroize::Zeroizing;

const AES_IV_LEN: usize = 16;

fn read_input(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    std::fs::read(path).map(Zeroizing::new).map_err(io(path))
}

/// The authPolicy binding an object to the current values of `spec`.
fn pcr_policy(tpm: &mut Tpm, spec: &PcrSpec) -> Result<Vec<u8>> {
    let values = tpm.pcr_values(spec)?;
    Ok(PolicyDigest::new().pcr(spec, &values).into_vec())
}

/// Create a new object under the world's KEK and record it; `make` runs the
/// TPM2_Create and returns (TPM2B_PUBLIC, TPM2B_PRIVATE).
fn create_under_kek(
    ctx: &Ctx,
    world: &WorldId,
    name: &str,
    pcrs: Option<&PcrSpec>,
    alg_name: &str,
    origin: KeyOrigin,
    make: impl FnOnce(&mut Tpm, &Parent, Vec<u8>) -> Result<(TpmtPublic, Vec<u8>)>,
) -> Result<TpmtPublic> {
    check_id("key name", name)?;
    let spec = pcrs.cloned();
    let state = ctx.state()?;
    if state.has_key(name) {
        return Err(AgentError::KeyExists(name.to_string()));
    }
    let w = state.world(world)?;
    let mut tpm = ctx.tpm(&state)?;
    let kek = world_kek(&mut tpm, &state, &w)?;
    let policy = match &spec {
        Some(s) => pcr_policy(&mut tpm, s)?,
        None => Vec::new(),
    };
    let (public, private) = make(&mut tpm, &kek, policy)?;
    state.put_key(&KeyState {
        name: name.to_string(),
        world: world.clone(),
        alg: alg_name.to_string(),
        origin,
        public: public.clone(),
        private: ByteBuf::from(private),
        label: None,
        policy_pcrs: spec,
        kek_handle: None,
    })?;
    Ok(public)
}

/// `keys create`: TPM2_Create of a fixedTPM|fixedParent|sensitiveDataOrigin
/// key under the world's KEK: generated inside the TPM, never duplicable.
pub fn create(
    ctx: &Ctx,
    world: &WorldId,
    name: &str,
    key_alg: BornKeyAlg,
    pcrs: Option<&PcrSpec>,
) -> Result<()> {
    let p = create_under_kek(
        ctx,
        world,
        name,
        pcrs,
        key_alg.name(),
        KeyOrigin::Generated,
        |tpm, kek, policy| tpm.create_child(kek, &born_key_template(key_alg, policy)),
    )?;
    byok_protocol::say!(
        "created {} key {name:?} inside the TPM in world {world} (name {}){}",
        p.describe_key(),
        hex::encode(p.name()),
        pcrs.map(|s| format!(", usable only while PCRs {s} keep their current values"))
            .unwrap_or_default()
    );
    Ok(())
}

/// `seal`: a sealed data object under the world's KEK.
pub fn seal(
    ctx: &Ctx,
    world: &WorldId,
    name: &str,
    input: &Path,
    pcrs: Option<&PcrSpec>,
) -> Result<()> {
    let data = read_input(input)?;
    if data.len() > crate::tpm::MAX_SEALED {
        return Err(AgentError::InvalidArgument {
            what: "--in",
            detail: format!(
                "{} bytes; a sealed object holds at most {} bytes (seal a key that encrypts the data)",
                data.len(),
                crate::tpm::MAX_SEALED
            ),
        });
    }
    create_under_kek(
        ctx,
        world,
        name,
        pcrs,
        "sealed-data",
        KeyOrigin::Sealed,
        |tpm, kek, policy| tpm.create_sealed(kek, &sealed_data_template(policy), &data),
    )?;
    byok_protocol::say!(
        "sealed {} bytes as {name:?} in world {world}{}",
        data.len(),
        pcrs.map(|s| format!(", released only while PCRs {s} keep their current values"))
            .unwrap_or_default()
    );
    Ok(())
}

/// Load stored key `name` under its world's KEK, run `f`, flush it.
fn with_key<T>(
    ctx: &Ctx,
    name: &str,
    f: impl FnOnce(&mut Tpm, &KeyState, &TpmtPublic, Loaded, Option<&PcrSpec>) -> Result<T>,
) -> Result<T> {
    let (state, k, w) = ctx.key(name)?;
    let p = &k.public;
    let spec = k.policy_pcrs.clone();
    let mut tpm = ctx.tpm(&state)?;
    let kek = key_parent(&mut tpm, &state, &w, &k)?;
    let key = tpm.load(&kek, &k.public, &k.private)?;
    let loaded = Loaded {
        key,
        parent: kek.handle,
    };
    let r = f(&mut tpm, &k, p, loaded, spec.as_ref());
    tpm.flush(key);
    r
}

/// A key loaded for one operation, and its parent (which salts the sessions
/// that carry secrets).
#[derive(Clone, Copy)]
struct Loaded {
    key: KeyHandle,
    parent: KeyHandle,
}

fn wrong_type(name: &str, p: &TpmtPublic, op: &str) -> AgentError {
    AgentError::InvalidArgument {
        what: "--key",
        detail: format!("{name:?} is {} and cannot {op}", p.describe_key()),
    }
}

pub fn unseal(ctx: &Ctx, name: &str, out: &Path) -> Result<()> {
    check_output(out)?;
    let data = with_key(ctx, name, |tpm, k, p, key, spec| {
        if k.origin != KeyOrigin::Sealed {
            return Err(wrong_type(name, p, "be unsealed (it is not sealed data)"));
        }
        tpm.unseal(key.key, key.parent, spec)
    })?;
    write_output(out, &data)?;
    byok_protocol::said_to!(
        out,
        "unsealed {name:?} ({} bytes) into {}",
        data.len(),
        out.display()
    );
    Ok(())
}

/// The TPM's name of `hash`, and the digest of `data` with it.
fn hash_of(hash: Digest, data: &[u8]) -> (Hashing, Vec<u8>) {
    match hash {
        Digest::Sha256 => (Hashing::Sha256, sha2::Sha256::digest(data).to_vec()),
        Digest::Sha384 => (Hashing::Sha384, sha2::Sha384::digest(data).to_vec()),
        Digest::Sha512 => (Hashing::Sha512, sha2::Sha512::digest(data).to_vec()),
    }
}

pub fn sign(
    ctx: &Ctx,
    name: &str,
    input: &Path,
    out: &Path,
    hash: Digest,
    scheme: RsaPadding,
) -> Result<()> {
    check_id("key name", name)?;
    check_output(out)?;
    let (hashing, digest) = hash_of(hash, &read_input(input)?);
    let bytes = with_key(ctx, name, |tpm, _, p, key, spec| {
        let hs = TpmHashScheme::new(hashing);
        let tpm_scheme = match (p.object_type, scheme) {
            (alg::RSA, RsaPadding::Pkcs1) => TpmSignatureScheme::RsaSsa { hash_scheme: hs },
            (alg::RSA, RsaPadding::Pss) => TpmSignatureScheme::RsaPss { hash_scheme: hs },
            (alg::ECC, _) => TpmSignatureScheme::EcDsa { hash_scheme: hs },
            _ => return Err(wrong_type(name, p, "sign (use `hmac` for HMAC keys)")),
        };
        match tpm.sign(key.key, &digest, tpm_scheme, spec)? {
            TpmSignature::RsaSsa(s) | TpmSignature::RsaPss(s) => Ok(s.signature().value().to_vec()),
            TpmSignature::EcDsa(s) => {
                ecdsa_der(p, s.signature_r().value(), s.signature_s().value())
            }
            _ => Err(AgentError::TpmUnexpected("signature type")),
        }
    })?;
    write_output(out, &bytes)?;
    byok_protocol::said_to!(
        out,
        "signed {} with key {name:?}: signature in {}",
        input.display(),
        out.display()
    );
    Ok(())
}

/// `decrypt`: RSA-OAEP (MGF1 with the same hash, empty label) for RSA keys;
/// AES-256-CFB for AES keys, the input being IV (16 bytes) || ciphertext as
/// `encrypt` writes it.
pub fn decrypt(ctx: &Ctx, name: &str, input: &Path, out: &Path, hash: Digest) -> Result<()> {
    check_output(out)?;
    let data = read_input(input)?;
    let (hashing, _) = hash_of(hash, &[]);
    let plain = with_key(ctx, name, |tpm, _, p, key, spec| match p.object_type {
        alg::RSA => tpm.rsa_decrypt_oaep(key.key, key.parent, &data, hashing, spec),
        alg::SYMCIPHER => {
            if data.len() < AES_IV_LEN {
                return Err(AgentError::InvalidArgument {
                    what: "--in",
                    detail: format!(
                        "{} bytes; AES input is the 16-byte IV followed by the ciphertext",
                        data.len()
                    ),
                });
            }
            let (iv, ct) = data.split_at(AES_IV_LEN);
            tpm.aes_cfb(key.key, key.parent, true, iv, ct, spec)
        }
        _ => Err(wrong_type(name, p, "decrypt")),
    })?;
    write_output(out, &plain)?;
    byok_protocol::said_to!(
        out,
        "decrypted {} with key {name:?} into {}",
        input.display(),
        out.display()
    );
    Ok(())
}

/// `encrypt` (AES keys): AES-256-CFB with a fresh random IV; writes IV || ciphertext.
pub fn encrypt(ctx: &Ctx, name: &str, input: &Path, out: &Path) -> Result<()> {
    check_output(out)?;
    let data = read_input(input)?;
    let mut iv = [0u8; AES_IV_LEN];
    rand::rngs::OsRng.fill_bytes(&mut iv);
    let ct = with_key(ctx, name, |tpm, _, p, key, spec| {
        match p.object_type {
        alg::SYMCIPHER => tpm.aes_cfb(key.key, key.parent, false, &iv, &data, spec),
        alg::RSA => Err(wrong_type(
            name,
            p,
            "encrypt in the TPM (RSA encryption needs only the public key: `byok-agent public` and `openssl pkeyutl -encrypt`)",
        )),
        _ => Err(wrong_type(name, p, "encrypt")),
    }
    })?;
    let mut bytes = iv.to_vec();
    bytes.extend_from_slice(&ct);
    write_output(out, &bytes)?;
    byok_protocol::said_to!(
        out,
        "encrypted {} with key {name:?} into {}",
        input.display(),
        out.display()
    );
    Ok(())
}

/// `hmac` (keyed-hash keys): HMAC-SHA-256 computed by the TPM.
pub fn hmac(ctx: &Ctx, name: &str, input: &Path, out: &Path) -> Result<()> {
    check_output(out)?;
    let data = read_input(input)?;
    let mac = with_key(ctx, name, |tpm, _, p, key, spec| match &p.params {
        byok_protocol::public::PublicParams::KeyedHash { scheme } if scheme.scheme == alg::HMAC => {
            tpm.hmac(key.key, key.parent, &data, spec)
        }
        _ => Err(wrong_type(name, p, "compute an HMAC")),
    })?;
    write_output(out, &mac)?;
    byok_protocol::said_to!(
        out,
        "HMAC-SHA-256 of {} with key {name:?} in {}",
        input.display(),
        out.display()
    );
    Ok(())
}

/// DER ECDSA-Sig-Value from the TPM's (r, s), as OpenSSL expects.
fn ecdsa_der(p: &TpmtPublic, r: &[u8], s: &[u8]) -> Result<Vec<u8>> {
    let bad = || AgentError::TpmUnexpected("ECDSA signature");
    let pad = |v: &[u8], n: usize| -> Result<Vec<u8>> {
        if v.len() > n {
            return Err(bad());
        }
        let mut o = vec![0u8; n - v.len()];
        o.extend_from_slice(v);
        Ok(o)
    };
    match &p.params {
        byok_protocol::public::PublicParams::Ecc { curve, .. }
            if *curve == byok_protocol::tpm::curve::NIST_P256 =>
        {
            let (r, s) = (pad(r, 32)?, pad(s, 32)?);
            let sig = p256::ecdsa::Signature::from_scalars(
                *p256::FieldBytes::from_slice(&r),
                *p256::FieldBytes::from_slice(&s),
            )
            .map_err(|_| bad())?;
            Ok(sig.to_der().as_bytes().to_vec())
        }
        byok_protocol::public::PublicParams::Ecc { curve, .. }
            if *curve == byok_protocol::tpm::curve::NIST_P384 =>
        {
            let (r, s) = (pad(r, 48)?, pad(s, 48)?);
            let sig = p384::ecdsa::Signature::from_scalars(
                *p384::FieldBytes::from_slice(&r),
                *p384::FieldBytes::from_slice(&s),
            )
            .map_err(|_| bad())?;
            Ok(sig.to_der().as_bytes().to_vec())
        }
        _ => Err(bad()),
    }
}

/// `keyfile`: the key as a TSS2 PRIVATE KEY file (public area, TPM-encrypted
/// private blob, the world's KEK as persistent parent) for OpenSSL's tpm2
/// provider and other TPM-aware software.
pub fn keyfile(ctx: &Ctx, name: &str, out: &Path) -> Result<()> {
    check_output(out)?;
    let (_state, k, w) = ctx.key(name)?;
    let p = &k.public;
    if k.origin == KeyOrigin::Sealed {
        return Err(wrong_type(
            name,
            p,
            "be written as a key file (it is sealed data; use `unseal`)",
        ));
    }
    if let Some(pcrs) = &k.policy_pcrs {
        return Err(AgentError::InvalidArgument {
            what: "--key",
            detail: format!(
                "{name:?} is bound to PCRs {pcrs}; key files are written for keys used with their empty auth value only"
            ),
        });
    }
    let parent = k.kek_handle.unwrap_or(w.kek.handle);
    if let Some(pcrs) = w.kek_at(parent).and_then(|r| r.pcrs.clone()) {
        return Err(AgentError::InvalidArgument {
            what: "--key",
            detail: format!(
                "{name:?} lives under a KEK bound to PCRs {pcrs}; key files need a parent usable with its empty auth value"
            ),
        });
    }
    let file = byok_protocol::keyfile::TpmKeyFile {
        empty_auth: true,
        parent,
        public: k.public.to_tpm2b(),
        private: k.private.to_vec(),
    };
    let pem = file
        .to_pem()
        .map_err(|e| AgentError::Protocol(e.to_string()))?;
    write_output(out, pem.as_bytes())?;
    byok_protocol::said_to!(
        out,
        "wrote {} key {name:?} as a TSS2 PRIVATE KEY file {} (parent: world {} KEK at {:#010x}; usable only with this TPM)",
        p.describe_key(),
        out.display(),
        k.world,
        parent
    );
    Ok(())
}

pub fn keys_list(ctx: &Ctx, world: Option<&WorldId>, json: bool) -> Result<()> {
    let state = ctx.state()?;
    if let Some(w) = world {
        state.world(w)?;
    }
    let keys = state.keys()?;
    let shown = keys
        .items
        .iter()
        .filter(|k| world.is_none_or(|w| &k.world == w));
    if json {
        #[derive(serde::Serialize)]
        struct Listing {
            keys: Vec<KeyReport>,
            unreadable: Vec<String>,
        }
        print_json(&Listing {
            keys: shown.map(KeyReport::of).collect(),
            unreadable: keys.corrupt.iter().map(|e| e.to_string()).collect(),
        })?;
    } else {
        for k in shown {
            println!("{}\t{}\t{}\t{}", k.name, k.world, inert(&k.alg), k.origin);
        }
    }
    // The readable keys are listed; the unreadable ones named, and a failure.
    keys.corrupt_error()
}

pub fn keys_show(ctx: &Ctx, name: &str, json: bool) -> Result<()> {
    check_id("key name", name)?;
    let state = ctx.state()?;
    let k = state.key(name)?;
    if json {
        return print_json(&KeyReport::of(&k));
    }
    let r = KeyReport::of(&k);
    println!("name:       {}", r.name);
    println!("world:      {}", r.world);
    println!("algorithm:  {} ({})", r.algorithm, r.kind);
    println!("origin:     {}", r.origin);
    println!("tpm name:   {}", r.tpm_name);
    println!("attributes: {}", r.attributes.join("|"));
    if !r.auth_policy.is_empty() {
        println!("authPolicy: {}", r.auth_policy);
    }
    if let Some(pcrs) = &r.pcrs {
        println!("bound to:   PCRs {pcrs} (TPM2_PolicyPCR; use fails once they change)");
    }
    if let Some(l) = &r.label {
        println!("label:      {l}");
    }
    Ok(())
}

pub fn keys_delete(ctx: &Ctx, name: &str, yes: bool) -> Result<()> {
    check_id("key name", name)?;
    let state = ctx.state()?;
    let k = state.key(name)?;
    if !yes
        && !confirmed(&format!(
            "delete key {name:?} ({} of world {}) for good? [y/N] ",
            k.public.describe_key(),
            k.world
        ))?
    {
        return Err(AgentError::InvalidArgument {
            what: "keys delete",
            detail: format!(
                "deleting key {name:?} cannot be undone: add --yes (or answer y on a terminal)"
            ),
        });
    }
    state.delete_key(name)?;
    byok_protocol::say!(
        "deleted key {name:?} (its TPM-encrypted blob is gone; the key cannot be loaded again)"
    );
    Ok(())
}

/// A yes on a terminal (false when standard input is not one).
fn confirmed(question: &str) -> Result<bool> {
    use std::io::{IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Ok(false);
    }
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(io(Path::new("(standard input)")))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

pub fn public(ctx: &Ctx, name: &str, out: &Path) -> Result<()> {
    check_id("key name", name)?;
    check_output(out)?;
    let state = ctx.state()?;
    let k = state.key(name)?;
    let p = &k.public;
    let pem =
        byok_protocol::keys::public_key_pem(p).map_err(|e| AgentError::Protocol(e.to_string()))?;
    write_output(out, pem.as_bytes())?;
    byok_protocol::said_to!(
        out,
        "public key of {name:?} ({}) in {}",
        p.describe_key(),
        out.display()
    );
    Ok(())
}
