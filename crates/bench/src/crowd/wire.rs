//! What a `fanout` parent and its worker processes say to each other: one JSON line per
//! message, the parent's on the worker's stdin, the worker's on its stdout.

use serde::{Deserialize, Serialize};

use crate::stats::SparseHistogram;

/// The parent's one command: publishing is over, `sent` messages were published; stop
/// and report.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(super) struct Stop {
    pub(super) sent: u64,
}

/// A worker's reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub(super) enum Report {
    /// Every subscriber of the share is ready or failed (once).
    Ready { ready: u64, failed: u64 },
    /// Counts so far (every 20 ms).
    Progress {
        delivered: u64,
        read: u64,
        written: u64,
    },
    /// The share's tally, after `Stop` (last).
    Done {
        delivered: u64,
        missing: u64,
        out_of_order: u64,
        failed: u64,
        latency: SparseHistogram,
    },
}
