//! Messages: one shared, immutable value per channel event, with its encodings cached.
//!
//! A [`Message`] is an `Arc`: the broker creates it once per publish, history keeps it,
//! and every subscriber's queue holds a pointer to the same value.
//!
//! # Encodings
//!
//! What a transport sends (bytes in a wire format, a prepared WebSocket frame) is made
//! from the message at most once and shared by every subscriber that sends it:
//! [`Message::encoded::<E>()`](Message::encoded) returns the cached `&E::Output`, making
//! it with [`Encoding::encode`] on first use. The hub knows no encoding: each is a marker
//! type implementing [`Encoding`], defined by the layer that sends it, and the type is the
//! cache key. Every [`switchboard_proto::EnvelopeEncoding`] is an [`Encoding`] with
//! `Bytes` output, so a byte format added to `switchboard_proto` needs nothing here.
//!
//! What a stored message holds, and what the memory budget counts of it
//! ([`Message::retained_bytes`], in the broker's ledger from the moment the broker makes
//! it until the last subscriber queue lets it go):
//!
//! | part | when | cost (64-bit) |
//! |---|---|---|
//! | the payload | always | its length (kept in an allocation of exactly its length, whatever path published it) |
//! | the shared message and its history slot | always | [`STORED_MESSAGE_COST`] = 176 B |
//! | `EnvelopeJson` (envelope, one JSON line) | first sent by a native or `/ws` WebSocket, long-poll, poll, `/api/history`, or made for `WsFrame` | 80 B node + the bytes + 32 B `Bytes` header |
//! | `SseEnvelope` (SSE event, envelope in `data:`) | first sent on `/sub` SSE | 80 B node + the bytes + 32 B |
//! | `SseData` (SSE event, payload in `data:`) | first sent on native SSE (`GET /ch/NAME`, `Accept: text/event-stream`) | 80 B node + the bytes + 32 B |
//! | `StreamLine` (envelope JSON + `\n`) | first sent on HTTP streaming | 80 B node + the bytes + 32 B |
//! | `WsFrame` (the WebSocket text frame of `EnvelopeJson`) | first sent on any WebSocket in the envelope format | 56 B node + `PreparedMessage::heap_bytes`: its shared state (~370 B), the framed bytes (the JSON + 2–10 B of header) + 32 B; a compressed frame made later for a `server_no_context_takeover` connection is not counted (at most one per window size, each smaller than the plain frame) |
//! | `PayloadOnly` (the compact WebSocket format's payload-only frame) | first sent payload-only (on a `switchboard.compact` WebSocket, right after the message before it) | 56 B node + `PreparedMessage::heap_bytes`: the payload again, framed |
//! | `Control` (`0x1E` and `EnvelopeJson` in a text frame) | first sent on a `switchboard.compact` WebSocket as a control record | 56 B node + `PreparedMessage::heap_bytes`: the JSON again, framed |
//!
//! Byte encodings are kept in an allocation of exactly their length. So a 64-byte text
//! message costs 240 B stored and never sent; once sent on a WebSocket it also holds its
//! JSON envelope (~130 B for a short channel name) twice (the JSON and the frame), about
//! 1 KB in all; every further transport adds one byte encoding (~250 B at this size).
//! Each byte encoding holds the payload again (base64 for binary: 4/3 of it): a 1 KiB
//! text message sent on a WebSocket and `/sub` SSE holds about 5 KiB.
//!
//! A message that was never sent pays for no encoding: its cache is one empty link
//! (24 bytes, see `encodings`). A lookup walks the encodings made so far (usually one or
//! two), an atomic load and a key comparison each, then downcasts the one found; it
//! allocates nothing.
//!
//! Adding an encoding:
//!
//! ```
//! use bytes::Bytes;
//! use switchboard_hub::{Encoding, Message};
//! use switchboard_proto::EnvelopeJson;
//!
//! /// The envelope JSON with a length prefix, made once per message.
//! struct Prefixed;
//!
//! impl Encoding for Prefixed {
//!     type Output = Bytes;
//!     fn encode(msg: &Message) -> Bytes {
//!         // One encoding may be made from another (never from itself).
//!         let json = msg.encoded::<EnvelopeJson>();
//!         let mut out = (json.len() as u32).to_be_bytes().to_vec();
//!         out.extend_from_slice(json);
//!         out.into()
//!     }
//! }
//! # let m = Message::reset("c".into(), switchboard_hub::Cursor::new(switchboard_hub::Epoch(1), 1));
//! # assert_eq!(&m.encoded::<Prefixed>()[4..], &m.encoded::<EnvelopeJson>()[..]);
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use switchboard_proto::{Cursor, Data, Envelope, EnvelopeEncoding, Epoch, Event};

