//! A namespace's batch window: subscribers are woken at most once per window, the first
//! message after a quiet window at once, and nothing queued is lost or reordered.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use bytes::Bytes;
use switchboard_hub::*;

const WINDOW: Duration = Duration::from_millis(50);

fn hub(window: Option<Duration>) -> Hub {
    hub_with(NamespaceConfig {
        batch_window: window,
        ..NamespaceConfig::default()
    })
}

fn hub_with(ns: NamespaceConfig) -> Hub {
    Hub::new(HubConfig::default().with_namespace("", ns))
}

fn json(n: u64) -> Payload {
    Payload::json(Bytes::from(n.to_string())).unwrap()
}

struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A subscriber polled by hand: how often it was woken, and what it drained.
struct Probe {
    sub: Subscription,
    wakes: Arc<CountingWaker>,
    waker: Waker,
}

impl Probe {
    async fn new(hub: &Hub) -> Self {
        let sub = hub
            .subscribe("a", None, ClientInfo::new("c"))
            .await
            .unwrap();
        let wakes = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(wakes.clone());
        let mut p = Probe { sub, wakes, waker };
        assert!(p.drain().is_empty());
        p
    }

    fn woken(&self) -> usize {
        self.wakes.0.load(Ordering::SeqCst)
    }

    /// Takes everything queued, then registers the waker again (as a task would).
    fn drain(&mut self) -> Vec<u64> {
        let mut out = Vec::new();
        let mut cx = Context::from_waker(&self.waker);
        while let std::task::Poll::Ready(m) = self.sub.poll_recv(&mut cx) {
            out.push(m.unwrap().cursor().unwrap().offset);
        }
        out
    }
}

/// Lets the hub's scheduled wake run (time is paused: this moves it forward).
async fn pass(d: Duration) {
    tokio::time::sleep(d).await;
    tokio::task::yield_now().await;
}

#[tokio::test(start_paused = true)]
async fn messages_inside_a_window_share_one_wake_at_its_end() {
    let hub = hub(Some(WINDOW));
    let mut p = Probe::new(&hub).await;

    hub.publish("a", json(1)).await.unwrap();
    assert_eq!(
        p.woken(),
        1,
        "the first message after a quiet window wakes at once"
    );
    assert_eq!(p.drain(), [1]);

    for i in 2..=4 {
        hub.publish("a", json(i)).await.unwrap();
    }
    assert_eq!(p.woken(), 1, "messages inside the window wait for its end");

    pass(WINDOW).await;
    assert_eq!(p.woken(), 2, "one wake at the window's end");
    assert_eq!(p.drain(), [2, 3, 4]);

    // A quiet window later, the next message goes at once again.
    pass(WINDOW * 3).await;
    hub.publish("a", json(5)).await.unwrap();
    assert_eq!(p.woken(), 3);
    assert_eq!(p.drain(), [5]);
}

#[tokio::test(start_paused = true)]
async fn without_a_window_every_message_wakes() {
    let hub = hub(None);
    let mut p = Probe::new(&hub).await;
    for i in 1..=3 {
        hub.publish("a", json(i)).await.unwrap();
        assert_eq!(p.woken() as u64, i);
        assert_eq!(p.drain(), [i]);
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_consumer_closed_inside_a_window_is_told_at_once() {
    let hub = hub_with(NamespaceConfig {
        batch_window: Some(WINDOW),
        queue_capacity: 2,
        ..NamespaceConfig::default()
    });
    let mut p = Probe::new(&hub).await;
    hub.publish("a", json(1)).await.unwrap();
    assert_eq!(p.woken(), 1);
    assert_eq!(p.drain(), [1]);
    for i in 2..=3 {
        hub.publish("a", json(i)).await.unwrap();
    }
    assert_eq!(p.woken(), 1, "no wake while the queue has room");
    // The queue is full: the third message inside the window closes the subscription,
    // and that is not held back for the window.
    hub.publish("a", json(4)).await.unwrap();
    assert_eq!(p.woken(), 2);
    let mut cx = Context::from_waker(&p.waker);
    let got = p.sub.poll_recv(&mut cx);
    assert!(
        matches!(
            got,
            std::task::Poll::Ready(Err(RecvError::Closed {
                reason: CloseReason::SlowConsumer,
                ..
            }))
        ),
        "{got:?}"
    );
}
