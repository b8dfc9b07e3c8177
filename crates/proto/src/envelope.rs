//! The envelope: what every transport carries for one channel event.
//!
//! JSON form (one line, fields in this order, absent fields omitted):
//!
//! ```text
//! {"channel":"chat:lobby","event":"message","offset":3,"cursor":"abc:3","data":{"text":"hi"}}
//! {"channel":"chat:lobby","event":"message","offset":4,"cursor":"abc:4","data":"plain text"}
//! {"channel":"files","event":"message","offset":9,"cursor":"abc:9","data_b64":"AP8="}
//! {"channel":"chat:lobby","event":"join","data":{"client":"c1","user":"u1"}}
//! {"channel":"chat:lobby","event":"reset","offset":7,"cursor":"d00d:7","data":{"lost":3}}
//! {"channel":"chat:lobby","event":"reset","offset":0,"cursor":"beef:0"}
//! ```
//!
//! * `event` is `message`, `join`, `leave` or `reset`.
//! * `offset`/`cursor` are present for messages (the message's own position) and for
//!   `reset` (the position to continue from: just before the oldest message still held,
//!   which follow it at once; messages before it are not available).
//!   `join`/`leave` are not part of the log and carry no position.
//! * A `reset`'s `data` is `{"lost":N}` when the number of messages lost is known (the
//!   cursor resumed from was of the same epoch: N = the reset's offset − the resumed
//!   offset); it is absent when it is not (another epoch: the channel's log was lost, e.g.
//!   a restart). See [`reset_data`] and [`reset_lost`].
//! * Payloads: [`Data::Json`] is embedded verbatim as the `data` value (the caller has
//!   validated it; raw CR/LF whitespace is flattened so the line stays one line),
//!   [`Data::Text`] becomes a JSON string in `data`, [`Data::Binary`] becomes standard
//!   padded base64 in `data_b64`. So a JSON reader always finds either `data` (any JSON
//!   value) or `data_b64` (bytes), never both.

use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::cursor::Cursor;
use crate::json;

/// What kind of channel event an envelope carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    /// A published message, part of the channel's log.
    Message,
    /// A client joined the channel (presence, when the namespace enables it).
    Join,
    /// A client left the channel.
    Leave,
    /// The subscriber's position could not be continued (history gone or epoch changed);
    /// the envelope's cursor is where the stream continues from.
    Reset,
}

impl Event {
    /// The wire name: `message`, `join`, `leave`, `reset`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Event::Message => "message",
            Event::Join => "join",
            Event::Leave => "leave",
            Event::Reset => "reset",
        }
    }
}