use crate::budget::Ledger;
use crate::encodings::Encodings;
use crate::error::HubError;
use crate::presence::ClientInfo;

/// What a stored message costs besides its payload's bytes: the shared message (128 B:
/// 112 B of fields and 16 B of reference counts, one allocation) and its history slot
/// (24 B: its time and the pointer, in a ring that may have as much room again to grow
/// into). Counted with the payload for the memory budget and `history_bytes`.
pub const STORED_MESSAGE_COST: usize = 176;

/// What a cached byte encoding costs besides its bytes: the header `Bytes` allocate when
/// first shared (sending clones it), 32 B. Its node is counted apart.
pub const BYTES_HEADER: usize = 32;

/// A form of a message that is made at most once per message and shared by every
/// subscriber that sends it (see the [module docs](self)). Implemented by a marker type
/// naming the form, defined by the layer that sends it.
pub trait Encoding: 'static {
    /// What the encoding makes (e.g. `Bytes`).
    type Output: Send + Sync + 'static;

    /// Makes the encoding of `msg`. It may use another encoding of the same message
    /// ([`Message::encoded`]), never its own.
    fn encode(msg: &Message) -> Self::Output;

    /// The heap bytes `output` holds, for the memory budget (the cache's own node is
    /// counted besides). Default: none.
    fn weight(output: &Self::Output) -> usize {
        let _ = output;
        0
    }
}

/// Every envelope encoding of the protocol layer, kept in an allocation of exactly its
/// length (an encoder's buffer may have grown past it).
impl<E: EnvelopeEncoding> Encoding for E {
    type Output = Bytes;

    fn encode(msg: &Message) -> Bytes {
        exact(E::encode_envelope(&msg.envelope()))
    }

    fn weight(output: &Bytes) -> usize {
        output.len() + BYTES_HEADER
    }
}

/// `bytes` in an allocation of exactly their length (no copy when the allocation already
/// is one, or can shrink in place).
fn exact(bytes: Bytes) -> Bytes {
    Bytes::from(Vec::from(bytes).into_boxed_slice())
}

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

struct Inner {
    channel: Arc<str>,
    /// With `has_cursor`: the two fields of an `Option<Cursor>` without its padding, so
    /// that the ledger pointer fits the 112 bytes (one 128-byte allocation with the
    /// reference counts).
    cursor: Cursor,
    has_cursor: bool,
    event: Event,
    payload: Payload,
    encodings: Encodings,
    /// Bytes of the encodings made so far (their nodes and what they hold; saturates at
    /// 4 GiB, far above any message's).
    encoded: AtomicU32,
    /// Where a stored message counts what it holds; `None` for messages nobody stores
    /// (events, resets, a feed's).
    ledger: Option<Arc<Ledger>>,
}

impl Inner {
    /// What this message counts for in its ledger.
    fn weight(&self) -> usize {
        STORED_MESSAGE_COST + self.payload.len() + self.encoded.load(Ordering::Relaxed) as usize
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(ledger) = &self.ledger {
            ledger.sub(self.weight());
        }
    }
}

/// One channel event (a published message, `join`, `leave` or `reset`), shared by
/// reference. Cloning is one atomic increment.
#[derive(Clone)]
pub struct Message(Arc<Inner>);

impl Message {
    /// A message; brokers call this once per publish.
    pub fn new(channel: Arc<str>, event: Event, cursor: Option<Cursor>, payload: Payload) -> Self {
        Self::counted(channel, event, cursor, payload, None)
    }

