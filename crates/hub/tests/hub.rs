//! Behaviour of the hub through its public API: offsets, history gaps and resets,
//! subscribe without races, slow consumers, presence, policies and disconnects.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use bytes::Bytes;
use switchboard_hub::*;
use switchboard_proto::{EnvelopeJson, SseEnvelope};

fn json(n: u64) -> Payload {
    Payload::json(Bytes::from(n.to_string())).unwrap()
}

fn hub_with(ns: NamespaceConfig) -> Hub {
    Hub::new(HubConfig::default().with_namespace("", ns))
}

fn client(id: &str) -> ClientInfo {
    ClientInfo::new(id)
}

async fn publish_n(hub: &Hub, ch: &str, n: u64) -> Vec<Cursor> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(hub.publish(ch, json(i)).await.unwrap());
    }
    out
}

fn offsets(msgs: &[Message]) -> Vec<u64> {
    msgs.iter().map(|m| m.cursor().unwrap().offset).collect()
}

/// Receives with a guard against hanging (a failure, not a timing assertion).
async fn recv(sub: &mut Subscription) -> Result<Message, RecvError> {
    tokio::time::timeout(Duration::from_secs(10), sub.recv())
        .await
        .expect("recv hung")
}

fn nothing_ready(sub: &mut Subscription) -> bool {
    matches!(sub.try_recv(), Ok(None))
}

#[tokio::test]
async fn offsets_are_one_to_n_in_one_epoch() {
    let hub = Hub::new(HubConfig::default());
    let cursors = publish_n(&hub, "a", 50).await;
    let epoch = cursors[0].epoch;
    for (i, c) in cursors.iter().enumerate() {
        assert_eq!(*c, Cursor::new(epoch, i as u64 + 1));
    }
    // Another channel has its own log.
    let other = hub.publish("b", json(0)).await.unwrap();
    assert_eq!(other.offset, 1);
}

#[tokio::test]
async fn history_since_returns_exactly_the_gap() {
    let hub = Hub::new(HubConfig::default());
    let c = publish_n(&hub, "a", 10).await;
    let e = c[0].epoch;
    let cases: &[(u64, Option<usize>, Vec<u64>, bool)] = &[
        (4, None, (5..=10).collect(), false),
        (4, Some(3), vec![5, 6, 7], true),
        (4, Some(6), (5..=10).collect(), false),
        (0, None, (1..=10).collect(), false),
        (10, None, vec![], false),
    ];
    for (since, limit, want, want_more) in cases {
        match hub
            .history("a", Some(Cursor::new(e, *since)), *limit)
            .await
            .unwrap()
        {
            HistoryAnswer::Gap {
                messages,
                head,
                more,
            } => {
                assert_eq!(offsets(&messages), *want, "since {since} limit {limit:?}");
                assert_eq!(head, Cursor::new(e, 10));
                assert_eq!(more, *want_more);
            }
            other => panic!("since {since}: {other:?}"),
        }
    }
    // Without a cursor: the latest `limit` messages.
    match hub.history("a", None, Some(3)).await.unwrap() {
        HistoryAnswer::Gap { messages, .. } => assert_eq!(offsets(&messages), vec![8, 9, 10]),
        other => panic!("{other:?}"),
    }
    // A subscription from a cursor delivers the same gap, then live messages.
    let mut sub = hub
        .subscribe("a", Some(Cursor::new(e, 7)), client("c"))
        .await
        .unwrap();
    hub.publish("a", json(11)).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(recv(&mut sub).await.unwrap());
    }
    assert_eq!(offsets(&got), vec![8, 9, 10, 11]);
    assert!(nothing_ready(&mut sub));
}

#[tokio::test]
async fn count_bound_gives_reset() {
    let hub = hub_with(NamespaceConfig {
        history_size: 5,
        ..Default::default()
    });
    let c = publish_n(&hub, "a", 10).await;
    let e = c[0].epoch;
    match hub
        .history("a", Some(Cursor::new(e, 4)), None)
        .await
        .unwrap()
    {
        HistoryAnswer::Reset {
            head,
            earliest,
            messages,
            more,
        } => {
            assert_eq!(head, Cursor::new(e, 10));
            assert_eq!(earliest, Cursor::new(e, 5));
            // What is still held comes with the reset, in the same read.
            assert_eq!(offsets(&messages), (6..=10).collect::<Vec<_>>());
            assert!(!more);
        }
        other => panic!("{other:?}"),
    }
    match hub
        .history("a", Some(Cursor::new(e, 5)), None)
        .await
        .unwrap()
    {
        HistoryAnswer::Gap { messages, .. } => {
            assert_eq!(offsets(&messages), (6..=10).collect::<Vec<_>>());
        }
        other => panic!("{other:?}"),
    }
    // With a limit the reset's messages are cut, and say so.
    match hub
        .history("a", Some(Cursor::new(e, 4)), Some(2))
        .await
        .unwrap()
    {
        HistoryAnswer::Reset { messages, more, .. } => {
            assert_eq!(offsets(&messages), vec![6, 7]);
            assert!(more);
        }
        other => panic!("{other:?}"),
    }
    // A subscriber behind the retained window gets an explicit reset just before the
    // oldest message held (saying how many it lost: 3, 4 and 5), then every message held,
    // then live messages.
    let mut sub = hub
        .subscribe("a", Some(Cursor::new(e, 2)), client("c"))
        .await
        .unwrap();
    let reset = recv(&mut sub).await.unwrap();
    assert_eq!(reset.event(), Event::Reset);
    assert_eq!(reset.cursor(), Some(Cursor::new(e, 5)));
    assert_eq!(reset.reset_lost(), Some(3));
    assert_eq!(
        &reset.encoded::<EnvelopeJson>()[..],
        format!(
            r#"{{"channel":"a","event":"reset","offset":5,"cursor":"{e}:5","data":{{"lost":3}}}}"#
        )
        .as_bytes()
    );
    for offset in 6..=10 {
        assert_eq!(
            recv(&mut sub).await.unwrap().cursor(),
            Some(Cursor::new(e, offset))
        );
    }
    assert!(nothing_ready(&mut sub));
    hub.publish("a", json(0)).await.unwrap();
    assert_eq!(
        recv(&mut sub).await.unwrap().cursor(),
        Some(Cursor::new(e, 11))
    );
    assert_eq!(sub.position(), Cursor::new(e, 11));
}

