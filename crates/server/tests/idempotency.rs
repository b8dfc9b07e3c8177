//! Idempotent publish on one node, on every path that takes a key: the same key on the
//! same channel is stored once and answered with the first cursor (`POST /ch/NAME` with
//! `Idempotency-Key`, `POST /api/publish` and `/api/broadcast` with `idempotency_key`,
//! the `/ws` publish command), a subscriber gets it once, and a key out of bounds is 400
//! before anything is stored. The Rust client's publishes carry keys of their own.
#![allow(clippy::unwrap_used)]

mod common;

use common::{bounded, json, raw, server, KEY};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use switchboard_client::{Client, Retry};
use switchboard_server::server::Running;
use tokio_tungstenite::tungstenite::Message;

const BEARER: &str = "Bearer test-key";

async fn post_ch(srv: &Running, channel: &str, key: &str, body: &str) -> (u16, Value) {
    let headers = [
        ("Idempotency-Key", key),
        ("Content-Type", "application/json"),
    ];
    let path = format!("/ch/{channel}");
    let (status, _, body) = raw(srv, "POST", &path, &headers, body.as_bytes()).await;
    (status, json(&body))
}

async fn api(srv: &Running, path: &str, body: Value) -> (u16, Value) {
    let headers = [
        ("Authorization", BEARER),
        ("Content-Type", "application/json"),
    ];
    let (status, _, body) = raw(srv, "POST", path, &headers, body.to_string().as_bytes()).await;
    (status, json(&body))
}

