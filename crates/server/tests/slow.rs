//! A WebSocket subscriber that stops reading is closed as a slow consumer (1013, "resume
//! from your last cursor") instead of growing the server's memory, and resuming from the
//! last cursor it did receive delivers the rest exactly.
#![allow(clippy::unwrap_used)]

mod common;

use common::{bounded, url};
use futures_util::StreamExt;
use switchboard_client::{Client, Cursor, Event, Transport};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn stalled_websocket_is_closed_and_resumes_exactly() {
    let mut cfg = common::config();
    for ns in cfg.namespaces.values_mut() {
        ns.queue_capacity = 4;
    }
    let srv = common::server_with(cfg).await;
    let client = Client::new(&url(&srv)).unwrap();
    // An independent client that does not read while the messages are published; a small
    // receive buffer (which also stops the kernel from growing it) makes it stall early.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(8 * 1024).unwrap();
    let tcp = socket.connect(srv.addr).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{}/ch/slow", srv.addr), tcp)
        .await
        .unwrap();
    let body = format!("\"{}\"", "x".repeat(60 * 1024));
    let mut cursors: Vec<Cursor> = Vec::new();
    for _ in 0..150 {
        cursors.push(
            client
                .publish("slow", body.clone(), Some("application/json"))
                .await
                .unwrap(),
        );
    }
    // Now read: some messages, in order, then the close.
    let mut got = Vec::new();
    let close = bounded(async {
        loop {
            let next = tokio::time::timeout(std::time::Duration::from_secs(5), ws.next()).await;
            let Ok(next) = next else {
                panic!("stuck after {} messages", got.len())
            };
            match next.unwrap().unwrap() {
                Message::Text(t) => {
                    let env: serde_json::Value = serde_json::from_str(&t).unwrap();
                    got.push(env["cursor"].as_str().unwrap().parse::<Cursor>().unwrap());
                }
                Message::Close(f) => return f.unwrap(),
                _ => {}
            }
        }
    })
    .await;
    assert_eq!(u16::from(close.code), 1013, "{close:?}");
    assert!(got.len() < cursors.len(), "the stalled client was cut off");
    assert!(!got.is_empty(), "it got a prefix first");
    assert_eq!(got, cursors[..got.len()], "what it got is an exact prefix");

    // Resuming from its last cursor delivers exactly the rest.
    let last = *got.last().unwrap();
    let mut sub = client
        .subscribe(Transport::Poll, &[("slow", Some(last))])
        .await
        .unwrap();
    let mut rest = Vec::new();
    while rest.len() < cursors.len() - got.len() {
        let env = bounded(sub.next()).await.unwrap();
        assert_eq!(env.event, Event::Message);
        rest.push(env.cursor.unwrap());
    }
    assert_eq!(rest, cursors[got.len()..]);
    drop(ws);
    assert!(srv.shutdown().await);
}
