//! Cloud BYOK wrapping (BRIEF §7): Azure Key Vault / Managed HSM `.byok`,
//! Google Cloud KMS import jobs, AWS KMS import. Each cloud's rules (KEK sizes,
//! methods, key types) are checked here first, so a file the cloud would refuse
//! is never written.

use crate::error::VerifyError;
use base64::Engine as _;
use byok_protocol::byok::{ByokFile, ByokWrapping};
use byok_protocol::ckm::{oaep_capacity, rsa_aes_key_wrap, rsaes_oaep, OaepHash};
use byok_protocol::keys::TargetKey;
use rsa::traits::PublicKeyParts;
use zeroize::Zeroizing;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloud {
    Azure,
    Gcp,
    Aws,
}

impl Cloud {
    pub fn name(self) -> &'static str {
        match self {
            Cloud::Azure => "Azure Key Vault",
            Cloud::Gcp => "Google Cloud KMS",
            Cloud::Aws => "AWS KMS",
        }
    }
}

/// How a key file is to be read (`wrap --key-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyType {
    /// PEM or DER: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
    Auto,
    /// 16, 24 or 32 raw bytes.
    Aes,
    /// 16 to 64 raw bytes (HMAC-SHA-256).
    Hmac,
}

/// The key to send to a cloud, in the form the cloud imports.
pub enum CloudKey {
    /// RSA or EC private key; PKCS#8 DER.
    Asymmetric {
        pkcs8: Zeroizing<Vec<u8>>,
        key: TargetKey,
    },
    Aes(Zeroizing<Vec<u8>>),
    Hmac(Zeroizing<Vec<u8>>),
}

impl CloudKey {
    pub fn read(bytes: &[u8], key_type: KeyType) -> Result<CloudKey, VerifyError> {
        match key_type {
            KeyType::Auto => {
                let (key, pkcs8) = TargetKey::pkcs8_der_of(bytes)?;
                Ok(CloudKey::Asymmetric { pkcs8, key })
            }
            KeyType::Aes => match bytes.len() {
                16 | 24 | 32 => Ok(CloudKey::Aes(Zeroizing::new(bytes.to_vec()))),
                n => Err(refused_key(format!(
                    "an AES key file must hold 16, 24 or 32 raw bytes, this one has {n}"
                ))),
            },
            KeyType::Hmac => match bytes.len() {
                16..=128 => Ok(CloudKey::Hmac(Zeroizing::new(bytes.to_vec()))),
                n => Err(refused_key(format!(
                    "an HMAC key file must hold 16 to 128 raw bytes, this one has {n}"
                ))),
            },
        }
    }

    pub fn describe(&self) -> String {
        match self {
            CloudKey::Asymmetric { key, .. } => key.describe(),
            CloudKey::Aes(k) => format!("AES-{}", k.len() * 8),
            CloudKey::Hmac(k) => format!("HMAC key of {} bytes", k.len()),
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            CloudKey::Asymmetric { pkcs8, .. } => pkcs8,
            CloudKey::Aes(k) | CloudKey::Hmac(k) => k,
        }
    }
}

fn refused_key(reason: String) -> VerifyError {
    VerifyError::Key(byok_protocol::error::KeyError::Unsupported(reason))
}

fn refused(cloud: Cloud, reason: impl Into<String>) -> VerifyError {
    VerifyError::CloudRefused {
        cloud: cloud.name(),
        reason: reason.into(),
    }
}

/// A KEK public key as given to `--kek-public`, with the `kid` if it had one.
pub struct KekPublic {
    pub key: rsa::RsaPublicKey,
    pub kid: Option<String>,
}

