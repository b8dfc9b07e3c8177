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
//! # Memory
//!
//! A channel keeps at most `history_size` messages and `history_bytes` bytes of them
//! (each message counting its payload and [`STORED_MESSAGE_COST`]), the oldest going
//! first. Across channels, everything the broker retains — stored messages with the
//! encodings cached with them, and the idempotency window — is counted in one
//! [`Ledger`](crate::budget::Ledger) against [`MemoryLimits::max_retained_bytes`]. When a
//! publish finds the count over it, the oldest messages of all channels go first, by
//! publish time, until the count is 1/16 of the budget below it (see `budget`): each
//! channel keeps its newest messages, a busy channel's old ones go before a quiet
//! channel's recent ones, and nothing is lost silently: a subscriber resuming from an
//! evicted cursor gets a `reset` and what is still held, as after any trim. A pass builds
//! a heap of the channels by their oldest message (O(channels)) and takes one message at
//! a time from the channel holding the oldest (O(log channels) each), locking one
//! channel at a time; it runs about once per 1/16 of the budget published.
//!
//! At most [`MemoryLimits::max_channels`] logs exist at once: a publish, subscribe or
//! presence that would make one more fails with [`BrokerError::TooManyChannels`].
//!
//! Epochs come from [`Epochs`] (see `epochs`): a channel nothing was published to has an
//! epoch anyone can compute again, so a read of a channel with no log creates none (a
//! poll under a mistyped name costs nothing), the sweep may forget an empty log at any
//! time, and the cursor handed out for an empty channel (`E:0`) stays valid for what is
//! published next. A log that was published to is kept (once idle) until its epoch's era
//! is over by a whole era, so its epoch is never made again.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};

use switchboard_proto::{Cursor, Epoch};
use tokio::time::Instant;

use crate::broker::{
    Broker, BrokerFuture, ChannelHead, FeedSink, FeedSinks, HistoryAnswer, Idempotency, Published,
    Retention,
};
use crate::budget::{Budget, Ledger};
use crate::epochs::Epochs;
use crate::error::BrokerError;
use crate::message::{Message, Payload, STORED_MESSAGE_COST};
use crate::presence::{ById, ClientInfo};
use crate::window::{Seen, Window};

struct Log {
    name: Arc<str>,
    epoch: Epoch,
    head: u64,
    history: VecDeque<(Instant, Message)>,
    /// What `history_bytes` counts of `history`: each message's payload and constant.
    bytes: usize,
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
            bytes: 0,
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
    fn push(&mut self, at: Instant, msg: Message) {
        self.bytes += counted(&msg);
        self.history.push_back((at, msg));
    }

    fn pop_front(&mut self) -> Option<Message> {
        let (_, msg) = self.history.pop_front()?;
        self.bytes -= counted(&msg);
        Some(msg)
    }

    fn trim(&mut self, retention: Retention, now: Instant) {
        while self.history.len() > retention.max_len || self.bytes > retention.max_bytes {
            self.pop_front();
        }
        if let Some(age) = retention.max_age {
            while self
                .history
                .front()
                .is_some_and(|(t, _)| now.saturating_duration_since(*t) > age)
            {
                self.pop_front();
            }
        }
    }

    /// When its oldest message was published.
    fn oldest(&self) -> Option<Instant> {
        self.history.front().map(|(t, _)| *t)
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

/// What `history_bytes` counts of a stored message.
fn counted(msg: &Message) -> usize {
    msg.payload().len() + STORED_MESSAGE_COST
}

/// What the in-memory broker may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryLimits {
    /// Bytes everything retained may take: stored messages (payload and
    /// [`STORED_MESSAGE_COST`]) with the encodings cached with them, and the idempotency
    /// window. Over it, the oldest history of all channels goes first (module docs).
    /// Default 256 MiB.
    pub max_retained_bytes: usize,
    /// Bytes the idempotency keys may take (each key costs at most
    /// [`crate::window::KEY_COST`] bytes, whatever its length); the oldest go first when
    /// it is reached. Counted in `max_retained_bytes` too. Default 32 MiB (131,072 keys).
    pub idempotency_bytes: usize,
    /// Most channel logs at once. Default 100,000.
    pub max_channels: usize,
}

impl Default for MemoryLimits {
    fn default() -> Self {
        MemoryLimits {
            max_retained_bytes: 256 << 20,
            idempotency_bytes: 32 << 20,
            max_channels: 100_000,
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
    /// What everything retained takes, and when to give some back.
    ledger: Arc<Ledger>,
    budget: Budget,
    max_channels: usize,
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
            ledger: Arc::default(),
            budget: Budget::new(limits.max_retained_bytes),
            max_channels: limits.max_channels,
        }
    }

    /// How many idempotency keys are remembered, and the bytes they take.
    pub fn idempotency_window(&self) -> (usize, usize) {
        let w = lock(&self.window);
        (w.len(), w.bytes())
    }

