//! The tpm-byok files (BRIEF §4): CBOR maps with text keys, versioned.
//! TPM structures are kept as their TPM wire bytes, as tpm2-tools writes them.

use crate::error::FormatError;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use std::collections::BTreeMap;

/// The most EK chain certificates an evidence file carries (each one the
/// verifier's path builder tries may cost a signature check).
pub const MAX_EK_CHAIN: usize = 8;

pub const VERSION: u64 = 1;
pub const EVIDENCE_TYPE: &str = "tpm-byok/evidence";
pub const TRANSFER_TYPE: &str = "tpm-byok/transfer";
pub const RECEIPT_TYPE: &str = "tpm-byok/receipt";
pub const CHALLENGE_TYPE: &str = "tpm-byok/challenge";
pub const ACTIVATION_TYPE: &str = "tpm-byok/activation";
pub const HOST_TYPE: &str = "tpm-byok/host";

/// One mebibyte: the default size cap of an evidence file (docs/formats.md).
pub const MIB: usize = 1 << 20;

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
    /// Further certificates (DER): the TCG NV chain range
    /// (0x01C00100..0x01C001FF) and any given with `evidence --ek-cert`;
    /// at most [`MAX_EK_CHAIN`].
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
    pub pcr_binding: Option<PcrBinding>,
}

/// A KEK's PCR binding as evidence carries it: one bank, PCR index → the
/// value the KEK's authPolicy was computed from. The agent writes it with
/// [`pcr_binding`] and the verifier reads it with [`read_pcr_binding`].
pub type PcrBinding = BTreeMap<crate::hash::HashAlg, BTreeMap<u32, ByteBuf>>;

/// The binding of a KEK made for `spec` with `values` (one per PCR of
/// `spec`, in its order); None when the counts differ.
pub fn pcr_binding(spec: &crate::policy::PcrSpec, values: &[ByteBuf]) -> Option<PcrBinding> {
    if spec.pcrs.len() != values.len() {
        return None;
    }
    let bank = spec
        .pcrs
        .iter()
        .copied()
        .zip(values.iter().cloned())
        .collect();
    Some([(spec.bank, bank)].into_iter().collect())
}

