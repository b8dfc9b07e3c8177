//! [`WriteDeadline`]: the stream hyper writes to, given up when a write takes nothing for
//! `limits.write_timeout_ms` — hyper has no write timeout of its own, and a response it
//! streams (SSE, HTTP streaming, a long-poll answer on a connection it serves) to a
//! client that stopped reading would otherwise hold the connection forever. The write
//! then fails with `TimedOut`, and hyper ends the connection.
//!
//! Only connections hyper serves carry it; the front's own path times its writes itself
//! ([`super::streaming`], [`super::exchange`]). Its timer is on the server's shared wheel.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use switchboard_timer::{Wheel, WheelTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// `io`, whose writes fail once one has been blocked for `timeout`.
#[derive(Debug)]
pub(super) struct WriteDeadline<S> {
    io: S,
    timer: WheelTimer,
    timeout: Duration,
    /// When the write now blocked first would block.
    blocked_at: Option<Instant>,
}

impl<S> WriteDeadline<S> {
    pub(super) fn new(io: S, wheel: Wheel, timeout: Duration) -> Self {
        Self {
            io,
            timer: WheelTimer::new(wheel),
            timeout,
            blocked_at: None,
        }
    }

    /// The stream (a WebSocket hyper upgraded takes it back; its codec times its writes).
    pub(super) fn into_inner(self) -> S {
        self.io
    }

    /// After a write returned `res`: progress clears the deadline; a blocked write arms it
    /// (first time) and fails once it passed.
    fn watch<T>(&mut self, res: Poll<io::Result<T>>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        if res.is_ready() {
            self.blocked_at = None;
            return res;
        }
        let since = *self.blocked_at.get_or_insert_with(Instant::now);
        if self.timer.poll_until(since + self.timeout, cx).is_ready() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client took nothing for the write timeout",
            )));
        }
        Poll::Pending
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.io).poll_write(cx, buf);
        this.watch(res, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.watch(res, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.io).poll_flush(cx);
        this.watch(res, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
