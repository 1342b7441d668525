//! `verify`: every check on an evidence file, in order, in [`verify_evidence`]
//! (the checks themselves are in `check/`, one module per claim). Each check
//! names its failure (see `error.rs`); nothing unsigned is trusted except as
//! noted.

use crate::certs::{parse_certificates, subject, verify_ek_certificate, TrustStore};
use crate::check::certified::certified_qualified_name;
use crate::check::ek::{check_ek, check_ek_matches_certificate};
use crate::check::kek::{check_compat_kek, check_kek, check_kek_binding};
use crate::check::pcrs::{check_pcrs, check_reference_pcrs};
use crate::check::{ak::check_ak, malformed};
use crate::error::VerifyError;
use crate::policy::Policy;
use byok_protocol::attest::TpmsAttest;
use byok_protocol::formats::{Evidence, Signed};
use byok_protocol::public::{primary_qualified_name, qualified_name, TpmtPublic};
use byok_protocol::tpm::{rh, st};
use byok_protocol::world::WorldId;
use std::collections::BTreeMap;
use std::time::SystemTime;
use subtle::ConstantTimeEq;

pub use crate::check::activation::{check_activation, make_challenge, require_proven_ak};
pub use crate::check::attest::check_signed_attest;
pub use crate::verified::{AkBinding, KekPcrBinding, Verified};

/// What the operator asks for.
#[derive(Clone)]
pub struct Options {
    pub nonce: Vec<u8>,
    pub world: Option<WorldId>,
    pub now: SystemTime,
    pub policy: Policy,
}

/// The operator's nonce from hex (the one rule: `byok_protocol::nonce`).
pub fn parse_nonce(hex_nonce: &str) -> Result<Vec<u8>, VerifyError> {
    Ok(byok_protocol::nonce::Nonce::parse_hex(hex_nonce)?.into_bytes())
}

/// The most intermediate certificates an evidence file may ship.
pub const MAX_SHIPPED_CHAIN: usize = byok_protocol::formats::MAX_EK_CHAIN;

/// Verify one evidence file against the operator's nonce, roots and world.
pub fn verify_evidence(
    ev: &Evidence,
    store: &TrustStore,
    opts: &Options,
) -> Result<Verified, VerifyError> {
    verify_inner(ev, Some(store), opts)
}

/// Every TPM-signed claim of an evidence file checked against its own nonce,
/// with the default policy, without the EK certificate chain (for `inspect`,
/// which has no roots). Never a substitute for [`verify_evidence`].
pub fn check_signed_claims(ev: &Evidence) -> Result<Verified, VerifyError> {
    let opts = Options {
        nonce: ev.nonce.to_vec(),
        world: None,
        now: SystemTime::now(),
        policy: Policy::default(),
    };
    verify_inner(ev, None, &opts)
}

/// The AK as the evidence names it, and its qualified name under the EK.
struct Ak {
    public: TpmtPublic,
    name: Vec<u8>,
    qualified_name: Vec<u8>,
}

/// The checks, in order (the store is absent only for `inspect`):
/// Step 1: the operator's world and nonce are the file's (unsigned fields, checked
///    again below from signed bytes);
/// Step 2: the EK certificate chains to a configured root and fits the EK profile,
///    the EK public area is the certified key, a restricted decryption key;
/// Step 3: the AK is a restricted signing key bound to the TPM, a child of the EK;
/// Step 4: the KEK certify is TPM-made by the AK for the nonce, names the KEK,
///    places it in the owner hierarchy; the KEK is a storage key generated in
///    this TPM;
/// Step 5: the KEK's authPolicy binds the world (and its PCRs, under the policy's
///    rules);
/// Step 6: the compat KEK, when present: certified by the AK, a child of the KEK;
/// Step 7: the quote is TPM-made by the AK for the nonce; its PCRs are the listed
///    ones with these values, equal to the policy's reference values.
fn verify_inner(
    ev: &Evidence,
    store: Option<&TrustStore>,
    opts: &Options,
) -> Result<Verified, VerifyError> {
    check_request(ev, opts)?;
    let ek_certificate_sha256 = byok_protocol::hash::sha256(&ev.ek.certificate);
    let (ek_chain, ek_public) = ek_link(ev, &ek_certificate_sha256, store, opts)?;
    let ak = ak_link(ev, &ek_public, &opts.policy)?;
    let (kek_public, certify) = kek_certified(ev, &ak, opts)?;
    let kek_pcr_binding = check_kek_binding(ev, &kek_public, &opts.policy)?;
    let compat_kek = compat_kek_certified(ev, &ak, &kek_public, opts)?;
    let (quote, pcrs) = quoted_pcrs(ev, &ak, opts)?;
    Ok(Verified {
        world: ev.world.clone(),
        ek_name: ek_public.name(),
        ek_certificate_sha256,
        host: None,
        ek_public,
        ak_name: ak.name,
        ak_qualified_name: ak.qualified_name,
        ak_public: ak.public,
        kek_name: kek_public.name(),
        kek_public,
        ek_chain,
        certify_clock: certify.clock_info,
        quote_clock: quote.clock_info,
        firmware_version: quote.firmware_version,
        pcrs,
        tpm_manufacturer: ev.tpm.manufacturer.clone(),
        tpm_vendor: ev.tpm.vendor.clone(),
        ak_binding: AkBinding::AtImport,
        compat_kek,
        kek_pcr_binding,
    })
}

