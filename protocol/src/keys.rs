//! Target keys: reading PEM/DER key files, generating keys, and turning a key
//! into the TPM public and sensitive areas that a transfer package carries.

use crate::error::KeyError;
use crate::public::{PublicId, PublicParams, Scheme, SymDef, TpmtPublic};
use crate::signature::sec1_point;
use crate::tpm::{alg, curve};
use crate::transfer::{transfer_attributes, TransferKind};
use crate::wire::Writer;
use pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use zeroize::Zeroizing;

/// Key algorithms that can be generated, wrapped and imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum KeyAlg {
    Rsa2048,
    Rsa3072,
    Rsa4096,
    P256,
    P384,
}

impl KeyAlg {
    pub const ALL: [KeyAlg; 5] = [
        KeyAlg::Rsa2048,
        KeyAlg::Rsa3072,
        KeyAlg::Rsa4096,
        KeyAlg::P256,
        KeyAlg::P384,
    ];

    pub fn name(self) -> &'static str {
        match self {
            KeyAlg::Rsa2048 => "rsa2048",
            KeyAlg::Rsa3072 => "rsa3072",
            KeyAlg::Rsa4096 => "rsa4096",
            KeyAlg::P256 => "p256",
            KeyAlg::P384 => "p384",
        }
    }

    pub fn from_name(s: &str) -> Option<KeyAlg> {
        KeyAlg::ALL.into_iter().find(|a| a.name() == s)
    }
}

/// What `byok-verifier keygen` makes: a private key (PKCS#8 PEM) or a raw
/// symmetric key (the bytes `wrap --key-type aes|hmac` reads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum KeygenAlg {
    Rsa2048,
    Rsa3072,
    Rsa4096,
    P256,
    P384,
    // 16 random bytes.
    Aes128,
    // 32 random bytes.
    Aes256,
    // 32 random bytes: an HMAC-SHA-256 key of the hash's length.
    HmacSha256,
}

/// A key `keygen` made, in the form it is written.
pub enum GeneratedKey {
    /// PKCS#8 PEM of a private key.
    Pem(Zeroizing<String>),
    /// Raw bytes of an AES or HMAC key, and the `--key-type` that reads them.
    Raw {
        bytes: Zeroizing<Vec<u8>>,
        key_type: &'static str,
    },
}

impl KeygenAlg {
    pub fn name(self) -> &'static str {
        match self {
            KeygenAlg::Rsa2048 => "rsa2048",
            KeygenAlg::Rsa3072 => "rsa3072",
            KeygenAlg::Rsa4096 => "rsa4096",
            KeygenAlg::P256 => "p256",
            KeygenAlg::P384 => "p384",
            KeygenAlg::Aes128 => "aes128",
            KeygenAlg::Aes256 => "aes256",
            KeygenAlg::HmacSha256 => "hmac-sha256",
        }
    }

    pub fn generate(self) -> Result<GeneratedKey, KeyError> {
        let private = |alg: KeyAlg| -> Result<GeneratedKey, KeyError> {
            Ok(GeneratedKey::Pem(TargetKey::generate(alg)?.to_pkcs8_pem()?))
        };
        let raw = |len: usize, key_type: &'static str| {
            let mut bytes = Zeroizing::new(vec![0u8; len]);
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes[..]);
            Ok(GeneratedKey::Raw { bytes, key_type })
        };
        match self {
            KeygenAlg::Rsa2048 => private(KeyAlg::Rsa2048),
            KeygenAlg::Rsa3072 => private(KeyAlg::Rsa3072),
            KeygenAlg::Rsa4096 => private(KeyAlg::Rsa4096),
            KeygenAlg::P256 => private(KeyAlg::P256),
            KeygenAlg::P384 => private(KeyAlg::P384),
            KeygenAlg::Aes128 => raw(16, "aes"),
            KeygenAlg::Aes256 => raw(32, "aes"),
            KeygenAlg::HmacSha256 => raw(32, "hmac"),
        }
    }
}

/// A private key to be wrapped. The RSA and EC key types zeroize on drop.
pub enum TargetKey {
    Rsa(Box<rsa::RsaPrivateKey>),
    P256(p256::SecretKey),
    P384(p384::SecretKey),
}

