//! The software TPM crypto in `protocol/` checked against an independent
//! implementation: tpm2-tools and the TPM itself consume what we build.

use byok_protocol::credential::make_credential;
use byok_protocol::duplicate::duplicate;
use byok_protocol::keys::{KeyAlg, TargetKey};
use byok_protocol::public::TpmtPublic;
use byok_tests::{openssl, tpm_a, Host};
use tempfile::TempDir;

fn random<const N: usize>() -> [u8; N] {
    use std::io::Read;
    let mut b = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut b)
        .unwrap();
    b
}

// Long on purpose: one swtpm per test costs seconds, so the checks that share a host share a test, in order.
#[test]
fn our_make_credential_activates_with_tpm2_activatecredential() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let w = work.path();
    host.tpm2_run(
        "tpm2_createak",
        &[
            "-C",
            "0x81010001",
            "-c",
            "ak.ctx",
            "-G",
            "rsa",
            "-g",
            "sha256",
            "-s",
            "rsassa",
            "-u",
            "ak.pub",
            "-n",
            "ak.name",
        ],
        w,
    );
    host.tpm2_run("tpm2_readpublic", &["-c", "0x81010001", "-o", "ek.pub"], w);
    let ek = TpmtPublic::parse_tpm2b(&std::fs::read(w.join("ek.pub")).unwrap()).unwrap();
    let ak_name = std::fs::read(w.join("ak.name")).unwrap();
    // The AK name tpm2-tools reports is the one we compute from its public area.
    let ak = TpmtPublic::parse_tpm2b(&std::fs::read(w.join("ak.pub")).unwrap()).unwrap();
    assert_eq!(ak.name(), ak_name);

    for len in [16usize, 32] {
        let secret = &random::<32>()[..len];
        let cred = make_credential(&ek, &ak_name, secret).unwrap();
        std::fs::write(w.join("cred.bin"), cred.to_tpm2_tools_file()).unwrap();
        host.tpm2("tpm2_startauthsession")
            .args(["--policy-session", "-S", "session.ctx"])
            .current_dir(w)
            .assert()
            .success();
        host.tpm2("tpm2_policysecret")
            .args(["-S", "session.ctx", "-c", "e"])
            .current_dir(w)
            .assert()
            .success();
        host.tpm2("tpm2_activatecredential")
            .args([
                "-c",
                "ak.ctx",
                "-C",
                "0x81010001",
                "-i",
                "cred.bin",
                "-o",
                "secret.out",
                "-P",
                "session:session.ctx",
            ])
            .current_dir(w)
            .assert()
            .success();
        host.tpm2("tpm2_flushcontext")
            .arg("session.ctx")
            .current_dir(w)
            .assert()
            .success();
        host.tpm2("tpm2_flushcontext")
            .arg("-t")
            .current_dir(w)
            .assert()
            .success();
        assert_eq!(std::fs::read(w.join("secret.out")).unwrap(), secret);
    }

    // Bound to the AK's name: a credential for another name does not activate.
    let mut other = ak_name.clone();
    let last = other.len() - 1;
    other[last] ^= 1;
    let cred = make_credential(&ek, &other, b"0123456789abcdef").unwrap();
    std::fs::write(w.join("cred.bin"), cred.to_tpm2_tools_file()).unwrap();
    host.tpm2("tpm2_startauthsession")
        .args(["--policy-session", "-S", "session.ctx"])
        .current_dir(w)
        .assert()
        .success();
    host.tpm2("tpm2_policysecret")
        .args(["-S", "session.ctx", "-c", "e"])
        .current_dir(w)
        .assert()
        .success();
    host.tpm2("tpm2_activatecredential")
        .args([
            "-c",
            "ak.ctx",
            "-C",
            "0x81010001",
            "-i",
            "cred.bin",
            "-o",
            "secret.out",
            "-P",
            "session:session.ctx",
        ])
        .current_dir(w)
        .assert()
        .failure();
}

