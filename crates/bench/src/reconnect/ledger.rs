//! What each client received, and the check of it against what the publisher had
//! acknowledged.
//!
//! A client writes down every message (the sequence number inside its payload, see
//! [`crate::payload`], and the cursor the server gave it) and every `reset` (the cursor it
//! continues from, and where the client stood before it) in a [`Log`]. At the end,
//! [`check`] compares the log with the publisher's acknowledgements ([`Acks`]: for each
//! acknowledged publish, its sequence number and cursor, in publish order):
//!
//! * every acknowledged message after the client's first position is **expected**;
//! * an expected message never received is **announced** when a `reset` skipped it: it
//!   lies after where the client stood when the `reset` came and at or before the
//!   `reset`'s cursor (cursors are ordered by epoch, in the order the publisher met the
//!   epochs, then by offset); otherwise it is **unannounced**: a gap nobody told the
//!   client about. A client with any is counted in `clients_with_unannounced_gap`, the
//!   figure that must be 0;
//! * a sequence number received twice is a **duplicate**;
//! * a message whose cursor does not follow the client's position (the next offset of
//!   the same epoch, a `reset` set aside) is a **cursor break**: the server's own
//!   numbering skipped or went back without saying so.
//!
//! Whether a `reset` was *justified* (the server really no longer held what it skipped)
//! is not judged here beyond that: after a restart with a fresh broker every old
//! message is gone, and the new epoch's messages are all expected after the `reset`.
//! (The server's chaos test judges it from the history size and timing.)

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use switchboard_proto::{Cursor, Epoch};

/// One client's record.
#[derive(Debug, Default, Clone)]
pub struct Log {
    /// Sequence numbers received, sorted (messages mostly arrive in order: a push).
    seen: Vec<u64>,
    /// The position before the first message or `reset` received.
    start: Option<Cursor>,
    position: Option<Cursor>,
    /// Each `reset`: where the client stood, and the cursor it continues from.
    resets: Vec<(Option<Cursor>, Cursor)>,
    messages: u64,
    duplicates: u64,
    cursor_breaks: u64,
}

impl Log {
    /// Notes message `seq` at `cursor`.
    pub fn message(&mut self, seq: u64, cursor: Cursor) {
        self.messages += 1;
        if self.start.is_none() {
            self.start = Some(Cursor::new(cursor.epoch, cursor.offset.saturating_sub(1)));
        }
        match self.seen.last() {
            Some(&last) if seq <= last => match self.seen.binary_search(&seq) {
                Ok(_) => {
                    self.duplicates += 1;
                    return;
                }
                Err(at) => self.seen.insert(at, seq),
            },
            _ => self.seen.push(seq),
        }
        if let Some(p) = self.position {
            if p.epoch != cursor.epoch || cursor.offset != p.offset.saturating_add(1) {
                self.cursor_breaks += 1;
            }
        }
        self.position = Some(cursor);
    }

    /// Notes a `reset`: the stream continues after `cursor`.
    pub fn reset(&mut self, cursor: Cursor) {
        if self.start.is_none() {
            self.start = Some(cursor);
        }
        self.resets.push((self.position, cursor));
        self.position = Some(cursor);
    }

    /// Where to resume from (the last message's or `reset`'s cursor).
    pub fn position(&self) -> Option<Cursor> {
        self.position
    }

    /// Whether message `seq` arrived.
    pub fn has(&self, seq: u64) -> bool {
        self.seen.binary_search(&seq).is_ok()
    }

    /// Messages received (duplicates included).
    pub fn messages(&self) -> u64 {
        self.messages
    }
}

/// The publisher's acknowledgements of one channel, in publish order.
#[derive(Debug, Default, Clone)]
pub struct Acks {
    acks: Vec<(u64, Cursor)>,
    /// Each epoch's place in the order the publisher met them.
    rank: HashMap<Epoch, usize>,
}

impl Acks {
    /// From `(sequence number, cursor)` pairs in publish order.
    pub fn new(acks: Vec<(u64, Cursor)>) -> Self {
        let mut rank = HashMap::new();
        for (_, c) in &acks {
            let next = rank.len();
            rank.entry(c.epoch).or_insert(next);
        }
        Self { acks, rank }
    }

