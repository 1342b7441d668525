//! Evidence an attacker builds without a TPM: the host's genuine EK
//! certificate and EK public area (both public), beside software keys that
//! claim every TPM attribute, with attestations signed by the software AK.

use crate::{forged_attest, quote_body};
use byok_protocol::formats::{Evidence, KekEvidence, PublicOnly, Receipt, Signed};
use byok_protocol::public::{
    primary_qualified_name, qualified_name, PublicId, PublicParams, Scheme, SymDef, TpmtPublic,
};
use byok_protocol::tpm::{alg, attr, rh, st};
use byok_protocol::wire::{tpm2b, Writer};
use rsa::traits::PublicKeyParts;
use serde_bytes::ByteBuf;

/// The forged evidence and the private keys behind it.
pub struct Forged {
    pub evidence: Evidence,
    pub ak: rsa::RsaPrivateKey,
    pub ak_public: TpmtPublic,
    pub kek_public: TpmtPublic,
    /// The software compat KEK (`with_compat_kek`), whose private key
    /// would decrypt any cloud-format key wrapped for it.
    pub compat: Option<rsa::RsaPrivateKey>,
}

pub fn software_rsa(bits: usize) -> rsa::RsaPrivateKey {
    rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits).expect("RSA key")
}

pub fn rsa_public(
    attributes: u32,
    auth_policy: Vec<u8>,
    scheme: Scheme,
    symmetric: SymDef,
    key: &rsa::RsaPrivateKey,
) -> TpmtPublic {
    rsa_public_of(attributes, auth_policy, scheme, symmetric, key.n())
}

/// The same for a modulus alone (exponent 65537).
pub fn rsa_public_of(
    attributes: u32,
    auth_policy: Vec<u8>,
    scheme: Scheme,
    symmetric: SymDef,
    n: &rsa::BigUint,
) -> TpmtPublic {
    TpmtPublic::build(
        alg::RSA,
        alg::SHA256,
        attributes,
        auth_policy,
        PublicParams::Rsa {
            symmetric,
            scheme,
            key_bits: n.bits() as u16,
            exponent: 0,
        },
        PublicId::Rsa(n.to_bytes_be()),
    )
}

/// A software AK's public area: every attribute a TPM's AK has.
pub fn ak_public(key: &rsa::RsaPrivateKey) -> TpmtPublic {
    rsa_public(
        attr::FIXED_TPM
            | attr::FIXED_PARENT
            | attr::SENSITIVE_DATA_ORIGIN
            | attr::USER_WITH_AUTH
            | attr::RESTRICTED
            | attr::SIGN,
        vec![],
        Scheme {
            scheme: alg::RSASSA,
            hash: alg::SHA256,
            extra: 0,
        },
        SymDef::NULL,
        key,
    )
}

/// A KEK public area for `world` (the agent's template) with modulus `n`.
pub fn kek_public(world: &str, n: &rsa::BigUint) -> TpmtPublic {
    rsa_public_of(
        byok_protocol::templates::KEK_ATTRIBUTES,
        byok_protocol::world::world_policy(world).to_vec(),
        Scheme::NULL,
        SymDef::AES_128_CFB,
        n,
    )
}

/// TPMT_SIGNATURE (RSASSA-SHA256) of `msg` by `key`.
pub fn sign(key: &rsa::RsaPrivateKey, msg: &[u8]) -> Vec<u8> {
    let digest = byok_protocol::hash::sha256(msg);
    let sig = key
        .sign(rsa::Pkcs1v15Sign::new::<rsa::sha2::Sha256>(), &digest)
        .expect("sign");
    let mut w = Writer::new();
    w.u16(alg::RSASSA).u16(alg::SHA256).tpm2b(&sig);
    w.into_vec()
}

/// A TPM2_Certify of `name` (qualified name `qn`) as the software AK signs it.
fn certify(f: &Forged, ak_qn: &[u8], nonce: &[u8], name: &[u8], qn: &[u8]) -> Signed {
    certify_by(&f.ak, ak_qn, nonce, name, qn)
}

/// A TPM2_Certify of `name` (qualified name `qn`) signed by `ak`.
pub fn certify_by(
    ak: &rsa::RsaPrivateKey,
    ak_qn: &[u8],
    nonce: &[u8],
    name: &[u8],
    qn: &[u8],
) -> Signed {
    let mut body = Writer::new();
    body.tpm2b(name).tpm2b(qn);
    let attest = forged_attest(st::ATTEST_CERTIFY, ak_qn, nonce, &body.into_vec());
    Signed {
        signature: ByteBuf::from(sign(ak, &attest)),
        attest: ByteBuf::from(attest),
    }
}

