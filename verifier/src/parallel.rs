//! Work on all cores with results in input order, a window at a time: a
//! batch of 10,000 files holds one window's results in memory, not all of
//! them (`verify` over a directory, the fleet commands).

use byok_protocol::progress::Progress;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Items per window: enough that the cores rarely wait at a window's end.
pub const WINDOW: usize = 1024;

/// `f(item)` for every item, on all cores (each worker takes the next item
/// as it finishes one), results in item order.
pub fn parallel<T: Sync, R: Send>(
    items: &[T],
    progress: &Progress,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(items.len().max(1));
    let next = AtomicUsize::new(0);
    let mut out: Vec<(usize, R)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
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
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    });
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

/// [`parallel`] over windows of [`WINDOW`] items: `sink` gets each window
/// (its items and their results, in order) before the next window starts.
pub fn in_windows<T: Sync, R: Send, E>(
    items: &[T],
    progress: &Progress,
    f: impl Fn(&T) -> R + Sync,
    mut sink: impl FnMut(&[T], Vec<R>) -> Result<(), E>,
) -> Result<(), E> {
    for window in items.chunks(WINDOW) {
        let results = parallel(window, progress, &f);
        sink(window, results)?;
    }
    Ok(())
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
