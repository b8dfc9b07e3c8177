//! Resuming, end to end, through real sockets: the table of every path that resumes ×
//! {cursor current, cursor evicted, cursor of an earlier epoch after a restart} (exactly
//! which messages arrive after the reset and what the reset says, see
//! `common::paths::resume_table`; its Redis rows are in `redis_nodes.rs`), and text,
//! JSON and binary payloads arriving as sent on every path.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;

use common::paths::{self, Case, Data, Item, Path};
use common::{raw, server_with};
use switchboard_proto::Cursor;

#[tokio::test]
async fn every_path_resumes_with_the_held_messages_after_a_reset() {
    // The cursors a server had before it restarted (its memory broker is gone with it).
    let before = server_with(paths::short_history()).await;
    let mut earlier = HashMap::new();
    for path in Path::ALL {
        let channel = paths::channel_of("t", path, Case::EarlierEpoch);
        let c = paths::publish_ns(&before.state.hub, &channel, 1..=2).await;
        earlier.insert(channel, c[1]);
    }
    assert!(before.shutdown().await);

    let srv = server_with(paths::short_history()).await;
    paths::resume_table(&srv, &srv.state.hub.clone(), "t", &earlier).await;
    assert!(srv.shutdown().await);
}

/// The issue's reproduction, as it was reported: `GET /ch/rx?since=E:1` with offsets
/// 5–7 held answered `{"messages":[],"cursor":"E:7","reset":true}`.
#[tokio::test]
async fn the_reported_poll_now_carries_the_held_messages() {
    let srv = server_with(paths::short_history()).await;
    let c = paths::publish_ns(&srv.state.hub, "rx", 1..=7).await;
    let e = c[0].epoch;
    let (status, _, body) = raw(&srv, "GET", &format!("/ch/rx?since={e}:1"), &[], b"").await;
    assert_eq!(status, 200);
    let cursors = |n: std::ops::RangeInclusive<u64>| {
        n.map(|n| format!(r#"{{"channel":"rx","event":"message","offset":{n},"cursor":"{e}:{n}","data":{{"n":{n}}}}}"#))
            .collect::<Vec<_>>()
            .join(",")
    };
    assert_eq!(
        String::from_utf8(body).unwrap(),
        format!(
            r#"{{"messages":[{}],"cursor":"{e}:7","reset":true,"lost":3}}"#,
            cursors(5..=7)
        )
    );
    assert!(srv.shutdown().await);
}

/// Text "SGk=", JSON and the bytes "Hi" (whose base64 is "SGk="), published over HTTP
/// with their content types, arrive as what was sent on every path: in envelopes as a
/// string, the JSON value and `data_b64`; on native SSE as `event: message` with the
/// text, the JSON text, and `event: binary` with the base64.
#[tokio::test]
async fn text_json_and_binary_arrive_as_sent_on_every_path() {
    let srv = server_with(paths::short_history()).await;
    let sent: [(&str, &[u8]); 3] = [
        ("text/plain", b"SGk="),
        ("application/json", br#"{"a":"SGk="}"#),
        ("application/octet-stream", b"Hi"),
    ];
    for path in Path::ALL {
        let channel = format!("kinds-{path:?}").to_lowercase();
        let mut cursors: Vec<Cursor> = Vec::new();
        for (content_type, body) in sent {
            let (status, _, answer) = raw(
                &srv,
                "POST",
                &format!("/ch/{channel}"),
                &[("Content-Type", content_type)],
                body,
            )
            .await;
            assert_eq!(status, 200);
            let answer = common::json(&answer);
            cursors.push(answer["cursor"].as_str().unwrap().parse().unwrap());
        }
        let since = Cursor::new(cursors[0].epoch, 0);
        let items: Vec<Item> = if path.is_live() {
            let mut live = paths::open_live(&srv, path, &channel, since).await;
            let mut items = Vec::new();
            for _ in 0..3 {
                items.push(live.next().await);
            }
            items
        } else {
            paths::ask(&srv, path, &channel, since).await.0
        };
        let want = if path.is_native_sse() {
            [
                Data::SseText("SGk=".into()),
                Data::SseText(r#"{"a":"SGk="}"#.into()),
                Data::Bytes(b"Hi".to_vec()),
            ]
        } else {
            [
                Data::Value("SGk=".into()),
                Data::Value(serde_json::json!({"a": "SGk="})),
                Data::Bytes(b"Hi".to_vec()),
            ]
        };
        let want: Vec<Item> = cursors
            .iter()
            .zip(want)
            .map(|(c, data)| Item::Message { cursor: *c, data })
            .collect();
        assert_eq!(items, want, "{path:?}");
    }
    assert!(srv.shutdown().await);
}
