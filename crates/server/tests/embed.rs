//! The embedding example (`examples/embed.rs`), driven from outside: its own route and
//! its own WebSocket endpoint beside the server's, on a listener the program owns.
#![allow(clippy::unwrap_used)]

mod common;

#[path = "../examples/embed.rs"]
#[allow(dead_code, unreachable_pub)]
mod embed;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{bounded, config, json, raw, ws_open, Ws, KEY};
use futures_util::{SinkExt, StreamExt};
use switchboard_server::server::Running;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

async fn next_text(ws: &mut Ws) -> String {
    match bounded(ws.next()).await.unwrap().unwrap() {
        Message::Text(t) => t.to_string(),
        other => panic!("unexpected {other:?}"),
    }
}

/// The example's server on a free loopback port, and its endpoint's session count.
async fn start() -> (embed::Shout, Running) {
    let shout = embed::Shout::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let srv = embed::builder(config(), shout.clone())
        .build()
        .unwrap()
        .spawn(listener)
        .unwrap();
    (shout, srv)
}

#[tokio::test]
async fn the_example_serves_its_route_its_endpoint_and_the_server() {
    let (shout, srv) = start().await;

    // The program's own route.
    let (status, _, body) = raw(&srv, "GET", "/hello", &[], b"").await;
    assert_eq!(
        (status, &body[..]),
        (200, &b"hello from the host program"[..])
    );

    // Switchboard's own routes are there too.
    let (status, _, _) = raw(&srv, "GET", "/ch/shouts?transport=poll", &[], b"").await;
    assert_eq!(status, 200);

    // The endpoint: on_open greets, on_message answers and publishes, on_close runs.
    let (mut ws, id) = ws_open(&srv, "/shout").await;
    assert_eq!(next_text(&mut ws).await, format!("welcome, {id}"));
    assert_eq!(shout.open.load(Ordering::SeqCst), 1);
    ws.send(Message::text("hello there")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "HELLO THERE");

    // ... and published it to `shouts`, where any subscriber finds it.
    let history = bounded(async {
        loop {
            let auth = [("Authorization", format!("Bearer {KEY}"))];
            let auth: Vec<_> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let target = "/api/channels/shouts/history?limit=10";
            let (_, _, body) = raw(&srv, "GET", target, &auth, b"").await;
            let body = json(&body);
            if body["messages"].as_array().is_some_and(|m| !m.is_empty()) {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(history["messages"][0]["data"], "HELLO THERE", "{history}");

    ws.close(None).await.unwrap();
    bounded(async {
        while shout.open.load(Ordering::SeqCst) != 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(srv.shutdown().await, "every connection left");
}

#[tokio::test]
async fn shutdown_closes_the_endpoints_connections_with_1012() {
    let (shout, srv) = start().await;
    let (mut ws, _) = ws_open(&srv, "/shout").await;
    bounded(ws.next()).await.unwrap().unwrap();
    let stopping = tokio::spawn(srv.shutdown());
    let frame = loop {
        match bounded(ws.next()).await.unwrap().unwrap() {
            Message::Close(f) => break f.unwrap(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(u16::from(frame.code), 1012);
    drop(ws);
    assert!(stopping.await.unwrap(), "every connection left");
    assert_eq!(shout.open.load(Ordering::SeqCst), 0, "on_close ran");
}