    fn counted(
        channel: Arc<str>,
        event: Event,
        cursor: Option<Cursor>,
        payload: Payload,
        ledger: Option<Arc<Ledger>>,
    ) -> Self {
        let inner = Inner {
            channel,
            cursor: cursor.unwrap_or(Cursor::new(Epoch(0), 0)),
            has_cursor: cursor.is_some(),
            event,
            payload,
            encodings: Encodings::default(),
            encoded: AtomicU32::new(0),
            ledger,
        };
        if let Some(ledger) = &inner.ledger {
            ledger.add(inner.weight());
        }
        Message(Arc::new(inner))
    }

    /// A published message at `cursor` that a broker stores: it counts its payload, its
    /// [`STORED_MESSAGE_COST`] and its encodings as they are made in `ledger` for as long
    /// as it lives.
    pub(crate) fn stored(
        channel: Arc<str>,
        cursor: Cursor,
        payload: Payload,
        ledger: Arc<Ledger>,
    ) -> Self {
        Self::counted(channel, Event::Message, Some(cursor), payload, Some(ledger))
    }

    /// A published message at `cursor`.
    pub fn published(channel: Arc<str>, cursor: Cursor, payload: Payload) -> Self {
        Message::new(channel, Event::Message, Some(cursor), payload)
    }

    /// A `reset`: continue from `cursor`, what came before is not available (how much is
    /// not known).
    pub fn reset(channel: Arc<str>, cursor: Cursor) -> Self {
        Message::new(
            channel,
            Event::Reset,
            Some(cursor),
            Payload::binary(Bytes::new()),
        )
    }

    /// A `reset` for a reader that stood at `from` and continues at `at`: when both are of
    /// one epoch and `at` is not behind `from`, it says how many messages were lost
    /// (`at.offset − from.offset`, its data `{"lost":N}`, see
    /// [`switchboard_proto::reset_data`]); across epochs that is not known.
    pub fn reset_after(channel: Arc<str>, from: Cursor, at: Cursor) -> Self {
        match from.distance_to(at) {
            Some(lost) => Message::new(
                channel,
                Event::Reset,
                Some(at),
                Payload::json_prevalidated(switchboard_proto::reset_data(lost)),
            ),
            _ => Message::reset(channel, at),
        }
    }

