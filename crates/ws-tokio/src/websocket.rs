//! [`WebSocket`]: one connection, the codec's state machine driven over an async stream.
//!
//! All protocol state lives in [`switchboard_ws::Connection`]; this type only moves bytes
//! and time:
//!
//! * **Reading.** Each read goes into a 16 KiB scratch buffer on the stack of the polling
//!   task and is handed to `Connection::handle_input` at once, so an idle connection holds
//!   no read buffer at all (only the codec's unparsed remainder of a partial frame); the
//!   codec's event queue is released whenever `recv` waits for input.
//! * **Writing.** Everything the codec has queued (data frames, automatic pongs, close
//!   replies) is written with one call, so several queued frames leave in one syscall:
//!   a `send` of them gathered when they are small ([`crate::poll_write_gathered`]),
//!   a `writev` of its `transmit_slices` otherwise. Output is flushed whenever
//!   [`WebSocket::recv`] or [`WebSocket::send`] is polled, so pongs go out even when the
//!   application never sends.
//! * **Backpressure.** [`WebSocket::send`] returns once the message is queued and the
//!   bytes still queued are at most the high-water mark ([`WebSocket::set_high_water_mark`],
//!   default 1 MiB); while more are queued, it waits for the socket. `recv` also stops
//!   reading while the socket does not take our output and more than the mark is queued,
//!   so a peer that floods pings without reading cannot grow our queue.
//! * **Timers.** The codec's `poll_timeout` deadline (pings, idle timeout, close timeout,
//!   and the write-stall deadline a blocked write arms when the codec's `write_timeout`
//!   is set) arms one tokio timer, polled by `recv`; on expiry `handle_timeout` runs. The timer is
//!   allocated at the first deadline. With [`WebSocket::set_wheel`] a shared coarse
//!   [`Wheel`] serves instead (a few bytes per connection instead of a tokio timer entry;
//!   timeouts fire up to one wheel resolution late).
//! * **Closing.** After the closing handshake the server shuts TCP down at once
//!   (RFC 6455 §7.1.1); a client waits for the server to do it first, at most the codec's
//!   `close_timeout` after sending its close frame.
//!   `recv` returns `None` once the connection is over.
//!
//! `recv` is cancel-safe (all state lives in the codec), so it can sit in a `select!` with
//! other sources; `send` queues the message when first polled.

use std::future::{poll_fn, Future};
use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use switchboard_timer::{Wheel, WheelTimer};
use switchboard_ws::{CloseCode, Connection, Event, PreparedMessage, Role};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::error::{Error, Result};
use crate::message::{CloseFrame, Message};

mod parked;

pub use parked::ParkedWebSocket;

/// Size of the on-stack buffer each read goes into.
const READ_CHUNK: usize = 16 * 1024;
/// Most slices handed to one write (Linux's `writev` takes up to 1024).
const MAX_SLICES: usize = 64;
/// Default for [`WebSocket::set_high_water_mark`].
pub const DEFAULT_HIGH_WATER_MARK: usize = 1 << 20;

/// A WebSocket connection over the stream `S` (a `TcpStream`, a TLS stream, a hyper
/// `Upgraded`, …). Created by [`accept`](crate::accept), [`connect`](crate::connect) or
/// [`WebSocket::from_upgraded`].
pub struct WebSocket<S> {
    stream: S,
    conn: Connection,
    /// u32: marks over 4 GiB are no mark (and the connection stays 8 bytes smaller).
    high_water: u32,
    timer: Timer,
    read_eof: bool,
    /// The TCP connection is over (shut down by us, or ended by the peer or an error).
    done: bool,
    /// A deadline passed since [`WebSocket::take_ticked`] last asked.
    ticked: bool,
}

