//! TPMT_SIGNATURE parsing and verification of TPM signatures with a TPM public area.

use crate::error::WireError;
use crate::hash::HashAlg;
use crate::public::{PublicId, PublicParams, TpmtPublic};
use crate::tpm::{alg, curve};
use crate::wire::Reader;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TpmtSignature {
    RsaSsa { hash: u16, sig: Vec<u8> },
    RsaPss { hash: u16, sig: Vec<u8> },
    Ecdsa { hash: u16, r: Vec<u8>, s: Vec<u8> },
}

impl TpmtSignature {
    pub fn parse(bytes: &[u8]) -> Result<TpmtSignature, WireError> {
        let mut r = Reader::new("TPMT_SIGNATURE", bytes);
        let sig_alg = r.u16("sigAlg")?;
        let out = match sig_alg {
            alg::RSASSA | alg::RSAPSS => {
                let hash = r.u16("signature.hash")?;
                let sig = r.tpm2b("signature.sig", 512)?.to_vec();
                if sig_alg == alg::RSASSA {
                    TpmtSignature::RsaSsa { hash, sig }
                } else {
                    TpmtSignature::RsaPss { hash, sig }
                }
            }
            alg::ECDSA => {
                let hash = r.u16("signature.hash")?;
                let rr = r.tpm2b("signature.signatureR", 66)?.to_vec();
                let s = r.tpm2b("signature.signatureS", 66)?.to_vec();
                TpmtSignature::Ecdsa { hash, r: rr, s }
            }
            other => return Err(r.bad("sigAlg", other.into())),
        };
        r.finish()?;
        Ok(out)
    }

    pub fn hash_id(&self) -> u16 {
        match self {
            TpmtSignature::RsaSsa { hash, .. }
            | TpmtSignature::RsaPss { hash, .. }
            | TpmtSignature::Ecdsa { hash, .. } => *hash,
        }
    }

