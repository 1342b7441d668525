//! Where the EK certificate and its chain come from on real hosts: the TCG
//! chain range in NV (0x01C00100..), and a certificate file for TPMs whose
//! manufacturer publishes it online instead of in NV.

use byok_tests::{nonce, openssl, tpm_a, verifier, Host};
use predicates::str::contains;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

fn ca_file(host: &Host, name: &str) -> PathBuf {
    host.ca_bundle.parent().unwrap().join("ca").join(name)
}

fn verify(n: &str, ev: &Path, roots: &Path) -> assert_cmd::assert::Assert {
    verifier()
        .args(["verify", "--world", "eu", "--nonce", n, "--evidence"])
        .arg(ev)
        .arg("--roots")
        .arg(roots)
        .assert()
}

fn evidence(host: &Host, extra: &[&str], ev: &Path) -> (String, assert_cmd::assert::Assert) {
    let n = nonce();
    let a = host
        .agent()
        .args(["evidence", "--world", "eu", "--nonce", &n])
        .args(extra)
        .arg("-o")
        .arg(ev)
        .assert();
    (n, a)
}

#[test]
fn the_ek_chain_in_nv_reaches_the_verifier() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let wd = work.path();
    host.init("eu");
    // The verifier trusts only the root: the intermediate must come with the evidence.
    let root = ca_file(&host, "swtpm-localca-rootca-cert.pem");
    let ev = wd.join("e1");
    let (n, a) = evidence(&host, &[], &ev);
    a.success();
    verify(&n, &ev, &root).code(10);

    // The manufacturer's intermediate in the first chain index (DER).
    let der = wd.join("issuer.der");
    openssl()
        .args(["x509", "-outform", "DER", "-in"])
        .arg(ca_file(&host, "issuercert.pem"))
        .arg("-out")
        .arg(&der)
        .assert()
        .success();
    let size = std::fs::metadata(&der).unwrap().len().to_string();
    host.tpm2("tpm2_nvdefine")
        .args([
            "0x01c00100",
            "-C",
            "o",
            "-s",
            &size,
            "-a",
            "ownerwrite|ownerread|authread|authwrite",
        ])
        .assert()
        .success();
    host.tpm2("tpm2_nvwrite")
        .args(["0x01c00100", "-C", "o", "-i"])
        .arg(&der)
        .assert()
        .success();
    let ev = wd.join("e2");
    let (n, a) = evidence(&host, &[], &ev);
    a.success();
    verify(&n, &ev, &root).success();
    verifier()
        .args(["inspect"])
        .arg(&ev)
        .assert()
        .success()
        .stdout(contains("chain_length: 1"));
}

// Long on purpose: the certificate leaves NV and every command that needs it is checked.
#[test]
fn an_ek_certificate_published_online_is_given_as_a_file() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let wd = work.path();
    // Take the RSA EK certificate out of NV, as a firmware TPM without one.
    let der = wd.join("ek.der");
    host.tpm2("tpm2_nvread")
        .args(["0x01c00002", "-C", "o", "-o"])
        .arg(&der)
        .assert()
        .success();
    let pem = wd.join("ek.pem");
    openssl()
        .args(["x509", "-inform", "DER", "-in"])
        .arg(&der)
        .arg("-out")
        .arg(&pem)
        .assert()
        .success();
    host.remove_ek_certificates();
    host.agent()
        .args(["init", "--world", "eu"])
        .assert()
        .code(3)
        .stderr(contains("no EK certificate"));
    host.agent()
        .args(["init", "--world", "eu", "--ek-cert-elsewhere"])
        .assert()
        .code(2)
        .stderr(contains("--ek rsa"));
    host.agent()
        .args([
            "init",
            "--world",
            "eu",
            "--ek",
            "rsa",
            "--ek-cert-elsewhere",
        ])
        .assert()
        .success();
    let ev = wd.join("e");
    let (_, a) = evidence(&host, &[], &ev);
    a.code(3).stderr(contains("--ek-cert FILE"));
    let ek_cert = pem.to_str().unwrap();
    let (n, a) = evidence(&host, &["--ek-cert", ek_cert], &ev);
    a.success().stderr("");
    verify(&n, &ev, &host.ca_bundle).success();
    // A file that holds no certificate is refused before any TPM work.
    let junk = wd.join("junk");
    std::fs::write(&junk, b"not a certificate").unwrap();
    let (_, a) = evidence(
        &host,
        &["--ek-cert", junk.to_str().unwrap()],
        &wd.join("e2"),
    );
    a.code(2).stderr(contains("no certificate in it"));
}