    /// How many messages a `reset` says were lost, when it says it
    /// ([`Message::reset_after`]); `None` for any other event.
    pub fn reset_lost(&self) -> Option<u64> {
        if self.0.event != Event::Reset {
            return None;
        }
        switchboard_proto::reset_lost(&self.0.payload.data)
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
        self.0.has_cursor.then_some(self.0.cursor)
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
            // Only `{"lost":N}` (JSON) or nothing.
            (Event::Reset, PayloadKind::Json) => Data::Json(&p.data),
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
            cursor: self.cursor(),
            data,
        }
    }

    /// The message in encoding `E`, made on first use and shared afterwards: by every
    /// subscriber, on every thread. Allocation-free once made.
    pub fn encoded<E: Encoding>(&self) -> &E::Output {
        self.0.encodings.get_or_init::<E, E::Output>(|| {
            let out = E::encode(self);
            self.charge(Encodings::node_size::<E::Output>() + E::weight(&out));
            out
        })
    }

    /// Counts `n` more bytes of encodings (in the ledger too, for a stored message).
    fn charge(&self, n: usize) {
        let n32 = u32::try_from(n).unwrap_or(u32::MAX);
        let before = self
            .0
            .encoded
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |e| {
                Some(e.saturating_add(n32))
            })
            .unwrap_or(u32::MAX);
        // The ledger gets what the counter took, so that the drop takes back as much.
        let taken = before.saturating_add(n32) - before;
        if let Some(ledger) = &self.0.ledger {
            ledger.add(taken as usize);
        }
    }

    /// What the message counts for in the memory budget: its payload, its
    /// [`STORED_MESSAGE_COST`] and the encodings made so far (their nodes and bytes).
    pub fn retained_bytes(&self) -> usize {
        self.0.weight()
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
            .field("cursor", &self.cursor())
            .field("kind", &self.0.payload.kind)
            .field("len", &self.0.payload.data.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use switchboard_proto::{EnvelopeJson, Epoch, SseData, StreamLine};

    #[test]
    fn encodings_are_cached_and_shared() {
        let m = Message::published(
            "c".into(),
            Cursor::new(Epoch(1), 1),
            Payload::text("hi".into()).unwrap(),
        );
        let a = m.encoded::<EnvelopeJson>().clone();
        let b = m.clone().encoded::<EnvelopeJson>().clone();
        assert_eq!(a.as_ptr(), b.as_ptr(), "same bytes, not a second encoding");
        assert_eq!(
            &a[..],
            br#"{"channel":"c","event":"message","offset":1,"cursor":"1:1","data":"hi"}"#
        );
        assert_eq!(
            &m.encoded::<StreamLine>()[..],
            [&a[..], b"\n"].concat().as_slice()
        );
        assert_eq!(
            &m.encoded::<SseData>()[..],
            b"id: 1:1\nevent: message\ndata: hi\n\n"
        );
    }

    /// A caller-typed encoding (as the WebSocket transport's prepared frame), made once;
    /// any number of them coexist with the byte formats.
    struct Counted;
    static COUNTED_CALLS: AtomicUsize = AtomicUsize::new(0);

    impl Encoding for Counted {
        type Output = (u32, usize);
        fn encode(msg: &Message) -> (u32, usize) {
            COUNTED_CALLS.fetch_add(1, Ordering::Relaxed);
            (7, msg.encoded::<EnvelopeJson>().len())
        }
    }

    struct Named;

    impl Encoding for Named {
        type Output = &'static str;
        fn encode(_: &Message) -> &'static str {
            "other type"
        }
    }

    #[test]
    fn a_layer_caches_values_of_its_own_types() {
        let m = Message::reset("c".into(), Cursor::new(Epoch(1), 1));
        let json = m.encoded::<EnvelopeJson>().len();
        assert_eq!(m.encoded::<Counted>(), &(7, json));
        assert_eq!(m.clone().encoded::<Counted>(), &(7, json));
        assert_eq!(COUNTED_CALLS.load(Ordering::Relaxed), 1);
        assert_eq!(m.encoded::<Named>(), &"other type");
        assert_eq!(m.encoded::<Counted>(), &(7, json));
        assert_eq!(COUNTED_CALLS.load(Ordering::Relaxed), 1);
    }

    /// A message that was never sent costs its fields, its payload and one empty link
    /// (a later goal: payload + 200 bytes at most). This catches growth.
    #[test]
    fn stored_message_is_small() {
        let inner = std::mem::size_of::<Inner>();
        eprintln!("message: {inner} B (+ 16 B of Arc counts)");
        assert!(inner <= 112, "a message is {inner} bytes");
    }

    #[test]
    fn a_reset_says_how_many_were_lost_only_within_one_epoch() {
        let (e1, e2) = (Epoch(1), Epoch(2));
        let within = Message::reset_after("c".into(), Cursor::new(e1, 1), Cursor::new(e1, 4));
        assert_eq!(within.reset_lost(), Some(3));
        assert_eq!(
            &within.encoded::<EnvelopeJson>()[..],
            br#"{"channel":"c","event":"reset","offset":4,"cursor":"1:4","data":{"lost":3}}"#
        );
        for unknown in [
            Message::reset_after("c".into(), Cursor::new(e1, 9), Cursor::new(e2, 0)),
            Message::reset_after("c".into(), Cursor::new(e1, 9), Cursor::new(e1, 4)),
            Message::reset("c".into(), Cursor::new(e2, 0)),
        ] {
            assert_eq!(unknown.reset_lost(), None);
            assert!(!unknown
                .encoded::<EnvelopeJson>()
                .windows(4)
                .any(|w| w == b"data"));
        }
        let m = Message::published(
            "c".into(),
            Cursor::new(e1, 1),
            Payload::json(Bytes::from_static(br#"{"lost":3}"#)).unwrap(),
        );
        assert_eq!(m.reset_lost(), None, "only a reset says it");
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
