//! [`MemoryBroker`]: the single-process broker, the default.
//!
//! Each channel is a log behind its own mutex: a random epoch (created on first use),
//! the last offset, and a ring buffer (`VecDeque`) of retained messages with their publish
//! times. Publishing takes the lock, assigns the next offset, appends and trims history,
//! and delivers to the attached sinks *while still holding the lock*, which is what makes
//! live delivery follow offset order. Every method completes synchronously and returns a
//! ready [`BrokerFuture`] (no allocation, no task).
//!
//! Age bounds use `tokio::time::Instant`, so tests can pause and advance time. Expired
//! messages are trimmed when the channel is next published to or read.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};

use switchboard_proto::{Cursor, Epoch};
use tokio::time::Instant;

use crate::broker::{
    Broker, BrokerFuture, ChannelHead, FeedSink, FeedSinks, HistoryAnswer, Retention,
};
use crate::message::{Message, Payload};
use crate::presence::{ById, ClientInfo};

struct Log {
    name: Arc<str>,
    epoch: Epoch,
    head: u64,
    history: VecDeque<(Instant, Message)>,
    /// Keyed by client id.
    presence: HashSet<ById>,
    /// Live-feed registrations (`subscribe` minus `unsubscribe`).
    interest: usize,
}

impl Log {
    fn trim(&mut self, retention: Retention, now: Instant) {
        while self.history.len() > retention.max_len {
            self.history.pop_front();
        }
        if let Some(age) = retention.max_age {
            while self
                .history
                .front()
                .is_some_and(|(t, _)| now.saturating_duration_since(*t) > age)
            {
                self.history.pop_front();
            }
        }
    }

    fn head(&self) -> Cursor {
        Cursor::new(self.epoch, self.head)
    }

    /// The last offset before the oldest retained message.
    fn earliest(&self) -> Cursor {
        let first = self
            .history
            .front()
            .and_then(|(_, m)| m.cursor())
            .map_or(self.head + 1, |c| c.offset);
        Cursor::new(self.epoch, first - 1)
    }
}

/// The in-memory broker. Cheap to share (`Arc`); several hubs may attach to one instance
/// to behave like nodes sharing a broker.
#[derive(Default)]
pub struct MemoryBroker {
    logs: RwLock<HashMap<Arc<str>, Arc<Mutex<Log>>>>,
    sinks: FeedSinks,
}

impl std::fmt::Debug for MemoryBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let channels = self.logs.read().map(|l| l.len()).unwrap_or(0);
        f.debug_struct("MemoryBroker")
            .field("channels", &channels)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a log lock leaves consistent data (every update is a single
    // push/pop); keep serving rather than poisoning the whole channel.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn new_epoch() -> Epoch {
    Epoch(rand::random::<u64>().max(1))
}

impl MemoryBroker {
    /// An empty broker.
    pub fn new() -> Self {
        Self::default()
    }

    fn log(&self, channel: &str) -> Arc<Mutex<Log>> {
        if let Some(l) = self
            .logs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(channel)
        {
            return l.clone();
        }
        let mut logs = self.logs.write().unwrap_or_else(|e| e.into_inner());
        logs.entry(Arc::from(channel))
            .or_insert_with_key(|name| {
                Arc::new(Mutex::new(Log {
                    name: name.clone(),
                    epoch: new_epoch(),
                    head: 0,
                    history: VecDeque::new(),
                    presence: HashSet::new(),
                    interest: 0,
                }))
            })
            .clone()
    }

    fn existing(&self, channel: &str) -> Option<Arc<Mutex<Log>>> {
        self.logs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(channel)
            .cloned()
    }

    /// Forgets a channel's log as if the broker's storage had been wiped: the next use
    /// starts a new epoch. For tests of epoch changes.
    pub fn forget(&self, channel: &str) {
        self.logs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(channel);
    }
}

impl Broker for MemoryBroker {
    fn attach(&self, sink: Weak<dyn FeedSink>) {
        self.sinks.attach(sink);
    }

