//! Connections the generator opens: TCP from one of several loopback source addresses
//! (bind-before-connect, so more than one ephemeral-port range is available), counted
//! with [`Counted`], and a minimal HTTP/1.1 client over them (request, response head,
//! `Content-Length`, chunked and read-until-close bodies, decoded incrementally).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::counting::{Counted, WireCounters};

/// A counted TCP stream.
pub type Stream = Counted<TcpStream>;

/// Largest response head accepted.
const MAX_HEAD: usize = 16 * 1024;

/// Refuses anything but a loopback target: the generator is for this machine only.
pub fn check_loopback(addr: SocketAddr) -> std::io::Result<()> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{addr} is not a loopback address; the generator only targets this machine"),
        ))
    }
}

/// Connects to `addr` from source address 127.0.0.(1 + `source` % `sources`) (no bind
/// when `sources` ≤ 1).
pub async fn connect(
    addr: SocketAddr,
    source: usize,
    sources: usize,
    counters: &Arc<WireCounters>,
) -> std::io::Result<Stream> {
    let stream = if sources > 1 {
        let socket = TcpSocket::new_v4()?;
        let last = 1 + (source % sources) as u8;
        socket.bind(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)),
            0,
        ))?;
        socket.connect(addr).await?
    } else {
        TcpStream::connect(addr).await?
    };
    stream.set_nodelay(true)?;
    Ok(Counted::new(stream, counters.clone()))
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Length(u64),
    Chunked,
    UntilClose,
}

/// A response head.
#[derive(Debug)]
pub struct Head {
    pub status: u16,
    pub body: BodyKind,
    /// `Retry-After` as it was sent (seconds or an HTTP date), if any.
    pub retry_after: Option<String>,
}

/// One HTTP/1.1 connection (keep-alive), over TCP or any other stream (TLS).
#[derive(Debug)]
pub struct HttpConn<S = Stream> {
    stream: S,
    /// Bytes read and not consumed yet.
    buf: Vec<u8>,
    body: Option<BodyState>,
}

#[derive(Debug)]
enum BodyState {
    Length(u64),
    UntilClose,
    /// Chunked: bytes left in the current chunk, or `None` when a size line is next.
    Chunk(Option<u64>),
}

impl<S: AsyncRead + AsyncWrite + Unpin> HttpConn<S> {
    /// Wraps a connected stream.
    pub fn new(stream: S) -> Self {
        Self {
            stream,
            buf: Vec::with_capacity(8192),
            body: None,
        }
    }

    /// Sends `GET path` with `extra` header lines (each ending in `\r\n`).
    pub async fn get(&mut self, host: &str, path: &str, extra: &str) -> std::io::Result<()> {
        let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n");
        self.stream.write_all(req.as_bytes()).await
    }

    /// Sends `POST path` with `extra` header lines (each ending in `\r\n`) and `body`.
    pub async fn post(
        &mut self,
        host: &str,
        path: &str,
        extra: &str,
        body: &[u8],
    ) -> std::io::Result<()> {
        let mut req = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Content-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        self.stream.write_all(&req).await
    }

    async fn fill(&mut self) -> std::io::Result<usize> {
        let len = self.buf.len();
        self.buf.resize(len + 16 * 1024, 0);
        let n = self.stream.read(&mut self.buf[len..]).await;
        self.buf.truncate(len + *n.as_ref().unwrap_or(&0));
        n
    }

