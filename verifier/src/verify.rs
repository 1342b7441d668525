//! `verify`: every check on an evidence file, in one place. Each check names
//! its failure (see `error.rs`); nothing unsigned is trusted except as noted.

use crate::certs::{parse_certificates, subject, verify_ek_certificate, TrustStore};
use crate::error::VerifyError;
use crate::policy::Policy;
use byok_protocol::attest::{Attested, ClockInfo, TpmsAttest, MAGIC_FIELD, TYPE_FIELD};
use byok_protocol::error::WireError;
use byok_protocol::formats::{Evidence, Signed};
use byok_protocol::hash::HashAlg;
use byok_protocol::public::{
    primary_qualified_name, qualified_name, PublicId, PublicParams, TpmtPublic,
};
use byok_protocol::signature::{self, TpmtSignature};
use byok_protocol::tpm::{alg, attr, curve, rh, st};
use byok_protocol::world::world_policy;
use std::collections::BTreeMap;
use std::time::SystemTime;
use subtle::ConstantTimeEq;

/// What the operator asks for.
#[derive(Clone)]
pub struct Options {
    pub nonce: Vec<u8>,
    pub world: Option<String>,
    pub now: SystemTime,
    pub policy: Policy,
}

/// How the AK is tied to the EK's TPM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AkBinding {
    /// Not proven by evidence alone (a software key could have signed it):
    /// a transfer package is still safe, because the TPM enforces the binding
    /// at import (the key is released only to the TPM holding this EK and an
    /// object with this AK's name). Nothing else may rest on it.
    AtImport,
    /// Proven now: the TPM holding the EK released a credential bound to the
    /// AK's name (`challenge`, `activate`, `--activation`).
    Activated,
    /// Proven at enrolment (a credential activation), kept in the registry.
    Enrolled { host: String, enrolled: u64 },
}

impl AkBinding {
    /// A TPM activated a credential for this AK under this EK: the AK is a
    /// key of that TPM, so what it signs is TPM-made.
    pub fn proven(&self) -> bool {
        !matches!(self, AkBinding::AtImport)
    }

    pub fn describe(&self) -> String {
        match self {
            AkBinding::AtImport => "not proven by evidence alone: enforced by the TPM at import (the key is released only to the TPM holding this EK and an object with this AK's name); enroll the host to prove it".into(),
            AkBinding::Activated => "proven: the TPM holding this EK released a credential bound to this AK's name (challenge and activation)".into(),
            AkBinding::Enrolled { host, enrolled } => format!(
                "proven (host {}, enrolled {})",
                byok_protocol::text::inert(host),
                crate::registry::utc(*enrolled)
            ),
        }
    }
}

/// Refuse what would rest on evidence claims alone: `what` needs an AK
/// proven to live in the EK's TPM (enrolment, or challenge and activation).
pub fn require_proven_ak(verified: &Verified, what: &'static str) -> Result<(), VerifyError> {
    if verified.ak_binding.proven() {
        Ok(())
    } else {
        Err(VerifyError::AkNotProven { what })
    }
}

/// A credential challenge for the AK and EK of verified evidence:
/// MakeCredential(EK, Name(AK), S) for a fresh 32-byte secret S, and the
/// commitment to S. Only a TPM holding that EK and an object with that exact
/// AK name can recover S (`byok-agent activate`); [`check_activation`] checks
/// the answer against the commitment.
pub fn make_challenge(
    verified: &Verified,
) -> Result<byok_protocol::formats::Challenge, VerifyError> {
    use byok_protocol::formats::{
        activation_commitment, Challenge, CredentialBlob, CHALLENGE_TYPE, VERSION,
    };
    use serde_bytes::ByteBuf;
    let mut secret = zeroize::Zeroizing::new([0u8; 32]);
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret[..]);
    let cred = byok_protocol::credential::make_credential(
        &verified.ek_public,
        &verified.ak_name,
        &secret[..],
    )?;
    Ok(Challenge {
        kind: CHALLENGE_TYPE.into(),
        version: VERSION,
        world: verified.world.clone(),
        ek_name: ByteBuf::from(verified.ek_name.clone()),
        ak_name: ByteBuf::from(verified.ak_name.clone()),
        credential: CredentialBlob {
            id_object: ByteBuf::from(cred.id_object),
            encrypted_secret: ByteBuf::from(cred.encrypted_secret),
        },
        commitment: ByteBuf::from(activation_commitment(&secret[..])),
    })
}

