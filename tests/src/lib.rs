//! Test harness: provisioned swtpm states (one per test run, copied for
//! each test), swtpm processes on free ports, and the binaries under test.
#![forbid(unsafe_code)]

use assert_cmd::Command;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tempfile::TempDir;

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// A provisioned TPM state with EK certificates from its own local CA.
pub struct Provisioned {
    _dir: TempDir,
    pub state: PathBuf,
    pub ca_bundle: PathBuf,
}

fn provision(tag: &str) -> Provisioned {
    let dir = tempfile::Builder::new()
        .prefix(&format!("byok-prov-{tag}-"))
        .tempdir()
        .expect("tempdir");
    let out = std::process::Command::new("bash")
        .arg(workspace_root().join("tpm-setup/provision.sh"))
        .arg(dir.path())
        .output()
        .expect("run tpm-setup/provision.sh (is swtpm installed? run tpm-setup/install-deps.sh)");
    assert!(
        out.status.success(),
        "provisioning swtpm failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Provisioned {
        state: dir.path().join("state"),
        ca_bundle: dir.path().join("ca-bundle.pem"),
        _dir: dir,
    }
}

/// The TPM most tests use ("manufacturer A").
pub fn tpm_a() -> &'static Provisioned {
    static P: OnceLock<Provisioned> = OnceLock::new();
    P.get_or_init(|| provision("a"))
}

/// A second TPM with its own EK and its own CA ("another TPM").
pub fn tpm_b() -> &'static Provisioned {
    static P: OnceLock<Provisioned> = OnceLock::new();
    P.get_or_init(|| provision("b"))
}

/// A third TPM, for fleets of distinct hosts.
pub fn tpm_c() -> &'static Provisioned {
    static P: OnceLock<Provisioned> = OnceLock::new();
    P.get_or_init(|| provision("c"))
}

/// A running swtpm on a copy of a provisioned state.
pub struct Swtpm {
    child: Option<Child>,
    pub dir: TempDir,
    pub port: u16,
}

fn free_port_pair() -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let p = l.local_addr().expect("addr").port();
        drop(l);
        if p < 65000 && TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read state dir") {
        let e = e.expect("entry");
        if e.file_type().expect("type").is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).expect("copy state");
        }
    }
}

impl Swtpm {
    pub fn start(p: &Provisioned) -> Swtpm {
        let dir = tempfile::Builder::new()
            .prefix("byok-swtpm-")
            .tempdir()
            .expect("tempdir");
        copy_dir(&p.state, &dir.path().join("state"));
        let mut s = Swtpm {
            child: None,
            dir,
            port: 0,
        };
        s.launch();
        s
    }

