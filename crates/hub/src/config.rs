//! Hub configuration: per-namespace settings.
//!
//! A channel's namespace is the part of its name before the first `:` (`chat:lobby` is in
//! `chat`); a name without `:` is in the default namespace, keyed `""`. Only configured
//! namespaces can be used ([`crate::HubError::UnknownNamespace`] otherwise).

use std::collections::HashMap;
use std::time::Duration;

use crate::memory::MemoryLimits;

/// What happens when a subscriber's queue is full and another event arrives.
/// See [`crate::subscription`] for the exact semantics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SlowConsumerPolicy {
    /// Close the subscription (`Closed { reason: SlowConsumer, resume_from }`); the client
    /// resumes from its cursor, served from history. Frees the queue at once. Default.
    #[default]
    Close,
    /// Drop the oldest queued event, then report `Lagged` and refill the gap from history.
    DropOldest,
}

/// Settings of one namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamespaceConfig {
    /// Messages kept per channel (0 = no history; resuming then only works from the head).
    pub history_size: usize,
    /// Bytes of history kept per channel, each message counting its payload and
    /// [`crate::message::STORED_MESSAGE_COST`]; the oldest go first.
    pub history_bytes: usize,
    /// Messages older than this are dropped from history (`None` = no age bound).
    pub history_ttl: Option<Duration>,
    /// Clients may publish ([`crate::Hub::publish_from_client`]). Backends always may.
    pub allow_publish: bool,
    /// Clients may subscribe.
    pub allow_subscribe: bool,
    /// Track who is subscribed.
    pub presence: bool,
    /// Deliver `join`/`leave` events to subscribers (needs `presence`).
    pub join_leave: bool,
    /// Largest payload accepted, in bytes.
    pub max_message_size: usize,
    /// What to do with a subscriber whose queue is full.
    pub slow_consumer: SlowConsumerPolicy,
    /// Events queued per subscriber before the slow-consumer policy applies (at least 1,
    /// at most `u32::MAX`).
    /// Each queued event costs one pointer; the message itself is shared.
    pub queue_capacity: usize,
    /// Wake a channel's subscribers at most once per this window (`None` or zero: at every
    /// message). The first message after a quiet window still goes at once; later ones wait
    /// up to the window for one write carrying them all (the `batch` module has the rules).
    pub batch_window: Option<Duration>,
}

impl Default for NamespaceConfig {
    fn default() -> Self {
        NamespaceConfig {
            history_size: 100,
            history_bytes: 16 << 20,
            history_ttl: Some(Duration::from_secs(300)),
            allow_publish: false,
            allow_subscribe: true,
            presence: false,
            join_leave: false,
            max_message_size: 64 * 1024,
            slow_consumer: SlowConsumerPolicy::Close,
            queue_capacity: 1024,
            batch_window: None,
        }
    }
}

/// The hub's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubConfig {
    /// Namespaces by name; `""` is the default namespace (names without `:`).
    pub namespaces: HashMap<String, NamespaceConfig>,
    /// Longest channel name in bytes.
    pub max_channel_len: usize,
    /// How long an idempotency key is remembered after the publish that stored its
    /// message ([`crate::PublishOptions::idempotency_key`]).
    pub idempotency_window: Duration,
    /// What the in-memory broker [`crate::Hub::new`] makes may hold (a hub given its
    /// broker, [`crate::Hub::with_broker`], takes the broker's own).
    pub memory: MemoryLimits,
    /// Most channels with subscribers on this node at once: a subscribe that would add
    /// one more fails with [`crate::HubError::TooManyChannels`]. Default 100,000.
    pub max_channels: usize,
}

impl Default for HubConfig {
    /// Only the default namespace, with [`NamespaceConfig::default`]; names up to 255
    /// bytes; idempotency keys remembered 5 minutes; [`MemoryLimits::default`].
    fn default() -> Self {
        let mut namespaces = HashMap::new();
        namespaces.insert(String::new(), NamespaceConfig::default());
        HubConfig {
            namespaces,
            max_channel_len: 255,
            idempotency_window: Duration::from_secs(300),
            memory: MemoryLimits::default(),
            max_channels: 100_000,
        }
    }
}

impl HubConfig {
    /// Adds or replaces a namespace (`""` for the default one).
    pub fn with_namespace(mut self, name: impl Into<String>, config: NamespaceConfig) -> Self {
        self.namespaces.insert(name.into(), config);
        self
    }
}
