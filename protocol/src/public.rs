//! TPMT_PUBLIC / TPM2B_PUBLIC: strict parsing, marshalling and object names.

use crate::error::WireError;
use crate::hash::HashAlg;
use crate::tpm::{alg, curve};
use crate::wire::{Reader, Writer};

/// TPMT_SYM_DEF_OBJECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SymDef {
    pub algorithm: u16,
    pub key_bits: u16,
    pub mode: u16,
}

impl SymDef {
    pub const NULL: SymDef = SymDef {
        algorithm: alg::NULL,
        key_bits: 0,
        mode: 0,
    };
    pub const AES_128_CFB: SymDef = SymDef {
        algorithm: alg::AES,
        key_bits: 128,
        mode: alg::CFB,
    };
}

/// An asymmetric or keyed-hash scheme selector with its details (hash, count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scheme {
    pub scheme: u16,
    pub hash: u16,
    /// Only for ECDAA (count) and XOR (kdf).
    pub extra: u16,
}

impl Scheme {
    pub const NULL: Scheme = Scheme {
        scheme: alg::NULL,
        hash: 0,
        extra: 0,
    };
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicParams {
    Rsa {
        symmetric: SymDef,
        scheme: Scheme,
        key_bits: u16,
        /// 0 means the default 65537.
        exponent: u32,
    },
    Ecc {
        symmetric: SymDef,
        scheme: Scheme,
        curve: u16,
        kdf: Scheme,
    },
    KeyedHash {
        scheme: Scheme,
    },
    SymCipher {
        symmetric: SymDef,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicId {
    Rsa(Vec<u8>),
    Ecc { x: Vec<u8>, y: Vec<u8> },
    Digest(Vec<u8>),
}

/// A parsed TPMT_PUBLIC, with the exact bytes it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmtPublic {
    pub object_type: u16,
    pub name_alg: u16,
    pub attributes: u32,
    pub auth_policy: Vec<u8>,
    pub params: PublicParams,
    pub unique: PublicId,
    /// The marshalled TPMT_PUBLIC (the bytes the name is computed over).
    raw: Vec<u8>,
    /// nameAlg || H(raw), computed once.
    name: Vec<u8>,
}

/// Stored as its TPM2B_PUBLIC bytes (a CBOR byte string), exactly the bytes
/// it was parsed from, and parsed once where it is read: the agent's state
/// records hold public areas typed.
impl serde::Serialize for TpmtPublic {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.to_tpm2b())
    }
}

impl<'de> serde::Deserialize<'de> for TpmtPublic {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<TpmtPublic, D::Error> {
        let bytes = serde_bytes::ByteBuf::deserialize(d)?;
        TpmtPublic::parse_tpm2b(&bytes).map_err(serde::de::Error::custom)
    }
}

fn compute_name(name_alg: u16, raw: &[u8]) -> Vec<u8> {
    // parse() and build() callers only admit known hash ids.
    let h = HashAlg::from_tpm(name_alg).unwrap_or(HashAlg::Sha256);
    let mut out = h.tpm_id().to_be_bytes().to_vec();
    out.extend(h.digest(&[raw]));
    out
}

const MAX_DIGEST: usize = 64;
const MAX_RSA_BYTES: usize = 512;
const MAX_ECC_BYTES: usize = 66;

fn read_sym_def(r: &mut Reader) -> Result<SymDef, WireError> {
    let algorithm = r.u16("symmetric.algorithm")?;
    if algorithm == alg::NULL {
        return Ok(SymDef::NULL);
    }
    if algorithm != alg::AES {
        return Err(r.bad("symmetric.algorithm", algorithm.into()));
    }
    let key_bits = r.u16("symmetric.keyBits")?;
    let mode = r.u16("symmetric.mode")?;
    if !matches!(key_bits, 128 | 192 | 256) {
        return Err(r.bad("symmetric.keyBits", key_bits.into()));
    }
    if mode != alg::CFB {
        return Err(r.bad("symmetric.mode", mode.into()));
    }
    Ok(SymDef {
        algorithm,
        key_bits,
        mode,
    })
}

