//! [`Registry`]: what a hub and its subscriptions share — the broker and this node's
//! fan-out that a subscription registers with, the configuration its history reads take
//! their retention from, and whether new registrations are still accepted — and
//! [`Registry::release`], which undoes a subscription's registrations ([`Registered`]).
//!
//! A [`Subscription`](crate::Subscription) holds the registry, not the hub: it reads
//! history gaps through it and releases itself through it when it ends.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Waker};

use switchboard_proto::Event;

use crate::broker::{Broker, FeedSink, Retention};
use crate::channel::parse_channel;
use crate::config::{HubConfig, NamespaceConfig};
use crate::error::HubError;
use crate::fanout::Fanout;
use crate::inbox::Inbox;
use crate::message::Message;
use crate::stats::HubStats;

/// See the module docs.
pub(crate) struct Registry {
    pub(crate) config: HubConfig,
    pub(crate) broker: Arc<dyn Broker>,
    pub(crate) fanout: Arc<Fanout>,
    /// The hub's counters (shared with the fan-out).
    pub(crate) stats: Arc<HubStats>,
    shutting_down: AtomicBool,
}

/// What a subscription registered, to undo when it ends.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Registered {
    pub(crate) broker: bool,
    pub(crate) presence: bool,
    pub(crate) join_leave: bool,
}

/// The retention of a namespace.
pub(crate) fn retention(ns: &NamespaceConfig) -> Retention {
    Retention {
        max_len: ns.history_size,
        max_bytes: ns.history_bytes,
        max_age: ns.history_ttl,
    }
}

impl Registry {
    /// A registry on `broker`, with this node's fan-out attached to its live feed.
    pub(crate) fn new(config: HubConfig, broker: Arc<dyn Broker>) -> Self {
        let fanout = Arc::new(Fanout::default());
        let sink: Arc<dyn FeedSink> = fanout.clone();
        broker.attach(Arc::downgrade(&sink));
        Registry {
            config,
            broker,
            stats: fanout.stats.clone(),
            fanout,
            shutting_down: AtomicBool::new(false),
        }
    }

    /// `Err(Shutdown)` once [`Registry::refuse_new`] was called.
    pub(crate) fn check_open(&self) -> Result<(), HubError> {
        if self.shutting_down.load(Ordering::Relaxed) {
            return Err(HubError::Shutdown);
        }
        Ok(())
    }

    /// From now on [`Registry::check_open`] refuses.
    pub(crate) fn refuse_new(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
    }

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
                max_bytes: 0,
                max_age: None,
            },
            retention,
        )
    }

    /// Undoes a subscription's registrations.
    pub(crate) fn release(
        &self,
        channel: &Arc<str>,
        inbox: &Arc<Inbox>,
        reg: Registered,
    ) -> impl Future<Output = ()> + Send + 'static {
        self.fanout.remove(channel, inbox);
        let broker = self.broker.clone();
        let channel = channel.clone();
        let inbox = inbox.clone();
        async move {
            if reg.presence {
                let client_id = inbox.client.client_id();
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

    /// [`Registry::release`] from a destructor: runs it to completion at once when the
    /// broker answers synchronously (the in-memory broker), else spawns it on the current
    /// tokio runtime.
    pub(crate) fn release_detached(&self, channel: Arc<str>, inbox: Arc<Inbox>, reg: Registered) {
        let mut fut = Box::pin(self.release(&channel, &inbox, reg));
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
