//! The receiving state machine of a [`Connection`]: bytes in, [`Event`]s out.
//!
//! Frames are parsed as their bytes stream in: `Reading` holds an incomplete header, a
//! data frame's payload position, or a control frame's payload at its exact length; it,
//! the message in progress and the events not taken yet live in one box ([`Rx`]) that an
//! idle connection does not hold. Data frames are assembled into the message in progress
//! (`InMessage`): stored, or inflated, and UTF-8 checked as they arrive. Every limit is checked from the header
//! before any payload is stored. A close received or a peer fault ends reading here
//! (`on_close`, `fail`); the frames that answer them are queued through `send`.

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};

use super::{Connection, Event, OWNED_INPUT_THRESHOLD};
use crate::close::{parse_close_payload, CloseCode};
use crate::config::Role;
use crate::deflate::Decompressor;
use crate::error::ProtocolError;
use crate::frame::{FrameHeader, OpCode, MAX_HEADER_LEN};
use crate::mask::apply_mask;
use crate::utf8::Utf8Validator;

/// Compressed payload is unmasked in stack pieces of this size before inflating.
const INFLATE_PIECE: usize = 8192;

/// The data frame whose payload is streaming in.
#[derive(Debug, Clone, Copy)]
struct InFrame {
    fin: bool,
    /// Payload bytes already received, modulo 4: all that masking needs of the offset.
    phase: u8,
    mask: Option<[u8; 4]>,
    remaining: u64,
}

/// Where the input stands: in a frame's header or in its payload. Only one is ever in
/// progress, so they share space.
#[derive(Debug)]
enum Reading {
    /// Between frames (`len` 0), or the first `len` bytes of an incomplete header.
    Header {
        buf: [u8; MAX_HEADER_LEN],
        len: u8,
    },
    Data(InFrame),
    /// A control frame's payload, allocated at its exact length (at most 125 bytes,
    /// checked by the header parser) so that it becomes the event's `Bytes` without a
    /// copy; `filled` bytes of it were received.
    Control {
        opcode: OpCode,
        mask: Option<[u8; 4]>,
        filled: u8,
        payload: Box<[u8]>,
    },
}

impl Default for Reading {
    fn default() -> Self {
        Reading::Header {
            buf: [0; MAX_HEADER_LEN],
            len: 0,
        }
    }
}

/// The data message being assembled.
#[derive(Debug)]
pub(super) struct InMessage {
    text: bool,
    compressed: bool,
    pub(super) buf: Vec<u8>,
    /// Payload bytes on the wire so far (compressed size if compressed).
    wire_len: u64,
    utf8: Utf8Validator,
}

/// Everything receiving keeps: where the input stands, the message in progress and the
/// events not taken yet. Boxed in [`Rx`].
#[derive(Debug, Default)]
pub(super) struct Receiver {
    reading: Reading,
    pub(super) message: Option<Box<InMessage>>,
    pub(super) events: VecDeque<Event>,
}

/// What an idle connection holds: nothing (between frames, no message in progress, every
/// event taken); otherwise a [`Receiver`]. Reading through it never allocates (an idle
/// connection reads as a fresh receiver); writing makes the box. [`Rx::release_if_idle`]
/// frees it, so that an idle connection's task carries one pointer for receiving instead
/// of 64 bytes.
#[derive(Debug, Default)]
pub(super) struct Rx(Option<Box<Receiver>>);

/// How an absent receiver reads.
static IDLE: Receiver = Receiver {
    reading: Reading::Header {
        buf: [0; MAX_HEADER_LEN],
        len: 0,
    },
    message: None,
    events: VecDeque::new(),
};

impl std::ops::Deref for Rx {
    type Target = Receiver;

    fn deref(&self) -> &Receiver {
        self.0.as_deref().unwrap_or(&IDLE)
    }
}

impl std::ops::DerefMut for Rx {
    fn deref_mut(&mut self) -> &mut Receiver {
        self.0.get_or_insert_default()
    }
}

impl Rx {
    /// Whether it holds nothing (no box).
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The next event, without making the box.
    pub(super) fn pop_event(&mut self) -> Option<Event> {
        self.0.as_mut()?.events.pop_front()
    }

    /// Forget the frame and message in progress (the events stay).
    pub(super) fn reset(&mut self) {
        if let Some(rx) = self.0.as_mut() {
            rx.reading = Reading::default();
            rx.message = None;
        }
    }

