//! The application's backend decides (`[backend]`): a small HTTP backend on loopback,
//! started by the test, that admits by session cookie. Each row asserts what the client
//! got and what the backend was asked; a backend that is slow, fails or is down answers
//! per `backend.on_error`.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use common::{bounded, config, json, raw, server_with, Ws, KEY};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use switchboard_server::config::OnError;
use switchboard_server::server::Running;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

/// The questions the backend received.
type Asked = Arc<Mutex<Vec<Value>>>;

/// Decides by the `session` cookie: `alice` (any channel) and `bob` (only `bob.*` on
/// subscribes) are let in, `slow` answers after 3 s, `broken` answers 500, anything
/// else is refused.
async fn decide(State(asked): State<Asked>, Json(q): Json<Value>) -> axum::response::Response {
    use axum::response::IntoResponse;
    asked.lock().unwrap().push(q.clone());
    let cookie = q["headers"]["cookie"].as_str().unwrap_or("");
    let session = cookie.strip_prefix("session=").unwrap_or("");
    match session {
        "slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Json(json!({"allow": true})).into_response()
        }
        "broken" => axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        "alice" => Json(json!({"allow": true, "user": "alice"})).into_response(),
        "bob" if q["kind"] == "connect" => {
            Json(json!({"allow": true, "user": "bob"})).into_response()
        }
        "bob" => {
            let ok = q["channels"][0].as_str().unwrap_or("").starts_with("bob.");
            Json(json!({"allow": ok, "reason": "bob may only read bob.*"})).into_response()
        }
        _ => Json(json!({"allow": false, "reason": "not logged in"})).into_response(),
    }
}

/// The backend on a free loopback port, and what it is asked.
async fn backend() -> (std::net::SocketAddr, Asked) {
    let asked = Asked::default();
    let app = Router::new()
        .route("/connect", post(decide))
        .route("/subscribe", post(decide))
        .with_state(asked.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, asked)
}

async fn server(backend: std::net::SocketAddr, on_error: OnError) -> Running {
    let mut c = config();
    c.backend.connect_url = Some(format!("http://{backend}/connect"));
    c.backend.subscribe_url = Some(format!("http://{backend}/subscribe"));
    c.backend.timeout_ms = 300;
    c.backend.on_error = on_error;
    server_with(c).await
}

fn cookie(session: &str) -> String {
    format!("session={session}")
}

#[tokio::test]
async fn the_backend_admits_refuses_and_names_the_user() {
    let (addr, asked) = backend().await;
    let srv = server(addr, OnError::Deny).await;

    // Let in: a poll; the backend saw its channels, transport, cookie and peer.
    let alice = cookie("alice");
    let (status, _, _) = raw(
        &srv,
        "GET",
        "/ch/room?transport=poll",
        &[("Cookie", &alice)],
        b"",
    )
    .await;
    assert_eq!(status, 200);
    let q = asked.lock().unwrap().pop().unwrap();
    assert_eq!(q["kind"], "connect");
    assert_eq!(q["channels"], json!(["room"]));
    assert_eq!(q["transport"], "poll");
    assert_eq!(q["headers"]["cookie"], "session=alice");
    assert_eq!(q["peer"], "127.0.0.1");

    // Refused: the reason is the answer, and nothing of the request happens.
    let nobody = cookie("nobody");
    for (method, target, extra) in [
        ("GET", "/ch/room", vec![("Accept", "text/event-stream")]),
        ("GET", "/ch/room?transport=longpoll", vec![]),
        ("POST", "/ch/room", vec![]),
        ("GET", "/sub?channel=room&transport=poll", vec![]),
        ("POST", "/ws", vec![]),
    ] {
        let mut headers = extra.clone();
        headers.push(("Cookie", nobody.as_str()));
        let (status, _, body) = raw(&srv, method, target, &headers, b"hi").await;
        assert_eq!(status, 403, "{method} {target}");
        let body = json(&body);
        assert_eq!(body["error"], "denied_by_backend");
        assert!(body["message"].as_str().unwrap().contains("not logged in"));
    }
    let history = srv.state.hub.history("room", None, Some(10)).await.unwrap();
    let switchboard_hub::HistoryAnswer::Gap { messages, .. } = history else {
        panic!("{history:?}")
    };
    assert!(messages.is_empty(), "the refused POST published nothing");

    // The user the backend names is the connection's: presence shows it.
    let (status, _, _) = raw(&srv, "GET", "/healthz", &[], b"").await;
    assert_eq!(status, 200, "other routes are not asked about");
    let (ws, _) = tokio_tungstenite::connect_async(
        tokio_tungstenite::tungstenite::http::Request::builder()
            .uri(format!("ws://{}/ch/room", srv.addr))
            .header("Host", srv.addr.to_string())
            .header("Cookie", alice.as_str())
            .header("Connection", "Upgrade")
            .header("Upgrade", "websocket")
            .header("Sec-WebSocket-Version", "13")
            .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
            .body(())
            .unwrap(),
    )
    .await
    .unwrap();
    common::subscribers_become(&srv, "room", 1).await;
    let auth = format!("Bearer {KEY}");
    let (_, _, body) = raw(
        &srv,
        "GET",
        "/api/channels/room/presence",
        &[("Authorization", &auth)],
        b"",
    )
    .await;
    assert_eq!(
        json(&body)["clients"][0]["user"],
        "alice",
        "{}",
        json(&body)
    );
    drop(ws);
    srv.shutdown().await;
}

