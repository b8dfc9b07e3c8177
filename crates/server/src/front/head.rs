//! The pure half of the connection front ([`crate::front`]): which requests the server
//! answers itself ([`parse`]), and the bytes it writes for them — the response head
//! ([`response_head`], a `101` with [`Framing::Switching`]), chunk framing
//! ([`chunk_size_line`]) and the `Date` value ([`http_date`]). No sockets, no clock: time
//! comes in as an argument. Why the server answers these connections itself rather than
//! through hyper: `docs/perf/REPORT.md` (the takeover rows of the second and fourth
//! sessions); the parts against `httpdate` and `write!`: `docs/perf/handwritten.md`,
//! section 4.
//!
//! A request is answered by the front only when it is certainly a plain HTTP/1.1 `GET`
//! with nothing after it on the wire (see [`parse`]): a streaming subscribe owns its
//! connection to the end, a poll or long-poll is one exchange of a keep-alive connection,
//! a WebSocket upgrade hands the connection to the WebSocket. Everything else goes to
//! hyper (pipelining, request bodies), except a head too long (431) or not HTTP (400):
//! those get the front's JSON answer, on a first request ([`parse`]) and on every later
//! one of a connection hyper serves ([`boundary`]).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode, Uri, Version};

/// Most header lines parsed; a request with more goes to hyper (which takes up to 100).
const MAX_HEADERS: usize = 64;

/// What to do with the bytes of a new connection read so far.
// Short-lived (one per connection, consumed at once): not worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Parsed {
    /// The head is incomplete (and shorter than [`MAX_HEAD`]): read more.
    Partial,
    /// A complete `GET` for an SSE or HTTP-streaming response, with nothing after it.
    Own(Request<()>),
    /// A complete `GET` of a subscribe endpoint that is not streaming (a poll or a
    /// long-poll, or a request the router will refuse), with nothing after it: answered
    /// with a delimited body, after which the connection may carry another request.
    Exchange(Request<()>),
    /// A complete `GET` asking for `Upgrade: websocket` (any path), with nothing after
    /// it: answered by the router; a `101` hands the connection to the WebSocket, any
    /// other answer is an exchange.
    Upgrade(Request<()>),
    /// Anything else: hyper serves the connection, from these bytes on.
    Hyper,
    /// The head is longer than the limit: answered 431, the connection closed.
    TooLarge,
    /// The bytes are not an HTTP/1.x request head: answered 400, the connection closed.
    Malformed,
}

/// Classifies the first bytes of a connection (see the module docs).
///
/// Taken over: a `GET`, HTTP/1.1, with no `Content-Length`, `Transfer-Encoding` or
/// `Expect` header, the head ending exactly at the end of `buf`. With an `Upgrade` header
/// naming `websocket`, it is [`Parsed::Upgrade`] (any path; any other `Upgrade` goes to
/// hyper). Without one, `GET /ch/NAME` or `GET /sub` is [`Parsed::Own`] with
/// `transport=sse` or `transport=stream` in the query (the last `transport=` wins, as in
/// the router), or with no `transport=` and `Accept: text/event-stream`;
/// [`Parsed::Exchange`] otherwise. A request the router then refuses (bad channel name,
/// …) is still answered by the router: taking over only decides who writes the bytes.
///
/// A head still incomplete at `max` bytes is [`Parsed::TooLarge`]; bytes that cannot
/// start a request are [`Parsed::Malformed`] (a head with more than 64 header lines goes
/// to hyper, whose limit is higher).
pub(crate) fn parse(buf: &[u8], max: usize) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() < max => return Parsed::Partial,
        Ok(httparse::Status::Partial) => return Parsed::TooLarge,
        Err(httparse::Error::TooManyHeaders) => return Parsed::Hyper,
        Err(_) => return Parsed::Malformed,
    };
    if !target_parses(req.path) {
        return Parsed::Malformed;
    }
    let (Some("GET"), Some(1), Some(target)) = (req.method, req.version, req.path) else {
        return Parsed::Hyper;
    };
    if len != buf.len() {
        return Parsed::Hyper;
    }
    let upgrades = req
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(header::UPGRADE.as_str()))
        .map(|h| h.value);
    let mut upgrades = upgrades.peekable();
    if upgrades.peek().is_some() {
        let websocket = switchboard_ws::handshake::list_contains_token(upgrades, "websocket");
        return match request(target, req.headers) {
            Some(r) if websocket && !has_body(req.headers) => Parsed::Upgrade(r),
            _ => Parsed::Hyper,
        };
    }
    let Some(streams) = classify(target, req.headers) else {
        return Parsed::Hyper;
    };
    match request(target, req.headers) {
        Some(r) if streams => Parsed::Own(r),
        Some(r) => Parsed::Exchange(r),
        None => Parsed::Hyper,
    }
}

