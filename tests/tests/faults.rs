//! A kill (SIGKILL, through strace) at every write, rename, fsync and unlink
//! of `init`, `kek rotate` and `world destroy`, each followed by one retry:
//! afterwards the TPM holds exactly the persistent KEKs the state names (no
//! leaked slot, no named KEK gone), no transient object or session is left
//! (the killed agent's journal named them), and the retry worked.
//! `BYOK_FAULT_STRIDE=N` tries every N-th point only (tpm-setup/faults.sh
//! runs them all).

use byok_tests::faults::{count_calls, kek_handles_named, kek_range_in_tpm, killed_at, Sweep};
use byok_tests::{tpm_a, Host};

const INIT: [&str; 5] = ["init", "--world", "eu", "--kek-alg", "p256"];
const ROTATE: [&str; 4] = ["kek", "rotate", "--world", "eu"];
const DESTROY: [&str; 5] = ["world", "destroy", "--world", "eu", "--yes"];

fn stride() -> usize {
    std::env::var("BYOK_FAULT_STRIDE")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(1)
}

fn run(host: &Host, args: &[&str]) -> Result<(), String> {
    let out = host.agent().args(args).output().expect("agent");
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{args:?}: exit {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The TPM's KEK-range objects against the state's records (the TPM read
/// first: `worlds list` itself settles intents).
fn compare(host: &Host, point: &str, sweep: &mut Sweep) {
    let in_tpm = kek_range_in_tpm(host);
    let (named, orphans) = kek_handles_named(host);
    if in_tpm != named || !orphans.is_empty() {
        sweep.leaks.push(format!(
            "{point}: TPM holds {in_tpm:x?}, state names {named:x?}, orphans {orphans:?}"
        ));
    }
    // The killed agent's transient objects and sessions are gone too (the
    // retry flushed what its journal named).
    for cap in ["handles-transient", "handles-loaded-session"] {
        let out = host
            .tpm2("tpm2_getcap")
            .arg(cap)
            .output()
            .expect("tpm2_getcap");
        let text = String::from_utf8_lossy(&out.stdout);
        if text.contains("0x") {
            sweep.leaks.push(format!("{point}: {cap}: {}", text.trim()));
        }
    }
}

/// Kill `args` at every point, `prepare` before each, one retry after.
fn sweep(host: &Host, args: &[&str], prepare: &dyn Fn(&Host), sweep: &mut Sweep) {
    prepare(host);
    let counts = count_calls(host, args);
    for (call, n) in counts {
        for i in (1..=n).step_by(stride()) {
            prepare(host);
            if !killed_at(host, args, call, i) {
                continue;
            }
            sweep.points += 1;
            let point = format!("{} killed at {call} #{i}", args[..2].join(" "));
            if let Err(e) = run(host, args) {
                // A destroy that finished before the kill has nothing to retry.
                if !(args == DESTROY && e.contains("not initialised")) {
                    sweep.failed_retries.push(format!("{point}: retry {e}"));
                }
            }
            compare(host, &point, sweep);
        }
    }
}

/// World eu with key k (and, `rotated`, a retired KEK under it), unless it
/// is there already.
fn world_with_key(h: &Host, rotated: bool) {
    if run(h, &["keys", "show", "k"]).is_ok() {
        return;
    }
    fresh_world(h);
    run(
        h,
        &[
            "key", "create", "--world", "eu", "--name", "k", "--alg", "p256",
        ],
    )
    .unwrap();
    if rotated {
        run(h, &ROTATE).unwrap();
    }
}

fn fresh_world(host: &Host) {
    let _ = run(host, &DESTROY);
    run(host, &INIT).unwrap();
}

// Long on purpose: three sweeps on one swtpm (a swtpm per sweep costs seconds), reported together.
#[test]
fn a_kill_at_any_step_of_init_rotate_or_destroy_leaks_no_persistent_slot() {
    let host = Host::new(tpm_a());
    let mut s = Sweep::default();

    sweep(
        &host,
        &INIT,
        &|h| {
            let _ = run(h, &DESTROY);
        },
        &mut s,
    );
    let after_init = s.points;

    // A world with a key: the first rotation retires the old KEK (a key
    // lives under it), later ones evict theirs (no key does).
    sweep(&host, &ROTATE, &|h| world_with_key(h, false), &mut s);
    let after_rotate = s.points;

    sweep(&host, &DESTROY, &|h| world_with_key(h, true), &mut s);

    eprintln!(
        "fault injection: {} kill points (init {}, kek rotate {}, world destroy {}), {} failed retries, {} leaks",
        s.points,
        after_init,
        after_rotate - after_init,
        s.points - after_rotate,
        s.failed_retries.len(),
        s.leaks.len()
    );
    assert!(s.points >= 30 / stride(), "too few kill points: {s:?}");
    assert!(s.failed_retries.is_empty(), "{:#?}", s.failed_retries);
    assert!(s.leaks.is_empty(), "{:#?}", s.leaks);
}
