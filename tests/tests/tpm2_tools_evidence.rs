//! Evidence assembled from tpm2-tools outputs alone (createek, createak,
//! createprimary, quote, pcrread, nvread; the KEK's TPM2_Certify sent with
//! tpm2_send, because tpm2-tools 5.4's tpm2_certify cannot set qualifyingData)
//! verifies with byok-verifier, and a key wrapped for it imports with tpm2-tools.

use byok_protocol::formats::{
    Document, EkEvidence, Evidence, KekEvidence, PublicOnly, QuoteEvidence, Signed, TpmInfo,
    EVIDENCE_TYPE, VERSION,
};
use byok_tests::{keygen, nonce, openssl, tpm_a, verifier, Host};
use predicates::str::contains;
use serde_bytes::ByteBuf;
use std::collections::BTreeMap;
use std::path::Path;
use tempfile::TempDir;

/// TPM2_Certify(object, signer, qualifyingData = nonce, scheme NULL) with two
/// password sessions, as raw bytes through tpm2_send; returns (TPMS_ATTEST,
/// TPMT_SIGNATURE). TPM_RC_RETRY (swtpm's first Certify) is retried.
fn certify_with_tpm2_send(
    host: &Host,
    object: u32,
    signer: u32,
    nonce: &[u8],
    work: &Path,
) -> (Vec<u8>, Vec<u8>) {
    let mut pw = Vec::new();
    pw.extend(0x4000_0009u32.to_be_bytes()); // TPM_RS_PW
    pw.extend([0, 0, 0, 0, 0]); // empty nonce, attributes 0, empty hmac
    let mut body = Vec::new();
    body.extend(object.to_be_bytes());
    body.extend(signer.to_be_bytes());
    body.extend(((2 * pw.len()) as u32).to_be_bytes());
    body.extend(&pw);
    body.extend(&pw);
    body.extend((nonce.len() as u16).to_be_bytes());
    body.extend(nonce);
    body.extend(0x0010u16.to_be_bytes()); // TPM_ALG_NULL: the AK's scheme
    let mut cmd = Vec::new();
    cmd.extend(0x8002u16.to_be_bytes()); // TPM_ST_SESSIONS
    cmd.extend(((10 + body.len()) as u32).to_be_bytes());
    cmd.extend(0x0000_0148u32.to_be_bytes()); // TPM_CC_Certify
    cmd.extend(body);
    let cmd_file = work.join("certify.cmd");
    std::fs::write(&cmd_file, &cmd).unwrap();
    for _ in 0..5 {
        let rsp_file = work.join("certify.rsp");
        host.tpm2("tpm2_send")
            .arg("-o")
            .arg(&rsp_file)
            .pipe_stdin(&cmd_file)
            .unwrap()
            .assert()
            .success();
        let rsp = std::fs::read(&rsp_file).unwrap();
        let rc = u32::from_be_bytes(rsp[6..10].try_into().unwrap());
        if rc == 0x922 {
            continue;
        }
        assert_eq!(rc, 0, "TPM2_Certify failed: {rc:#x}");
        let param_size = u32::from_be_bytes(rsp[10..14].try_into().unwrap()) as usize;
        let params = &rsp[14..14 + param_size];
        let attest_len = u16::from_be_bytes([params[0], params[1]]) as usize;
        return (
            params[2..2 + attest_len].to_vec(),
            params[2 + attest_len..].to_vec(),
        );
    }
    panic!("TPM2_Certify kept answering TPM_RC_RETRY");
}

