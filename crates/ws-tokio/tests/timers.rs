//! The codec's timers driven for real: a ping after `ping_interval` of silence, a close
//! 1001 after `idle_timeout`, and TCP closed after `close_timeout` when the peer never
//! answers (even when it does not read, so our close frame is never written) — with the
//! connection's own tokio timer and with a shared [`Wheel`].
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::bounded;
use switchboard_ws_tokio::{self as ws, AcceptOptions, ServerConfig, Wheel};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

fn timed_config() -> ServerConfig {
    ServerConfig {
        accept: AcceptOptions::default(),
        connection: ws::Config {
            ping_interval: Some(Duration::from_millis(200)),
            idle_timeout: Some(Duration::from_millis(700)),
            close_timeout: Duration::from_millis(300),
            ..ws::Config::default()
        },
        high_water_mark: 0,
    }
}

/// A silent raw client gets pings, then an idle-timeout close, then TCP's end; the server
/// side's `recv` ends without a message.
async fn silent_peer_is_pinged_then_closed(wheel: Option<Wheel>) {
    bounded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (mut socket, _) = ws::accept(stream, &timed_config()).await.unwrap();
            if let Some(wheel) = wheel {
                socket.set_wheel(wheel);
            }
            let mut got = Vec::new();
            while let Some(m) = socket.recv().await {
                got.push(m);
            }
            got
        });
        let mut raw = common::upgraded_raw(addr).await;
        // Pings (0x89, empty) until the idle timeout's close (0x88, 1001).
        let mut pings = 0;
        let close = loop {
            let (first, payload) = common::read_small_frame(&mut raw).await;
            match first {
                0x89 => {
                    assert!(payload.is_empty());
                    pings += 1;
                }
                0x88 => break payload,
                other => panic!("unexpected frame {other:#x}"),
            }
        };
        assert!(pings >= 1, "a ping before the idle timeout");
        assert_eq!(u16::from_be_bytes([close[0], close[1]]), 1001);
        assert_eq!(&close[2..], b"idle timeout");
        // We never answer the close: the close timeout ends TCP.
        let mut rest = Vec::new();
        raw.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "nothing after the close frame");
        let got = server.await.unwrap();
        assert!(got.is_empty(), "the server received nothing: {got:?}");
    })
    .await;
}

#[tokio::test]
async fn own_timer_pings_and_closes_a_silent_peer() {
    silent_peer_is_pinged_then_closed(None).await;
}

#[tokio::test]
async fn wheel_pings_and_closes_a_silent_peer() {
    silent_peer_is_pinged_then_closed(Some(Wheel::new(Duration::from_millis(50)))).await;
}

/// A peer that never reads: our close frame cannot even be written, and the close
/// timeout still ends the connection (TCP shut down with output left queued).
async fn close_gives_up_on_a_peer_that_does_not_read(wheel: Option<Wheel>) {
    bounded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut config = timed_config();
            config.connection.ping_interval = None;
            config.connection.idle_timeout = None;
            let (mut socket, _) = ws::accept(stream, &config).await.unwrap();
            if let Some(wheel) = wheel {
                socket.set_wheel(wheel);
            }
            // Far more than loopback's socket buffers hold; one buffer, shared.
            let chunk = bytes::Bytes::from(vec![7u8; 1 << 20]);
            for _ in 0..64 {
                socket.queue(ws::Message::Binary(chunk.clone())).unwrap();
            }
            socket.close(ws::CloseCode::NORMAL, "").await.unwrap();
            socket.pending_bytes()
        });
        let raw = common::raw_upgrade_request(addr).await;
        // Never read: the server's close must end by its close timeout alone.
        let left = server.await.unwrap();
        assert!(left > 0, "output was still queued when TCP was shut down");
        drop(raw);
    })
    .await;
}

#[tokio::test]
async fn own_timer_close_gives_up_on_a_peer_that_does_not_read() {
    close_gives_up_on_a_peer_that_does_not_read(None).await;
}

#[tokio::test]
async fn wheel_close_gives_up_on_a_peer_that_does_not_read() {
    close_gives_up_on_a_peer_that_does_not_read(Some(Wheel::new(Duration::from_millis(50)))).await;
}

/// A peer that keeps talking outlives many idle timeouts' worth of time (each input moves
/// the idle deadline later; the armed timer firing early must not end it), and is closed
/// with 1001 once it falls silent (it never answers pings, which would count as input).
#[tokio::test]
async fn own_timer_idle_timeout_follows_the_last_input() {
    use tokio::io::AsyncWriteExt;
    bounded(async {
        let (addr, server) = common::echo_server(timed_config(), 1).await;
        let mut raw = common::upgraded_raw(addr).await;
        // 1.5 s of traffic, twice the 700 ms idle timeout, one message every 100 ms.
        for i in 0..15u8 {
            // A masked text frame; the all-zero mask key leaves the payload as it is.
            raw.write_all(&[0x81, 0x82, 0, 0, 0, 0, b'm', b'a' + i])
                .await
                .unwrap();
            let echoed = loop {
                match common::read_small_frame(&mut raw).await {
                    (0x89, _) => {}
                    (0x81, payload) => break payload,
                    (other, _) => panic!("message {i}: frame {other:#x}"),
                }
            };
            assert_eq!(echoed, [b'm', b'a' + i]);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Silent now: pings, then the idle timeout's close.
        let close = loop {
            match common::read_small_frame(&mut raw).await {
                (0x89, _) => {}
                (0x88, payload) => break payload,
                (other, _) => panic!("frame {other:#x}"),
            }
        };
        assert_eq!(u16::from_be_bytes([close[0], close[1]]), 1001);
        drop(raw);
        server.await.unwrap();
    })
    .await;
}