/// Step 1: The world and nonce the operator asked for.
fn check_request(ev: &Evidence, opts: &Options) -> Result<(), VerifyError> {
    if let Some(w) = &opts.world {
        if &ev.world != w {
            return Err(VerifyError::WorldMismatch {
                expected: w.clone(),
                found: ev.world.clone(),
            });
        }
    }
    if !bool::from(ev.nonce.as_slice().ct_eq(&opts.nonce)) {
        return Err(VerifyError::EvidenceNonceMismatch);
    }
    Ok(())
}

/// Step 2: The EK: certificate path (bounded shipped chain), public area = the
/// certified key, attributes. Returns the path and the EK public area.
fn ek_link(
    ev: &Evidence,
    ek_certificate_sha256: &[u8; 32],
    store: Option<&TrustStore>,
    opts: &Options,
) -> Result<(std::sync::Arc<[String]>, TpmtPublic), VerifyError> {
    // Each shipped certificate the path builder tries may cost a signature check.
    if ev.ek.chain.len() > MAX_SHIPPED_CHAIN {
        return Err(VerifyError::EkChainTooLong {
            found: ev.ek.chain.len(),
            max: MAX_SHIPPED_CHAIN,
        });
    }
    let chain: Vec<&[u8]> = ev.ek.chain.iter().map(|c| c.as_slice()).collect();
    let checked = match store {
        Some(store) => verify_ek_certificate(
            &ev.ek.certificate,
            ek_certificate_sha256,
            &chain,
            store,
            opts.now,
        )?,
        None => {
            use der::Encode;
            let cert = parse_certificates(&ev.ek.certificate)
                .map_err(VerifyError::EkCertificateUnparseable)?
                .into_iter()
                .next()
                .ok_or_else(|| VerifyError::EkCertificateUnparseable("empty".into()))?;
            let spki = cert
                .cert
                .tbs_certificate
                .subject_public_key_info
                .to_der()
                .map_err(|e| VerifyError::EkCertificateUnparseable(e.to_string()))?;
            crate::certs::CheckedEk {
                path: vec!["(chain not checked)".to_string()].into(),
                key: crate::check::ek::CertifiedKey::from_spki(&spki).into(),
            }
        }
    };
    let ek_public = TpmtPublic::parse_tpm2b(&ev.ek.public).map_err(malformed("EK public"))?;
    check_ek_matches_certificate(&ek_public, &checked.key)?;
    check_ek(&ek_public)?;
    Ok((checked.path, ek_public))
}

/// Step 3: The AK: attributes and strength; its qualified name under the EK
/// (what qualifiedSigner must be in every attestation).
fn ak_link(ev: &Evidence, ek_public: &TpmtPublic, policy: &Policy) -> Result<Ak, VerifyError> {
    let public = TpmtPublic::parse_tpm2b(&ev.ak.public).map_err(malformed("AK public"))?;
    check_ak(&public, policy)?;
    let name = public.name();
    let ek_qn = primary_qualified_name(rh::ENDORSEMENT, &ek_public.name())
        .ok_or(VerifyError::EkPublicMismatch)?;
    let qualified_name =
        qualified_name(&ek_qn, &name).ok_or(VerifyError::QualifiedSignerMismatch { what: "AK" })?;
    Ok(Ak {
        public,
        name,
        qualified_name,
    })
}