// Long on purpose: one swtpm per test costs seconds, so the checks that share a host share a test, in order.
#[test]
fn our_duplication_blob_imports_with_tpm2_import() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let w = work.path();
    host.tpm2_run(
        "tpm2_createprimary",
        &[
            "-C",
            "o",
            "-g",
            "sha256",
            "-G",
            "rsa2048:aes128cfb",
            "-c",
            "parent.ctx",
        ],
        w,
    );
    host.tpm2_run(
        "tpm2_readpublic",
        &["-c", "parent.ctx", "-o", "parent.pub"],
        w,
    );
    let parent = TpmtPublic::parse_tpm2b(&std::fs::read(w.join("parent.pub")).unwrap()).unwrap();
    std::fs::write(w.join("msg"), b"imported by tpm2_import").unwrap();

    for (alg, scheme) in [
        (KeyAlg::Rsa2048, "rsassa"),
        (KeyAlg::P256, "ecdsa"),
        (KeyAlg::P384, "ecdsa"),
        (KeyAlg::Rsa3072, "rsassa"),
    ] {
        let key = TargetKey::generate(alg).unwrap();
        let public = key.tpm_public();
        let inner = random::<16>();
        let blob = duplicate(&parent, &public, &key.tpm_sensitive(), Some(&inner)).unwrap();
        std::fs::write(w.join("key.pub"), public.to_tpm2b()).unwrap();
        std::fs::write(w.join("key.dpriv"), &blob.duplicate).unwrap();
        std::fs::write(w.join("key.seed"), &blob.seed).unwrap();
        std::fs::write(w.join("inner.key"), inner).unwrap();
        std::fs::write(w.join("key.pub.pem"), key.public_key_pem().unwrap()).unwrap();
        host.tpm2_run(
            "tpm2_import",
            &[
                "-C",
                "parent.ctx",
                "-u",
                "key.pub",
                "-i",
                "key.dpriv",
                "-s",
                "key.seed",
                "-k",
                "inner.key",
                "-r",
                "key.priv",
            ],
            w,
        );
        host.tpm2_run(
            "tpm2_load",
            &[
                "-C",
                "parent.ctx",
                "-u",
                "key.pub",
                "-r",
                "key.priv",
                "-c",
                "key.ctx",
            ],
            w,
        );
        host.tpm2_run(
            "tpm2_sign",
            &[
                "-c", "key.ctx", "-g", "sha256", "-s", scheme, "-f", "plain", "-o", "sig", "msg",
            ],
            w,
        );
        openssl()
            .args([
                "dgst",
                "-sha256",
                "-verify",
                "key.pub.pem",
                "-signature",
                "sig",
                "msg",
            ])
            .current_dir(w)
            .assert()
            .success();

        // The inner wrapper is enforced: the wrong inner key is refused.
        std::fs::write(w.join("inner.key"), random::<16>()).unwrap();
        host.tpm2("tpm2_import")
            .args([
                "-C",
                "parent.ctx",
                "-u",
                "key.pub",
                "-i",
                "key.dpriv",
                "-s",
                "key.seed",
                "-k",
                "inner.key",
                "-r",
                "bad.priv",
            ])
            .current_dir(w)
            .assert()
            .failure();
        host.tpm2("tpm2_flushcontext")
            .arg("-t")
            .current_dir(w)
            .assert()
            .success();
        eprintln!("{}: imported with tpm2_import and signed", alg.name());
    }
}
// Long on purpose: one swtpm per test costs seconds, so the checks that share a host share a test, in order.