/// Check an answered challenge against verified evidence: the challenge was
/// made for this evidence's EK and AK, and the host returned the secret whose
/// commitment the operator's copy of the challenge holds.
pub fn check_activation(
    verified: &mut Verified,
    challenge: &byok_protocol::formats::Challenge,
    activation: &byok_protocol::formats::Activation,
) -> Result<(), VerifyError> {
    if challenge.ak_name.as_slice() != verified.ak_name.as_slice()
        || challenge.ek_name.as_slice() != verified.ek_name.as_slice()
    {
        return Err(VerifyError::ActivationMismatch(
            "the challenge was made for another EK or AK than this evidence's",
        ));
    }
    if activation.ak_name.as_slice() != verified.ak_name.as_slice()
        || activation.world != verified.world
    {
        return Err(VerifyError::ActivationMismatch(
            "the activation answers for another AK or world",
        ));
    }
    let commitment = byok_protocol::formats::activation_commitment(&activation.secret);
    if !bool::from(commitment.as_slice().ct_eq(challenge.commitment.as_slice())) {
        return Err(VerifyError::ActivationMismatch(
            "the returned secret is not the challenge's: the AK and EK are not in one TPM",
        ));
    }
    if !verified.ak_binding.proven() {
        verified.ak_binding = AkBinding::Activated;
    }
    Ok(())
}

/// The facts an evidence file establishes once verified.
#[derive(Debug, Clone)]
pub struct Verified {
    pub world: String,
    pub ek_public: TpmtPublic,
    /// The EK's Name: the key it is enrolled under in a registry.
    pub ek_name: Vec<u8>,
    /// SHA-256 of the EK certificate's DER.
    pub ek_certificate_sha256: [u8; 32],
    /// The registry's name for this EK's host, when it is enrolled.
    pub host: Option<String>,
    pub ak_public: TpmtPublic,
    pub ak_name: Vec<u8>,
    pub ak_qualified_name: Vec<u8>,
    pub kek_public: TpmtPublic,
    pub kek_name: Vec<u8>,
    pub ek_chain: Vec<String>,
    pub certify_clock: ClockInfo,
    pub quote_clock: ClockInfo,
    pub firmware_version: u64,
    pub pcrs: BTreeMap<u32, Vec<u8>>,
    pub tpm_manufacturer: String,
    pub tpm_vendor: String,
    pub ak_binding: AkBinding,
    /// The world's compat KEK, certified and checked, when the evidence has one.
    pub compat_kek: Option<TpmtPublic>,
    /// A PCR-bound KEK: the PCRs and values the TPM requires before it uses it.
    pub kek_pcr_binding: Option<KekPcrBinding>,
}

/// The PCR binding of a KEK, recomputed from its signed authPolicy.
#[derive(Debug, Clone)]
pub struct KekPcrBinding {
    pub pcrs: byok_protocol::policy::PcrSpec,
    pub values: Vec<Vec<u8>>,
}

/// The KEK's authPolicy binds it to the evidence's world: either the plain
/// binding (a digest no policy session reaches; the KEK is used with its auth
/// value), or a PCR binding (PolicyPCR over the values the evidence reports,
/// then PolicySecret(owner) with the world as policyRef; userWithAuth clear so
/// the TPM enforces it). The reported PCR values are trusted only because
/// they recompute the signed authPolicy. The policy's rules then apply
/// ([`check_kek_pcr_rules`]).
fn check_kek_binding(
    ev: &Evidence,
    kek: &TpmtPublic,
    policy: &Policy,
) -> Result<Option<KekPcrBinding>, VerifyError> {
    use byok_protocol::policy::PcrSpec;
    let plain = world_policy(&ev.world);
    let mismatch = || VerifyError::KekWorldMismatch {
        world: ev.world.clone(),
    };
    let binding = match &ev.kek.pcr_binding {
        None => {
            if kek.auth_policy != plain {
                return Err(mismatch());
            }
            check_kek_pcr_rules(None, policy)?;
            return Ok(None);
        }
        Some(b) => b,
    };
    let mut banks = binding.iter();
    let (Some((bank_name, values)), None) = (banks.next(), banks.next()) else {
        return Err(VerifyError::KekPcrBindingMalformed(
            "exactly one PCR bank".into(),
        ));
    };
    let bank = HashAlg::from_name(bank_name).ok_or_else(|| {
        VerifyError::KekPcrBindingMalformed(format!("unknown bank {bank_name:?}"))
    })?;
    let pcrs: Vec<u32> = values.keys().copied().collect();
    if pcrs.is_empty() || pcrs.iter().any(|i| *i > 23) {
        return Err(VerifyError::KekPcrBindingMalformed(
            "PCR indices 0-23, at least one".into(),
        ));
    }
    if values.values().any(|v| v.len() != bank.size()) {
        return Err(VerifyError::KekPcrBindingMalformed(format!(
            "{bank_name} values have {} bytes",
            bank.size()
        )));
    }
    let spec = PcrSpec { bank, pcrs };
    let values: Vec<Vec<u8>> = values.values().map(|v| v.to_vec()).collect();
    let expected = byok_protocol::world::pcr_bound_kek_policy(&ev.world, &spec, &values);
    if kek.auth_policy != expected {
        return Err(mismatch());
    }
    if kek.has(attr::USER_WITH_AUTH) {
        return Err(VerifyError::KekPcrBindingNotEnforced);
    }
    let binding = KekPcrBinding { pcrs: spec, values };
    check_kek_pcr_rules(Some(&binding), policy)?;
    Ok(Some(binding))
}

