//! [`RedisBroker`]: the hub's [`Broker`] on a Redis server, so that several nodes share
//! channel logs, epochs, presence and the live feed.
//!
//! One RESP3 connection per node, kept by the redis crate's `ConnectionManager`: it
//! carries the commands and the node's pub/sub subscriptions, reconnects in the
//! background and subscribes again to the channels it had. Pushed feed messages are
//! decoded on the connection's reader and handed to the attached sinks there, so live
//! delivery keeps the order in which Redis published them, which is offset order (each
//! publish is one script). Messages published while a node was disconnected are not
//! replayed by Redis. When the connection drops, the node keeps trying to reconnect (a
//! node that only serves subscribers issues no command that would make it), and once the
//! new connection has subscribed its channels again (the first subscription confirmation
//! after a drop) it tells the hub ([`FeedSink::resync_all`]): every local subscription
//! reads what it missed from history at once — a `reset` and what is held when Redis
//! lost its data meanwhile — rather than when the next message reveals the gap.
//!
//! The node's heartbeat and the filtering of presence entries of dead nodes are in
//! module `presence`; cluster-wide commands ride the feed on a reserved channel (module
//! `control`), subscribed at connect like a channel's feed.
//!
//! Every operation has a deadline ([`RedisOptions::timeout`]): with Redis unreachable,
//! publishes and subscribes fail with [`BrokerError::Unavailable`] (HTTP 503) instead of
//! waiting.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, ProtocolVersion, PushInfo, PushKind, RedisError, Script, Value};
use switchboard_hub::{
    Broker, BrokerError, BrokerFuture, ChannelHead, ClientInfo, Cursor, Disconnect, Epoch,
    FeedSink, FeedSinks, HistoryAnswer, Idempotency, Message, Payload, Published, Retention,
    STORED_MESSAGE_COST,
};

use crate::calls::{error, feed_publish, futures_next};
use crate::entry::{self, key};
use crate::presence::{self, Nodes};
use crate::{control, scripts};

/// How long a channel with no history is kept after its last publish (its epoch and
/// head), and one that was only read; one with a `max_age` expires with its history.
const IDLE_CHANNEL_TTL: Duration = Duration::from_secs(24 * 3600);

/// Longest history kept per channel, in messages or bytes: Lua numbers are doubles,
/// exact to 2^53.
const MAX_LEN: usize = 1 << 40;

/// Connection settings.
#[derive(Clone, Debug)]
pub struct RedisOptions {
    /// Deadline of each operation and connection attempt.
    pub timeout: Duration,
    /// Longest wait between reconnection attempts.
    pub max_reconnect_delay: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            timeout: Duration::from_secs(2),
            max_reconnect_delay: Duration::from_secs(2),
        }
    }
}

/// What the connection's push handler shares with the broker.
#[derive(Default)]
struct Feed {
    sinks: FeedSinks,
    /// The connection dropped: the next subscription confirmation is the new connection
    /// subscribing its channels again, and the sinks are then told to resync.
    resync_due: AtomicBool,
    /// Wakes the task that makes the connection come back (see [`keep_reconnecting`]).
    dropped: tokio::sync::Notify,
    /// This node's id, to skip its own control messages.
    node: String,
}

/// Aborts the reconnecting task when the broker goes.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A [`Broker`] on Redis. See the module docs.
pub struct RedisBroker {
    conn: ConnectionManager,
    feed: Arc<Feed>,
    _reconnecting: AbortOnDrop,
    /// This node's id, presence entries and heartbeat (module `presence`).
    nodes: Arc<Nodes>,
    _heartbeat: AbortOnDrop,
    /// Live-feed registrations per channel; the node is subscribed to a channel's feed
    /// while its count is above zero. A tokio mutex: it is held across the
    /// (un)subscribe round trip so that the two cannot overtake each other.
    interest: tokio::sync::Mutex<HashMap<String, usize>>,
    publish: Script,
    history: Script,
    presence_remove: Script,
    presence_drop: Script,
    /// Without its password.
    url: String,
}

