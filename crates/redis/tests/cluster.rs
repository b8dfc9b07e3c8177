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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_on_every_shard_share_offsets_history_feed_and_presence() {
    let cluster = RedisCluster::start();
    let names = cluster.channels_on_every_shard("room:");
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

/// The state a failover leaves when the replica had not received the last messages:
/// the channel's hash says another primary wrote it, and the head and log lack the
/// tail. The next publish must not reuse the lost offsets (a subscriber that saw them
/// would skip the new message silently): a new epoch, and the subscriber gets a `reset`
/// then what is held and the new message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_last_written_on_another_primary_starts_a_new_epoch() {
    let cluster = RedisCluster::start();
    let (a, b) = (node(&cluster).await, node(&cluster).await);
    let mut sub = b
        .subscribe("room:tail", None, ClientInfo::new("b1"))
        .await
        .unwrap();
    let mut seen = Vec::new();
    for i in 1..=3 {
        seen.push(a.publish("room:tail", json(i)).await.unwrap());
        assert_eq!(recv(&mut sub).await.cursor(), Some(seen[seen.len() - 1]));
    }
    let meta = "sb:{room:tail}:m";
    let other = "0123456789abcdef0123456789abcdef01234567";
    cluster.cli_on_primary_of(meta, &["HSET", meta, "n", other, "h", "1"]);
    cluster.cli_on_primary_of(meta, &["RPOP", "sb:{room:tail}:l", "2"]);

    let next = a.publish("room:tail", json(4)).await.unwrap();
    assert_ne!(next.epoch, seen[0].epoch, "a new epoch, not offset 2 again");
    let reset = recv(&mut sub).await;
    assert_eq!(reset.event(), Event::Reset);
    assert_eq!(reset.cursor().unwrap().epoch, next.epoch);
    // What the new primary held (message 1, renumbered), then the new message.
    let held = recv(&mut sub).await;
    assert_eq!(
        (held.cursor(), &held.data()[..]),
        (Some(Cursor::new(next.epoch, 1)), &b"1"[..])
    );
    let new = recv(&mut sub).await;
    assert_eq!((new.cursor(), &new.data()[..]), (Some(next), &b"4"[..]));
    // Written here now: the next publish continues the epoch.
    let after = a.publish("room:tail", json(5)).await.unwrap();
    assert_eq!(after, Cursor::new(next.epoch, next.offset + 1));
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

/// What one subscriber received, until the channel's end marker.
#[derive(Debug, Default)]
struct Received {
    messages: HashSet<(Cursor, Vec<u8>)>,
    /// Epochs a `reset` moved this subscriber to.
    reset_to: Vec<Epoch>,
    /// How many times it subscribed.
    subscriptions: usize,
}

const END: &[u8] = b"\"end\"";

/// Receives on `name` until the end marker, as a client would: when the node closes the
/// subscription (its broker was unavailable), subscribes again from the cursor it was
/// given, retrying until the node takes it.
async fn collect(hub: Hub, name: String, client: String) -> Received {
    let mut got = Received::default();
    let mut since = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let Ok(mut sub) = hub.subscribe(&name, since, ClientInfo::new(&client)).await else {
            assert!(std::time::Instant::now() < deadline, "{name}: never back");
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        got.subscriptions += 1;
        loop {
            let m = match tokio::time::timeout(Duration::from_secs(60), sub.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "{name} ({client}): recv hung after {} messages",
                        got.messages.len()
                    )
                }) {
                Ok(m) => m,
                Err(RecvError::Closed { resume_from, .. }) => {
                    since = Some(resume_from);
                    break;
                }
                Err(e) => panic!("{name}: {e}"),
            };
            match m.event() {
                Event::Reset => got.reset_to.push(m.cursor().unwrap().epoch),
                Event::Message if &m.data()[..] == END => return got,
                Event::Message => {
                    got.messages
                        .insert((m.cursor().unwrap(), m.data().to_vec()));
                }
                _ => {}
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_killed_mid_stream_leaves_every_subscriber_whole_or_reset() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let mut cluster = RedisCluster::with_replicas();
    let names = cluster.channels_on_every_shard("room:");
    let (a, b) = (node(&cluster).await, node(&cluster).await);
    let mut collecting = Vec::new();
    for (i, hub) in [&a, &b].into_iter().enumerate() {
        for name in &names {
            let task = tokio::spawn(collect(hub.clone(), name.clone(), format!("c{i}")));
            collecting.push((name.clone(), task));
        }
    }
    // Every subscriber is in before the first publish (a subscription from no cursor
    // starts at the head).
    for name in &names {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while a.subscriber_count(name) + b.subscriber_count(name) < 2 {
            assert!(std::time::Instant::now() < deadline, "subscribed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    // Publishes round the channels, on both nodes in turn, until told to stop; keeps
    // what was acknowledged (errors while the slot has no primary are expected).
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (hubs, names, stop) = ([a.clone(), b.clone()], names.clone(), stop.clone());
        tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut failed = 0u64;
            for i in 0u64.. {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let name = &names[usize::try_from(i).unwrap() % names.len()];
                let data = i.to_string().into_bytes();
                match hubs[usize::try_from(i / 3).unwrap() % 2]
                    .publish(name, json(i))
                    .await
                {
                    Ok(c) => acked.push((name.clone(), c, data)),
                    Err(_) => {
                        failed += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (acked, failed)
        })
    };

    tokio::time::sleep(Duration::from_secs(1)).await;
    let victim = format!("sb:{{{}}}:m", names[0]);
    let old = cluster.primary_of(&victim);
    let (cluster, new) = tokio::task::spawn_blocking(move || {
        let new = cluster.kill_primary_of(&victim);
        (cluster, new)
    })
    .await
    .unwrap();
    assert_ne!(old, new);
    // Publishing goes on, on the new primary, once both nodes see every slot served.
    for hub in [&a, &b] {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while hub.health().await.is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the cluster came back"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    let (acked, failed) = publisher.await.unwrap();
    for name in &names {
        a.publish(name, Payload::json(Bytes::from_static(END)).unwrap())
            .await
            .unwrap();
    }

    // Every acknowledged message reached every subscriber of its channel, or the
    // subscriber was told, with a reset, that the epoch it was in ended. The cluster
    // stays up until every subscriber has its end marker: the publish's answer does not
    // mean each node's feed has read the marker yet, and a node whose feed loses it (the
    // primary's connection closed first) reads it from history, which needs the cluster.
    let (mut resets, mut resubscribed) = (0, 0);
    for (name, task) in collecting {
        let got = task.await.unwrap();
        resets += got.reset_to.len();
        resubscribed += got.subscriptions - 1;
        for (_, cursor, data) in acked.iter().filter(|(n, ..)| *n == name) {
            let told = got.reset_to.iter().any(|e| *e != cursor.epoch);
            assert!(
                told || got.messages.contains(&(*cursor, data.clone())),
                "{name}: {cursor:?} ({}) was acknowledged, never arrived, and no reset said so",
                String::from_utf8_lossy(data)
            );
        }
    }
    eprintln!(
        "failover: {} acknowledged, {failed} refused, {resets} resets, {resubscribed} resubscriptions",
        acked.len()
    );
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_moved_by_resharding_is_followed_by_the_feed() {
    let cluster = RedisCluster::start();
    let (a, b) = (node(&cluster).await, node(&cluster).await);
    let key = "sb:{moving}:m";
    let mut sub = b
        .subscribe("moving", None, ClientInfo::new("s"))
        .await
        .unwrap();
    let mut seen: Vec<(Event, Vec<u8>)> = Vec::new();
    for n in 1..=5 {
        a.publish("moving", json(n)).await.unwrap();
    }
    for _ in 1..=5 {
        let m = recv(&mut sub).await;
        seen.push((m.event(), m.data().to_vec()));
    }
    let from = cluster.primary_of(key);
    let to = tokio::task::block_in_place(|| cluster.move_slot_of(key));
    assert_ne!(from, to);
    // The feed's subscription ends on the old primary (Redis says `sunsubscribe`); the
    // node subscribes again where the slot went, and the next messages reach it.
    for n in 6..=10 {
        a.publish("moving", json(n)).await.unwrap();
    }
    loop {
        let m = recv(&mut sub).await;
        let last = m.event() == Event::Message && &m.data()[..] == b"10";
        seen.push((m.event(), m.data().to_vec()));
        if last {
            break;
        }
    }
    // Every message, in order; or, where the new primary started a new epoch, an
    // explicit reset followed by what is held, in order, through the last one.
    let numbers = |part: &[(Event, Vec<u8>)]| -> Vec<u64> {
        part.iter()
            .filter(|(e, _)| *e == Event::Message)
            .map(|(_, d)| String::from_utf8_lossy(d).parse().unwrap())
            .collect()
    };
    match seen.iter().rposition(|(e, _)| *e == Event::Reset) {
        None => assert_eq!(numbers(&seen), (1..=10).collect::<Vec<_>>(), "{seen:?}"),
        Some(r) => {
            let (before, after) = (numbers(&seen[..r]), numbers(&seen[r..]));
            assert_eq!(before, (1..=before.len() as u64).collect::<Vec<_>>());
            let first = *after.first().unwrap();
            assert!(first <= before.len() as u64 + 1, "a gap: {seen:?}");
            assert_eq!(after, (first..=10).collect::<Vec<_>>(), "{seen:?}");
        }
    }
}
