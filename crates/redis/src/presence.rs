//! Presence that outlives no node: each node's heartbeat key, the node id every presence
//! entry records, and the reads that leave out (and delete) the entries of nodes whose
//! heartbeat stopped.
//!
//! Each node has a random id and keeps `sb:{!nodes}:ID` alive: set with a TTL of
//! [`HEARTBEAT_TTL`], refreshed every [`HEARTBEAT_EVERY`]. A presence entry is stored as
//! `<node id>:<entry JSON>`. A presence read checks the nodes its entries name (one
//! `EXISTS` per node not seen alive within [`ALIVE_FOR`], all in one pipeline); the
//! entries of a node whose key is gone are left out of the answer and deleted, each only
//! if it is unchanged (`scripts::PRESENCE_DROP`), and the node that deleted one announces
//! its `leave` on the channel's feed. A node killed at time t refreshed its key at most at
//! t, so the key is gone by t + 15 s and every read from t + 16 s on (the alive cache)
//! leaves its entries out.
//!
//! Why a heartbeat per node rather than a TTL per entry: Redis hashes have no per-field
//! expiry before 7.4, so entry TTLs would mean one key per entry (or a sorted set of
//! deadlines per channel) and each live node rewriting every one of its entries every
//! interval: a cost per connection per interval, 100,000 writes every 5 s for 100,000
//! subscribers. The heartbeat is one `SET` per node per interval, whatever the node
//! holds; the cost moves to reads, one pipelined `EXISTS` per other node at most once a
//! second. Keys stay one slot each: the heartbeat key and a channel's presence hash are
//! never read by one script.
//!
//! Entries of a dead node nobody reads are reaped too: each beat also moves the node's
//! deadline in `sb:nodes` (a sorted set, Redis's clock) and returns the nodes whose
//! deadline has passed; the node that removes one from the set (one `ZREM` wins) scans
//! the presence hashes (`SCAN sb:{*}:p`) and drops its entries, announcing each `leave`.
//! So a `leave` is announced within 20 s of the death (15 s TTL, then the next beat of
//! any node; stated as 25 s for the beat's round trips) even on a channel nobody reads;
//! the scan costs one pass over the key space per node death, nothing while nodes live.
//!
//! A deadline has passed when Redis's clock is beyond it, as a key has expired only when
//! the clock is beyond its expiry (Redis keeps a key through the millisecond of its
//! expiry): a beat writes the key before the deadline, so an overdue node's key has
//! expired even when both fall in the millisecond of the beat that finds it. A node can
//! still be overdue while its key lives, when it was killed between the two writes of a
//! beat or its second write failed: the node that claimed it then drops nothing and puts
//! it back, overdue, as after an error while reaping, and the next beat looks again. No
//! node leaves the set before its entries are gone.
//!
//! A node cut off from Redis for longer than the TTL is taken for dead: other nodes drop
//! its entries (with a `leave`). When its heartbeat finds its key gone, it writes back
//! the entries it holds (remembered here) and announces a `join` for each that was gone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::Script;
use switchboard_hub::{BrokerError, ClientInfo, Event, Message};

use crate::calls::{feed_publish, scan_keys};
use crate::connect::{error, Conn};
use crate::entry::{self, key};
use crate::scripts;

/// How long a node's heartbeat key lives unless refreshed.
pub(crate) const HEARTBEAT_TTL: Duration = Duration::from_secs(15);

/// How often a live node refreshes it: a third of the TTL, so two refreshes may fail
/// (Redis slow, a reconnect) before other nodes take the node for dead.
pub(crate) const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

/// How long a node seen alive is believed alive without asking Redis again.
pub(crate) const ALIVE_FOR: Duration = Duration::from_secs(1);

/// This node's id and presence entries, and the other nodes recently seen alive.
#[derive(Debug)]
pub(crate) struct Nodes {
    id: String,
    alive: Mutex<HashMap<String, Instant>>,
    /// (channel, client id) → the stored value, to write back after this node's key
    /// expired (see the module docs).
    own: Mutex<HashMap<(String, String), Vec<u8>>>,
}

impl Nodes {
    /// A node with a fresh random id.
    pub(crate) fn new() -> Self {
        Nodes {
            id: format!("{:016x}", rand::random::<u64>()),
            alive: Mutex::default(),
            own: Mutex::default(),
        }
    }

    /// This node's id.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// The value to store for `client` on `channel`, remembered as this node's.
    pub(crate) fn added(&self, channel: &str, client: &ClientInfo) -> Vec<u8> {
        let value = entry::presence_value(&self.id, client);
        lock(&self.own).insert(
            (channel.to_owned(), client.client_id().to_owned()),
            value.clone(),
        );
        value
    }

    /// `client` left `channel` on this node.
    pub(crate) fn removed(&self, channel: &str, client_id: &str) {
        lock(&self.own).remove(&(channel.to_owned(), client_id.to_owned()));
    }

