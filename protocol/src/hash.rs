//! TPM hash algorithms (TPMI_ALG_HASH) and the digests computed with them.

use crate::tpm::alg;
use sha2::Digest as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HashAlg {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    pub fn from_tpm(id: u16) -> Option<HashAlg> {
        match id {
            alg::SHA1 => Some(HashAlg::Sha1),
            alg::SHA256 => Some(HashAlg::Sha256),
            alg::SHA384 => Some(HashAlg::Sha384),
            alg::SHA512 => Some(HashAlg::Sha512),
            _ => None,
        }
    }

    pub fn tpm_id(self) -> u16 {
        match self {
            HashAlg::Sha1 => alg::SHA1,
            HashAlg::Sha256 => alg::SHA256,
            HashAlg::Sha384 => alg::SHA384,
            HashAlg::Sha512 => alg::SHA512,
        }
    }

    pub fn size(self) -> usize {
        match self {
            HashAlg::Sha1 => 20,
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            HashAlg::Sha1 => "sha1",
            HashAlg::Sha256 => "sha256",
            HashAlg::Sha384 => "sha384",
            HashAlg::Sha512 => "sha512",
        }
    }

    /// "SHA-1", "SHA-256" … for messages.
    pub fn label(self) -> &'static str {
        match self {
            HashAlg::Sha1 => "SHA-1",
            HashAlg::Sha256 => "SHA-256",
            HashAlg::Sha384 => "SHA-384",
            HashAlg::Sha512 => "SHA-512",
        }
    }

    /// The bank or hash named as in "sha256:0,7", evidence maps and policy files.
    pub fn from_name(s: &str) -> Option<HashAlg> {
        match s {
            "sha1" => Some(HashAlg::Sha1),
            "sha256" => Some(HashAlg::Sha256),
            "sha384" => Some(HashAlg::Sha384),
            "sha512" => Some(HashAlg::Sha512),
            _ => None,
        }
    }

    /// Hash the concatenation of `parts`.
    pub fn digest(self, parts: &[&[u8]]) -> Vec<u8> {
        fn run<D: sha2::Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut h = D::new();
            for p in parts {
                h.update(p);
            }
            h.finalize().to_vec()
        }
        match self {
            HashAlg::Sha1 => run::<sha1::Sha1>(parts),
            HashAlg::Sha256 => run::<sha2::Sha256>(parts),
            HashAlg::Sha384 => run::<sha2::Sha384>(parts),
            HashAlg::Sha512 => run::<sha2::Sha512>(parts),
        }
    }

    /// HMAC over the concatenation of `parts`.
    pub fn hmac(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        use hmac::{Hmac, Mac};
        macro_rules! run {
            ($d:ty) => {{
                // HMAC accepts keys of any length; new_from_slice cannot fail.
                let mut m = match <Hmac<$d> as Mac>::new_from_slice(key) {
                    Ok(m) => m,
                    Err(_) => unreachable!("HMAC takes any key length"),
                };
                for p in parts {
                    m.update(p);
                }
                m.finalize().into_bytes().to_vec()
            }};
        }
        match self {
            HashAlg::Sha1 => run!(sha1::Sha1),
            HashAlg::Sha256 => run!(sha2::Sha256),
            HashAlg::Sha384 => run!(sha2::Sha384),
            HashAlg::Sha512 => run!(sha2::Sha512),
        }
    }
}

/// SHA-256 of one buffer (used for nonces and world bindings).
pub fn sha256(data: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(data).into()
}

/// Its name ("sha256"), as in "sha256:0,7" and error messages.
impl std::fmt::Display for HashAlg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A PCR bank or hash in a document or policy file: its name ("sha256"),
/// read once into the enum (an unknown name makes the file unreadable).
impl serde::Serialize for HashAlg {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for HashAlg {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<HashAlg, D::Error> {
        let name = String::deserialize(d)?;
        HashAlg::from_name(&name).ok_or_else(|| {
            serde::de::Error::custom(format_args!(
                "unknown PCR bank {:?} (use sha256, sha384, sha512 or sha1)",
                crate::text::inert(&name)
            ))
        })
    }
}
