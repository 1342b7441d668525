//! `check-receipt`: a key certified by the verified AK lives under the verified KEK.

use crate::check::attest::check_signed_attest;
use crate::check::certified::certified_qualified_name;
use crate::error::VerifyError;
use crate::verify::Verified;
use byok_protocol::formats::{Receipt, TransferPackage};
use byok_protocol::public::{primary_qualified_name, qualified_name, TpmtPublic};
use byok_protocol::tpm::{attr, rh, st};
use byok_protocol::world::WorldId;

#[derive(Debug, Clone)]
pub struct ReceiptReport {
    pub world: WorldId,
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

/// What a receipt is checked against: an AK proven to live in the EK's TPM
/// (a receipt is signed by the AK alone: from an unproven AK it says nothing
/// about any TPM) and the KEK the key must live under.
pub struct ReceiptTrust {
    pub world: WorldId,
    pub ak_public: TpmtPublic,
    /// H(QN(EK) || Name(AK)): the AK under its EK, as the TPM signs it.
    pub ak_qualified_name: Vec<u8>,
    pub kek_name: Vec<u8>,
}

impl ReceiptTrust {
    /// From verified evidence, whose AK must be proven (enrolled, or a
    /// challenge answered).
    pub fn from_verified(verified: &Verified) -> Result<ReceiptTrust, VerifyError> {
        crate::verify::require_proven_ak(verified, "check-receipt")?;
        Ok(ReceiptTrust {
            world: verified.world.clone(),
            ak_public: verified.ak_public.clone(),
            ak_qualified_name: verified.ak_qualified_name.clone(),
            kek_name: verified.kek_name.clone(),
        })
    }

    /// From a host's enrolment for `world` (the AK was proven by credential
    /// activation when it was enrolled), with the KEK the key was wrapped for.
    pub fn from_enrolment(
        record: &byok_protocol::formats::HostRecord,
        world: &WorldId,
        kek_name: Vec<u8>,
    ) -> Result<ReceiptTrust, VerifyError> {
        let entry = record
            .worlds
            .get(world)
            .ok_or_else(|| VerifyError::WorldNotEnrolled {
                host: record.host.clone(),
                world: world.clone(),
            })?;
        let malformed = |source| VerifyError::Malformed {
            field: "enrolled AK public",
            source,
        };
        let ak_public = TpmtPublic::parse_tpm2b(&entry.ak_public).map_err(malformed)?;
        let ek_qn = primary_qualified_name(rh::ENDORSEMENT, &record.ek.name)
            .ok_or(VerifyError::EkPublicMismatch)?;
        let ak_qualified_name = qualified_name(&ek_qn, &ak_public.name())
            .ok_or(VerifyError::QualifiedSignerMismatch { what: "AK" })?;
        Ok(ReceiptTrust {
            world: world.clone(),
            ak_public,
            ak_qualified_name,
            kek_name,
        })
    }
}

/// Check a receipt against verified evidence whose AK is proven
/// ([`ReceiptTrust::from_verified`], then [`check_receipt_trusted`]).
pub fn check_receipt(
    receipt: &Receipt,
    verified: &Verified,
    nonce: &[u8],
    policy: &crate::policy::Policy,
    transfer: Option<&TransferPackage>,
) -> Result<ReceiptReport, VerifyError> {
    let trust = ReceiptTrust::from_verified(verified)?;
    check_receipt_trusted(receipt, &trust, nonce, policy, transfer)
}

// Long on purpose: the checks in the order the doc comment lists them,
// each naming its failure.
/// Check a receipt against a proven AK and its KEK ([`ReceiptTrust`]). The
/// checks, in order: the receipt's world and AK are the trusted ones; the
/// certify is genuine (magic, type, signature by the AK with an allowed
/// hash, the receipt's nonce, the AK as signer); the certified name is the
/// receipt key's; the key's qualified name puts it under the KEK; with the
/// package, the key is exactly the wrapped one. Then what the key is
/// (origin, duplicability).
pub fn check_receipt_trusted(
    receipt: &Receipt,
    verified: &ReceiptTrust,
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
    let qn = certified_qualified_name(&attest, &key).ok_or(VerifyError::CertifiedNameMismatch)?;
    let kek_qn = primary_qualified_name(rh::OWNER, &verified.kek_name)
        .ok_or(VerifyError::ReceiptKeyNotUnderKek)?;
    if qualified_name(&kek_qn, &key_name).as_deref() != Some(qn) {
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
    // Duplication needs fixedParent clear and the DUP role, which always
    // takes a policy session whose command code is TPM_CC_Duplicate:
    // impossible with fixedParent set, with an empty authPolicy, or with
    // exactly the PolicyPCR-only policy `wrap --key-pcrs` writes (recomputed
    // from the package's PCRs and values: the receipt's key is the package's,
    // checked above). Any other policy might allow it: "cannot tell".
    let never = key.has(attr::FIXED_PARENT)
        || key.auth_policy.is_empty()
        || transfer
            .is_some_and(|t| byok_protocol::transfer::check_transfer_object(&key, &t.key).is_ok());
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
