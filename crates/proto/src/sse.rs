//! Server-Sent Events bodies (`text/event-stream`), pure encoders.
//!
//! An event is written as
//!
//! ```text
//! id: <cursor>\n        (when the event has a position; the browser resends it as Last-Event-ID)
//! event: <name>\n       (message | binary | join | leave | reset)
//! data: <line 1>\n      (one `data:` line per line of the payload; CR, LF and CRLF all split)
//! data: <line 2>\n
//! \n                    (a blank line dispatches the event)
//! ```
//!
//! Two payload choices exist: [`encode_sse_envelope`] puts the whole JSON envelope in
//! `data` (the multiplexed endpoint, which needs the channel name; binary is its
//! `data_b64`), and [`encode_sse_data`] puts only the payload (the native
//! `new EventSource("/ch/NAME")` endpoint, where `e.data` is what was published and
//! `e.lastEventId` the cursor). On the native endpoint a binary payload cannot be told
//! from text by its `data:` alone (`data: SGk=` could be the text `SGk=` or the bytes
//! `Hi`), so it has an event of its own: `event: binary`, `data:` its standard padded
//! base64 (`es.addEventListener('binary', e => atob(e.data))`). Text and JSON are both
//! `event: message` (what `onmessage` receives), `data:` the published text itself.
//! Comments (`:text`) are heartbeats and padding; `retry:` sets the reconnect delay.
//!
//! # The multiplexed endpoint's ids: every channel's cursor
//!
//! One `EventSource` on `/sub?channel=a&channel=b` reads several channels, and the one id
//! the browser keeps (and resends as `Last-Event-ID` when it reconnects by itself) must
//! let the server resume every channel. So each event's id lists the cursor of every
//! channel of the request, in the order of its `channel=` parameters, separated by `,`:
//!
//! ```text
//! id: 3f2a:17,9c:4          (a at 3f2a:17, b at 9c:4)
//! ```
//!
//! [`write_sse_cursors_id`] writes it, [`parse_sse_cursors_id`] reads it back (the count
//! must match the request's channels). A stream opens with such an id on an event of its
//! own, `ready` (empty data; [`write_sse_ready`]): the browser's last event id is then
//! set before the first message, so a reconnect still resumes every channel from where it
//! started, and a client learns where each channel starts and that events get through
//! (a proxy that holds the response back shows as a stream with no `ready`). Its
//! heartbeat is a real event too, [`SSE_HEARTBEAT_EVENT`], because an `EventSource`
//! never shows comments to the page and a client needs to see the heartbeat to notice a
//! dead connection. Pages that do not listen for `ready` or `heartbeat` never see them.

use bytes::{BufMut, Bytes, BytesMut};

use crate::cursor::{Cursor, CursorError};
use crate::envelope::{Data, Envelope, Event};

/// The parts of one SSE event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SseEvent<'a> {
    /// `id:` line. CR, LF and NUL are not allowed in an id; they are dropped.
    pub id: Option<&'a str>,
    /// `event:` line. CR and LF are dropped.
    pub event: Option<&'a str>,
    /// The payload; split into `data:` lines at CR, LF and CRLF.
    pub data: &'a [u8],
    /// `retry:` line in milliseconds.
    pub retry: Option<u64>,
}

fn write_field_value(out: &mut BytesMut, name: &[u8], value: &str, bad: &[u8]) {
    out.extend_from_slice(name);
    for chunk in value.as_bytes().split(|b| bad.contains(b)) {
        out.extend_from_slice(chunk);
    }
    out.put_u8(b'\n');
}

/// Appends `data:` lines for `data`, one per line (CRLF, CR or LF ends a line).
fn write_data_lines(out: &mut BytesMut, data: &[u8]) {
    out.reserve(data.len() + 8);
    let mut rest = data;
    loop {
        out.extend_from_slice(b"data: ");
        match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            Some(i) => {
                out.extend_from_slice(&rest[..i]);
                out.put_u8(b'\n');
                let skip = if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                rest = &rest[i + skip..];
            }
            None => {
                out.extend_from_slice(rest);
                out.put_u8(b'\n');
                return;
            }
        }
    }
}

/// Appends one complete event (ending with the blank line) to `out`.
pub fn write_sse_event(out: &mut BytesMut, ev: &SseEvent<'_>) {
    if let Some(id) = ev.id {
        write_field_value(out, b"id: ", id, b"\r\n\0");
    }
    if let Some(name) = ev.event {
        write_field_value(out, b"event: ", name, b"\r\n");
    }
    if let Some(ms) = ev.retry {
        out.extend_from_slice(b"retry: ");
        crate::json::write_u64(out, ms);
        out.put_u8(b'\n');
    }
    write_data_lines(out, ev.data);
    out.put_u8(b'\n');
}