#[tokio::test]
async fn no_history_means_only_the_head_resumes() {
    let hub = hub_with(NamespaceConfig {
        history_size: 0,
        ..Default::default()
    });
    let c = publish_n(&hub, "a", 3).await;
    assert!(matches!(
        hub.history("a", Some(c[1]), None).await.unwrap(),
        HistoryAnswer::Reset { .. }
    ));
    match hub.history("a", Some(c[2]), None).await.unwrap() {
        HistoryAnswer::Gap { messages, .. } => assert!(messages.is_empty()),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn age_bound_gives_reset() {
    let hub = hub_with(NamespaceConfig {
        history_ttl: Some(Duration::from_secs(10)),
        ..Default::default()
    });
    let c = publish_n(&hub, "a", 3).await;
    let e = c[0].epoch;
    tokio::time::advance(Duration::from_secs(5)).await;
    hub.publish("a", json(4)).await.unwrap();
    match hub
        .history("a", Some(Cursor::new(e, 0)), None)
        .await
        .unwrap()
    {
        HistoryAnswer::Gap { messages, .. } => assert_eq!(offsets(&messages), vec![1, 2, 3, 4]),
        other => panic!("{other:?}"),
    }
    tokio::time::advance(Duration::from_secs(6)).await;
    // 11 s after the first three, 6 s after the fourth.
    match hub
        .history("a", Some(Cursor::new(e, 0)), None)
        .await
        .unwrap()
    {
        HistoryAnswer::Reset {
            head,
            earliest,
            messages,
            ..
        } => {
            assert_eq!(head, Cursor::new(e, 4));
            assert_eq!(earliest, Cursor::new(e, 3));
            assert_eq!(offsets(&messages), vec![4]);
        }
        other => panic!("{other:?}"),
    }
    match hub
        .history("a", Some(Cursor::new(e, 3)), None)
        .await
        .unwrap()
    {
        HistoryAnswer::Gap { messages, .. } => assert_eq!(offsets(&messages), vec![4]),
        other => panic!("{other:?}"),
    }
    tokio::time::advance(Duration::from_secs(5)).await;
    // Everything expired: only the head itself can be continued.
    assert!(matches!(
        hub.history("a", Some(Cursor::new(e, 3)), None)
            .await
            .unwrap(),
        HistoryAnswer::Reset { .. }
    ));
    assert!(matches!(
        hub.history("a", Some(Cursor::new(e, 4)), None)
            .await
            .unwrap(),
        HistoryAnswer::Gap { .. }
    ));
}

#[tokio::test]
async fn unknown_epoch_or_future_cursor_gives_reset() {
    let broker = Arc::new(MemoryBroker::new());
    let hub = Hub::with_broker(HubConfig::default(), broker.clone());
    let c = publish_n(&hub, "a", 3).await;
    let e = c[0].epoch;
    let other_epoch = Epoch(e.0.wrapping_add(1));
    for bad in [
        Cursor::new(other_epoch, 1),
        Cursor::new(e, 4),
        Cursor::new(other_epoch, 0),
    ] {
        match hub.history("a", Some(bad), None).await.unwrap() {
            HistoryAnswer::Reset { head, .. } => assert_eq!(head, Cursor::new(e, 3)),
            other => panic!("{bad}: {other:?}"),
        }
    }
    // The broker loses the channel's log (e.g. a wiped store): a new epoch starts, and a
    // subscriber resuming from the old one is told so.
    broker.forget("a");
    let fresh = hub.publish("a", json(0)).await.unwrap();
    assert_ne!(fresh.epoch, e);
    assert_eq!(fresh.offset, 1);
    // The reset continues just before the oldest message of the new epoch (how many were
    // lost is not known), and that message follows at once.
    let mut sub = hub.subscribe("a", Some(c[2]), client("c")).await.unwrap();
    let m = recv(&mut sub).await.unwrap();
    assert_eq!(
        (m.event(), m.cursor(), m.reset_lost()),
        (Event::Reset, Some(Cursor::new(fresh.epoch, 0)), None)
    );
    assert_eq!(recv(&mut sub).await.unwrap().cursor(), Some(fresh));
    assert!(nothing_ready(&mut sub));
}

#[tokio::test]
async fn fan_out_shares_one_message_and_one_encoding() {
    let hub = Hub::new(HubConfig::default());
    let mut subs = Vec::new();
    for i in 0..5 {
        subs.push(
            hub.subscribe("a", None, client(&format!("c{i}")))
                .await
                .unwrap(),
        );
    }
    assert_eq!(hub.subscriber_count("a"), 5);
    hub.publish("a", Payload::text(Bytes::from_static(b"hello")).unwrap())
        .await
        .unwrap();
    let mut got = Vec::new();
    for s in &mut subs {
        got.push(recv(s).await.unwrap());
    }
    let first = got[0].encoded::<SseEnvelope>().clone();
    for m in &got {
        assert!(m.ptr_eq(&got[0]));
        assert_eq!(m.encoded::<SseEnvelope>().as_ptr(), first.as_ptr());
    }
    drop(subs);
    assert_eq!(hub.subscriber_count("a"), 0);
}

/// Publishers run on other threads while subscriptions start; each subscription must see
/// a contiguous run of offsets, none missing and none twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_during_concurrent_publishes_loses_and_duplicates_nothing() {
    const PUBLISHERS: u64 = 3;
    const PER_PUBLISHER: u64 = 60;
    const TOTAL: u64 = PUBLISHERS * PER_PUBLISHER;
    let mut mid_stream = 0;
    for round in 0..150u64 {
        // Odd rounds: a broker whose history answers arrive late, so many publishes land
        // between going live and reading history.
        let broker: Arc<dyn Broker> = if round % 2 == 1 {
            Arc::new(TestBroker::slow_history())
        } else {
            Arc::new(MemoryBroker::new())
        };
        let config = HubConfig::default().with_namespace(
            "",
            NamespaceConfig {
                history_size: 1000,
                queue_capacity: 1000,
                ..Default::default()
            },
        );
        let hub = Hub::with_broker(config, broker);
        let first = hub.publish("a", json(0)).await.unwrap();
        let mut pubs = Vec::new();
        for p in 0..PUBLISHERS {
            let hub = hub.clone();
            pubs.push(tokio::spawn(async move {
                for i in 0..PER_PUBLISHER {
                    hub.publish("a", json(p * 1000 + i)).await.unwrap();
                    // Spread the publishes out so subscriptions land in the middle.
                    let until = std::time::Instant::now() + Duration::from_micros(20);
                    while std::time::Instant::now() < until {
                        std::hint::spin_loop();
                    }
                    tokio::task::yield_now().await;
                }
            }));
        }
        // Subscribe while the publishers are at varying points of their run, either
        // resuming from the first message or starting live.
        let since = if round % 4 < 2 { Some(first) } else { None };
        let threshold = 1 + (round * 7) % TOTAL;
        while head(&hub).await < threshold {
            std::hint::spin_loop();
        }
        let mut sub = hub.subscribe("a", since, client("c")).await.unwrap();
        let start = sub.position();
        let mut expect = start.offset + 1;
        if let Some(s) = since {
            assert_eq!(start, s);
        }
        while expect <= TOTAL + 1 {
            let m = recv(&mut sub).await.unwrap();
            assert_eq!(m.cursor().unwrap().offset, expect, "round {round}");
            expect += 1;
        }
        for p in pubs {
            p.await.unwrap();
        }
        assert!(
            nothing_ready(&mut sub),
            "round {round}: nothing after the last message"
        );
        if start.offset > 1 && start.offset <= TOTAL {
            mid_stream += 1;
        }
    }
    eprintln!("subscribed mid-stream in {mid_stream} of 150 rounds");
}

async fn head(hub: &Hub) -> u64 {
    match hub.history("a", None, Some(0)).await.unwrap() {
        HistoryAnswer::Gap { head, .. } | HistoryAnswer::Reset { head, .. } => head.offset,
    }
}

#[tokio::test]
async fn slow_consumer_close_reports_exact_resume_cursor() {
    let hub = hub_with(NamespaceConfig {
        queue_capacity: 3,
        ..Default::default()
    });
    let mut sub = hub.subscribe("a", None, client("c")).await.unwrap();
    let c = publish_n(&hub, "a", 2).await;
    assert_eq!(recv(&mut sub).await.unwrap().cursor(), Some(c[0]));
    publish_n(&hub, "a", 3).await; // queue: 2, 3, 4 — full; 5 overflows
    let err = recv(&mut sub).await.unwrap_err();
    assert_eq!(
        err,
        RecvError::Closed {
            reason: CloseReason::SlowConsumer,
            resume_from: c[0]
        }
    );
    // Closed stays closed, and the queue was released.
    assert_eq!(recv(&mut sub).await.unwrap_err(), err);
    drop(sub);
    let mut again = hub.subscribe("a", Some(c[0]), client("c")).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(recv(&mut again).await.unwrap());
    }
    assert_eq!(offsets(&got), vec![2, 3, 4, 5]);
}

