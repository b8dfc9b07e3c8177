//! Connections whose first request is for SSE or HTTP streaming, and polls and
//! long-polls of keep-alive connections, are answered without hyper: these tests speak
//! raw HTTP/1.1 to check the exact bytes, the cases that must stay with hyper (keep-alive
//! after a first request of another kind, pipelining, upgrades), and what ends such a
//! connection (shutdown, backend disconnect, the peer going away).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{bounded, json, parse_response, server, url, KEY};
use switchboard_client::Client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A raw response read incrementally: the head once complete, the body de-chunked.
struct Raw {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    async fn open(srv: &switchboard_server::server::Running, request: &str) -> Self {
        let mut s = TcpStream::connect(srv.addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        Self { s, buf: Vec::new() }
    }

    /// Reads until `done(buf)` holds; panics at EOF before that.
    async fn read_until(&mut self, done: impl Fn(&[u8]) -> bool) {
        bounded(async {
            while !done(&self.buf) {
                let mut chunk = [0u8; 4096];
                let n = self.s.read(&mut chunk).await.unwrap();
                assert!(n > 0, "EOF; got {:?}", String::from_utf8_lossy(&self.buf));
                self.buf.extend_from_slice(&chunk[..n]);
            }
        })
        .await;
    }

    /// The response head (lines, without the blank line).
    async fn head(&mut self) -> Vec<String> {
        self.read_until(|b| find(b, b"\r\n\r\n").is_some()).await;
        let end = find(&self.buf, b"\r\n\r\n").unwrap();
        let head = String::from_utf8(self.buf[..end].to_vec()).unwrap();
        self.buf.drain(..end + 4);
        head.split("\r\n").map(str::to_owned).collect()
    }

    /// Reads until the raw (chunked) body contains `needle`.
    async fn body_until(&mut self, needle: &str) {
        self.read_until(|b| find(b, needle.as_bytes()).is_some())
            .await;
    }

    /// Reads to EOF; returns everything read since the head.
    async fn until_eof(mut self) -> Vec<u8> {
        bounded(self.s.read_to_end(&mut self.buf)).await.unwrap();
        self.buf
    }
}

/// The data of complete chunks in `b` (panics on a malformed chunk).
fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(nl) = find(b, b"\r\n") {
        let n = usize::from_str_radix(std::str::from_utf8(&b[..nl]).unwrap(), 16).unwrap();
        let data = &b[nl + 2..];
        if data.len() < n + 2 {
            break;
        }
        assert_eq!(&data[n..n + 2], b"\r\n", "chunk end");
        out.extend_from_slice(&data[..n]);
        b = &data[n + 2..];
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn header<'a>(head: &'a [String], name: &str) -> Option<&'a str> {
    head.iter().find_map(|l| {
        let (n, v) = l.split_once(": ")?;
        n.eq_ignore_ascii_case(name).then_some(v)
    })
}

fn sse_get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n")
}

