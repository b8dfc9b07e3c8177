//! A server on two event loops (`Builder::workers(2)`, what `serve --workers 2` runs):
//! both loops accept and serve what they accept, on a listener with `SO_REUSEPORT` (each
//! loop then has a socket of its own, as `serve` binds them) and on one without (the loops
//! share it); subscribers on either loop get every message in order while publishers on
//! both publish at once.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};

use axum::routing::get;
use common::{bounded, config, url, ws_open, Ws, KEY};
use futures_util::StreamExt;
use serde_json::json;
use switchboard_client::ApiClient;
use switchboard_server::server::{Builder, Running};

/// Two loops, and a route that names the thread serving it.
async fn two_loops(reuse_port: bool) -> Running {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_reuseport(reuse_port).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1024).unwrap();
    let thread = || async { std::thread::current().name().unwrap_or("").to_owned() };
    Builder::new(config())
        .routes(axum::Router::new().route("/thread", get(thread)))
        .workers(2)
        .build()
        .unwrap()
        .spawn(listener)
        .unwrap()
}

/// The thread that served one request on a new connection (blocking: run off the test's
/// loop, so that both of the server's loops wait for connections).
fn served_by(addr: std::net::SocketAddr) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /thread HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    answer.rsplit("\r\n\r\n").next().unwrap().to_owned()
}

/// Which loop accepts a connection is the kernel's choice; over many connections both do.
async fn both_loops_accept_and_serve(reuse_port: bool) {
    let srv = two_loops(reuse_port).await;
    let addr = srv.addr;
    let seen = tokio::task::spawn_blocking(move || {
        let mut seen = BTreeSet::new();
        // Stops as soon as both are seen; 2,000 connections to one loop only would mean
        // the other does not accept.
        for _ in 0..2000 {
            seen.insert(served_by(addr));
            if seen.len() == 2 {
                break;
            }
        }
        seen
    })
    .await
    .unwrap();
    assert_eq!(seen.len(), 2, "threads that served: {seen:?}");
    assert!(seen.contains("switchboard-loop-1"), "{seen:?}");
    assert!(srv.shutdown().await);
}

#[tokio::test]
async fn both_loops_accept_and_serve_on_sockets_of_their_own() {
    both_loops_accept_and_serve(true).await;
}

#[tokio::test]
async fn both_loops_accept_and_serve_from_one_shared_socket() {
    both_loops_accept_and_serve(false).await;
}

/// The offset of a native WebSocket message (its cursor is `EPOCH:OFFSET`).
async fn next_offset(ws: &mut Ws) -> u64 {
    let m = bounded(ws.next()).await.unwrap().unwrap();
    let v: serde_json::Value = serde_json::from_str(m.to_text().unwrap()).unwrap();
    let cursor = v["cursor"].as_str().unwrap();
    cursor.rsplit(':').next().unwrap().parse().unwrap()
}

/// 40 subscribers (spread over both loops by the kernel) and four publishers at once (on
/// their own connections, so on both loops too): every subscriber gets all 200
/// messages, each once, in offset order.
#[tokio::test]
async fn every_subscriber_gets_every_message_in_order_from_publishers_on_both_loops() {
    let srv = two_loops(true).await;
    let mut subs = Vec::new();
    for _ in 0..40 {
        subs.push(ws_open(&srv, "/ch/room").await.0);
    }
    common::subscribers_become(&srv, "room", 40).await;
    let publishers = (0..4).map(|p| {
        let api = ApiClient::new(&url(&srv), Some(KEY.into())).unwrap();
        async move {
            for i in 0..50 {
                api.publish("room", json!(format!("{p}-{i}")))
                    .await
                    .unwrap();
            }
        }
    });
    bounded(futures_util::future::join_all(publishers)).await;
    for (n, ws) in subs.iter_mut().enumerate() {
        let first = next_offset(ws).await;
        for k in 1..200 {
            assert_eq!(
                next_offset(ws).await,
                first + k,
                "subscriber {n}, message {k}"
            );
        }
    }
    drop(subs);
    assert!(srv.shutdown().await);
}
