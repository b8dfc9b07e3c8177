//! The requests the front answers itself, without hyper: reading a connection's request
//! heads ([`first_request`]), answering a streaming subscribe ([`answer`]), and the
//! exchanges of a keep-alive connection — polls, long-polls and WebSocket upgrades —
//! request after request, for as long as each comes alone ([`exchange`]).
//!
//! Why (measured, `docs/perf/REPORT.md`): a streaming response lasts as long as its
//! subscriber, and while it streams hyper keeps about 12 KiB per connection (read
//! buffer, head write buffer, a boxed body); here the head is read into a small buffer
//! that is dropped once parsed, and the live body is driven in place ([`Streaming`]). A
//! long-polling client makes one request per message, and hyper's per-request work (its
//! buffers, the request's extensions, the upgrade hook) was a sixth of the server's CPU
//! per delivery.
//!
//! The steps, in order:
//! 1. [`first_request`]: reads a head (at most `limits.max_header_bytes`, within
//!    `limits.header_read_timeout_ms`) and classifies it once ([`head::parse`]): the
//!    front answers it, or hyper serves the connection from here on, through a
//!    [`Rewind`] that replays the bytes already read. A head too long (431) or that is
//!    not HTTP (400) is answered with a JSON body and the connection closed.
//! 2. The front's answer: the admission check and the handler ([`Front::respond`]), then
//!    [`send`]: a live body's head, opening and ready chunks in one write, then the
//!    [`Streaming`] that sends the rest (the response says `connection: close` and the
//!    connection ends with the body); a `101` to a WebSocket upgrade, after which the
//!    connection belongs to the WebSocket; any other answer with `content-length` (or
//!    chunked), `date` as hyper writes it, and `connection: close` only when the request
//!    asked for it or shutdown began — then the next head is read as the first one was.
//!
//! A client that closes its side (EOF or reset) while the response streams ends the
//! connection, as hyper does without half-close support; bytes it sends meanwhile are
//! read and dropped (the response said `connection: close`). A held long-poll whose
//! client closes the connection ends at once.

use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, SystemTime};

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::FutureExt as _;
use http::Request;
use http_body::Body as _;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadBuf};

use super::batch::{write_parts, Batch};
use super::head;
use super::rewind::Rewind;
use super::streaming::Streaming;
use super::{Front, HeadLimits};
use crate::error::ServerError;
use crate::io::Io;
use crate::shutdown::ShutdownSignal;
use crate::transport::live::{self, Source};
use crate::transport::websocket;

/// Largest body of known length collected and written with its head in one write.
const MAX_PLAIN: u64 = 64 * 1024;

/// How a connection is served from its next request on.
#[derive(Debug)]
pub(super) enum First<S> {
    /// A streaming `GET`: [`answer`] it here; the connection ends with the stream.
    Own(S, Request<()>),
    /// A poll, a long-poll or a WebSocket upgrade: [`exchange`] it here.
    Exchange(S, Request<()>),
    /// hyper serves it; the bytes read so far come first.
    Hyper(Rewind<S>),
    /// Its head is refused (too long, not HTTP): [`refuse`] it.
    Refuse(S, ServerError),
    /// It closed, failed, was too slow or the server began to shut down before a
    /// request arrived.
    Gone,
}

/// Reads the next request head of a connection, after `read` (bytes of it already read;
/// see the module docs); gives up after `limits.timeout` (slow-loris guard) or when
/// shutdown begins.
pub(super) async fn first_request<S: Io>(
    mut io: S,
    read: Vec<u8>,
    limits: HeadLimits,
    shutdown: &ShutdownSignal,
) -> First<S> {
    let mut buf = read;
    // A tokio timer, not the shared wheel: a wheel entry stays until its tick, and its
    // waker keeps this task's cell alive after a WebSocket upgrade ended it (measured:
    // 19,000 idle WebSockets, 988 -> 1,312 B each).
    let step = tokio::select! {
        biased;
        step = tokio::time::timeout(limits.timeout, read_head(&mut io, &mut buf, limits.max)) => step,
        () = shutdown.wait() => return First::Gone,
    };
    match step {
        Ok(Some(head::Parsed::Own(req))) => First::Own(io, req),
        Ok(Some(head::Parsed::TooLarge)) => {
            First::Refuse(io, ServerError::HeadTooLarge { limit: limits.max })
        }
        Ok(Some(head::Parsed::Malformed)) => First::Refuse(io, ServerError::MalformedRequest),
        Ok(Some(head::Parsed::Exchange(req) | head::Parsed::Upgrade(req))) => {
            First::Exchange(io, req)
        }
        // A partial head at EOF goes to hyper too: it answers it as it always has.
        Ok(Some(head::Parsed::Hyper | head::Parsed::Partial) | None) if !buf.is_empty() => {
            First::Hyper(Rewind::new(Bytes::from(buf), io))
        }
        _ => First::Gone,
    }
}

