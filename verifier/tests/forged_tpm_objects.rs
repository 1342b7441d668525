//! Forged evidence built with a real TPM (swtpm through tss-esapi): keys whose
//! attributes or hierarchy are wrong, certified or signed by genuine TPM keys.
//! Each must fail verification with its named check. (The tests may use a TPM
//! library; the verifier may not.)

use byok_protocol::formats::{Document, Evidence, Signed};
use byok_protocol::public::{
    primary_qualified_name, qualified_name, PublicId, PublicParams, Scheme, SymDef, TpmtPublic,
};
use byok_protocol::tpm::{alg, attr, rh, st};
use byok_protocol::wire::{tpm2b, unwrap_tpm2b, Writer};
use byok_protocol::world::world_policy;
use byok_tests::{forged_attest, nonce, quote_body, tpm_a, Host};
use byok_verifier::certs::{load_certificates, TrustStore};
use byok_verifier::error::VerifyError;
use byok_verifier::policy::KekPcrRequirement;
use byok_verifier::verify::{verify_evidence, Options};
use serde_bytes::ByteBuf;
use std::str::FromStr;
use std::time::SystemTime;
use tempfile::TempDir;
use tss_esapi::abstraction::{ak, KeyCustomization};
use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::handles::{KeyHandle, PersistentTpmHandle, TpmHandle};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, SignatureSchemeAlgorithm};
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{
    Data, Digest, HashScheme, HashcheckTicket, Private, Public, SignatureScheme,
};
use tss_esapi::tcti_ldr::TctiNameConf;
use tss_esapi::traits::{Marshall, UnMarshall};
use tss_esapi::Context;

struct Setup {
    host: Host,
    _work: TempDir,
    ev: Evidence,
    opts: Options,
    store: TrustStore,
}

fn setup() -> Setup {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    host.init("eu");
    let n = nonce();
    let p = work.path().join("eu.evidence");
    host.evidence("eu", &n, &p);
    let ev = Evidence::from_cbor(&std::fs::read(&p).unwrap()).unwrap();
    let store = TrustStore {
        anchors: load_certificates(&host.ca_bundle).unwrap(),
        ..Default::default()
    };
    let opts = Options {
        nonce: hex::decode(&n).unwrap(),
        world: Some("eu".into()),
        policy: Default::default(),
        now: SystemTime::now(),
    };
    verify_evidence(&ev, &store, &opts).expect("genuine evidence verifies");
    Setup {
        host,
        _work: work,
        ev,
        opts,
        store,
    }
}

fn context(host: &Host) -> Context {
    Context::new(TctiNameConf::from_str(&host.tpm.tcti()).unwrap()).unwrap()
}

fn ek(ctx: &mut Context) -> KeyHandle {
    let h = PersistentTpmHandle::new(0x8101_0001).unwrap();
    ctx.execute_without_session(|c| c.tr_from_tpm_public(TpmHandle::Persistent(h)))
        .unwrap()
        .into()
}

/// The world's genuine AK, loaded from the agent's state.
fn genuine_ak(ctx: &mut Context, host: &Host) -> KeyHandle {
    let bytes = std::fs::read(host.state.path().join("worlds/eu.cbor")).unwrap();
    let v: ciborium::Value = ciborium::from_reader(&bytes[..]).unwrap();
    let field = |k: &str| -> Vec<u8> {
        v.as_map()
            .unwrap()
            .iter()
            .find(|(key, _)| key.as_text() == Some(k))
            .unwrap()
            .1
            .as_bytes()
            .unwrap()
            .clone()
    };
    let public = Public::unmarshall(unwrap_tpm2b("pub", &field("ak_public")).unwrap()).unwrap();
    let private =
        Private::try_from(unwrap_tpm2b("priv", &field("ak_private")).unwrap().to_vec()).unwrap();
    let ek = ek(ctx);
    ak::load_ak(ctx, ek, None, private, public).unwrap()
}

/// An RSA-2048 storage-key template like the KEK's, with other attributes.
fn kek_like(attributes: u32) -> TpmtPublic {
    TpmtPublic::build(
        alg::RSA,
        alg::SHA256,
        attributes,
        world_policy("eu").to_vec(),
        PublicParams::Rsa {
            symmetric: SymDef::AES_128_CFB,
            scheme: Scheme::NULL,
            key_bits: 2048,
            exponent: 0,
        },
        PublicId::Rsa(Vec::new()),
    )
}

