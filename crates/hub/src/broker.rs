//! The [`Broker`]: everything nodes must share — the log of each channel (offsets,
//! epochs, history), the live feed of new messages, and presence. [`crate::MemoryBroker`]
//! is the single-node default; a Redis broker implements the same trait.
//!
//! # Why boxed futures
//!
//! The hub holds its broker as `Arc<dyn Broker>` so the server picks one at run time
//! without making every type generic. `async fn` in traits is not object safe, so methods
//! return a [`BrokerFuture`]: either an already computed result (no allocation; what the
//! in-memory broker returns) or a boxed future (a network broker).
//!
//! # Contract
//!
//! * `publish` assigns the next offset of the channel's current epoch, stores the message
//!   in history (trimmed to the [`Retention`] given), and only then delivers it to the live
//!   feed; it resolves with the message's cursor once the broker has it.
//! * With an [`Idempotency`] key, `publish` first looks the key up among the keys given
//!   to the same channel within the window, in the same atomic step as the append: a key
//!   seen there stores and delivers nothing and resolves with the first publish's cursor
//!   ([`Published::duplicate`]); so two nodes given the same key at once store it once.
//! * The live feed: after `subscribe(channel)` has resolved, every message published to
//!   the channel is passed to every attached [`FeedSink`], **in offset order**, until the
//!   matching `unsubscribe`. `subscribe`/`unsubscribe` are counted (one `unsubscribe` per
//!   `subscribe`); the feed runs while the count is above zero. A broker that reconnects
//!   re-subscribes its channels itself; re-subscribing is idempotent. Messages lost across
//!   a reconnect are not a problem for correctness: once its channels are subscribed
//!   again the broker calls [`FeedSink::resync_all`], and every subscription reads what it
//!   missed from history (or gets a `reset` followed by what is still held); a gap the
//!   feed shows later is read from history the same way.
//! * `history` answers from the same log: a gap is only answered when it is complete up to
//!   the head (or `more` says it was cut by the limit); otherwise the answer is
//!   [`HistoryAnswer::Reset`], which carries everything still held (from the oldest, up to
//!   the limit) in the same atomic read. Never a partial answer presented as complete.
//! * `disconnect` reaches the other nodes: each closes the target's connections through
//!   [`FeedSink::disconnect`]; the node that asked closes its own itself.
//! * A channel's epoch is created on first use and changes only when its log is lost (e.g.
//!   the broker's storage was wiped). Offsets start at 1 in each epoch.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use switchboard_proto::Cursor;

use crate::error::BrokerError;
use crate::message::{Message, Payload};
use crate::presence::ClientInfo;

/// The future a broker method returns: ready at once, or boxed.
pub enum BrokerFuture<'a, T> {
    /// An already computed result (taken on first poll).
    Ready(Option<Result<T, BrokerError>>),
    /// A pending operation.
    Boxed(Pin<Box<dyn Future<Output = Result<T, BrokerError>> + Send + 'a>>),
}

impl<'a, T> BrokerFuture<'a, T> {
    /// A ready result.
    pub fn ready(result: Result<T, BrokerError>) -> Self {
        BrokerFuture::Ready(Some(result))
    }

    /// Boxes an async operation.
    pub fn boxed(fut: impl Future<Output = Result<T, BrokerError>> + Send + 'a) -> Self {
        BrokerFuture::Boxed(Box::pin(fut))
    }
}

impl<T: Unpin> Future for BrokerFuture<'_, T> {
    type Output = Result<T, BrokerError>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            BrokerFuture::Ready(r) => Poll::Ready(r.take().unwrap_or_else(|| {
                Err(BrokerError::Internal(
                    "future polled after completion".into(),
                ))
            })),
            BrokerFuture::Boxed(f) => f.as_mut().poll(cx),
        }
    }
}

impl<T> fmt::Debug for BrokerFuture<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BrokerFuture::Ready(_) => "BrokerFuture::Ready",
            BrokerFuture::Boxed(_) => "BrokerFuture::Boxed",
        })
    }
}

/// How much history a channel keeps (from its namespace's settings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// At most this many messages.
    pub max_len: usize,
    /// At most this many bytes, each message counting its payload and
    /// [`crate::message::STORED_MESSAGE_COST`]; the oldest go first.
    pub max_bytes: usize,
    /// None older than this.
    pub max_age: Option<Duration>,
}

