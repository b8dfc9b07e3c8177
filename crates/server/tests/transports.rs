//! Every transport through real sockets: in-order delivery with cursors, resume after a
//! disconnect with exactly the gap, and an explicit reset when the history is gone.
#![allow(clippy::unwrap_used)]

mod common;

use common::{bounded, server, server_with, url};
use switchboard_client::{Client, Cursor, Epoch, Event, ReceivedData, Subscription, Transport};

const N: usize = 20;

async fn publish_n(client: &Client, channel: &str, from: usize, n: usize) -> Vec<Cursor> {
    let mut out = Vec::new();
    for i in from..from + n {
        let body = format!("{{\"n\":{i}}}");
        out.push(
            client
                .publish(channel, body, Some("application/json"))
                .await
                .unwrap(),
        );
    }
    out
}

fn n_of(data: &ReceivedData) -> usize {
    let ReceivedData::Json(j) = data else {
        panic!("not JSON: {data:?}")
    };
    let v: serde_json::Value = serde_json::from_str(j).unwrap();
    v["n"].as_u64().unwrap() as usize
}

/// Receives `n` messages and checks they are `from..from+n` with the given cursors.
async fn expect_messages(sub: &mut Subscription, channel: &str, from: usize, cursors: &[Cursor]) {
    for (k, want_cursor) in cursors.iter().enumerate() {
        let env = bounded(sub.next()).await.unwrap();
        assert_eq!(env.event, Event::Message, "{env:?}");
        assert_eq!(env.channel, channel);
        assert_eq!(n_of(&env.data), from + k, "{env:?}");
        assert_eq!(env.cursor, Some(*want_cursor));
    }
}

async fn in_order_then_resume_exact_gap(t: Transport) {
    let srv = server().await;
    let client = Client::new(&url(&srv)).unwrap();
    let ch = format!("t-{}", t.as_str());
    // A first message gives a cursor every transport can start from.
    let start = publish_n(&client, &ch, 0, 1).await[0];

    let mut sub = bounded(client.subscribe(t, &[(&ch, Some(start))]))
        .await
        .unwrap();
    let first = publish_n(&client, &ch, 1, N).await;
    // Read half, then disconnect mid-stream with the rest still in flight.
    expect_messages(&mut sub, &ch, 1, &first[..N / 2]).await;
    let resume_at = sub.cursor(&ch).unwrap();
    assert_eq!(resume_at, first[N / 2 - 1]);
    drop(sub);

    let more = publish_n(&client, &ch, N + 1, N).await;
    let mut sub = bounded(client.subscribe(t, &[(&ch, Some(resume_at))]))
        .await
        .unwrap();
    // Exactly the gap: the unread half, then everything published while away.
    expect_messages(&mut sub, &ch, N / 2 + 1, &first[N / 2..]).await;
    expect_messages(&mut sub, &ch, N + 1, &more).await;
    // And nothing more than the gap: the next thing is a fresh message.
    let sentinel = publish_n(&client, &ch, 1000, 1).await;
    expect_messages(&mut sub, &ch, 1000, &sentinel).await;
    drop(sub);
    assert!(srv.shutdown().await);
}