/// Reads until [`head::parse`] decides; `None` at EOF (`Partial` never comes out).
async fn read_head<S: Io>(io: &mut S, buf: &mut Vec<u8>, max: usize) -> Option<head::Parsed> {
    loop {
        if buf.len() == buf.capacity() {
            // Grows by doubling from 1 KiB; `parse` decides before `max` is passed.
            let more = buf
                .capacity()
                .max(1024)
                .min(max.saturating_sub(buf.len()).max(1));
            buf.reserve_exact(more);
        }
        match io.read_buf(buf).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        match head::parse(buf, max) {
            head::Parsed::Partial => {}
            decided => return Some(decided),
        }
    }
}

/// The front's answer to `req`. Boxed: its future holds every transport's state
/// machine, and inline it would make every connection's opening phase that large.
async fn handle(front: &Front, req: Request<()>, peer: SocketAddr) -> Response {
    Box::pin(front.respond(req, peer)).await
}

/// Answers a streaming `req` (read by [`first_request`]). A live body comes back as the
/// [`Streaming`] that sends it (for the connection's task to poll in place); any other
/// response is written here, the connection closed, and `None` returned.
pub(super) async fn answer<S: Io>(
    front: &Front,
    io: S,
    req: Request<()>,
    peer: SocketAddr,
) -> Option<Streaming<S>> {
    let resp = handle(front, req, peer).await;
    match send_within(front, io, resp, true, Vec::new()).await {
        Sent::Stream(streaming) => streaming,
        Sent::Open(..) | Sent::Closed => None,
    }
}

/// Answers a poll, long-poll or WebSocket upgrade `req` (read by [`first_request`]),
/// then reads the connection's next request head (see the module docs). A live body
/// (which `head::parse` did not foresee, e.g. a percent-encoded `transport=sse`) is sent
/// as by [`answer`] and ends the connection; so does an accepted upgrade.
pub(super) async fn exchange<S: Io>(
    front: &Front,
    mut io: S,
    req: Request<()>,
    peer: SocketAddr,
    limits: HeadLimits,
    shutdown: &ShutdownSignal,
) -> AfterExchange<S> {
    let close = head::wants_close(req.headers());
    let Some((resp, early)) = unless_peer_leaves(&mut io, handle(front, req, peer)).await else {
        // Dropping the answer's future drops its subscriptions at once.
        return AfterExchange::Next(First::Gone);
    };
    match send_within(front, io, resp, close || shutdown.is_triggered(), early).await {
        Sent::Stream(streaming) => AfterExchange::Stream(streaming),
        Sent::Open(io, early) => {
            AfterExchange::Next(first_request(io, early, limits, shutdown).await)
        }
        Sent::Closed => AfterExchange::Next(First::Gone),
    }
}

/// Turns a new connection away for `retry_after` (the new-connection rate, see
/// [`super::connections`]): a WebSocket handshake is accepted and closed at once with
/// 1013 and a reason that says when to retry; any other request is answered `503 busy`
/// with `Retry-After`. Either way the connection is closed.
pub(super) async fn busy<S: Io>(first: First<S>, retry_after: Duration) {
    let busy = ServerError::Busy { retry_after };
    match first {
        First::Own(io, req) | First::Exchange(io, req) if head::is_upgrade(req.headers()) => {
            match websocket::busy_close(&req, retry_after) {
                Ok(bytes) => {
                    let mut io = io;
                    let _ = io.write_all(&bytes).await;
                    let _ = io.shutdown().await;
                }
                Err(e) => refuse(io, e).await,
            }
        }
        First::Own(io, _) | First::Exchange(io, _) | First::Refuse(io, _) => refuse(io, busy).await,
        First::Hyper(io) => refuse(io.into_parts().1, busy).await,
        First::Gone => {}
    }
}

