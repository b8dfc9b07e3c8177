//! The compact format on a WebSocket (subprotocol `switchboard.compact`, see
//! [`switchboard_proto::compact`]): which frame a message goes out as on one connection.
//! Both of a message's compact frames (its payload alone, its envelope as a control
//! record) are encodings the hub caches, built once per message and shared by every
//! connection; a connection keeps only the last message it queued (channel and cursor).
//! [`Framing`] is the choice per connection: [`Envelopes`] (no state) or [`Compact`].

use std::sync::Arc;

use bytes::Bytes;
use switchboard_hub::{Cursor, Encoding, Message as HubMessage};
use switchboard_proto::{
    encode_compact_control, encode_compact_payload, encode_compact_start, follows, EnvelopeJson,
    Event, PayloadFrame,
};
use switchboard_ws::PreparedMessage;

/// A message's payload-only frame; `None` for an event that only travels as a control
/// record.
#[derive(Debug)]
struct PayloadOnly;

impl Encoding for PayloadOnly {
    type Output = Option<PreparedMessage>;

    fn encode(m: &HubMessage) -> Option<PreparedMessage> {
        Some(match encode_compact_payload(&m.envelope())? {
            PayloadFrame::Text(t) => PreparedMessage::text(t),
            PayloadFrame::Binary(b) => PreparedMessage::binary(b),
        })
    }

    fn weight(frame: &Option<PreparedMessage>) -> usize {
        frame.as_ref().map_or(0, PreparedMessage::heap_bytes)
    }
}

/// A message's envelope as a control record (text frame, `0x1E` and the envelope JSON).
#[derive(Debug)]
struct Control;

impl Encoding for Control {
    type Output = PreparedMessage;

    fn encode(m: &HubMessage) -> PreparedMessage {
        PreparedMessage::text(encode_compact_control(m.encoded::<EnvelopeJson>()))
    }

    fn weight(frame: &PreparedMessage) -> usize {
        frame.heap_bytes()
    }
}

/// Direct delivery's sink kind ([`super::direct`]): each message as its envelope frame.
pub const ENVELOPES: u8 = 0;
/// Direct delivery's sink kind: each message as its payload-only frame (messages that
/// follow the connection's position, in the compact format).
pub const PAYLOADS: u8 = 1;

/// How a connection frames its messages: [`Envelopes`] or the compact format.
pub trait Framing: Send + Unpin + 'static {
    /// The frame `m` goes out as, after what was queued before.
    fn frame<'m>(&mut self, m: &'m HubMessage) -> &'m PreparedMessage;

    /// How the fan-out may write the messages that follow `at` (the subscription's
    /// position) directly ([`super::direct`]); `None` when it may not.
    fn direct(&self, _at: Cursor) -> Option<u8> {
        None
    }

    /// Direct delivery ended at `at`, the last message it wrote: the next frame follows
    /// that one.
    fn after_direct(&mut self, _at: Cursor) {}
}

/// A message's payload-only frame (`None` for one that only travels as a control record).
pub(super) fn payload_frame(m: &HubMessage) -> Option<&PreparedMessage> {
    m.encoded::<PayloadOnly>().as_ref()
}

/// The envelope format: every message its envelope JSON in a text frame.
#[derive(Debug, Clone, Copy, Default)]
pub struct Envelopes;

impl Framing for Envelopes {
    fn frame<'m>(&mut self, m: &'m HubMessage) -> &'m PreparedMessage {
        m.encoded::<super::WsFrame>()
    }

    /// Every message is its envelope, whatever came before.
    fn direct(&self, _at: Cursor) -> Option<u8> {
        Some(ENVELOPES)
    }
}

impl<F: Framing> Framing for Box<F> {
    fn frame<'m>(&mut self, m: &'m HubMessage) -> &'m PreparedMessage {
        (**self).frame(m)
    }

    fn direct(&self, at: Cursor) -> Option<u8> {
        (**self).direct(at)
    }

    fn after_direct(&mut self, at: Cursor) {
        (**self).after_direct(at);
    }
}

