//! Bounded inputs: hostile files are refused by size before any decoding,
//! a file under the cap is decoded once (its header read without building
//! the rest), and an evidence file ships a bounded EK chain. Peak memory of
//! the verifier process is measured (getrusage of the child, through
//! Python's `resource`) and must stay under 64 MiB.

use byok_protocol::formats::{Document, Evidence};
use byok_tests::{nonce, tpm_a, Host};
use serde_bytes::ByteBuf;
use std::path::Path;
use tempfile::TempDir;

/// Run byok-verifier with `args`; returns (exit code, stderr, peak RSS in KiB).
fn measured(args: &[&std::ffi::OsStr]) -> (i32, String, u64) {
    let bin = assert_cmd::cargo::cargo_bin("byok-verifier");
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import resource, subprocess, sys\n\
             r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n\
             sys.stderr.buffer.write(r.stderr)\n\
             print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n\
             sys.exit(r.returncode)",
        )
        .arg(bin)
        .args(args)
        .output()
        .expect("python3");
    let rss = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("RSS from python3");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).to_string(),
        rss,
    )
}

/// A CBOR map with the evidence header and a field holding an array of
/// `items` zero bytes (one byte each): the shape that made a generic
/// re-decode allocate gigabytes.
fn hostile_array(path: &Path, items: u32) {
    // {"type": "tpm-byok/evidence", "version": 1, "x": [0, 0, ...]}
    let mut b = vec![0xa3, 0x64];
    b.extend(b"type");
    b.push(0x60 + 17);
    b.extend(b"tpm-byok/evidence");
    b.extend([0x67]);
    b.extend(b"version");
    b.push(0x01);
    b.extend([0x61, b'x', 0x9a]);
    b.extend(items.to_be_bytes());
    let mut f = std::fs::File::create(path).unwrap();
    use std::io::Write;
    f.write_all(&b).unwrap();
    let chunk = vec![0u8; 1 << 20];
    let mut left = items as usize;
    while left > 0 {
        let n = left.min(chunk.len());
        f.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
}

const LIMIT_KIB: u64 = 64 * 1024;

#[test]
fn hostile_sizes_are_refused_in_bounded_memory() {
    let work = TempDir::new().unwrap();
    let w = work.path();
    let n = nonce();
    let verify = |f: &Path| {
        measured(&[
            "verify".as_ref(),
            "--nonce".as_ref(),
            n.as_ref(),
            "--roots".as_ref(),
            tpm_a().ca_bundle.as_os_str(),
            "--evidence".as_ref(),
            f.as_os_str(),
        ])
    };
    // 50 MB of CBOR array.
    let big = w.join("50mb.evidence");
    hostile_array(&big, 50_000_000);
    let (code, err, rss) = verify(&big);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("larger than 1048576 bytes"), "{err}");
    assert!(rss < LIMIT_KIB, "50 MB file: peak RSS {rss} KiB");
    // 512 MB (sparse: the content does not matter, the size does).
    let huge = w.join("512mb.evidence");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(512 << 20)
        .unwrap();
    let (code, err, rss) = verify(&huge);
    assert_eq!(code, 3, "{err}");
    assert!(rss < LIMIT_KIB, "512 MB file: peak RSS {rss} KiB");
    // inspect has the same cap.
    let (code, _, rss) = measured(&["inspect".as_ref(), big.as_os_str()]);
    assert_eq!(code, 3);
    assert!(rss < LIMIT_KIB, "inspect: peak RSS {rss} KiB");
    // Just under the cap: a million-element array is skipped, not built.
    let under = w.join("under.evidence");
    hostile_array(&under, 1_000_000);
    let (code, err, rss) = verify(&under);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("unreadable evidence"), "{err}");
    assert!(rss < LIMIT_KIB, "1 MB array: peak RSS {rss} KiB");
}

#[test]
fn the_shipped_ek_chain_is_bounded() {
    let host = Host::new(tpm_a());
    let work = TempDir::new().unwrap();
    let w = work.path();
    host.init("eu");
    let n = nonce();
    let p = w.join("eu.evidence");
    host.evidence("eu", &n, &p);
    let genuine = Evidence::from_cbor(&std::fs::read(&p).unwrap()).unwrap();
    let with_chain = |count: usize, name: &str| {
        let mut ev = genuine.clone();
        // Junk "certificates" that name the EK's issuer would each cost a
        // signature check; a real chain has a handful.
        ev.ek.chain = (0..count)
            .map(|_| ByteBuf::from(genuine.ek.certificate.to_vec()))
            .collect();
        let f = w.join(name);
        std::fs::write(&f, ev.to_cbor()).unwrap();
        f
    };
    let args = |f: &Path| -> Vec<std::ffi::OsString> {
        vec![
            "verify".into(),
            "--nonce".into(),
            n.clone().into(),
            "--roots".into(),
            host.ca_bundle.clone().into(),
            "--evidence".into(),
            f.into(),
        ]
    };
    let run = |f: &Path| {
        let a = args(f);
        let refs: Vec<&std::ffi::OsStr> = a.iter().map(|s| s.as_os_str()).collect();
        measured(&refs)
    };
    let (code, err, _) = run(&with_chain(8, "eight.evidence"));
    assert_eq!(code, 0, "{err}");
    let (code, err, rss) = run(&with_chain(9, "nine.evidence"));
    assert_eq!(code, 10, "{err}");
    assert!(
        err.contains("ships 9 chain certificates; at most 8"),
        "{err}"
    );
    assert!(rss < LIMIT_KIB);
    // 3,000 of them do not even fit the size cap.
    let (code, err, rss) = run(&with_chain(3000, "many.evidence"));
    assert_eq!(code, 3, "{err}");
    assert!(
        rss < LIMIT_KIB,
        "3000-certificate chain: peak RSS {rss} KiB"
    );
}
