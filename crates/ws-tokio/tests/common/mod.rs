//! Helpers shared by the integration tests: an echo server built on this crate, a bound on
//! every test's duration, configs, and a raw TCP client for byte-level tests.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use switchboard_ws_tokio::{self as ws, AcceptOptions, DeflateConfig, Message, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Every test finishes well within this, or fails (never hangs CI).
pub const BOUND: Duration = Duration::from_secs(20);

pub async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(BOUND, f)
        .await
        .expect("test exceeded its time bound")
}

pub fn server_config(deflate: bool) -> ServerConfig {
    let deflate = deflate.then(DeflateConfig::default);
    ServerConfig {
        accept: AcceptOptions {
            deflate: deflate.clone(),
            ..AcceptOptions::default()
        },
        connection: ws::Config {
            ping_interval: None,
            deflate,
            ..ws::Config::default()
        },
        high_water_mark: 0,
    }
}

pub fn client_config(deflate: bool) -> ws::ClientConfig {
    let deflate = deflate.then(DeflateConfig::default);
    ws::ClientConfig {
        deflate: deflate.clone(),
        connection: ws::Config {
            ping_interval: None,
            deflate,
            ..ws::Config::default()
        },
        ..ws::ClientConfig::default()
    }
}

/// An echo server accepting `connections` connections, each echoing text and binary
/// messages until closed; the join handle yields what each connection received last
/// (its close frame, if any).
pub async fn echo_server(
    config: ServerConfig,
    connections: usize,
) -> (SocketAddr, tokio::task::JoinHandle<Vec<Option<Message>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let handle = tokio::spawn(async move {
        let mut lasts = Vec::new();
        for _ in 0..connections {
            let (stream, _) = listener.accept().await.expect("accept");
            lasts.push(echo_one(stream, &config).await);
        }
        lasts
    });
    (addr, handle)
}

async fn echo_one(stream: TcpStream, config: &ServerConfig) -> Option<Message> {
    let Ok((mut socket, _req)) = ws::accept(stream, config).await else {
        return None;
    };
    let mut last = None;
    while let Some(msg) = socket.recv().await {
        match msg {
            Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                let _ = socket.send(m).await;
            }
            Ok(m @ Message::Close(_)) => last = Some(m),
            Ok(_) => {}
            Err(_) => {}
        }
    }
    last
}

pub async fn connect(addr: SocketAddr, deflate: bool) -> (ws::WebSocket<TcpStream>, ws::Response) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    ws::connect(stream, &addr.to_string(), "/echo", &client_config(deflate))
        .await
        .expect("handshake")
}

/// A plain TCP connection to `addr` that has sent a valid upgrade request (RFC 6455's
/// sample key) and read nothing yet.
pub async fn raw_upgrade_request(addr: SocketAddr) -> TcpStream {
    let mut raw = TcpStream::connect(addr).await.expect("connect");
    raw.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .expect("write the request");
    raw
}

/// [`raw_upgrade_request`], then the `101` head read byte by byte (nothing after it), so
/// the test reads and writes frames by hand from here.
pub async fn upgraded_raw(addr: SocketAddr) -> TcpStream {
    let mut raw = raw_upgrade_request(addr).await;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        raw.read_exact(&mut byte)
            .await
            .expect("read the response head");
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "not switched: {head:?}");
    raw
}

/// Reads one unmasked server frame with a payload under 126 bytes: (first byte, payload).
pub async fn read_small_frame(raw: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut head = [0u8; 2];
    raw.read_exact(&mut head)
        .await
        .expect("read a frame header");
    assert!(head[1] < 126, "unexpected frame length byte {}", head[1]);
    let mut payload = vec![0u8; head[1] as usize];
    raw.read_exact(&mut payload)
        .await
        .expect("read a frame payload");
    (head[0], payload)
}