#[tokio::test]
async fn slow_consumer_drop_oldest_lags_then_resyncs_from_history() {
    let hub = hub_with(NamespaceConfig {
        queue_capacity: 2,
        slow_consumer: SlowConsumerPolicy::DropOldest,
        ..Default::default()
    });
    let mut sub = hub.subscribe("a", None, client("c")).await.unwrap();
    publish_n(&hub, "a", 5).await;
    assert_eq!(
        recv(&mut sub).await.unwrap_err(),
        RecvError::Lagged { missed: 3 }
    );
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(recv(&mut sub).await.unwrap());
    }
    assert_eq!(offsets(&got), vec![1, 2, 3, 4, 5]);
    assert!(nothing_ready(&mut sub));
    hub.publish("a", json(6)).await.unwrap();
    assert_eq!(recv(&mut sub).await.unwrap().cursor().unwrap().offset, 6);
}

#[tokio::test]
async fn slow_consumer_drop_oldest_resets_when_history_is_short() {
    let hub = hub_with(NamespaceConfig {
        queue_capacity: 2,
        history_size: 2,
        slow_consumer: SlowConsumerPolicy::DropOldest,
        ..Default::default()
    });
    let mut sub = hub.subscribe("a", None, client("c")).await.unwrap();
    let c = publish_n(&hub, "a", 5).await;
    assert_eq!(
        recv(&mut sub).await.unwrap_err(),
        RecvError::Lagged { missed: 3 }
    );
    // 1-3 are gone: a reset right before the oldest event still queued, then 4 and 5.
    let m = recv(&mut sub).await.unwrap();
    assert_eq!((m.event(), m.cursor()), (Event::Reset, Some(c[2])));
    assert_eq!(recv(&mut sub).await.unwrap().cursor(), Some(c[3]));
    assert_eq!(recv(&mut sub).await.unwrap().cursor(), Some(c[4]));
    assert!(nothing_ready(&mut sub));
    hub.publish("a", json(6)).await.unwrap();
    assert_eq!(recv(&mut sub).await.unwrap().cursor().unwrap().offset, 6);
}

