//! [`Hub`]: the entry point. Validates channel names against the namespace settings,
//! forwards publishes and history reads to the broker, registers subscriptions with the
//! local fan-out, tracks presence, and closes subscriptions on request.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Waker};

use switchboard_proto::{Cursor, Event};

use crate::broker::{Broker, FeedSink, HistoryAnswer, Retention};
use crate::channel::parse_channel;
use crate::config::{HubConfig, NamespaceConfig};
use crate::error::{CloseReason, HubError};
use crate::fanout::Fanout;
use crate::memory::MemoryBroker;
use crate::message::{Message, Payload};
use crate::presence::{ClientInfo, PresenceStats};
use crate::subscription::{Registered, SubShared, Subscription};

pub(crate) struct HubInner {
    config: HubConfig,
    pub(crate) broker: Arc<dyn Broker>,
    fanout: Arc<Fanout>,
    shutting_down: AtomicBool,
}

/// The hub. Cheap to clone (an `Arc`); all clones share the same state.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("broker", &self.inner.broker)
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

fn retention(ns: &NamespaceConfig) -> Retention {
    Retention {
        max_len: ns.history_size,
        max_age: ns.history_ttl,
    }
}

impl Hub {
    /// A hub with an in-memory broker.
    pub fn new(config: HubConfig) -> Self {
        Self::with_broker(config, Arc::new(MemoryBroker::new()))
    }

