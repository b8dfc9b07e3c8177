//! Hostile input, one row per case: each gets the exact status and a JSON body
//! (`{"error", "message"}`) that names the problem, and nothing else is lost — the other
//! connections keep their subscriptions and the channel's history is intact.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{bounded, config, json, parse_response, raw, read_one, server_with};
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
        self.publish_and_read(srv, &text).await;
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

    /// Publishes `text` on `calm`; the subscriber gets it.
    async fn publish_and_read(&mut self, srv: &Running, text: &str) {
        let (status, _, _) = raw(srv, "POST", "/ch/calm", &[], text.as_bytes()).await;
        assert_eq!(status, 200);
        let mut got = Vec::new();
        bounded(async {
            while !String::from_utf8_lossy(&got).contains(text) {
                let mut chunk = [0u8; 4096];
                let k = self.stream.read(&mut chunk).await.unwrap();
                assert!(k > 0, "the bystander's stream ended");
                got.extend_from_slice(&chunk[..k]);
            }
        })
        .await;
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
            "a target hyper's URI parser refuses",
            b"POST http:// HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n".to_vec(),
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

/// The later requests of a keep-alive connection hyper serves (its first a publish) get
/// the same answers as a first request: a head over the limit or not HTTP is answered
/// with the JSON error and the connection closed, also when it comes pipelined behind a
/// request still being answered; well-formed requests go on being served on it.
#[tokio::test]
async fn later_heads_of_a_kept_alive_connection_get_json_answers() {
    let mut c = config();
    c.limits.max_header_bytes = 8 * 1024;
    let srv = server_with(c).await;
    let mut calm = Bystander::new(&srv).await;
    let publish = |text: &str| {
        format!(
            "POST /ch/keep HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        )
    };
    let big = format!(
        "GET /ch/a HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    let bad_line = "GET /ch/a HTTP/1.1 nonsense\r\nHost: localhost\r\n\r\n".to_string();
    let bad_header = "GET /ch/a HTTP/1.1\r\nHost: localhost\r\nbad header\r\n\r\n".to_string();
    let tls = String::from_utf8_lossy(b"\x16\x03\x01\x02\x00\x01\x00\x01").into_owned();
    let table: Vec<(&str, String, bool, u16, &str)> = vec![
        (
            "a second head over the limit",
            big.clone(),
            false,
            431,
            "header_too_large",
        ),
        (
            "a malformed request line",
            bad_line.clone(),
            false,
            400,
            "malformed_request",
        ),
        (
            "a header line without a colon",
            bad_header,
            false,
            400,
            "malformed_request",
        ),
        ("not HTTP", tls, false, 400, "malformed_request"),
        (
            "over the limit, pipelined",
            big,
            true,
            431,
            "header_too_large",
        ),
        (
            "malformed, pipelined",
            bad_line,
            true,
            400,
            "malformed_request",
        ),
    ];
    let mut published = 0;
    for (n, (case, second, pipelined, status, code)) in table.into_iter().enumerate() {
        let mut s = TcpStream::connect(srv.addr).await.unwrap();
        let first = publish(&format!("m{n}"));
        if pipelined {
            s.write_all(format!("{first}{second}").as_bytes())
                .await
                .unwrap();
        } else {
            s.write_all(first.as_bytes()).await.unwrap();
        }
        let mut rest = Vec::new();
        let (got, head, _) = read_one(&mut s, &mut rest).await;
        assert_eq!(got, 200, "{case}: the publish: {head}");
        published += 1;
        if !pipelined {
            assert!(rest.is_empty(), "{case}: an answer before the request");
            s.write_all(second.as_bytes()).await.unwrap();
        }
        bounded(s.read_to_end(&mut rest)).await.unwrap();
        let (got, head, body) = parse_response(&rest);
        assert_eq!(got, status, "{case}: {head}");
        let head = head.to_ascii_lowercase();
        assert!(
            head.contains("content-type: application/json"),
            "{case}: {head}"
        );
        assert!(head.contains("connection: close"), "{case}: {head}");
        let body = json(&body);
        assert_eq!(body["error"], code, "{case}");
        calm.still_fine(&srv, n + 1).await;
    }
    // Well-formed requests keep being served on the one connection, as many as come,
    // one after another or pipelined (a body that spans reads included).
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let mut rest = Vec::new();
    for n in 0..3 {
        s.write_all(publish(&format!("k{n}")).as_bytes())
            .await
            .unwrap();
        let (got, head, _) = read_one(&mut s, &mut rest).await;
        assert_eq!(got, 200, "{head}");
        published += 1;
    }
    let long = "x".repeat(30 * 1024);
    s.write_all(format!("{}{}", publish("p0"), publish(&long)).as_bytes())
        .await
        .unwrap();
    for _ in 0..2 {
        let (got, head, _) = read_one(&mut s, &mut rest).await;
        assert_eq!(got, 200, "{head}");
        published += 1;
    }
    let poll = "GET /ch/keep?transport=poll HTTP/1.1\r\nHost: localhost\r\n\r\n";
    s.write_all(poll.as_bytes()).await.unwrap();
    let (got, head, _) = read_one(&mut s, &mut rest).await;
    assert_eq!(got, 200, "{head}");
    assert!(rest.is_empty(), "bytes after the last answer");
    let history = srv
        .state
        .hub
        .history("keep", None, Some(1000))
        .await
        .unwrap();
    let switchboard_hub::HistoryAnswer::Gap { messages, .. } = history else {
        panic!("history lost: {history:?}");
    };
    assert_eq!(messages.len(), published);
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

/// Opens `n` connections that send nothing (each counts from accept).
async fn idle_connections(srv: &Running, n: usize) -> Vec<TcpStream> {
    let before = srv.connections().open();
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(TcpStream::connect(srv.addr).await.unwrap());
    }
    bounded(async {
        while srv.connections().open() != before + n {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    out
}

#[tokio::test]
async fn a_connection_flood_past_the_limits_is_answered_and_closed() {
    let mut c = config();
    c.limits.max_connections_per_ip = 4;
    let srv = server_with(c).await;
    let mut calm = Bystander::new(&srv).await;
    // The bystander's SSE connection counts: three more fill this address.
    let held = idle_connections(&srv, 3).await;
    let (status, head, body) =
        send_raw(&srv, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert_eq!(status, 429, "{head}");
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 1"),
        "{head}"
    );
    assert_eq!(json(&body)["error"], "too_many_connections");
    drop(held);
    calm.still_fine(&srv, 1).await;
    srv.shutdown().await;

    let mut c = config();
    c.limits.max_connections = 3;
    c.limits.max_connections_per_ip = 0;
    let srv = server_with(c).await;
    let held = idle_connections(&srv, 3).await;
    let (status, head, body) =
        send_raw(&srv, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert_eq!(status, 503, "{head}");
    assert_eq!(json(&body)["error"], "server_full");
    drop(held);
    srv.shutdown().await;
}

#[tokio::test]
async fn a_reconnect_storm_is_told_when_to_come_back() {
    let mut c = config();
    c.limits.max_new_connections_per_second = 1;
    let srv = server_with(c).await;
    // The first new connection of the second goes through; the next ones are turned away.
    let (status, _, _) = raw(&srv, "GET", "/ch/storm?transport=poll", &[], b"").await;
    assert_eq!(status, 200);
    let (status, head, body) = raw(&srv, "GET", "/ch/storm?transport=poll", &[], b"").await;
    assert_eq!(status, 503, "{head}");
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 1"),
        "{head}"
    );
    assert_eq!(json(&body)["error"], "busy");
    // A WebSocket over the rate is accepted and closed at once with 1013 and the wait.
    let (status, head, rest) = send_raw(
        &srv,
        b"GET /ch/storm HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await;
    assert_eq!(status, 101, "{head}");
    assert_eq!(rest[0], 0x88, "a close frame");
    let len = usize::from(rest[1]);
    assert_eq!(u16::from_be_bytes([rest[2], rest[3]]), 1013);
    let reason = std::str::from_utf8(&rest[4..2 + len]).unwrap();
    assert!(
        reason.starts_with("retry after ") && reason.ends_with(" ms"),
        "{reason}"
    );
    srv.shutdown().await;
}

#[tokio::test]
async fn cross_origin_pages_are_refused_unless_listed_and_listed_ones_get_cors() {
    let mut c = config();
    c.security.allowed_origins = vec!["https://app.example".into()];
    let srv = server_with(c).await;
    let mut calm = Bystander::new(&srv).await;
    let evil = ("Origin", "http://evil.example");
    let ws = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
    ];
    let sse = [("Accept", "text/event-stream")];
    let text = [("Content-Type", "text/plain")];
    type Row<'a> = (&'a str, &'a str, &'a str, Vec<(&'a str, &'a str)>);
    let rows: Vec<Row<'_>> = vec![
        ("WebSocket upgrade", "GET", "/ch/calm", ws.to_vec()),
        ("multiplexed WebSocket", "GET", "/ws", ws.to_vec()),
        ("SSE", "GET", "/ch/calm", sse.to_vec()),
        ("long-poll", "GET", "/ch/calm?transport=longpoll", vec![]),
        ("form-like POST", "POST", "/ch/calm", text.to_vec()),
        (
            "preflight",
            "OPTIONS",
            "/ch/calm",
            vec![("Access-Control-Request-Method", "POST")],
        ),
    ];
    for (case, method, target, mut headers) in rows {
        headers.push(evil);
        let (status, head, body) = raw(&srv, method, target, &headers, b"x").await;
        assert_eq!(status, 403, "{case}: {head}");
        assert_eq!(json(&body)["error"], "origin_not_allowed", "{case}");
        assert!(
            !head
                .to_ascii_lowercase()
                .contains("access-control-allow-origin"),
            "{case}"
        );
    }
    calm.still_fine(&srv, 1).await;

    // The listed origin: a preflight, then a poll that carries CORS headers.
    let ok = ("Origin", "https://app.example");
    let (status, head, _) = raw(
        &srv,
        "OPTIONS",
        "/ch/calm",
        &[
            ok,
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "content-type"),
        ],
        b"",
    )
    .await;
    let head = head.to_ascii_lowercase();
    assert_eq!(status, 204, "{head}");
    assert!(
        head.contains("access-control-allow-origin: https://app.example"),
        "{head}"
    );
    assert!(
        head.contains("access-control-allow-methods: get, post"),
        "{head}"
    );
    assert!(
        head.contains("access-control-allow-headers: content-type"),
        "{head}"
    );
    let (status, head, _) = raw(&srv, "GET", "/ch/calm?transport=poll", &[ok], b"").await;
    let head = head.to_ascii_lowercase();
    assert_eq!(status, 200, "{head}");
    assert!(
        head.contains("access-control-allow-origin: https://app.example"),
        "{head}"
    );
    assert!(head.contains("vary: origin"), "{head}");
    // A same-origin page needs no list (the demos).
    let (status, _, _) = raw(
        &srv,
        "GET",
        "/ch/calm?transport=poll",
        &[("Origin", &format!("http://{}", srv.addr))],
        b"",
    )
    .await;
    assert_eq!(status, 200);
    // DNS rebinding: the attacker's name pointed at loopback.
    let (status, _, body) = send_raw(
        &srv,
        b"GET /ch/calm HTTP/1.1\r\nHost: evil.example:80\r\nOrigin: http://evil.example:80\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(json(&body)["error"], "host_not_allowed");
    srv.shutdown().await;
}

/// A client that sends `request` and then never reads (a tiny receive buffer, so the
/// server's writes block soon).
async fn stalled_reader(srv: &Running, request: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut s = socket.connect(srv.addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    s
}

#[tokio::test]
async fn subscribers_that_stop_reading_are_closed_after_the_write_timeout() {
    let mut c = config();
    c.limits.write_timeout_ms = 400;
    let srv = server_with(c).await;
    let mut calm = Bystander::new(&srv).await;
    let ws = "GET /ch/stall HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let sse = "GET /ch/stall HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n";
    let stream = "GET /ch/stall?transport=stream HTTP/1.1\r\nHost: localhost\r\n\r\n";
    // The same SSE request behind a POST: hyper serves that connection.
    let sse_after_post =
        format!("POST /ch/other HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\n\r\nx{sse}");
    let mut held = Vec::new();
    for request in [ws, sse, stream, sse_after_post.as_str()] {
        held.push(stalled_reader(&srv, request).await);
    }
    common::subscribers_become(&srv, "stall", 4).await;
    // Far more than the kernel buffers hold: every subscriber's writes block.
    let big = vec![b'x'; 60 * 1024];
    for _ in 0..200 {
        let (status, _, _) = raw(&srv, "POST", "/ch/stall", &[], &big).await;
        assert_eq!(status, 200);
    }
    // Each is given up on once its socket took nothing for 400 ms (plus the wheel's tick).
    common::subscribers_become(&srv, "stall", 0).await;
    calm.still_fine(&srv, 1).await;
    drop(held);
    srv.shutdown().await;
}

#[tokio::test]
async fn publishing_too_fast_and_guessing_api_keys_are_slowed_down() {
    let mut c = config();
    c.limits.max_publishes_per_second = 5;
    let srv = server_with(c).await;
    // POST: the sixth publish within a second is 429 with Retry-After.
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let (status, head, body) = raw(&srv, "POST", "/ch/fast", &[], b"x").await;
        if status == 429 {
            assert!(
                head.to_ascii_lowercase().contains("retry-after: 1"),
                "{head}"
            );
            assert_eq!(json(&body)["error"], "publish_rate");
        }
        statuses.push(status);
    }
    assert_eq!(&statuses[..5], [200; 5], "{statuses:?}");
    assert!(statuses[5..].contains(&429), "{statuses:?}");
    // A native WebSocket that publishes faster is closed with 1008.
    let (mut ws, _) = common::ws_open(&srv, "/ch/fast2").await;
    use futures_util::{SinkExt, StreamExt};
    let code = bounded(async {
        for i in 0..50 {
            if ws
                .send(tokio_tungstenite::tungstenite::Message::text(format!(
                    "m{i}"
                )))
                .await
                .is_err()
            {
                break;
            }
        }
        loop {
            match ws.next().await {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(Some(f)))) => {
                    break u16::from(f.code)
                }
                Some(Ok(_)) => {}
                other => panic!("no close frame: {other:?}"),
            }
        }
    })
    .await;
    assert_eq!(code, 1008);
    drop(ws);

    // Ten wrong API keys, then even the right one is refused for the rest of the minute.
    for _ in 0..10 {
        let (status, _, _) = raw(
            &srv,
            "GET",
            "/api/channels",
            &[("Authorization", "Bearer nope")],
            b"",
        )
        .await;
        assert_eq!(status, 401);
    }
    let right = format!("Bearer {}", common::KEY);
    let (status, head, body) = raw(
        &srv,
        "GET",
        "/api/channels",
        &[("Authorization", &right)],
        b"",
    )
    .await;
    assert_eq!(status, 429, "{head}");
    assert_eq!(json(&body)["error"], "too_many_failures");
    srv.shutdown().await;
}

#[tokio::test]
async fn demo_pages_forbid_sniffing_framing_and_foreign_scripts() {
    let srv = server_with(config()).await;
    for page in ["/", "/demo/chat", "/demo/ticker"] {
        let (status, head, _) = raw(&srv, "GET", page, &[], b"").await;
        let head = head.to_ascii_lowercase();
        assert_eq!(status, 200, "{page}");
        assert!(
            head.contains("x-content-type-options: nosniff"),
            "{page}: {head}"
        );
        assert!(head.contains("frame-ancestors 'none'"), "{page}: {head}");
        assert!(head.contains("default-src 'self'"), "{page}: {head}");
        assert!(head.contains("x-frame-options: deny"), "{page}: {head}");
    }
    srv.shutdown().await;
}

/// A `switchboard serve` process of its own (so its RSS is the server's alone), stopped
/// by PID when dropped.
struct ServerProcess {
    child: std::process::Child,
    addr: std::net::SocketAddr,
}

impl ServerProcess {
    fn start() -> Self {
        let (child, base) = common::serve_process(["--listen", "127.0.0.1:0"]);
        let addr = base
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("{base}"))
            .parse()
            .unwrap();
        Self { child, addr }
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn slow_bodies_cost_their_bytes_not_a_buffer_per_byte() {
    let srv = ServerProcess::start();
    let before = srv.rss_kib();
    // 50 connections each send a 400-byte body one byte at a time (2 ms apart).
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let addr = srv.addr;
        tasks.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let head = "POST /ch/slow HTTP/1.1\r\nHost: localhost\r\nContent-Length: 400\r\n\r\n";
            s.write_all(head.as_bytes()).await.unwrap();
            for _ in 0..400 {
                s.write_all(b"x").await.unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let mut answer = Vec::new();
            s.read_to_end(&mut answer).await.unwrap();
            parse_response(&answer).0
        }));
    }
    let mut peak = before;
    while !tasks.iter().all(|t| t.is_finished()) {
        peak = peak.max(srv.rss_kib());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    // Before the body reader copied each piece, this held ~3.8 KB per byte received:
    // 100 x 1,000 bytes took the server past +380 MB. Now it is the bodies' own bytes,
    // the connections and the messages stored (a few MB in all).
    let grown = peak.saturating_sub(before);
    assert!(
        grown < 32 * 1024,
        "the server grew {grown} KiB for 100 KB of slow bodies"
    );
}

/// Publishes `n` messages of `size` bytes on `channel` (each answered 200) and returns
/// their cursors.
async fn flood(srv: &Running, channel: &str, n: usize, size: usize) -> Vec<String> {
    let body = vec![b'f'; size];
    let mut cursors = Vec::new();
    for _ in 0..n {
        let (status, head, answer) = raw(srv, "POST", &format!("/ch/{channel}"), &[], &body).await;
        assert_eq!(status, 200, "never refused: {head}");
        cursors.push(json(&answer)["cursor"].as_str().unwrap().to_owned());
    }
    cursors
}

/// Sends `bytes` on a new connection and reads one answer (its head and its
/// `Content-Length` body; the connection may stay open).
async fn send_for_one_answer(srv: &Running, bytes: &[u8]) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut buf = Vec::new();
    bounded(async {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                if buf.len() >= end + 4 + len {
                    return;
                }
            }
            let mut chunk = [0u8; 4096];
            let k = s.read(&mut chunk).await.unwrap();
            assert!(k > 0, "closed before the answer was whole");
            buf.extend_from_slice(&chunk[..k]);
        }
    })
    .await;
    parse_response(&buf)
}