#[tokio::test]
async fn presence_and_join_leave() {
    let room = NamespaceConfig {
        presence: true,
        join_leave: true,
        ..Default::default()
    };
    let hub = Hub::new(HubConfig::default().with_namespace("room", room));
    let mut a = hub
        .subscribe("room:1", None, client("a").with_user("u1"))
        .await
        .unwrap();
    let own = recv(&mut a).await.unwrap();
    assert_eq!(own.event(), Event::Join);
    assert_eq!(own.cursor(), None);
    assert_eq!(&own.data()[..], br#"{"client":"a","user":"u1"}"#);

    let b = hub
        .subscribe("room:1", None, client("b").with_user("u1"))
        .await
        .unwrap();
    let join = recv(&mut a).await.unwrap();
    assert_eq!(join.event(), Event::Join);
    assert_eq!(
        &join.encoded::<EnvelopeJson>()[..],
        br#"{"channel":"room:1","event":"join","data":{"client":"b","user":"u1"}}"#
    );
    let mut ids: Vec<String> = hub
        .presence("room:1")
        .await
        .unwrap()
        .iter()
        .map(|c| c.client_id().to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, vec!["a", "b"]);
    assert_eq!(
        hub.presence_stats("room:1").await.unwrap(),
        PresenceStats {
            clients: 2,
            users: 1
        }
    );

    b.unsubscribe().await;
    let leave = recv(&mut a).await.unwrap();
    assert_eq!(leave.event(), Event::Leave);
    assert_eq!(&leave.data()[..], br#"{"client":"b","user":"u1"}"#);
    assert_eq!(
        hub.presence_stats("room:1").await.unwrap(),
        PresenceStats {
            clients: 1,
            users: 1
        }
    );

    // Dropping (instead of unsubscribing) cleans up too.
    let c = hub.subscribe("room:1", None, client("c")).await.unwrap();
    assert_eq!(recv(&mut a).await.unwrap().event(), Event::Join);
    drop(c);
    assert_eq!(recv(&mut a).await.unwrap().event(), Event::Leave);
    assert_eq!(hub.presence("room:1").await.unwrap().len(), 1);

    // Presence off by default.
    assert_eq!(
        hub.presence("lobby").await.unwrap_err(),
        HubError::PresenceDisabled
    );
}

#[tokio::test]
async fn presence_without_join_leave_sends_no_events() {
    let ns = NamespaceConfig {
        presence: true,
        join_leave: false,
        ..Default::default()
    };
    let hub = hub_with(ns);
    let mut a = hub.subscribe("x", None, client("a")).await.unwrap();
    let _b = hub.subscribe("x", None, client("b")).await.unwrap();
    assert_eq!(hub.presence("x").await.unwrap().len(), 2);
    assert!(nothing_ready(&mut a));
}

#[tokio::test]
async fn policies_and_validation_errors() {
    let hub = Hub::new(
        HubConfig::default()
            .with_namespace(
                "chat",
                NamespaceConfig {
                    allow_publish: true,
                    max_message_size: 8,
                    ..Default::default()
                },
            )
            .with_namespace(
                "feed",
                NamespaceConfig {
                    allow_subscribe: false,
                    ..Default::default()
                },
            ),
    );
    assert_eq!(
        hub.publish("nope:x", json(1)).await.unwrap_err(),
        HubError::UnknownNamespace("nope".into())
    );
    assert_eq!(
        hub.publish("bad name", json(1)).await.unwrap_err(),
        HubError::InvalidChannel(ChannelNameError::BadChar { index: 3 })
    );
    assert_eq!(
        hub.publish_from_client("lobby", json(1)).await.unwrap_err(),
        HubError::PublishNotAllowed
    );
    assert!(
        hub.publish("lobby", json(1)).await.is_ok(),
        "the backend may always publish"
    );
    assert!(hub.publish_from_client("chat:x", json(1)).await.is_ok());
    let big = Payload::text(Bytes::from_static(b"123456789")).unwrap();
    assert_eq!(
        hub.publish("chat:x", big).await.unwrap_err(),
        HubError::MessageTooLarge { size: 9, max: 8 }
    );
    assert_eq!(
        hub.subscribe("feed:x", None, client("c"))
            .await
            .unwrap_err(),
        HubError::SubscribeNotAllowed
    );
    assert_eq!(hub.namespace("chat:x").unwrap().max_message_size, 8);
}

#[tokio::test]
async fn disconnect_and_shutdown_close_with_resume_cursor() {
    let hub = Hub::new(HubConfig::default());
    let mut a1 = hub
        .subscribe("a", None, client("x").with_user("u"))
        .await
        .unwrap();
    let mut a2 = hub
        .subscribe("b", None, client("x").with_user("u"))
        .await
        .unwrap();
    let mut other = hub
        .subscribe("a", None, client("y").with_user("v"))
        .await
        .unwrap();
    let c = hub.publish("a", json(1)).await.unwrap();
    assert_eq!(recv(&mut a1).await.unwrap().cursor(), Some(c));
    assert_eq!(hub.disconnect("x"), 2);
    assert_eq!(
        recv(&mut a1).await.unwrap_err(),
        RecvError::Closed {
            reason: CloseReason::Disconnected,
            resume_from: c
        }
    );
    assert!(matches!(
        recv(&mut a2).await.unwrap_err(),
        RecvError::Closed {
            reason: CloseReason::Disconnected,
            ..
        }
    ));
    assert_eq!(recv(&mut other).await.unwrap().cursor(), Some(c));
    assert_eq!(hub.disconnect_user("v"), 1);
    assert!(matches!(
        recv(&mut other).await.unwrap_err(),
        RecvError::Closed { .. }
    ));

    let mut z = hub.subscribe("a", None, client("z")).await.unwrap();
    assert_eq!(hub.shutdown(), 1);
    assert!(matches!(
        recv(&mut z).await.unwrap_err(),
        RecvError::Closed {
            reason: CloseReason::Shutdown,
            ..
        }
    ));
    assert_eq!(
        hub.subscribe("a", None, client("z")).await.unwrap_err(),
        HubError::Shutdown
    );
    assert_eq!(
        hub.publish("a", json(1)).await.unwrap_err(),
        HubError::Shutdown
    );
}

#[tokio::test]
async fn channel_stats() {
    let hub = Hub::new(HubConfig::default());
    publish_n(&hub, "a", 3).await;
    let _s1 = hub.subscribe("a", None, client("1")).await.unwrap();
    let _s2 = hub.subscribe("b", None, client("2")).await.unwrap();
    let stats = hub.channels().await.unwrap();
    let a = stats.iter().find(|s| &*s.name == "a").unwrap();
    assert_eq!(
        (a.subscribers, a.head.map(|c| c.offset), a.retained),
        (1, Some(3), 3)
    );
    let b = stats.iter().find(|s| &*s.name == "b").unwrap();
    assert_eq!(
        (b.subscribers, b.head.map(|c| c.offset), b.retained),
        (1, Some(0), 0)
    );
}

struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn poll_recv_wakes_the_registered_waker_without_a_task() {
    let hub = Hub::new(HubConfig::default());
    let mut sub = hub.subscribe("a", None, client("c")).await.unwrap();
    let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let waker = Waker::from(counter.clone());
    let mut cx = Context::from_waker(&waker);
    assert!(sub.poll_recv(&mut cx).is_pending());
    hub.publish("a", json(1)).await.unwrap();
    hub.publish("a", json(2)).await.unwrap();
    assert_eq!(
        counter.0.load(Ordering::SeqCst),
        1,
        "woken once; the waker is taken"
    );
    // Drain everything that is ready, as a connection would before one batched write.
    let mut drained = Vec::new();
    while let Poll::Ready(r) = sub.poll_recv(&mut cx) {
        drained.push(r.unwrap());
    }
    assert_eq!(offsets(&drained), vec![1, 2]);
    hub.disconnect("c");
    assert_eq!(counter.0.load(Ordering::SeqCst), 2, "closing wakes too");
}

#[tokio::test]
async fn hubs_sharing_a_broker_behave_as_nodes() {
    let broker = Arc::new(MemoryBroker::new());
    let node1 = Hub::with_broker(HubConfig::default(), broker.clone());
    let node2 = Hub::with_broker(HubConfig::default(), broker.clone());
    let mut sub = node2.subscribe("a", None, client("c")).await.unwrap();
    let c = node1.publish("a", json(1)).await.unwrap();
    assert_eq!(recv(&mut sub).await.unwrap().cursor(), Some(c));
    // Resume on the other node from the cursor.
    node1.publish("a", json(2)).await.unwrap();
    let mut moved = node1.subscribe("a", Some(c), client("c")).await.unwrap();
    assert_eq!(recv(&mut moved).await.unwrap().cursor().unwrap().offset, 2);
}

/// A broker over `MemoryBroker` that can lose chosen offsets from its live feed (as a
/// network broker may across a reconnect; history still has them) and answer history
/// reads late (as a network broker does), widening the subscribe/publish race window.
#[derive(Debug, Default)]
struct TestBroker {
    inner: MemoryBroker,
    filter: Mutex<Option<Arc<LossyFilter>>>,
    lose: Vec<u64>,
    history_delay: Option<Duration>,
}

impl TestBroker {
    fn lossy(lose: Vec<u64>) -> Self {
        TestBroker {
            lose,
            ..Default::default()
        }
    }

    fn filter(&self) -> Arc<LossyFilter> {
        self.filter.lock().unwrap().clone().unwrap()
    }

    /// The live feed stops delivering (its connection is down).
    fn feed_down(&self) {
        self.filter().down.store(true, Ordering::SeqCst);
    }

    /// The live feed delivers again, and tells the sinks it may have missed messages
    /// (what a network broker does once its channels are subscribed again).
    fn feed_back(&self) {
        let filter = self.filter();
        filter.down.store(false, Ordering::SeqCst);
        filter.resync_all();
    }

    fn slow_history() -> Self {
        TestBroker {
            history_delay: Some(Duration::from_micros(300)),
            ..Default::default()
        }
    }
}

struct LossyFilter {
    sink: Weak<dyn FeedSink>,
    lose: Vec<u64>,
    /// While set the feed delivers nothing (a network broker's connection is down).
    down: AtomicBool,
}

impl std::fmt::Debug for LossyFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LossyFilter")
    }
}

