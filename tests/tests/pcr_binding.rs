//! PCR-bound transfer: a KEK bound to PCRs at init (visible to and checked by
//! the verifier), and keys wrapped with a PCR policy. In each case the TPM
//! itself refuses once the PCRs differ.

use byok_tests::{cbor_field, keygen, nonce, tpm_a, verifier, wrap_with, Host, World};
use predicates::str::contains;
use std::path::Path;
use tempfile::TempDir;

/// PCR 23 back to the state "extended once with 1".
fn restore(host: &Host) {
    host.tpm2("tpm2_pcrreset").arg("23").assert().success();
    host.extend_pcr(23, 1);
}

/// `verify` of `ev` with a policy file holding `[worlds.WORLD]`, the host's
/// roots and `body` (written beside the evidence).
fn verify_with_policy(
    host: &Host,
    ev: &World,
    world: &str,
    body: &str,
) -> assert_cmd::assert::Assert {
    let p = ev.evidence.with_extension("policy.toml");
    std::fs::write(
        &p,
        format!("[worlds.{world}]\nroots = [{:?}]\n{body}", host.ca_bundle),
    )
    .unwrap();
    verifier()
        .args(["verify", "--nonce", &ev.nonce, "--evidence"])
        .arg(&ev.evidence)
        .arg("--policy")
        .arg(&p)
        .assert()
}

/// Evidence quoting PCRs 0, 7, 16 and 23 (the bound ones among them).
fn evidence(host: &Host, world: &str, work: &Path) -> World {
    let n = nonce();
    let p = work.join(format!("{world}-{n}.evidence"));
    host.agent()
        .args([
            "evidence",
            "--world",
            world,
            "--nonce",
            &n,
            "--pcrs",
            "sha256:0,7,16,23",
            "-o",
        ])
        .arg(&p)
        .assert()
        .success();
    World {
        nonce: n,
        evidence: p,
    }
}

#[test]
fn a_pcr_bound_kek_is_verified_and_enforced_by_the_tpm() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let wd = work.path();
    host.extend_pcr(23, 1);
    host.agent()
        .args(["init", "--world", "pb", "--pcrs", "sha256:16,23"])
        .assert()
        .success()
        .stdout(contains("bound to PCRs sha256:16,23"));
    let ev = evidence(&host, "pb", wd);
    let pcr23 = hex::encode(byok_protocol::hash::sha256(
        &[[0u8; 32], [1u8; 32]].concat(),
    ));
    verifier()
        .args(["verify", "--nonce", &ev.nonce, "--evidence"])
        .arg(&ev.evidence)
        .arg("--roots")
        .arg(&host.ca_bundle)
        .assert()
        .success()
        .stdout(contains(
            "KEK use:    only while PCRs sha256:16,23 hold these values",
        ))
        .stdout(contains(format!("sha256:23 = {pcr23}")));

    // The policy file fixes the bound values; requiring a bound KEK is not
    // met by PCRs 16 and 23, which software can reset (see
    // `a_kek_bound_to_resettable_pcrs_meets_no_requirement`).
    let policy = |body: &str| verify_with_policy(&host, &ev, "pb", body);
    policy(&format!("[worlds.pb.pcrs.sha256]\n23 = \"{pcr23}\"\n")).success();
    policy(&format!(
        "[worlds.pb.pcrs.sha256]\n16 = \"{}\"\n",
        "11".repeat(32)
    ))
    .code(10)
    .stderr(contains("KEK is bound to PCR sha256:16 = 0000"));
    policy(&format!(
        "require_kek_pcrs = true\n[worlds.pb.pcrs.sha256]\n16 = \"{}\"\n23 = \"{pcr23}\"\n",
        "00".repeat(32)
    ))
    .code(10)
    .stderr(contains(
        "KEK is bound to sha256:16,23 only: software can reset those PCRs",
    ));

    // Wrapped for it, imported while PCRs hold: works.
    let pkg = wd.join("k1.transfer");
    wrap_with(&host, &ev, &keygen("p256", wd.join("k1.pem")), &pkg, &[]).success();
    host.import("pb", "k1", &pkg).success();
    host.sign("k1", wd).success();
    let pkg2 = wd.join("k2.transfer");
    wrap_with(&host, &ev, &keygen("p256", wd.join("k2.pem")), &pkg2, &[]).success();

    // PCR 23 changes: the TPM refuses to import under the KEK and to load keys under it.
    host.extend_pcr(23, 2);
    host.import("pb", "k2", &pkg2).code(8).stderr(contains(
        "the TPM refused TPM2_Import: the PCRs sha256:16,23",
    ));
    assert!(!host.stored_keys().contains(&"k2.cbor".to_string()));
    host.sign("k1", wd)
        .code(8)
        .stderr(contains("the TPM refused TPM2_Load: the PCRs sha256:16,23"));
    host.agent()
        .args([
            "key", "create", "--world", "pb", "--name", "born", "--alg", "p256",
        ])
        .assert()
        .code(8);

    // Back in the bound state: both work again.
    restore(&host);
    host.import("pb", "k2", &pkg2).success();
    host.sign("k1", wd).success();
    host.sign("k2", wd).success();
}

