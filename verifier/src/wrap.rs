//! `wrap`: build a transfer package for a verified KEK (BRIEF §3 step 4).

use crate::error::VerifyError;
use crate::verify::Verified;
use byok_protocol::credential::make_credential;
use byok_protocol::duplicate::duplicate;
use byok_protocol::formats::{
    CredentialBlob, InnerWrap, KeyInfo, ObjectBlob, TransferPackage, TRANSFER_TYPE, VERSION,
};
use byok_protocol::keys::TpmObjectKey;
use byok_protocol::policy::{PcrSpec, PolicyDigest};
use rand::RngCore;
use serde_bytes::ByteBuf;
use zeroize::Zeroizing;

/// Wrap `key` so that only the TPM of `verified` can import it under the KEK:
/// - the key's public area is written here (non-duplicable, see `byok_protocol::transfer`);
/// - its sensitive area gets an inner AES-128-CFB wrapper keyed by a fresh
///   random K, then the outer duplication wrapper for the KEK (seed RSA-OAEP
///   "DUPLICATE" to the KEK);
/// - K travels as a credential for the EK bound to the AK's name (MakeCredential,
///   "IDENTITY"), so only the TPM holding both that EK and that AK recovers K.
pub fn wrap(
    verified: &Verified,
    key: &dyn TpmObjectKey,
    label: Option<String>,
    key_pcrs: Option<&PcrSpec>,
) -> Result<TransferPackage, VerifyError> {
    let values = match key_pcrs {
        None => None,
        Some(spec) => Some(quoted_values(verified, spec)?),
    };
    let policy = match (key_pcrs, &values) {
        (Some(spec), Some(v)) => PolicyDigest::new().pcr(spec, v).into_vec(),
        _ => Vec::new(),
    };
    let public = key.tpm_public_with_policy(policy);
    let sensitive = key.tpm_sensitive();
    let mut inner_key = Zeroizing::new([0u8; 16]);
    rand::rngs::OsRng.fill_bytes(&mut inner_key[..]);
    let blob = duplicate(&verified.kek_public, &public, &sensitive, Some(&inner_key))?;
    let credential = make_credential(&verified.ek_public, &verified.ak_name, &inner_key[..])?;
    Ok(TransferPackage {
        kind: TRANSFER_TYPE.into(),
        version: VERSION,
        world: verified.world.clone(),
        kek_name: ByteBuf::from(verified.kek_name.clone()),
        ak_name: ByteBuf::from(verified.ak_name.clone()),
        credential: CredentialBlob {
            id_object: ByteBuf::from(credential.id_object),
            encrypted_secret: ByteBuf::from(credential.encrypted_secret),
        },
        object: ObjectBlob {
            public: ByteBuf::from(public.to_tpm2b()),
            duplicate: ByteBuf::from(blob.duplicate),
            seed: ByteBuf::from(blob.seed),
            inner: InnerWrap::Aes128Cfb,
        },
        key: KeyInfo::new(key.alg_name(), label, key_pcrs.zip(values.as_deref())),
    })
}

/// `wrap --key-pcrs`: the values the TPM quoted in the verified evidence
/// (which the policy's reference values, if any, already fixed); the key's
/// PolicyPCR authPolicy is computed over them, so the imported key works only
/// in that platform state.
fn quoted_values(verified: &Verified, spec: &PcrSpec) -> Result<Vec<Vec<u8>>, VerifyError> {
    if spec.bank != byok_protocol::HashAlg::Sha256 {
        return Err(VerifyError::Usage(
            "--key-pcrs binds to quoted values: use the sha256 bank".into(),
        ));
    }
    let values = spec
        .pcrs
        .iter()
        .map(|i| {
            verified.pcrs.get(i).cloned().ok_or_else(|| {
                VerifyError::Usage(format!(
                    "--key-pcrs: PCR {i} is not in the evidence's quote; ask the host for evidence quoting it (`byok-agent evidence --pcrs ...`)"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(values)
}
