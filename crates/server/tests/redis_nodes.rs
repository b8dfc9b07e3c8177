//! Several nodes on one Redis (feature `redis`): a message published on one node reaches
//! subscribers of another over every transport, any node answers a poll or resume with
//! the same cursors, and `switchboard serve --redis` joins (or explains why it cannot).
//! Each test starts its own `redis-server` on a free loopback port.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::paths::{self, Case, Got, Path};
use common::{bounded, config, json, raw, url};
use switchboard_client::{Client, Event, ReceivedData, Transport};
use switchboard_hub::Payload;
use switchboard_proto::Cursor;
use switchboard_redis::test_server::{publish_when_back, Gate, RedisServer};
use switchboard_redis::{RedisBroker, RedisOptions};
use switchboard_server::config::Config;
use switchboard_server::server::{start_with, Running};
use tokio::net::TcpListener;

async fn node(redis: &RedisServer) -> Running {
    node_at(&redis.url(), config()).await
}

/// A node on the Redis at `url` (a server's, or a [`Gate`]'s in front of it), asking a
/// lost Redis again every 100 ms.
async fn node_at(url: &str, config: Config) -> Running {
    let options = RedisOptions {
        max_reconnect_delay: Duration::from_millis(100),
        ..RedisOptions::default()
    };
    let broker = RedisBroker::connect(url, options).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    start_with(listener, config, Arc::new(broker)).unwrap()
}

/// `{"n":n}`.
fn n(n: u64) -> Payload {
    Payload::json(format!("{{\"n\":{n}}}").into()).unwrap()
}

/// The resume table (see `common::paths`) with Redis behind two nodes: messages published
/// on one, every path resumed on the other; the earlier epoch is the one before Redis
/// restarted empty.
#[tokio::test]
async fn every_path_resumes_on_another_node_with_the_held_messages() {
    let mut redis = RedisServer::start();
    let a = node_at(&redis.url(), paths::short_history()).await;
    let b = node_at(&redis.url(), paths::short_history()).await;
    let mut earlier = HashMap::new();
    for path in Path::ALL {
        let channel = paths::channel_of("r", path, Case::EarlierEpoch);
        let c = paths::publish_ns(&a.state.hub, &channel, 1..=2).await;
        earlier.insert(channel, c[1]);
    }
    redis.restart_empty();
    publish_when_back(&a.state.hub, "warm-up", n(0)).await;
    publish_when_back(&b.state.hub, "warm-up", n(0)).await;
    paths::resume_table(&b, &a.state.hub.clone(), "r", &earlier).await;
    assert!(a.shutdown().await);
    assert!(b.shutdown().await);
}

/// The issue's live case: live subscribers on node B, whose connection to Redis is cut
/// (a partition); Redis restarts empty; node A publishes n=3, 4, 5 into the new epoch
/// before B's feed is back. When it is, every subscriber on B gets, with no further
/// publish, a reset just before the oldest message held and then 3, 4 and 5.
#[tokio::test]
async fn live_subscribers_catch_up_at_once_when_their_nodes_feed_comes_back() {
    let mut redis = RedisServer::start();
    let gate = Gate::start(redis.port()).await;
    let a = node_at(&redis.url(), paths::short_history()).await;
    let b = node_at(&gate.url(), paths::short_history()).await;
    let before = paths::publish_ns(&a.state.hub, "feed", 1..=2).await;
    let live_paths: Vec<Path> = Path::ALL.into_iter().filter(|p| p.is_live()).collect();
    let mut subscribers = Vec::new();
    for path in &live_paths {
        subscribers.push(paths::open_live(&b, *path, "feed", before[1]).await);
    }
    common::subscribers_become(&b, "feed", live_paths.len()).await;

    gate.cut();
    redis.restart_empty();
    let mut fresh = vec![publish_when_back(&a.state.hub, "feed", n(3)).await];
    fresh.extend(paths::publish_ns(&a.state.hub, "feed", 4..=5).await);
    assert_ne!(fresh[0].epoch, before[0].epoch);
    gate.restore();

    let want: Vec<Got> = std::iter::once(Got::Reset(Some(Cursor::new(fresh[0].epoch, 0)), None))
        .chain((3..).zip(&fresh).map(|(n, c)| Got::Msg(*c, n)))
        .collect();
    for (path, live) in live_paths.iter().zip(&mut subscribers) {
        let mut got = Vec::new();
        for _ in 0..want.len() {
            got.push(Got::of(&live.next().await));
        }
        assert_eq!(got, want, "{path:?}");
    }
    drop(subscribers);
    assert!(a.shutdown().await);
    assert!(b.shutdown().await);
}

