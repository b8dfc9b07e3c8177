//! Interoperability with tokio-tungstenite, an independent implementation, as the peer.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::{bounded, connect, echo_server, server_config};
use futures_util::{SinkExt, StreamExt};
use switchboard_ws_tokio::{self as ws, CloseCode, CloseFrame, Message};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode as TCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::CloseFrame as TClose;
use tokio_tungstenite::tungstenite::Message as T;

type Peer = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn tungstenite_client(addr: std::net::SocketAddr) -> Peer {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (peer, response) = tokio_tungstenite::client_async(format!("ws://{addr}/x"), stream)
        .await
        .unwrap();
    assert_eq!(response.status(), 101);
    peer
}

/// The next non-control message the peer receives (tungstenite reports pongs too).
async fn next(peer: &mut Peer) -> T {
    peer.next().await.unwrap().unwrap()
}

#[tokio::test]
async fn our_server_echoes_to_tungstenite() {
    bounded(async {
        let (addr, server) = echo_server(server_config(true), 1).await;
        let mut peer = tungstenite_client(addr).await;

        peer.send(T::text("hello")).await.unwrap();
        assert_eq!(next(&mut peer).await, T::text("hello"));
        let blob: Vec<u8> = (0..200_000u32).map(|i| (i * 7) as u8).collect();
        peer.send(T::binary(blob.clone())).await.unwrap();
        assert_eq!(next(&mut peer).await, T::binary(blob));

        // A text message in three fragments comes back whole.
        for (part, op, fin) in [
            ("frag", OpCode::Data(Data::Text), false),
            ("men", OpCode::Data(Data::Continue), false),
            ("ted", OpCode::Data(Data::Continue), true),
        ] {
            peer.send(T::Frame(Frame::message(Bytes::from(part), op, fin)))
                .await
                .unwrap();
        }
        assert_eq!(next(&mut peer).await, T::text("fragmented"));

        // Pings are answered by the codec, with the same payload, without any send.
        peer.send(T::Ping(Bytes::from_static(b"p1"))).await.unwrap();
        assert_eq!(next(&mut peer).await, T::Pong(Bytes::from_static(b"p1")));

        peer.close(Some(TClose {
            code: TCode::from(4000),
            reason: "bye".into(),
        }))
        .await
        .unwrap();
        match next(&mut peer).await {
            T::Close(Some(f)) => assert_eq!(u16::from(f.code), 4000),
            other => panic!("expected the close echo, got {other:?}"),
        }
        assert!(peer.next().await.is_none());
        let lasts = server.await.unwrap();
        assert_eq!(
            lasts[0],
            Some(Message::Close(Some(CloseFrame {
                code: CloseCode::new(4000),
                reason: "bye".into()
            })))
        );
    })
    .await;
}

#[tokio::test]
async fn invalid_utf8_from_tungstenite_is_closed_with_1007() {
    bounded(async {
        let (addr, _server) = echo_server(server_config(false), 1).await;
        let mut peer = tungstenite_client(addr).await;
        let bad = Frame::message(
            Bytes::from_static(b"ok \xff\xfe"),
            OpCode::Data(Data::Text),
            true,
        );
        peer.send(T::Frame(bad)).await.unwrap();
        match next(&mut peer).await {
            T::Close(Some(f)) => assert_eq!(u16::from(f.code), 1007),
            other => panic!("expected close 1007, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn our_client_talks_to_a_tungstenite_server() {
    bounded(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut peer = tokio_tungstenite::accept_async(stream).await.unwrap();
            let mut seen = Vec::new();
            while let Some(Ok(m)) = peer.next().await {
                match m {
                    T::Text(_) | T::Binary(_) => peer.send(m).await.unwrap(),
                    T::Close(f) => {
                        seen.push(f.map(|f| u16::from(f.code)));
                    }
                    _ => {}
                }
            }
            seen
        });
        let (mut client, response) = connect(addr, true).await;
        // tungstenite does not implement permessage-deflate: the offer is declined.
        assert!(response.deflate.is_none());
        client.send(Message::text("über")).await.unwrap();
        assert_eq!(client.recv().await.unwrap().unwrap(), Message::text("über"));
        let payload = Bytes::from(vec![42u8; 70_000]);
        client.send(Message::Binary(payload.clone())).await.unwrap();
        assert_eq!(
            client.recv().await.unwrap().unwrap(),
            Message::Binary(payload)
        );
        client
            .send(Message::Ping(Bytes::from_static(b"hi")))
            .await
            .unwrap();
        assert_eq!(
            client.recv().await.unwrap().unwrap(),
            Message::Pong(Bytes::from_static(b"hi"))
        );
        client.close(CloseCode::new(3001), "done").await.unwrap();
        assert!(client.recv().await.is_none());
        assert_eq!(server.await.unwrap(), vec![Some(3001)]);
    })
    .await;
}

#[tokio::test]
async fn our_server_handles_many_tungstenite_connections() {
    bounded(async {
        let (addr, server) = echo_server(server_config(false), 5).await;
        for i in 0..5 {
            let mut peer = tungstenite_client(addr).await;
            peer.send(T::text(format!("n{i}"))).await.unwrap();
            assert_eq!(next(&mut peer).await, T::text(format!("n{i}")));
            peer.close(None).await.unwrap();
            while peer.next().await.is_some() {}
        }
        let lasts = server.await.unwrap();
        assert_eq!(lasts.len(), 5);
        assert!(lasts.iter().all(|l| *l == Some(Message::Close(None))));
        let _ = ws::DEFAULT_HIGH_WATER_MARK;
    })
    .await;
}