/// The policy's rules for a KEK's PCR binding:
/// - bound values equal the policy's reference values, where it has them;
/// - when the policy requires a binding (`require_kek_pcrs`): there is one,
///   it includes every PCR the policy names (or, for `true`, at least one),
///   a PCR software can reset (16, 23; 17-22 unless `allow_drtm_pcrs`)
///   never counts, and every bound PCR has a reference value, so the binding
///   pins a platform state the operator chose.
fn check_kek_pcr_rules(
    binding: Option<&KekPcrBinding>,
    policy: &Policy,
) -> Result<(), VerifyError> {
    use crate::policy::{resettable_pcr, KekPcrRequirement};
    let Some(b) = binding else {
        return if policy.require_kek_pcrs.is_required() {
            Err(VerifyError::KekNotPcrBound)
        } else {
            Ok(())
        };
    };
    let bank = b.pcrs.bank.name();
    let refs = policy.reference_pcrs.get(bank);
    for (i, v) in b.pcrs.pcrs.iter().zip(&b.values) {
        match refs.and_then(|r| r.get(i)) {
            Some(want) if want != v => {
                return Err(VerifyError::KekPcrBindingMismatch {
                    bank: bank.to_string(),
                    index: *i,
                    expected: hex::encode(want),
                    found: hex::encode(v),
                })
            }
            Some(_) => {}
            None if policy.require_kek_pcrs.is_required() => {
                return Err(VerifyError::KekPcrUnreferenced {
                    bank: bank.to_string(),
                    index: *i,
                })
            }
            None => {}
        }
    }
    let counted: Vec<u32> = b
        .pcrs
        .pcrs
        .iter()
        .copied()
        .filter(|i| !resettable_pcr(*i, policy.allow_drtm_pcrs))
        .collect();
    match &policy.require_kek_pcrs {
        KekPcrRequirement::None => Ok(()),
        KekPcrRequirement::Any if counted.is_empty() => Err(VerifyError::KekPcrResettable {
            bound: b.pcrs.describe(),
        }),
        KekPcrRequirement::Any => Ok(()),
        KekPcrRequirement::These(required) => {
            let missing: Vec<String> = required
                .iter()
                .filter(|i| !counted.contains(i))
                .map(|i| i.to_string())
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(VerifyError::KekPcrsMissing {
                    bound: b.pcrs.describe(),
                    missing: missing.join(","),
                })
            }
        }
    }
}

/// The operator's nonce from hex (the one rule: `byok_protocol::nonce`).
pub fn parse_nonce(hex_nonce: &str) -> Result<Vec<u8>, VerifyError> {
    Ok(byok_protocol::nonce::Nonce::parse_hex(hex_nonce)?.into_bytes())
}

fn malformed(field: &'static str) -> impl FnOnce(WireError) -> VerifyError {
    move |source| VerifyError::Malformed { field, source }
}

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