// Long on purpose: the high-range EK is made, certified and used end to end.
#[test]
fn a_high_range_ek_is_used_through_its_policy_or() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let wd = work.path();
    // An EK from the TCG high-range template H-1 (RSA-2048, SHA-256, auth
    // only by policy: PolicyOR(PolicySecret(endorsement), PolicyAuthorizeNV)),
    // made by tpm2-tools and persisted where the agent looks for the RSA EK.
    let policy = wd.join("ek-policy.bin");
    std::fs::write(
        &policy,
        byok_protocol::policy::ek_policies(byok_protocol::hash::HashAlg::Sha256).or,
    )
    .unwrap();
    let ctx = wd.join("ek.ctx");
    host.tpm2("tpm2_createprimary")
        .args([
            "-C",
            "e",
            "-G",
            "rsa2048:null:aes128cfb",
            "-g",
            "sha256",
            "-a",
        ])
        .arg("fixedtpm|fixedparent|sensitivedataorigin|adminwithpolicy|restricted|decrypt")
        .arg("-L")
        .arg(&policy)
        .arg("-c")
        .arg(&ctx)
        .assert()
        .success();
    host.tpm2("tpm2_evictcontrol")
        .args(["-C", "o", "-c", "0x81010001"])
        .assert()
        .success();
    host.tpm2("tpm2_evictcontrol")
        .args(["-C", "o", "-c"])
        .arg(&ctx)
        .arg("0x81010001")
        .assert()
        .success();
    host.tpm2("tpm2_flushcontext").arg("-t").assert().success();
    let ek_pub = wd.join("ek.pub.pem");
    host.tpm2("tpm2_readpublic")
        .args(["-c", "0x81010001", "-f", "pem", "-o"])
        .arg(&ek_pub)
        .assert()
        .success();
    // Its certificate, from the host's manufacturer CA.
    let ext = wd.join("ek.ext");
    std::fs::write(
        &ext,
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,keyEncipherment\nextendedKeyUsage=2.23.133.8.1\n",
    )
    .unwrap();
    let cert = wd.join("ek-h1.pem");
    openssl()
        .args([
            "x509",
            "-new",
            "-subj",
            "/CN=high-range EK",
            "-force_pubkey",
        ])
        .arg(&ek_pub)
        .arg("-CA")
        .arg(ca_file(&host, "issuercert.pem"))
        .arg("-CAkey")
        .arg(ca_file(&host, "signkey.pem"))
        .args(["-days", "3650", "-sha256", "-extfile"])
        .arg(&ext)
        .arg("-out")
        .arg(&cert)
        .assert()
        .success();

    host.agent()
        .args(["init", "--world", "eu", "--ek", "rsa"])
        .assert()
        .success();
    let ev = wd.join("e");
    let (n, a) = evidence(&host, &["--ek-cert", cert.to_str().unwrap()], &ev);
    a.success();
    verify(&n, &ev, &host.ca_bundle).success();
    // Import: ActivateCredential under the EK goes through the same policy.
    let pkg = wd.join("k.transfer");
    let world = byok_tests::World {
        nonce: n.clone(),
        evidence: ev.clone(),
    };
    byok_tests::wrap_with(
        &host,
        &world,
        &byok_tests::keygen("p256", wd.join("k.pem")),
        &pkg,
        &["--world", "eu"],
    )
    .success();
    host.import("eu", "k", &pkg).success();
    host.sign("k", wd).success();
}