/// Create a primary in `hierarchy`, certify it with the genuine AK and the
/// operator's nonce, and put it in the evidence as the KEK.
fn with_tpm_kek(
    s: &Setup,
    hierarchy: Hierarchy,
    template: &TpmtPublic,
) -> Result<Evidence, String> {
    let mut ctx = context(&s.host);
    let created = ctx
        .execute_with_session(Some(AuthSession::Password), |c| {
            c.create_primary(
                hierarchy,
                Public::unmarshall(template.as_bytes()).unwrap(),
                None,
                None,
                None,
                None,
            )
        })
        .map_err(|e| e.to_string())?;
    let ak = genuine_ak(&mut ctx, &s.host);
    let (attest, sig) = ctx
        .execute_with_sessions(
            (
                Some(AuthSession::Password),
                Some(AuthSession::Password),
                None,
            ),
            |c| {
                c.certify(
                    created.key_handle.into(),
                    ak,
                    Data::try_from(s.opts.nonce.clone()).unwrap(),
                    SignatureScheme::Null,
                )
            },
        )
        .unwrap();
    ctx.flush_context(ak.into()).unwrap();
    ctx.flush_context(created.key_handle.into()).unwrap();
    let mut ev = s.ev.clone();
    ev.kek.public = ByteBuf::from(tpm2b(&created.out_public.marshall().unwrap()));
    ev.kek.certify = Signed {
        attest: ByteBuf::from(attest.marshall().unwrap()),
        signature: ByteBuf::from(sig.marshall().unwrap()),
    };
    Ok(ev)
}

fn verify(s: &Setup, ev: &Evidence) -> Result<(), VerifyError> {
    verify_evidence(ev, &s.store, &s.opts).map(|_| ())
}

const STORAGE: u32 = attr::FIXED_TPM
    | attr::FIXED_PARENT
    | attr::SENSITIVE_DATA_ORIGIN
    | attr::USER_WITH_AUTH
    | attr::NO_DA
    | attr::RESTRICTED
    | attr::DECRYPT;

#[test]
fn a_tpm_key_certified_as_kek_with_the_genuine_template_verifies() {
    // Control: the same construction with the real KEK attributes passes, so
    // the failures below come from the attribute or hierarchy alone.
    let s = setup();
    let ev = with_tpm_kek(&s, Hierarchy::Owner, &kek_like(STORAGE)).unwrap();
    verify(&s, &ev).unwrap();
}

#[test]
fn kek_without_fixed_tpm_is_refused() {
    let s = setup();
    let ev = with_tpm_kek(
        &s,
        Hierarchy::Owner,
        &kek_like(STORAGE & !attr::FIXED_TPM & !attr::FIXED_PARENT),
    )
    .unwrap();
    let r = verify(&s, &ev);
    assert!(matches!(r, Err(VerifyError::KekNotFixedTpm)), "{r:?}");
}

#[test]
fn kek_in_the_null_hierarchy_is_refused() {
    let s = setup();
    let ev = with_tpm_kek(&s, Hierarchy::Null, &kek_like(STORAGE)).unwrap();
    let r = verify(&s, &ev);
    assert!(
        matches!(&r, Err(VerifyError::KekHierarchy(d)) if d.contains("NULL hierarchy")),
        "{r:?}"
    );
}

#[test]
fn kek_in_the_endorsement_hierarchy_is_refused() {
    let s = setup();
    let ev = with_tpm_kek(&s, Hierarchy::Endorsement, &kek_like(STORAGE)).unwrap();
    let r = verify(&s, &ev);
    assert!(
        matches!(&r, Err(VerifyError::KekHierarchy(d)) if d.contains("not a primary of the owner")),
        "{r:?}"
    );
}

#[test]
fn signing_key_certified_as_kek_is_refused() {
    let s = setup();
    let template = TpmtPublic::build(
        alg::RSA,
        alg::SHA256,
        attr::FIXED_TPM
            | attr::FIXED_PARENT
            | attr::SENSITIVE_DATA_ORIGIN
            | attr::USER_WITH_AUTH
            | attr::SIGN,
        world_policy("eu").to_vec(),
        PublicParams::Rsa {
            symmetric: SymDef::NULL,
            scheme: Scheme::NULL,
            key_bits: 2048,
            exponent: 0,
        },
        PublicId::Rsa(Vec::new()),
    );
    let ev = with_tpm_kek(&s, Hierarchy::Owner, &template).unwrap();
    let r = verify(&s, &ev);
    assert!(matches!(r, Err(VerifyError::KekNotStorageKey(_))), "{r:?}");
}

#[test]
fn kek_of_another_world_on_the_same_tpm_is_refused() {
    let s = setup();
    let mut t = kek_like(STORAGE);
    t = TpmtPublic::build(
        t.object_type,
        t.name_alg,
        t.attributes,
        world_policy("us").to_vec(),
        t.params.clone(),
        t.unique.clone(),
    );
    let ev = with_tpm_kek(&s, Hierarchy::Owner, &t).unwrap();
    let r = verify(&s, &ev);
    assert!(
        matches!(r, Err(VerifyError::KekWorldMismatch { .. })),
        "{r:?}"
    );
}

