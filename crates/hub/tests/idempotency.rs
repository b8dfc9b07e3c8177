//! Idempotent publish on the in-memory broker: a key given again to the same channel
//! within the window stores and delivers nothing and answers the first cursor; racing
//! publishers with one key store once; the window forgets keys when it is over and stays
//! within its byte cap under a flood of distinct keys.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use switchboard_hub::*;

fn json(n: u64) -> Payload {
    Payload::json(Bytes::from(n.to_string())).unwrap()
}

fn keyed(key: &str) -> PublishOptions<'_> {
    PublishOptions::from_backend().with_key(Some(key))
}

async fn history_len(hub: &Hub, ch: &str) -> usize {
    match hub.history(ch, None, None).await.unwrap() {
        HistoryAnswer::Gap { messages, .. } | HistoryAnswer::Reset { messages, .. } => {
            messages.len()
        }
    }
}

#[tokio::test]
async fn a_key_given_again_stores_nothing_and_answers_the_first_cursor() {
    let hub = Hub::new(HubConfig::default());
    let mut sub = hub
        .subscribe("a", None, ClientInfo::new("c"))
        .await
        .unwrap();
    let first = hub.publish_with("a", json(1), keyed("k1")).await.unwrap();
    assert!(!first.duplicate);
    let again = hub.publish_with("a", json(2), keyed("k1")).await.unwrap();
    assert_eq!(again.cursor, first.cursor);
    assert!(again.duplicate);
    assert_eq!(history_len(&hub, "a").await, 1);

    // The same key on another channel is another message; no key is never a duplicate.
    let other = hub.publish_with("b", json(1), keyed("k1")).await.unwrap();
    assert!(!other.duplicate);
    let plain = hub.publish("a", json(3)).await.unwrap();
    assert_eq!(plain.offset, 2);

    let m = sub.recv().await.unwrap();
    assert_eq!((m.cursor(), &m.data()[..]), (Some(first.cursor), &b"1"[..]));
    assert_eq!(sub.recv().await.unwrap().cursor(), Some(plain));
    assert!(
        matches!(sub.try_recv(), Ok(None)),
        "the duplicate was not delivered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_publishers_with_one_key_store_once() {
    let hub = Hub::new(HubConfig::default());
    for round in 0..50u64 {
        let key = format!("race-{round}");
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (hub, key) = (hub.clone(), key.clone());
                tokio::spawn(async move {
                    hub.publish_with("race", json(round), keyed(&key))
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut answers = Vec::new();
        for t in tasks {
            answers.push(t.await.unwrap());
        }
        assert_eq!(answers.iter().filter(|p| !p.duplicate).count(), 1);
        assert!(answers.iter().all(|p| p.cursor == answers[0].cursor));
    }
    assert_eq!(history_len(&hub, "race").await, 50);
}

#[tokio::test(start_paused = true)]
async fn a_key_is_remembered_for_its_window_only() {
    let config = HubConfig {
        idempotency_window: Duration::from_secs(60),
        ..HubConfig::default()
    };
    let hub = Hub::new(config);
    let first = hub.publish_with("a", json(1), keyed("k")).await.unwrap();
    tokio::time::advance(Duration::from_secs(60)).await;
    let within = hub.publish_with("a", json(1), keyed("k")).await.unwrap();
    assert!(within.duplicate);
    assert_eq!(within.cursor, first.cursor);
    tokio::time::advance(Duration::from_millis(1001)).await;
    let after = hub.publish_with("a", json(1), keyed("k")).await.unwrap();
    assert!(!after.duplicate, "the window is over: stored again");
    assert_eq!(after.cursor.offset, 2);
}

#[tokio::test]
async fn keys_are_bounded_in_length() {
    let hub = Hub::new(HubConfig::default());
    let longest = "k".repeat(MAX_IDEMPOTENCY_KEY_LEN);
    assert!(hub
        .publish_with("a", json(1), keyed(&longest))
        .await
        .is_ok());
    for bad in [String::new(), "k".repeat(MAX_IDEMPOTENCY_KEY_LEN + 1)] {
        assert_eq!(
            hub.publish_with("a", json(1), keyed(&bad)).await,
            Err(HubError::InvalidIdempotencyKey {
                max: MAX_IDEMPOTENCY_KEY_LEN
            })
        );
    }
    assert_eq!(history_len(&hub, "a").await, 1);
}

#[tokio::test]
async fn a_flood_of_distinct_keys_keeps_the_window_within_its_bound() {
    let cap = 256 * 1024;
    let broker = Arc::new(MemoryBroker::with_limits(MemoryLimits {
        idempotency_bytes: cap,
        ..MemoryLimits::default()
    }));
    let hub = Hub::with_broker(HubConfig::default(), broker.clone());
    let mut peak = 0;
    for i in 0..20_000u64 {
        let key = format!("flood-{i}-{}", "x".repeat(100));
        let p = hub
            .publish_with("flood", json(i), keyed(&key))
            .await
            .unwrap();
        assert!(!p.duplicate);
        peak = peak.max(broker.idempotency_window().1);
    }
    let (keys, bytes) = broker.idempotency_window();
    assert_eq!(keys, cap / window::KEY_COST, "the cap holds this many keys");
    assert!(
        peak <= cap,
        "the window took {peak} bytes, over its cap of {cap}"
    );
    assert!(bytes <= cap);
    // The newest keys are remembered, the oldest went first.
    let newest = format!("flood-19999-{}", "x".repeat(100));
    assert!(
        hub.publish_with("flood", json(0), keyed(&newest))
            .await
            .unwrap()
            .duplicate
    );
    let oldest = format!("flood-0-{}", "x".repeat(100));
    assert!(
        !hub.publish_with("flood", json(0), keyed(&oldest))
            .await
            .unwrap()
            .duplicate
    );
}
