//! Idle native WebSockets and streaming responses (SSE, HTTP streaming) park (`crate::park`: no task and no place in tokio's poller
//! while they wait) and lose nothing for it: the fan-out's writes reach them parked, a
//! ping, a client's publish, a closing handshake, a peer gone and the server's
//! shutdown each get the answer a connection with a task gets. What is parked is read
//! from `/metrics` (`switchboard_connections_parked`, one counter for the process: this
//! file's tests take turns).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::raw_ws::RawWs;
use common::{bounded, close_of, config, raw, subscribers_become, url, ws_json, ws_open, Ws, KEY};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use switchboard_client::ApiClient;
use switchboard_server::server::Running;
use switchboard_ws::OpCode;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

/// `switchboard_connections_parked` now.
async fn parked(r: &Running) -> u64 {
    let auth = format!("Bearer {KEY}");
    let (status, _, body) = raw(r, "GET", "/metrics", &[("authorization", &auth)], b"").await;
    assert_eq!(status, 200);
    String::from_utf8(body)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("switchboard_connections_parked "))
        .unwrap()
        .parse()
        .unwrap()
}

/// Waits (bounded) until `n` connections are parked.
async fn parked_become(r: &Running, n: u64) {
    bounded(async {
        while parked(r).await != n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// The next frame that is not a ping (the server's own pings may come at any time).
async fn next_frame(ws: &mut Ws) -> Message {
    loop {
        match bounded(ws.next()).await.unwrap().unwrap() {
            Message::Ping(_) => {}
            m => return m,
        }
    }
}

async fn publish(r: &Running, channel: &str, n: usize) {
    let api = ApiClient::new(&url(r), Some(KEY.into())).unwrap();
    for i in 1..=n {
        api.publish(channel, json!({ "n": i })).await.unwrap();
    }
}

/// One test at a time: they read one counter.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn idle_websockets_park_and_get_every_answer_a_task_would_give() {
    let _turn = TURN.lock().await;
    let r = common::server_with(config()).await;
    let mut subs = Vec::new();
    for _ in 0..4 {
        subs.push(ws_open(&r, "/ch/parking").await.0);
    }
    subscribers_become(&r, "parking", 4).await;
    parked_become(&r, 4).await;

    // Messages: written by the fan-out to the parked sockets, every one, in order, and
    // nobody needs its task back for them.
    publish(&r, "parking", 50).await;
    for ws in &mut subs {
        for i in 1..=50u64 {
            let m = ws_json(ws).await;
            assert_eq!(m["offset"], i, "{m}");
            assert_eq!(m["data"]["n"], i, "{m}");
        }
    }
    assert_eq!(parked(&r).await, 4);

    // A ping: answered, without the connection leaving the lot.
    subs[0]
        .send(Message::Ping(b"anyone?".to_vec().into()))
        .await
        .unwrap();
    assert_eq!(
        next_frame(&mut subs[0]).await,
        Message::Pong(b"anyone?".to_vec().into())
    );
    assert_eq!(parked(&r).await, 4);
    publish(&r, "parking", 1).await;
    for ws in &mut subs {
        assert_eq!(ws_json(ws).await["offset"], 51);
    }

    // A client's publish (this namespace lets clients publish): it reaches everyone, and
    // its connection keeps its task from then on (until one of its deadlines passes).
    subs[1]
        .send(Message::Text(r#"{"from":"a client"}"#.into()))
        .await
        .unwrap();
    for ws in &mut subs {
        let m = ws_json(ws).await;
        assert_eq!(
            (&m["offset"], &m["data"]["from"]),
            (&52.into(), &"a client".into()),
            "{m}"
        );
    }
    parked_become(&r, 3).await;

    // The client's closing handshake: answered.
    subs[2].send(Message::Close(None)).await.unwrap();
    assert!(matches!(next_frame(&mut subs[2]).await, Message::Close(_)));

    // A peer that just goes: the server notices and lets go of its subscription.
    drop(subs.remove(3));
    drop(subs.remove(2));
    subscribers_become(&r, "parking", 2).await;
    parked_become(&r, 1).await;

    // Shutdown: the parked connection is woken and told the server restarts (1012), as is
    // the one with a task.
    let stopping = tokio::spawn(r.shutdown());
    for ws in &mut subs {
        assert_eq!(close_of(ws).await.code, CloseCode::Restart);
    }
    drop(subs);
    assert!(
        bounded(stopping).await.unwrap(),
        "every connection left in the drain"
    );
}

/// The server's pings come to a parked connection from its timer (through the wheel, with
/// the lot's waker): one that answers them stays, parked; one that answers nothing is
/// closed (1001) after twice the interval.
#[tokio::test]
async fn parked_websockets_are_pinged_and_the_silent_are_closed() {
    let _turn = TURN.lock().await;
    let mut c = config();
    c.limits.ws_ping_ms = 300;
    let r = common::server_with(c).await;
    let (mut answers, _) = ws_open(&r, "/ch/pings").await;
    let (mut silent, _) = RawWs::open(r.addr, "/ch/pings", "").await;
    subscribers_become(&r, "pings", 2).await;
    parked_become(&r, 2).await;

    // The one that answers (tungstenite pongs as it reads, all along): counts the pings,
    // hands on the messages.
    let (pinged, mut pings) = tokio::sync::watch::channel(0u32);
    let (texts, mut received) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(m)) = answers.next().await {
            match m {
                Message::Ping(_) => pinged.send_modify(|n| *n += 1),
                Message::Text(t) => {
                    let _ = texts.send(t.to_string());
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    });

    // The silent one: pinged, then closed for its silence.
    let mut silent_pings = 0;
    let code = loop {
        let (h, bytes) = silent.frame().await;
        match h.opcode {
            OpCode::Ping => silent_pings += 1,
            OpCode::Close => break u16::from_be_bytes([bytes[2], bytes[3]]),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(silent_pings >= 1, "pinged before it was closed");
    assert_eq!(code, 1001);
    drop(silent);

    // The other: pinged again and again, and still there, parked, well past twice the
    // interval.
    bounded(pings.wait_for(|n| *n >= 8)).await.unwrap();
    subscribers_become(&r, "pings", 1).await;
    assert_eq!(parked(&r).await, 1);
    publish(&r, "pings", 1).await;
    let m: serde_json::Value =
        serde_json::from_str(&bounded(received.recv()).await.unwrap()).unwrap();
    assert_eq!(m["offset"], 1, "{m}");
}

/// A streaming subscriber (SSE, or HTTP streaming) on a raw socket, and what it read.
struct Reader {
    stream: tokio::net::TcpStream,
    read: String,
}

impl Reader {
    async fn open(r: &Running, request: &str) -> Self {
        use tokio::io::AsyncWriteExt;
        let mut stream = tokio::net::TcpStream::connect(r.addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        Self {
            stream,
            read: String::new(),
        }
    }

    /// Reads (bounded) until `done` holds of everything read so far.
    async fn until(&mut self, done: impl Fn(&str) -> bool) {
        use tokio::io::AsyncReadExt;
        bounded(async {
            let mut buf = [0u8; 4096];
            while !done(&self.read) {
                let n = self.stream.read(&mut buf).await.unwrap();
                assert!(n > 0, "ended early after {:?}", self.read);
                self.read.push_str(std::str::from_utf8(&buf[..n]).unwrap());
            }
        })
        .await;
    }

    /// The `n` of every `{"n":…}` payload read, in order.
    fn numbers(&self) -> Vec<u64> {
        self.read
            .split("{\"n\":")
            .skip(1)
            .map(|s| s[..s.find('}').unwrap()].parse().unwrap())
            .collect()
    }

    /// SSE comment heartbeats read.
    fn heartbeats(&self) -> usize {
        self.read.matches("\n:\n").count()
    }
}

/// Idle SSE and HTTP-streaming responses park as well: every event reaches them where
/// they lie (the lot writes it), heartbeats go out from their timers, a peer that goes is
/// let go, and shutdown sends each its farewell and ends its response.
#[tokio::test]
async fn idle_streaming_responses_park_and_get_every_event() {
    let _turn = TURN.lock().await;
    let mut c = config();
    c.limits.sse_heartbeat_ms = 200;
    let r = common::server_with(c).await;
    let sse = "GET /ch/streams HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n";
    let stream = "GET /ch/streams?transport=stream HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let mut subs = Vec::new();
    for request in [sse, sse, sse, stream] {
        subs.push(Reader::open(&r, request).await);
    }
    subscribers_become(&r, "streams", 4).await;
    parked_become(&r, 4).await;

    publish(&r, "streams", 50).await;
    for s in &mut subs {
        s.until(|read| read.contains("{\"n\":50}")).await;
        assert_eq!(s.numbers(), (1..=50).collect::<Vec<_>>());
    }
    assert_eq!(parked(&r).await, 4);

    // Heartbeats, from the timers of parked responses.
    let beats = subs[0].heartbeats();
    subs[0]
        .until(|read| read.matches("\n:\n").count() >= beats + 3)
        .await;
    assert_eq!(parked(&r).await, 4);

    // A peer that goes.
    drop(subs.remove(1));
    subscribers_become(&r, "streams", 3).await;
    parked_become(&r, 3).await;

    // Shutdown: each is told to reconnect (SSE) and its response ends.
    let stopping = tokio::spawn(r.shutdown());
    for s in &mut subs[..2] {
        s.until(|read| read.contains("event: reconnect") && read.ends_with("0\r\n\r\n"))
            .await;
    }
    subs[2].until(|read| read.ends_with("0\r\n\r\n")).await;
    drop(subs);
    assert!(
        bounded(stopping).await.unwrap(),
        "every connection left in the drain"
    );
}
