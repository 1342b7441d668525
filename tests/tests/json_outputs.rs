//! Every `--json` output of both binaries against docs/json.md: each field
//! the document lists is in the output, and each top-level field the output
//! has is in the document.

use byok_tests::json_docs::{check, documented};
use byok_tests::{enroll, keygen, nonce, tpm_a, verifier, world, wrap_with, Host};
use std::path::Path;
use tempfile::TempDir;

fn stdout(mut c: assert_cmd::Command) -> String {
    let out = c.output().unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

// Long on purpose: one host serves every command's JSON, in flow order.
#[test]
fn every_json_output_has_its_documented_fields() {
    let docs = documented();
    let host = Host::new(tpm_a());
    // The state directory as tempfile made it (0755): doctor has a fix to report.
    let work = TempDir::new().unwrap();
    let wd = work.path();
    let agent = |args: &[&str]| {
        let mut c = host.agent();
        c.args(args);
        c
    };
    check(
        &docs,
        "byok-agent doctor --json",
        &stdout(agent(&["doctor", "--json"])),
    );
    check(
        &docs,
        "byok-agent init --json",
        &stdout(agent(&["init", "--world", "eu", "--compat-kek", "--json"])),
    );
    let w = world(&host, "eu", wd);
    let roots = p(&host.ca_bundle).to_string();
    let v = |args: &[&str]| {
        let mut c = verifier();
        c.args(args);
        c
    };
    check(
        &docs,
        "byok-verifier verify --json",
        &stdout(v(&[
            "verify",
            "--json",
            "--nonce",
            &w.nonce,
            "--evidence",
            p(&w.evidence),
            "--roots",
            &roots,
        ])),
    );
    let registry = wd.join("registry");
    let enrolled = enroll(&host, "eu", &w.evidence, &w.nonce, &registry, &["--json"]).success();
    check(
        &docs,
        "byok-verifier enroll --json",
        &String::from_utf8_lossy(&enrolled.get_output().stdout),
    );
    let pkg = wd.join("k.transfer");
    let key = keygen("p256", wd.join("k.pem"));
    let wrapped = wrap_with(&host, &w, &key, &pkg, &["--json"]).success();
    check(
        &docs,
        "byok-verifier wrap --json",
        &String::from_utf8_lossy(&wrapped.get_output().stdout),
    );
    check(
        &docs,
        "byok-agent import --json",
        &stdout(agent(&[
            "import",
            "--world",
            "eu",
            "--name",
            "k",
            "--in",
            p(&pkg),
            "--json",
        ])),
    );
    check(
        &docs,
        "byok-agent keys list --json",
        &stdout(agent(&["keys", "list", "--json"])),
    );
    check(
        &docs,
        "byok-agent keys show --json",
        &stdout(agent(&["keys", "show", "k", "--json"])),
    );
    check(
        &docs,
        "byok-agent worlds list --json",
        &stdout(agent(&["worlds", "list", "--json"])),
    );
    let rn = nonce();
    let receipt = wd.join("k.receipt");
    agent(&[
        "attest-key",
        "--key",
        "k",
        "--nonce",
        &rn,
        "-o",
        p(&receipt),
    ])
    .assert()
    .success();
    check(
        &docs,
        "byok-verifier check-receipt --json",
        &stdout(v(&[
            "check-receipt",
            "--json",
            "--nonce",
            &rn,
            "--evidence-nonce",
            &w.nonce,
            "--receipt",
            p(&receipt),
            "--evidence",
            p(&w.evidence),
            "--roots",
            &roots,
            "--registry",
            p(&registry),
            "--transfer",
            p(&pkg),
        ])),
    );
    let ek = wd.join("ek.der");
    host.tpm2("tpm2_nvread")
        .args(["0x01c00002", "-C", "o", "-o", p(&ek)])
        .assert()
        .success();
    check(
        &docs,
        "byok-verifier ek-cert --json",
        &stdout(v(&[
            "ek-cert",
            "--json",
            "--cert",
            p(&ek),
            "--roots",
            &roots,
        ])),
    );
}
