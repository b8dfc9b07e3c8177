//! Two hubs ("nodes") on one real `redis-server`, each with its own [`RedisBroker`]:
//! offsets, history, retention, presence and the live feed are shared; a Redis restart
//! gives a new epoch and subscribers a `reset`; a Redis outage is an `Unavailable` error.
//! Each test starts its own `redis-server` on a free loopback port and stops it by PID.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use switchboard_hub::*;
use switchboard_redis::test_server::{publish_when_back, Gate, RedisServer as Redis};
use switchboard_redis::{RedisBroker, RedisOptions};

async fn node(redis: &Redis, config: HubConfig) -> Hub {
    let broker = RedisBroker::connect(&redis.url(), RedisOptions::default())
        .await
        .unwrap();
    Hub::with_broker(config, Arc::new(broker))
}

/// Two nodes on `redis` with the same configuration.
async fn two_nodes(redis: &Redis, config: HubConfig) -> (Hub, Hub) {
    (node(redis, config.clone()).await, node(redis, config).await)
}

fn json(n: u64) -> Payload {
    Payload::json(Bytes::from(n.to_string())).unwrap()
}

/// Receives with a guard against hanging (a failure, not a timing assertion).
async fn recv(sub: &mut Subscription) -> Message {
    tokio::time::timeout(Duration::from_secs(15), sub.recv())
        .await
        .expect("recv hung")
        .unwrap()
}

fn offsets(msgs: &[Message]) -> Vec<u64> {
    msgs.iter().map(|m| m.cursor().unwrap().offset).collect()
}

#[tokio::test]
async fn nodes_share_offsets_history_and_the_live_feed() {
    let redis = Redis::start();
    let (a, b) = two_nodes(&redis, HubConfig::default()).await;
    assert!(b.channels().await.unwrap().is_empty());
    let mut on_b = b
        .subscribe("room", None, ClientInfo::new("b1"))
        .await
        .unwrap();

    // Published on either node, one log: offsets 1..=10 in one epoch, live on B in order.
    let mut cursors = Vec::new();
    for i in 0..10 {
        let hub = if i % 2 == 0 { &a } else { &b };
        cursors.push(hub.publish("room", json(i)).await.unwrap());
    }
    let epoch = cursors[0].epoch;
    for (i, c) in (1..).zip(&cursors) {
        assert_eq!(*c, Cursor::new(epoch, i));
    }
    for (i, c) in (0..).zip(&cursors) {
        let m = recv(&mut on_b).await;
        assert_eq!((m.event(), m.cursor()), (Event::Message, Some(*c)));
        assert_eq!(&m.data()[..], i.to_string().as_bytes());
    }

    // History answers the same on both nodes.
    for hub in [&a, &b] {
        let cases: &[(u64, Option<usize>, Vec<u64>, bool)] = &[
            (0, None, (1..=10).collect(), false),
            (7, Some(2), vec![8, 9], true),
            (7, Some(3), vec![8, 9, 10], false),
            (10, None, vec![], false),
        ];
        for (since, limit, want, want_more) in cases {
            let HistoryAnswer::Gap {
                messages,
                head,
                more,
            } = hub
                .history("room", Some(Cursor::new(epoch, *since)), *limit)
                .await
                .unwrap()
            else {
                panic!("a gap for since={since}");
            };
            assert_eq!(
                (offsets(&messages), head, more),
                (want.clone(), cursors[9], *want_more)
            );
        }
        // The latest messages without a cursor.
        let HistoryAnswer::Gap { messages, .. } = hub.history("room", None, Some(3)).await.unwrap()
        else {
            panic!("latest")
        };
        assert_eq!(offsets(&messages), vec![8, 9, 10]);
        // Another epoch, or a cursor ahead of the head: reset.
        for bad in [Cursor::new(Epoch(epoch.0 ^ 1), 3), Cursor::new(epoch, 11)] {
            let answer = hub.history("room", Some(bad), None).await.unwrap();
            assert!(
                matches!(answer, HistoryAnswer::Reset { head, .. } if head == cursors[9]),
                "{answer:?}"
            );
        }
    }

    // A subscription resuming on A from the 4th message gets exactly the gap.
    let mut on_a = a
        .subscribe("room", Some(cursors[3]), ClientInfo::new("a1"))
        .await
        .unwrap();
    for c in &cursors[4..] {
        assert_eq!(recv(&mut on_a).await.cursor(), Some(*c));
    }
    assert!(matches!(on_a.try_recv(), Ok(None)));

    let other = a.publish("other", json(0)).await.unwrap();
    let channels = b.channels().await.unwrap();
    assert_eq!(channels.len(), 2, "{channels:?}");
    assert!(channels
        .iter()
        .any(|c| &*c.name == "other" && c.head == Some(other) && c.retained == 1));
    let room = channels.iter().find(|c| &*c.name == "room");
    assert!(
        room.is_some_and(|c| c.head == Some(cursors[9]) && c.retained == 10),
        "{channels:?}"
    );
}

