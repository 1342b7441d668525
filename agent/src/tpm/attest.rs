//! Attestation by the AK: TPM2_Certify and TPM2_Quote.

use super::{is_retry, signed, PcrValues, Tpm};
use crate::error::{tpm, Result};
use byok_protocol::formats::Signed;
use byok_protocol::policy::PcrSpec;
use tss_esapi::handles::{KeyHandle, ObjectHandle};
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{Data, PcrSelectionListBuilder, PcrSlot, SignatureScheme};

impl Tpm {
    /// TPM2_Certify of `object` by `signer`, qualifyingData = nonce.
    /// swtpm may answer the first Certify with TPM_RC_RETRY: retried.
    pub fn certify(
        &mut self,
        object: ObjectHandle,
        signer: KeyHandle,
        nonce: &[u8],
    ) -> Result<Signed> {
        let data = Data::try_from(nonce.to_vec()).map_err(tpm("qualifying data"))?;
        let mut tries = 0;
        loop {
            let r = self.ctx.execute_with_sessions(
                (
                    Some(AuthSession::Password),
                    Some(AuthSession::Password),
                    None,
                ),
                |c| c.certify(object, signer, data.clone(), SignatureScheme::Null),
            );
            match r {
                Err(e) if is_retry(&e) && tries < 5 => tries += 1,
                Err(e) => return Err(tpm("TPM2_Certify")(e)),
                Ok((attest, sig)) => return signed(attest, sig),
            }
        }
    }

    /// TPM2_Quote of sha256 PCRs `pcrs` by `signer`; returns the quote and the PCR values.
    pub fn quote(
        &mut self,
        signer: KeyHandle,
        nonce: &[u8],
        pcrs: &[u32],
    ) -> Result<(Signed, PcrValues)> {
        let slots: Vec<PcrSlot> = pcrs
            .iter()
            .map(|i| PcrSlot::try_from(1u32 << i).map_err(tpm("PCR slot")))
            .collect::<Result<_>>()?;
        let selection = PcrSelectionListBuilder::new()
            .with_selection(HashingAlgorithm::Sha256, &slots)
            .build()
            .map_err(tpm("PCR selection"))?;
        let data = Data::try_from(nonce.to_vec()).map_err(tpm("qualifying data"))?;
        let (attest, sig) = self
            .ctx
            .execute_with_session(Some(AuthSession::Password), |c| {
                c.quote(signer, data, SignatureScheme::Null, selection.clone())
            })
            .map_err(tpm("TPM2_Quote"))?;
        let quote = signed(attest, sig)?;
        let spec = PcrSpec {
            bank: byok_protocol::HashAlg::Sha256,
            pcrs: pcrs.to_vec(),
        };
        let values = pcrs.iter().copied().zip(self.pcr_values(&spec)?).collect();
        Ok((quote, values))
    }
}