struct Unrestricted;
impl KeyCustomization for Unrestricted {
    fn attributes(&self, b: ObjectAttributesBuilder) -> ObjectAttributesBuilder {
        b.with_restricted(false)
    }
}

#[test]
fn unrestricted_ak_signing_forged_attestations_is_refused() {
    let s = setup();
    let mut ctx = context(&s.host);
    let ek = ek(&mut ctx);
    let created = ak::create_ak(
        &mut ctx,
        ek,
        HashingAlgorithm::Sha256,
        SignatureSchemeAlgorithm::RsaSsa,
        None,
        Unrestricted,
    )
    .unwrap();
    let fake_ak_public = TpmtPublic::parse(&created.out_public.marshall().unwrap()).unwrap();
    assert!(!fake_ak_public.has(attr::RESTRICTED));
    let ak = ak::load_ak(&mut ctx, ek, None, created.out_private, created.out_public).unwrap();

    // A software "KEK" with perfect attributes, and attestations claiming the
    // TPM certified it and quoted the PCRs, signed by the unrestricted key.
    let ek_public = TpmtPublic::parse_tpm2b(&s.ev.ek.public).unwrap();
    let ek_qn = primary_qualified_name(rh::ENDORSEMENT, &ek_public.name()).unwrap();
    let qn = qualified_name(&ek_qn, &fake_ak_public.name()).unwrap();
    let genuine_kek = TpmtPublic::parse_tpm2b(&s.ev.kek.public).unwrap();
    let mut body = Writer::new();
    body.tpm2b(&genuine_kek.name())
        .tpm2b(&primary_qualified_name(rh::OWNER, &genuine_kek.name()).unwrap());
    let certify = forged_attest(st::ATTEST_CERTIFY, &qn, &s.opts.nonce, &body.into_vec());
    let quote = forged_attest(
        st::ATTEST_QUOTE,
        &qn,
        &s.opts.nonce,
        &quote_body(&s.ev.quote.attest),
    );
    let mut sign = |msg: &[u8]| -> Vec<u8> {
        use tss_esapi::structures::Signature;
        let digest = Digest::try_from(byok_protocol::hash::sha256(msg).to_vec()).unwrap();
        let ticket = HashcheckTicket::try_from(tss_esapi::tss2_esys::TPMT_TK_HASHCHECK {
            tag: tss_esapi::constants::tss::TPM2_ST_HASHCHECK,
            hierarchy: tss_esapi::constants::tss::TPM2_RH_NULL,
            digest: Default::default(),
        })
        .unwrap();
        let sig: Signature = ctx
            .execute_with_session(Some(AuthSession::Password), |c| {
                c.sign(
                    ak,
                    digest,
                    SignatureScheme::RsaSsa {
                        hash_scheme: HashScheme::new(HashingAlgorithm::Sha256),
                    },
                    ticket,
                )
            })
            .unwrap();
        sig.marshall().unwrap()
    };
    let certify_sig = sign(&certify);
    let quote_sig = sign(&quote);
    ctx.flush_context(ak.into()).unwrap();

    let mut ev = s.ev.clone();
    ev.ak.public = ByteBuf::from(tpm2b(fake_ak_public.as_bytes()));
    ev.kek.certify = Signed {
        attest: ByteBuf::from(certify),
        signature: ByteBuf::from(certify_sig),
    };
    ev.quote.attest = ByteBuf::from(quote);
    ev.quote.signature = ByteBuf::from(quote_sig);
    let r = verify(&s, &ev);
    assert!(
        matches!(&r, Err(VerifyError::AkAttributes(d)) if d.contains("lacks restricted")),
        "{r:?}"
    );
}

/// An AK whose scheme is RSASSA with SHA-1 (a real TPM key; SHA-256 name).
struct Sha1Ak;
impl KeyCustomization for Sha1Ak {
    fn template(
        &self,
        b: tss_esapi::structures::PublicBuilder,
    ) -> tss_esapi::structures::PublicBuilder {
        use tss_esapi::interface_types::key_bits::RsaKeyBits;
        use tss_esapi::structures::{
            PublicRsaParametersBuilder, RsaExponent, RsaScheme, SymmetricDefinitionObject,
        };
        b.with_rsa_parameters(
            PublicRsaParametersBuilder::new()
                .with_symmetric(SymmetricDefinitionObject::Null)
                .with_scheme(
                    RsaScheme::create(
                        tss_esapi::interface_types::algorithm::RsaSchemeAlgorithm::RsaSsa,
                        Some(HashingAlgorithm::Sha1),
                    )
                    .unwrap(),
                )
                .with_key_bits(RsaKeyBits::Rsa2048)
                .with_exponent(RsaExponent::default())
                .with_is_signing_key(true)
                .with_is_decryption_key(false)
                .with_restricted(true)
                .build()
                .unwrap(),
        )
    }
}