/// The EK public area must be the key the EK certificate certifies.
pub fn check_ek_matches_certificate(ek: &TpmtPublic, spki: &[u8]) -> Result<(), VerifyError> {
    // Compare keys, not encodings: decode both SPKIs to key values.
    let same = match (&ek.params, &ek.unique) {
        (PublicParams::Rsa { exponent, .. }, PublicId::Rsa(n)) => {
            // Integer values from the certificate's RSAPublicKey (DER INTEGERs,
            // minimal) against the TPM's modulus and exponent bytes, without
            // building big integers (this runs once per evidence file).
            let strip =
                |b: &[u8]| -> Vec<u8> { b.iter().skip_while(|x| **x == 0).copied().collect() };
            let e = if *exponent == 0 { 65537 } else { *exponent };
            match rsa_public_key_parts(spki) {
                Some((cert_n, cert_e)) => {
                    strip(&cert_n) == strip(n) && strip(&cert_e) == strip(&e.to_be_bytes())
                }
                None => false,
            }
        }
        (PublicParams::Ecc { curve: c, .. }, PublicId::Ecc { .. }) => {
            use spki::DecodePublicKey;
            let Ok(ours) = byok_protocol::keys::public_key_der(ek) else {
                return Err(VerifyError::EkPublicMismatch);
            };
            match *c {
                curve::NIST_P256 => matches!(
                    (p256::PublicKey::from_public_key_der(spki), p256::PublicKey::from_public_key_der(&ours)),
                    (Ok(a), Ok(b)) if a == b
                ),
                curve::NIST_P384 => matches!(
                    (p384::PublicKey::from_public_key_der(spki), p384::PublicKey::from_public_key_der(&ours)),
                    (Ok(a), Ok(b)) if a == b
                ),
                _ => false,
            }
        }
        _ => false,
    };
    if same {
        Ok(())
    } else {
        Err(VerifyError::EkPublicMismatch)
    }
}

/// (modulus, exponent) of an rsaEncryption SubjectPublicKeyInfo.
fn rsa_public_key_parts(spki_der: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    use der::Decode;
    let info = spki::SubjectPublicKeyInfoRef::from_der(spki_der).ok()?;
    if info.algorithm.oid != const_oid::db::rfc5912::RSA_ENCRYPTION {
        return None;
    }
    let key = pkcs1::RsaPublicKey::from_der(info.subject_public_key.as_bytes()?).ok()?;
    Some((
        key.modulus.as_bytes().to_vec(),
        key.public_exponent.as_bytes().to_vec(),
    ))
}

