//! TPM2_Certify and TPM2_Quote: TPM-made (magic, type), signed by the AK
//! with an allowed scheme and hash, for the operator's nonce (constant-time
//! compare), by the AK under this EK (qualifiedSigner).

use super::malformed;
use crate::error::VerifyError;
use crate::policy::Policy;
use byok_protocol::attest::{TpmsAttest, MAGIC_FIELD, TYPE_FIELD};
use byok_protocol::error::WireError;
use byok_protocol::formats::Signed;
use byok_protocol::hash::HashAlg;
use byok_protocol::public::TpmtPublic;
use byok_protocol::signature::{self, TpmtSignature};
use byok_protocol::tpm::st;
use subtle::ConstantTimeEq;

/// Parse a TPMS_ATTEST, naming magic and type failures.
fn parse_attest(
    what: &'static str,
    bytes: &[u8],
    expected_type: u16,
) -> Result<TpmsAttest, VerifyError> {
    let expected = if expected_type == st::ATTEST_CERTIFY {
        "TPM_ST_ATTEST_CERTIFY"
    } else {
        "TPM_ST_ATTEST_QUOTE"
    };
    let a = TpmsAttest::parse(bytes).map_err(|e| match e {
        WireError::BadValue { field, value, .. } if field == MAGIC_FIELD => {
            VerifyError::AttestMagic { what, found: value }
        }
        WireError::BadValue { field, value, .. } if field == TYPE_FIELD => {
            VerifyError::AttestType {
                what,
                found: value,
                expected,
            }
        }
        other => VerifyError::Malformed {
            field: what,
            source: other,
        },
    })?;
    if a.attest_type != expected_type {
        return Err(VerifyError::AttestType {
            what,
            found: a.attest_type.into(),
            expected,
        });
    }
    Ok(a)
}

/// Check a signed attestation: signature by the AK with an allowed hash,
/// extraData equal to the nonce (constant time), signer = the AK.
pub fn check_signed_attest(
    what: &'static str,
    signed: &Signed,
    expected_type: u16,
    ak: &TpmtPublic,
    ak_qualified_name: &[u8],
    nonce: &[u8],
    policy: &Policy,
) -> Result<(TpmsAttest, HashAlg), VerifyError> {
    let attest = parse_attest(what, &signed.attest, expected_type)?;
    let sig = TpmtSignature::parse(&signed.signature).map_err(malformed(what))?;
    let hash = signature::verify(ak, &signed.attest, &sig).map_err(|e| match e {
        signature::SignatureError::Invalid => VerifyError::SignatureInvalid { what },
        other => VerifyError::SignatureUnusable {
            what,
            detail: other.to_string(),
        },
    })?;
    if !policy.allows_hash(hash) {
        return Err(VerifyError::SignatureHashNotAllowed {
            what,
            hash: hash.label(),
        });
    }
    if !bool::from(attest.extra_data.ct_eq(nonce)) {
        return Err(VerifyError::NonceMismatch { what });
    }
    if attest.qualified_signer != ak_qualified_name {
        return Err(VerifyError::QualifiedSignerMismatch { what });
    }
    Ok((attest, hash))
}
