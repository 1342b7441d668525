//! CKM_RSA_AES_KEY_WRAP (PKCS#11 v2.40 §2.1.21) and plain RSAES-OAEP, the
//! cloud BYOK wrapping formats (BRIEF §7): a fresh AES-256 key is RSA-OAEP
//! encrypted to the KEK (MGF1 with the same hash, empty label), the target key
//! is AES-KWP wrapped with it (RFC 5649, IV A65959A6), RSA block first.

use crate::error::CryptoError;
use rand::RngCore;
use rsa::traits::PublicKeyParts;
use zeroize::Zeroizing;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OaepHash {
    Sha1,
    Sha256,
}

impl OaepHash {
    fn padding(self) -> rsa::Oaep {
        match self {
            OaepHash::Sha1 => rsa::Oaep::new::<sha1::Sha1>(),
            OaepHash::Sha256 => rsa::Oaep::new::<sha2::Sha256>(),
        }
    }

    pub fn size(self) -> usize {
        match self {
            OaepHash::Sha1 => 20,
            OaepHash::Sha256 => 32,
        }
    }
}

/// Largest message RSA-OAEP can carry with this key and hash.
pub fn oaep_capacity(kek: &rsa::RsaPublicKey, hash: OaepHash) -> usize {
    kek.size().saturating_sub(2 * hash.size() + 2)
}

pub fn rsaes_oaep(
    kek: &rsa::RsaPublicKey,
    hash: OaepHash,
    message: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    kek.encrypt(&mut rand::rngs::OsRng, hash.padding(), message)
        .map_err(|e| CryptoError::Oaep(e.to_string()))
}

/// AES-256 key wrap with padding (RFC 5649).
pub fn kwp_wrap(kek: &[u8; 32], data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    aes_kw::KekAes256::new(kek.into())
        .wrap_with_padding_vec(data)
        .map_err(|e| CryptoError::Oaep(format!("AES-KWP: {e}")))
}

/// RFC 5649 unwrap; fails on any integrity or padding error.
pub fn kwp_unwrap(kek: &[u8], data: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    // RFC 5649 ciphertexts are at least two semiblocks. aes-kw 0.2.1 panics
    // (integer underflow) on a single semiblock; Wycheproof's KWP vectors found it.
    if data.len() < 16 {
        return Err(CryptoError::Oaep(
            "AES-KWP unwrap: ciphertext shorter than 16 bytes".into(),
        ));
    }
    let r = match kek.len() {
        16 => aes_kw::KekAes128::new(kek.into()).unwrap_with_padding_vec(data),
        24 => aes_kw::KekAes192::new(kek.into()).unwrap_with_padding_vec(data),
        32 => aes_kw::KekAes256::new(kek.into()).unwrap_with_padding_vec(data),
        n => {
            return Err(CryptoError::UnsupportedAlgorithm {
                what: "AES-KWP key length",
                alg: n as u16,
            })
        }
    };
    r.map(Zeroizing::new)
        .map_err(|e| CryptoError::Oaep(format!("AES-KWP unwrap: {e}")))
}

/// CKM_RSA_AES_KEY_WRAP: OAEP(KEK, ephemeral AES-256 key) || KWP(key, target).
pub fn rsa_aes_key_wrap(
    kek: &rsa::RsaPublicKey,
    hash: OaepHash,
    target: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let mut aes = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(&mut aes[..]);
    let mut out = rsaes_oaep(kek, hash, &aes[..])?;
    out.extend(kwp_wrap(&aes, target)?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn rfc5649_vectors() {
        // RFC 5649 §6, with the 192-bit KEK.
        let kek = h("5840df6e29b02af1 ab493b705bf16ea1 ae8338f4dcc176a8");
        let w20 = h("138bdeaa9b8fa7fc 61f97742e72248ee 5ae6ae5360d1ae6a 5f54f373fa543b6a");
        let k20 = h("c37b7e6492584340 bed1220780894115 5068f738");
        let w7 = h("afbeb0f07dfbf541 9200f2ccb50bb24f");
        let k7 = h("466f7250617369");
        assert_eq!(&kwp_unwrap(&kek, &w20).unwrap()[..], &k20[..]);
        assert_eq!(&kwp_unwrap(&kek, &w7).unwrap()[..], &k7[..]);
        let mut bad = w20.clone();
        bad[0] ^= 1;
        assert!(kwp_unwrap(&kek, &bad).is_err());
    }

    #[test]
    fn wycheproof_aes_kwp() {
        use wycheproof::keywrap::{TestName, TestSet};
        let set = TestSet::load(TestName::AesKeyWrapWithPadding).unwrap();
        let mut checked = 0;
        for group in set.test_groups {
            for t in group.tests {
                let got = kwp_unwrap(&t.key, &t.ct);
                if t.result.must_fail() {
                    assert!(got.is_err(), "tc {} must fail", t.tc_id);
                } else {
                    assert_eq!(&got.unwrap()[..], &t.pt[..], "tc {}", t.tc_id);
                    if t.key.len() == 32 {
                        let mut k = [0u8; 32];
                        k.copy_from_slice(&t.key);
                        assert_eq!(
                            kwp_wrap(&k, &t.pt).unwrap(),
                            t.ct.to_vec(),
                            "tc {} wrap",
                            t.tc_id
                        );
                    }
                }
                checked += 1;
            }
        }
        assert!(checked > 100);
    }

    #[test]
    fn wycheproof_rsa_oaep_decrypts_with_the_padding_we_encrypt_with() {
        use rsa::pkcs8::DecodePrivateKey;
        use wycheproof::rsa_oaep::{TestName, TestSet};
        for (name, hash) in [
            (TestName::Rsa2048Sha1Mgf1Sha1, OaepHash::Sha1),
            (TestName::Rsa3072Sha256Mgf1Sha256, OaepHash::Sha256),
            (TestName::Rsa4096Sha256Mgf1Sha256, OaepHash::Sha256),
        ] {
            let set = TestSet::load(name).unwrap();
            for group in set.test_groups {
                let key = rsa::RsaPrivateKey::from_pkcs8_der(&group.pkcs8).unwrap();
                for t in group.tests {
                    if !t.label.is_empty() {
                        continue; // our formats use the empty label
                    }
                    let got = key.decrypt(hash.padding(), &t.ct);
                    if t.result.must_fail() {
                        assert!(got.is_err(), "tc {}", t.tc_id);
                    } else {
                        assert_eq!(got.unwrap(), t.pt.to_vec(), "tc {}", t.tc_id);
                    }
                }
                // And what we encrypt decrypts with the vector's key.
                let pk = rsa::RsaPublicKey::from(&key);
                let ct = rsaes_oaep(&pk, hash, b"wrapped").unwrap();
                assert_eq!(key.decrypt(hash.padding(), &ct).unwrap(), b"wrapped");
            }
        }
    }
}
