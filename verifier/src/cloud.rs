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
    /// The `--format` value (and `wrap --json`'s "format").
    pub fn id(self) -> &'static str {
        match self {
            Cloud::Azure => "azure",
            Cloud::Gcp => "gcp",
            Cloud::Aws => "aws",
        }
    }

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

/// Read a KEK public key: PEM (SPKI or PKCS#1), DER (SPKI or PKCS#1),
/// base64 of the DER (`aws kms get-parameters-for-import --query PublicKey
/// --output text`), the whole `get-parameters-for-import` JSON (its
/// "PublicKey"), or a JWK (bare, or as `az keyvault key show` prints it,
/// under "key").
pub fn read_kek_public(bytes: &[u8]) -> Result<KekPublic, VerifyError> {
    use pkcs1::DecodeRsaPublicKey;
    use spki::DecodePublicKey;
    let bad = |why: String| VerifyError::KekPublicUnreadable(why);
    if bytes.is_empty() {
        return Err(bad("the file is empty".into()));
    }
    let text = std::str::from_utf8(bytes).ok().map(str::trim);
    if let Some(t) = text.filter(|t| t.starts_with('{')) {
        let v: serde_json::Value =
            serde_json::from_str(t).map_err(|e| bad(format!("JSON: {e}")))?;
        if let Some(b64) = v.get("PublicKey") {
            let b64 = b64
                .as_str()
                .ok_or_else(|| bad("\"PublicKey\" is not a base64 string".into()))?;
            let der = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| bad(format!("\"PublicKey\" is not base64: {e}")))?;
            return rsa_public_der(&der).map(|key| KekPublic { key, kid: None });
        }
        let jwk = if v.get("kty").is_some() {
            &v
        } else {
            v.get("key").ok_or_else(|| {
                bad("JSON with neither a JWK (\"kty\", or \"key\" as `az keyvault key show` prints) nor \"PublicKey\" (`aws kms get-parameters-for-import`)".into())
            })?
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
        if t.starts_with("-----BEGIN PUBLIC KEY-----")
            || t.starts_with("-----BEGIN RSA PUBLIC KEY-----")
        {
            rsa::RsaPublicKey::from_public_key_pem(t)
                .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(t))
                .map_err(|e| bad(format!("PEM is not an RSA public key: {e}")))?
        } else if t.contains("PRIVATE KEY-----") {
            return Err(bad("this is a private key; give the KEK's public key (the cloud's KEK never leaves it: download its public key; `openssl pkey -pubout` makes one from a private key)".into()));
        } else {
            let label = t["-----BEGIN ".len()..].split("-----").next().unwrap_or("");
            return Err(bad(format!(
                "the PEM block is {:?}, not PUBLIC KEY or RSA PUBLIC KEY",
                byok_protocol::text::inert(&label.chars().take(40).collect::<String>())
            )));
        }
    } else if let Some(der) = text.and_then(|t| {
        let compact: String = t.chars().filter(|c| !c.is_whitespace()).collect();
        base64::engine::general_purpose::STANDARD
            .decode(compact)
            .ok()
    }) {
        rsa_public_der(&der)?
    } else {
        rsa_public_der(bytes)?
    };
    Ok(KekPublic { key, kid: None })
}

/// An RSA public key from DER: SubjectPublicKeyInfo or PKCS#1.
fn rsa_public_der(der: &[u8]) -> Result<rsa::RsaPublicKey, VerifyError> {
    use pkcs1::DecodeRsaPublicKey;
    use spki::DecodePublicKey;
    rsa::RsaPublicKey::from_public_key_der(der)
        .or_else(|_| rsa::RsaPublicKey::from_pkcs1_der(der))
        .map_err(|_| {
            VerifyError::KekPublicUnreadable(
                "not an RSA public key as PEM, DER, base64 DER, JWK or get-parameters-for-import JSON"
                    .into(),
            )
        })
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
/// Any case is accepted, and the lower-case, dash-separated spelling
/// gcloud uses (`rsa-oaep-3072-sha256-aes-256`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CloudMethod {
    #[value(name = "CKM_RSA_AES_KEY_WRAP", alias = "ckm-rsa-aes-key-wrap")]
    CkmRsaAesKeyWrap,
    #[value(name = "RSA_AES_KEY_WRAP_256", alias = "rsa-aes-key-wrap-256")]
    RsaAesKeyWrap256,
    #[value(
        name = "RSA_OAEP_3072_SHA256_AES_256",
        alias = "rsa-oaep-3072-sha256-aes-256"
    )]
    RsaOaep3072Sha256Aes256,
    #[value(
        name = "RSA_OAEP_4096_SHA256_AES_256",
        alias = "rsa-oaep-4096-sha256-aes-256"
    )]
    RsaOaep4096Sha256Aes256,
    #[value(
        name = "RSA_OAEP_3072_SHA1_AES_256",
        alias = "rsa-oaep-3072-sha1-aes-256"
    )]
    RsaOaep3072Sha1Aes256,
    #[value(
        name = "RSA_OAEP_4096_SHA1_AES_256",
        alias = "rsa-oaep-4096-sha1-aes-256"
    )]
    RsaOaep4096Sha1Aes256,
    #[value(name = "RSA_OAEP_3072_SHA256", alias = "rsa-oaep-3072-sha256")]
    RsaOaep3072Sha256,
    #[value(name = "RSA_OAEP_4096_SHA256", alias = "rsa-oaep-4096-sha256")]
    RsaOaep4096Sha256,
    #[value(name = "RSA_AES_KEY_WRAP_SHA_256", alias = "rsa-aes-key-wrap-sha-256")]
    RsaAesKeyWrapSha256,
    #[value(name = "RSA_AES_KEY_WRAP_SHA_1", alias = "rsa-aes-key-wrap-sha-1")]
    RsaAesKeyWrapSha1,
    #[value(name = "RSAES_OAEP_SHA_256", alias = "rsaes-oaep-sha-256")]
    RsaesOaepSha256,
    #[value(name = "RSAES_OAEP_SHA_1", alias = "rsaes-oaep-sha-1")]
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
    let (method, wrapping, bits) = lookup(cloud, method.unwrap_or(default))?;

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

    check_key_type(cloud, key)?;
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