impl std::fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBroker")
            .field("url", &self.url)
            .finish()
    }
}

fn internal(what: &str) -> BrokerError {
    BrokerError::Internal(format!("unexpected answer from Redis: {what}"))
}

/// Hands a pushed feed message to the sinks; notes a dropped connection, and tells the
/// sinks to resync at the first subscription confirmation after one; ignores the rest.
fn on_push(feed: &Feed, push: PushInfo) {
    match push.kind {
        PushKind::Message => {}
        PushKind::Disconnection => {
            feed.resync_due.store(true, Ordering::SeqCst);
            feed.dropped.notify_one();
            return;
        }
        // The manager subscribes every channel again in one command before the new
        // connection serves anything else, so the first confirmation means all are back
        // (and everything published from now on reaches the feed).
        PushKind::Subscribe => {
            if feed.resync_due.swap(false, Ordering::SeqCst) {
                tracing::info!("Redis feed back; subscriptions read what they missed");
                feed.sinks.resync_all();
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

/// After each drop of the connection, asks Redis until it answers: the manager reconnects
/// when a command fails, and gives up after a few attempts by itself, so a node that only
/// has subscribers (no commands) would otherwise stay cut off from the feed.
async fn keep_reconnecting(mut conn: ConnectionManager, feed: Arc<Feed>, every: Duration) {
    loop {
        feed.dropped.notified().await;
        loop {
            let pong: Result<String, RedisError> = redis::cmd("PING").query_async(&mut conn).await;
            if pong.is_ok() {
                break;
            }
            tokio::time::sleep(every).await;
        }
    }
}

/// `url` without its password, for messages and logs.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

fn new_epoch() -> String {
    entry::epoch_hex(Epoch(rand::random::<u64>().max(1)))
}

fn ms(d: Option<Duration>) -> u64 {
    d.map_or(0, |d| {
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
    })
}

fn bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

fn int(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        other => std::str::from_utf8(bytes(other)?).ok()?.parse().ok(),
    }
}

impl RedisBroker {
    /// Connects to the Redis server at `url` (`redis://host:port/db`, with user and
    /// password if needed). Fails if it cannot be reached now.
    pub async fn connect(url: &str, options: RedisOptions) -> Result<Self, BrokerError> {
        let shown = redacted(url);
        let info = redis::IntoConnectionInfo::into_connection_info(url)
            .map_err(|e| BrokerError::Unavailable(format!("{shown}: {e}")))?;
        let redis_settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let info = info.set_redis_settings(redis_settings);
        let client = redis::Client::open(info).map_err(|e| error(&e))?;
        let nodes = Arc::new(Nodes::new());
        let feed = Arc::new(Feed {
            node: nodes.id().to_owned(),
            ..Feed::default()
        });
        let pushed = feed.clone();
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.timeout))
            .set_response_timeout(Some(options.timeout))
            .set_max_delay(options.max_reconnect_delay)
            .set_number_of_retries(2)
            .set_automatic_resubscription()
            .set_push_sender(move |push: PushInfo| {
                on_push(&pushed, push);
                Ok::<(), std::convert::Infallible>(())
            });
        let conn = tokio::time::timeout(
            options.timeout,
            client.get_connection_manager_with_config(config),
        )
        .await
        .map_err(|_| {
            BrokerError::Unavailable(format!("{shown}: no answer in {:?}", options.timeout))
        })?
        .map_err(|e| BrokerError::Unavailable(format!("{shown}: {e}")))?;
        let reconnecting = tokio::spawn(keep_reconnecting(
            conn.clone(),
            feed.clone(),
            options.max_reconnect_delay,
        ));
        presence::beat(&mut conn.clone(), &nodes).await?;
        let heartbeat = tokio::spawn(presence::keep_beating(conn.clone(), nodes.clone()));
        let broker = RedisBroker {
            conn,
            feed,
            _reconnecting: AbortOnDrop(reconnecting),
            nodes,
            _heartbeat: AbortOnDrop(heartbeat),
            interest: tokio::sync::Mutex::default(),
            publish: Script::new(&scripts::publish()),
            history: Script::new(&scripts::history()),
            presence_remove: Script::new(scripts::PRESENCE_REMOVE),
            presence_drop: Script::new(scripts::PRESENCE_DROP),
            url: shown,
        };
        // The control feed rides the channels' feed: subscribed and resubscribed alike.
        broker.do_subscribe(control::CHANNEL).await?;
        Ok(broker)
    }

    async fn do_publish(
        &self,
        channel: &str,
        payload: Payload,
        retention: Retention,
        idempotency: Option<(String, Duration)>,
    ) -> Result<Published, BrokerError> {
        let ttl = match retention.max_age {
            _ if retention.max_len == 0 => ms(Some(IDLE_CHANNEL_TTL)),
            Some(age) => ms(Some(age)),
            None => 0,
        };
        let mut conn = self.conn.clone();
        let mut script = self.publish.prepare_invoke();
        script
            .key(key(channel, 'm'))
            .key(key(channel, 'l'))
            .key(key(channel, 'f'));
        if let Some((idem, _)) = &idempotency {
            script.key(entry::idempotency_key(channel, idem));
        }
        let (epoch, offset, duplicate): (String, u64, u8) = script
            .arg(new_epoch())
            .arg(entry::kind_letter(payload.kind()))
            .arg(&payload.data()[..])
            .arg(retention.max_len.min(MAX_LEN))
            .arg(ms(retention.max_age))
            .arg(ttl)
            .arg(idempotency.map_or(0, |(_, window)| ms(Some(window))))
            .arg(retention.max_bytes.min(MAX_LEN))
            .arg(STORED_MESSAGE_COST)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| error(&e))?;
        let epoch = entry::parse_epoch(epoch.as_bytes()).ok_or_else(|| internal("epoch"))?;
        Ok(Published {
            cursor: Cursor::new(epoch, offset),
            duplicate: duplicate == 1,
        })
    }

    async fn do_history(
        &self,
        channel: &str,
        since: Option<Cursor>,
        limit: Option<usize>,
        retention: Retention,
    ) -> Result<HistoryAnswer, BrokerError> {
        let mut conn = self.conn.clone();
        let (since_epoch, since_offset) = match since {
            Some(c) => (entry::epoch_hex(c.epoch), c.offset),
            None => (String::new(), 0),
        };
        let limit = limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
        let reply: Vec<Value> = self
            .history
            .key(key(channel, 'm'))
            .key(key(channel, 'l'))
            .arg(new_epoch())
            .arg(since_epoch)
            .arg(since_offset)
            .arg(limit)
            .arg(ms(retention.max_age))
            .arg(ms(Some(IDLE_CHANNEL_TTL)))
            .arg(STORED_MESSAGE_COST)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| error(&e))?;
        let mut reply = reply.into_iter();
        let (Some(epoch), Some(head), Some(first), Some(status)) =
            (reply.next(), reply.next(), reply.next(), reply.next())
        else {
            return Err(internal("history reply"));
        };
        let epoch = bytes(&epoch)
            .and_then(entry::parse_epoch)
            .ok_or_else(|| internal("epoch"))?;
        let head = Cursor::new(epoch, int(&head).ok_or_else(|| internal("head"))?);
        let first = int(&first).ok_or_else(|| internal("offset"))?;
        let status = int(&status).ok_or_else(|| internal("status"))?;
        let name: Arc<str> = Arc::from(channel);
        let mut messages = Vec::with_capacity(reply.len());
        for (i, e) in (0u64..).zip(reply) {
            // The entry's bytes become the payload's: moved, not copied.
            let Value::BulkString(data) = e else {
                return Err(internal("log entry"));
            };
            let payload =
                entry::entry_payload(&Bytes::from(data)).ok_or_else(|| internal("log entry"))?;
            messages.push(Message::published(
                name.clone(),
                Cursor::new(epoch, first + i),
                payload,
            ));
        }
        let more = status & 1 != 0;
        Ok(if status & 2 != 0 {
            HistoryAnswer::Reset {
                head,
                earliest: Cursor::new(epoch, first.saturating_sub(1)),
                messages,
                more,
            }
        } else {
            HistoryAnswer::Gap {
                messages,
                head,
                more,
            }
        })
    }

    async fn do_subscribe(&self, channel: &str) -> Result<(), BrokerError> {
        let mut interest = self.interest.lock().await;
        let count = interest.get(channel).copied().unwrap_or(0);
        if count == 0 {
            let mut conn = self.conn.clone();
            conn.subscribe(key(channel, 'f'))
                .await
                .map_err(|e| error(&e))?;
        }
        interest.insert(channel.to_owned(), count + 1);
        Ok(())
    }

    async fn do_unsubscribe(&self, channel: &str) -> Result<(), BrokerError> {
        let mut interest = self.interest.lock().await;
        match interest.get_mut(channel) {
            Some(n) if *n > 1 => *n -= 1,
            Some(_) => {
                interest.remove(channel);
                let mut conn = self.conn.clone();
                conn.unsubscribe(key(channel, 'f'))
                    .await
                    .map_err(|e| error(&e))?;
            }
            None => {}
        }
        Ok(())
    }

    async fn do_channels(&self) -> Result<Vec<ChannelHead>, BrokerError> {
        let mut conn = self.conn.clone();
        let mut names = Vec::new();
        {
            let mut keys = conn
                .scan_match::<_, Vec<u8>>("sb:{*}:m")
                .await
                .map_err(|e| error(&e))?;
            while let Some(k) = futures_next(&mut keys).await {
                if let Some(name) = entry::channel_of(&k, 'm') {
                    names.push(name.to_owned());
                }
            }
        }
        if names.is_empty() {
            // Redis refuses an empty pipeline.
            return Ok(Vec::new());
        }
        // One round trip for all of them.
        let mut pipe = redis::pipe();
        for name in &names {
            pipe.hget(key(name, 'm'), "e")
                .hget(key(name, 'm'), "h")
                .llen(key(name, 'l'));
        }
        let rows: Vec<(Option<String>, Option<u64>, usize)> =
            pipe.query_async(&mut conn).await.map_err(|e| error(&e))?;
        let mut heads = Vec::with_capacity(names.len());
        for (name, (epoch, head, retained)) in names.into_iter().zip(rows) {
            // Expired between the scan and the read: not a channel any more.
            let (Some(epoch), Some(head)) = (epoch, head) else {
                continue;
            };
            let epoch = entry::parse_epoch(epoch.as_bytes()).ok_or_else(|| internal("epoch"))?;
            heads.push(ChannelHead {
                name: Arc::from(name),
                head: Cursor::new(epoch, head),
                retained,
            });
        }
        Ok(heads)
    }
}