/// Waits (bounded) until the server has `n` registered streaming clients.
async fn clients_become(srv: &switchboard_server::server::Running, n: usize) {
    bounded(async {
        while srv.state.clients.len() != n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn sse_head_and_events_are_written_by_the_server() {
    let srv = server().await;
    let client = Client::new(&url(&srv)).unwrap();
    let first = client.publish("tk", "1", None).await.unwrap();
    let second = client.publish("tk", "2", None).await.unwrap();
    let mut sse = Raw::open(&srv, &sse_get(&format!("/ch/tk?since={first}"))).await;
    let head = sse.head().await;
    assert_eq!(head[0], "HTTP/1.1 200 OK");
    let names: Vec<&str> = head[1..]
        .iter()
        .map(|l| l.split_once(": ").unwrap().0)
        .collect();
    assert_eq!(
        names,
        [
            "content-type",
            "cache-control",
            "x-accel-buffering",
            "x-content-type-options",
            "x-switchboard-client",
            "connection",
            "transfer-encoding",
            "date"
        ]
    );
    assert_eq!(
        header(&head, "content-type"),
        Some("text/event-stream; charset=utf-8")
    );
    assert_eq!(header(&head, "transfer-encoding"), Some("chunked"));
    assert_eq!(header(&head, "connection"), Some("close"));
    assert!(header(&head, "date").unwrap().ends_with(" GMT"));
    // The retry hint and the message after `since`, each in a well-formed chunk.
    sse.body_until(&format!("id: {second}\n")).await;
    sse.read_until(|b| b.ends_with(b"\r\n")).await;
    let body = String::from_utf8(dechunk(&sse.buf)).unwrap();
    assert!(body.starts_with("retry: 2000\n\n"), "{body:?}");
    assert!(body.contains("data: 2\n"), "{body:?}");
    assert!(!body.contains("data: 1\n"), "{body:?}");
    // A live message.
    let third = client.publish("tk", "3", None).await.unwrap();
    sse.body_until(&format!("id: {third}\n")).await;
    assert!(srv.shutdown().await);
}

#[tokio::test]
async fn stream_transport_opens_with_the_prelude() {
    let srv = server().await;
    let mut st = Raw::open(
        &srv,
        "GET /sub?channel=tk2&transport=stream HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .await;
    let head = st.head().await;
    assert_eq!(head[0], "HTTP/1.1 200 OK");
    assert_eq!(
        header(&head, "content-type"),
        Some("application/x-ndjson; charset=utf-8")
    );
    assert_eq!(header(&head, "transfer-encoding"), Some("chunked"));
    let prelude = switchboard_proto::stream_prelude();
    let size_line = format!("{:X}\r\n", prelude.len());
    st.read_until(|b| b.len() >= size_line.len() + prelude.len() + 2)
        .await;
    assert!(st.buf.starts_with(size_line.as_bytes()));
    assert!(st.buf[size_line.len()..size_line.len() + prelude.len()] == prelude[..]);
    Client::new(&url(&srv))
        .unwrap()
        .publish("tk2", "7", None)
        .await
        .unwrap();
    st.body_until("\"channel\":\"tk2\"").await;
    assert!(srv.shutdown().await);
}

/// A request the router refuses is answered as through hyper: same status, type and body.
#[tokio::test]
async fn refused_streaming_requests_get_the_usual_error() {
    let srv = server().await;
    for path in [
        "/ch/bad!name",
        "/ch/ok?since=not-a-cursor",
        "/sub?transport=sse",
        "/sub?channel=a&channel=a&transport=stream",
    ] {
        let mut taken = Raw::open(&srv, &sse_get(path)).await;
        let head = taken.head().await;
        assert_eq!(header(&head, "connection"), Some("close"), "{path}");
        let body = taken.until_eof().await;
        // The same request with a (zero) Content-Length is hyper's.
        let via_hyper = common::raw(
            &srv,
            "GET",
            path,
            &[("Accept", "text/event-stream"), ("Content-Length", "0")],
            b"",
        )
        .await;
        assert_eq!(
            head[0],
            format!("HTTP/1.1 {} {}", via_hyper.0, reason(via_hyper.0))
        );
        assert!(via_hyper.0 >= 400, "{path}: {}", via_hyper.0);
        assert_eq!(body, via_hyper.2, "{path}");
        assert_eq!(
            header(&head, "content-type"),
            Some("application/json"),
            "{path}"
        );
        assert_eq!(
            header(&head, "content-length"),
            Some(body.len().to_string().as_str())
        );
        assert!(json(&body)["error"].is_string());
    }
    assert!(srv.shutdown().await);
}

fn reason(status: u16) -> &'static str {
    http::StatusCode::from_u16(status)
        .unwrap()
        .canonical_reason()
        .unwrap()
}

/// A first request that is not streaming stays with hyper, with keep-alive: a POST, then
/// a health check and an SSE request on the same connection (hyper's framing, no close).
#[tokio::test]
async fn keep_alive_connections_stay_with_hyper() {
    let srv = server().await;
    let mut c = Raw::open(
        &srv,
        "POST /ch/ka HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1\r\n\r\n5",
    )
    .await;
    let head = c.head().await;
    assert!(head[0].starts_with("HTTP/1.1 20"), "{head:?}");
    assert_eq!(header(&head, "connection"), None);
    let len: usize = header(&head, "content-length").unwrap().parse().unwrap();
    c.read_until(|b| b.len() >= len).await;
    c.buf.drain(..len);
    c.s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let head = c.head().await;
    assert_eq!(head[0], "HTTP/1.1 200 OK");
    c.read_until(|b| b.len() >= 2).await;
    assert_eq!(&c.buf[..2], b"ok");
    c.buf.drain(..2);
    let (_, _, first) = common::raw(&srv, "GET", "/ch/ka", &[], b"").await;
    let since = json(&first)["cursor"].as_str().unwrap().to_owned();
    c.s.write_all(b"POST /ch/ka HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1\r\n\r\n6")
        .await
        .unwrap();
    let head = c.head().await;
    let len: usize = header(&head, "content-length").unwrap().parse().unwrap();
    c.read_until(|b| b.len() >= len).await;
    c.buf.drain(..len);
    c.s.write_all(sse_get(&format!("/ch/ka?since={since}")).as_bytes())
        .await
        .unwrap();
    let head = c.head().await;
    assert_eq!(head[0], "HTTP/1.1 200 OK");
    assert_eq!(header(&head, "connection"), None, "served by hyper");
    assert_eq!(header(&head, "transfer-encoding"), Some("chunked"));
    c.body_until("data: 6\n").await;
    assert!(srv.shutdown().await);
}

impl Raw {
    /// The next response of a keep-alive connection: its head and its
    /// `content-length`-delimited body.
    async fn response(&mut self) -> (Vec<String>, Vec<u8>) {
        let head = self.head().await;
        let len: usize = header(&head, "content-length")
            .expect("a delimited body")
            .parse()
            .unwrap();
        self.read_until(|b| b.len() >= len).await;
        let body = self.buf.drain(..len).collect();
        (head, body)
    }

    async fn send(&mut self, request: &str) {
        self.s.write_all(request.as_bytes()).await.unwrap();
    }
}

fn get(target: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n")
}

/// Polls and long-polls are answered by the server itself, one after another on one
/// keep-alive connection (no `connection: close`), the same way hyper answers them;
/// a request of another kind hands the rest of the connection to hyper; `Connection:
/// close` is honoured; shutdown closes a connection idle between requests.
#[tokio::test]
async fn polls_and_long_polls_are_exchanges_on_a_keep_alive_connection() {
    let srv = server().await;
    let client = Client::new(&url(&srv)).unwrap();
    let c1 = client
        .publish("ex", "1", Some("application/json"))
        .await
        .unwrap();

    let mut c = Raw::open(&srv, &get("/ch/ex?transport=poll")).await;
    let (head, body) = c.response().await;
    assert_eq!(head[0], "HTTP/1.1 200 OK");
    assert_eq!(header(&head, "connection"), None, "kept alive");
    assert_eq!(
        json(&body)["cursor"].as_str(),
        Some(c1.to_string().as_str())
    );

    // A long-poll on the same connection is held until the next message.
    c.send(&get(&format!("/ch/ex?transport=longpoll&since={c1}")))
        .await;
    common::subscribers_become(&srv, "ex", 1).await;
    let c2 = client
        .publish("ex", "2", Some("application/json"))
        .await
        .unwrap();
    let (head, body) = c.response().await;
    assert_eq!(header(&head, "connection"), None, "kept alive");
    let v = json(&body);
    assert_eq!(v["messages"][0]["data"], 2, "{v}");
    assert_eq!(v["cursor"].as_str(), Some(c2.to_string().as_str()));
    let ours = (head, body);

    // A publish on the same connection goes to hyper, which then serves the rest.
    c.send("POST /ch/ex HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1\r\n\r\n3")
        .await;
    let (head, _) = c.response().await;
    assert!(head[0].starts_with("HTTP/1.1 20"), "{head:?}");
    c.send(&get(&format!("/ch/ex?transport=poll&since={c1}")))
        .await;
    let hypers = c.response().await;
    // The same answer as hyper's: status, headers (but the date) and body; one more
    // message is in history now, so compare the first.
    let without_date = |h: &[String]| -> Vec<String> {
        h.iter()
            .filter(|l| !l.starts_with("date: "))
            .map(|l| {
                if l.starts_with("content-length: ") {
                    "content-length".to_owned()
                } else {
                    l.clone()
                }
            })
            .collect()
    };
    assert_eq!(without_date(&ours.0), without_date(&hypers.0));
    assert_eq!(json(&hypers.1)["messages"][0], json(&ours.1)["messages"][0]);
    assert_eq!(json(&hypers.1)["messages"][1]["data"], 3);

    // `Connection: close` is honoured.
    let mut once = Raw::open(
        &srv,
        "GET /ch/ex?transport=poll HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    let head = once.head().await;
    assert_eq!(header(&head, "connection"), Some("close"));
    let len: usize = header(&head, "content-length").unwrap().parse().unwrap();
    assert_eq!(once.until_eof().await.len(), len, "closed after the body");

    // Shutdown closes a connection that waits for its next request.
    let mut idle = Raw::open(&srv, &get("/ch/ex?transport=poll")).await;
    idle.response().await;
    drop(c);
    let stopping = tokio::spawn(srv.shutdown());
    assert!(idle.until_eof().await.is_empty());
    assert!(bounded(stopping).await.unwrap(), "every connection left");
}

/// A channel name is percent-decoded alike whether the server or hyper read the request
/// (both call the same handler): `a%2Db` is `a-b`, and a name that is not UTF-8 once
/// decoded is the same 400.
#[tokio::test]
async fn channel_names_decode_alike_on_both_paths() {
    let srv = server().await;
    let client = Client::new(&url(&srv)).unwrap();
    let c = client
        .publish("a-b", "1", Some("application/json"))
        .await
        .unwrap();
    for target in ["/ch/a%2Db?transport=poll", "/ch/%FF?transport=poll"] {
        let mut ours = Raw::open(&srv, &get(target)).await;
        let (head, body) = ours.response().await;
        // HTTP/1.0 is never taken over: hyper reads it and the router calls the handler.
        let mut theirs = Raw::open(
            &srv,
            &format!("GET {target} HTTP/1.0\r\nHost: localhost\r\n\r\n"),
        )
        .await;
        let (their_head, their_body) = theirs.response().await;
        assert_eq!(
            head[0],
            their_head[0].replace("HTTP/1.0", "HTTP/1.1"),
            "{target}"
        );
        assert_eq!(json(&body), json(&their_body), "{target}");
        if target.contains("%2D") {
            assert_eq!(json(&body)["cursor"].as_str(), Some(c.to_string().as_str()));
        } else {
            assert!(head[0].starts_with("HTTP/1.1 400"), "{head:?}");
            let message = json(&body).to_string();
            assert!(
                message.contains("cannot read the channel name"),
                "{message}"
            );
        }
    }
    assert!(srv.shutdown().await);
}

/// A held long-poll whose client closes the connection is dropped at once (its hub
/// subscription goes), not held to its timeout; a long-poll followed by a pipelined
/// request is still answered, and then the pipelined one.
#[tokio::test]
async fn a_held_long_poll_whose_client_leaves_is_dropped() {
    let srv = common::server_holding_longpolls(120_000).await;
    let client = Client::new(&url(&srv)).unwrap();
    let c1 = client
        .publish("gone", "1", Some("application/json"))
        .await
        .unwrap();
    let c = Raw::open(
        &srv,
        &get(&format!("/ch/gone?transport=longpoll&since={c1}")),
    )
    .await;
    common::subscribers_become(&srv, "gone", 1).await;
    drop(c);
    common::subscribers_become(&srv, "gone", 0).await;

    let mut c = Raw::open(
        &srv,
        &get(&format!("/ch/gone?transport=longpoll&since={c1}")),
    )
    .await;
    common::subscribers_become(&srv, "gone", 1).await;
    c.send(&get("/ch/gone?transport=poll")).await;
    let c2 = client
        .publish("gone", "2", Some("application/json"))
        .await
        .unwrap();
    let (_, body) = c.response().await;
    assert_eq!(json(&body)["messages"][0]["data"], 2);
    let (_, body) = c.response().await;
    assert_eq!(
        json(&body)["cursor"].as_str(),
        Some(c2.to_string().as_str())
    );
    assert!(srv.shutdown().await);
}

/// A wait on the shared timer wheel that ends early takes its registration out: each
/// long-poll answered with news, and a stream whose client left. (Left behind, each
/// would keep a waker, and its task's memory, until its deadline: 120 s here.)
#[tokio::test]
async fn answered_long_polls_and_ended_streams_leave_nothing_in_the_timer_wheel() {
    let srv = common::server_holding_longpolls(120_000).await;
    let client = Client::new(&url(&srv)).unwrap();
    let mut cursor = client
        .publish("wheel", "0", Some("application/json"))
        .await
        .unwrap();
    let mut c = Raw::open(
        &srv,
        &get(&format!("/ch/wheel?transport=longpoll&since={cursor}")),
    )
    .await;
    for i in 1..=5 {
        common::wheel_holds(&srv, 1).await;
        cursor = client
            .publish("wheel", i.to_string(), Some("application/json"))
            .await
            .unwrap();
        let (_, body) = c.response().await;
        assert_eq!(json(&body)["messages"][0]["data"], i);
        assert_eq!(
            srv.state.clients.wheel().registered(),
            0,
            "after answer {i}"
        );
        c.send(&get(&format!(
            "/ch/wheel?transport=longpoll&since={cursor}"
        )))
        .await;
    }
    common::wheel_holds(&srv, 1).await;
    drop(c);
    common::wheel_holds(&srv, 0).await;

    let mut sse = Raw::open(&srv, &sse_get("/ch/wheel")).await;
    sse.head().await;
    common::wheel_holds(&srv, 1).await;
    drop(sse);
    common::wheel_holds(&srv, 0).await;
    assert!(srv.shutdown().await);
}

/// Bytes after the first head (pipelining) send the connection to hyper.
#[tokio::test]
async fn pipelined_requests_fall_back_to_hyper() {
    let srv = server().await;
    let two = format!(
        "{}GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n",
        sse_get("/ch/pipe")
    );
    let mut c = Raw::open(&srv, &two).await;
    let head = c.head().await;
    assert_eq!(head[0], "HTTP/1.1 200 OK");
    assert_eq!(header(&head, "connection"), None, "served by hyper");
    c.body_until("retry: ").await;
    assert!(srv.shutdown().await);
}

/// Shutdown: the final `reconnect` event, the terminating chunk, then the close.
#[tokio::test]
async fn shutdown_ends_taken_over_streams_cleanly() {
    let srv = server().await;
    let mut sse = Raw::open(&srv, &sse_get("/ch/bye")).await;
    sse.head().await;
    sse.body_until("retry: ").await;
    let mut st = Raw::open(
        &srv,
        "GET /ch/bye?transport=stream HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .await;
    st.head().await;
    clients_become(&srv, 2).await;
    let stopping = tokio::spawn(srv.shutdown());
    let sse_body = String::from_utf8(sse.until_eof().await).unwrap();
    assert!(
        sse_body.ends_with("event: reconnect\ndata: service restart\n\n\r\n0\r\n\r\n"),
        "{sse_body:?}"
    );
    let st_body = String::from_utf8(st.until_eof().await).unwrap();
    assert!(
        st_body
            .ends_with("{\"event\":\"reconnect\",\"reason\":\"service restart\"}\n\r\n0\r\n\r\n"),
        "{st_body:?}"
    );
    assert!(bounded(stopping).await.unwrap(), "every connection left");
}

/// A backend disconnect ends the stream with the `disconnect` farewell.
#[tokio::test]
async fn backend_disconnect_ends_a_taken_over_stream() {
    let srv = server().await;
    let mut sse = Raw::open(&srv, &sse_get("/ch/dc?user=u9")).await;
    let head = sse.head().await;
    let id = header(&head, "x-switchboard-client").unwrap().to_owned();
    let auth = format!("Bearer {KEY}");
    let (status, _, body) = common::raw(
        &srv,
        "POST",
        "/api/disconnect",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        format!("{{\"client\":\"{id}\"}}").as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(json(&body)["disconnected"], 1);
    let body = String::from_utf8(sse.until_eof().await).unwrap();
    assert!(
        body.ends_with("event: disconnect\ndata: disconnected by the server\n\n\r\n0\r\n\r\n"),
        "{body:?}"
    );
    clients_become(&srv, 0).await;
    assert!(srv.shutdown().await);
}

/// A subscriber that closes its connection while idle is dropped at once (no write needed
/// to find out): its registration and its hub subscription go.
#[tokio::test]
async fn an_idle_subscriber_that_leaves_is_dropped() {
    let srv = server().await;
    let mut a = Raw::open(&srv, &sse_get("/ch/gone")).await;
    a.head().await;
    let mut b = Raw::open(
        &srv,
        "GET /ch/gone?transport=stream HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .await;
    b.head().await;
    clients_become(&srv, 2).await;
    assert_eq!(subscribers(&srv, "gone").await, 2);
    // Bytes a client sends after its request are read and dropped; it still gets events.
    a.s.write_all(&[b'x'; 20_000]).await.unwrap();
    Client::new(&url(&srv))
        .unwrap()
        .publish("gone", "1", None)
        .await
        .unwrap();
    a.body_until("data: 1\n").await;
    drop(a);
    clients_become(&srv, 1).await;
    // A reset (unread data, then close) counts as leaving too.
    // Linger 0: the close sends a reset (and does not block, the deprecation's concern).
    #[allow(deprecated)]
    b.s.set_linger(Some(Duration::ZERO)).unwrap();
    drop(b);
    clients_become(&srv, 0).await;
    bounded(async {
        while subscribers(&srv, "gone").await != 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(srv.shutdown().await);
}

async fn subscribers(srv: &switchboard_server::server::Running, channel: &str) -> u64 {
    let (status, _, body) = common::raw(
        srv,
        "GET",
        &format!("/api/channels/{channel}"),
        &[("X-Api-Key", KEY)],
        b"",
    )
    .await;
    if status == 404 {
        return 0;
    }
    assert_eq!(status, 200);
    json(&body)["subscribers"].as_u64().unwrap()
}

/// A connection that sends nothing, or half a head, and closes is not answered; the
/// server stays healthy.
#[tokio::test]
async fn silent_and_truncated_connections_just_close() {
    let srv = server().await;
    for bytes in [&b""[..], b"GET /ch/x?transport=sse HTTP/1.1\r\nHo"] {
        let mut s = TcpStream::connect(srv.addr).await.unwrap();
        s.write_all(bytes).await.unwrap();
        s.shutdown().await.unwrap();
        let mut out = Vec::new();
        bounded(s.read_to_end(&mut out)).await.unwrap();
        if !out.is_empty() {
            // hyper may answer a truncated head with an error status; never a 200.
            let (status, _, _) = parse_response(&out);
            assert!(status >= 400, "{status}");
        }
    }
    let (status, _, body) = common::raw(&srv, "GET", "/healthz", &[], b"").await;
    assert_eq!((status, body), (200, b"ok".to_vec()));
    assert!(srv.shutdown().await);
}