// Long on purpose: one swtpm per test costs seconds, so the checks that share a host share a test, in order.
#[test]
fn keys_wrapped_with_a_pcr_policy_are_usable_only_in_that_state() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let wd = work.path();
    host.init("eu");
    host.extend_pcr(23, 1);
    let ev = evidence(&host, "eu", wd);
    let pkg = wd.join("bound.transfer");
    wrap_with(
        &host,
        &ev,
        &keygen("p256", wd.join("bound.pem")),
        &pkg,
        &["--key-pcrs", "sha256:16,23"],
    )
    .success();
    // A PCR the quote does not cover cannot be bound.
    wrap_with(
        &host,
        &ev,
        &keygen("p256", wd.join("x.pem")),
        &wd.join("x.transfer"),
        &["--key-pcrs", "sha256:15"],
    )
    .code(2)
    .stderr(contains("PCR 15 is not in the evidence's quote"));
    host.import("eu", "bound", &pkg).success();
    host.agent()
        .args(["keys", "show", "bound"])
        .assert()
        .success()
        .stdout(contains("bound to:   PCRs sha256:16,23"))
        .stdout(contains("attributes: noDA|decrypt|sign"));
    host.sign("bound", wd).success();

    host.extend_pcr(23, 2);
    host.sign("bound", wd)
        .code(8)
        .stderr(contains("the TPM refused TPM2_Sign: the PCRs sha256:16,23"));
    restore(&host);
    host.sign("bound", wd).success();

    // The receipt: with the package the verifier knows the policy is PCR-only.
    let rn = nonce();
    let receipt = wd.join("bound.receipt");
    host.agent()
        .args(["attest-key", "--key", "bound", "--nonce", &rn, "-o"])
        .arg(&receipt)
        .assert()
        .success();
    let registry = wd.join("registry");
    byok_tests::enroll(&host, "eu", &ev.evidence, &ev.nonce, &registry, &[]).success();
    let check = |transfer: bool| {
        let mut c = verifier();
        c.args([
            "check-receipt",
            "--json",
            "--nonce",
            &rn,
            "--evidence-nonce",
            &ev.nonce,
            "--receipt",
        ])
        .arg(&receipt)
        .arg("--evidence")
        .arg(&ev.evidence)
        .arg("--roots")
        .arg(&host.ca_bundle)
        .arg("--registry")
        .arg(&registry);
        if transfer {
            c.arg("--transfer").arg(&pkg);
        }
        c.assert().success()
    };
    check(true).stdout(contains("\"duplicable\":false"));
    check(false).stdout(contains("\"duplicable\":null"));

    // Even with a session that satisfies the PCR policy, the TPM refuses to
    // duplicate the key (the DUP role needs PolicyCommandCode(Duplicate)).
    let state = host.key_state("bound");
    let field = |name: &str| cbor_field(&state, name).as_bytes().unwrap().clone();
    let (public, private) = (field("public"), field("private"));
    let (pub_file, priv_file) = (wd.join("bound.pub"), wd.join("bound.priv"));
    std::fs::write(&pub_file, public).unwrap();
    std::fs::write(&priv_file, private).unwrap();
    let ctx = wd.join("bound.ctx");
    host.tpm2("tpm2_load")
        .args(["-C", "0x81000100", "-u"])
        .arg(&pub_file)
        .arg("-r")
        .arg(&priv_file)
        .arg("-c")
        .arg(&ctx)
        .assert()
        .success();
    let session = wd.join("pcr.session");
    host.tpm2("tpm2_startauthsession")
        .args(["--policy-session", "-S"])
        .arg(&session)
        .assert()
        .success();
    host.tpm2("tpm2_policypcr")
        .arg("-S")
        .arg(&session)
        .args(["-l", "sha256:16,23"])
        .assert()
        .success();
    host.tpm2("tpm2_duplicate")
        .arg("-c")
        .arg(&ctx)
        .args(["-C", "null", "-G", "null", "-p"])
        .arg(format!("session:{}", session.display()))
        .arg("-r")
        .arg(wd.join("dup.priv"))
        .arg("-s")
        .arg(wd.join("dup.seed"))
        .assert()
        .failure()
        .stderr(contains("Esys_Duplicate"));
    assert!(!wd.join("dup.priv").exists());
}

