//! The check: every subscriber's received sequence against what the publisher had
//! acknowledged, counted into a [`Tally`].
//!
//! # What counts as lost, and why the server cannot talk the test out of it
//!
//! Each published message carries its channel and a sequence number (`seq`), and the
//! publisher writes down, from its own clock, when every attempt started and when which
//! cursor was acknowledged for which `seq`. A subscriber writes down every message and
//! `reset` with the times that bound when the server decided that `reset`: `lo`, when
//! the request that brought it started, and `hi`, when it arrived.
//!
//! * A **duplicate** is a cursor received twice, or one `seq` received at two cursors
//!   (a publish the server stored twice).
//! * Every acknowledged message after the subscriber's start that it never received is
//!   **lost**, unless a `reset` skipped it (it lies after the position the subscriber had
//!   before the `reset`, and at or before the `reset`'s cursor, in the order of epochs
//!   as the publisher met them, then offsets) *and* the server did not certainly hold it
//!   when it decided that `reset`. It certainly held message `E:o` if the `reset` is in
//!   epoch `E` (the same log), the message was acknowledged before `lo`, and fewer than
//!   `o + history_size` publishes can have reached that log before `hi` (counting every
//!   attempt started before `hi`, except those acknowledged in another epoch): the log
//!   trims a message only once `history_size` later ones were appended.
//!
//! So the server's answers only name things; whether a message was held follows from the
//! publisher's own record, and a `reset` can excuse a gap only where the history size and
//! the timing make the message's absence from the log possible.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Instant;

use switchboard_client::{Cursor, Epoch};

use crate::publisher::{Ack, Record};
use crate::subscriber::{Log, Received};

/// Counts over every subscriber (and examples of what went wrong).
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) subscribers: usize,
    pub(crate) published: usize,
    pub(crate) deliveries: u64,
    pub(crate) resets: u64,
    /// Messages a `reset` skipped that the server may no longer have held (allowed).
    pub(crate) skipped_unheld: u64,
    pub(crate) duplicates: u64,
    pub(crate) lost: u64,
    /// Of the lost: skipped by a `reset` although the server certainly held them.
    pub(crate) lost_held: u64,
    /// Messages out of offset order within an epoch, payloads that do not match the
    /// acknowledged `seq` or channel, unreadable envelopes, resets to an epoch the
    /// publisher never met.
    pub(crate) corrupt: u64,
    /// Messages the publisher gave up on (never acknowledged).
    pub(crate) unpublished: u64,
    pub(crate) examples: Vec<String>,
}

impl Tally {
    pub(crate) fn clean(&self) -> bool {
        self.duplicates == 0 && self.lost == 0 && self.corrupt == 0 && self.unpublished == 0
    }

    /// Adds `other`'s counts (and examples, up to the limit).
    pub(crate) fn merge(&mut self, other: Tally) {
        self.subscribers += other.subscribers;
        self.published += other.published;
        self.deliveries += other.deliveries;
        self.resets += other.resets;
        self.skipped_unheld += other.skipped_unheld;
        self.duplicates += other.duplicates;
        self.lost += other.lost;
        self.lost_held += other.lost_held;
        self.corrupt += other.corrupt;
        self.unpublished += other.unpublished;
        for e in other.examples {
            self.example(e);
        }
    }

    fn corrupt(&mut self, what: String) {
        self.corrupt += 1;
        self.example(what);
    }

    fn example(&mut self, what: String) {
        if self.examples.len() < 8 {
            self.examples.push(what);
        }
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} subscribers, {} messages published, {} deliveries, {} resets \
             ({} skipped messages not certainly held), {} duplicates, {} lost \
             ({} of them skipped by a reset while held), {} corrupt, {} never acknowledged",
            self.subscribers,
            self.published,
            self.deliveries,
            self.resets,
            self.skipped_unheld,
            self.duplicates,
            self.lost,
            self.lost_held,
            self.corrupt,
            self.unpublished
        )?;
        for e in &self.examples {
            write!(f, "\n  e.g. {e}")?;
        }
        Ok(())
    }
}

/// One channel's acknowledged messages, indexed.
pub(crate) struct Channel<'a> {
    record: &'a Record,
    by_cursor: HashMap<Cursor, &'a Ack>,
    seqs: HashSet<u64>,
    /// Epochs in the order the publisher met them.
    epochs: Vec<Epoch>,
    history_size: u64,
}

impl<'a> Channel<'a> {
    pub(crate) fn new(record: &'a Record, history_size: usize) -> Self {
        let mut epochs = Vec::new();
        for a in &record.acks {
            if !epochs.contains(&a.cursor.epoch) {
                epochs.push(a.cursor.epoch);
            }
        }
        Self {
            record,
            by_cursor: record.acks.iter().map(|a| (a.cursor, a)).collect(),
            seqs: record.acks.iter().map(|a| a.seq).collect(),
            epochs,
            history_size: history_size as u64,
        }
    }