/// A poll of a channel nobody published to, on one node, hands out a cursor that stays
/// valid for the first message another node publishes.
#[tokio::test]
async fn an_empty_channels_cursor_from_one_node_stays_valid_on_another() {
    let redis = RedisServer::start();
    let (a, b) = (node(&redis).await, node(&redis).await);
    let (status, _, body) = raw(&a, "GET", "/ch/new?transport=poll", &[], &[]).await;
    assert_eq!(status, 200);
    let empty: Cursor = json(&body)["cursor"].as_str().unwrap().parse().unwrap();
    assert_eq!(empty.offset, 0);
    let first = Client::new(&url(&b))
        .unwrap()
        .publish("new", "1", Some("application/json"))
        .await
        .unwrap();
    assert_eq!(first, Cursor::new(empty.epoch, 1));
    let (_, _, body) = raw(&a, "GET", &format!("/ch/new?since={empty}"), &[], &[]).await;
    let v = json(&body);
    assert_eq!(v["reset"], false, "{v}");
    assert_eq!(v["cursor"], first.to_string());
    assert!(a.shutdown().await);
    assert!(b.shutdown().await);
}

#[tokio::test]
async fn a_message_published_on_one_node_reaches_every_transport_on_another() {
    let redis = RedisServer::start();
    let (one, two) = (node(&redis).await, node(&redis).await);
    let on_two = Client::new(&url(&two)).unwrap();
    let mut subs = Vec::new();
    for t in [Transport::WebSocket, Transport::Sse, Transport::Stream] {
        subs.push(on_two.subscribe(t, &[("room", None)]).await.unwrap());
    }

    let on_one = Client::new(&url(&one)).unwrap();
    let first = on_one
        .publish("room", r#"{"n":1}"#, Some("application/json"))
        .await
        .unwrap();
    for sub in &mut subs {
        let env = bounded(sub.next()).await.unwrap();
        assert_eq!((env.event, env.cursor), (Event::Message, Some(first)));
        assert_eq!(env.data, ReceivedData::Json(r#"{"n":1}"#.into()));
    }

    // Offsets continue across nodes; a poll on either node from the first cursor answers
    // the same gap (the fallbacks are stateless).
    let second = on_two.publish("room", "two", None).await.unwrap();
    let third = on_one.publish("room", "three", None).await.unwrap();
    assert_eq!(second, Cursor::new(first.epoch, 2));
    assert_eq!(third, Cursor::new(first.epoch, 3));
    for node in [&one, &two] {
        let target = format!("/ch/room?since={first}");
        let (status, _, body) = raw(node, "GET", &target, &[], &[]).await;
        assert_eq!(status, 200);
        let v = json(&body);
        let cursors: Vec<&str> = v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["cursor"].as_str().unwrap())
            .collect();
        assert_eq!(cursors, [second.to_string(), third.to_string()]);
        assert_eq!(v["cursor"], third.to_string());
    }
    // A WebSocket resuming on node one gets exactly that gap too.
    let mut resumed = on_one
        .subscribe(Transport::WebSocket, &[("room", Some(first))])
        .await
        .unwrap();
    for want in [second, third] {
        assert_eq!(bounded(resumed.next()).await.unwrap().cursor, Some(want));
    }
    drop((subs, resumed));
    assert!(one.shutdown().await);
    assert!(two.shutdown().await);
}

#[tokio::test]
async fn serve_joins_redis_or_says_why_not() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

    let mut redis = RedisServer::start();
    let redis_url = redis.url();
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--redis", &redis_url])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let line = tokio::task::spawn_blocking({
        let stdout = child.stdout.take().unwrap();
        move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).unwrap();
            line
        }
    });
    let line = bounded(line).await.unwrap();
    assert!(
        line.starts_with("switchboard listening on http://"),
        "{line}"
    );
    let base = line
        .trim()
        .trim_start_matches("switchboard listening on ")
        .to_owned();
    // The node's channels are in Redis: a second broker sees what it publishes.
    let c = Client::new(&base)
        .unwrap()
        .publish("cli", "x", None)
        .await
        .unwrap();
    let other = node(&redis).await;
    let (status, _, body) = raw(&other, "GET", "/ch/cli", &[], &[]).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(json(&body)["cursor"], c.to_string());
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(other.shutdown().await);

    // Nothing listening at the URL: a non-zero exit and a reason.
    redis.stop();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--redis", &redis_url])
            .output()
            .unwrap()
    });
    let out = bounded(out).await.unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot use Redis"), "{err}");
}

