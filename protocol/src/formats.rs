//! The tpm-byok files (BRIEF §4): CBOR maps with text keys, versioned.
//! TPM structures are kept as their TPM wire bytes, as tpm2-tools writes them.

use crate::error::FormatError;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use std::collections::BTreeMap;

pub const VERSION: u64 = 1;
pub const EVIDENCE_TYPE: &str = "tpm-byok/evidence";
pub const TRANSFER_TYPE: &str = "tpm-byok/transfer";
pub const RECEIPT_TYPE: &str = "tpm-byok/receipt";
pub const CHALLENGE_TYPE: &str = "tpm-byok/challenge";
pub const ACTIVATION_TYPE: &str = "tpm-byok/activation";

/// A signed TPM attestation: TPMS_ATTEST bytes and the TPMT_SIGNATURE over them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Signed {
    pub attest: ByteBuf,
    pub signature: ByteBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TpmInfo {
    /// TPM_PT_MANUFACTURER as four ASCII characters (e.g. "IBM").
    pub manufacturer: String,
    /// TPM_PT_VENDOR_STRING_1..4.
    pub vendor: String,
    /// TPM_PT_FIRMWARE_VERSION_1 << 32 | _2.
    pub firmware: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EkEvidence {
    /// TPM2B_PUBLIC.
    pub public: ByteBuf,
    /// DER X.509 EK certificate from NV.
    pub certificate: ByteBuf,
    /// Further certificates (DER) found on the TPM, if any.
    pub chain: Vec<ByteBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PublicOnly {
    /// TPM2B_PUBLIC.
    pub public: ByteBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct KekEvidence {
    /// TPM2B_PUBLIC.
    pub public: ByteBuf,
    /// TPM2_Certify of the KEK by the AK, qualifyingData = nonce.
    pub certify: Signed,
    /// For a PCR-bound KEK (`init --pcrs`): bank → PCR index → value its
    /// authPolicy was computed from. Not signed itself: the verifier
    /// recomputes the authPolicy (signed, in the KEK's Name) from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pcr_binding: Option<BTreeMap<String, BTreeMap<u32, ByteBuf>>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct QuoteEvidence {
    pub attest: ByteBuf,
    pub signature: ByteBuf,
    /// Bank name ("sha256") → PCR index → value.
    pub pcrs: BTreeMap<String, BTreeMap<u32, ByteBuf>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Evidence {
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u64,
    pub world: String,
    pub nonce: ByteBuf,
    pub tpm: TpmInfo,
    pub ek: EkEvidence,
    pub ak: PublicOnly,
    pub kek: KekEvidence,
    pub quote: QuoteEvidence,
    /// The world's compat KEK (an unrestricted RSA decryption key, a child of
    /// the KEK) with its TPM2_Certify by the AK, when the world has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compat_kek: Option<KekEvidence>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CredentialBlob {
    /// TPM2B_ID_OBJECT.
    pub id_object: ByteBuf,
    /// TPM2B_ENCRYPTED_SECRET.
    pub encrypted_secret: ByteBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ObjectBlob {
    /// TPM2B_PUBLIC of the key, written by the verifier.
    pub public: ByteBuf,
    /// TPM2B_PRIVATE duplication blob.
    pub duplicate: ByteBuf,
    /// TPM2B_ENCRYPTED_SECRET outer-wrapper seed.
    pub seed: ByteBuf,
    /// Inner wrapper algorithm: "aes128cfb".
    pub inner: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyInfo {
    pub alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// `wrap --key-pcrs`: the PCRs (e.g. "sha256:0,7") in the key's PolicyPCR
    /// authPolicy, so the agent knows which policy session to start. The
    /// values are in the authPolicy itself, which the TPM enforces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pcrs: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TransferPackage {
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u64,
    pub world: String,
    pub kek_name: ByteBuf,
    pub ak_name: ByteBuf,
    pub credential: CredentialBlob,
    pub object: ObjectBlob,
    pub key: KeyInfo,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Receipt {
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u64,
    pub world: String,
    pub nonce: ByteBuf,
    pub ak: PublicOnly,
    pub key: PublicOnly,
    pub certify: Signed,
}

/// A credential challenge for an AK (`byok-verifier challenge`): only the TPM
/// holding the EK and an object named `ak_name` can recover the secret. The
/// operator keeps this file; the host gets a copy.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Challenge {
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u64,
    pub world: String,
    pub ek_name: ByteBuf,
    pub ak_name: ByteBuf,
    pub credential: CredentialBlob,
    /// SHA-256("tpm-byok/activation\0" || secret).
    pub commitment: ByteBuf,
}

/// The host's answer (`byok-agent activate`): the secret the TPM released.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Activation {
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u64,
    pub world: String,
    pub ak_name: ByteBuf,
    pub secret: ByteBuf,
}

/// The commitment a challenge records for its secret.
pub fn activation_commitment(secret: &[u8]) -> Vec<u8> {
    let mut data = b"tpm-byok/activation\0".to_vec();
    data.extend_from_slice(secret);
    crate::hash::sha256(&data).to_vec()
}

/// A versioned CBOR document of the project.
pub trait Document: Serialize + DeserializeOwned {
    const TYPE: &'static str;

    fn to_cbor(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Serialising our own plain structs into a Vec cannot fail.
        if let Err(e) = ciborium::into_writer(self, &mut out) {
            unreachable!("CBOR encoding of {} failed: {e}", Self::TYPE);
        }
        out
    }

    /// The document's own "type" and "version" fields.
    fn header(&self) -> (&str, u64);

    /// Decode, refusing other document types and unknown versions before
    /// anything else: a document of another type or version gets that error
    /// even when its other fields would not decode. (The typed decode runs
    /// first, in one pass; only a failure pays for reading the header apart.)
    fn from_cbor(bytes: &[u8]) -> Result<Self, FormatError> {
        let mut cursor = std::io::Cursor::new(bytes);
        let typed: Result<Self, _> = ciborium::from_reader(&mut cursor);
        let doc = match typed {
            Ok(doc) => doc,
            Err(e) => {
                check_header(bytes, Self::TYPE)?;
                return Err(FormatError::Cbor(e.to_string()));
            }
        };
        let (kind, version) = doc.header();
        if kind != Self::TYPE {
            return Err(FormatError::WrongType {
                expected: Self::TYPE,
                found: kind.to_string(),
            });
        }
        if version != VERSION {
            return Err(FormatError::UnsupportedVersion {
                kind: Self::TYPE,
                found: version,
                supported: VERSION,
            });
        }
        if (cursor.position() as usize) != bytes.len() {
            return Err(FormatError::Cbor(
                "trailing bytes after the CBOR document".into(),
            ));
        }
        Ok(doc)
    }
}

/// The "type" and "version" of an undecodable document: an error naming them
/// when they are not `expected` and VERSION.
fn check_header(bytes: &[u8], expected: &'static str) -> Result<(), FormatError> {
    let value: ciborium::Value =
        ciborium::from_reader(bytes).map_err(|e| FormatError::Cbor(e.to_string()))?;
    let map = value
        .as_map()
        .ok_or_else(|| FormatError::Cbor("top level is not a map".into()))?;
    let field = |k: &str| {
        map.iter()
            .find(|(key, _)| key.as_text() == Some(k))
            .map(|(_, v)| v)
    };
    let kind = field("type")
        .and_then(|v| v.as_text())
        .ok_or_else(|| FormatError::Cbor("missing text field \"type\"".into()))?;
    if kind != expected {
        return Err(FormatError::WrongType {
            expected,
            found: kind.to_string(),
        });
    }
    let version = field("version")
        .and_then(|v| v.as_integer())
        .and_then(|i| u64::try_from(i).ok())
        .ok_or_else(|| FormatError::Cbor("missing unsigned field \"version\"".into()))?;
    if version != VERSION {
        return Err(FormatError::UnsupportedVersion {
            kind: expected,
            found: version,
            supported: VERSION,
        });
    }
    Ok(())
}

impl Document for Evidence {
    const TYPE: &'static str = EVIDENCE_TYPE;
    fn header(&self) -> (&str, u64) {
        (&self.kind, self.version)
    }
}
impl Document for TransferPackage {
    const TYPE: &'static str = TRANSFER_TYPE;
    fn header(&self) -> (&str, u64) {
        (&self.kind, self.version)
    }
}
impl Document for Receipt {
    const TYPE: &'static str = RECEIPT_TYPE;
    fn header(&self) -> (&str, u64) {
        (&self.kind, self.version)
    }
}
impl Document for Challenge {
    const TYPE: &'static str = CHALLENGE_TYPE;
    fn header(&self) -> (&str, u64) {
        (&self.kind, self.version)
    }
}
impl Document for Activation {
    const TYPE: &'static str = ACTIVATION_TYPE;
    fn header(&self) -> (&str, u64) {
        (&self.kind, self.version)
    }
}

/// The type field of any of our documents, for `inspect`.
pub fn document_type(bytes: &[u8]) -> Option<String> {
    let value: ciborium::Value = ciborium::from_reader(bytes).ok()?;
    value
        .as_map()?
        .iter()
        .find(|(k, _)| k.as_text() == Some("type"))
        .and_then(|(_, v)| v.as_text().map(str::to_string))
}
