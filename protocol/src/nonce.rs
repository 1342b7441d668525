//! The operator's nonce: hex on the command line, 8 to 64 bytes (it goes
//! into TPM2_Certify's qualifyingData and TPM2_Quote's extraData, a
//! TPM2B_DATA of at most 64 bytes on every TPM). One parser for both binaries.

use thiserror::Error;

/// A nonce of 8 to 64 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nonce(Vec<u8>);

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum NonceError {
    #[error("not hex ({0}); give 16 to 128 hex digits, e.g. from `openssl rand -hex 16`")]
    NotHex(String),
    #[error("{0} bytes; use 8 to 64 bytes (16 to 128 hex digits)")]
    Length(usize),
}

impl Nonce {
    pub const MIN: usize = 8;
    pub const MAX: usize = 64;

    /// Parse hex (surrounding white space ignored).
    pub fn parse_hex(text: &str) -> Result<Nonce, NonceError> {
        let bytes = hex::decode(text.trim())
            .map_err(|e| NonceError::NotHex(e.to_string().to_lowercase()))?;
        Nonce::from_bytes(bytes)
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Result<Nonce, NonceError> {
        if (Self::MIN..=Self::MAX).contains(&bytes.len()) {
            Ok(Nonce(bytes))
        } else {
            Err(NonceError::Length(bytes.len()))
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_hex_of_8_to_64_bytes() {
        assert_eq!(
            Nonce::parse_hex("00112233445566"),
            Err(NonceError::Length(7))
        );
        assert!(Nonce::parse_hex("0011223344556677").is_ok());
        assert!(Nonce::parse_hex(" 0011223344556677\n").is_ok());
        assert!(Nonce::parse_hex(&"ab".repeat(64)).is_ok());
        assert_eq!(
            Nonce::parse_hex(&"ab".repeat(65)),
            Err(NonceError::Length(65))
        );
        assert!(matches!(
            Nonce::parse_hex("zz11223344556677"),
            Err(NonceError::NotHex(_))
        ));
        assert!(matches!(
            Nonce::parse_hex("abc"),
            Err(NonceError::NotHex(_))
        ));
    }
}
