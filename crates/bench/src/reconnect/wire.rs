//! What the `reconnect` parent and its worker processes say to each other: one JSON
//! line per message, commands on the worker's stdin, events on its stdout.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use switchboard_proto::Cursor;

use super::ledger::Verdict;
use crate::stats::SparseHistogram;

/// The parent's commands.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub(crate) enum Command {
    /// The server is about to go away: a connection that ends from now on waits for the
    /// storm's window instead of reconnecting at once.
    Down,
    /// The storm: every client whose connection ended (or, with `drop`, every client
    /// after closing its connection: a network blip) comes back at its own moment of the
    /// window that opens at `at_us` (wall clock, µs since the Unix epoch).
    Storm { at_us: u64, drop: bool },
    /// Publishing is over: wait until every client has the channel's last acknowledged
    /// message (or the drain time passed), check every client, report.
    Finish {
        acks: Vec<(u64, Cursor)>,
        windows: Windows,
    },
}

/// The measured windows (wall clock µs, `[start, end)`); a live message's delivery
/// latency counts in the window its send time falls in.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(crate) struct Windows {
    /// Steady state before the server goes away.
    pub(crate) before: (u64, u64),
    /// From the storm's window opening until every client is back.
    pub(crate) during: (u64, u64),
    /// From then until publishing stopped.
    pub(crate) after: (u64, u64),
}

/// A worker's events.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub(crate) enum Event {
    /// Every client subscribed for the first time (or gave up: `failed`).
    Ready { subscribed: u64, failed: u64 },
    /// Every client is back after the storm; the last one's subscription was answered at
    /// `last_us` (wall clock).
    Back { clients: u64, last_us: u64 },
    /// The final report.
    Done(Box<WorkerReport>),
}

/// Attempts to subscribe and how they failed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Attempts {
    pub(crate) attempts: u64,
    /// Failed attempts by kind (`ws_1013`, `http_503`, `tcp_refused`, `timeout`, …).
    pub(crate) failed: BTreeMap<String, u64>,
}

impl Attempts {
    /// Adds `other`'s counts.
    pub(crate) fn add(&mut self, other: &Attempts) {
        self.attempts += other.attempts;
        for (k, v) in &other.failed {
            *self.failed.entry(k.clone()).or_default() += v;
        }
    }
}

/// One worker's figures.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct WorkerReport {
    pub(crate) clients: u64,
    pub(crate) ws: u64,
    pub(crate) sse: u64,
    /// Clients back after the storm.
    pub(crate) back: u64,
    /// Per client back, µs from the storm's window opening to the answer of its lasting
    /// subscription.
    pub(crate) back_us: SparseHistogram,
    /// Attempts before the storm (the first subscriptions) and from it on.
    pub(crate) initial: Attempts,
    pub(crate) storm: Attempts,
    /// Most attempts one client made from the storm on.
    pub(crate) most_storm_attempts: u64,
    /// Subscriptions that ended after they were answered, by how.
    pub(crate) ends: BTreeMap<String, u64>,
    /// Clients still without the last acknowledged message when the drain time ran out.
    pub(crate) behind: u64,
    pub(crate) check: Verdict,
    /// Delivery latency (µs) of live messages by window: `before`, `during`, `after`.
    pub(crate) latency_us: BTreeMap<String, SparseHistogram>,
}