#[test]
fn our_ecdh_seeded_duplication_blob_imports_under_ecc_parents() {
    // ECC new parents: the seed comes from one-pass ECDH and KDFe, as a TPM
    // does it; tpm2_import under ECC storage primaries (P-256, P-384) checks it.
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let w = work.path();
    std::fs::write(w.join("msg"), b"imported under an ECC parent").unwrap();
    for (parent_alg, hash) in [
        ("ecc256:aes128cfb", "sha256"),
        ("ecc384:aes256cfb", "sha384"),
    ] {
        host.tpm2_run(
            "tpm2_createprimary",
            &["-C", "o", "-g", hash, "-G", parent_alg, "-c", "eparent.ctx"],
            w,
        );
        host.tpm2_run(
            "tpm2_readpublic",
            &["-c", "eparent.ctx", "-o", "eparent.pub"],
            w,
        );
        let parent =
            TpmtPublic::parse_tpm2b(&std::fs::read(w.join("eparent.pub")).unwrap()).unwrap();
        for alg in [KeyAlg::P256, KeyAlg::Rsa2048] {
            let key = TargetKey::generate(alg).unwrap();
            let public = key.tpm_public();
            let inner = random::<16>();
            let blob = duplicate(&parent, &public, &key.tpm_sensitive(), Some(&inner)).unwrap();
            std::fs::write(w.join("key.pub"), public.to_tpm2b()).unwrap();
            std::fs::write(w.join("key.dpriv"), &blob.duplicate).unwrap();
            std::fs::write(w.join("key.seed"), &blob.seed).unwrap();
            std::fs::write(w.join("inner.key"), inner).unwrap();
            std::fs::write(w.join("key.pub.pem"), key.public_key_pem().unwrap()).unwrap();
            host.tpm2_run(
                "tpm2_import",
                &[
                    "-C",
                    "eparent.ctx",
                    "-u",
                    "key.pub",
                    "-i",
                    "key.dpriv",
                    "-s",
                    "key.seed",
                    "-k",
                    "inner.key",
                    "-r",
                    "key.priv",
                ],
                w,
            );
            host.tpm2_run(
                "tpm2_load",
                &[
                    "-C",
                    "eparent.ctx",
                    "-u",
                    "key.pub",
                    "-r",
                    "key.priv",
                    "-c",
                    "key.ctx",
                ],
                w,
            );
            let scheme = if alg == KeyAlg::P256 {
                "ecdsa"
            } else {
                "rsassa"
            };
            host.tpm2_run(
                "tpm2_sign",
                &[
                    "-c", "key.ctx", "-g", "sha256", "-s", scheme, "-f", "plain", "-o", "sig",
                    "msg",
                ],
                w,
            );
            openssl()
                .args([
                    "dgst",
                    "-sha256",
                    "-verify",
                    "key.pub.pem",
                    "-signature",
                    "sig",
                    "msg",
                ])
                .current_dir(w)
                .assert()
                .success();
            // A seed point changed by one byte: refused.
            let mut seed = blob.seed.clone();
            let last = seed.len() - 1;
            seed[last] ^= 1;
            std::fs::write(w.join("key.seed"), &seed).unwrap();
            host.tpm2("tpm2_import")
                .args([
                    "-C",
                    "eparent.ctx",
                    "-u",
                    "key.pub",
                    "-i",
                    "key.dpriv",
                    "-s",
                    "key.seed",
                    "-k",
                    "inner.key",
                    "-r",
                    "bad.priv",
                ])
                .current_dir(w)
                .assert()
                .failure();
            host.tpm2("tpm2_flushcontext")
                .arg("-t")
                .current_dir(w)
                .assert()
                .success();
        }
    }
}

#[test]
fn our_make_credential_for_an_ecc_ek_activates_with_tpm2_activatecredential() {
    // swtpm_setup's ECC EK (NIST P-384, SHA-384 name, AES-256) at 0x81010016:
    // the credential seed is derived by ECDH and KDFe with label "IDENTITY".
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let w = work.path();
    host.tpm2_run(
        "tpm2_readpublic",
        &["-c", "0x81010016", "-o", "eccek.pub"],
        w,
    );
    let ek = TpmtPublic::parse_tpm2b(&std::fs::read(w.join("eccek.pub")).unwrap()).unwrap();
    assert_eq!(ek.describe_key(), "ECC NIST P-384");
    // Any loaded object can be the credentialed one; its name binds the credential.
    host.tpm2_run(
        "tpm2_createprimary",
        &["-C", "o", "-G", "ecc256", "-c", "obj.ctx"],
        w,
    );
    host.tpm2_run("tpm2_readpublic", &["-c", "obj.ctx", "-o", "obj.pub"], w);
    let name = TpmtPublic::parse_tpm2b(&std::fs::read(w.join("obj.pub")).unwrap())
        .unwrap()
        .name();
    let secret = random::<32>();
    let cred = make_credential(&ek, &name, &secret).unwrap();
    std::fs::write(w.join("cred.bin"), cred.to_tpm2_tools_file()).unwrap();
    host.tpm2("tpm2_activatecredential")
        .args([
            "-c",
            "obj.ctx",
            "-C",
            "0x81010016",
            "-i",
            "cred.bin",
            "-o",
            "secret.out",
        ])
        .current_dir(w)
        .assert()
        .success();
    assert_eq!(std::fs::read(w.join("secret.out")).unwrap(), secret);
    host.tpm2("tpm2_flushcontext")
        .arg("-t")
        .current_dir(w)
        .assert()
        .success();
}
