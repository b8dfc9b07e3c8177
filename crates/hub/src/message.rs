//! Messages: one shared, immutable value per channel event, with its encodings cached.
//!
//! A [`Message`] is an `Arc`: the broker creates it once per publish, history keeps it,
//! and every subscriber's queue holds a pointer to the same value. The first subscriber
//! that needs a wire format encodes it ([`Message::encoded`]); every other subscriber of
//! that format gets the same [`Bytes`]. One more slot ([`Message::extension`]) lets a layer
//! above cache a value of its own type (e.g. a prepared WebSocket frame) without the hub
//! knowing that type.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use switchboard_proto::{Cursor, Data, Envelope, Event};

use crate::error::HubError;
use crate::presence::ClientInfo;

/// How a payload's bytes are to be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PayloadKind {
    /// Valid JSON text, embedded verbatim in envelopes.
    Json,
    /// UTF-8 text, sent as a JSON string.
    Text,
    /// Opaque bytes, base64 in JSON bodies.
    Binary,
}

/// A publishable payload whose kind has been checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload {
    kind: PayloadKind,
    data: Bytes,
}

impl Payload {
    /// JSON text; validated here (one full parse).
    pub fn json(data: Bytes) -> Result<Self, HubError> {
        switchboard_proto::validate_json(&data)
            .map_err(|_| HubError::InvalidPayload("invalid JSON"))?;
        Ok(Payload {
            kind: PayloadKind::Json,
            data,
        })
    }

    /// JSON text the caller has already validated (e.g. parsed as part of a command).
    /// Invalid JSON here would reach every subscriber.
    pub fn json_prevalidated(data: Bytes) -> Self {
        Payload {
            kind: PayloadKind::Json,
            data,
        }
    }

    /// UTF-8 text; validated here.
    pub fn text(data: Bytes) -> Result<Self, HubError> {
        std::str::from_utf8(&data).map_err(|_| HubError::InvalidPayload("text is not UTF-8"))?;
        Ok(Payload {
            kind: PayloadKind::Text,
            data,
        })
    }

    /// Opaque bytes.
    pub fn binary(data: Bytes) -> Self {
        Payload {
            kind: PayloadKind::Binary,
            data,
        }
    }

    /// The kind.
    pub fn kind(&self) -> PayloadKind {
        self.kind
    }

    /// The bytes.
    pub fn data(&self) -> &Bytes {
        &self.data
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// The wire encodings a message caches. Each is computed at most once per message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WireFormat {
    /// The envelope as one line of JSON ([`switchboard_proto::encode_ws_text`]): WebSocket
    /// text frames, SDK pushes, poll bodies.
    Json,
    /// An SSE event whose data is the envelope JSON ([`switchboard_proto::encode_sse_envelope`]).
    SseEnvelope,
    /// An SSE event whose data is the payload alone ([`switchboard_proto::encode_sse_data`]).
    SseData,
    /// An HTTP-streaming line ([`switchboard_proto::encode_stream_line`]).
    StreamLine,
}

const FORMATS: usize = 4;

impl WireFormat {
    const fn index(self) -> usize {
        match self {
            WireFormat::Json => 0,
            WireFormat::SseEnvelope => 1,
            WireFormat::SseData => 2,
            WireFormat::StreamLine => 3,
        }
    }
}

struct Inner {
    channel: Arc<str>,
    event: Event,
    cursor: Option<Cursor>,
    payload: Payload,
    encodings: [OnceLock<Bytes>; FORMATS],
    extension: OnceLock<Box<dyn Any + Send + Sync>>,
}

/// One channel event (a published message, `join`, `leave` or `reset`), shared by
/// reference. Cloning is one atomic increment.
#[derive(Clone)]
pub struct Message(Arc<Inner>);

impl Message {
    /// A message; brokers call this once per publish.
    pub fn new(channel: Arc<str>, event: Event, cursor: Option<Cursor>, payload: Payload) -> Self {
        Message(Arc::new(Inner {
            channel,
            event,
            cursor,
            payload,
            encodings: Default::default(),
            extension: OnceLock::new(),
        }))
    }

    /// A published message at `cursor`.
    pub fn published(channel: Arc<str>, cursor: Cursor, payload: Payload) -> Self {
        Message::new(channel, Event::Message, Some(cursor), payload)
    }

    /// A `reset`: continue from `cursor`, what came before is not available.
    pub fn reset(channel: Arc<str>, cursor: Cursor) -> Self {
        Message::new(
            channel,
            Event::Reset,
            Some(cursor),
            Payload::binary(Bytes::new()),
        )
    }

