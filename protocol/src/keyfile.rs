//! The TPM 2.0 key file ("-----BEGIN TSS2 PRIVATE KEY-----"): the ASN.1
//! format of draft-bottomley-tpm2-keys that OpenSSL's tpm2 provider,
//! tpm2-tss-engine, tpm2_encodeobject and the Linux kernel read. It holds the
//! key's public area, its TPM-encrypted private blob and the parent's handle:
//! nothing in it is usable without that TPM.
//!
//! ```text
//! TPMKey ::= SEQUENCE {
//!     type        OBJECT IDENTIFIER,        -- id-loadablekey 2.23.133.10.1.3
//!     emptyAuth   [0] EXPLICIT BOOLEAN OPTIONAL,
//!     policy      [1] EXPLICIT SEQUENCE OF TPMPolicy OPTIONAL,
//!     secret      [2] EXPLICIT OCTET STRING OPTIONAL,
//!     authPolicy  [3] EXPLICIT SEQUENCE OF TPMAuthPolicy OPTIONAL,
//!     description [4] EXPLICIT UTF8String OPTIONAL,
//!     rsaParent   [5] EXPLICIT BOOLEAN OPTIONAL,
//!     parent      INTEGER,
//!     pubkey      OCTET STRING,             -- TPM2B_PUBLIC
//!     privkey     OCTET STRING }            -- TPM2B_PRIVATE
//! ```
//! tpm-byok writes loadable keys with emptyAuth and a persistent parent, and
//! no description: OpenSSL's tpm2 provider 1.1 (Debian 12) refuses a file
//! that has one. It reads back what it writes and refuses other fields.

use der::asn1::{ObjectIdentifier, OctetString};
use der::{Decode, Encode, Sequence};

pub const PEM_LABEL: &str = "TSS2 PRIVATE KEY";
pub const ID_LOADABLE_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.10.1.3");

#[derive(Sequence)]
struct TpmKeyAsn1 {
    key_type: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    empty_auth: Option<bool>,
    parent: u32,
    pubkey: OctetString,
    privkey: OctetString,
}

/// A loadable TPM key file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmKeyFile {
    pub empty_auth: bool,
    /// The parent's handle (a persistent handle, e.g. the world's KEK).
    pub parent: u32,
    /// TPM2B_PUBLIC.
    pub public: Vec<u8>,
    /// TPM2B_PRIVATE.
    pub private: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("not a TSS2 PRIVATE KEY PEM file: {0}")]
    Pem(String),
    #[error("TSS2 PRIVATE KEY: {0}")]
    Asn1(String),
    #[error("TSS2 PRIVATE KEY: type {0} is not a loadable key (2.23.133.10.1.3)")]
    NotLoadable(String),
}

impl TpmKeyFile {
    pub fn to_der(&self) -> Result<Vec<u8>, KeyFileError> {
        let asn = TpmKeyAsn1 {
            key_type: ID_LOADABLE_KEY,
            empty_auth: self.empty_auth.then_some(true),
            parent: self.parent,
            pubkey: OctetString::new(self.public.clone())
                .map_err(|e| KeyFileError::Asn1(e.to_string()))?,
            privkey: OctetString::new(self.private.clone())
                .map_err(|e| KeyFileError::Asn1(e.to_string()))?,
        };
        asn.to_der().map_err(|e| KeyFileError::Asn1(e.to_string()))
    }

    pub fn to_pem(&self) -> Result<String, KeyFileError> {
        der::pem::encode_string(PEM_LABEL, der::pem::LineEnding::LF, &self.to_der()?)
            .map_err(|e| KeyFileError::Asn1(e.to_string()))
    }

    /// Strict DER decoding (no trailing bytes).
    pub fn from_der(bytes: &[u8]) -> Result<TpmKeyFile, KeyFileError> {
        let asn = TpmKeyAsn1::from_der(bytes).map_err(|e| KeyFileError::Asn1(e.to_string()))?;
        if asn.key_type != ID_LOADABLE_KEY {
            return Err(KeyFileError::NotLoadable(asn.key_type.to_string()));
        }
        Ok(TpmKeyFile {
            empty_auth: asn.empty_auth.unwrap_or(false),
            parent: asn.parent,
            public: asn.pubkey.as_bytes().to_vec(),
            private: asn.privkey.as_bytes().to_vec(),
        })
    }

    pub fn from_pem(text: &str) -> Result<TpmKeyFile, KeyFileError> {
        let (label, der) =
            der::pem::decode_vec(text.as_bytes()).map_err(|e| KeyFileError::Pem(e.to_string()))?;
        if label != PEM_LABEL {
            return Err(KeyFileError::Pem(format!("label {label:?}")));
        }
        Self::from_der(&der)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_parent_encoding() {
        let k = TpmKeyFile {
            empty_auth: true,
            parent: 0x8100_0100,
            public: vec![0, 2, 0xaa, 0xbb],
            private: vec![0, 1, 0xcc],
        };
        let der = k.to_der().unwrap();
        // INTEGER 0x81000100 needs a leading zero byte to stay positive.
        assert!(der
            .windows(7)
            .any(|w| w == [0x02, 0x05, 0x00, 0x81, 0x00, 0x01, 0x00]));
        assert_eq!(TpmKeyFile::from_der(&der).unwrap(), k);
        assert_eq!(TpmKeyFile::from_pem(&k.to_pem().unwrap()).unwrap(), k);
        let mut extended = der.clone();
        extended.push(0);
        assert!(TpmKeyFile::from_der(&extended).is_err());
        for cut in 0..der.len() {
            assert!(TpmKeyFile::from_der(&der[..cut]).is_err());
        }
    }
}
