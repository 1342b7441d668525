//! Make a synthetic fleet (tests/src/synthetic.rs) for bench/fleet.sh:
//!
//!   synthetic-fleet registry N DIR          DIR/registry/<host>.cbor, DIR/primes.txt
//!   synthetic-fleet evidence DIR NONCES     DIR/evidence/<host>.evidence for each host of NONCES
//!   synthetic-fleet evidence DIR --nonce HEX N   the same for hosts 0..N, all for one nonce
//!                                                (`verify --nonce`, bench/verify.sh)
//!
//! between them, `byok-verifier nonces --registry DIR/registry` makes NONCES.
#![forbid(unsafe_code)]

use byok_protocol::fleet::NonceSet;
use byok_protocol::formats::Document;
use byok_tests::synthetic::{evidence, host_name, host_record, PrimePool, Template};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

fn fixtures() -> PathBuf {
    byok_tests::workspace_root().join("tests/fixtures")
}

/// `f(i)` for i in 0..n on all cores.
fn each(n: usize, f: impl Fn(usize) + Sync) {
    let next = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                f(i);
            });
        }
    });
}

fn usage() -> ! {
    eprintln!(
        "usage: synthetic-fleet registry N DIR | evidence DIR NONCES | evidence DIR --nonce HEX N"
    );
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let t = Template::from_fixtures(&fixtures());
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["registry", n, dir] => {
            let n: usize = n.parse().unwrap_or_else(|_| usage());
            let dir = Path::new(dir);
            let pool = PrimePool::generate(n);
            std::fs::create_dir_all(dir.join("registry")).expect("create DIR/registry");
            std::fs::write(dir.join("primes.txt"), pool.to_text()).expect("write primes");
            each(n, |i| {
                let path = dir.join("registry").join(format!("{}.cbor", host_name(i)));
                std::fs::write(path, host_record(&t, &pool, i).to_cbor()).expect("write record");
            });
        }
        ["evidence", dir, nonces] => {
            let dir = Path::new(dir);
            let pool = PrimePool::from_text(
                &std::fs::read_to_string(dir.join("primes.txt")).expect("DIR/primes.txt"),
            );
            let set = NonceSet::from_json(&std::fs::read(nonces).expect("read NONCES"))
                .expect("a nonce file");
            let hosts: Vec<(&String, _)> = set.hosts.iter().collect();
            std::fs::create_dir_all(dir.join("evidence")).expect("create DIR/evidence");
            each(hosts.len(), |k| {
                let (name, nonce) = hosts[k];
                let i: usize = name
                    .strip_prefix("host-")
                    .and_then(|s| s.parse().ok())
                    .expect("a synthetic host name");
                let ev = evidence(&t, &pool, i, nonce.as_bytes());
                let path = dir.join("evidence").join(format!("{name}.evidence"));
                std::fs::write(path, ev.to_cbor()).expect("write evidence");
            });
        }
        ["evidence", dir, "--nonce", nonce, n] => {
            let dir = Path::new(dir);
            let n: usize = n.parse().unwrap_or_else(|_| usage());
            let nonce = hex::decode(nonce).unwrap_or_else(|_| usage());
            let pool = PrimePool::from_text(
                &std::fs::read_to_string(dir.join("primes.txt")).expect("DIR/primes.txt"),
            );
            std::fs::create_dir_all(dir.join("evidence")).expect("create DIR/evidence");
            each(n, |i| {
                let path = dir
                    .join("evidence")
                    .join(format!("{}.evidence", host_name(i)));
                std::fs::write(path, evidence(&t, &pool, i, &nonce).to_cbor())
                    .expect("write evidence");
            });
        }
        _ => usage(),
    }
}