/// The qualified name of `ak` as a child of the evidence's EK.
pub fn ak_qualified_name(genuine: &Evidence, ak: &TpmtPublic) -> Vec<u8> {
    let ek = TpmtPublic::parse_tpm2b(&genuine.ek.public).expect("EK public");
    qualified_name(
        &primary_qualified_name(rh::ENDORSEMENT, &ek.name()).expect("EK QN"),
        &ak.name(),
    )
    .expect("AK QN")
}

/// Evidence with the host's genuine EK but a software AK and a software
/// KEK that claim every TPM attribute.
pub fn forge(genuine: &Evidence) -> Forged {
    forge_with(genuine, false)
}

/// The same, and (`compat`) a software compat KEK certified as the KEK's child.
pub fn forge_with(genuine: &Evidence, compat: bool) -> Forged {
    let ak_key = software_rsa(2048);
    let kek_key = software_rsa(2048);
    let ak = ak_public(&ak_key);
    let kek = kek_public(&genuine.world, kek_key.n());
    let mut f = Forged {
        evidence: genuine.clone(),
        ak: ak_key,
        ak_public: ak.clone(),
        kek_public: kek.clone(),
        compat: None,
    };
    let ak_qn = ak_qualified_name(genuine, &ak);
    let kek_qn = primary_qualified_name(rh::OWNER, &kek.name()).expect("KEK QN");
    let certify_kek = certify(&f, &ak_qn, &genuine.nonce, &kek.name(), &kek_qn);
    let quote = forged_attest(
        st::ATTEST_QUOTE,
        &ak_qn,
        &genuine.nonce,
        &quote_body(&genuine.quote.attest),
    );
    let ev = &mut f.evidence;
    ev.ak.public = ByteBuf::from(tpm2b(ak.as_bytes()));
    ev.kek.public = ByteBuf::from(tpm2b(kek.as_bytes()));
    ev.kek.certify = certify_kek;
    ev.quote.signature = ByteBuf::from(sign(&f.ak, &quote));
    ev.quote.attest = ByteBuf::from(quote);
    ev.compat_kek = None;
    if compat {
        let key = software_rsa(3072);
        let public = rsa_public(
            byok_protocol::templates::COMPAT_KEK_ATTRIBUTES,
            vec![],
            Scheme::NULL,
            SymDef::NULL,
            &key,
        );
        let qn = qualified_name(&kek_qn, &public.name()).expect("compat QN");
        let c = certify(&f, &ak_qn, &genuine.nonce, &public.name(), &qn);
        f.evidence.compat_kek = Some(KekEvidence {
            public: ByteBuf::from(tpm2b(public.as_bytes())),
            certify: c,
            pcr_binding: None,
        });
        f.compat = Some(key);
    }
    f
}

/// A receipt the software AK signs for a software key claiming to be
/// generated in the TPM (fixedTPM, fixedParent, sensitiveDataOrigin)
/// under the forged KEK.
pub fn forge_receipt(f: &Forged, world: &str, nonce: &[u8]) -> Receipt {
    let key = software_rsa(2048);
    let public = rsa_public(
        attr::FIXED_TPM
            | attr::FIXED_PARENT
            | attr::SENSITIVE_DATA_ORIGIN
            | attr::USER_WITH_AUTH
            | attr::SIGN
            | attr::DECRYPT,
        vec![],
        Scheme::NULL,
        SymDef::NULL,
        &key,
    );
    let ak_qn = ak_qualified_name(&f.evidence, &f.ak_public);
    let kek_qn = primary_qualified_name(rh::OWNER, &f.kek_public.name()).expect("KEK QN");
    let qn = qualified_name(&kek_qn, &public.name()).expect("key QN");
    Receipt {
        kind: byok_protocol::formats::RECEIPT_TYPE.into(),
        version: byok_protocol::formats::VERSION,
        world: world.parse().expect("a valid world id"),
        nonce: ByteBuf::from(nonce.to_vec()),
        ak: PublicOnly {
            public: ByteBuf::from(tpm2b(f.ak_public.as_bytes())),
        },
        key: PublicOnly {
            public: ByteBuf::from(tpm2b(public.as_bytes())),
        },
        certify: certify(f, &ak_qn, nonce, &public.name(), &qn),
    }
}
