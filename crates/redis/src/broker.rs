//! [`RedisBroker`]: the hub's [`Broker`] on a Redis server or a Redis Cluster, so that
//! several nodes share channel logs, epochs, presence and the live feed.
//!
//! Two connections per node, both RESP3 and both kept (reconnected) by the redis crate
//! (module `connect`): one carries the commands and scripts, the other only the live
//! feed's subscriptions (module `feed`), so a slow history read never holds up live
//! delivery.
//!
//! The node's heartbeat and the filtering of presence entries of dead nodes are in
//! module `presence`; cluster-wide commands ride the feed on a reserved channel (module
//! `control`), subscribed at connect like a channel's feed.
//!
//! Every operation has a deadline ([`RedisOptions::timeout`]): with Redis unreachable,
//! publishes and subscribes fail with [`BrokerError::Unavailable`] (HTTP 503) instead of
//! waiting.

use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use redis::{AsyncCommands, Script, Value};
use switchboard_hub::{
    Broker, BrokerError, BrokerFuture, ChannelHead, ClientInfo, Cursor, Disconnect, Epoch,
    FeedSink, HistoryAnswer, Idempotency, Message, Payload, Published, Retention,
    STORED_MESSAGE_COST,
};

use crate::calls::feed_publish;
use crate::connect::{error, internal, redacted, Conn, Target};
use crate::entry::{self, key};
use crate::feed::{AbortOnDrop, Feed};
use crate::presence::{self, Nodes};
use crate::{channels, cluster, control, scripts};

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

/// A [`Broker`] on Redis. See the module docs.
pub struct RedisBroker {
    /// Commands and scripts.
    conn: Conn,
    feed: Feed,
    publish: Script,
    history: Script,
    presence_remove: Script,
    presence_drop: Script,
    /// This node's id, presence entries and heartbeat (module `presence`).
    nodes: Arc<Nodes>,
    _heartbeat: AbortOnDrop,
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
    /// password if needed), or to a Redis Cluster (`redis+cluster://host:port,host:port/`,
    /// seed nodes, with `user:password@` before them if needed). Fails if it cannot be
    /// reached now.
    pub async fn connect(url: &str, options: RedisOptions) -> Result<Self, BrokerError> {
        let shown = redacted(url);
        let target = Target::parse(url)?;
        let unavailable = |e: String| BrokerError::Unavailable(format!("{shown}: {e}"));
        let nodes = Arc::new(Nodes::new());
        let connecting = async {
            let conn = target
                .connect(options.timeout, options.max_reconnect_delay, None)
                .await?;
            let feed = Feed::connect(
                &target,
                nodes.id().to_owned(),
                options.timeout,
                options.max_reconnect_delay,
            )
            .await?;
            Ok::<_, redis::RedisError>((conn, feed))
        };
        let (conn, feed) = tokio::time::timeout(options.timeout, connecting)
            .await
            .map_err(|_| unavailable(format!("no answer in {:?}", options.timeout)))?
            .map_err(|e| unavailable(e.to_string()))?;
        presence::beat(&mut conn.clone(), &nodes).await?;
        let heartbeat = tokio::spawn(presence::keep_beating(conn.clone(), nodes.clone()));
        let broker = RedisBroker {
            conn,
            feed,
            publish: Script::new(&scripts::publish()),
            history: Script::new(&scripts::history()),
            presence_remove: Script::new(scripts::PRESENCE_REMOVE),
            presence_drop: Script::new(scripts::PRESENCE_DROP),
            nodes,
            _heartbeat: AbortOnDrop(heartbeat),
            url: shown,
        };
        // The control feed rides the channels' feed: subscribed and resubscribed alike.
        broker
            .feed
            .subscribe(control::CHANNEL)
            .await
            .map_err(|e| error(&e))?;
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
            .arg(self.feed.publish_verb())
            .arg(self.conn.cluster_flag())
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
            .arg(self.conn.cluster_flag())
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
}

impl Broker for RedisBroker {
    fn attach(&self, sink: Weak<dyn FeedSink>) {
        self.feed.sinks().attach(sink);
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
                self.feed.sinks().deliver(&msg);
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
        BrokerFuture::boxed(
            async move { self.feed.subscribe(&channel).await.map_err(|e| error(&e)) },
        )
    }

    fn unsubscribe(&self, channel: &str) -> BrokerFuture<'_, ()> {
        let channel = channel.to_owned();
        BrokerFuture::boxed(
            async move { self.feed.unsubscribe(&channel).await.map_err(|e| error(&e)) },
        )
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
        BrokerFuture::boxed(channels::of(self.conn.clone()))
    }

    fn health(&self) -> BrokerFuture<'_, ()> {
        BrokerFuture::boxed(async move {
            match self.conn.clone() {
                Conn::Single(mut conn) => {
                    let pong: String = redis::cmd("PING")
                        .query_async(&mut conn)
                        .await
                        .map_err(|e| error(&e))?;
                    if pong == "PONG" {
                        Ok(())
                    } else {
                        Err(internal("PING answered something else"))
                    }
                }
                Conn::Cluster(conn) => cluster::health(conn).await,
            }
        })
    }
}
