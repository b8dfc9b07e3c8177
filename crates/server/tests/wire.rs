//! Wire details a browser or proxy relies on, read from raw sockets: the SSE `retry:`
//! hint, heartbeats, `Last-Event-ID` resume, the streaming prelude, and the demo pages.
#![allow(clippy::unwrap_used)]

mod common;

use common::{bounded, raw, read_until, server_with};
use switchboard_client::Client;

fn fast_heartbeats() -> switchboard_server::config::Config {
    let mut c = common::config();
    c.limits.sse_heartbeat_ms = 20;
    c.limits.sse_retry_ms = 1234;
    c
}

#[tokio::test]
async fn sse_retry_hint_and_heartbeat_comments() {
    let srv = server_with(fast_heartbeats()).await;
    let text = read_until(srv.addr, "/ch/hb", "Accept: text/event-stream\r\n", |t| {
        t.matches("\n:\n").count() >= 2
    })
    .await;
    assert!(
        text.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{text}"
    );
    assert!(text.contains("retry: 1234\n"), "{text}");
    assert!(
        text.find("retry:").unwrap() < text.find("\n:\n").unwrap(),
        "retry hint first"
    );
    assert!(srv.shutdown().await);
}

#[tokio::test]
async fn stream_prelude_then_heartbeat_lines() {
    let srv = server_with(fast_heartbeats()).await;
    // Chunked body: the prelude chunk, then one-byte heartbeat chunks ("\n").
    let heartbeat = "\r\n1\r\n\n\r\n";
    let text = read_until(srv.addr, "/ch/hb?transport=stream", "", |t| {
        t.matches(heartbeat).count() >= 2
    })
    .await;
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    let first_chunk = body.split("\r\n").nth(1).unwrap();
    assert_eq!(
        first_chunk,
        format!("{}\n", " ".repeat(2048)),
        "a 2 KiB whitespace prelude first"
    );
    assert!(srv.shutdown().await);
}

#[tokio::test]
async fn sse_last_event_id_wins_over_since() {
    let srv = server_with(common::config()).await;
    let client = Client::new(&common::url(&srv)).unwrap();
    let c: Vec<_> = {
        let mut v = Vec::new();
        for i in 0..4 {
            v.push(
                client
                    .publish("lei", i.to_string(), Some("application/json"))
                    .await
                    .unwrap(),
            );
        }
        v
    };
    // The URL's cursor is older than the browser's Last-Event-ID: the header wins.
    let headers = format!("Accept: text/event-stream\r\nLast-Event-ID: {}\r\n", c[2]);
    let text = read_until(
        srv.addr,
        &format!("/ch/lei?since={}", c[0]),
        &headers,
        |t| t.contains(&format!("id: {}\n", c[3])),
    )
    .await;
    assert!(!text.contains(&format!("id: {}\n", c[1])), "{text}");
    assert!(!text.contains(&format!("id: {}\n", c[2])), "{text}");
    assert!(text.contains("data: 3\n"), "{text}");
    assert!(srv.shutdown().await);
}

#[tokio::test]
async fn demo_pages_are_served() {
    let srv = server_with(common::config()).await;
    let (status, head, body) = raw(&srv, "GET", "/", &[], b"").await;
    let html = String::from_utf8(body).unwrap();
    assert_eq!(status, 200);
    assert!(head
        .to_ascii_lowercase()
        .contains("content-type: text/html"));
    assert!(html.contains("href=\"/demo/chat\"") && html.contains("href=\"/demo/ticker\""));
    for page in ["/demo/chat", "/demo/ticker"] {
        let (status, _, body) = raw(&srv, "GET", page, &[], b"").await;
        let html = String::from_utf8(body).unwrap();
        assert_eq!(status, 200, "{page}");
        // No script is loaded from anywhere: the page's module imports the browser client
        // from this server.
        assert!(!html.contains("<script src"), "{page}");
        assert!(html.contains("from '/switchboard.js'"), "{page}");
    }
    // The ticker publisher is running: a poll from the start finds prices.
    let client = Client::new(&common::url(&srv)).unwrap();
    let mut sub = client
        .subscribe(
            switchboard_client::Transport::Sse,
            &[("ticker:prices", None)],
        )
        .await
        .unwrap();
    let env = bounded(sub.next()).await.unwrap();
    let switchboard_client::ReceivedData::Json(j) = env.data else {
        panic!("{env:?}")
    };
    let quotes: serde_json::Value = serde_json::from_str(&j).unwrap();
    assert!(quotes
        .as_array()
        .unwrap()
        .iter()
        .all(|q| q["price"].as_f64().unwrap() > 0.0));
    drop(sub);
    assert!(srv.shutdown().await);
}

