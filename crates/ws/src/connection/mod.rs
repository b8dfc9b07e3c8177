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
//! most 14 bytes) and the message being assembled are held, in a receiver boxed while
//! the connection receives; there is no general input buffer, so an idle connection
//! holds no receive memory. Every limit is
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
//!
//! Inside, each job has its file: `receive` is the receiving state machine, `send` turns
//! outgoing messages into frames, `output` is the send queue and its ordering rules,
//! `idle` the reduced form an idle connection can be kept in. The
//! permessage-deflate state (`DeflateState`) stays here beside the `Connection` that
//! owns it: the receiver inflates with its decompressor, the sender compresses with its
//! compressor and both read the negotiated parameters, so it belongs to neither side.

mod idle;
mod output;
mod receive;
mod send;

use std::io::IoSlice;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};

use crate::clock::{Clock, Deadline};
use crate::close::{CloseCode, MAX_REASON_LEN};
use crate::config::{Config, Role};
use crate::deflate::{Compressor, Decompressor, DeflateParams};
use crate::error::{Error, ProtocolError};
use crate::frame::OpCode;
use crate::prepared::{PreparedMessage, SharedFraming};

pub use idle::IdleConnection;
use output::Output;
use receive::Rx;

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
    /// Boxed while receiving; nothing on an idle connection (see [`Rx`]).
    rx: Rx,
    out: Output,
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
        let deflate = deflate.map(|params| {
            Box::new(DeflateState {
                params,
                compression_threshold,
                compressor: None,
                decompressor: None,
            })
        });
        Self::open(role, config, deflate, Clock::new(now))
    }

    /// An open connection with nothing received, queued or closed: a new one, or an idle
    /// one resumed ([`IdleConnection::resume`]).
    fn open(
        role: Role,
        config: Arc<Config>,
        deflate: Option<Box<DeflateState>>,
        clock: Clock,
    ) -> Self {
        Self {
            role,
            config,
            deflate,
            rx: Rx::default(),
            out: Output::default(),
            close_sent: false,
            close_received: false,
            failed: false,
            input_failed: false,
            timed_out: false,
            clock,
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

    /// The next event, in the order things happened.
    pub fn poll_event(&mut self) -> Option<Event> {
        let event = self.rx.pop_event();
        if let Some(Event::Error(e)) = &event {
            if !self.failed {
                self.fail_now(e);
            }
        }
        event
    }

    // ----- output ------------------------------------------------------------------------

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

    /// Send a message framed once for many connections, sharing its bytes when possible:
    /// a server connection queues the prepared plain frame, or the prepared compressed frame
    /// if it negotiated `server_no_context_takeover`; otherwise the payload is framed (and
    /// compressed with this connection's context, or masked in the client role) here.
    pub fn send_prepared(&mut self, msg: &PreparedMessage) -> Result<(), Error> {
        self.check_can_send()?;
        if let Some(shared) = self.shared_framing() {
            self.out.push_frame(shared.frame(msg));
            return Ok(());
        }
        if self.role == Role::Server && !self.wants_compression(msg.payload().len()) {
            self.out.push_frame(msg.plain_frame());
            return Ok(());
        }
        // A client masks every frame; a compressor with context must see every message
        // it compresses.
        self.send_message(msg.opcode(), msg.payload())
    }

    /// How this connection sends prepared messages when it shares their bytes: a server
    /// connection without compression, or whose compressor starts every message afresh
    /// (`server_no_context_takeover`). `None` for a client and for a server compressing
    /// with context: [`Connection::send_prepared`] then frames each message here.
    pub fn shared_framing(&self) -> Option<SharedFraming> {
        if self.role == Role::Client {
            return None;
        }
        let Some(d) = self
            .deflate
            .as_ref()
            .filter(|d| d.params.compresses(self.role))
        else {
            return Some(SharedFraming::PLAIN);
        };
        d.params.server_no_context_takeover.then(|| {
            SharedFraming::deflated(d.params.server_max_window_bits, d.compression_threshold)
        })
    }

    /// Queue the rest of a frame whose first bytes were written to the socket outside
    /// this connection (a server's direct delivery of a prepared frame): it goes out
    /// first, before any frame queued here, and nothing is put into it.
    pub fn send_frame_rest(&mut self, rest: Bytes) -> Result<(), Error> {
        self.check_can_send()?;
        self.out.push_begun(rest);
        Ok(())
    }

    pub fn send_ping(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.send_control(OpCode::Ping, payload)
    }

    /// An unsolicited pong (pongs answering pings are sent automatically).
    pub fn send_pong(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.send_control(OpCode::Pong, payload)
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

    /// Vectored output: fill `out` with slices of queued bytes, in wire order; returns how
    /// many slices were filled.
    pub fn transmit_slices<'a>(&'a self, out: &mut [IoSlice<'a>]) -> usize {
        self.out.slices(out)
    }

    /// Mark `n` bytes (from the front of the queue) as written.
    pub fn advance_transmit(&mut self, n: usize) {
        self.out.advance(n);
        if n > 0 && self.is_open() && self.config.write_timeout.is_some() {
            // Progress: the write-stall deadline (armed by `output_blocked`) is off.
            self.clock.disarm_close();
        }
    }

    /// The driver's write would block at `now` with output queued. With a
    /// [`Config::write_timeout`](crate::Config::write_timeout), an open connection arms the
    /// write-stall deadline unless it is armed already; it is disarmed by any progress
    /// ([`Connection::advance_transmit`]) and, when it passes, the connection gives up as
    /// when the close timeout expires ([`Connection::should_close_tcp`]). Shares the one
    /// deadline slot the closing handshake uses later, so it costs no memory.
    pub fn output_blocked(&mut self, now: Instant) {
        let Some(timeout) = self.config.write_timeout else {
            return;
        };
        if self.is_open() && self.clock.close_deadline() == Deadline::None {
            self.set_now(now);
            self.clock.arm_close(timeout);
        }
    }

    /// Bytes queued and not yet written: the backpressure signal for the caller.
    pub fn pending_bytes(&self) -> usize {
        self.out.len()
    }

    /// Buffer bytes held for receiving: the capacity of the message being assembled plus
    /// the event queue's buffer. Zero whenever no data message is in progress and the queue
    /// was released ([`Connection::release_idle_memory`]). The receiver's fixed state (64
    /// bytes: an incomplete header, the frame in progress) is not counted; it is boxed
    /// while the connection receives and freed with the queue.
    pub fn receive_capacity(&self) -> usize {
        self.rx.buffer_bytes()
    }

    /// Frees the receiver's state and event queue when every event was taken, no message
    /// is in progress and the input stands between frames. A driver calls this when it is
    /// about to wait for input, so that an idle connection holds no receive-side heap even
    /// after it received something (a pong every ping interval would otherwise pin the
    /// queue's buffer for life) and its task keeps one pointer for receiving. An active
    /// connection allocates them again at its next input: a few small allocations (the
    /// receiver, the queue's buffer) per wait.
    pub fn release_idle_memory(&mut self) {
        self.rx.release_if_idle();
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
    /// idle timeout, close timeout, write stall), or `None`. May be in the past: call it
    /// at once then.
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
    /// handshake after `close_timeout` (or on an open connection whose output made no
    /// progress for `write_timeout`).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.set_now(now);
        if let Deadline::At(t) = self.clock.close_deadline() {
            if now >= t {
                self.timed_out = true;
                self.rx.reset();
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

/// Tests of the connection as a whole; the `pub(super)` helpers serve the tests of
/// `receive` and `output` too.
#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::frame::{encode_frame, FrameHeader};

    pub(super) fn client_frame(opcode: OpCode, fin: bool, payload: &[u8]) -> BytesMut {
        let mut out = BytesMut::new();
        let h = FrameHeader {
            fin,
            mask: Some([0x37, 0xfa, 0x21, 0x3d]),
            ..FrameHeader::new(opcode, 0)
        };
        encode_frame(&mut out, h, payload);
        out
    }

    const SIZE_BOUND: usize = 96;

    pub(super) fn server() -> (Connection, Instant) {
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
    /// space with the frame and control payload state; 96 with the receiver and its event
    /// queue boxed while receiving).
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
    pub(super) fn written(s: &mut Connection) -> Vec<u8> {
        let mut slices = [IoSlice::new(&[]); 16];
        let n = s.transmit_slices(&mut slices);
        let wire: Vec<u8> = slices[..n].iter().flat_map(|s| s.iter().copied()).collect();
        s.advance_transmit(wire.len());
        assert_eq!(s.pending_bytes(), 0);
        wire
    }

    pub(super) fn opcodes(mut wire: &[u8]) -> Vec<OpCode> {
        let mut out = Vec::new();
        while let Some((h, n)) = FrameHeader::parse(wire).expect("valid frame") {
            out.push(h.opcode);
            wire = &wire[n + h.payload_len as usize..];
        }
        assert!(wire.is_empty(), "trailing bytes");
        out
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
}
