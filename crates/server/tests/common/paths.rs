//! Every path a client resumes on, read raw from the wire into one shape ([`Item`]s), so
//! a table can assert the same answer on all of them: native WebSocket, `/ws`
//! subscribe (both also in the compact format), native SSE (`?since=` and `Last-Event-ID`), `/sub` SSE, streaming (native
//! and `/sub`), long-poll and poll (native and `/sub`), `/api/…/history` and the `/ws`
//! history command.

use std::collections::VecDeque;

use futures_util::{SinkExt, StreamExt};
use switchboard_client::{SseEvent, SseParser};
use switchboard_proto::{CompactDecoder, CompactItem, Cursor};
use switchboard_server::server::Running;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::{bounded, json, raw, ws_open, ws_open_compact, Ws, KEY};

/// A path that resumes from a cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Path {
    WsNative,
    WsMux,
    WsNativeCompact,
    WsMuxCompact,
    SseNative,
    SseLastEventId,
    SseSub,
    StreamNative,
    StreamSub,
    LongPollNative,
    LongPollSub,
    PollNative,
    PollSub,
    ApiHistory,
    WsHistory,
}

impl Path {
    pub(crate) const ALL: [Path; 15] = [
        Path::WsNative,
        Path::WsMux,
        Path::WsNativeCompact,
        Path::WsMuxCompact,
        Path::SseNative,
        Path::SseLastEventId,
        Path::SseSub,
        Path::StreamNative,
        Path::StreamSub,
        Path::LongPollNative,
        Path::LongPollSub,
        Path::PollNative,
        Path::PollSub,
        Path::ApiHistory,
        Path::WsHistory,
    ];

    /// Whether the path stays open for live messages (else it answers once).
    pub(crate) fn is_live(self) -> bool {
        matches!(
            self,
            Path::WsNative
                | Path::WsMux
                | Path::WsNativeCompact
                | Path::WsMuxCompact
                | Path::SseNative
                | Path::SseLastEventId
                | Path::SseSub
                | Path::StreamNative
                | Path::StreamSub
        )
    }

    /// Whether a reset there names its position (an envelope or an SSE id); the native
    /// poll body only says `reset: true` (and `lost`), the held messages following.
    pub(crate) fn reset_has_position(self) -> bool {
        !matches!(
            self,
            Path::LongPollNative | Path::PollNative | Path::ApiHistory | Path::WsHistory
        )
    }

    /// Whether payloads arrive alone (native SSE) rather than in envelopes.
    pub(crate) fn is_native_sse(self) -> bool {
        matches!(self, Path::SseNative | Path::SseLastEventId)
    }
}

/// A payload as the wire carried it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Data {
    /// An envelope's `data` (any JSON value: a JSON payload, or a text as a string).
    Value(serde_json::Value),
    /// Native SSE `event: message`: the published text itself.
    SseText(String),
    /// Bytes: an envelope's `data_b64`, or native SSE `event: binary`, decoded.
    Bytes(Vec<u8>),
}

/// One thing a path delivered.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Item {
    /// A reset: where it continues (when the path says), how many were lost (when known).
    Reset {
        at: Option<Cursor>,
        lost: Option<u64>,
    },
    Message {
        cursor: Cursor,
        data: Data,
    },
}

impl Item {
    /// A message's `n` (the tables publish `{"n":N}`).
    pub(crate) fn n(&self) -> Option<u64> {
        let Item::Message { data, .. } = self else {
            return None;
        };
        match data {
            Data::Value(v) => v["n"].as_u64(),
            Data::SseText(t) => serde_json::from_str::<serde_json::Value>(t).ok()?["n"].as_u64(),
            Data::Bytes(_) => None,
        }
    }
}

fn b64(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("base64")
}

fn cursor(v: &serde_json::Value) -> Option<Cursor> {
    v.as_str().map(|s| s.parse().expect("a cursor"))
}

