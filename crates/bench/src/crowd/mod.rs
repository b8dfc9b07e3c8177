//! Where a fan-out's subscribers run: in the generator's own process ([`Local`]), or split
//! over worker processes ([`Workers`], `fanout --processes N`), each with a runtime (one
//! thread, one epoll instance) of its own, as real clients each have theirs.
//!
//! Why it matters: on loopback the server's `send` also runs the receiving socket's side
//! of TCP, so a generator that falls behind makes every delivery dearer to the server
//! (segments merged into data not yet read, more ACKs). One generator thread reading
//! 10,000 sockets at a million messages a second falls behind as soon as the server takes
//! a share of its core; `docs/perf/REPORT.md`, "A second core: the generator's".
//!
//! Either way the parent sees the same four things: how many are ready, how many messages
//! they received, their bytes on the wire, and at the end a [`Tally`].

mod local;
mod wire;
mod worker;
mod workers;

use std::ffi::OsString;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

pub use local::Local;
pub use worker::{run as worker, WorkerArgs};
pub use workers::Workers;

use crate::counting::WireCounters;
use crate::stats::Histogram;
use crate::subscriber::Target;

/// How long subscribers may take to connect before the run goes on without the rest.
const CONNECT_DEADLINE: Duration = Duration::from_secs(120);

/// What the subscribers of a run received, counted once publishing is over.
#[derive(Debug, Default)]
pub struct Tally {
    /// Messages received, over every subscriber.
    pub delivered: u64,
    pub missing: u64,
    pub out_of_order: u64,
    /// Subscribers that failed (to connect, or later).
    pub failed: u64,
    pub latency: Histogram,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.delivered += other.delivered;
        self.missing += other.missing;
        self.out_of_order += other.out_of_order;
        self.failed += other.failed;
        self.latency.merge(&other.latency);
    }
}

/// Waits until all `n` subscribers are ready or failed (`ready` says how many so far), or
/// [`CONNECT_DEADLINE`] passed; returns the last count.
async fn settle(n: usize, ready: impl Fn() -> (u64, u64)) -> (u64, u64) {
    let deadline = Instant::now() + CONNECT_DEADLINE;
    loop {
        let (r, f) = ready();
        if r + f >= n as u64 || Instant::now() > deadline {
            return (r, f);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The subscribers of one run.
#[derive(Debug)]
pub enum Crowd {
    Local(Local),
    Workers(Workers),
}

impl Crowd {
    /// Starts `target.subscribers` subscribers, in this process (`processes` ≤ 1, their
    /// streams counting into `counters`) or in `processes` worker processes started with
    /// `self_cmd` (this generator's program and leading arguments), and returns once every
    /// one is ready or failed, or [`CONNECT_DEADLINE`] passed.
    pub async fn start(
        target: &Target,
        processes: usize,
        self_cmd: &[OsString],
        counters: &Arc<WireCounters>,
        stop: &watch::Receiver<bool>,
    ) -> std::io::Result<Self> {
        let n = target.subscribers;
        let crowd = if processes <= 1 {
            Self::Local(Local::spawn(target, 0..n, counters, stop))
        } else {
            Self::Workers(Workers::spawn(target, processes, self_cmd)?)
        };
        let (r, f) = settle(n, || crowd.ready()).await;
        eprintln!("[fanout] {r} subscribers ready, {f} failed");
        Ok(crowd)
    }

    /// Subscribers ready and failed so far.
    pub fn ready(&self) -> (u64, u64) {
        match self {
            Self::Local(l) => l.ready(),
            Self::Workers(w) => w.ready(),
        }
    }

    /// Messages received so far, over every subscriber.
    pub fn delivered(&self) -> u64 {
        match self {
            Self::Local(l) => l.delivered(),
            Self::Workers(w) => w.delivered(),
        }
    }

    /// [`Self::delivered`] for a progress line on another task.
    pub fn delivered_counter(&self) -> Box<dyn Fn() -> u64 + Send> {
        match self {
            Self::Local(l) => l.delivered_counter(),
            Self::Workers(w) => w.delivered_counter(),
        }
    }

    /// Bytes read and written by worker processes (local subscribers count theirs into
    /// the counters they were started with).
    pub fn worker_bytes(&self) -> (u64, u64) {
        match self {
            Self::Local(_) => (0, 0),
            Self::Workers(w) => w.bytes(),
        }
    }

    /// Stops every subscriber and counts, given that messages `0..sent` were published.
    /// Local subscribers stop on the `stop` they were started with, which the caller
    /// has already sent.
    pub async fn finish(self, sent: u64) -> Tally {
        match self {
            Self::Local(l) => l.finish(sent).await,
            Self::Workers(w) => w.finish(sent).await,
        }
    }
}