#[test]
fn sha1_signed_attestations_need_allow_sha1_and_the_digest_follows_the_signing_hash() {
    let s = setup();
    let created = {
        let mut ctx = context(&s.host);
        let ek = ek(&mut ctx);
        ak::create_ak(
            &mut ctx,
            ek,
            HashingAlgorithm::Sha256,
            SignatureSchemeAlgorithm::RsaSsa,
            None,
            Sha1Ak,
        )
        .unwrap()
    };
    let ev = attested_by(&s, created);
    // The quote's pcrDigest is SHA-1 (20 bytes) over the sha256 bank's values.
    let parsed = byok_protocol::TpmsAttest::parse(&ev.quote.attest).unwrap();
    let byok_protocol::attest::Attested::Quote { pcr_digest, .. } = parsed.attested else {
        panic!("not a quote")
    };
    assert_eq!(pcr_digest.len(), 20);

    let r = verify(&s, &ev);
    assert!(
        matches!(
            r,
            Err(VerifyError::SignatureHashNotAllowed {
                what: "KEK certify",
                hash: "SHA-1"
            })
        ),
        "{r:?}"
    );
    let mut opts = s.opts.clone();
    opts.policy.allow_sha1 = true;
    verify_evidence(&ev, &s.store, &opts).expect("SHA-1 evidence verifies when allowed");
}

#[test]
fn a_quote_over_no_pcrs_is_refused() {
    use tss_esapi::structures::PcrSelectionListBuilder;
    let s = setup();
    let mut ctx = context(&s.host);
    let ak = genuine_ak(&mut ctx, &s.host);
    let nonce = Data::try_from(s.opts.nonce.clone()).unwrap();
    let empty = PcrSelectionListBuilder::new()
        .with_selection(HashingAlgorithm::Sha256, &[])
        .build()
        .unwrap();
    let (quote, sig) = ctx
        .execute_with_session(Some(AuthSession::Password), |c| {
            c.quote(ak, nonce, SignatureScheme::Null, empty)
        })
        .unwrap();
    ctx.flush_context(ak.into()).unwrap();
    let mut ev = s.ev.clone();
    ev.quote.attest = ByteBuf::from(quote.marshall().unwrap());
    ev.quote.signature = ByteBuf::from(sig.marshall().unwrap());
    ev.quote.pcrs.get_mut("sha256").unwrap().clear();
    let r = verify(&s, &ev);
    assert!(matches!(r, Err(VerifyError::PcrSelectionEmpty)), "{r:?}");
}

/// Evidence whose AK is a real TPM ECC key (P-256/ECDSA-SHA256 or
/// P-384/ECDSA-SHA384) created under the EK: it verifies, and a flipped
/// signature byte does not.
#[test]
fn ecdsa_aks_verify() {
    use tss_esapi::interface_types::ecc::EccCurve;
    let s = setup();
    for (curve, hash) in [
        (EccCurve::NistP256, HashingAlgorithm::Sha256),
        (EccCurve::NistP384, HashingAlgorithm::Sha384),
    ] {
        let created = {
            let mut ctx = context(&s.host);
            let ek = ek(&mut ctx);
            ak::create_ak_2(
                &mut ctx,
                ek,
                hash,
                tss_esapi::abstraction::AsymmetricAlgorithmSelection::Ecc(curve),
                SignatureSchemeAlgorithm::EcDsa,
                None,
                None,
            )
            .unwrap()
        };
        let ev = attested_by(&s, created);
        verify(&s, &ev).unwrap_or_else(|e| panic!("{curve:?}: {e}"));
        let mut bad = ev.clone();
        let last = bad.quote.signature.len() - 1;
        bad.quote.signature[last] ^= 1;
        assert!(matches!(
            verify(&s, &bad),
            Err(VerifyError::SignatureInvalid { what: "quote" })
        ));
        // The policy can refuse a curve.
        let mut opts = s.opts.clone();
        opts.policy.allowed_curves = vec![byok_protocol::tpm::curve::NIST_P384];
        let r = verify_evidence(&ev, &s.store, &opts);
        if curve == EccCurve::NistP256 {
            assert!(matches!(r, Err(VerifyError::AkKeyUnsupported(_))), "{r:?}");
        } else {
            r.unwrap();
        }
    }
}