impl FeedSink for LossyFilter {
    fn deliver(&self, msg: &Message) {
        if self.down.load(Ordering::SeqCst)
            || msg.cursor().is_some_and(|c| self.lose.contains(&c.offset))
        {
            return;
        }
        if let Some(s) = self.sink.upgrade() {
            s.deliver(msg);
        }
    }

    fn resync_all(&self) {
        if let Some(s) = self.sink.upgrade() {
            s.resync_all();
        }
    }
}

impl Broker for TestBroker {
    fn attach(&self, sink: Weak<dyn FeedSink>) {
        let filter = Arc::new(LossyFilter {
            sink,
            lose: self.lose.clone(),
            down: AtomicBool::new(false),
        });
        let as_sink: Arc<dyn FeedSink> = filter.clone();
        self.inner.attach(Arc::downgrade(&as_sink));
        *self.filter.lock().unwrap() = Some(filter);
    }
    fn publish(
        &self,
        c: &str,
        p: Payload,
        r: Retention,
        i: Option<Idempotency<'_>>,
    ) -> BrokerFuture<'_, Published> {
        self.inner.publish(c, p, r, i)
    }
    fn broadcast(&self, m: Message) -> BrokerFuture<'_, ()> {
        self.inner.broadcast(m)
    }
    fn history(
        &self,
        c: &str,
        s: Option<Cursor>,
        l: Option<usize>,
        r: Retention,
    ) -> BrokerFuture<'_, HistoryAnswer> {
        match self.history_delay {
            None => self.inner.history(c, s, l, r),
            Some(d) => {
                let c = c.to_owned();
                BrokerFuture::boxed(async move {
                    tokio::time::sleep(d).await;
                    self.inner.history(&c, s, l, r).await
                })
            }
        }
    }
    fn subscribe(&self, c: &str) -> BrokerFuture<'_, ()> {
        self.inner.subscribe(c)
    }
    fn unsubscribe(&self, c: &str) -> BrokerFuture<'_, ()> {
        self.inner.unsubscribe(c)
    }
    fn presence_add(&self, c: &str, i: ClientInfo) -> BrokerFuture<'_, bool> {
        self.inner.presence_add(c, i)
    }
    fn presence_remove(&self, c: &str, id: &str) -> BrokerFuture<'_, Option<ClientInfo>> {
        self.inner.presence_remove(c, id)
    }
    fn presence(&self, c: &str) -> BrokerFuture<'_, Vec<ClientInfo>> {
        self.inner.presence(c)
    }
    fn channels(&self) -> BrokerFuture<'_, Vec<ChannelHead>> {
        self.inner.channels()
    }
}

