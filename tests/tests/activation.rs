//! Verification before activation: `byok-verifier challenge` ->
//! `byok-agent activate` -> `byok-verifier verify --activation`, and evidence
//! whose AK and KEK are software keys claiming TPM attributes beside a genuine
//! EK certificate: it passes plain `verify` (evidence alone cannot prove the
//! AK-EK binding, and verify says so), fails `verify --activation`, and its
//! package cannot be imported by the real TPM that owns the EK.

use byok_protocol::formats::{Challenge, Document, Evidence, Signed};
use byok_protocol::public::{
    primary_qualified_name, qualified_name, PublicId, PublicParams, Scheme, SymDef, TpmtPublic,
};
use byok_protocol::tpm::{alg, attr, rh, st};
use byok_protocol::wire::{tpm2b, Writer};
use byok_tests::{forged_attest, keygen, nonce, quote_body, tpm_a, verifier, Host};
use predicates::str::contains;
use rsa::traits::PublicKeyParts;
use serde_bytes::ByteBuf;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

fn verify_cmd(host: &Host, ev: &Path, n: &str) -> assert_cmd::Command {
    let mut c = verifier();
    c.args(["verify", "--nonce", n, "--evidence"])
        .arg(ev)
        .arg("--roots")
        .arg(&host.ca_bundle);
    c
}

fn challenge(host: &Host, ev: &Path, n: &str, out: &Path) -> assert_cmd::assert::Assert {
    verifier()
        .args(["challenge", "--nonce", n, "--evidence"])
        .arg(ev)
        .arg("--roots")
        .arg(&host.ca_bundle)
        .arg("-o")
        .arg(out)
        .assert()
}

#[test]
fn activation_proves_the_ak_ek_binding() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let w = work.path();
    host.init("eu");
    let n = nonce();
    let ev = w.join("eu.evidence");
    host.evidence("eu", &n, &ev);
    verify_cmd(&host, &ev, &n)
        .assert()
        .success()
        .stdout(contains("enforced by the TPM at import"));
    challenge(&host, &ev, &n, &w.join("c.cbor")).success();
    host.agent()
        .args(["activate", "--world", "eu", "--in"])
        .arg(w.join("c.cbor"))
        .arg("-o")
        .arg(w.join("a.cbor"))
        .assert()
        .success();
    verify_cmd(&host, &ev, &n)
        .arg("--challenge")
        .arg(w.join("c.cbor"))
        .arg("--activation")
        .arg(w.join("a.cbor"))
        .assert()
        .success()
        .stdout(contains("AK-EK link: proven"));
    // A second challenge: the first answer does not fit it.
    challenge(&host, &ev, &n, &w.join("c2.cbor")).success();
    verify_cmd(&host, &ev, &n)
        .arg("--challenge")
        .arg(w.join("c2.cbor"))
        .arg("--activation")
        .arg(w.join("a.cbor"))
        .assert()
        .code(10)
        .stderr(contains("the returned secret is not the challenge's"));
}

fn software_rsa() -> rsa::RsaPrivateKey {
    rsa::RsaPrivateKey::new(&mut rand_core(), 2048).unwrap()
}

fn rand_core() -> rsa::rand_core::OsRng {
    rsa::rand_core::OsRng
}

fn rsa_public(
    attributes: u32,
    auth_policy: Vec<u8>,
    scheme: Scheme,
    symmetric: SymDef,
    n: Vec<u8>,
) -> TpmtPublic {
    TpmtPublic::build(
        alg::RSA,
        alg::SHA256,
        attributes,
        auth_policy,
        PublicParams::Rsa {
            symmetric,
            scheme,
            key_bits: 2048,
            exponent: 0,
        },
        PublicId::Rsa(n),
    )
}

fn sign(key: &rsa::RsaPrivateKey, msg: &[u8]) -> Vec<u8> {
    let digest = byok_protocol::hash::sha256(msg);
    let sig = key
        .sign(rsa::Pkcs1v15Sign::new::<rsa::sha2::Sha256>(), &digest)
        .unwrap();
    let mut w = Writer::new();
    w.u16(alg::RSASSA).u16(alg::SHA256).tpm2b(&sig);
    w.into_vec()
}

/// Evidence with the host's genuine EK (certificate and public area) but a
/// software AK and a software KEK that claim every TPM attribute.
fn forge(genuine: &Evidence) -> Evidence {
    let ak_key = software_rsa();
    let kek_key = software_rsa();
    let ak = rsa_public(
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
        ak_key.n().to_bytes_be(),
    );
    let kek = rsa_public(
        byok_protocol::templates::KEK_ATTRIBUTES,
        byok_protocol::world::world_policy(&genuine.world).to_vec(),
        Scheme::NULL,
        SymDef::AES_128_CFB,
        kek_key.n().to_bytes_be(),
    );
    let ek = TpmtPublic::parse_tpm2b(&genuine.ek.public).unwrap();
    let ak_qn = qualified_name(
        &primary_qualified_name(rh::ENDORSEMENT, &ek.name()).unwrap(),
        &ak.name(),
    )
    .unwrap();
    let mut body = Writer::new();
    body.tpm2b(&kek.name())
        .tpm2b(&primary_qualified_name(rh::OWNER, &kek.name()).unwrap());
    let certify = forged_attest(st::ATTEST_CERTIFY, &ak_qn, &genuine.nonce, &body.into_vec());
    let quote = forged_attest(
        st::ATTEST_QUOTE,
        &ak_qn,
        &genuine.nonce,
        &quote_body(&genuine.quote.attest),
    );
    let mut ev = genuine.clone();
    ev.ak.public = ByteBuf::from(tpm2b(ak.as_bytes()));
    ev.kek.public = ByteBuf::from(tpm2b(kek.as_bytes()));
    ev.kek.certify = Signed {
        signature: ByteBuf::from(sign(&ak_key, &certify)),
        attest: ByteBuf::from(certify),
    };
    ev.quote.signature = ByteBuf::from(sign(&ak_key, &quote));
    ev.quote.attest = ByteBuf::from(quote);
    ev
}

