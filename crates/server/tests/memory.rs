//! Memory ceilings end to end: under a flood published over HTTP and read live on every
//! live path, what the server retains stays within `limits.max_retained_bytes` (plus the
//! encodings the newest message got since its publish ran the eviction), and a resume
//! from an evicted cursor gets `reset` with `lost` and the held messages on every path;
//! the limit on channels per connection (`limits.max_channels_per_request`) holds on `/sub`
//! and `/ws`.
#![allow(clippy::unwrap_used)]

mod common;

use common::paths::{self, Item, Path};
use common::{json, raw, server_with};
use futures_util::{SinkExt, StreamExt};
use switchboard_proto::Cursor;
use tokio_tungstenite::tungstenite::Message as WsMessage;

#[tokio::test]
async fn under_a_flood_the_budget_holds_and_every_path_resumes_with_a_reset() {
    let budget = 96 * 1024;
    let mut c = common::config();
    c.limits.max_retained_bytes = budget;
    c.limits.max_connections_per_ip = 0;
    c.limits.max_publishes_per_second = 0;
    c.demo = false;
    let srv = server_with(c).await;
    let hub = srv.state.hub.clone();
    let first = paths::publish_ns(&hub, "m", 1..=1).await[0];
    let mut live = Vec::new();
    for path in Path::ALL.into_iter().filter(|p| p.is_live()) {
        live.push((path, paths::open_live(&srv, path, "m", first).await));
    }
    let pad = "p".repeat(500);
    let mut peak = 0;
    for n in 2..=300u64 {
        let body = format!(r#"{{"n":{n},"pad":"{pad}"}}"#);
        let headers = [("Content-Type", "application/json")];
        let (status, _, answer) = raw(&srv, "POST", "/ch/m", &headers, body.as_bytes()).await;
        assert_eq!(status, 200, "never refused");
        let cursor: Cursor = json(&answer)["cursor"].as_str().unwrap().parse().unwrap();
        // Every live path sends it (and so makes its encoding) before the next publish.
        for (path, sub) in &mut live {
            let item = sub.next().await;
            assert_eq!(item.n(), Some(n), "{path:?}: {item:?}");
        }
        let newest = match hub
            .history("m", Some(Cursor::new(cursor.epoch, n - 1)), None)
            .await
        {
            Ok(switchboard_hub::HistoryAnswer::Gap { messages, .. }) => messages[0].clone(),
            other => panic!("{other:?}"),
        };
        let retained = hub.retained_bytes().unwrap();
        assert!(
            retained <= budget + newest.retained_bytes(),
            "{retained} after {n}"
        );
        peak = peak.max(retained);
    }
    assert!(
        peak > budget - budget / 16,
        "the budget was reached: {peak}"
    );
    drop(live);

    let earliest = match hub.history("m", None, None).await.unwrap() {
        switchboard_hub::HistoryAnswer::Gap { messages, .. } => messages[0].cursor().unwrap(),
        other => panic!("{other:?}"),
    };
    assert!(earliest.offset > 2, "the flood evicted: {earliest:?}");
    for path in Path::ALL {
        let items = if path.is_live() {
            let mut sub = paths::open_live(&srv, path, "m", first).await;
            vec![sub.next().await, sub.next().await]
        } else {
            paths::ask(&srv, path, "m", first).await.0
        };
        let at = path
            .reset_has_position()
            .then(|| Cursor::new(earliest.epoch, earliest.offset - 1));
        assert_eq!(
            items[0],
            Item::Reset {
                at,
                lost: Some(earliest.offset - 2)
            },
            "{path:?}"
        );
        let Item::Message { cursor, .. } = &items[1] else {
            panic!("{path:?}: {:?}", items[1]);
        };
        assert_eq!(
            *cursor, earliest,
            "{path:?}: the held messages follow at once"
        );
    }
    assert!(srv.shutdown().await);
}

#[tokio::test]
async fn channels_per_connection_are_limited_on_sub_and_ws() {
    let mut c = common::config();
    c.limits.max_channels_per_request = 2;
    let srv = server_with(c).await;
    let (status, _, body) = raw(
        &srv,
        "GET",
        "/sub?channel=a&channel=b&channel=c&transport=poll",
        &[],
        b"",
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(json(&body)["error"], "too_many_channels");

    let (mut ws, _) = common::ws_open(&srv, "/ws").await;
    let mut reply = serde_json::Value::Null;
    for (id, channel) in ["a", "b", "c"].into_iter().enumerate() {
        let cmd = serde_json::json!({"id": id, "op": "subscribe", "channel": channel});
        ws.send(WsMessage::Text(cmd.to_string().into()))
            .await
            .unwrap();
        reply = loop {
            let frame = common::bounded(ws.next()).await.unwrap().unwrap();
            if let WsMessage::Text(t) = frame {
                let v = json(t.as_bytes());
                if v["id"] == id {
                    break v;
                }
            }
        };
        if id < 2 {
            assert!(reply.get("error").is_none(), "{reply}");
        }
    }
    assert_eq!(reply["error"]["code"], "too_many_requests", "{reply}");
    drop(ws);
    srv.shutdown().await;
}