    /// Bytes retained now: what [`MemoryLimits::max_retained_bytes`] bounds.
    pub fn retained_bytes(&self) -> usize {
        self.ledger.bytes()
    }

    /// The log of `channel`, made if there is none (unless that would be one more than
    /// `max_channels`).
    fn log(&self, channel: &str) -> Result<Arc<Mutex<Log>>, BrokerError> {
        if let Some(l) = self
            .logs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(channel)
        {
            return Ok(l.clone());
        }
        let era = self.epochs.era(Instant::now());
        let mut logs = self.logs.write().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = logs.get(channel) {
            return Ok(l.clone());
        }
        if logs.len() >= self.max_channels {
            return Err(BrokerError::TooManyChannels {
                limit: self.max_channels,
            });
        }
        let name: Arc<str> = Arc::from(channel);
        let log = Arc::new(Mutex::new(Log::new(name.clone(), &self.epochs, era)));
        logs.insert(name, log.clone());
        Ok(log)
    }

    /// Evicts the oldest history of all channels when the ledger is over the budget (see
    /// the module docs). Called with no log locked.
    fn evict_if_over(&self) {
        let Some(pass) = self.budget.pass(self.ledger.bytes()) else {
            return;
        };
        let logs: Vec<Arc<Mutex<Log>>> = self
            .logs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        let mut oldest: BinaryHeap<Reverse<(Instant, usize)>> = logs
            .iter()
            .enumerate()
            .filter_map(|(i, log)| Some(Reverse((lock(log).oldest()?, i))))
            .collect();
        let (mut freed, mut evicted) = (0, 0u64);
        while freed < pass.free {
            let Some(Reverse((_, i))) = oldest.pop() else {
                break;
            };
            let next = oldest.peek().map(|Reverse((t, _))| *t);
            let mut log = lock(&logs[i]);
            // This channel's messages go while they are the oldest of all.
            while freed < pass.free && log.oldest().is_some_and(|t| next.is_none_or(|n| t <= n)) {
                if let Some(m) = log.pop_front() {
                    freed += m.retained_bytes();
                    evicted += 1;
                }
            }
            if let Some(t) = log.oldest() {
                oldest.push(Reverse((t, i)));
            }
        }
        let retained = self.ledger.bytes();
        tracing::debug!(
            evicted,
            freed,
            retained,
            "memory budget reached: the oldest history went"
        );
        self.budget.done(retained);
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

    /// A publish under the channel's lock: the key's check, the append, the trim and the
    /// live delivery, in one step.
    fn append(
        &self,
        channel: &str,
        payload: Payload,
        retention: Retention,
        idempotency: Option<Idempotency<'_>>,
    ) -> Result<Published, BrokerError> {
        let log = self.log(channel)?;
        let mut log = lock(&log);
        let new_key = match idempotency {
            None => None,
            Some(i) => {
                let mut window = lock(&self.window);
                let seen = window.seen(channel, i.key, i.window);
                window.settle(&self.ledger);
                match seen {
                    Seen::Before(cursor) => {
                        return Ok(Published {
                            cursor,
                            duplicate: true,
                        })
                    }
                    Seen::New(digest) => Some(digest),
                }
            }
        };
        log.refresh(&self.epochs, self.epochs.era(Instant::now()));
        log.head += 1;
        let cursor = log.head();
        let msg = Message::stored(log.name.clone(), cursor, payload, self.ledger.clone());
        if retention.max_len > 0 {
            log.push(Instant::now(), msg.clone());
        }
        log.trim(retention, Instant::now());
        if let Some(digest) = new_key {
            let mut window = lock(&self.window);
            window.remember(digest, cursor);
            window.settle(&self.ledger);
        }
        // Still under the log lock: live delivery in offset order.
        self.sinks.deliver(&msg);
        Ok(Published {
            cursor,
            duplicate: false,
        })
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
        let published = self.append(channel, payload, retention, idempotency);
        if matches!(
            published,
            Ok(Published {
                duplicate: false,
                ..
            })
        ) {
            self.evict_if_over();
        }
        BrokerFuture::ready(published)
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
        BrokerFuture::ready(self.log(channel).map(|log| lock(&log).interest += 1))
    }

    fn unsubscribe(&self, channel: &str) -> BrokerFuture<'_, ()> {
        if let Some(log) = self.existing(channel) {
            let mut log = lock(&log);
            log.interest = log.interest.saturating_sub(1);
        }
        BrokerFuture::ready(Ok(()))
    }

    fn presence_add(&self, channel: &str, client: ClientInfo) -> BrokerFuture<'_, bool> {
        let added = self
            .log(channel)
            .map(|log| lock(&log).presence.replace(ById(client)).is_none());
        BrokerFuture::ready(added)
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

    fn retained_bytes(&self) -> Option<usize> {
        Some(self.ledger.bytes())
    }
}