fn missing(
    p: &TpmtPublic,
    required: &[(u32, &'static str)],
    forbidden: &[(u32, &'static str)],
) -> Vec<String> {
    let mut out: Vec<String> = required
        .iter()
        .filter(|(a, _)| !p.has(*a))
        .map(|(_, n)| format!("lacks {n}"))
        .collect();
    out.extend(
        forbidden
            .iter()
            .filter(|(a, _)| p.has(*a))
            .map(|(_, n)| format!("has {n}")),
    );
    out
}

fn check_ak(ak: &TpmtPublic, policy: &Policy) -> Result<(), VerifyError> {
    let problems = missing(
        ak,
        &[
            (attr::FIXED_TPM, "fixedTPM"),
            (attr::FIXED_PARENT, "fixedParent"),
            (attr::SENSITIVE_DATA_ORIGIN, "sensitiveDataOrigin"),
            (attr::RESTRICTED, "restricted"),
            (attr::SIGN, "sign"),
        ],
        &[(attr::DECRYPT, "decrypt")],
    );
    if !problems.is_empty() {
        return Err(VerifyError::AkAttributes(problems.join(", ")));
    }
    let ok = match &ak.params {
        PublicParams::Rsa { key_bits, .. } => *key_bits >= policy.min_rsa_bits.max(2048),
        PublicParams::Ecc { curve: c, .. } => policy.allowed_curves.contains(c),
        _ => false,
    };
    if !ok || ak.name_hash() == HashAlg::Sha1 {
        return Err(VerifyError::AkKeyUnsupported(ak.describe_key()));
    }
    Ok(())
}

fn check_ek(ek: &TpmtPublic) -> Result<(), VerifyError> {
    let problems = missing(
        ek,
        &[
            (attr::FIXED_TPM, "fixedTPM"),
            (attr::FIXED_PARENT, "fixedParent"),
            (attr::SENSITIVE_DATA_ORIGIN, "sensitiveDataOrigin"),
            (attr::RESTRICTED, "restricted"),
            (attr::DECRYPT, "decrypt"),
        ],
        &[(attr::SIGN, "sign")],
    );
    if !problems.is_empty() {
        return Err(VerifyError::EkAttributes(problems.join(", ")));
    }
    Ok(())
}

/// KEK: generated in this TPM (fixedTPM, sensitiveDataOrigin), bound to its
/// parent (fixedParent), a storage key (restricted|decrypt, not sign).
pub fn check_kek(kek: &TpmtPublic, policy: &Policy) -> Result<(), VerifyError> {
    if !kek.has(attr::FIXED_TPM) {
        return Err(VerifyError::KekNotFixedTpm);
    }
    if !kek.has(attr::FIXED_PARENT) {
        return Err(VerifyError::KekNotFixedParent);
    }
    if !kek.has(attr::SENSITIVE_DATA_ORIGIN) {
        return Err(VerifyError::KekNotSensitiveDataOrigin);
    }
    let problems = missing(
        kek,
        &[(attr::RESTRICTED, "restricted"), (attr::DECRYPT, "decrypt")],
        &[(attr::SIGN, "sign")],
    );
    if !problems.is_empty() {
        return Err(VerifyError::KekNotStorageKey(problems.join(", ")));
    }
    let ok = match &kek.params {
        PublicParams::Rsa {
            key_bits,
            symmetric,
            ..
        } => *key_bits >= policy.min_rsa_bits.max(2048) && symmetric.algorithm == alg::AES,
        // ECC storage keys: the seed is then derived by ECDH and KDFe.
        PublicParams::Ecc {
            curve: c,
            symmetric,
            ..
        } => matches!(*c, curve::NIST_P256 | curve::NIST_P384) && symmetric.algorithm == alg::AES,
        _ => false,
    };
    if !ok || kek.name_hash() == HashAlg::Sha1 {
        return Err(VerifyError::KekKeyUnsupported(kek.describe_key()));
    }
    Ok(())
}

/// The compat KEK: an RSA decryption key generated in this TPM, bound to it,
/// unrestricted (it decrypts OAEP blocks for `.byok` files), never signing.
pub fn check_compat_kek(p: &TpmtPublic) -> Result<(), VerifyError> {
    let mut problems = missing(
        p,
        &[
            (attr::FIXED_TPM, "fixedTPM"),
            (attr::FIXED_PARENT, "fixedParent"),
            (attr::SENSITIVE_DATA_ORIGIN, "sensitiveDataOrigin"),
            (attr::DECRYPT, "decrypt"),
        ],
        &[(attr::SIGN, "sign"), (attr::RESTRICTED, "restricted")],
    );
    match &p.params {
        PublicParams::Rsa { key_bits, .. } if *key_bits >= 2048 => {}
        _ => problems.push(format!("{} is not RSA >= 2048", p.describe_key())),
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(VerifyError::CompatKekAttributes(problems.join(", ")))
    }
}

/// The policy's reference values: each must be quoted and equal.
fn check_reference_pcrs(pcrs: &BTreeMap<u32, Vec<u8>>, policy: &Policy) -> Result<(), VerifyError> {
    for (bank, refs) in &policy.reference_pcrs {
        for (index, expected) in refs {
            // This build quotes the sha256 bank only.
            let found = if bank == "sha256" {
                pcrs.get(index)
            } else {
                None
            };
            match found {
                None => {
                    return Err(VerifyError::PcrNotQuoted {
                        bank: bank.clone(),
                        index: *index,
                    })
                }
                Some(v) if v != expected => {
                    return Err(VerifyError::PcrValueMismatch {
                        bank: bank.clone(),
                        index: *index,
                        expected: hex::encode(expected),
                        found: hex::encode(v),
                    })
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}

fn selection_text(pcrs: &[u32]) -> String {
    pcrs.iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Quote: PCR selection equals the evidence's list; digest recomputes with the
/// quote's signing hash over the values in selection order.
fn check_pcrs(
    attest: &TpmsAttest,
    sig_hash: HashAlg,
    ev: &Evidence,
) -> Result<BTreeMap<u32, Vec<u8>>, VerifyError> {
    let Attested::Quote {
        selection,
        pcr_digest,
    } = &attest.attested
    else {
        return Err(VerifyError::AttestType {
            what: "quote",
            found: attest.attest_type.into(),
            expected: "TPM_ST_ATTEST_QUOTE",
        });
    };
    let quoted: Vec<(u16, &Vec<u32>)> = selection
        .iter()
        .filter(|s| !s.pcrs.is_empty())
        .map(|s| (s.hash, &s.pcrs))
        .collect();
    if quoted.is_empty() {
        return Err(VerifyError::PcrSelectionEmpty);
    }
    let listed: Vec<(String, Vec<u32>)> = ev
        .quote
        .pcrs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(b, v)| (b.clone(), v.keys().copied().collect()))
        .collect();
    let describe_q = quoted
        .iter()
        .map(|(h, p)| {
            format!(
                "{}:{}",
                HashAlg::from_tpm(*h).map(|h| h.name()).unwrap_or("?"),
                selection_text(p)
            )
        })
        .collect::<Vec<_>>()
        .join(" ");
    let describe_l = listed
        .iter()
        .map(|(b, p)| format!("{b}:{}", selection_text(p)))
        .collect::<Vec<_>>()
        .join(" ");
    let mismatch = || VerifyError::PcrSelectionMismatch {
        quoted: describe_q.clone(),
        listed: describe_l.clone(),
    };
    // This build checks the sha256 bank only.
    if quoted.len() != 1
        || listed.len() != 1
        || quoted[0].0 != alg::SHA256
        || listed[0].0 != "sha256"
        || *quoted[0].1 != listed[0].1
    {
        return Err(mismatch());
    }
    let bank = &ev.quote.pcrs["sha256"];
    let mut values = BTreeMap::new();
    let mut parts: Vec<&[u8]> = Vec::new();
    for i in quoted[0].1.iter() {
        let v = &bank[i];
        if v.len() != 32 {
            return Err(VerifyError::PcrValueLength {
                bank: "sha256".into(),
                index: *i,
                len: v.len(),
            });
        }
        parts.push(v);
        values.insert(*i, v.to_vec());
    }
    if sig_hash.digest(&parts) != *pcr_digest {
        return Err(VerifyError::PcrDigestMismatch);
    }
    Ok(values)
}

/// The most intermediate certificates an evidence file may ship.
pub const MAX_SHIPPED_CHAIN: usize = 8;

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

fn verify_inner(
    ev: &Evidence,
    store: Option<&TrustStore>,
    opts: &Options,
) -> Result<Verified, VerifyError> {
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

    // EK: certificate chain to a root, and the EK public is the certified key.
    // The chain shipped in the evidence is bounded: each entry may cost a
    // signature check.
    if ev.ek.chain.len() > MAX_SHIPPED_CHAIN {
        return Err(VerifyError::EkChainTooLong {
            found: ev.ek.chain.len(),
            max: MAX_SHIPPED_CHAIN,
        });
    }
    let chain: Vec<&[u8]> = ev.ek.chain.iter().map(|c| c.as_slice()).collect();
    let (ek_chain, ek_spki) = match store {
        Some(store) => verify_ek_certificate(&ev.ek.certificate, &chain, store, opts.now)?,
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
            (vec!["(chain not checked)".to_string()], spki)
        }
    };
    let ek_public = TpmtPublic::parse_tpm2b(&ev.ek.public).map_err(malformed("EK public"))?;
    check_ek_matches_certificate(&ek_public, &ek_spki)?;
    check_ek(&ek_public)?;

    // AK: restricted signing key, bound to the TPM; its qualified name under the EK.
    let ak_public = TpmtPublic::parse_tpm2b(&ev.ak.public).map_err(malformed("AK public"))?;
    check_ak(&ak_public, &opts.policy)?;
    let ak_name = ak_public.name();
    let ek_qn = primary_qualified_name(rh::ENDORSEMENT, &ek_public.name())
        .ok_or(VerifyError::EkPublicMismatch)?;
    let ak_qn = qualified_name(&ek_qn, &ak_name)
        .ok_or(VerifyError::QualifiedSignerMismatch { what: "AK" })?;

    // KEK: certified by the AK with the nonce; name, hierarchy, attributes, world.
    let (certify, _) = check_signed_attest(
        "KEK certify",
        &ev.kek.certify,
        st::ATTEST_CERTIFY,
        &ak_public,
        &ak_qn,
        &opts.nonce,
        &opts.policy,
    )?;
    let kek_public = TpmtPublic::parse_tpm2b(&ev.kek.public).map_err(malformed("KEK public"))?;
    let kek_name = kek_public.name();
    let Attested::Certify {
        name,
        qualified_name: kek_qn,
    } = &certify.attested
    else {
        return Err(VerifyError::CertifiedNameMismatch);
    };
    if name != &kek_name {
        return Err(VerifyError::CertifiedNameMismatch);
    }
    let owner_qn =
        primary_qualified_name(rh::OWNER, &kek_name).ok_or(VerifyError::CertifiedNameMismatch)?;
    if kek_qn != &owner_qn {
        let null_qn = primary_qualified_name(rh::NULL, &kek_name);
        let detail = if Some(kek_qn) == null_qn.as_ref() {
            "it is a primary of the NULL hierarchy, which a TPM reset destroys".to_string()
        } else {
            "it is not a primary of the owner hierarchy".to_string()
        };
        return Err(VerifyError::KekHierarchy(detail));
    }
    check_kek(&kek_public, &opts.policy)?;
    let kek_pcr_binding = check_kek_binding(ev, &kek_public, &opts.policy)?;

    // Compat KEK (optional): certified by the same AK, a child of the KEK.
    let compat_kek = match &ev.compat_kek {
        None => None,
        Some(c) => {
            let (attest, _) = check_signed_attest(
                "compat KEK certify",
                &c.certify,
                st::ATTEST_CERTIFY,
                &ak_public,
                &ak_qn,
                &opts.nonce,
                &opts.policy,
            )?;
            let public =
                TpmtPublic::parse_tpm2b(&c.public).map_err(malformed("compat KEK public"))?;
            let name = public.name();
            let Attested::Certify {
                name: certified,
                qualified_name: qn,
            } = &attest.attested
            else {
                return Err(VerifyError::CompatKekNameMismatch);
            };
            if certified != &name {
                return Err(VerifyError::CompatKekNameMismatch);
            }
            if qualified_name(&owner_qn, &name).as_ref() != Some(qn) {
                return Err(VerifyError::CompatKekNotUnderKek);
            }
            check_compat_kek(&public)?;
            Some(public)
        }
    };

    // Quote: same AK, same nonce, PCRs consistent.
    let (quote, quote_hash) = check_signed_attest(
        "quote",
        &Signed {
            attest: ev.quote.attest.clone(),
            signature: ev.quote.signature.clone(),
        },
        st::ATTEST_QUOTE,
        &ak_public,
        &ak_qn,
        &opts.nonce,
        &opts.policy,
    )?;
    let pcrs = check_pcrs(&quote, quote_hash, ev)?;
    check_reference_pcrs(&pcrs, &opts.policy)?;

    Ok(Verified {
        world: ev.world.clone(),
        ek_name: ek_public.name(),
        ek_certificate_sha256: byok_protocol::hash::sha256(&ev.ek.certificate),
        host: None,
        ek_public,
        ak_public,
        ak_name,
        ak_qualified_name: ak_qn,
        kek_public,
        kek_name,
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

pub fn ek_subject(ev: &Evidence) -> Option<String> {
    parse_certificates(&ev.ek.certificate)
        .ok()?
        .first()
        .map(subject)
}

#[cfg(test)]
mod tests {
    //! Attribute checks on public areas built in software. A TPM refuses to
    //! create fixedTPM keys without fixedParent or sensitiveDataOrigin, so those
    //! checks cannot be reached with TPM-made keys (tests/forged_tpm_objects.rs
    //! covers the reachable ones); they are defence in depth, defended here.
    use super::*;
    use byok_protocol::public::{Scheme, SymDef};

    fn rsa(attributes: u32, symmetric: SymDef, key_bits: u16) -> TpmtPublic {
        TpmtPublic::build(
            alg::RSA,
            alg::SHA256,
            attributes,
            vec![],
            PublicParams::Rsa {
                symmetric,
                scheme: Scheme::NULL,
                key_bits,
                exponent: 0,
            },
            PublicId::Rsa(vec![0xc5; key_bits as usize / 8]),
        )
    }

    const KEK: u32 = byok_protocol::templates::KEK_ATTRIBUTES;
    const AK: u32 = attr::FIXED_TPM
        | attr::FIXED_PARENT
        | attr::SENSITIVE_DATA_ORIGIN
        | attr::USER_WITH_AUTH
        | attr::RESTRICTED
        | attr::SIGN;

    #[test]
    fn kek_attribute_checks() {
        assert!(check_kek(&rsa(KEK, SymDef::AES_128_CFB, 2048), &Policy::default()).is_ok());
        assert!(matches!(
            check_kek(
                &rsa(KEK & !attr::FIXED_TPM, SymDef::AES_128_CFB, 2048),
                &Policy::default()
            ),
            Err(VerifyError::KekNotFixedTpm)
        ));
        assert!(matches!(
            check_kek(
                &rsa(KEK & !attr::FIXED_PARENT, SymDef::AES_128_CFB, 2048),
                &Policy::default()
            ),
            Err(VerifyError::KekNotFixedParent)
        ));
        assert!(matches!(
            check_kek(
                &rsa(
                    KEK & !attr::SENSITIVE_DATA_ORIGIN,
                    SymDef::AES_128_CFB,
                    2048
                ),
                &Policy::default()
            ),
            Err(VerifyError::KekNotSensitiveDataOrigin)
        ));
        assert!(
            matches!(check_kek(&rsa(KEK & !attr::RESTRICTED, SymDef::AES_128_CFB, 2048), &Policy::default()), Err(VerifyError::KekNotStorageKey(d)) if d == "lacks restricted")
        );
        assert!(
            matches!(check_kek(&rsa(KEK & !attr::DECRYPT, SymDef::AES_128_CFB, 2048), &Policy::default()), Err(VerifyError::KekNotStorageKey(d)) if d == "lacks decrypt")
        );
        assert!(
            matches!(check_kek(&rsa(KEK | attr::SIGN, SymDef::AES_128_CFB, 2048), &Policy::default()), Err(VerifyError::KekNotStorageKey(d)) if d == "has sign")
        );
        assert!(matches!(
            check_kek(&rsa(KEK, SymDef::NULL, 2048), &Policy::default()),
            Err(VerifyError::KekKeyUnsupported(_))
        ));
        assert!(matches!(
            check_kek(&rsa(KEK, SymDef::AES_128_CFB, 1024), &Policy::default()),
            Err(VerifyError::KekKeyUnsupported(_))
        ));
    }

    #[test]
    fn ak_attribute_checks() {
        assert!(check_ak(&rsa(AK, SymDef::NULL, 2048), &Policy::default()).is_ok());
        for (a, what) in [
            (attr::FIXED_TPM, "lacks fixedTPM"),
            (attr::FIXED_PARENT, "lacks fixedParent"),
            (attr::SENSITIVE_DATA_ORIGIN, "lacks sensitiveDataOrigin"),
            (attr::RESTRICTED, "lacks restricted"),
            (attr::SIGN, "lacks sign"),
        ] {
            assert!(
                matches!(check_ak(&rsa(AK & !a, SymDef::NULL, 2048), &Policy::default()), Err(VerifyError::AkAttributes(d)) if d == what),
                "{what}"
            );
        }
        assert!(
            matches!(check_ak(&rsa(AK | attr::DECRYPT, SymDef::NULL, 2048), &Policy::default()), Err(VerifyError::AkAttributes(d)) if d == "has decrypt")
        );
        assert!(matches!(
            check_ak(&rsa(AK, SymDef::NULL, 1024), &Policy::default()),
            Err(VerifyError::AkKeyUnsupported(_))
        ));
    }

    #[test]
    fn ek_attribute_checks() {
        let ek = KEK | attr::ADMIN_WITH_POLICY;
        assert!(check_ek(&rsa(ek, SymDef::AES_128_CFB, 2048)).is_ok());
        assert!(
            matches!(check_ek(&rsa(ek & !attr::FIXED_TPM, SymDef::AES_128_CFB, 2048)), Err(VerifyError::EkAttributes(d)) if d == "lacks fixedTPM")
        );
        assert!(
            matches!(check_ek(&rsa(ek | attr::SIGN, SymDef::AES_128_CFB, 2048)), Err(VerifyError::EkAttributes(d)) if d == "has sign")
        );
    }

    #[test]
    fn compat_kek_attribute_checks() {
        let compat = byok_protocol::templates::COMPAT_KEK_ATTRIBUTES;
        assert!(check_compat_kek(&rsa(compat, SymDef::NULL, 3072)).is_ok());
        for (a, what) in [
            (attr::FIXED_TPM, "lacks fixedTPM"),
            (attr::FIXED_PARENT, "lacks fixedParent"),
            (attr::SENSITIVE_DATA_ORIGIN, "lacks sensitiveDataOrigin"),
            (attr::DECRYPT, "lacks decrypt"),
        ] {
            assert!(
                matches!(check_compat_kek(&rsa(compat & !a, SymDef::NULL, 3072)), Err(VerifyError::CompatKekAttributes(d)) if d == what),
                "{what}"
            );
        }
        assert!(
            matches!(check_compat_kek(&rsa(compat | attr::SIGN, SymDef::NULL, 3072)), Err(VerifyError::CompatKekAttributes(d)) if d == "has sign")
        );
        assert!(
            matches!(check_compat_kek(&rsa(compat | attr::RESTRICTED, SymDef::NULL, 3072)), Err(VerifyError::CompatKekAttributes(d)) if d == "has restricted")
        );
        assert!(matches!(
            check_compat_kek(&rsa(compat, SymDef::NULL, 1024)),
            Err(VerifyError::CompatKekAttributes(_))
        ));
    }
}
