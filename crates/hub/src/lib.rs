//! Channels, cursors, history, presence and fan-out. Knows nothing of HTTP or wire formats
//! beyond the bytes it is handed: it caches each message's encodings, keyed by types the
//! layers above define ([`Encoding`]), without knowing what they are.
//!
//! # Data flow
//!
//! ```text
//! Hub::publish(channel, payload)
//!   └─ Broker::publish ── assigns epoch:offset, appends to history, then live feed ──┐
//!                                                                                  │ in offset order
//!   FeedSink (this node's fan-out) ◄──────────────────────────────────────────────┘
//!     └─ for each local subscriber: push a pointer to the one shared Message
//!        into its bounded queue (slow-consumer policy when full), wake it; on a
//!        current-thread runtime the wakes are paced (`pacing`), and a subscriber that
//!        offered its socket has its frames written by the pacer instead ([`direct`]):
//!        the pacer of the event loop it waits on ([`EventLoop`]), when there are several
//! Subscription::recv / poll_recv ── history gap first, then live, deduplicated by offset
//!   └─ Message::encoded::<E>() ── made once per encoding, shared by all subscribers
//! ```
//!
//! # Using it from a transport
//!
//! * Streaming transports (WebSocket, SSE, HTTP streaming): `subscribe(ch, since, client)`,
//!   then write `msg.encoded::<E>()` for each `recv()`; `Err(Lagged)` needs no action;
//!   on `Err(Closed { resume_from, .. })` end the stream (the client resumes from its
//!   cursor). A transport that can write a frame without its task may offer the socket
//!   while it waits ([`Subscription::poll_recv_direct`], [`Hub::set_direct_write`]). A `reset` message is written like any other (its cursor is the new position,
//!   just before the messages still held, which follow it).
//! * Long-poll: `subscribe_with(ch, Some(cursor), client, SubscribeOptions::without_presence())`,
//!   wait for one `recv()` (or the poll timeout), drain with `try_recv()`, answer with a
//!   `switchboard_proto::PollBody` of `msg.encoded::<EnvelopeJson>()` and
//!   `sub.position()` as the next cursor (`reset: true` if a `reset` message was among them).
//! * Poll: `history(ch, Some(cursor), limit)`: `Gap { messages, head, more }` → the messages,
//!   the last one's cursor (or `head` if none), `more`; `Reset { earliest, messages, more,
//!   .. }` → `reset: true` and the messages still held, the last one's cursor (or
//!   `earliest` if none), `more`; `cursor.distance_to(earliest)` is how many were lost
//!   (within an epoch).
//!
//! # Public API
//!
//! * [`Hub`] (clone = `Arc`): `new(HubConfig)`, `with_broker(HubConfig, Arc<dyn Broker>)`,
//!   `namespace(ch)`, `publish(ch, Payload)`, `publish_from_client(ch, Payload)` → `Cursor`;
//!   `subscribe(ch, since: Option<Cursor>, ClientInfo)` → [`Subscription`]
//!   (`subscribe_with(…, SubscribeOptions)` to leave presence out, e.g. for long-polls);
//!   `history(ch, since, limit)` → [`HistoryAnswer`] (`Gap { messages, head, more }` or
//!   `Reset { head, earliest, messages, more }`); `presence(ch)`, `presence_stats(ch)`,
//!   `subscriber_count(ch)`, `channels()` → [`ChannelStats`]; `disconnect(client_id)`,
//!   `disconnect_user(user_id)` (this node), `disconnect_elsewhere(&Disconnect)` (the
//!   other nodes, through the broker), `on_remote_disconnect(hook)`, `shutdown()`,
//!   `sweep()` (periodic housekeeping).
//! * [`Subscription`]: `recv().await`, `poll_recv(cx)`, `try_recv()` →
//!   `Message` or [`RecvError`] (`Lagged { missed }`, `Closed { reason, resume_from }`);
//!   `position()`, `start()`, `channel()`, `client()`, `unsubscribe().await`.
//!   Semantics (including slow consumers) in [`subscription`].
//! * [`Message`] (clone = `Arc`): `channel()`, `event()`, `cursor()`, `payload()`, `data()`,
//!   `envelope()`, `encoded::<E>()` (the cached `&E::Output` of an [`Encoding`]: the
//!   byte formats of `switchboard_proto::encoding`, or a caller's own type such as a
//!   prepared WebSocket frame; see [`message`]).
//!   [`Payload`]: `json(Bytes)?`, `json_prevalidated(Bytes)`, `text(Bytes)?`, `binary(Bytes)`.
//! * Configuration: [`HubConfig`] `{ namespaces: HashMap<String, NamespaceConfig>,
//!   max_channel_len }`, [`NamespaceConfig`], [`SlowConsumerPolicy`] `Close | DropOldest`.
//!   Channel names: [`parse_channel`].
//! * Presence: [`ClientInfo`] (`new(id)`, `with_user`, `with_conn_info`; `client_id()`,
//!   `user_id()`, `conn_info()`), [`PresenceStats`].
//! * Errors: [`HubError`] (one per operation failure, each with one HTTP status),
//!   [`ChannelNameError`], [`BrokerError`], [`CloseReason`].
//! * Brokers: trait [`Broker`] with [`BrokerFuture`], [`FeedSink`] (`deliver`,
//!   `resync_all` when a feed comes back, `disconnect` from another node), [`FeedSinks`],
//!   [`Disconnect`], [`Retention`],
//!   [`ChannelHead`]; [`MemoryBroker`] (default).

mod batch;
pub mod broker;
pub mod budget;
pub mod channel;
pub mod config;
pub mod direct;
mod encodings;
mod epochs;
pub mod error;
mod event_loop;
mod fanout;
mod hub;
mod inbox;
pub mod memory;
pub mod message;
mod pacing;
pub mod presence;
mod queue;
mod registry;
pub mod stats;
pub mod subscription;
#[cfg(test)]
mod test_loops;
pub mod window;

pub use broker::{
    Broker, BrokerFuture, ChannelHead, Disconnect, FeedSink, FeedSinks, HistoryAnswer, Idempotency,
    Published, Retention, MAX_IDEMPOTENCY_KEY_LEN,
};
pub use channel::parse_channel;
pub use config::{HubConfig, NamespaceConfig, SlowConsumerPolicy};
pub use direct::{DirectEnd, DirectSink, DirectWrite, Written};
pub use error::{BrokerError, ChannelNameError, CloseReason, HubError, RecvError};
pub use hub::{check_idempotency_key, ChannelStats, Hub, PublishOptions, SubscribeOptions};
pub use memory::{MemoryBroker, MemoryLimits};
pub use message::{Encoding, Message, Payload, PayloadKind, STORED_MESSAGE_COST};
pub use pacing::EventLoop;
pub use presence::{ClientInfo, PresenceStats};
pub use stats::{BrokerOp, HubStats};
pub use subscription::Subscription;
pub use switchboard_proto::{Cursor, Epoch, Event};