/// The `id:` lines of an SSE text, in order.
fn sse_ids(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn sub_sse_ids_carry_every_channel_cursor_and_resume_them_all() {
    let srv = server_with(common::config()).await;
    let client = Client::new(&common::url(&srv)).unwrap();
    let publish = |ch: &'static str, n: u64| {
        let client = client.clone();
        async move {
            client
                .publish(ch, n.to_string(), Some("application/json"))
                .await
                .unwrap()
        }
    };
    let a0 = publish("ma", 0).await;
    let b0 = publish("mb", 0).await;
    let target = "/sub?channel=ma&channel=mb&transport=sse";
    // The opening sets an id of both start cursors before any event.
    let reader = tokio::spawn(read_until(srv.addr, target, "", |t| {
        t.matches("event: message").count() >= 2
    }));
    common::subscribers_become(&srv, "mb", 1).await;
    let a1 = publish("ma", 1).await;
    let b1 = publish("mb", 1).await;
    let text = bounded(reader).await.unwrap();
    let body = &text[text.find("\r\n\r\n").unwrap()..];
    assert!(
        body.contains(&format!("id: {a0},{b0}\nevent: ready\ndata:\n\n")),
        "an opening event with the start cursors: {body}"
    );
    assert_eq!(
        sse_ids(body),
        [
            format!("{a0},{b0}"),
            format!("{a1},{b0}"),
            format!("{a1},{b1}")
        ],
        "{body}"
    );
    // Dropped; more is published to both; the browser comes back with its last id,
    // which wins over the URL's (none here) and resumes each channel exactly.
    common::subscribers_become(&srv, "mb", 0).await;
    let a2 = publish("ma", 2).await;
    let b2 = publish("mb", 2).await;
    let b3 = publish("mb", 3).await;
    let text = read_until(
        srv.addr,
        &format!("/sub?channel=ma,{a0}&channel=mb&transport=sse"),
        &format!("Last-Event-ID: {a1},{b1}\r\n"),
        |t| t.matches("event: message").count() >= 3,
    )
    .await;
    let body = &text[text.find("\r\n\r\n").unwrap()..];
    assert_eq!(
        sse_ids(body),
        [
            format!("{a1},{b1}"),
            format!("{a2},{b1}"),
            format!("{a2},{b2}"),
            format!("{a2},{b3}"),
        ],
        "{body}"
    );
    assert!(
        !body.contains("\"data\":1}"),
        "nothing before the ids: {body}"
    );
    // An id that does not hold one cursor per channel is refused.
    for bad in [a1.to_string(), format!("{a1},{b1},{b1}"), "x".into()] {
        let (status, _, body) =
            raw(&srv, "GET", target, &[("Last-Event-ID", bad.as_str())], b"").await;
        assert_eq!(status, 400, "{bad}: {}", String::from_utf8_lossy(&body));
    }
    assert!(srv.shutdown().await);
}

#[tokio::test]
async fn sub_sse_heartbeat_is_an_event_native_stays_a_comment() {
    let srv = server_with(fast_heartbeats()).await;
    let text = read_until(srv.addr, "/sub?channel=hb&transport=sse", "", |t| {
        t.matches("event: heartbeat\ndata:\n\n").count() >= 2
    })
    .await;
    assert!(!text.contains("\n:\n"), "{text}");
    assert!(text.contains("retry: 1234\n"), "{text}");
    assert!(srv.shutdown().await);
}

#[tokio::test]
async fn the_browser_client_is_served_with_a_strong_etag() {
    let srv = server_with(common::config()).await;
    let (status, head, body) = raw(&srv, "GET", "/switchboard.js", &[], b"").await;
    assert_eq!(status, 200, "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("content-type: text/javascript"), "{head}");
    assert!(
        lower.contains("cache-control: public, max-age=300"),
        "{head}"
    );
    assert_eq!(body, switchboard_server::sdk::BUNDLE);
    let etag = switchboard_server::sdk::etag();
    assert!(head.contains(&format!("etag: {etag}")), "{head}");
    let (status, head, body) = raw(
        &srv,
        "GET",
        "/switchboard.js",
        &[("If-None-Match", etag)],
        b"",
    )
    .await;
    assert_eq!(status, 304, "{head}");
    assert!(body.is_empty());
    assert!(head.contains(&format!("etag: {etag}")), "{head}");
    // Another version's tag gets the bytes.
    let (status, _, _) = raw(
        &srv,
        "GET",
        "/switchboard.js",
        &[("If-None-Match", "\"0000000000000000\"")],
        b"",
    )
    .await;
    assert_eq!(status, 200);
    // Served without the demos too, and checked like any request (a foreign page's
    // origin is refused).
    let mut c = common::config();
    c.demo = false;
    let bare = server_with(c).await;
    assert_eq!(raw(&bare, "GET", "/switchboard.js", &[], b"").await.0, 200);
    let (status, _, _) = raw(
        &bare,
        "GET",
        "/switchboard.js",
        &[("Origin", "http://evil.example")],
        b"",
    )
    .await;
    assert_eq!(status, 403);
    assert!(bare.shutdown().await);
    assert!(srv.shutdown().await);
}

#[tokio::test]
async fn the_rust_client_reads_sub_sse_past_ready_and_heartbeat_events() {
    let srv = server_with(fast_heartbeats()).await;
    let client = Client::new(&common::url(&srv)).unwrap();
    let mut sub = client
        .subscribe(
            switchboard_client::Transport::Sse,
            &[("rh1", None), ("rh2", None)],
        )
        .await
        .unwrap();
    // Several 20 ms heartbeats go by before the message.
    tokio::time::sleep(std::time::Duration::from_millis(120)).await;
    client
        .publish("rh2", "7".to_owned(), Some("application/json"))
        .await
        .unwrap();
    let env = bounded(sub.next()).await.unwrap();
    assert_eq!(env.channel, "rh2");
    drop(sub);
    assert!(srv.shutdown().await);
}