    /// A `join` or `leave` event for `client`; its data is the presence entry JSON.
    pub fn presence_event(channel: Arc<str>, event: Event, client: &ClientInfo) -> Self {
        let json = client.as_presence_entry().to_json();
        Message::new(channel, event, None, Payload::json_prevalidated(json))
    }

    /// The channel name.
    pub fn channel(&self) -> &str {
        &self.0.channel
    }

    /// The channel name, shared.
    pub fn channel_arc(&self) -> &Arc<str> {
        &self.0.channel
    }

    /// The event kind.
    pub fn event(&self) -> Event {
        self.0.event
    }

    /// The position: a message's own, or where a `reset` continues from; `None` for
    /// `join`/`leave`.
    pub fn cursor(&self) -> Option<Cursor> {
        self.0.cursor
    }

    /// The payload.
    pub fn payload(&self) -> &Payload {
        &self.0.payload
    }

    /// The payload bytes.
    pub fn data(&self) -> &Bytes {
        &self.0.payload.data
    }

    /// The message as a protocol envelope, for encoders.
    pub fn envelope(&self) -> Envelope<'_> {
        let p = &self.0.payload;
        let data = match (self.0.event, p.kind) {
            (Event::Reset, _) => Data::None,
            (_, PayloadKind::Json) => Data::Json(&p.data),
            (_, PayloadKind::Text) => match std::str::from_utf8(&p.data) {
                Ok(t) => Data::Text(t),
                Err(_) => Data::Binary(&p.data),
            },
            (_, PayloadKind::Binary) => Data::Binary(&p.data),
        };
        Envelope {
            channel: &self.0.channel,
            event: self.0.event,
            cursor: self.0.cursor,
            data,
        }
    }

    /// The message in `format`, encoded on first use and shared afterwards.
    pub fn encoded(&self, format: WireFormat) -> &Bytes {
        self.0.encodings[format.index()].get_or_init(|| {
            let env = self.envelope();
            match format {
                WireFormat::Json => switchboard_proto::encode_ws_text(&env),
                WireFormat::SseEnvelope => switchboard_proto::encode_sse_envelope(&env),
                WireFormat::SseData => switchboard_proto::encode_sse_data(&env),
                WireFormat::StreamLine => switchboard_proto::encode_stream_line(&env),
            }
        })
    }

    /// A value of the caller's type cached on the message, built by `init` on first use.
    /// There is one slot: it returns `None` if a value of another type was stored first, so
    /// a layer that needs several values stores one struct holding them.
    pub fn extension<T: Any + Send + Sync>(&self, init: impl FnOnce(&Message) -> T) -> Option<&T> {
        self.0
            .extension
            .get_or_init(|| Box::new(init(self)))
            .downcast_ref::<T>()
    }

    /// Whether both are the same shared message.
    pub fn ptr_eq(&self, other: &Message) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("channel", &self.0.channel)
            .field("event", &self.0.event)
            .field("cursor", &self.0.cursor)
            .field("kind", &self.0.payload.kind)
            .field("len", &self.0.payload.data.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use switchboard_proto::Epoch;

    #[test]
    fn encodings_are_cached_and_shared() {
        let m = Message::published(
            "c".into(),
            Cursor::new(Epoch(1), 1),
            Payload::text("hi".into()).unwrap(),
        );
        let a = m.encoded(WireFormat::Json).clone();
        let b = m.clone().encoded(WireFormat::Json).clone();
        assert_eq!(a.as_ptr(), b.as_ptr(), "same bytes, not a second encoding");
        assert_eq!(
            &a[..],
            br#"{"channel":"c","event":"message","offset":1,"cursor":"1:1","data":"hi"}"#
        );
        assert_eq!(
            &m.encoded(WireFormat::StreamLine)[..],
            [&a[..], b"\n"].concat().as_slice()
        );
        assert_eq!(
            &m.encoded(WireFormat::SseData)[..],
            b"id: 1:1\nevent: message\ndata: hi\n\n"
        );
    }

    #[test]
    fn extension_slot_holds_one_type() {
        let m = Message::reset("c".into(), Cursor::new(Epoch(1), 1));
        let mut calls = 0;
        assert_eq!(
            m.extension(|_| {
                calls += 1;
                7u32
            }),
            Some(&7)
        );
        assert_eq!(
            m.extension(|_| {
                calls += 1;
                8u32
            }),
            Some(&7)
        );
        assert_eq!(calls, 1);
        assert_eq!(m.extension(|_| "other type"), None);
    }

    #[test]
    fn payload_validation() {
        assert!(Payload::json(Bytes::from_static(b"{\"a\":1}")).is_ok());
        assert_eq!(
            Payload::json(Bytes::from_static(b"{")),
            Err(HubError::InvalidPayload("invalid JSON"))
        );
        assert!(Payload::text(Bytes::from_static(b"\xff")).is_err());
    }
}
