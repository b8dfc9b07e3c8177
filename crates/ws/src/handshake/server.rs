//! Server side of the RFC 6455 opening handshake: parse and validate the client's request,
//! negotiate subprotocol and permessage-deflate, and build the 101 response.
//!
//! [`parse_request`] takes the bytes read so far and returns `Ok(None)` until the whole
//! header section has arrived; it never consumes the bytes that follow it. An HTTP server
//! that parsed the request itself (hyper) calls [`validate_headers`] instead. Either gives a
//! [`Request`], which [`accept`] answers.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use super::extensions;
use super::{
    check_extra_headers, list_contains_token, split_protocols, trim_ows, HandshakeError,
    ACCEPT_GUID, MAX_HEADERS, MAX_HEADER_BYTES,
};
use crate::config::DeflateConfig;
use crate::deflate::DeflateParams;

/// A validated WebSocket upgrade request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Always `GET` once validated.
    pub method: String,
    /// The request-target as sent (path and query), e.g. `/chat?room=1`.
    pub path: String,
    /// The `Host` header.
    pub host: String,
    /// The `Origin` header, if any (browsers always send it; check it against CSRF).
    pub origin: Option<String>,
    /// The `Sec-WebSocket-Key` value as sent (24 base64 characters).
    pub key: String,
    /// The subprotocols the client offers, in its order (`Sec-WebSocket-Protocol`).
    pub protocols: Vec<String>,
    /// All `Sec-WebSocket-Extensions` lines joined with ", " (empty if none); checked to
    /// follow the RFC 6455 §9.1 grammar.
    pub extensions: String,
    /// Every header line as received, names in their original case.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Request {
    /// The first header named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

/// Parses and validates a handshake request from the start of `buf`.
///
/// `Ok(None)`: the header section is not complete yet; call again with more bytes.
/// `Ok(Some((request, consumed)))`: `buf[consumed..]` is already WebSocket data.
/// A header section longer than [`MAX_HEADER_BYTES`] or with more than [`MAX_HEADERS`]
/// lines fails with [`HandshakeError::HeadersTooLarge`] as soon as that is known.
pub fn parse_request(buf: &[u8]) -> Result<Option<(Request, usize)>, HandshakeError> {
    let window = &buf[..buf.len().min(MAX_HEADER_BYTES)];
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let consumed = match req.parse(window) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEADER_BYTES => {
            return Err(HandshakeError::HeadersTooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(http_error(e)),
    };
    // A complete parse always carries these; keep the checks instead of panicking.
    let (Some(method), Some(path), Some(version)) = (req.method, req.path, req.version) else {
        return Err(HandshakeError::MalformedHttp("incomplete request line"));
    };
    if method != "GET" {
        return Err(HandshakeError::MethodNotGet);
    }
    if version < 1 {
        return Err(HandshakeError::BadHttpVersion);
    }
    let request = validate_headers(method, path, req.headers.iter().map(|h| (h.name, h.value)))?;
    Ok(Some((request, consumed)))
}

/// Maps an httparse failure to the request fault it reveals.
pub(crate) fn http_error(e: httparse::Error) -> HandshakeError {
    match e {
        httparse::Error::TooManyHeaders => HandshakeError::HeadersTooLarge,
        httparse::Error::HeaderName => HandshakeError::MalformedHttp("invalid header name"),
        httparse::Error::HeaderValue => HandshakeError::MalformedHttp("invalid header value"),
        httparse::Error::NewLine => HandshakeError::MalformedHttp("invalid line ending"),
        httparse::Error::Status => HandshakeError::MalformedHttp("invalid status"),
        httparse::Error::Token => HandshakeError::MalformedHttp("invalid token in request line"),
        httparse::Error::Version => HandshakeError::MalformedHttp("invalid HTTP version"),
    }
}

/// Validates the method and headers of a request an HTTP server already parsed (e.g.
/// hyper, which also checked the HTTP version), and collects them into a [`Request`].
///
/// Checks, in order: GET; `Upgrade` has the token `websocket` and `Connection` the token
/// `upgrade` (case-insensitive, comma lists, several lines); `Sec-WebSocket-Version` is
/// exactly once `13`; `Sec-WebSocket-Key` is exactly once the base64 of 16 bytes; `Host`
/// is present once; `Origin` at most once; protocols and extensions are well formed.
pub fn validate_headers<'a>(
    method: &str,
    path: &str,
    headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Result<Request, HandshakeError> {
    if method != "GET" {
        return Err(HandshakeError::MethodNotGet);
    }
    let headers: Vec<(&str, &[u8])> = headers.into_iter().collect();
    let all = |name: &'static str| {
        headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    };
    let once = |name: &'static str| -> Result<Option<&[u8]>, HandshakeError> {
        let mut it = all(name);
        let first = it.next();
        if it.next().is_some() {
            return Err(HandshakeError::DuplicateHeader(name));
        }
        Ok(first.map(trim_ows))
    };

    if !list_contains_token(all("Upgrade"), "websocket") {
        return Err(HandshakeError::MissingUpgrade);
    }
    if !list_contains_token(all("Connection"), "upgrade") {
        return Err(HandshakeError::MissingConnectionUpgrade);
    }
    match once("Sec-WebSocket-Version") {
        Ok(Some(b"13")) => {}
        _ => return Err(HandshakeError::BadVersion),
    }
    let key = match once("Sec-WebSocket-Key") {
        Ok(Some(key)) if is_valid_key(key) => ascii(key),
        _ => return Err(HandshakeError::BadKey),
    };
    let host = match once("Host")? {
        Some(host) if !host.is_empty() && is_safe_bytes(host) => ascii(host),
        Some(_) => return Err(HandshakeError::MalformedHttp("invalid Host header")),
        None => return Err(HandshakeError::MissingHost),
    };
    let origin = once("Origin")?.map(|o| String::from_utf8_lossy(o).into_owned());
    let protocols =
        split_protocols(all("Sec-WebSocket-Protocol")).ok_or(HandshakeError::MalformedProtocols)?;

    let mut ext = String::new();
    for line in all("Sec-WebSocket-Extensions") {
        let line = std::str::from_utf8(line).map_err(|_| HandshakeError::MalformedExtensions)?;
        if !ext.is_empty() {
            ext.push_str(", ");
        }
        ext.push_str(line.trim());
    }
    extensions::parse(&ext)?;

    Ok(Request {
        method: method.to_owned(),
        path: path.to_owned(),
        host,
        origin,
        key,
        protocols,
        extensions: ext,
        headers: headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.to_vec()))
            .collect(),
    })
}

