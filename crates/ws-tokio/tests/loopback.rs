//! This crate's client against this crate's server over real loopback sockets.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::{bounded, connect, echo_server, server_config};
use switchboard_ws_tokio::{self as ws, CloseCode, CloseFrame, Message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn round_trips(deflate: bool) {
    let (addr, server) = echo_server(server_config(deflate), 1).await;
    let (mut client, response) = connect(addr, deflate).await;
    assert_eq!(response.deflate.is_some(), deflate);

    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let messages = [
        Message::text("hello"),
        Message::text(""),
        Message::text("ünïcødé ✓ ".repeat(1000)),
        Message::binary(Bytes::from_static(&[0, 1, 2, 255])),
        Message::binary(big),
    ];
    for m in &messages {
        client.send(m.clone()).await.unwrap();
        let echoed = client.recv().await.unwrap().unwrap();
        assert_eq!(&echoed, m);
    }
    client.close(CloseCode::NORMAL, "done").await.unwrap();
    assert!(client.recv().await.is_none());
    let lasts = server.await.unwrap();
    assert_eq!(
        lasts[0],
        Some(Message::Close(Some(CloseFrame {
            code: CloseCode::NORMAL,
            reason: "done".into()
        })))
    );
}

#[tokio::test]
async fn echo_round_trips() {
    bounded(round_trips(false)).await;
}

#[tokio::test]
async fn echo_round_trips_with_deflate() {
    bounded(round_trips(true)).await;
}

#[tokio::test]
async fn queued_messages_leave_together_and_arrive_in_order() {
    bounded(async {
        let (addr, _server) = echo_server(server_config(false), 1).await;
        let (mut client, _) = connect(addr, false).await;
        for i in 0..100 {
            client.queue(Message::text(format!("m{i}"))).unwrap();
        }
        assert!(client.pending_bytes() > 0);
        client.flush().await.unwrap();
        assert_eq!(client.pending_bytes(), 0);
        for i in 0..100 {
            let m = client.recv().await.unwrap().unwrap();
            assert_eq!(m.as_text(), Some(format!("m{i}").as_str()));
        }
        client.close(CloseCode::NORMAL, "").await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn send_waits_while_the_peer_does_not_read() {
    bounded(async {
        // A server that completes the handshake and then never reads.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (park_tx, park_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (socket, _) = ws::accept(stream, &server_config(false)).await.unwrap();
            let _ = park_rx.await;
            drop(socket);
        });
        let (mut client, _) = connect(addr, false).await;
        let high_water = 64 * 1024;
        client.set_high_water_mark(high_water);
        let chunk = Bytes::from(vec![7u8; 16 * 1024]);
        // Far more than socket buffers hold: some sends must wait; none may return with
        // more than the mark queued.
        let sender = async {
            for _ in 0..2000 {
                client.send(Message::Binary(chunk.clone())).await.unwrap();
                assert!(client.pending_bytes() <= high_water);
            }
        };
        tokio::select! {
            () = sender => panic!("2000 x 16 KiB were accepted by a peer that never reads"),
            () = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
        }
        let _ = park_tx.send(());
        server.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn server_close_code_reaches_the_client() {
    bounded(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (mut socket, _) = ws::accept(stream, &server_config(false)).await.unwrap();
            socket
                .close(CloseCode::GOING_AWAY, "restart")
                .await
                .unwrap();
        });
        let (mut client, _) = connect(addr, false).await;
        let m = client.recv().await.unwrap().unwrap();
        assert_eq!(
            m,
            Message::Close(Some(CloseFrame {
                code: CloseCode::GOING_AWAY,
                reason: "restart".into()
            }))
        );
        // The reply goes out and the server closes TCP: the stream ends cleanly.
        assert!(client.recv().await.is_none());
        server.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn bad_handshake_gets_an_http_error() {
    bounded(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            ws::accept(stream, &server_config(false)).await.map(|_| ())
        });
        let mut raw = TcpStream::connect(addr).await.unwrap();
        raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut response = Vec::new();
        raw.read_to_end(&mut response).await.unwrap();
        let text = String::from_utf8_lossy(&response);
        assert!(text.starts_with("HTTP/1.1 4"), "{text}");
        assert!(matches!(
            server.await.unwrap(),
            Err(ws::Error::Handshake(_))
        ));
    })
    .await;
}

#[tokio::test]
async fn peer_vanishing_is_an_error_not_a_clean_end() {
    bounded(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (mut socket, _) = ws::accept(stream, &server_config(false)).await.unwrap();
            let first = socket.recv().await;
            let second = socket.recv().await;
            (first, second)
        });
        let (client, _) = connect(addr, false).await;
        drop(client);
        let (first, second) = server.await.unwrap();
        assert!(matches!(first, Some(Err(ws::Error::Io(_)))), "{first:?}");
        assert!(second.is_none());
    })
    .await;
}

/// A client frame: FIN, the given first-byte flags/opcode, masked with a fixed key.
fn masked_frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let key = [1u8, 2, 3, 4];
    let mut out = vec![first_byte, 0x80 | payload.len() as u8];
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}

#[tokio::test]
async fn messages_before_a_protocol_error_are_still_echoed() {
    bounded(async {
        let (addr, _server) = echo_server(server_config(false), 1).await;
        let mut raw = common::upgraded_raw(addr).await;
        // A valid text message and a frame with RSV2 set, in one write (one read on the
        // server): the text is echoed, then the connection fails with 1002.
        let mut burst = masked_frame(0x81, b"Hello");
        burst.extend(masked_frame(0x80 | 0x20 | 0x1, b"bad"));
        raw.write_all(&burst).await.unwrap();
        assert_eq!(
            common::read_small_frame(&mut raw).await,
            (0x81, b"Hello".to_vec())
        );
        let (first, payload) = common::read_small_frame(&mut raw).await;
        assert_eq!(first, 0x88);
        assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1002);
    })
    .await;
}