    /// Buffer bytes held: the message's buffer and the event queue's (not the fixed-size
    /// receiver state itself, which was inline before it was boxed).
    pub(super) fn buffer_bytes(&self) -> usize {
        self.0.as_ref().map_or(0, |rx| {
            rx.events.capacity() * std::mem::size_of::<Event>()
                + rx.message.as_ref().map_or(0, |m| m.buf.capacity())
        })
    }

    /// Frees the box when it holds nothing: between frames, no message in progress, every
    /// event taken.
    pub(super) fn release_if_idle(&mut self) {
        let idle = self.0.as_ref().is_some_and(|rx| {
            matches!(rx.reading, Reading::Header { len: 0, .. })
                && rx.message.is_none()
                && rx.events.is_empty()
        });
        if idle {
            self.0 = None;
        }
    }
}

impl Receiver {
    pub(super) fn in_payload(&self) -> bool {
        !matches!(self.reading, Reading::Header { .. })
    }

    /// Part of a header was received and waits for the rest.
    pub(super) fn header_started(&self) -> bool {
        matches!(self.reading, Reading::Header { len, .. } if len > 0)
    }
}

impl Default for InMessage {
    fn default() -> Self {
        Self {
            text: false,
            compressed: false,
            buf: Vec::new(),
            wire_len: 0,
            utf8: Utf8Validator::new(),
        }
    }
}

impl Connection {
    /// At a frame boundary in the caller's buffer: take a whole large data frame without
    /// copying (returns `Some(0)`: `buf` was already advanced), start any other frame as
    /// `read_header` does (returns the header length), or wait for more bytes (`None`).
    pub(super) fn read_frame_owned(
        &mut self,
        buf: &mut BytesMut,
    ) -> Result<Option<usize>, ProtocolError> {
        let Some((h, n)) = FrameHeader::parse(buf)? else {
            return Ok(None);
        };
        let zero_copy = matches!(h.opcode, OpCode::Text | OpCode::Binary)
            && h.fin
            && !h.rsv1
            && h.payload_len >= OWNED_INPUT_THRESHOLD as u64
            && self.rx.message.is_none()
            && !self.close_sent;
        if !zero_copy {
            self.begin_frame(h)?;
            return Ok(Some(n));
        }
        let present = (buf.len() - n) as u64;
        if present < h.payload_len {
            // Binary waits in the caller's buffer. Text streams (copied), so invalid UTF-8
            // still fails the connection as soon as it arrives.
            let wait = h.opcode == OpCode::Binary
                && h.payload_len <= self.config.max_frame_size as u64
                && h.payload_len <= self.config.max_message_size as u64;
            if wait {
                return Ok(None);
            }
            // Over a limit (begin_frame reports it), or text: stream it.
            self.begin_frame(h)?;
            return Ok(Some(n));
        }
        // Every check the streaming path makes (role and mask, RSV bits, limits).
        self.begin_frame(h)?;
        self.rx.reading = Reading::default();
        let mut msg = self.rx.message.take().unwrap_or_default();
        buf.advance(n);
        // `payload_len` fits: it is at most buf.len().
        let mut payload = buf.split_to(h.payload_len as usize);
        if let Some(key) = h.mask {
            apply_mask(&mut payload, key, 0);
        }
        if msg.text {
            msg.utf8.feed(&payload)?;
            msg.utf8.finish()?;
        }
        let payload = payload.freeze();
        self.rx.events.push_back(if msg.text {
            Event::Text(payload)
        } else {
            Event::Binary(payload)
        });
        Ok(Some(0))
    }

    /// Consume header bytes; returns how many bytes of `data` were used.
    pub(super) fn read_header(&mut self, data: &[u8]) -> Result<usize, ProtocolError> {
        let Reading::Header { buf, len } = &mut self.rx.reading else {
            return Ok(0);
        };
        let (parsed, used) = if *len == 0 {
            match FrameHeader::parse(data)? {
                Some((h, n)) => (Some(h), n),
                None => {
                    buf[..data.len()].copy_from_slice(data);
                    // An incomplete header is shorter than MAX_HEADER_LEN (14).
                    *len = data.len() as u8;
                    (None, data.len())
                }
            }
        } else {
            let have = usize::from(*len);
            let take = (MAX_HEADER_LEN - have).min(data.len());
            buf[have..have + take].copy_from_slice(&data[..take]);
            match FrameHeader::parse(&buf[..have + take])? {
                Some((h, n)) => {
                    *len = 0;
                    (Some(h), n - have)
                }
                None => {
                    *len = (have + take) as u8;
                    (None, take)
                }
            }
        };
        if let Some(header) = parsed {
            self.begin_frame(header)?;
        }
        Ok(used)
    }