/// A payload as handed to the encoders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Data<'a> {
    /// No payload (e.g. `reset`).
    None,
    /// Valid JSON text, embedded verbatim. Validity is the caller's promise
    /// (see [`validate_json`]).
    Json(&'a [u8]),
    /// A UTF-8 string, sent as a JSON string.
    Text(&'a str),
    /// Opaque bytes, sent as base64 in `data_b64`.
    Binary(&'a [u8]),
}

/// One channel event, borrowed from whoever owns the parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// The channel name.
    pub channel: &'a str,
    /// The event kind.
    pub event: Event,
    /// The message's position (`message`) or the position to continue from (`reset`).
    pub cursor: Option<Cursor>,
    /// The payload.
    pub data: Data<'a>,
}

impl<'a> Envelope<'a> {
    /// A `message` envelope at `cursor`.
    pub const fn message(channel: &'a str, cursor: Cursor, data: Data<'a>) -> Self {
        Envelope {
            channel,
            event: Event::Message,
            cursor: Some(cursor),
            data,
        }
    }

    /// A `reset` envelope: continue from `cursor`.
    pub const fn reset(channel: &'a str, cursor: Cursor) -> Self {
        Envelope {
            channel,
            event: Event::Reset,
            cursor: Some(cursor),
            data: Data::None,
        }
    }

    /// An upper bound guess of the JSON size, for reserving.
    pub fn json_size_hint(&self) -> usize {
        let data = match self.data {
            Data::None => 0,
            Data::Json(d) | Data::Binary(d) => d.len() * 4 / 3 + 16,
            Data::Text(t) => t.len() + t.len() / 8 + 16,
        };
        80 + self.channel.len() + data
    }

    /// Appends the one-line JSON form (no trailing newline) to `out`.
    pub fn write_json(&self, out: &mut BytesMut) {
        out.reserve(self.json_size_hint());
        out.extend_from_slice(b"{\"channel\":");
        json::write_str(out, self.channel);
        out.extend_from_slice(b",\"event\":\"");
        out.extend_from_slice(self.event.as_str().as_bytes());
        out.put_u8(b'"');
        if let Some(c) = self.cursor {
            out.extend_from_slice(b",\"offset\":");
            json::write_u64(out, c.offset);
            out.extend_from_slice(b",\"cursor\":\"");
            out.extend_from_slice(c.to_str_buf().as_bytes());
            out.put_u8(b'"');
        }
        match self.data {
            Data::None => {}
            Data::Json(raw) => {
                out.extend_from_slice(b",\"data\":");
                json::write_raw_one_line(out, raw);
            }
            Data::Text(t) => {
                out.extend_from_slice(b",\"data\":");
                json::write_str(out, t);
            }
            Data::Binary(b) => {
                out.extend_from_slice(b",\"data_b64\":\"");
                json::write_base64(out, b);
                out.put_u8(b'"');
            }
        }
        out.put_u8(b'}');
    }

    /// Appends the payload as text: JSON verbatim, text as is, binary as base64.
    /// Used where the payload stands alone (the `data:` of a plain SSE event).
    pub fn write_payload_text(&self, out: &mut BytesMut) {
        match self.data {
            Data::None => {}
            Data::Json(raw) => out.extend_from_slice(raw),
            Data::Text(t) => out.extend_from_slice(t.as_bytes()),
            Data::Binary(b) => json::write_base64(out, b),
        }
    }
}

/// The `data` of a `reset` envelope that knows how many messages were lost: `{"lost":N}`.
pub fn reset_data(lost: u64) -> Bytes {
    let mut out = BytesMut::with_capacity(32);
    out.extend_from_slice(b"{\"lost\":");
    json::write_u64(&mut out, lost);
    out.put_u8(b'}');
    out.freeze()
}

/// The number of messages lost that a `reset`'s data states ([`reset_data`]'s form), if
/// it does.
pub fn reset_lost(data: &[u8]) -> Option<u64> {
    let n = data.strip_prefix(b"{\"lost\":")?.strip_suffix(b"}")?;
    std::str::from_utf8(n).ok()?.parse().ok()
}

/// The envelope as one line of JSON, the text frame of WebSocket transports and the
/// element of poll responses.
pub fn encode_ws_text(env: &Envelope<'_>) -> Bytes {
    let mut out = BytesMut::new();
    env.write_json(&mut out);
    out.freeze()
}

/// Checks that `bytes` is one valid JSON value (what [`Data::Json`] requires), UTF-8
/// throughout.
pub fn validate_json(bytes: &[u8]) -> Result<(), ProtoError> {
    // serde_json skips the strings of an ignored value without checking their UTF-8, and
    // the payload goes out inside WebSocket text frames, where invalid UTF-8 fails the
    // subscriber's connection: check the whole text first.
    let text = std::str::from_utf8(bytes)
        .map_err(|e| ProtoError::InvalidJson(format!("not UTF-8: {e}")))?;
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map(|_| ())
        .map_err(|e| ProtoError::InvalidJson(e.to_string()))
}

/// Errors of decoding protocol input. The peer's fault (HTTP 400 / a command error).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtoError {
    /// Not valid JSON, or not the expected shape.
    InvalidJson(String),
    /// `data_b64` was not valid base64.
    InvalidBase64,
}