fn write_sym_def(w: &mut Writer, s: &SymDef) {
    w.u16(s.algorithm);
    if s.algorithm != alg::NULL {
        w.u16(s.key_bits).u16(s.mode);
    }
}

fn read_hash_id(r: &mut Reader, field: &'static str) -> Result<u16, WireError> {
    let h = r.u16(field)?;
    if HashAlg::from_tpm(h).is_none() {
        return Err(r.bad(field, h.into()));
    }
    Ok(h)
}

/// TPMT_RSA_SCHEME / TPMT_ECC_SCHEME / TPMT_KDF_SCHEME: a selector, then the
/// details the selector calls for.
fn read_scheme(r: &mut Reader, field: &'static str, allowed: &[u16]) -> Result<Scheme, WireError> {
    let scheme = r.u16(field)?;
    if !allowed.contains(&scheme) {
        return Err(r.bad(field, scheme.into()));
    }
    match scheme {
        alg::NULL | alg::RSAES => Ok(Scheme {
            scheme,
            hash: 0,
            extra: 0,
        }),
        alg::ECDAA => {
            let hash = read_hash_id(r, "scheme.hashAlg")?;
            let extra = r.u16("scheme.count")?;
            Ok(Scheme {
                scheme,
                hash,
                extra,
            })
        }
        alg::XOR => {
            let hash = read_hash_id(r, "scheme.hashAlg")?;
            let extra = r.u16("scheme.kdf")?;
            Ok(Scheme {
                scheme,
                hash,
                extra,
            })
        }
        _ => {
            let hash = read_hash_id(r, "scheme.hashAlg")?;
            Ok(Scheme {
                scheme,
                hash,
                extra: 0,
            })
        }
    }
}

fn write_scheme(w: &mut Writer, s: &Scheme) {
    w.u16(s.scheme);
    match s.scheme {
        alg::NULL | alg::RSAES => {}
        alg::ECDAA | alg::XOR => {
            w.u16(s.hash).u16(s.extra);
        }
        _ => {
            w.u16(s.hash);
        }
    }
}

const RSA_SCHEMES: &[u16] = &[alg::NULL, alg::RSASSA, alg::RSAPSS, alg::RSAES, alg::OAEP];
const ECC_SCHEMES: &[u16] = &[
    alg::NULL,
    alg::ECDSA,
    alg::ECDH,
    alg::ECDAA,
    alg::SM2,
    alg::ECSCHNORR,
];
const KDF_SCHEMES: &[u16] = &[
    alg::NULL,
    alg::MGF1,
    alg::KDF1_SP800_56A,
    alg::KDF2,
    alg::KDF1_SP800_108,
];
const KEYEDHASH_SCHEMES: &[u16] = &[alg::NULL, alg::HMAC, alg::XOR];

