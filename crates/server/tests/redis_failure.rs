//! Real `switchboard serve` processes on one real `redis-server` (feature `redis`): a
//! node killed with SIGKILL loses no message for its clients, which resume on another
//! node from their last cursor, and its presence entries are gone from every node within
//! the bound the Redis broker promises; `POST /api/disconnect` on one node closes
//! connections another node holds. Each test starts its own `redis-server` and nodes on
//! loopback and stops them by PID.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Child;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{bounded, close_of, read_until, KEY};
use serde_json::json as j;
use switchboard_client::{ApiClient, Client, Event, ReceivedData, Transport};
use switchboard_proto::Cursor;
use switchboard_redis::test_server::RedisServer;

/// How long after `kill -9` a node's presence entries may still be listed:
/// `crates/redis/README.md` ("Failures"). 15 s heartbeat TTL, 1 s liveness cache, and
/// room for a loaded machine.
const PRESENCE_BOUND: Duration = Duration::from_secs(20);

/// A node process; killed (SIGKILL, by its PID) when dropped if still running.
struct Node {
    child: Child,
    base: String,
}

impl Node {
    fn start(redis: &RedisServer, dir: &std::path::Path) -> Node {
        let file = dir.join("switchboard.toml");
        std::fs::write(&file, format!("api_key = \"{KEY}\"\ndemo = false\n")).unwrap();
        let (child, base) = common::serve_process([
            "--config",
            file.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--redis",
            &redis.url(),
        ]);
        Node { child, base }
    }

    fn api(&self) -> ApiClient {
        ApiClient::new(&self.base, Some(KEY.into())).unwrap()
    }

    fn addr(&self) -> std::net::SocketAddr {
        self.base.strip_prefix("http://").unwrap().parse().unwrap()
    }

    /// `kill -9`: no shutdown, no cleanup.
    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sb-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn presence_ids(node: &Node, channel: &str) -> Vec<String> {
    let p = node.api().presence(channel).await.unwrap();
    p["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client"].as_str().unwrap().to_owned())
        .collect()
}

/// Reads `channel` on `sub` until message `last`, resubscribing on `fallback` from the
/// last cursor whenever the subscription ends; returns every `n` received, in order, and
/// the subscription (still open).
async fn read_all(
    mut sub: switchboard_client::Subscription,
    fallback: Client,
    channel: &str,
    last: u64,
    received: Arc<AtomicU64>,
) -> (Vec<u64>, switchboard_client::Subscription) {
    let mut got = Vec::new();
    let transport = sub.transport();
    let mut resumed = false;
    while got.last() != Some(&last) {
        match sub.next().await {
            Ok(env) if env.event == Event::Message => {
                let ReceivedData::Json(data) = &env.data else {
                    panic!("{env:?}");
                };
                let v: serde_json::Value = serde_json::from_str(data).unwrap();
                got.push(v["n"].as_u64().unwrap());
                received.fetch_add(1, Ordering::SeqCst);
            }
            Ok(env) => assert_ne!(env.event, Event::Reset, "{transport:?}: {env:?}"),
            Err(e) => {
                assert!(!resumed, "{transport:?} ended twice: {e}");
                resumed = true;
                let cursor: Option<Cursor> = sub.cursor(channel);
                assert!(cursor.is_some(), "{transport:?} ended before any message");
                sub = fallback
                    .subscribe(transport, &[(channel, cursor)])
                    .await
                    .unwrap();
            }
        }
    }
    assert!(resumed, "{transport:?} never saw its node die");
    (got, sub)
}

