//! Public-area templates of the objects the agent creates, kept here so the
//! agent that creates them and the verifier that checks them share one definition.

use crate::public::{PublicId, PublicParams, Scheme, SymDef, TpmtPublic};
use crate::tpm::{alg, attr};
use crate::world::world_policy;

/// Attributes of a world's KEK: a restricted decryption (storage) key
/// generated in and bound to this TPM.
pub const KEK_ATTRIBUTES: u32 = attr::FIXED_TPM
    | attr::FIXED_PARENT
    | attr::SENSITIVE_DATA_ORIGIN
    | attr::USER_WITH_AUTH
    | attr::NO_DA
    | attr::RESTRICTED
    | attr::DECRYPT;

/// The KEK's key type (in state files "rsa2048", "p256", "p384").
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum KekAlg {
    Rsa2048,
    P256,
    P384,
}

impl KekAlg {
    pub const ALL: [KekAlg; 3] = [KekAlg::Rsa2048, KekAlg::P256, KekAlg::P384];

    pub fn name(self) -> &'static str {
        match self {
            KekAlg::Rsa2048 => "rsa2048",
            KekAlg::P256 => "p256",
            KekAlg::P384 => "p384",
        }
    }

    pub fn from_name(s: &str) -> Option<KekAlg> {
        KekAlg::ALL.into_iter().find(|a| a.name() == s)
    }
}

/// What distinguishes one KEK of a world from another: its type, its
/// generation (`kek rotate` increments it) and an optional authPolicy that
/// replaces the plain world binding (a PCR-bound KEK, see [`crate::world`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KekSpec {
    pub alg: KekAlg,
    pub generation: u32,
    pub auth_policy: Option<Vec<u8>>,
}

impl Default for KekSpec {
    fn default() -> Self {
        KekSpec {
            alg: KekAlg::Rsa2048,
            generation: 0,
            auth_policy: None,
        }
    }
}

/// The unique field of generation `g` (> 0): a primary key is derived from the
/// owner seed and its template, so a different unique gives a different KEK.
/// Generation 0 keeps the empty unique of the first releases.
fn generation_unique(g: u32) -> Vec<u8> {
    if g == 0 {
        return Vec::new();
    }
    let mut data = b"tpm-byok/kek-generation\0".to_vec();
    data.extend_from_slice(&g.to_be_bytes());
    crate::hash::sha256(&data).to_vec()
}

/// The template for world `world`'s KEK: a storage primary in the owner
/// hierarchy (RSA-2048 or ECC P-256/P-384), AES-128-CFB as its symmetric
/// algorithm (required for a storage parent), with the world binding in
/// authPolicy (see [`crate::world`]). A PCR-bound KEK has userWithAuth clear,
/// so it can only be used through its policy.
pub fn kek_template(world: &str, spec: &KekSpec) -> TpmtPublic {
    let (auth_policy, attributes) = match &spec.auth_policy {
        Some(p) => (p.clone(), KEK_ATTRIBUTES & !attr::USER_WITH_AUTH),
        None => (world_policy(world).to_vec(), KEK_ATTRIBUTES),
    };
    let unique = generation_unique(spec.generation);
    let ecc = |c| {
        (
            alg::ECC,
            PublicParams::Ecc {
                symmetric: SymDef::AES_128_CFB,
                scheme: Scheme::NULL,
                curve: c,
                kdf: Scheme::NULL,
            },
            PublicId::Ecc {
                x: unique.clone(),
                y: Vec::new(),
            },
        )
    };
    let (object_type, params, unique) = match spec.alg {
        KekAlg::Rsa2048 => (
            alg::RSA,
            PublicParams::Rsa {
                symmetric: SymDef::AES_128_CFB,
                scheme: Scheme::NULL,
                key_bits: 2048,
                exponent: 0,
            },
            PublicId::Rsa(unique.clone()),
        ),
        KekAlg::P256 => ecc(crate::tpm::curve::NIST_P256),
        KekAlg::P384 => ecc(crate::tpm::curve::NIST_P384),
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

/// Attributes of a world's compat KEK: an unrestricted RSA decryption key,
/// generated in and bound to this TPM, for tools that only speak
/// CKM_RSA_AES_KEY_WRAP (Azure `.byok` and the like).
pub const COMPAT_KEK_ATTRIBUTES: u32 = attr::FIXED_TPM
    | attr::FIXED_PARENT
    | attr::SENSITIVE_DATA_ORIGIN
    | attr::USER_WITH_AUTH
    | attr::NO_DA
    | attr::DECRYPT;

/// The compat KEK: RSA-3072, a child of the world's KEK, any OAEP hash at use.
pub fn compat_kek_template() -> TpmtPublic {
    TpmtPublic::build(
        alg::RSA,
        alg::SHA256,
        COMPAT_KEK_ATTRIBUTES,
        Vec::new(),
        PublicParams::Rsa {
            symmetric: SymDef::NULL,
            scheme: Scheme::NULL,
            key_bits: 3072,
            exponent: 0,
        },
        PublicId::Rsa(Vec::new()),
    )
}

/// Keys the agent generates inside the TPM (`byok-agent key create`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum BornKeyAlg {
    Rsa2048,
    Rsa3072,
    P256,
    P384,
    Aes256,
    HmacSha256,
}

impl BornKeyAlg {
    pub const ALL: [BornKeyAlg; 6] = [
        BornKeyAlg::Rsa2048,
        BornKeyAlg::Rsa3072,
        BornKeyAlg::P256,
        BornKeyAlg::P384,
        BornKeyAlg::Aes256,
        BornKeyAlg::HmacSha256,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BornKeyAlg::Rsa2048 => "rsa2048",
            BornKeyAlg::Rsa3072 => "rsa3072",
            BornKeyAlg::P256 => "p256",
            BornKeyAlg::P384 => "p384",
            BornKeyAlg::Aes256 => "aes256",
            BornKeyAlg::HmacSha256 => "hmac-sha256",
        }
    }

    pub fn from_name(s: &str) -> Option<BornKeyAlg> {
        BornKeyAlg::ALL.into_iter().find(|a| a.name() == s)
    }
}

