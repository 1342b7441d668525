//! Transfer into the TPM: `import` of a transfer package (below), and the
//! compat path (BRIEF §7): `.byok` files (CKM_RSA_AES_KEY_WRAP) for the
//! world's compat KEK, and its public key as PEM or JWK.
//!
//! Weaker than the TPM package, and documented as such: the TPM decrypts the
//! RSA block, but the AES key and then the target key pass through this
//! process's memory (zeroized buffers) on their way into TPM2_Import.
//!
//! `import` of a package: ActivateCredential (AK, EK) releases the inner key
//! only in the TPM the package was made for, TPM2_Import decrypts the key
//! under the world's KEK; the package's object is checked first to be one
//! `byok-verifier wrap` makes.

use crate::cli::KeyFormat;
use crate::context::{check_id, read_file, retired_generation, world_ek, world_kek, Ctx};
use crate::error::{AgentError, Result};
use crate::report::{print_json, KeyReport};
use crate::state::{KeyState, WorldState};
use crate::tpm::{Hashing, Parent, Tpm};
use base64::Engine as _;
use byok_protocol::byok::{ByokFile, ByokWrapping};
use byok_protocol::formats::KeyOrigin;
use byok_protocol::formats::{Document, TransferPackage};
use byok_protocol::keys::{SymmetricKey, SymmetricKind, TargetKey, TpmObjectKey};
use byok_protocol::policy::PcrSpec;
use byok_protocol::public::TpmtPublic;
use byok_protocol::world::compat_kid;
use byok_protocol::world::WorldId;
use rand::RngCore;
use serde_bytes::ByteBuf;
use std::path::Path;
use zeroize::Zeroizing;

pub fn import(ctx: &Ctx, world: &WorldId, input: &Path, name: &str, json: bool) -> Result<()> {
    check_id("key name", name)?;
    let bytes = read_file(input)?;
    let key = if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        import_byok(ctx, world, &bytes, name)?
    } else {
        import_package(ctx, world, &bytes, name)?
    };
    if json {
        #[derive(serde::Serialize)]
        struct Imported {
            imported: KeyReport,
        }
        print_json(&Imported {
            imported: KeyReport::of(&key),
        })
    } else {
        byok_protocol::say!(
            "imported {} key {name:?}{} into world {world} (name {})",
            key.public.describe_key(),
            if key.origin == KeyOrigin::ImportedByok {
                " from a .byok file"
            } else {
                ""
            },
            hex::encode(key.public.name())
        );
        Ok(())
    }
}

/// Import a transfer package (`byok-verifier wrap`): the stored key.
fn import_package(ctx: &Ctx, world: &WorldId, bytes: &[u8], name: &str) -> Result<KeyState> {
    let pkg =
        TransferPackage::from_cbor(bytes).map_err(|e| AgentError::BadPackage(e.to_string()))?;
    let state = ctx.state()?;
    if state.has_key(name) {
        return Err(AgentError::KeyExists(name.to_string()));
    }
    let w = state.world(world)?;
    let (object, key_pcrs) = check_package(&pkg, &w)?;

    let mut tpm = ctx.tpm(&state)?;
    if !tpm.supports(&object)? {
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
    )?;
    tpm.flush(ak);
    let private = tpm.import(
        &kek,
        &inner_key,
        &object,
        &pkg.object.duplicate,
        &pkg.object.seed,
    )?;
    drop(inner_key);
    // Prove the imported blob loads before recording it.
    let loaded = tpm.load(&kek, &object, &private)?;
    tpm.flush(loaded);

    let key = KeyState {
        name: name.to_string(),
        world: world.clone(),
        alg: pkg.key.alg.clone(),
        origin: KeyOrigin::Imported,
        public: object.clone(),
        private: ByteBuf::from(private),
        label: pkg.key.label.clone(),
        policy_pcrs: key_pcrs,
        kek_handle: None,
    };
    state.put_key(&key)?;
    Ok(key)
}

