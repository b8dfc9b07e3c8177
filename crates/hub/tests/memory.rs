//! The in-memory broker's ceilings: what it retains is counted in bytes (payload, the
//! stored-message constant, encodings as they are made, the idempotency window); over
//! the budget the oldest history of all channels goes first, and a subscriber resuming
//! from an evicted cursor gets a `reset` and what is still held; `history_bytes` bounds a
//! channel; `max_channels` bounds logs and this node's subscribed channels.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use switchboard_hub::*;
use switchboard_proto::EnvelopeJson;

/// 100 bytes of text: each stored message counts 100 + STORED_MESSAGE_COST.
fn text() -> Payload {
    Payload::text(Bytes::from(vec![b'x'; 100])).unwrap()
}

const EACH: usize = 100 + STORED_MESSAGE_COST;

fn broker(limits: MemoryLimits) -> Arc<MemoryBroker> {
    Arc::new(MemoryBroker::with_limits(limits))
}

fn no_age_limit() -> HubConfig {
    HubConfig::default().with_namespace(
        "",
        NamespaceConfig {
            history_size: 1000,
            history_ttl: None,
            ..NamespaceConfig::default()
        },
    )
}

async fn held(hub: &Hub, ch: &str) -> Vec<u64> {
    match hub.history(ch, None, None).await.unwrap() {
        HistoryAnswer::Gap { messages, .. } | HistoryAnswer::Reset { messages, .. } => messages
            .iter()
            .map(|m| m.cursor().unwrap().offset)
            .collect(),
    }
}

