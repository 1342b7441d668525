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

/// The template for world `world`'s KEK: an RSA-2048 storage primary in the
/// owner hierarchy, AES-128-CFB as its symmetric algorithm (required for a
/// storage parent), with the world binding in authPolicy (see [`crate::world`]).
pub fn kek_template(world: &str) -> TpmtPublic {
    TpmtPublic::build(
        alg::RSA,
        alg::SHA256,
        KEK_ATTRIBUTES,
        world_policy(world).to_vec(),
        PublicParams::Rsa {
            symmetric: SymDef::AES_128_CFB,
            scheme: Scheme::NULL,
            key_bits: 2048,
            exponent: 0,
        },
        PublicId::Rsa(Vec::new()),
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