/// The cloud's method of this name, its wrapping and the KEK size it needs.
fn lookup(
    cloud: Cloud,
    name: CloudMethod,
) -> Result<(CloudMethod, Wrapping, Option<usize>), VerifyError> {
    match methods(cloud).iter().find(|(m, _, _)| *m == name) {
        Some(&found) => Ok(found),
        None => {
            let known: Vec<&str> = methods(cloud).iter().map(|(m, _, _)| m.name()).collect();
            Err(refused(
                cloud,
                format!(
                    "unknown method {:?}; use one of {}",
                    name.name(),
                    known.join(", ")
                ),
            ))
        }
    }
}

/// The key types the cloud imports.
fn check_key_type(cloud: Cloud, key: &CloudKey) -> Result<(), VerifyError> {
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
    Ok(())
}

/// What [`plan`] checks without a KEK (the method's name, the key's type),
/// for a run that plans once per KEK (a fleet) to refuse before it starts.
pub fn check_method_and_key(
    cloud: Cloud,
    method: Option<CloudMethod>,
    key: &CloudKey,
) -> Result<(), VerifyError> {
    if let Some(m) = method {
        lookup(cloud, m)?;
    }
    check_key_type(cloud, key)
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

/// The command that uploads what `wrap --format X` wrote, for the line
/// after it (and `--json`'s "upload"): the names the operator must fill in
/// are in capitals; what the key itself decides (the key type, the Cloud
/// KMS algorithm, the wrapping algorithm the AWS import token must have been
/// requested for) is filled in.
pub fn upload_hint(
    cloud: Cloud,
    plan: &Plan,
    key: &CloudKey,
    kek_bits: usize,
    out: &str,
) -> String {
    use byok_protocol::keys::KeyAlg;
    let asym = match key {
        CloudKey::Asymmetric { key, .. } => Some(key.alg()),
        _ => None,
    };
    match cloud {
        Cloud::Azure => {
            let kty = match (asym, key) {
                (Some(KeyAlg::P256), _) => "EC-HSM --curve P-256",
                (Some(KeyAlg::P384), _) => "EC-HSM --curve P-384",
                (Some(_), _) => "RSA-HSM",
                (None, _) => "oct-HSM",
            };
            // AES keys import into Managed HSM only.
            let vault = if asym.is_some() {
                "--vault-name VAULT"
            } else {
                "--hsm-name HSM"
            };
            format!("az keyvault key import {vault} --name KEY --byok-file {out} --kty {kty}")
        }
        Cloud::Gcp => {
            let algorithm = match (asym, key) {
                (Some(KeyAlg::P256), _) => "ec-sign-p256-sha256".to_string(),
                (Some(KeyAlg::P384), _) => "ec-sign-p384-sha384".to_string(),
                (Some(a), _) => {
                    let bits = match a {
                        KeyAlg::Rsa2048 => 2048,
                        KeyAlg::Rsa3072 => 3072,
                        _ => 4096,
                    };
                    format!("rsa-sign-pkcs1-{bits}-sha256")
                }
                (None, CloudKey::Aes(k)) if k.len() == 16 => "aes-128-gcm".to_string(),
                (None, CloudKey::Aes(_)) => "google-symmetric-encryption".to_string(),
                (None, CloudKey::Hmac(k)) => match k.len() {
                    20 => "hmac-sha1",
                    28 => "hmac-sha224",
                    48 => "hmac-sha384",
                    64 => "hmac-sha512",
                    _ => "hmac-sha256",
                }
                .to_string(),
                (None, CloudKey::Asymmetric { .. }) => unreachable!("asym is Some"),
            };
            format!(
                "gcloud kms keys versions import --import-job JOB --location LOCATION --keyring KEYRING --key KEY --algorithm {algorithm} --wrapped-key-file {out} (an import job made with --import-method {})",
                plan.method.name().to_ascii_lowercase().replace('_', "-")
            )
        }
        Cloud::Aws => format!(
            "aws kms import-key-material --key-id KEY --encrypted-key-material fileb://{out} --import-token fileb://TOKEN --expiration-model KEY_MATERIAL_DOES_NOT_EXPIRE (TOKEN from `aws kms get-parameters-for-import --key-id KEY --wrapping-algorithm {} --wrapping-key-spec RSA_{kek_bits}`)",
            plan.method
        ),
    }
}