/// Step 4: The KEK certify (by the AK, for the nonce) names the KEK and places it
/// in the owner hierarchy; the KEK's attributes and type.
fn kek_certified(
    ev: &Evidence,
    ak: &Ak,
    opts: &Options,
) -> Result<(TpmtPublic, TpmsAttest), VerifyError> {
    let (certify, _) = check_signed_attest(
        "KEK certify",
        &ev.kek.certify,
        st::ATTEST_CERTIFY,
        &ak.public,
        &ak.qualified_name,
        &opts.nonce,
        &opts.policy,
    )?;
    let kek_public = TpmtPublic::parse_tpm2b(&ev.kek.public).map_err(malformed("KEK public"))?;
    let kek_name = kek_public.name();
    let kek_qn = certified_qualified_name(&certify, &kek_public)
        .ok_or(VerifyError::CertifiedNameMismatch)?;
    let owner_qn =
        primary_qualified_name(rh::OWNER, &kek_name).ok_or(VerifyError::CertifiedNameMismatch)?;
    if kek_qn != owner_qn.as_slice() {
        let null_qn = primary_qualified_name(rh::NULL, &kek_name);
        let detail = if Some(kek_qn) == null_qn.as_deref() {
            "it is a primary of the NULL hierarchy, which a TPM reset destroys".to_string()
        } else {
            "it is not a primary of the owner hierarchy".to_string()
        };
        return Err(VerifyError::KekHierarchy(detail));
    }
    check_kek(&kek_public, &opts.policy)?;
    Ok((kek_public, certify))
}

/// Step 6: The compat KEK, when the evidence has one: certified by the same AK
/// for the nonce, a child of the KEK, an RSA decryption key of this TPM.
fn compat_kek_certified(
    ev: &Evidence,
    ak: &Ak,
    kek_public: &TpmtPublic,
    opts: &Options,
) -> Result<Option<TpmtPublic>, VerifyError> {
    let Some(c) = &ev.compat_kek else {
        return Ok(None);
    };
    let (attest, _) = check_signed_attest(
        "compat KEK certify",
        &c.certify,
        st::ATTEST_CERTIFY,
        &ak.public,
        &ak.qualified_name,
        &opts.nonce,
        &opts.policy,
    )?;
    let public = TpmtPublic::parse_tpm2b(&c.public).map_err(malformed("compat KEK public"))?;
    let qn =
        certified_qualified_name(&attest, &public).ok_or(VerifyError::CompatKekNameMismatch)?;
    let kek_qn = primary_qualified_name(rh::OWNER, &kek_public.name())
        .ok_or(VerifyError::CompatKekNotUnderKek)?;
    if qualified_name(&kek_qn, &public.name()).as_deref() != Some(qn) {
        return Err(VerifyError::CompatKekNotUnderKek);
    }
    check_compat_kek(&public)?;
    Ok(Some(public))
}

/// Step 7: The quote (by the AK, for the nonce) and its PCRs, against the
/// policy's reference values.
fn quoted_pcrs(
    ev: &Evidence,
    ak: &Ak,
    opts: &Options,
) -> Result<(TpmsAttest, BTreeMap<u32, Vec<u8>>), VerifyError> {
    let (quote, quote_hash) = check_signed_attest(
        "quote",
        &Signed {
            attest: ev.quote.attest.clone(),
            signature: ev.quote.signature.clone(),
        },
        st::ATTEST_QUOTE,
        &ak.public,
        &ak.qualified_name,
        &opts.nonce,
        &opts.policy,
    )?;
    let pcrs = check_pcrs(&quote, quote_hash, ev)?;
    check_reference_pcrs(&pcrs, &opts.policy)?;
    Ok((quote, pcrs))
}

pub fn ek_subject(ev: &Evidence) -> Option<String> {
    parse_certificates(&ev.ek.certificate)
        .ok()?
        .first()
        .map(subject)
}
