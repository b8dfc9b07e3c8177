//! The native WebSocket (`GET /ch/NAME`) as its own task on the connection's stream (the
//! front hands it over, or hyper gives it back after an upgrade it served): an idle connection is ended by the backend's disconnect (by client id or by
//! user: close 1008) and by shutdown (1012), both through the hub closing its
//! subscription; a client's publish reaches the other subscribers; bytes the client sent
//! right behind its upgrade request are not lost; the registry forgets connections that
//! ended.
#![allow(clippy::unwrap_used)]

mod common;

use common::{bounded, close_of, server, url, ws_open, KEY};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use switchboard_client::ApiClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

async fn wait_until_registered(srv: &switchboard_server::server::Running, n: usize) {
    bounded(async {
        while srv.state.clients.len() != n {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn backend_disconnect_closes_an_idle_websocket_with_1008() {
    let srv = server().await;
    let api = ApiClient::new(&url(&srv), Some(KEY.into())).unwrap();
    let (mut by_id, id) = ws_open(&srv, "/ch/room").await;
    let (mut by_user, _) = ws_open(&srv, "/ch/room?user=dave").await;
    let (mut stays, _) = ws_open(&srv, "/ch/room?user=erin").await;
    wait_until_registered(&srv, 3).await;

    let r = api.disconnect(json!({ "client": id })).await.unwrap();
    assert_eq!(r["disconnected"], 1);
    let f = close_of(&mut by_id).await;
    assert_eq!(u16::from(f.code), 1008);
    assert_eq!(f.reason.as_str(), "disconnected by the server");

    let r = api.disconnect(json!({ "user": "dave" })).await.unwrap();
    assert_eq!(r["disconnected"], 1);
    let f = close_of(&mut by_user).await;
    assert_eq!(u16::from(f.code), 1008);

    // The ended connections leave the registry; the third is untouched and still served.
    drop((by_id, by_user));
    wait_until_registered(&srv, 1).await;
    api.publish("room", json!({"still": "here"})).await.unwrap();
    let got = bounded(stays.next()).await.unwrap().unwrap();
    assert!(got.to_text().unwrap().contains("still"), "{got:?}");
    drop(stays);
    assert!(srv.shutdown().await);
}

/// A connection that ends takes its ping deadline out of the shared timer wheel (left
/// there, it would keep the ended task's memory until its tick).
#[tokio::test]
async fn an_ended_websocket_leaves_nothing_in_the_timer_wheel() {
    let srv = server().await;
    let (mut a, _) = ws_open(&srv, "/ch/wheel").await;
    let (b, _) = ws_open(&srv, "/ch/wheel").await;
    common::wheel_holds(&srv, 2).await;
    a.close(None).await.unwrap();
    drop(b);
    wait_until_registered(&srv, 0).await;
    common::wheel_holds(&srv, 0).await;
    assert!(srv.shutdown().await);
}

#[tokio::test]
async fn shutdown_closes_an_idle_websocket_with_1012() {
    let srv = server().await;
    let (mut ws, _) = ws_open(&srv, "/ch/quiet").await;
    wait_until_registered(&srv, 1).await;
    let shutdown = tokio::spawn(srv.shutdown());
    let f = close_of(&mut ws).await;
    assert_eq!(u16::from(f.code), 1012);
    assert_eq!(f.reason.as_str(), "service restart");
    drop(ws);
    assert!(bounded(shutdown).await.unwrap(), "the drain completed");
}

#[tokio::test]
async fn a_client_publish_reaches_the_other_subscribers() {
    let srv = server().await;
    let (mut a, _) = ws_open(&srv, "/ch/chat").await;
    let (mut b, _) = ws_open(&srv, "/ch/chat").await;
    wait_until_registered(&srv, 2).await;
    a.send(Message::text(r#"{"hi":1}"#)).await.unwrap();
    a.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    for ws in [&mut a, &mut b] {
        let first = bounded(ws.next()).await.unwrap().unwrap();
        assert!(
            first.to_text().unwrap().contains(r#"{"hi":1}"#),
            "{first:?}"
        );
        let second = bounded(ws.next()).await.unwrap().unwrap();
        assert!(
            second.to_text().unwrap().contains("AQID"),
            "base64 of 1,2,3: {second:?}"
        );
    }
    drop((a, b));
    assert!(srv.shutdown().await);
}

/// A ping written in the same segment as the upgrade request (so hyper reads it with the
/// request) is answered once the connection is taken over.
#[tokio::test]
async fn a_frame_sent_with_the_upgrade_request_is_answered() {
    let srv = server().await;
    let mut raw = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let mut bytes = b"GET /ch/early HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n"
        .to_vec();
    // A masked ping with payload "hi" (mask key 1,2,3,4).
    bytes.extend_from_slice(&[0x89, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2]);
    raw.write_all(&bytes).await.unwrap();
    bounded(async {
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            raw.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        assert!(
            head.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        let mut pong = [0u8; 4];
        raw.read_exact(&mut pong).await.unwrap();
        assert_eq!(pong, [0x8a, 2, b'h', b'i']);
    })
    .await;
    drop(raw);
    assert!(srv.shutdown().await);
}

/// Opens `/ch/NAME` on a socket with a small receive buffer, asking for the compact format
/// if `compact`: a reader that stalls fills the server's socket within a few frames.
async fn ws_open_small_window(
    srv: &switchboard_server::server::Running,
    path: &str,
    compact: bool,
) -> common::Ws {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(srv.addr).await.unwrap();
    let mut req = format!("ws://{}{path}", srv.addr)
        .into_client_request()
        .unwrap();
    if compact {
        req.headers_mut().insert(
            "sec-websocket-protocol",
            http::HeaderValue::from_static(switchboard_proto::COMPACT_PROTOCOL),
        );
    }
    let (ws, _) =
        tokio_tungstenite::client_async(req, tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await
            .unwrap();
    ws
}

/// The server serves a test on one thread, where the fan-out writes to a waiting
/// connection's socket itself (direct delivery) until the socket is full, and the
/// connection's task finishes a frame written in part: a reader that stalls while 100
/// messages of 60 KiB go out (more than the server's socket buffers: 4 MiB at most) then reads every frame whole, in order, once — in the
/// envelope format and in the compact one (payloads alone after the start record).
#[tokio::test]
async fn a_stalled_reader_gets_every_frame_whole_after_the_socket_filled() {
    let srv = server().await;
    let api = ApiClient::new(&url(&srv), Some(KEY.into())).unwrap();
    let mut envelope = ws_open_small_window(&srv, "/ch/big", false).await;
    let mut compact = ws_open_small_window(&srv, "/ch/big", true).await;
    wait_until_registered(&srv, 2).await;
    let n = 100;
    for i in 0..n {
        let body = format!("{i:05}{}", "x".repeat(60 * 1024));
        api.publish("big", json!(body)).await.unwrap();
    }
    for i in 0..n {
        let m = bounded(envelope.next()).await.unwrap().unwrap();
        let v: serde_json::Value = serde_json::from_str(m.to_text().unwrap()).unwrap();
        let data = v["data"].as_str().unwrap();
        assert!(
            data.starts_with(&format!("{i:05}")),
            "message {i}: {}",
            &data[..8]
        );
        assert_eq!(data.len(), 5 + 60 * 1024);
    }
    // The compact stream: its start record, then each payload alone (a JSON string).
    let start = bounded(compact.next()).await.unwrap().unwrap();
    assert_eq!(start.to_text().unwrap().as_bytes()[0], 0x1e, "{start:?}");
    for i in 0..n {
        let m = bounded(compact.next()).await.unwrap().unwrap();
        let data: String = serde_json::from_str(m.to_text().unwrap()).unwrap();
        assert!(
            data.starts_with(&format!("{i:05}")),
            "message {i}: {}",
            &data[..8]
        );
        assert_eq!(data.len(), 5 + 60 * 1024);
    }
    drop((envelope, compact));
    assert!(srv.shutdown().await);
}
