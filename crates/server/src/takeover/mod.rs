//! Connections the server answers itself instead of through hyper: a new connection
//! whose first request is a streaming `GET` (SSE or HTTP streaming, see
//! [`head::parse`]) with nothing after it, and the polls and long-polls of a keep-alive
//! connection, request after request, for as long as each comes alone.
//!
//! Why: such a response lasts as long as the subscriber, and while it streams hyper keeps
//! its read buffer, its head write buffer and a boxed body (about 12 KiB per connection
//! all told). Here the head is read into a small buffer that is dropped once parsed; the
//! request goes to the same subscribe handler the router calls ([`crate::app::subscribe`],
//! so validation and every error response stay with it; the router's own per-request
//! work is skipped); then the live body's [`Source`] is driven by [`Streaming`],
//! a future the connection's task polls in place: each batch of ready chunks is written
//! as one HTTP chunk with one vectored write. Idle, a connection holds the socket, the
//! source and nothing else, and it watches the socket so that a subscriber who went away
//! is dropped at once.
//!
//! The steps, in order:
//! 1. [`first_request`]: reads the first head (at most [`head::MAX_HEAD`] bytes, within
//!    the header-read timeout), then either owns the connection or hands it to hyper as a
//!    [`Rewind`] that replays the bytes already read.
//! 2. [`answer`]: calls the subscribe handler. For a live body it writes the response
//!    head, the opening chunk and any chunk already ready in one write and returns the
//!    [`Streaming`] that sends the rest; any other response (an error) is written with
//!    `content-length`. Either way the response says `connection: close`, carries `date`
//!    as hyper writes it, and the connection closes after it (a live body ends with the
//!    terminating chunk after the source's farewell).
//!
//! A client that closes its side (EOF or reset) while the response streams ends the
//! connection, as hyper does without half-close support. Bytes it sends meanwhile (a
//! pipelined request) are read and dropped: the response said `connection: close`.
//!
//! Polls and long-polls ([`exchange`]): the answer (the handler's, whatever it is) goes
//! out with `content-length` (or chunked) and no `connection: close` unless the request
//! asked for it or shutdown began; then the next head is read as the first one was, with
//! the same timeout, and goes wherever it belongs: another exchange, a stream, or hyper
//! (which then serves the rest of the connection). A held long-poll whose client closes
//! the connection ends at once. Why: a long-polling client makes one request per message,
//! and hyper's per-request work (its buffers, the request's extensions, the upgrade hook)
//! was a sixth of the server's CPU per delivery.

pub(crate) mod head;
mod rewind;

use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use axum::response::Response;
use bytes::Bytes;
use http::Request;
use http_body::Body as _;
use http_body_util::BodyExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::shutdown::ShutdownSignal;
use crate::state::AppState;
use crate::transport::live::{self, Source};

pub(crate) use rewind::Rewind;

/// Most chunks of a live body coalesced into one write.
const MAX_FRAMES: usize = 32;
/// Most bytes coalesced into one write (a batch stops growing once past this).
const MAX_BATCH: usize = 64 * 1024;
/// Most reads of unexpected client bytes per poll of an idle stream.
const PEER_READS_PER_POLL: usize = 8;
/// Largest body of known length collected and written with its head in one write.
const MAX_PLAIN: u64 = 64 * 1024;

/// How a connection is served from its next request on.
#[derive(Debug)]
pub(crate) enum First {
    /// Its first request is a streaming `GET`: [`answer`] it here.
    Own(TcpStream, Request<()>),
    /// A poll or long-poll: [`exchange`] it here.
    Exchange(TcpStream, Request<()>),
    /// hyper serves it; the bytes read so far come first.
    Hyper(Rewind),
    /// It closed, failed, was too slow or the server began to shut down before a
    /// request arrived.
    Gone,
}

