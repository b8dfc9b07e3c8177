//! [`Window`]: the idempotency keys the in-memory broker remembers, each with the cursor
//! of the publish that stored its message, for as long as its window lasts and within a
//! byte cap.
//!
//! A key is remembered as a 128-bit keyed digest of (channel, key) — two SipHash-1-3
//! hashes with keys random per broker, so nobody can make two keys collide on purpose —
//! beside its cursor in a hash map, and in arrival order in a FIFO with its time. So
//! every key costs the same whatever its length: about 100 bytes, at most [`KEY_COST`]
//! with the structures' growth slack; a window of `max_bytes` holds `max_bytes /
//! KEY_COST` keys, and what it holds ([`Window::bytes`]) stays under `max_bytes`.
//!
//! Keys leave from the front of the FIFO: when their window is over (checked on every
//! keyed publish), or, the cap reached, the oldest first. A retry whose key was pushed
//! out by the cap before its window ended is not recognised: it stores its message a
//! second time, as a publish without a key would. The cap is sized so that this needs a
//! sustained key rate of `max_bytes / KEY_COST / window` per second (the default, 32 MiB
//! over 5 minutes: 437 keyed publishes a second).

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use switchboard_proto::Cursor;
use tokio::time::Instant;

use crate::budget::Ledger;

/// Most bytes one remembered key costs: its map entry (digest and cursor, 32 B, and a
/// control byte) in a table that may grow to 4.6 slots a key (a table of removals and
/// inserts grows once before it rehashes in place), 151 B; its FIFO entry (time and
/// digest, 24 B) in a ring at most twice its length, 48 B. Rounded up: a key costs about
/// 100 B once the structures have settled.
pub const KEY_COST: usize = 256;

type Digest = [u64; 2];

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Window {
    seeds: [RandomState; 2],
    cursors: HashMap<Digest, Cursor>,
    /// Arrival order: milliseconds after `started`, and the digest.
    order: VecDeque<(u64, Digest)>,
    started: Instant,
    max_keys: usize,
    /// The bytes last counted in the ledger ([`Window::settle`]).
    counted: usize,
}

/// What a lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    /// The key was given within its window: the first publish's cursor.
    Before(Cursor),
    /// Not seen (or its window is over): remember it with [`Window::remember`].
    New(Digest),
}

impl Window {
    /// A window holding at most `max_bytes / KEY_COST` keys.
    pub(crate) fn new(max_bytes: usize) -> Self {
        Window {
            seeds: [RandomState::new(), RandomState::new()],
            cursors: HashMap::new(),
            order: VecDeque::new(),
            started: Instant::now(),
            max_keys: max_bytes / KEY_COST,
            counted: 0,
        }
    }

    /// Counts in `ledger` how much what the window holds changed since the last call.
    pub(crate) fn settle(&mut self, ledger: &Ledger) {
        let now = self.bytes();
        if now > self.counted {
            ledger.add(now - self.counted);
        } else {
            ledger.sub(self.counted - now);
        }
        self.counted = now;
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether `key` was given to `channel` within `window`; forgets the keys whose
    /// window is over first.
    pub(crate) fn seen(&mut self, channel: &str, key: &str, window: Duration) -> Seen {
        let now = self.now_ms();
        let window = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        while let Some(&(t, d)) = self.order.front() {
            if now.saturating_sub(t) <= window {
                break;
            }
            self.order.pop_front();
            self.cursors.remove(&d);
        }
        self.shrink();
        let digest = [
            self.seeds[0].hash_one((channel, key)),
            self.seeds[1].hash_one((channel, key)),
        ];
        match self.cursors.get(&digest) {
            Some(c) => Seen::Before(*c),
            None => Seen::New(digest),
        }
    }

    /// Remembers a key [`Window::seen`] did not know, with its publish's cursor; the
    /// oldest keys go first when the cap is reached.
    pub(crate) fn remember(&mut self, digest: Digest, cursor: Cursor) {
        if self.max_keys == 0 {
            return;
        }
        while self.order.len() >= self.max_keys {
            if let Some((_, d)) = self.order.pop_front() {
                self.cursors.remove(&d);
            }
        }
        let now = self.now_ms();
        self.cursors.insert(digest, cursor);
        self.order.push_back((now, digest));
    }

    /// Gives memory back once most keys are gone (after a flood), so that what the
    /// window holds follows what it remembers.
    fn shrink(&mut self) {
        if self.cursors.capacity() > 64 && self.cursors.len() * 4 < self.cursors.capacity() {
            self.cursors.shrink_to(self.cursors.len() * 2);
            self.order.shrink_to(self.order.len() * 2);
        }
    }

    /// How many keys are remembered.
    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }

    /// The bytes its two structures hold now (their capacities, as allocated).
    pub(crate) fn bytes(&self) -> usize {
        let map_slots = self.cursors.capacity() * 8 / 7;
        map_slots * (std::mem::size_of::<(Digest, Cursor)>() + 1)
            + self.order.capacity() * std::mem::size_of::<(u64, Digest)>()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use switchboard_proto::Epoch;

    const MIN: Duration = Duration::from_secs(60);

    fn c(o: u64) -> Cursor {
        Cursor::new(Epoch(1), o)
    }

    #[test]
    fn a_key_is_per_channel_and_answers_its_first_cursor() {
        let mut w = Window::new(1 << 20);
        let Seen::New(d) = w.seen("a", "k", MIN) else {
            panic!()
        };
        w.remember(d, c(1));
        assert_eq!(w.seen("a", "k", MIN), Seen::Before(c(1)));
        assert!(
            matches!(w.seen("b", "k", MIN), Seen::New(_)),
            "another channel"
        );
        assert!(matches!(w.seen("a", "k2", MIN), Seen::New(_)));
        // The pair is hashed as a pair: ("ab", "c") is not ("a", "bc").
        let Seen::New(d) = w.seen("ab", "c", MIN) else {
            panic!()
        };
        w.remember(d, c(2));
        assert!(matches!(w.seen("a", "bc", MIN), Seen::New(_)));
    }

    #[tokio::test(start_paused = true)]
    async fn keys_are_forgotten_when_their_window_is_over() {
        let mut w = Window::new(1 << 20);
        let Seen::New(d) = w.seen("a", "k", MIN) else {
            panic!()
        };
        w.remember(d, c(1));
        tokio::time::advance(MIN).await;
        assert_eq!(w.seen("a", "k", MIN), Seen::Before(c(1)), "still within");
        tokio::time::advance(Duration::from_millis(2)).await;
        assert!(matches!(w.seen("a", "k", MIN), Seen::New(_)));
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn a_flood_of_keys_stays_within_the_cap_oldest_out_first() {
        let cap = 64 * 1024;
        let mut w = Window::new(cap);
        for i in 0..100_000u64 {
            let key = i.to_string();
            let Seen::New(d) = w.seen("flood", &key, MIN) else {
                panic!("{i} seen before")
            };
            w.remember(d, c(i));
            assert!(w.bytes() <= cap, "{} bytes after {i} keys", w.bytes());
        }
        assert_eq!(w.len(), cap / KEY_COST);
        assert_eq!(w.seen("flood", "99999", MIN), Seen::Before(c(99_999)));
        assert!(matches!(w.seen("flood", "0", MIN), Seen::New(_)), "evicted");
    }
}