    /// Reads a response head.
    pub async fn read_head(&mut self) -> std::io::Result<Head> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&self.buf) {
                Ok(httparse::Status::Complete(used)) => {
                    let status = resp.code.unwrap_or(0);
                    let mut body = BodyKind::UntilClose;
                    let mut retry_after = None;
                    for h in resp.headers.iter() {
                        if h.name.eq_ignore_ascii_case("retry-after") {
                            retry_after = std::str::from_utf8(h.value).ok().map(str::to_owned);
                        }
                        if h.name.eq_ignore_ascii_case("content-length") {
                            let n = std::str::from_utf8(h.value)
                                .ok()
                                .and_then(|v| v.trim().parse().ok())
                                .ok_or_else(|| bad("bad Content-Length"))?;
                            body = BodyKind::Length(n);
                        } else if h.name.eq_ignore_ascii_case("transfer-encoding")
                            && h.value.eq_ignore_ascii_case(b"chunked")
                        {
                            body = BodyKind::Chunked;
                        }
                    }
                    self.buf.drain(..used);
                    self.body = Some(match body {
                        BodyKind::Length(n) => BodyState::Length(n),
                        BodyKind::Chunked => BodyState::Chunk(None),
                        BodyKind::UntilClose => BodyState::UntilClose,
                    });
                    return Ok(Head {
                        status,
                        body,
                        retry_after,
                    });
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => return Err(bad(&format!("bad response head: {e}"))),
            }
            if self.buf.len() > MAX_HEAD {
                return Err(bad("response head too large"));
            }
            if self.fill().await? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed before a response head",
                ));
            }
        }
    }

    /// Appends the next decoded body bytes to `out`; `Ok(false)` once the body is over.
    /// Cancel-safe: nothing is lost if the future is dropped while waiting for input.
    pub async fn read_body(&mut self, out: &mut Vec<u8>) -> std::io::Result<bool> {
        loop {
            if self.decode(out)? {
                return Ok(true);
            }
            let Some(state) = &self.body else {
                return Ok(false);
            };
            if matches!(state, BodyState::Length(0)) {
                self.body = None;
                return Ok(false);
            }
            if self.fill().await? == 0 {
                if matches!(self.body, Some(BodyState::UntilClose)) {
                    self.body = None;
                    return Ok(false);
                }
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed inside a body",
                ));
            }
        }
    }

    /// Reads the whole body into `out`.
    pub async fn read_to_end(&mut self, out: &mut Vec<u8>) -> std::io::Result<()> {
        while self.read_body(out).await? {}
        Ok(())
    }

    /// Moves what the buffer holds of the body to `out`; whether anything was produced.
    fn decode(&mut self, out: &mut Vec<u8>) -> std::io::Result<bool> {
        let before = out.len();
        while let Some(state) = self.body.as_mut() {
            match state {
                BodyState::Length(left) => {
                    let n = (*left).min(self.buf.len() as u64) as usize;
                    out.extend_from_slice(&self.buf[..n]);
                    self.buf.drain(..n);
                    *left -= n as u64;
                    break;
                }
                BodyState::UntilClose => {
                    out.append(&mut self.buf);
                    break;
                }
                BodyState::Chunk(Some(left)) => {
                    // Data, then the CRLF after it.
                    if *left > 0 {
                        let n = (*left).min(self.buf.len() as u64) as usize;
                        out.extend_from_slice(&self.buf[..n]);
                        self.buf.drain(..n);
                        *left -= n as u64;
                        if *left > 0 {
                            break;
                        }
                    }
                    if self.buf.len() < 2 {
                        break;
                    }
                    if &self.buf[..2] != b"\r\n" {
                        return Err(bad("chunk not followed by CRLF"));
                    }
                    self.buf.drain(..2);
                    *state = BodyState::Chunk(None);
                }
                BodyState::Chunk(None) => {
                    let Some(eol) = memchr::memmem::find(&self.buf, b"\r\n") else {
                        if self.buf.len() > 1024 {
                            return Err(bad("chunk size line too long"));
                        }
                        break;
                    };
                    let line =
                        std::str::from_utf8(&self.buf[..eol]).map_err(|_| bad("chunk size"))?;
                    let hex = line.split(';').next().unwrap_or("").trim();
                    let size = u64::from_str_radix(hex, 16).map_err(|_| bad("chunk size"))?;
                    if size == 0 {
                        // Last chunk; no trailers are expected: skip to the blank line.
                        let Some(end) = memchr::memmem::find(&self.buf, b"\r\n\r\n") else {
                            break;
                        };
                        self.buf.drain(..end + 4);
                        self.body = None;
                        break;
                    }
                    self.buf.drain(..eol + 2);
                    *state = BodyState::Chunk(Some(size));
                }
            }
        }
        Ok(out.len() > before)
    }
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

/// The value of the last `"cursor":"…"` in a poll body (the top-level one follows the
/// messages).
pub fn last_cursor(body: &[u8]) -> Option<String> {
    const KEY: &[u8] = b"\"cursor\":\"";
    let at = memchr::memmem::rfind(body, KEY)? + KEY.len();
    let end = memchr::memchr(b'"', &body[at..])?;
    String::from_utf8(body[at..at + end].to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_of_a_poll_body() {
        let body =
            br#"{"messages":[{"cursor":"a:1"},{"cursor":"a:2"}],"cursor":"a:2","reset":false}"#;
        assert_eq!(last_cursor(body).as_deref(), Some("a:2"));
        assert_eq!(last_cursor(b"{}"), None);
    }

    #[tokio::test]
    async fn chunked_and_length_bodies_over_loopback() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let mut req = vec![0; 1024];
            let _ = s.read(&mut req).await;
            // Chunks split at awkward places, then a second response with a length.
            for part in [
                &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"[..],
                b"lo\r\n",
                b"6\r",
                b"\n world\r\n0\r\n\r\n",
                b"HTTP/1.1 503 Busy\r\nRetry-After: 2\r\nContent-Length: 3\r\n\r\nabc",
            ] {
                s.write_all(part).await.expect("write");
                s.flush().await.expect("flush");
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        });
        let counters = Arc::new(WireCounters::default());
        let mut c = HttpConn::new(connect(addr, 0, 1, &counters).await.expect("connect"));
        c.get("x", "/", "").await.expect("get");
        let head = c.read_head().await.expect("head");
        assert_eq!((head.status, head.body), (200, BodyKind::Chunked));
        let mut out = Vec::new();
        c.read_to_end(&mut out).await.expect("body");
        assert_eq!(out, b"hello world");
        let head = c.read_head().await.expect("second head");
        assert_eq!(head.body, BodyKind::Length(3));
        assert_eq!((head.status, head.retry_after.as_deref()), (503, Some("2")));
        out.clear();
        c.read_to_end(&mut out).await.expect("second body");
        assert_eq!(out, b"abc");
        assert!(counters.read() > 90 && counters.written() > 10);
        server.await.expect("server task");
    }
}
