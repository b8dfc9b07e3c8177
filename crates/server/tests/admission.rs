//! The admission hook runs exactly once for every request, whichever path answers it
//! (the connection front's own, or hyper's), before any response byte; a refusal is the
//! answer and nothing of the request happens.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};

use common::{bounded, config, json, raw, read_one, KEY};
use futures_util::{SinkExt, StreamExt};
use switchboard_server::error::ServerError;
use switchboard_server::front::{Admission, Ask, Endpoint};
use switchboard_server::server::{Builder, Running};
use switchboard_server::transport::Kind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

/// What the hook saw of one request.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    method: String,
    path: String,
    endpoint: Endpoint,
}

/// Records every request; refuses those that say `X-Deny: yes`.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Seen>>>);

impl Recorder {
    /// Everything seen since the last call.
    fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Admission for Recorder {
    fn admit(&self, ask: &Ask<'_>) -> Result<(), ServerError> {
        self.0.lock().unwrap().push(Seen {
            method: ask.method().to_string(),
            path: ask.path().to_owned(),
            endpoint: ask.endpoint(),
        });
        if ask.headers().contains_key("x-deny") {
            return Err(ServerError::refused(
                http::StatusCode::FORBIDDEN,
                "denied_by_test",
                "this test refuses the request",
            ));
        }
        Ok(())
    }
}

async fn server(recorder: &Recorder) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    Builder::new(config())
        .admission(recorder.clone())
        .build()
        .unwrap()
        .spawn(listener)
        .unwrap()
}

fn publish(name: &str) -> Endpoint {
    Endpoint::Publish {
        channel: name.into(),
    }
}

fn channel(name: &str, transport: Kind) -> Endpoint {
    Endpoint::Channel {
        channel: name.into(),
        transport: Some(transport),
    }
}

/// Asserts that exactly one request was seen since the last check, and that it was
/// `method path` asking for `endpoint`.
fn seen_once(rec: &Recorder, method: &str, path: &str, endpoint: Endpoint) {
    let seen = rec.take();
    let want = Seen {
        method: method.into(),
        path: path.into(),
        endpoint,
    };
    assert_eq!(seen, [want], "the hook's calls for {method} {path}");
}