async fn reset_when_history_is_gone(t: Transport) {
    let mut cfg = common::config();
    for ns in cfg.namespaces.values_mut() {
        ns.history_size = 5;
    }
    let srv = server_with(cfg).await;
    let client = Client::new(&url(&srv)).unwrap();
    let ch = format!("r-{}", t.as_str());
    let cursors = publish_n(&client, &ch, 1, 12).await;

    // Offset 2 was trimmed (only 8..=12 are held): an explicit reset just before the
    // oldest message held, saying 5 were lost (3 to 7), then every message held, then what
    // is published next.
    let mut sub = bounded(client.subscribe(t, &[(&ch, Some(cursors[1]))]))
        .await
        .unwrap();
    let env = bounded(sub.next()).await.unwrap();
    assert_eq!(env.event, Event::Reset, "{env:?}");
    assert_eq!(
        env.cursor,
        Some(cursors[6]),
        "continues before the oldest held"
    );
    assert_eq!(env.data, ReceivedData::Json(r#"{"lost":5}"#.into()));
    expect_messages(&mut sub, &ch, 8, &cursors[7..]).await;
    let next = publish_n(&client, &ch, 13, 2).await;
    expect_messages(&mut sub, &ch, 13, &next).await;
    drop(sub);

    // A cursor of another epoch (the channel's history restarted): reset too, how many
    // were lost unknown, and what is held follows.
    let other = Cursor::new(Epoch(cursors[0].epoch.0 ^ 0x10), 3);
    let mut sub = bounded(client.subscribe(t, &[(&ch, Some(other))]))
        .await
        .unwrap();
    let env = bounded(sub.next()).await.unwrap();
    assert_eq!(env.event, Event::Reset, "{env:?}");
    assert_eq!(env.cursor, Some(Cursor::new(cursors[0].epoch, 9)));
    assert_eq!(env.data, ReceivedData::None);
    // 10..=14 are held now.
    expect_messages(&mut sub, &ch, 10, &[&cursors[9..], &next[..]].concat()).await;
    drop(sub);
    assert!(srv.shutdown().await);
}

#[tokio::test]
async fn websocket_in_order_and_resume() {
    in_order_then_resume_exact_gap(Transport::WebSocket).await;
}
#[tokio::test]
async fn sse_in_order_and_resume() {
    in_order_then_resume_exact_gap(Transport::Sse).await;
}
#[tokio::test]
async fn stream_in_order_and_resume() {
    in_order_then_resume_exact_gap(Transport::Stream).await;
}
#[tokio::test]
async fn longpoll_in_order_and_resume() {
    in_order_then_resume_exact_gap(Transport::LongPoll).await;
}
#[tokio::test]
async fn poll_in_order_and_resume() {
    in_order_then_resume_exact_gap(Transport::Poll).await;
}

#[tokio::test]
async fn websocket_reset() {
    reset_when_history_is_gone(Transport::WebSocket).await;
}
#[tokio::test]
async fn sse_reset() {
    reset_when_history_is_gone(Transport::Sse).await;
}
#[tokio::test]
async fn stream_reset() {
    reset_when_history_is_gone(Transport::Stream).await;
}
#[tokio::test]
async fn longpoll_reset() {
    reset_when_history_is_gone(Transport::LongPoll).await;
}
#[tokio::test]
async fn poll_reset() {
    reset_when_history_is_gone(Transport::Poll).await;
}

/// Live subscribers without a cursor get what is published after they subscribed, over
/// every transport, and several channels share one request on `/sub`.
#[tokio::test]
async fn live_from_now_and_multichannel() {
    let srv = server().await;
    let client = Client::new(&url(&srv)).unwrap();
    for t in [Transport::WebSocket, Transport::Sse, Transport::Stream] {
        let ch = format!("live-{}", t.as_str());
        publish_n(&client, &ch, 0, 3).await; // before: not delivered
        let mut sub = bounded(client.subscribe(t, &[(&ch, None)])).await.unwrap();
        let c = publish_n(&client, &ch, 3, 2).await;
        expect_messages(&mut sub, &ch, 3, &c).await;
    }
    for t in [
        Transport::Sse,
        Transport::Stream,
        Transport::LongPoll,
        Transport::Poll,
    ] {
        let (a, b) = (format!("ma-{}", t.as_str()), format!("mb-{}", t.as_str()));
        let ca = publish_n(&client, &a, 0, 1).await[0];
        let cb = publish_n(&client, &b, 0, 1).await[0];
        let mut sub = bounded(client.subscribe(t, &[(&a, Some(ca)), (&b, Some(cb))]))
            .await
            .unwrap();
        let pa = publish_n(&client, &a, 1, 3).await;
        let pb = publish_n(&client, &b, 1, 3).await;
        let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
        while got_a.len() + got_b.len() < 6 {
            let env = bounded(sub.next()).await.unwrap();
            assert_eq!(env.event, Event::Message);
            if env.channel == a {
                got_a.push(env.cursor.unwrap());
            } else {
                got_b.push(env.cursor.unwrap());
            }
        }
        assert_eq!(
            (got_a, got_b),
            (pa.clone(), pb.clone()),
            "{t:?}: per-channel order and cursors"
        );
        assert_eq!(sub.cursor(&a), pa.last().copied());
        assert_eq!(sub.cursor(&b), pb.last().copied());
    }
    assert!(srv.shutdown().await);
}

/// With a batch window, deliveries inside a window wait for its end and leave together:
/// every transport still gets every message, in order, with its cursor.
#[tokio::test]
async fn a_batch_window_delays_but_loses_and_reorders_nothing() {
    let mut cfg = common::config();
    for ns in cfg.namespaces.values_mut() {
        ns.batch_window_ms = 40;
    }
    let srv = server_with(cfg).await;
    let client = Client::new(&url(&srv)).unwrap();
    for t in [
        Transport::WebSocket,
        Transport::Sse,
        Transport::Stream,
        Transport::LongPoll,
    ] {
        let ch = format!("batched-{}", t.as_str());
        let start = publish_n(&client, &ch, 0, 1).await[0];
        let mut sub = bounded(client.subscribe(t, &[(&ch, Some(start))]))
            .await
            .unwrap();
        let cursors = publish_n(&client, &ch, 1, N).await;
        expect_messages(&mut sub, &ch, 1, &cursors).await;
        let more = publish_n(&client, &ch, 1 + N, 3).await;
        expect_messages(&mut sub, &ch, 1 + N, &more).await;
    }
    assert!(srv.shutdown().await);
}
