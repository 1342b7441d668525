//! The synthetic fleet bench/fleet.sh measures at 10,000 hosts, at 41: each
//! host's evidence verifies against its own enrolment and nonce and gets its
//! own package, and the failures a large run meets are each named for their
//! host while the others go through. (Made in software: the synthetic
//! hosts' keys are products of a small prime pool, see tests/src/synthetic.rs.)

use byok_protocol::fleet::NonceSet;
use byok_protocol::formats::{Document, TransferPackage};
use byok_tests::synthetic::{evidence, host_name, host_record, PrimePool, Template};
use byok_tests::{keygen, verifier, workspace_root};
use serde_json::Value;
use tempfile::TempDir;

const HOSTS: usize = 40;

fn line<'a>(report: &'a Value, host: Option<&str>, file: &str) -> &'a Value {
    report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| {
            l["host"].as_str() == host && l["file"].as_str().is_some_and(|f| f.ends_with(file))
        })
        .unwrap_or_else(|| panic!("no line for {host:?} {file} in {report}"))
}

#[test]
fn a_synthetic_fleet_gets_one_package_per_passing_host_and_a_reason_for_each_other() {
    let work = TempDir::new().unwrap();
    let w = work.path();
    let fixtures = workspace_root().join("tests/fixtures");
    let t = Template::from_fixtures(&fixtures);
    // Host 40 has keys but no record: not enrolled.
    let pool = PrimePool::generate(HOSTS + 1);
    let registry = w.join("registry");
    std::fs::create_dir_all(&registry).unwrap();
    for i in 0..HOSTS {
        std::fs::write(
            registry.join(format!("{}.cbor", host_name(i))),
            host_record(&t, &pool, i).to_cbor(),
        )
        .unwrap();
    }
    let nonces_file = w.join("nonces.json");
    verifier()
        .args(["-q", "nonces", "--world", "eu", "--registry"])
        .arg(&registry)
        .arg("-o")
        .arg(&nonces_file)
        .assert()
        .success();
    let nonces = NonceSet::from_json(&std::fs::read(&nonces_file).unwrap()).unwrap();
    assert_eq!(nonces.hosts.len(), HOSTS);
    let nonce = |i: usize| nonces.hosts[&host_name(i)].as_bytes().to_vec();
    let ev_dir = w.join("evidence");
    std::fs::create_dir_all(&ev_dir).unwrap();
    let write = |name: &str, bytes: Vec<u8>| std::fs::write(ev_dir.join(name), bytes).unwrap();
    for i in 0..HOSTS {
        let name = format!("{}.evidence", host_name(i));
        match i {
            // Missing.
            3 => {}
            // Answers another host's nonce.
            5 => write(&name, evidence(&t, &pool, 5, &nonce(6)).to_cbor()),
            // Its quote's signature altered.
            7 => {
                let mut ev = evidence(&t, &pool, 7, &nonce(7));
                let n = ev.quote.signature.len();
                ev.quote.signature[n - 1] ^= 1;
                write(&name, ev.to_cbor());
            }
            _ => write(&name, evidence(&t, &pool, i, &nonce(i)).to_cbor()),
        }
    }
    // A second, genuine file for host 10 (after its own in name order), and
    // evidence from a host that was never enrolled.
    write(
        "zz-copy.evidence",
        std::fs::read(ev_dir.join("host-00010.evidence")).unwrap(),
    );
    write(
        "zz-stranger.evidence",
        evidence(&t, &pool, HOSTS, &nonce(0)).to_cbor(),
    );

    let key = keygen("p256", w.join("k.pem"));
    let out = w.join("out");
    let run = verifier()
        .args(["wrap", "--json", "--world", "eu", "--nonces"])
        .arg(&nonces_file)
        .arg("--registry")
        .arg(&registry)
        .arg("--roots")
        .arg(fixtures.join("a-ca.pem"))
        .arg("--evidence")
        .arg(&ev_dir)
        .arg("--key")
        .arg(&key)
        .arg("--out-dir")
        .arg(&out)
        .output()
        .unwrap();
    // Signature and nonce failures are verification failures (10), the
    // most serious kind here.
    assert_eq!(
        run.status.code(),
        Some(10),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(
        (report["ok"].as_u64(), report["failed"].as_u64()),
        (Some(HOSTS as u64 - 3), Some(5))
    );
    let reason = |host: Option<&str>, file: &str| {
        let l = line(&report, host, file);
        assert_eq!(l["ok"], false, "{l}");
        l["reason"].as_str().unwrap().to_string()
    };
    assert!(reason(Some("host-00005"), "host-00005.evidence").contains("nonce"));
    assert!(reason(Some("host-00007"), "host-00007.evidence").contains("signature"));
    assert!(reason(Some("host-00010"), "zz-copy.evidence").contains("second file"));
    assert!(reason(None, "zz-stranger.evidence").contains("not enrolled"));
    let missing = report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["host"] == "host-00003")
        .unwrap();
    assert!(missing["reason"]
        .as_str()
        .unwrap()
        .contains("no evidence from host \"host-00003\""));

    // One package per passing host, each for that host's own AK and KEK.
    let mut written: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    let expected: Vec<String> = (0..HOSTS)
        .filter(|i| ![3, 5, 7].contains(i))
        .map(|i| format!("{}.transfer", host_name(i)))
        .collect();
    assert_eq!(written, expected);
    for i in [0, 10, HOSTS - 1] {
        let p = TransferPackage::from_cbor(
            &std::fs::read(out.join(format!("{}.transfer", host_name(i)))).unwrap(),
        )
        .unwrap();
        let record = host_record(&t, &pool, i);
        let enrolled = &record.worlds["eu"];
        assert_eq!(p.kek_name, enrolled.kek_name);
        let ak = byok_protocol::TpmtPublic::parse_tpm2b(&enrolled.ak_public).unwrap();
        assert_eq!(p.ak_name.to_vec(), ak.name());
    }
}
