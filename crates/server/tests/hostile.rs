//! Hostile input, one row per case: each gets the exact status and a JSON body
//! (`{"error", "message"}`) that names the problem, and nothing else is lost — the other
//! connections keep their subscriptions and the channel's history is intact.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{bounded, config, json, parse_response, raw, server_with};
use switchboard_server::server::Running;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `bytes` on a new connection and reads the answer to EOF.
async fn send_raw(srv: &Running, bytes: &[u8]) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut buf = Vec::new();
    bounded(s.read_to_end(&mut buf)).await.unwrap();
    parse_response(&buf)
}

/// A bystander: a channel with history and a live SSE subscriber, checked after each row.
struct Bystander {
    stream: TcpStream,
}

impl Bystander {
    async fn new(srv: &Running) -> Self {
        let (status, _, _) = raw(srv, "POST", "/ch/calm", &[], b"one").await;
        assert_eq!(status, 200);
        let mut stream = TcpStream::connect(srv.addr).await.unwrap();
        let req = "GET /ch/calm HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n";
        stream.write_all(req.as_bytes()).await.unwrap();
        common::subscribers_become(srv, "calm", 1).await;
        Self { stream }
    }

    /// The subscriber is still there and gets the next message; history still holds both.
    async fn still_fine(&mut self, srv: &Running, n: usize) {
        common::subscribers_become(srv, "calm", 1).await;
        let text = format!("after-{n}");
        let (status, _, _) = raw(srv, "POST", "/ch/calm", &[], text.as_bytes()).await;
        assert_eq!(status, 200);
        let mut got = Vec::new();
        bounded(async {
            while !String::from_utf8_lossy(&got).contains(&text) {
                let mut chunk = [0u8; 4096];
                let k = self.stream.read(&mut chunk).await.unwrap();
                assert!(k > 0, "the bystander's stream ended");
                got.extend_from_slice(&chunk[..k]);
            }
        })
        .await;
        let history = srv
            .state
            .hub
            .history("calm", None, Some(1000))
            .await
            .unwrap();
        let switchboard_hub::HistoryAnswer::Gap { messages, .. } = history else {
            panic!("history lost: {history:?}");
        };
        assert_eq!(messages.len(), n + 1, "history of calm");
    }
}

#[tokio::test]
async fn malformed_and_oversized_requests_get_json_answers() {
    let mut c = config();
    c.limits.max_header_bytes = 8 * 1024;
    let srv = server_with(c).await;
    let mut calm = Bystander::new(&srv).await;
    let big = format!(
        "GET /ch/a HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n",
        "a".repeat(9 * 1024)
    );
    let big_ws = format!(
        "GET /ch/a HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-Big: {}\r\n\r\n",
        "a".repeat(9 * 1024)
    );
    let table: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "a head over the limit",
            big.into_bytes(),
            431,
            "header_too_large",
        ),
        (
            "a WebSocket handshake over the limit",
            big_ws.into_bytes(),
            431,
            "header_too_large",
        ),
        (
            "not HTTP (a TLS hello)",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(),
            400,
            "malformed_request",
        ),
        (
            "a header line without a colon",
            b"GET /ch/a HTTP/1.1\r\nHost: localhost\r\nbad header\r\n\r\n".to_vec(),
            400,
            "malformed_request",
        ),
        (
            "a method the route does not take",
            b"DELETE /ch/a HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".to_vec(),
            405,
            "method_not_allowed",
        ),
        (
            "an unknown route",
            b"GET /nope HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".to_vec(),
            404,
            "not_found",
        ),
    ];
    for (n, (case, bytes, status, code)) in table.into_iter().enumerate() {
        let (got, head, body) = send_raw(&srv, &bytes).await;
        assert_eq!(got, status, "{case}: {head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{case}: {head}"
        );
        let body = json(&body);
        assert_eq!(body["error"], code, "{case}");
        assert!(body["message"].as_str().unwrap().len() > 10, "{case}");
        calm.still_fine(&srv, n + 1).await;
    }
    srv.shutdown().await;
}

#[tokio::test]
async fn a_slow_body_is_answered_408_and_its_connection_closed() {
    let mut c = config();
    c.limits.body_read_timeout_ms = 300;
    let srv = server_with(c).await;
    let mut calm = Bystander::new(&srv).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let head = "POST /ch/calm HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\n";
    s.write_all(head.as_bytes()).await.unwrap();
    let started = tokio::time::Instant::now();
    // One byte every 50 ms: 20 bytes/s, far too slow for 1,000 bytes in 300 ms.
    let mut answer = Vec::new();
    bounded(async {
        loop {
            if s.write_all(b"x").await.is_err() {
                break;
            }
            let mut chunk = [0u8; 1024];
            match tokio::time::timeout(Duration::from_millis(50), s.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(k)) => answer.extend_from_slice(&chunk[..k]),
                Err(_) => {}
            }
        }
    })
    .await;
    let (status, head, body) = parse_response(&answer);
    assert_eq!(status, 408, "{head}");
    assert_eq!(json(&body)["error"], "body_timeout");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // The slow body published nothing.
    calm.still_fine(&srv, 1).await;
    srv.shutdown().await;
}
