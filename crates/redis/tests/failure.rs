//! Nodes that die or are taken for dead, and cluster-wide disconnect, on one real
//! `redis-server` (started by each test on a free loopback port, stopped by its PID).
//!
//! A node "dies" by having its tokio runtime shut down: its heartbeat and its Redis
//! connection stop at once and nothing it held is cleaned up, as after `kill -9`. The
//! server's `tests/redis_failure.rs` kills real processes.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard_hub::*;
use switchboard_redis::test_server::{RedisCluster, RedisServer as Redis};
use switchboard_redis::{RedisBroker, RedisOptions};

/// What the presence module promises: a dead node's heartbeat key lives at most 15 s
/// after its last refresh, and other nodes believe a node alive for at most 1 s more.
const BOUND: Duration = Duration::from_secs(16);

/// And a dead node's entries are reaped, with a `leave`, by the first beat of another
/// node (every 5 s) after its deadline (15 s), on channels nobody reads too: 20 s by
/// construction, stated as 25 s (the beat's round trips, a loaded machine).
const LEAVE_BOUND: Duration = Duration::from_secs(25);

async fn node(url: &str, config: HubConfig) -> Hub {
    let broker = RedisBroker::connect(url, RedisOptions::default())
        .await
        .unwrap();
    Hub::with_broker(config, Arc::new(broker))
}

fn presence_config() -> HubConfig {
    let room = NamespaceConfig {
        presence: true,
        join_leave: true,
        ..Default::default()
    };
    HubConfig::default().with_namespace("room", room)
}

/// Receives with a guard against hanging (a failure, not a timing assertion).
async fn recv(sub: &mut Subscription) -> Result<Message, RecvError> {
    tokio::time::timeout(Duration::from_secs(30), sub.recv())
        .await
        .expect("recv hung")
}

async fn ids(hub: &Hub, channel: &str) -> Vec<String> {
    let mut ids: Vec<String> = hub
        .presence(channel)
        .await
        .unwrap()
        .iter()
        .map(|c| c.client_id().to_owned())
        .collect();
    ids.sort();
    ids
}

