//! One WebSocket connection after the handshake, as a sans-IO state machine.
//!
//! Call order (the driver's loop):
//! 1. bytes read from the socket → [`Connection::handle_input`];
//! 2. drain [`Connection::poll_event`] until `None`;
//! 3. the application sends with `send_*` / [`Connection::close`];
//! 4. write [`Connection::transmit_slices`] to the socket, then report what was written with
//!    [`Connection::advance_transmit`];
//! 5. sleep until [`Connection::poll_timeout`], then call [`Connection::handle_timeout`];
//! 6. drop the TCP connection once [`Connection::should_close_tcp`] says so.
//!
//! Receiving: frames are parsed as their bytes stream in. Only an incomplete header (at
//! most 14 bytes, kept inline) and the message being assembled are held; there is no
//! general input buffer, so an idle connection holds no receive memory. Every limit is
//! checked from the header before any of the payload is stored. Text is validated as it
//! arrives (after inflation when compressed), so invalid UTF-8 fails the connection at once,
//! even in the middle of a frame. A peer fault never panics and never returns an error: it
//! queues a close frame with the code of the [`ProtocolError`], surfaces as
//! [`Event::Error`] and stops reading. A driver that reads into a `BytesMut` can pass it to
//! [`Connection::handle_input_buf`] instead: large whole data frames then become events
//! without being copied (the payload is unmasked in place and split off the caller's
//! buffer); everything else is handled exactly as by `handle_input`.
//!
//! Sending: output is a queue of `Bytes` chunks. Small frames are coalesced into one buffer;
//! large payloads that are already `Bytes` (prepared messages, compressed output) are queued
//! without copying. Control frames (pings, pongs) jump ahead of data frames that have not
//! started going out, but never into the middle of one; a close frame goes after all data.
//!
//! Closing (RFC 6455 §7): a received close is echoed with the peer's code (1000 if it sent
//! none); after sending a close, received data and pings are ignored while waiting for the
//! peer's close; after receiving one, nothing but the echo is sent. The server closes TCP
//! first once its close frame is written; a client waits `close_timeout` for the server to
//! do so. If the peer never answers a close, `close_timeout` ends the wait.
//!
//! Time is passed in. `poll_timeout` may return an instant in the past (for instance right
//! after [`Connection::close`], which has no `now`): call `handle_timeout` at once then.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::clock::{Clock, Deadline};
use crate::close::{parse_close_payload, CloseCode, MAX_REASON_LEN};
use crate::config::{Config, Role};
use crate::deflate::{Compressor, Decompressor, DeflateParams};
use crate::error::{Error, ProtocolError};
use crate::frame::{encode_frame, FrameHeader, OpCode, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};
use crate::mask::apply_mask;
use crate::prepared::PreparedMessage;
use crate::utf8::Utf8Validator;

/// Frames at least this long whose bytes already sit in a `Bytes` are queued by reference;
/// shorter ones are copied into the coalescing buffer (one write covers many of them).
const SHARE_THRESHOLD: usize = 1024;

/// Compressed payload is unmasked in stack pieces of this size before inflating.
const INFLATE_PIECE: usize = 8192;

/// [`Connection::handle_input_buf`] hands out data frames at least this long as a slice of
/// the caller's buffer. Shorter ones are copied: a small message should not pin a whole
/// read buffer's allocation.
pub const OWNED_INPUT_THRESHOLD: usize = 4096;

/// What the peer did, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A complete text message, UTF-8 validated (inflated if it was compressed).
    Text(Bytes),
    /// A complete binary message (inflated if it was compressed).
    Binary(Bytes),
    /// A ping; the pong is already queued.
    Ping(Bytes),
    Pong(Bytes),
    /// The peer's close frame; the echo, if one was due, is already queued.
    Close {
        code: Option<CloseCode>,
        reason: String,
    },
    /// A peer fault; a close frame with its code is already queued and reading stopped.
    Error(ProtocolError),
}

/// Where the close handshake stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Open,
    /// A close frame was sent and/or received, the handshake is not complete.
    Closing {
        sent: bool,
        received: bool,
    },
    /// The handshake completed, or the connection failed or timed out.
    Closed,
}

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
struct InMessage {
    text: bool,
    compressed: bool,
    buf: Vec<u8>,
    /// Payload bytes on the wire so far (compressed size if compressed).
    wire_len: u64,
    utf8: Utf8Validator,
}