impl TargetKey {
    /// Read a private key from PEM or DER: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
    pub fn from_bytes(bytes: &[u8]) -> Result<TargetKey, KeyError> {
        if let Ok(text) = std::str::from_utf8(bytes) {
            if text.contains("-----BEGIN") {
                return Self::from_pem(text);
            }
        }
        Self::from_der(bytes)
    }

    fn from_pem(text: &str) -> Result<TargetKey, KeyError> {
        use pkcs1::DecodeRsaPrivateKey;
        let text = text.trim_start();
        if text.starts_with("-----BEGIN PRIVATE KEY-----") {
            if let Ok(k) = rsa::RsaPrivateKey::from_pkcs8_pem(text) {
                return TargetKey::rsa(k);
            }
            if let Ok(k) = p256::SecretKey::from_pkcs8_pem(text) {
                return Ok(TargetKey::P256(k));
            }
            if let Ok(k) = p384::SecretKey::from_pkcs8_pem(text) {
                return Ok(TargetKey::P384(k));
            }
            return Err(KeyError::Unsupported(
                "PKCS#8 key is not RSA, P-256 or P-384 (or is malformed)".into(),
            ));
        }
        if text.starts_with("-----BEGIN RSA PRIVATE KEY-----") {
            return rsa::RsaPrivateKey::from_pkcs1_pem(text)
                .map_err(|e| KeyError::Unrecognised(format!("PKCS#1: {e}")))
                .and_then(TargetKey::rsa);
        }
        if text.starts_with("-----BEGIN EC PRIVATE KEY-----") {
            if let Ok(k) = p256::SecretKey::from_sec1_pem(text) {
                return Ok(TargetKey::P256(k));
            }
            if let Ok(k) = p384::SecretKey::from_sec1_pem(text) {
                return Ok(TargetKey::P384(k));
            }
            return Err(KeyError::Unsupported(
                "SEC1 key is not on P-256 or P-384 (or is malformed)".into(),
            ));
        }
        if text.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
            return Err(KeyError::Unsupported(
                "encrypted PKCS#8 is not read; decrypt it with `openssl pkcs8` on the offline workstation".into(),
            ));
        }
        let label = text
            .strip_prefix("-----BEGIN ")
            .and_then(|t| t.split_once("-----"))
            .map(|(l, _)| l)
            .filter(|l| l.len() <= 40 && l.chars().all(|c| c.is_ascii_uppercase() || c == ' '));
        Err(KeyError::Unrecognised(match label {
            Some(l) => format!(
                "the PEM block is \"{l}\", not a private key (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)"
            ),
            None => "PEM block is not a private key".into(),
        }))
    }

    fn from_der(der: &[u8]) -> Result<TargetKey, KeyError> {
        use pkcs1::DecodeRsaPrivateKey;
        if let Ok(k) = rsa::RsaPrivateKey::from_pkcs8_der(der) {
            return TargetKey::rsa(k);
        }
        if let Ok(k) = p256::SecretKey::from_pkcs8_der(der) {
            return Ok(TargetKey::P256(k));
        }
        if let Ok(k) = p384::SecretKey::from_pkcs8_der(der) {
            return Ok(TargetKey::P384(k));
        }
        if let Ok(k) = rsa::RsaPrivateKey::from_pkcs1_der(der) {
            return TargetKey::rsa(k);
        }
        if let Ok(k) = p256::SecretKey::from_sec1_der(der) {
            return Ok(TargetKey::P256(k));
        }
        if let Ok(k) = p384::SecretKey::from_sec1_der(der) {
            return Ok(TargetKey::P384(k));
        }
        if der.is_empty() {
            return Err(KeyError::Unrecognised("the file is empty".into()));
        }
        if der.first() != Some(&0x30) && der.len() <= 128 {
            return Err(KeyError::Unrecognised(format!(
                "{} bytes that are not DER; if they are a raw AES or HMAC key, add --key-type aes or --key-type hmac",
                der.len()
            )));
        }
        Err(KeyError::Unrecognised(
            "DER is not a supported private key".into(),
        ))
    }

    fn rsa(k: rsa::RsaPrivateKey) -> Result<TargetKey, KeyError> {
        let bits = k.size() * 8;
        if !matches!(bits, 2048 | 3072 | 4096) {
            return Err(KeyError::Unsupported(format!(
                "RSA-{bits}: only 2048, 3072 and 4096 bits are imported"
            )));
        }
        if k.e() != &rsa::BigUint::from(65537u32) {
            return Err(KeyError::Unsupported(
                "RSA public exponent other than 65537".into(),
            ));
        }
        if k.primes().len() != 2 {
            return Err(KeyError::Unsupported("multi-prime RSA".into()));
        }
        k.validate()
            .map_err(|e| KeyError::Unsupported(format!("invalid RSA key: {e}")))?;
        Ok(TargetKey::Rsa(Box::new(k)))
    }

    pub fn generate(alg: KeyAlg) -> Result<TargetKey, KeyError> {
        let mut rng = rand::rngs::OsRng;
        let bits = match alg {
            KeyAlg::Rsa2048 => 2048,
            KeyAlg::Rsa3072 => 3072,
            KeyAlg::Rsa4096 => 4096,
            KeyAlg::P256 => return Ok(TargetKey::P256(p256::SecretKey::random(&mut rng))),
            KeyAlg::P384 => return Ok(TargetKey::P384(p384::SecretKey::random(&mut rng))),
        };
        rsa::RsaPrivateKey::new(&mut rng, bits)
            .map(|k| TargetKey::Rsa(Box::new(k)))
            .map_err(|e| KeyError::Unsupported(e.to_string()))
    }

    pub fn alg(&self) -> KeyAlg {
        match self {
            TargetKey::Rsa(k) => match k.size() {
                256 => KeyAlg::Rsa2048,
                384 => KeyAlg::Rsa3072,
                _ => KeyAlg::Rsa4096,
            },
            TargetKey::P256(_) => KeyAlg::P256,
            TargetKey::P384(_) => KeyAlg::P384,
        }
    }

    /// PKCS#8 PEM of the private key (for `keygen`).
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, KeyError> {
        let r = match self {
            TargetKey::Rsa(k) => k.to_pkcs8_pem(pkcs8::LineEnding::LF),
            TargetKey::P256(k) => k.to_pkcs8_pem(pkcs8::LineEnding::LF),
            TargetKey::P384(k) => k.to_pkcs8_pem(pkcs8::LineEnding::LF),
        };
        r.map(|s| Zeroizing::new(s.to_string()))
            .map_err(|e| KeyError::Unsupported(e.to_string()))
    }

    /// PKCS#8 DER of the private key.
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let r = match self {
            TargetKey::Rsa(k) => k.to_pkcs8_der(),
            TargetKey::P256(k) => k.to_pkcs8_der(),
            TargetKey::P384(k) => k.to_pkcs8_der(),
        };
        r.map(|d| Zeroizing::new(d.as_bytes().to_vec()))
            .map_err(|e| KeyError::Unsupported(e.to_string()))
    }

    /// The key as PKCS#8 DER: the input's own bytes when it already is PKCS#8
    /// (PEM or DER), so a cloud receives exactly what the operator holds; else
    /// re-encoded from PKCS#1 or SEC1.
    pub fn pkcs8_der_of(input: &[u8]) -> Result<(TargetKey, Zeroizing<Vec<u8>>), KeyError> {
        let key = TargetKey::from_bytes(input)?;
        if let Ok(text) = std::str::from_utf8(input) {
            if let Ok((label, doc)) = pkcs8::SecretDocument::from_pem(text.trim()) {
                if label == "PRIVATE KEY" {
                    return Ok((key, Zeroizing::new(doc.as_bytes().to_vec())));
                }
            }
        }
        if pkcs8::PrivateKeyInfo::try_from(input).is_ok() {
            return Ok((key, Zeroizing::new(input.to_vec())));
        }
        let der = key.to_pkcs8_der()?;
        Ok((key, der))
    }

    /// A short description such as "RSA-2048" or "EC P-256".
    pub fn describe(&self) -> String {
        self.tpm_public().describe_key()
    }

    /// The TPMT_PUBLIC the key is imported with (see [`crate::transfer`]).
    pub fn tpm_public(&self) -> TpmtPublic {
        self.tpm_public_with_policy(Vec::new())
    }

    /// The same with an authPolicy (a PCR policy): userWithAuth is cleared so
    /// every use needs a policy session that satisfies it. The DUP role stays
    /// out of reach: TPM2_Duplicate needs a policy whose session has the
    /// command code set (TPM2_PolicyCommandCode(TPM_CC_Duplicate)), which a
    /// PolicyPCR-only digest never has (checked on swtpm: tpm2_duplicate with a
    /// PolicyPCR session fails with TPM_RC_POLICY_FAIL).
    pub fn tpm_public_with_policy(&self, auth_policy: Vec<u8>) -> TpmtPublic {
        let attributes = transfer_attributes(TransferKind::Asymmetric, !auth_policy.is_empty());
        let (params, unique, object_type) = match self {
            TargetKey::Rsa(k) => (
                PublicParams::Rsa {
                    symmetric: SymDef::NULL,
                    scheme: Scheme::NULL,
                    key_bits: (k.size() * 8) as u16,
                    exponent: 0,
                },
                PublicId::Rsa(k.n().to_bytes_be()),
                alg::RSA,
            ),
            TargetKey::P256(k) => {
                let p = k.public_key();
                let point = p256::EncodedPoint::from(p);
                ecc_parts(curve::NIST_P256, point.as_bytes())
            }
            TargetKey::P384(k) => {
                let p = k.public_key();
                let point = p384::EncodedPoint::from(p);
                ecc_parts(curve::NIST_P384, point.as_bytes())
            }
        };
        TpmtPublic::build(
            object_type,
            alg::SHA256,
            attributes,
            auth_policy,
            params,
            unique,
        )
    }

    /// The marshalled TPMT_SENSITIVE: type, empty authValue, empty seedValue
    /// (unused for asymmetric keys), and the private part the TPM needs (one RSA
    /// prime, padded to half the modulus; or the EC scalar, padded to the field size).
    pub fn tpm_sensitive(&self) -> Zeroizing<Vec<u8>> {
        let (sensitive_type, secret): (u16, Zeroizing<Vec<u8>>) = match self {
            TargetKey::Rsa(k) => {
                let half = k.size() / 2;
                let p = Zeroizing::new(k.primes()[0].to_bytes_be());
                let mut padded = Zeroizing::new(vec![0u8; half.saturating_sub(p.len())]);
                padded.extend_from_slice(&p);
                (alg::RSA, padded)
            }
            TargetKey::P256(k) => (alg::ECC, Zeroizing::new(k.to_bytes().to_vec())),
            TargetKey::P384(k) => (alg::ECC, Zeroizing::new(k.to_bytes().to_vec())),
        };
        let mut w = Writer::new();
        w.u16(sensitive_type).tpm2b(&[]).tpm2b(&[]).tpm2b(&secret);
        Zeroizing::new(w.into_vec())
    }

    /// SubjectPublicKeyInfo PEM of the public key.
    pub fn public_key_pem(&self) -> Result<String, KeyError> {
        public_key_pem(&self.tpm_public())
    }
}