// Long on purpose: one swtpm per test costs seconds, so the checks that share a host share a test, in order.
#[test]
fn evidence_from_tpm2_tools_outputs_verifies() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let w = work.path();
    let n = nonce();
    let nonce_bytes = hex::decode(&n).unwrap();

    // EK (the TCG template, same key as the persistent one) and AK under it.
    host.tpm2_run(
        "tpm2_createek",
        &["-c", "ek.ctx", "-G", "rsa", "-u", "ek.pub"],
        w,
    );
    host.tpm2_run(
        "tpm2_createak",
        &[
            "-C", "ek.ctx", "-c", "ak.ctx", "-G", "rsa", "-g", "sha256", "-s", "rsassa", "-u",
            "ak.pub", "-n", "ak.name",
        ],
        w,
    );
    host.tpm2_run(
        "tpm2_evictcontrol",
        &["-C", "o", "-c", "ak.ctx", "0x81000201"],
        w,
    );
    // The world's KEK: an owner storage primary with the world binding as authPolicy.
    std::fs::write(
        w.join("world.policy"),
        byok_protocol::world::world_policy("eu"),
    )
    .unwrap();
    host.tpm2_run(
        "tpm2_createprimary",
        &[
            "-C",
            "o",
            "-G",
            "rsa2048:aes128cfb",
            "-g",
            "sha256",
            "-a",
            "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|restricted|decrypt",
            "-L",
            "world.policy",
            "-c",
            "kek.ctx",
        ],
        w,
    );
    host.tpm2_run(
        "tpm2_evictcontrol",
        &["-C", "o", "-c", "kek.ctx", "0x81000200"],
        w,
    );
    host.tpm2_run("tpm2_readpublic", &["-c", "0x81000200", "-o", "kek.pub"], w);
    // Quote and PCR values; EK certificate from NV.
    let pcrs = "sha256:0,1,2,3,4,5,6,7";
    host.tpm2_run(
        "tpm2_quote",
        &[
            "-c",
            "0x81000201",
            "-l",
            pcrs,
            "-q",
            &n,
            "-m",
            "quote.msg",
            "-s",
            "quote.sig",
            "-g",
            "sha256",
        ],
        w,
    );
    host.tpm2_run("tpm2_pcrread", &[pcrs, "-o", "pcrs.bin"], w);
    host.tpm2_run("tpm2_nvread", &["-C", "o", "0x01c00002", "-o", "ek.nv"], w);
    openssl()
        .args([
            "x509", "-inform", "DER", "-outform", "DER", "-in", "ek.nv", "-out", "ek.der",
        ])
        .current_dir(w)
        .assert()
        .success();
    let (attest, signature) =
        certify_with_tpm2_send(&host, 0x8100_0200, 0x8100_0201, &nonce_bytes, w);

    let read = |f: &str| ByteBuf::from(std::fs::read(w.join(f)).unwrap());
    let values = std::fs::read(w.join("pcrs.bin")).unwrap();
    assert_eq!(values.len(), 8 * 32);
    let bank: BTreeMap<u32, ByteBuf> = (0..8u32)
        .map(|i| {
            (
                i,
                ByteBuf::from(values[i as usize * 32..(i as usize + 1) * 32].to_vec()),
            )
        })
        .collect();
    let ev = Evidence {
        kind: EVIDENCE_TYPE.into(),
        version: VERSION,
        world: "eu".parse().unwrap(),
        nonce: ByteBuf::from(nonce_bytes),
        tpm: TpmInfo {
            manufacturer: "IBM".into(),
            vendor: "tpm2-tools".into(),
            firmware: 0,
        },
        ek: EkEvidence {
            public: read("ek.pub"),
            certificate: read("ek.der"),
            chain: Vec::new(),
        },
        ak: PublicOnly {
            public: read("ak.pub"),
        },
        kek: KekEvidence {
            public: read("kek.pub"),
            certify: Signed {
                attest: ByteBuf::from(attest),
                signature: ByteBuf::from(signature),
            },
            pcr_binding: None,
        },
        quote: QuoteEvidence {
            attest: read("quote.msg"),
            signature: read("quote.sig"),
            pcrs: [(byok_protocol::hash::HashAlg::Sha256, bank)]
                .into_iter()
                .collect(),
        },
        compat_kek: None,
        agent: Some("tpm2-tools".into()),
    };
    let ev_file = w.join("tools.evidence");
    std::fs::write(&ev_file, ev.to_cbor()).unwrap();
    verifier()
        .args(["verify", "--world", "eu", "--nonce", &n, "--evidence"])
        .arg(&ev_file)
        .arg("--roots")
        .arg(&host.ca_bundle)
        .assert()
        .success()
        .stdout(contains("OK"));
    // With another nonce the tpm2_send certify and tpm2_quote fail as they should.
    verifier()
        .args(["verify", "--world", "eu", "--nonce", &nonce(), "--evidence"])
        .arg(&ev_file)
        .arg("--roots")
        .arg(&host.ca_bundle)
        .assert()
        .code(10);

    // A package wrapped for it imports with tpm2-tools alone: the credential
    // through tpm2_activatecredential, the key through tpm2_import.
    let key = w.join("key.pem");
    keygen("p256", &key);
    let pkg = w.join("key.transfer");
    verifier()
        .args(["wrap", "--world", "eu", "--nonce", &n, "--evidence"])
        .arg(&ev_file)
        .arg("--roots")
        .arg(&host.ca_bundle)
        .arg("--key")
        .arg(&key)
        .arg("-o")
        .arg(&pkg)
        .assert()
        .success();
    let t =
        byok_protocol::formats::TransferPackage::from_cbor(&std::fs::read(&pkg).unwrap()).unwrap();
    let mut cred = Vec::new();
    cred.extend(0xBADC_C0DEu32.to_be_bytes());
    cred.extend(1u32.to_be_bytes());
    cred.extend(&t.credential.id_object[..]);
    cred.extend(&t.credential.encrypted_secret[..]);
    std::fs::write(w.join("key.cred"), cred).unwrap();
    std::fs::write(w.join("obj.pub"), &t.object.public[..]).unwrap();
    std::fs::write(w.join("obj.dup"), &t.object.duplicate[..]).unwrap();
    std::fs::write(w.join("obj.seed"), &t.object.seed[..]).unwrap();
    host.tpm2_run(
        "tpm2_startauthsession",
        &["--policy-session", "-S", "ek.session"],
        w,
    );
    host.tpm2_run("tpm2_policysecret", &["-S", "ek.session", "-c", "e"], w);
    host.tpm2_run(
        "tpm2_activatecredential",
        &[
            "-c",
            "0x81000201",
            "-C",
            "0x81010001",
            "-i",
            "key.cred",
            "-o",
            "inner.key",
            "-P",
            "session:ek.session",
        ],
        w,
    );
    host.tpm2_run("tpm2_flushcontext", &["ek.session"], w);
    host.tpm2_run(
        "tpm2_import",
        &[
            "-C",
            "0x81000200",
            "-u",
            "obj.pub",
            "-i",
            "obj.dup",
            "-s",
            "obj.seed",
            "-k",
            "inner.key",
            "-G",
            "aes",
            "-r",
            "obj.priv",
        ],
        w,
    );
    host.tpm2_run(
        "tpm2_load",
        &[
            "-C",
            "0x81000200",
            "-u",
            "obj.pub",
            "-r",
            "obj.priv",
            "-c",
            "obj.ctx",
        ],
        w,
    );
}