    /// The last acknowledged sequence number.
    pub fn last_seq(&self) -> Option<u64> {
        self.acks.last().map(|(s, _)| *s)
    }

    /// Acknowledged messages.
    pub fn len(&self) -> usize {
        self.acks.len()
    }

    /// Whether nothing was acknowledged.
    pub fn is_empty(&self) -> bool {
        self.acks.is_empty()
    }

    /// A cursor's place: its epoch's rank (an epoch the publisher never met comes after
    /// every other), then its offset.
    fn order(&self, c: Cursor) -> (usize, u64) {
        (
            self.rank.get(&c.epoch).copied().unwrap_or(usize::MAX),
            c.offset,
        )
    }
}

/// The check's counts, for one client or summed over many.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub clients: u64,
    /// Messages received (duplicates included).
    pub received: u64,
    pub expected: u64,
    /// Expected, not received, skipped by a `reset`.
    pub missing_announced: u64,
    /// Expected, not received, with no `reset` to say so.
    pub missing_unannounced: u64,
    pub clients_with_unannounced_gap: u64,
    pub resets: u64,
    pub clients_reset: u64,
    pub duplicates: u64,
    pub cursor_breaks: u64,
}

impl Verdict {
    /// Adds `other`'s counts.
    pub fn add(&mut self, other: &Verdict) {
        self.clients += other.clients;
        self.received += other.received;
        self.expected += other.expected;
        self.missing_announced += other.missing_announced;
        self.missing_unannounced += other.missing_unannounced;
        self.clients_with_unannounced_gap += other.clients_with_unannounced_gap;
        self.resets += other.resets;
        self.clients_reset += other.clients_reset;
        self.duplicates += other.duplicates;
        self.cursor_breaks += other.cursor_breaks;
    }
}

