//! [`MemoryBroker`]: the single-process broker, the default.
//!
//! Each channel is a log behind its own mutex: its epoch, the last offset, and a ring
//! buffer (`VecDeque`) of retained messages with their publish times. Publishing takes the lock, assigns the next offset, appends and trims history,
//! and delivers to the attached sinks *while still holding the lock*, which is what makes
//! live delivery follow offset order. Every method completes synchronously and returns a
//! ready [`BrokerFuture`] (no allocation, no task).
//!
//! Age bounds use `tokio::time::Instant`, so tests can pause and advance time. Expired
//! messages are trimmed when the channel is next published to or read.
//!
//! Epochs come from [`Epochs`] (see `epochs`): a channel nothing was published to has an
//! epoch anyone can compute again, so a read of a channel with no log creates none (a
//! poll under a mistyped name costs nothing), the sweep may forget an empty log at any
//! time, and the cursor handed out for an empty channel (`E:0`) stays valid for what is
//! published next. A log that was published to is kept (once idle) until its epoch's era
//! is over by a whole era, so its epoch is never made again.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};

use switchboard_proto::{Cursor, Epoch};
use tokio::time::Instant;

use crate::broker::{
    Broker, BrokerFuture, ChannelHead, FeedSink, FeedSinks, HistoryAnswer, Idempotency, Published,
    Retention,
};
use crate::epochs::Epochs;
use crate::message::{Message, Payload};
use crate::presence::{ById, ClientInfo};
use crate::window::{Seen, Window};

struct Log {
    name: Arc<str>,
    epoch: Epoch,
    head: u64,
    history: VecDeque<(Instant, Message)>,
    /// Keyed by client id.
    presence: HashSet<ById>,
    /// Live-feed registrations (`subscribe` minus `unsubscribe`).
    interest: usize,
    /// The era `epoch` belongs to.
    era: u64,
    /// The epoch an empty log had before it took its era's (its offset 0 is still
    /// answered under that name).
    before: Option<Epoch>,
}

impl Log {
    fn new(name: Arc<str>, epochs: &Epochs, era: u64) -> Self {
        Log {
            epoch: epochs.epoch(&name, era),
            name,
            head: 0,
            history: VecDeque::new(),
            presence: HashSet::new(),
            interest: 0,
            era,
            before: None,
        }
    }

    /// Someone follows it (a live subscription or presence), so a cursor of its epoch is
    /// held: an empty log keeps its epoch while followed.
    fn followed(&self) -> bool {
        self.interest > 0 || !self.presence.is_empty()
    }

    /// An empty log not used since an earlier era takes `era`'s epoch (see `epochs`).
    fn refresh(&mut self, epochs: &Epochs, era: u64) {
        if self.head == 0 && self.era < era && !self.followed() {
            self.before = Some(self.epoch);
            self.epoch = epochs.epoch(&self.name, era);
            self.era = era;
        }
    }

    /// `since` in this log's epoch: offset 0 under another name of it (the epoch it had
    /// before [`Log::refresh`], or its name in the era before its own) is its offset 0.
    fn continued(&self, since: Cursor, epochs: &Epochs) -> Cursor {
        let same_start = since.offset == 0
            && (self.before == Some(since.epoch)
                || epochs.is_previous(since.epoch, &self.name, self.era));
        if same_start {
            Cursor::new(self.epoch, 0)
        } else {
            since
        }
    }
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

/// What the in-memory broker may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryLimits {
    /// Bytes the idempotency keys may take (each key costs at most
    /// [`crate::window::KEY_COST`] bytes, whatever its length); the oldest go first when
    /// it is reached. Default 32 MiB (131,072 keys).
    pub idempotency_bytes: usize,
}

impl Default for MemoryLimits {
    fn default() -> Self {
        MemoryLimits {
            idempotency_bytes: 32 << 20,
        }
    }
}

/// The in-memory broker. Cheap to share (`Arc`); several hubs may attach to one instance
/// to behave like nodes sharing a broker.
pub struct MemoryBroker {
    logs: RwLock<HashMap<Arc<str>, Arc<Mutex<Log>>>>,
    sinks: FeedSinks,
    epochs: Epochs,
    /// Idempotency keys; locked under a log's lock (never the other way round), so a key's
    /// check and its message's append are one step.
    window: Mutex<Window>,
}