    /// Of the nodes `ids`, those to ask Redis about: not this one, not seen alive lately.
    fn unknown<'a>(&self, ids: impl Iterator<Item = &'a str>, now: Instant) -> Vec<String> {
        let alive = lock(&self.alive);
        let mut out: Vec<String> = Vec::new();
        for id in ids {
            let fresh = alive
                .get(id)
                .is_some_and(|seen| now.duration_since(*seen) < ALIVE_FOR);
            if id != self.id && !fresh && !out.iter().any(|o| o == id) {
                out.push(id.to_owned());
            }
        }
        out
    }

    fn seen_alive(&self, id: &str, now: Instant) {
        let mut alive = lock(&self.alive);
        // Forget nodes not seen for a while (dead ones are never seen again).
        alive.retain(|_, seen| now.duration_since(*seen) < ALIVE_FOR * 60);
        alive.insert(id.to_owned(), now);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn ttl_ms() -> u64 {
    u64::try_from(HEARTBEAT_TTL.as_millis()).unwrap_or(u64::MAX)
}

/// What a heartbeat found.
pub(crate) struct Beat {
    /// This node's key was still there (else other nodes may have dropped its entries).
    pub(crate) was_alive: bool,
    /// Nodes whose deadline has passed.
    pub(crate) overdue: Vec<String>,
}

/// Refreshes this node's key and deadline.
pub(crate) async fn beat(conn: &mut Conn, nodes: &Nodes) -> Result<Beat, BrokerError> {
    let before: Option<String> = redis::cmd("SET")
        .arg(entry::node_key(&nodes.id))
        .arg(&nodes.id)
        .arg("PX")
        .arg(ttl_ms())
        .arg("GET")
        .query_async(conn)
        .await
        .map_err(|e| error(&e))?;
    let overdue: Vec<String> = Script::new(scripts::NODE_BEAT)
        .key(entry::NODES)
        .arg(&nodes.id)
        .arg(ttl_ms())
        .invoke_async(conn)
        .await
        .map_err(|e| error(&e))?;
    Ok(Beat {
        was_alive: before.is_some(),
        overdue,
    })
}

/// Drops the presence entries of the overdue node `id` from every channel (see the
/// module docs), unless another node claimed it first; puts it back in the set, overdue,
/// when its key still lives or the entries could not all be dropped.
async fn reap(
    conn: &mut Conn,
    nodes: &Nodes,
    drop_script: &Script,
    id: &str,
) -> Result<(), BrokerError> {
    let claimed: i64 = redis::cmd("ZREM")
        .arg(entry::NODES)
        .arg(id)
        .query_async(conn)
        .await
        .map_err(|e| error(&e))?;
    if claimed != 1 {
        return Ok(());
    }
    let reaped = drop_entries(conn, nodes, drop_script, id).await;
    if matches!(reaped, Ok(true)) {
        return Ok(());
    }
    // Overdue again at once; `NX`: a deadline the node set since (it beat) stays.
    let put_back: Result<i64, _> = redis::cmd("ZADD")
        .arg(entry::NODES)
        .arg("NX")
        .arg(0)
        .arg(id)
        .query_async(conn)
        .await;
    reaped?;
    put_back.map_err(|e| error(&e))?;
    Ok(())
}

/// Drops the presence entries of the claimed node `id` from every channel; `false`,
/// dropping nothing, when its heartbeat key still lives.
async fn drop_entries(
    conn: &mut Conn,
    nodes: &Nodes,
    drop_script: &Script,
    id: &str,
) -> Result<bool, BrokerError> {
    let alive: bool = redis::cmd("EXISTS")
        .arg(entry::node_key(id))
        .query_async(conn)
        .await
        .map_err(|e| error(&e))?;
    if alive {
        tracing::debug!(
            node = id,
            "an overdue node's key still lives; checked again"
        );
        return Ok(false);
    }
    // Seen alive just before its key expired: ask Redis again, not the cache.
    lock(&nodes.alive).remove(id);
    let keys = scan_keys(conn, "sb:{*}:p").await?;
    tracing::info!(
        node = id,
        hashes = keys.len(),
        "reaping a dead node's presence"
    );
    for k in keys {
        let Some(channel) = entry::channel_of(&k, 'p') else {
            continue;
        };
        let values: Vec<Vec<u8>> = redis::cmd("HVALS")
            .arg(&k)
            .query_async(conn)
            .await
            .map_err(|e| error(&e))?;
        // Only hashes holding one of its entries are worth the liveness check.
        let holds = values
            .iter()
            .any(|v| entry::presence_parts(v).is_some_and(|(n, _)| n == Some(id)));
        if holds {
            live_clients(conn, nodes, drop_script, channel, values).await?;
        }
    }
    Ok(true)
}

/// Beats every [`HEARTBEAT_EVERY`]; after a beat that found the key gone, writes this
/// node's entries back (see the module docs). Runs until aborted.
pub(crate) async fn keep_beating(mut conn: Conn, nodes: Arc<Nodes>) {
    let drop_script = Script::new(scripts::PRESENCE_DROP);
    let mut every = tokio::time::interval(HEARTBEAT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is at once; the broker has just beaten.
    every.tick().await;
    loop {
        every.tick().await;
        let overdue = match beat(&mut conn, &nodes).await {
            Ok(Beat {
                was_alive: true,
                overdue,
            }) => overdue,
            Ok(Beat {
                was_alive: false,
                overdue,
            }) => {
                tracing::warn!(
                    node = nodes.id,
                    "this node's Redis heartbeat had expired; writing its presence back"
                );
                if let Err(e) = restore(&mut conn, &nodes).await {
                    tracing::warn!(error = %e, "presence not written back; retried at the next beat");
                    // Make the next beat find the key gone again.
                    let _: Result<i64, _> = redis::cmd("DEL")
                        .arg(entry::node_key(&nodes.id))
                        .query_async(&mut conn)
                        .await;
                }
                overdue
            }
            Err(e) => {
                tracing::debug!(error = %e, "heartbeat failed; retried");
                continue;
            }
        };
        for id in overdue.iter().filter(|id| **id != nodes.id) {
            if let Err(e) = reap(&mut conn, &nodes, &drop_script, id).await {
                tracing::warn!(node = id, error = %e, "dead node's presence not reaped; retried at the next beat");
            }
        }
    }
}

/// Writes this node's entries back, announcing a `join` for each that was gone.
async fn restore(conn: &mut Conn, nodes: &Nodes) -> Result<(), BrokerError> {
    let own: Vec<_> = lock(&nodes.own)
        .iter()
        .map(|((channel, client), value)| (channel.clone(), client.clone(), value.clone()))
        .collect();
    for (channel, client, value) in own {
        let added: i64 = redis::cmd("HSET")
            .arg(key(&channel, 'p'))
            .arg(&client)
            .arg(&value)
            .query_async(conn)
            .await
            .map_err(|e| error(&e))?;
        if added == 1 {
            announce(conn, &channel, &value, Event::Join).await?;
        }
    }
    Ok(())
}

/// Publishes `join`/`leave` for the stored presence `value` on `channel`'s feed.
async fn announce(
    conn: &mut Conn,
    channel: &str,
    value: &[u8],
    event: Event,
) -> Result<(), BrokerError> {
    let Some(client) =
        entry::presence_parts(value).and_then(|(_, json)| entry::presence_client(json))
    else {
        return Ok(());
    };
    let msg = Message::presence_event(Arc::from(channel), event, &client);
    if let Some(data) = entry::feed_presence_event(&msg) {
        feed_publish(conn, channel, &data).await?;
    }
    Ok(())
}

/// The clients of the stored presence `values` of `channel` whose nodes are alive; the
/// entries of dead nodes are deleted, with a `leave` for each this call deleted.
pub(crate) async fn live_clients(
    conn: &mut Conn,
    nodes: &Nodes,
    drop_script: &Script,
    channel: &str,
    values: Vec<Vec<u8>>,
) -> Result<Vec<ClientInfo>, BrokerError> {
    let now = Instant::now();
    let unknown = nodes.unknown(
        values.iter().filter_map(|v| entry::presence_parts(v)?.0),
        now,
    );
    let mut dead: Vec<String> = Vec::new();
    if !unknown.is_empty() {
        let mut pipe = redis::pipe();
        for id in &unknown {
            pipe.exists(entry::node_key(id));
        }
        let exists: Vec<bool> = pipe.query_async(conn).await.map_err(|e| error(&e))?;
        for (id, alive) in unknown.into_iter().zip(exists) {
            if alive {
                nodes.seen_alive(&id, now);
            } else {
                dead.push(id);
            }
        }
    }
    let mut clients = Vec::with_capacity(values.len());
    for value in &values {
        let Some((node, json)) = entry::presence_parts(value) else {
            continue;
        };
        let Some(client) = entry::presence_client(json) else {
            continue;
        };
        if !node.is_some_and(|n| dead.iter().any(|d| d == n)) {
            clients.push(client);
            continue;
        }
        let dropped: i64 = drop_script
            .key(key(channel, 'p'))
            .arg(client.client_id())
            .arg(&value[..])
            .invoke_async(conn)
            .await
            .map_err(|e| error(&e))?;
        if dropped == 1 {
            announce(conn, channel, value, Event::Leave).await?;
        }
    }
    Ok(clients)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_other_nodes_not_seen_lately_are_asked_about() {
        let nodes = Nodes::new();
        let me = nodes.id().to_owned();
        let t = Instant::now();
        let ids = [me.as_str(), "a", "b", "a"];
        assert_eq!(nodes.unknown(ids.into_iter(), t), ["a", "b"]);
        nodes.seen_alive("a", t);
        assert_eq!(nodes.unknown(ids.into_iter(), t), ["b"]);
        assert_eq!(
            nodes.unknown(ids.into_iter(), t + ALIVE_FOR),
            ["a", "b"],
            "asked again once the cache is stale"
        );
    }

    #[test]
    fn own_entries_are_remembered_until_removed() {
        let nodes = Nodes::new();
        let value = nodes.added("c", &ClientInfo::new("x"));
        let (node, _) = entry::presence_parts(&value).unwrap();
        assert_eq!(node, Some(nodes.id()));
        assert_eq!(lock(&nodes.own).len(), 1);
        nodes.removed("c", "x");
        assert!(lock(&nodes.own).is_empty());
    }
}
