//! The Azure Key Vault `.byok` document (BRIEF §7): a JSON object whose
//! header names the KEK (`kid`) and the wrapping (`enc`), and whose
//! ciphertext is base64url(RSA-OAEP(KEK, AES key) || AES-KWP(AES key, key)).
//! The verifier writes it, the agent reads it (for a tpm-byok host's compat
//! KEK): one definition for both.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// `header.enc` of a `.byok` file: the OAEP hash of the RSA block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ByokWrapping {
    /// RSA-OAEP with SHA-1 and MGF1-SHA-1 (what Azure uses).
    #[serde(rename = "CKM_RSA_AES_KEY_WRAP")]
    CkmRsaAesKeyWrap,
    /// RSA-OAEP with SHA-256 and MGF1-SHA-256.
    #[serde(rename = "RSA_AES_KEY_WRAP_256")]
    RsaAesKeyWrap256,
}

impl ByokWrapping {
    pub fn name(self) -> &'static str {
        match self {
            ByokWrapping::CkmRsaAesKeyWrap => "CKM_RSA_AES_KEY_WRAP",
            ByokWrapping::RsaAesKeyWrap256 => "RSA_AES_KEY_WRAP_256",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByokHeader {
    /// The KEK's key id (for a tpm-byok compat KEK: `tpm-byok:WORLD:NAME`).
    pub kid: String,
    /// Always "dir".
    pub alg: String,
    pub enc: ByokWrapping,
}

/// A `.byok` document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByokFile {
    pub schema_version: String,
    pub header: ByokHeader,
    /// base64url (no padding) of RSA block || AES-KWP.
    pub ciphertext: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<String>,
}

#[derive(Debug, Error)]
pub enum ByokError {
    #[error("not a .byok document: {0}")]
    Json(String),
    #[error("header \"alg\" is {0:?}, not \"dir\"")]
    Alg(String),
    #[error("ciphertext is not base64url: {0}")]
    Base64(String),
}

impl ByokFile {
    /// A document for `kid` with `ciphertext` (the raw bytes).
    pub fn new(kid: &str, enc: ByokWrapping, ciphertext: &[u8], generator: String) -> ByokFile {
        ByokFile {
            schema_version: "1.0.0".into(),
            header: ByokHeader {
                kid: kid.into(),
                alg: "dir".into(),
                enc,
            },
            ciphertext: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ciphertext),
            generator: Some(generator),
        }
    }

    pub fn from_json(bytes: &[u8]) -> Result<ByokFile, ByokError> {
        let doc: ByokFile =
            serde_json::from_slice(bytes).map_err(|e| ByokError::Json(e.to_string()))?;
        if doc.header.alg != "dir" {
            return Err(ByokError::Alg(doc.header.alg));
        }
        Ok(doc)
    }

    pub fn to_json(&self) -> Vec<u8> {
        // A struct of strings always serialises.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// The ciphertext's bytes (padding tolerated, as some tools write it).
    pub fn ciphertext_bytes(&self) -> Result<Vec<u8>, ByokError> {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(self.ciphertext.trim_end_matches('='))
            .map_err(|e| ByokError::Base64(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let f = ByokFile::new(
            "kid-1",
            ByokWrapping::CkmRsaAesKeyWrap,
            &[1, 2, 3],
            "t".into(),
        );
        let json = f.to_json();
        let text = String::from_utf8(json.clone()).unwrap();
        assert!(text.contains("\"enc\": \"CKM_RSA_AES_KEY_WRAP\""));
        assert!(text.contains("\"alg\": \"dir\""));
        let back = ByokFile::from_json(&json).unwrap();
        assert_eq!(back, f);
        assert_eq!(back.ciphertext_bytes().unwrap(), vec![1, 2, 3]);
        let other = text.replace("\"dir\"", "\"RSA-OAEP\"");
        assert!(matches!(
            ByokFile::from_json(other.as_bytes()),
            Err(ByokError::Alg(_))
        ));
        let other = text.replace("CKM_RSA_AES_KEY_WRAP", "AES");
        assert!(matches!(
            ByokFile::from_json(other.as_bytes()),
            Err(ByokError::Json(_))
        ));
        assert!(ByokFile::from_json(b"{}").is_err());
    }
}
