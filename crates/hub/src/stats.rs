//! The hub's counters, read by whoever exports them (the server's `/metrics`): messages
//! published and delivered, slow consumers by policy, resets, and every broker operation
//! with its errors and a latency histogram.
//!
//! Cost on the hot path: relaxed atomic adds on counters of the hub, no lock and no
//! allocation. A fan-out adds its subscriber count once per message, not once per
//! subscriber; a broker operation reads the clock twice.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

/// The broker operations the hub times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BrokerOp {
    /// A publish (assigns the offset, appends to history, feeds every node).
    Publish,
    /// A history read (subscriptions with a cursor, `/api` history, polls).
    History,
    /// A channel subscription of this node (first local subscriber).
    Subscribe,
    /// Presence reads and writes, and join/leave broadcasts.
    Presence,
    /// The list of channels.
    Channels,
    /// A health check.
    Health,
}

impl BrokerOp {
    /// Every operation, in the order of [`BrokerOp::index`].
    pub const ALL: [BrokerOp; 6] = [
        BrokerOp::Publish,
        BrokerOp::History,
        BrokerOp::Subscribe,
        BrokerOp::Presence,
        BrokerOp::Channels,
        BrokerOp::Health,
    ];

    /// The operation's name (a metric label).
    pub const fn name(self) -> &'static str {
        match self {
            BrokerOp::Publish => "publish",
            BrokerOp::History => "history",
            BrokerOp::Subscribe => "subscribe",
            BrokerOp::Presence => "presence",
            BrokerOp::Channels => "channels",
            BrokerOp::Health => "health",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// Upper bounds (seconds) of the broker latency histogram's buckets (then `+Inf`).
pub const LATENCY_BOUNDS: [f64; 12] = [
    0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5,
];

/// One operation's counts: calls, errors, the latency histogram (per bucket, not
/// cumulative; the last is `+Inf`) and the sum of latencies in nanoseconds.
#[derive(Debug, Default)]
struct OpStats {
    calls: AtomicU64,
    errors: AtomicU64,
    buckets: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    sum_nanos: AtomicU64,
}

/// A snapshot of one broker operation's counts ([`HubStats::broker`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OpSnapshot {
    /// Calls (errors included).
    pub calls: u64,
    /// Calls that failed.
    pub errors: u64,
    /// Calls per latency bucket of [`LATENCY_BOUNDS`] (not cumulative; the last is `+Inf`).
    pub buckets: Vec<u64>,
    /// The sum of their latencies, in seconds.
    pub sum_seconds: f64,
}

/// The hub's counters ([`crate::Hub::stats`]).
#[derive(Debug, Default)]
pub struct HubStats {
    published: AtomicU64,
    delivered: AtomicU64,
    slow_closed: AtomicU64,
    slow_dropped: AtomicU64,
    resets: AtomicU64,
    ops: [OpStats; BrokerOp::ALL.len()],
}

impl HubStats {
    /// Messages this node published (accepted by the broker).
    pub fn published(&self) -> u64 {
        self.published.load(Relaxed)
    }

    /// Messages queued to this node's subscribers (one per subscriber and message,
    /// presence events included).
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Relaxed)
    }

    /// Subscriptions closed for falling behind (policy `close`).
    pub fn slow_closed(&self) -> u64 {
        self.slow_closed.load(Relaxed)
    }

    /// Messages dropped for slow subscribers (policy `drop_oldest`).
    pub fn slow_dropped(&self) -> u64 {
        self.slow_dropped.load(Relaxed)
    }

    /// `reset` messages made for subscriptions whose history was gone.
    pub fn resets(&self) -> u64 {
        self.resets.load(Relaxed)
    }

    /// The counts of one broker operation.
    pub fn broker(&self, op: BrokerOp) -> OpSnapshot {
        let s = &self.ops[op.index()];
        OpSnapshot {
            calls: s.calls.load(Relaxed),
            errors: s.errors.load(Relaxed),
            buckets: s.buckets.iter().map(|b| b.load(Relaxed)).collect(),
            sum_seconds: s.sum_nanos.load(Relaxed) as f64 / 1e9,
        }
    }

    pub(crate) fn count_published(&self) {
        self.published.fetch_add(1, Relaxed);
    }

    pub(crate) fn count_delivered(&self, n: usize) {
        if n > 0 {
            self.delivered.fetch_add(n as u64, Relaxed);
        }
    }

    pub(crate) fn count_slow(&self, closed: u64, dropped: u64) {
        if closed > 0 {
            self.slow_closed.fetch_add(closed, Relaxed);
        }
        if dropped > 0 {
            self.slow_dropped.fetch_add(dropped, Relaxed);
        }
    }

    pub(crate) fn count_reset(&self) {
        self.resets.fetch_add(1, Relaxed);
    }

    /// Runs the broker operation `fut`, counted and timed as `op`.
    pub(crate) async fn timed<T, E>(
        &self,
        op: BrokerOp,
        fut: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let start = Instant::now();
        let result = fut.await;
        let elapsed = start.elapsed();
        let s = &self.ops[op.index()];
        s.calls.fetch_add(1, Relaxed);
        if result.is_err() {
            s.errors.fetch_add(1, Relaxed);
        }
        let secs = elapsed.as_secs_f64();
        let bucket = LATENCY_BOUNDS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LATENCY_BOUNDS.len());
        s.buckets[bucket].fetch_add(1, Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        s.sum_nanos.fetch_add(nanos, Relaxed);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_timed_operation_is_counted_once_in_one_bucket() {
        let stats = HubStats::default();
        let ok: Result<(), ()> = stats.timed(BrokerOp::History, async { Ok(()) }).await;
        assert!(ok.is_ok());
        let err: Result<(), ()> = stats.timed(BrokerOp::History, async { Err(()) }).await;
        assert!(err.is_err());
        let h = stats.broker(BrokerOp::History);
        assert_eq!((h.calls, h.errors), (2, 1));
        assert_eq!(h.buckets.iter().sum::<u64>(), 2);
        assert_eq!(stats.broker(BrokerOp::Publish).calls, 0);
    }
}