/// Reads the first request head of a new connection (see the module docs); gives up
/// after `timeout` (slow-loris guard) or when shutdown begins.
pub(crate) async fn first_request(
    mut tcp: TcpStream,
    timeout: Duration,
    shutdown: &ShutdownSignal,
) -> First {
    let mut buf = Vec::new();
    // A tokio timer, not the shared wheel: a wheel entry stays until its tick, and its
    // waker keeps this task's cell alive after a WebSocket upgrade ended it (measured:
    // 19,000 idle WebSockets, 988 -> 1,312 B each).
    let step = tokio::select! {
        biased;
        step = tokio::time::timeout(timeout, read_head(&mut tcp, &mut buf)) => step,
        () = shutdown.wait() => return First::Gone,
    };
    match step {
        Ok(Some(head::Parsed::Own(req))) => {
            drop(buf);
            First::Own(tcp, req)
        }
        Ok(Some(head::Parsed::Exchange(req))) => {
            drop(buf);
            First::Exchange(tcp, req)
        }
        // A partial head at EOF goes to hyper too: it answers it as it always has.
        Ok(Some(head::Parsed::Hyper | head::Parsed::Partial) | None) if !buf.is_empty() => {
            First::Hyper(Rewind::new(Bytes::from(buf), tcp))
        }
        _ => First::Gone,
    }
}

/// Reads until [`head::parse`] decides; `None` at EOF (`Partial` never comes out).
async fn read_head(tcp: &mut TcpStream, buf: &mut Vec<u8>) -> Option<head::Parsed> {
    loop {
        if buf.len() == buf.capacity() {
            // Grows by doubling from 1 KiB; `parse` hands over before MAX_HEAD is passed.
            let more = buf.capacity().max(1024).min(head::MAX_HEAD - buf.len());
            buf.reserve_exact(more);
        }
        match tokio::io::AsyncReadExt::read_buf(tcp, buf).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        match head::parse(buf) {
            head::Parsed::Partial => {}
            decided => return Some(decided),
        }
    }
}

/// The subscribe handler's answer to `req`. Boxed: its future holds every transport's
/// state machine, and inline it would make every connection's opening phase that large,
/// WebSocket handshakes (which go to hyper) included.
async fn handle(state: &AppState, req: Request<()>) -> Response {
    let req = req.map(|()| axum::body::Body::empty());
    Box::pin(crate::app::subscribe(state, req)).await
}

/// Answers `req` (read by [`first_request`]) with the subscribe handler. A live body
/// comes back as the [`Streaming`] that sends it (for the connection's task to poll in
/// place); any other response is written here, the connection closed, and `None`
/// returned.
pub(crate) async fn answer(
    tcp: TcpStream,
    req: Request<()>,
    state: &AppState,
) -> Option<Streaming> {
    let resp = handle(state, req).await;
    match send(tcp, resp, true).await {
        Sent::Stream(streaming) => streaming,
        Sent::Open(_) | Sent::Closed => None,
    }
}

/// Answers a poll or long-poll `req` (read by [`first_request`]) with the subscribe
/// handler, then reads the connection's next request head (see the module docs). A live
/// body (which `head::parse` did not foresee, e.g. a percent-encoded `transport=sse`) is
/// sent as by [`answer`] and ends the connection.
pub(crate) async fn exchange(
    tcp: TcpStream,
    req: Request<()>,
    state: &AppState,
    timeout: Duration,
    shutdown: &ShutdownSignal,
) -> AfterExchange {
    let close = head::wants_close(req.headers());
    let Some(resp) = unless_peer_leaves(&tcp, handle(state, req)).await else {
        // Dropping the answer's future drops its subscriptions at once.
        return AfterExchange::Next(First::Gone);
    };
    match send(tcp, resp, close || shutdown.is_triggered()).await {
        Sent::Stream(streaming) => AfterExchange::Stream(streaming),
        Sent::Open(tcp) => AfterExchange::Next(first_request(tcp, timeout, shutdown).await),
        Sent::Closed => AfterExchange::Next(First::Gone),
    }
}

/// Waits for `answer` unless the peer closes or resets the connection first (`None`):
/// a long-poll whose client left is not held to its timeout. Bytes the peer sends
/// meanwhile (a pipelined request) are left unread for the next exchange; the socket is
/// no longer watched after them.
async fn unless_peer_leaves<F: Future<Output = Response>>(
    tcp: &TcpStream,
    answer: F,
) -> Option<Response> {
    let mut answer = std::pin::pin!(answer);
    let mut watching = true;
    poll_fn(|cx| {
        if let Poll::Ready(resp) = answer.as_mut().poll(cx) {
            return Poll::Ready(Some(resp));
        }
        if watching {
            let mut one = [0u8; 1];
            let mut buf = tokio::io::ReadBuf::new(&mut one);
            match tcp.poll_peek(cx, &mut buf) {
                Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(None),
                Poll::Ready(Ok(_)) => watching = false,
                Poll::Pending => {}
            }
        }
        Poll::Pending
    })
    .await
}

