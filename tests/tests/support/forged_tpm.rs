//! Forging TPM objects with a real TPM (swtpm through tss-esapi) for the
//! verifier_forged_* tests: a host with genuine evidence, its EK and AK, and
//! keys with chosen attributes certified or signed by them. (The tests may
//! use a TPM library; the verifier may not.)
// Each test file uses part of this module.
#![allow(dead_code)]

use byok_protocol::formats::{Document, Evidence, Signed};
use byok_protocol::hash::HashAlg;
use byok_protocol::public::{PublicId, PublicParams, Scheme, SymDef, TpmtPublic};
use byok_protocol::tpm::{alg, attr};
use byok_protocol::wire::{tpm2b, unwrap_tpm2b};
use byok_protocol::world::world_policy;
use byok_tests::{nonce, tpm_a, Host};
use byok_verifier::certs::{load_certificates, TrustStore};
use byok_verifier::error::VerifyError;
use byok_verifier::verify::{verify_evidence, Options};
use serde_bytes::ByteBuf;
use std::str::FromStr;
use std::time::SystemTime;
use tempfile::TempDir;
use tss_esapi::abstraction::{ak, KeyCustomization};
use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::handles::{KeyHandle, PersistentTpmHandle, TpmHandle};
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{Data, Private, Public, SignatureScheme};
use tss_esapi::tcti_ldr::TctiNameConf;
use tss_esapi::traits::{Marshall, UnMarshall};
use tss_esapi::Context;

pub struct Setup {
    pub host: Host,
    pub _work: TempDir,
    pub ev: Evidence,
    pub opts: Options,
    pub store: TrustStore,
}

pub fn setup() -> Setup {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    host.init("eu");
    let n = nonce();
    let p = work.path().join("eu.evidence");
    host.evidence("eu", &n, &p);
    let ev = Evidence::from_cbor(&std::fs::read(&p).unwrap()).unwrap();
    let store = TrustStore {
        anchors: load_certificates(&host.ca_bundle, byok_verifier::certs::CertSource::Roots)
            .unwrap()
            .certs,
        ..Default::default()
    };
    let opts = Options {
        nonce: hex::decode(&n).unwrap(),
        world: Some("eu".parse().unwrap()),
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

pub fn context(host: &Host) -> Context {
    Context::new(TctiNameConf::from_str(&host.tpm.tcti()).unwrap()).unwrap()
}

pub fn ek(ctx: &mut Context) -> KeyHandle {
    let h = PersistentTpmHandle::new(0x8101_0001).unwrap();
    ctx.execute_without_session(|c| c.tr_from_tpm_public(TpmHandle::Persistent(h)))
        .unwrap()
        .into()
}

/// The world's genuine AK, loaded from the agent's state.
pub fn genuine_ak(ctx: &mut Context, host: &Host) -> KeyHandle {
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
pub fn kek_like(attributes: u32) -> TpmtPublic {
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
pub fn with_tpm_kek(
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

pub fn verify(s: &Setup, ev: &Evidence) -> Result<(), VerifyError> {
    verify_evidence(ev, &s.store, &s.opts).map(|_| ())
}

pub const STORAGE: u32 = attr::FIXED_TPM
    | attr::FIXED_PARENT
    | attr::SENSITIVE_DATA_ORIGIN
    | attr::USER_WITH_AUTH
    | attr::NO_DA
    | attr::RESTRICTED
    | attr::DECRYPT;

pub struct Unrestricted;
impl KeyCustomization for Unrestricted {
    fn attributes(&self, b: ObjectAttributesBuilder) -> ObjectAttributesBuilder {
        b.with_restricted(false)
    }
}

/// An AK whose scheme is RSASSA with SHA-1 (a real TPM key; SHA-256 name).
pub struct Sha1Ak;
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

/// The genuine evidence re-attested by another AK made in the TPM: that AK
/// certifies the world's KEK and quotes sha256 PCRs 0-7 with the operator's nonce.
pub fn attested_by(s: &Setup, created: tss_esapi::structures::CreateKeyResult) -> Evidence {
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

/// A KEK template bound to PCRs 16 and 23 at `values`, as `init --pcrs` makes it.
pub fn pcr_bound_kek(attributes: u32, values: &[Vec<u8>]) -> TpmtPublic {
    pcr_bound_kek_on("sha256:16,23", attributes, values)
}

/// A KEK template bound to the PCRs of `spec` at `values`.
pub fn pcr_bound_kek_on(spec: &str, attributes: u32, values: &[Vec<u8>]) -> TpmtPublic {
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

pub fn binding(
    values: &[Vec<u8>],
) -> std::collections::BTreeMap<HashAlg, std::collections::BTreeMap<u32, ByteBuf>> {
    binding_on(&[16, 23], values)
}

pub fn binding_on(
    pcrs: &[u32],
    values: &[Vec<u8>],
) -> std::collections::BTreeMap<HashAlg, std::collections::BTreeMap<u32, ByteBuf>> {
    let bank = pcrs
        .iter()
        .copied()
        .zip(values.iter().map(|v| ByteBuf::from(v.clone())))
        .collect();
    [(HashAlg::Sha256, bank)].into_iter().collect()
}

/// Import a software RSA storage key with `attributes` under a fresh owner
/// storage primary (TPM2_Import of a duplication blob made by protocol/).
pub fn import_storage_key(
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