/// The genuine evidence re-attested by another AK made in the TPM: that AK
/// certifies the world's KEK and quotes sha256 PCRs 0-7 with the operator's nonce.
fn attested_by(s: &Setup, created: tss_esapi::structures::CreateKeyResult) -> Evidence {
    use tss_esapi::structures::{PcrSelectionListBuilder, PcrSlot};
    let mut ctx = context(&s.host);
    let ek = ek(&mut ctx);
    let ak_public = tpm2b(&created.out_public.marshall().unwrap());
    let ak = ak::load_ak(&mut ctx, ek, None, created.out_private, created.out_public).unwrap();
    let kek = {
        let h = PersistentTpmHandle::new(0x8100_0100).unwrap();
        ctx.execute_without_session(|c| c.tr_from_tpm_public(TpmHandle::Persistent(h)))
            .unwrap()
    };
    let nonce = Data::try_from(s.opts.nonce.clone()).unwrap();
    let (certify, certify_sig) = ctx
        .execute_with_sessions(
            (
                Some(AuthSession::Password),
                Some(AuthSession::Password),
                None,
            ),
            |c| c.certify(kek, ak, nonce.clone(), SignatureScheme::Null),
        )
        .unwrap();
    let slots: Vec<PcrSlot> = (0..8)
        .map(|i| PcrSlot::try_from(1u32 << i).unwrap())
        .collect();
    let selection = PcrSelectionListBuilder::new()
        .with_selection(HashingAlgorithm::Sha256, &slots)
        .build()
        .unwrap();
    let (quote, quote_sig) = ctx
        .execute_with_session(Some(AuthSession::Password), |c| {
            c.quote(ak, nonce, SignatureScheme::Null, selection)
        })
        .unwrap();
    ctx.flush_context(ak.into()).unwrap();
    let mut ev = s.ev.clone();
    ev.ak.public = ByteBuf::from(ak_public);
    ev.kek.certify = Signed {
        attest: ByteBuf::from(certify.marshall().unwrap()),
        signature: ByteBuf::from(certify_sig.marshall().unwrap()),
    };
    ev.quote.attest = ByteBuf::from(quote.marshall().unwrap());
    ev.quote.signature = ByteBuf::from(quote_sig.marshall().unwrap());
    ev
}

#[test]
fn ecc_storage_kek_certified_by_the_ak_verifies_and_wraps() {
    use byok_protocol::tpm::curve;
    let s = setup();
    for (c, sym) in [
        (curve::NIST_P256, SymDef::AES_128_CFB),
        (
            curve::NIST_P384,
            SymDef {
                algorithm: alg::AES,
                key_bits: 256,
                mode: alg::CFB,
            },
        ),
    ] {
        let template = TpmtPublic::build(
            alg::ECC,
            alg::SHA256,
            STORAGE,
            world_policy("eu").to_vec(),
            PublicParams::Ecc {
                symmetric: sym,
                scheme: Scheme::NULL,
                curve: c,
                kdf: Scheme::NULL,
            },
            PublicId::Ecc {
                x: Vec::new(),
                y: Vec::new(),
            },
        );
        let ev = with_tpm_kek(&s, Hierarchy::Owner, &template).unwrap();
        let verified = verify_evidence(&ev, &s.store, &s.opts).unwrap();
        assert!(verified.kek_public.describe_key().starts_with("ECC"));
        // A package for it: the seed is an ephemeral ECC point.
        let key =
            byok_protocol::keys::TargetKey::generate(byok_protocol::keys::KeyAlg::P256).unwrap();
        let pkg = byok_verifier::wrap::wrap(&verified, &key, None, None).unwrap();
        let len = if c == curve::NIST_P256 { 32 } else { 48 };
        assert_eq!(pkg.object.seed.len(), 2 + 2 + len + 2 + len);
    }
}

/// A KEK template bound to PCRs 16 and 23 at `values`, as `init --pcrs` makes it.
fn pcr_bound_kek(attributes: u32, values: &[Vec<u8>]) -> TpmtPublic {
    pcr_bound_kek_on("sha256:16,23", attributes, values)
}

/// A KEK template bound to the PCRs of `spec` at `values`.
fn pcr_bound_kek_on(spec: &str, attributes: u32, values: &[Vec<u8>]) -> TpmtPublic {
    let spec = byok_protocol::policy::PcrSpec::parse(spec).unwrap();
    let policy = byok_protocol::world::pcr_bound_kek_policy("eu", &spec, values);
    let t = kek_like(attributes);
    TpmtPublic::build(
        t.object_type,
        t.name_alg,
        attributes,
        policy,
        t.params.clone(),
        t.unique.clone(),
    )
}

