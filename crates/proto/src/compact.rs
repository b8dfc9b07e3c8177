//! The compact WebSocket format (subprotocol [`COMPACT_PROTOCOL`]): a message whose
//! position follows the previous message's is sent as its payload alone, and everything
//! else as a control record. Steady state, a 64-byte payload is a 66-byte frame.
//!
//! The frames, each decided exactly (no guessing on either side):
//!
//! - **binary frame**: a binary payload, verbatim. Never a control record.
//! - **text frame starting with `0x1E`** (ASCII record separator, the prefix of RFC 7464
//!   JSON text sequences): a control record, the JSON after the byte: a channel event's
//!   envelope (the same JSON as the envelope format), or over `/ws` a reply or
//!   `{"event":"refresh"}`, or on a native stream its start record
//!   `{"start":"E:N","channel":"NAME"}`. No payload frame ever starts with `0x1E`.
//! - **any other text frame**: a JSON or text payload. The decoder's rule: if the frame
//!   parses as JSON, `data` is that value, else `data` is the frame as a string. The
//!   server sends a text payload as is only when that rule reads it back as itself (its
//!   first byte after JSON whitespace cannot begin a JSON value, and it does not start
//!   with `0x1E`), and as a JSON string otherwise, so `data` is exactly what the envelope
//!   would carry.
//!
//! Position: both ends keep the last `message` sent on the connection (channel and
//! cursor). A `message` event one offset after it, in the same channel and epoch, goes as
//! a payload frame and means exactly that position; any other `message` (the first, after
//! a gap, in a new epoch, on another channel) goes as its envelope in a control record.
//! Both kinds then become the last message. `reset`, `join`, `leave` and replies are
//! control records and leave the last message as it was. A native stream (`/ch/NAME`)
//! opens with a start record, which sets the position as a message at its cursor would,
//! so even its first message can go as its payload alone.

use bytes::{BufMut, Bytes, BytesMut};

use crate::cursor::Cursor;
use crate::envelope::{
    parse_envelope, Data, Envelope, Event, ProtoError, ReceivedData, ReceivedEnvelope,
};
use crate::json;

/// The WebSocket subprotocol a client offers for the compact format.
pub const COMPACT_PROTOCOL: &str = "switchboard.compact";

/// The first byte of a control record.
pub const CONTROL_PREFIX: u8 = 0x1e;

/// A payload-only frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PayloadFrame {
    /// A text frame: JSON verbatim, or text (as is, or as a JSON string; see the module
    /// docs).
    Text(Bytes),
    /// A binary frame: the bytes.
    Binary(Bytes),
}

/// The payload-only frame of a `message` envelope; `None` for other events and for a
/// message without data (those only travel as control records).
pub fn encode_compact_payload(env: &Envelope<'_>) -> Option<PayloadFrame> {
    if env.event != Event::Message {
        return None;
    }
    Some(match env.data {
        Data::None => return None,
        Data::Json(raw) => PayloadFrame::Text(Bytes::copy_from_slice(raw)),
        Data::Text(t) if reads_as_text(t.as_bytes()) => {
            PayloadFrame::Text(Bytes::copy_from_slice(t.as_bytes()))
        }
        Data::Text(t) => {
            let mut out = BytesMut::with_capacity(t.len() + 2);
            json::write_str(&mut out, t);
            PayloadFrame::Text(out.freeze())
        }
        Data::Binary(b) => PayloadFrame::Binary(Bytes::copy_from_slice(b)),
    })
}