/// Opens a streaming response and returns its status once the head arrived.
async fn stream_status(srv: &Running, target: &str, accept: &str) -> u16 {
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let req = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nAccept: {accept}\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    bounded(async {
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let mut chunk = [0u8; 1024];
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0);
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
    let line = String::from_utf8_lossy(&buf);
    line.split(' ').nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn the_hook_runs_once_for_every_kind_of_request() {
    let rec = Recorder::default();
    let srv = server(&rec).await;

    // The five native transports of GET /ch/NAME.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ch/a", srv.addr))
        .await
        .unwrap();
    seen_once(&rec, "GET", "/ch/a", channel("a", Kind::WebSocket));
    ws.close(None).await.unwrap();

    assert_eq!(stream_status(&srv, "/ch/a", "text/event-stream").await, 200);
    seen_once(&rec, "GET", "/ch/a", channel("a", Kind::Sse));
    assert_eq!(
        stream_status(&srv, "/ch/a?transport=stream", "*/*").await,
        200
    );
    seen_once(&rec, "GET", "/ch/a", channel("a", Kind::Stream));
    let (status, _, _) = raw(&srv, "GET", "/ch/a?transport=longpoll", &[], b"").await;
    assert_eq!(status, 200);
    seen_once(&rec, "GET", "/ch/a", channel("a", Kind::LongPoll));
    let (status, _, _) = raw(&srv, "GET", "/ch/a?transport=poll", &[], b"").await;
    assert_eq!(status, 200);
    seen_once(&rec, "GET", "/ch/a", channel("a", Kind::Poll));

    // A client's publish (hyper: it has a body).
    let (status, _, _) = raw(&srv, "POST", "/ch/a", &[], b"hi").await;
    assert_eq!(status, 200);
    seen_once(&rec, "POST", "/ch/a", publish("a"));

    // Several channels over one HTTP transport.
    let (status, _, _) = raw(
        &srv,
        "GET",
        "/sub?channel=a&channel=b&transport=poll",
        &[],
        b"",
    )
    .await;
    assert_eq!(status, 200);
    let sub = Endpoint::Channels {
        channels: vec!["a".into(), "b".into()],
        transport: Some(Kind::Poll),
    };
    seen_once(&rec, "GET", "/sub", sub);

    // The multiplexed WebSocket.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", srv.addr))
        .await
        .unwrap();
    ws.send(Message::text(r#"{"id":1,"op":"ping"}"#))
        .await
        .unwrap();
    let reply = bounded(ws.next()).await.unwrap().unwrap();
    assert!(reply.to_text().unwrap().contains("\"id\":1"), "{reply:?}");
    seen_once(&rec, "GET", "/ws", Endpoint::Multiplexed);
    ws.close(None).await.unwrap();

    // The backend API and a page.
    let auth = format!("Bearer {KEY}");
    let (status, _, _) = raw(
        &srv,
        "GET",
        "/api/channels",
        &[("Authorization", &auth)],
        b"",
    )
    .await;
    assert_eq!(status, 200);
    seen_once(&rec, "GET", "/api/channels", Endpoint::Api);
    let (status, _, _) = raw(&srv, "GET", "/healthz", &[], b"").await;
    assert_eq!(status, 200);
    seen_once(&rec, "GET", "/healthz", Endpoint::Other);
    srv.shutdown().await;
}

#[tokio::test]
async fn on_a_keep_alive_connection_each_request_is_checked_once_on_either_path() {
    let rec = Recorder::default();
    let srv = server(&rec).await;
    let poll = "GET /ch/k?transport=poll HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let post = "POST /ch/k HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\nhi";

    // The front answers the poll itself, then hands the connection to hyper for the POST.
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(poll.as_bytes()).await.unwrap();
    assert_eq!(read_one(&mut s, &mut Vec::new()).await.0, 200);
    seen_once(&rec, "GET", "/ch/k", channel("k", Kind::Poll));
    s.write_all(post.as_bytes()).await.unwrap();
    assert_eq!(read_one(&mut s, &mut Vec::new()).await.0, 200);
    seen_once(&rec, "POST", "/ch/k", publish("k"));

    // hyper serves the rest of a connection that began with a POST: a poll, then a
    // WebSocket upgrade, whose stream hyper hands back.
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(post.as_bytes()).await.unwrap();
    let (status, _, body) = read_one(&mut s, &mut Vec::new()).await;
    assert_eq!(status, 200);
    let cursor = json(&body)["cursor"].as_str().unwrap().to_owned();
    seen_once(&rec, "POST", "/ch/k", publish("k"));
    s.write_all(poll.as_bytes()).await.unwrap();
    assert_eq!(read_one(&mut s, &mut Vec::new()).await.0, 200);
    seen_once(&rec, "GET", "/ch/k", channel("k", Kind::Poll));
    let upgrade = format!(
        "GET /ch/k?since={cursor} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(upgrade.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    bounded(async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let mut one = [0u8; 1];
            assert_eq!(s.read(&mut one).await.unwrap(), 1);
            head.push(one[0]);
        }
    })
    .await;
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
    seen_once(&rec, "GET", "/ch/k", channel("k", Kind::WebSocket));
    // The upgraded stream carries what is published next, as a server text frame.
    let (status, _, _) = raw(&srv, "POST", "/ch/k", &[], b"after").await;
    assert_eq!(status, 200);
    rec.take();
    let mut frame = [0u8; 2];
    bounded(s.read_exact(&mut frame)).await.unwrap();
    assert_eq!(frame[0], 0x81, "a final text frame");
    let mut payload = vec![0u8; usize::from(frame[1] & 0x7f)];
    bounded(s.read_exact(&mut payload)).await.unwrap();
    let text = String::from_utf8(payload).unwrap();
    assert!(text.contains("\"after\""), "{text}");
    drop(s);
    assert!(srv.shutdown().await, "every connection left");
}

#[tokio::test]
async fn a_refusal_is_the_answer_and_nothing_of_the_request_happens() {
    let rec = Recorder::default();
    let srv = server(&rec).await;
    let evil = [("X-Deny", "yes")];

    for (method, target, extra) in [
        ("GET", "/ch/r", &[("Accept", "text/event-stream")][..]),
        ("GET", "/ch/r?transport=longpoll", &[][..]),
        ("POST", "/ch/r", &[][..]),
        (
            "GET",
            "/ch/r",
            &[
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                ("Sec-WebSocket-Version", "13"),
            ][..],
        ),
    ] {
        let headers: Vec<_> = evil.iter().chain(extra).copied().collect();
        let (status, head, body) = raw(&srv, method, target, &headers, b"x").await;
        assert_eq!(status, 403, "{method} {target}: {head}");
        let body = json(&body);
        assert_eq!(body["error"], "denied_by_test", "{method} {target}");
        assert_eq!(rec.take().len(), 1, "{method} {target}");
    }
    // Nothing was published and nobody subscribed.
    assert_eq!(srv.state.hub.subscriber_count("r"), 0);
    let (status, _, body) = raw(&srv, "GET", "/ch/r?transport=poll&since=0:0", &[], b"").await;
    assert!(status == 200 || status == 400, "{status}");
    if status == 200 {
        assert_eq!(json(&body)["messages"].as_array().unwrap().len(), 0);
    }
    let history = srv.state.hub.history("r", None, Some(10)).await.unwrap();
    assert!(
        matches!(&history, switchboard_hub::HistoryAnswer::Gap { messages, .. } if messages.is_empty()),
        "{history:?}"
    );
    srv.shutdown().await;
}