/// A `/ws` session: compact when it negotiated the format.
impl Framing for Option<Compact> {
    fn frame<'m>(&mut self, m: &'m HubMessage) -> &'m PreparedMessage {
        match self {
            Some(c) => c.frame(m),
            None => Envelopes.frame(m),
        }
    }
}

/// A compact connection's position: the last message it queued.
#[derive(Debug, Default)]
pub struct Compact {
    last: Option<(Arc<str>, Cursor)>,
}

impl Framing for Compact {
    fn direct(&self, at: Cursor) -> Option<u8> {
        self.direct_after(at)
    }

    fn after_direct(&mut self, at: Cursor) {
        if let Some((_, last)) = &mut self.last {
            *last = at;
        }
    }

    /// The frame `m` goes out as after what was queued before, which it becomes (if it
    /// is a message: other events leave the position as it was).
    fn frame<'m>(&mut self, m: &'m HubMessage) -> &'m PreparedMessage {
        let (Event::Message, Some(cursor)) = (m.event(), m.cursor()) else {
            return m.encoded::<Control>();
        };
        let contiguous = match &mut self.last {
            Some((ch, last)) if Arc::ptr_eq(ch, m.channel_arc()) || **ch == *m.channel() => {
                let contiguous = follows(Some(*last), cursor);
                *last = cursor;
                contiguous
            }
            last => {
                *last = Some((m.channel_arc().clone(), cursor));
                false
            }
        };
        if contiguous {
            if let Some(payload) = m.encoded::<PayloadOnly>() {
                return payload;
            }
        }
        m.encoded::<Control>()
    }
}

impl Compact {
    /// Direct delivery writes only what follows the last frame: a message in order, as its
    /// payload alone (the pacer writes only messages that follow the position).
    fn direct_after(&self, at: Cursor) -> Option<u8> {
        matches!(&self.last, Some((_, last)) if *last == at).then_some(PAYLOADS)
    }

    /// The start record of a stream that starts after `at` on `channel`
    /// (`switchboard_proto::encode_compact_start`), which becomes the position.
    pub fn start(&mut self, channel: &str, at: Cursor) -> Bytes {
        self.last = Some((Arc::from(channel), at));
        encode_compact_start(channel, at)
    }
}

/// A reply or push of the `/ws` protocol as a control record.
pub fn control(json: &[u8]) -> Bytes {
    encode_compact_control(json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_hub::{Epoch, Payload};

    fn msg(channel: &Arc<str>, offset: u64, data: impl Into<Bytes>) -> HubMessage {
        HubMessage::published(
            channel.clone(),
            Cursor::new(Epoch(7), offset),
            Payload::json_prevalidated(data.into()),
        )
    }

    #[test]
    fn contiguous_messages_go_as_payloads_and_the_rest_as_control_records() {
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let mut c = Compact::default();
        let first = msg(&a, 1, &b"1"[..]);
        assert_eq!(c.frame(&first).payload()[0], 0x1e);
        assert_eq!(&c.frame(&msg(&a, 2, &b"2"[..])).payload()[..], b"2");
        // A gap, another channel, a reset (which leaves the position), then contiguous.
        assert_eq!(c.frame(&msg(&a, 4, &b"4"[..])).payload()[0], 0x1e);
        assert_eq!(c.frame(&msg(&b, 5, &b"5"[..])).payload()[0], 0x1e);
        let reset = HubMessage::reset(b.clone(), Cursor::new(Epoch(7), 9));
        assert_eq!(c.frame(&reset).payload()[0], 0x1e);
        assert_eq!(&c.frame(&msg(&b, 6, &b"6"[..])).payload()[..], b"6");
        // A start record sets the position.
        let start = c.start("a", Cursor::new(Epoch(7), 20));
        assert_eq!(&start[..], b"\x1e{\"start\":\"7:20\",\"channel\":\"a\"}");
        assert_eq!(&c.frame(&msg(&a, 21, &b"21"[..])).payload()[..], b"21");
        // A 64-byte payload is a 66-byte frame.
        let p = format!("\"{}\"", "x".repeat(62));
        assert_eq!(c.frame(&msg(&a, 22, p)).plain_frame().len(), 66);
    }
}
