//! [`Hub`]: the entry point. Validates channel names against the namespace settings,
//! forwards publishes and history reads to the broker, registers subscriptions with the
//! local fan-out, tracks presence, and closes subscriptions on request. Its state is the
//! registry (`registry.rs`), which its subscriptions share.

use std::sync::Arc;

use switchboard_proto::{Cursor, Event};

use crate::broker::{
    Broker, Disconnect, HistoryAnswer, Idempotency, Published, MAX_IDEMPOTENCY_KEY_LEN,
};
use crate::channel::parse_channel;
use crate::config::{HubConfig, NamespaceConfig};
use crate::error::{CloseReason, HubError};
use crate::inbox::Inbox;
use crate::memory::MemoryBroker;
use crate::message::{Message, Payload};
use crate::presence::{ClientInfo, PresenceStats};
use crate::registry::{retention, Registry};
use crate::stats::{BrokerOp, HubStats};
use crate::subscription::Subscription;

/// The hub. Cheap to clone (an `Arc`); all clones share the same state.
#[derive(Clone)]
pub struct Hub {
    registry: Arc<Registry>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("broker", &self.registry.broker)
            .finish()
    }
}

/// A channel's statistics as [`Hub::channels`] reports them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelStats {
    /// The channel name.
    pub name: Arc<str>,
    /// Subscriptions on this node.
    pub subscribers: usize,
    /// The channel's position (`None` if the broker holds no log for it).
    pub head: Option<Cursor>,
    /// Messages retained in history.
    pub retained: usize,
}

/// `Ok` for an idempotency key the hub takes: 1 to [`MAX_IDEMPOTENCY_KEY_LEN`] bytes.
pub fn check_idempotency_key(key: &str) -> Result<(), HubError> {
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN {
        return Err(HubError::InvalidIdempotencyKey {
            max: MAX_IDEMPOTENCY_KEY_LEN,
        });
    }
    Ok(())
}

/// Options of [`Hub::subscribe_with`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscribeOptions {
    /// Count the subscriber in presence (and send `join`/`leave`) when the namespace
    /// tracks presence. Turn off for short-lived subscriptions such as one long-poll
    /// cycle, which would otherwise join and leave on every request. Default: on.
    pub presence: bool,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        SubscribeOptions { presence: true }
    }
}

impl SubscribeOptions {
    /// Without presence (see [`SubscribeOptions::presence`]).
    pub const fn without_presence() -> Self {
        SubscribeOptions { presence: false }
    }
}

/// Options of [`Hub::publish_with`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PublishOptions<'a> {
    /// Publish on a client's behalf: the namespace must allow client publishing
    /// ([`Hub::publish_from_client`]). Default: as the backend, always allowed.
    pub from_client: bool,
    /// An idempotency key (1 to [`MAX_IDEMPOTENCY_KEY_LEN`] bytes, opaque): a publish
    /// with a key given to the same channel within [`HubConfig::idempotency_window`]
    /// stores nothing and answers the first one's cursor, on every node of a broker.
    pub idempotency_key: Option<&'a str>,
}

impl<'a> PublishOptions<'a> {
    /// On a client's behalf.
    pub const fn from_client() -> Self {
        PublishOptions {
            from_client: true,
            idempotency_key: None,
        }
    }

    /// As the backend.
    pub const fn from_backend() -> Self {
        PublishOptions {
            from_client: false,
            idempotency_key: None,
        }
    }

    /// With an idempotency key (`None`: without).
    pub const fn with_key(mut self, key: Option<&'a str>) -> Self {
        self.idempotency_key = key;
        self
    }
}

impl Hub {
    /// An identity of this hub: the same for every handle to it, and no other live hub's.
    pub fn id(&self) -> usize {
        Self::id_of(&self.registry)
    }

    /// The [`Hub::id`] of the hub of `registry`.
    pub(crate) fn id_of(registry: &Arc<Registry>) -> usize {
        Arc::as_ptr(registry) as usize
    }

    /// A hub with an in-memory broker holding at most `config.memory`.
    pub fn new(config: HubConfig) -> Self {
        let broker = MemoryBroker::with_limits(config.memory);
        Self::with_broker(config, Arc::new(broker))
    }

    /// The hub whose state is `registry`.
    pub(crate) fn from_registry(registry: Arc<Registry>) -> Self {
        Hub { registry }
    }