#[test]
fn a_kek_bound_to_resettable_pcrs_meets_no_requirement() {
    // init --pcrs sha256:23 warns; a policy requiring a bound KEK refuses
    // it, however the reference values are set: software can reset PCR 23
    // and extend it back to the bound value, after which the TPM imports
    // under the KEK again (shown below), in any boot state.
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let wd = work.path();
    host.extend_pcr(23, 1);
    host.agent()
        .args(["init", "--world", "r23", "--pcrs", "sha256:23"])
        .assert()
        .success()
        .stderr(contains(
            "warning: --pcrs sha256:23: PCR(s) 23 can be reset by software",
        ));
    let ev = evidence(&host, "r23", wd);
    let pcr23 = hex::encode(byok_protocol::hash::sha256(
        &[[0u8; 32], [1u8; 32]].concat(),
    ));
    let verify = |body: &str| verify_with_policy(&host, &ev, "r23", body);
    let refs = format!("[worlds.r23.pcrs.sha256]\n23 = \"{pcr23}\"\n");
    verify(&format!("require_kek_pcrs = true\n{refs}"))
        .code(10)
        .stderr(contains("KEK is bound to sha256:23 only"));
    // Naming PCR 23 in the requirement is a mistake in the policy itself.
    verify(&format!("require_kek_pcrs = [23]\n{refs}"))
        .code(3)
        .stderr(contains("PCR 23 can be reset by software"));
    // Without a requirement the binding is reported, not relied on.
    verify(&refs).success().stdout(contains(
        "KEK use:    only while PCRs sha256:23 hold these values",
    ));

    // Why: reset and re-extend, and the TPM takes the key again.
    let pkg = wd.join("k.transfer");
    wrap_with(&host, &ev, &keygen("p256", wd.join("k.pem")), &pkg, &[]).success();
    host.extend_pcr(23, 9);
    host.import("r23", "k", &pkg).code(8);
    restore(&host);
    host.import("r23", "k", &pkg).success();
}

#[test]
fn a_required_kek_binding_needs_fixed_pcrs_with_reference_values() {
    // PCRs 7 and 23 bound: PCR 7 cannot be reset without a platform reset,
    // so it makes the required binding; every bound PCR needs its reference.
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let wd = work.path();
    host.extend_pcr(7, 7);
    host.extend_pcr(23, 1);
    host.agent()
        .args(["init", "--world", "r7", "--pcrs", "sha256:7,23"])
        .assert()
        .success();
    let ev = evidence(&host, "r7", wd);
    let extended = |byte: u8| {
        hex::encode(byok_protocol::hash::sha256(
            &[[0u8; 32], [byte; 32]].concat(),
        ))
    };
    let verify = |body: &str| verify_with_policy(&host, &ev, "r7", body);
    let (p7, p23) = (extended(7), extended(1));
    verify(&format!(
        "require_kek_pcrs = [7]\n[worlds.r7.pcrs.sha256]\n7 = \"{p7}\"\n23 = \"{p23}\"\n"
    ))
    .success();
    verify(&format!(
        "require_kek_pcrs = [7]\n[worlds.r7.pcrs.sha256]\n7 = \"{p7}\"\n"
    ))
    .code(10)
    .stderr(contains(
        "KEK is bound to PCR sha256:23, which has no reference value",
    ));
    verify(&format!(
        "require_kek_pcrs = [0, 7]\n[worlds.r7.pcrs.sha256]\n7 = \"{p7}\"\n23 = \"{p23}\"\n"
    ))
    .code(10)
    .stderr(contains("the policy requires PCR(s) 0 too"));
}