impl TpmtPublic {
    /// Parse a TPMT_PUBLIC that spans exactly `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<TpmtPublic, WireError> {
        let mut r = Reader::new("TPMT_PUBLIC", bytes);
        let object_type = r.u16("type")?;
        let name_alg = read_hash_id(&mut r, "nameAlg")?;
        let attributes = r.u32("objectAttributes")?;
        let auth_policy = r.tpm2b("authPolicy", MAX_DIGEST)?.to_vec();
        let (params, unique) = match object_type {
            alg::RSA => {
                let symmetric = read_sym_def(&mut r)?;
                let scheme = read_scheme(&mut r, "parameters.scheme", RSA_SCHEMES)?;
                let key_bits = r.u16("parameters.keyBits")?;
                if !matches!(key_bits, 1024 | 2048 | 3072 | 4096) {
                    return Err(r.bad("parameters.keyBits", key_bits.into()));
                }
                let exponent = r.u32("parameters.exponent")?;
                let n = r.tpm2b("unique.rsa", MAX_RSA_BYTES)?.to_vec();
                (
                    PublicParams::Rsa {
                        symmetric,
                        scheme,
                        key_bits,
                        exponent,
                    },
                    PublicId::Rsa(n),
                )
            }
            alg::ECC => {
                let symmetric = read_sym_def(&mut r)?;
                let scheme = read_scheme(&mut r, "parameters.scheme", ECC_SCHEMES)?;
                let curve_id = r.u16("parameters.curveID")?;
                if !matches!(
                    curve_id,
                    curve::NIST_P256 | curve::NIST_P384 | curve::NIST_P521
                ) {
                    return Err(r.bad("parameters.curveID", curve_id.into()));
                }
                let kdf = read_scheme(&mut r, "parameters.kdf", KDF_SCHEMES)?;
                let x = r.tpm2b("unique.ecc.x", MAX_ECC_BYTES)?.to_vec();
                let y = r.tpm2b("unique.ecc.y", MAX_ECC_BYTES)?.to_vec();
                (
                    PublicParams::Ecc {
                        symmetric,
                        scheme,
                        curve: curve_id,
                        kdf,
                    },
                    PublicId::Ecc { x, y },
                )
            }
            alg::KEYEDHASH => {
                let scheme = read_scheme(&mut r, "parameters.scheme", KEYEDHASH_SCHEMES)?;
                let d = r.tpm2b("unique.keyedHash", MAX_DIGEST)?.to_vec();
                (PublicParams::KeyedHash { scheme }, PublicId::Digest(d))
            }
            alg::SYMCIPHER => {
                let symmetric = read_sym_def(&mut r)?;
                let d = r.tpm2b("unique.sym", MAX_DIGEST)?.to_vec();
                (PublicParams::SymCipher { symmetric }, PublicId::Digest(d))
            }
            other => return Err(r.bad("type", other.into())),
        };
        r.finish()?;
        Ok(TpmtPublic {
            object_type,
            name_alg,
            attributes,
            auth_policy,
            params,
            unique,
            raw: bytes.to_vec(),
            name: compute_name(name_alg, bytes),
        })
    }

    /// Parse a TPM2B_PUBLIC (size-prefixed TPMT_PUBLIC) that spans exactly `bytes`.
    pub fn parse_tpm2b(bytes: &[u8]) -> Result<TpmtPublic, WireError> {
        let inner = crate::wire::unwrap_tpm2b("TPM2B_PUBLIC", bytes)?;
        TpmtPublic::parse(inner)
    }

    /// Build a public area from its fields (marshalled now, so `raw` is canonical).
    pub fn build(
        object_type: u16,
        name_alg: u16,
        attributes: u32,
        auth_policy: Vec<u8>,
        params: PublicParams,
        unique: PublicId,
    ) -> TpmtPublic {
        let mut w = Writer::new();
        w.u16(object_type)
            .u16(name_alg)
            .u32(attributes)
            .tpm2b(&auth_policy);
        match &params {
            PublicParams::Rsa {
                symmetric,
                scheme,
                key_bits,
                exponent,
            } => {
                write_sym_def(&mut w, symmetric);
                write_scheme(&mut w, scheme);
                w.u16(*key_bits).u32(*exponent);
            }
            PublicParams::Ecc {
                symmetric,
                scheme,
                curve,
                kdf,
            } => {
                write_sym_def(&mut w, symmetric);
                write_scheme(&mut w, scheme);
                w.u16(*curve);
                write_scheme(&mut w, kdf);
            }
            PublicParams::KeyedHash { scheme } => write_scheme(&mut w, scheme),
            PublicParams::SymCipher { symmetric } => write_sym_def(&mut w, symmetric),
        }
        match &unique {
            PublicId::Rsa(n) => {
                w.tpm2b(n);
            }
            PublicId::Ecc { x, y } => {
                w.tpm2b(x).tpm2b(y);
            }
            PublicId::Digest(d) => {
                w.tpm2b(d);
            }
        }
        TpmtPublic {
            object_type,
            name_alg,
            attributes,
            auth_policy,
            params,
            unique,
            name: compute_name(name_alg, w.as_slice()),
            raw: w.into_vec(),
        }
    }

    /// The marshalled TPMT_PUBLIC.
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }

    /// The marshalled TPM2B_PUBLIC, as tpm2-tools writes `.pub` files.
    pub fn to_tpm2b(&self) -> Vec<u8> {
        crate::wire::tpm2b(&self.raw)
    }

    pub fn name_hash(&self) -> HashAlg {
        // parse() and build() callers only admit known hash ids.
        HashAlg::from_tpm(self.name_alg).unwrap_or(HashAlg::Sha256)
    }

    /// The object's Name: nameAlg || H_nameAlg(TPMT_PUBLIC).
    pub fn name(&self) -> Vec<u8> {
        self.name.clone()
    }

    pub fn has(&self, attr: u32) -> bool {
        self.attributes & attr == attr
    }

    pub fn symmetric(&self) -> SymDef {
        match &self.params {
            PublicParams::Rsa { symmetric, .. }
            | PublicParams::Ecc { symmetric, .. }
            | PublicParams::SymCipher { symmetric } => *symmetric,
            PublicParams::KeyedHash { .. } => SymDef::NULL,
        }
    }

    pub fn scheme(&self) -> Scheme {
        match &self.params {
            PublicParams::Rsa { scheme, .. }
            | PublicParams::Ecc { scheme, .. }
            | PublicParams::KeyedHash { scheme } => *scheme,
            PublicParams::SymCipher { .. } => Scheme::NULL,
        }
    }

    /// A short description such as "RSA-2048" or "ECC NIST P-256".
    pub fn describe_key(&self) -> String {
        match &self.params {
            PublicParams::Rsa { key_bits, .. } => format!("RSA-{key_bits}"),
            PublicParams::Ecc { curve: c, .. } => match *c {
                curve::NIST_P256 => "ECC NIST P-256".into(),
                curve::NIST_P384 => "ECC NIST P-384".into(),
                curve::NIST_P521 => "ECC NIST P-521".into(),
                other => format!("ECC curve {other:#06x}"),
            },
            PublicParams::KeyedHash { .. } => "keyed hash".into(),
            PublicParams::SymCipher { symmetric } => format!("AES-{}", symmetric.key_bits),
        }
    }
}