/// Read a KEK public key: PEM (SPKI or PKCS#1), DER (SPKI or PKCS#1), or a
/// JWK (bare, or as `az keyvault key show` prints it, under "key").
pub fn read_kek_public(bytes: &[u8]) -> Result<KekPublic, VerifyError> {
    use pkcs1::DecodeRsaPublicKey;
    use spki::DecodePublicKey;
    let bad = |why: String| VerifyError::KekPublicUnreadable(why);
    let text = std::str::from_utf8(bytes).ok().map(str::trim);
    if let Some(t) = text.filter(|t| t.starts_with('{')) {
        let v: serde_json::Value =
            serde_json::from_str(t).map_err(|e| bad(format!("JSON: {e}")))?;
        let jwk = if v.get("kty").is_some() {
            &v
        } else {
            v.get("key")
                .ok_or_else(|| bad("JSON has no \"kty\" nor \"key\"".into()))?
        };
        let kty = jwk.get("kty").and_then(|k| k.as_str()).unwrap_or("");
        if kty != "RSA" && kty != "RSA-HSM" {
            return Err(bad(format!("JWK key type {kty:?} is not RSA")));
        }
        let b64 = |field: &str| -> Result<rsa::BigUint, VerifyError> {
            let s = jwk
                .get(field)
                .and_then(|x| x.as_str())
                .ok_or_else(|| bad(format!("JWK has no \"{field}\"")))?;
            let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(s.trim_end_matches('='))
                .map_err(|e| bad(format!("JWK \"{field}\": {e}")))?;
            Ok(rsa::BigUint::from_bytes_be(&raw))
        };
        let key = rsa::RsaPublicKey::new(b64("n")?, b64("e")?).map_err(|e| bad(e.to_string()))?;
        let kid = jwk.get("kid").and_then(|k| k.as_str()).map(str::to_string);
        return Ok(KekPublic { key, kid });
    }
    let key = if let Some(t) = text.filter(|t| t.starts_with("-----BEGIN")) {
        rsa::RsaPublicKey::from_public_key_pem(t)
            .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(t))
            .map_err(|e| bad(format!("PEM is not an RSA public key: {e}")))?
    } else {
        rsa::RsaPublicKey::from_public_key_der(bytes)
            .or_else(|_| rsa::RsaPublicKey::from_pkcs1_der(bytes))
            .map_err(|_| bad("not PEM, DER or JWK of an RSA public key".into()))?
    };
    Ok(KekPublic { key, kid: None })
}

/// The compat KEK of verified evidence as a cloud KEK (its kid names the
/// world and its Name). Nothing binds a key wrapped for it to the TPM but
/// the evidence: the AK that certified it must be proven to live in the
/// EK's TPM (enrolment, or challenge and activation).
pub fn compat_kek_public(verified: &crate::verify::Verified) -> Result<KekPublic, VerifyError> {
    let compat = verified
        .compat_kek
        .as_ref()
        .ok_or(VerifyError::NoCompatKek)?;
    crate::verify::require_proven_ak(
        verified,
        "wrapping for a host's compat KEK (--format azure|gcp|aws --evidence)",
    )?;
    let der = byok_protocol::keys::public_key_der(compat)?;
    use spki::DecodePublicKey;
    let key = rsa::RsaPublicKey::from_public_key_der(&der)
        .map_err(|e| VerifyError::KekPublicUnreadable(e.to_string()))?;
    Ok(KekPublic {
        key,
        kid: Some(byok_protocol::world::compat_kid(
            &verified.world,
            &compat.name(),
        )),
    })
}

/// The wrapping a method names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrapping {
    /// CKM_RSA_AES_KEY_WRAP.
    RsaAes(OaepHash),
    /// RSAES-OAEP of the key itself (small symmetric keys only).
    Oaep(OaepHash),
}

/// A cloud's own name for how a key is wrapped (`wrap --method`): Azure's
/// key-wrap mechanisms, Cloud KMS import methods, AWS KMS wrapping
/// algorithms. Each belongs to one cloud ([`plan`] refuses another's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CloudMethod {
    #[value(name = "CKM_RSA_AES_KEY_WRAP")]
    CkmRsaAesKeyWrap,
    #[value(name = "RSA_AES_KEY_WRAP_256")]
    RsaAesKeyWrap256,
    #[value(name = "RSA_OAEP_3072_SHA256_AES_256")]
    RsaOaep3072Sha256Aes256,
    #[value(name = "RSA_OAEP_4096_SHA256_AES_256")]
    RsaOaep4096Sha256Aes256,
    #[value(name = "RSA_OAEP_3072_SHA1_AES_256")]
    RsaOaep3072Sha1Aes256,
    #[value(name = "RSA_OAEP_4096_SHA1_AES_256")]
    RsaOaep4096Sha1Aes256,
    #[value(name = "RSA_OAEP_3072_SHA256")]
    RsaOaep3072Sha256,
    #[value(name = "RSA_OAEP_4096_SHA256")]
    RsaOaep4096Sha256,
    #[value(name = "RSA_AES_KEY_WRAP_SHA_256")]
    RsaAesKeyWrapSha256,
    #[value(name = "RSA_AES_KEY_WRAP_SHA_1")]
    RsaAesKeyWrapSha1,
    #[value(name = "RSAES_OAEP_SHA_256")]
    RsaesOaepSha256,
    #[value(name = "RSAES_OAEP_SHA_1")]
    RsaesOaepSha1,
}