/// An envelope (JSON) as an item; `join`/`leave` are not expected here.
fn envelope(v: &serde_json::Value) -> Item {
    match v["event"].as_str() {
        Some("reset") => Item::Reset {
            at: cursor(&v["cursor"]),
            lost: v["data"]["lost"].as_u64(),
        },
        Some("message") => Item::Message {
            cursor: cursor(&v["cursor"]).expect("a message's cursor"),
            data: match (&v["data"], &v["data_b64"]) {
                (serde_json::Value::Null, serde_json::Value::String(b)) => Data::Bytes(b64(b)),
                (d, serde_json::Value::Null) if v.get("data").is_some() => Data::Value(d.clone()),
                _ => panic!("a message with both or neither of data and data_b64: {v}"),
            },
        },
        other => panic!("unexpected event {other:?}: {v}"),
    }
}

fn native_sse(ev: &SseEvent) -> Item {
    let at = ev.id.as_deref().map(|id| id.parse().expect("an SSE id"));
    match ev.event.as_str() {
        "reset" => Item::Reset {
            at,
            lost: (!ev.data.is_empty()).then(|| {
                json(ev.data.as_bytes())["lost"]
                    .as_u64()
                    .expect("a reset's data is {\"lost\":N}")
            }),
        },
        "message" | "" => Item::Message {
            cursor: at.expect("a message's id"),
            data: Data::SseText(ev.data.clone()),
        },
        "binary" => Item::Message {
            cursor: at.expect("a message's id"),
            data: Data::Bytes(b64(&ev.data)),
        },
        other => panic!("unexpected SSE event {other:?}: {ev:?}"),
    }
}

/// A poll body as items: `/sub` bodies carry resets as envelopes; a native body's
/// `reset: true` (and `lost`) comes first. Returns the items and the body's resume cursor
/// (native) or the channel's (`/sub`).
pub(crate) fn poll_items(body: &serde_json::Value, channel: &str) -> (Vec<Item>, Cursor) {
    let mut items = Vec::new();
    if body["reset"] == true {
        items.push(Item::Reset {
            at: None,
            lost: body["lost"].as_u64(),
        });
    } else {
        assert!(body.get("lost").is_none(), "lost without a reset: {body}");
    }
    for m in body["messages"].as_array().expect("messages") {
        items.push(envelope(m));
    }
    let resume = cursor(&body["cursor"])
        .or_else(|| cursor(&body["cursors"][channel]))
        .expect("a resume cursor");
    (items, resume)
}

/// A response whose body is read as it comes (chunked), for SSE and streaming.
pub(crate) struct Chunked {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Chunked {
    async fn open(r: &Running, target: &str, headers: &[(&str, &str)]) -> Chunked {
        let mut stream = TcpStream::connect(r.addr).await.unwrap();
        let mut req = format!("GET {target} HTTP/1.1\r\nHost: {}\r\n", r.addr);
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut c = Chunked {
            stream,
            buf: Vec::new(),
        };
        let head = loop {
            if let Some(end) = c.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&c.buf[..end]).into_owned();
                c.buf.drain(..end + 4);
                break head;
            }
            c.fill().await;
        };
        assert!(head.starts_with("HTTP/1.1 200"), "{target}: {head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("transfer-encoding: chunked"),
            "{head}"
        );
        c
    }

    async fn fill(&mut self) {
        let mut chunk = [0u8; 8192];
        let n = bounded(self.stream.read(&mut chunk)).await.unwrap();
        assert!(n > 0, "the response ended");
        self.buf.extend_from_slice(&chunk[..n]);
    }

    /// The next chunk's data.
    async fn chunk(&mut self) -> Vec<u8> {
        loop {
            if let Some(nl) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let size = std::str::from_utf8(&self.buf[..nl]).unwrap().trim();
                let size = usize::from_str_radix(size, 16).unwrap();
                assert!(size > 0, "the response ended");
                if self.buf.len() >= nl + 2 + size + 2 {
                    let data = self.buf[nl + 2..nl + 2 + size].to_vec();
                    self.buf.drain(..nl + 2 + size + 2);
                    return data;
                }
            }
            self.fill().await;
        }
    }
}

