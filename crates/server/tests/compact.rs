//! The compact WebSocket format (subprotocol `switchboard.compact`): its wire shape read
//! from a raw socket (a 64-byte message is a 66-byte frame once the stream is
//! contiguous; control records for the rest), and resuming after a connection dropped
//! mid-stream (every message exactly once). Its rows in the resume table are in
//! `resume.rs` (`common::paths`). And the compact poll body (`format=compact` on a
//! native poll or long-poll, and on `/sub` for one channel).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::raw_ws::RawWs;
use common::{bounded, server, ws_open_compact};
use futures_util::{SinkExt, StreamExt};
use switchboard_hub::Payload;
use switchboard_proto::{CompactDecoder, CompactItem, Cursor, ReceivedData};
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// A raw client of `path` offering the compact subprotocol; returns the `101`'s head too.
async fn open_compact(addr: std::net::SocketAddr, path: &str) -> (RawWs, String) {
    RawWs::open(
        addr,
        path,
        "Sec-WebSocket-Protocol: switchboard.compact\r\n",
    )
    .await
}

/// The next frame: its length on the wire, opcode and payload (server frames are
/// unmasked, each message one frame).
async fn frame(ws: &mut RawWs) -> (usize, u8, Vec<u8>) {
    let (h, bytes) = ws.frame().await;
    assert!(h.fin, "one frame per message");
    let payload = bytes[bytes.len() - usize::try_from(h.payload_len).unwrap()..].to_vec();
    (bytes.len(), h.opcode.as_u8(), payload)
}

/// A JSON payload of exactly 64 bytes carrying `n`.
fn payload64(n: u64) -> Payload {
    let head = format!("{{\"n\":{n},\"pad\":\"");
    let body = format!("{head}{}\"}}", "x".repeat(64 - head.len() - 2));
    assert_eq!(body.len(), 64);
    Payload::json(body.into()).unwrap()
}

#[tokio::test]
async fn a_64_byte_message_is_a_66_byte_frame_once_the_stream_is_contiguous() {
    let srv = server().await;
    let hub = srv.state.hub.clone();
    let (mut ws, head) = open_compact(srv.addr, "/ch/wire").await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-protocol: switchboard.compact"),
        "{head}"
    );
    // The stream opens with its start record: the channel and where it starts.
    let (_, op, p) = frame(&mut ws).await;
    assert_eq!((op, p[0]), (1, 0x1e));
    let start = common::json(&p[1..]);
    assert_eq!(start["channel"], "wire", "{start}");
    let start: Cursor = start["start"].as_str().unwrap().parse().unwrap();
    // Then each message is its payload alone, the first one included.
    for n in 1..=5 {
        let at = hub.publish("wire", payload64(n)).await.unwrap();
        assert_eq!((at.epoch, at.offset), (start.epoch, start.offset + n));
        let (wire, op, p) = frame(&mut ws).await;
        assert_eq!((wire, op), (66, 1), "message {n}");
        assert_eq!(p, payload64(n).data().to_vec());
    }
    // Text goes in text frames, bytes in binary frames, payload-only while contiguous.
    hub.publish("wire", Payload::text("hello".into()).unwrap())
        .await
        .unwrap();
    assert_eq!(frame(&mut ws).await, (7, 1, b"hello".to_vec()));
    hub.publish("wire", Payload::binary(vec![0x1e, 0, 1].into()))
        .await
        .unwrap();
    assert_eq!(frame(&mut ws).await, (5, 2, vec![0x1e, 0, 1]));
    // A text a JSON parser would read otherwise goes as a JSON string.
    hub.publish("wire", Payload::text("42".into()).unwrap())
        .await
        .unwrap();
    assert_eq!(frame(&mut ws).await, (6, 1, b"\"42\"".to_vec()));
    drop(ws);
    assert!(srv.shutdown().await);
}

