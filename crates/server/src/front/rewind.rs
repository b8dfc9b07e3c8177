//! [`Rewind`]: a stream whose first reads return bytes already read from it, so a
//! connection whose head was read by the front ([`crate::front`]) can be handed to
//! hyper as if nothing had been read.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// `prefix`, then the rest of `io`; writes go straight to `io`.
#[derive(Debug)]
pub(crate) struct Rewind<S> {
    prefix: Bytes,
    tcp: S,
}

impl<S> Rewind<S> {
    pub(crate) fn new(prefix: Bytes, tcp: S) -> Self {
        Self { prefix, tcp }
    }

    /// The bytes not replayed yet and the stream (a WebSocket takes its connection back
    /// from hyper after the upgrade).
    pub(crate) fn into_parts(self) -> (Bytes, S) {
        (self.prefix, self.tcp)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.prefix.has_remaining() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            if !this.prefix.has_remaining() {
                // Release the buffer as soon as it has been replayed.
                this.prefix = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.tcp).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // hyper writes a head and its body as slices: one `send` is cheaper than `writev`.
        switchboard_ws_tokio::poll_write_gathered(Pin::new(&mut self.get_mut().tcp), cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}