/// A live path, opened: yields items as they come.
pub(crate) enum Live {
    Ws(Ws),
    /// The compact format, read back into envelopes.
    Compact(Ws, CompactDecoder),
    Sse {
        body: Chunked,
        parser: SseParser,
        native: bool,
        ready: VecDeque<Item>,
    },
    Lines {
        body: Chunked,
        buf: Vec<u8>,
    },
}

impl Live {
    /// The next item (heartbeats, prelude and `/ws` replies skipped).
    pub(crate) async fn next(&mut self) -> Item {
        loop {
            match self {
                Live::Ws(ws) => {
                    let frame = bounded(ws.next()).await.expect("open").unwrap();
                    let WsMessage::Text(t) = frame else { continue };
                    let v = json(t.as_bytes());
                    if v.get("id").is_some() || v.get("result").is_some() {
                        continue;
                    }
                    return envelope(&v);
                }
                Live::Compact(ws, decoder) => {
                    let (frame, binary) = match bounded(ws.next()).await.expect("open").unwrap() {
                        WsMessage::Text(t) => (t.as_bytes().to_vec(), false),
                        WsMessage::Binary(b) => (b.to_vec(), true),
                        _ => continue,
                    };
                    match decoder.decode(&frame, binary).expect("a compact frame") {
                        CompactItem::Envelope(env) => {
                            let text = switchboard_proto::encode_ws_text(&env.as_envelope());
                            return envelope(&json(&text));
                        }
                        // A native stream's start record, `/ws` replies.
                        CompactItem::Start(..) | CompactItem::Other(_) => continue,
                    }
                }
                Live::Sse {
                    body,
                    parser,
                    native,
                    ready,
                } => {
                    if let Some(item) = ready.pop_front() {
                        return item;
                    }
                    let chunk = body.chunk().await;
                    for ev in parser.feed(&chunk) {
                        // `/sub`'s opening (`ready`, every channel's start cursor in its
                        // id) and heartbeat events carry no envelope.
                        if !*native && (ev.event == "ready" || ev.event == "heartbeat") {
                            continue;
                        }
                        ready.push_back(if *native {
                            native_sse(&ev)
                        } else {
                            envelope(&json(ev.data.as_bytes()))
                        });
                    }
                }
                Live::Lines { body, buf } => {
                    if let Some(nl) = buf.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=nl).collect();
                        if line.iter().all(u8::is_ascii_whitespace) {
                            continue;
                        }
                        return envelope(&json(&line));
                    }
                    let chunk = body.chunk().await;
                    buf.extend_from_slice(&chunk);
                }
            }
        }
    }
}

/// Sends one `/ws` command and returns its reply (pushes before it are not expected); on
/// a `compact` connection the reply is a control record.
async fn ws_command(ws: &mut Ws, cmd: serde_json::Value, compact: bool) -> serde_json::Value {
    ws.send(WsMessage::Text(cmd.to_string().into()))
        .await
        .unwrap();
    loop {
        let frame = bounded(ws.next()).await.expect("open").unwrap();
        if let WsMessage::Text(t) = frame {
            let t = if compact {
                t.as_str().strip_prefix('\u{1e}').expect("a control record")
            } else {
                t.as_str()
            };
            let v = json(t.as_bytes());
            if v.get("id").is_some() {
                assert!(v.get("error").is_none(), "{v}");
                return v;
            }
        }
    }
}