/// Whether a text sent as is is read back as this text: it does not start with the
/// control prefix, and its first byte after JSON whitespace cannot begin a JSON value (so
/// it never parses as JSON).
fn reads_as_text(t: &[u8]) -> bool {
    if t.first() == Some(&CONTROL_PREFIX) {
        return false;
    }
    let first = t
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    !matches!(
        first,
        Some(b'{' | b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n')
    )
}

/// A control record: [`CONTROL_PREFIX`] and `json` (an envelope, a reply).
pub fn encode_compact_control(json: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(json.len() + 1);
    out.put_u8(CONTROL_PREFIX);
    out.extend_from_slice(json);
    out.freeze()
}

/// A start record (a control record): `{"start":"E:N","channel":"NAME"}`, where a native
/// compact stream starts (after `at`); it sets the position as a message at `at` would.
pub fn encode_compact_start(channel: &str, at: Cursor) -> Bytes {
    let mut out = BytesMut::with_capacity(channel.len() + 48);
    out.put_u8(CONTROL_PREFIX);
    out.extend_from_slice(b"{\"start\":\"");
    out.extend_from_slice(at.to_str_buf().as_bytes());
    out.extend_from_slice(b"\",\"channel\":");
    json::write_str(&mut out, channel);
    out.put_u8(b'}');
    out.freeze()
}

/// Whether a message at `cursor` follows `last` (the last message sent, in the same
/// channel): one offset on, in the same epoch.
pub fn follows(last: Option<Cursor>, cursor: Cursor) -> bool {
    last.is_some_and(|l| l.epoch == cursor.epoch && l.offset.checked_add(1) == Some(cursor.offset))
}

/// The compact poll body (`format=compact` on a native poll or long-poll):
/// `{"cursor":"E:N","data":[…]}`, the payloads of the messages at offsets `N-k+1 ..= N` of
/// epoch `E` (`k` of them, in order; each `data` as the envelope carries it), `cursor` the
/// last one's and where the next poll continues (`,"more":true` when a limit cut the
/// answer). `None` when the messages cannot say it exactly (an event other than
/// `message`, a binary payload, a gap or another epoch): the caller then answers with the
/// envelope body, which a client tells apart by its `messages` key.
pub fn encode_compact_poll(cursor: Cursor, messages: &[Envelope<'_>], more: bool) -> Option<Bytes> {
    let mut out =
        BytesMut::with_capacity(48 + messages.iter().map(|m| m.json_size_hint()).sum::<usize>());
    out.extend_from_slice(b"{\"cursor\":\"");
    out.extend_from_slice(cursor.to_str_buf().as_bytes());
    out.extend_from_slice(b"\",\"data\":[");
    let first = cursor.offset.checked_sub(messages.len() as u64)?;
    for (i, m) in messages.iter().enumerate() {
        let at = Cursor::new(cursor.epoch, first + 1 + i as u64);
        if m.event != Event::Message || m.cursor != Some(at) {
            return None;
        }
        if i > 0 {
            out.put_u8(b',');
        }
        match m.data {
            Data::Json(raw) => json::write_raw_one_line(&mut out, raw),
            Data::Text(t) => json::write_str(&mut out, t),
            Data::None | Data::Binary(_) => return None,
        }
    }
    out.extend_from_slice(if more { b"],\"more\":true}" } else { b"]}" });
    Some(out.freeze())
}

/// One decoded frame of the compact format (client side and tests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompactItem {
    /// A channel event, its position restored for a payload frame.
    Envelope(ReceivedEnvelope),
    /// A start record: the channel and where its stream starts (after this cursor).
    Start(String, Cursor),
    /// Any other control record (a `/ws` reply or push), its JSON.
    Other(Bytes),
}

#[derive(serde::Deserialize)]
struct StartRecord {
    start: Cursor,
    channel: String,
}

/// Reads the compact format back into envelopes, keeping the last message's position.
#[derive(Clone, Debug, Default)]
pub struct CompactDecoder {
    last: Option<(String, Cursor)>,
}

impl CompactDecoder {
    /// Decodes a text frame (`binary` false) or a binary frame.
    pub fn decode(&mut self, frame: &[u8], binary: bool) -> Result<CompactItem, ProtoError> {
        if !binary {
            if let Some(json) = frame.strip_prefix(&[CONTROL_PREFIX]) {
                if json.starts_with(b"{\"start\":") {
                    let s: StartRecord = serde_json::from_slice(json)
                        .map_err(|e| ProtoError::InvalidJson(e.to_string()))?;
                    self.last = Some((s.channel.clone(), s.start));
                    return Ok(CompactItem::Start(s.channel, s.start));
                }
                if !json.starts_with(b"{\"channel\":") {
                    return Ok(CompactItem::Other(Bytes::copy_from_slice(json)));
                }
                let env = parse_envelope(json)?;
                if let (Event::Message, Some(c)) = (env.event, env.cursor) {
                    self.last = Some((env.channel.clone(), c));
                }
                return Ok(CompactItem::Envelope(env));
            }
        }
        let (channel, last) = self
            .last
            .as_mut()
            .ok_or_else(|| ProtoError::InvalidJson("a payload frame before any position".into()))?;
        last.offset = last
            .offset
            .checked_add(1)
            .ok_or_else(|| ProtoError::InvalidJson("offset overflow".into()))?;
        let data = if binary {
            ReceivedData::Binary(frame.to_vec())
        } else {
            let text = std::str::from_utf8(frame)
                .map_err(|e| ProtoError::InvalidJson(format!("not UTF-8: {e}")))?;
            if crate::validate_json(frame).is_ok() {
                ReceivedData::Json(text.to_owned())
            } else {
                let mut s = BytesMut::new();
                json::write_str(&mut s, text);
                ReceivedData::Json(String::from_utf8_lossy(&s).into_owned())
            }
        };
        Ok(CompactItem::Envelope(ReceivedEnvelope {
            channel: channel.clone(),
            event: Event::Message,
            cursor: Some(*last),
            data,
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::cursor::Epoch;
    use crate::envelope::encode_ws_text;

    const C3: Cursor = Cursor::new(Epoch(0xabc), 3);

    fn text(b: &PayloadFrame) -> &[u8] {
        match b {
            PayloadFrame::Text(t) => t,
            PayloadFrame::Binary(_) => panic!("binary"),
        }
    }

    #[test]
    fn payloads_are_sent_as_they_read_back() {
        let cases: &[(Data<'_>, &[u8])] = &[
            (Data::Json(br#"{"a":1}"#), br#"{"a":1}"#),
            (Data::Json(b"\"hi\""), b"\"hi\""),
            (Data::Text("hello"), b"hello"),
            (Data::Text(""), b""),
            (Data::Text("  plain"), b"  plain"),
            // Texts a JSON parser could read as JSON go as JSON strings.
            (Data::Text("123"), b"\"123\""),
            (Data::Text("null"), b"\"null\""),
            (Data::Text("nice"), b"\"nice\""),
            (Data::Text(" {x"), b"\" {x\""),
            (Data::Text("\u{1e}x"), b"\"\\u001ex\""),
        ];
        for (data, want) in cases {
            let env = Envelope::message("c", C3, *data);
            let got = encode_compact_payload(&env).unwrap();
            assert_eq!(text(&got), *want, "{data:?}");
            assert_ne!(text(&got).first(), Some(&CONTROL_PREFIX));
        }
        let bin = Envelope::message("c", C3, Data::Binary(&[0x1e, 0]));
        assert_eq!(
            encode_compact_payload(&bin),
            Some(PayloadFrame::Binary(Bytes::from_static(&[0x1e, 0])))
        );
        assert_eq!(encode_compact_payload(&Envelope::reset("c", C3)), None);
    }

    #[test]
    fn contiguous_offsets_follow() {
        assert!(!follows(None, C3));
        assert!(follows(Some(Cursor::new(Epoch(0xabc), 2)), C3));
        assert!(!follows(Some(Cursor::new(Epoch(0xabc), 1)), C3));
        assert!(!follows(Some(Cursor::new(Epoch(0xabd), 2)), C3));
        assert!(!follows(Some(C3), C3));
    }

    #[test]
    fn the_decoder_restores_every_envelope() {
        let c = |o| Cursor::new(Epoch(0xabc), o);
        let sent = [
            Envelope::message("c", c(3), Data::Json(br#"{"a":1}"#)),
            Envelope::message("c", c(4), Data::Text("hello")),
            Envelope::message("c", c(5), Data::Text("42")),
            Envelope::message("c", c(6), Data::Binary(&[1, 2])),
            Envelope::reset("c", c(9)),
            Envelope::message("c", c(10), Data::Json(b"[1]")),
            Envelope::message("d", c(11), Data::Json(b"[2]")),
        ];
        let mut last: Option<(&str, Cursor)> = None;
        let mut dec = CompactDecoder::default();
        for env in sent {
            let cursor = env.cursor.unwrap();
            let contiguous = env.event == Event::Message
                && last.is_some_and(|(ch, l)| ch == env.channel && follows(Some(l), cursor));
            let (frame, binary) = match encode_compact_payload(&env) {
                Some(PayloadFrame::Text(t)) if contiguous => (t, false),
                Some(PayloadFrame::Binary(b)) if contiguous => (b, true),
                _ => (encode_compact_control(&encode_ws_text(&env)), false),
            };
            if env.event == Event::Message {
                last = Some((env.channel, cursor));
            }
            let CompactItem::Envelope(got) = dec.decode(&frame, binary).unwrap() else {
                panic!("not an envelope");
            };
            let want = parse_envelope(&encode_ws_text(&env)).unwrap();
            assert_eq!(got, want);
        }
        let reply = encode_compact_control(br#"{"id":1,"result":{}}"#);
        assert!(matches!(
            dec.decode(&reply, false).unwrap(),
            CompactItem::Other(_)
        ));
    }

    #[test]
    fn the_compact_poll_body_carries_contiguous_payloads_or_nothing() {
        let c = |o| Cursor::new(Epoch(0xabc), o);
        let two = [
            Envelope::message("c", c(2), Data::Json(b"{\"a\":\n1}")),
            Envelope::message("c", c(3), Data::Text("hi")),
        ];
        assert_eq!(
            &encode_compact_poll(c(3), &two, false).unwrap()[..],
            br#"{"cursor":"abc:3","data":[{"a": 1},"hi"]}"#
        );
        assert_eq!(
            &encode_compact_poll(c(7), &[], true).unwrap()[..],
            br#"{"cursor":"abc:7","data":[],"more":true}"#
        );
        // A gap, a cursor that is not the last message's, binary data, a reset: no.
        assert_eq!(encode_compact_poll(c(4), &two, false), None);
        let gap = [two[0], Envelope::message("c", c(4), Data::Text("x"))];
        assert_eq!(encode_compact_poll(c(4), &gap, false), None);
        let bin = [Envelope::message("c", c(1), Data::Binary(b"x"))];
        assert_eq!(encode_compact_poll(c(1), &bin, false), None);
        assert_eq!(
            encode_compact_poll(c(1), &[Envelope::reset("c", c(1))], false),
            None
        );
    }

    #[test]
    fn a_payload_before_a_position_is_an_error() {
        assert!(CompactDecoder::default().decode(b"x", false).is_err());
    }

    #[test]
    fn a_start_record_sets_the_position() {
        let mut dec = CompactDecoder::default();
        let start = encode_compact_start("c\"d", C3);
        assert_eq!(
            &start[..],
            b"\x1e{\"start\":\"abc:3\",\"channel\":\"c\\\"d\"}"
        );
        assert_eq!(
            dec.decode(&start, false).unwrap(),
            CompactItem::Start("c\"d".into(), C3)
        );
        let CompactItem::Envelope(env) = dec.decode(b"1", false).unwrap() else {
            panic!("an envelope");
        };
        assert_eq!(env.cursor, Some(Cursor::new(Epoch(0xabc), 4)));
    }
}
