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

use bytes::{BufMut, Bytes, BytesMut};

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
