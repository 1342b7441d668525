//! KDFa (SP 800-108 counter mode with HMAC, TPM 2.0 Part 1 §11.4.10.2),
//! AES-CFB with a zero IV, and RSA-OAEP to a TPM public key: the primitives of
//! credential and duplication-blob construction.

use crate::error::CryptoError;
use crate::hash::HashAlg;
use crate::public::{PublicId, PublicParams, TpmtPublic};
use zeroize::Zeroizing;

/// KDFa(hash, key, label, contextU, contextV, bits). `label` is given without
/// its terminating NUL, which the TPM includes in the hashed data.
pub fn kdfa(
    hash: HashAlg,
    key: &[u8],
    label: &str,
    context_u: &[u8],
    context_v: &[u8],
    bits: u32,
) -> Zeroizing<Vec<u8>> {
    let bytes = bits.div_ceil(8) as usize;
    let mut out = Zeroizing::new(Vec::with_capacity(bytes + hash.size()));
    let mut counter: u32 = 1;
    while out.len() < bytes {
        let block = Zeroizing::new(hash.hmac(
            key,
            &[
                &counter.to_be_bytes(),
                label.as_bytes(),
                &[0u8],
                context_u,
                context_v,
                &bits.to_be_bytes(),
            ],
        ));
        out.extend_from_slice(&block);
        counter += 1;
    }
    out.truncate(bytes);
    out
}

/// AES-CFB (full-block feedback) encryption with an all-zero IV, as the TPM
/// uses for credential and duplication wrappers.
pub fn aes_cfb_encrypt(key: &[u8], data: &mut [u8]) -> Result<(), CryptoError> {
    use cfb_mode::cipher::{AsyncStreamCipher, KeyIvInit};
    let iv = [0u8; 16];
    match key.len() {
        16 => cfb_mode::Encryptor::<aes::Aes128>::new_from_slices(key, &iv)
            .map_err(|_| CryptoError::UnsupportedAlgorithm {
                what: "AES key",
                alg: 16,
            })?
            .encrypt(data),
        24 => cfb_mode::Encryptor::<aes::Aes192>::new_from_slices(key, &iv)
            .map_err(|_| CryptoError::UnsupportedAlgorithm {
                what: "AES key",
                alg: 24,
            })?
            .encrypt(data),
        32 => cfb_mode::Encryptor::<aes::Aes256>::new_from_slices(key, &iv)
            .map_err(|_| CryptoError::UnsupportedAlgorithm {
                what: "AES key",
                alg: 32,
            })?
            .encrypt(data),
        n => {
            return Err(CryptoError::UnsupportedAlgorithm {
                what: "AES key length",
                alg: n as u16,
            })
        }
    }
    Ok(())
}

/// AES-CFB decryption with a zero IV (used by tests and the software checks).
pub fn aes_cfb_decrypt(key: &[u8], data: &mut [u8]) -> Result<(), CryptoError> {
    use cfb_mode::cipher::{AsyncStreamCipher, KeyIvInit};
    let iv = [0u8; 16];
    let bad = |_| CryptoError::UnsupportedAlgorithm {
        what: "AES key length",
        alg: key.len() as u16,
    };
    match key.len() {
        16 => cfb_mode::Decryptor::<aes::Aes128>::new_from_slices(key, &iv)
            .map_err(bad)?
            .decrypt(data),
        24 => cfb_mode::Decryptor::<aes::Aes192>::new_from_slices(key, &iv)
            .map_err(bad)?
            .decrypt(data),
        32 => cfb_mode::Decryptor::<aes::Aes256>::new_from_slices(key, &iv)
            .map_err(bad)?
            .decrypt(data),
        n => {
            return Err(CryptoError::UnsupportedAlgorithm {
                what: "AES key length",
                alg: n as u16,
            })
        }
    }
    Ok(())
}

