//! What `doctor` reads from the TPM: properties, PCR banks, NV indices. Read
//! only: nothing here changes the TPM.

use super::Tpm;
use crate::error::{tpm, Result};
use tss_esapi::constants::{CapabilityType, PropertyTag};
use tss_esapi::structures::CapabilityData;

/// TPMA_PERMANENT bits (TPM 2.0 Part 2, 8.6).
pub const OWNER_AUTH_SET: u32 = 1 << 0;
pub const ENDORSEMENT_AUTH_SET: u32 = 1 << 1;
pub const IN_LOCKOUT: u32 = 1 << 9;

/// The dictionary-attack state.
pub struct DaState {
    /// TPMA_PERMANENT (also tells which hierarchies have a password).
    pub permanent: u32,
    pub failures: u32,
    pub max_tries: u32,
    pub recovery_secs: u32,
    pub in_lockout: bool,
}

impl Tpm {
    /// A TPM property (0 when the TPM does not report it).
    pub fn property(&mut self, tag: PropertyTag) -> Result<u32> {
        Ok(self
            .ctx
            .get_tpm_property(tag)
            .map_err(tpm("TPM2_GetCapability(TPM_PROPERTIES)"))?
            .unwrap_or(0))
    }

    pub fn da_state(&mut self) -> Result<DaState> {
        let permanent = self.property(PropertyTag::Permanent)?;
        Ok(DaState {
            permanent,
            failures: self.property(PropertyTag::LockoutCounter)?,
            max_tries: self.property(PropertyTag::MaxAuthFail)?,
            recovery_secs: self.property(PropertyTag::LockoutInterval)?,
            in_lockout: permanent & IN_LOCKOUT != 0,
        })
    }

    /// Each allocated PCR bank and how many PCRs it has
    /// (TPM2_GetCapability(TPM_CAP_PCRS)).
    pub fn pcr_banks(&mut self) -> Result<Vec<(String, usize)>> {
        let (data, _) = self
            .ctx
            .get_capability(CapabilityType::AssignedPcr, 0, 16)
            .map_err(tpm("TPM2_GetCapability(PCRS)"))?;
        let CapabilityData::AssignedPcr(list) = data else {
            return Ok(Vec::new());
        };
        Ok(list
            .get_selections()
            .iter()
            .map(|s| {
                let name = format!("{:?}", s.hashing_algorithm()).to_lowercase();
                (name, s.selected().len())
            })
            .collect())
    }

    /// The defined NV indices in `first..=last`.
    pub fn nv_indices(&mut self, first: u32, last: u32) -> Result<Vec<u32>> {
        let (data, _) = self
            .ctx
            .get_capability(CapabilityType::Handles, first, 256)
            .map_err(tpm("TPM2_GetCapability(NV indices)"))?;
        Ok(match data {
            CapabilityData::Handles(list) => list
                .into_inner()
                .into_iter()
                .map(u32::from)
                .filter(|i| (first..=last).contains(i))
                .collect(),
            _ => Vec::new(),
        })
    }
}
