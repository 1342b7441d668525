//! Software TPM2_MakeCredential (TPM 2.0 Part 1 §24): protect a secret so
//! only the TPM holding `ek` (private) and an object named `object_name` can
//! recover it with TPM2_ActivateCredential.

use crate::error::CryptoError;
use crate::kdf::{aes_cfb_encrypt, kdfa, make_seed};
use crate::public::TpmtPublic;
use crate::tpm::alg;
use crate::wire::tpm2b;
use zeroize::Zeroizing;

/// MakeCredential output, as TPM wire bytes (both with their TPM2B size).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// TPM2B_ID_OBJECT.
    pub id_object: Vec<u8>,
    /// TPM2B_ENCRYPTED_SECRET.
    pub encrypted_secret: Vec<u8>,
}

impl Credential {
    /// The file `tpm2_makecredential` writes and `tpm2_activatecredential -i`
    /// reads: magic 0xBADCC0DE, version 1, TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET.
    pub fn to_tpm2_tools_file(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&0xBADC_C0DEu32.to_be_bytes());
        out.extend_from_slice(&1u32.to_be_bytes());
        out.extend_from_slice(&self.id_object);
        out.extend_from_slice(&self.encrypted_secret);
        out
    }
}

/// Largest credential value (sizeof(TPMU_HA)).
pub const MAX_CREDENTIAL: usize = 64;

pub fn make_credential(
    ek: &TpmtPublic,
    object_name: &[u8],
    secret: &[u8],
) -> Result<Credential, CryptoError> {
    if secret.is_empty() || secret.len() > MAX_CREDENTIAL {
        return Err(CryptoError::UnsupportedAlgorithm {
            what: "credential length",
            alg: secret.len() as u16,
        });
    }
    let sym = ek.symmetric();
    if sym.algorithm != alg::AES {
        return Err(CryptoError::UnsupportedAlgorithm {
            what: "EK symmetric algorithm",
            alg: sym.algorithm,
        });
    }
    let h = ek.name_hash();
    let (seed, encrypted) = make_seed(ek, "EK", "IDENTITY")?;

    let sym_key = kdfa(h, &seed, "STORAGE", object_name, &[], sym.key_bits.into());
    let mut enc_identity = Zeroizing::new(tpm2b(secret));
    aes_cfb_encrypt(&sym_key, &mut enc_identity)?;
    let hmac_key = kdfa(h, &seed, "INTEGRITY", &[], &[], (h.size() * 8) as u32);
    let outer_hmac = h.hmac(&hmac_key, &[&enc_identity, object_name]);

    let mut body = tpm2b(&outer_hmac);
    body.extend_from_slice(&enc_identity);
    Ok(Credential {
        id_object: tpm2b(&body),
        encrypted_secret: tpm2b(&encrypted),
    })
}
