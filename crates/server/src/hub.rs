//! The hub as the transports see it: publish to a channel, subscribe from a cursor
//! (history gap first, then live messages, with no duplicate and no hole), read a range
//! (polling), presence and statistics.
//!
//! Semantics every transport relies on:
//! * Offsets in a channel are 1, 2, 3, … inside one epoch (random per channel life).
//!   A message's cursor is `epoch:offset`.
//! * [`Hub::subscribe`] with `since = Some(c)`: if everything after `c` is still in the
//!   history, the subscriber first gets exactly those messages, then live ones. If not
//!   (retention passed, other epoch, a cursor from the future), it first gets
//!   [`Item::Reset`] carrying the cursor it continues from, then the history still held.
//!   With `since = None` it starts at the current end.
//! * A subscriber that falls more than the live buffer behind is not dropped: it re-reads
//!   from the history after its last delivered cursor (and gets a `Reset` if that is
//!   gone). So a slow consumer costs history reads, never silent loss.
//! * Every message is encoded once per wire format, lazily, and the `Bytes` are shared by
//!   all subscribers of that format ([`Message`]).
//!
//! This in-memory implementation is the default broker of one node.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use switchboard_proto::{Cursor, Data, Envelope, Epoch};
use switchboard_ws::PreparedMessage;
use tokio::sync::broadcast;

/// How a payload is carried to subscribers (see `switchboard_proto::Data`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadKind {
    /// Valid JSON, embedded as is.
    Json,
    /// UTF-8 text, sent as a JSON string.
    Text,
    /// Bytes, sent as base64.
    Binary,
}

/// One published message with its lazily built, shared wire encodings.
#[derive(Debug)]
pub struct Message {
    channel: Arc<str>,
    cursor: Cursor,
    kind: PayloadKind,
    payload: Bytes,
    json: OnceLock<Bytes>,
    ws: OnceLock<PreparedMessage>,
    sse_data: OnceLock<Bytes>,
    sse_envelope: OnceLock<Bytes>,
    stream_line: OnceLock<Bytes>,
}

impl Message {
    fn new(channel: Arc<str>, cursor: Cursor, kind: PayloadKind, payload: Bytes) -> Self {
        Self {
            channel,
            cursor,
            kind,
            payload,
            json: OnceLock::new(),
            ws: OnceLock::new(),
            sse_data: OnceLock::new(),
            sse_envelope: OnceLock::new(),
            stream_line: OnceLock::new(),
        }
    }

    /// The channel name.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// The message's cursor.
    pub fn cursor(&self) -> Cursor {
        self.cursor
    }

    /// The payload as published.
    pub fn payload(&self) -> (PayloadKind, &Bytes) {
        (self.kind, &self.payload)
    }

    /// The envelope view of this message.
    pub fn envelope(&self) -> Envelope<'_> {
        let data = match self.kind {
            PayloadKind::Json => Data::Json(&self.payload),
            // Checked to be UTF-8 when published.
            PayloadKind::Text => Data::Text(std::str::from_utf8(&self.payload).unwrap_or("")),
            PayloadKind::Binary => Data::Binary(&self.payload),
        };
        Envelope::message(&self.channel, self.cursor, data)
    }

    /// Envelope JSON (WebSocket text payload, poll element).
    pub fn json(&self) -> &Bytes {
        self.json
            .get_or_init(|| switchboard_proto::encode_ws_text(&self.envelope()))
    }

    /// The envelope as one WebSocket frame, framed once for every connection.
    pub fn ws_frame(&self) -> &PreparedMessage {
        self.ws
            .get_or_init(|| PreparedMessage::text(self.json().clone()))
    }

    /// Native SSE event (`data:` is the payload alone, `id:` the cursor).
    pub fn sse_data(&self) -> &Bytes {
        self.sse_data
            .get_or_init(|| switchboard_proto::encode_sse_data(&self.envelope()))
    }

    /// Multiplexed SSE event (`data:` is the envelope JSON).
    pub fn sse_envelope(&self) -> &Bytes {
        self.sse_envelope
            .get_or_init(|| switchboard_proto::encode_sse_envelope(&self.envelope()))
    }

    /// HTTP-streaming line.
    pub fn stream_line(&self) -> &Bytes {
        self.stream_line
            .get_or_init(|| switchboard_proto::encode_stream_line(&self.envelope()))
    }
}

