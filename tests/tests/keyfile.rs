//! `byok-agent keyfile`: TSS2 PRIVATE KEY files used by ordinary OpenSSL 3
//! software through the tpm2 provider, for imported and TPM-born keys; and the
//! TPM refusing to duplicate either kind.

use byok_tests::{keygen, openssl, tpm_a, world, wrap, Host};
use predicates::str::contains;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

fn keyfile(host: &Host, key: &str, work: &Path) -> PathBuf {
    let p = work.join(format!("{key}.tss.pem"));
    host.agent()
        .args(["keyfile", "--key", key, "-o"])
        .arg(&p)
        .assert()
        .success()
        .stdout(contains("TSS2 PRIVATE KEY"));
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.starts_with("-----BEGIN TSS2 PRIVATE KEY-----\n"));
    p
}

/// Sign `digest` through the tpm2 provider and verify with `public_pem`.
fn provider_signs(host: &Host, key_file: &Path, public_pem: &Path, work: &Path) {
    let msg = work.join("msg");
    std::fs::write(&msg, b"signed by OpenSSL through the tpm2 provider").unwrap();
    let digest = work.join("msg.sha256");
    openssl()
        .args(["dgst", "-sha256", "-binary", "-out"])
        .arg(&digest)
        .arg(&msg)
        .assert()
        .success();
    let sig = work.join("provider.sig");
    host.openssl_tpm2()
        .args([
            "pkeyutl",
            "-provider",
            "tpm2",
            "-provider",
            "base",
            "-sign",
            "-inkey",
        ])
        .arg(key_file)
        .arg("-in")
        .arg(&digest)
        .args(["-pkeyopt", "digest:sha256", "-out"])
        .arg(&sig)
        .assert()
        .success();
    openssl()
        .args(["pkeyutl", "-verify", "-pubin", "-inkey"])
        .arg(public_pem)
        .arg("-in")
        .arg(&digest)
        .arg("-sigfile")
        .arg(&sig)
        .args(["-pkeyopt", "digest:sha256"])
        .assert()
        .success()
        .stdout(contains("Signature Verified Successfully"));
    // The provider reads the public key from the file, as the agent reports it.
    let from_provider = work.join("provider.pub.pem");
    host.openssl_tpm2()
        .args([
            "pkey",
            "-provider",
            "tpm2",
            "-provider",
            "base",
            "-pubout",
            "-in",
        ])
        .arg(key_file)
        .arg("-out")
        .arg(&from_provider)
        .assert()
        .success();
    assert_eq!(
        std::fs::read(&from_provider).unwrap(),
        std::fs::read(public_pem).unwrap()
    );
}

#[test]
fn openssl_uses_imported_and_tpm_born_keys_through_the_tpm2_provider() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let wd = work.path();
    let w = world(&host, "eu", wd);

    // Imported: the original key's public half verifies the provider's signature.
    for alg in ["rsa2048", "p256"] {
        let key = wd.join(format!("{alg}.pem"));
        keygen(alg, &key);
        let pkg = wd.join(format!("{alg}.transfer"));
        wrap(&host, &w, &key, &pkg).success();
        let name = format!("imported-{alg}");
        host.import("eu", &name, &pkg).success();
        let public = wd.join(format!("{alg}.pub.pem"));
        openssl()
            .args(["pkey", "-pubout", "-in"])
            .arg(&key)
            .arg("-out")
            .arg(&public)
            .assert()
            .success();
        provider_signs(&host, &keyfile(&host, &name, wd), &public, wd);
    }
    // Born in the TPM: the agent's public key verifies.
    for alg in ["rsa3072", "p384"] {
        let name = format!("born-{alg}");
        host.agent()
            .args([
                "key", "create", "--world", "eu", "--name", &name, "--alg", alg,
            ])
            .assert()
            .success();
        let public = wd.join(format!("{name}.pub.pem"));
        host.agent()
            .args(["public", "--key", &name, "-o"])
            .arg(&public)
            .assert()
            .success();
        provider_signs(&host, &keyfile(&host, &name, wd), &public, wd);
    }
    // Nothing left loaded in the TPM's three slots.
    let left = host
        .tpm2("tpm2_getcap")
        .arg("handles-transient")
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&left.stdout).contains("0x8000"));
}

/// TPM2_Duplicate of the key in `key_file` (loaded by tpm2-tools from the key
/// file under its persistent parent), with a policy session (the DUP role
/// always needs one): the TPM must refuse.
fn duplicate_is_refused(host: &Host, key_file: &Path, work: &Path, why: &str) {
    let session = work.join("dup.session");
    host.tpm2("tpm2_startauthsession")
        .args(["--policy-session", "-S"])
        .arg(&session)
        .assert()
        .success();
    let out = host
        .tpm2("tpm2_duplicate")
        .arg("-c")
        .arg(key_file)
        .args(["-C", "null", "-G", "null", "-p"])
        .arg(format!("session:{}", session.display()))
        .arg("-r")
        .arg(work.join("dup.priv"))
        .arg("-s")
        .arg(work.join("dup.seed"))
        .output()
        .unwrap();
    let _ = host.tpm2("tpm2_flushcontext").arg(&session).output();
    let _ = host.tpm2("tpm2_flushcontext").arg("-t").output();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "duplication of {why} succeeded");
    assert!(stderr.contains("Esys_Duplicate"), "{why}: {stderr}");
    assert!(!work.join("dup.priv").exists());
}

#[test]
fn the_tpm_refuses_to_duplicate_imported_and_born_keys() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let wd = work.path();
    let w = world(&host, "eu", wd);
    let key = wd.join("k.pem");
    keygen("p256", &key);
    let pkg = wd.join("k.transfer");
    wrap(&host, &w, &key, &pkg).success();
    host.import("eu", "imported", &pkg).success();
    host.agent()
        .args([
            "key", "create", "--world", "eu", "--name", "born", "--alg", "p256",
        ])
        .assert()
        .success();
    // Imported: fixedParent clear, but an empty authPolicy no session can match.
    duplicate_is_refused(
        &host,
        &keyfile(&host, "imported", wd),
        wd,
        "an imported key",
    );
    // Born: fixedParent set.
    duplicate_is_refused(&host, &keyfile(&host, "born", wd), wd, "a TPM-born key");

    // Sealed data and PCR-bound keys get no key file.
    let secret = wd.join("s");
    std::fs::write(&secret, b"x").unwrap();
    host.agent()
        .args(["seal", "--world", "eu", "--name", "sealed", "--in"])
        .arg(&secret)
        .assert()
        .success();
    host.agent()
        .args(["keyfile", "--key", "sealed", "-o"])
        .arg(wd.join("sealed.pem"))
        .assert()
        .code(2)
        .stderr(contains("it is sealed data"));
    host.agent()
        .args([
            "key",
            "create",
            "--world",
            "eu",
            "--name",
            "bound",
            "--alg",
            "p256",
            "--pcrs",
            "sha256:23",
        ])
        .assert()
        .success();
    host.agent()
        .args(["keyfile", "--key", "bound", "-o"])
        .arg(wd.join("bound.pem"))
        .assert()
        .code(2)
        .stderr(contains("is bound to PCRs sha256:23"));
    assert!(!wd.join("sealed.pem").exists() && !wd.join("bound.pem").exists());
}