#[derive(Debug, Default)]
struct Receiver {
    reading: Reading,
    message: Option<InMessage>,
}

impl Receiver {
    fn in_payload(&self) -> bool {
        !matches!(self.reading, Reading::Header { .. })
    }

    /// Part of a header was received and waits for the rest.
    fn header_started(&self) -> bool {
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

/// The send queue; see the module docs for its ordering rules.
#[derive(Debug, Default)]
struct OutQueue {
    /// Chunks in wire order whose transmission has begun (the front may be partly written).
    active: VecDeque<Bytes>,
    /// Control frames waiting, coalesced; they go before any data unit not yet begun.
    control: BytesMut,
    /// Data units not yet begun: (head, body), sent back to back; body may be empty.
    data: VecDeque<(Bytes, Bytes)>,
    /// Small data frames being coalesced; newer than everything in `data`.
    tail: BytesMut,
    len: usize,
}

impl OutQueue {
    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn push_control(&mut self, header: FrameHeader, payload: &[u8]) {
        let before = self.control.len();
        encode_frame(&mut self.control, header, payload);
        self.len += self.control.len() - before;
    }

    fn push_data_copied(&mut self, header: FrameHeader, payload: &[u8]) {
        let before = self.tail.len();
        encode_frame(&mut self.tail, header, payload);
        self.len += self.tail.len() - before;
    }

    /// Queue a header (encoded here) followed by a payload that is not copied.
    fn push_data_shared(&mut self, header: FrameHeader, payload: Bytes) {
        header.encode_to(&mut self.tail);
        self.len += header.encoded_len() + payload.len();
        let head = self.tail.split().freeze();
        self.data.push_back((head, payload));
    }

    /// Queue complete frame bytes.
    fn push_frame_bytes(&mut self, frame: Bytes) {
        if frame.len() < SHARE_THRESHOLD {
            self.tail.extend_from_slice(&frame);
            self.len += frame.len();
        } else {
            self.len += frame.len();
            let head = self.tail.split().freeze();
            self.data.push_back((head, frame));
        }
    }

    fn slices<'a>(&'a self, out: &mut [IoSlice<'a>]) -> usize {
        let control = (!self.control.is_empty()).then_some(&self.control[..]);
        let data = self.data.iter().flat_map(|(h, b)| [&h[..], &b[..]]);
        let tail = (!self.tail.is_empty()).then_some(&self.tail[..]);
        let all = self
            .active
            .iter()
            .map(|b| &b[..])
            .chain(control)
            .chain(data)
            .chain(tail)
            .filter(|s| !s.is_empty());
        let mut n = 0;
        for (slot, s) in out.iter_mut().zip(all) {
            *slot = IoSlice::new(s);
            n += 1;
        }
        n
    }

    /// Move the next unit, in the order `slices` lists them, into `active`.
    fn promote(&mut self) -> bool {
        if !self.control.is_empty() {
            self.active.push_back(self.control.split().freeze());
        } else if let Some((head, body)) = self.data.pop_front() {
            self.active
                .extend([head, body].into_iter().filter(|b| !b.is_empty()));
        } else if !self.tail.is_empty() {
            self.active.push_back(self.tail.split().freeze());
        } else {
            return false;
        }
        true
    }

    fn advance(&mut self, mut n: usize) {
        debug_assert!(n <= self.len, "advanced past the queued bytes");
        n = n.min(self.len);
        self.len -= n;
        while n > 0 {
            let Some(front) = self.active.front_mut() else {
                if self.promote() {
                    continue;
                }
                break;
            };
            if n >= front.len() {
                n -= front.len();
                self.active.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
        while self.active.front().is_some_and(|b| b.is_empty()) {
            self.active.pop_front();
        }
    }
}

/// The send queue, allocated only while bytes wait: an idle connection holds no send
/// buffer. A lone whole frame that is already `Bytes` (a shared prepared frame: the usual
/// fan-out delivery) waits inline, by reference, so delivering a message to an idle
/// connection and writing it out allocates nothing. The boxed queue is made when a second
/// unit arrives before the first is written, when a frame is only partly written, or when
/// bytes must be encoded or copied; it is freed once empty.
#[derive(Debug)]
enum Output {
    /// Nothing queued (empty), or one whole frame whose transmission has not begun.
    Frame(Bytes),
    Queue(Box<OutQueue>),
}

impl Default for Output {
    fn default() -> Self {
        Output::Frame(Bytes::new())
    }
}

impl Output {
    fn queue(&mut self) -> &mut OutQueue {
        if let Output::Frame(frame) = self {
            *self = Output::Queue(Self::spill(std::mem::take(frame)));
        }
        match self {
            Output::Queue(q) => q,
            Output::Frame(_) => unreachable!("replaced by a queue above"),
        }
    }

    /// The boxed queue holding the inline frame (if any), which has not begun: later
    /// control frames may still go ahead of it.
    fn spill(frame: Bytes) -> Box<OutQueue> {
        let mut q = Box::<OutQueue>::default();
        if !frame.is_empty() {
            q.len = frame.len();
            q.data.push_back((Bytes::new(), frame));
        }
        q
    }

    /// Queue complete frame bytes, inline when nothing else waits.
    fn push_frame(&mut self, frame: Bytes) {
        match self {
            Output::Frame(slot) if slot.is_empty() => *slot = frame,
            _ => self.queue().push_frame_bytes(frame),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Output::Frame(f) => f.is_empty(),
            Output::Queue(q) => q.is_empty(),
        }
    }

    fn len(&self) -> usize {
        match self {
            Output::Frame(f) => f.len(),
            Output::Queue(q) => q.len,
        }
    }

    fn slices<'a>(&'a self, out: &mut [IoSlice<'a>]) -> usize {
        match (self, out.first_mut()) {
            (Output::Frame(f), Some(slot)) if !f.is_empty() => {
                *slot = IoSlice::new(f);
                1
            }
            (Output::Frame(_), _) => 0,
            (Output::Queue(q), _) => q.slices(out),
        }
    }

    fn advance(&mut self, n: usize) {
        match self {
            Output::Frame(f) => {
                debug_assert!(n <= f.len(), "advanced past the queued bytes");
                if n >= f.len() {
                    *f = Bytes::new();
                } else if n > 0 {
                    // Begun: from now on nothing may go ahead of the rest of it.
                    let mut rest = std::mem::take(f);
                    rest.advance(n);
                    let mut q = Box::<OutQueue>::default();
                    q.len = rest.len();
                    q.active.push_back(rest);
                    *self = Output::Queue(q);
                }
            }
            Output::Queue(q) => {
                q.advance(n);
                if q.is_empty() {
                    // Drop the spare capacity too.
                    *self = Output::default();
                }
            }
        }
    }
}

/// Negotiated permessage-deflate and its zlib states.
#[derive(Debug)]
struct DeflateState {
    params: DeflateParams,
    /// Messages shorter than this are sent uncompressed.
    compression_threshold: usize,
    /// Created on first use: a zlib deflate state costs ~256 KiB, and a server that sends
    /// only shared prepared frames (no context takeover) never needs its own.
    compressor: Option<Compressor>,
    /// Created on the first compressed message received (~40 KiB).
    decompressor: Option<Decompressor>,
}

/// A WebSocket connection after the handshake. See the module docs for the call order.
#[derive(Debug)]
pub struct Connection {
    role: Role,
    /// Shared: a server gives all its connections one.
    config: Arc<Config>,
    /// Boxed: most connections negotiate no compression, and its state is large.
    deflate: Option<Box<DeflateState>>,
    rx: Receiver,
    out: Output,
    events: VecDeque<Event>,
    close_sent: bool,
    close_received: bool,
    failed: bool,
    /// A protocol error was found in the input: nothing more is read. The connection fails
    /// (`failed`) when the application reaches the error event, see [`Connection::fail`].
    input_failed: bool,
    timed_out: bool,
    clock: Clock,
}

impl Connection {
    /// A connection whose handshake completed at `now`, with the negotiated deflate
    /// parameters (if any). `config` may be shared by many connections (`Arc<Config>`),
    /// which keeps its copy out of each of them.
    pub fn new(
        role: Role,
        config: impl Into<Arc<Config>>,
        deflate: Option<DeflateParams>,
        now: Instant,
    ) -> Self {
        let config = config.into();
        let compression_threshold = config
            .deflate
            .as_ref()
            .map_or(0, |d| d.compression_threshold);
        Self {
            role,
            config,
            deflate: deflate.map(|params| {
                Box::new(DeflateState {
                    params,
                    compression_threshold,
                    compressor: None,
                    decompressor: None,
                })
            }),
            rx: Receiver::default(),
            out: Output::default(),
            events: VecDeque::new(),
            close_sent: false,
            close_received: false,
            failed: false,
            input_failed: false,
            timed_out: false,
            clock: Clock::new(now),
        }
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// The permessage-deflate parameters in use, if negotiated.
    pub fn deflate(&self) -> Option<&DeflateParams> {
        self.deflate.as_ref().map(|d| &d.params)
    }

    // ----- input -------------------------------------------------------------------------

    /// Feed bytes read from the socket. Never fails: peer protocol errors queue a close frame
    /// with the right code, surface as [`Event::Error`] and make the connection stop reading.
    pub fn handle_input(&mut self, mut data: &[u8], now: Instant) {
        self.set_now(now);
        if !data.is_empty() {
            self.clock.input();
        }
        while !data.is_empty() && self.is_readable() {
            let step = if self.rx.in_payload() {
                self.read_payload(data)
            } else {
                self.read_header(data)
            };
            match step {
                Ok(used) => data = &data[used..],
                Err(e) => self.fail(e),
            }
        }
    }

    /// Feed bytes the caller owns, consuming them from the front of `buf`: the same events
    /// and semantics as [`Connection::handle_input`], but a whole unfragmented, uncompressed
    /// data frame of at least [`OWNED_INPUT_THRESHOLD`] bytes is unmasked in place and its
    /// payload split off as the event's `Bytes`, with no copy and no allocation (the event
    /// shares `buf`'s allocation until it is dropped).
    ///
    /// Bytes left in `buf` on return are the start of a frame that is not complete yet (an
    /// incomplete header, or such a large binary frame still arriving): keep them and
    /// append the next read. Such a frame is first checked against `max_frame_size` and
    /// `max_message_size`, so what the caller holds stays within those limits. Other frames,
    /// including a large text frame not yet complete (so that invalid UTF-8 fails at once),
    /// stream through as with `handle_input`. Once the connection stops reading (a close
    /// received, a protocol error), `buf` is cleared: what follows is ignored.
    pub fn handle_input_buf(&mut self, buf: &mut BytesMut, now: Instant) {
        self.set_now(now);
        if !buf.is_empty() {
            self.clock.input();
        }
        while !buf.is_empty() && self.is_readable() {
            let step = if self.rx.in_payload() {
                self.read_payload(buf).map(Some)
            } else if self.rx.header_started() {
                self.read_header(buf).map(Some)
            } else {
                self.read_frame_owned(buf)
            };
            match step {
                Ok(Some(used)) => buf.advance(used),
                Ok(None) => return,
                Err(e) => self.fail(e),
            }
        }
        if !self.is_readable() {
            buf.clear();
        }
    }

    /// At a frame boundary in the caller's buffer: take a whole large data frame without
    /// copying (returns `Some(0)`: `buf` was already advanced), start any other frame as
    /// `read_header` does (returns the header length), or wait for more bytes (`None`).
    fn read_frame_owned(&mut self, buf: &mut BytesMut) -> Result<Option<usize>, ProtocolError> {
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
        self.events.push_back(if msg.text {
            Event::Text(payload)
        } else {
            Event::Binary(payload)
        });
        Ok(Some(0))
    }

    /// Consume header bytes; returns how many bytes of `data` were used.
    fn read_header(&mut self, data: &[u8]) -> Result<usize, ProtocolError> {
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
                self.rx.message = Some(InMessage {
                    text: h.opcode == OpCode::Text,
                    compressed: h.rsv1,
                    wire_len: h.payload_len,
                    ..InMessage::default()
                });
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
    fn read_payload(&mut self, data: &[u8]) -> Result<usize, ProtocolError> {
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
                        self.events.push_back(Event::Ping(payload));
                    }
                }
                OpCode::Pong => {
                    if !self.close_sent {
                        self.events.push_back(Event::Pong(Bytes::from(payload)));
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
        let payload = Bytes::from(msg.buf);
        self.events.push_back(if msg.text {
            Event::Text(payload)
        } else {
            Event::Binary(payload)
        });
        Ok(())
    }

    fn on_close(&mut self, code: Option<CloseCode>, reason: String) {
        self.close_received = true;
        self.rx = Receiver::default();
        self.events.push_back(Event::Close { code, reason });
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
    fn fail(&mut self, e: ProtocolError) {
        self.input_failed = true;
        self.rx = Receiver::default();
        if let Some(inflater) = self.deflate.as_mut().and_then(|d| d.decompressor.as_mut()) {
            inflater.reset();
        }
        if self.events.is_empty() {
            self.fail_now(&e);
        }
        self.events.push_back(Event::Error(e));
    }

    fn fail_now(&mut self, e: &ProtocolError) {
        if !self.close_sent {
            self.queue_close(e.close_code(), e.reason());
        }
        self.failed = true;
    }

    /// The next event, in the order things happened.
    pub fn poll_event(&mut self) -> Option<Event> {
        let event = self.events.pop_front();
        if let Some(Event::Error(e)) = &event {
            if !self.failed {
                self.fail_now(e);
            }
        }
        event
    }

    // ----- output ------------------------------------------------------------------------

    /// Header of a final frame we send: masked with a fresh key in the client role.
    fn header(&self, opcode: OpCode) -> FrameHeader {
        FrameHeader {
            mask: (self.role == Role::Client).then(rand::random::<[u8; 4]>),
            ..FrameHeader::new(opcode, 0)
        }
    }

    fn check_can_send(&self) -> Result<(), Error> {
        if self.close_sent || self.close_received || self.failed || self.timed_out {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    pub fn send_text(&mut self, text: &str) -> Result<(), Error> {
        self.send_message(OpCode::Text, text.as_bytes())
    }

    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), Error> {
        self.send_message(OpCode::Binary, data)
    }

    /// Like [`Connection::send_binary`], but a large payload is queued without copying when
    /// this connection neither masks (server role) nor compresses it.
    pub fn send_binary_bytes(&mut self, data: Bytes) -> Result<(), Error> {
        self.send_bytes(OpCode::Binary, data)
    }

    /// Like [`Connection::send_text`] for text already in `Bytes` (an echoed
    /// [`Event::Text`], say): checked to be UTF-8 ([`Error::InvalidUtf8`] if not), then
    /// queued like [`Connection::send_binary_bytes`].
    pub fn send_text_bytes(&mut self, text: Bytes) -> Result<(), Error> {
        if simdutf8::basic::from_utf8(&text).is_err() {
            return Err(Error::InvalidUtf8);
        }
        self.send_bytes(OpCode::Text, text)
    }

    fn send_bytes(&mut self, opcode: OpCode, data: Bytes) -> Result<(), Error> {
        self.check_can_send()?;
        if self.role == Role::Server && !self.wants_compression(data.len()) {
            self.queue_data_bytes(FrameHeader::new(opcode, 0), data);
            Ok(())
        } else {
            self.send_message(opcode, &data)
        }
    }

    fn wants_compression(&self, len: usize) -> bool {
        self.deflate
            .as_ref()
            .is_some_and(|d| d.params.compresses(self.role) && len >= d.compression_threshold)
    }

    fn send_message(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), Error> {
        self.check_can_send()?;
        let mut header = self.header(opcode);
        let compress = self.wants_compression(payload.len());
        match self.deflate.as_deref_mut() {
            Some(deflate) if compress => {
                let (role, params) = (self.role, deflate.params);
                let c = deflate.compressor.get_or_insert_with(|| {
                    let (bits, nct) = params.outgoing(role);
                    Compressor::new(bits, nct)
                });
                let mut z = Vec::new();
                c.compress(payload, &mut z)?;
                header.rsv1 = true;
                if let Some(key) = header.mask {
                    apply_mask(&mut z, key, 0);
                }
                // The payload is already masked: encode the header with its key but do not
                // mask again.
                self.queue_premasked(header, z);
            }
            _ => self.out.queue().push_data_copied(header, payload),
        }
        Ok(())
    }

    /// Queue a data frame whose payload is final (already masked if `header.mask` is set).
    fn queue_premasked(&mut self, mut header: FrameHeader, payload: Vec<u8>) {
        header.payload_len = payload.len() as u64;
        if payload.len() < SHARE_THRESHOLD {
            let out = self.out.queue();
            header.encode_to(&mut out.tail);
            out.tail.put_slice(&payload);
            out.len += header.encoded_len() + payload.len();
        } else {
            self.out
                .queue()
                .push_data_shared(header, Bytes::from(payload));
        }
    }

    /// Queue an unmasked data frame (server role) with a payload already in `Bytes`.
    fn queue_data_bytes(&mut self, mut header: FrameHeader, payload: Bytes) {
        if payload.len() < SHARE_THRESHOLD {
            self.out.queue().push_data_copied(header, &payload);
        } else {
            header.payload_len = payload.len() as u64;
            self.out.queue().push_data_shared(header, payload);
        }
    }

    /// Send a message framed once for many connections, sharing its bytes when possible:
    /// a server connection queues the prepared plain frame, or the prepared compressed frame
    /// if it negotiated `server_no_context_takeover`; otherwise the payload is framed (and
    /// compressed with this connection's context, or masked in the client role) here.
    pub fn send_prepared(&mut self, msg: &PreparedMessage) -> Result<(), Error> {
        self.check_can_send()?;
        if self.role == Role::Client {
            return self.send_message(msg.opcode(), msg.payload());
        }
        if self.wants_compression(msg.payload().len()) {
            let shared = self.deflate.as_ref().map(|d| d.params);
            if let Some(params) = shared.filter(|p| p.server_no_context_takeover) {
                if let Some(frame) = msg.deflated_frame(&params) {
                    self.out.push_frame(frame);
                    return Ok(());
                }
            } else {
                // Our compressor keeps context: it must see every message it compresses.
                return self.send_message(msg.opcode(), msg.payload());
            }
        }
        self.out.push_frame(msg.plain_frame());
        Ok(())
    }

    pub fn send_ping(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.send_control(OpCode::Ping, payload)
    }

    /// An unsolicited pong (pongs answering pings are sent automatically).
    pub fn send_pong(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.send_control(OpCode::Pong, payload)
    }

    fn send_control(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), Error> {
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(Error::ControlPayloadTooLarge(payload.len()));
        }
        self.check_can_send()?;
        let header = self.header(opcode);
        self.out.queue().push_control(header, payload);
        Ok(())
    }

    /// Start the close handshake. `code` must be valid on the wire and `reason` at most 123
    /// bytes. Fails with [`Error::Closed`] if a close was already sent.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        if !code.is_valid_on_wire() {
            return Err(Error::InvalidCloseCode(code.as_u16()));
        }
        if reason.len() > MAX_REASON_LEN {
            return Err(Error::ControlPayloadTooLarge(reason.len() + 2));
        }
        if self.close_sent || self.failed || self.timed_out {
            return Err(Error::Closed);
        }
        self.queue_close(code, reason);
        self.clock.arm_close_pending();
        Ok(())
    }

    /// Queue a close frame after all queued data; arms the close timeout.
    fn queue_close(&mut self, code: CloseCode, reason: &str) {
        let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
        let reason = &reason.as_bytes()[..reason.len().min(MAX_REASON_LEN)];
        payload[..2].copy_from_slice(&code.as_u16().to_be_bytes());
        payload[2..2 + reason.len()].copy_from_slice(reason);
        let header = self.header(OpCode::Close);
        self.out
            .queue()
            .push_data_copied(header, &payload[..2 + reason.len()]);
        self.close_sent = true;
        self.clock.arm_close(self.config.close_timeout);
    }

    /// Vectored output: fill `out` with slices of queued bytes, in wire order; returns how
    /// many slices were filled.
    pub fn transmit_slices<'a>(&'a self, out: &mut [IoSlice<'a>]) -> usize {
        self.out.slices(out)
    }

    /// Mark `n` bytes (from the front of the queue) as written.
    pub fn advance_transmit(&mut self, n: usize) {
        self.out.advance(n);
    }

    /// Bytes queued and not yet written: the backpressure signal for the caller.
    pub fn pending_bytes(&self) -> usize {
        self.out.len()
    }

    /// Heap bytes held for receiving: the capacity of the message being assembled plus the
    /// event queue's buffer. Zero whenever no data message is in progress (an incomplete
    /// header is kept inline) and the queue was released
    /// ([`Connection::release_idle_memory`]).
    pub fn receive_capacity(&self) -> usize {
        self.rx.message.as_ref().map_or(0, |m| m.buf.capacity())
            + self.events.capacity() * std::mem::size_of::<Event>()
    }

    /// Frees the event queue's buffer if every event was taken. A driver calls this when
    /// it is about to wait for input, so that an idle connection holds no receive-side heap
    /// even after it received something (a pong every ping interval would otherwise pin
    /// the queue's buffer for life). An active connection allocates it again at its next
    /// event: one small allocation per wait.
    pub fn release_idle_memory(&mut self) {
        if self.events.is_empty() && self.events.capacity() > 0 {
            self.events = VecDeque::new();
        }
    }

    // ----- time --------------------------------------------------------------------------

    fn set_now(&mut self, now: Instant) {
        self.clock.set_now(now);
        if self.clock.close_pending() {
            self.clock.arm_close(self.config.close_timeout);
        }
    }

    fn is_open(&self) -> bool {
        !(self.close_sent || self.close_received || self.failed || self.timed_out)
    }

    fn ping_deadline(&self) -> Option<Instant> {
        self.clock.ping_deadline(self.config.ping_interval?)
    }

    fn idle_deadline(&self) -> Option<Instant> {
        self.clock.idle_deadline(self.config.idle_timeout?)
    }

    /// The next instant [`Connection::handle_timeout`] must be called at (ping interval,
    /// idle timeout, close timeout), or `None`. May be in the past: call it at once then.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.timed_out || self.should_close_tcp() {
            return None;
        }
        let close = match self.clock.close_deadline() {
            Deadline::None => None,
            Deadline::Pending => return Some(self.clock.now()),
            Deadline::At(t) => Some(t),
        };
        if !self.is_open() {
            return close;
        }
        [close, self.ping_deadline(), self.idle_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Act on expired timers: send a ping after `ping_interval` without input, start closing
    /// (1001 "idle timeout") after `idle_timeout` without input, and give up on the close
    /// handshake after `close_timeout`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.set_now(now);
        if let Deadline::At(t) = self.clock.close_deadline() {
            if now >= t {
                self.timed_out = true;
                self.rx = Receiver::default();
                return;
            }
        }
        if !self.is_open() {
            return;
        }
        if self.idle_deadline().is_some_and(|t| now >= t) {
            self.queue_close(CloseCode::GOING_AWAY, "idle timeout");
        } else if self.ping_deadline().is_some_and(|t| now >= t) {
            let header = self.header(OpCode::Ping);
            self.out.queue().push_control(header, &[]);
            self.clock.pinged();
        }
    }

    // ----- state -------------------------------------------------------------------------

    pub fn state(&self) -> State {
        if self.failed || self.timed_out || (self.close_sent && self.close_received) {
            State::Closed
        } else if self.close_sent || self.close_received {
            State::Closing {
                sent: self.close_sent,
                received: self.close_received,
            }
        } else {
            State::Open
        }
    }

    /// False once a close was received, a protocol error hit, or the close timed out.
    pub fn is_readable(&self) -> bool {
        !(self.close_received || self.failed || self.input_failed || self.timed_out)
    }

    /// True when the TCP connection should be closed now: the close timeout expired, or the
    /// connection failed, or (server role) the close handshake completed — in the last two
    /// cases once all queued bytes were transmitted. A client waits for the server to close
    /// TCP, at most `close_timeout`.
    pub fn should_close_tcp(&self) -> bool {
        if self.timed_out {
            return true;
        }
        let flushed = self.out.is_empty();
        if self.failed {
            return flushed;
        }
        self.role == Role::Server && self.close_sent && self.close_received && flushed
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::frame::encode_frame;

    fn client_frame(opcode: OpCode, fin: bool, payload: &[u8]) -> BytesMut {
        let mut out = BytesMut::new();
        let h = FrameHeader {
            fin,
            mask: Some([0x37, 0xfa, 0x21, 0x3d]),
            ..FrameHeader::new(opcode, 0)
        };
        encode_frame(&mut out, h, payload);
        out
    }

    const SIZE_BOUND: usize = 192;

    fn server() -> (Connection, Instant) {
        let now = Instant::now();
        (
            Connection::new(Role::Server, Config::default(), None, now),
            now,
        )
    }

    /// Regression guard: this struct is per connection, and idle connections are the bulk of
    /// a server's memory (872 bytes before the rarely used state moved out of line, 288 after;
    /// 312 with the inline frame slot that makes a fan-out delivery allocation-free; 184
    /// with the config shared, the times as u32 milliseconds and the header buffer sharing
    /// space with the frame and control payload state).
    #[test]
    fn connection_is_small() {
        let size = std::mem::size_of::<Connection>();
        assert!(size <= SIZE_BOUND, "Connection is {size} bytes");
    }

    #[test]
    fn timers_count_from_the_last_input_after_weeks_of_life() {
        let (mut s, now) = server();
        let later = now + std::time::Duration::from_secs(40 * 86_400);
        s.handle_input(&client_frame(OpCode::Pong, true, b""), later);
        assert_eq!(s.poll_event(), Some(Event::Pong(Bytes::new())));
        let ping_at = later + std::time::Duration::from_secs(30);
        assert_eq!(s.poll_timeout(), Some(ping_at));
        s.handle_timeout(ping_at);
        assert_eq!(opcodes(&written(&mut s)), [OpCode::Ping]);
    }

    /// Everything queued, as the socket would receive it.
    fn written(s: &mut Connection) -> Vec<u8> {
        let mut slices = [IoSlice::new(&[]); 16];
        let n = s.transmit_slices(&mut slices);
        let wire: Vec<u8> = slices[..n].iter().flat_map(|s| s.iter().copied()).collect();
        s.advance_transmit(wire.len());
        assert_eq!(s.pending_bytes(), 0);
        wire
    }

    fn opcodes(mut wire: &[u8]) -> Vec<OpCode> {
        let mut out = Vec::new();
        while let Some((h, n)) = FrameHeader::parse(wire).expect("valid frame") {
            out.push(h.opcode);
            wire = &wire[n + h.payload_len as usize..];
        }
        assert!(wire.is_empty(), "trailing bytes");
        out
    }

    #[test]
    fn lone_prepared_frame_waits_inline_and_a_pong_still_goes_ahead() {
        let (mut s, now) = server();
        let m = PreparedMessage::from_text(&"x".repeat(5000));
        s.send_prepared(&m).unwrap();
        assert!(matches!(&s.out, Output::Frame(f) if f.as_ptr() == m.plain_frame().as_ptr()));
        s.handle_input(&client_frame(OpCode::Ping, true, b"now"), now);
        assert_eq!(opcodes(&written(&mut s)), [OpCode::Pong, OpCode::Text]);
        assert!(matches!(&s.out, Output::Frame(f) if f.is_empty()));
    }

    #[test]
    fn partly_written_inline_frame_is_finished_before_anything_else() {
        let (mut s, now) = server();
        let m = PreparedMessage::from_text(&"x".repeat(5000));
        s.send_prepared(&m).unwrap();
        let mut wire = m.plain_frame()[..10].to_vec();
        s.advance_transmit(10);
        assert_eq!(s.pending_bytes(), m.plain_frame().len() - 10);
        s.send_prepared(&PreparedMessage::from_text("second"))
            .unwrap();
        s.handle_input(&client_frame(OpCode::Ping, true, b"now"), now);
        wire.extend(written(&mut s));
        assert_eq!(opcodes(&wire), [OpCode::Text, OpCode::Pong, OpCode::Text]);
        assert!(
            matches!(&s.out, Output::Frame(f) if f.is_empty()),
            "queue freed"
        );
    }

    #[test]
    fn frames_queued_behind_the_inline_one_keep_their_order() {
        let (mut s, _) = server();
        let first = PreparedMessage::from_text("first");
        s.send_prepared(&first).unwrap();
        s.send_text("second").unwrap();
        s.send_prepared(&PreparedMessage::binary(vec![3u8; 2000].into()))
            .unwrap();
        s.close(CloseCode::NORMAL, "").unwrap();
        let wire = written(&mut s);
        assert_eq!(
            opcodes(&wire),
            [OpCode::Text, OpCode::Text, OpCode::Binary, OpCode::Close]
        );
        assert_eq!(&wire[..first.plain_frame().len()], &first.plain_frame()[..]);
    }

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
    fn a_connection_that_got_a_pong_holds_no_receive_heap_once_released() {
        let (mut s, now) = server();
        let mut buf = client_frame(OpCode::Pong, true, b"");
        s.handle_input_buf(&mut buf, now);
        assert_eq!(s.poll_event(), Some(Event::Pong(Bytes::new())));
        assert!(
            s.receive_capacity() > 0,
            "the event queue's buffer is still held"
        );
        s.release_idle_memory();
        assert_eq!(s.receive_capacity(), 0);
        // Nothing is lost: a later event queues as before.
        let mut buf = client_frame(OpCode::Text, true, b"hi");
        s.handle_input_buf(&mut buf, now);
        s.release_idle_memory(); // not idle: the event stays
        assert_eq!(s.poll_event(), Some(Event::Text(Bytes::from_static(b"hi"))));
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