fn ecc_parts(curve_id: u16, sec1: &[u8]) -> (PublicParams, PublicId, u16) {
    let len = (sec1.len() - 1) / 2;
    (
        PublicParams::Ecc {
            symmetric: SymDef::NULL,
            scheme: Scheme::NULL,
            curve: curve_id,
            kdf: Scheme::NULL,
        },
        PublicId::Ecc {
            x: sec1[1..1 + len].to_vec(),
            y: sec1[1 + len..].to_vec(),
        },
        alg::ECC,
    )
}

/// SubjectPublicKeyInfo DER of the key in a TPM public area (RSA, P-256, P-384).
pub fn public_key_der(public: &TpmtPublic) -> Result<Vec<u8>, KeyError> {
    let err = |e: &dyn std::fmt::Display| KeyError::Unsupported(e.to_string());
    match (&public.params, &public.unique) {
        (PublicParams::Rsa { exponent, .. }, PublicId::Rsa(n)) => {
            let pk = crate::signature::rsa_public(n, *exponent).map_err(|e| err(&e))?;
            Ok(pk.to_public_key_der().map_err(|e| err(&e))?.into_vec())
        }
        (PublicParams::Ecc { curve: c, .. }, PublicId::Ecc { x, y }) => {
            let point =
                sec1_point(*c, x, y).ok_or_else(|| KeyError::Unsupported(public.describe_key()))?;
            let der = match *c {
                curve::NIST_P256 => p256::PublicKey::from_sec1_bytes(&point)
                    .map_err(|e| err(&e))?
                    .to_public_key_der(),
                _ => p384::PublicKey::from_sec1_bytes(&point)
                    .map_err(|e| err(&e))?
                    .to_public_key_der(),
            };
            Ok(der.map_err(|e| err(&e))?.into_vec())
        }
        _ => Err(KeyError::Unsupported(format!(
            "{} has no SubjectPublicKeyInfo form",
            public.describe_key()
        ))),
    }
}