/// A key is the base64 encoding of exactly 16 bytes: 24 characters ending in `==`.
fn is_valid_key(key: &[u8]) -> bool {
    let mut out = [0u8; 18];
    key.len() == 24 && matches!(BASE64.decode_slice(key, &mut out), Ok(16))
}

fn is_safe_bytes(v: &[u8]) -> bool {
    v.iter().all(|&b| (b' '..=b'~').contains(&b))
}

/// Lossless for the ASCII bytes the callers have checked.
fn ascii(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

/// `base64(sha1(key + GUID))`, the value of `Sec-WebSocket-Accept` (RFC 6455 §4.2.2).
pub fn accept_key(key: &str) -> String {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key.as_bytes());
    sha.update(ACCEPT_GUID.as_bytes());
    BASE64.encode(sha.digest().bytes())
}

/// What this server is willing to agree to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcceptOptions {
    /// Our subprotocols in preference order; the first one the client offered is chosen.
    /// If the client offers some and none match, the handshake still succeeds without a
    /// subprotocol (the client decides whether to go on).
    pub protocols: Vec<String>,
    /// permessage-deflate policy; `None` declines every offer.
    pub deflate: Option<DeflateConfig>,
    /// Further headers for the 101 response (e.g. `Set-Cookie`). Names must be tokens and
    /// values free of control characters.
    pub extra_headers: Vec<(String, String)>,
}

/// The outcome of [`accept`]: what to write and what was agreed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The complete `HTTP/1.1 101 Switching Protocols` response, blank line included.
    pub response: Vec<u8>,
    /// The same response's headers, in order (for a server whose HTTP layer writes the
    /// response itself).
    pub headers: Vec<(String, String)>,
    /// The chosen subprotocol, if any.
    pub protocol: Option<String>,
    /// The permessage-deflate parameters, if an offer was accepted; pass them to
    /// `Connection::new`.
    pub deflate: Option<DeflateParams>,
}