/// One complete event as bytes.
pub fn encode_sse_event(ev: &SseEvent<'_>) -> Bytes {
    let mut out = BytesMut::with_capacity(ev.data.len() + 64);
    write_sse_event(&mut out, ev);
    out.freeze()
}

fn write_envelope_event(out: &mut BytesMut, env: &Envelope<'_>, name: &str, payload: &[u8]) {
    let id = env.cursor.map(|c| c.to_str_buf());
    write_sse_event(
        out,
        &SseEvent {
            id: id.as_ref().map(|s| s.as_str()),
            event: Some(name),
            data: payload,
            retry: None,
        },
    );
}

/// An event whose `data` is the envelope's JSON (always one line); `id:` is the cursor.
pub fn encode_sse_envelope(env: &Envelope<'_>) -> Bytes {
    let mut json = BytesMut::new();
    env.write_json(&mut json);
    let mut out = BytesMut::with_capacity(json.len() + 80);
    write_envelope_event(&mut out, env, env.event.as_str(), &json);
    out.freeze()
}

/// The event name of a binary message on the native endpoint ([`encode_sse_data`]).
pub const SSE_BINARY_EVENT: &str = "binary";

/// An event whose `data` is the payload alone (JSON verbatim, text, or base64 for binary),
/// split into as many `data:` lines as it has lines; `id:` is the cursor. A binary
/// message's event is [`SSE_BINARY_EVENT`] (see the module docs).
pub fn encode_sse_data(env: &Envelope<'_>) -> Bytes {
    let mut payload = BytesMut::new();
    env.write_payload_text(&mut payload);
    let name = match (env.event, env.data) {
        (Event::Message, Data::Binary(_)) => SSE_BINARY_EVENT,
        (event, _) => event.as_str(),
    };
    let mut out = BytesMut::with_capacity(payload.len() + 80);
    write_envelope_event(&mut out, env, name, &payload);
    out.freeze()
}

/// A comment (ignored by clients; used as heartbeat). Each line of `text` becomes one
/// `:` line.
pub fn sse_comment(text: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(text.len() + 2);
    for line in text.split(['\n', '\r']) {
        out.put_u8(b':');
        out.extend_from_slice(line.as_bytes());
        out.put_u8(b'\n');
    }
    out.freeze()
}

/// The heartbeat comment, `:\n`.
pub fn sse_heartbeat() -> Bytes {
    Bytes::from_static(b":\n")
}

/// Sets the client's reconnection delay: `retry: <ms>\n\n`.
pub fn sse_retry(ms: u64) -> Bytes {
    let mut out = BytesMut::with_capacity(32);
    out.extend_from_slice(b"retry: ");
    crate::json::write_u64(&mut out, ms);
    out.extend_from_slice(b"\n\n");
    out.freeze()
}

/// Appends `id: C1,C2,…\n`: the cursors of a multiplexed stream's channels, in the
/// request's order (see the module docs).
pub fn write_sse_cursors_id(out: &mut BytesMut, cursors: impl IntoIterator<Item = Cursor>) {
    out.extend_from_slice(b"id: ");
    for (i, c) in cursors.into_iter().enumerate() {
        if i > 0 {
            out.put_u8(b',');
        }
        out.extend_from_slice(c.to_str_buf().as_bytes());
    }
    out.put_u8(b'\n');
}

/// Appends the multiplexed stream's first event: `id: <cursors>`, `event: ready`, empty
/// data (see the module docs).
pub fn write_sse_ready(out: &mut BytesMut, cursors: impl IntoIterator<Item = Cursor>) {
    write_sse_cursors_id(out, cursors);
    out.extend_from_slice(b"event: ready\ndata:\n\n");
}

/// Appends `event` (an encoded event) with `cursors` as its id instead of its own (its
/// leading `id:` line, if any, is left out).
pub fn write_sse_with_cursors(
    out: &mut BytesMut,
    cursors: impl IntoIterator<Item = Cursor>,
    event: &[u8],
) {
    let rest = match event.strip_prefix(b"id:") {
        Some(after) => after
            .iter()
            .position(|&b| b == b'\n')
            .map_or(&[][..], |i| &after[i + 1..]),
        None => event,
    };
    out.reserve(rest.len() + 64);
    write_sse_cursors_id(out, cursors);
    out.extend_from_slice(rest);
}