    pub fn scheme_name(&self) -> &'static str {
        match self {
            TpmtSignature::RsaSsa { .. } => "RSASSA-PKCS1-v1_5",
            TpmtSignature::RsaPss { .. } => "RSASSA-PSS",
            TpmtSignature::Ecdsa { .. } => "ECDSA",
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("signature hash {0:#06x} is not a supported hash")]
    UnknownHash(u16),
    #[error("{scheme} signature does not fit a {key} key")]
    SchemeKeyMismatch { scheme: &'static str, key: String },
    #[error("the signing key's public area is unusable: {0}")]
    BadKey(String),
    #[error("signature does not verify")]
    Invalid,
}

// Long on purpose: one branch per signature scheme a TPM emits (RSASSA,
// RSAPSS, ECDSA), each with its hash and key checks side by side.
/// Verify `sig` over `message` with the public key in `key`. Returns the
/// hash algorithm the signature used (the caller decides whether it is allowed).
///
/// RSA and same-size ECDSA go through `aws-lc-rs` (AWS-LC's assembly):
/// evidence verification is dominated by RSA public-key operations. Measured
/// per RSA-2048 verification on this project's machine: aws-lc-rs 15-18 µs
/// (15 with a parsed key reused), ring 0.17 21 µs (it rebuilds the Montgomery
/// constants on every call), crypto-bigint 81 µs, the `rsa` crate several
/// times slower still; see bench/verify.sh and docs/protocol.md.
pub fn verify(
    key: &TpmtPublic,
    message: &[u8],
    sig: &TpmtSignature,
) -> Result<HashAlg, SignatureError> {
    use aws_lc_rs::signature as rs;
    let hash =
        HashAlg::from_tpm(sig.hash_id()).ok_or(SignatureError::UnknownHash(sig.hash_id()))?;
    let ok = match (sig, &key.params, &key.unique) {
        (
            TpmtSignature::RsaSsa { sig: bytes, .. } | TpmtSignature::RsaPss { sig: bytes, .. },
            PublicParams::Rsa {
                exponent, key_bits, ..
            },
            PublicId::Rsa(n),
        ) => {
            if n.len() * 8 != usize::from(*key_bits) || *key_bits < 2048 {
                return Err(SignatureError::BadKey(format!(
                    "RSA modulus of {} bytes for RSA-{key_bits}",
                    n.len()
                )));
            }
            let e = if *exponent == 0 { 65537 } else { *exponent };
            let e = e.to_be_bytes();
            let e = &e[e.iter().position(|b| *b != 0).unwrap_or(3)..];
            let params: &rs::RsaParameters = match (sig_alg(sig) == alg::RSAPSS, hash) {
                (false, HashAlg::Sha1) => &rs::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
                (false, HashAlg::Sha256) => &rs::RSA_PKCS1_2048_8192_SHA256,
                (false, HashAlg::Sha384) => &rs::RSA_PKCS1_2048_8192_SHA384,
                (false, HashAlg::Sha512) => &rs::RSA_PKCS1_2048_8192_SHA512,
                (true, HashAlg::Sha1) => {
                    return Err(SignatureError::BadKey(
                        "RSA-PSS with SHA-1 is not supported".into(),
                    ))
                }
                (true, HashAlg::Sha256) => &rs::RSA_PSS_2048_8192_SHA256,
                (true, HashAlg::Sha384) => &rs::RSA_PSS_2048_8192_SHA384,
                (true, HashAlg::Sha512) => &rs::RSA_PSS_2048_8192_SHA512,
            };
            verify_rsa_cached(params, n, e, message, bytes)?
        }
        (
            TpmtSignature::Ecdsa { r, s, .. },
            PublicParams::Ecc { curve: c, .. },
            PublicId::Ecc { x, y },
        ) => {
            let ring_alg: Option<(&rs::EcdsaVerificationAlgorithm, usize)> = match (*c, hash) {
                (curve::NIST_P256, HashAlg::Sha256) => Some((&rs::ECDSA_P256_SHA256_FIXED, 32)),
                (curve::NIST_P384, HashAlg::Sha384) => Some((&rs::ECDSA_P384_SHA384_FIXED, 48)),
                _ => None,
            };
            match ring_alg {
                Some((alg, len)) => {
                    let point = sec1_point(*c, x, y)
                        .ok_or_else(|| SignatureError::BadKey(key.describe_key()))?;
                    let (Some(r), Some(s)) = (pad(r, len), pad(s, len)) else {
                        return Err(SignatureError::Invalid);
                    };
                    let mut fixed = r;
                    fixed.extend(s);
                    rs::UnparsedPublicKey::new(alg, &point)
                        .verify(message, &fixed)
                        .is_ok()
                }
                None => {
                    verify_ecdsa(*c, x, y, r, s, &hash.digest(&[message]))?;
                    true
                }
            }
        }
        _ => {
            return Err(SignatureError::SchemeKeyMismatch {
                scheme: sig.scheme_name(),
                key: key.describe_key(),
            })
        }
    };
    if ok {
        Ok(hash)
    } else {
        Err(SignatureError::Invalid)
    }
}

fn sig_alg(sig: &TpmtSignature) -> u16 {
    match sig {
        TpmtSignature::RsaSsa { .. } => alg::RSASSA,
        TpmtSignature::RsaPss { .. } => alg::RSAPSS,
        TpmtSignature::Ecdsa { .. } => alg::ECDSA,
    }
}

pub fn rsa_public(n: &[u8], exponent: u32) -> Result<rsa::RsaPublicKey, SignatureError> {
    let e = if exponent == 0 { 65537 } else { exponent };
    rsa::RsaPublicKey::new(rsa::BigUint::from_bytes_be(n), rsa::BigUint::from(e))
        .map_err(|e| SignatureError::BadKey(e.to_string()))
}

fn pad(v: &[u8], len: usize) -> Option<Vec<u8>> {
    if v.len() > len {
        return None;
    }
    let mut out = vec![0u8; len - v.len()];
    out.extend_from_slice(v);
    Some(out)
}

/// SEC1 uncompressed point from TPM coordinates, padded to the field size.
pub fn sec1_point(curve_id: u16, x: &[u8], y: &[u8]) -> Option<Vec<u8>> {
    let len = match curve_id {
        curve::NIST_P256 => 32,
        curve::NIST_P384 => 48,
        _ => return None,
    };
    let mut out = vec![0x04];
    out.extend(pad(x, len)?);
    out.extend(pad(y, len)?);
    Some(out)
}

fn verify_ecdsa(
    curve_id: u16,
    x: &[u8],
    y: &[u8],
    r: &[u8],
    s: &[u8],
    digest: &[u8],
) -> Result<(), SignatureError> {
    use ecdsa::signature::hazmat::PrehashVerifier;
    let point = sec1_point(curve_id, x, y)
        .ok_or_else(|| SignatureError::BadKey(format!("curve {curve_id:#06x}")))?;
    let bad = |e: ecdsa::Error| SignatureError::BadKey(e.to_string());
    match curve_id {
        curve::NIST_P256 => {
            let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).map_err(bad)?;
            let (r, s) = (
                pad(r, 32).ok_or(SignatureError::Invalid)?,
                pad(s, 32).ok_or(SignatureError::Invalid)?,
            );
            let sig = p256::ecdsa::Signature::from_scalars(
                *p256::FieldBytes::from_slice(&r),
                *p256::FieldBytes::from_slice(&s),
            )
            .map_err(|_| SignatureError::Invalid)?;
            vk.verify_prehash(digest, &sig)
                .map_err(|_| SignatureError::Invalid)
        }
        curve::NIST_P384 => {
            let vk = p384::ecdsa::VerifyingKey::from_sec1_bytes(&point).map_err(bad)?;
            let (r, s) = (
                pad(r, 48).ok_or(SignatureError::Invalid)?,
                pad(s, 48).ok_or(SignatureError::Invalid)?,
            );
            let sig = p384::ecdsa::Signature::from_scalars(
                *p384::FieldBytes::from_slice(&r),
                *p384::FieldBytes::from_slice(&s),
            )
            .map_err(|_| SignatureError::Invalid)?;
            vk.verify_prehash(digest, &sig)
                .map_err(|_| SignatureError::Invalid)
        }
        _ => Err(SignatureError::BadKey(format!("curve {curve_id:#06x}"))),
    }
}