/// Answers `error` and closes the connection: the answer is written, the stream shut
/// down, and what the client sent is read and dropped for up to a second, so that the
/// close does not reset the answer away before the client read it.
pub(super) async fn refuse<S: Io>(mut io: S, error: ServerError) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        write_plain(&mut io, error.into_response(), true).await?;
        io.shutdown().await?;
        let mut scrap = [0u8; 1024];
        for _ in 0..64 {
            if io.read(&mut scrap).await? == 0 {
                break;
            }
        }
        Ok::<_, io::Error>(())
    })
    .await;
}

/// The bytes of the answer to a refused head (as [`refuse`] writes it), for a stream
/// that writes it itself ([`super::later_heads`]).
pub(super) fn refusal_bytes(error: ServerError) -> Vec<u8> {
    let (parts, body) = error.into_response().into_parts();
    // An error's body is one JSON value, ready at once.
    let body = body
        .collect()
        .now_or_never()
        .and_then(Result::ok)
        .map(http_body_util::Collected::to_bytes)
        .unwrap_or_default();
    let len = u64::try_from(body.len()).unwrap_or(u64::MAX);
    let framing = head::Framing::Length(len);
    let mut out = head::response_head(parts.status, &parts.headers, framing, &date_now(), true);
    out.extend_from_slice(&body);
    out
}

/// Waits for `answer` unless the peer closes or resets the connection first (`None`):
/// a long-poll whose client left is not held to its timeout. The first byte the peer
/// sends meanwhile (a pipelined request) is kept and returned with the answer, for the
/// next head (or the WebSocket); the stream is no longer watched after it.
async fn unless_peer_leaves<S: Io, F: Future<Output = Response>>(
    io: &mut S,
    answer: F,
) -> Option<(Response, Vec<u8>)> {
    let mut answer = std::pin::pin!(answer);
    let mut early = Vec::new();
    poll_fn(|cx| {
        if let Poll::Ready(resp) = answer.as_mut().poll(cx) {
            return Poll::Ready(Some((resp, std::mem::take(&mut early))));
        }
        if early.is_empty() {
            let mut one = [0u8; 1];
            let mut buf = ReadBuf::new(&mut one);
            match Pin::new(&mut *io).poll_read(cx, &mut buf) {
                Poll::Ready(Err(_)) => return Poll::Ready(None),
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(None),
                Poll::Ready(Ok(())) => early.extend_from_slice(buf.filled()),
                Poll::Pending => {}
            }
        }
        Poll::Pending
    })
    .await
}

/// What follows an [`exchange`].
#[derive(Debug)]
pub(super) enum AfterExchange<S> {
    /// The connection's next request, served as its first one would be.
    Next(First<S>),
    /// A live body to send until it ends (the connection closes after it), or `None`
    /// (the connection was closed or handed to a WebSocket).
    Stream(Option<Streaming<S>>),
}

/// What writing a response left of its connection.
// Matched at once by its caller; boxing the stream would cost an allocation per stream.
#[allow(clippy::large_enum_variant)]
enum Sent<S> {
    /// A live body: the [`Streaming`] that sends the rest (`None` if it already ended,
    /// or the connection now belongs to a WebSocket).
    Stream(Option<Streaming<S>>),
    /// Any other response, written; the connection stays open for the next request,
    /// whose first bytes (read early) come with it.
    Open(S, Vec<u8>),
    /// Written and closed (as asked), or the write failed.
    Closed,
}