impl std::fmt::Display for ProtoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProtoError::InvalidJson(e) => write!(f, "invalid JSON: {e}"),
            ProtoError::InvalidBase64 => f.write_str("invalid base64 in data_b64"),
        }
    }
}

impl std::error::Error for ProtoError {}

/// A decoded payload of a received envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReceivedData {
    /// No `data` or `data_b64`.
    None,
    /// The `data` value as JSON text (a JSON string payload is `"\"...\""`).
    Json(String),
    /// The decoded `data_b64` bytes.
    Binary(Vec<u8>),
}

/// An envelope decoded from JSON (client side and tests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedEnvelope {
    /// Channel name.
    pub channel: String,
    /// Event kind.
    pub event: Event,
    /// Position, if any.
    pub cursor: Option<Cursor>,
    /// Payload.
    pub data: ReceivedData,
}

#[derive(Deserialize)]
struct RawEnvelope<'a> {
    channel: String,
    event: Event,
    #[serde(default)]
    cursor: Option<Cursor>,
    #[serde(default, borrow, deserialize_with = "crate::json::raw_or_null")]
    data: Option<&'a RawValue>,
    #[serde(default)]
    data_b64: Option<String>,
}

impl ReceivedEnvelope {
    fn from_raw(raw: RawEnvelope<'_>) -> Result<Self, ProtoError> {
        let data = match (raw.data, raw.data_b64) {
            (Some(d), _) => ReceivedData::Json(d.get().to_owned()),
            (None, Some(b)) => {
                use base64::Engine as _;
                ReceivedData::Binary(
                    base64::engine::general_purpose::STANDARD
                        .decode(b)
                        .map_err(|_| ProtoError::InvalidBase64)?,
                )
            }
            (None, None) => ReceivedData::None,
        };
        Ok(ReceivedEnvelope {
            channel: raw.channel,
            event: raw.event,
            cursor: raw.cursor,
            data,
        })
    }

    /// Borrows this as an [`Envelope`] (e.g. to re-encode it).
    pub fn as_envelope(&self) -> Envelope<'_> {
        Envelope {
            channel: &self.channel,
            event: self.event,
            cursor: self.cursor,
            data: match &self.data {
                ReceivedData::None => Data::None,
                ReceivedData::Json(j) => Data::Json(j.as_bytes()),
                ReceivedData::Binary(b) => Data::Binary(b),
            },
        }
    }
}

/// Decodes an envelope from its JSON form.
pub fn parse_envelope(json: &[u8]) -> Result<ReceivedEnvelope, ProtoError> {
    let raw: RawEnvelope<'_> =
        serde_json::from_slice(json).map_err(|e| ProtoError::InvalidJson(e.to_string()))?;
    ReceivedEnvelope::from_raw(raw)
}