#[tokio::test]
async fn on_ws_replies_are_control_records_and_a_channel_switch_names_the_channel() {
    let srv = server().await;
    let hub = srv.state.hub.clone();
    let (mut ws, head) = open_compact(srv.addr, "/ws").await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    for (id, ch) in [(1, "a"), (2, "b")] {
        ws.send_text(&format!(
            r#"{{"id":{id},"op":"subscribe","channel":"{ch}"}}"#
        ))
        .await;
        let (_, op, p) = frame(&mut ws).await;
        assert_eq!((op, p[0]), (1, 0x1e));
        let reply = common::json(&p[1..]);
        assert_eq!(reply["id"], id, "{reply}");
    }
    let mut dec = CompactDecoder::default();
    let mut next = |frame: (usize, u8, Vec<u8>)| {
        let (wire, op, p) = frame;
        match dec.decode(&p, op == 2).unwrap() {
            CompactItem::Envelope(env) => (wire, env.channel, env.cursor.unwrap().offset),
            other => panic!("{other:?}"),
        }
    };
    let mut got = Vec::new();
    for (ch, n) in [("a", 1), ("a", 2), ("b", 3), ("a", 4)] {
        hub.publish(ch, payload64(n)).await.unwrap();
        got.push(next(frame(&mut ws).await));
    }
    // `a` 1 starts the stream, `a` 2 follows it, `b` and the return to `a` are named.
    assert!(got[0].0 > 66 && got[2].0 > 66 && got[3].0 > 66, "{got:?}");
    assert_eq!(got[1].0, 66);
    let names: Vec<(&str, u64)> = got.iter().map(|g| (g.1.as_str(), g.2)).collect();
    assert_eq!(names, [("a", 1), ("a", 2), ("b", 1), ("a", 3)]);
    drop(ws);
    assert!(srv.shutdown().await);
}

/// Reads `ws` (compact) until message `until`; returns each message's `n` and cursor.
async fn read_compact(
    ws: &mut common::Ws,
    dec: &mut CompactDecoder,
    stop_after: usize,
) -> Vec<(u64, Cursor)> {
    let mut got = Vec::new();
    while got.len() < stop_after {
        let (frame, binary) = match bounded(ws.next()).await.unwrap().unwrap() {
            WsMessage::Text(t) => (t.as_bytes().to_vec(), false),
            WsMessage::Binary(b) => (b.to_vec(), true),
            _ => continue,
        };
        let CompactItem::Envelope(env) = dec.decode(&frame, binary).unwrap() else {
            continue;
        };
        let ReceivedData::Json(j) = &env.data else {
            panic!("{env:?}")
        };
        let n = common::json(j.as_bytes())["n"].as_u64().unwrap();
        got.push((n, env.cursor.unwrap()));
    }
    got
}

