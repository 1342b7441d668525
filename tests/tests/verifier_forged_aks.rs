//! Forged AKs built with a real TPM: an unrestricted AK signing forged
//! attestations, SHA-1 AKs, quotes over no PCRs, and the ECDSA AKs that must
//! verify. Each forgery fails with its named check.

#[path = "support/forged_tpm.rs"]
mod forged_tpm;

use byok_protocol::formats::Signed;
use byok_protocol::hash::HashAlg;
use byok_protocol::public::{primary_qualified_name, qualified_name, TpmtPublic};
use byok_protocol::tpm::{attr, rh, st};
use byok_protocol::wire::{tpm2b, Writer};
use byok_tests::{forged_attest, quote_body};
use byok_verifier::error::VerifyError;
use byok_verifier::verify::verify_evidence;
use forged_tpm::*;
use serde_bytes::ByteBuf;
use tss_esapi::abstraction::ak;
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, SignatureSchemeAlgorithm};
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{Data, Digest, HashScheme, HashcheckTicket, SignatureScheme};
use tss_esapi::traits::Marshall;

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
    ev.quote.pcrs.get_mut(&HashAlg::Sha256).unwrap().clear();
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