/// What follows an [`exchange`].
#[derive(Debug)]
pub(crate) enum AfterExchange {
    /// The connection's next request, served as its first one would be.
    Next(First),
    /// A live body to send until it ends (the connection closes after it), or `None`.
    Stream(Option<Streaming>),
}

/// What writing a response left of its connection.
// Matched at once by its caller; boxing the stream would cost an allocation per stream.
#[allow(clippy::large_enum_variant)]
enum Sent {
    /// A live body: the [`Streaming`] that sends the rest (`None` if it already ended).
    Stream(Option<Streaming>),
    /// Any other response, written; the connection stays open for the next request.
    Open(TcpStream),
    /// Written and closed (as asked), or the write failed.
    Closed,
}

/// Writes `resp`: a live body's head, opening and ready chunks, or any other response,
/// after which the connection is closed if `close` (a live body always ends it).
async fn send(mut tcp: TcpStream, mut resp: Response, close: bool) -> Sent {
    if let Some(live) = live::claim(&mut resp) {
        return Sent::Stream(start_streaming(tcp, resp, live).await);
    }
    if write_plain(&mut tcp, resp, close).await.is_err() {
        return Sent::Closed;
    }
    if close {
        let _ = tcp.shutdown().await;
        return Sent::Closed;
    }
    Sent::Open(tcp)
}

/// Writes the head of `resp` (a live body claimed from it), the opening and the chunks
/// ready already; returns the [`Streaming`] that sends the rest, or `None` when the body
/// already ended (the connection is then closed) or the write failed.
async fn start_streaming(
    mut tcp: TcpStream,
    resp: Response,
    (opening, mut source): (Bytes, Source),
) -> Option<Streaming> {
    let head = head::response_head(
        resp.status(),
        resp.headers(),
        head::Framing::Chunked,
        &date_now(),
        true,
    );
    // Not held across the write: its body is not `Sync`.
    drop(resp);
    // The head, the opening and whatever is ready already (a replay), in one write.
    let mut out = Batch::default();
    out.push(opening);
    out.fill_from(&mut source);
    let last = source.is_finished();
    if out.write(&mut tcp, &head, last).await.is_err() {
        return None;
    }
    if last {
        let _ = tcp.shutdown().await;
        return None;
    }
    Some(Streaming::new(tcp, source))
}

/// A taken-over connection sending a live body after its head and opening: the source's
/// chunks until its farewell and the terminating chunk, then a close; it ends early when
/// the peer closes or resets the connection, or a write fails. A future polled in place:
/// idle, it is the socket, the source and an empty [`Batch`], and waits on the source
/// (subscriptions, heartbeat) and on the socket's read readiness (peer gone).
#[derive(Debug)]
pub(crate) struct Streaming {
    tcp: TcpStream,
    source: Source,
    out: Batch,
    /// A batch is being written (with the terminating chunk when `last`).
    writing: bool,
    last: bool,
}

impl Streaming {
    fn new(tcp: TcpStream, source: Source) -> Self {
        Self {
            tcp,
            source,
            out: Batch::default(),
            writing: false,
            last: false,
        }
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
    fn poll_peer_gone(&self, cx: &mut Context<'_>) -> Poll<()> {
        for _ in 0..PEER_READS_PER_POLL {
            match self.tcp.poll_read_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Ready(Ok(())) => {}
            }
            let mut scrap = [0u8; 512];
            match self.tcp.try_read(&mut scrap) {
                Ok(0) => return Poll::Ready(()),
                // Dropped; WouldBlock cleared the readiness, so the next poll registers.
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return Poll::Ready(()),
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl Future for Streaming {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            if this.writing {
                match this.out.poll_write(&mut this.tcp, &[], this.last, cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(_)) => return Poll::Ready(()),
                    Poll::Ready(Ok(())) if this.last => {
                        // Ends our side cleanly; the socket closes when dropped.
                        let _ = Pin::new(&mut this.tcp).poll_shutdown(cx);
                        return Poll::Ready(());
                    }
                    Poll::Ready(Ok(())) => this.writing = false,
                }
            }
            match this.source.poll_chunk(cx) {
                Poll::Ready(first) => this.gather(first),
                Poll::Pending => return this.poll_peer_gone(cx),
            }
        }
    }
}

/// Writes a response that is not a live body, saying `connection: close` if `close`:
/// with `content-length` when its length is known and small (head and body in one
/// vectored write), chunked otherwise. An error means the connection is unusable.
async fn write_plain(tcp: &mut TcpStream, resp: Response, close: bool) -> io::Result<()> {
    let (parts, mut body) = resp.into_parts();
    let date = date_now();
    let broken = || io::Error::from(io::ErrorKind::InvalidData);
    match body.size_hint().exact() {
        Some(n) if n <= MAX_PLAIN => {
            let bytes = body.collect().await.map_err(|_| broken())?.to_bytes();
            let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
            let framing = head::Framing::Length(len);
            let head = head::response_head(parts.status, &parts.headers, framing, &date, close);
            write_parts(tcp, &[&head, &bytes]).await
        }
        _ => {
            let framing = head::Framing::Chunked;
            let head = head::response_head(parts.status, &parts.headers, framing, &date, close);
            tcp.write_all(&head).await?;
            let mut out = Batch::default();
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame.map_err(|_| broken())?.into_data() {
                    out.push(data);
                    out.write(tcp, &[], false).await?;
                }
            }
            out.write(tcp, &[], true).await
        }
    }
}