/// SubjectPublicKeyInfo PEM of the key in a TPM public area.
pub fn public_key_pem(public: &TpmtPublic) -> Result<String, KeyError> {
    let der = public_key_der(public)?;
    let doc = spki::Document::try_from(der).map_err(|e| KeyError::Unsupported(e.to_string()))?;
    doc.to_pem("PUBLIC KEY", pkcs8::LineEnding::LF)
        .map_err(|e| KeyError::Unsupported(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prepared_key_gives_what_its_key_gives() {
        let keys: Vec<Box<dyn TpmObjectKey + Sync>> = vec![
            Box::new(TargetKey::generate(KeyAlg::P256).unwrap()),
            Box::new(TargetKey::generate(KeyAlg::P384).unwrap()),
            Box::new(SymmetricKey::new(SymmetricKind::Aes, &[7; 32]).unwrap()),
        ];
        for key in &keys {
            let prepared = PreparedKey::new(key.as_ref());
            for policy in [Vec::new(), vec![9u8; 32]] {
                assert_eq!(
                    prepared.tpm_public_with_policy(policy.clone()),
                    key.tpm_public_with_policy(policy)
                );
            }
            assert_eq!(*prepared.tpm_sensitive(), *key.tpm_sensitive());
            assert_eq!(prepared.alg_name(), key.alg_name());
        }
    }

    #[test]
    fn p256_pem_roundtrip_and_public_area() {
        use crate::tpm::attr;
        let k = TargetKey::generate(KeyAlg::P256).unwrap();
        let pem = k.to_pkcs8_pem().unwrap();
        let k2 = TargetKey::from_bytes(pem.as_bytes()).unwrap();
        assert_eq!(k.tpm_public(), k2.tpm_public());
        let p = k.tpm_public();
        assert!(!p.has(attr::FIXED_TPM));
        assert!(!p.has(attr::ADMIN_WITH_POLICY));
        assert!(p.auth_policy.is_empty());
        let sens = k.tpm_sensitive();
        // type + 2 empty TPM2Bs + TPM2B(32-byte scalar)
        assert_eq!(sens.len(), 2 + 2 + 2 + 2 + 32);
    }

    #[test]
    fn garbage_is_refused() {
        assert!(TargetKey::from_bytes(b"not a key").is_err());
        assert!(TargetKey::from_bytes(
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
        )
        .is_err());
    }
}

/// A key as a TPM object to be imported: its public area (with an optional
/// authPolicy) and its TPMT_SENSITIVE.
pub trait TpmObjectKey {
    fn tpm_public_with_policy(&self, auth_policy: Vec<u8>) -> TpmtPublic;
    fn tpm_sensitive(&self) -> Zeroizing<Vec<u8>>;
    /// "rsa2048", "p256", "aes256", "hmac-sha256" …
    fn alg_name(&self) -> String;
}

impl TpmObjectKey for TargetKey {
    fn tpm_public_with_policy(&self, auth_policy: Vec<u8>) -> TpmtPublic {
        TargetKey::tpm_public_with_policy(self, auth_policy)
    }
    fn tpm_sensitive(&self) -> Zeroizing<Vec<u8>> {
        TargetKey::tpm_sensitive(self)
    }
    fn alg_name(&self) -> String {
        self.alg().name().to_string()
    }
}

/// A key wrapped for many KEKs (a fleet): its public area without a policy
/// is computed once (deriving an EC public key costs more than the rest of
/// a package), an area with a policy by the key itself.
pub struct PreparedKey<'a> {
    key: &'a (dyn TpmObjectKey + Sync),
    public: TpmtPublic,
}

impl<'a> PreparedKey<'a> {
    pub fn new(key: &'a (dyn TpmObjectKey + Sync)) -> PreparedKey<'a> {
        PreparedKey {
            public: key.tpm_public_with_policy(Vec::new()),
            key,
        }
    }
}

impl TpmObjectKey for PreparedKey<'_> {
    fn tpm_public_with_policy(&self, auth_policy: Vec<u8>) -> TpmtPublic {
        if auth_policy.is_empty() {
            self.public.clone()
        } else {
            self.key.tpm_public_with_policy(auth_policy)
        }
    }
    fn tpm_sensitive(&self) -> Zeroizing<Vec<u8>> {
        self.key.tpm_sensitive()
    }
    fn alg_name(&self) -> String {
        self.key.alg_name()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymmetricKind {
    /// AES-128/192/256 used in CFB mode (TPM2_EncryptDecrypt2).
    Aes,
    /// An HMAC-SHA-256 key (TPM2_HMAC).
    HmacSha256,
}

/// A raw AES or HMAC key to import. The TPM binds such a key to its public
/// area through unique = H_nameAlg(seedValue || key), with a random
/// seedValue (the "obfuscation value") that travels in the sensitive area.
pub struct SymmetricKey {
    kind: SymmetricKind,
    key: Zeroizing<Vec<u8>>,
    seed: Zeroizing<[u8; 32]>,
}

impl SymmetricKey {
    pub fn new(kind: SymmetricKind, bytes: &[u8]) -> Result<SymmetricKey, KeyError> {
        match kind {
            SymmetricKind::Aes if !matches!(bytes.len(), 16 | 24 | 32) => {
                return Err(KeyError::Unsupported(format!(
                    "an AES key has 16, 24 or 32 bytes, not {}",
                    bytes.len()
                )))
            }
            // MAX_SYM_DATA is 128 bytes; an HMAC-SHA-256 key longer than its
            // 64-byte block is hashed first anyway.
            SymmetricKind::HmacSha256 if !(16..=64).contains(&bytes.len()) => {
                return Err(KeyError::Unsupported(format!(
                    "an HMAC key here has 16 to 64 bytes, not {}",
                    bytes.len()
                )))
            }
            _ => {}
        }
        let mut seed = Zeroizing::new([0u8; 32]);
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed[..]);
        Ok(SymmetricKey {
            kind,
            key: Zeroizing::new(bytes.to_vec()),
            seed,
        })
    }
}

impl TpmObjectKey for SymmetricKey {
    fn tpm_public_with_policy(&self, auth_policy: Vec<u8>) -> TpmtPublic {
        let pcr_bound = !auth_policy.is_empty();
        let unique =
            PublicId::Digest(crate::hash::HashAlg::Sha256.digest(&[&self.seed[..], &self.key]));
        let (object_type, attributes, params) = match self.kind {
            // TPM2_EncryptDecrypt: `sign` allows encryption, `decrypt` decryption.
            SymmetricKind::Aes => (
                alg::SYMCIPHER,
                transfer_attributes(TransferKind::Aes, pcr_bound),
                PublicParams::SymCipher {
                    symmetric: SymDef {
                        algorithm: alg::AES,
                        key_bits: (self.key.len() * 8) as u16,
                        mode: alg::CFB,
                    },
                },
            ),
            SymmetricKind::HmacSha256 => (
                alg::KEYEDHASH,
                transfer_attributes(TransferKind::Hmac, pcr_bound),
                PublicParams::KeyedHash {
                    scheme: Scheme {
                        scheme: alg::HMAC,
                        hash: alg::SHA256,
                        extra: 0,
                    },
                },
            ),
        };
        TpmtPublic::build(
            object_type,
            alg::SHA256,
            attributes,
            auth_policy,
            params,
            unique,
        )
    }

    fn tpm_sensitive(&self) -> Zeroizing<Vec<u8>> {
        let sensitive_type = match self.kind {
            SymmetricKind::Aes => alg::SYMCIPHER,
            SymmetricKind::HmacSha256 => alg::KEYEDHASH,
        };
        let mut w = Writer::new();
        w.u16(sensitive_type)
            .tpm2b(&[])
            .tpm2b(&self.seed[..])
            .tpm2b(&self.key);
        Zeroizing::new(w.into_vec())
    }

    fn alg_name(&self) -> String {
        match self.kind {
            SymmetricKind::Aes => format!("aes{}", self.key.len() * 8),
            SymmetricKind::HmacSha256 => "hmac-sha256".into(),
        }
    }
}