/// Attributes of a key generated in the TPM: fixedTPM, fixedParent and
/// sensitiveDataOrigin (it never existed outside this TPM and can never be
/// duplicated: TPM2_Duplicate refuses fixedParent objects), noDA because its
/// auth value is empty; sign/decrypt are added per algorithm.
pub const BORN_KEY_ATTRIBUTES: u32 = attr::FIXED_TPM
    | attr::FIXED_PARENT
    | attr::SENSITIVE_DATA_ORIGIN
    | attr::USER_WITH_AUTH
    | attr::NO_DA;

/// With a non-empty `auth_policy` (a PCR policy) userWithAuth is cleared, so
/// every use needs a policy session that satisfies it.
fn with_policy(attributes: u32, auth_policy: &[u8]) -> u32 {
    if auth_policy.is_empty() {
        attributes
    } else {
        attributes & !attr::USER_WITH_AUTH
    }
}

/// The template of a key generated in the TPM under the world's KEK.
pub fn born_key_template(key: BornKeyAlg, auth_policy: Vec<u8>) -> TpmtPublic {
    let base = with_policy(BORN_KEY_ATTRIBUTES, &auth_policy);
    let rsa = |bits| {
        (
            alg::RSA,
            base | attr::SIGN | attr::DECRYPT,
            PublicParams::Rsa {
                symmetric: SymDef::NULL,
                scheme: Scheme::NULL,
                key_bits: bits,
                exponent: 0,
            },
            PublicId::Rsa(Vec::new()),
        )
    };
    let ecc = |c| {
        (
            alg::ECC,
            base | attr::SIGN,
            PublicParams::Ecc {
                symmetric: SymDef::NULL,
                scheme: Scheme::NULL,
                curve: c,
                kdf: Scheme::NULL,
            },
            PublicId::Ecc {
                x: Vec::new(),
                y: Vec::new(),
            },
        )
    };
    let (object_type, attributes, params, unique) = match key {
        BornKeyAlg::Rsa2048 => rsa(2048),
        BornKeyAlg::Rsa3072 => rsa(3072),
        BornKeyAlg::P256 => ecc(crate::tpm::curve::NIST_P256),
        BornKeyAlg::P384 => ecc(crate::tpm::curve::NIST_P384),
        // TPM2_EncryptDecrypt encrypts with a key that has `sign` and
        // decrypts with one that has `decrypt`.
        BornKeyAlg::Aes256 => (
            alg::SYMCIPHER,
            base | attr::SIGN | attr::DECRYPT,
            PublicParams::SymCipher {
                symmetric: SymDef {
                    algorithm: alg::AES,
                    key_bits: 256,
                    mode: alg::CFB,
                },
            },
            PublicId::Digest(Vec::new()),
        ),
        BornKeyAlg::HmacSha256 => (
            alg::KEYEDHASH,
            base | attr::SIGN,
            PublicParams::KeyedHash {
                scheme: Scheme {
                    scheme: alg::HMAC,
                    hash: alg::SHA256,
                    extra: 0,
                },
            },
            PublicId::Digest(Vec::new()),
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

/// The template of a sealed data object: a keyed-hash object with neither
/// sign nor decrypt, whose data the caller supplies (so sensitiveDataOrigin is
/// clear, as the TPM requires for data objects); fixedTPM and fixedParent so it
/// can never leave this TPM. With a PCR policy, userWithAuth is clear and
/// TPM2_Unseal needs a policy session that satisfies it.
pub fn sealed_data_template(auth_policy: Vec<u8>) -> TpmtPublic {
    let attributes = with_policy(
        attr::FIXED_TPM | attr::FIXED_PARENT | attr::USER_WITH_AUTH | attr::NO_DA,
        &auth_policy,
    );
    TpmtPublic::build(
        alg::KEYEDHASH,
        alg::SHA256,
        attributes,
        auth_policy,
        PublicParams::KeyedHash {
            scheme: Scheme::NULL,
        },
        PublicId::Digest(Vec::new()),
    )
}

/// The AK: RSA-2048 restricted signing key (RSASSA, SHA-256) created under
/// the EK, as tpm2_createak and Keylime make it.
pub fn ak_template() -> TpmtPublic {
    TpmtPublic::build(
        alg::RSA,
        alg::SHA256,
        // noDA: the AK is used with its (empty) auth value by evidence,
        // attest-key and import; unclean TPM restarts count as DA failures
        // and must not lock it out (go-tpm-tools' AK template does the same).
        attr::FIXED_TPM
            | attr::FIXED_PARENT
            | attr::SENSITIVE_DATA_ORIGIN
            | attr::USER_WITH_AUTH
            | attr::NO_DA
            | attr::RESTRICTED
            | attr::SIGN,
        Vec::new(),
        PublicParams::Rsa {
            symmetric: SymDef::NULL,
            scheme: Scheme {
                scheme: alg::RSASSA,
                hash: alg::SHA256,
                extra: 0,
            },
            key_bits: 2048,
            exponent: 0,
        },
        PublicId::Rsa(Vec::new()),
    )
}
