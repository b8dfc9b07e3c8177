//! [`Streaming`]: a connection the front answers itself, sending a live body (SSE or HTTP
//! streaming) after its head and opening, polled in place by the connection's task.
//!
//! Why it exists: while a response streams, hyper keeps its read buffer, its head write
//! buffer and a boxed body, about 12 KiB per connection all told; idle, a `Streaming` is
//! the stream, the live body's [`Source`] and an empty [`Batch`] (measured in
//! `docs/perf/REPORT.md`, idle SSE at 19,000 connections).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::batch::Batch;
use crate::transport::live::Source;

/// Why a [`Streaming`] response ended (for the connection's log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The body ended: the server closed the subscription (shutdown, a disconnect, a
    /// resume, the token's expiry) and sent its farewell.
    Finished,
    /// The peer closed or reset the connection.
    PeerClosed,
    /// A write failed.
    WriteFailed,
    /// The peer took nothing within `limits.write_timeout_ms`.
    WriteTimeout,
}

impl Ended {
    /// How the connection's log says it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Finished => "finished",
            Self::PeerClosed => "peer closed",
            Self::WriteFailed => "write failed",
            Self::WriteTimeout => "write timeout",
        }
    }
}

/// Most reads of unexpected client bytes per poll of an idle stream.
const PEER_READS_PER_POLL: usize = 8;

/// A connection sending a live body after its head and opening: the source's chunks
/// until its farewell and the terminating chunk, then a close; it ends early when the
/// peer closes or resets the connection, a write fails, or a batch of chunks (at most
/// 64 KiB) is not taken within `limits.write_timeout_ms`. A future polled in place:
/// idle, it is the stream, the source and an empty batch, and waits on the source
/// (subscriptions, heartbeat) and on the stream's reads (peer gone).
#[derive(Debug)]
pub struct Streaming<S> {
    io: S,
    source: Source,
    out: Batch,
    /// A batch is being written (with the terminating chunk when `last`).
    writing: bool,
    last: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Streaming<S> {
    pub(super) fn new(io: S, source: Source) -> Self {
        Self {
            io,
            source,
            out: Batch::default(),
            writing: false,
            last: false,
        }
    }

    /// The hub its subscriptions belong to ([`switchboard_hub::Hub::id`]).
    pub(super) fn hub_id(&self) -> Option<usize> {
        self.source.hub_id()
    }

    /// The same response over another stream (`f` turns the one into the other); when
    /// `f` fails the response is dropped and its error returned.
    pub(super) fn try_map_io<T, E>(
        self,
        f: impl FnOnce(S) -> Result<T, E>,
    ) -> Result<Streaming<T>, E> {
        Ok(Streaming {
            io: f(self.io)?,
            source: self.source,
            out: self.out,
            writing: self.writing,
            last: self.last,
        })
    }

    /// The response as an [`IdleStreaming`] when it waits with nothing to write (after a
    /// poll); otherwise itself.
    #[allow(clippy::result_large_err)] // It comes back as it was, by value.
    pub(super) fn into_idle(self) -> Result<IdleStreaming<S>, Self> {
        if self.writing {
            return Err(self);
        }
        Ok(IdleStreaming {
            io: self.io,
            source: self.source,
        })
    }

    /// Queues `first` and every chunk ready after it, up to a batch, and starts writing.
    fn gather(&mut self, first: Option<Bytes>) {
        let ended = first.is_none();
        if let Some(chunk) = first {
            self.out.push(chunk);
            self.out.fill_from(&mut self.source);
        }
        // A source that ended without a farewell still gets a well-formed end.
        self.last = ended || self.source.is_finished();
        self.writing = true;
    }

    /// Ready when the peer closed or reset the connection; what it sends is dropped (a
    /// few reads per poll at most, then the task yields, so a flood cannot hold it).
    fn poll_peer_gone(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        for _ in 0..PEER_READS_PER_POLL {
            // On the stack: an idle stream keeps no read buffer.
            let mut scrap = [0u8; 512];
            let mut buf = ReadBuf::new(&mut scrap);
            match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(()),
                // Dropped: the response said `connection: close`.
                Poll::Ready(Ok(())) => {}
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// A [`Streaming`] that waits with nothing to write, without its batch (empty then): what
/// a parked response keeps (`front::parked`), 64 bytes less. [`IdleStreaming::resume`]
/// gives the response back.
#[derive(Debug)]
pub(super) struct IdleStreaming<S> {
    io: S,
    source: Source,
}

impl<S: AsyncRead + AsyncWrite + Unpin> IdleStreaming<S> {
    /// The response again, as it was (nothing to write).
    pub(super) fn resume(self) -> Streaming<S> {
        Streaming::new(self.io, self.source)
    }

    /// The stream.
    pub(super) fn io(&self) -> &S {
        &self.io
    }

    /// The same over another stream, as [`Streaming::try_map_io`].
    pub(super) fn try_map_io<T, E>(
        self,
        f: impl FnOnce(S) -> Result<T, E>,
    ) -> Result<IdleStreaming<T>, E> {
        Ok(IdleStreaming {
            io: f(self.io)?,
            source: self.source,
        })
    }
}

/// A write error that means the peer closed or reset the connection.
fn peer_gone(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
    matches!(e.kind(), BrokenPipe | ConnectionReset | ConnectionAborted)
}

impl<S: AsyncRead + AsyncWrite + Unpin> Future for Streaming<S> {
    type Output = Ended;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Ended> {
        let this = self.get_mut();
        loop {
            if this.writing {
                match this.out.poll_write(&mut this.io, &[], this.last, cx) {
                    Poll::Pending => {
                        // A subscriber whose socket takes nothing is given up on (it
                        // resumes from its cursor when it comes back).
                        return this
                            .source
                            .poll_write_stalled(cx)
                            .map(|()| Ended::WriteTimeout);
                    }
                    // A write refused because the peer is gone is the peer's close
                    // (it may come before the read that would have seen it).
                    Poll::Ready(Err(e)) if peer_gone(&e) => return Poll::Ready(Ended::PeerClosed),
                    Poll::Ready(Err(_)) => return Poll::Ready(Ended::WriteFailed),
                    Poll::Ready(Ok(())) if this.last => {
                        // Ends our side cleanly; the stream closes when dropped.
                        let _ = Pin::new(&mut this.io).poll_shutdown(cx);
                        return Poll::Ready(Ended::Finished);
                    }
                    Poll::Ready(Ok(())) => {
                        this.writing = false;
                        this.source.write_done();
                    }
                }
            }
            match this.source.poll_chunk(cx) {
                Poll::Ready(first) => this.gather(first),
                Poll::Pending => return this.poll_peer_gone(cx).map(|()| Ended::PeerClosed),
            }
        }
    }
}