impl Default for MemoryBroker {
    fn default() -> Self {
        Self::with_limits(MemoryLimits::default())
    }
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

impl MemoryBroker {
    /// An empty broker with the default limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty broker holding at most what `limits` allow.
    pub fn with_limits(limits: MemoryLimits) -> Self {
        MemoryBroker {
            logs: RwLock::default(),
            sinks: FeedSinks::default(),
            epochs: Epochs::default(),
            window: Mutex::new(Window::new(limits.idempotency_bytes)),
        }
    }

    /// How many idempotency keys are remembered, and the bytes they take.
    pub fn idempotency_window(&self) -> (usize, usize) {
        let w = lock(&self.window);
        (w.len(), w.bytes())
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
        let era = self.epochs.era(Instant::now());
        let mut logs = self.logs.write().unwrap_or_else(|e| e.into_inner());
        logs.entry(Arc::from(channel))
            .or_insert_with_key(|name| {
                Arc::new(Mutex::new(Log::new(name.clone(), &self.epochs, era)))
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
    /// starts a new epoch (as does every channel's next new log). For tests of epoch
    /// changes.
    pub fn forget(&self, channel: &str) {
        self.logs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(channel);
        self.epochs.wipe();
    }

    /// Answers a history read from `log` (trimmed already).
    fn read(&self, log: &Log, since: Option<Cursor>, limit: Option<usize>) -> HistoryAnswer {
        let head = log.head();
        let limit = limit.unwrap_or(usize::MAX);
        match since.map(|c| log.continued(c, &self.epochs)) {
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
        }
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
        idempotency: Option<Idempotency<'_>>,
    ) -> BrokerFuture<'_, Published> {
        let log = self.log(channel);
        let mut log = lock(&log);
        // Under the log lock: a key's check and its message's append are one step.
        let new_key = match idempotency {
            None => None,
            Some(i) => match lock(&self.window).seen(channel, i.key, i.window) {
                Seen::Before(cursor) => {
                    return BrokerFuture::ready(Ok(Published {
                        cursor,
                        duplicate: true,
                    }))
                }
                Seen::New(digest) => Some(digest),
            },
        };
        log.refresh(&self.epochs, self.epochs.era(Instant::now()));
        log.head += 1;
        let cursor = log.head();
        let msg = Message::published(log.name.clone(), cursor, payload);
        if retention.max_len > 0 {
            log.history.push_back((Instant::now(), msg.clone()));
        }
        log.trim(retention, Instant::now());
        if let Some(digest) = new_key {
            lock(&self.window).remember(digest, cursor);
        }
        // Still under the log lock: live delivery in offset order.
        self.sinks.deliver(&msg);
        BrokerFuture::ready(Ok(Published {
            cursor,
            duplicate: false,
        }))
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
        let now = Instant::now();
        let era = self.epochs.era(now);
        let answer = match self.existing(channel) {
            Some(log) => {
                let mut log = lock(&log);
                log.refresh(&self.epochs, era);
                log.trim(retention, now);
                self.read(&log, since, limit)
            }
            // A channel with no log is an empty one of this era; reading it keeps nothing.
            None => self.read(
                &Log::new(Arc::from(channel), &self.epochs, era),
                since,
                limit,
            ),
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
        let era = self.epochs.era(Instant::now());
        let logs = self.logs.read().unwrap_or_else(|e| e.into_inner());
        let list = logs
            .values()
            .map(|log| {
                let mut log = lock(log);
                log.refresh(&self.epochs, era);
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
    /// accumulate: an empty one at once (it is made again, the same, when next used), one
    /// that was published to once its epoch's era is over by a whole era (so its epoch is
    /// never made again: a later use starts a new one, and an old cursor then gets
    /// `reset`, which is right, nothing of that epoch is retained).
    fn sweep(&self, retention_of: &(dyn Fn(&str) -> Retention + Sync)) -> BrokerFuture<'_, usize> {
        let now = Instant::now();
        let era = self.epochs.era(now);
        let mut logs = self.logs.write().unwrap_or_else(|e| e.into_inner());
        let before = logs.len();
        logs.retain(|name, log| {
            let mut log = lock(log);
            log.trim(retention_of(name), now);
            log.followed() || !log.history.is_empty() || (log.head > 0 && era < log.era + 2)
        });
        BrokerFuture::ready(Ok(before - logs.len()))
    }
}
