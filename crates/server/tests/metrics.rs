//! `/metrics` after known traffic: every counter the traffic touches moves by the exact
//! amount. One test in this file: the front's counters are per process, and a second
//! test running beside it would move them too.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;

use common::{
    bounded, close_of, config, json, server_with, subscribers_become, ws_json, ws_open, KEY,
};
use futures_util::SinkExt;
use switchboard_server::server::Running;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// One scrape: `name{labels}` → value.
type Scrape = HashMap<String, f64>;

/// Bytes a client sent and received over every connection of the test.
#[derive(Default)]
struct Wire {
    sent: u64,
    received: u64,
}

/// `req` on a new connection, read to its end; counted in `wire`. Returns the answer.
async fn exchange(srv: &Running, wire: &mut Wire, req: String) -> String {
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    bounded(s.read_to_end(&mut buf)).await.unwrap();
    wire.sent += req.len() as u64;
    wire.received += buf.len() as u64;
    String::from_utf8_lossy(&buf).into_owned()
}

fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{extra}\r\n")
}

fn post(path: &str, extra: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{extra}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn authorized() -> String {
    format!("Authorization: Bearer {KEY}\r\n")
}

/// Scrapes `/metrics` (counted in `wire`); also returns the answer's length (the
/// server counts its bytes after the scrape: its request is read before).
async fn scrape(srv: &Running, wire: &mut Wire) -> (Scrape, u64) {
    let text = exchange(srv, wire, get("/metrics", &authorized())).await;
    let len = text.len() as u64;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    assert!(body.contains("# EOF"), "{body}");
    let values = body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_owned(), v.parse().unwrap())
        })
        .collect();
    (values, len)
}

/// The labels of `switchboard_connections` (connections open now, by transport).
const LIVE: [&str; 6] = ["websocket", "ws", "sse", "stream", "longpoll", "custom"];

/// Connections of `transport` open in `scrape`.
fn live(scrape: &Scrape, transport: &str) -> f64 {
    labelled(scrape, "switchboard_connections", transport)
}

/// Subscriptions of `transport`'s connections in `scrape`.
fn subscribed(scrape: &Scrape, transport: &str) -> f64 {
    labelled(scrape, "switchboard_subscriptions_by_transport", transport)
}

fn labelled(scrape: &Scrape, name: &str, transport: &str) -> f64 {
    let key = format!("{name}{{transport=\"{transport}\"}}");
    scrape
        .get(&key)
        .copied()
        .unwrap_or_else(|| panic!("{key} missing"))
}

