//! Forged KEKs built with a real TPM: keys whose attributes, hierarchy,
//! world or origin are wrong, certified by the genuine AK. Each must fail
//! verification with its named check.

#[path = "support/forged_tpm.rs"]
mod forged_tpm;

use byok_protocol::formats::Signed;
use byok_protocol::public::{PublicId, PublicParams, Scheme, SymDef, TpmtPublic};
use byok_protocol::tpm::{alg, attr};
use byok_protocol::world::world_policy;
use byok_verifier::error::VerifyError;
use byok_verifier::verify::verify_evidence;
use forged_tpm::*;
use serde_bytes::ByteBuf;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{Data, SignatureScheme};
use tss_esapi::traits::Marshall;

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
