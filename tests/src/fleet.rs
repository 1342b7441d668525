//! Shared steps of the fleet tests (tests/tests/fleet*.rs): enrolling swtpm
//! hosts into one registry, and checking a host's signature with OpenSSL.

use crate::{enroll, nonce, openssl, Host};
use std::path::{Path, PathBuf};

/// Enrol each `(name, host)` for `world` (initialised already) in
/// `work/registry`, trusting each host's CA from `work/roots`; returns
/// (roots, registry).
pub fn enrol_all(hosts: &[(&str, &Host)], world: &str, work: &Path) -> (PathBuf, PathBuf) {
    let roots = work.join("roots");
    std::fs::create_dir_all(&roots).expect("roots directory");
    let registry = work.join("registry");
    for (name, host) in hosts {
        std::fs::copy(&host.ca_bundle, roots.join(format!("{name}.pem"))).expect("CA bundle");
        let n = nonce();
        let ev = work.join(format!("{name}.enrol.evidence"));
        host.evidence(world, &n, &ev);
        enroll(host, world, &ev, &n, &registry, &["--host", name]).success();
    }
    (roots, registry)
}

/// The public key of the private key file `key`, as PEM in `out`.
pub fn public_key_of(key: &Path, out: &Path) -> PathBuf {
    openssl()
        .args(["pkey", "-in"])
        .arg(key)
        .args(["-pubout", "-out"])
        .arg(out)
        .assert()
        .success();
    out.to_path_buf()
}

/// OpenSSL verifies `dir/k.sig` over `dir/msg` (what `Host::sign("k", dir)`
/// wrote) with `public`.
pub fn check_signature(public: &Path, dir: &Path) {
    openssl()
        .args(["dgst", "-sha256", "-verify"])
        .arg(public)
        .arg("-signature")
        .arg(dir.join("k.sig"))
        .arg(dir.join("msg"))
        .assert()
        .success()
        .stdout("Verified OK\n");
}

/// The files of a fleet wrap, as `byok-verifier wrap --nonces` takes them.
pub struct FleetRun<'a> {
    pub nonces: &'a Path,
    pub registry: &'a Path,
    pub roots: &'a Path,
    pub evidence: &'a Path,
    pub key: &'a Path,
    pub out: &'a Path,
}

impl FleetRun<'_> {
    /// `byok-verifier wrap --format FORMAT --nonces ... --out-dir OUT`.
    pub fn wrap(&self, format: &str) -> assert_cmd::Command {
        let mut c = crate::verifier();
        c.args(["wrap", "--format", format, "--nonces"])
            .arg(self.nonces)
            .arg("--registry")
            .arg(self.registry)
            .arg("--roots")
            .arg(self.roots)
            .arg("--evidence")
            .arg(self.evidence)
            .arg("--key")
            .arg(self.key)
            .arg("--out-dir")
            .arg(self.out);
        c
    }

    /// `byok-verifier check-receipt --nonces ... --receipts RECEIPTS`.
    pub fn check_receipts(&self, receipts: &Path) -> assert_cmd::Command {
        let mut c = crate::verifier();
        c.args(["check-receipt", "--nonces"])
            .arg(self.nonces)
            .arg("--registry")
            .arg(self.registry)
            .arg("--roots")
            .arg(self.roots)
            .arg("--receipts")
            .arg(receipts);
        c
    }
}

/// `byok-verifier nonces --world WORLD --registry REGISTRY -o OUT`.
pub fn nonces(world: &str, registry: &Path, out: &Path) -> assert_cmd::assert::Assert {
    crate::verifier()
        .args(["nonces", "--world", world, "--registry"])
        .arg(registry)
        .arg("-o")
        .arg(out)
        .assert()
}

/// The nonce `nonces` (a file `byok-verifier nonces` wrote) holds for `host`.
pub fn nonce_for(nonces: &Path, host: &str) -> String {
    let set: serde_json::Value =
        serde_json::from_slice(&std::fs::read(nonces).expect("the nonce file")).expect("JSON");
    set["hosts"][host]
        .as_str()
        .unwrap_or_else(|| panic!("no nonce for {host} in {}", nonces.display()))
        .to_string()
}

/// `byok-agent attest-key --key k --nonce NONCE -o OUT` on `host`.
pub fn attest_key(host: &Host, nonce: &str, out: &Path) {
    host.agent()
        .args(["attest-key", "--key", "k", "--nonce", nonce, "-o"])
        .arg(out)
        .assert()
        .success();
}

/// Run `cmd` (a `--json` command), expect exit `code`, check its output
/// against the fields docs/json.md lists for `documented_as`, and return it.
pub fn json_run(
    cmd: &mut assert_cmd::Command,
    code: i32,
    documented_as: &str,
) -> serde_json::Value {
    let run = cmd.output().expect("run the command");
    assert_eq!(
        run.status.code(),
        Some(code),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    crate::json_docs::check(&crate::json_docs::documented(), documented_as, &stdout);
    serde_json::from_slice(&run.stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}
