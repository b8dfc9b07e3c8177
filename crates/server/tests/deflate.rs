//! permessage-deflate on the native WebSocket (`GET /ch/NAME`): the server grants
//! `server_no_context_takeover`, so each message is compressed once and every deflate
//! subscriber with the same window gets the very same RSV1 frame; a subscriber with a
//! smaller window gets one made for its window, one without deflate the plain frame; a
//! real client inflates what it receives.
#![allow(clippy::unwrap_used)]

mod common;

use common::raw_ws::RawWs;
use common::{bounded, server, subscribers_become, url, KEY};
use serde_json::{json, Value};
use switchboard_client::ApiClient;
use switchboard_ws::deflate::Decompressor;
use switchboard_ws::{DeflateConfig, FrameHeader, OpCode};
use switchboard_ws_tokio::{ClientConfig, Message};
use tokio::net::TcpStream;

/// A raw WebSocket subscriber of `path` offering `extensions` (if any); returns the `101`'s
/// head too.
async fn subscribe(
    addr: std::net::SocketAddr,
    path: &str,
    extensions: Option<&str>,
) -> (RawWs, String) {
    let offer = extensions.map_or(String::new(), |e| {
        format!("Sec-WebSocket-Extensions: {e}\r\n")
    });
    let (ws, head) = RawWs::open(addr, path, &offer).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    (ws, head)
}

/// A compressed frame's message, inflated with a fresh context of `window_bits`.
fn inflate(frame: &[u8], window_bits: u8) -> Vec<u8> {
    let (h, n) = FrameHeader::parse(frame).unwrap().unwrap();
    assert!(h.rsv1 && h.fin && h.opcode == OpCode::Text, "{h:?}");
    let mut d = Decompressor::new(window_bits, true);
    let mut out = Vec::new();
    d.decompress(&frame[n..], &mut out, 1 << 20).unwrap();
    d.finish(&mut out, 1 << 20).unwrap();
    out
}

/// A payload that compresses well: a list of similar records.
fn records() -> Value {
    let items: Vec<Value> = (0..40)
        .map(|i| json!({"id": i, "name": format!("item {i}"), "price": 9.99, "tags": ["a", "b"]}))
        .collect();
    json!({ "items": items })
}

#[tokio::test]
async fn deflate_subscribers_share_one_compressed_frame() {
    let srv = server().await;
    let mut full = Vec::new();
    for _ in 0..3 {
        let (ws, head) = subscribe(srv.addr, "/ch/zip", Some("permessage-deflate")).await;
        let ext = head.to_ascii_lowercase();
        assert!(
            ext.contains("permessage-deflate") && ext.contains("server_no_context_takeover"),
            "the server answers server_no_context_takeover: {head}"
        );
        full.push(ws);
    }
    let (mut small, _) = subscribe(
        srv.addr,
        "/ch/zip",
        Some("permessage-deflate; server_max_window_bits=10"),
    )
    .await;
    let (mut plain, head) = subscribe(srv.addr, "/ch/zip", None).await;
    assert!(!head.to_ascii_lowercase().contains("permessage-deflate"));
    subscribers_become(&srv, "zip", 5).await;

    let api = ApiClient::new(&url(&srv), Some(KEY.into())).unwrap();
    let data = records();
    api.publish("zip", data.clone()).await.unwrap();

    let mut frames = Vec::new();
    for ws in &mut full {
        frames.push(ws.frame().await.1);
    }
    assert!(
        frames.iter().all(|f| *f == frames[0]),
        "every full-window subscriber gets the same bytes"
    );
    let message: Value = serde_json::from_slice(&inflate(&frames[0], 15)).unwrap();
    assert_eq!(message["data"], data, "{message}");

    let (_, small_frame) = small.frame().await;
    let inflated = inflate(&small_frame, 10);
    assert_eq!(serde_json::from_slice::<Value>(&inflated).unwrap(), message);

    let (h, plain_frame) = plain.frame().await;
    assert!(!h.rsv1, "no deflate offered, none used");
    assert_eq!(plain_frame[plain_frame.len() - inflated.len()..], inflated);
    assert!(
        frames[0].len() * 2 < plain_frame.len(),
        "compressed {} B, plain {} B",
        frames[0].len(),
        plain_frame.len()
    );
    drop((full, small, plain));
    assert!(srv.shutdown().await);
}

/// Direct delivery with deflate: the server serves a test on one thread, where the fan-out
/// writes each message's shared compressed frame to a waiting subscriber's socket itself
/// until the socket is full, and the connection's task finishes a frame written in part.
/// A reader with a small receive window that stalls while 160 messages of 60 KiB go out
/// (random hex digits: about 32 KiB each compressed, more than the server's socket
/// buffers hold) then reads every frame whole, compressed, in order, once.
#[tokio::test]
async fn a_stalled_deflate_reader_gets_every_compressed_frame_whole() {
    let srv = server().await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(srv.addr).await.unwrap();
    let (mut ws, head) = RawWs::open_on(
        stream,
        "/ch/big",
        "Sec-WebSocket-Extensions: permessage-deflate\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head
        .to_ascii_lowercase()
        .contains("server_no_context_takeover"));
    subscribers_become(&srv, "big", 1).await;
    let api = ApiClient::new(&url(&srv), Some(KEY.into())).unwrap();
    let n = 160;
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut sent = Vec::new();
    for i in 0..n {
        let noise: String = (0..60 * 1024)
            .map(|_| {
                // xorshift: digits no dictionary finds again, so each frame stays large.
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                char::from_digit((seed % 16) as u32, 16).unwrap()
            })
            .collect();
        let body = format!("{i:05}{noise}");
        api.publish("big", json!(body)).await.unwrap();
        sent.push(body);
    }
    let mut compressed = 0;
    for (i, body) in sent.iter().enumerate() {
        let (_, frame) = ws.frame().await;
        compressed += frame.len();
        let message: Value = serde_json::from_slice(&inflate(&frame, 15)).unwrap();
        assert_eq!(message["data"].as_str(), Some(body.as_str()), "message {i}");
    }
    assert!(
        compressed > 4 << 20 && compressed < n * 40 * 1024,
        "{compressed} B compressed"
    );
    drop(ws);
    assert!(srv.shutdown().await);
}

#[tokio::test]
async fn a_deflate_client_reads_every_message() {
    let srv = server().await;
    let stream = TcpStream::connect(srv.addr).await.unwrap();
    let config = ClientConfig {
        deflate: Some(DeflateConfig::default()),
        ..ClientConfig::default()
    };
    let (mut ws, response) = switchboard_ws_tokio::connect(stream, "localhost", "/ch/zip", &config)
        .await
        .unwrap();
    let params = response.deflate.unwrap();
    assert!(params.server_no_context_takeover);
    subscribers_become(&srv, "zip", 1).await;

    let api = ApiClient::new(&url(&srv), Some(KEY.into())).unwrap();
    // Compressible, tiny, and compressible again: each message stands alone, sent
    // compressed or not as the server chose.
    let sent = [records(), json!("x"), records()];
    for data in &sent {
        api.publish("zip", data.clone()).await.unwrap();
    }
    for data in &sent {
        let got = bounded(ws.recv()).await.unwrap().unwrap();
        let Message::Text(text) = got else {
            panic!("expected text, got {got:?}");
        };
        let message: Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(&message["data"], data, "{message}");
    }
    drop(ws);
    assert!(srv.shutdown().await);
}