/// [`send`], given up (the connection dropped) when the client does not take the answer
/// within `limits.write_timeout_ms`: a long-poll answer nobody reads is not held.
async fn send_within<S: Io>(
    front: &Front,
    io: S,
    resp: Response,
    close: bool,
    early: Vec<u8>,
) -> Sent<S> {
    let timeout = front.state().config.limits.write_timeout();
    tokio::time::timeout(timeout, send(io, resp, close, early))
        .await
        .unwrap_or(Sent::Closed)
}

/// Writes `resp`: a `101` that hands the connection (and `early`, the bytes read past
/// the request) to a WebSocket; a live body's head, opening and ready chunks; or any
/// other response, after which the connection is closed if `close` (a live body always
/// ends it).
async fn send<S: Io>(mut io: S, mut resp: Response, close: bool, early: Vec<u8>) -> Sent<S> {
    if let Some(upgrade) = websocket::claim(&mut resp) {
        let head = head::response_head(
            resp.status(),
            resp.headers(),
            head::Framing::Switching,
            &date_now(),
            false,
        );
        drop(resp);
        if io.write_all(&head).await.is_ok() {
            upgrade.start(io, Bytes::from(early));
        }
        return Sent::Stream(None);
    }
    if let Some(live) = live::claim(&mut resp) {
        return Sent::Stream(start_streaming(io, resp, live).await);
    }
    if write_plain(&mut io, resp, close).await.is_err() {
        return Sent::Closed;
    }
    if close {
        let _ = io.shutdown().await;
        return Sent::Closed;
    }
    Sent::Open(io, early)
}

/// Writes the head of `resp` (a live body claimed from it), the opening and the chunks
/// ready already; returns the [`Streaming`] that sends the rest, or `None` when the body
/// already ended (the connection is then closed) or the write failed.
async fn start_streaming<S: Io>(
    mut io: S,
    resp: Response,
    (opening, mut source): (Bytes, Source),
) -> Option<Streaming<S>> {
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
    if out.write(&mut io, &head, last).await.is_err() {
        return None;
    }
    if last {
        let _ = io.shutdown().await;
        return None;
    }
    Some(Streaming::new(io, source))
}

/// Writes a response that is not a live body, saying `connection: close` if `close`:
/// with `content-length` when its length is known and small (head and body in one
/// vectored write), chunked otherwise. An error means the connection is unusable.
async fn write_plain<S: Io>(io: &mut S, resp: Response, close: bool) -> io::Result<()> {
    let (parts, mut body) = resp.into_parts();
    let date = date_now();
    let broken = || io::Error::from(io::ErrorKind::InvalidData);
    match body.size_hint().exact() {
        Some(n) if n <= MAX_PLAIN => {
            let bytes = body.collect().await.map_err(|_| broken())?.to_bytes();
            let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
            let framing = head::Framing::Length(len);
            let head = head::response_head(parts.status, &parts.headers, framing, &date, close);
            write_parts(io, &[&head, &bytes]).await
        }
        _ => {
            let framing = head::Framing::Chunked;
            let head = head::response_head(parts.status, &parts.headers, framing, &date, close);
            io.write_all(&head).await?;
            let mut out = Batch::default();
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame.map_err(|_| broken())?.into_data() {
                    out.push(data);
                    out.write(io, &[], false).await?;
                }
            }
            out.write(io, &[], true).await
        }
    }
}

/// The `Date` header value for now.
fn date_now() -> [u8; 29] {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    head::http_date(secs)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use tokio::io::AsyncWriteExt as _;
    use tokio::net::{TcpListener, TcpStream};

    use tokio::time::Instant;

    use super::*;
    use crate::shutdown::Shutdown;

    /// `first_request` on the server side of a fresh loopback connection whose client
    /// writes `sent` and then waits (keeping the connection open).
    async fn first_request_after(
        sent: &'static [u8],
        timeout: Duration,
    ) -> (First<TcpStream>, Duration) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (tcp, _) = listener.accept().await.unwrap();
        client.write_all(sent).await.unwrap();
        let shutdown = Shutdown::new();
        let signal = shutdown.signal();
        let started = Instant::now();
        let limits = HeadLimits {
            timeout,
            max: 16 * 1024,
        };
        let reading = first_request(tcp, Vec::new(), limits, &signal);
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
}