/// KDFe (TPM 2.0 Part 1 §11.4.10.3, SP 800-56A single-step): H(counter ||
/// Z || label NUL || partyU || partyV), as many blocks as `bits` need.
pub fn kdfe(
    hash: HashAlg,
    z: &[u8],
    label: &str,
    party_u: &[u8],
    party_v: &[u8],
    bits: u32,
) -> Zeroizing<Vec<u8>> {
    let bytes = bits.div_ceil(8) as usize;
    let mut out = Zeroizing::new(Vec::with_capacity(bytes + hash.size()));
    let mut counter: u32 = 1;
    while out.len() < bytes {
        let block = Zeroizing::new(hash.digest(&[
            &counter.to_be_bytes(),
            z,
            label.as_bytes(),
            &[0u8],
            party_u,
            party_v,
        ]));
        out.extend_from_slice(&block);
        counter += 1;
    }
    out.truncate(bytes);
    out
}

/// The seed of a credential or duplication blob for `key`, and its
/// TPM2B_ENCRYPTED_SECRET contents: for RSA a random seed RSA-OAEP encrypted
/// (label with NUL); for ECC (P-256, P-384) the seed is derived by one-pass
/// ECDH with an ephemeral key, `KDFe(nameAlg, Z.x, label, Qe.x, Qs.x)`, and the
/// "encryption" is the ephemeral public point (TPMS_ECC_POINT).
pub fn make_seed(
    key: &TpmtPublic,
    what: &'static str,
    label: &str,
) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), CryptoError> {
    use rand::RngCore;
    let h = key.name_hash();
    match (&key.params, &key.unique) {
        (PublicParams::Ecc { curve: c, .. }, PublicId::Ecc { x, y }) => {
            let point = crate::signature::sec1_point(*c, x, y)
                .ok_or(CryptoError::UnsupportedAlgorithm { what, alg: *c })?;
            let bad = |e: &dyn std::fmt::Display| CryptoError::BadRsaKey(what, e.to_string());
            let (z, ex, ey) = match *c {
                crate::tpm::curve::NIST_P256 => {
                    let their = p256::PublicKey::from_sec1_bytes(&point).map_err(|e| bad(&e))?;
                    let eph = p256::ecdh::EphemeralSecret::random(&mut rand::rngs::OsRng);
                    let ours = p256::EncodedPoint::from(eph.public_key());
                    let z = Zeroizing::new(eph.diffie_hellman(&their).raw_secret_bytes().to_vec());
                    (
                        z,
                        ours.x().map(|v| v.to_vec()),
                        ours.y().map(|v| v.to_vec()),
                    )
                }
                crate::tpm::curve::NIST_P384 => {
                    let their = p384::PublicKey::from_sec1_bytes(&point).map_err(|e| bad(&e))?;
                    let eph = p384::ecdh::EphemeralSecret::random(&mut rand::rngs::OsRng);
                    let ours = p384::EncodedPoint::from(eph.public_key());
                    let z = Zeroizing::new(eph.diffie_hellman(&their).raw_secret_bytes().to_vec());
                    (
                        z,
                        ours.x().map(|v| v.to_vec()),
                        ours.y().map(|v| v.to_vec()),
                    )
                }
                other => return Err(CryptoError::UnsupportedAlgorithm { what, alg: other }),
            };
            let (Some(ex), Some(ey)) = (ex, ey) else {
                return Err(bad(&"ephemeral point"));
            };
            let len = ex.len();
            let their_x = crate::signature::sec1_point(*c, x, y)
                .map(|p| p[1..1 + len].to_vec())
                .unwrap_or_default();
            let seed = kdfe(h, &z, label, &ex, &their_x, (h.size() * 8) as u32);
            let mut w = crate::wire::Writer::new();
            w.tpm2b(&ex).tpm2b(&ey);
            Ok((seed, w.into_vec()))
        }
        _ => {
            let mut seed = Zeroizing::new(vec![0u8; h.size()]);
            rand::rngs::OsRng.fill_bytes(&mut seed);
            let encrypted = encrypt_seed(key, what, label, &seed)?;
            Ok((seed, encrypted))
        }
    }
}

