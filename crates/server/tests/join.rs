//! Joining with history on every transport: `?last=N` / `?since=last:N` and
//! `?since=oldest` on `/ch/NAME`, `channel=NAME,last:N` / `channel=NAME,oldest` on
//! `/sub`, and `"since"` of the `/ws` subscribe command all deliver the recent messages
//! the channel holds, then live ones, with no `reset` when fewer are held than asked for.
#![allow(clippy::unwrap_used)]

mod common;

use common::{bounded, json, raw, read_until, server_with, ws_json};
use futures_util::SinkExt;
use serde_json::{json, Value};
use switchboard_client::Client;
use switchboard_server::server::Running;
use tokio_tungstenite::tungstenite::Message;

/// A server whose channels keep 5 messages.
async fn server() -> Running {
    let mut c = common::config();
    for ns in c.namespaces.values_mut() {
        ns.history_size = 5;
    }
    server_with(c).await
}

/// Publishes `n` JSON numbers `from..from+n` to `channel`.
async fn publish(srv: &Running, channel: &str, from: u64, n: u64) {
    let client = Client::new(&common::url(srv)).unwrap();
    for i in from..from + n {
        client
            .publish(channel, i.to_string(), Some("application/json"))
            .await
            .unwrap();
    }
}

/// The numbers of the message envelopes in a poll body (and whether it says reset).
fn poll_numbers(body: &Value) -> (Vec<u64>, bool) {
    let ns = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["event"] == "message")
        .map(|m| m["data"].as_u64().unwrap())
        .collect();
    (ns, body["reset"] == true)
}

#[tokio::test]
async fn polls_and_long_polls_answer_with_the_recent_history() {
    let srv = server().await;
    publish(&srv, "j", 1, 8).await; // offsets 1..=8, 4..=8 held
    let cases: &[(&str, &[u64])] = &[
        ("/ch/j?last=2", &[7, 8]),
        ("/ch/j?since=last:2", &[7, 8]),
        ("/ch/j?since=last%3A3&transport=longpoll", &[6, 7, 8]),
        ("/ch/j?last=50&transport=poll", &[4, 5, 6, 7, 8]),
        ("/ch/j?since=oldest", &[4, 5, 6, 7, 8]),
        ("/ch/j?since=oldest&transport=longpoll", &[4, 5, 6, 7, 8]),
        ("/ch/j?last=0", &[]),
    ];
    for &(target, want) in cases {
        let (status, _, body) = raw(&srv, "GET", target, &[], b"").await;
        assert_eq!(status, 200, "{target}");
        assert_eq!(
            poll_numbers(&json(&body)),
            (want.to_vec(), false),
            "{target}"
        );
    }
    // /sub: each channel its own start; cursors say where each goes on.
    publish(&srv, "k", 1, 3).await;
    for transport in ["poll", "longpoll"] {
        let target = format!("/sub?channel=j,last:1&channel=k,oldest&transport={transport}");
        let (status, _, body) = raw(&srv, "GET", &target, &[], b"").await;
        let body = json(&body);
        assert_eq!(status, 200, "{target}: {body}");
        let mut got: Vec<(String, u64)> = body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["channel"].as_str().unwrap().to_owned(),
                    m["data"].as_u64().unwrap(),
                )
            })
            .collect();
        got.sort();
        let want = [("j", 8), ("k", 1), ("k", 2), ("k", 3)].map(|(c, n)| (c.to_owned(), n));
        assert_eq!(got, want, "{target}: {body}");
    }
    // Malformed starts are refused with the cursor error.
    for target in [
        "/ch/j?since=newest",
        "/ch/j?last=x",
        "/ch/j?last=1&since=oldest",
        "/sub?channel=j,last:",
    ] {
        let (status, _, body) = raw(&srv, "GET", target, &[], b"").await;
        assert_eq!(status, 400, "{target}");
        let code = json(&body)["error"].as_str().unwrap().to_owned();
        assert!(
            ["malformed_cursor", "bad_request"].contains(&code.as_str()),
            "{target}: {code}"
        );
    }
    assert!(srv.shutdown().await);
}

