//! `check-receipt`: a key certified by the verified AK lives under the verified KEK.

use crate::error::VerifyError;
use crate::verify::{check_signed_attest, Verified};
use byok_protocol::attest::Attested;
use byok_protocol::formats::{Receipt, TransferPackage};
use byok_protocol::public::{primary_qualified_name, qualified_name, TpmtPublic};
use byok_protocol::tpm::{attr, rh, st};

#[derive(Debug, Clone)]
pub struct ReceiptReport {
    pub world: String,
    pub key_name: Vec<u8>,
    pub key: String,
    pub attributes: Vec<&'static str>,
    /// "imported" (fixedTPM clear: the key came from outside), "generated
    /// inside the TPM" (fixedTPM and sensitiveDataOrigin), or created in the
    /// TPM from host-supplied data (fixedTPM alone: sealed data).
    pub origin: &'static str,
    /// Whether TPM2_Duplicate could ever succeed: Some(false) when the
    /// attributes or the policy rule it out, None when the key has an
    /// authPolicy the verifier cannot read.
    pub duplicable: Option<bool>,
    pub matches_transfer: Option<bool>,
}

pub fn check_receipt(
    receipt: &Receipt,
    verified: &Verified,
    nonce: &[u8],
    policy: &crate::policy::Policy,
    transfer: Option<&TransferPackage>,
) -> Result<ReceiptReport, VerifyError> {
    if receipt.world != verified.world {
        return Err(VerifyError::ReceiptWorldMismatch {
            receipt: receipt.world.clone(),
            evidence: verified.world.clone(),
        });
    }
    let ak =
        TpmtPublic::parse_tpm2b(&receipt.ak.public).map_err(|source| VerifyError::Malformed {
            field: "receipt AK public",
            source,
        })?;
    if ak != verified.ak_public {
        return Err(VerifyError::ReceiptAkMismatch);
    }
    let (attest, _) = check_signed_attest(
        "key certify",
        &receipt.certify,
        st::ATTEST_CERTIFY,
        &verified.ak_public,
        &verified.ak_qualified_name,
        nonce,
        policy,
    )?;
    let key =
        TpmtPublic::parse_tpm2b(&receipt.key.public).map_err(|source| VerifyError::Malformed {
            field: "receipt key public",
            source,
        })?;
    let key_name = key.name();
    let Attested::Certify {
        name,
        qualified_name: qn,
    } = &attest.attested
    else {
        return Err(VerifyError::CertifiedNameMismatch);
    };
    if name != &key_name {
        return Err(VerifyError::CertifiedNameMismatch);
    }
    let kek_qn = primary_qualified_name(rh::OWNER, &verified.kek_name)
        .ok_or(VerifyError::ReceiptKeyNotUnderKek)?;
    if qualified_name(&kek_qn, &key_name).as_ref() != Some(qn) {
        return Err(VerifyError::ReceiptKeyNotUnderKek);
    }
    let matches_transfer = match transfer {
        Some(t) => {
            if t.kek_name.as_ref() != verified.kek_name.as_slice() {
                return Err(VerifyError::TransferKekMismatch);
            }
            if t.object.public.as_ref() != receipt.key.public.as_ref() {
                return Err(VerifyError::ReceiptKeyNotTransferred);
            }
            Some(true)
        }
        None => None,
    };
    // Import refuses fixedTPM, so fixedTPM means created in this TPM; only
    // sensitiveDataOrigin says the TPM also made the secret itself.
    let origin = match (
        key.has(attr::FIXED_TPM),
        key.has(attr::SENSITIVE_DATA_ORIGIN),
    ) {
        (true, true) => "generated inside the TPM",
        (true, false) => "created in the TPM from data the host supplied (sealed data)",
        (false, _) => "imported",
    };
    // Duplication needs the DUP role, which always takes a policy session
    // whose command code is TPM_CC_Duplicate: impossible with fixedParent set,
    // with an empty authPolicy, or with the PolicyPCR-only policy `wrap
    // --key-pcrs` writes (known here when the receipt matches the package).
    let never = key.has(attr::FIXED_PARENT)
        || key.auth_policy.is_empty()
        || transfer.is_some_and(|t| t.key.pcrs.is_some());
    let duplicable = if never { Some(false) } else { None };
    Ok(ReceiptReport {
        world: receipt.world.clone(),
        key_name,
        key: key.describe_key(),
        attributes: attr::names(key.attributes),
        origin,
        duplicable,
        matches_transfer,
    })
}