/// An idempotency key given with a publish: a second publish with the same key to the
/// same channel within `window` stores nothing and answers the first one's cursor. The
/// key is opaque (compared byte for byte), at most [`MAX_IDEMPOTENCY_KEY_LEN`] bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Idempotency<'a> {
    /// The key.
    pub key: &'a str,
    /// How long the key is remembered after the publish that stored its message.
    pub window: Duration,
}

/// Longest idempotency key, in bytes.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;

/// What a publish resolves with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Published {
    /// The message's cursor (for a duplicate: the first publish's).
    pub cursor: Cursor,
    /// The key was seen within its window: nothing was stored or delivered.
    pub duplicate: bool,
}

/// A history read's answer.
#[derive(Clone, Debug)]
pub enum HistoryAnswer {
    /// The messages after the requested cursor, in order.
    Gap {
        /// The messages (for a read without `since`: the latest ones, oldest first).
        messages: Vec<Message>,
        /// The channel's current position (the last offset assigned).
        head: Cursor,
        /// `true` when `limit` cut the answer: more messages follow the last one returned.
        more: bool,
    },
    /// The requested cursor cannot be continued: its epoch is not the channel's current
    /// one, it is ahead of the head, or the messages after it are no longer retained.
    /// What is still held is in `messages`: a reader continues at `earliest` and loses
    /// nothing the broker still has.
    Reset {
        /// The channel's current position.
        head: Cursor,
        /// The oldest position still continuable, just before the oldest message held
        /// (`since = earliest` returns everything retained; `head` when nothing is).
        earliest: Cursor,
        /// The messages after `earliest`, oldest first (at most `limit`).
        messages: Vec<Message>,
        /// `true` when `limit` cut `messages`.
        more: bool,
    },
}

/// One channel as the broker knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelHead {
    /// The channel name.
    pub name: Arc<str>,
    /// Its current position.
    pub head: Cursor,
    /// Messages retained in history.
    pub retained: usize,
}

/// Where a broker delivers its live feed (the hub's local fan-out).
pub trait FeedSink: Send + Sync {
    /// Called for each message of a subscribed channel, in offset order per channel, and
    /// for `join`/`leave` events. Must not block: it only enqueues.
    fn deliver(&self, msg: &Message);

    /// Called when the live feed may have missed messages and is whole again from now on
    /// (a network broker's connection came back and its channels are subscribed again):
    /// every subscription reads what it missed from history at once, instead of waiting
    /// for the next message to reveal the gap. Must not block: it only wakes.
    fn resync_all(&self);

    /// Called when another node asks every node to close `target`'s connections (see
    /// [`Broker::disconnect`]). Must not block. The default ignores it.
    fn disconnect(&self, target: &Disconnect) {
        let _ = target;
    }
}

/// Whose connections a cluster-wide disconnect closes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Disconnect {
    /// The connection with this client id.
    Client(String),
    /// Every connection of this user.
    User(String),
}

/// The sinks attached to a broker, for broker implementations: [`Broker::attach`] adds
/// one, [`FeedSinks::deliver`] hands a message to every one still alive.
#[derive(Default)]
pub struct FeedSinks(std::sync::RwLock<Vec<Weak<dyn FeedSink>>>);

impl FeedSinks {
    /// Adds `sink`, forgetting dead ones.
    pub fn attach(&self, sink: Weak<dyn FeedSink>) {
        let mut sinks = self.0.write().unwrap_or_else(|e| e.into_inner());
        sinks.retain(|s| s.strong_count() > 0);
        sinks.push(sink);
    }

    /// Delivers `msg` to every live sink.
    pub fn deliver(&self, msg: &Message) {
        for sink in self.0.read().unwrap_or_else(|e| e.into_inner()).iter() {
            if let Some(sink) = sink.upgrade() {
                sink.deliver(msg);
            }
        }
    }

    /// Tells every live sink that the feed is whole again ([`FeedSink::resync_all`]).
    pub fn resync_all(&self) {
        for sink in self.0.read().unwrap_or_else(|e| e.into_inner()).iter() {
            if let Some(sink) = sink.upgrade() {
                sink.resync_all();
            }
        }
    }