    pub(crate) fn published(&self) -> usize {
        self.record.acks.len()
    }

    /// The stream order: epochs as met, then offsets (`None` for an unknown epoch).
    fn key(&self, c: Cursor) -> Option<(usize, u64)> {
        let e = self.epochs.iter().position(|&e| e == c.epoch)?;
        Some((e, c.offset))
    }

    /// Whether the server certainly held `m` when it decided a `reset` in `epoch`
    /// between `lo` and `hi` (see the module docs).
    fn held(&self, m: &Ack, epoch: Epoch, lo: Instant, hi: Instant) -> bool {
        if m.cursor.epoch != epoch || m.acked_at >= lo {
            return false;
        }
        // Both lists are in time order (one publisher task per channel).
        let started = self.record.attempts.partition_point(|&t| t < hi);
        let acked = self.record.acks.partition_point(|a| a.acked_at < hi);
        let elsewhere = self.record.acks[..acked]
            .iter()
            .filter(|a| a.cursor.epoch != epoch)
            .count();
        let reached = started.saturating_sub(elsewhere) as u64;
        reached < m.cursor.offset + self.history_size
    }
}

/// A stretch a `reset` skipped: after `from`, up to and including `to`.
struct Skip {
    from: (usize, u64),
    to: (usize, u64),
    cursor: Cursor,
    lo: Instant,
    hi: Instant,
}

/// Checks one subscriber's log against its channel.
pub(crate) fn check(log: &Log, ch: &Channel<'_>, t: &mut Tally) {
    t.subscribers += 1;
    let who = format!("{:?} subscriber of {}", log.transport, log.channel);
    let Some(start) = ch.key(log.start) else {
        t.corrupt(format!("{who}: start {} not published", log.start));
        return;
    };
    let mut position = start;
    let mut last = log.start;
    let mut seen = HashSet::new();
    let mut seen_seq = HashSet::new();
    let mut skips = Vec::new();
    for r in &log.received {
        match r {
            Received::Message {
                cursor,
                seq,
                right_channel,
            } => {
                t.deliveries += 1;
                let Some(key) = ch.key(*cursor) else {
                    t.corrupt(format!(
                        "{who}: message at {cursor}, an epoch never published"
                    ));
                    continue;
                };
                match ch.by_cursor.get(cursor) {
                    Some(a) if a.seq != *seq || !right_channel => {
                        t.corrupt(format!(
                            "{who}: {cursor} carried seq {seq} (of this channel: \
                             {right_channel}), acknowledged as seq {}",
                            a.seq
                        ));
                    }
                    Some(_) => {}
                    // Stored by an attempt whose answer was cut, its seq acknowledged at
                    // another cursor: a duplicate, counted below.
                    None if ch.seqs.contains(seq) => {}
                    None => {
                        t.corrupt(format!("{who}: {cursor} seq {seq} never acknowledged"));
                    }
                }
                if !seen.insert(*cursor) {
                    t.duplicates += 1;
                    t.example(format!("{who}: {cursor} received again"));
                    continue;
                }
                if !seen_seq.insert(*seq) {
                    t.duplicates += 1;
                    t.example(format!("{who}: seq {seq} received again, at {cursor}"));
                }
                if key <= position {
                    t.corrupt(format!("{who}: {cursor} after {last}, out of order"));
                }
                position = key;
                last = *cursor;
            }
            Received::Reset { cursor, lo, hi } => {
                t.resets += 1;
                let Some(key) = ch.key(*cursor) else {
                    t.corrupt(format!(
                        "{who}: reset to {cursor}, an epoch never published"
                    ));
                    continue;
                };
                skips.push(Skip {
                    from: position,
                    to: key,
                    cursor: *cursor,
                    lo: *lo,
                    hi: *hi,
                });
                position = key;
                last = *cursor;
            }
            Received::Unreadable(what) => {
                t.corrupt(format!("{who}: unreadable {what}"));
            }
        }
    }
    for a in &ch.record.acks {
        let Some(key) = ch.key(a.cursor) else {
            continue;
        };
        if key <= start || seen.contains(&a.cursor) {
            continue;
        }
        let skip = skips.iter().find(|s| s.from < key && key <= s.to);
        match skip {
            Some(s) if !ch.held(a, s.cursor.epoch, s.lo, s.hi) => t.skipped_unheld += 1,
            Some(s) => {
                t.lost += 1;
                t.lost_held += 1;
                t.example(format!(
                    "{who}: {} skipped by a reset to {} although held",
                    a.cursor, s.cursor
                ));
            }
            None => {
                t.lost += 1;
                t.example(format!("{who}: {} never arrived (no reset)", a.cursor));
            }
        }
    }
}