impl Broker for RedisBroker {
    fn attach(&self, sink: Weak<dyn FeedSink>) {
        self.feed.sinks.attach(sink);
    }

    fn publish(
        &self,
        channel: &str,
        payload: Payload,
        retention: Retention,
        idempotency: Option<Idempotency<'_>>,
    ) -> BrokerFuture<'_, Published> {
        let channel = channel.to_owned();
        let idempotency = idempotency.map(|i| (i.key.to_owned(), i.window));
        BrokerFuture::boxed(async move {
            self.do_publish(&channel, payload, retention, idempotency)
                .await
        })
    }

    fn broadcast(&self, msg: Message) -> BrokerFuture<'_, ()> {
        BrokerFuture::boxed(async move {
            let Some(feed) = entry::feed_presence_event(&msg) else {
                // Only presence events travel live-only; anything else stays local.
                self.feed.sinks.deliver(&msg);
                return Ok(());
            };
            feed_publish(&mut self.conn.clone(), msg.channel(), &feed).await?;
            Ok(())
        })
    }

    fn history(
        &self,
        channel: &str,
        since: Option<Cursor>,
        limit: Option<usize>,
        retention: Retention,
    ) -> BrokerFuture<'_, HistoryAnswer> {
        let channel = channel.to_owned();
        BrokerFuture::boxed(async move { self.do_history(&channel, since, limit, retention).await })
    }

    fn subscribe(&self, channel: &str) -> BrokerFuture<'_, ()> {
        let channel = channel.to_owned();
        BrokerFuture::boxed(async move { self.do_subscribe(&channel).await })
    }

    fn unsubscribe(&self, channel: &str) -> BrokerFuture<'_, ()> {
        let channel = channel.to_owned();
        BrokerFuture::boxed(async move { self.do_unsubscribe(&channel).await })
    }

    fn presence_add(&self, channel: &str, client: ClientInfo) -> BrokerFuture<'_, bool> {
        let channel = channel.to_owned();
        BrokerFuture::boxed(async move {
            let mut conn = self.conn.clone();
            let value = self.nodes.added(&channel, &client);
            let added: Result<i64, _> = conn
                .hset(key(&channel, 'p'), client.client_id(), value)
                .await;
            if added.is_err() {
                self.nodes.removed(&channel, client.client_id());
            }
            Ok(added.map_err(|e| error(&e))? == 1)
        })
    }

    fn presence_remove(
        &self,
        channel: &str,
        client_id: &str,
    ) -> BrokerFuture<'_, Option<ClientInfo>> {
        let channel = channel.to_owned();
        let client_id = client_id.to_owned();
        BrokerFuture::boxed(async move {
            let mut conn = self.conn.clone();
            self.nodes.removed(&channel, &client_id);
            let removed: Option<Vec<u8>> = self
                .presence_remove
                .key(key(&channel, 'p'))
                .arg(client_id)
                .invoke_async(&mut conn)
                .await
                .map_err(|e| error(&e))?;
            Ok(removed.and_then(|v| entry::presence_client(entry::presence_parts(&v)?.1)))
        })
    }

    fn presence(&self, channel: &str) -> BrokerFuture<'_, Vec<ClientInfo>> {
        let channel = channel.to_owned();
        BrokerFuture::boxed(async move {
            let mut conn = self.conn.clone();
            let values: Vec<Vec<u8>> = conn
                .hvals(key(&channel, 'p'))
                .await
                .map_err(|e| error(&e))?;
            presence::live_clients(
                &mut conn,
                &self.nodes,
                &self.presence_drop,
                &channel,
                values,
            )
            .await
        })
    }

    fn disconnect(&self, target: &Disconnect) -> BrokerFuture<'_, usize> {
        let command = control::encode(self.nodes.id(), target);
        BrokerFuture::boxed(async move {
            let reached = feed_publish(&mut self.conn.clone(), control::CHANNEL, &command).await?;
            // This node's own subscription counts too.
            Ok(reached.saturating_sub(1))
        })
    }

    fn channels(&self) -> BrokerFuture<'_, Vec<ChannelHead>> {
        BrokerFuture::boxed(self.do_channels())
    }

    fn health(&self) -> BrokerFuture<'_, ()> {
        BrokerFuture::boxed(async move {
            let mut conn = self.conn.clone();
            let pong: String = redis::cmd("PING")
                .query_async(&mut conn)
                .await
                .map_err(|e| error(&e))?;
            if pong == "PONG" {
                Ok(())
            } else {
                Err(internal("PING answered something else"))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(redacted("redis://:s3cret@h:6379/0"), "redis://***@h:6379/0");
        assert_eq!(redacted("redis://u:p@ss@h/"), "redis://***@h/");
        assert_eq!(redacted("redis://h:6379/"), "redis://h:6379/");
    }
}