/// Opens a live path on `channel` from `since`.
pub(crate) async fn open_live(r: &Running, path: Path, channel: &str, since: Cursor) -> Live {
    let sub = format!("/sub?channel={channel},{since}");
    match path {
        Path::WsNative => Live::Ws(ws_open(r, &format!("/ch/{channel}?since={since}")).await.0),
        Path::WsNativeCompact => Live::Compact(
            ws_open_compact(r, &format!("/ch/{channel}?since={since}")).await,
            CompactDecoder::default(),
        ),
        Path::WsMux | Path::WsMuxCompact => {
            let compact = path == Path::WsMuxCompact;
            let mut ws = if compact {
                ws_open_compact(r, "/ws").await
            } else {
                ws_open(r, "/ws").await.0
            };
            let reply = ws_command(
                &mut ws,
                serde_json::json!({"id": 1, "op": "subscribe", "channel": channel, "since": since.to_string()}),
                compact,
            )
            .await;
            assert!(reply["result"]["cursor"].is_string(), "{reply}");
            if compact {
                Live::Compact(ws, CompactDecoder::default())
            } else {
                Live::Ws(ws)
            }
        }
        Path::SseNative | Path::SseLastEventId | Path::SseSub => {
            let since_s = since.to_string();
            let (target, headers): (String, Vec<(&str, &str)>) = match path {
                Path::SseNative => (
                    format!("/ch/{channel}?since={since}"),
                    vec![("Accept", "text/event-stream")],
                ),
                Path::SseLastEventId => (
                    format!("/ch/{channel}"),
                    vec![("Accept", "text/event-stream"), ("Last-Event-ID", &since_s)],
                ),
                _ => (format!("{sub}&transport=sse"), vec![]),
            };
            Live::Sse {
                body: Chunked::open(r, &target, &headers).await,
                parser: SseParser::default(),
                native: path != Path::SseSub,
                ready: VecDeque::new(),
            }
        }
        Path::StreamNative | Path::StreamSub => {
            let target = match path {
                Path::StreamNative => format!("/ch/{channel}?transport=stream&since={since}"),
                _ => format!("{sub}&transport=stream"),
            };
            Live::Lines {
                body: Chunked::open(r, &target, &[]).await,
                buf: Vec::new(),
            }
        }
        other => panic!("{other:?} is not a live path"),
    }
}

/// Asks a path that answers once; returns its items and resume cursor.
pub(crate) async fn ask(
    r: &Running,
    path: Path,
    channel: &str,
    since: Cursor,
) -> (Vec<Item>, Cursor) {
    let sub = format!("/sub?channel={channel},{since}");
    let target = match path {
        Path::LongPollNative => format!("/ch/{channel}?transport=longpoll&since={since}"),
        Path::LongPollSub => format!("{sub}&transport=longpoll"),
        Path::PollNative => format!("/ch/{channel}?transport=poll&since={since}"),
        Path::PollSub => format!("{sub}&transport=poll"),
        Path::ApiHistory => format!("/api/channels/{channel}/history?since={since}"),
        Path::WsHistory => {
            let (mut ws, _) = ws_open(r, "/ws").await;
            let reply = ws_command(
                &mut ws,
                serde_json::json!({"id": 7, "op": "history", "channel": channel, "since": since.to_string()}),
                false,
            )
            .await;
            return poll_items(&reply["result"], channel);
        }
        other => panic!("{other:?} is a live path"),
    };
    let auth = format!("Bearer {KEY}");
    let (status, _, body) = raw(r, "GET", &target, &[("Authorization", &auth)], b"").await;
    assert_eq!(status, 200, "{target}: {}", String::from_utf8_lossy(&body));
    poll_items(&json(&body), channel)
}

/// An item reduced to what the resume table compares: a reset's position (when the path
/// names it) and count, a message's cursor and `n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Got {
    Reset(Option<Cursor>, Option<u64>),
    Msg(Cursor, u64),
}

impl Got {
    pub(crate) fn of(item: &Item) -> Got {
        match item {
            Item::Reset { at, lost } => Got::Reset(*at, *lost),
            Item::Message { cursor, .. } => Got::Msg(*cursor, item.n().expect("an n")),
        }
    }
}

