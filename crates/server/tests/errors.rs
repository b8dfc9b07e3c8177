//! Bad input: each case gets one clear status (or close code) and a message, and leaves
//! the server and its other clients undisturbed.
#![allow(clippy::unwrap_used)]

mod common;

use common::{bounded, json, raw, server, url};
use switchboard_client::{Client, Event, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// (method, target, headers, body, status, error code)
type Case = (
    &'static str,
    &'static str,
    Vec<(&'static str, &'static str)>,
    Vec<u8>,
    u16,
    &'static str,
);

#[tokio::test]
async fn http_errors_table() {
    let srv = server().await;
    // A live subscriber that must keep working through all of it.
    let client = Client::new(&url(&srv)).unwrap();
    let mut witness = client
        .subscribe(Transport::Sse, &[("calm", None)])
        .await
        .unwrap();

    let big = vec![b'x'; 64 * 1024 + 1];
    let cases: Vec<Case> = vec![
        ("GET", "/ch/a%20b", vec![], vec![], 400, "invalid_channel"),
        (
            "GET",
            "/ch/caf%C3%A9",
            vec![],
            vec![],
            400,
            "invalid_channel",
        ),
        (
            "POST",
            "/ch/a%2Fb",
            vec![],
            b"x".to_vec(),
            400,
            "invalid_channel",
        ),
        (
            "GET",
            "/ch/nowhere:x",
            vec![],
            vec![],
            404,
            "unknown_namespace",
        ),
        (
            "POST",
            "/ch/nowhere:x",
            vec![],
            b"x".to_vec(),
            404,
            "unknown_namespace",
        ),
        (
            "POST",
            "/ch/room",
            vec![],
            big.clone(),
            413,
            "payload_too_large",
        ),
        (
            "POST",
            "/ch/ticker:prices",
            vec![],
            b"1".to_vec(),
            403,
            "publish_not_allowed",
        ),
        (
            "GET",
            "/ch/room?since=zzz",
            vec![],
            vec![],
            400,
            "malformed_cursor",
        ),
        (
            "GET",
            "/ch/room?transport=longpoll&since=1:2:3",
            vec![],
            vec![],
            400,
            "malformed_cursor",
        ),
        (
            "GET",
            "/ch/room",
            vec![("Accept", "text/event-stream"), ("Last-Event-ID", "nope")],
            vec![],
            400,
            "malformed_cursor",
        ),
        (
            "GET",
            "/sub?channel=room,xyz&transport=poll",
            vec![],
            vec![],
            400,
            "malformed_cursor",
        ),
        (
            "GET",
            "/sub?transport=poll",
            vec![],
            vec![],
            400,
            "bad_request",
        ),
        (
            "GET",
            "/ch/room?transport=pigeon",
            vec![],
            vec![],
            400,
            "bad_request",
        ),
        (
            "POST",
            "/ch/room",
            vec![("Content-Type", "application/json")],
            b"{nope".to_vec(),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/ch/room",
            vec![],
            vec![0xff, 0xfe],
            400,
            "bad_request",
        ),
        // JSON whose string is not UTF-8 would reach subscribers inside text frames.
        (
            "POST",
            "/ch/room",
            vec![("Content-Type", "application/json")],
            b"{\"text\":\"caf\xe9\"}".to_vec(),
            400,
            "bad_request",
        ),
        ("GET", "/no/such/page", vec![], vec![], 404, "not_found"),
        // WebSocket handshake faults: the codec's status for each.
        (
            "GET",
            "/ch/room",
            vec![
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Version", "13"),
            ],
            vec![],
            400,
            "bad_handshake",
        ),
        (
            "GET",
            "/ch/room",
            vec![
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Version", "8"),
                ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ],
            vec![],
            426,
            "bad_handshake",
        ),
        (
            "GET",
            "/ch/nowhere:x",
            vec![
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Version", "13"),
                ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ],
            vec![],
            404,
            "unknown_namespace",
        ),
        // Backend API authentication.
        ("GET", "/api/channels", vec![], vec![], 401, "unauthorized"),
        (
            "GET",
            "/api/channels",
            vec![("Authorization", "Bearer wrong")],
            vec![],
            401,
            "unauthorized",
        ),
        (
            "POST",
            "/api/publish",
            vec![("X-Api-Key", "test-key")],
            b"[]".to_vec(),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/publish",
            vec![("X-Api-Key", "test-key")],
            br#"{"channel":"room","data":1,"text":"t"}"#.to_vec(),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/publish",
            vec![("X-Api-Key", "test-key")],
            b"{\"channel\":\"room\",\"data\":{\"text\":\"caf\xe9\"}}".to_vec(),
            400,
            "bad_request",
        ),
    ];
    for (method, target, headers, body, status, code) in &cases {
        let (got, head, body) = raw(&srv, method, target, headers, body).await;
        assert_eq!(
            got,
            *status,
            "{method} {target}: {head}\n{}",
            String::from_utf8_lossy(&body)
        );
        let v = json(&body);
        assert_eq!(v["error"], *code, "{method} {target}: {v}");
        let msg = v["message"].as_str().unwrap();
        assert!(
            msg.len() > 15,
            "{method} {target}: message should explain: {msg}"
        );
        if *status == 426 {
            assert!(
                head.to_ascii_lowercase()
                    .contains("sec-websocket-version: 13"),
                "{head}"
            );
        }
    }
    // Nothing else disturbed: publishing and the open subscription still work.
    let c = client
        .publish("calm", "{\"ok\":1}", Some("application/json"))
        .await
        .unwrap();
    let env = bounded(witness.next()).await.unwrap();
    assert_eq!((env.event, env.cursor), (Event::Message, Some(c)));
    drop(witness);
    assert!(srv.shutdown().await);
}

#[tokio::test]
async fn api_without_configured_key_says_how_to_set_one() {
    let mut cfg = common::config();
    cfg.api_key = None;
    let srv = common::server_with(cfg).await;
    let (status, _, body) = raw(
        &srv,
        "GET",
        "/api/channels",
        &[("X-Api-Key", "anything")],
        b"",
    )
    .await;
    assert_eq!(status, 403);
    let v = json(&body);
    assert_eq!(v["error"], "api_disabled");
    assert!(v["message"]
        .as_str()
        .unwrap()
        .contains("SWITCHBOARD_API_KEY"));
    assert!(srv.shutdown().await);
}

/// A raw WebSocket client: handshake, then hand-made frames.
async fn ws_connect(addr: std::net::SocketAddr, path: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        assert_eq!(s.read(&mut b).await.unwrap(), 1);
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s
}

fn frame(opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut f = vec![0x80 | opcode];
    let m = if masked { 0x80 } else { 0 };
    if payload.len() < 126 {
        f.push(m | payload.len() as u8);
    } else if payload.len() < 65536 {
        f.push(m | 126);
        f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    } else {
        f.push(m | 127);
        f.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    }
    if masked {
        let key = [1u8, 2, 3, 4];
        f.extend_from_slice(&key);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        f.extend_from_slice(payload);
    }
    f
}

/// Reads frames until a close frame; returns its code.
async fn close_code(s: &mut TcpStream) -> u16 {
    let mut buf = Vec::new();
    bounded(async {
        loop {
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection ended without a close frame");
            buf.extend_from_slice(&chunk[..n]);
            // Walk complete server frames (unmasked).
            let mut at = 0;
            while buf.len() >= at + 2 {
                let op = buf[at] & 0x0f;
                let mut len = usize::from(buf[at + 1] & 0x7f);
                let mut hdr = 2;
                if len == 126 {
                    if buf.len() < at + 4 {
                        break;
                    }
                    len = usize::from(u16::from_be_bytes([buf[at + 2], buf[at + 3]]));
                    hdr = 4;
                } else if len == 127 {
                    if buf.len() < at + 10 {
                        break;
                    }
                    len = u64::from_be_bytes(buf[at + 2..at + 10].try_into().unwrap()) as usize;
                    hdr = 10;
                }
                if buf.len() < at + hdr + len {
                    break;
                }
                if op == 8 {
                    let p = &buf[at + hdr..at + hdr + len];
                    return u16::from_be_bytes([p[0], p[1]]);
                }
                at += hdr + len;
            }
        }
    })
    .await
}

#[tokio::test]
async fn websocket_protocol_errors_get_the_right_close_code() {
    let mut cfg = common::config();
    cfg.limits.max_publish_bytes = 8 * 1024;
    let srv = common::server_with(cfg).await;
    let client = Client::new(&url(&srv)).unwrap();
    let mut witness = client
        .subscribe(Transport::WebSocket, &[("calm", None)])
        .await
        .unwrap();

    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("/ch/room", frame(0x1, b"unmasked", false), 1002), // clients must mask
        ("/ch/room", frame(0x1, &[0xc3, 0x28], true), 1007), // invalid UTF-8 text
        ("/ch/room", frame(0x3, b"", true), 1002),          // reserved opcode
        ("/ch/room", frame(0x2, &vec![7u8; 9 * 1024], true), 1009), // over the publish limit
        ("/ch/ticker:prices", frame(0x1, b"buy", true), 1008), // publishing not allowed
        ("/ws", frame(0x1, &vec![b' '; 9 * 1024], true), 1009),
    ];
    for (path, bytes, code) in cases {
        let mut s = ws_connect(srv.addr, path).await;
        s.write_all(&bytes).await.unwrap();
        assert_eq!(close_code(&mut s).await, code, "{path}");
    }
    let c = client
        .publish("calm", "1", Some("application/json"))
        .await
        .unwrap();
    assert_eq!(bounded(witness.next()).await.unwrap().cursor, Some(c));
    witness.close().await;
    assert!(srv.shutdown().await);
}
