//! The multiplexed SDK WebSocket `/ws`, driven by an independent client
//! (tokio-tungstenite): subscribe to several channels, publish, presence, history, ping,
//! unsubscribe and command errors.
#![allow(clippy::unwrap_used)]

mod common;

use common::{server, Ws};
use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

async fn recv(ws: &mut Ws) -> Value {
    common::ws_json(ws).await
}

#[tokio::test]
async fn commands_over_one_connection() {
    let srv = server().await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws?user=carol", srv.addr))
        .await
        .unwrap();
    let (mut pub_ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", srv.addr))
        .await
        .unwrap();

    send(&mut ws, json!({"id": 1, "op": "subscribe", "channel": "a"})).await;
    let r = recv(&mut ws).await;
    assert_eq!(r["id"], 1);
    let start_a = r["result"]["cursor"].as_str().unwrap().to_owned();
    send(&mut ws, json!({"id": 2, "op": "subscribe", "channel": "b"})).await;
    assert_eq!(recv(&mut ws).await["id"], 2);

    send(
        &mut pub_ws,
        json!({"id": 7, "op": "publish", "channel": "a", "data": {"k": 1}}),
    )
    .await;
    let r = recv(&mut pub_ws).await;
    let c1 = r["result"]["cursor"].as_str().unwrap().to_owned();
    send(
        &mut pub_ws,
        json!({"id": 8, "op": "publish", "channel": "b", "data_b64": "AP8="}),
    )
    .await;
    recv(&mut pub_ws).await;

    let p1 = recv(&mut ws).await;
    assert_eq!(
        (
            p1["channel"].as_str(),
            p1["event"].as_str(),
            p1["cursor"].as_str()
        ),
        (Some("a"), Some("message"), Some(c1.as_str()))
    );
    assert_eq!(p1["data"]["k"], 1);
    assert!(p1.get("id").is_none(), "pushes carry no id");
    let p2 = recv(&mut ws).await;
    assert_eq!(
        (p2["channel"].as_str(), p2["data_b64"].as_str()),
        (Some("b"), Some("AP8="))
    );

    send(&mut ws, json!({"id": 3, "op": "presence", "channel": "a"})).await;
    let r = recv(&mut ws).await;
    assert_eq!(r["result"]["count"], 1, "{r}");
    assert_eq!(r["result"]["clients"][0]["user"], "carol");

    send(
        &mut ws,
        json!({"id": 4, "op": "history", "channel": "a", "since": start_a}),
    )
    .await;
    let r = recv(&mut ws).await;
    assert_eq!(r["result"]["messages"].as_array().unwrap().len(), 1);
    assert_eq!(r["result"]["cursor"], c1.as_str());

    send(&mut ws, json!({"id": 5, "op": "ping"})).await;
    assert_eq!(recv(&mut ws).await, json!({"id": 5, "result": {}}));

    // Errors answer the command and leave the connection open.
    let errors = [
        (
            json!({"id": 10, "op": "subscribe", "channel": "a"}),
            "already_subscribed",
        ),
        (
            json!({"id": 11, "op": "subscribe", "channel": "bad name"}),
            "invalid_channel",
        ),
        (
            json!({"id": 12, "op": "subscribe", "channel": "nowhere:x"}),
            "unknown_namespace",
        ),
        (
            json!({"id": 13, "op": "publish", "channel": "ticker:x", "data": 1}),
            "not_allowed",
        ),
        (
            json!({"id": 14, "op": "subscribe", "channel": "c", "since": "zz"}),
            "invalid_cursor",
        ),
        (json!({"id": 15, "op": "fly"}), "unknown_op"),
        (
            json!({"id": 16, "op": "unsubscribe", "channel": "zzz"}),
            "not_subscribed",
        ),
    ];
    for (cmd, code) in errors {
        let id = cmd["id"].clone();
        send(&mut ws, cmd).await;
        let r = recv(&mut ws).await;
        assert_eq!(
            (r["id"].clone(), r["error"]["code"].as_str()),
            (id, Some(code)),
            "{r}"
        );
    }
    ws.send(Message::Text("not json".into())).await.unwrap();
    assert_eq!(recv(&mut ws).await["error"]["code"], "bad_request");

    send(
        &mut ws,
        json!({"id": 6, "op": "unsubscribe", "channel": "a"}),
    )
    .await;
    assert_eq!(recv(&mut ws).await, json!({"id": 6, "result": {}}));
    send(
        &mut pub_ws,
        json!({"id": 9, "op": "publish", "channel": "a", "data": 2}),
    )
    .await;
    recv(&mut pub_ws).await;
    send(
        &mut pub_ws,
        json!({"id": 10, "op": "publish", "channel": "b", "data": 3}),
    )
    .await;
    recv(&mut pub_ws).await;
    // Only b's message arrives now.
    let p = recv(&mut ws).await;
    assert_eq!(
        (p["channel"].as_str(), p["data"].as_i64()),
        (Some("b"), Some(3))
    );

    ws.close(None).await.unwrap();
    pub_ws.close(None).await.unwrap();
    assert!(srv.shutdown().await);
}

/// Subscribing with a cursor over `/ws` replays the gap as pushes after the reply.
#[tokio::test]
async fn subscribe_since_replays_gap() {
    let srv = server().await;
    let client = switchboard_client::Client::new(&common::url(&srv)).unwrap();
    let c0 = client
        .publish("g", "0", Some("application/json"))
        .await
        .unwrap();
    let c1 = client
        .publish("g", "1", Some("application/json"))
        .await
        .unwrap();
    let c2 = client
        .publish("g", "2", Some("application/json"))
        .await
        .unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", srv.addr))
        .await
        .unwrap();
    send(
        &mut ws,
        json!({"id": 1, "op": "subscribe", "channel": "g", "since": c0.to_string()}),
    )
    .await;
    assert_eq!(recv(&mut ws).await["result"]["cursor"], c0.to_string());
    assert_eq!(recv(&mut ws).await["cursor"], c1.to_string());
    assert_eq!(recv(&mut ws).await["cursor"], c2.to_string());
    ws.close(None).await.unwrap();
    assert!(srv.shutdown().await);
}

#[tokio::test]
async fn post_ws_answers_commands_that_need_no_connection() {
    let srv = server().await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws?user=dora", srv.addr))
        .await
        .unwrap();
    send(
        &mut ws,
        json!({"id": 1, "op": "subscribe", "channel": "pw"}),
    )
    .await;
    assert_eq!(recv(&mut ws).await["id"], 1);
    send(
        &mut ws,
        json!({"id": 2, "op": "publish", "channel": "pw", "data": 5}),
    )
    .await;
    // The push and the reply, in either order.
    let (x, y) = (recv(&mut ws).await, recv(&mut ws).await);
    assert!(x["id"] == 2 || y["id"] == 2, "{x} {y}");
    let post = |body: Value| {
        let srv = &srv;
        async move {
            let (status, head, body) = common::raw(
                srv,
                "POST",
                "/ws",
                &[("Content-Type", "application/json")],
                body.to_string().as_bytes(),
            )
            .await;
            assert_eq!(status, 200, "{head}");
            common::json(&body)
        }
    };
    let r = post(json!({"id": 3, "op": "presence", "channel": "pw"})).await;
    assert_eq!(r["id"], 3, "{r}");
    assert_eq!(r["result"]["count"], 1, "{r}");
    assert_eq!(r["result"]["clients"][0]["user"], "dora", "{r}");
    let r = post(json!({"id": 4, "op": "history", "channel": "pw", "limit": 10})).await;
    assert_eq!(r["result"]["messages"][0]["data"], 5, "{r}");
    assert_eq!(
        post(json!({"id": 5, "op": "ping"})).await,
        json!({"id": 5, "result": {}})
    );
    for refused in [
        json!({"id": 6, "op": "subscribe", "channel": "pw"}),
        json!({"id": 6, "op": "publish", "channel": "pw", "data": 1}),
    ] {
        let r = post(refused.clone()).await;
        assert_eq!(r["error"]["code"], "bad_request", "{refused}: {r}");
    }
    // Bodies are bounded.
    let big = format!(
        "{{\"id\":7,\"op\":\"ping\",\"pad\":\"{}\"}}",
        "x".repeat(5000)
    );
    let (status, _, _) = common::raw(&srv, "POST", "/ws", &[], big.as_bytes()).await;
    assert_eq!(status, 413);
    ws.close(None).await.unwrap();
    drop(ws);
    assert!(srv.shutdown().await);
}