/// Numbers of `"data":N` envelopes (or SSE `data: N` lines) in stream text, in order.
fn numbers_in(text: &str, sse_payload_only: bool) -> Vec<u64> {
    if sse_payload_only {
        return text
            .split("event: message\ndata: ")
            .skip(1)
            .map(|rest| rest.split('\n').next().unwrap().parse().unwrap())
            .collect();
    }
    text.split("\"data\":")
        .skip(1)
        .map(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect()
}

#[tokio::test]
async fn streams_start_with_the_recent_history_then_go_live() {
    let srv = server().await;
    let sse = "Accept: text/event-stream\r\n";
    // (target on a channel of 8 messages, 4..=8 held; headers; payload-only SSE; wanted
    // before the live message 100)
    let cases: &[(&str, &str, bool, &[u64])] = &[
        ("/ch/s1?last=3", sse, true, &[6, 7, 8]),
        ("/ch/s2?since=oldest", sse, true, &[4, 5, 6, 7, 8]),
        ("/ch/s3?last=2&transport=stream", "", false, &[7, 8]),
        (
            "/ch/s4?since=oldest&transport=stream",
            "",
            false,
            &[4, 5, 6, 7, 8],
        ),
        ("/sub?channel=s5,last:2&transport=sse", "", false, &[7, 8]),
        (
            "/sub?channel=s6,oldest&transport=stream",
            "",
            false,
            &[4, 5, 6, 7, 8],
        ),
    ];
    for (i, &(target, headers, payload_only, want)) in cases.iter().enumerate() {
        let channel = format!("s{}", i + 1);
        publish(&srv, &channel, 1, 8).await;
        let srv_addr = srv.addr;
        let reader = tokio::spawn(async move {
            read_until(srv_addr, target, headers, |t| {
                numbers_in(t, payload_only).contains(&100)
            })
            .await
        });
        common::subscribers_become(&srv, &channel, 1).await;
        publish(&srv, &channel, 100, 1).await;
        let text = bounded(reader).await.unwrap();
        let mut wanted = want.to_vec();
        wanted.push(100);
        assert_eq!(numbers_in(&text, payload_only), wanted, "{target}: {text}");
        assert!(!text.contains("reset"), "{target}: {text}");
    }
    assert!(srv.shutdown().await);
}

#[tokio::test]
async fn websockets_join_with_history_natively_and_over_ws() {
    let srv = server().await;
    publish(&srv, "w", 1, 8).await;
    for (path, want) in [
        ("/ch/w?last=2", vec![7, 8]),
        ("/ch/w?since=oldest", vec![4, 5, 6, 7, 8]),
    ] {
        let (mut ws, _) = common::ws_open(&srv, path).await;
        for n in want {
            let env = ws_json(&mut ws).await;
            assert_eq!(
                (env["event"].as_str(), env["data"].as_u64()),
                (Some("message"), Some(n)),
                "{path}"
            );
        }
        drop(ws);
    }
    let (mut ws, _) = common::ws_open(&srv, "/ws").await;
    ws.send(Message::Text(
        json!({"id": 1, "op": "subscribe", "channel": "w", "since": "last:3"})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let reply = ws_json(&mut ws).await;
    assert_eq!(reply["id"], 1, "{reply}");
    let start = reply["result"]["cursor"].as_str().unwrap();
    assert!(start.ends_with(":5"), "starts before offset 6: {start}");
    for n in [6, 7, 8] {
        assert_eq!(ws_json(&mut ws).await["data"], n);
    }
    ws.send(Message::Text(
        json!({"id": 2, "op": "subscribe", "channel": "x", "since": "latest"})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    assert_eq!(ws_json(&mut ws).await["error"]["code"], "invalid_cursor");
    ws.close(None).await.unwrap();
    drop(ws);
    assert!(srv.shutdown().await);
}