#[tokio::test]
async fn every_payload_kind_survives_the_feed_and_history() {
    let redis = Redis::start();
    let (a, b) = two_nodes(&redis, HubConfig::default()).await;
    let mut sub = b
        .subscribe("kinds", None, ClientInfo::new("b1"))
        .await
        .unwrap();
    let payloads = [
        Payload::json(Bytes::from_static(br#"{"text":"caf\u00e9","n":[1,2]}"#)).unwrap(),
        Payload::text(Bytes::from_static("line 1\nline: 2 é".as_bytes())).unwrap(),
        Payload::binary(Bytes::from_static(b"\x00:\xff\r\n:")),
        Payload::binary(Bytes::new()),
    ];
    for p in &payloads {
        a.publish("kinds", p.clone()).await.unwrap();
    }
    let live: Vec<Message> = {
        let mut v = Vec::new();
        for _ in &payloads {
            v.push(recv(&mut sub).await);
        }
        v
    };
    let HistoryAnswer::Gap { messages, .. } = b.history("kinds", None, None).await.unwrap() else {
        panic!("history");
    };
    for got in [&live, &messages] {
        let got: Vec<&Payload> = got.iter().map(Message::payload).collect();
        assert_eq!(got, payloads.iter().collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn retention_trims_by_length_and_a_trimmed_cursor_resets() {
    let redis = Redis::start();
    let short = NamespaceConfig {
        history_size: 3,
        ..Default::default()
    };
    let none = NamespaceConfig {
        history_size: 0,
        ..Default::default()
    };
    let config = HubConfig::default()
        .with_namespace("short", short)
        .with_namespace("none", none);
    let (a, b) = two_nodes(&redis, config).await;
    let c: Vec<Cursor> = {
        let mut v = Vec::new();
        for i in 0..5 {
            v.push(a.publish("short:x", json(i)).await.unwrap());
        }
        v
    };
    let epoch = c[0].epoch;
    match b
        .history("short:x", Some(Cursor::new(epoch, 0)), None)
        .await
        .unwrap()
    {
        HistoryAnswer::Reset {
            head,
            earliest,
            messages,
            more,
        } => {
            assert_eq!((head, earliest), (c[4], Cursor::new(epoch, 2)));
            // What is held comes with the reset, in the same read.
            assert_eq!((offsets(&messages), more), (vec![3, 4, 5], false));
        }
        other => panic!("{other:?}"),
    }
    let HistoryAnswer::Gap { messages, .. } = b.history("short:x", Some(c[1]), None).await.unwrap()
    else {
        panic!("gap");
    };
    assert_eq!(offsets(&messages), vec![3, 4, 5]);
    // With a limit, cut and said so; a cursor ahead of the head or of another epoch gets
    // the same reset.
    for (since, limit, want, want_more) in [
        (Cursor::new(epoch, 0), Some(2), vec![3, 4], true),
        (Cursor::new(epoch, 9), None, vec![3, 4, 5], false),
        (
            Cursor::new(Epoch(epoch.0 ^ 1), 4),
            Some(3),
            vec![3, 4, 5],
            false,
        ),
    ] {
        match b.history("short:x", Some(since), limit).await.unwrap() {
            HistoryAnswer::Reset {
                earliest,
                messages,
                more,
                ..
            } => {
                assert_eq!(earliest, Cursor::new(epoch, 2));
                assert_eq!((offsets(&messages), more), (want, want_more), "{since}");
            }
            other => panic!("{since}: {other:?}"),
        }
    }

    // No history at all: offsets still count, a cursor at the head is continuable.
    let n1 = a.publish("none:x", json(1)).await.unwrap();
    let n2 = a.publish("none:x", json(2)).await.unwrap();
    assert_eq!(n2, Cursor::new(n1.epoch, 2));
    assert!(matches!(
        b.history("none:x", Some(n2), None).await.unwrap(),
        HistoryAnswer::Gap { ref messages, .. } if messages.is_empty()
    ));
    assert!(matches!(
        b.history("none:x", Some(n1), None).await.unwrap(),
        HistoryAnswer::Reset { .. }
    ));
}

#[tokio::test]
async fn presence_and_join_leave_span_nodes() {
    let redis = Redis::start();
    let room = NamespaceConfig {
        presence: true,
        join_leave: true,
        ..Default::default()
    };
    let config = HubConfig::default().with_namespace("room", room);
    let (a, b) = two_nodes(&redis, config).await;
    let mut watcher = b
        .subscribe("room:1", None, ClientInfo::new("b1"))
        .await
        .unwrap();
    assert_eq!(recv(&mut watcher).await.event(), Event::Join); // its own

    let on_a = a
        .subscribe("room:1", None, ClientInfo::new("a1").with_user("u1"))
        .await
        .unwrap();
    let join = recv(&mut watcher).await;
    assert_eq!(join.event(), Event::Join);
    assert_eq!(&join.data()[..], br#"{"client":"a1","user":"u1"}"#);
    let mut ids: Vec<String> = b
        .presence("room:1")
        .await
        .unwrap()
        .iter()
        .map(|c| c.client_id().to_owned())
        .collect();
    ids.sort();
    assert_eq!(ids, ["a1", "b1"]);

    on_a.unsubscribe().await;
    let leave = recv(&mut watcher).await;
    assert_eq!(leave.event(), Event::Leave);
    assert_eq!(&leave.data()[..], br#"{"client":"a1","user":"u1"}"#);
    let left: Vec<String> = a
        .presence("room:1")
        .await
        .unwrap()
        .iter()
        .map(|c| c.client_id().to_owned())
        .collect();
    assert_eq!(left, ["b1"]);
}

#[tokio::test]
async fn a_restarted_redis_means_a_new_epoch_and_a_reset_for_subscribers() {
    let mut redis = Redis::start();
    let (a, b) = two_nodes(&redis, HubConfig::default()).await;
    let mut sub = b
        .subscribe("feed", None, ClientInfo::new("b1"))
        .await
        .unwrap();
    let before = a.publish("feed", json(1)).await.unwrap();
    assert_eq!(recv(&mut sub).await.cursor(), Some(before));

    redis.restart_empty();
    // Both nodes reconnect by themselves; publish until A is back (bounded).
    let deadline = Instant::now() + Duration::from_secs(20);
    let after = loop {
        match a.publish("feed", json(2)).await {
            Ok(c) => break c,
            Err(HubError::Broker(BrokerError::Unavailable(_))) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("publish after the restart: {e}"),
        }
    };
    assert_ne!(after.epoch, before.epoch, "the data was lost: a new epoch");
    assert_eq!(after.offset, 1);

    // B's feed comes back too: keep publishing until B sees the new epoch. What it sees
    // first of it is a reset (its old position cannot be continued), then messages.
    let mut got = Vec::new();
    while got.len() < 2 {
        let next = tokio::time::timeout(Duration::from_millis(300), sub.recv()).await;
        match next {
            Ok(m) => got.push(m.unwrap()),
            Err(_) => {
                assert!(
                    Instant::now() < deadline,
                    "B never saw the new epoch: {got:?}"
                );
                a.publish("feed", json(3)).await.unwrap();
            }
        }
    }
    assert_eq!(got[0].event(), Event::Reset, "{got:?}");
    assert_eq!(got[0].cursor().unwrap().epoch, after.epoch);
    assert_eq!(got[1].event(), Event::Message);
    assert_eq!(got[1].cursor().unwrap().epoch, after.epoch);
}

/// Node B reaches Redis through a gate that the test cuts (a partition): messages
/// published by A meanwhile never reach B's feed. When B's connection is back, its
/// subscriber gets them at once, with no further publish: within the epoch as they were;
/// after Redis restarted empty, a reset just before the oldest held and then each of them.
#[tokio::test]
async fn a_node_whose_feed_comes_back_catches_its_subscribers_up_at_once() {
    let mut redis = Redis::start();
    let gate = Gate::start(redis.port()).await;
    let a = node(&redis, HubConfig::default()).await;
    let options = RedisOptions {
        max_reconnect_delay: Duration::from_millis(100),
        ..RedisOptions::default()
    };
    let b = Hub::with_broker(
        HubConfig::default(),
        Arc::new(RedisBroker::connect(&gate.url(), options).await.unwrap()),
    );
    let mut sub = b
        .subscribe("feed", None, ClientInfo::new("b1"))
        .await
        .unwrap();
    let first = a.publish("feed", json(1)).await.unwrap();
    assert_eq!(recv(&mut sub).await.cursor(), Some(first));

    gate.cut();
    let missed = [
        a.publish("feed", json(2)).await.unwrap(),
        a.publish("feed", json(3)).await.unwrap(),
    ];
    assert!(matches!(sub.try_recv(), Ok(None)));
    gate.restore();
    for c in missed {
        assert_eq!(recv(&mut sub).await.cursor(), Some(c));
    }

    gate.cut();
    redis.restart_empty();
    let mut fresh = vec![publish_when_back(&a, "feed", json(4)).await];
    for n in 5..=6 {
        fresh.push(a.publish("feed", json(n)).await.unwrap());
    }
    assert_ne!(fresh[0].epoch, first.epoch);
    gate.restore();
    let reset = recv(&mut sub).await;
    assert_eq!(
        (reset.event(), reset.cursor(), reset.reset_lost()),
        (Event::Reset, Some(Cursor::new(fresh[0].epoch, 0)), None)
    );
    for (n, c) in (4..).zip(&fresh) {
        let m = recv(&mut sub).await;
        assert_eq!(
            (m.cursor(), &m.data()[..]),
            (Some(*c), n.to_string().as_bytes())
        );
    }
    assert!(matches!(sub.try_recv(), Ok(None)));
}

#[tokio::test]
async fn without_redis_operations_fail_as_unavailable() {
    let mut redis = Redis::start();
    let url = redis.url();
    let a = node(&redis, HubConfig::default()).await;
    a.publish("x", json(1)).await.unwrap();
    redis.stop();
    let err = a.publish("x", json(2)).await.unwrap_err();
    assert!(
        matches!(err, HubError::Broker(BrokerError::Unavailable(_))),
        "{err:?}"
    );
    let err = a
        .subscribe("x", None, ClientInfo::new("c"))
        .await
        .unwrap_err();
    assert!(matches!(err, HubError::Broker(_)), "{err:?}");

    // Connecting to nothing is refused at once, with the address in the message.
    let err = RedisBroker::connect(&url, RedisOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, BrokerError::Unavailable(ref m) if m.contains(&url)),
        "{err:?}"
    );
    let err = RedisBroker::connect("nonsense://", RedisOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::Unavailable(_)), "{err:?}");
}

/// Keys expire unless they hold history meant to stay: a channel only read (e.g. polled
/// under a mistyped name) expires, one with `history_ttl` expires with its history, one
/// with no history expires a day after its last publish.
#[tokio::test]
async fn keys_expire_unless_they_hold_history_for_good() {
    let redis = Redis::start();
    let keep = NamespaceConfig {
        history_ttl: None,
        ..Default::default()
    };
    let none = NamespaceConfig {
        history_size: 0,
        ..Default::default()
    };
    let config = HubConfig::default()
        .with_namespace("keep", keep)
        .with_namespace("none", none);
    let hub = node(&redis, config).await;
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut expire = conn.clone();
    let day = 24 * 3600 * 1000;
    let mut pttl = async |channel: &str| -> i64 {
        redis::cmd("PTTL")
            .arg(format!("sb:{{{channel}}}:m"))
            .query_async(&mut conn)
            .await
            .unwrap()
    };

    hub.history("keep:a", None, None).await.unwrap();
    let t = pttl("keep:a").await;
    assert!(t > 0 && t <= day, "a channel only read expires: {t}");
    // Each read renews it: a poller's cursor of the empty channel stays valid.
    let _: i64 = redis::cmd("PEXPIRE")
        .arg("sb:{keep:a}:m")
        .arg(1000)
        .query_async(&mut expire)
        .await
        .unwrap();
    hub.history("keep:a", None, None).await.unwrap();
    let t = pttl("keep:a").await;
    assert!(t > 300_000 && t <= day, "renewed by a read: {t}");
    hub.publish("keep:a", json(1)).await.unwrap();
    assert_eq!(pttl("keep:a").await, -1, "history kept for good");

    hub.publish("x", json(1)).await.unwrap();
    let t = pttl("x").await;
    assert!(t > 0 && t <= 300_000, "expires with its history_ttl: {t}");

    hub.publish("none:y", json(1)).await.unwrap();
    let t = pttl("none:y").await;
    assert!(t > 300_000 && t <= day, "no history: a day: {t}");
}

/// The same idempotency key sent to both nodes at once is stored once: one node's script
/// stores it, the other finds the key and answers the same cursor; subscribers on both
/// get it once. A key given again after its window stores again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_sent_to_two_nodes_at_once_is_stored_once() {
    let redis = Redis::start();
    let config = HubConfig {
        idempotency_window: Duration::from_millis(1500),
        ..HubConfig::default()
    };
    let (a, b) = two_nodes(&redis, config).await;
    let mut on_a = a
        .subscribe("idem", None, ClientInfo::new("a1"))
        .await
        .unwrap();
    let mut on_b = b
        .subscribe("idem", None, ClientInfo::new("b1"))
        .await
        .unwrap();
    const ROUNDS: u64 = 40;
    for round in 0..ROUNDS {
        let key = format!("key-{round}");
        let send = |hub: Hub, key: String| {
            tokio::spawn(async move {
                let options = PublishOptions::from_backend().with_key(Some(&key));
                hub.publish_with("idem", json(round), options)
                    .await
                    .unwrap()
            })
        };
        let (x, y) = (send(a.clone(), key.clone()), send(b.clone(), key));
        let (x, y) = (x.await.unwrap(), y.await.unwrap());
        assert_eq!(x.cursor, y.cursor, "round {round}");
        assert_eq!(
            u8::from(x.duplicate) + u8::from(y.duplicate),
            1,
            "round {round}"
        );
        assert_eq!(x.cursor.offset, round + 1, "one message per round");
    }
    for sub in [&mut on_a, &mut on_b] {
        for round in 0..ROUNDS {
            let m = recv(sub).await;
            assert_eq!(m.cursor().unwrap().offset, round + 1);
            assert_eq!(&m.data()[..], round.to_string().as_bytes());
        }
        assert!(matches!(sub.try_recv(), Ok(None)), "no duplicate delivered");
    }
    let HistoryAnswer::Gap { messages, .. } = a.history("idem", None, None).await.unwrap() else {
        panic!("history")
    };
    assert_eq!(messages.len() as u64, ROUNDS);

    // The key's window over (Redis expired it), the same key stores again.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let later = b
        .publish_with(
            "idem",
            json(0),
            PublishOptions::from_backend().with_key(Some("key-0")),
        )
        .await
        .unwrap();
    assert!(!later.duplicate);
    assert_eq!(later.cursor.offset, ROUNDS + 1);
}

/// `history_bytes` on Redis: the publish script keeps a running byte count of each log
/// (payload + the stored-message constant per entry) and trims the oldest by it, in the
/// same step as the append; a cursor trimmed away resets to what is held. Age trims and
/// length trims keep the count right.
#[tokio::test]
async fn retention_trims_by_bytes_with_a_running_count() {
    let redis = Redis::start();
    let each = 100 + STORED_MESSAGE_COST;
    let bytes = NamespaceConfig {
        history_size: 1000,
        history_bytes: 4 * each,
        ..Default::default()
    };
    let few = NamespaceConfig {
        history_size: 2,
        history_bytes: 4 * each,
        ..Default::default()
    };
    let config = HubConfig::default()
        .with_namespace("bytes", bytes)
        .with_namespace("few", few);
    let (a, b) = two_nodes(&redis, config).await;
    let text = || Payload::text(Bytes::from(vec![b'x'; 100])).unwrap();
    let mut c = Vec::new();
    for _ in 0..10 {
        c.push(a.publish("bytes:x", text()).await.unwrap());
    }
    let HistoryAnswer::Reset {
        messages, earliest, ..
    } = b.history("bytes:x", Some(c[0]), None).await.unwrap()
    else {
        panic!("the first cursor is trimmed away: a reset");
    };
    assert_eq!(offsets(&messages), vec![7, 8, 9, 10]);
    assert_eq!(earliest, c[5]);
    // A bigger message takes the room of several: the count follows what is held.
    a.publish(
        "bytes:x",
        Payload::text(Bytes::from(vec![b'y'; 250])).unwrap(),
    )
    .await
    .unwrap();
    let held = |answer: HistoryAnswer| match answer {
        HistoryAnswer::Gap { messages, .. } | HistoryAnswer::Reset { messages, .. } => {
            offsets(&messages)
        }
    };
    assert_eq!(
        held(b.history("bytes:x", None, None).await.unwrap()),
        vec![9, 10, 11]
    );
    // Trimmed by length first: the byte count only holds what is left.
    for _ in 0..5 {
        a.publish("few:x", text()).await.unwrap();
    }
    assert_eq!(
        held(b.history("few:x", None, None).await.unwrap()),
        vec![4, 5]
    );
    for _ in 0..2 {
        a.publish("few:x", text()).await.unwrap();
    }
    assert_eq!(
        held(b.history("few:x", None, None).await.unwrap()),
        vec![6, 7]
    );
}