/// Verify an RSASSA-PKCS1-v1_5 signature over `message` with `hash` by the
/// RSA key (n, e), both big-endian (leading zeros ignored): the path of TPM
/// signatures above, for the certificates of an EK's path too. Keys of
/// 2048-8192 bits.
pub fn verify_rsa_pkcs1(
    n: &[u8],
    e: &[u8],
    hash: HashAlg,
    message: &[u8],
    signature: &[u8],
) -> Result<(), SignatureError> {
    use aws_lc_rs::signature as rs;
    let n = &n[n.iter().position(|b| *b != 0).unwrap_or(n.len())..];
    let e = &e[e.iter().position(|b| *b != 0).unwrap_or(e.len())..];
    if !(2048..=8192).contains(&(n.len() * 8)) {
        return Err(SignatureError::BadKey(format!(
            "RSA modulus of {} bytes (2048-8192 bits are supported)",
            n.len()
        )));
    }
    let params: &'static rs::RsaParameters = match hash {
        HashAlg::Sha1 => &rs::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
        HashAlg::Sha256 => &rs::RSA_PKCS1_2048_8192_SHA256,
        HashAlg::Sha384 => &rs::RSA_PKCS1_2048_8192_SHA384,
        HashAlg::Sha512 => &rs::RSA_PKCS1_2048_8192_SHA512,
    };
    if verify_rsa_cached(params, n, e, message, signature)? {
        Ok(())
    } else {
        Err(SignatureError::Invalid)
    }
}

/// A parsed RSA key with what it was parsed from: (parameters id, n, e).
struct CachedRsaKey {
    params: usize,
    n: Vec<u8>,
    e: Vec<u8>,
    key: aws_lc_rs::signature::ParsedPublicKey,
}

/// The parsed keys one thread keeps: an evidence file's AK (certify and
/// quote) and the CA keys of its EK certificate's path.
const CACHED_RSA_KEYS: usize = 4;