#[tokio::test]
async fn a_live_gap_is_filled_from_history() {
    let broker = Arc::new(TestBroker::lossy(vec![2, 3, 6]));
    let hub = Hub::with_broker(HubConfig::default(), broker);
    let mut sub = hub.subscribe("a", None, client("c")).await.unwrap();
    publish_n(&hub, "a", 7).await;
    let mut got = Vec::new();
    for _ in 0..7 {
        got.push(recv(&mut sub).await.unwrap());
    }
    assert_eq!(offsets(&got), (1..=7).collect::<Vec<_>>());
    assert!(nothing_ready(&mut sub));
}

#[tokio::test]
async fn a_live_gap_beyond_history_is_an_explicit_reset() {
    let broker = Arc::new(TestBroker::lossy(vec![2, 3]));
    let hub = Hub::with_broker(
        HubConfig::default().with_namespace(
            "",
            NamespaceConfig {
                history_size: 0,
                ..Default::default()
            },
        ),
        broker,
    );
    let mut sub = hub.subscribe("a", None, client("c")).await.unwrap();
    let c = publish_n(&hub, "a", 4).await;
    assert_eq!(recv(&mut sub).await.unwrap().cursor(), Some(c[0]));
    let reset = recv(&mut sub).await.unwrap();
    assert_eq!(reset.event(), Event::Reset);
    // The reset says where the stream continues; then offset 4 follows it directly.
    let next = recv(&mut sub).await.unwrap();
    assert_eq!(next.cursor(), Some(c[3]));
    assert_eq!(reset.cursor().unwrap().offset, 3);
}

/// A hub on a [`TestBroker`] and a subscription to `a` that received the first `read` of
/// `published` messages (the rest still queued).
async fn following(
    published: u64,
    read: usize,
) -> (Arc<TestBroker>, Hub, Subscription, Vec<Cursor>) {
    let broker = Arc::new(TestBroker::default());
    let hub = Hub::with_broker(HubConfig::default(), broker.clone());
    let mut sub = hub.subscribe("a", None, client("c")).await.unwrap();
    let cursors = publish_n(&hub, "a", published).await;
    for c in &cursors[..read] {
        assert_eq!(recv(&mut sub).await.unwrap().cursor(), Some(*c));
    }
    (broker, hub, sub, cursors)
}

/// Expects a reset just before the oldest message of `fresh`'s (new) epoch, how many were
/// lost unknown, then exactly `fresh`, then nothing; then one live message, once.
async fn expect_new_epoch(hub: &Hub, sub: &mut Subscription, fresh: &[Cursor]) {
    let reset = recv(sub).await.unwrap();
    assert_eq!(
        (reset.event(), reset.cursor(), reset.reset_lost()),
        (Event::Reset, Some(Cursor::new(fresh[0].epoch, 0)), None)
    );
    for c in fresh {
        assert_eq!(recv(sub).await.unwrap().cursor(), Some(*c));
    }
    assert!(nothing_ready(sub));
    let next = hub.publish("a", json(9)).await.unwrap();
    assert_eq!(recv(sub).await.unwrap().cursor(), Some(next));
    assert!(nothing_ready(sub));
}

/// The issue's live case: the feed was down while the log was lost (a broker restarted
/// empty) and three messages went into the new epoch; the next live message reveals the
/// gap. The subscriber gets a reset just before the oldest message held, then all four,
/// not a reset just before the one that revealed the gap.
#[tokio::test]
async fn a_live_gap_into_a_new_epoch_resets_to_the_oldest_held() {
    let (broker, hub, mut sub, old) = following(2, 2).await;
    broker.feed_down();
    broker.inner.forget("a");
    let mut fresh = publish_n(&hub, "a", 3).await;
    assert_ne!(fresh[0].epoch, old[0].epoch);
    assert!(nothing_ready(&mut sub), "nothing reached the subscriber");
    // The feed is back (without saying so): the next message reveals the gap.
    broker.filter().down.store(false, Ordering::SeqCst);
    fresh.push(hub.publish("a", json(6)).await.unwrap());
    expect_new_epoch(&hub, &mut sub, &fresh).await;
}