/// Publishes one message on `ch`, a millisecond after the previous one (time is paused:
/// publish times are distinct and ordered).
async fn publish(hub: &Hub, ch: &str) -> Cursor {
    tokio::time::advance(Duration::from_millis(1)).await;
    hub.publish(ch, text()).await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn over_the_budget_the_oldest_of_all_channels_go_first_and_resumes_are_reset() {
    let budget = 20 * EACH;
    let b = broker(MemoryLimits {
        max_retained_bytes: budget,
        ..MemoryLimits::default()
    });
    let hub = Hub::with_broker(no_age_limit(), b.clone());
    let mut a = Vec::new();
    for _ in 0..10 {
        a.push(publish(&hub, "a").await);
    }
    for _ in 0..10 {
        publish(&hub, "b").await;
    }
    assert_eq!(b.retained_bytes(), budget, "at the budget, nothing went");
    assert_eq!(held(&hub, "a").await.len(), 10);

    // One more: the count goes 1/16 of the budget below it, the oldest first (a1-a3).
    publish(&hub, "c").await;
    assert_eq!(held(&hub, "a").await, (4..=10).collect::<Vec<_>>());
    assert_eq!(held(&hub, "b").await, (1..=10).collect::<Vec<_>>());
    assert_eq!(held(&hub, "c").await, vec![1]);
    assert_eq!(b.retained_bytes(), 18 * EACH);
    assert!(b.retained_bytes() <= budget - budget / 16);

    // A subscriber resuming from before what was evicted is told, and gets what is held.
    let mut sub = hub
        .subscribe("a", Some(a[0]), ClientInfo::new("s"))
        .await
        .unwrap();
    let reset = sub.recv().await.unwrap();
    assert_eq!(reset.event(), Event::Reset);
    assert_eq!(reset.cursor().unwrap().offset, 3);
    assert_eq!(
        reset.reset_lost(),
        Some(2),
        "a2 and a3 are gone (a1 was read)"
    );
    for offset in 4..=10 {
        assert_eq!(sub.recv().await.unwrap().cursor().unwrap().offset, offset);
    }
    // From a cursor still held, nothing is reset.
    let mut fine = hub
        .subscribe("a", Some(a[5]), ClientInfo::new("t"))
        .await
        .unwrap();
    assert_eq!(fine.recv().await.unwrap().cursor().unwrap().offset, 7);
}

#[tokio::test(start_paused = true)]
async fn a_long_flood_stays_within_the_budget_and_keeps_the_newest() {
    let budget = 64 * 1024;
    let b = broker(MemoryLimits {
        max_retained_bytes: budget,
        ..MemoryLimits::default()
    });
    let hub = Hub::with_broker(no_age_limit(), b.clone());
    let mut last = Vec::new();
    let mut peak = 0;
    for i in 0..5_000u64 {
        let ch = format!("flood-{}", i % 7);
        last.push(publish(&hub, &ch).await);
        assert!(
            b.retained_bytes() <= budget,
            "{} after {i}",
            b.retained_bytes()
        );
        peak = peak.max(b.retained_bytes());
    }
    assert!(
        peak > budget - budget / 16,
        "the budget was reached: {peak}"
    );
    // A subscriber resuming from the flood's first message is told what it lost and gets
    // every message still held, from the earliest on: no silent gap.
    let held0 = held(&hub, "flood-0").await;
    let mut sub = hub
        .subscribe("flood-0", Some(last[0]), ClientInfo::new("late"))
        .await
        .unwrap();
    let reset = sub.recv().await.unwrap();
    assert_eq!(reset.event(), Event::Reset);
    assert_eq!(reset.cursor().unwrap().offset, held0[0] - 1);
    assert_eq!(reset.reset_lost(), Some(held0[0] - 2));
    for offset in held0 {
        assert_eq!(sub.recv().await.unwrap().cursor().unwrap().offset, offset);
    }
    // The newest message of every channel is still held.
    for (i, c) in last.iter().rev().take(7).enumerate() {
        let ch = format!("flood-{}", (4_999 - i as u64) % 7);
        assert_eq!(held(&hub, &ch).await.last(), Some(&c.offset), "{ch}");
    }
}

#[tokio::test]
async fn encodings_count_when_made_and_everything_goes_back_when_dropped() {
    let one = HubConfig::default().with_namespace(
        "",
        NamespaceConfig {
            history_size: 1,
            ..NamespaceConfig::default()
        },
    );
    let b = broker(MemoryLimits::default());
    let hub = Hub::with_broker(one, b.clone());
    let mut sub = hub
        .subscribe("e", None, ClientInfo::new("s"))
        .await
        .unwrap();
    hub.publish("e", text()).await.unwrap();
    assert_eq!(b.retained_bytes(), EACH);
    let m = sub.recv().await.unwrap();
    let json = m.encoded::<EnvelopeJson>().len();
    // The cache's node (80 B for a `Bytes`), the bytes and their shared header.
    let with_json = EACH + 80 + json + message::BYTES_HEADER;
    assert_eq!(b.retained_bytes(), with_json);
    assert_eq!(m.retained_bytes(), with_json);
    let _ = m.encoded::<EnvelopeJson>();
    assert_eq!(b.retained_bytes(), with_json, "made once, counted once");

    // History lets #1 go (it keeps one message), the subscriber still holds it: counted
    // until it is dropped.
    hub.publish("e", text()).await.unwrap();
    assert_eq!(b.retained_bytes(), with_json + EACH);
    drop(m);
    drop(sub);
    assert_eq!(b.retained_bytes(), EACH);
}

#[tokio::test]
async fn history_bytes_bound_a_channel() {
    let config = HubConfig::default().with_namespace(
        "",
        NamespaceConfig {
            history_size: 1000,
            history_bytes: 5 * EACH,
            ..NamespaceConfig::default()
        },
    );
    let b = broker(MemoryLimits::default());
    let hub = Hub::with_broker(config, b.clone());
    for _ in 0..12 {
        hub.publish("h", text()).await.unwrap();
    }
    assert_eq!(held(&hub, "h").await, (8..=12).collect::<Vec<_>>());
    assert_eq!(b.retained_bytes(), 5 * EACH);
}

#[tokio::test]
async fn the_idempotency_window_is_counted_in_the_budget() {
    let b = broker(MemoryLimits::default());
    let hub = Hub::with_broker(no_age_limit(), b.clone());
    for i in 0..100 {
        let key = format!("k{i}");
        let options = PublishOptions::from_backend().with_key(Some(&key));
        hub.publish_with("w", text(), options).await.unwrap();
    }
    let (keys, window) = b.idempotency_window();
    assert_eq!(keys, 100);
    assert!(window > 0);
    assert_eq!(b.retained_bytes(), 100 * EACH + window);
}

#[tokio::test]
async fn beyond_max_channels_a_new_channel_is_refused_and_the_others_go_on() {
    let b = broker(MemoryLimits {
        max_channels: 3,
        ..MemoryLimits::default()
    });
    let hub = Hub::with_broker(HubConfig::default(), b);
    for ch in ["x", "y", "z"] {
        hub.publish(ch, text()).await.unwrap();
    }
    let refused = hub.publish("w", text()).await.unwrap_err();
    assert_eq!(refused, HubError::TooManyChannels { limit: 3 });
    assert!(hub
        .subscribe("w", None, ClientInfo::new("s"))
        .await
        .is_err());
    hub.publish("x", text()).await.unwrap();
    assert!(hub.subscribe("y", None, ClientInfo::new("s")).await.is_ok());

    // This node's subscribed channels are bounded too (a broker elsewhere, e.g. Redis,
    // bounds its own).
    let node = Hub::new(HubConfig {
        max_channels: 2,
        ..HubConfig::default()
    });
    let _a = node
        .subscribe("a", None, ClientInfo::new("1"))
        .await
        .unwrap();
    let _b = node
        .subscribe("b", None, ClientInfo::new("1"))
        .await
        .unwrap();
    let _b2 = node
        .subscribe("b", None, ClientInfo::new("2"))
        .await
        .unwrap();
    let refused = node
        .subscribe("c", None, ClientInfo::new("1"))
        .await
        .unwrap_err();
    assert_eq!(refused, HubError::TooManyChannels { limit: 2 });
}