    /// Hands another node's disconnect to every live sink ([`FeedSink::disconnect`]).
    pub fn disconnect(&self, target: &Disconnect) {
        for sink in self.0.read().unwrap_or_else(|e| e.into_inner()).iter() {
            if let Some(sink) = sink.upgrade() {
                sink.disconnect(target);
            }
        }
    }
}

impl fmt::Debug for FeedSinks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.read().map(|s| s.len()).unwrap_or(0);
        f.debug_struct("FeedSinks").field("attached", &n).finish()
    }
}

/// What must be shared between nodes. See the module docs for the contract.
pub trait Broker: Send + Sync + fmt::Debug + 'static {
    /// Registers a sink for the live feed. A broker may serve several sinks (several hubs,
    /// e.g. to simulate nodes in tests); dead sinks are skipped.
    fn attach(&self, sink: Weak<dyn FeedSink>);

    /// Appends a message to `channel`'s log and delivers it live; returns its cursor. With
    /// an idempotency key seen on the channel within its window, does neither and returns
    /// the first publish's cursor (see the module docs).
    fn publish(
        &self,
        channel: &str,
        payload: Payload,
        retention: Retention,
        idempotency: Option<Idempotency<'_>>,
    ) -> BrokerFuture<'_, Published>;

    /// Delivers a live-only event (`join`/`leave`): not stored, no offset.
    fn broadcast(&self, msg: Message) -> BrokerFuture<'_, ()>;

    /// Reads history after `since` (or the latest messages when `None`), at most `limit`.
    fn history(
        &self,
        channel: &str,
        since: Option<Cursor>,
        limit: Option<usize>,
        retention: Retention,
    ) -> BrokerFuture<'_, HistoryAnswer>;

    /// Registers interest in `channel`'s live feed (counted).
    fn subscribe(&self, channel: &str) -> BrokerFuture<'_, ()>;

    /// Releases one registration made with `subscribe`.
    fn unsubscribe(&self, channel: &str) -> BrokerFuture<'_, ()>;

    /// Adds a client to the channel's presence; `true` if it was not present.
    fn presence_add(&self, channel: &str, client: ClientInfo) -> BrokerFuture<'_, bool>;

    /// Removes a client from the channel's presence; returns its info if it was present.
    fn presence_remove(
        &self,
        channel: &str,
        client_id: &str,
    ) -> BrokerFuture<'_, Option<ClientInfo>>;

    /// The channel's presence list.
    fn presence(&self, channel: &str) -> BrokerFuture<'_, Vec<ClientInfo>>;

    /// The channels the broker holds a log for.
    fn channels(&self) -> BrokerFuture<'_, Vec<ChannelHead>>;

    /// Housekeeping, called periodically through [`crate::Hub::sweep`]: trim expired
    /// history and forget idle channels; returns how many channels were dropped. Brokers
    /// whose storage expires by itself (e.g. Redis key TTLs) keep the default, which does
    /// nothing.
    fn sweep(&self, retention_of: &(dyn Fn(&str) -> Retention + Sync)) -> BrokerFuture<'_, usize> {
        let _ = retention_of;
        BrokerFuture::ready(Ok(0))
    }

    /// Bytes this broker retains in this process, when it counts them (the in-memory
    /// broker: see [`crate::MemoryLimits::max_retained_bytes`]); `None` when what it keeps
    /// is elsewhere (Redis), the default.
    fn retained_bytes(&self) -> Option<usize> {
        None
    }

    /// Tells every other node to close `target`'s connections (each applies it through
    /// [`FeedSink::disconnect`]); resolves with how many other nodes it reached. The
    /// caller closes this node's own connections itself. The default, for a broker in
    /// this process (one node), reaches none.
    fn disconnect(&self, target: &Disconnect) -> BrokerFuture<'_, usize> {
        let _ = target;
        BrokerFuture::ready(Ok(0))
    }

    /// Whether the broker can serve now (a round trip for a remote one); the default, for
    /// a broker in this process, always can.
    fn health(&self) -> BrokerFuture<'_, ()> {
        BrokerFuture::ready(Ok(()))
    }
}
