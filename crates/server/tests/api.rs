//! The backend API through real sockets: publish, broadcast, history, presence, channel
//! stats and disconnect, with the API key.
#![allow(clippy::unwrap_used)]

mod common;

use common::{bounded, server, url, KEY};
use serde_json::json;
use switchboard_client::{ApiClient, Client, Error, Event, ReceivedData, Transport};

#[tokio::test]
async fn publish_broadcast_history_stats() {
    let srv = server().await;
    let api = ApiClient::new(&url(&srv), Some(KEY.into())).unwrap();
    let client = Client::new(&url(&srv)).unwrap();
    let mut a = client
        .subscribe(Transport::WebSocket, &[("news", None)])
        .await
        .unwrap();
    // The API may publish where clients may not.
    let mut t = client
        .subscribe(Transport::Sse, &[("ticker:alerts", None)])
        .await
        .unwrap();

    let r = api
        .publish("news", json!({"headline": "hi"}))
        .await
        .unwrap();
    let env = bounded(a.next()).await.unwrap();
    assert_eq!(env.data, ReceivedData::Json(r#"{"headline":"hi"}"#.into()));
    assert_eq!(
        env.cursor.unwrap().to_string(),
        r["cursor"].as_str().unwrap()
    );

    let r = api.publish_text("news", "plain").await.unwrap();
    let env = bounded(a.next()).await.unwrap();
    assert_eq!(env.data, ReceivedData::Json("\"plain\"".into()));
    assert_eq!(r["channel"], "news");

    let r = api
        .broadcast(&["news", "ticker:alerts"], json!(42))
        .await
        .unwrap();
    assert_eq!(
        bounded(a.next()).await.unwrap().data,
        ReceivedData::Json("42".into())
    );
    let env = bounded(t.next()).await.unwrap();
    assert_eq!(env.data, ReceivedData::Json("42".into()));
    assert_eq!(
        env.cursor.unwrap().to_string(),
        r["cursors"]["ticker:alerts"].as_str().unwrap()
    );

    let h = api.history("news", None, None).await.unwrap();
    let msgs = h["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3);
    assert_eq!(msgs[0]["data"]["headline"], "hi");
    assert_eq!(h["reset"], false);
    let h = api
        .history("news", Some(msgs[0]["cursor"].as_str().unwrap()), Some(1))
        .await
        .unwrap();
    assert_eq!(h["messages"][0]["data"], "plain");
    assert_eq!(h["more"], true);

    let stats = api.channels().await.unwrap();
    let news = stats["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "news")
        .unwrap();
    assert_eq!(news["retained"], 3);
    assert!(news["cursor"].as_str().unwrap().ends_with(":3"));
    assert_eq!(news["subscribers"], 1);
    let one = api
        .call(http::Method::GET, "/api/channels/news", None)
        .await
        .unwrap();
    assert_eq!(one["retained"], 3);
    match api
        .call(http::Method::GET, "/api/channels/never-used", None)
        .await
    {
        Err(Error::Status { status: 404, .. }) => {}
        other => panic!("{other:?}"),
    }
    match api.publish("nowhere:x", json!(1)).await {
        Err(Error::Status { status: 404, body }) => assert!(body.contains("nowhere")),
        other => panic!("{other:?}"),
    }
    match ApiClient::new(&url(&srv), None)
        .unwrap()
        .publish("news", json!(1))
        .await
    {
        Err(Error::Status { status: 401, .. }) => {}
        other => panic!("{other:?}"),
    }
    a.close().await;
    drop(t);
    assert!(srv.shutdown().await);
}

#[tokio::test]
async fn presence_and_disconnect() {
    let srv = server().await;
    let api = ApiClient::new(&url(&srv), Some(KEY.into())).unwrap();
    let base = url(&srv);
    // Subscribers with a user id: over SSE, streaming and WebSocket, via raw URLs.
    let mut sse = switchboard_client::Client::new(&base).unwrap();
    sse = sse.with_poll_interval(std::time::Duration::from_millis(50));
    let (_s1, mut b1) = open_stream(&srv, "/ch/lobby?user=alice", true).await;
    let (_s2, mut b2) = open_stream(&srv, "/ch/lobby?transport=stream&user=alice", false).await;
    let (_s3, _b3) = open_stream(&srv, "/ch/lobby?user=bob", true).await;
    let p = api.presence("lobby").await.unwrap();
    assert_eq!(p["count"], 3, "{p}");
    let users: Vec<&str> = p["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["user"].as_str().unwrap())
        .collect();
    assert_eq!(users.iter().filter(|u| **u == "alice").count(), 2);

    let r = api.disconnect(json!({"user": "alice"})).await.unwrap();
    assert_eq!(r["disconnected"], 2);
    assert!(read_until_end(&mut b1).await.contains("event: disconnect"));
    assert!(read_until_end(&mut b2)
        .await
        .contains("\"event\":\"disconnect\""));
    // Presence follows: alice's two connections are gone, bob stays.
    let p = bounded(async {
        loop {
            let p = api.presence("lobby").await.unwrap();
            if p["count"] == 1 {
                return p;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(p["clients"][0]["user"], "bob");
    // Disconnect one connection by the client id its response named.
    let (_s4, mut b4, id) = open_stream_with_id(&srv, "/ch/lobby?transport=stream").await;
    let r = api.disconnect(json!({ "client": id })).await.unwrap();
    assert_eq!(r["disconnected"], 1);
    assert!(read_until_end(&mut b4)
        .await
        .contains("\"event\":\"disconnect\""));
    let r = api
        .disconnect(json!({"client": "no-such-client"}))
        .await
        .unwrap();
    assert_eq!(r["disconnected"], 0);
    drop(sse);
    drop((_s3, _b3));
    assert!(srv.shutdown().await);
}

/// Opens a streaming GET and returns the connection and its body.
async fn open_stream(
    srv: &switchboard_server::server::Running,
    target: &str,
    sse: bool,
) -> (tokio::task::JoinHandle<()>, hyper::body::Incoming) {
    let tcp = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .unwrap();
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = http::Request::get(target).header("host", "localhost");
    if sse {
        req = req.header("accept", "text/event-stream");
    }
    let resp = send
        .send_request(
            req.body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    (task, resp.into_body())
}

/// Like [`open_stream`], also returning the `x-switchboard-client` header.
async fn open_stream_with_id(
    srv: &switchboard_server::server::Running,
    target: &str,
) -> (tokio::task::JoinHandle<()>, hyper::body::Incoming, String) {
    let tcp = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .unwrap();
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = http::Request::get(target).header("host", "localhost");
    let resp = send
        .send_request(
            req.body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    let id = common::client_id(resp.headers());
    (task, resp.into_body(), id)
}

async fn read_until_end(body: &mut hyper::body::Incoming) -> String {
    use http_body_util::BodyExt;
    let mut out = Vec::new();
    bounded(async {
        while let Some(f) = body.frame().await {
            if let Ok(d) = f.unwrap().into_data() {
                out.extend_from_slice(&d);
            }
        }
    })
    .await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn presence_event_kinds_are_not_in_the_log() {
    // Joining does not take offsets: the next message is offset 1.
    let srv = server().await;
    let client = Client::new(&url(&srv)).unwrap();
    let mut s = client
        .subscribe(Transport::Sse, &[("quiet", None)])
        .await
        .unwrap();
    let c = client.publish("quiet", "x", None).await.unwrap();
    assert_eq!(c.offset, 1);
    let env = bounded(s.next()).await.unwrap();
    assert_eq!(
        (env.event, env.data),
        (Event::Message, ReceivedData::Json("\"x\"".into()))
    );
    drop(s);
    assert!(srv.shutdown().await);
}

/// A disconnect by user that lands after a connection registered but before its hub
/// subscriptions exist closes them as soon as they do (the hub could not: it did not
/// know them yet). Here the two steps of a connection opening are taken by hand around
/// the API call, so the window is hit every time.
#[tokio::test]
async fn disconnect_by_user_reaches_a_connection_still_subscribing() {
    use switchboard_hub::CloseReason;
    use switchboard_server::observe::counters::Transport;
    use switchboard_server::transport::{Feed, FeedEvent, Target};

    let srv = server().await;
    let api = ApiClient::new(&url(&srv), Some(KEY.into())).unwrap();
    let targets = [Target {
        channel: "news".into(),
        since: None,
    }];
    let opening = srv
        .state
        .clients
        .register_hub_kicked(Some("carol".into()), Transport::Sse);
    let bystander = srv
        .state
        .clients
        .register_hub_kicked(Some("dave".into()), Transport::Sse);
    let r = api.disconnect(json!({"user": "carol"})).await.unwrap();
    assert_eq!(r["disconnected"], 1);

    let mut kicked = Feed::open(&srv.state, &targets, &opening).await.unwrap();
    match bounded(kicked.next()).await {
        FeedEvent::Closed { reason, .. } => assert_eq!(reason, CloseReason::Disconnected),
        FeedEvent::Message(m) => panic!("expected the disconnect, got {m:?}"),
    }
    // Another user's connection opening at the same time is left alone.
    let mut open = Feed::open(&srv.state, &targets, &bystander).await.unwrap();
    assert!(open.try_next().is_none());
    api.publish("news", json!(1)).await.unwrap();
    assert!(matches!(bounded(open.next()).await, FeedEvent::Message(_)));
}

/// JSON `null` is a payload like any other: accepted by the API and by `POST /ch/NAME`,
/// and delivered as `"data":null`, which the client reads as JSON `null`, not as "no data".
#[tokio::test]
async fn null_is_a_payload_like_any_other() {
    let srv = server().await;
    let api = ApiClient::new(&url(&srv), Some(KEY.into())).unwrap();
    let client = Client::new(&url(&srv)).unwrap();
    let mut sub = client
        .subscribe(Transport::WebSocket, &[("news", None)])
        .await
        .unwrap();
    let r = api.publish("news", serde_json::Value::Null).await.unwrap();
    let env = bounded(sub.next()).await.unwrap();
    assert_eq!(env.data, ReceivedData::Json("null".into()));
    assert_eq!(
        env.cursor.unwrap().to_string(),
        r["cursor"].as_str().unwrap()
    );
    let c = client
        .publish("news", "null", Some("application/json"))
        .await
        .unwrap();
    let env = bounded(sub.next()).await.unwrap();
    assert_eq!(
        (env.cursor, env.data),
        (Some(c), ReceivedData::Json("null".into()))
    );
    drop(sub);
    assert!(srv.shutdown().await);
}
