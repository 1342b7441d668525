//! Software construction of a TPM2 duplication blob (TPM 2.0 Part 1 §23.3)
//! for TPM2_Import under a given new parent, with an optional inner wrapper.

use crate::error::CryptoError;
use crate::kdf::{aes_cfb_encrypt, kdfa, make_seed};
use crate::public::TpmtPublic;
use crate::tpm::alg;
use crate::wire::tpm2b;
use zeroize::Zeroizing;

/// The three TPM2_Import inputs besides the parent and the inner key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicationBlob {
    /// TPM2B_PRIVATE (outer HMAC and the doubly wrapped sensitive area).
    pub duplicate: Vec<u8>,
    /// TPM2B_ENCRYPTED_SECRET (the outer-wrapper seed, encrypted to the new parent).
    pub seed: Vec<u8>,
}

/// Wrap `sensitive` (a marshalled TPMT_SENSITIVE) for import under `new_parent`.
///
/// With `inner_key` (AES-128, the import's `encryptionKey`), the sensitive area
/// carries an inner integrity digest and is AES-128-CFB encrypted with it before the
/// outer wrapper is applied; TPM2_Import must then be given the same key.
pub fn duplicate(
    new_parent: &TpmtPublic,
    object: &TpmtPublic,
    sensitive: &[u8],
    inner_key: Option<&[u8; 16]>,
) -> Result<DuplicationBlob, CryptoError> {
    let name = object.name();
    let tpm2b_sensitive = Zeroizing::new(tpm2b(sensitive));

    let inner = match inner_key {
        Some(key) => {
            let integrity = object.name_hash().digest(&[&tpm2b_sensitive, &name]);
            let mut plain = Zeroizing::new(tpm2b(&integrity));
            plain.extend_from_slice(&tpm2b_sensitive);
            aes_cfb_encrypt(key, &mut plain)?;
            plain
        }
        None => tpm2b_sensitive,
    };

    let sym = new_parent.symmetric();
    if sym.algorithm != alg::AES {
        return Err(CryptoError::UnsupportedAlgorithm {
            what: "new parent symmetric algorithm",
            alg: sym.algorithm,
        });
    }
    let h = new_parent.name_hash();
    let (seed, encrypted_seed) = make_seed(new_parent, "KEK", "DUPLICATE")?;

    let sym_key = kdfa(h, &seed, "STORAGE", &name, &[], sym.key_bits.into());
    let mut dup_sensitive = inner;
    aes_cfb_encrypt(&sym_key, &mut dup_sensitive)?;
    let hmac_key = kdfa(h, &seed, "INTEGRITY", &[], &[], (h.size() * 8) as u32);
    let outer_hmac = h.hmac(&hmac_key, &[&dup_sensitive, &name]);

    let mut body = tpm2b(&outer_hmac);
    body.extend_from_slice(&dup_sensitive);
    Ok(DuplicationBlob {
        duplicate: tpm2b(&body),
        seed: tpm2b(&encrypted_seed),
    })
}