/// Where the next request head of a connection hyper serves ends, and what follows it
/// (see [`super::later_heads`]).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Boundary {
    /// The head is incomplete (and shorter than the limit): read more.
    Partial,
    /// A head of `len` bytes, then a body of `body` bytes (`None`: a body or protocol
    /// whose end is not followed — chunked, an upgrade, `CONNECT`, framing hyper refuses —
    /// after which the connection's heads are no longer checked).
    Head { len: usize, body: Option<u64> },
    /// More header lines than hyper takes: hyper answers it (as for a first request).
    Unchecked,
    /// The head is longer than the limit: answered 431.
    TooLarge,
    /// The bytes are not an HTTP/1.x request head: answered 400.
    Malformed,
}

/// Classifies the head at the start of `buf`, a later request of a connection hyper
/// serves, as [`parse`] classifies a first request's: the same limit, the same 431 and
/// 400 cases.
pub(crate) fn boundary(buf: &[u8], max: usize) -> Boundary {
    // hyper's own limit on header lines.
    let mut headers = [httparse::EMPTY_HEADER; 100];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len <= max => len,
        Ok(httparse::Status::Partial) if buf.len() < max => return Boundary::Partial,
        Ok(_) => return Boundary::TooLarge,
        Err(httparse::Error::TooManyHeaders) => return Boundary::Unchecked,
        Err(_) => return Boundary::Malformed,
    };
    if !target_parses(req.path) {
        return Boundary::Malformed;
    }
    let opens_protocol = req.method == Some("CONNECT")
        || req.headers.iter().any(|h| {
            h.name.eq_ignore_ascii_case(header::UPGRADE.as_str())
                || h.name
                    .eq_ignore_ascii_case(header::TRANSFER_ENCODING.as_str())
        });
    let mut lengths = req
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(header::CONTENT_LENGTH.as_str()))
        .map(|h| {
            std::str::from_utf8(h.value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok())
        });
    let body = match lengths.next() {
        _ if opens_protocol => None,
        None => Some(0),
        // Every value the same number, or hyper refuses the request (and closes).
        Some(first) => first.filter(|n| lengths.all(|l| l == Some(*n))),
    };
    Boundary::Head { len, body }
}

/// Whether a request target httparse took is one hyper takes too (`http::Uri`, stricter:
/// `http://` without a host, a bad authority), so that the front answers it with its
/// JSON 400 rather than hyper with an empty one.
fn target_parses(target: Option<&str>) -> bool {
    target.is_some_and(|t| http::Uri::try_from(t).is_ok())
}