impl CloudMethod {
    /// The cloud's own spelling.
    pub fn name(self) -> &'static str {
        match self {
            CloudMethod::CkmRsaAesKeyWrap => "CKM_RSA_AES_KEY_WRAP",
            CloudMethod::RsaAesKeyWrap256 => "RSA_AES_KEY_WRAP_256",
            CloudMethod::RsaOaep3072Sha256Aes256 => "RSA_OAEP_3072_SHA256_AES_256",
            CloudMethod::RsaOaep4096Sha256Aes256 => "RSA_OAEP_4096_SHA256_AES_256",
            CloudMethod::RsaOaep3072Sha1Aes256 => "RSA_OAEP_3072_SHA1_AES_256",
            CloudMethod::RsaOaep4096Sha1Aes256 => "RSA_OAEP_4096_SHA1_AES_256",
            CloudMethod::RsaOaep3072Sha256 => "RSA_OAEP_3072_SHA256",
            CloudMethod::RsaOaep4096Sha256 => "RSA_OAEP_4096_SHA256",
            CloudMethod::RsaAesKeyWrapSha256 => "RSA_AES_KEY_WRAP_SHA_256",
            CloudMethod::RsaAesKeyWrapSha1 => "RSA_AES_KEY_WRAP_SHA_1",
            CloudMethod::RsaesOaepSha256 => "RSAES_OAEP_SHA_256",
            CloudMethod::RsaesOaepSha1 => "RSAES_OAEP_SHA_1",
        }
    }
}

impl std::fmt::Display for CloudMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub method: CloudMethod,
    pub wrapping: Wrapping,
}

const AZURE_METHODS: &[(CloudMethod, Wrapping, Option<usize>)] = &[
    (
        CloudMethod::CkmRsaAesKeyWrap,
        Wrapping::RsaAes(OaepHash::Sha1),
        None,
    ),
    (
        CloudMethod::RsaAesKeyWrap256,
        Wrapping::RsaAes(OaepHash::Sha256),
        None,
    ),
];
const GCP_METHODS: &[(CloudMethod, Wrapping, Option<usize>)] = &[
    (
        CloudMethod::RsaOaep3072Sha256Aes256,
        Wrapping::RsaAes(OaepHash::Sha256),
        Some(3072),
    ),
    (
        CloudMethod::RsaOaep4096Sha256Aes256,
        Wrapping::RsaAes(OaepHash::Sha256),
        Some(4096),
    ),
    (
        CloudMethod::RsaOaep3072Sha1Aes256,
        Wrapping::RsaAes(OaepHash::Sha1),
        Some(3072),
    ),
    (
        CloudMethod::RsaOaep4096Sha1Aes256,
        Wrapping::RsaAes(OaepHash::Sha1),
        Some(4096),
    ),
    (
        CloudMethod::RsaOaep3072Sha256,
        Wrapping::Oaep(OaepHash::Sha256),
        Some(3072),
    ),
    (
        CloudMethod::RsaOaep4096Sha256,
        Wrapping::Oaep(OaepHash::Sha256),
        Some(4096),
    ),
];
const AWS_METHODS: &[(CloudMethod, Wrapping, Option<usize>)] = &[
    (
        CloudMethod::RsaAesKeyWrapSha256,
        Wrapping::RsaAes(OaepHash::Sha256),
        None,
    ),
    (
        CloudMethod::RsaAesKeyWrapSha1,
        Wrapping::RsaAes(OaepHash::Sha1),
        None,
    ),
    (
        CloudMethod::RsaesOaepSha256,
        Wrapping::Oaep(OaepHash::Sha256),
        None,
    ),
    (
        CloudMethod::RsaesOaepSha1,
        Wrapping::Oaep(OaepHash::Sha1),
        None,
    ),
];

fn methods(cloud: Cloud) -> &'static [(CloudMethod, Wrapping, Option<usize>)] {
    match cloud {
        Cloud::Azure => AZURE_METHODS,
        Cloud::Gcp => GCP_METHODS,
        Cloud::Aws => AWS_METHODS,
    }
}