/// What a subscriber receives.
#[derive(Debug, Clone)]
pub enum Item {
    /// The next message.
    Message(Arc<Message>),
    /// The requested position could not be continued; continue from this cursor.
    Reset { channel: Arc<str>, cursor: Cursor },
}

/// Hub failures, each mapped to one HTTP status in [`crate::error`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubError {
    /// The broker is gone (never for the in-memory one).
    Unavailable(String),
}

impl std::fmt::Display for HubError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unavailable(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for HubError {}

/// Retention and buffering.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Messages kept per channel for resumes and polls.
    pub history_len: usize,
    /// Live buffer per channel before a subscriber falls back to history.
    pub live_buffer: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            history_len: 1000,
            live_buffer: 1024,
        }
    }
}

/// The channels of this node. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: HubConfig,
    channels: Mutex<HashMap<Arc<str>, Arc<Channel>>>,
}

#[derive(Debug)]
struct Channel {
    name: Arc<str>,
    epoch: Epoch,
    log: Mutex<Log>,
    tx: broadcast::Sender<Arc<Message>>,
    presence: Mutex<BTreeMap<String, Option<String>>>,
}

#[derive(Debug)]
struct Log {
    /// Offset of the last message (0 = none yet).
    last: u64,
    history: VecDeque<Arc<Message>>,
    published: u64,
}

/// An answer to a range read.
#[derive(Debug)]
pub struct Range {
    /// A reset happened first (the requested cursor could not be continued).
    pub reset: bool,
    /// Messages after the (possibly reset) cursor, in order.
    pub messages: Vec<Arc<Message>>,
    /// Where the next read resumes.
    pub cursor: Cursor,
    /// The answer was cut by the limit.
    pub more: bool,
}

/// Statistics of one channel.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChannelStats {
    pub name: String,
    pub cursor: Cursor,
    pub subscribers: usize,
    pub presence: usize,
    pub published: u64,
    pub history: usize,
}

/// A live subscription to one channel.
#[derive(Debug)]
pub struct Subscriber {
    channel: Arc<Channel>,
    pending: VecDeque<Item>,
    rx: broadcast::Receiver<Arc<Message>>,
    /// Last cursor delivered (or the start position).
    last: Cursor,
}

impl Default for Hub {
    fn default() -> Self {
        Self::new(HubConfig::default())
    }
}