/// Qualified name of an object: nameAlg || H(QN(parent) || Name(object)); for
/// a primary the parent's qualified name is its hierarchy handle.
pub fn qualified_name(parent_qn: &[u8], name: &[u8]) -> Option<Vec<u8>> {
    if name.len() < 2 {
        return None;
    }
    let h = HashAlg::from_tpm(u16::from_be_bytes([name[0], name[1]]))?;
    let mut out = name[..2].to_vec();
    out.extend(h.digest(&[parent_qn, name]));
    Some(out)
}

/// Qualified name of a primary object in `hierarchy` (a TPM_RH_* handle).
pub fn primary_qualified_name(hierarchy: u32, name: &[u8]) -> Option<Vec<u8>> {
    qualified_name(&hierarchy.to_be_bytes(), name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tpm::attr;

    fn sample() -> TpmtPublic {
        TpmtPublic::build(
            alg::RSA,
            alg::SHA256,
            attr::FIXED_TPM | attr::RESTRICTED | attr::DECRYPT,
            vec![],
            PublicParams::Rsa {
                symmetric: SymDef::AES_128_CFB,
                scheme: Scheme::NULL,
                key_bits: 2048,
                exponent: 0,
            },
            PublicId::Rsa(vec![0xab; 256]),
        )
    }

    #[test]
    fn roundtrip_and_strictness() {
        let p = sample();
        let q = TpmtPublic::parse(p.as_bytes()).unwrap();
        assert_eq!(p, q);
        let b = p.to_tpm2b();
        assert_eq!(TpmtPublic::parse_tpm2b(&b).unwrap(), p);
        let mut extended = p.as_bytes().to_vec();
        extended.push(0);
        assert!(matches!(
            TpmtPublic::parse(&extended),
            Err(WireError::TrailingBytes { .. })
        ));
        for cut in 0..p.as_bytes().len() {
            assert!(
                TpmtPublic::parse(&p.as_bytes()[..cut]).is_err(),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn name_is_alg_then_digest() {
        let p = sample();
        let n = p.name();
        assert_eq!(&n[..2], &[0x00, 0x0b]);
        assert_eq!(&n[2..], &crate::hash::sha256(p.as_bytes())[..]);
    }
}
