//! Subscribers as tasks of the calling runtime: the whole crowd of a one-process run, or
//! one worker process's share.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use super::Tally;
use crate::counting::WireCounters;
use crate::stats::SeqTracker;
use crate::subscriber::{self, Shared, Target};

/// Subscribers connecting at once (a gate, so a crowd does not flood the listen queue).
const CONNECTING_AT_ONCE: usize = 256;

/// Subscriber tasks on the calling runtime.
#[derive(Debug)]
pub struct Local {
    tasks: Vec<JoinHandle<SeqTracker>>,
    shared: Arc<Shared>,
    ready: Arc<AtomicU64>,
}

impl Local {
    /// Spawns subscribers `range` of `target` (indices spread source addresses and poll
    /// phases over the whole run), counting their bytes into `counters`; they run until
    /// `stop`.
    pub fn spawn(
        target: &Target,
        range: Range<usize>,
        counters: &Arc<WireCounters>,
        stop: &watch::Receiver<bool>,
    ) -> Self {
        let target = Arc::new(target.clone());
        let shared = Arc::new(Shared::default());
        let gate = Arc::new(Semaphore::new(CONNECTING_AT_ONCE));
        let ready = Arc::new(AtomicU64::new(0));
        let tasks = range
            .map(|i| {
                let (target, shared, stop, gate, ready, counters) = (
                    target.clone(),
                    shared.clone(),
                    stop.clone(),
                    gate.clone(),
                    ready.clone(),
                    counters.clone(),
                );
                tokio::spawn(async move {
                    let permit = gate.acquire_owned().await.ok();
                    let res = subscriber::subscriber(
                        &target, i, &shared, stop, &ready, permit, &counters,
                    )
                    .await;
                    if res.is_err() {
                        shared.failed.fetch_add(1, Ordering::Relaxed);
                    }
                    res.unwrap_or_default()
                })
            })
            .collect();
        Self {
            tasks,
            shared,
            ready,
        }
    }

    /// Subscribers ready and failed so far.
    pub fn ready(&self) -> (u64, u64) {
        (
            self.ready.load(Ordering::Relaxed),
            self.shared.failed.load(Ordering::Relaxed),
        )
    }

    /// Messages received so far.
    pub fn delivered(&self) -> u64 {
        self.shared.delivered.load(Ordering::Relaxed)
    }

    /// [`Self::delivered`] for another task.
    pub fn delivered_counter(&self) -> Box<dyn Fn() -> u64 + Send> {
        let shared = self.shared.clone();
        Box::new(move || shared.delivered.load(Ordering::Relaxed))
    }

    /// Waits for every task (they end at `stop`) and counts; a task that does not end
    /// within 10 s counts every message as missing.
    pub async fn finish(self, sent: u64) -> Tally {
        let mut tally = Tally::default();
        for task in self.tasks {
            match tokio::time::timeout(Duration::from_secs(10), task).await {
                Ok(Ok(t)) => {
                    tally.missing += t.missing(sent);
                    tally.out_of_order += t.out_of_order();
                }
                _ => tally.missing += sent,
            }
        }
        tally.delivered = self.shared.delivered.load(Ordering::Relaxed);
        tally.failed = self.shared.failed.load(Ordering::Relaxed);
        tally.latency = self
            .shared
            .latency
            .lock()
            .map(|h| h.clone())
            .unwrap_or_default();
        tally
    }
}