    fn publish(
        &self,
        channel: &str,
        payload: Payload,
        retention: Retention,
    ) -> BrokerFuture<'_, Cursor> {
        let log = self.log(channel);
        let mut log = lock(&log);
        log.head += 1;
        let cursor = log.head();
        let msg = Message::published(log.name.clone(), cursor, payload);
        if retention.max_len > 0 {
            log.history.push_back((Instant::now(), msg.clone()));
        }
        log.trim(retention, Instant::now());
        // Still under the log lock: live delivery in offset order.
        self.sinks.deliver(&msg);
        BrokerFuture::ready(Ok(cursor))
    }

    fn broadcast(&self, msg: Message) -> BrokerFuture<'_, ()> {
        self.sinks.deliver(&msg);
        BrokerFuture::ready(Ok(()))
    }

    fn history(
        &self,
        channel: &str,
        since: Option<Cursor>,
        limit: Option<usize>,
        retention: Retention,
    ) -> BrokerFuture<'_, HistoryAnswer> {
        let log = self.log(channel);
        let mut log = lock(&log);
        log.trim(retention, Instant::now());
        let head = log.head();
        let limit = limit.unwrap_or(usize::MAX);
        let answer = match since {
            None => {
                let skip = log.history.len().saturating_sub(limit);
                HistoryAnswer::Gap {
                    messages: log
                        .history
                        .iter()
                        .skip(skip)
                        .map(|(_, m)| m.clone())
                        .collect(),
                    head,
                    more: false,
                }
            }
            Some(c) => {
                let earliest = log.earliest();
                let continuable =
                    c.epoch == log.epoch && c.offset <= head.offset && c.offset >= earliest.offset;
                // Retained offsets are contiguous, so the answer starts at a known index: the
                // cursor's successor, or (a reset) the oldest held.
                let start = if continuable {
                    usize::try_from(c.offset - earliest.offset).unwrap_or(usize::MAX)
                } else {
                    0
                };
                let available = log.history.len().saturating_sub(start);
                let take = available.min(limit);
                let messages = log
                    .history
                    .iter()
                    .skip(start)
                    .take(take)
                    .map(|(_, m)| m.clone())
                    .collect();
                let more = take < available;
                if continuable {
                    HistoryAnswer::Gap {
                        messages,
                        head,
                        more,
                    }
                } else {
                    HistoryAnswer::Reset {
                        head,
                        earliest,
                        messages,
                        more,
                    }
                }
            }
        };
        BrokerFuture::ready(Ok(answer))
    }

    fn subscribe(&self, channel: &str) -> BrokerFuture<'_, ()> {
        // Every publish reaches every sink (the hub filters by its local subscribers); the
        // count only keeps `sweep` from dropping a log someone is following.
        lock(&self.log(channel)).interest += 1;
        BrokerFuture::ready(Ok(()))
    }

    fn unsubscribe(&self, channel: &str) -> BrokerFuture<'_, ()> {
        if let Some(log) = self.existing(channel) {
            let mut log = lock(&log);
            log.interest = log.interest.saturating_sub(1);
        }
        BrokerFuture::ready(Ok(()))
    }

    fn presence_add(&self, channel: &str, client: ClientInfo) -> BrokerFuture<'_, bool> {
        let log = self.log(channel);
        let mut log = lock(&log);
        let added = log.presence.replace(ById(client)).is_none();
        BrokerFuture::ready(Ok(added))
    }

    fn presence_remove(
        &self,
        channel: &str,
        client_id: &str,
    ) -> BrokerFuture<'_, Option<ClientInfo>> {
        let removed = self
            .existing(channel)
            .and_then(|log| lock(&log).presence.take(client_id))
            .map(|entry| entry.0);
        BrokerFuture::ready(Ok(removed))
    }

    fn presence(&self, channel: &str) -> BrokerFuture<'_, Vec<ClientInfo>> {
        let list = self
            .existing(channel)
            .map(|log| lock(&log).presence.iter().map(|e| e.0.clone()).collect())
            .unwrap_or_default();
        BrokerFuture::ready(Ok(list))
    }

    fn channels(&self) -> BrokerFuture<'_, Vec<ChannelHead>> {
        let logs = self.logs.read().unwrap_or_else(|e| e.into_inner());
        let list = logs
            .values()
            .map(|log| {
                let log = lock(log);
                ChannelHead {
                    name: log.name.clone(),
                    head: log.head(),
                    retained: log.history.len(),
                }
            })
            .collect();
        BrokerFuture::ready(Ok(list))
    }

    /// Trims expired history everywhere and drops the logs of channels with no retained
    /// message, no presence and no live-feed registration, so idle channels do not
    /// accumulate. A later use starts a new epoch (an old cursor then gets `reset`, which
    /// is right: nothing of that epoch is retained).
    fn sweep(&self, retention_of: &(dyn Fn(&str) -> Retention + Sync)) -> BrokerFuture<'_, usize> {
        let now = Instant::now();
        let mut logs = self.logs.write().unwrap_or_else(|e| e.into_inner());
        let before = logs.len();
        logs.retain(|name, log| {
            let mut log = lock(log);
            log.trim(retention_of(name), now);
            log.interest > 0 || !log.history.is_empty() || !log.presence.is_empty()
        });
        BrokerFuture::ready(Ok(before - logs.len()))
    }
}