/// Whether the head announces a body (or asks to be told to send one): hyper's job.
fn has_body(headers: &[httparse::Header<'_>]) -> bool {
    let refused = [
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        header::EXPECT,
    ];
    headers.iter().any(|h| {
        refused
            .iter()
            .any(|r| h.name.eq_ignore_ascii_case(r.as_str()))
    })
}

/// For a `GET` of `target` with `headers`: `None` when it is not taken over, else
/// whether it asks for SSE or HTTP streaming.
fn classify(target: &str, headers: &[httparse::Header<'_>]) -> Option<bool> {
    if has_body(headers) {
        return None;
    }
    // As `http`'s `Uri` (which the handlers read) does: a fragment is not part of it.
    let target = target.split('#').next().unwrap_or(target);
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let endpoint = path == "/sub"
        || path
            .strip_prefix("/ch/")
            .is_some_and(|name| !name.is_empty() && !name.contains('/'));
    if !endpoint {
        return None;
    }
    Some(
        match query
            .split('&')
            .filter_map(|pair| pair.strip_prefix("transport="))
            .next_back()
        {
            Some(t) => t == "sse" || t == "stream",
            None => headers.iter().any(|h| {
                h.name.eq_ignore_ascii_case("accept")
                    && h.value
                        .windows(b"text/event-stream".len())
                        .any(|w| w == b"text/event-stream")
            }),
        },
    )
}

/// Whether the request asks for `Upgrade: websocket`.
pub(crate) fn is_upgrade(headers: &HeaderMap) -> bool {
    let values = headers.get_all(header::UPGRADE).into_iter();
    switchboard_ws::handshake::list_contains_token(values.map(HeaderValue::as_bytes), "websocket")
}

/// Whether the request's `Connection` header asks to close after the response.
pub(crate) fn wants_close(headers: &HeaderMap) -> bool {
    let values = headers.get_all(header::CONNECTION).into_iter();
    switchboard_ws::handshake::list_contains_token(values.map(HeaderValue::as_bytes), "close")
}

/// The `http` request hyper would build for this head (`None` if a part does not
/// convert, which then goes to hyper).
fn request(target: &str, headers: &[httparse::Header<'_>]) -> Option<Request<()>> {
    let mut req = Request::new(());
    *req.method_mut() = Method::GET;
    *req.version_mut() = Version::HTTP_11;
    *req.uri_mut() = Uri::try_from(target).ok()?;
    let map = req.headers_mut();
    map.reserve(headers.len());
    for h in headers {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        let value = HeaderValue::from_bytes(h.value).ok()?;
        map.append(name, value);
    }
    Some(req)
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// `Transfer-Encoding: chunked` (a body of unknown length).
    Chunked,
    /// `Content-Length`.
    Length(u64),
    /// No body at all: a `101 Switching Protocols`, whose own `Connection: Upgrade` is
    /// kept (the connection then belongs to the new protocol).
    Switching,
}

/// A response head: status line, the response's own headers in order (framing,
/// `Connection` and `Date` headers replaced), then `connection: close` if `close`, the
/// framing header and `date` — hyper's layout. Without `close` the HTTP/1.1 connection
/// stays open (keep-alive is the default, so hyper writes no header for it either).
/// [`Framing::Switching`] keeps the response's `Connection` header and adds neither
/// `connection: close` nor a framing header.
pub(crate) fn response_head(
    status: StatusCode,
    headers: &HeaderMap,
    framing: Framing,
    date: &[u8; 29],
    close: bool,
) -> Vec<u8> {
    let switching = framing == Framing::Switching;
    let replaced = [
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        header::CONNECTION,
        header::DATE,
    ];
    let kept = |n: &HeaderName| !replaced.contains(n) || (switching && n == header::CONNECTION);
    let size: usize = headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    let mut out = Vec::with_capacity(size + 128);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers.iter().filter(|(n, _)| kept(n)) {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if close && !switching {
        out.extend_from_slice(b"connection: close\r\n");
    }
    match framing {
        Framing::Switching => {}
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(n.to_string().as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"date: ");
    out.extend_from_slice(date);
    out.extend_from_slice(b"\r\n\r\n");
    out
}

/// The line opening a chunk of `len` bytes (`len` in upper-case hex, then CRLF), written
/// into `out`; returns the used part.
pub(crate) fn chunk_size_line(len: usize, out: &mut [u8; 18]) -> &[u8] {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let digits = (usize::BITS - len.leading_zeros()).div_ceil(4).max(1) as usize;
    for (i, slot) in out[..digits].iter_mut().enumerate() {
        let shift = 4 * (digits - 1 - i);
        *slot = HEX[(len >> shift) & 0xF];
    }
    out[digits] = b'\r';
    out[digits + 1] = b'\n';
    &out[..digits + 2]
}

/// What ends a chunk; with the last chunk of a body, also the terminating empty chunk.
pub(crate) fn chunk_end(last: bool) -> &'static [u8] {
    if last {
        b"\r\n0\r\n\r\n"
    } else {
        b"\r\n"
    }
}

/// An HTTP `Date` value (IMF-fixdate) for `unix_secs` seconds after 1970-01-01 UTC, by
/// the `httpdate` crate (hyper's own; a hand-written formatter saved ~400 instructions per
/// response, under 0.5 % of a long-poll delivery: not worth its code,
/// `docs/perf/handwritten.md`, section 4).
pub(crate) fn http_date(unix_secs: u64) -> [u8; 29] {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix_secs);
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    // IMF-fixdate is always 29 bytes, so the write fills `out` exactly (no allocation).
    let mut rest = &mut out[..];
    let _ = std::io::Write::write_fmt(&mut rest, format_args!("{}", httpdate::HttpDate::from(t)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default `limits.max_header_bytes`.
    const MAX_HEAD: usize = 16 * 1024;

    fn parse(buf: &[u8]) -> Parsed {
        super::parse(buf, MAX_HEAD)
    }

    fn own(head: &str) -> Option<Request<()>> {
        match parse(head.as_bytes()) {
            Parsed::Own(r) => Some(r),
            _ => None,
        }
    }

    fn exchanged(head: &str) -> bool {
        matches!(parse(head.as_bytes()), Parsed::Exchange(_))
    }

    #[test]
    fn which_requests_are_taken_over() {
        let sse = "Accept: text/event-stream\r\n";
        let table: &[(&str, &str, bool)] = &[
            ("GET /ch/a HTTP/1.1", sse, true),
            ("GET /ch/a?since=1-2 HTTP/1.1", sse, true),
            ("GET /ch/a?transport=sse HTTP/1.1", "", true),
            ("GET /ch/a?transport=stream HTTP/1.1", "", true),
            ("GET /sub?channel=a&transport=sse HTTP/1.1", "", true),
            ("GET /sub?channel=a HTTP/1.1", sse, true),
            // The last transport= wins, as in the router.
            ("GET /ch/a?transport=sse&transport=poll HTTP/1.1", "", false),
            ("GET /ch/a?transport=poll HTTP/1.1", sse, false),
            ("GET /ch/a?transport=longpoll HTTP/1.1", "", false),
            ("GET /ch/a HTTP/1.1", "", false),
            ("GET /ch/a HTTP/1.0", sse, false),
            ("HEAD /ch/a HTTP/1.1", sse, false),
            ("POST /ch/a HTTP/1.1", sse, false),
            ("GET /ch/ HTTP/1.1", sse, false),
            ("GET /ch/a/b HTTP/1.1", sse, false),
            // The fragment is no part of the path the handlers read ("/ch/").
            ("GET /ch/#a HTTP/1.1", sse, false),
            ("GET /ws HTTP/1.1", sse, false),
            ("GET /api/stats HTTP/1.1", sse, false),
            (
                "GET /ch/a HTTP/1.1",
                "Accept: text/event-stream\r\nUpgrade: websocket\r\n",
                false,
            ),
            (
                "GET /ch/a HTTP/1.1",
                "Accept: text/event-stream\r\nContent-Length: 0\r\n",
                false,
            ),
            (
                "GET /ch/a HTTP/1.1",
                "Accept: text/event-stream\r\nTransfer-Encoding: chunked\r\n",
                false,
            ),
            (
                "GET /ch/a HTTP/1.1",
                "Accept: text/event-stream\r\nExpect: 100-continue\r\n",
                false,
            ),
        ];
        for (line, headers, taken) in table {
            let head = format!("{line}\r\nHost: x\r\n{headers}\r\n");
            assert_eq!(own(&head).is_some(), *taken, "{head:?}");
        }
    }

    #[test]
    fn which_requests_are_exchanges() {
        let sse = "Accept: text/event-stream\r\n";
        let table: &[(&str, &str, bool)] = &[
            ("GET /ch/a?transport=longpoll&since=1:2 HTTP/1.1", "", true),
            ("GET /ch/a?transport=poll HTTP/1.1", "", true),
            ("GET /ch/a?transport=poll HTTP/1.1", sse, true),
            ("GET /ch/a HTTP/1.1", "", true),
            (
                "GET /sub?channel=a&channel=b&transport=longpoll HTTP/1.1",
                "",
                true,
            ),
            ("GET /ch/a?transport=sse&transport=poll HTTP/1.1", "", true),
            // The router refuses these; its answer is still written here.
            ("GET /ch/a?transport=carrier-pigeon HTTP/1.1", "", true),
            ("GET /ch/a?transport=sse HTTP/1.1", "", false),
            ("GET /ch/a HTTP/1.1", sse, false),
            ("GET /ch/a?transport=poll HTTP/1.0", "", false),
            ("HEAD /ch/a?transport=poll HTTP/1.1", "", false),
            ("GET /ch/a/b?transport=poll HTTP/1.1", "", false),
            ("GET /healthz HTTP/1.1", "", false),
            ("GET /api/stats HTTP/1.1", "", false),
            (
                "GET /ch/a?transport=poll HTTP/1.1",
                "Content-Length: 0\r\n",
                false,
            ),
            (
                "GET /ch/a?transport=poll HTTP/1.1",
                "Upgrade: websocket\r\n",
                false,
            ),
        ];
        for (line, headers, exchange) in table {
            let head = format!("{line}\r\nHost: x\r\n{headers}\r\n");
            assert_eq!(exchanged(&head), *exchange, "{head:?}");
        }
        let pipelined = "GET /ch/a?transport=poll HTTP/1.1\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n";
        assert!(matches!(parse(pipelined.as_bytes()), Parsed::Hyper));
    }

    #[test]
    fn which_requests_are_upgrades() {
        let ws = "Upgrade: websocket\r\nConnection: Upgrade\r\n";
        let table: &[(&str, &str, bool)] = &[
            ("GET /ch/a HTTP/1.1", ws, true),
            ("GET /ws HTTP/1.1", ws, true),
            ("GET /any/path?x=1 HTTP/1.1", ws, true),
            ("GET /ch/a HTTP/1.1", "Upgrade: WebSocket\r\n", true),
            ("GET /ch/a HTTP/1.1", "Upgrade: h2c, websocket\r\n", true),
            ("GET /ch/a HTTP/1.1", "Upgrade: h2c\r\n", false),
            ("GET /ch/a HTTP/1.0", ws, false),
            ("POST /ws HTTP/1.1", ws, false),
            ("GET /ws HTTP/1.1", "", false),
            (
                "GET /ws HTTP/1.1",
                "Upgrade: websocket\r\nContent-Length: 0\r\n",
                false,
            ),
        ];
        for (line, headers, upgrade) in table {
            let head = format!("{line}\r\nHost: x\r\n{headers}\r\n");
            let parsed = parse(head.as_bytes());
            assert_eq!(
                matches!(parsed, Parsed::Upgrade(_)),
                *upgrade,
                "{head:?}: {parsed:?}"
            );
            if !upgrade && !headers.is_empty() {
                assert!(matches!(parsed, Parsed::Hyper), "{head:?}: {parsed:?}");
            }
        }
    }

    #[test]
    fn connection_close_is_recognised() {
        let close = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.append(header::CONNECTION, HeaderValue::from_static("keep-alive"));
            h.append(header::CONNECTION, HeaderValue::from_static(v));
            wants_close(&h)
        };
        assert!(close("close"));
        assert!(close("Upgrade, Close"));
        assert!(!close("keep-alive"));
        assert!(!close("closed"));
        assert!(!wants_close(&HeaderMap::new()));
    }

    #[test]
    fn the_request_is_what_hyper_would_build() {
        let r = own("GET /ch/a?since=1-2 HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nX-A: 1\r\nx-a: 2\r\n\r\n")
            .expect("taken over");
        assert_eq!(r.method(), Method::GET);
        assert_eq!(r.version(), Version::HTTP_11);
        assert_eq!(r.uri().path(), "/ch/a");
        assert_eq!(r.uri().query(), Some("since=1-2"));
        assert_eq!(r.headers()["host"], "x");
        let xa: Vec<_> = r.headers().get_all("x-a").iter().collect();
        assert_eq!(xa, ["1", "2"]);
    }

    #[test]
    fn partial_pipelined_malformed_and_oversized_heads() {
        let full = "GET /ch/a?transport=sse HTTP/1.1\r\nHost: x\r\n\r\n";
        for cut in 0..full.len() {
            assert!(
                matches!(parse(&full.as_bytes()[..cut]), Parsed::Partial),
                "{cut}"
            );
        }
        // Bytes after the head (a pipelined request): hyper's job.
        let pipelined = format!("{full}GET /healthz HTTP/1.1\r\n\r\n");
        assert!(matches!(parse(pipelined.as_bytes()), Parsed::Hyper));
        // Not a request: answered 400 here (with a JSON body, which hyper would not give).
        assert!(matches!(
            parse(b"GET /ch/a HTTP/1.1\r\nbad header\r\n\r\n"),
            Parsed::Malformed
        ));
        assert!(matches!(parse(b"\x16\x03\x01\x02\x00"), Parsed::Malformed));
        // Too long: 431 here, whatever the request (hyper's limit is the same).
        let mut big = b"GET /ch/a?transport=sse HTTP/1.1\r\nX: ".to_vec();
        big.resize(MAX_HEAD, b'a');
        assert!(matches!(parse(&big), Parsed::TooLarge));
        big.truncate(MAX_HEAD - 1);
        assert!(matches!(parse(&big), Parsed::Partial));
        assert!(matches!(super::parse(&big, 1024), Parsed::TooLarge));
        let many: String = (0..=MAX_HEADERS).map(|i| format!("h{i}: v\r\n")).collect();
        let head = format!("GET /ch/a?transport=sse HTTP/1.1\r\n{many}\r\n");
        assert!(matches!(parse(head.as_bytes()), Parsed::Hyper));
    }

    #[test]
    fn later_heads_and_where_they_end() {
        let b = |s: &str| boundary(s.as_bytes(), MAX_HEAD);
        let get = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(
            b(get),
            Boundary::Head {
                len: get.len(),
                body: Some(0)
            }
        );
        // Bytes after the head (a body, a pipelined request) are not the head's.
        let post = "POST /ch/a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET";
        assert_eq!(
            b(post),
            Boundary::Head {
                len: post.len() - 6,
                body: Some(3)
            }
        );
        let same = "POST / HTTP/1.1\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\n";
        assert!(matches!(b(same), Boundary::Head { body: Some(3), .. }));
        for unfollowed in [
            "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
            "CONNECT x:1 HTTP/1.1\r\n\r\n",
        ] {
            assert!(
                matches!(b(unfollowed), Boundary::Head { body: None, .. }),
                "{unfollowed:?}"
            );
        }
        assert_eq!(b(&get[..get.len() - 1]), Boundary::Partial);
        assert_eq!(
            b("GET /a HTTP/1.1\r\nbad header\r\n\r\n"),
            Boundary::Malformed
        );
        assert_eq!(b("\x16\x03\x01"), Boundary::Malformed);
        // Targets httparse takes and hyper's `Uri` refuses: the front answers them.
        for target in ["http://", "http://[::1/x"] {
            let head = format!("POST {target} HTTP/1.1\r\nHost: a\r\n\r\n");
            assert!(http::Uri::try_from(target).is_err(), "{target}");
            assert_eq!(b(&head), Boundary::Malformed, "{target}");
            assert!(
                matches!(parse(head.as_bytes()), Parsed::Malformed),
                "{target}"
            );
        }
        let mut big = b"GET /a HTTP/1.1\r\nX: ".to_vec();
        big.resize(MAX_HEAD, b'a');
        assert_eq!(boundary(&big, MAX_HEAD), Boundary::TooLarge);
        big.extend_from_slice(b"\r\n\r\n");
        assert_eq!(boundary(&big, MAX_HEAD), Boundary::TooLarge);
        let many: String = (0..=100).map(|i| format!("h{i}: v\r\n")).collect();
        assert_eq!(
            b(&format!("GET / HTTP/1.1\r\n{many}\r\n")),
            Boundary::Unchecked
        );
    }

    #[test]
    fn response_heads() {
        let date = *b"Sun, 22 Nov 2026 07:39:27 GMT";
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        h.insert("x-switchboard-client", HeaderValue::from_static("ab"));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("99"));
        let head = response_head(StatusCode::OK, &h, Framing::Chunked, &date, true);
        assert_eq!(
            String::from_utf8(head).expect("ascii"),
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nx-switchboard-client: ab\r\n\
             connection: close\r\ntransfer-encoding: chunked\r\ndate: Sun, 22 Nov 2026 07:39:27 GMT\r\n\r\n"
        );
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let head = response_head(
            StatusCode::BAD_REQUEST,
            &h,
            Framing::Length(127),
            &date,
            true,
        );
        assert_eq!(
            String::from_utf8(head).expect("ascii"),
            "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\nconnection: close\r\n\
             content-length: 127\r\ndate: Sun, 22 Nov 2026 07:39:27 GMT\r\n\r\n"
        );
        // Kept alive: no `connection` header at all (HTTP/1.1's default), as hyper.
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        let head = response_head(StatusCode::OK, &h, Framing::Length(2), &date, false);
        assert_eq!(
            String::from_utf8(head).expect("ascii"),
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
             content-length: 2\r\ndate: Sun, 22 Nov 2026 07:39:27 GMT\r\n\r\n"
        );
    }

    #[test]
    fn a_switching_head_keeps_its_connection_header_and_has_no_framing() {
        let date = *b"Sun, 22 Nov 2026 07:39:27 GMT";
        let mut h = HeaderMap::new();
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(
            "sec-websocket-accept",
            HeaderValue::from_static("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        );
        let head = response_head(
            StatusCode::SWITCHING_PROTOCOLS,
            &h,
            Framing::Switching,
            &date,
            true,
        );
        assert_eq!(
            String::from_utf8(head).expect("ascii"),
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
             sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
             date: Sun, 22 Nov 2026 07:39:27 GMT\r\n\r\n"
        );
    }

    #[test]
    fn chunk_size_lines() {
        let mut buf = [0; 18];
        for (len, line) in [
            (0, "0\r\n"),
            (13, "D\r\n"),
            (16, "10\r\n"),
            (2049, "801\r\n"),
            (usize::MAX, "FFFFFFFFFFFFFFFF\r\n"),
        ] {
            assert_eq!(chunk_size_line(len, &mut buf), line.as_bytes());
        }
    }

    #[test]
    fn http_dates() {
        for (secs, date) in [
            (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
            (951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT"),
            (1_700_000_000, "Tue, 14 Nov 2023 22:13:20 GMT"),
            (1_795_333_167, "Sun, 22 Nov 2026 07:39:27 GMT"),
            (4_107_542_399, "Sun, 28 Feb 2100 23:59:59 GMT"),
        ] {
            assert_eq!(&http_date(secs), date.as_bytes(), "{secs}");
        }
    }
}