    /// A hub on the given broker (attaches the hub's fan-out to it).
    pub fn with_broker(config: HubConfig, broker: Arc<dyn Broker>) -> Self {
        Hub {
            registry: Arc::new(Registry::new(config, broker)),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &HubConfig {
        &self.registry.config
    }

    /// The broker.
    pub fn broker(&self) -> &Arc<dyn Broker> {
        &self.registry.broker
    }

    /// Validates `channel` and returns its namespace's settings.
    pub fn namespace(&self, channel: &str) -> Result<&NamespaceConfig, HubError> {
        let ns = parse_channel(channel, self.registry.config.max_channel_len)?;
        self.registry
            .config
            .namespaces
            .get(ns)
            .ok_or_else(|| HubError::UnknownNamespace(ns.to_owned()))
    }

    /// Publishes as the backend (always allowed): the broker assigns the offset and the
    /// message reaches every subscriber. Resolves with its cursor once the broker has it.
    pub async fn publish(&self, channel: &str, payload: Payload) -> Result<Cursor, HubError> {
        let published = self
            .publish_with(channel, payload, PublishOptions::from_backend())
            .await?;
        Ok(published.cursor)
    }

    /// Publishes on a client's behalf: also requires the namespace's `allow_publish`.
    pub async fn publish_from_client(
        &self,
        channel: &str,
        payload: Payload,
    ) -> Result<Cursor, HubError> {
        let published = self
            .publish_with(channel, payload, PublishOptions::from_client())
            .await?;
        Ok(published.cursor)
    }

    /// Publishes with options (on whose behalf, an idempotency key); says whether the key
    /// made it a duplicate.
    pub async fn publish_with(
        &self,
        channel: &str,
        payload: Payload,
        options: PublishOptions<'_>,
    ) -> Result<Published, HubError> {
        let ns = self.namespace(channel)?;
        if options.from_client && !ns.allow_publish {
            return Err(HubError::PublishNotAllowed);
        }
        let idempotency = match options.idempotency_key {
            None => None,
            Some(key) => {
                check_idempotency_key(key)?;
                Some(Idempotency {
                    key,
                    window: self.registry.config.idempotency_window,
                })
            }
        };
        self.registry.check_open()?;
        if payload.len() > ns.max_message_size {
            return Err(HubError::MessageTooLarge {
                size: payload.len(),
                max: ns.max_message_size,
            });
        }
        let reg = &self.registry;
        let published = reg
            .broker
            .publish(channel, payload, retention(ns), idempotency);
        let published = reg.stats.timed(BrokerOp::Publish, published).await?;
        if !published.duplicate {
            reg.stats.count_published();
        }
        Ok(published)
    }

    /// Subscribes `client` to `channel`, from `since` (history gap first) or from now.
    /// See [`crate::subscription`] for what the subscription then delivers.
    pub async fn subscribe(
        &self,
        channel: &str,
        since: Option<Cursor>,
        client: ClientInfo,
    ) -> Result<Subscription, HubError> {
        self.subscribe_with(channel, since, client, SubscribeOptions::default())
            .await
    }

    /// [`Hub::subscribe`] with options.
    pub async fn subscribe_with(
        &self,
        channel: &str,
        since: Option<Cursor>,
        client: ClientInfo,
        options: SubscribeOptions,
    ) -> Result<Subscription, HubError> {
        let ns = self.namespace(channel)?;
        if !ns.allow_subscribe {
            return Err(HubError::SubscribeNotAllowed);
        }
        self.registry.check_open()?;
        let inbox = Arc::new(Inbox::new(client.clone()));
        // Live first, history second: see the subscription module docs.
        let limit = self.registry.config.max_channels;
        let name = self
            .registry
            .fanout
            .add(channel, inbox.clone(), ns, limit)
            .ok_or(HubError::TooManyChannels { limit })?;
        let mut sub = Subscription::new(self.registry.clone(), name.clone(), inbox);
        // From here on, dropping `sub` (also on error) undoes what was registered.
        let broker = &self.registry.broker;
        let stats = &self.registry.stats;
        stats
            .timed(BrokerOp::Subscribe, broker.subscribe(&name))
            .await?;
        sub.registered.broker = true;
        if ns.presence && options.presence {
            let add = broker.presence_add(&name, client.clone());
            stats.timed(BrokerOp::Presence, add).await?;
            sub.registered.presence = true;
            sub.registered.join_leave = ns.join_leave;
            if ns.join_leave {
                let join = Message::presence_event(name.clone(), Event::Join, &client);
                stats
                    .timed(BrokerOp::Presence, broker.broadcast(join))
                    .await?;
            }
        }
        let limit = if since.is_some() { None } else { Some(0) };
        let history = broker.history(&name, since, limit, retention(ns));
        let answer = stats.timed(BrokerOp::History, history).await?;
        sub.start_from(since, answer);
        Ok(sub)
    }

    /// Reads history: after `since` (at most `limit`), or the latest `limit` messages.
    pub async fn history(
        &self,
        channel: &str,
        since: Option<Cursor>,
        limit: Option<usize>,
    ) -> Result<HistoryAnswer, HubError> {
        let ns = self.namespace(channel)?;
        let reg = &self.registry;
        let history = reg.broker.history(channel, since, limit, retention(ns));
        Ok(reg.stats.timed(BrokerOp::History, history).await?)
    }

    /// Who is subscribed to `channel` (all nodes).
    pub async fn presence(&self, channel: &str) -> Result<Vec<ClientInfo>, HubError> {
        let ns = self.namespace(channel)?;
        if !ns.presence {
            return Err(HubError::PresenceDisabled);
        }
        let reg = &self.registry;
        let presence = reg.broker.presence(channel);
        Ok(reg.stats.timed(BrokerOp::Presence, presence).await?)
    }

    /// Presence counts of `channel`.
    pub async fn presence_stats(&self, channel: &str) -> Result<PresenceStats, HubError> {
        Ok(PresenceStats::of(&self.presence(channel).await?))
    }

    /// Subscriptions to `channel` on this node.
    pub fn subscriber_count(&self, channel: &str) -> usize {
        self.registry.fanout.count(channel)
    }

    /// Every channel the broker holds a log for or this node has subscribers on.
    pub async fn channels(&self) -> Result<Vec<ChannelStats>, HubError> {
        let reg = &self.registry;
        let heads = reg
            .stats
            .timed(BrokerOp::Channels, reg.broker.channels())
            .await?;
        let mut local: std::collections::HashMap<Arc<str>, usize> =
            self.registry.fanout.counts().into_iter().collect();
        let mut out: Vec<ChannelStats> = heads
            .into_iter()
            .map(|h| ChannelStats {
                subscribers: local.remove(&h.name).unwrap_or(0),
                name: h.name,
                head: Some(h.head),
                retained: h.retained,
            })
            .collect();
        out.extend(local.into_iter().map(|(name, subscribers)| ChannelStats {
            name,
            subscribers,
            head: None,
            retained: 0,
        }));
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Closes this node's subscriptions of a client (`Closed { reason: Disconnected }`);
    /// returns how many.
    pub fn disconnect(&self, client_id: &str) -> usize {
        self.registry
            .fanout
            .close_matching(CloseReason::Disconnected, |s| {
                s.client.client_id() == client_id
            })
    }

    /// Closes this node's subscriptions of every client of a user; returns how many.
    pub fn disconnect_user(&self, user_id: &str) -> usize {
        self.registry
            .fanout
            .close_matching(CloseReason::Disconnected, |s| {
                s.client.user_id() == Some(user_id)
            })
    }

    /// Asks every other node to close `target`'s connections ([`Broker::disconnect`]);
    /// resolves with how many other nodes the broker reached. This node's own are closed
    /// by the caller ([`Hub::disconnect`], [`Hub::disconnect_user`]).
    pub async fn disconnect_elsewhere(&self, target: &Disconnect) -> Result<usize, HubError> {
        Ok(self.registry.broker.disconnect(target).await?)
    }

    /// Sets what this node does first when another node's disconnect arrives (e.g. the
    /// server ends the connections it lists); then the hub closes the matching
    /// subscriptions, as [`Hub::disconnect`] does. Set once; later calls are ignored.
    pub fn on_remote_disconnect(&self, hook: impl Fn(&Disconnect) + Send + Sync + 'static) {
        let _ = self.registry.fanout.on_disconnect.set(Box::new(hook));
    }

    /// Sets the transport's writer for direct delivery ([`crate::direct`]): subscriptions
    /// polled with [`Subscription::poll_recv_direct`](crate::Subscription::poll_recv_direct)
    /// then get their messages written by the fan-out's pacer where it runs (a
    /// current-thread runtime). Set once; later calls are ignored.
    pub fn set_direct_write(&self, write: crate::direct::DirectWrite) {
        let _ = self.registry.fanout.direct_write.set(write);
    }

    /// Broker housekeeping: trims expired history and forgets idle channels (no history,
    /// no presence, no subscribers), each with its namespace's retention. Call it
    /// periodically (e.g. every minute); returns how many channels were dropped.
    pub async fn sweep(&self) -> Result<usize, HubError> {
        let registry = &self.registry;
        let retention_of = |name: &str| registry.retention(name);
        Ok(self.registry.broker.sweep(&retention_of).await?)
    }

    /// Bytes the broker retains in this process ([`Broker::retained_bytes`]; `None` for a
    /// broker that keeps them elsewhere).
    pub fn retained_bytes(&self) -> Option<usize> {
        self.registry.broker.retained_bytes()
    }

    /// Whether the broker can serve now ([`Broker::health`]).
    pub async fn health(&self) -> Result<(), HubError> {
        let reg = &self.registry;
        Ok(reg
            .stats
            .timed(BrokerOp::Health, reg.broker.health())
            .await?)
    }

    /// The hub's counters: messages published and delivered, slow consumers, resets,
    /// broker operations (see [`crate::stats`]).
    pub fn stats(&self) -> &HubStats {
        &self.registry.stats
    }

    /// Every channel with subscribers on this node, with their count (unordered).
    pub fn local_channels(&self) -> Vec<(Arc<str>, usize)> {
        self.registry.fanout.counts()
    }

    /// Refuses new publishes and subscriptions and closes every subscription
    /// (`Closed { reason: Shutdown }`, with exact `resume_from`); returns how many.
    pub fn shutdown(&self) -> usize {
        self.registry.refuse_new();
        self.registry
            .fanout
            .close_matching(CloseReason::Shutdown, |_| true)
    }
}
