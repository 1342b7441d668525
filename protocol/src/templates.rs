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