/// Polls `hub`'s presence of `channel` until it is `want`; returns how long that took.
async fn until_presence(hub: &Hub, channel: &str, want: &[&str], within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if ids(hub, channel).await == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() <= within,
            "presence of {channel} still {:?} after {within:?}, want {want:?}",
            ids(hub, channel).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Node B (on `living`) watching `channel` as client b1, and node A (on its own runtime)
/// holding client `a1`, whose join B's watcher has seen.
struct Scene {
    living: tokio::runtime::Runtime,
    b: Hub,
    watcher: Subscription,
    dying: tokio::runtime::Runtime,
    a: (Hub, Subscription),
}

impl Scene {
    fn new(url: &str, channel: &str, a1: ClientInfo) -> Scene {
        let living = tokio::runtime::Runtime::new().unwrap();
        let dying = tokio::runtime::Runtime::new().unwrap();
        let (b, mut watcher) = living.block_on(async {
            let b = node(url, presence_config()).await;
            let mut w = b
                .subscribe(channel, None, ClientInfo::new("b1"))
                .await
                .unwrap();
            assert_eq!(recv(&mut w).await.unwrap().event(), Event::Join); // its own
            (b, w)
        });
        let a = dying.block_on(async {
            let a = node(url, presence_config()).await;
            let sub = a.subscribe(channel, None, a1).await.unwrap();
            (a, sub)
        });
        living.block_on(async {
            assert_eq!(recv(&mut watcher).await.unwrap().event(), Event::Join);
        });
        Scene {
            living,
            b,
            watcher,
            dying,
            a,
        }
    }

    /// A dies: its runtime (heartbeat, connection) stops and its subscription is never
    /// released, as after kill -9. Returns when, and B's side.
    fn kill_a(self) -> (Instant, tokio::runtime::Runtime, Hub, Subscription) {
        let died = Instant::now();
        self.dying.shutdown_background();
        let _never_released = std::mem::ManuallyDrop::new(self.a);
        (died, self.living, self.b, self.watcher)
    }
}

#[test]
fn presence_of_a_node_that_dies_is_gone_within_the_bound() {
    let redis = Redis::start();
    gone_within_the_bound(&redis.url());
}

#[test]
fn on_a_cluster_presence_of_a_node_that_dies_is_gone_within_the_bound() {
    let cluster = RedisCluster::start();
    gone_within_the_bound(&cluster.url());
}

fn gone_within_the_bound(url: &str) {
    let scene = Scene::new(url, "room:1", ClientInfo::new("a1").with_user("u1"));
    let (died, living, b, mut watcher) = scene.kill_a();
    living.block_on(async move {
        // Still listed while its heartbeat key lives: a node is not dropped early.
        assert_eq!(ids(&b, "room:1").await, ["a1", "b1"]);
        until_presence(&b, "room:1", &["b1"], BOUND + Duration::from_secs(1)).await;
        assert!(
            died.elapsed() <= BOUND + Duration::from_secs(1),
            "dropped {:?} after the death",
            died.elapsed()
        );
        // The node that dropped the entry announced its leave, once.
        let leave = recv(&mut watcher).await.unwrap();
        assert_eq!(leave.event(), Event::Leave);
        assert_eq!(&leave.data()[..], br#"{"client":"a1","user":"u1"}"#);
        assert_eq!(ids(&b, "room:1").await, ["b1"]);
        assert!(watcher.try_recv().unwrap().is_none(), "a second leave");
    });
}

#[test]
fn a_dead_nodes_entries_are_reaped_with_a_leave_though_nobody_reads_them() {
    let redis = Redis::start();
    reaped_though_nobody_reads(&redis.url());
}

#[test]
fn on_a_cluster_a_dead_nodes_entries_are_reaped_though_nobody_reads_them() {
    // The reaper scans every primary: the channel's shard is one of three.
    let cluster = RedisCluster::start();
    reaped_though_nobody_reads(&cluster.url());
}

fn reaped_though_nobody_reads(url: &str) {
    let scene = Scene::new(url, "room:2", ClientInfo::new("a1"));
    let (died, living, b, mut watcher) = scene.kill_a();
    // Nobody reads room:2's presence: B's heartbeat finds A overdue and reaps it.
    living.block_on(async move {
        let leave = recv(&mut watcher).await.unwrap();
        assert!(
            died.elapsed() <= LEAVE_BOUND,
            "leave {:?} after the death",
            died.elapsed()
        );
        assert_eq!(leave.event(), Event::Leave);
        assert_eq!(&leave.data()[..], br#"{"client":"a1"}"#);
        assert_eq!(ids(&b, "room:2").await, ["b1"]);
        assert!(watcher.try_recv().unwrap().is_none(), "a second leave");
    });
}

/// A node found overdue while its heartbeat key still lives (killed between the two
/// writes of a beat: the key refreshed, the deadline not) keeps its entries while the key
/// lives, and is not forgotten: once the key is gone, a beat reaps them with a `leave`.
/// A beat in the very millisecond of a deadline used to find the same (Redis counts that
/// millisecond in the key's lifetime), and the leave then never came.
#[test]
fn a_node_overdue_while_its_key_lives_is_reaped_once_the_key_is_gone() {
    let redis = Redis::start();
    let scene = Scene::new(&redis.url(), "room:3", ClientInfo::new("a1"));
    let (_, living, b, mut watcher) = scene.kill_a();
    living.block_on(async move {
        let client = redis::Client::open(redis.url()).unwrap();
        let mut raw = client.get_multiplexed_async_connection().await.unwrap();
        // A's id, from its entry (`<node id>:<entry JSON>`).
        let stored: String = redis::cmd("HGET")
            .arg("sb:{room:3}:p")
            .arg("a1")
            .query_async(&mut raw)
            .await
            .unwrap();
        let (id, _) = stored.split_once(':').unwrap();
        // Its deadline long past, its key alive 7 s more: B's next beat (within 5 s)
        // finds it overdue while the key lives.
        let _: () = redis::pipe()
            .atomic()
            .cmd("ZADD")
            .arg("sb:nodes")
            .arg(0)
            .arg(id)
            .ignore()
            .cmd("PEXPIRE")
            .arg(format!("sb:{{!nodes}}:{id}"))
            .arg(7000)
            .ignore()
            .query_async(&mut raw)
            .await
            .unwrap();
        let leave = recv(&mut watcher).await.unwrap();
        assert_eq!(leave.event(), Event::Leave);
        assert_eq!(&leave.data()[..], br#"{"client":"a1"}"#);
        assert_eq!(ids(&b, "room:3").await, ["b1"]);
        assert!(watcher.try_recv().unwrap().is_none(), "a second leave");
    });
}

#[tokio::test]
async fn a_node_taken_for_dead_writes_its_presence_back() {
    let redis = Redis::start();
    let (a, b) = (
        node(&redis.url(), presence_config()).await,
        node(&redis.url(), presence_config()).await,
    );
    let mut watcher = b
        .subscribe("room:1", None, ClientInfo::new("b1"))
        .await
        .unwrap();
    assert_eq!(recv(&mut watcher).await.unwrap().event(), Event::Join);
    let _on_a = a
        .subscribe("room:1", None, ClientInfo::new("a1"))
        .await
        .unwrap();
    assert_eq!(recv(&mut watcher).await.unwrap().event(), Event::Join);

    // As if A had been cut off from Redis for longer than the TTL: its key is gone.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("sb:{!nodes}:*")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(keys.len(), 2, "one heartbeat key per node: {keys:?}");
    let _: i64 = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut raw)
        .await
        .unwrap();

    // B takes A for dead (its own entries it never doubts) and says so...
    assert_eq!(ids(&b, "room:1").await, ["b1"]);
    let leave = recv(&mut watcher).await.unwrap();
    assert_eq!(leave.event(), Event::Leave);
    assert_eq!(&leave.data()[..], br#"{"client":"a1"}"#);
    // ...and A's next heartbeat (every 5 s) writes its entry back, with a join.
    let join = recv(&mut watcher).await.unwrap();
    assert_eq!(join.event(), Event::Join);
    assert_eq!(&join.data()[..], br#"{"client":"a1"}"#);
    assert_eq!(ids(&b, "room:1").await, ["a1", "b1"]);
}

async fn assert_disconnected(sub: &mut Subscription) {
    let got = recv(sub).await;
    assert!(
        matches!(
            got,
            Err(RecvError::Closed {
                reason: CloseReason::Disconnected,
                ..
            })
        ),
        "{got:?}"
    );
}

/// `client` of `user` subscribed to `room` on `hub`.
async fn in_room(hub: &Hub, client: &str, user: &str) -> Subscription {
    hub.subscribe("room", None, ClientInfo::new(client).with_user(user))
        .await
        .unwrap()
}

/// Publishes "still here" to `room` from `hub` and checks `subs` all get it.
async fn room_still_delivers(hub: &Hub, subs: &mut [&mut Subscription]) {
    hub.publish(
        "room",
        Payload::text(bytes::Bytes::from_static(b"still here")).unwrap(),
    )
    .await
    .unwrap();
    for sub in subs {
        assert_eq!(&recv(sub).await.unwrap().data()[..], b"still here");
    }
}

#[tokio::test]
async fn disconnect_reaches_the_node_that_holds_the_client() {
    let redis = Redis::start();
    let (a, b) = (
        node(&redis.url(), HubConfig::default()).await,
        node(&redis.url(), HubConfig::default()).await,
    );
    let told = Arc::new(AtomicUsize::new(0));
    let seen = told.clone();
    b.on_remote_disconnect(move |_| {
        seen.fetch_add(1, Ordering::SeqCst);
    });
    let mut b1 = in_room(&b, "b1", "u").await;
    let mut b2 = in_room(&b, "b2", "u").await;
    let mut b3 = in_room(&b, "b3", "v").await;
    let mut a1 = in_room(&a, "a1", "u").await;

    // By client: B closes b1; A (the sender) is left to its caller.
    assert_eq!(
        a.disconnect_elsewhere(&Disconnect::Client("b1".into()))
            .await
            .unwrap(),
        1,
        "one other node"
    );
    assert_disconnected(&mut b1).await;
    assert_eq!(told.load(Ordering::SeqCst), 1, "the hook heard it first");

    // By user: every connection of u on B, none of v, and not A's own (its caller's job).
    assert_eq!(
        a.disconnect_elsewhere(&Disconnect::User("u".into()))
            .await
            .unwrap(),
        1
    );
    assert_disconnected(&mut b2).await;
    assert_eq!(told.load(Ordering::SeqCst), 2);
    room_still_delivers(&a, &mut [&mut b3, &mut a1]).await;

    // With one node only, nobody else is reached.
    drop((b1, b2, b3));
    drop(b);
    let lone = redis::Client::open(redis.url()).unwrap();
    let mut raw = lone.get_multiplexed_async_connection().await.unwrap();
    // B's feed connection closes with its broker; wait until Redis has seen it go.
    let start = Instant::now();
    loop {
        let subs: Vec<redis::Value> = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg("sb:{!control}:f")
            .query_async(&mut raw)
            .await
            .unwrap();
        if matches!(subs.get(1), Some(redis::Value::Int(1))) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "B never left: {subs:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        a.disconnect_elsewhere(&Disconnect::User("u".into()))
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn on_a_cluster_disconnect_reaches_the_node_that_holds_the_client() {
    // The control feed is sharded pub/sub there, on the shard of its own slot.
    let cluster = RedisCluster::start();
    let (a, b) = (
        node(&cluster.url(), HubConfig::default()).await,
        node(&cluster.url(), HubConfig::default()).await,
    );
    let mut b1 = in_room(&b, "b1", "u").await;
    let mut b2 = in_room(&b, "b2", "v").await;
    assert_eq!(
        a.disconnect_elsewhere(&Disconnect::Client("b1".into()))
            .await
            .unwrap(),
        1,
        "one other node"
    );
    assert_disconnected(&mut b1).await;
    room_still_delivers(&a, &mut [&mut b2]).await;
}
