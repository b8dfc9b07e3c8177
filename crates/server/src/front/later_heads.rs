//! [`LaterHeads`]: the stream hyper reads, which checks every request head of the
//! connection before hyper sees it, so that a head too long (431) or not HTTP (400) gets
//! the front's JSON answer on every request of a keep-alive connection, as on its first
//! ([`super::exchange::first_request`]), not hyper's bare one.
//!
//! Each head is held back until it is complete ([`head::boundary`]), then handed on with
//! the body its `Content-Length` announces; the next bytes are the next head. A refused
//! head is not handed on: once hyper has answered every request before it ([`Answered`],
//! counted as hyper drops each response body), hyper reads the end of the stream, ends
//! the connection cleanly, and its shutdown writes the answer first. (Were the end of the
//! stream shown while hyper still answers, hyper would drop that answer:
//! `hyper-1.12.0/src/proto/h1/conn.rs`, `mid_message_detect_eof`.) After a body whose
//! end is not followed (chunked, an upgrade, `CONNECT`), the connection's heads are
//! hyper's alone, as they were before.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::head::{self, Boundary};
use crate::error::ServerError;

/// How many responses hyper is done with, shared by the stream and the connection's
/// response bodies ([`CountedBody`]).
#[derive(Debug, Default)]
pub(super) struct Answered {
    done: AtomicUsize,
    waker: AtomicWaker,
}

/// Where the stream is in the request it hands on.
#[derive(Debug, Clone, Copy)]
enum At {
    /// At a head (held back until complete).
    Head,
    /// In a body, this many bytes to go.
    Body(u64),
    /// Past a body whose end is not followed: everything goes on unchecked.
    Through,
}

/// A refused head's answer, written when hyper shuts the stream down.
#[derive(Debug)]
struct Refusal {
    answer: Bytes,
    /// Written, the write side shut down: what the client still sends is drained.
    sent: bool,
}

/// `io` as hyper reads it: each head checked before it is handed on (module docs).
#[derive(Debug)]
pub(super) struct LaterHeads<S> {
    io: S,
    max: usize,
    at: At,
    /// Read from `io`, not handed on yet; the first `approved` bytes may be.
    held: Vec<u8>,
    approved: usize,
    /// Heads handed on.
    heads: usize,
    answered: Arc<Answered>,
    refusal: Option<Refusal>,
}

impl<S> LaterHeads<S> {
    /// `io`, with heads of at most `max` bytes.
    pub(super) fn new(io: S, max: usize) -> Self {
        Self {
            io,
            max,
            at: At::Head,
            held: Vec::new(),
            approved: 0,
            heads: 0,
            answered: Arc::default(),
            refusal: None,
        }
    }

    /// What the connection's response bodies count.
    pub(super) fn answered(&self) -> Arc<Answered> {
        Arc::clone(&self.answered)
    }

    /// The bytes read and not handed on, and the stream (a WebSocket takes its
    /// connection back after an upgrade, whose head was the last one checked).
    pub(super) fn into_parts(self) -> (Bytes, S) {
        (self.held.into(), self.io)
    }

    /// Walks `bytes` (the next ones of the stream) from where the stream is: how many of
    /// them may be handed on. It stops at a head not complete yet, or refused (then
    /// `refusal` is set and the rest is dropped).
    fn scan(&mut self, bytes: &[u8]) -> usize {
        let mut pos = 0;
        while pos < bytes.len() {
            match self.at {
                At::Through => return bytes.len(),
                At::Body(n) => {
                    let step = n.min(u64::try_from(bytes.len() - pos).unwrap_or(u64::MAX));
                    // `step` is at most `bytes.len()`, so it fits.
                    pos += usize::try_from(step).unwrap_or(usize::MAX);
                    self.at = if step == n {
                        At::Head
                    } else {
                        At::Body(n - step)
                    };
                }
                At::Head => match head::boundary(&bytes[pos..], self.max) {
                    Boundary::Partial => return pos,
                    Boundary::Head { len, body } => {
                        pos += len;
                        self.heads += 1;
                        self.at = match body {
                            None => At::Through,
                            Some(0) => At::Head,
                            Some(n) => At::Body(n),
                        };
                    }
                    Boundary::Unchecked => self.at = At::Through,
                    Boundary::TooLarge => {
                        return self.refuse(pos, ServerError::HeadTooLarge { limit: self.max })
                    }
                    Boundary::Malformed => return self.refuse(pos, ServerError::MalformedRequest),
                },
            }
        }
        pos
    }

