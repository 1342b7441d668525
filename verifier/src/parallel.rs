//! Work on all cores with results in input order, a window at a time: a
//! batch of 10,000 files holds two windows' results in memory (the one
//! being written and the one being computed), not all of them (`verify`
//! over a directory, the fleet commands).

use byok_protocol::progress::Progress;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

/// Items per window: enough that the cores rarely wait at a window's end.
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

/// What a worker sends back for one window: its results, or its panic.
type WindowResults<R> = std::thread::Result<Vec<(usize, R)>>;

/// `f(item)` for every item on all cores, a window of [`WINDOW`] items at a
/// time: `sink` gets each window (its items and their results, in order)
/// while the workers compute the next one (memory holds two windows'
/// results), and an error from it ends the run (the window being computed
/// is finished and dropped). The workers live for the whole run, so what
/// they keep per thread (parsed keys, verified certificate signatures,
/// allocator caches) stays warm.
pub fn in_windows<T: Sync, R: Send, E>(
    items: &[T],
    progress: &Progress,
    f: impl Fn(&T) -> R + Sync,
    mut sink: impl FnMut(&[T], Vec<R>) -> Result<(), E>,
) -> Result<(), E> {
    let windows: Vec<&[T]> = items.chunks(WINDOW).collect();
    let next: Vec<AtomicUsize> = windows.iter().map(|_| AtomicUsize::new(0)).collect();
    let threads = threads_for(items.len());
    let (done_tx, done_rx) = mpsc::channel::<WindowResults<R>>();
    std::thread::scope(|s| {
        let mut jobs = Vec::with_capacity(threads);
        for _ in 0..threads {
            let (job_tx, job_rx) = mpsc::channel::<usize>();
            jobs.push(job_tx);
            let done_tx = done_tx.clone();
            let (windows, next, f) = (&windows, &next, &f);
            s.spawn(move || {
                // Until the run ends (the job senders are dropped).
                for w in job_rx {
                    let mine = std::panic::catch_unwind(AssertUnwindSafe(|| {
                        let mut mine = Vec::new();
                        loop {
                            let i = next[w].fetch_add(1, Ordering::Relaxed);
                            let Some(item) = windows[w].get(i) else { break };
                            mine.push((i, f(item)));
                            progress.inc();
                        }
                        mine
                    }));
                    // A panic is sent like a result (the run resumes it and
                    // ends); the run gone is the only reason to stop early.
                    if done_tx.send(mine).is_err() {
                        break;
                    }
                }
            });
        }
        drop(done_tx);
        // Window `w`, if there is one, to every worker (each has answered
        // the window before; a panic ends the run before the next window).
        let start = |w: usize| {
            if w < windows.len() {
                for job in &jobs {
                    let _ = job.send(w);
                }
            }
        };
        start(0);
        for (w, window) in windows.iter().enumerate() {
            let mut results = Vec::with_capacity(window.len());
            for _ in 0..threads {
                match done_rx.recv() {
                    Ok(Ok(mine)) => results.extend(mine),
                    Ok(Err(panic)) => std::panic::resume_unwind(panic),
                    Err(_) => unreachable!("every worker answers each window or panics"),
                }
            }
            results.sort_by_key(|(i, _)| *i);
            // The next window is worked on while this one is written (a
            // fleet's packages are fsynced: the cores need not wait).
            start(w + 1);
            sink(window, results.into_iter().map(|(_, r)| r).collect())?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
