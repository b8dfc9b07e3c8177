//! Redis calls the broker's modules share, on one server or a cluster alike: a publish on
//! a feed (a channel's, or the control feed), and the keys a `SCAN` finds (a cluster's
//! primaries one by one: a `SCAN` sees one node's keys only).

use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::RoutingInfo;
use redis::AsyncCommands;
use switchboard_hub::BrokerError;

use crate::cluster;
use crate::connect::{error, internal, Conn};
use crate::entry::key;

/// How many keys one `SCAN` step asks a cluster node for.
const SCAN_COUNT: usize = 1000;

/// Publishes `data` on the feed of `channel` (a channel's, or `control::CHANNEL`):
/// sharded pub/sub on a cluster, as the feed subscribes. Resolves with how many
/// subscribed connections (nodes) Redis handed it to.
pub(crate) async fn feed_publish(
    conn: &mut Conn,
    channel: &str,
    data: &[u8],
) -> Result<usize, BrokerError> {
    let verb = match conn {
        Conn::Single(_) => "PUBLISH",
        Conn::Cluster(_) => "SPUBLISH",
    };
    let n: i64 = redis::cmd(verb)
        .arg(key(channel, 'f'))
        .arg(data)
        .query_async(conn)
        .await
        .map_err(|e| error(&e))?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Every key matching `pattern`, on one server or on every primary of a cluster.
pub(crate) async fn scan_keys(conn: &mut Conn, pattern: &str) -> Result<Vec<Vec<u8>>, BrokerError> {
    match conn {
        Conn::Single(c) => {
            let mut found = Vec::new();
            let mut keys = c
                .scan_match::<_, Vec<u8>>(pattern)
                .await
                .map_err(|e| error(&e))?;
            while let Some(k) = futures_next(&mut keys).await {
                found.push(k);
            }
            Ok(found)
        }
        Conn::Cluster(c) => {
            let mut found = Vec::new();
            for primary in cluster::primaries_now(c).await? {
                found.extend(scan_node(c, &primary, pattern).await?);
            }
            Ok(found)
        }
    }
}

/// The keys matching `pattern` that one cluster `primary` holds.
pub(crate) async fn scan_node(
    conn: &mut ClusterConnection,
    primary: &cluster::Primary,
    pattern: &str,
) -> Result<Vec<Vec<u8>>, BrokerError> {
    let mut found = Vec::new();
    let mut cursor = 0u64;
    loop {
        let answer = conn
            .route_command(
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(SCAN_COUNT)
                    .clone(),
                RoutingInfo::SingleNode(primary.route()),
            )
            .await
            .map_err(|e| error(&e))?;
        let (next, keys): (u64, Vec<Vec<u8>>) =
            redis::from_redis_value(answer).map_err(|_| internal("SCAN"))?;
        found.extend(keys);
        if next == 0 {
            return Ok(found);
        }
        cursor = next;
    }
}

/// The next item of a redis-crate async iterator.
async fn futures_next<T: redis::FromRedisValue + Unpin + Send>(
    it: &mut redis::AsyncIter<'_, T>,
) -> Option<T> {
    loop {
        match it.next_item().await {
            Some(Ok(v)) => return Some(v),
            // A key that does not decode is not one of ours.
            Some(Err(_)) => continue,
            None => return None,
        }
    }
}