/// A feed that comes back says so, and subscriptions catch up at once: what they missed
/// arrives without any further publish (on a quiet channel there may be none), as a plain
/// gap within an epoch, or as a reset and what is held in a new one.
#[tokio::test]
async fn a_feed_that_comes_back_catches_subscriptions_up_at_once() {
    let (broker, hub, mut sub, _) = following(1, 1).await;
    broker.feed_down();
    let missed = publish_n(&hub, "a", 3).await;
    assert!(nothing_ready(&mut sub));
    broker.feed_back();
    for c in &missed {
        assert_eq!(recv(&mut sub).await.unwrap().cursor(), Some(*c));
    }
    assert!(nothing_ready(&mut sub));

    broker.feed_down();
    broker.inner.forget("a");
    let fresh = publish_n(&hub, "a", 2).await;
    assert!(nothing_ready(&mut sub));
    broker.feed_back();
    expect_new_epoch(&hub, &mut sub, &fresh).await;
}

/// A feed that comes back while messages are still queued: those go first (they follow
/// the position), then the catch-up: a reset into the new epoch and what it holds.
#[tokio::test]
async fn queued_messages_go_before_a_resync() {
    let (broker, hub, mut sub, old) = following(3, 2).await;
    broker.feed_down();
    broker.inner.forget("a");
    let fresh = publish_n(&hub, "a", 2).await;
    broker.feed_back();
    assert_eq!(recv(&mut sub).await.unwrap().cursor(), Some(old[2]));
    expect_new_epoch(&hub, &mut sub, &fresh).await;
}

/// Queued messages of a log that is gone (a gap in them led to history, which knows a
/// new epoch only) cannot follow the new log's: after the reset and what the new log
/// holds nothing of the old one comes, and the subscription settles (no endless reads).
#[tokio::test]
async fn queued_messages_of_a_lost_log_do_not_follow_the_reset() {
    let (broker, hub, mut sub, _) = following(1, 1).await;
    broker.feed_down();
    hub.publish("a", json(2)).await.unwrap();
    broker.filter().down.store(false, Ordering::SeqCst);
    // Queued behind a gap, then its log is lost and a new one starts (live, queued too).
    hub.publish("a", json(3)).await.unwrap();
    broker.inner.forget("a");
    let fresh = publish_n(&hub, "a", 2).await;
    expect_new_epoch(&hub, &mut sub, &fresh).await;
}

/// The server moves subscriptions into tasks and spawns hub calls: all must be `Send`.
#[test]
fn types_and_futures_are_send() {
    fn send<T: Send>(_: &T) {}
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Hub>();
    send_sync::<Message>();
    send_sync::<HubError>();
    fn sub_is_send(s: Subscription) -> impl Send {
        s
    }
    let _ = sub_is_send;
    let hub = Hub::new(HubConfig::default());
    send(&hub.publish("a", json(1)));
    send(&hub.subscribe("a", None, client("c")));
    send(&hub.history("a", None, None));
    send(&hub.presence("a"));
    send(&hub.channels());
}

#[tokio::test(start_paused = true)]
async fn sweep_forgets_only_idle_channels() {
    const ERA: Duration = Duration::from_secs(3600);
    let hub = hub_with(NamespaceConfig {
        history_ttl: Some(Duration::from_secs(10)),
        ..Default::default()
    });
    let names = async |hub: &Hub| -> Vec<String> {
        let channels = hub.channels().await.unwrap();
        channels.iter().map(|c| c.name.to_string()).collect()
    };
    let kept = hub.publish("kept", json(1)).await.unwrap();
    let _followed = hub.subscribe("followed", None, client("c")).await.unwrap();
    let old = hub.publish("expired", json(1)).await.unwrap();
    // Followed once: a log, empty and idle now.
    drop(hub.subscribe("empty", None, client("c")).await.unwrap());
    // Only read: no log at all.
    hub.history("read", None, None).await.unwrap();
    assert_eq!(names(&hub).await, ["empty", "expired", "followed", "kept"]);
    tokio::time::advance(Duration::from_secs(8)).await;
    hub.publish("kept", json(2)).await.unwrap();
    tokio::time::advance(Duration::from_secs(3)).await;
    // "empty" never had a message: forgotten at once. "expired" lost its only message to
    // age, but its epoch's era is not over: kept, so its epoch is never made again.
    assert_eq!(hub.sweep().await.unwrap(), 1);
    assert_eq!(names(&hub).await, ["expired", "followed", "kept"]);
    tokio::time::advance(2 * ERA).await;
    hub.publish("kept", json(3)).await.unwrap();
    assert_eq!(hub.sweep().await.unwrap(), 1);
    assert_eq!(names(&hub).await, ["followed", "kept"]);
    assert_eq!(
        hub.publish("kept", json(4)).await.unwrap().epoch,
        kept.epoch
    );
    // A forgotten channel starts a new epoch; the old cursor is told `reset`, and what is
    // held follows it.
    let fresh = hub.publish("expired", json(2)).await.unwrap();
    assert_ne!(fresh.epoch, old.epoch);
    match hub.history("expired", Some(old), None).await.unwrap() {
        HistoryAnswer::Reset { messages, .. } => assert_eq!(offsets(&messages), vec![1]),
        other => panic!("{other:?}"),
    }
}

