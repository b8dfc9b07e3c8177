//! Statelessness of long-polling and graceful shutdown.
#![allow(clippy::unwrap_used)]

mod common;

use common::{bounded, json, parse_response, server, url};
use futures_util::StreamExt;
use switchboard_client::{Client, Error, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Each long-poll request goes on a new TCP connection, carrying nothing but the cursor;
/// the answers chain without loss, which needs no per-client state on the server.
#[tokio::test]
async fn longpoll_cycle_on_fresh_connections() {
    let srv = server().await;
    let client = Client::new(&url(&srv)).unwrap();
    let mut cursor = client
        .publish("lp", "0", Some("application/json"))
        .await
        .unwrap()
        .to_string();
    let mut local_ports = Vec::new();
    for i in 1..=5u64 {
        let mut s = TcpStream::connect(srv.addr).await.unwrap();
        local_ports.push(s.local_addr().unwrap().port());
        let req = format!(
            "GET /ch/lp?transport=longpoll&since={cursor} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.unwrap();
        // Publish while the request is (probably) held; either way it must be answered
        // with exactly message i.
        let published = client
            .publish("lp", i.to_string(), Some("application/json"))
            .await
            .unwrap();
        let mut buf = Vec::new();
        bounded(s.read_to_end(&mut buf)).await.unwrap();
        let (status, _, body) = parse_response(&buf);
        assert_eq!(status, 200);
        let v = json(&body);
        let msgs = v["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 1, "{v}");
        assert_eq!(msgs[0]["data"], i);
        assert_eq!(v["cursor"], published.to_string());
        assert_eq!(v["reset"], false);
        cursor = v["cursor"].as_str().unwrap().to_owned();
    }
    local_ports.sort_unstable();
    local_ports.dedup();
    assert_eq!(
        local_ports.len(),
        5,
        "every request used its own connection"
    );

    // A held long-poll with nothing new answers at the timeout with the same cursor.
    let (status, _, body) = common::raw(
        &srv,
        "GET",
        &format!("/ch/lp?transport=longpoll&since={cursor}"),
        &[],
        b"",
    )
    .await;
    assert_eq!(status, 200);
    let v = json(&body);
    assert_eq!(
        (
            v["messages"].as_array().unwrap().len(),
            v["cursor"].as_str()
        ),
        (0, Some(cursor.as_str()))
    );
    assert!(srv.shutdown().await);
}

/// A second, independent server answers a poll with a cursor from the first one with an
/// explicit reset (its epoch differs), never with silence or an error: any node can
/// answer, and the client is told when history cannot be continued.
#[tokio::test]
async fn foreign_cursor_is_an_explicit_reset() {
    let a = server().await;
    let b = server().await;
    let ca = Client::new(&url(&a)).unwrap();
    let c = ca
        .publish("x", "1", Some("application/json"))
        .await
        .unwrap();
    let (status, _, body) = common::raw(&b, "GET", &format!("/ch/x?since={c}"), &[], b"").await;
    assert_eq!(status, 200);
    assert_eq!(json(&body)["reset"], true);
    assert!(a.shutdown().await);
    assert!(b.shutdown().await);
}

/// A poll of a channel nobody published to hands out a cursor that stays valid for what
/// is published next, even when the housekeeping sweep ran in between (it used to forget
/// the empty channel, and the first publish made a new epoch: the poller's next request
/// got a reset and skipped the first messages).
#[tokio::test]
async fn a_polled_empty_channels_cursor_stays_valid() {
    let srv = server().await;
    let (status, _, body) = common::raw(&srv, "GET", "/ch/new?transport=poll", &[], b"").await;
    assert_eq!(status, 200);
    let empty = json(&body)["cursor"].as_str().unwrap().to_owned();
    assert!(empty.ends_with(":0"), "{empty}");
    srv.state.hub.sweep().await.unwrap();
    let client = Client::new(&url(&srv)).unwrap();
    let first = client
        .publish("new", "1", Some("application/json"))
        .await
        .unwrap();
    assert!(
        empty.starts_with(&format!("{}:", first.epoch)),
        "{empty} then {first}"
    );
    let (_, _, body) = common::raw(&srv, "GET", &format!("/ch/new?since={empty}"), &[], b"").await;
    let v = json(&body);
    assert_eq!(v["reset"], false, "{v}");
    assert_eq!(v["messages"][0]["cursor"], first.to_string());
    assert_eq!(v["cursor"], first.to_string());
    assert!(srv.shutdown().await);
}

/// On shutdown: WebSocket clients get close 1012, SSE a final `reconnect` event, streams
/// a final `reconnect` line, held long-polls an immediate answer; the drain completes.
#[tokio::test]
async fn graceful_shutdown_tells_everyone_to_reconnect() {
    let srv = server().await;
    let client = Client::new(&url(&srv)).unwrap();
    let mut ws = client
        .subscribe(Transport::WebSocket, &[("s", None)])
        .await
        .unwrap();
    let mut sse = client
        .subscribe(Transport::Sse, &[("s", None)])
        .await
        .unwrap();
    let mut stream = client
        .subscribe(Transport::Stream, &[("s", None)])
        .await
        .unwrap();
    let (mut tws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ch/s", srv.addr))
        .await
        .unwrap();
    let c = client
        .publish("s", "1", Some("application/json"))
        .await
        .unwrap();
    let mut lp = client
        .subscribe(Transport::LongPoll, &[("s", Some(c))])
        .await
        .unwrap();
    for s in [&mut ws, &mut sse, &mut stream] {
        assert_eq!(bounded(s.next()).await.unwrap().cursor, Some(c));
    }
    let held = tokio::spawn(async move { lp.next().await });
    // Let the long-poll reach the server before shutting down (bounded by the test step).
    bounded(async {
        loop {
            if srv.state.hub.subscriber_count("s") >= 5 {
                break;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;

    let shutdown = tokio::spawn(srv.shutdown());
    for s in [&mut ws, &mut sse, &mut stream] {
        match bounded(s.next()).await {
            Err(Error::Closed { reconnect: true }) => {}
            other => panic!("{:?}: {other:?}", s.transport()),
        }
    }
    // An independent client sees the close code too.
    let close = loop {
        match bounded(tws.next()).await {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(f))) => break f.unwrap(),
            Some(Ok(_)) => {}
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(u16::from(close.code), 1012);
    assert_eq!(close.reason.as_str(), "service restart");
    drop(tws);
    // The held long-poll was answered at once (empty), and then the server is gone.
    let lp_result = bounded(held).await.unwrap();
    assert!(
        lp_result.is_err(),
        "nothing new: the next poll finds the server gone"
    );
    drop((ws, sse, stream));
    assert!(
        bounded(shutdown).await.unwrap(),
        "every connection left before the deadline"
    );
}

/// A held long-poll is answered at once (empty, same cursor) when the backend disconnects
/// its user and when the server shuts down, long before its own timeout: both reach it
/// through the hub closing its subscription.
#[tokio::test]
async fn a_held_longpoll_ends_at_once_on_disconnect_and_on_shutdown() {
    let srv = common::server_holding_longpolls(120_000).await;
    let client = Client::new(&url(&srv)).unwrap();
    let cursor = client
        .publish("held", "0", Some("application/json"))
        .await
        .unwrap()
        .to_string();
    let api = switchboard_client::ApiClient::new(&url(&srv), Some(common::KEY.into())).unwrap();
    let held = |user: &'static str| {
        let (addr, cursor) = (srv.addr, cursor.clone());
        tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let req = format!(
                "GET /ch/held?transport=longpoll&since={cursor}{user} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
            );
            s.write_all(req.as_bytes()).await.unwrap();
            let mut buf = Vec::new();
            // Far under the 120 s hold: only the disconnect or the shutdown ends it.
            tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut buf))
                .await
                .expect("the held long-poll was not answered")
                .unwrap();
            parse_response(&buf)
        })
    };
    let by_user = held("&user=dave");
    common::subscribers_become(&srv, "held", 1).await;
    let r = api
        .disconnect(serde_json::json!({"user": "dave"}))
        .await
        .unwrap();
    assert_eq!(r["disconnected"], 1);
    let (status, _, body) = bounded(by_user).await.unwrap();
    assert_eq!(status, 200);
    let v = json(&body);
    assert_eq!(v["messages"].as_array().map(Vec::len), Some(0), "{v}");
    assert_eq!(v["cursor"].as_str(), Some(cursor.as_str()));

    let anonymous = held("");
    common::subscribers_become(&srv, "held", 1).await;
    let shutdown = tokio::spawn(srv.shutdown());
    let (status, _, body) = bounded(anonymous).await.unwrap();
    assert_eq!(status, 200);
    let v = json(&body);
    assert_eq!(v["messages"].as_array().map(Vec::len), Some(0), "{v}");
    assert_eq!(v["cursor"].as_str(), Some(cursor.as_str()));
    assert!(bounded(shutdown).await.unwrap(), "the drain completed");
}
