//! One TPM, many users: eight agents with eight state directories and
//! OpenSSL's tpm2 provider, all at once on one swtpm (no resource manager).
//! Agents take turns per TPM and flush only what they loaded; nobody fails.

use byok_tests::{keygen, nonce, tpm_a, Host};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use tempfile::TempDir;

const AGENTS: usize = 8;

/// One agent installation: its state directory and a package wrapped for it.
struct Install {
    state: TempDir,
    package: PathBuf,
}

fn install(host: &Host, i: usize, work: &Path) -> Install {
    let state = TempDir::new().unwrap();
    host.agent_in(state.path())
        .args(["init", "--world", "eu", "--kek-alg", "p256"])
        .assert()
        .success();
    let n = nonce();
    let ev = work.join(format!("{i}.evidence"));
    host.agent_in(state.path())
        .args(["evidence", "--world", "eu", "--nonce", &n, "-o"])
        .arg(&ev)
        .assert()
        .success();
    let package = work.join(format!("{i}.transfer"));
    let world = byok_tests::World {
        nonce: n.clone(),
        evidence: ev.clone(),
    };
    byok_tests::wrap_with(
        host,
        &world,
        &keygen("p256", work.join(format!("{i}.pem"))),
        &package,
        &["--world", "eu"],
    )
    .success();
    Install { state, package }
}

fn ok(out: std::io::Result<std::process::Output>, what: &str, failures: &AtomicUsize) {
    let out = out.expect("spawn");
    if !out.status.success() {
        failures.fetch_add(1, Ordering::SeqCst);
        eprintln!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
}

// Long on purpose: the setup (eight installations) and the concurrent run are one scenario.
#[test]
fn eight_agents_and_openssl_share_one_tpm_without_a_failure() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let wd = work.path();
    let installs: Vec<Install> = (0..AGENTS).map(|i| install(&host, i, wd)).collect();
    // A key OpenSSL uses through the tpm2 provider, from the first installation.
    host.agent_in(installs[0].state.path())
        .args([
            "key", "create", "--world", "eu", "--name", "ossl", "--alg", "p256",
        ])
        .assert()
        .success();
    let keyfile = wd.join("ossl.tss.pem");
    host.agent_in(installs[0].state.path())
        .args(["keyfile", "--key", "ossl", "-o"])
        .arg(&keyfile)
        .assert()
        .success();
    let digest = wd.join("digest");
    std::fs::write(&digest, [7u8; 32]).unwrap();
    std::fs::write(wd.join("msg"), b"m").unwrap();

    let failures = AtomicUsize::new(0);
    let runs = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for (i, inst) in installs.iter().enumerate() {
            let (host, failures, runs, wd) = (&host, &failures, &runs, wd);
            s.spawn(move || {
                let agent = || host.agent_in(inst.state.path());
                ok(
                    agent()
                        .args(["import", "--world", "eu", "--name", "imp", "--in"])
                        .arg(&inst.package)
                        .output(),
                    "import",
                    failures,
                );
                ok(
                    agent()
                        .args([
                            "key", "create", "--world", "eu", "--name", "born", "--alg", "p256",
                        ])
                        .output(),
                    "key create",
                    failures,
                );
                for (j, key) in ["imp", "born", "imp"].iter().enumerate() {
                    ok(
                        agent()
                            .args(["sign", "--key", key, "--in"])
                            .arg(wd.join("msg"))
                            .arg("-o")
                            .arg(wd.join(format!("{i}-{j}.sig")))
                            .output(),
                        "sign",
                        failures,
                    );
                }
                runs.fetch_add(5, Ordering::SeqCst);
            });
        }
        // OpenSSL signs meanwhile, one signature after another (its
        // provider does not wait for a slot: several OpenSSL processes at
        // once can exhaust swtpm's three slots among themselves).
        let (host, failures, runs, keyfile, digest, wd) =
            (&host, &failures, &runs, &keyfile, &digest, wd);
        s.spawn(move || {
            for j in 0..10 {
                let mut c = host.openssl_tpm2();
                c.args([
                    "pkeyutl",
                    "-provider",
                    "tpm2",
                    "-provider",
                    "base",
                    "-sign",
                    "-inkey",
                ])
                .arg(keyfile)
                .arg("-in")
                .arg(digest)
                .arg("-out")
                .arg(wd.join(format!("ossl-{j}.sig")));
                ok(c.output(), "openssl pkeyutl -provider tpm2", failures);
                runs.fetch_add(1, Ordering::SeqCst);
            }
        });
    });
    let (runs, failures) = (runs.into_inner(), failures.into_inner());
    eprintln!(
        "shared TPM: {runs} runs ({AGENTS} agents x 5, 10 OpenSSL signatures), {failures} failed"
    );
    assert_eq!(failures, 0);
    // Nothing is left loaded.
    let out = host
        .tpm2("tpm2_getcap")
        .arg("handles-transient")
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("0x"));
}