impl<S> std::fmt::Debug for WebSocket<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocket")
            .field("role", &self.conn.role())
            .field("state", &self.conn.state())
            .field("pending_bytes", &self.conn.pending_bytes())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<S> WebSocket<S> {
    /// A connection whose stream is open both ways: a new one, or a parked one
    /// ([`ParkedWebSocket::unpark`]).
    fn open(stream: S, conn: Connection, high_water: u32, timer: Timer) -> Self {
        Self {
            stream,
            conn,
            high_water,
            timer,
            read_eof: false,
            done: false,
            ticked: false,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Wrap a stream whose opening handshake already happened elsewhere (e.g. a connection
    /// upgraded by hyper). `leftover` are bytes read past the handshake; they belong to
    /// the WebSocket and are fed to the codec first. `config` may be one `Arc` shared by
    /// many connections (a server's), so that none keeps its own copy.
    pub fn from_upgraded(
        stream: S,
        role: Role,
        config: impl Into<std::sync::Arc<switchboard_ws::Config>>,
        deflate: Option<switchboard_ws::DeflateParams>,
        leftover: &[u8],
    ) -> Self {
        let now = Instant::now();
        let mut conn = Connection::new(role, config, deflate, now.into_std());
        if !leftover.is_empty() {
            conn.handle_input(leftover, now.into_std());
        }
        Self::open(
            stream,
            conn,
            DEFAULT_HIGH_WATER_MARK as u32,
            Timer::Exact(None),
        )
    }

    /// The same connection over another stream: `f` turns the stream into the new one (a
    /// socket moved from one poller to another, say). When `f` fails, the connection is
    /// dropped and its error returned.
    pub fn try_map_stream<T, E>(
        self,
        f: impl FnOnce(S) -> Result<T, E>,
    ) -> Result<WebSocket<T>, E> {
        let Self {
            stream,
            conn,
            high_water,
            timer,
            read_eof,
            done,
            ticked,
        } = self;
        Ok(WebSocket {
            stream: f(stream)?,
            conn,
            high_water,
            timer,
            read_eof,
            done,
            ticked,
        })
    }

    /// Whether one of the codec's deadlines (a ping due, an idle or close timeout) passed
    /// since the last call.
    pub fn take_ticked(&mut self) -> bool {
        std::mem::take(&mut self.ticked)
    }

    /// Serve this connection's timers (pings, idle and close timeouts) from a shared
    /// coarse [`Wheel`] instead of its own tokio timer: far less memory per connection,
    /// and each timeout fires up to one wheel resolution late.
    pub fn set_wheel(&mut self, wheel: Wheel) {
        self.timer = Timer::Wheel(WheelTimer::new(wheel));
    }

    /// Largest number of queued output bytes at which `send` returns without waiting.
    pub fn set_high_water_mark(&mut self, bytes: usize) {
        self.high_water = u32::try_from(bytes).unwrap_or(u32::MAX);
    }

    /// The codec's connection state.
    pub fn state(&self) -> switchboard_ws::connection::State {
        self.conn.state()
    }

    /// Output bytes queued and not yet written to the socket.
    pub fn pending_bytes(&self) -> usize {
        self.conn.pending_bytes()
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The next message, `None` once the connection is over (after the closing handshake,
    /// or after an error was returned). A received close is returned as
    /// [`Message::Close`] (the reply is already queued and is written by further calls);
    /// keep calling until `None` to finish the handshake. A protocol error of the peer is
    /// returned once as [`Error::Ws`]; the close frame for it is sent by further calls.
    pub async fn recv(&mut self) -> Option<Result<Message>> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Poll form of [`recv`](Self::recv).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message>>> {
        loop {
            if let Some(event) = self.conn.poll_event() {
                return Poll::Ready(Some(event_to_message(event)));
            }
            if self.done {
                return Poll::Ready(None);
            }
            let write_blocked = match self.poll_write_queued(cx) {
                Poll::Ready(Ok(())) => false,
                Poll::Ready(Err(e)) => return Poll::Ready(self.socket_error(e)),
                Poll::Pending => true,
            };
            // Once the close timeout expired the codec wants TCP closed even with output
            // still queued (a peer that does not read must not keep us waiting).
            if self.should_end_tcp() && (!write_blocked || self.conn.pending_bytes() > 0) {
                let res = ready!(std::pin::Pin::new(&mut self.stream).poll_shutdown(cx));
                self.done = true;
                return match res {
                    // The peer may already have gone; the connection is over either way.
                    Ok(()) | Err(_) => Poll::Ready(None),
                };
            }
            if self.read_eof {
                if write_blocked {
                    return Poll::Pending;
                }
                self.done = true;
                if self.close_received() {
                    return Poll::Ready(None);
                }
                return Poll::Ready(Some(Err(Error::eof(
                    "the peer closed TCP without a closing handshake",
                ))));
            }
            if self.poll_timer(cx).is_ready() {
                continue;
            }
            if write_blocked && self.over_high_water() {
                // The peer does not read; reading more would only queue more replies.
                return Poll::Pending;
            }
            match self.poll_read_input(cx) {
                Poll::Ready(Ok(0)) => self.read_eof = true,
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(self.socket_error(e)),
                Poll::Pending => {
                    // Waiting for input: hold no receive-side heap meanwhile.
                    self.conn.release_idle_memory();
                    return Poll::Pending;
                }
            }
        }
    }

    /// Queue a message and write what the socket takes; waits while more than the
    /// high-water mark stays queued. `Message::Close` starts the closing handshake (use
    /// [`close`](Self::close) to also wait for its end).
    pub async fn send(&mut self, message: Message) -> Result<()> {
        self.queue(message)?;
        poll_fn(|cx| self.poll_send_ready(cx)).await
    }

    /// Queue a message without writing anything; [`flush`](Self::flush), `send` or `recv`
    /// write it. Several queued messages leave in one vectored write.
    pub fn queue(&mut self, message: Message) -> Result<()> {
        match message {
            Message::Text(b) => self.conn.send_text_bytes(b)?,
            Message::Binary(b) => self.conn.send_binary_bytes(b)?,
            Message::Ping(b) => self.conn.send_ping(&b)?,
            Message::Pong(b) => self.conn.send_pong(&b)?,
            Message::Close(None) => self.conn.close(CloseCode::NORMAL, "")?,
            Message::Close(Some(f)) => self.conn.close(f.code, &f.reason)?,
        }
        Ok(())
    }

    /// Send a message framed once for many connections (its bytes are shared, not copied
    /// per connection where the codec allows it); same waiting rule as `send`.
    pub async fn send_prepared(&mut self, message: &PreparedMessage) -> Result<()> {
        self.conn.send_prepared(message)?;
        poll_fn(|cx| self.poll_send_ready(cx)).await
    }

    /// Queue the rest of a frame whose first bytes were written to the socket elsewhere
    /// (see [`switchboard_ws::Connection::send_frame_rest`]); it goes out first.
    pub fn queue_frame_rest(&mut self, rest: bytes::Bytes) -> Result<()> {
        self.conn.send_frame_rest(rest)?;
        Ok(())
    }

    /// Whether permessage-deflate was negotiated.
    pub fn deflate_negotiated(&self) -> bool {
        self.conn.deflate().is_some()
    }

    /// How this connection sends prepared messages when their bytes are shared
    /// ([`switchboard_ws::Connection::shared_framing`]).
    pub fn shared_framing(&self) -> Option<switchboard_ws::SharedFraming> {
        self.conn.shared_framing()
    }

    /// Queue a prepared message without writing anything.
    pub fn queue_prepared(&mut self, message: &PreparedMessage) -> Result<()> {
        self.conn.send_prepared(message)?;
        Ok(())
    }

    /// Write everything queued.
    pub async fn flush(&mut self) -> Result<()> {
        poll_fn(|cx| {
            let res = ready!(self.poll_write_queued(cx));
            Poll::Ready(res.map_err(|e| self.fail(e)))
        })
        .await
    }

    /// Start the closing handshake (unless one is already under way) and drive the
    /// connection to its end: messages still arriving are discarded; returns once TCP is
    /// closed. Errors after our close frame was sent (the peer vanishing) are not reported.
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<()> {
        self.start_close(code, reason)?;
        poll_fn(|cx| self.poll_close(cx)).await;
        Ok(())
    }

    /// Queue our close frame unless the closing handshake is already under way; further
    /// polls of `recv` or [`poll_close`](Self::poll_close) send it and finish the
    /// handshake.
    pub fn start_close(&mut self, code: CloseCode, reason: &str) -> Result<()> {
        if matches!(self.conn.state(), switchboard_ws::connection::State::Open) {
            self.conn.close(code, reason)?;
        }
        Ok(())
    }

    /// Drive the connection to its end, discarding messages still arriving; Ready once
    /// TCP is closed (or the socket failed). The poll form of the second half of
    /// [`close`](Self::close), for hand-written futures.
    pub fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            match ready!(self.poll_recv(cx)) {
                None | Some(Err(Error::Io(_))) => return Poll::Ready(()),
                Some(_) => {}
            }
        }
    }

    // ---- driving ------------------------------------------------------------------------

    fn poll_send_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        match self.poll_write_queued(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(self.fail(e))),
            Poll::Pending if self.over_high_water() => Poll::Pending,
            Poll::Pending => Poll::Ready(Ok(())),
        }
    }

    /// Write queued output until none is left (Ready) or the socket is full (Pending).
    fn poll_write_queued(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.done {
            return Poll::Ready(Ok(()));
        }
        while self.conn.pending_bytes() > 0 {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let n = self.conn.transmit_slices(&mut slices);
            let written =
                match crate::poll_write_gathered(Pin::new(&mut self.stream), cx, &slices[..n]) {
                    Poll::Ready(written) => written?,
                    Poll::Pending => {
                        // The write-stall deadline (if configured) counts from here.
                        self.conn.output_blocked(Instant::now().into_std());
                        return Poll::Pending;
                    }
                };
            if written == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.conn.advance_transmit(written);
        }
        // TLS and other buffering streams need this; for TCP it is a no-op.
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    /// Read once into the stack buffer and feed the codec. Ready(Ok(0)) is EOF.
    fn poll_read_input(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        let mut storage = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
        let mut buf = ReadBuf::uninit(&mut storage);
        ready!(Pin::new(&mut self.stream).poll_read(cx, &mut buf))?;
        let data = buf.filled();
        // After a close or a protocol error the codec reads nothing more; we still read
        // (and drop) to notice the peer closing TCP.
        if !data.is_empty() && self.conn.is_readable() {
            self.conn.handle_input(data, Instant::now().into_std());
        }
        Poll::Ready(Ok(data.len()))
    }

    /// Arm the timer for the nearest deadline; Ready once it passed (timeouts handled).
    fn poll_timer(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(deadline) = self.conn.poll_timeout().map(Instant::from_std) else {
            return Poll::Pending;
        };
        match &mut self.timer {
            Timer::Exact(Some(sleep)) => {
                if sleep.deadline() != deadline {
                    sleep.as_mut().reset(deadline);
                }
                ready!(sleep.as_mut().poll(cx));
            }
            Timer::Exact(slot @ None) => {
                ready!(slot
                    .insert(Box::pin(tokio::time::sleep_until(deadline)))
                    .as_mut()
                    .poll(cx));
            }
            Timer::Wheel(timer) => ready!(timer.poll_until(deadline, cx)),
        }
        self.conn.handle_timeout(Instant::now().into_std());
        self.ticked = true;
        Poll::Ready(())
    }

    /// Whether to shut TCP down now. The codec decides: a server right after the closing
    /// handshake (its output written), a client only when the close timeout expired (until
    /// then it waits for the server's FIN), either side when the close timeout expired
    /// (output still queued or not).
    fn should_end_tcp(&self) -> bool {
        self.conn.should_close_tcp()
    }

    fn over_high_water(&self) -> bool {
        self.conn.pending_bytes() > self.high_water as usize
    }

    fn close_received(&self) -> bool {
        use switchboard_ws::connection::State;
        match self.conn.state() {
            State::Open => false,
            State::Closing { received, .. } => received,
            State::Closed => true,
        }
    }

    /// A socket error while receiving. Once the peer's close frame arrived, the peer
    /// dropping TCP (a reset, as some servers do right after the closing handshake) is the
    /// end we expected, not an error.
    fn socket_error(&mut self, e: std::io::Error) -> Option<Result<Message>> {
        if self.close_received() {
            self.done = true;
            return None;
        }
        Some(Err(self.fail(e)))
    }

    fn fail(&mut self, e: std::io::Error) -> Error {
        self.done = true;
        Error::Io(e)
    }
}

/// Where a connection's deadlines are kept.
#[derive(Debug)]
enum Timer {
    /// Its own tokio timer, re-armed to the nearest deadline; allocated at the first one.
    Exact(Option<Pin<Box<Sleep>>>),
    /// A shared coarse wheel (cancelled when the connection ends).
    Wheel(WheelTimer),
}

fn event_to_message(event: Event) -> Result<Message> {
    Ok(match event {
        Event::Text(b) => Message::Text(b),
        Event::Binary(b) => Message::Binary(b),
        Event::Ping(b) => Message::Ping(b),
        Event::Pong(b) => Message::Pong(b),
        Event::Close { code, reason } => {
            Message::Close(code.map(|code| CloseFrame { code, reason }))
        }
        Event::Error(e) => return Err(e.into()),
    })
}
