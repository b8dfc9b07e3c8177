//! What a Redis Cluster needs beyond routing by key: the cluster's primaries (from
//! `CLUSTER NODES`) and health (every slot served, every primary answering).

use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{
    MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo, SingleNodeRoutingInfo,
};
use switchboard_hub::BrokerError;

use crate::connect::{error, internal};

/// A primary's address as `CLUSTER NODES` names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Primary {
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl Primary {
    pub(crate) fn route(&self) -> SingleNodeRoutingInfo {
        SingleNodeRoutingInfo::ByAddress {
            host: self.host.clone(),
            port: self.port,
        }
    }
}

/// The primaries that serve slots and are not marked failed, from a `CLUSTER NODES`
/// answer (one line per node: `id host:port@cport[,hostname] flags master ping pong epoch
/// state slots...`).
pub(crate) fn primaries(nodes: &str) -> Vec<Primary> {
    nodes
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (addr, flags) = (fields.get(1)?, fields.get(2)?);
            let flags: Vec<&str> = flags.split(',').collect();
            if !flags.contains(&"master")
                || flags
                    .iter()
                    .any(|f| f.starts_with("fail") || *f == "noaddr")
                || fields.len() < 9
            {
                return None;
            }
            let addr = addr.split(['@', ',']).next()?;
            let (host, port) = addr.rsplit_once(':')?;
            Some(Primary {
                host: host.trim_matches(['[', ']']).to_owned(),
                port: port.parse().ok()?,
            })
        })
        .collect()
}

/// The primaries serving slots now, as a node of the cluster sees them.
pub(crate) async fn primaries_now(
    conn: &mut ClusterConnection,
) -> Result<Vec<Primary>, BrokerError> {
    Ok(primaries(&ask_any(conn, "NODES").await?))
}

async fn ask_any(conn: &mut ClusterConnection, cmd: &str) -> Result<String, BrokerError> {
    let answer = conn
        .route_command(
            redis::cmd("CLUSTER").arg(cmd).clone(),
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
        )
        .await
        .map_err(|e| error(&e))?;
    redis::from_redis_value::<String>(answer).map_err(|_| internal("CLUSTER"))
}

/// Healthy when the cluster says every slot is served (`cluster_state:ok`) and every
/// primary the client knows answers a `PING`.
pub(crate) async fn health(mut conn: ClusterConnection) -> Result<(), BrokerError> {
    let info = ask_any(&mut conn, "INFO").await?;
    if !info.lines().any(|l| l.trim() == "cluster_state:ok") {
        return Err(BrokerError::Unavailable(
            "Redis Cluster: cluster_state is not ok (a slot has no primary)".into(),
        ));
    }
    conn.route_command(
        redis::cmd("PING"),
        RoutingInfo::MultiNode((
            MultipleNodeRoutingInfo::AllMasters,
            Some(ResponsePolicy::AllSucceeded),
        )),
    )
    .await
    .map_err(|e| error(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{primaries, Primary};

    #[test]
    fn primaries_serve_slots_and_are_not_failed() {
        let nodes = "\
a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460
a2 127.0.0.1:7001@17001,host2 master - 0 0 2 connected 5461-10922
a3 127.0.0.1:7002@17002 master,fail - 0 0 3 connected
a4 127.0.0.1:7003@17003 slave a1 0 0 1 connected
a5 127.0.0.1:7004@17004 master - 0 0 5 connected
a6 ::1:7005@17005 master - 0 0 6 connected 10923-16383
";
        let p = |host: &str, port| Primary {
            host: host.into(),
            port,
        };
        assert_eq!(
            primaries(nodes),
            [p("127.0.0.1", 7000), p("127.0.0.1", 7001), p("::1", 7005)]
        );
    }
}