/// Accepts a validated request: picks the subprotocol and the first acceptable
/// permessage-deflate offer, and builds the 101 response.
///
/// Fails with [`HandshakeError::MalformedExtensions`] if the request's extensions do not
/// parse (only possible for a hand-built [`Request`]) and with
/// [`HandshakeError::InvalidInput`] if `opts` holds unwritable headers or protocols.
pub fn accept(req: &Request, opts: &AcceptOptions) -> Result<Accepted, HandshakeError> {
    check_extra_headers(&opts.extra_headers)?;
    if opts
        .protocols
        .iter()
        .any(|p| !super::is_token(p.as_bytes()))
    {
        return Err(HandshakeError::InvalidInput("subprotocol is not a token"));
    }
    let protocol = opts
        .protocols
        .iter()
        .find(|ours| req.protocols.iter().any(|theirs| theirs == *ours))
        .cloned();
    let offers = extensions::parse(&req.extensions)?;
    let deflate = opts
        .deflate
        .as_ref()
        .and_then(|config| extensions::negotiate_server(&offers, config));

    let mut headers = vec![
        ("Upgrade".to_owned(), "websocket".to_owned()),
        ("Connection".to_owned(), "Upgrade".to_owned()),
        ("Sec-WebSocket-Accept".to_owned(), accept_key(&req.key)),
    ];
    if let Some(p) = &protocol {
        headers.push(("Sec-WebSocket-Protocol".to_owned(), p.clone()));
    }
    if let Some((_, value)) = &deflate {
        headers.push(("Sec-WebSocket-Extensions".to_owned(), value.clone()));
    }
    headers.extend(opts.extra_headers.iter().cloned());
    let mut response = Vec::with_capacity(256);
    response.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\n");
    for (name, value) in &headers {
        push_header(&mut response, name, value);
    }
    response.extend_from_slice(b"\r\n");
    Ok(Accepted {
        response,
        headers,
        protocol,
        deflate: deflate.map(|(params, _)| params),
    })
}