    fn begin_frame(&mut self, h: FrameHeader) -> Result<(), ProtocolError> {
        match (self.role, h.mask.is_some()) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame),
            (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        h.check_rsv(self.deflate.is_some())?;
        let max_frame = self.config.max_frame_size;
        if h.payload_len > max_frame as u64 {
            return Err(ProtocolError::FrameTooBig {
                len: h.payload_len,
                max: max_frame,
            });
        }
        let max_msg = self.config.max_message_size as u64;
        let too_big = ProtocolError::MessageTooBig {
            max: self.config.max_message_size,
        };
        match h.opcode {
            OpCode::Close | OpCode::Ping | OpCode::Pong => {
                // The header parser caps control payloads at 125 bytes.
                self.rx.reading = Reading::Control {
                    opcode: h.opcode,
                    mask: h.mask,
                    filled: 0,
                    payload: vec![0; h.payload_len as usize].into_boxed_slice(),
                };
                if h.payload_len == 0 {
                    self.end_frame()?;
                }
                return Ok(());
            }
            OpCode::Text | OpCode::Binary => {
                if self.rx.message.is_some() {
                    return Err(ProtocolError::ExpectedContinuation);
                }
                if h.payload_len > max_msg {
                    return Err(too_big);
                }
                self.rx.message = Some(Box::new(InMessage {
                    text: h.opcode == OpCode::Text,
                    compressed: h.rsv1,
                    wire_len: h.payload_len,
                    ..InMessage::default()
                }));
            }
            OpCode::Continue => {
                let Some(msg) = self.rx.message.as_mut() else {
                    return Err(ProtocolError::UnexpectedContinuation);
                };
                msg.wire_len += h.payload_len;
                if msg.wire_len > max_msg {
                    return Err(too_big);
                }
            }
        }
        self.rx.reading = Reading::Data(InFrame {
            fin: h.fin,
            phase: 0,
            mask: h.mask,
            remaining: h.payload_len,
        });
        if h.payload_len == 0 {
            self.end_frame()?;
        }
        Ok(())
    }

    /// Consume payload bytes of the current frame; returns how many were used.
    pub(super) fn read_payload(&mut self, data: &[u8]) -> Result<usize, ProtocolError> {
        let (take, done) = match &mut self.rx.reading {
            Reading::Header { .. } => return Ok(0),
            Reading::Control {
                mask,
                filled,
                payload,
                ..
            } => {
                let start = usize::from(*filled);
                let take = (payload.len() - start).min(data.len());
                let part = &mut payload[start..start + take];
                part.copy_from_slice(&data[..take]);
                if let Some(key) = *mask {
                    apply_mask(part, key, start);
                }
                // At most 125: control payloads are capped by the header parser.
                *filled = (start + take) as u8;
                (take, start + take == payload.len())
            }
            Reading::Data(frame) => {
                let take =
                    usize::try_from(frame.remaining).map_or(data.len(), |r| r.min(data.len()));
                let (mask, offset, remaining) =
                    (frame.mask, usize::from(frame.phase), frame.remaining);
                frame.phase = ((offset + take) & 3) as u8;
                frame.remaining -= take as u64;
                self.message_payload(&data[..take], mask, offset, remaining)?;
                (take, remaining == take as u64)
            }
        };
        if done {
            self.end_frame()?;
        }
        Ok(take)
    }

