//! What the in-memory broker retains, in bytes, and when it must give some back.
//!
//! [`Ledger`] counts, for every stored message alive (in history, or still queued for a
//! subscriber after history let it go), its payload, its constant
//! ([`crate::message::STORED_MESSAGE_COST`]) and each encoding cached with it when made,
//! and the idempotency window's structures. A message adds its share when the broker
//! makes it and as each encoding is made, and takes all of it back when it is dropped;
//! so the count follows what is really held, not an estimate made at publish time.
//!
//! [`Budget`] decides when an eviction pass runs (the count over
//! `max_retained_bytes`) and how much it frees: down to 1/16 of the budget below it, so a
//! pass runs about once per 1/16 of the budget published, not at every publish. When a
//! pass cannot get there (what is held is in subscriber queues or the idempotency window,
//! not in history) the next one waits until the count has grown by another 1/16: a full
//! budget never makes every publish scan every channel.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// The bytes retained; shared by the broker and the messages it made.
#[derive(Debug, Default)]
pub struct Ledger {
    bytes: AtomicUsize,
}

impl Ledger {
    /// Bytes retained now.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    pub(crate) fn add(&self, n: usize) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn sub(&self, n: usize) {
        // Never below zero, whatever the order of concurrent updates.
        let _ = self
            .bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some(b.saturating_sub(n))
            });
    }
}

/// When to evict and how much (see the module docs).
#[derive(Debug)]
pub(crate) struct Budget {
    max: usize,
    /// The count when the last pass ended.
    after_last: AtomicUsize,
    /// One pass at a time; others go on without waiting.
    pass: Mutex<()>,
}

/// A pass the caller runs while it holds it.
pub(crate) struct Pass<'a> {
    _one: std::sync::MutexGuard<'a, ()>,
    /// Bytes to free.
    pub(crate) free: usize,
}

impl Budget {
    pub(crate) fn new(max: usize) -> Self {
        Budget {
            max,
            after_last: AtomicUsize::new(0),
            pass: Mutex::new(()),
        }
    }

    /// How far below the budget a pass goes.
    fn slack(&self) -> usize {
        (self.max / 16).max(1)
    }

    /// A pass to run now, if `retained` calls for one and no other pass is running.
    pub(crate) fn pass(&self, retained: usize) -> Option<Pass<'_>> {
        let slack = self.slack();
        let after_last = self.after_last.load(Ordering::Relaxed);
        if retained <= self.max {
            if after_last > 0 {
                // Back under the budget: a stuck pass is forgotten.
                self.after_last.store(0, Ordering::Relaxed);
            }
            return None;
        }
        if retained <= after_last.saturating_add(slack) {
            return None;
        }
        let one = self.pass.try_lock().ok()?;
        Some(Pass {
            _one: one,
            free: retained - self.max.saturating_sub(slack),
        })
    }

    /// The pass is over; the count is now `retained`.
    pub(crate) fn done(&self, retained: usize) {
        self.after_last.store(retained, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_frees_down_to_a_sixteenth_below_and_a_stuck_one_waits() {
        let b = Budget::new(1600);
        assert!(b.pass(1600).is_none(), "at the budget: nothing to do");
        let p = b.pass(1700).expect("over the budget: a pass");
        assert_eq!(p.free, 200, "down to 1500");
        assert!(b.pass(1700).is_none(), "one pass at a time");
        drop(p);
        b.done(1500);
        assert!(b.pass(1601).is_some());
        // A pass that freed nothing: the next waits for another sixteenth.
        b.done(1700);
        assert!(b.pass(1750).is_none());
        assert!(b.pass(1801).is_some());
        // Once back under the budget, the next excess is evicted at once.
        assert!(b.pass(1000).is_none());
        assert!(b.pass(1601).is_some());
    }

    #[test]
    fn the_ledger_never_goes_below_zero() {
        let l = Ledger::default();
        l.add(10);
        l.sub(25);
        assert_eq!(l.bytes(), 0);
    }
}
