//! The live feed: a connection of its own that carries only the node's pub/sub
//! subscriptions (so a slow history read on the command connection never delays live
//! delivery), its push handler, and the task that brings it back after a drop.
//!
//! On one Redis server the feed is classic pub/sub (`SUBSCRIBE`, `PUBLISH`): the redis
//! crate's `ConnectionManager` has no `SSUBSCRIBE` of its own to make again after a
//! reconnection. On a Redis Cluster it is sharded pub/sub (`SSUBSCRIBE`, `SPUBLISH`):
//! a channel's feed stays on its slot's shard instead of being broadcast to every node
//! of the cluster, and the cluster client subscribes again wherever the slot moves.
//!
//! Pushed feed messages are decoded on the connection's reader and handed to the attached
//! sinks there, so live delivery keeps the order in which Redis published them, which is
//! offset order (each publish is one script). Messages published while the feed was
//! down are not replayed by Redis: once a channel's subscription is made again (a
//! confirmation the node did not ask for, or the first one after a drop), the sinks are
//! told to resync ([`FeedSink::resync_all`]): every local subscription reads what it
//! missed from history at once (a `reset` and what is held when Redis lost it), rather
//! than when the next message reveals the gap.
//!
//! [`FeedSink::resync_all`]: switchboard_hub::FeedSink::resync_all

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use redis::{PushInfo, PushKind, RedisError, Value};
use switchboard_hub::FeedSinks;

use crate::connect::{Conn, Push, Target};
use crate::control;
use crate::entry::{self, key};

/// What the connection's push handler shares with the broker.
#[derive(Default)]
pub(crate) struct FeedState {
    pub(crate) sinks: FeedSinks,
    /// This node's id, to skip its own control messages (module `control`).
    node: String,
    /// The connection dropped: the next subscription confirmation is the new connection
    /// subscribing its channels again, and the sinks are then told to resync.
    resync_due: AtomicBool,
    /// Feed channels whose end the node asked for (`SUNSUBSCRIBE`) and whose
    /// confirmation has not come yet; any other is Redis ending a shard subscription
    /// because its slot moved to another primary (resharding).
    left: std::sync::Mutex<HashSet<Vec<u8>>>,
    /// Feed channels whose subscription the node asked for and whose confirmation has not
    /// come yet; any other confirmation is a subscription made again by the client.
    awaited: std::sync::Mutex<HashSet<Vec<u8>>>,
    /// Wakes the task that makes the connection come back (see [`keep_reconnecting`]).
    dropped: tokio::sync::Notify,
    /// Wakes the task that tells the sinks to resync: several confirmations in a row (a
    /// cluster subscribes a shard's channels again one by one) make one resync.
    resync: tokio::sync::Notify,
}

/// Aborts a background task when its owner goes.
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The node's feed connection and its subscriptions.
pub(crate) struct Feed {
    link: Arc<Link>,
    _tasks: [AbortOnDrop; 2],
}

/// What the feed and its reconnecting task share.
struct Link {
    state: Arc<FeedState>,
    /// Replaced on a cluster when a node dropped (see [`keep_reconnecting`]).
    conn: std::sync::Mutex<Conn>,
    /// Live-feed registrations per channel; the node is subscribed to a channel's feed
    /// while its count is above zero. A tokio mutex: it is held across the
    /// (un)subscribe round trip so that the two cannot overtake each other, and while
    /// the connection is replaced.
    interest: tokio::sync::Mutex<HashMap<String, usize>>,
    target: Target,
    timeout: Duration,
    every: Duration,
}