/// What a poll of `channel` from `since` answers.
async fn poll_from(srv: &Running, channel: &str, since: &str) -> serde_json::Value {
    let (status, _, body) = raw(
        srv,
        "GET",
        &format!("/ch/{channel}?since={since}"),
        &[],
        b"",
    )
    .await;
    assert_eq!(status, 200);
    json(&body)
}

/// Memory budget reached, three rows. A namespace's `history_bytes`: its channel keeps
/// its newest messages within the bound, nothing else is touched. The global
/// `max_retained_bytes`: every publish is still answered 200 (never refused), the oldest
/// messages of all channels go first — the bystander's first message too, by design —
/// and a resume from an evicted cursor is answered with `reset` and `lost` followed by
/// what is held, never a silent gap; the bystander's live subscription goes on.
#[tokio::test]
async fn a_full_memory_budget_evicts_the_oldest_and_says_so() {
    let mut c = config();
    c.limits.max_publishes_per_second = 1_000_000;
    let capped = switchboard_server::config::Namespace {
        client_publish: true,
        history_bytes: 8 * 1024,
        ..Default::default()
    };
    c.namespaces.insert("capped".into(), capped);
    let srv = server_with(c).await;
    let mut calm = Bystander::new(&srv).await;
    let cursors = flood(&srv, "capped:x", 100, 1024).await;
    let answer = poll_from(&srv, "capped:x", &cursors[0]).await;
    assert_eq!(answer["reset"], true, "{answer}");
    let held = answer["messages"].as_array().unwrap().len();
    let each = 1024 + switchboard_hub::STORED_MESSAGE_COST;
    assert_eq!(held, 8 * 1024 / each, "the newest that fit 8 KiB");
    assert_eq!(answer["lost"], 99 - held, "{answer}");
    calm.still_fine(&srv, 1).await;
    srv.shutdown().await;

    let budget = 64 * 1024;
    let mut c = config();
    c.limits.max_publishes_per_second = 1_000_000;
    c.limits.max_retained_bytes = budget;
    let srv = server_with(c).await;
    let mut calm = Bystander::new(&srv).await;
    let first = srv.state.hub.history("calm", None, None).await.unwrap();
    let switchboard_hub::HistoryAnswer::Gap { messages, .. } = first else {
        panic!("{first:?}");
    };
    let calm_first = messages[0].cursor().unwrap();
    let cursors = flood(&srv, "flood", 200, 1024).await;
    assert!(srv.state.hub.retained_bytes().unwrap() <= budget);
    let answer = poll_from(&srv, "flood", &cursors[0]).await;
    assert_eq!(answer["reset"], true, "{answer}");
    let held = answer["messages"].as_array().unwrap();
    assert!(!held.is_empty() && held.len() < 64, "{}", held.len());
    assert_eq!(answer["lost"], 199 - held.len(), "{answer}");
    assert_eq!(
        held.last().unwrap()["cursor"],
        cursors[199],
        "the newest is held"
    );
    // The bystander's first message was the oldest of all: it went, and a resume from
    // before it is told so.
    let since = switchboard_hub::Cursor::new(calm_first.epoch, calm_first.offset - 1).to_string();
    let answer = poll_from(&srv, "calm", &since).await;
    assert_eq!(answer["reset"], true, "{answer}");
    assert_eq!(answer["lost"], 1, "{answer}");
    // Its live subscription goes on.
    calm.publish_and_read(&srv, "after-budget").await;
    srv.shutdown().await;
}