    /// A hub on the given broker (attaches the hub's fan-out to it).
    pub fn with_broker(config: HubConfig, broker: Arc<dyn Broker>) -> Self {
        let fanout = Arc::new(Fanout::default());
        let sink: Arc<dyn FeedSink> = fanout.clone();
        broker.attach(Arc::downgrade(&sink));
        Hub {
            inner: Arc::new(HubInner {
                config,
                broker,
                fanout,
                shutting_down: AtomicBool::new(false),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &HubConfig {
        &self.inner.config
    }

    /// The broker.
    pub fn broker(&self) -> &Arc<dyn Broker> {
        &self.inner.broker
    }

    /// Validates `channel` and returns its namespace's settings.
    pub fn namespace(&self, channel: &str) -> Result<&NamespaceConfig, HubError> {
        let ns = parse_channel(channel, self.inner.config.max_channel_len)?;
        self.inner
            .config
            .namespaces
            .get(ns)
            .ok_or_else(|| HubError::UnknownNamespace(ns.to_owned()))
    }

    fn check_open(&self) -> Result<(), HubError> {
        if self.inner.shutting_down.load(Ordering::Relaxed) {
            return Err(HubError::Shutdown);
        }
        Ok(())
    }

    /// Publishes as the backend (always allowed): the broker assigns the offset and the
    /// message reaches every subscriber. Resolves with its cursor once the broker has it.
    pub async fn publish(&self, channel: &str, payload: Payload) -> Result<Cursor, HubError> {
        let ns = self.namespace(channel)?;
        self.publish_in(channel, ns, payload).await
    }

    /// Publishes on a client's behalf: also requires the namespace's `allow_publish`.
    pub async fn publish_from_client(
        &self,
        channel: &str,
        payload: Payload,
    ) -> Result<Cursor, HubError> {
        let ns = self.namespace(channel)?;
        if !ns.allow_publish {
            return Err(HubError::PublishNotAllowed);
        }
        self.publish_in(channel, ns, payload).await
    }

    async fn publish_in(
        &self,
        channel: &str,
        ns: &NamespaceConfig,
        payload: Payload,
    ) -> Result<Cursor, HubError> {
        self.check_open()?;
        if payload.len() > ns.max_message_size {
            return Err(HubError::MessageTooLarge {
                size: payload.len(),
                max: ns.max_message_size,
            });
        }
        Ok(self
            .inner
            .broker
            .publish(channel, payload, retention(ns))
            .await?)
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
        self.check_open()?;
        let shared = Arc::new(SubShared::new(client.clone()));
        // Live first, history second: see the subscription module docs.
        let name = self.inner.fanout.add(channel, shared.clone(), ns);
        let mut sub = Subscription::new(self.inner.clone(), name.clone(), shared);
        // From here on, dropping `sub` (also on error) undoes what was registered.
        let broker = &self.inner.broker;
        broker.subscribe(&name).await?;
        sub.registered.broker = true;
        if ns.presence && options.presence {
            broker.presence_add(&name, client.clone()).await?;
            sub.registered.presence = true;
            sub.registered.join_leave = ns.join_leave;
            if ns.join_leave {
                broker
                    .broadcast(Message::presence_event(name.clone(), Event::Join, &client))
                    .await?;
            }
        }
        let limit = if since.is_some() { None } else { Some(0) };
        let answer = broker.history(&name, since, limit, retention(ns)).await?;
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
        Ok(self
            .inner
            .broker
            .history(channel, since, limit, retention(ns))
            .await?)
    }

    /// Who is subscribed to `channel` (all nodes).
    pub async fn presence(&self, channel: &str) -> Result<Vec<ClientInfo>, HubError> {
        let ns = self.namespace(channel)?;
        if !ns.presence {
            return Err(HubError::PresenceDisabled);
        }
        Ok(self.inner.broker.presence(channel).await?)
    }

    /// Presence counts of `channel`.
    pub async fn presence_stats(&self, channel: &str) -> Result<PresenceStats, HubError> {
        Ok(PresenceStats::of(&self.presence(channel).await?))
    }

    /// Subscriptions to `channel` on this node.
    pub fn subscriber_count(&self, channel: &str) -> usize {
        self.inner.fanout.count(channel)
    }

    /// Every channel the broker holds a log for or this node has subscribers on.
    pub async fn channels(&self) -> Result<Vec<ChannelStats>, HubError> {
        let heads = self.inner.broker.channels().await?;
        let mut local: std::collections::HashMap<Arc<str>, usize> =
            self.inner.fanout.counts().into_iter().collect();
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
        self.inner
            .fanout
            .close_matching(CloseReason::Disconnected, |s| {
                s.client.client_id() == client_id
            })
    }

    /// Closes this node's subscriptions of every client of a user; returns how many.
    pub fn disconnect_user(&self, user_id: &str) -> usize {
        self.inner
            .fanout
            .close_matching(CloseReason::Disconnected, |s| {
                s.client.user_id() == Some(user_id)
            })
    }

    /// Broker housekeeping: trims expired history and forgets idle channels (no history,
    /// no presence, no subscribers), each with its namespace's retention. Call it
    /// periodically (e.g. every minute); returns how many channels were dropped.
    pub async fn sweep(&self) -> Result<usize, HubError> {
        let inner = &self.inner;
        let retention_of = |name: &str| inner.retention(name);
        Ok(self.inner.broker.sweep(&retention_of).await?)
    }

    /// Refuses new publishes and subscriptions and closes every subscription
    /// (`Closed { reason: Shutdown }`, with exact `resume_from`); returns how many.
    pub fn shutdown(&self) -> usize {
        self.inner.shutting_down.store(true, Ordering::Relaxed);
        self.inner
            .fanout
            .close_matching(CloseReason::Shutdown, |_| true)
    }
}

impl HubInner {
    /// The retention of `channel`'s namespace (none for a name outside every namespace).
    /// The configuration never changes, so subscriptions look it up when they read
    /// history rather than carry it.
    pub(crate) fn retention(&self, channel: &str) -> Retention {
        let ns = parse_channel(channel, usize::MAX)
            .ok()
            .and_then(|ns| self.config.namespaces.get(ns));
        ns.map_or(
            Retention {
                max_len: 0,
                max_age: None,
            },
            retention,
        )
    }

    /// Undoes a subscription's registrations.
    pub(crate) fn release(
        &self,
        channel: &Arc<str>,
        shared: &Arc<SubShared>,
        reg: Registered,
    ) -> impl Future<Output = ()> + Send + 'static {
        self.fanout.remove(channel, shared);
        let broker = self.broker.clone();
        let channel = channel.clone();
        let shared = shared.clone();
        async move {
            if reg.presence {
                let client_id = shared.client.client_id();
                if let Ok(Some(info)) = broker.presence_remove(&channel, client_id).await {
                    if reg.join_leave {
                        let leave = Message::presence_event(channel.clone(), Event::Leave, &info);
                        if let Err(e) = broker.broadcast(leave).await {
                            tracing::debug!(%channel, error = %e, "leave event not delivered");
                        }
                    }
                }
            }
            if reg.broker {
                if let Err(e) = broker.unsubscribe(&channel).await {
                    tracing::debug!(%channel, error = %e, "broker unsubscribe failed");
                }
            }
        }
    }

    /// [`HubInner::release`] from a destructor: runs it to completion at once when the
    /// broker answers synchronously (the in-memory broker), else spawns it on the current
    /// tokio runtime.
    pub(crate) fn release_detached(
        &self,
        channel: Arc<str>,
        shared: Arc<SubShared>,
        reg: Registered,
    ) {
        let mut fut = Box::pin(self.release(&channel, &shared, reg));
        let mut cx = Context::from_waker(Waker::noop());
        if fut.as_mut().poll(&mut cx).is_pending() {
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn(fut);
                }
                Err(_) => {
                    tracing::warn!(%channel, "subscription dropped outside a runtime; presence not cleaned up");
                }
            }
        }
    }
}