impl Link {
    fn conn(&self) -> Conn {
        self.conn.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    async fn connect(&self) -> Result<Conn, RedisError> {
        connect(&self.target, &self.state, self.timeout, self.every).await
    }
}

impl Feed {
    /// Opens the feed connection to `target` for node `node`.
    pub(crate) async fn connect(
        target: &Target,
        node: String,
        timeout: Duration,
        max_reconnect_delay: Duration,
    ) -> Result<Feed, RedisError> {
        let state = Arc::new(FeedState {
            node,
            ..FeedState::default()
        });
        let conn = connect(target, &state, timeout, max_reconnect_delay).await?;
        let link = Arc::new(Link {
            state,
            conn: std::sync::Mutex::new(conn),
            interest: tokio::sync::Mutex::default(),
            target: target.clone(),
            timeout,
            every: max_reconnect_delay,
        });
        let reconnecting = tokio::spawn(keep_reconnecting(link.clone()));
        let resyncing = tokio::spawn(resync_when_told(link.state.clone()));
        Ok(Feed {
            link,
            _tasks: [AbortOnDrop(reconnecting), AbortOnDrop(resyncing)],
        })
    }

    /// The sinks the feed delivers to.
    pub(crate) fn sinks(&self) -> &FeedSinks {
        &self.link.state.sinks
    }

    /// `SPUBLISH` on a cluster, `PUBLISH` on one server (also what the publish script
    /// calls).
    pub(crate) fn publish_verb(&self) -> &'static str {
        match self.link.target {
            Target::Single(_) => "PUBLISH",
            Target::Cluster(_) => "SPUBLISH",
        }
    }

    pub(crate) async fn subscribe(&self, channel: &str) -> Result<(), RedisError> {
        let mut interest = self.link.interest.lock().await;
        let count = interest.get(channel).copied().unwrap_or(0);
        if count == 0 {
            let feed = key(channel, 'f');
            self.awaited().insert(feed.clone().into_bytes());
            let done = subscribe(self.link.conn(), &feed).await;
            if done.is_err() {
                self.awaited().remove(feed.as_bytes());
            }
            done?;
        }
        interest.insert(channel.to_owned(), count + 1);
        Ok(())
    }

    pub(crate) async fn unsubscribe(&self, channel: &str) -> Result<(), RedisError> {
        let mut interest = self.link.interest.lock().await;
        match interest.get_mut(channel) {
            Some(n) if *n > 1 => *n -= 1,
            Some(_) => {
                interest.remove(channel);
                let feed = key(channel, 'f');
                match self.link.conn() {
                    Conn::Single(mut c) => c.unsubscribe(feed).await?,
                    Conn::Cluster(mut c) => {
                        self.left().insert(feed.clone().into_bytes());
                        let done = c.sunsubscribe(&feed).await;
                        if done.is_err() {
                            self.left().remove(feed.as_bytes());
                        }
                        done?;
                    }
                }
            }
            None => {}
        }
        Ok(())
    }

    fn left(&self) -> std::sync::MutexGuard<'_, HashSet<Vec<u8>>> {
        lock(&self.link.state.left)
    }

    fn awaited(&self) -> std::sync::MutexGuard<'_, HashSet<Vec<u8>>> {
        lock(&self.link.state.awaited)
    }
}

fn lock(set: &std::sync::Mutex<HashSet<Vec<u8>>>) -> std::sync::MutexGuard<'_, HashSet<Vec<u8>>> {
    set.lock().unwrap_or_else(|e| e.into_inner())
}

/// Takes the channel a (un)subscribe confirmation names (its `data[0]`; the kind is split
/// off) out of `set`: whether the node had asked for it, or `None` when it names none.
fn take_named(set: &std::sync::Mutex<HashSet<Vec<u8>>>, data: &[Value]) -> Option<bool> {
    match data.first() {
        Some(Value::BulkString(channel)) => Some(lock(set).remove(&channel[..])),
        _ => None,
    }
}

/// A connection to `target` whose pushed messages go to `state`'s sinks.
async fn connect(
    target: &Target,
    state: &Arc<FeedState>,
    timeout: Duration,
    every: Duration,
) -> Result<Conn, RedisError> {
    let pushed = state.clone();
    let push: Push = Arc::new(move |info| on_push(&pushed, info));
    target.connect(timeout, every, Some(push)).await
}

async fn subscribe(conn: Conn, feed: &str) -> Result<(), RedisError> {
    match conn {
        Conn::Single(mut c) => c.subscribe(feed).await,
        Conn::Cluster(mut c) => c.ssubscribe(feed).await,
    }
}