#[tokio::test]
async fn healthz_says_when_the_broker_is_out_and_when_it_is_back() {
    let mut redis = RedisServer::start();
    let srv = node(&redis).await;
    let (status, _, body) = raw(&srv, "GET", "/healthz", &[], &[]).await;
    assert_eq!((status, &body[..]), (200, &b"ok"[..]));
    redis.stop();
    let (status, _, body) = raw(&srv, "GET", "/healthz", &[], &[]).await;
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    assert_eq!(json(&body)["error"], "broker_unavailable");
    redis.restart_empty();
    bounded(async {
        loop {
            let (status, _, _) = raw(&srv, "GET", "/healthz", &[], &[]).await;
            if status == 200 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(srv.shutdown().await);
}

/// The same `Idempotency-Key` posted to two nodes at once is stored once (the Redis
/// script checks the key and appends in one step): both answer one cursor, a subscriber
/// on either node gets the message once, and history holds it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_posted_to_two_nodes_at_once_is_stored_once() {
    let redis = RedisServer::start();
    let (a, b) = (node(&redis).await, node(&redis).await);
    let mut sub = Client::new(&url(&b))
        .unwrap()
        .subscribe(Transport::WebSocket, &[("twice", None)])
        .await
        .unwrap();
    const ROUNDS: u64 = 30;
    for round in 0..ROUNDS {
        let key = format!("both-{round}");
        let post = |node: String, key: String| {
            tokio::spawn(async move {
                Client::new(&node)
                    .unwrap()
                    .publish_keyed(
                        "twice",
                        round.to_string(),
                        Some("application/json"),
                        &key,
                        Default::default(),
                    )
                    .await
                    .unwrap()
            })
        };
        let (x, y) = (post(url(&a), key.clone()), post(url(&b), key));
        let (x, y) = (x.await.unwrap(), y.await.unwrap());
        assert_eq!(x, y, "round {round}: one cursor from both nodes");
        assert_eq!(x.offset, round + 1, "round {round}: one message");
    }
    for round in 0..ROUNDS {
        let env = bounded(sub.next()).await.unwrap();
        assert_eq!(env.data, ReceivedData::Json(round.to_string()));
    }
    let (status, _, body) = raw(&a, "GET", "/ch/twice?transport=poll&since=0:0", &[], &[]).await;
    assert_eq!(status, 200);
    assert_eq!(
        json(&body)["messages"].as_array().unwrap().len() as u64,
        ROUNDS
    );
    sub.close().await;
    assert!(a.shutdown().await && b.shutdown().await);
}