/// Past `limits.max_channels` live channels, a publish or subscribe that would make one
/// more is answered 503 `channel_limit` (POST, SSE, a WebSocket upgrade); the channels
/// that exist go on, and so does the bystander.
#[tokio::test]
async fn a_new_channel_past_the_channel_limit_is_refused() {
    let mut c = config();
    c.limits.max_channels = 3;
    // The demo ticker's channels would count.
    c.demo = false;
    let srv = server_with(c).await;
    let mut calm = Bystander::new(&srv).await;
    for ch in ["a", "b"] {
        let (status, _, _) = raw(&srv, "POST", &format!("/ch/{ch}"), &[], b"x").await;
        assert_eq!(status, 200);
    }
    let rows: Vec<(&str, Vec<u8>)> = vec![
        (
            "a publish",
            b"POST /ch/c HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx"
                .to_vec(),
        ),
        (
            "an SSE subscribe",
            b"GET /ch/c HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAccept: text/event-stream\r\n\r\n"
                .to_vec(),
        ),
        (
            "a WebSocket upgrade",
            b"GET /ch/c HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
                .to_vec(),
        ),
    ];
    for (n, (case, bytes)) in rows.into_iter().enumerate() {
        let (status, head, body) = send_for_one_answer(&srv, &bytes).await;
        assert_eq!(status, 503, "{case}: {head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{case}: {head}"
        );
        let body = json(&body);
        assert_eq!(body["error"], "channel_limit", "{case}");
        assert!(
            body["message"].as_str().unwrap().contains("max_channels"),
            "{case}"
        );
        calm.still_fine(&srv, n + 1).await;
    }
    let (status, _, _) = raw(&srv, "POST", "/ch/a", &[], b"y").await;
    assert_eq!(status, 200, "a channel that exists goes on");
    srv.shutdown().await;
}