fn binding(
    values: &[Vec<u8>],
) -> std::collections::BTreeMap<String, std::collections::BTreeMap<u32, ByteBuf>> {
    binding_on(&[16, 23], values)
}

fn binding_on(
    pcrs: &[u32],
    values: &[Vec<u8>],
) -> std::collections::BTreeMap<String, std::collections::BTreeMap<u32, ByteBuf>> {
    let bank = pcrs
        .iter()
        .copied()
        .zip(values.iter().map(|v| ByteBuf::from(v.clone())))
        .collect();
    [("sha256".to_string(), bank)].into_iter().collect()
}

#[test]
fn pcr_bound_keks_verify_only_with_the_values_their_policy_was_made_from() {
    let s = setup();
    let values = vec![vec![0u8; 32], vec![0x23u8; 32]];
    let mut ev = with_tpm_kek(
        &s,
        Hierarchy::Owner,
        &pcr_bound_kek(STORAGE & !attr::USER_WITH_AUTH, &values),
    )
    .unwrap();
    // Without the values the authPolicy binds no world we can recognise.
    let r = verify(&s, &ev);
    assert!(
        matches!(r, Err(VerifyError::KekWorldMismatch { .. })),
        "{r:?}"
    );
    ev.kek.pcr_binding = Some(binding(&values));
    let v = verify_evidence(&ev, &s.store, &s.opts).expect("PCR-bound KEK verifies");
    let b = v.kek_pcr_binding.expect("binding reported");
    assert_eq!(b.pcrs.describe(), "sha256:16,23");
    assert_eq!(b.values, values);

    // Each reported value is checked through the signed authPolicy.
    for (i, byte) in [(0usize, 0usize), (1, 31)] {
        let mut other = values.clone();
        other[i][byte] ^= 1;
        let mut forged = ev.clone();
        forged.kek.pcr_binding = Some(binding(&other));
        let r = verify(&s, &forged);
        assert!(
            matches!(r, Err(VerifyError::KekWorldMismatch { .. })),
            "{r:?}"
        );
    }
    // Malformed bindings: two banks; a wrong value size.
    let mut forged = ev.clone();
    let mut two = binding(&values);
    two.insert("sha1".into(), Default::default());
    forged.kek.pcr_binding = Some(two);
    assert!(matches!(
        verify(&s, &forged),
        Err(VerifyError::KekPcrBindingMalformed(_))
    ));
    let mut forged = ev.clone();
    forged.kek.pcr_binding = Some(binding(&[vec![0u8; 32], vec![0u8; 20]]));
    assert!(matches!(
        verify(&s, &forged),
        Err(VerifyError::KekPcrBindingMalformed(_))
    ));

    // PCR indices beyond 23, and an empty bank.
    let mut forged = ev.clone();
    let mut high = binding(&values);
    let v = high.get_mut("sha256").unwrap().remove(&23).unwrap();
    high.get_mut("sha256").unwrap().insert(24, v);
    forged.kek.pcr_binding = Some(high);
    assert!(matches!(
        verify(&s, &forged),
        Err(VerifyError::KekPcrBindingMalformed(_))
    ));
    let mut forged = ev.clone();
    forged.kek.pcr_binding = Some(
        [("sha256".to_string(), Default::default())]
            .into_iter()
            .collect(),
    );
    assert!(matches!(
        verify(&s, &forged),
        Err(VerifyError::KekPcrBindingMalformed(_))
    ));

    // The policy's reference values fix the bound values.
    let mut opts = s.opts.clone();
    opts.policy.reference_pcrs.insert(
        "sha256".into(),
        [(23u32, vec![0x24u8; 32])].into_iter().collect(),
    );
    let r = verify_evidence(&ev, &s.store, &opts).map(|_| ());
    assert!(
        matches!(
            &r,
            Err(VerifyError::KekPcrBindingMismatch { index: 23, .. })
        ),
        "{r:?}"
    );
    // A policy that requires a PCR-bound KEK refuses the plain one, and one
    // bound only to PCRs software can reset (16 and 23), even with reference
    // values for both.
    let mut opts = s.opts.clone();
    opts.policy.require_kek_pcrs = KekPcrRequirement::Any;
    let r = verify_evidence(&s.ev, &s.store, &opts).map(|_| ());
    assert!(matches!(r, Err(VerifyError::KekNotPcrBound)), "{r:?}");
    opts.policy.reference_pcrs.insert(
        "sha256".into(),
        [(16u32, values[0].clone()), (23, values[1].clone())]
            .into_iter()
            .collect(),
    );
    let r = verify_evidence(&ev, &s.store, &opts).map(|_| ());
    assert!(
        matches!(&r, Err(VerifyError::KekPcrResettable { bound }) if bound == "sha256:16,23"),
        "{r:?}"
    );
}

