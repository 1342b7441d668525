//! TPMS_ATTEST (certify and quote) and TPML_PCR_SELECTION.

use crate::error::WireError;
use crate::tpm::{st, TPM_GENERATED_VALUE};
use crate::wire::Reader;

const MAX_NAME: usize = 2 + 64;
const MAX_DATA: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockInfo {
    pub clock: u64,
    pub reset_count: u32,
    pub restart_count: u32,
    pub safe: bool,
}

/// One bank of a TPML_PCR_SELECTION.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcrSelection {
    pub hash: u16,
    /// Selected PCR indices in ascending order (the order of the digest).
    pub pcrs: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attested {
    Certify {
        name: Vec<u8>,
        qualified_name: Vec<u8>,
    },
    Quote {
        selection: Vec<PcrSelection>,
        pcr_digest: Vec<u8>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmsAttest {
    /// TPM_ST_ATTEST_*; only certify and quote are accepted by the parser.
    pub attest_type: u16,
    pub qualified_signer: Vec<u8>,
    pub extra_data: Vec<u8>,
    pub clock_info: ClockInfo,
    pub firmware_version: u64,
    pub attested: Attested,
}

/// Field names of the magic and the type in parse errors, so the verifier can
/// name those two failures (AttestMagic, AttestType).
pub const MAGIC_FIELD: &str = "magic";
pub const TYPE_FIELD: &str = "type";

fn read_selection(r: &mut Reader) -> Result<Vec<PcrSelection>, WireError> {
    let count = r.u32("pcrSelect.count")?;
    if count > 16 {
        return Err(r.bad("pcrSelect.count", count.into()));
    }
    let mut out = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let hash = r.u16("pcrSelect.hash")?;
        let size = r.u8("pcrSelect.sizeofSelect")?;
        if !(3..=4).contains(&size) {
            return Err(r.bad("pcrSelect.sizeofSelect", size.into()));
        }
        let bits = r.bytes(size as usize, "pcrSelect.pcrSelect")?;
        let mut pcrs = Vec::new();
        for (i, byte) in bits.iter().enumerate() {
            for bit in 0..8 {
                if byte & (1 << bit) != 0 {
                    pcrs.push((i * 8 + bit) as u32);
                }
            }
        }
        out.push(PcrSelection { hash, pcrs });
    }
    Ok(out)
}

impl TpmsAttest {
    /// Parse a TPMS_ATTEST that spans exactly `bytes` (as returned in a
    /// TPM2B_ATTEST by TPM2_Certify / TPM2_Quote, without the size).
    pub fn parse(bytes: &[u8]) -> Result<TpmsAttest, WireError> {
        let mut r = Reader::new("TPMS_ATTEST", bytes);
        let magic = r.u32(MAGIC_FIELD)?;
        if magic != TPM_GENERATED_VALUE {
            return Err(r.bad(MAGIC_FIELD, magic.into()));
        }
        let attest_type = r.u16(TYPE_FIELD)?;
        let qualified_signer = r.tpm2b("qualifiedSigner", MAX_NAME)?.to_vec();
        let extra_data = r.tpm2b("extraData", MAX_DATA)?.to_vec();
        let clock_info = ClockInfo {
            clock: r.u64("clockInfo.clock")?,
            reset_count: r.u32("clockInfo.resetCount")?,
            restart_count: r.u32("clockInfo.restartCount")?,
            safe: match r.u8("clockInfo.safe")? {
                0 => false,
                1 => true,
                v => return Err(r.bad("clockInfo.safe", v.into())),
            },
        };
        let firmware_version = r.u64("firmwareVersion")?;
        let attested = match attest_type {
            st::ATTEST_CERTIFY => Attested::Certify {
                name: r.tpm2b("attested.certify.name", MAX_NAME)?.to_vec(),
                qualified_name: r
                    .tpm2b("attested.certify.qualifiedName", MAX_NAME)?
                    .to_vec(),
            },
            st::ATTEST_QUOTE => Attested::Quote {
                selection: read_selection(&mut r)?,
                pcr_digest: r.tpm2b("attested.quote.pcrDigest", 64)?.to_vec(),
            },
            other => return Err(r.bad(TYPE_FIELD, other.into())),
        };
        r.finish()?;
        Ok(TpmsAttest {
            attest_type,
            qualified_signer,
            extra_data,
            clock_info,
            firmware_version,
            attested,
        })
    }
}
