//! A TPM whose only EK certificate is ECC (swtpm's P-384 EK): the whole flow
//! with ECC KEKs, credentials sealed to the ECC EK (ECDH + KDFe), and the
//! challenge/activation path.

use byok_tests::{keygen, nonce, openssl, tpm_a, verifier, Host};
use predicates::str::contains;
use tempfile::TempDir;

/// A copy of TPM A without its RSA EK and RSA EK certificate.
fn ecc_only_host() -> Host {
    let host = Host::new(tpm_a());
    host.tpm2("tpm2_nvundefine")
        .args(["-C", "p", "0x01c00002"])
        .assert()
        .success();
    host.tpm2("tpm2_evictcontrol")
        .args(["-C", "o", "-c", "0x81010001"])
        .assert()
        .success();
    host
}

// Long on purpose: one swtpm per test costs seconds, so the checks that share a host share a test, in order.
#[test]
fn transfer_to_a_tpm_with_only_an_ecc_ek_certificate() {
    let host = ecc_only_host();
    let work = TempDir::new().unwrap();
    let wd = work.path();
    host.agent()
        .args(["init", "--world", "eu", "--ek", "rsa"])
        .assert()
        .code(3)
        .stderr(contains("no EK certificate in TPM NV index 0x01c00002"));
    for (world, kek, shown) in [
        ("eu", "p384", "ECC NIST P-384"),
        ("us", "p256", "ECC NIST P-256"),
        ("ap", "rsa2048", "RSA-2048"),
    ] {
        host.agent()
            .args(["init", "--world", world, "--kek-alg", kek])
            .assert()
            .success()
            .stdout(contains("EK   0x81010016  ecc-p384"))
            .stdout(contains("KEK  0x8100010"))
            .stdout(contains(shown));
        let n = nonce();
        let ev = wd.join(format!("{world}.evidence"));
        host.evidence(world, &n, &ev);
        verifier()
            .args(["verify", "--nonce", &n, "--evidence"])
            .arg(&ev)
            .arg("--roots")
            .arg(&host.ca_bundle)
            .assert()
            .success()
            .stdout(contains(format!("KEK:        {shown}")));
        // Challenge and activation through the ECC EK.
        let ch = wd.join(format!("{world}.challenge"));
        let act = wd.join(format!("{world}.activation"));
        verifier()
            .args(["challenge", "--nonce", &n, "--evidence"])
            .arg(&ev)
            .arg("--roots")
            .arg(&host.ca_bundle)
            .arg("-o")
            .arg(&ch)
            .assert()
            .success();
        host.agent()
            .args(["activate", "--world", world, "--in"])
            .arg(&ch)
            .arg("-o")
            .arg(&act)
            .assert()
            .success();
        verifier()
            .args(["verify", "--nonce", &n, "--evidence"])
            .arg(&ev)
            .arg("--roots")
            .arg(&host.ca_bundle)
            .arg("--activation")
            .arg(&act)
            .arg("--challenge")
            .arg(&ch)
            .assert()
            .success()
            .stdout(contains("AK-EK link: proven"));
        // A key wrapped for the ECC KEK (ECDH seed), its credential for the ECC EK.
        let key = wd.join(format!("{world}.pem"));
        keygen("rsa2048", &key);
        let pkg = wd.join(format!("{world}.transfer"));
        verifier()
            .args(["wrap", "--nonce", &n, "--evidence"])
            .arg(&ev)
            .arg("--roots")
            .arg(&host.ca_bundle)
            .arg("--key")
            .arg(&key)
            .arg("-o")
            .arg(&pkg)
            .assert()
            .success();
        let name = format!("{world}-key");
        host.import(world, &name, &pkg).success();
        let msg = wd.join("msg");
        std::fs::write(&msg, b"signed under an ECC KEK").unwrap();
        let sig = wd.join(format!("{world}.sig"));
        host.agent()
            .args(["sign", "--key", &name, "--in"])
            .arg(&msg)
            .arg("-o")
            .arg(&sig)
            .assert()
            .success();
        let public = wd.join(format!("{world}.pub.pem"));
        openssl()
            .args(["pkey", "-pubout", "-in"])
            .arg(&key)
            .arg("-out")
            .arg(&public)
            .assert()
            .success();
        openssl()
            .args(["dgst", "-sha256", "-verify"])
            .arg(&public)
            .arg("-signature")
            .arg(&sig)
            .arg(&msg)
            .assert()
            .success();
    }
}