    /// Payload of a data frame: store (or inflate) and validate as it arrives.
    /// `remaining` is what the frame still had before this chunk; `offset` is the masking
    /// offset of its first byte (only its value modulo 4 matters).
    fn message_payload(
        &mut self,
        chunk: &[u8],
        mask: Option<[u8; 4]>,
        offset: usize,
        remaining: u64,
    ) -> Result<(), ProtocolError> {
        let max = self.config.max_message_size;
        let Some(msg) = self.rx.message.as_mut() else {
            return Ok(());
        };
        if self.close_sent {
            // Waiting for the peer's close: data is framed-checked only, not kept.
            return Ok(());
        }
        let start = msg.buf.len();
        if msg.compressed {
            let Some(deflate) = self.deflate.as_deref_mut() else {
                return Err(ProtocolError::ReservedBits);
            };
            let (role, params) = (self.role, deflate.params);
            let inflater = deflate.decompressor.get_or_insert_with(|| {
                let (bits, nct) = params.incoming(role);
                Decompressor::new(bits, nct)
            });
            let mut piece = [0u8; INFLATE_PIECE];
            let mut off = offset;
            for part in chunk.chunks(INFLATE_PIECE) {
                let p = &mut piece[..part.len()];
                p.copy_from_slice(part);
                if let Some(key) = mask {
                    apply_mask(p, key, off);
                }
                off += part.len();
                inflater.decompress(p, &mut msg.buf, max)?;
            }
        } else {
            // Grow geometrically, but never past what this frame still brings.
            if msg.buf.capacity() - msg.buf.len() < chunk.len() {
                let frame_left = usize::try_from(remaining).unwrap_or(usize::MAX);
                let want = msg.buf.len().max(chunk.len()).min(frame_left);
                msg.buf.reserve_exact(want);
            }
            msg.buf.extend_from_slice(chunk);
            if let Some(key) = mask {
                apply_mask(&mut msg.buf[start..], key, offset);
            }
        }
        if msg.text {
            msg.utf8.feed(&msg.buf[start..])?;
        }
        Ok(())
    }

    fn end_frame(&mut self) -> Result<(), ProtocolError> {
        match std::mem::take(&mut self.rx.reading) {
            header @ Reading::Header { .. } => self.rx.reading = header,
            Reading::Data(frame) => {
                if frame.fin {
                    self.end_message()?;
                }
            }
            Reading::Control {
                opcode, payload, ..
            } => match opcode {
                OpCode::Close => {
                    let (code, reason) = parse_close_payload(&payload)?;
                    self.on_close(code, reason);
                }
                OpCode::Ping => {
                    let payload = Bytes::from(payload);
                    if !self.close_sent {
                        let header = self.header(OpCode::Pong);
                        self.out.queue().push_control(header, &payload);
                        self.rx.events.push_back(Event::Ping(payload));
                    }
                }
                OpCode::Pong => {
                    if !self.close_sent {
                        self.rx.events.push_back(Event::Pong(Bytes::from(payload)));
                    }
                }
                // Only control opcodes are read into `Reading::Control`.
                OpCode::Text | OpCode::Binary | OpCode::Continue => {}
            },
        }
        Ok(())
    }

    fn end_message(&mut self) -> Result<(), ProtocolError> {
        let Some(mut msg) = self.rx.message.take() else {
            return Ok(());
        };
        if self.close_sent {
            return Ok(());
        }
        // An empty compressed payload carries no deflate data at all (some peers send it
        // for an empty message): there is nothing to inflate.
        if msg.compressed && msg.wire_len > 0 {
            let max = self.config.max_message_size;
            let start = msg.buf.len();
            if let Some(inflater) = self.deflate.as_mut().and_then(|d| d.decompressor.as_mut()) {
                inflater.finish(&mut msg.buf, max)?;
            }
            if msg.text {
                msg.utf8.feed(&msg.buf[start..])?;
            }
        }
        if msg.text {
            msg.utf8.finish()?;
        }
        let payload = Bytes::from(std::mem::take(&mut msg.buf));
        self.rx.events.push_back(if msg.text {
            Event::Text(payload)
        } else {
            Event::Binary(payload)
        });
        Ok(())
    }

    fn on_close(&mut self, code: Option<CloseCode>, reason: String) {
        self.close_received = true;
        self.rx.reset();
        self.rx.events.push_back(Event::Close { code, reason });
        if !self.close_sent {
            self.queue_close(code.unwrap_or(CloseCode::NORMAL), "");
        }
        if self.role == Role::Client {
            // A client now waits (bounded) for the server to close TCP.
            self.clock.arm_close(self.config.close_timeout);
        }
    }

    /// Fail the connection (RFC 6455 §7.1.7): report, send a close if we still may, stop
    /// reading. Messages that arrived before the fault are still delivered first, and the
    /// application may still answer them (an echo server echoes them): the close frame is
    /// queued when the error event is polled, or at once if no event is ahead of it.
    pub(super) fn fail(&mut self, e: ProtocolError) {
        self.input_failed = true;
        self.rx.reset();
        if let Some(inflater) = self.deflate.as_mut().and_then(|d| d.decompressor.as_mut()) {
            inflater.reset();
        }
        if self.rx.events.is_empty() {
            self.fail_now(&e);
        }
        self.rx.events.push_back(Event::Error(e));
    }