pub(crate) fn push_header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const RFC_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn request(extra: &str) -> String {
        format!(
            "GET /chat?x=1 HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: {RFC_KEY}\r\n\
             Origin: http://example.com\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        )
    }

    fn parse(s: &str) -> Result<Option<(Request, usize)>, HandshakeError> {
        parse_request(s.as_bytes())
    }

    #[test]
    fn rfc_accept_example() {
        // RFC 6455 §1.3.
        assert_eq!(accept_key(RFC_KEY), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn parses_a_valid_request() {
        let text = request("Sec-WebSocket-Protocol: chat, superchat\r\n");
        let mut bytes = text.clone().into_bytes();
        bytes.extend_from_slice(b"\x81\x00");
        let (req, n) = parse_request(&bytes).unwrap().unwrap();
        assert_eq!(n, text.len());
        assert_eq!(&bytes[n..], b"\x81\x00");
        assert_eq!(req.method, "GET");
        assert_eq!(req.path, "/chat?x=1");
        assert_eq!(req.host, "server.example.com");
        assert_eq!(req.origin.as_deref(), Some("http://example.com"));
        assert_eq!(req.key, RFC_KEY);
        assert_eq!(req.protocols, ["chat", "superchat"]);
        assert_eq!(req.extensions, "");
        assert_eq!(req.header("sec-websocket-version"), Some(&b"13"[..]));
        assert_eq!(req.headers.len(), 7);
    }

    #[test]
    fn every_prefix_is_partial() {
        let text = request("Sec-WebSocket-Extensions: permessage-deflate\r\n");
        for end in 0..text.len() {
            assert_eq!(parse(&text[..end]), Ok(None), "prefix of {end} bytes");
        }
        assert!(parse(&text).unwrap().is_some());
    }

    #[test]
    fn header_tokens_are_lenient_about_case_and_lists() {
        let text = "GET / HTTP/1.1\r\nhost: h\r\nupgrade: h2c, WebSocket\r\n\
                    connection: keep-alive\r\nconnection: UPGRADE\r\n\
                    sec-websocket-key:  dGhlIHNhbXBsZSBub25jZQ==  \r\n\
                    sec-websocket-version: 13\r\n\r\n";
        let (req, _) = parse(text).unwrap().unwrap();
        assert_eq!(req.key, RFC_KEY);
        assert_eq!(req.origin, None);
        // HTTP/1.2 would not parse in httparse; HTTP/1.1 is the floor we check.
    }

    #[test]
    fn rejections_with_status() {
        let ok = request("");
        let cases: Vec<(String, HandshakeError)> = vec![
            (ok.replacen("GET", "POST", 1), HandshakeError::MethodNotGet),
            (
                ok.replacen("HTTP/1.1", "HTTP/1.0", 1),
                HandshakeError::BadHttpVersion,
            ),
            (
                ok.replacen("Upgrade: websocket", "Upgrade: h2c", 1),
                HandshakeError::MissingUpgrade,
            ),
            (
                ok.replacen("Upgrade: websocket\r\n", "", 1),
                HandshakeError::MissingUpgrade,
            ),
            (
                ok.replacen("Connection: Upgrade", "Connection: keep-alive", 1),
                HandshakeError::MissingConnectionUpgrade,
            ),
            (
                ok.replacen("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8", 1),
                HandshakeError::BadVersion,
            ),
            (
                ok.replacen("Sec-WebSocket-Version: 13\r\n", "", 1),
                HandshakeError::BadVersion,
            ),
            (
                request("Sec-WebSocket-Version: 13\r\n"),
                HandshakeError::BadVersion,
            ),
            (
                ok.replacen(RFC_KEY, "dGhlIHNhbXBsZSBub25jZQ", 1),
                HandshakeError::BadKey,
            ),
            (
                ok.replacen(RFC_KEY, "AAAAAAAAAAAAAAAAAAAAAA==AA", 1),
                HandshakeError::BadKey,
            ),
            // 17 bytes.
            (
                ok.replacen(RFC_KEY, "AAAAAAAAAAAAAAAAAAAAAAA=", 1),
                HandshakeError::BadKey,
            ),
            (
                ok.replacen(RFC_KEY, "!!!!!!!!!!!!!!!!!!!!!!==", 1),
                HandshakeError::BadKey,
            ),
            (
                ok.replacen(&format!("Sec-WebSocket-Key: {RFC_KEY}\r\n"), "", 1),
                HandshakeError::BadKey,
            ),
            (
                request(&format!("Sec-WebSocket-Key: {RFC_KEY}\r\n")),
                HandshakeError::BadKey,
            ),
            (
                ok.replacen("Host: server.example.com\r\n", "", 1),
                HandshakeError::MissingHost,
            ),
            (
                request("Host: other\r\n"),
                HandshakeError::DuplicateHeader("Host"),
            ),
            (
                request("Origin: http://evil\r\n"),
                HandshakeError::DuplicateHeader("Origin"),
            ),
            (
                request("Sec-WebSocket-Protocol: a b\r\n"),
                HandshakeError::MalformedProtocols,
            ),
            (
                request("Sec-WebSocket-Extensions: permessage-deflate; x=\"\r\n"),
                HandshakeError::MalformedExtensions,
            ),
            (
                ok.replacen("Host: ", "Ho st: ", 1),
                HandshakeError::MalformedHttp("invalid header name"),
            ),
            (
                "GET / HTTP/1.1\n\rX".to_owned(),
                HandshakeError::MalformedHttp("invalid line ending"),
            ),
        ];
        for (text, expected) in cases {
            let got = parse(&text);
            assert_eq!(got, Err(expected), "{text:?}");
            let status = expected.status();
            let resp = super::super::reject_response(&expected);
            assert!(resp.starts_with(format!("HTTP/1.1 {status} ").as_bytes()));
        }
    }

    #[test]
    fn header_limits() {
        // Too many lines: fails with 431 even though the head is complete.
        let many: String = (0..MAX_HEADERS).map(|i| format!("X-{i}: y\r\n")).collect();
        assert_eq!(parse(&request(&many)), Err(HandshakeError::HeadersTooLarge));
        // Too many bytes, head never completed: fails once the limit is reached.
        let mut big = request("").into_bytes();
        big.truncate(big.len() - 2);
        let filler = format!("X-Pad: {}\r\n", "a".repeat(1000));
        while big.len() < MAX_HEADER_BYTES {
            big.extend_from_slice(filler.as_bytes());
        }
        assert_eq!(parse_request(&big[..MAX_HEADER_BYTES - 1]), Ok(None));
        assert_eq!(parse_request(&big), Err(HandshakeError::HeadersTooLarge));
        // A complete but oversized head is also refused.
        big.extend_from_slice(b"\r\n");
        assert_eq!(parse_request(&big), Err(HandshakeError::HeadersTooLarge));
        assert_eq!(HandshakeError::HeadersTooLarge.status(), 431);
    }

    #[test]
    fn validate_headers_for_preparsed_requests() {
        let headers: Vec<(&str, &[u8])> = vec![
            ("host", b"h:8080"),
            ("upgrade", b"websocket"),
            ("connection", b"Upgrade"),
            ("sec-websocket-key", RFC_KEY.as_bytes()),
            ("sec-websocket-version", b"13"),
            ("sec-websocket-extensions", b"permessage-deflate"),
            ("sec-websocket-extensions", b"x-foo; a=1"),
        ];
        let req = validate_headers("GET", "/ws", headers.iter().copied()).unwrap();
        assert_eq!(req.host, "h:8080");
        assert_eq!(req.path, "/ws");
        assert_eq!(req.extensions, "permessage-deflate, x-foo; a=1");
        assert_eq!(
            validate_headers("PUT", "/ws", headers.iter().copied()),
            Err(HandshakeError::MethodNotGet)
        );
    }

    #[test]
    fn accept_builds_101() {
        let (req, _) = parse(&request("Sec-WebSocket-Protocol: chat, superchat\r\n"))
            .unwrap()
            .unwrap();
        let opts = AcceptOptions {
            protocols: vec!["superchat".into(), "chat".into()],
            deflate: None,
            extra_headers: vec![("X-Served-By".into(), "switchboard".into())],
        };
        let acc = accept(&req, &opts).unwrap();
        assert_eq!(acc.protocol.as_deref(), Some("superchat"));
        assert_eq!(acc.deflate, None);
        assert_eq!(
            String::from_utf8(acc.response).unwrap(),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
             Sec-WebSocket-Protocol: superchat\r\nX-Served-By: switchboard\r\n\r\n"
        );
    }

    #[test]
    fn accept_without_common_protocol_or_deflate() {
        let ext = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";
        let (req, _) = parse(&request(&format!("Sec-WebSocket-Protocol: a\r\n{ext}")))
            .unwrap()
            .unwrap();
        let opts = AcceptOptions {
            protocols: vec!["b".into()],
            ..AcceptOptions::default()
        };
        let acc = accept(&req, &opts).unwrap();
        assert_eq!(acc.protocol, None);
        assert_eq!(acc.deflate, None);
        let text = String::from_utf8(acc.response).unwrap();
        assert!(!text.contains("Sec-WebSocket-Protocol"));
        assert!(!text.contains("Sec-WebSocket-Extensions"));

        let opts = AcceptOptions {
            deflate: Some(DeflateConfig::default()),
            ..AcceptOptions::default()
        };
        let acc = accept(&req, &opts).unwrap();
        assert_eq!(
            acc.deflate,
            Some(DeflateParams {
                server_no_context_takeover: true,
                client_no_context_takeover: false,
                server_max_window_bits: 15,
                client_max_window_bits: 15,
            })
        );
        assert!(String::from_utf8(acc.response).unwrap().contains(
            "\r\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n"
        ));
    }

    #[test]
    fn accept_refuses_unwritable_options() {
        let (req, _) = parse(&request("")).unwrap().unwrap();
        let bad = [
            AcceptOptions {
                extra_headers: vec![("X".into(), "a\r\nInjected: 1".into())],
                ..AcceptOptions::default()
            },
            AcceptOptions {
                extra_headers: vec![("X Y".into(), "a".into())],
                ..AcceptOptions::default()
            },
            AcceptOptions {
                protocols: vec!["a\r\n".into()],
                ..AcceptOptions::default()
            },
        ];
        for opts in bad {
            assert!(matches!(
                accept(&req, &opts),
                Err(HandshakeError::InvalidInput(_))
            ));
        }
    }
}