pub(crate) fn envelope_from_value(raw: &RawValue) -> Result<ReceivedEnvelope, ProtoError> {
    parse_envelope(raw.get().as_bytes())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::cursor::Epoch;

    const C3: Cursor = Cursor::new(Epoch(0xabc), 3);

    #[test]
    fn json_table() {
        let lost3 = reset_data(3);
        let cases: &[(Envelope<'_>, &str)] = &[
            (
                Envelope::message("chat:lobby", C3, Data::Json(br#"{"text":"hi"}"#)),
                r#"{"channel":"chat:lobby","event":"message","offset":3,"cursor":"abc:3","data":{"text":"hi"}}"#,
            ),
            (
                Envelope::message("c", C3, Data::Json(b"{\n \"a\": 1\r\n}")),
                r#"{"channel":"c","event":"message","offset":3,"cursor":"abc:3","data":{  "a": 1  }}"#,
            ),
            (
                Envelope::message("c", C3, Data::Text("line1\nline2 \"q\"")),
                r#"{"channel":"c","event":"message","offset":3,"cursor":"abc:3","data":"line1\nline2 \"q\""}"#,
            ),
            (
                Envelope::message("c", C3, Data::Binary(&[0, 255])),
                r#"{"channel":"c","event":"message","offset":3,"cursor":"abc:3","data_b64":"AP8="}"#,
            ),
            (
                Envelope {
                    channel: "c",
                    event: Event::Join,
                    cursor: None,
                    data: Data::Json(br#"{"client":"x"}"#),
                },
                r#"{"channel":"c","event":"join","data":{"client":"x"}}"#,
            ),
            (
                Envelope {
                    channel: "c",
                    event: Event::Leave,
                    cursor: None,
                    data: Data::None,
                },
                r#"{"channel":"c","event":"leave"}"#,
            ),
            (
                Envelope::reset("c", Cursor::new(Epoch(0xd00d), 7)),
                r#"{"channel":"c","event":"reset","offset":7,"cursor":"d00d:7"}"#,
            ),
            (
                Envelope {
                    data: Data::Json(&lost3),
                    ..Envelope::reset("c", Cursor::new(Epoch(0xd00d), 7))
                },
                r#"{"channel":"c","event":"reset","offset":7,"cursor":"d00d:7","data":{"lost":3}}"#,
            ),
        ];
        for (env, want) in cases {
            let got = encode_ws_text(env);
            assert_eq!(std::str::from_utf8(&got).unwrap(), *want);
            validate_json(&got).unwrap();
            let back = parse_envelope(&got).unwrap();
            assert_eq!(back.channel, env.channel);
            assert_eq!(back.event, env.event);
            assert_eq!(back.cursor, env.cursor);
        }
    }

    #[test]
    fn reset_data_round_trips() {
        for n in [0, 1, 3, u64::MAX] {
            let data = reset_data(n);
            validate_json(&data).unwrap();
            assert_eq!(reset_lost(&data), Some(n));
        }
        assert_eq!(&reset_data(3)[..], br#"{"lost":3}"#);
        for other in [
            &b""[..],
            b"{}",
            b"{\"lost\":x}",
            b"{\"lost\":-1}",
            b"{\"lost\":1",
        ] {
            assert_eq!(reset_lost(other), None);
        }
    }

    #[test]
    fn decoded_payloads() {
        let b = parse_envelope(
            br#"{"channel":"c","event":"message","cursor":"1:1","data_b64":"AP8="}"#,
        )
        .unwrap();
        assert_eq!(b.data, ReceivedData::Binary(vec![0, 255]));
        let j = parse_envelope(br#"{"channel":"c","event":"message","data":"t"}"#).unwrap();
        assert_eq!(j.data, ReceivedData::Json("\"t\"".into()));
        assert_eq!(
            parse_envelope(br#"{"channel":"c","event":"message","data_b64":"!"}"#),
            Err(ProtoError::InvalidBase64)
        );
        assert!(parse_envelope(br#"{"channel":"c","event":"nope"}"#).is_err());
        assert!(parse_envelope(br#"{"channel":"c","event":"message","cursor":"zz"}"#).is_err());
    }

    #[test]
    fn null_data_is_json_null_not_absent() {
        let env = Envelope::message("c", C3, Data::Json(b"null"));
        let back = parse_envelope(&encode_ws_text(&env)).unwrap();
        assert_eq!(back.data, ReceivedData::Json("null".into()));
        let none = parse_envelope(br#"{"channel":"c","event":"leave"}"#).unwrap();
        assert_eq!(none.data, ReceivedData::None);
    }

    #[test]
    fn validate_json_rejects_garbage() {
        assert!(validate_json(b"{\"a\":1}").is_ok());
        assert!(validate_json(b"\"s\"").is_ok());
        assert!(validate_json(b"{").is_err());
        assert!(validate_json(b"1 2").is_err());
        assert!(validate_json(b"").is_err());
        // Invalid UTF-8 inside a string, and outside one.
        assert!(validate_json(b"\"\xc2\"").is_err());
        assert!(validate_json(b"[\"a\xff\"]").is_err());
        assert!(validate_json(b"{\"\xed\xa0\x80\":1}").is_err());
        assert!(validate_json("[\"caf\u{e9}\"]".as_bytes()).is_ok());
    }
}
