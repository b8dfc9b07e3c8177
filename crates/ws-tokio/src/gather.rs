//! [`poll_write_gathered`]: several slices written with one `send` instead of a `writev`.
//!
//! On this machine kind a `writev` of one small buffer costs the kernel 0.6–0.7 µs more
//! than a `send` of the same bytes (4.4–4.7 against 3.8–3.9 µs a 66-B loopback write),
//! and copying up to 16 frames of 66 B into one buffer first keeps that saving
//! (`switchboard bench floor --slices K [--vectored]`, `docs/perf/REPORT.md`, "One `send`
//! instead of `writev`"). tokio's `TcpStream::poll_write` is a `send`; its
//! `poll_write_vectored` is a `writev`. So a write of at most [`GATHER_LIMIT`] bytes is
//! gathered into a per-thread buffer and sent with `poll_write`; a larger one stays a
//! `writev`, where the copy would cost more than the call saves.

use std::cell::Cell;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;

/// Largest write gathered into one buffer; larger ones go as a `writev`.
pub const GATHER_LIMIT: usize = 16 * 1024;

thread_local! {
    /// The gathering buffer of this thread, at most `GATHER_LIMIT` bytes. Taken out of
    /// the cell while in use, so a nested call finds it empty instead of borrowed.
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Writes `slices` to `io` like `poll_write_vectored` (returns how many bytes it took),
/// with one `poll_write` of a gathered copy when they are several and small.
pub fn poll_write_gathered<S: AsyncWrite + ?Sized>(
    io: Pin<&mut S>,
    cx: &mut Context<'_>,
    slices: &[IoSlice<'_>],
) -> Poll<io::Result<usize>> {
    match slices {
        [] => Poll::Ready(Ok(0)),
        [one] => io.poll_write(cx, one),
        _ => {
            let total = slices.iter().map(|s| s.len()).sum::<usize>();
            if total > GATHER_LIMIT {
                return io.poll_write_vectored(cx, slices);
            }
            with_scratch(|buf| {
                buf.reserve(total);
                for s in slices {
                    buf.extend_from_slice(s);
                }
                io.poll_write(cx, buf)
            })
        }
    }
}

/// Lends `f` this thread's gathering buffer, empty: the one [`poll_write_gathered`]
/// copies into, for a caller that gathers frames for a `send` of its own (at most
/// [`GATHER_LIMIT`] bytes, so the buffer stays that size).
pub fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    let mut buf = SCRATCH.take();
    buf.clear();
    let result = f(&mut buf);
    SCRATCH.set(buf);
    result
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::future::poll_fn;
    use tokio::io::AsyncReadExt;

    /// Every byte of every slice arrives in order, gathered or not.
    #[tokio::test]
    async fn writes_the_slices_in_order() {
        let big = vec![b'z'; GATHER_LIMIT];
        for parts in [
            vec![&b"one"[..]],
            vec![&b"a"[..], &b""[..], &b"bc"[..], &b"def"[..]],
            vec![&b"head"[..], &big[..]],
        ] {
            let (mut a, mut b) = tokio::io::duplex(64 * 1024);
            let slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
            let expected: Vec<u8> = parts.concat();
            let n = poll_fn(|cx| poll_write_gathered(Pin::new(&mut a), cx, &slices))
                .await
                .unwrap();
            assert!(n > 0 && n <= expected.len());
            drop(a);
            let mut got = Vec::new();
            b.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, expected[..n]);
        }
    }
}