thread_local! {
    /// The RSA keys last used on this thread, parsed, most recent first: an
    /// evidence file's two signatures (certify, quote) come from one AK, and
    /// a batch's EK certificates mostly from a few CAs, so parsing (and
    /// AWS-LC's Montgomery set-up) is done once per key, not per signature.
    static RSA_KEYS: std::cell::RefCell<Vec<CachedRsaKey>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Verify an RSA signature with (n, e), through the per-thread parsed keys.
fn verify_rsa_cached(
    params: &'static aws_lc_rs::signature::RsaParameters,
    n: &[u8],
    e: &[u8],
    message: &[u8],
    signature: &[u8],
) -> Result<bool, SignatureError> {
    let id = params as *const _ as usize;
    RSA_KEYS.with(|cell| {
        let mut keys = cell.borrow_mut();
        match keys
            .iter()
            .position(|c| c.params == id && c.n == n && c.e == e)
        {
            Some(i) => keys[..=i].rotate_right(1),
            None => {
                use der::Encode;
                let der = pkcs1::RsaPublicKey {
                    modulus: pkcs1::UintRef::new(n)
                        .map_err(|x| SignatureError::BadKey(x.to_string()))?,
                    public_exponent: pkcs1::UintRef::new(e)
                        .map_err(|x| SignatureError::BadKey(x.to_string()))?,
                }
                .to_der()
                .map_err(|x| SignatureError::BadKey(x.to_string()))?;
                let parsed = aws_lc_rs::signature::ParsedPublicKey::new(params, der)
                    .map_err(|x| SignatureError::BadKey(x.to_string()))?;
                keys.truncate(CACHED_RSA_KEYS - 1);
                keys.insert(
                    0,
                    CachedRsaKey {
                        params: id,
                        n: n.to_vec(),
                        e: e.to_vec(),
                        key: parsed,
                    },
                );
            }
        }
        Ok(keys[0].key.verify_sig(message, signature).is_ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{KeyAlg, TargetKey};
    use crate::public::{Scheme, SymDef};
    use sha2::Digest as _;

    #[test]
    fn ecdsa_with_a_hash_of_another_size_than_the_curve() {
        use ecdsa::signature::hazmat::PrehashSigner;
        let msg = b"attest";
        // P-256 signing a SHA-384 digest, P-384 a SHA-256 digest (the
        // RustCrypto path; same-size pairs go through aws-lc-rs).
        let cases: [(KeyAlg, u16, Vec<u8>); 2] = [
            (
                KeyAlg::P256,
                alg::SHA384,
                sha2::Sha384::digest(msg).to_vec(),
            ),
            (
                KeyAlg::P384,
                alg::SHA256,
                sha2::Sha256::digest(msg).to_vec(),
            ),
        ];
        for (key_alg, hash, digest) in cases {
            let key = TargetKey::generate(key_alg).unwrap();
            let (r, s) = match &key {
                TargetKey::P256(k) => {
                    let sig: p256::ecdsa::Signature = p256::ecdsa::SigningKey::from(k)
                        .sign_prehash(&digest)
                        .unwrap();
                    (sig.r().to_bytes().to_vec(), sig.s().to_bytes().to_vec())
                }
                TargetKey::P384(k) => {
                    let sig: p384::ecdsa::Signature = p384::ecdsa::SigningKey::from(k)
                        .sign_prehash(&digest)
                        .unwrap();
                    (sig.r().to_bytes().to_vec(), sig.s().to_bytes().to_vec())
                }
                TargetKey::Rsa(_) => unreachable!(),
            };
            let public = key.tpm_public();
            let good = TpmtSignature::Ecdsa {
                hash,
                r: r.clone(),
                s: s.clone(),
            };
            assert!(verify(&public, msg, &good).is_ok(), "{key_alg:?}");
            let mut bad_r = r.clone();
            bad_r[5] ^= 1;
            let bad = TpmtSignature::Ecdsa { hash, r: bad_r, s };
            assert!(verify(&public, msg, &bad).is_err(), "{key_alg:?}");
            assert!(verify(&public, b"other", &good).is_err(), "{key_alg:?}");
        }
    }

    fn rsa_public(key_bits: u16, n: Vec<u8>) -> TpmtPublic {
        TpmtPublic::build(
            alg::RSA,
            alg::SHA256,
            crate::tpm::attr::SIGN,
            Vec::new(),
            PublicParams::Rsa {
                symmetric: SymDef::NULL,
                scheme: Scheme::NULL,
                key_bits,
                exponent: 0,
            },
            PublicId::Rsa(n),
        )
    }

    #[test]
    fn rsa_keys_below_2048_bits_or_of_inconsistent_size_are_refused() {
        use rsa::traits::PublicKeyParts;
        let sig = TpmtSignature::RsaSsa {
            hash: alg::SHA256,
            sig: vec![1; 128],
        };
        let r = verify(&rsa_public(1024, vec![0xc5; 128]), b"m", &sig);
        assert!(matches!(r, Err(SignatureError::BadKey(_))), "{r:?}");
        let r = verify(&rsa_public(2048, vec![0xc5; 255]), b"m", &sig);
        assert!(matches!(r, Err(SignatureError::BadKey(_))), "{r:?}");
        // A genuine RSA-3072 signature verifies (sizes above 2048 are fine).
        let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 3072).unwrap();
        let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key.clone());
        use rsa::signature::{SignatureEncoding, Signer};
        let s = signer.sign(b"m").to_vec();
        let public = rsa_public(3072, key.n().to_bytes_be());
        let good = TpmtSignature::RsaSsa {
            hash: alg::SHA256,
            sig: s,
        };
        assert_eq!(verify(&public, b"m", &good).unwrap(), HashAlg::Sha256);
        assert!(matches!(
            verify(&public, b"n", &good),
            Err(SignatureError::Invalid)
        ));
    }
}