#[tokio::test]
async fn a_compact_stream_dropped_mid_stream_resumes_with_every_message_exactly_once() {
    const TOTAL: u64 = 300;
    let srv = server().await;
    let hub = srv.state.hub.clone();
    let mut ws = ws_open_compact(&srv, "/ch/drop").await;
    let publisher = tokio::spawn({
        let hub = hub.clone();
        async move {
            for n in 1..=TOTAL {
                hub.publish("drop", payload64(n)).await.unwrap();
                if n % 10 == 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        }
    });
    let mut seen = Vec::new();
    // Three connections, each dropped (no close handshake) while messages still come.
    for take in [40, 70] {
        let mut dec = CompactDecoder::default();
        seen.extend(read_compact(&mut ws, &mut dec, take).await);
        drop(ws);
        let since = seen.last().unwrap().1;
        ws = ws_open_compact(&srv, &format!("/ch/drop?since={since}")).await;
    }
    let mut dec = CompactDecoder::default();
    let rest = usize::try_from(TOTAL).unwrap() - seen.len();
    seen.extend(read_compact(&mut ws, &mut dec, rest).await);
    publisher.await.unwrap();
    let ns: Vec<u64> = seen.iter().map(|s| s.0).collect();
    assert_eq!(ns, (1..=TOTAL).collect::<Vec<_>>());
    // The decoded cursors are the server's: contiguous offsets of one epoch.
    for w in seen.windows(2) {
        assert_eq!(w[1].1.epoch, w[0].1.epoch);
        assert_eq!(w[1].1.offset, w[0].1.offset + 1);
    }
    // Nothing more arrives after the last message.
    ws.send(WsMessage::Ping(vec![1].into())).await.unwrap();
    let next = bounded(ws.next()).await.unwrap().unwrap();
    assert!(
        matches!(next, WsMessage::Pong(_)),
        "nothing after the last message: {next:?}"
    );
    drop(ws);
    assert!(srv.shutdown().await);
}

#[tokio::test]
async fn a_compact_poll_body_carries_the_payloads_and_the_cursor_or_falls_back_to_envelopes() {
    let srv = server().await;
    let hub = srv.state.hub.clone();
    let mut cursors = Vec::new();
    for n in 1..=2 {
        let p = Payload::json(format!("{{\"n\":{n}}}").into()).unwrap();
        cursors.push(hub.publish("cp", p).await.unwrap());
    }
    cursors.push(
        hub.publish("cp", Payload::text("hi".into()).unwrap())
            .await
            .unwrap(),
    );
    let e = cursors[0].epoch;
    for kind in ["poll", "longpoll"] {
        let target = format!("/ch/cp?transport={kind}&format=compact&since={e}:0");
        let (status, head, body) = common::raw(&srv, "GET", &target, &[], b"").await;
        assert_eq!(status, 200);
        assert_eq!(
            String::from_utf8(body).unwrap(),
            format!(r#"{{"cursor":"{e}:3","data":[{{"n":1}},{{"n":2}},"hi"]}}"#),
            "{kind}"
        );
        let head = head.to_ascii_lowercase();
        assert!(head.contains("content-type: application/json"), "{head}");
        assert!(head.contains("cache-control: no-store"), "{head}");
    }
    // A binary payload cannot be said in it: the envelope body.
    hub.publish("cp", Payload::binary(vec![1].into()))
        .await
        .unwrap();
    let target = format!("/ch/cp?transport=poll&format=compact&since={e}:3");
    let (_, _, body) = common::raw(&srv, "GET", &target, &[], b"").await;
    let body = common::json(&body);
    assert_eq!(body["messages"][0]["data_b64"], "AQ==", "{body}");
    assert_eq!(body["cursor"], format!("{e}:4"));
    assert!(srv.shutdown().await);
}

#[tokio::test]
async fn a_sub_request_for_one_channel_gets_the_compact_body_on_the_same_terms() {
    let srv = common::server_holding_longpolls(10_000).await;
    let hub = srv.state.hub.clone();
    let mut at = Vec::new();
    for n in 1..=2 {
        let p = Payload::json(format!("{{\"n\":{n}}}").into()).unwrap();
        at.push(hub.publish("sc", p).await.unwrap());
    }
    let e = at[0].epoch;
    for kind in ["poll", "longpoll"] {
        let target = format!("/sub?channel=sc,{e}:0&transport={kind}&format=compact");
        let (status, _, body) = common::raw(&srv, "GET", &target, &[], b"").await;
        assert_eq!(status, 200);
        assert_eq!(
            String::from_utf8(body).unwrap(),
            format!(r#"{{"cursor":"{e}:2","data":[{{"n":1}},{{"n":2}}]}}"#),
            "{kind}"
        );
    }
    // A long-poll held for news: the news comes in the compact body.
    let target = format!("/sub?channel=sc,{e}:2&transport=longpoll&format=compact");
    let held = tokio::spawn({
        let addr = srv.addr;
        async move { common::raw_at(addr, "GET", &target, &[], b"").await }
    });
    common::subscribers_become(&srv, "sc", 1).await;
    hub.publish("sc", Payload::text("hi".into()).unwrap())
        .await
        .unwrap();
    let (status, _, body) = bounded(held).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        String::from_utf8(body).unwrap(),
        format!(r#"{{"cursor":"{e}:3","data":["hi"]}}"#)
    );
    // Two channels: the compact body could not say whose data it is, so `/sub`'s own.
    let target = format!("/sub?channel=sc,{e}:2&channel=other&transport=poll&format=compact");
    let (_, _, body) = common::raw(&srv, "GET", &target, &[], b"").await;
    let body = common::json(&body);
    assert_eq!(body["messages"][0]["data"], "hi", "{body}");
    assert_eq!(body["cursors"]["sc"], format!("{e}:3"));
    // A cursor of another epoch: the reset needs the `/sub` body and its reset envelope.
    let target = "/sub?channel=sc,1:1&transport=poll&format=compact";
    let (_, _, body) = common::raw(&srv, "GET", target, &[], b"").await;
    let body = common::json(&body);
    assert_eq!(body["messages"][0]["event"], "reset", "{body}");
    assert_eq!(body["cursors"]["sc"], format!("{e}:3"));
    assert!(srv.shutdown().await);
}
