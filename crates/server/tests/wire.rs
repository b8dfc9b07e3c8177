//! Wire details a browser or proxy relies on, read from raw sockets: the SSE `retry:`
//! hint, heartbeats, `Last-Event-ID` resume, the streaming prelude, and the demo pages.
#![allow(clippy::unwrap_used)]

mod common;

use common::{bounded, raw, server_with};
use switchboard_client::Client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Opens a GET and reads until `done(bytes so far)` holds; returns the bytes.
async fn read_until(
    addr: std::net::SocketAddr,
    target: &str,
    headers: &str,
    done: impl Fn(&str) -> bool,
) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    bounded(async {
        while !done(&String::from_utf8_lossy(&buf)) {
            let mut chunk = vec![0u8; 8192];
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "ended early: {}", String::from_utf8_lossy(&buf));
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
    String::from_utf8_lossy(&buf).into_owned()
}

fn fast_heartbeats() -> switchboard_server::config::Config {
    let mut c = common::config();
    c.limits.sse_heartbeat_ms = 20;
    c.limits.sse_retry_ms = 1234;
    c
}

#[tokio::test]
async fn sse_retry_hint_and_heartbeat_comments() {
    let srv = server_with(fast_heartbeats()).await;
    let text = read_until(srv.addr, "/ch/hb", "Accept: text/event-stream\r\n", |t| {
        t.matches("\n:\n").count() >= 2
    })
    .await;
    assert!(
        text.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{text}"
    );
    assert!(text.contains("retry: 1234\n"), "{text}");
    assert!(
        text.find("retry:").unwrap() < text.find("\n:\n").unwrap(),
        "retry hint first"
    );
    assert!(srv.shutdown().await);
}

#[tokio::test]
async fn stream_prelude_then_heartbeat_lines() {
    let srv = server_with(fast_heartbeats()).await;
    // Chunked body: the prelude chunk, then one-byte heartbeat chunks ("\n").
    let heartbeat = "\r\n1\r\n\n\r\n";
    let text = read_until(srv.addr, "/ch/hb?transport=stream", "", |t| {
        t.matches(heartbeat).count() >= 2
    })
    .await;
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    let first_chunk = body.split("\r\n").nth(1).unwrap();
    assert_eq!(
        first_chunk,
        format!("{}\n", " ".repeat(2048)),
        "a 2 KiB whitespace prelude first"
    );
    assert!(srv.shutdown().await);
}

#[tokio::test]
async fn sse_last_event_id_wins_over_since() {
    let srv = server_with(common::config()).await;
    let client = Client::new(&common::url(&srv)).unwrap();
    let c: Vec<_> = {
        let mut v = Vec::new();
        for i in 0..4 {
            v.push(
                client
                    .publish("lei", i.to_string(), Some("application/json"))
                    .await
                    .unwrap(),
            );
        }
        v
    };
    // The URL's cursor is older than the browser's Last-Event-ID: the header wins.
    let headers = format!("Accept: text/event-stream\r\nLast-Event-ID: {}\r\n", c[2]);
    let text = read_until(
        srv.addr,
        &format!("/ch/lei?since={}", c[0]),
        &headers,
        |t| t.contains(&format!("id: {}\n", c[3])),
    )
    .await;
    assert!(!text.contains(&format!("id: {}\n", c[1])), "{text}");
    assert!(!text.contains(&format!("id: {}\n", c[2])), "{text}");
    assert!(text.contains("data: 3\n"), "{text}");
    assert!(srv.shutdown().await);
}

#[tokio::test]
async fn demo_pages_are_served() {
    let srv = server_with(common::config()).await;
    let (status, head, body) = raw(&srv, "GET", "/", &[], b"").await;
    let html = String::from_utf8(body).unwrap();
    assert_eq!(status, 200);
    assert!(head
        .to_ascii_lowercase()
        .contains("content-type: text/html"));
    assert!(html.contains("href=\"/demo/chat\"") && html.contains("href=\"/demo/ticker\""));
    for page in ["/demo/chat", "/demo/ticker"] {
        let (status, _, body) = raw(&srv, "GET", page, &[], b"").await;
        let html = String::from_utf8(body).unwrap();
        assert_eq!(status, 200, "{page}");
        // Only the browser's own APIs: no script is loaded from anywhere.
        assert!(!html.contains("<script src"), "{page}");
    }
    // The ticker publisher is running: a poll from the start finds prices.
    let client = Client::new(&common::url(&srv)).unwrap();
    let mut sub = client
        .subscribe(
            switchboard_client::Transport::Sse,
            &[("ticker:prices", None)],
        )
        .await
        .unwrap();
    let env = bounded(sub.next()).await.unwrap();
    let switchboard_client::ReceivedData::Json(j) = env.data else {
        panic!("{env:?}")
    };
    let quotes: serde_json::Value = serde_json::from_str(&j).unwrap();
    assert!(quotes
        .as_array()
        .unwrap()
        .iter()
        .all(|q| q["price"].as_f64().unwrap() > 0.0));
    drop(sub);
    assert!(srv.shutdown().await);
}
