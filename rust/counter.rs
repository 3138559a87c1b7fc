//! Striped event counters: exact totals with no shared cache line on the hot path.
//!
//! One `AtomicU64` bumped by every thread makes all of them fight over one cache line, which
//! on free-threaded CPython wipes out multi-thread scaling of whatever path counts. Here each
//! counter is split over [`STRIPES`] slots, each on its own 128-byte line (two 64-byte lines:
//! adjacent-line prefetchers pull pairs). A thread picks its slot once, round-robin, and
//! afterwards only ever adds to that slot with a relaxed `fetch_add`; a read sums the slots.
//! The first [`STRIPES`] threads thus never share a line; later ones share, still exactly.
//!
//! A read is not a snapshot across slots: it sums them one after another, so it may miss adds
//! racing with it, but it includes every add that happens-before it, and successive reads
//! by one thread never decrease.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// How many slots each counter is split over.
pub const STRIPES: usize = 16;

/// The next slot index to hand to a thread (shared by every counter set in the process).
static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's slot index, or `usize::MAX` before its first add.
    static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// The calling thread's slot index, picked on its first call.
#[inline]
fn stripe() -> usize {
    STRIPE.with(|cell| {
        let index = cell.get();
        if index < STRIPES {
            return index;
        }
        let picked = NEXT_STRIPE.fetch_add(1, Relaxed) % STRIPES;
        cell.set(picked);
        picked
    })
}

/// One slot: a thread's share of each of the `N` counters, alone on its cache lines.
#[repr(align(128))]
struct Stripe<const N: usize>([AtomicU64; N]);

/// `N` monotonic event counters, striped per thread.
pub struct StripedCounters<const N: usize> {
    stripes: [Stripe<N>; STRIPES],
}

impl<const N: usize> Default for StripedCounters<N> {
    fn default() -> Self {
        StripedCounters {
            stripes: std::array::from_fn(|_| Stripe(std::array::from_fn(|_| AtomicU64::new(0)))),
        }
    }
}

impl<const N: usize> std::fmt::Debug for StripedCounters<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries((0..N).map(|counter| self.sum(counter)))
            .finish()
    }
}

impl<const N: usize> StripedCounters<N> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one to `counter` (panics if `counter >= N`: a bug at the call site).
    #[inline]
    pub fn bump(&self, counter: usize) {
        self.stripes[stripe()].0[counter].fetch_add(1, Relaxed);
    }

    /// The total of `counter` over every slot (wrapping, like the slots themselves).
    pub fn sum(&self, counter: usize) -> u64 {
        self.stripes
            .iter()
            .map(|stripe| stripe.0[counter].load(Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{align_of, size_of};
    use std::sync::Barrier;
    use std::thread;

    #[test]
    fn slots_do_not_share_cache_lines() {
        assert_eq!(align_of::<Stripe<2>>(), 128);
        assert_eq!(size_of::<Stripe<2>>(), 128);
        assert_eq!(size_of::<StripedCounters<2>>(), 128 * STRIPES);
    }

    #[test]
    fn starts_at_zero_and_counts_each_counter_apart() {
        let counts = StripedCounters::<2>::new();
        assert_eq!((counts.sum(0), counts.sum(1)), (0, 0));
        for _ in 0..5 {
            counts.bump(0);
        }
        counts.bump(1);
        assert_eq!((counts.sum(0), counts.sum(1)), (5, 1));
        assert_eq!(format!("{counts:?}"), "[5, 1]");
    }

    #[test]
    fn a_thread_keeps_its_slot() {
        let first = stripe();
        assert!(first < STRIPES);
        assert_eq!(stripe(), first);
        let counts = StripedCounters::<1>::new();
        counts.bump(0);
        counts.bump(0);
        assert_eq!(counts.stripes[first].0[0].load(Relaxed), 2);
    }

    #[test]
    fn threads_spread_over_slots() {
        let picked: Vec<usize> = (0..STRIPES)
            .map(|_| thread::spawn(stripe).join().unwrap())
            .collect();
        // Round-robin: consecutive threads take consecutive slots (other tests may also
        // be picking, so only check that more than one slot is in use).
        let mut distinct = picked.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert!(distinct.len() > 1, "{picked:?}");
    }

    #[test]
    fn exact_under_many_threads() {
        const THREADS: usize = 2 * STRIPES + 3; // more threads than slots: some share
        const PER_THREAD: u64 = 20_000;
        let counts = StripedCounters::<2>::new();
        let start = Barrier::new(THREADS);
        thread::scope(|scope| {
            for t in 0..THREADS {
                let (counts, start) = (&counts, &start);
                scope.spawn(move || {
                    start.wait();
                    for i in 0..PER_THREAD {
                        counts.bump(0);
                        if (i + t as u64) % 4 == 0 {
                            counts.bump(1);
                        }
                    }
                });
            }
        });
        let threads = THREADS as u64;
        assert_eq!(counts.sum(0), threads * PER_THREAD);
        assert_eq!(counts.sum(1), threads * PER_THREAD / 4);
    }

    #[test]
    fn reads_while_counting_never_go_backwards() {
        let counts = StripedCounters::<1>::new();
        let last = thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(|| {
                    for _ in 0..50_000 {
                        counts.bump(0);
                    }
                });
            }
            let mut last = 0;
            for _ in 0..1_000 {
                let now = counts.sum(0);
                assert!(now >= last);
                last = now;
            }
            last
        });
        assert!(last <= 100_000);
        assert_eq!(counts.sum(0), 100_000);
    }
}