    pub(super) fn fail_now(&mut self, e: &ProtocolError) {
        if !self.close_sent {
            self.queue_close(e.close_code(), e.reason());
        }
        self.failed = true;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::Config;
    use crate::connection::tests::{client_frame, server};
    use std::time::Instant;

    #[test]
    fn large_frame_payload_points_into_callers_buffer() {
        let (mut s, now) = server();
        let payload: Vec<u8> = (0..64 * 1024).map(|i| (i * 7) as u8).collect();
        let mut buf = client_frame(OpCode::Binary, true, &payload);
        let alloc = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
        s.handle_input_buf(&mut buf, now);
        assert!(buf.is_empty());
        let Some(Event::Binary(got)) = s.poll_event() else {
            panic!("expected a binary event");
        };
        assert_eq!(got, payload);
        assert!(
            alloc.contains(&(got.as_ptr() as usize)),
            "payload was copied"
        );
        s.release_idle_memory();
        assert_eq!(s.receive_capacity(), 0);
    }

    #[test]
    fn small_and_fragmented_frames_are_copied() {
        let (mut s, now) = server();
        let mut buf = client_frame(OpCode::Text, true, b"hello");
        let big = vec![b'a'; OWNED_INPUT_THRESHOLD];
        buf.extend_from_slice(&client_frame(OpCode::Binary, false, &big));
        buf.extend_from_slice(&client_frame(OpCode::Continue, true, &big));
        let alloc = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
        s.handle_input_buf(&mut buf, now);
        assert!(buf.is_empty());
        assert_eq!(
            s.poll_event(),
            Some(Event::Text(Bytes::from_static(b"hello")))
        );
        let Some(Event::Binary(got)) = s.poll_event() else {
            panic!("expected a binary event");
        };
        assert_eq!(got.len(), 2 * OWNED_INPUT_THRESHOLD);
        assert!(!alloc.contains(&(got.as_ptr() as usize)));
    }

    #[test]
    fn incomplete_large_frame_waits_in_callers_buffer() {
        let (mut s, now) = server();
        let payload = vec![7u8; 10_000];
        let wire = client_frame(OpCode::Binary, true, &payload);
        let mut buf = BytesMut::from(&wire[..3000]);
        s.handle_input_buf(&mut buf, now);
        assert_eq!(buf.len(), 3000, "kept for the next read");
        assert_eq!(s.poll_event(), None);
        assert_eq!(s.receive_capacity(), 0);
        buf.extend_from_slice(&wire[3000..]);
        s.handle_input_buf(&mut buf, now);
        assert!(buf.is_empty());
        assert_eq!(s.poll_event(), Some(Event::Binary(Bytes::from(payload))));
    }

    #[test]
    fn oversized_incomplete_frame_fails_at_once() {
        let now = Instant::now();
        let config = Config {
            max_frame_size: 8192,
            ..Config::default()
        };
        let mut s = Connection::new(Role::Server, config, None, now);
        let wire = client_frame(OpCode::Binary, true, &[0u8; 10_000]);
        let mut buf = BytesMut::from(&wire[..100]);
        s.handle_input_buf(&mut buf, now);
        assert!(buf.is_empty(), "nothing more is read after an error");
        assert!(matches!(
            s.poll_event(),
            Some(Event::Error(ProtocolError::FrameTooBig { .. }))
        ));
        assert!(!s.is_readable());
    }

    #[test]
    fn invalid_utf8_in_an_incomplete_large_text_frame_fails_at_once() {
        let (mut s, now) = server();
        let mut text = vec![b'a'; 8192];
        text[100] = 0xFF;
        let wire = client_frame(OpCode::Text, true, &text);
        let mut buf = BytesMut::from(&wire[..1000]);
        s.handle_input_buf(&mut buf, now);
        assert_eq!(
            s.poll_event(),
            Some(Event::Error(ProtocolError::InvalidUtf8))
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn invalid_utf8_in_a_large_text_frame_fails() {
        let (mut s, now) = server();
        let mut text = vec![b'a'; 8192];
        text[5000] = 0xFF;
        let mut buf = client_frame(OpCode::Text, true, &text);
        buf.extend_from_slice(&client_frame(OpCode::Text, true, b"after"));
        s.handle_input_buf(&mut buf, now);
        assert_eq!(
            s.poll_event(),
            Some(Event::Error(ProtocolError::InvalidUtf8))
        );
        assert_eq!(s.poll_event(), None);
    }
}
