//! Secrets on the wire: a TCP relay between the agent and swtpm records
//! every byte of the TCTI (command and control ports, both directions).
//! Sessions that carry secrets are salted and encrypt the secret parameter,
//! so the capture during `seal`, `unseal` and `import` holds neither the
//! sealed bytes nor the credential secret (the package's inner key) — while
//! it does hold what travels in clear by design (the object's public area),
//! which shows the relay saw the traffic.

use byok_protocol::formats::{Document, Evidence, KeyInfo};
use byok_protocol::keys::{KeyAlg, TargetKey};
use byok_tests::{hand_made_package, nonce, tpm_a, Host};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use tempfile::TempDir;

/// A relay on a free port pair (command, control) to swtpm's pair.
struct Relay {
    port: u16,
    capture: Arc<Mutex<Vec<u8>>>,
}

fn pipe(mut from: TcpStream, mut to: TcpStream, capture: Arc<Mutex<Vec<u8>>>) {
    let mut buf = [0u8; 8192];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => {
                let _ = to.shutdown(std::net::Shutdown::Write);
                return;
            }
            Ok(n) => {
                capture.lock().unwrap().extend_from_slice(&buf[..n]);
                if to.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

impl Relay {
    fn start(target: u16) -> Relay {
        let (a, b) = loop {
            let a = TcpListener::bind("127.0.0.1:0").unwrap();
            let p = a.local_addr().unwrap().port();
            if p < 65000 {
                if let Ok(b) = TcpListener::bind(("127.0.0.1", p + 1)) {
                    break (a, b);
                }
            }
        };
        let capture = Arc::new(Mutex::new(Vec::new()));
        let port = a.local_addr().unwrap().port();
        for (listener, to) in [(a, target), (b, target + 1)] {
            let capture = capture.clone();
            std::thread::spawn(move || {
                for client in listener.incoming().flatten() {
                    let Ok(server) = TcpStream::connect(("127.0.0.1", to)) else {
                        continue;
                    };
                    let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                    let cap = capture.clone();
                    std::thread::spawn(move || pipe(client, server, cap));
                    let cap = capture.clone();
                    std::thread::spawn(move || pipe(s2, c2, cap));
                }
            });
        }
        Relay { port, capture }
    }

    fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// Everything captured since the last call.
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.capture.lock().unwrap())
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

// Long on purpose: one swtpm per test costs seconds, so the checks that share a host share a test, in order.
#[test]
fn a_tcti_capture_holds_no_sealed_data_and_no_credential_secret() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let w = work.path();
    let relay = Relay::start(host.tpm.port);
    let agent = || host.agent_via(&relay.tcti());
    agent().args(["init", "--world", "eu"]).assert().success();

    // Sealing and unsealing 64 random bytes.
    let secret = hex::decode(nonce() + &nonce() + &nonce() + &nonce()).unwrap();
    std::fs::write(w.join("secret"), &secret).unwrap();
    relay.take();
    agent()
        .args(["seal", "--world", "eu", "--name", "s", "--in"])
        .arg(w.join("secret"))
        .assert()
        .success();
    let seal = relay.take();
    assert!(!seal.is_empty(), "the relay saw nothing");
    assert!(
        !contains(&seal, &secret),
        "sealed data in clear on the TCTI (seal)"
    );
    agent()
        .args(["unseal", "--name", "s", "-o"])
        .arg(w.join("out"))
        .assert()
        .success();
    let unseal = relay.take();
    assert_eq!(std::fs::read(w.join("out")).unwrap(), secret);
    assert!(
        !contains(&unseal, &secret),
        "sealed data in clear on the TCTI (unseal)"
    );

    // Importing a package whose credential secret (inner key) we know.
    let n = nonce();
    let evp = w.join("eu.evidence");
    agent()
        .args(["evidence", "--world", "eu", "--nonce", &n, "-o"])
        .arg(&evp)
        .assert()
        .success();
    let ev = Evidence::from_cbor(&std::fs::read(&evp).unwrap()).unwrap();
    let mut inner = [0u8; 16];
    inner.copy_from_slice(&hex::decode(nonce()).unwrap());
    let key = TargetKey::generate(KeyAlg::P256).unwrap();
    let info = KeyInfo {
        alg: "p256".into(),
        label: None,
        pcrs: None,
        pcr_values: None,
    };
    let public = key.tpm_public();
    let pkg = hand_made_package(&ev, &key, &public, info, &inner);
    std::fs::write(w.join("k.transfer"), pkg.to_cbor()).unwrap();
    relay.take();
    agent()
        .args(["import", "--world", "eu", "--name", "k", "--in"])
        .arg(w.join("k.transfer"))
        .assert()
        .success();
    let import = relay.take();
    assert!(
        contains(&import, public.as_bytes()),
        "the relay did not see the import"
    );
    assert!(
        !contains(&import, &inner),
        "the credential secret in clear on the TCTI (ActivateCredential or Import)"
    );
    // The key works.
    std::fs::write(w.join("m"), b"m").unwrap();
    agent()
        .args(["sign", "--key", "k", "--in"])
        .arg(w.join("m"))
        .arg("-o")
        .arg(w.join("m.sig"))
        .assert()
        .success();
}