#[test]
fn software_ak_and_kek_beside_a_genuine_ek_fail_activation_and_import() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let w = work.path();
    host.init("eu");
    let n = nonce();
    let genuine_path = w.join("genuine.evidence");
    host.evidence("eu", &n, &genuine_path);
    let forged = forge(&Evidence::from_cbor(&std::fs::read(&genuine_path).unwrap()).unwrap());
    let forged_path: PathBuf = w.join("forged.evidence");
    std::fs::write(&forged_path, forged.to_cbor()).unwrap();

    // Evidence alone cannot tell: every signed field is consistent. verify says
    // the binding is left to the TPM at import.
    verify_cmd(&host, &forged_path, &n)
        .assert()
        .success()
        .stdout(contains("enforced by the TPM at import"));

    // The challenge for the forged AK cannot be answered by the real TPM ...
    challenge(&host, &forged_path, &n, &w.join("c.cbor")).success();
    host.agent()
        .args(["activate", "--world", "eu", "--in"])
        .arg(w.join("c.cbor"))
        .arg("-o")
        .arg(w.join("a.cbor"))
        .assert()
        .code(7);
    // ... not even relabelled with the real AK's name: the credential is bound to the forged name.
    let mut ch = Challenge::from_cbor(&std::fs::read(w.join("c.cbor")).unwrap()).unwrap();
    let genuine = Evidence::from_cbor(&std::fs::read(&genuine_path).unwrap()).unwrap();
    ch.ak_name = ByteBuf::from(TpmtPublic::parse_tpm2b(&genuine.ak.public).unwrap().name());
    std::fs::write(w.join("relabelled.cbor"), ch.to_cbor()).unwrap();
    host.agent()
        .args(["activate", "--world", "eu", "--in"])
        .arg(w.join("relabelled.cbor"))
        .arg("-o")
        .arg(w.join("a.cbor"))
        .assert()
        .code(8)
        .stderr(contains("TPM2_ActivateCredential"));
    assert!(!w.join("a.cbor").exists());
    // A made-up answer fails verify --activation.
    let fake = byok_protocol::formats::Activation {
        kind: byok_protocol::formats::ACTIVATION_TYPE.into(),
        version: 1,
        world: "eu".into(),
        ak_name: ByteBuf::from(TpmtPublic::parse_tpm2b(&forged.ak.public).unwrap().name()),
        secret: ByteBuf::from(vec![7u8; 32]),
    };
    std::fs::write(w.join("fake.cbor"), fake.to_cbor()).unwrap();
    verify_cmd(&host, &forged_path, &n)
        .arg("--challenge")
        .arg(w.join("c.cbor"))
        .arg("--activation")
        .arg(w.join("fake.cbor"))
        .assert()
        .code(10)
        .stderr(contains("the AK and EK are not in one TPM"));
    // A genuine answer to a genuine challenge does not transfer to the forged evidence.
    challenge(&host, &genuine_path, &n, &w.join("gc.cbor")).success();
    host.agent()
        .args(["activate", "--world", "eu", "--in"])
        .arg(w.join("gc.cbor"))
        .arg("-o")
        .arg(w.join("ga.cbor"))
        .assert()
        .success();
    verify_cmd(&host, &forged_path, &n)
        .arg("--challenge")
        .arg(w.join("gc.cbor"))
        .arg("--activation")
        .arg(w.join("ga.cbor"))
        .assert()
        .code(10)
        .stderr(contains("made for another EK or AK"));

    // The package wrapped for the forged evidence: the real TPM refuses it.
    let key = w.join("k.pem");
    keygen("p256", &key);
    let pkg = w.join("k.transfer");
    verifier()
        .args(["wrap", "--nonce", &n, "--evidence"])
        .arg(&forged_path)
        .arg("--roots")
        .arg(&host.ca_bundle)
        .arg("--key")
        .arg(&key)
        .arg("-o")
        .arg(&pkg)
        .assert()
        .success();
    host.import("eu", "k", &pkg).code(7);
    let mut t =
        byok_protocol::formats::TransferPackage::from_cbor(&std::fs::read(&pkg).unwrap()).unwrap();
    t.kek_name = ByteBuf::from(TpmtPublic::parse_tpm2b(&genuine.kek.public).unwrap().name());
    t.ak_name = ByteBuf::from(TpmtPublic::parse_tpm2b(&genuine.ak.public).unwrap().name());
    std::fs::write(&pkg, t.to_cbor()).unwrap();
    host.import("eu", "k", &pkg).code(8);
    assert!(host.stored_keys().is_empty());
}
