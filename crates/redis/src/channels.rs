//! `/api/channels` from Redis: every channel whose meta key exists, with its head and
//! how many messages it retains. One server is read with one `SCAN` and one pipeline; a
//! cluster primary by primary (a `SCAN` sees one node's keys only, and a pipeline goes
//! to the node that holds its keys).

use std::sync::Arc;

use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::RoutingInfo;
use redis::{AsyncCommands, Value};
use switchboard_hub::{BrokerError, ChannelHead, Cursor};

use crate::cluster;
use crate::connect::{error, internal, Conn};
use crate::entry::{self, key};

/// How many keys one `SCAN` step asks a cluster node for.
const SCAN_COUNT: usize = 1000;

/// Every channel `conn` reaches.
pub(crate) async fn of(conn: Conn) -> Result<Vec<ChannelHead>, BrokerError> {
    match conn {
        Conn::Single(c) => single(c).await,
        Conn::Cluster(c) => cluster(c).await,
    }
}

/// Every channel held by one server: one `SCAN`, then one pipelined read.
async fn single(mut conn: ConnectionManager) -> Result<Vec<ChannelHead>, BrokerError> {
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
    channel_heads(names, rows)
}

/// Every channel of the cluster, read primary by primary.
async fn cluster(mut conn: ClusterConnection) -> Result<Vec<ChannelHead>, BrokerError> {
    let mut heads = Vec::new();
    for primary in cluster::primaries_now(&mut conn).await? {
        let names = scan(&mut conn, &primary).await?;
        if names.is_empty() {
            continue;
        }
        let mut pipe = redis::pipe();
        for name in &names {
            pipe.hget(key(name, 'm'), "e")
                .hget(key(name, 'm'), "h")
                .llen(key(name, 'l'));
        }
        let values = conn
            .route_pipeline(pipe, 0, names.len() * 3, primary.route())
            .await
            .map_err(|e| error(&e))?;
        let rows: Vec<(Option<String>, Option<u64>, usize)> = values
            .chunks(3)
            .map(|row| redis::from_redis_value_ref(&Value::Array(row.to_vec())))
            .collect::<Result<_, _>>()
            .map_err(|_| internal("channel heads"))?;
        heads.extend(channel_heads(names, rows)?);
    }
    Ok(heads)
}

/// The channel names whose meta key `primary` holds.
async fn scan(
    conn: &mut ClusterConnection,
    primary: &cluster::Primary,
) -> Result<Vec<String>, BrokerError> {
    let mut names = Vec::new();
    let mut cursor = 0u64;
    loop {
        let answer = conn
            .route_command(
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg("sb:{*}:m")
                    .arg("COUNT")
                    .arg(SCAN_COUNT)
                    .clone(),
                RoutingInfo::SingleNode(primary.route()),
            )
            .await
            .map_err(|e| error(&e))?;
        let (next, keys): (u64, Vec<Vec<u8>>) =
            redis::from_redis_value(answer).map_err(|_| internal("SCAN"))?;
        names.extend(
            keys.iter()
                .filter_map(|k| entry::channel_of(k, 'm'))
                .map(str::to_owned),
        );
        if next == 0 {
            return Ok(names);
        }
        cursor = next;
    }
}

/// `names` with what a pipeline of `HGET m e`, `HGET m h`, `LLEN l` answered for each;
/// a channel that expired between the scan and the read is not a channel any more.
fn channel_heads(
    names: Vec<String>,
    rows: Vec<(Option<String>, Option<u64>, usize)>,
) -> Result<Vec<ChannelHead>, BrokerError> {
    let mut heads = Vec::with_capacity(names.len());
    for (name, (epoch, head, retained)) in names.into_iter().zip(rows) {
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