#[tokio::test]
async fn a_backend_that_fails_denies_or_allows_as_configured() {
    let (addr, _) = backend().await;
    let deny = server(addr, OnError::Deny).await;
    for session in ["slow", "broken"] {
        let c = cookie(session);
        let (status, _, body) = raw(
            &deny,
            "GET",
            "/ch/room?transport=poll",
            &[("Cookie", &c)],
            b"",
        )
        .await;
        assert_eq!(status, 503, "{session}");
        assert_eq!(json(&body)["error"], "backend_unavailable");
    }
    let allow = server(addr, OnError::Allow).await;
    let c = cookie("slow");
    let started = std::time::Instant::now();
    let (status, _, _) = raw(
        &allow,
        "GET",
        "/ch/room?transport=poll",
        &[("Cookie", &c)],
        b"",
    )
    .await;
    assert_eq!(status, 200, "fails open");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "not held past the timeout"
    );
    // A backend that is not there at all.
    let gone = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let down = server(gone, OnError::Deny).await;
    let (status, _, _) = raw(
        &down,
        "GET",
        "/ch/room?transport=poll",
        &[("Cookie", &c)],
        b"",
    )
    .await;
    assert_eq!(status, 503);
    for s in [deny, allow, down] {
        s.shutdown().await;
    }
}

async fn command(ws: &mut Ws, v: Value) -> Value {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
    loop {
        match bounded(ws.next()).await.unwrap().unwrap() {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v.get("id").is_some() {
                    return v;
                }
            }
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_ws_sessions_subscribes_are_asked_one_by_one() {
    let (addr, asked) = backend().await;
    let srv = server(addr, OnError::Deny).await;
    let request = tokio_tungstenite::tungstenite::http::Request::builder()
        .uri(format!("ws://{}/ws", srv.addr))
        .header("Host", srv.addr.to_string())
        .header("Cookie", "session=bob")
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
        .body(())
        .unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let ok = command(
        &mut ws,
        json!({"id": 1, "op": "subscribe", "channel": "bob.inbox"}),
    )
    .await;
    assert!(ok.get("result").is_some(), "{ok}");
    let no = command(
        &mut ws,
        json!({"id": 2, "op": "subscribe", "channel": "room"}),
    )
    .await;
    assert_eq!(no["error"]["code"], "not_allowed", "{no}");
    assert!(no["error"]["message"]
        .as_str()
        .unwrap()
        .contains("bob may only read"));
    let asked: Vec<Value> = asked.lock().unwrap().clone();
    let subscribes: Vec<&Value> = asked.iter().filter(|q| q["kind"] == "subscribe").collect();
    assert_eq!(subscribes.len(), 2);
    assert_eq!(subscribes[0]["channels"], json!(["bob.inbox"]));
    assert_eq!(subscribes[0]["headers"]["cookie"], "session=bob");
    assert_eq!(
        subscribes[0]["user"], "bob",
        "the user the connect answer named"
    );
    drop(ws);
    srv.shutdown().await;
}

#[tokio::test]
async fn an_authenticated_user_holds_at_most_its_connections() {
    let (addr, _) = backend().await;
    let mut c = config();
    c.backend.connect_url = Some(format!("http://{addr}/connect"));
    c.limits.max_connections_per_user = 2;
    let srv = server_with(c).await;
    let alice = cookie("alice");
    let open = |srv: &Running| {
        let addr = srv.addr;
        let alice = alice.clone();
        async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            let req = format!(
                "GET /ch/room HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\nCookie: {alice}\r\n\r\n"
            );
            tokio::io::AsyncWriteExt::write_all(&mut s, req.as_bytes())
                .await
                .unwrap();
            s
        }
    };
    let _one = open(&srv).await;
    let _two = open(&srv).await;
    common::subscribers_become(&srv, "room", 2).await;
    let (status, _, body) = raw(
        &srv,
        "GET",
        "/ch/room",
        &[("Accept", "text/event-stream"), ("Cookie", &alice)],
        b"",
    )
    .await;
    assert_eq!(status, 429);
    assert_eq!(json(&body)["error"], "too_many_user_connections");
    // A poll holds no connection: still answered.
    let (status, _, _) = raw(
        &srv,
        "GET",
        "/ch/room?transport=poll",
        &[("Cookie", &alice)],
        b"",
    )
    .await;
    assert_eq!(status, 200);
    // Another user is not held back.
    let bob = cookie("bob");
    let (status, _, _) = raw(
        &srv,
        "GET",
        "/ch/room?transport=longpoll",
        &[("Cookie", &bob)],
        b"",
    )
    .await;
    assert_eq!(status, 200);
    srv.shutdown().await;
}