/// Checks one client's log against its channel's acknowledgements (see the module docs).
pub fn check(log: &Log, acks: &Acks) -> Verdict {
    let resets = log.resets.len() as u64;
    let mut v = Verdict {
        clients: 1,
        received: log.messages,
        resets,
        clients_reset: u64::from(resets > 0),
        duplicates: log.duplicates,
        cursor_breaks: log.cursor_breaks,
        ..Verdict::default()
    };
    let start = log.start.map(|s| acks.order(s));
    for &(seq, cursor) in &acks.acks {
        let at = acks.order(cursor);
        if start.is_some_and(|s| at <= s) {
            continue;
        }
        v.expected += 1;
        if log.has(seq) {
            continue;
        }
        let announced = log.resets.iter().any(|(before, reset)| {
            before.is_none_or(|b| acks.order(b) < at) && at <= acks.order(*reset)
        });
        if announced {
            v.missing_announced += 1;
        } else {
            v.missing_unannounced += 1;
        }
    }
    v.clients_with_unannounced_gap = u64::from(v.missing_unannounced > 0);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: Epoch = Epoch(0xa);
    const NEW: Epoch = Epoch(0xb);

    fn c(epoch: Epoch, offset: u64) -> Cursor {
        Cursor::new(epoch, offset)
    }

    /// Seqs 0..=9 at OLD:1..=10, then (after a restart) seqs 12..=16 at NEW:1..=5; seq
    /// 11 was never acknowledged (the publish the restart cut).
    fn restart_acks() -> Acks {
        let mut acks: Vec<_> = (0..10).map(|s| (s, c(OLD, s + 1))).collect();
        acks.extend((12..17).map(|s| (s, c(NEW, s - 11))));
        Acks::new(acks)
    }

    #[test]
    fn a_restart_reset_announces_the_old_tail_and_the_new_epoch_is_all_there() {
        let acks = restart_acks();
        let mut log = Log::default();
        // Joined at seq 2, saw up to seq 6 when the server died.
        for s in 2..=6 {
            log.message(s, c(OLD, s + 1));
        }
        assert_eq!(log.position(), Some(c(OLD, 7)));
        log.reset(c(NEW, 0));
        for s in 12..17 {
            log.message(s, c(NEW, s - 11));
        }
        let v = check(&log, &acks);
        assert_eq!(v.expected, 13, "seq 2..=9 and 12..=16");
        assert_eq!(v.missing_announced, 3, "seq 7..=9, skipped by the reset");
        assert_eq!(v.missing_unannounced, 0);
        assert_eq!(
            (v.clients_with_unannounced_gap, v.resets, v.clients_reset),
            (0, 1, 1)
        );
        assert_eq!((v.duplicates, v.cursor_breaks, v.received), (0, 0, 10));
    }

    #[test]
    fn a_gap_without_a_reset_is_unannounced_and_so_is_a_missing_tail() {
        let acks = restart_acks();
        let mut log = Log::default();
        for s in [0, 1, 2, 4, 5] {
            log.message(s, c(OLD, s + 1));
        }
        log.reset(c(NEW, 0));
        // The new epoch's first message never came, nor its last.
        for s in 13..16 {
            log.message(s, c(NEW, s - 11));
        }
        let v = check(&log, &acks);
        // Seq 3 (no reset: a cursor break too), seq 12 (after the reset's cursor), seq 16
        // (the tail).
        assert_eq!(v.missing_unannounced, 3);
        assert_eq!(v.missing_announced, 4, "seq 6..=9");
        assert_eq!(v.clients_with_unannounced_gap, 1);
        assert_eq!(v.cursor_breaks, 2, "OLD:3 -> OLD:5 and NEW:0 -> NEW:2");
    }

    #[test]
    fn an_epoch_change_without_a_reset_is_a_break_and_its_gap_unannounced() {
        let acks = restart_acks();
        let mut log = Log::default();
        for s in 8..10 {
            log.message(s, c(OLD, s + 1));
        }
        for s in 12..17 {
            log.message(s, c(NEW, s - 11));
        }
        let v = check(&log, &acks);
        assert_eq!((v.missing_unannounced, v.cursor_breaks), (0, 1));
        // A silent switch that also lost the old tail.
        let mut log = Log::default();
        log.message(7, c(OLD, 8));
        for s in 12..17 {
            log.message(s, c(NEW, s - 11));
        }
        assert_eq!(check(&log, &acks).missing_unannounced, 2, "seq 8 and 9");
    }

    #[test]
    fn duplicates_and_late_arrivals() {
        let acks = Acks::new((0..5).map(|s| (s, c(OLD, s + 1))).collect());
        let mut log = Log::default();
        for s in [0, 1, 1, 3, 2, 4, 4] {
            log.message(s, c(OLD, s + 1));
        }
        let v = check(&log, &acks);
        assert_eq!((v.duplicates, v.received, v.missing_unannounced), (2, 7, 0));
        assert!(log.has(2) && !log.has(9));
        // 1 -> 3 skipped, 3 -> 2 went back, 2 -> 4 skipped.
        assert_eq!(v.cursor_breaks, 3);
    }

    #[test]
    fn a_client_that_received_nothing_is_missing_everything_and_unacked_ones_are_extra() {
        let acks = Acks::new(vec![(0, c(OLD, 1)), (2, c(OLD, 3))]);
        let v = check(&Log::default(), &acks);
        assert_eq!((v.expected, v.missing_unannounced), (2, 2));
        assert_eq!(v.clients_with_unannounced_gap, 1);
        // Seq 1 was stored but its acknowledgement lost: received, never expected.
        let mut log = Log::default();
        for (s, o) in [(0, 1), (1, 2), (2, 3)] {
            log.message(s, c(OLD, o));
        }
        let v = check(&log, &acks);
        assert_eq!((v.expected, v.missing_unannounced, v.received), (2, 0, 3));
        assert_eq!(acks.last_seq(), Some(2));
    }

    #[test]
    fn a_reset_into_an_epoch_the_publisher_never_met_comes_last() {
        let acks = restart_acks();
        let mut log = Log::default();
        log.message(0, c(OLD, 1));
        log.reset(c(Epoch(0xdead), 0));
        let v = check(&log, &acks);
        // Everything after seq 0 lies before that unknown epoch: announced.
        assert_eq!((v.missing_announced, v.missing_unannounced), (14, 0));
    }
}