#[test]
fn required_kek_pcr_bindings_need_fixed_pcrs_with_reference_values() {
    let s = setup();
    // PCRs 6 and 7 as swtpm quotes them (zeros), so the quoted values and
    // the references agree. (Resettable PCRs: the test above.)
    let values = vec![vec![0u8; 32], vec![0u8; 32]];
    let mut ev = with_tpm_kek(
        &s,
        Hierarchy::Owner,
        &pcr_bound_kek_on("sha256:6,7", STORAGE & !attr::USER_WITH_AUTH, &values),
    )
    .unwrap();
    ev.kek.pcr_binding = Some(binding_on(&[6, 7], &values));
    let with = |req: KekPcrRequirement, refs: &[(u32, &Vec<u8>)]| {
        let mut opts = s.opts.clone();
        opts.policy.require_kek_pcrs = req;
        opts.policy.reference_pcrs.insert(
            "sha256".into(),
            refs.iter().map(|(i, v)| (*i, v.to_vec())).collect(),
        );
        verify_evidence(&ev, &s.store, &opts).map(|_| ())
    };
    let all = [(6u32, &values[0]), (7, &values[1])];
    // Bound to fixed PCRs with every bound PCR referenced: accepted.
    with(KekPcrRequirement::Any, &all).expect("PCRs 6 and 7 make the binding");
    with(KekPcrRequirement::These(vec![7]), &all).expect("PCR 7 required and bound");
    // A bound PCR without a reference value.
    let r = with(KekPcrRequirement::Any, &all[1..]);
    assert!(
        matches!(r, Err(VerifyError::KekPcrUnreferenced { index: 6, .. })),
        "{r:?}"
    );
    // A required PCR the KEK is not bound to.
    let r = with(KekPcrRequirement::These(vec![0, 7]), &all);
    assert!(
        matches!(&r, Err(VerifyError::KekPcrsMissing { missing, .. }) if missing == "0"),
        "{r:?}"
    );
    // Not required: reported, and reference values where the policy has them
    // are still compared.
    with(KekPcrRequirement::None, &[]).expect("binding reported only");
    let other = vec![0x11u8; 32];
    let r = with(KekPcrRequirement::None, &[(6, &other)]);
    assert!(
        matches!(r, Err(VerifyError::KekPcrBindingMismatch { index: 6, .. })),
        "{r:?}"
    );
}

#[test]
fn pcr_bound_kek_with_user_with_auth_is_refused() {
    // userWithAuth set: the empty auth value works and the PCR policy binds nothing.
    let s = setup();
    let values = vec![vec![0u8; 32], vec![0u8; 32]];
    let mut ev = with_tpm_kek(&s, Hierarchy::Owner, &pcr_bound_kek(STORAGE, &values)).unwrap();
    ev.kek.pcr_binding = Some(binding(&values));
    let r = verify(&s, &ev);
    assert!(
        matches!(r, Err(VerifyError::KekPcrBindingNotEnforced)),
        "{r:?}"
    );
}

/// Import a software RSA storage key with `attributes` under a fresh owner
/// storage primary (TPM2_Import of a duplication blob made by protocol/).
fn import_storage_key(
    ctx: &mut Context,
    attributes: u32,
) -> Result<(KeyHandle, TpmtPublic), tss_esapi::Error> {
    use byok_protocol::keys::{KeyAlg, TargetKey};
    use tss_esapi::structures::{EncryptedSecret, SymmetricDefinitionObject};
    let srk = ctx.execute_with_session(Some(AuthSession::Password), |c| {
        c.create_primary(
            Hierarchy::Owner,
            Public::unmarshall(kek_like(STORAGE).as_bytes()).unwrap(),
            None,
            None,
            None,
            None,
        )
    })?;
    let srk_public = TpmtPublic::parse(&srk.out_public.marshall().unwrap()).unwrap();
    let key = TargetKey::generate(KeyAlg::Rsa2048).unwrap();
    let software = key.tpm_public();
    let public = TpmtPublic::build(
        alg::RSA,
        alg::SHA256,
        attributes,
        world_policy("eu").to_vec(),
        PublicParams::Rsa {
            symmetric: SymDef::AES_128_CFB,
            scheme: Scheme::NULL,
            key_bits: 2048,
            exponent: 0,
        },
        software.unique.clone(),
    );
    // A storage key's sensitive area carries a seedValue of its name
    // algorithm's size (its children's protection keys come from it).
    let plain = key.tpm_sensitive();
    assert_eq!(&plain[2..6], &[0, 0, 0, 0], "empty authValue and seedValue");
    let mut sensitive = plain[..4].to_vec();
    sensitive.extend([0, 32]);
    sensitive.extend([0x5e; 32]);
    sensitive.extend(&plain[6..]);
    let blob = byok_protocol::duplicate::duplicate(&srk_public, &public, &sensitive, None).unwrap();
    let private = ctx.execute_with_session(Some(AuthSession::Password), |c| {
        c.import(
            srk.key_handle.into(),
            None,
            Public::unmarshall(public.as_bytes()).unwrap(),
            Private::try_from(unwrap_tpm2b("dup", &blob.duplicate).unwrap().to_vec()).unwrap(),
            EncryptedSecret::try_from(unwrap_tpm2b("seed", &blob.seed).unwrap().to_vec()).unwrap(),
            SymmetricDefinitionObject::Null,
        )
    });
    let private = match private {
        Ok(p) => p,
        Err(e) => {
            ctx.flush_context(srk.key_handle.into()).unwrap();
            return Err(e);
        }
    };
    let loaded = ctx.execute_with_session(Some(AuthSession::Password), |c| {
        c.load(
            srk.key_handle,
            private,
            Public::unmarshall(public.as_bytes()).unwrap(),
        )
    })?;
    // swtpm has three object slots: the child stays loaded without its parent.
    ctx.flush_context(srk.key_handle.into()).unwrap();
    Ok((loaded, public))
}