/// Scrapes (bounded, polling) until no connection or subscription of any transport is
/// counted: a connection the client dropped ends when the server notices.
async fn no_connections_open(srv: &Running, wire: &mut Wire) {
    bounded(async {
        loop {
            let (now, _) = scrape(srv, wire).await;
            if LIVE
                .iter()
                .all(|t| live(&now, t) == 0.0 && subscribed(&now, t) == 0.0)
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
}

fn moved(before: &Scrape, after: &Scrape, key: &str) -> f64 {
    let a = after
        .get(key)
        .copied()
        .unwrap_or_else(|| panic!("{key} missing"));
    a - before.get(key).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn counters_move_by_the_exact_amounts_of_known_traffic() {
    let mut c = config();
    // Held until a message comes (the gauges are read while it is).
    c.limits.longpoll_timeout_ms = 60_000;
    // The demo ticker publishes once a second: on a slow machine one of its messages
    // fell between two scrapes and moved the published counter by one more.
    c.demo = false;
    let srv = server_with(c).await;
    let mut wire = Wire::default();

    // Without the key (one is set): 401, and nothing said.
    let text = exchange(&srv, &mut wire, get("/metrics", "")).await;
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");

    let (before, before_answer) = scrape(&srv, &mut wire).await;
    let (sent0, received0) = (wire.sent, wire.received);

    // Two SSE subscribers, three publishes over HTTP.
    let mut subs = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(srv.addr).await.unwrap();
        let req = get("/ch/m?transport=sse", "");
        s.write_all(req.as_bytes()).await.unwrap();
        wire.sent += req.len() as u64;
        subs.push(s);
    }
    subscribers_become(&srv, "m", 2).await;
    for i in 0..3 {
        let answer = exchange(
            &srv,
            &mut wire,
            post("/ch/m", "", &format!("{{\"n\":{i}}}")),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    // Each subscriber reads its stream until the third message.
    for s in &mut subs {
        let mut got = Vec::new();
        bounded(async {
            while !String::from_utf8_lossy(&got).contains("{\"n\":2}") {
                let mut chunk = [0u8; 4096];
                let n = s.read(&mut chunk).await.unwrap();
                assert!(n > 0);
                got.extend_from_slice(&chunk[..n]);
            }
        })
        .await;
        wire.received += got.len() as u64;
    }
    // Failures: a bad channel name (400), a wrong API key (401), a foreign origin (403).
    let bad = exchange(&srv, &mut wire, get("/ch/bad%20name", "")).await;
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
    let wrong = "Authorization: Bearer wrong\r\n";
    let unauthorized = exchange(&srv, &mut wire, post("/api/publish", wrong, "{}")).await;
    assert!(unauthorized.starts_with("HTTP/1.1 401"), "{unauthorized}");
    let foreign = "Origin: http://elsewhere.example\r\n";
    let refused = exchange(&srv, &mut wire, get("/ch/m?transport=poll", foreign)).await;
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");

    let received1 = wire.received;
    let (after, _) = scrape(&srv, &mut wire).await;
    // The bad channel name passed admission (as a poll) and failed in its handler; the
    // foreign origin did not pass.
    let expected = [
        ("switchboard_messages_published_total", 3.0),
        ("switchboard_messages_delivered_total", 6.0),
        (r#"switchboard_broker_operations_total{op="publish"}"#, 3.0),
        (
            r#"switchboard_broker_operation_seconds_count{op="publish"}"#,
            3.0,
        ),
        (
            r#"switchboard_broker_operation_seconds_bucket{le="+Inf",op="publish"}"#,
            3.0,
        ),
        (r#"switchboard_broker_errors_total{op="publish"}"#, 0.0),
        (
            r#"switchboard_requests_admitted_total{transport="sse"}"#,
            2.0,
        ),
        (
            r#"switchboard_requests_admitted_total{transport="publish"}"#,
            3.0,
        ),
        (
            r#"switchboard_requests_admitted_total{transport="poll"}"#,
            1.0,
        ),
        (
            r#"switchboard_request_failures_total{code="invalid_channel"}"#,
            1.0,
        ),
        (
            r#"switchboard_request_failures_total{code="unauthorized"}"#,
            1.0,
        ),
        (
            r#"switchboard_request_failures_total{code="origin_not_allowed"}"#,
            1.0,
        ),
        (
            r#"switchboard_request_failures_by_status_total{status="400"}"#,
            1.0,
        ),
        (
            r#"switchboard_request_failures_by_status_total{status="401"}"#,
            1.0,
        ),
        (
            r#"switchboard_request_failures_by_status_total{status="403"}"#,
            1.0,
        ),
        (
            r#"switchboard_admission_refusals_total{reason="origin"}"#,
            1.0,
        ),
        (
            r#"switchboard_admission_refusals_total{reason="api_key"}"#,
            1.0,
        ),
        (
            r#"switchboard_admission_refusals_total{reason="connection_limit"}"#,
            0.0,
        ),
        // Two subscribers, three publishes, three failures, this scrape.
        ("switchboard_connections_accepted_total", 9.0),
    ];
    for (key, want) in expected {
        assert_eq!(moved(&before, &after, key), want, "{key}");
    }
    assert_eq!(after["switchboard_subscriptions"], 2.0);
    assert_eq!(after["switchboard_channels"], 1.0);
    assert_eq!(after["switchboard_clients_live"], 2.0);
    for t in LIVE {
        let want = if t == "sse" { 2.0 } else { 0.0 };
        assert_eq!(live(&after, t), want, "{t}");
        assert_eq!(subscribed(&after, t), want, "{t}");
    }
    // Bytes read: every request since the first scrape's, this scrape's included (read
    // before the answer is made). Bytes written: the first scrape's answer (written
    // after it was made) and every answer since, not this scrape's.
    let read = (wire.sent - sent0) as f64;
    assert_eq!(
        moved(&before, &after, "switchboard_received_bytes_total"),
        read
    );
    let written = (before_answer + received1 - received0) as f64;
    assert_eq!(
        moved(&before, &after, "switchboard_sent_bytes_total"),
        written
    );
    assert!(after["process_resident_memory_bytes"] > 0.0);
    assert!(after["process_open_fds"] > 0.0);
    assert!(after.contains_key("process_cpu_seconds_total"));
    let version = format!(
        "switchboard_build_info{{version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(after[&version], 1.0);
    drop(subs);

    // A native WebSocket the backend disconnects: close code 1008, counted.
    let (mut ws, id) = ws_open(&srv, "/ch/k").await;
    subscribers_become(&srv, "k", 1).await;
    let body = format!("{{\"client\":\"{id}\"}}");
    let answer = exchange(
        &srv,
        &mut wire,
        post("/api/disconnect", &authorized(), &body),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(u16::from(close_of(&mut ws).await.code), 1008);
    let (last, _) = scrape(&srv, &mut wire).await;
    let m = |key: &str| moved(&after, &last, key);
    assert_eq!(m(r#"switchboard_websocket_closes_total{code="1008"}"#), 1.0);
    assert_eq!(
        m(r#"switchboard_requests_admitted_total{transport="websocket"}"#),
        1.0
    );
    drop(ws);

    // Connections and subscriptions by transport: one connection of each kind the server
    // serves itself at once (the SSE ones above were counted), then none.
    no_connections_open(&srv, &mut wire).await;
    let published = exchange(&srv, &mut wire, post("/ch/g", "", "0")).await;
    let body = &published[published.find("\r\n\r\n").unwrap() + 4..];
    let cursor = json(body.as_bytes())["cursor"].as_str().unwrap().to_owned();
    let mut stream = TcpStream::connect(srv.addr).await.unwrap();
    stream
        .write_all(get("/ch/g?transport=stream", "").as_bytes())
        .await
        .unwrap();
    let mut held = TcpStream::connect(srv.addr).await.unwrap();
    let longpoll = get(&format!("/ch/g?transport=longpoll&since={cursor}"), "");
    held.write_all(longpoll.as_bytes()).await.unwrap();
    let (native, _) = ws_open(&srv, "/ch/g").await;
    let (mut session, _) = ws_open(&srv, "/ws").await;
    for (id, channel) in [(1, "g"), (2, "h")] {
        let cmd = format!("{{\"id\":{id},\"op\":\"subscribe\",\"channel\":\"{channel}\"}}");
        session.send(Message::Text(cmd.into())).await.unwrap();
        assert_eq!(ws_json(&mut session).await["id"], id);
    }
    subscribers_become(&srv, "g", 4).await;
    let (open, _) = scrape(&srv, &mut wire).await;
    // (connections, subscriptions): the session holds two.
    for (t, want) in [
        ("websocket", (1.0, 1.0)),
        ("ws", (1.0, 2.0)),
        ("sse", (0.0, 0.0)),
        ("stream", (1.0, 1.0)),
        ("longpoll", (1.0, 1.0)),
        ("custom", (0.0, 0.0)),
    ] {
        assert_eq!((live(&open, t), subscribed(&open, t)), want, "{t}");
    }
    assert_eq!(open["switchboard_clients_live"], 4.0);
    let cmd = r#"{"id":3,"op":"unsubscribe","channel":"h"}"#;
    session.send(Message::Text(cmd.into())).await.unwrap();
    assert_eq!(ws_json(&mut session).await["id"], 3);
    let (unsubscribed, _) = scrape(&srv, &mut wire).await;
    assert_eq!(subscribed(&unsubscribed, "ws"), 1.0);
    // The next message answers the long-poll; the others are dropped.
    let answer = exchange(&srv, &mut wire, post("/ch/g", "", "1")).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let mut polled = Vec::new();
    bounded(held.read_to_end(&mut polled)).await.unwrap();
    assert!(polled.starts_with(b"HTTP/1.1 200"));
    drop((stream, native, session));
    no_connections_open(&srv, &mut wire).await;
    assert!(srv.shutdown().await);
}
