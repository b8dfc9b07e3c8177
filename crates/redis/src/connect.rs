//! The forms of the Redis URL and the connections made from it: one Redis server
//! (`redis://host:port/db`, kept by the redis crate's `ConnectionManager`) or a Redis
//! Cluster (`redis+cluster://host:port,host:port/`, seed nodes, kept by the crate's
//! cluster client, which follows slot moves and retries on `MOVED`/`ASK`). Both speak
//! RESP3. [`Conn`] is either, behind the crate's `ConnectionLike`, so commands and
//! scripts are written once.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, ProtocolVersion, PushInfo, RedisError, RedisFuture, Value};
use switchboard_hub::BrokerError;

/// The scheme of a cluster URL; `redis://` (or `rediss://`) is one server.
const CLUSTER_SCHEME: &str = "redis+cluster://";

/// Where the broker connects: parsed from the URL, without connecting.
#[derive(Clone, Debug)]
pub(crate) enum Target {
    /// One Redis server (or a Sentinel-managed primary behind one address).
    Single(redis::ConnectionInfo),
    /// A Redis Cluster, by its seed nodes (`redis://[user:password@]host:port/` each).
    Cluster(Vec<String>),
}

impl Target {
    /// Parses `url`; errors name the URL without its password.
    pub(crate) fn parse(url: &str) -> Result<Target, BrokerError> {
        let bad = |why: String| BrokerError::Unavailable(format!("{}: {why}", redacted(url)));
        let Some(rest) = url.strip_prefix(CLUSTER_SCHEME) else {
            let info = redis::IntoConnectionInfo::into_connection_info(url)
                .map_err(|e| bad(e.to_string()))?;
            return Ok(Target::Single(info));
        };
        let (userinfo, hosts) = match rest.rfind('@') {
            Some(at) => (&rest[..=at], &rest[at + 1..]),
            None => ("", rest),
        };
        let hosts = hosts.strip_suffix('/').unwrap_or(hosts);
        if hosts.contains('/') || hosts.contains('?') {
            return Err(bad(
                "a cluster URL has no database or options (a cluster has database 0 only)".into(),
            ));
        }
        let seeds: Vec<String> = hosts
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(|h| format!("redis://{userinfo}{h}/"))
            .collect();
        if seeds.is_empty() {
            return Err(bad(
                "no seed node (redis+cluster://host:port,host:port/)".into()
            ));
        }
        for seed in &seeds {
            redis::IntoConnectionInfo::into_connection_info(seed.as_str())
                .map_err(|e| bad(e.to_string()))?;
        }
        Ok(Target::Cluster(seeds))
    }

    /// Connects; with `push`, pushed messages (the feed, disconnections) go to it and
    /// subscriptions are made again after reconnections.
    pub(crate) async fn connect(
        &self,
        timeout: Duration,
        max_reconnect_delay: Duration,
        push: Option<Push>,
    ) -> Result<Conn, RedisError> {
        match self {
            Target::Single(info) => {
                let settings = info
                    .redis_settings()
                    .clone()
                    .set_protocol(ProtocolVersion::RESP3);
                let client = redis::Client::open(info.clone().set_redis_settings(settings))?;
                let mut config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_max_delay(max_reconnect_delay)
                    .set_number_of_retries(2);
                if let Some(push) = push {
                    config = config.set_automatic_resubscription().set_push_sender(
                        move |info: PushInfo| {
                            push(info);
                            Ok::<(), std::convert::Infallible>(())
                        },
                    );
                }
                Ok(Conn::Single(
                    client.get_connection_manager_with_config(config).await?,
                ))
            }
            Target::Cluster(seeds) => {
                let mut builder = ClusterClientBuilder::new(seeds.iter().map(String::as_str))
                    .use_protocol(ProtocolVersion::RESP3)
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .max_retry_wait(
                        u64::try_from(max_reconnect_delay.as_millis()).unwrap_or(u64::MAX),
                    );
                if let Some(push) = push {
                    builder = builder.push_sender(move |info: PushInfo| {
                        push(info);
                        Ok::<(), std::convert::Infallible>(())
                    });
                }
                Ok(Conn::Cluster(
                    builder.build()?.get_async_connection().await?,
                ))
            }
        }
    }
}

/// A push handler: called on the connection's reader for each pushed message.
pub(crate) type Push = std::sync::Arc<dyn Fn(PushInfo) + Send + Sync>;

/// A connection to one server or to a cluster; cheap to clone (clones share it).
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Conn {
    /// `1` to a script on a cluster, `0` on one server (see `scripts`).
    pub(crate) fn cluster_flag(&self) -> u8 {
        u8::from(matches!(self, Conn::Cluster(_)))
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// A Redis error as the hub's.
pub(crate) fn error(e: &RedisError) -> BrokerError {
    if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal() {
        BrokerError::Unavailable(e.to_string())
    } else {
        BrokerError::Internal(e.to_string())
    }
}

/// An answer from Redis that is not what was asked for.
pub(crate) fn internal(what: &str) -> BrokerError {
    BrokerError::Internal(format!("unexpected answer from Redis: {what}"))
}

/// `url` without its password, for messages and logs.
pub(crate) fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::{redacted, Target};

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(redacted("redis://:s3cret@h:6379/0"), "redis://***@h:6379/0");
        assert_eq!(redacted("redis://u:p@ss@h/"), "redis://***@h/");
        assert_eq!(redacted("redis://h:6379/"), "redis://h:6379/");
        assert_eq!(
            redacted("redis+cluster://u:pw@a:1,b:2/"),
            "redis+cluster://***@a:1,b:2/"
        );
    }

    #[test]
    fn cluster_urls_name_seed_nodes() {
        let Target::Cluster(seeds) = Target::parse("redis+cluster://a:7000,b:7001/").unwrap()
        else {
            panic!("a cluster")
        };
        assert_eq!(seeds, ["redis://a:7000/", "redis://b:7001/"]);
        let Target::Cluster(seeds) = Target::parse("redis+cluster://u:p@w@a:7000").unwrap() else {
            panic!("a cluster")
        };
        assert_eq!(seeds, ["redis://u:p@w@a:7000/"]);
        assert!(Target::parse("redis+cluster:///").is_err());
        let err = Target::parse("redis+cluster://:secret@a:1/2").unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
        assert!(matches!(
            Target::parse("redis://h:6379/").unwrap(),
            Target::Single(_)
        ));
    }
}