/// Into the TPM as a non-duplicable object under the storage KEK: a
/// duplication blob made here (the object `wrap` would write), with a
/// one-time inner key, imported and loaded once to prove it works. Returns
/// the public area and the TPM-encrypted private blob.
fn import_software_key(
    tpm: &mut Tpm,
    kek: &Parent,
    w: &WorldState,
    target: &dyn TpmObjectKey,
) -> Result<(TpmtPublic, Vec<u8>)> {
    let public = target.tpm_public_with_policy(Vec::new());
    if !tpm.supports(&public)? {
        return Err(AgentError::UnsupportedByTpm(public.describe_key()));
    }
    let kek_public = &w.kek.public;
    let mut inner = Zeroizing::new([0u8; 16]);
    rand::rngs::OsRng.fill_bytes(&mut inner[..]);
    let blob = byok_protocol::duplicate::duplicate(
        kek_public,
        &public,
        &target.tpm_sensitive(),
        Some(&inner),
    )
    .map_err(|e| AgentError::Protocol(e.to_string()))?;
    let private = tpm.import(kek, &inner[..], &public, &blob.duplicate, &blob.seed)?;
    let loaded = tpm.load(kek, &public, &private)?;
    tpm.flush(loaded);
    Ok((public, private))
}

/// What the agent checks of a package before any TPM work: made for this
/// world, its current KEK (a rotated one is named as such) and its AK, and
/// carrying an object `wrap` makes (an empty authPolicy or exactly the
/// package's PolicyPCR, adminWithPolicy clear, the transfer attributes:
/// anything else could be taken out again with TPM2_Duplicate). Returns the
/// object's public area and its PCR binding.
fn check_package(pkg: &TransferPackage, w: &WorldState) -> Result<(TpmtPublic, Option<PcrSpec>)> {
    let world = &w.world;
    if pkg.world != *world {
        return Err(AgentError::PackageWorldMismatch {
            package: pkg.world.clone(),
            world: world.clone(),
        });
    }
    if let Some(generation) = retired_generation(w, &pkg.kek_name) {
        return Err(AgentError::KekRotated {
            world: world.clone(),
            generation,
        });
    }
    let kek_name = w.kek.public.name();
    if pkg.kek_name.as_ref() != kek_name.as_slice() {
        return Err(AgentError::PackageKekMismatch {
            world: world.clone(),
            package: hex::encode(&pkg.kek_name),
            ours: hex::encode(kek_name),
        });
    }
    let ak_name = w.ak_public.name();
    if pkg.ak_name.as_ref() != ak_name.as_slice() {
        return Err(AgentError::PackageAkMismatch {
            world: world.clone(),
            package: hex::encode(&pkg.ak_name),
            ours: hex::encode(ak_name),
        });
    }
    let object = TpmtPublic::parse_tpm2b(&pkg.object.public)
        .map_err(|e| AgentError::BadPackage(format!("object public: {e}")))?;
    let key_pcrs = match byok_protocol::transfer::check_transfer_object(&object, &pkg.key)? {
        byok_protocol::transfer::TransferAuth::AuthValue => None,
        byok_protocol::transfer::TransferAuth::Pcrs(spec) => Some(spec),
    };
    Ok((object, key_pcrs))
}