/// Hands a pushed feed message to the sinks; notes a dropped connection, and has the
/// sinks resync when a subscription was made again; ignores the rest.
fn on_push(feed: &FeedState, push: PushInfo) {
    match push.kind {
        PushKind::Message | PushKind::SMessage => {}
        PushKind::Disconnection => {
            feed.resync_due.store(true, Ordering::SeqCst);
            feed.dropped.notify_one();
            return;
        }
        // On one server the manager subscribes every channel again in one command
        // before the new connection serves anything else, so the first confirmation
        // after a drop means all are back (and everything published from now on reaches
        // the feed). A cluster subscribes a shard's channels again when the shard's
        // connection is back or its slots moved, with or without a drop this node saw:
        // each confirmation the node did not ask for is one of those.
        PushKind::Subscribe | PushKind::SSubscribe => {
            let asked = take_named(&feed.awaited, &push.data).unwrap_or(false);
            if feed.resync_due.swap(false, Ordering::SeqCst) || !asked {
                feed.resync.notify_one();
            }
            return;
        }
        // Redis ends the shard subscriptions of a slot that moved to another primary
        // (resharding) with an `sunsubscribe` nobody asked for: the feed then comes back
        // as after a drop, on a fresh slot map, and the sinks resync.
        PushKind::SUnsubscribe => {
            let asked = take_named(&feed.left, &push.data).unwrap_or(true);
            if !asked {
                tracing::info!("a Redis Cluster slot moved; the feed follows it");
                feed.resync_due.store(true, Ordering::SeqCst);
                feed.dropped.notify_one();
            }
            return;
        }
        _ => return,
    }
    let Ok([Value::BulkString(channel), Value::BulkString(data)]) =
        <[Value; 2]>::try_from(push.data)
    else {
        return;
    };
    let Some(name) = entry::channel_of(&channel, 'f') else {
        return;
    };
    if name == control::CHANNEL {
        control::on_message(&feed.sinks, &feed.node, &data);
        return;
    }
    let Some(msg) = entry::feed_message(Arc::from(name), &Bytes::from(data)) else {
        tracing::warn!(
            channel = name,
            "undecodable message on the Redis feed; skipped"
        );
        return;
    };
    feed.sinks.deliver(&msg);
}

/// Tells the sinks to resync each time the push handler asks (coalesced).
async fn resync_when_told(feed: Arc<FeedState>) {
    loop {
        feed.resync.notified().await;
        tracing::info!("Redis feed back; subscriptions read what they missed");
        feed.sinks.resync_all();
    }
}

/// After each drop of the connection, brings the feed back. On one server, asks Redis
/// until it answers: the manager reconnects when a command fails (and subscribes again),
/// and a node that only has subscribers issues none on its feed. On a cluster, a
/// dropped node may be a dead primary whose replica takes over, and the cluster client
/// moves a subscription only when a command tells it the slot moved, which nothing on
/// the feed does: so the feed gets a new connection (a fresh slot map), subscribes every
/// channel on it, and the sinks resync. Retried until every subscription is made.
async fn keep_reconnecting(link: Arc<Link>) {
    loop {
        link.state.dropped.notified().await;
        loop {
            let back = match link.conn() {
                Conn::Single(mut c) => redis::cmd("PING")
                    .query_async::<String>(&mut c)
                    .await
                    .is_ok(),
                Conn::Cluster(_) => replace_cluster_feed(&link).await.is_ok(),
            };
            if back {
                break;
            }
            tokio::time::sleep(link.every).await;
        }
    }
}

/// A new cluster connection for the feed, with every channel of interest subscribed.
async fn replace_cluster_feed(link: &Link) -> Result<(), RedisError> {
    let fresh = link.connect().await?;
    let interest = link.interest.lock().await;
    for channel in interest.keys() {
        subscribe(fresh.clone(), &key(channel, 'f')).await?;
    }
    // The old connection goes (and its subscriptions with it); what was published
    // meanwhile is read from history.
    *link.conn.lock().unwrap_or_else(|e| e.into_inner()) = fresh;
    drop(interest);
    link.state.resync.notify_one();
    Ok(())
}
