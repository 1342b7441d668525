//! Quiet on success: the whole flow, every command of both binaries, with
//! `TSS2_LOG` unset (as an operator runs them) writes nothing on standard
//! error; `-q` leaves standard output empty too for status-only commands.

use byok_tests::{keygen, nonce, tpm_a, verifier, Host};
use std::path::Path;
use tempfile::TempDir;

/// Run and require success with an empty standard error; returns stdout.
fn quiet(mut c: assert_cmd::Command, what: &str) -> String {
    let out = c.env_remove("TSS2_LOG").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{what} failed: {stderr}");
    assert!(stderr.is_empty(), "{what} wrote to stderr: {stderr}");
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn agent(host: &Host, args: &[&str]) -> assert_cmd::Command {
    let mut c = host.agent();
    c.args(args);
    c
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

// Long on purpose: the whole operator flow, command after command, on one host.
#[test]
fn every_successful_command_leaves_stderr_empty() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let wd = work.path();
    let roots = p(&host.ca_bundle).to_string();
    quiet(
        agent(&host, &["init", "--world", "eu", "--compat-kek"]),
        "init",
    );
    quiet(agent(&host, &["doctor"]), "doctor");
    let n = nonce();
    let ev = wd.join("eu.evidence");
    quiet(
        agent(
            &host,
            &["evidence", "--world", "eu", "--nonce", &n, "-o", p(&ev)],
        ),
        "evidence",
    );
    let v = |args: &[&str]| {
        let mut c = verifier();
        c.args(args);
        c
    };
    quiet(
        v(&[
            "verify",
            "--nonce",
            &n,
            "--evidence",
            p(&ev),
            "--roots",
            &roots,
        ]),
        "verify",
    );
    quiet(v(&["inspect", p(&ev)]), "inspect");
    let (ch, act, reg) = (wd.join("c"), wd.join("a"), wd.join("registry"));
    quiet(
        v(&[
            "challenge",
            "--nonce",
            &n,
            "--evidence",
            p(&ev),
            "--roots",
            &roots,
            "-o",
            p(&ch),
        ]),
        "challenge",
    );
    quiet(
        agent(
            &host,
            &["activate", "--world", "eu", "--in", p(&ch), "-o", p(&act)],
        ),
        "activate",
    );
    quiet(
        v(&[
            "enroll",
            "--nonce",
            &n,
            "--evidence",
            p(&ev),
            "--roots",
            &roots,
            "--challenge",
            p(&ch),
            "--activation",
            p(&act),
            "--registry",
            p(&reg),
        ]),
        "enroll",
    );
    let key = keygen("p256", wd.join("k.pem"));
    let pkg = wd.join("k.transfer");
    quiet(
        v(&[
            "wrap",
            "--nonce",
            &n,
            "--evidence",
            p(&ev),
            "--roots",
            &roots,
            "--registry",
            p(&reg),
            "--key",
            p(&key),
            "-o",
            p(&pkg),
        ]),
        "wrap",
    );
    quiet(
        agent(
            &host,
            &["import", "--world", "eu", "--name", "k", "--in", p(&pkg)],
        ),
        "import",
    );
    std::fs::write(wd.join("msg"), b"m").unwrap();
    quiet(
        agent(
            &host,
            &[
                "sign",
                "--key",
                "k",
                "--in",
                p(&wd.join("msg")),
                "-o",
                p(&wd.join("sig")),
            ],
        ),
        "sign",
    );
    quiet(
        agent(&host, &["public", "--key", "k", "-o", p(&wd.join("k.pub"))]),
        "public",
    );
    quiet(
        agent(
            &host,
            &["keyfile", "--key", "k", "-o", p(&wd.join("k.tss"))],
        ),
        "keyfile",
    );
    let rn = nonce();
    let receipt = wd.join("k.receipt");
    quiet(
        agent(
            &host,
            &[
                "attest-key",
                "--key",
                "k",
                "--nonce",
                &rn,
                "-o",
                p(&receipt),
            ],
        ),
        "attest-key",
    );
    quiet(
        v(&[
            "check-receipt",
            "--nonce",
            &rn,
            "--evidence-nonce",
            &n,
            "--receipt",
            p(&receipt),
            "--evidence",
            p(&ev),
            "--roots",
            &roots,
            "--registry",
            p(&reg),
        ]),
        "check-receipt",
    );
    quiet(
        agent(
            &host,
            &[
                "key", "create", "--world", "eu", "--name", "born", "--alg", "p256",
            ],
        ),
        "key create",
    );
    std::fs::write(wd.join("secret"), b"s3").unwrap();
    quiet(
        agent(
            &host,
            &[
                "seal",
                "--world",
                "eu",
                "--name",
                "s",
                "--in",
                p(&wd.join("secret")),
            ],
        ),
        "seal",
    );
    quiet(
        agent(&host, &["unseal", "--name", "s", "-o", p(&wd.join("out"))]),
        "unseal",
    );
    quiet(
        agent(
            &host,
            &[
                "kek",
                "export",
                "--world",
                "eu",
                "-o",
                p(&wd.join("kek.pem")),
            ],
        ),
        "kek export",
    );
    quiet(agent(&host, &["keys", "list"]), "keys list");
    quiet(agent(&host, &["keys", "show", "k"]), "keys show");
    quiet(agent(&host, &["worlds", "list"]), "worlds list");
    quiet(
        agent(&host, &["kek", "rotate", "--world", "eu"]),
        "kek rotate",
    );
    quiet(agent(&host, &["kek", "gc"]), "kek gc");
    // -q: nothing at all for a command that only reports that it worked.
    let out = quiet(
        agent(&host, &["-q", "keys", "delete", "born", "--yes"]),
        "keys delete -q",
    );
    assert!(out.is_empty(), "-q printed {out}");
    // ... and errors still reach stderr.
    let mut c = agent(
        &host,
        &[
            "-q",
            "import",
            "--world",
            "eu",
            "--name",
            "k2",
            "--in",
            p(&pkg),
        ],
    );
    c.env_remove("TSS2_LOG")
        .assert()
        .code(7)
        .stdout("")
        .stderr(predicates::str::contains("was rotated"));
}