async fn retained(srv: &Running, channel: &str) -> Vec<Value> {
    let (status, _, body) = raw(
        srv,
        "GET",
        &format!("/ch/{channel}?transport=poll&since=0:0"),
        &[],
        &[],
    )
    .await;
    assert_eq!(status, 200);
    json(&body)["messages"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_native_post_with_a_key_given_twice_is_stored_once() {
    let srv = server().await;
    let client = Client::new(&common::url(&srv)).unwrap();
    let mut sub = client
        .subscribe(switchboard_client::Transport::Sse, &[("n", None)])
        .await
        .unwrap();
    let (status, first) = post_ch(&srv, "n", "k-1", "1").await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first.get("duplicate"), None);
    let (status, again) = post_ch(&srv, "n", "k-1", "2").await;
    assert_eq!(status, 200);
    assert_eq!(again["cursor"], first["cursor"]);
    assert_eq!(again["duplicate"], true);
    let (_, other) = post_ch(&srv, "n", "k-2", "3").await;
    assert_ne!(other["cursor"], first["cursor"]);

    let held = retained(&srv, "n").await;
    assert_eq!(held.len(), 2, "{held:?}");
    assert_eq!((&held[0]["data"], &held[1]["data"]), (&1.into(), &3.into()));
    let got = bounded(sub.next()).await.unwrap();
    assert_eq!(
        got.cursor.unwrap().to_string(),
        first["cursor"].as_str().unwrap()
    );
    let got = bounded(sub.next()).await.unwrap();
    assert_eq!(
        got.cursor.unwrap().to_string(),
        other["cursor"].as_str().unwrap()
    );
    assert!(srv.shutdown().await);
}

#[tokio::test]
async fn the_api_publish_and_broadcast_take_one_key_per_channel() {
    let srv = server().await;
    let body = serde_json::json!({"channel": "a", "data": {"n": 1}, "idempotency_key": "api-1"});
    let (status, first) = api(&srv, "/api/publish", body.clone()).await;
    assert_eq!(status, 200, "{first}");
    let (_, again) = api(&srv, "/api/publish", body).await;
    assert_eq!(
        (&again["cursor"], &again["duplicate"]),
        (&first["cursor"], &true.into())
    );

    // A broadcast retried with its key stores once on every channel; the key is the
    // same one the publish above gave channel "a", so "a" stores nothing new.
    let body =
        serde_json::json!({"channels": ["a", "b", "c"], "text": "x", "idempotency_key": "api-1"});
    let (status, first) = api(&srv, "/api/broadcast", body.clone()).await;
    assert_eq!(status, 200, "{first}");
    let (_, again) = api(&srv, "/api/broadcast", body).await;
    assert_eq!(first, again);
    assert_eq!(first["cursors"]["a"], json_cursor(&srv, "a", 0).await);
    for c in ["a", "b", "c"] {
        assert_eq!(retained(&srv, c).await.len(), 1, "channel {c}");
    }
    assert!(srv.shutdown().await);
}

async fn json_cursor(srv: &Running, channel: &str, i: usize) -> Value {
    retained(srv, channel).await[i]["cursor"].clone()
}

#[tokio::test]
async fn the_ws_publish_command_takes_a_key() {
    let srv = server().await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", srv.addr))
        .await
        .unwrap();
    let mut replies = Vec::new();
    for (id, key) in [(1, "w-1"), (2, "w-1"), (3, "w-2")] {
        let cmd = serde_json::json!({"id": id, "op": "publish", "channel": "w", "data": id, "idempotency_key": key});
        ws.send(Message::Text(cmd.to_string().into()))
            .await
            .unwrap();
        let Message::Text(t) = bounded(ws.next()).await.unwrap().unwrap() else {
            panic!("not a reply")
        };
        replies.push(serde_json::from_str::<Value>(&t).unwrap());
    }
    let cursor = |r: &Value| r["result"]["cursor"].clone();
    assert_eq!(cursor(&replies[0]), cursor(&replies[1]));
    assert_ne!(cursor(&replies[0]), cursor(&replies[2]));
    let long = "k".repeat(129);
    let cmd = serde_json::json!({"id": 4, "op": "publish", "channel": "w", "data": 4, "idempotency_key": long});
    ws.send(Message::Text(cmd.to_string().into()))
        .await
        .unwrap();
    let Message::Text(t) = bounded(ws.next()).await.unwrap().unwrap() else {
        panic!("not a reply")
    };
    let reply: Value = serde_json::from_str(&t).unwrap();
    assert_eq!(reply["error"]["code"], "bad_request", "{reply}");
    let held = retained(&srv, "w").await;
    assert_eq!(held.len(), 2, "{held:?}");
    drop(ws);
    assert!(srv.shutdown().await);
}

#[tokio::test]
async fn a_key_out_of_bounds_is_400_and_stores_nothing() {
    let srv = server().await;
    let long = "k".repeat(129);
    let (status, body) = post_ch(&srv, "bad", &long, "1").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("bad_request")),
        "{body}"
    );
    let (status, _) = post_ch(&srv, "bad", "", "1").await;
    assert_eq!(status, 400);
    let (status, _, body) = raw(
        &srv,
        "POST",
        "/ch/bad",
        &[("Idempotency-Key", "caf\u{e9}")],
        b"1",
    )
    .await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    let (status, _) = api(
        &srv,
        "/api/broadcast",
        serde_json::json!({"channels": ["bad"], "data": 1, "idempotency_key": long}),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = post_ch(&srv, "bad", &"k".repeat(128), "1").await;
    assert_eq!(status, 200, "128 bytes is the longest key taken");
    assert_eq!(retained(&srv, "bad").await.len(), 1);
    assert!(srv.shutdown().await);
}

#[tokio::test]
async fn the_rust_clients_publish_with_keys_of_their_own() {
    let srv = server().await;
    let client = Client::new(&common::url(&srv)).unwrap();
    let a = client.publish("r", "1", None).await.unwrap();
    let b = client.publish("r", "1", None).await.unwrap();
    assert_ne!(a, b, "two publishes, two keys: two messages");
    let k = client
        .publish_keyed("r", "2", None, "mine", Retry::default())
        .await
        .unwrap();
    let again = client
        .publish_keyed("r", "2", None, "mine", Retry::default())
        .await
        .unwrap();
    assert_eq!(k, again);

    let api = switchboard_client::ApiClient::new(&common::url(&srv), Some(KEY.into())).unwrap();
    let body = serde_json::json!({"channel": "r", "text": "3", "idempotency_key": "api-mine"});
    let x = api
        .send_keyed("/api/publish", body.clone(), Retry::default())
        .await
        .unwrap();
    let y = api
        .send_keyed("/api/publish", body, Retry::default())
        .await
        .unwrap();
    assert_eq!(x["cursor"], y["cursor"]);
    assert_eq!(retained(&srv, "r").await.len(), 4);
    assert!(srv.shutdown().await);
}