// Long on purpose: the three clouds' rules as one table of cases.
/// Choose and check the method: the cloud's recommended one by default; the
/// KEK size and key type the cloud accepts for it.
pub fn plan(
    cloud: Cloud,
    method: Option<CloudMethod>,
    key: &CloudKey,
    kek: &rsa::RsaPublicKey,
) -> Result<Plan, VerifyError> {
    let kek_bits = kek.size() * 8;
    let default = match (cloud, key) {
        (Cloud::Azure, _) => CloudMethod::CkmRsaAesKeyWrap,
        (Cloud::Gcp, _) if kek_bits == 4096 => CloudMethod::RsaOaep4096Sha256Aes256,
        (Cloud::Gcp, _) => CloudMethod::RsaOaep3072Sha256Aes256,
        // AWS recommends RSAES_OAEP_SHA_256 for symmetric and HMAC key material
        // and requires RSA_AES_KEY_WRAP for private keys.
        (Cloud::Aws, CloudKey::Asymmetric { .. }) => CloudMethod::RsaAesKeyWrapSha256,
        (Cloud::Aws, _) => CloudMethod::RsaesOaepSha256,
    };
    let name = method.unwrap_or(default);
    let Some(&(method, wrapping, bits)) = methods(cloud).iter().find(|(m, _, _)| *m == name) else {
        let known: Vec<&str> = methods(cloud).iter().map(|(m, _, _)| m.name()).collect();
        return Err(refused(
            cloud,
            format!(
                "unknown method {:?}; use one of {}",
                name.name(),
                known.join(", ")
            ),
        ));
    };

    // KEK sizes.
    match (cloud, bits) {
        (_, Some(b)) if b != kek_bits => {
            return Err(refused(
                cloud,
                format!("{method} needs an RSA-{b} KEK, this one is RSA-{kek_bits}"),
            ))
        }
        (Cloud::Azure | Cloud::Aws, _) if !matches!(kek_bits, 2048 | 3072 | 4096) => {
            return Err(refused(
                cloud,
                format!("the KEK must be RSA 2048, 3072 or 4096, this one is RSA-{kek_bits}"),
            ))
        }
        _ => {}
    }

    // Key types.
    match (cloud, key) {
        (Cloud::Azure, CloudKey::Hmac(_)) => {
            return Err(refused(
                cloud,
                "Azure Key Vault and Managed HSM do not import HMAC keys",
            ))
        }
        (Cloud::Gcp, CloudKey::Aes(k)) if k.len() == 24 => {
            return Err(refused(
                cloud,
                "Cloud KMS imports AES-128 and AES-256 keys, not AES-192",
            ))
        }
        (Cloud::Aws, CloudKey::Aes(k)) if k.len() != 32 => {
            return Err(refused(cloud, "AWS KMS imports 256-bit AES keys only"))
        }
        (Cloud::Aws, CloudKey::Hmac(k)) if k.len() < 28 => {
            return Err(refused(
                cloud,
                "AWS KMS imports HMAC keys of at least 28 bytes (HMAC_224)",
            ))
        }
        (Cloud::Gcp, CloudKey::Hmac(k)) if !matches!(k.len(), 20 | 28 | 32 | 48 | 64) => {
            return Err(refused(
                cloud,
                "Cloud KMS HMAC keys are 20, 28, 32, 48 or 64 bytes (HMAC_SHA1..SHA512)",
            ))
        }
        _ => {}
    }
    if let Wrapping::Oaep(h) = wrapping {
        if let CloudKey::Asymmetric { .. } = key {
            return Err(refused(cloud, format!("{method} wraps small symmetric keys only; use a *_AES_* key-wrap method for {}", key.describe())));
        }
        let cap = oaep_capacity(kek, h);
        if key.bytes().len() > cap {
            return Err(refused(
                cloud,
                format!("{method} carries at most {cap} bytes with this KEK"),
            ));
        }
    }
    Ok(Plan { method, wrapping })
}

/// Wrap the key; returns the bytes the cloud takes.
pub fn wrap(
    cloud: Cloud,
    plan: &Plan,
    kek: &KekPublic,
    kid: Option<&str>,
    key: &CloudKey,
) -> Result<Vec<u8>, VerifyError> {
    let blob = match plan.wrapping {
        Wrapping::RsaAes(h) => rsa_aes_key_wrap(&kek.key, h, key.bytes())?,
        Wrapping::Oaep(h) => rsaes_oaep(&kek.key, h, key.bytes())?,
    };
    if cloud != Cloud::Azure {
        return Ok(blob);
    }
    let kid = kid.or(kek.kid.as_deref()).ok_or_else(|| {
        refused(
            cloud,
            "a .byok file names its KEK: give --kid, or a JWK with \"kid\" as --kek-public",
        )
    })?;
    let enc = match plan.wrapping {
        Wrapping::RsaAes(OaepHash::Sha1) => ByokWrapping::CkmRsaAesKeyWrap,
        Wrapping::RsaAes(_) => ByokWrapping::RsaAesKeyWrap256,
        Wrapping::Oaep(_) => {
            return Err(refused(cloud, "a .byok file carries an RSA-AES key wrap"))
        }
    };
    let doc = ByokFile::new(
        kid,
        enc,
        &blob,
        format!("tpm-byok/{}; byok-verifier", byok_protocol::VERSION),
    );
    Ok(doc.to_json())
}