pub fn export_kek(ctx: &Ctx, world: &WorldId, format: KeyFormat, out: Option<&Path>) -> Result<()> {
    if let Some(path) = out {
        crate::context::check_output(path)?;
    }
    let (_state, w) = ctx.world(world)?;
    let public = w
        .kek
        .compat_public
        .as_ref()
        .ok_or_else(|| AgentError::NoCompatKek(world.to_string()))?;
    let p = public;
    let text = match format {
        KeyFormat::Pem => byok_protocol::keys::public_key_pem(p)
            .map_err(|e| AgentError::Protocol(e.to_string()))?,
        KeyFormat::Jwk => {
            let (
                byok_protocol::public::PublicParams::Rsa { exponent, .. },
                byok_protocol::public::PublicId::Rsa(n),
            ) = (&p.params, &p.unique)
            else {
                return Err(AgentError::TpmUnexpected("compat KEK type"));
            };
            let e: u32 = if *exponent == 0 { 65537 } else { *exponent };
            let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
            let e_bytes: Vec<u8> = e
                .to_be_bytes()
                .iter()
                .copied()
                .skip_while(|b| *b == 0)
                .collect();
            let jwk = serde_json::json!({
                "kty": "RSA",
                "kid": compat_kid(world, &p.name()),
                "key_ops": ["import"],
                "n": b64(n),
                "e": b64(&e_bytes),
            });
            format!("{jwk:#}\n")
        }
    };
    match out {
        Some(path) => {
            crate::context::write_output(path, text.as_bytes())?;
            byok_protocol::said_to!(
                path,
                "compat KEK public key of world {world} written to {}",
                path.display()
            );
            Ok(())
        }
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

// Long on purpose: the checks of a .byok run top to bottom in the order
// their failures are reported (document, kid, rotated KEK, sizes), then the
// unwrap in the TPM and the import; splitting it would scatter that order.
/// Import a `.byok` file made for this world's compat KEK.
fn import_byok(ctx: &Ctx, world: &WorldId, bytes: &[u8], name: &str) -> Result<KeyState> {
    let bad = |s: &str| AgentError::BadByok(s.to_string());
    let doc = ByokFile::from_json(bytes).map_err(|e| AgentError::BadByok(e.to_string()))?;
    let hash = match doc.header.enc {
        ByokWrapping::CkmRsaAesKeyWrap => Hashing::Sha1,
        ByokWrapping::RsaAesKeyWrap256 => Hashing::Sha256,
    };
    let kid = doc.header.kid.as_str();
    let blob = doc
        .ciphertext_bytes()
        .map_err(|e| AgentError::BadByok(e.to_string()))?;

    let state = ctx.state()?;
    if state.has_key(name) {
        return Err(AgentError::KeyExists(name.to_string()));
    }
    let w = state.world(world)?;
    let (Some(compat_public), Some(compat_private)) = (&w.kek.compat_public, &w.compat_private)
    else {
        return Err(AgentError::NoCompatKek(world.to_string()));
    };
    let ours = compat_kid(world, &compat_public.name());
    if let Some(old) = w.retired.iter().find(|r| {
        r.compat_public
            .as_ref()
            .is_some_and(|c| compat_kid(world, &c.name()) == kid)
    }) {
        return Err(AgentError::KekRotated {
            world: world.clone(),
            generation: old.generation,
        });
    }
    if kid != ours {
        return Err(AgentError::ByokKidMismatch {
            kid: kid.to_string(),
            ours,
        });
    }
    let rsa_len = match &compat_public.params {
        byok_protocol::public::PublicParams::Rsa { key_bits, .. } => *key_bits as usize / 8,
        _ => return Err(AgentError::TpmUnexpected("compat KEK type")),
    };
    if blob.len() < rsa_len + 16 {
        return Err(AgentError::BadByok(format!(
            "ciphertext has {} bytes, less than the {rsa_len}-byte RSA block and a key wrap",
            blob.len()
        )));
    }
    let (rsa_block, wrapped) = blob.split_at(rsa_len);

    let mut tpm = ctx.tpm(&state)?;
    let kek = world_kek(&mut tpm, &state, &w)?;
    let compat_key = tpm.load(&kek, compat_public, compat_private)?;
    let aes = tpm
        .rsa_decrypt_oaep(compat_key, kek.handle, rsa_block, hash, None)
        .map_err(|e| match e {
            AgentError::Tpm { source, .. } => AgentError::DecryptRefused { source },
            e => e,
        })?;
    tpm.flush(compat_key);
    if aes.len() != 32 {
        return Err(bad("the RSA block does not hold an AES-256 key"));
    }
    let pkcs8 = byok_protocol::ckm::kwp_unwrap(&aes, wrapped)
        .map_err(|_| bad("the AES key wrap does not verify (altered or for another key)"))?;
    drop(aes);
    // A PKCS#8 RSA or EC key, or (as the cloud formats carry them) a raw AES key.
    let target: Box<dyn TpmObjectKey> = match TargetKey::from_bytes(&pkcs8) {
        Ok(k) => Box::new(k),
        Err(_) if matches!(pkcs8.len(), 16 | 24 | 32) => Box::new(
            SymmetricKey::new(SymmetricKind::Aes, &pkcs8)
                .map_err(|e| AgentError::BadByok(format!("the wrapped key: {e}")))?,
        ),
        Err(e) => return Err(AgentError::BadByok(format!("the wrapped key: {e}"))),
    };
    drop(pkcs8);

    let alg = target.alg_name();
    let (public, private) = import_software_key(&mut tpm, &kek, &w, target.as_ref())?;
    drop(target);

    let key = KeyState {
        name: name.to_string(),
        world: world.clone(),
        alg,
        origin: KeyOrigin::ImportedByok,
        public: public.clone(),
        private: ByteBuf::from(private),
        label: doc.generator.as_ref().map(|g| format!("generator: {g}")),
        policy_pcrs: None,
        kek_handle: None,
    };
    state.put_key(&key)?;
    Ok(key)
}