/// Writes all of `parts` with vectored writes (one, unless the socket takes less).
async fn write_parts(tcp: &mut TcpStream, parts: &[&[u8]; 2]) -> io::Result<()> {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mut written = 0;
    while written < total {
        let mut slices = [IoSlice::new(&[]); 2];
        let n = fill_slices(parts.iter().copied(), written, &mut slices);
        match tcp.write_vectored(&slices[..n]).await? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            k => written += k,
        }
    }
    Ok(())
}

/// The `Date` header value for now.
fn date_now() -> [u8; 29] {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    head::http_date(secs)
}

/// What the next write sends: the queued chunks as one HTTP chunk (after a prefix such
/// as the response head), and the terminating chunk after the last. Holds no heap memory
/// between writes.
#[derive(Debug, Default)]
struct Batch {
    first: Option<Bytes>,
    more: Vec<Bytes>,
    /// Data bytes queued (the chunk's size).
    len: usize,
    /// Bytes of this write already sent (prefix included).
    written: usize,
}

impl Batch {
    fn push(&mut self, chunk: Bytes) {
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
    fn fill_from(&mut self, source: &mut Source) {
        while !self.is_full() {
            match source.ready_chunk() {
                Some(chunk) => self.push(chunk),
                None => break,
            }
        }
    }

    /// Writes `prefix`, everything queued and the end of the body if `last`, then
    /// empties.
    async fn write(&mut self, tcp: &mut TcpStream, prefix: &[u8], last: bool) -> io::Result<()> {
        poll_fn(|cx| self.poll_write(tcp, prefix, last, cx)).await
    }

    /// [`Batch::write`] as a poll; progress is kept in `self` between polls.
    fn poll_write(
        &mut self,
        tcp: &mut TcpStream,
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
            match Pin::new(&mut *tcp).poll_write_vectored(cx, &slices[..n]) {
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
    #![allow(clippy::unwrap_used)]
    use tokio::io::AsyncWriteExt as _;
    use tokio::net::TcpListener;
    use tokio::time::Instant;

    use super::*;
    use crate::shutdown::Shutdown;

    /// `first_request` on the server side of a fresh loopback connection whose client
    /// writes `sent` and then waits (keeping the connection open).
    async fn first_request_after(sent: &'static [u8], timeout: Duration) -> (First, Duration) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (tcp, _) = listener.accept().await.unwrap();
        client.write_all(sent).await.unwrap();
        let shutdown = Shutdown::new();
        let signal = shutdown.signal();
        let started = Instant::now();
        let reading = first_request(tcp, timeout, &signal);
        let bounded = tokio::time::timeout(Duration::from_secs(10), reading);
        let first = bounded.await.expect("first_request gave up by itself");
        drop(client);
        (first, started.elapsed())
    }

    #[tokio::test]
    async fn a_head_that_does_not_arrive_in_time_ends_the_connection() {
        let timeout = Duration::from_millis(300);
        let partial = b"GET /ch/a HTTP/1.1\r\nHost: x\r\n";
        let (first, took) = first_request_after(partial, timeout).await;
        assert!(matches!(first, First::Gone), "{first:?}");
        assert!(
            took >= timeout,
            "gave up after {took:?}, before the timeout"
        );

        let whole = b"GET /ch/a HTTP/1.1\r\nHost: x\r\n\r\n";
        let (first, _) = first_request_after(whole, timeout).await;
        assert!(matches!(first, First::Exchange(..)), "{first:?}");
    }

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