/// The cursor handed out for a channel nothing was published to (a poll's `E:0`) stays
/// valid for what is published next, however the sweep treated the empty channel and
/// across an era's end; a subscriber of a quiet channel keeps its position for as long
/// as it follows it. Only a cursor of an empty channel nobody used for over an era gets
/// a reset (with every message held after it).
#[tokio::test(start_paused = true)]
async fn an_empty_channels_cursor_stays_valid_for_what_is_published_next() {
    const ERA: Duration = Duration::from_secs(3600);
    let hub = Hub::new(HubConfig::default());
    let head = async |hub: &Hub, ch: &str| match hub.history(ch, None, Some(0)).await.unwrap() {
        HistoryAnswer::Gap { head, .. } => head,
        other => panic!("{other:?}"),
    };
    let gap_after = async |hub: &Hub, ch: &str, since: Cursor| match hub
        .history(ch, Some(since), None)
        .await
        .unwrap()
    {
        HistoryAnswer::Gap { messages, head, .. } => (offsets(&messages), head),
        other => panic!("{since}: {other:?}"),
    };

    // Read, swept, published: the same epoch.
    let empty = head(&hub, "new").await;
    assert_eq!(empty.offset, 0);
    hub.sweep().await.unwrap();
    tokio::time::advance(ERA - Duration::from_secs(2)).await;
    hub.sweep().await.unwrap();
    assert_eq!(
        head(&hub, "new").await,
        empty,
        "reads keep naming it the same"
    );
    let first = hub.publish("new", json(1)).await.unwrap();
    assert_eq!(first, Cursor::new(empty.epoch, 1));
    assert_eq!(gap_after(&hub, "new", empty).await, (vec![1], first));

    // Read at an era's end, published in the next: another epoch, the cursor continues.
    let late = head(&hub, "late").await;
    tokio::time::advance(Duration::from_secs(3)).await;
    let first = hub.publish("late", json(1)).await.unwrap();
    assert_ne!(first.epoch, late.epoch);
    assert_eq!(gap_after(&hub, "late", late).await, (vec![1], first));
    let mut sub = hub
        .subscribe("late", Some(late), client("c"))
        .await
        .unwrap();
    assert_eq!(recv(&mut sub).await.unwrap().cursor(), Some(first));
    assert!(nothing_ready(&mut sub));

    // Followed through several eras: its subscriber gets the first message, no reset.
    let mut quiet = hub.subscribe("quiet", None, client("c")).await.unwrap();
    tokio::time::advance(3 * ERA).await;
    hub.sweep().await.unwrap();
    let first = hub.publish("quiet", json(1)).await.unwrap();
    assert_eq!(recv(&mut quiet).await.unwrap().cursor(), Some(first));

    // An empty log nobody follows takes a later era's epoch when next used; the cursor of
    // its old one still continues (and the answer names the new one).
    drop(hub.subscribe("kept", None, client("c")).await.unwrap());
    let old = head(&hub, "kept").await;
    tokio::time::advance(3 * ERA).await;
    let (none, now) = gap_after(&hub, "kept", old).await;
    assert!(none.is_empty());
    assert_ne!(now.epoch, old.epoch);
    let first = hub.publish("kept", json(1)).await.unwrap();
    assert_eq!(first, Cursor::new(now.epoch, 1));
    assert_eq!(gap_after(&hub, "kept", old).await, (vec![1], first));

    // Unused for over an era: a reset, but nothing held is skipped.
    let gone = head(&hub, "gone").await;
    tokio::time::advance(2 * ERA).await;
    let first = hub.publish("gone", json(1)).await.unwrap();
    match hub.history("gone", Some(gone), None).await.unwrap() {
        HistoryAnswer::Reset {
            earliest, messages, ..
        } => {
            assert_eq!(earliest, Cursor::new(first.epoch, 0));
            assert_eq!(offsets(&messages), vec![1]);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn subscribe_without_presence_is_invisible() {
    let ns = NamespaceConfig {
        presence: true,
        join_leave: true,
        ..Default::default()
    };
    let hub = hub_with(ns);
    let mut watcher = hub.subscribe("x", None, client("w")).await.unwrap();
    assert_eq!(recv(&mut watcher).await.unwrap().event(), Event::Join);
    let poller = hub
        .subscribe_with("x", None, client("p"), SubscribeOptions::without_presence())
        .await
        .unwrap();
    assert_eq!(hub.presence("x").await.unwrap().len(), 1);
    drop(poller);
    assert!(
        nothing_ready(&mut watcher),
        "no join or leave for the quiet subscriber"
    );
    let c = hub.publish("x", json(1)).await.unwrap();
    assert_eq!(recv(&mut watcher).await.unwrap().cursor(), Some(c));
}

/// A broker may announce `join`/`leave` on its own (the Redis broker, for the entries of a
/// node that died): they reach the subscribers of namespaces that announce them only.
#[tokio::test]
async fn join_and_leave_from_the_broker_reach_only_namespaces_that_announce_them() {
    let broker = Arc::new(MemoryBroker::new());
    let config = HubConfig::default().with_namespace(
        "loud",
        NamespaceConfig {
            presence: true,
            join_leave: true,
            ..Default::default()
        },
    );
    let hub = Hub::with_broker(config, broker.clone());
    let mut quiet = hub.subscribe("room", None, client("q")).await.unwrap();
    let mut loud = hub.subscribe("loud:room", None, client("l")).await.unwrap();
    assert_eq!(recv(&mut loud).await.unwrap().event(), Event::Join); // its own
    for ch in ["room", "loud:room"] {
        let leave = Message::presence_event(Arc::from(ch), Event::Leave, &client("gone"));
        broker.broadcast(leave).await.unwrap();
        hub.publish(ch, json(1)).await.unwrap();
    }
    assert_eq!(recv(&mut quiet).await.unwrap().event(), Event::Message);
    assert_eq!(recv(&mut loud).await.unwrap().event(), Event::Leave);
    assert_eq!(recv(&mut loud).await.unwrap().event(), Event::Message);
}