/// A binding read back as the PCR selection and its values: exactly one
/// bank, PCR indices 0-23 (at least one), each value the bank's digest size.
pub fn read_pcr_binding(
    binding: &PcrBinding,
) -> Result<(crate::policy::PcrSpec, Vec<Vec<u8>>), String> {
    let mut banks = binding.iter();
    let (Some((&bank, values)), None) = (banks.next(), banks.next()) else {
        return Err("exactly one PCR bank".into());
    };
    let pcrs: Vec<u32> = values.keys().copied().collect();
    if pcrs.is_empty() || pcrs.iter().any(|i| *i > 23) {
        return Err("PCR indices 0-23, at least one".into());
    }
    if values.values().any(|v| v.len() != bank.size()) {
        return Err(format!("{bank} values have {} bytes", bank.size()));
    }
    let values = values.values().map(|v| v.to_vec()).collect();
    Ok((crate::policy::PcrSpec { bank, pcrs }, values))
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct QuoteEvidence {
    pub attest: ByteBuf,
    pub signature: ByteBuf,
    /// Bank (its name on disk: "sha256") → PCR index → value.
    pub pcrs: BTreeMap<crate::hash::HashAlg, BTreeMap<u32, ByteBuf>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Evidence {
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u64,
    pub world: crate::world::WorldId,
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

/// The inner wrapper of a package's duplication blob; its key is the
/// credential's secret. One kind exists.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum InnerWrap {
    /// AES-128-CFB (TPM2_Import's symmetricAlg), written "aes128cfb".
    #[serde(rename = "aes128cfb")]
    Aes128Cfb,
}

/// Where a key the agent keeps came from (its state files: "imported",
/// "imported (.byok)", "generated", "sealed").
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum KeyOrigin {
    /// A transfer package: TPM2_Import of a key wrapped by `byok-verifier wrap`.
    #[serde(rename = "imported")]
    Imported,
    /// A `.byok` file for the compat KEK.
    #[serde(rename = "imported (.byok)")]
    ImportedByok,
    /// Generated inside the TPM (`key create`).
    #[serde(rename = "generated")]
    Generated,
    /// Sealed data (`seal`).
    #[serde(rename = "sealed")]
    Sealed,
}

impl KeyOrigin {
    pub fn name(self) -> &'static str {
        match self {
            KeyOrigin::Imported => "imported",
            KeyOrigin::ImportedByok => "imported (.byok)",
            KeyOrigin::Generated => "generated",
            KeyOrigin::Sealed => "sealed",
        }
    }
}

impl std::fmt::Display for KeyOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ObjectBlob {
    /// TPM2B_PUBLIC of the key, written by the verifier.
    pub public: ByteBuf,
    /// TPM2B_PRIVATE duplication blob.
    pub duplicate: ByteBuf,
    /// TPM2B_ENCRYPTED_SECRET outer-wrapper seed.
    pub seed: ByteBuf,
    /// Inner wrapper algorithm.
    pub inner: InnerWrap,
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
    pub pcrs: Option<crate::policy::PcrSpec>,
    /// The PCR values (index → digest, in the bank of `pcrs`) the authPolicy
    /// was computed from: the agent and `check-receipt` recompute the
    /// authPolicy from `pcrs` and these to prove it is exactly that PolicyPCR
    /// (a policy that can never authorise TPM2_Duplicate), nothing else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pcr_values: Option<BTreeMap<u32, ByteBuf>>,
}

impl KeyInfo {
    /// The key info of a package, with its PolicyPCR binding (the PCRs and
    /// the values, in selection order) when it has one.
    pub fn new(
        alg: String,
        label: Option<String>,
        pcr_binding: Option<(&crate::policy::PcrSpec, &[Vec<u8>])>,
    ) -> KeyInfo {
        KeyInfo {
            alg,
            label,
            pcrs: pcr_binding.map(|(spec, _)| spec.clone()),
            pcr_values: pcr_binding.map(|(spec, values)| {
                spec.pcrs
                    .iter()
                    .copied()
                    .zip(values.iter().map(|v| ByteBuf::from(v.clone())))
                    .collect()
            }),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TransferPackage {
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u64,
    pub world: crate::world::WorldId,
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
    pub world: crate::world::WorldId,
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
    pub world: crate::world::WorldId,
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
    pub world: crate::world::WorldId,
    pub ak_name: ByteBuf,
    pub secret: ByteBuf,
}

/// A host enrolled in the operator's registry (`byok-verifier enroll`): its
/// EK, and per world the AK that a credential activation proved to live in
/// that EK's TPM. One file per host, `REGISTRY/<host>.cbor`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostRecord {
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u64,
    /// The operator's name for the host (a file name: `[A-Za-z0-9._-]`, 1-64).
    pub host: String,
    pub ek: EnrolledEk,
    /// World id → what was proven for it.
    pub worlds: BTreeMap<crate::world::WorldId, EnrolledWorld>,
    /// Unix time (seconds, UTC) of the host's first enrolment.
    pub enrolled: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EnrolledEk {
    /// SHA-256 of the EK certificate's DER, as verified at enrolment.
    pub certificate_sha256: ByteBuf,
    /// The EK's Name (nameAlg || H(TPMT_PUBLIC)): the key the registry is searched by.
    pub name: ByteBuf,
    /// TPM2B_PUBLIC of the EK.
    pub public: ByteBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EnrolledWorld {
    /// TPM2B_PUBLIC of the world's AK: proven to live in the EK's TPM.
    pub ak_public: ByteBuf,
    /// Name of the world's KEK when enrolled (informational: a rotated KEK
    /// is certified by the same AK and needs no new enrolment).
    pub kek_name: ByteBuf,
    /// Unix time (seconds, UTC) of this world's enrolment.
    pub enrolled: u64,
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
    /// The largest file of this type that is read at all (docs/formats.md):
    /// bigger inputs are refused before any decoding.
    const MAX_SIZE: usize;

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
        Self::from_cbor_limited(bytes, Self::MAX_SIZE)
    }

    /// [`Document::from_cbor`] with another size cap (the operator's policy
    /// may change the evidence cap).
    fn from_cbor_limited(bytes: &[u8], max: usize) -> Result<Self, FormatError> {
        if bytes.len() > max {
            return Err(FormatError::TooLarge {
                kind: Self::TYPE,
                max,
            });
        }
        if bytes.is_empty() {
            return Err(FormatError::Empty {
                expected: Self::TYPE,
            });
        }
        let mut de = minicbor_serde::Deserializer::new(bytes);
        let doc = match Self::deserialize(&mut de) {
            Ok(doc) => doc,
            Err(e) => {
                check_header(bytes, Self::TYPE)?;
                return Err(FormatError::Cbor(decode_problem(&e, bytes)));
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
        if de.decoder().position() != bytes.len() {
            return Err(FormatError::Cbor(
                "trailing bytes after the CBOR document".into(),
            ));
        }
        Ok(doc)
    }
}

/// The two header fields of any document. Decoding into this reads the
/// top-level map once and skips every other value without building it
/// (serde's `IgnoredAny`), so a hostile file costs no more memory than its
/// own (capped) size.
#[derive(Deserialize)]
struct Header {
    #[serde(rename = "type")]
    kind: Option<String>,
    version: Option<u64>,
}

fn read_header(bytes: &[u8]) -> Result<Header, FormatError> {
    Header::deserialize(&mut minicbor_serde::Deserializer::new(bytes))
        .map_err(|e| FormatError::Cbor(decode_problem(&e, bytes)))
}

/// What is wrong with a document that did not decode, in words: a CBOR item
/// cut short, bytes that are not CBOR, or (the CBOR being sound) the field
/// the document's type refused, as serde names it ("missing field `nonce`").
/// The decoder's error says which only in its text, so the shape is found
/// again by skipping over the item (only a failure pays for it).
fn decode_problem(e: &minicbor_serde::error::DecodeError, bytes: &[u8]) -> String {
    match minicbor::Decoder::new(bytes).skip() {
        Err(_) if bytes.is_empty() => "the file is empty".to_string(),
        Err(s) if s.is_end_of_input() => {
            format!("the file ends early: truncated after {} bytes", bytes.len())
        }
        Err(s) => match s.position() {
            Some(at) => format!("not CBOR (syntax error at byte {at})"),
            None => "not CBOR".to_string(),
        },
        Ok(()) => e.to_string(),
    }
}

/// What is wrong with undecodable CBOR, in words: ciborium's `Display` is
/// its `Debug` (`Io(Error { kind: UnexpectedEof, .. })`), which tells an
/// operator nothing. Used for documents and for the agent's own records.
pub fn cbor_problem(e: &ciborium::de::Error<std::io::Error>, len: usize) -> String {
    use ciborium::de::Error as E;
    match e {
        E::Io(_) if len == 0 => "the file is empty".to_string(),
        E::Io(_) => format!("the file ends early: truncated after {len} bytes"),
        E::Syntax(at) => format!("not CBOR (syntax error at byte {at})"),
        E::Semantic(Some(at), msg) => format!("{msg} (at byte {at})"),
        E::Semantic(None, msg) => msg.clone(),
        E::RecursionLimitExceeded => "nested too deeply".to_string(),
    }
}

/// The "type" and "version" of an undecodable document: an error naming them
/// when they are not `expected` and VERSION.
fn check_header(bytes: &[u8], expected: &'static str) -> Result<(), FormatError> {
    let header = read_header(bytes)?;
    let kind = header
        .kind
        .ok_or_else(|| FormatError::Cbor("missing text field \"type\"".into()))?;
    if kind != expected {
        return Err(FormatError::WrongType {
            expected,
            found: kind,
        });
    }
    let version = header
        .version
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
    const MAX_SIZE: usize = MIB;
    const TYPE: &'static str = EVIDENCE_TYPE;
    fn header(&self) -> (&str, u64) {
        (&self.kind, self.version)
    }
}
impl Document for TransferPackage {
    const MAX_SIZE: usize = 256 * 1024;
    const TYPE: &'static str = TRANSFER_TYPE;
    fn header(&self) -> (&str, u64) {
        (&self.kind, self.version)
    }
}
impl Document for Receipt {
    const MAX_SIZE: usize = 64 * 1024;
    const TYPE: &'static str = RECEIPT_TYPE;
    fn header(&self) -> (&str, u64) {
        (&self.kind, self.version)
    }
}
impl Document for Challenge {
    const MAX_SIZE: usize = 64 * 1024;
    const TYPE: &'static str = CHALLENGE_TYPE;
    fn header(&self) -> (&str, u64) {
        (&self.kind, self.version)
    }
}
impl Document for Activation {
    const MAX_SIZE: usize = 64 * 1024;
    const TYPE: &'static str = ACTIVATION_TYPE;
    fn header(&self) -> (&str, u64) {
        (&self.kind, self.version)
    }
}

impl Document for HostRecord {
    const MAX_SIZE: usize = 256 * 1024;
    const TYPE: &'static str = HOST_TYPE;
    fn header(&self) -> (&str, u64) {
        (&self.kind, self.version)
    }
}

/// The largest document of any type (for `inspect`, which reads any of them).
pub const MAX_DOCUMENT_SIZE: usize = MIB;

/// The type field of any of our documents, for `inspect`.
pub fn document_type(bytes: &[u8]) -> Option<String> {
    if bytes.len() > MAX_DOCUMENT_SIZE {
        return None;
    }
    read_header(bytes).ok()?.kind
}