/// The table's configuration: `history_size` 3 everywhere (of 7 messages, offsets 5–7 are
/// held), and no per-address connection limit (every path connects from 127.0.0.1).
pub(crate) fn short_history() -> switchboard_server::config::Config {
    let mut c = super::config();
    for ns in c.namespaces.values_mut() {
        ns.history_size = 3;
    }
    c.limits.max_connections_per_ip = 0;
    c
}

/// Where a resume starts, relative to a channel holding offsets 5–7 of 7.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Case {
    /// At offset 4: what follows is all held.
    Current,
    /// At offset 1: 2–4 were evicted.
    Evicted,
    /// A cursor of the channel's log before a restart (another epoch).
    EarlierEpoch,
}

impl Case {
    pub(crate) const ALL: [Case; 3] = [Case::Current, Case::Evicted, Case::EarlierEpoch];
}

/// The channel of one row of the table.
pub(crate) fn channel_of(prefix: &str, path: Path, case: Case) -> String {
    format!("{prefix}-{path:?}-{case:?}").to_lowercase()
}

/// Publishes `{"n":from}`, … on `hub` (as the backend); returns their cursors.
pub(crate) async fn publish_ns(
    hub: &switchboard_hub::Hub,
    channel: &str,
    ns: std::ops::RangeInclusive<u64>,
) -> Vec<Cursor> {
    let mut out = Vec::new();
    for n in ns {
        let payload = switchboard_hub::Payload::json(format!("{{\"n\":{n}}}").into()).unwrap();
        out.push(hub.publish(channel, payload).await.unwrap());
    }
    out
}

/// The table of issue #19, "exactly once, end to end": on every path, from each [`Case`],
/// what arrives after the reset and what the reset says. Messages are published on
/// `publisher` (`history_size` 3: of 7, offsets 5–7 are held) and read from `answering`;
/// `earlier(channel)` is a cursor of the channel's previous epoch. On live paths a further
/// message must come next (nothing repeated, nothing extra); answers that end give the
/// last message's cursor to resume from.
pub(crate) async fn resume_table(
    answering: &Running,
    publisher: &switchboard_hub::Hub,
    prefix: &str,
    earlier: &std::collections::HashMap<String, Cursor>,
) {
    for path in Path::ALL {
        for case in Case::ALL {
            let channel = channel_of(prefix, path, case);
            let c = publish_ns(publisher, &channel, 1..=7).await;
            let (since, lost) = match case {
                Case::Current => (c[3], None),
                Case::Evicted => (c[0], Some(3)),
                Case::EarlierEpoch => (earlier[&channel], None),
            };
            assert!(
                case != Case::EarlierEpoch || since.epoch != c[0].epoch,
                "{channel}: a restart makes a new epoch"
            );
            let mut want = Vec::new();
            if case != Case::Current {
                let at = path.reset_has_position().then_some(c[3]);
                want.push(Got::Reset(at, lost));
            }
            want.extend((5..=7).zip(&c[4..]).map(|(n, c)| Got::Msg(*c, n)));
            let row = format!("{path:?} × {case:?}");
            if path.is_live() {
                let mut live = open_live(answering, path, &channel, since).await;
                let mut got = Vec::new();
                for _ in 0..want.len() {
                    got.push(Got::of(&live.next().await));
                }
                assert_eq!(got, want, "{row}");
                let next = publish_ns(publisher, &channel, 8..=8).await;
                assert_eq!(Got::of(&live.next().await), Got::Msg(next[0], 8), "{row}");
            } else {
                let (items, resume) = ask(answering, path, &channel, since).await;
                let got: Vec<Got> = items.iter().map(Got::of).collect();
                assert_eq!(got, want, "{row}");
                assert_eq!(resume, c[6], "{row}: resume after the last message");
            }
        }
    }
}