/// Encrypt a secret seed to an RSA TPM key: RSA-OAEP with the key's nameAlg
/// for both OAEP hash and MGF1, and `label` (without NUL; the TPM's label
/// includes it, e.g. "IDENTITY\0", "DUPLICATE\0").
pub fn encrypt_seed(
    key: &TpmtPublic,
    what: &'static str,
    label: &str,
    seed: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let (PublicParams::Rsa { exponent, .. }, PublicId::Rsa(n)) = (&key.params, &key.unique) else {
        return Err(CryptoError::NotRsa(what));
    };
    let key_hash = key.name_hash();
    let pk = crate::signature::rsa_public(n, *exponent)
        .map_err(|e| CryptoError::BadRsaKey(what, e.to_string()))?;
    let label = format!("{label}\0");
    // AWS-LC's RSA (as for signatures, crate::signature): a fleet wrap makes
    // two of these per host, several times faster than the `rsa` crate's.
    use aws_lc_rs::rsa as lc;
    use rsa::pkcs8::EncodePublicKey;
    let spki = pk
        .to_public_key_der()
        .map_err(|e| CryptoError::BadRsaKey(what, e.to_string()))?;
    let key = lc::PublicEncryptingKey::from_der(spki.as_bytes())
        .map_err(|e| CryptoError::BadRsaKey(what, e.to_string()))
        .and_then(|k| {
            lc::OaepPublicEncryptingKey::new(k)
                .map_err(|e| CryptoError::BadRsaKey(what, e.to_string()))
        })?;
    let algorithm = match key_hash {
        HashAlg::Sha1 => &lc::OAEP_SHA1_MGF1SHA1,
        HashAlg::Sha256 => &lc::OAEP_SHA256_MGF1SHA256,
        HashAlg::Sha384 => &lc::OAEP_SHA384_MGF1SHA384,
        HashAlg::Sha512 => &lc::OAEP_SHA512_MGF1SHA512,
    };
    let mut out = vec![0u8; key.ciphertext_size()];
    let len = key
        .encrypt(algorithm, seed, &mut out, Some(label.as_bytes()))
        .map_err(|_| CryptoError::Oaep(format!("{what}: the seed does not fit the key")))?
        .len();
    out.truncate(len);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kdfa_is_deterministic_and_label_sensitive() {
        let a = kdfa(HashAlg::Sha256, b"key", "STORAGE", b"u", b"", 128);
        let b = kdfa(HashAlg::Sha256, b"key", "STORAGE", b"u", b"", 128);
        let c = kdfa(HashAlg::Sha256, b"key", "INTEGRITY", b"u", b"", 128);
        assert_eq!(a.len(), 16);
        assert_eq!(a, b);
        assert_ne!(a, c);
        // Output longer than one HMAC block takes a second counter value.
        let long = kdfa(HashAlg::Sha256, b"key", "STORAGE", b"u", b"", 512);
        assert_eq!(long.len(), 64);
        assert_ne!(&long[..32], &long[32..]);
    }

    #[test]
    fn kdfa_first_block_is_the_hmac_of_the_counter_block() {
        // Independent construction of block 1 from the spec's definition.
        let expect =
            HashAlg::Sha256.hmac(b"k", &[b"\x00\x00\x00\x01STORAGE\x00ctx\x00\x00\x00\x80"]);
        assert_eq!(
            &kdfa(HashAlg::Sha256, b"k", "STORAGE", b"ctx", b"", 128)[..],
            &expect[..16]
        );
    }

    #[test]
    fn cfb_roundtrip() {
        let key = [7u8; 16];
        let mut data = b"seventeen bytes!!".to_vec();
        aes_cfb_encrypt(&key, &mut data).unwrap();
        assert_ne!(&data, b"seventeen bytes!!");
        aes_cfb_decrypt(&key, &mut data).unwrap();
        assert_eq!(&data, b"seventeen bytes!!");
    }
}