/// Reads a multiplexed stream's id back: exactly `expected` cursors, `,`-separated.
/// Anything else (another count, a malformed cursor) is an error; nothing is allocated
/// before the count is known to match.
pub fn parse_sse_cursors_id(id: &str, expected: usize) -> Result<Vec<Cursor>, CursorError> {
    if id.split(',').count() != expected {
        return Err(CursorError::MissingSeparator);
    }
    let mut out = Vec::with_capacity(expected);
    for part in id.split(',') {
        out.push(Cursor::parse(part.as_bytes())?);
    }
    Ok(out)
}

/// The multiplexed stream's heartbeat: an event a page can listen to (`heartbeat`, empty
/// data), not a comment, which an `EventSource` would hide.
pub const SSE_HEARTBEAT_EVENT: &[u8] = b"event: heartbeat\ndata:\n\n";

/// Bytes of padding in [`sse_prelude`] and [`crate::stream_prelude`].
pub const PRELUDE_PADDING: usize = 2048;

const fn padded_line<const N: usize>(first: u8) -> [u8; N] {
    let mut a = [b' '; N];
    a[0] = first;
    a[N - 1] = b'\n';
    a
}

static SSE_PRELUDE: [u8; PRELUDE_PADDING + 2] = padded_line(b':');

/// A comment line of 2048 spaces, sent first so buffering proxies and old browsers start
/// delivering the stream at once.
pub fn sse_prelude() -> Bytes {
    Bytes::from_static(&SSE_PRELUDE)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::cursor::{Cursor, Epoch};

    #[test]
    fn event_table() {
        let cases: &[(SseEvent<'_>, &str)] = &[
            (
                SseEvent {
                    data: b"hello",
                    ..Default::default()
                },
                "data: hello\n\n",
            ),
            (
                SseEvent {
                    data: b"",
                    ..Default::default()
                },
                "data: \n\n",
            ),
            (
                SseEvent {
                    data: b"a\nb",
                    ..Default::default()
                },
                "data: a\ndata: b\n\n",
            ),
            (
                SseEvent {
                    data: b"a\r\nb\rc\n",
                    ..Default::default()
                },
                "data: a\ndata: b\ndata: c\ndata: \n\n",
            ),
            (
                SseEvent {
                    data: b"\n\n",
                    ..Default::default()
                },
                "data: \ndata: \ndata: \n\n",
            ),
            (
                SseEvent {
                    data: b" lead",
                    ..Default::default()
                },
                "data:  lead\n\n",
            ),
            (
                SseEvent {
                    id: Some("abc:3"),
                    event: Some("message"),
                    data: b"x",
                    retry: Some(1500),
                },
                "id: abc:3\nevent: message\nretry: 1500\ndata: x\n\n",
            ),
            (
                SseEvent {
                    id: Some("a\nb\0c"),
                    event: Some("e\r\nv"),
                    data: b"x",
                    retry: None,
                },
                "id: abc\nevent: ev\ndata: x\n\n",
            ),
        ];
        for (ev, want) in cases {
            assert_eq!(
                std::str::from_utf8(&encode_sse_event(ev)).unwrap(),
                *want,
                "{ev:?}"
            );
        }
    }

    /// Decodes per the HTML spec's event-stream parsing (enough for these tests).
    fn parse_data(stream: &str) -> String {
        let mut data = String::new();
        for line in stream.lines() {
            if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.strip_prefix(' ').unwrap_or(v));
                data.push('\n');
            }
        }
        data.pop();
        data
    }

    #[test]
    fn multiline_payload_round_trips() {
        for payload in ["one", "two\nlines", "trailing\n", "\nleading", "a\n\nb", ""] {
            let ev = encode_sse_event(&SseEvent {
                data: payload.as_bytes(),
                ..Default::default()
            });
            assert_eq!(parse_data(std::str::from_utf8(&ev).unwrap()), payload);
        }
    }

    #[test]
    fn envelope_events() {
        let c = Cursor::new(Epoch(0xabc), 3);
        let env = crate::Envelope::message("chat:lobby", c, Data::Json(b"{\n\"a\":1\n}"));
        assert_eq!(
            std::str::from_utf8(&encode_sse_envelope(&env)).unwrap(),
            "id: abc:3\nevent: message\ndata: {\"channel\":\"chat:lobby\",\"event\":\"message\",\"offset\":3,\"cursor\":\"abc:3\",\"data\":{ \"a\":1 }}\n\n"
        );
        assert_eq!(
            std::str::from_utf8(&encode_sse_data(&env)).unwrap(),
            "id: abc:3\nevent: message\ndata: {\ndata: \"a\":1\ndata: }\n\n"
        );
        let bin = crate::Envelope::message("c", c, Data::Binary(&[0, 255]));
        assert_eq!(
            std::str::from_utf8(&encode_sse_data(&bin)).unwrap(),
            "id: abc:3\nevent: binary\ndata: AP8=\n\n"
        );
        // The same characters as text stay a `message`: the event tells them apart.
        let text = crate::Envelope::message("c", c, Data::Text("AP8="));
        assert_eq!(
            std::str::from_utf8(&encode_sse_data(&text)).unwrap(),
            "id: abc:3\nevent: message\ndata: AP8=\n\n"
        );
        // The envelope form needs no other name: binary is its `data_b64`.
        assert!(std::str::from_utf8(&encode_sse_envelope(&bin))
            .unwrap()
            .starts_with("id: abc:3\nevent: message\ndata: {"));
        let join = crate::Envelope {
            channel: "c",
            event: Event::Join,
            cursor: None,
            data: Data::Json(b"{}"),
        };
        assert_eq!(
            std::str::from_utf8(&encode_sse_data(&join)).unwrap(),
            "event: join\ndata: {}\n\n"
        );
        let reset = crate::Envelope::reset("c", Cursor::new(Epoch(1), 9));
        assert_eq!(
            std::str::from_utf8(&encode_sse_data(&reset)).unwrap(),
            "id: 1:9\nevent: reset\ndata: \n\n"
        );
        let lost = crate::reset_data(3);
        let reset = crate::Envelope {
            data: Data::Json(&lost),
            ..crate::Envelope::reset("c", Cursor::new(Epoch(1), 4))
        };
        assert_eq!(
            std::str::from_utf8(&encode_sse_data(&reset)).unwrap(),
            "id: 1:4\nevent: reset\ndata: {\"lost\":3}\n\n"
        );
    }

    #[test]
    fn cursors_ids() {
        let a = Cursor::new(Epoch(0x3f2a), 17);
        let b = Cursor::new(Epoch(0x9c), 4);
        let mut out = BytesMut::new();
        write_sse_cursors_id(&mut out, [a, b]);
        assert_eq!(&out[..], b"id: 3f2a:17,9c:4\n");
        assert_eq!(parse_sse_cursors_id("3f2a:17,9c:4", 2), Ok(vec![a, b]));
        assert_eq!(parse_sse_cursors_id("3f2a:17", 1), Ok(vec![a]));
        for (bad, n) in [
            ("3f2a:17,9c:4", 1),
            ("3f2a:17", 2),
            ("", 1),
            ("x:1,9c:4", 2),
            ("1:1,", 2),
        ] {
            assert!(parse_sse_cursors_id(bad, n).is_err(), "{bad:?} {n}");
        }
        // An encoded event gets the cursors as its id instead of its own.
        let env = crate::Envelope::message("a", a, crate::Data::Json(b"1"));
        let mut with = BytesMut::new();
        write_sse_with_cursors(&mut with, [a, b], &encode_sse_envelope(&env));
        assert_eq!(
            std::str::from_utf8(&with).unwrap(),
            "id: 3f2a:17,9c:4\nevent: message\ndata: {\"channel\":\"a\",\"event\":\"message\",\"offset\":17,\"cursor\":\"3f2a:17\",\"data\":1}\n\n"
        );
        // One without an id (join, leave) gets one too.
        let join = crate::Envelope {
            channel: "a",
            event: Event::Join,
            cursor: None,
            data: Data::Json(b"{}"),
        };
        let mut with = BytesMut::new();
        write_sse_with_cursors(&mut with, [a], &encode_sse_envelope(&join));
        assert!(with.starts_with(b"id: 3f2a:17\nevent: join\ndata: "));
        let mut ready = BytesMut::new();
        write_sse_ready(&mut ready, [a, b]);
        assert_eq!(&ready[..], b"id: 3f2a:17,9c:4\nevent: ready\ndata:\n\n");
        // The heartbeat is one complete event with empty data (`data:` makes a browser
        // dispatch it; without a data line it would not).
        assert_eq!(SSE_HEARTBEAT_EVENT, b"event: heartbeat\ndata:\n\n");
    }

    #[test]
    fn comments_retry_prelude() {
        assert_eq!(&sse_comment("ping")[..], b":ping\n");
        assert_eq!(&sse_comment("a\nb")[..], b":a\n:b\n");
        assert_eq!(&sse_heartbeat()[..], b":\n");
        assert_eq!(&sse_retry(3000)[..], b"retry: 3000\n\n");
        let p = sse_prelude();
        assert!(p.len() >= 2048);
        assert_eq!(p[0], b':');
        assert_eq!(p[p.len() - 1], b'\n');
        assert!(p[1..p.len() - 1].iter().all(|&b| b == b' '));
    }
}