impl Hub {
    /// An empty hub.
    pub fn new(config: HubConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                channels: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn channel(&self, name: &str) -> Arc<Channel> {
        let mut map = lock(&self.inner.channels);
        if let Some(c) = map.get(name) {
            return c.clone();
        }
        let name: Arc<str> = Arc::from(name);
        let (tx, _) = broadcast::channel(self.inner.config.live_buffer.max(1));
        let ch = Arc::new(Channel {
            name: name.clone(),
            epoch: Epoch(rand::random::<u64>() | 1),
            log: Mutex::new(Log {
                last: 0,
                history: VecDeque::new(),
                published: 0,
            }),
            tx,
            presence: Mutex::new(BTreeMap::new()),
        });
        map.insert(name, ch.clone());
        ch
    }

    /// Appends a message; returns its cursor once it is in the log.
    pub fn publish(
        &self,
        channel: &str,
        kind: PayloadKind,
        payload: Bytes,
    ) -> Result<Cursor, HubError> {
        let ch = self.channel(channel);
        let mut log = lock(&ch.log);
        log.last += 1;
        log.published += 1;
        let cursor = Cursor::new(ch.epoch, log.last);
        let msg = Arc::new(Message::new(ch.name.clone(), cursor, kind, payload));
        log.history.push_back(msg.clone());
        while log.history.len() > self.inner.config.history_len {
            log.history.pop_front();
        }
        // Sent under the log lock, so live order is log order and a subscriber created
        // under the same lock sees each message either in its backlog or live, never both.
        let _ = ch.tx.send(msg);
        Ok(cursor)
    }

    /// Subscribes from `since` (see the module docs).
    pub fn subscribe(&self, channel: &str, since: Option<Cursor>) -> Result<Subscriber, HubError> {
        let ch = self.channel(channel);
        let log = lock(&ch.log);
        let mut pending = VecDeque::new();
        let last = match since {
            None => Cursor::new(ch.epoch, log.last),
            Some(c) => {
                let (reset, msgs, _) = backlog(&ch, &log, c, usize::MAX);
                if let Some(r) = reset {
                    pending.push_back(Item::Reset {
                        channel: ch.name.clone(),
                        cursor: r,
                    });
                }
                pending.extend(msgs.into_iter().map(Item::Message));
                // The position before any pending item; each delivered item moves it.
                reset.unwrap_or(c)
            }
        };
        let rx = ch.tx.subscribe();
        drop(log);
        Ok(Subscriber {
            channel: ch,
            pending,
            rx,
            last,
        })
    }

    /// Reads at most `limit` messages after `since` (`None`: nothing, just the current
    /// end cursor).
    pub fn read(
        &self,
        channel: &str,
        since: Option<Cursor>,
        limit: usize,
    ) -> Result<Range, HubError> {
        let ch = self.channel(channel);
        let log = lock(&ch.log);
        Ok(match since {
            None => Range {
                reset: false,
                messages: Vec::new(),
                cursor: Cursor::new(ch.epoch, log.last),
                more: false,
            },
            Some(c) => {
                let (reset, messages, cursor) = backlog(&ch, &log, c, limit);
                let more = cursor.offset < log.last;
                Range {
                    reset: reset.is_some(),
                    messages,
                    cursor,
                    more,
                }
            }
        })
    }

    /// Records `client` (with an optional user id) as present in `channel`.
    pub fn join(&self, channel: &str, client: &str, user: Option<&str>) {
        let ch = self.channel(channel);
        lock(&ch.presence).insert(client.to_owned(), user.map(str::to_owned));
    }

    /// Removes `client` from `channel`'s presence.
    pub fn leave(&self, channel: &str, client: &str) {
        let ch = self.channel(channel);
        lock(&ch.presence).remove(client);
    }

    /// The clients present in `channel`: `(client, user)`.
    pub fn presence(&self, channel: &str) -> Vec<(String, Option<String>)> {
        let ch = self.channel(channel);
        let p = lock(&ch.presence);
        p.iter().map(|(c, u)| (c.clone(), u.clone())).collect()
    }

    /// Statistics of every channel, by name.
    pub fn stats(&self) -> Vec<ChannelStats> {
        let channels: Vec<Arc<Channel>> = lock(&self.inner.channels).values().cloned().collect();
        let mut out: Vec<ChannelStats> = channels.iter().map(|c| stats_of(c)).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Statistics of one channel, `None` if it was never used.
    pub fn channel_stats(&self, name: &str) -> Option<ChannelStats> {
        let ch = lock(&self.inner.channels).get(name).cloned()?;
        Some(stats_of(&ch))
    }
}

fn stats_of(c: &Channel) -> ChannelStats {
    let log = lock(&c.log);
    ChannelStats {
        name: c.name.to_string(),
        cursor: Cursor::new(c.epoch, log.last),
        subscribers: c.tx.receiver_count(),
        presence: lock(&c.presence).len(),
        published: log.published,
        history: log.history.len(),
    }
}

/// Messages after `since` from the history: `(reset cursor if any, messages, last cursor)`.
fn backlog(
    ch: &Channel,
    log: &Log,
    since: Cursor,
    limit: usize,
) -> (Option<Cursor>, Vec<Arc<Message>>, Cursor) {
    let first_held = log
        .history
        .front()
        .map_or(log.last + 1, |m| m.cursor.offset);
    let continuable = since.epoch == ch.epoch
        && since.offset <= log.last
        && since.offset.saturating_add(1) >= first_held;
    let (reset, from) = if continuable {
        (None, since.offset)
    } else {
        // Continue from just before the oldest message still held.
        let from = first_held - 1;
        (Some(Cursor::new(ch.epoch, from)), from)
    };
    let skip = usize::try_from(from + 1 - first_held).unwrap_or(usize::MAX);
    let messages: Vec<Arc<Message>> = log.history.iter().skip(skip).take(limit).cloned().collect();
    let last = messages
        .last()
        .map_or(Cursor::new(ch.epoch, from), |m| m.cursor);
    (reset, messages, last)
}

impl Subscriber {
    /// The channel name.
    pub fn channel(&self) -> &str {
        &self.channel.name
    }

    /// The last cursor delivered (or where the subscription started).
    pub fn cursor(&self) -> Cursor {
        self.last
    }

    /// The next item, waiting for one.
    pub async fn recv(&mut self) -> Item {
        loop {
            if let Some(item) = self.pop_pending() {
                return item;
            }
            match self.rx.recv().await {
                Ok(msg) => {
                    if let Some(item) = self.accept(msg) {
                        return item;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => self.resync(),
                // The sender lives as long as the channel, which we hold.
                Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    }

    /// The next item if one is ready now.
    pub fn try_recv(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.pop_pending() {
                return Some(item);
            }
            match self.rx.try_recv() {
                Ok(msg) => {
                    if let Some(item) = self.accept(msg) {
                        return Some(item);
                    }
                }
                Err(broadcast::error::TryRecvError::Lagged(_)) => self.resync(),
                Err(_) => return None,
            }
        }
    }

    fn pop_pending(&mut self) -> Option<Item> {
        let item = self.pending.pop_front()?;
        match &item {
            Item::Message(m) => self.last = m.cursor,
            Item::Reset { cursor, .. } => self.last = *cursor,
        }
        Some(item)
    }

    fn accept(&mut self, msg: Arc<Message>) -> Option<Item> {
        // After a resync the live buffer may repeat what history already gave.
        if msg.cursor.epoch == self.last.epoch && msg.cursor.offset <= self.last.offset {
            return None;
        }
        self.last = msg.cursor;
        Some(Item::Message(msg))
    }

    /// Fell behind the live buffer: continue from history after the last delivered cursor.
    fn resync(&mut self) {
        let log = lock(&self.channel.log);
        let (reset, msgs, _) = backlog(&self.channel, &log, self.last, usize::MAX);
        if let Some(r) = reset {
            self.pending.push_back(Item::Reset {
                channel: self.channel.name.clone(),
                cursor: r,
            });
        }
        self.pending.extend(msgs.into_iter().map(Item::Message));
        self.rx = self.channel.tx.subscribe();
    }
}

/// Locks, ignoring poisoning: the data stays consistent because no code here panics
/// while holding a lock.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn offsets(items: &[Item]) -> Vec<u64> {
        items
            .iter()
            .map(|i| match i {
                Item::Message(m) => m.cursor.offset,
                Item::Reset { .. } => 0,
            })
            .collect()
    }

    fn drain(s: &mut Subscriber) -> Vec<Item> {
        std::iter::from_fn(|| s.try_recv()).collect()
    }

    #[test]
    fn resume_gives_exactly_the_gap() {
        let hub = Hub::default();
        let c1 = hub
            .publish("c", PayloadKind::Text, Bytes::from_static(b"1"))
            .unwrap();
        hub.publish("c", PayloadKind::Text, Bytes::from_static(b"2"))
            .unwrap();
        let mut s = hub.subscribe("c", Some(c1)).unwrap();
        hub.publish("c", PayloadKind::Text, Bytes::from_static(b"3"))
            .unwrap();
        assert_eq!(offsets(&drain(&mut s)), [2, 3]);
        let r = hub.read("c", Some(c1), 1).unwrap();
        assert!(r.more && !r.reset);
        assert_eq!(r.cursor.offset, 2);
    }

    #[test]
    fn lost_history_and_other_epochs_reset() {
        let hub = Hub::new(HubConfig {
            history_len: 2,
            live_buffer: 2,
        });
        for _ in 0..5 {
            hub.publish("c", PayloadKind::Json, Bytes::from_static(b"1"))
                .unwrap();
        }
        let epoch = hub.read("c", None, 0).unwrap().cursor.epoch;
        let mut s = hub.subscribe("c", Some(Cursor::new(epoch, 1))).unwrap();
        let items = drain(&mut s);
        assert!(matches!(items[0], Item::Reset { cursor, .. } if cursor.offset == 3));
        assert_eq!(offsets(&items[1..]), [4, 5]);
        let r = hub
            .read("c", Some(Cursor::new(Epoch(epoch.0 ^ 2), 4)), 10)
            .unwrap();
        assert!(r.reset);
        assert_eq!(r.messages.len(), 2);
    }

    #[test]
    fn slow_subscriber_resyncs_from_history() {
        let hub = Hub::new(HubConfig {
            history_len: 100,
            live_buffer: 2,
        });
        let mut s = hub.subscribe("c", None).unwrap();
        for _ in 0..10 {
            hub.publish("c", PayloadKind::Json, Bytes::from_static(b"1"))
                .unwrap();
        }
        assert_eq!(offsets(&drain(&mut s)), (1..=10).collect::<Vec<_>>());
    }
}
