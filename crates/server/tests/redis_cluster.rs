//! Two nodes on a Redis Cluster of three primaries (feature `redis`): every transport
//! delivers across nodes on channels of every shard, `/api/channels` answers for the
//! whole cluster, and a long-poll client alternating nodes on every request gets every
//! message exactly once. Each test starts its own cluster on free loopback ports and
//! stops it by PID.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{bounded, config, json, raw, url, KEY};
use switchboard_client::{ApiClient, Client, Event, ReceivedData, Transport};
use switchboard_proto::Cursor;
use switchboard_redis::test_server::RedisCluster;
use switchboard_redis::{RedisBroker, RedisOptions};
use switchboard_server::server::{start_with, Running};
use tokio::net::TcpListener;

async fn node(cluster: &RedisCluster) -> Running {
    let broker = RedisBroker::connect(&cluster.url(), RedisOptions::default())
        .await
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    start_with(listener, config(), Arc::new(broker)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transport_delivers_across_nodes_on_every_shard() {
    let cluster = RedisCluster::start();
    let names = cluster.channels_on_every_shard("room");
    let (one, two) = (node(&cluster).await, node(&cluster).await);
    let on_two = Client::new(&url(&two)).unwrap();
    let mut subs = Vec::new();
    for name in &names {
        for t in [Transport::WebSocket, Transport::Sse, Transport::Stream] {
            subs.push((
                name.clone(),
                on_two.subscribe(t, &[(name, None)]).await.unwrap(),
            ));
        }
        common::subscribers_become(&two, name, 3).await;
    }
    let on_one = Client::new(&url(&one)).unwrap();
    let mut published = Vec::new();
    for name in &names {
        published.push(
            on_one
                .publish(name, r#"{"n":1}"#, Some("application/json"))
                .await
                .unwrap(),
        );
    }
    for (name, sub) in &mut subs {
        let want = published[names.iter().position(|n| n == name).unwrap()];
        let env = bounded(sub.next()).await.unwrap();
        assert_eq!(
            (env.event, env.cursor),
            (Event::Message, Some(want)),
            "{name}"
        );
        assert_eq!(env.data, ReceivedData::Json(r#"{"n":1}"#.into()));
    }

    // Either node lists the channels of every shard.
    for node in [&one, &two] {
        let stats = ApiClient::new(&url(node), Some(KEY.into()))
            .unwrap()
            .channels()
            .await
            .unwrap();
        for (name, cursor) in names.iter().zip(&published) {
            let listed = stats["channels"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == name.as_str())
                .unwrap_or_else(|| panic!("{name} listed: {stats}"));
            assert_eq!(listed["cursor"], cursor.to_string());
            assert_eq!(listed["retained"], 1);
        }
    }
    for (_, sub) in subs {
        sub.close().await;
    }
    assert!(one.shutdown().await);
    assert!(two.shutdown().await);
}

/// A long-poll client sends each request to the other node, while messages are
/// published on both: it gets every message once, in order, on every shard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_alternating_nodes_gets_every_message_once() {
    const N: u64 = 30;
    let cluster = RedisCluster::start();
    let names = cluster.channels_on_every_shard("poll");
    let nodes = [node(&cluster).await, node(&cluster).await];
    for name in &names {
        let (status, _, body) = raw(
            &nodes[0],
            "GET",
            &format!("/ch/{name}?transport=poll"),
            &[],
            &[],
        )
        .await;
        assert_eq!(status, 200);
        let start: Cursor = json(&body)["cursor"].as_str().unwrap().parse().unwrap();

        let publisher = {
            let urls = [url(&nodes[0]), url(&nodes[1])];
            let name = name.clone();
            tokio::spawn(async move {
                for i in 1..=N {
                    let at = &urls[usize::try_from(i % 2).unwrap()];
                    Client::new(at)
                        .unwrap()
                        .publish(&name, i.to_string(), Some("application/json"))
                        .await
                        .unwrap();
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        };
        let mut got = Vec::new();
        let mut since = start;
        let mut request = 0usize;
        bounded(async {
            while got.len() < usize::try_from(N).unwrap() {
                let node = &nodes[request % 2];
                request += 1;
                let target = format!("/ch/{name}?transport=longpoll&since={since}");
                let (status, _, body) = raw(node, "GET", &target, &[], &[]).await;
                assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
                let v = json(&body);
                assert_eq!(v["reset"], false, "{v}");
                for m in v["messages"].as_array().unwrap() {
                    got.push(m["data"].as_u64().unwrap());
                }
                since = v["cursor"].as_str().unwrap().parse().unwrap();
            }
        })
        .await;
        publisher.await.unwrap();
        assert_eq!(got, (1..=N).collect::<Vec<_>>(), "{name}");
        assert_eq!(since, Cursor::new(start.epoch, N), "{name}");
        assert!(request > 1, "{name}: both nodes answered");
    }
    for node in nodes {
        assert!(node.shutdown().await);
    }
}
