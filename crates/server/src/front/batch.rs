//! [`Batch`]: what one write of a response the front answers itself sends — queued body
//! chunks framed as one HTTP chunk, after an optional prefix (the response head), with
//! the terminating chunk after the last — and [`write_parts`] for a head and a body of
//! known length. Both write their parts with one call
//! ([`switchboard_ws_tokio::poll_write_gathered`]: a `send` of them gathered when small, a
//! `writev` otherwise) and hold no heap memory between writes, so an idle streaming
//! connection keeps no buffer.

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use switchboard_ws_tokio::poll_write_gathered;
use tokio::io::AsyncWrite;

use super::head;
use crate::transport::live::Source;

/// Most chunks of a live body coalesced into one write.
const MAX_FRAMES: usize = 32;
/// Most bytes coalesced into one write (a batch stops growing once past this).
const MAX_BATCH: usize = 64 * 1024;

/// What the next write sends: the queued chunks as one HTTP chunk (after a prefix such
/// as the response head), and the terminating chunk after the last. Holds no heap memory
/// between writes.
#[derive(Debug, Default)]
pub(super) struct Batch {
    first: Option<Bytes>,
    more: Vec<Bytes>,
    /// Data bytes queued (the chunk's size).
    len: usize,
    /// Bytes of this write already sent (prefix included).
    written: usize,
}

impl Batch {
    pub(super) fn push(&mut self, chunk: Bytes) {
        if chunk.is_empty() {
            // An empty chunk would read as the end of the body.
            return;
        }
        self.len += chunk.len();
        if self.first.is_none() {
            self.first = Some(chunk);
        } else {
            self.more.push(chunk);
        }
    }

    fn is_full(&self) -> bool {
        self.more.len() + 1 >= MAX_FRAMES || self.len >= MAX_BATCH
    }

    /// Queues chunks `source` has ready, until none is or the batch is full.
    pub(super) fn fill_from(&mut self, source: &mut Source) {
        while !self.is_full() {
            match source.ready_chunk() {
                Some(chunk) => self.push(chunk),
                None => break,
            }
        }
    }

    /// Writes `prefix`, everything queued and the end of the body if `last`, then
    /// empties.
    pub(super) async fn write<S: AsyncWrite + Unpin>(
        &mut self,
        io: &mut S,
        prefix: &[u8],
        last: bool,
    ) -> io::Result<()> {
        poll_fn(|cx| self.poll_write(io, prefix, last, cx)).await
    }

    /// [`Batch::write`] as a poll; progress is kept in `self` between polls.
    pub(super) fn poll_write<S: AsyncWrite + Unpin>(
        &mut self,
        io: &mut S,
        prefix: &[u8],
        last: bool,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        let mut size = [0u8; 18];
        let (open, close): (&[u8], &[u8]) = match (self.len, last) {
            (0, false) => (b"", b""),
            (0, true) => (b"", b"0\r\n\r\n"),
            (len, last) => (head::chunk_size_line(len, &mut size), head::chunk_end(last)),
        };
        let data = self.first.iter().chain(&self.more).map(|b| &b[..]);
        let parts = || {
            std::iter::once(prefix)
                .chain(std::iter::once(open))
                .chain(data.clone())
                .chain(std::iter::once(close))
        };
        let total: usize = parts().map(<[u8]>::len).sum();
        while self.written < total {
            let mut slices = [IoSlice::new(&[]); MAX_FRAMES + 3];
            let n = fill_slices(parts(), self.written, &mut slices);
            match poll_write_gathered(Pin::new(&mut *io), cx, &slices[..n]) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(k)) => self.written += k,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            }
        }
        // Nothing kept between writes: an idle connection holds no buffer.
        self.first = None;
        self.more = Vec::new();
        self.len = 0;
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

/// Writes all of `parts` with one gathered write (more, if the socket takes less).
pub(super) async fn write_parts<S: AsyncWrite + Unpin>(
    io: &mut S,
    parts: &[&[u8]; 2],
) -> io::Result<()> {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mut written = 0;
    while written < total {
        let mut slices = [IoSlice::new(&[]); 2];
        let n = fill_slices(parts.iter().copied(), written, &mut slices);
        match poll_fn(|cx| poll_write_gathered(Pin::new(&mut *io), cx, &slices[..n])).await? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            k => written += k,
        }
    }
    Ok(())
}

/// Puts `parts` into `out` as slices, skipping the first `skip` bytes and empty parts;
/// returns how many slices were filled.
fn fill_slices<'a>(
    parts: impl Iterator<Item = &'a [u8]>,
    mut skip: usize,
    out: &mut [IoSlice<'a>],
) -> usize {
    let mut n = 0;
    for part in parts {
        if skip >= part.len() {
            skip -= part.len();
            continue;
        }
        let Some(slot) = out.get_mut(n) else {
            break;
        };
        *slot = IoSlice::new(&part[skip..]);
        skip = 0;
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_skip_written_bytes_and_empty_parts() {
        let parts: [&[u8]; 4] = [b"head", b"", b"ab", b"cde"];
        let mut out = [IoSlice::new(&[]); 4];
        let collect = |out: &[IoSlice<'_>], n: usize| -> Vec<Vec<u8>> {
            out[..n].iter().map(|s| s.to_vec()).collect()
        };
        let n = fill_slices(parts.iter().copied(), 0, &mut out);
        assert_eq!(collect(&out, n), [&b"head"[..], b"ab", b"cde"]);
        let n = fill_slices(parts.iter().copied(), 5, &mut out);
        assert_eq!(collect(&out, n), [&b"b"[..], b"cde"]);
        let n = fill_slices(parts.iter().copied(), 9, &mut out);
        assert_eq!(n, 0);
        let mut two = [IoSlice::new(&[]); 2];
        let n = fill_slices(parts.iter().copied(), 1, &mut two);
        assert_eq!(collect(&two, n), [&b"ead"[..], b"ab"]);
    }
}