    fn refuse(&mut self, pos: usize, error: ServerError) -> usize {
        self.refusal = Some(Refusal {
            answer: super::exchange::refusal_bytes(error).into(),
            sent: false,
        });
        pos
    }
}

impl<S: AsyncRead + Unpin> LaterHeads<S> {
    /// Reads what the client sends after a refused head and drops it; ready at the end
    /// of the stream (or an error).
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut scrap = [0u8; 1024];
        loop {
            let mut buf = ReadBuf::new(&mut scrap);
            if let Err(poll) = step(Pin::new(&mut self.io).poll_read(cx, &mut buf)) {
                return poll;
            }
            if buf.filled().is_empty() {
                return Poll::Ready(Ok(()));
            }
        }
    }
}

/// `Poll::Ready(Ok)` as `Ok`, an error or `Pending` as what the caller returns.
fn step<T>(poll: Poll<io::Result<T>>) -> Result<T, Poll<io::Result<()>>> {
    match poll {
        Poll::Ready(Ok(t)) => Ok(t),
        Poll::Ready(Err(e)) => Err(Poll::Ready(Err(e))),
        Poll::Pending => Err(Poll::Pending),
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for LaterHeads<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.approved > 0 {
                let n = this.approved.min(buf.remaining());
                buf.put_slice(&this.held[..n]);
                this.held.drain(..n);
                this.approved -= n;
                return Poll::Ready(Ok(()));
            }
            if this.refusal.is_some() {
                // hyper sees the end of the stream once it answered every request before
                // the refused one (module docs); until then the client's bytes are dropped.
                this.answered.waker.register(cx.waker());
                if this.answered.done.load(Ordering::Acquire) >= this.heads {
                    return Poll::Ready(Ok(()));
                }
                return match this.poll_drain(cx) {
                    Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                    // The client left: so does hyper.
                    Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
                    Poll::Pending => Poll::Pending,
                };
            }
            let before = buf.filled().len();
            if let Err(poll) = step(Pin::new(&mut this.io).poll_read(cx, buf)) {
                return poll;
            }
            let read = buf.filled().len() - before;
            if read == 0 {
                // The end of the stream: an incomplete head goes to hyper as it is.
                this.approved = this.held.len();
                this.at = At::Through;
                if this.approved == 0 {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            if this.held.is_empty() {
                // The usual case: checked where hyper's buffer holds it.
                let k = this.scan(&buf.filled()[before..]);
                if this.refusal.is_none() {
                    this.held.extend_from_slice(&buf.filled()[before + k..]);
                }
                buf.set_filled(before + k);
                if k > 0 {
                    return Poll::Ready(Ok(()));
                }
            } else {
                this.held.extend_from_slice(&buf.filled()[before..]);
                buf.set_filled(before);
                let held = std::mem::take(&mut this.held);
                let k = this.scan(&held);
                this.held = held;
                if this.refusal.is_some() {
                    this.held.truncate(k);
                }
                this.approved = k;
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for LaterHeads<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    /// hyper shuts down after flushing its own writes: a refused head's answer comes
    /// last, then what the client sent after it is drained (a close with unread bytes
    /// would reset the connection, and the client could lose the answer).
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(refusal) = &mut this.refusal {
            while !refusal.answer.is_empty() {
                let n = std::task::ready!(Pin::new(&mut this.io).poll_write(cx, &refusal.answer))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                let _ = refusal.answer.split_to(n);
            }
            if !refusal.sent {
                std::task::ready!(Pin::new(&mut this.io).poll_shutdown(cx))?;
                refusal.sent = true;
            }
            // Only what has arrived: the client is not waited for.
            let _ = this.poll_drain(cx);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

/// A response body of a connection hyper serves, counted in [`Answered`] once hyper
/// drops it (it has then taken the whole response).
pub(super) struct CountedBody<B> {
    body: B,
    answered: Arc<Answered>,
}

impl<B> CountedBody<B> {
    pub(super) fn new(body: B, answered: Arc<Answered>) -> Self {
        Self { body, answered }
    }
}

impl<B> Drop for CountedBody<B> {
    fn drop(&mut self) {
        self.answered.done.fetch_add(1, Ordering::Release);
        self.answered.waker.wake();
    }
}

impl<B: Body + Unpin> Body for CountedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