#[test]
fn a_kek_imported_from_outside_is_refused() {
    let s = setup();
    let mut ctx = context(&s.host);
    // The TPM itself refuses an outside key that claims to be fixedTPM /
    // generated inside (TPM2_Import: TPM_RC_ATTRIBUTES)...
    let claimed = import_storage_key(&mut ctx, STORAGE);
    use tss_esapi::constants::response_code::Tss2ResponseCodeKind;
    match claimed {
        Err(tss_esapi::Error::Tss2Error(rc)) => {
            assert_eq!(rc.kind(), Some(Tss2ResponseCodeKind::Attributes), "{rc:?}")
        }
        Err(e) => panic!("unexpected error {e:?}"),
        Ok(_) => panic!("the TPM imported a fixedTPM key"),
    }
    // ... so an imported storage key is honest about it: fixedTPM, fixedParent
    // and sensitiveDataOrigin clear. Certified by the genuine AK and offered
    // as the KEK, it is refused: it is a child of an owner key, not the
    // owner-hierarchy primary a KEK is (its signed qualified name shows it),
    // and its attributes say it came from outside.
    let attributes = attr::USER_WITH_AUTH | attr::NO_DA | attr::RESTRICTED | attr::DECRYPT;
    let (imported, public) = import_storage_key(&mut ctx, attributes).unwrap();
    let ak = genuine_ak(&mut ctx, &s.host);
    let (attest, sig) = ctx
        .execute_with_sessions(
            (
                Some(AuthSession::Password),
                Some(AuthSession::Password),
                None,
            ),
            |c| {
                c.certify(
                    imported.into(),
                    ak,
                    Data::try_from(s.opts.nonce.clone()).unwrap(),
                    SignatureScheme::Null,
                )
            },
        )
        .unwrap();
    for h in [ak, imported] {
        ctx.flush_context(h.into()).unwrap();
    }
    let mut ev = s.ev.clone();
    ev.kek.public = ByteBuf::from(public.to_tpm2b());
    ev.kek.certify = Signed {
        attest: ByteBuf::from(attest.marshall().unwrap()),
        signature: ByteBuf::from(sig.marshall().unwrap()),
    };
    let r = verify(&s, &ev);
    assert!(
        matches!(&r, Err(VerifyError::KekHierarchy(d)) if d.contains("not a primary of the owner")),
        "{r:?}"
    );
    let r = byok_verifier::check::kek::check_kek(&public, &s.opts.policy);
    assert!(matches!(r, Err(VerifyError::KekNotFixedTpm)), "{r:?}");
    let mut only_origin = TpmtPublic::build(
        public.object_type,
        public.name_alg,
        public.attributes | attr::FIXED_TPM | attr::FIXED_PARENT,
        public.auth_policy.clone(),
        public.params.clone(),
        public.unique.clone(),
    );
    let r = byok_verifier::check::kek::check_kek(&only_origin, &s.opts.policy);
    assert!(
        matches!(r, Err(VerifyError::KekNotSensitiveDataOrigin)),
        "{r:?}"
    );
    only_origin = TpmtPublic::build(
        only_origin.object_type,
        only_origin.name_alg,
        only_origin.attributes | attr::SENSITIVE_DATA_ORIGIN,
        only_origin.auth_policy.clone(),
        only_origin.params.clone(),
        only_origin.unique.clone(),
    );
    byok_verifier::check::kek::check_kek(&only_origin, &s.opts.policy).unwrap();
}