#[tokio::test]
async fn clients_of_a_killed_node_resume_on_another_and_its_presence_expires() {
    let redis = RedisServer::start();
    let dir = temp_dir("kill");
    let mut a = Node::start(&redis, &dir);
    let b = Node::start(&redis, &dir);
    let channel = "room";
    const LAST: u64 = 60;

    // Both clients start right after n=0, on A.
    let start = b.api().publish(channel, j!({"n": 0})).await.unwrap();
    let start: Cursor = start["cursor"].as_str().unwrap().parse().unwrap();
    let on_a = Client::new(&a.base).unwrap();
    let mut readers = Vec::new();
    let mut counters = Vec::new();
    for t in [Transport::WebSocket, Transport::Sse] {
        let sub = on_a.subscribe(t, &[(channel, Some(start))]).await.unwrap();
        let received = Arc::new(AtomicU64::new(0));
        counters.push(received.clone());
        let fallback = Client::new(&b.base).unwrap();
        readers.push(tokio::spawn(async move {
            read_all(sub, fallback, channel, LAST, received).await
        }));
    }
    // A's two entries, listed by B too.
    let on_a_ids = bounded(async {
        loop {
            let ids = presence_ids(&b, channel).await;
            if ids.len() == 2 {
                return ids;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(
        {
            let mut ids = presence_ids(&a, channel).await;
            ids.sort();
            ids
        },
        {
            let mut ids = on_a_ids.clone();
            ids.sort();
            ids
        }
    );

    // Published on B throughout: 1..=20 while A lives (both clients have them before A
    // dies), the rest from the moment A is killed, while its clients move.
    const BEFORE: u64 = 20;
    let api = b.api();
    for n in 1..=BEFORE {
        api.publish(channel, j!({ "n": n })).await.unwrap();
    }
    bounded(async {
        while !counters.iter().all(|c| c.load(Ordering::SeqCst) == BEFORE) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    a.kill();
    let killed = Instant::now();
    for n in BEFORE + 1..=LAST {
        api.publish(channel, j!({ "n": n })).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Every message exactly once, in order, across the move.
    let want: Vec<u64> = (1..=LAST).collect();
    let mut resumed = Vec::new();
    for reader in readers {
        let (got, sub) = tokio::time::timeout(Duration::from_secs(30), reader)
            .await
            .expect("a client never got every message")
            .unwrap();
        assert_eq!(got, want);
        resumed.push(sub);
    }

    // A's entries leave B's presence within the bound (the resumed clients, now on B,
    // have new ids).
    loop {
        let ids = presence_ids(&b, channel).await;
        if !ids.iter().any(|id| on_a_ids.contains(id)) {
            eprintln!("A's presence gone {:?} after kill -9", killed.elapsed());
            assert_eq!(ids.len(), 2, "the two resumed clients: {ids:?}");
            break;
        }
        assert!(
            killed.elapsed() <= PRESENCE_BOUND,
            "A's entries still listed {:?} after kill -9: {ids:?}",
            killed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    drop((resumed, b));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn disconnect_on_one_node_closes_connections_another_holds() {
    let redis = RedisServer::start();
    let dir = temp_dir("disconnect");
    let (a, b) = (Node::start(&redis, &dir), Node::start(&redis, &dir));
    let ws = |path: &str| {
        let url = format!("ws://{}{path}", b.addr());
        async move {
            let (ws, resp) = tokio_tungstenite::connect_async(url).await.unwrap();
            (ws, common::client_id(resp.headers()))
        }
    };
    let (mut by_id, id) = ws("/ch/room").await;
    let (mut by_user, _) = ws("/ch/room?user=dave").await;
    let (mut stays, _) = ws("/ch/room?user=erin").await;
    let by_user_sse = tokio::spawn(read_until(
        b.addr(),
        "/ch/room?user=dave",
        "Accept: text/event-stream\r\n",
        |s| s.contains("event: disconnect"),
    ));
    bounded(async {
        while presence_ids(&a, "room").await.len() != 4 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;

    // By client id: A holds none of it and reaches B.
    let r = a.api().disconnect(j!({ "client": id })).await.unwrap();
    assert_eq!(
        (r["disconnected"].clone(), r["other_nodes"].clone()),
        (j!(0), j!(1)),
        "{r}"
    );
    let f = close_of(&mut by_id).await;
    assert_eq!(u16::from(f.code), 1008);
    assert_eq!(f.reason.as_str(), "disconnected by the server");

    // By user: both of dave's connections on B, over WebSocket and SSE.
    let r = a.api().disconnect(j!({ "user": "dave" })).await.unwrap();
    assert_eq!(
        (r["disconnected"].clone(), r["other_nodes"].clone()),
        (j!(0), j!(1)),
        "{r}"
    );
    assert_eq!(u16::from(close_of(&mut by_user).await.code), 1008);
    bounded(by_user_sse).await.unwrap();

    // Erin's stays, served.
    bounded(async {
        while presence_ids(&a, "room").await.len() != 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let cursor = a
        .api()
        .publish("room", j!({"still": "here"}))
        .await
        .unwrap();
    let msg = common::ws_json(&mut stays).await;
    assert_eq!(msg["cursor"], cursor["cursor"], "{msg}");
    drop((a, b));
    let _ = std::fs::remove_dir_all(&dir);
}
