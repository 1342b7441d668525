//! Work on all cores with results in input order, a window at a time: a
//! batch of 10,000 files holds two windows' results in memory (the one
//! being written and the one being computed), not all of them (`verify`
//! over a directory, the fleet commands).

use byok_protocol::progress::Progress;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

/// Items per window: the unit results are written in, in order (memory
/// holds two windows of results).
pub const WINDOW: usize = 1024;

fn threads_for(items: usize) -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(items.max(1))
}

/// `f(item)` for every item, on all cores (each worker takes the next item
/// as it finishes one), results in item order. A panic in `f` is a panic
/// here, never a result quietly missing.
pub fn parallel<T: Sync, R: Send>(
    items: &[T],
    progress: &Progress,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let mut out: Vec<(usize, R)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads_for(items.len()))
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        mine.push((i, f(item)));
                        progress.inc();
                    }
                    mine
                })
            })
            .collect();
        let mut all = Vec::with_capacity(items.len());
        for w in workers {
            match w.join() {
                Ok(mine) => all.extend(mine),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        all
    });
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

/// Windows whose results may be held at once: the one being written (or
/// waited for) and the next.
const WINDOWS_AHEAD: usize = 2;

/// Runs its closure when dropped, unwinding included.
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

/// `f(item)` for every item on all cores, a window of [`WINDOW`] items at a
/// time: `sink` gets each window (its items and their results, in order)
/// on the calling thread while the workers compute the next one (memory
/// holds two windows' results), and an error from it ends the run (the
/// items being computed are finished and dropped).
///
/// The workers take items one after another across window ends and never
/// wait for the writer unless they are a whole window ahead of it: a worker
/// that sleeps at every window end leaves its core idle while the kernel
/// may have queued both other threads on the other core (measured on 2
/// cores: 5% of the run idle, in stretches of up to 16 ms, until the load
/// balancer moved a thread). The workers live for the whole run, so what
/// they keep per thread (parsed keys, verified certificate signatures,
/// allocator caches) stays warm.
pub fn in_windows<T: Sync, R: Send, E>(
    items: &[T],
    progress: &Progress,
    f: impl Fn(&T) -> R + Sync,
    mut sink: impl FnMut(&[T], Vec<R>) -> Result<(), E>,
) -> Result<(), E> {
    let windows: Vec<&[T]> = items.chunks(WINDOW).collect();
    let results: Vec<Mutex<Vec<(usize, R)>>> =
        windows.iter().map(|_| Mutex::new(Vec::new())).collect();
    let done: Vec<AtomicUsize> = windows.iter().map(|_| AtomicUsize::new(0)).collect();
    let next = AtomicUsize::new(0);
    // Windows handed to the sink; changed only under `panic`'s lock, so a
    // waiter that checks it under the lock misses no wake-up.
    let written = AtomicUsize::new(0);
    // Set by a worker's panic (the run ends) and when the writer is done.
    let stop = AtomicBool::new(false);
    // A worker's panic, resumed once the threads are joined; its lock is
    // the one the condition variables wait with.
    let panic = Mutex::new(None::<Box<dyn std::any::Any + Send>>);
    let mut error = None;
    // Workers wait on `room` for the writer; the writer on `ready` for a window.
    let (room, ready) = (Condvar::new(), Condvar::new());
    let lock = || {
        panic
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    };
    let threads = threads_for(items.len());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let w = i / WINDOW;
                if w >= written.load(Ordering::SeqCst) + WINDOWS_AHEAD {
                    let mut guard = lock();
                    while w >= written.load(Ordering::SeqCst) + WINDOWS_AHEAD
                        && !stop.load(Ordering::SeqCst)
                    {
                        guard = room.wait(guard).unwrap_or_else(|p| p.into_inner());
                    }
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                }
                match std::panic::catch_unwind(AssertUnwindSafe(|| f(item))) {
                    Ok(r) => {
                        results[w]
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push((i % WINDOW, r));
                        progress.inc();
                        if done[w].fetch_add(1, Ordering::SeqCst) + 1 == windows[w].len() {
                            // Under the lock: the writer checks `done` under it.
                            let _guard = lock();
                            ready.notify_one();
                        }
                    }
                    Err(payload) => {
                        lock().get_or_insert(payload);
                        stop.store(true, Ordering::SeqCst);
                        ready.notify_one();
                        room.notify_all();
                        break;
                    }
                }
            });
        }
        // However the writer ends (the last window, an error, a panic in
        // the sink), no worker is left waiting for room.
        let _release = OnDrop(|| {
            stop.store(true, Ordering::SeqCst);
            let _guard = lock();
            room.notify_all();
        });
        for (w, window) in windows.iter().enumerate() {
            let mut guard = lock();
            while done[w].load(Ordering::SeqCst) < window.len() && !stop.load(Ordering::SeqCst) {
                guard = ready.wait(guard).unwrap_or_else(|p| p.into_inner());
            }
            drop(guard);
            // Only a worker's panic stops the run before the writer ends.
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let mut mine =
                std::mem::take(&mut *results[w].lock().unwrap_or_else(|p| p.into_inner()));
            mine.sort_unstable_by_key(|(i, _)| *i);
            if let Err(e) = sink(window, mine.into_iter().map(|(_, r)| r).collect()) {
                error = Some(e);
                break;
            }
            let _guard = lock();
            written.store(w + 1, Ordering::SeqCst);
            room.notify_all();
        }
    });
    if let Some(payload) = panic.into_inner().unwrap_or_else(|p| p.into_inner()) {
        std::panic::resume_unwind(payload);
    }
    error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn results_come_in_item_order_window_by_window() {
        let items: Vec<usize> = (0..WINDOW * 2 + 7).collect();
        let mut seen = Vec::new();
        let mut windows = 0;
        in_windows(
            &items,
            &Progress::none(),
            |i| i * 2,
            |w, r| {
                assert_eq!(w.len(), r.len());
                windows += 1;
                seen.extend(r);
                Ok::<(), ()>(())
            },
        )
        .unwrap();
        assert_eq!(windows, 3);
        assert_eq!(seen, items.iter().map(|i| i * 2).collect::<Vec<_>>());
    }

    #[test]
    fn workers_run_one_window_ahead_of_the_writer_and_no_further() {
        let items: Vec<usize> = (0..WINDOW * 5 + 3).collect();
        let computed = AtomicUsize::new(0);
        let mut windows = 0;
        in_windows(
            &items,
            &Progress::none(),
            |i| {
                computed.fetch_add(1, Ordering::SeqCst);
                *i
            },
            |_, _| {
                // While window `windows` is written, the workers finish the
                // next one without waiting for it, then stop.
                let bound = ((windows + 2) * WINDOW).min(items.len());
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
                while computed.load(Ordering::SeqCst) < bound {
                    assert!(std::time::Instant::now() < deadline, "workers stalled");
                    std::thread::yield_now();
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
                assert_eq!(computed.load(Ordering::SeqCst), bound, "window {windows}");
                windows += 1;
                Ok::<(), ()>(())
            },
        )
        .unwrap();
        assert_eq!(windows, 6);
    }

    #[test]
    fn a_panic_in_the_sink_ends_the_run_and_frees_the_workers() {
        // On a thread of its own: a worker left waiting for room would hang
        // the run, and the test fails at the timeout instead of hanging.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let items: Vec<usize> = (0..WINDOW * 4).collect();
            let r = std::panic::catch_unwind(|| {
                in_windows(
                    &items,
                    &Progress::none(),
                    |i| *i,
                    |_, _| -> Result<(), ()> { panic!("sink") },
                )
            });
            let _ = tx.send(r.is_err());
        });
        let panicked = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the run ended");
        assert!(panicked);
    }

    #[test]
    fn a_panic_in_a_worker_is_a_panic_of_the_run() {
        let items: Vec<usize> = (0..WINDOW + 10).collect();
        let r = std::panic::catch_unwind(|| {
            in_windows(
                &items,
                &Progress::none(),
                |i| {
                    assert_ne!(*i, WINDOW + 3, "item {i}");
                    *i
                },
                |_, _| Ok::<(), ()>(()),
            )
        });
        assert!(r.is_err());
        let r = std::panic::catch_unwind(|| {
            parallel(&items, &Progress::none(), |i| {
                assert_ne!(*i, 5, "item {i}");
                *i
            })
        });
        assert!(r.is_err());
    }

    #[test]
    fn a_sink_error_stops_the_run() {
        let items: Vec<usize> = (0..WINDOW * 3).collect();
        let mut windows = 0;
        let r = in_windows(
            &items,
            &Progress::none(),
            |i| *i,
            |_, _| {
                windows += 1;
                Err("stop")
            },
        );
        assert_eq!((r, windows), (Err("stop"), 1));
    }
}