    fn launch(&mut self) {
        for _ in 0..20 {
            let port = free_port_pair();
            let mut child = std::process::Command::new("swtpm")
                .arg("socket")
                .arg("--tpm2")
                .arg("--tpmstate")
                .arg(format!("dir={}", self.dir.path().join("state").display()))
                .arg("--server")
                .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
                .arg("--ctrl")
                .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1))
                .arg("--flags")
                .arg("not-need-init,startup-clear")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start swtpm (install it with tpm-setup/install-deps.sh)");
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // port taken between probe and bind: try another
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    self.child = Some(child);
                    self.port = port;
                    return;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("could not start swtpm");
    }

    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// Stop and start swtpm on the same state (a TPM restart: TPM2_Startup(CLEAR)).
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Stop swtpm without TPM2_Shutdown (a crash or power loss: an unclean
    /// stop, which the TPM counts as a dictionary-attack failure).
    pub fn kill(&mut self) {
        self.stop();
    }

    /// Start swtpm again on the same state (on a new port: see `tcti`).
    pub fn start_again(&mut self) {
        self.launch();
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A TPM host: a swtpm and an agent state directory.
pub struct Host {
    pub tpm: Swtpm,
    pub state: TempDir,
    pub ca_bundle: PathBuf,
}

impl Host {
    pub fn new(p: &Provisioned) -> Host {
        Host {
            tpm: Swtpm::start(p),
            state: tempfile::Builder::new()
                .prefix("byok-agent-state-")
                .tempdir()
                .expect("tempdir"),
            ca_bundle: p.ca_bundle.clone(),
        }
    }

    /// `byok-agent --tcti … --state-dir …`.
    pub fn agent(&self) -> Command {
        self.agent_via(&self.tpm.tcti())
    }

    /// The agent of this host reaching its TPM through another TCTI (a relay).
    pub fn agent_via(&self, tcti: &str) -> Command {
        self.agent_at(tcti, self.state.path())
    }

    fn agent_at(&self, tcti: &str, state_dir: &Path) -> Command {
        let mut c = Command::cargo_bin("byok-agent").expect("byok-agent binary");
        c.arg("--tcti")
            .arg(tcti)
            .arg("--state-dir")
            .arg(state_dir)
            .env("TSS2_LOG", "all+none")
            // The per-TPM lock and journal beside this swtpm, not in /tmp.
            .env("BYOK_LOCK_DIR", self.tpm.dir.path())
            .env_remove("BYOK_TCTI")
            .env_remove("BYOK_STATE_DIR");
        c
    }

    /// The agent of this host's TPM with another state directory (another
    /// agent installation sharing the TPM).
    pub fn agent_in(&self, state_dir: &Path) -> Command {
        self.agent_at(&self.tpm.tcti(), state_dir)
    }

    /// A tpm2-tools command against this host's swtpm.
    pub fn tpm2(&self, tool: &str) -> Command {
        let mut c = Command::new(tool);
        c.env("TPM2TOOLS_TCTI", self.tpm.tcti())
            .env("TSS2_LOG", "all+none");
        c
    }

    /// Key files the agent stores (to check that failures leave nothing behind).
    pub fn stored_keys(&self) -> Vec<String> {
        let dir = self.state.path().join("keys");
        let mut v: Vec<String> = std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Run a tpm2-tools command in `work` (must succeed), then flush transient
    /// objects: swtpm has three slots and no resource manager.
    pub fn tpm2_run(&self, tool: &str, args: &[&str], work: &Path) {
        self.tpm2(tool)
            .args(args)
            .current_dir(work)
            .assert()
            .success();
        self.tpm2("tpm2_flushcontext")
            .arg("-t")
            .current_dir(work)
            .assert()
            .success();
    }

    /// Fill the TPM's persistent storage with ECC primaries made by
    /// tpm2-tools (another program's objects) at 0x81000160 onwards, until
    /// `TPM2_EvictControl` refuses.
    pub fn fill_persistent_storage(&self, work: &Path) {
        let ctx = work.join("fill.ctx");
        for n in 0x8100_0160u32..0x8100_01ff {
            self.tpm2("tpm2_createprimary")
                .args(["-C", "o", "-G", "ecc256", "-c"])
                .arg(&ctx)
                .assert()
                .success();
            let persisted = self
                .tpm2("tpm2_evictcontrol")
                .args(["-C", "o", "-c"])
                .arg(&ctx)
                .arg(format!("{n:#010x}"))
                .output()
                .expect("tpm2_evictcontrol")
                .status
                .success();
            self.tpm2("tpm2_flushcontext").arg("-t").assert().success();
            if !persisted {
                return;
            }
        }
        panic!("swtpm's NV never filled");
    }

    /// Undefine every EK certificate index this TPM has (with the platform
    /// authorisation, as swtpm_setup defines them): a firmware TPM whose
    /// manufacturer publishes the certificates online.
    pub fn remove_ek_certificates(&self) {
        let out = self
            .tpm2("tpm2_getcap")
            .arg("handles-nv-index")
            .output()
            .expect("tpm2_getcap");
        let listed = String::from_utf8_lossy(&out.stdout).to_lowercase();
        let mut removed = 0;
        for index in ["0x1c00002", "0x1c0000a", "0x1c00016"] {
            if listed.contains(index) {
                self.tpm2("tpm2_nvundefine")
                    .args(["-C", "p", index])
                    .assert()
                    .success();
                removed += 1;
            }
        }
        assert!(removed > 0, "no EK certificate index to remove: {listed}");
    }

    /// OpenSSL with the tpm2 provider pointed at this host's swtpm.
    pub fn openssl_tpm2(&self) -> Command {
        let mut c = openssl();
        c.env("TPM2OPENSSL_TCTI", self.tpm.tcti())
            .env("TSS2_LOG", "all+none");
        c
    }

    /// Extend sha256 PCR `index` with 32 bytes of `byte` (tpm2_pcrextend).
    pub fn extend_pcr(&self, index: u32, byte: u8) {
        self.tpm2("tpm2_pcrextend")
            .arg(format!("{index}:sha256={}", hex::encode([byte; 32])))
            .assert()
            .success();
    }

    /// `byok-agent import --world W --name N --in PKG`.
    pub fn import(&self, world: &str, name: &str, pkg: &Path) -> assert_cmd::assert::Assert {
        self.agent()
            .args(["import", "--world", world, "--name", name, "--in"])
            .arg(pkg)
            .assert()
    }

    /// `byok-agent sign --key K` of a small message in `work`, into
    /// `work/K.sig` (a stale signature is removed first, so a refusal can be
    /// checked to leave none).
    pub fn sign(&self, key: &str, work: &Path) -> assert_cmd::assert::Assert {
        let msg = work.join("msg");
        std::fs::write(&msg, b"m").expect("write message");
        let sig = work.join(format!("{key}.sig"));
        let _ = std::fs::remove_file(&sig);
        self.agent()
            .args(["sign", "--key", key, "--in"])
            .arg(&msg)
            .arg("-o")
            .arg(&sig)
            .assert()
    }

    /// The agent's stored state of key `name` (a CBOR map).
    pub fn key_state(&self, name: &str) -> ciborium::Value {
        let p = self.state.path().join("keys").join(format!("{name}.cbor"));
        ciborium::from_reader(&std::fs::read(p).expect("key state")[..]).expect("CBOR")
    }

    /// Overwrite the stored state of key `name` (to forge it).
    pub fn write_key_state(&self, name: &str, v: &ciborium::Value) {
        let mut out = Vec::new();
        ciborium::into_writer(v, &mut out).expect("CBOR");
        let p = self.state.path().join("keys").join(format!("{name}.cbor"));
        std::fs::write(p, out).expect("write key state");
    }

    pub fn init(&self, world: &str) {
        self.agent()
            .args(["init", "--world", world])
            .assert()
            .success();
    }

    /// Write evidence for `world` with `nonce` into `dir`.
    pub fn evidence(&self, world: &str, nonce: &str, out: &Path) {
        self.agent()
            .args([
                "--force", "evidence", "--world", world, "--nonce", nonce, "-o",
            ])
            .arg(out)
            .assert()
            .success();
    }
}

pub fn verifier() -> Command {
    Command::cargo_bin("byok-verifier").expect("byok-verifier binary")
}

/// `byok-verifier keygen --alg ALG -o PATH` (must succeed); returns PATH.
pub fn keygen(alg: &str, path: impl AsRef<Path>) -> PathBuf {
    verifier()
        .args(["keygen", "--alg", alg, "-o"])
        .arg(path.as_ref())
        .assert()
        .success();
    path.as_ref().to_path_buf()
}

/// A field of a CBOR map (text keys), for tests that read or forge state files.
pub fn cbor_field<'a>(v: &'a ciborium::Value, name: &str) -> &'a ciborium::Value {
    v.as_map()
        .and_then(|m| m.iter().find(|(k, _)| k.as_text() == Some(name)))
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no field {name:?}"))
}

pub fn openssl() -> Command {
    Command::new("openssl")
}

/// A fresh random nonce as hex (16 bytes from the OS).
pub fn nonce() -> String {
    use std::io::Read;
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .expect("read /dev/urandom");
    hex::encode(b)
}

/// A TPMS_ATTEST as a forger writes it (TPM_GENERATED_VALUE and all): type,
/// qualifiedSigner, extraData (nonce), zero clock and firmware, then `body`.
pub fn forged_attest(kind: u16, signer_qn: &[u8], nonce: &[u8], body: &[u8]) -> Vec<u8> {
    let mut w = byok_protocol::wire::Writer::new();
    w.u32(byok_protocol::tpm::TPM_GENERATED_VALUE)
        .u16(kind)
        .tpm2b(signer_qn)
        .tpm2b(nonce);
    w.raw(&[0u8; 8])
        .u32(1)
        .u32(0)
        .u8(1)
        .raw(&[0u8; 8])
        .raw(body);
    w.into_vec()
}

/// The body of a genuine quote (PCR selection and digest), after its header.
pub fn quote_body(attest: &[u8]) -> Vec<u8> {
    let q = byok_protocol::TpmsAttest::parse(attest).expect("genuine quote");
    let header = 4 + 2 + 2 + q.qualified_signer.len() + 2 + q.extra_data.len() + 17 + 8;
    attest[header..].to_vec()
}

/// An initialised world and its verified-to-be evidence.
pub struct World {
    pub nonce: String,
    pub evidence: PathBuf,
}

/// `init` world `name` on `host` and write its evidence (fresh nonce) into `work`.
pub fn world(host: &Host, name: &str, work: &Path) -> World {
    host.init(name);
    let n = nonce();
    let evidence = work.join(format!("{name}-{}.evidence", host.tpm.port));
    host.evidence(name, &n, &evidence);
    World { nonce: n, evidence }
}

/// `byok-verifier wrap` of `key` for world `w` of `host`.
pub fn wrap(host: &Host, w: &World, key: &Path, out: &Path) -> assert_cmd::assert::Assert {
    wrap_with(host, w, key, out, &[])
}

/// `wrap` with extra arguments (`--key-pcrs`, `--key-type` …).
pub fn wrap_with(
    host: &Host,
    w: &World,
    key: &Path,
    out: &Path,
    extra: &[&str],
) -> assert_cmd::assert::Assert {
    verifier()
        .args(["wrap", "--nonce", &w.nonce, "--evidence"])
        .arg(&w.evidence)
        .arg("--roots")
        .arg(&host.ca_bundle)
        .arg("--key")
        .arg(key)
        .arg("-o")
        .arg(out)
        .args(extra)
        .assert()
}

/// Enroll `host`'s world `world` (its evidence `evidence` with nonce `nonce`)
/// in the registry `registry`, as an operator does once per host and world:
/// `byok-verifier challenge` -> `byok-agent activate` -> `byok-verifier
/// enroll`. `extra` goes to `enroll` (`--host NAME`, `--replace`).
pub fn enroll(
    host: &Host,
    world: &str,
    evidence: &Path,
    nonce: &str,
    registry: &Path,
    extra: &[&str],
) -> assert_cmd::assert::Assert {
    let dir = tempfile::Builder::new()
        .prefix("byok-enroll-")
        .tempdir()
        .expect("tempdir");
    let challenge = dir.path().join("challenge.cbor");
    let activation = dir.path().join("activation.cbor");
    verifier()
        .args(["challenge", "--nonce", nonce, "--evidence"])
        .arg(evidence)
        .arg("--roots")
        .arg(&host.ca_bundle)
        .arg("-o")
        .arg(&challenge)
        .assert()
        .success();
    host.agent()
        .args(["activate", "--world", world, "--in"])
        .arg(&challenge)
        .arg("-o")
        .arg(&activation)
        .assert()
        .success();
    verifier()
        .args(["enroll", "--nonce", nonce, "--evidence"])
        .arg(evidence)
        .arg("--roots")
        .arg(&host.ca_bundle)
        .arg("--challenge")
        .arg(&challenge)
        .arg("--activation")
        .arg(&activation)
        .arg("--registry")
        .arg(registry)
        .args(extra)
        .assert()
}

pub mod faults;
pub mod fleet;
pub mod forgery;
pub mod json_docs;
pub mod synthetic;

/// A transfer package built the way `wrap` builds one, from public evidence
/// data only, but carrying any `public` area, key info and inner key (the
/// credential secret): what anyone can send a host.
pub fn hand_made_package(
    ev: &byok_protocol::formats::Evidence,
    key: &dyn byok_protocol::keys::TpmObjectKey,
    public: &byok_protocol::public::TpmtPublic,
    info: byok_protocol::formats::KeyInfo,
    inner: &[u8; 16],
) -> byok_protocol::formats::TransferPackage {
    use byok_protocol::formats::{CredentialBlob, ObjectBlob, TransferPackage};
    use byok_protocol::public::TpmtPublic;
    use serde_bytes::ByteBuf;
    let kek = TpmtPublic::parse_tpm2b(&ev.kek.public).expect("KEK public");
    let ek = TpmtPublic::parse_tpm2b(&ev.ek.public).expect("EK public");
    let ak = TpmtPublic::parse_tpm2b(&ev.ak.public).expect("AK public");
    let blob = byok_protocol::duplicate::duplicate(&kek, public, &key.tpm_sensitive(), Some(inner))
        .expect("duplication blob");
    let cred =
        byok_protocol::credential::make_credential(&ek, &ak.name(), inner).expect("credential");
    TransferPackage {
        kind: byok_protocol::formats::TRANSFER_TYPE.into(),
        version: byok_protocol::formats::VERSION,
        world: ev.world.clone(),
        kek_name: ByteBuf::from(kek.name()),
        ak_name: ByteBuf::from(ak.name()),
        credential: CredentialBlob {
            id_object: ByteBuf::from(cred.id_object),
            encrypted_secret: ByteBuf::from(cred.encrypted_secret),
        },
        object: ObjectBlob {
            public: ByteBuf::from(public.to_tpm2b()),
            duplicate: ByteBuf::from(blob.duplicate),
            seed: ByteBuf::from(blob.seed),
            inner: byok_protocol::formats::InnerWrap::Aes128Cfb,
        },
        key: info,
    }
}
