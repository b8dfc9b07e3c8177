//! [`TlsIo`]: an accepted stream that speaks TLS (feature `tls`), handed to the front
//! before its handshake: the handshake runs inside the connection's task on its first
//! read or write, so it is counted in the connection limits like any connection (an
//! address holding half-open handshakes is bounded by `max_connections_per_ip`), and
//! bounded in time by `limits.tls_handshake_timeout_ms` (and, like any head, by
//! `header_read_timeout_ms`). After it, reads and writes go through rustls, and both
//! request paths (the front's own and hyper) serve the decrypted stream as they serve
//! TCP.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::server::TlsStream;

use crate::io::Io;

/// A TLS connection over `S`, its handshake done on first use.
pub struct TlsIo<S> {
    state: State<S>,
}

// Boxed: an idle connection holds this inline in its task, as small as a pointer.
enum State<S> {
    Handshake(
        Pin<Box<tokio::time::Timeout<tokio_rustls::Accept<S>>>>,
        Duration,
    ),
    Ready(Box<TlsStream<S>>),
    Failed,
}

impl<S> std::fmt::Debug for TlsIo<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Handshake(..) => "handshake",
            State::Ready(_) => "ready",
            State::Failed => "failed",
        };
        f.debug_struct("TlsIo").field("state", &state).finish()
    }
}

impl<S: Io> TlsIo<S> {
    /// `io`, whose handshake with `config` must end within `timeout`.
    pub fn new(io: S, config: Arc<rustls::ServerConfig>, timeout: Duration) -> Self {
        let accept = tokio_rustls::TlsAcceptor::from(config).accept(io);
        Self {
            state: State::Handshake(Box::pin(tokio::time::timeout(timeout, accept)), timeout),
        }
    }

    /// Completes the handshake (at once when done); `Err` when it failed or took too long.
    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<&mut TlsStream<S>>> {
        if let State::Handshake(accept, timeout) = &mut self.state {
            let done = match ready!(accept.as_mut().poll(cx)) {
                Ok(done) => done,
                Err(_elapsed) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "TLS handshake not done within {} ms (limits.tls_handshake_timeout_ms)",
                        timeout.as_millis()
                    ),
                )),
            };
            self.state = match done {
                Ok(stream) => State::Ready(Box::new(stream)),
                Err(e) => {
                    tracing::debug!(error = %e, "TLS handshake failed");
                    self.state = State::Failed;
                    return Poll::Ready(Err(e));
                }
            };
        }
        match &mut self.state {
            State::Ready(stream) => Poll::Ready(Ok(stream)),
            _ => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the TLS handshake failed",
            ))),
        }
    }
}

impl<S: Io> AsyncRead for TlsIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let stream = ready!(self.get_mut().poll_handshake(cx))?;
        Pin::new(stream).poll_read(cx, buf)
    }
}

impl<S: Io> AsyncWrite for TlsIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let stream = ready!(self.get_mut().poll_handshake(cx))?;
        Pin::new(stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let stream = ready!(self.get_mut().poll_handshake(cx))?;
        Pin::new(stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        // rustls takes vectored writes whatever the stream below does.
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().state {
            State::Ready(stream) => Pin::new(stream).poll_flush(cx),
            // Nothing written yet, nothing to flush.
            _ => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().state {
            State::Ready(stream) => Pin::new(stream).poll_shutdown(cx),
            // No session to close: dropping the stream closes the connection.
            _ => Poll::Ready(Ok(())),
        }
    }
}
