//! `/api/channels` from Redis: every channel whose meta key exists, with its head and
//! how many messages it retains. One server is read with one `SCAN` and one pipeline; a
//! cluster primary by primary (a `SCAN` sees one node's keys only, and a pipeline goes
//! to the node that holds its keys).

use std::sync::Arc;

use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::Value;
use switchboard_hub::{BrokerError, ChannelHead, Cursor};

use crate::connect::{error, internal, Conn};
use crate::entry::{self, key};
use crate::{calls, cluster};

/// The pattern of the channels' meta keys.
const META: &str = "sb:{*}:m";

/// Every channel `conn` reaches.
pub(crate) async fn of(conn: Conn) -> Result<Vec<ChannelHead>, BrokerError> {
    match conn {
        Conn::Single(c) => single(c).await,
        Conn::Cluster(c) => cluster(c).await,
    }
}

/// Every channel held by one server: one `SCAN`, then one pipelined read.
async fn single(conn: ConnectionManager) -> Result<Vec<ChannelHead>, BrokerError> {
    let mut conn = Conn::Single(conn);
    let names = names(calls::scan_keys(&mut conn, META).await?);
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

/// The channel names of meta keys.
fn names(keys: Vec<Vec<u8>>) -> Vec<String> {
    keys.iter()
        .filter_map(|k| entry::channel_of(k, 'm'))
        .map(str::to_owned)
        .collect()
}

/// Every channel of the cluster, read primary by primary.
async fn cluster(mut conn: ClusterConnection) -> Result<Vec<ChannelHead>, BrokerError> {
    let mut heads = Vec::new();
    for primary in cluster::primaries_now(&mut conn).await? {
        let names = names(calls::scan_node(&mut conn, &primary, META).await?);
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
