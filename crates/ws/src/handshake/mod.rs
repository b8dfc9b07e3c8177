//! The RFC 6455 opening handshake, both roles, without I/O.
//!
//! A server feeds the bytes it has read to [`server::parse_request`] until it returns
//! `Ok(Some((request, consumed)))`, decides with [`server::accept`] (subprotocol and
//! permessage-deflate negotiation) and writes [`server::Accepted::response`]; on any error
//! it writes [`reject_response`] and closes the TCP connection. A client writes the bytes
//! of [`client::build_request`] and feeds what it reads to
//! [`client::ClientHandshake::parse_response`]. In both roles the bytes after `consumed`
//! already belong to the WebSocket connection.
//!
//! Every failure is a [`HandshakeError`], and each one maps to exactly one HTTP status in
//! [`HandshakeError::status`]. The header section is limited to [`MAX_HEADER_BYTES`] bytes
//! and [`MAX_HEADERS`] header lines, checked before anything is allocated.

pub mod client;
pub mod extensions;
pub mod server;

use std::fmt;

pub use client::{build_request, build_request_with_key, ClientHandshake, ClientRequest, Response};
pub use server::{
    accept, accept_key, parse_request, validate_headers, AcceptOptions, Accepted, Request,
};

/// Largest header section (request or status line, header lines and the blank line)
/// accepted from the peer. A longer one is answered with 431 before it is buffered further.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Largest number of header lines accepted from the peer (431 beyond it).
pub const MAX_HEADERS: usize = 64;

/// Appended to the client's key before hashing (RFC 6455 §1.3).
pub(crate) const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Why an opening handshake failed.
///
/// Request faults (the client sent something a server must refuse) map to a 4xx status,
/// sent back by [`reject_response`]. Response faults (the server answered a client
/// wrongly) are never sent to anyone: the client just drops the connection; their
/// [`status`](HandshakeError::status) is 502, what a gateway relaying the handshake would
/// answer. [`InvalidInput`](HandshakeError::InvalidInput) is local misuse (500).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeError {
    // ----- request faults (server side) -----
    /// The peer closed the connection before a complete request head arrived.
    /// Never produced by the parsers (they return `Ok(None)`); drivers use it at EOF.
    Incomplete,
    /// The request is not valid HTTP/1.x syntax; the detail says where.
    MalformedHttp(&'static str),
    /// The header section exceeds [`MAX_HEADER_BYTES`] or [`MAX_HEADERS`].
    HeadersTooLarge,
    /// The method is not GET. Answered with 405 and `Allow: GET`, the HTTP status for a
    /// resource that exists but not for this method.
    MethodNotGet,
    /// The request is HTTP/1.0; WebSocket needs HTTP/1.1 or later.
    BadHttpVersion,
    /// No `Upgrade` header with the token `websocket`.
    MissingUpgrade,
    /// No `Connection` header with the token `upgrade`.
    MissingConnectionUpgrade,
    /// `Sec-WebSocket-Version` is missing or not 13. Answered with 426 and
    /// `Sec-WebSocket-Version: 13`, telling the client which version to retry with.
    BadVersion,
    /// `Sec-WebSocket-Key` is missing or not the base64 encoding of exactly 16 bytes.
    BadKey,
    /// No `Host` header.
    MissingHost,
    /// A header that must appear once appeared several times (its name is given).
    DuplicateHeader(&'static str),
    /// `Sec-WebSocket-Protocol` is not a comma-separated list of tokens.
    MalformedProtocols,
    /// `Sec-WebSocket-Extensions` does not follow the RFC 6455 §9.1 grammar.
    MalformedExtensions,
    /// A legacy (hixie-76) request whose `Sec-WebSocket-Key1`/`Key2` are missing or do not
    /// yield a 32-bit number (no spaces, not an exact multiple of the spaces, overflow).
    BadHixieKey,

    // ----- response faults (client side) -----
    /// The response is not valid HTTP/1.1 syntax; the detail says where.
    MalformedResponse(&'static str),
    /// The server answered with this status instead of 101 Switching Protocols.
    NotSwitching(u16),
    /// The 101 response lacks `Upgrade: websocket` or `Connection: upgrade`.
    ResponseNotUpgraded,
    /// `Sec-WebSocket-Accept` is missing, duplicated or does not match our key.
    BadAccept,
    /// The server selected a subprotocol we did not offer, or several.
    UnrequestedProtocol,
    /// The server accepted an extension we did not offer.
    UnrequestedExtension,
    /// The server's permessage-deflate parameters are malformed, unknown, duplicated, out
    /// of range, or contradict our offer.
    BadExtensionParams,

    // ----- local misuse -----
    /// A value given by this program (host, path, header, protocol) cannot be put in an
    /// HTTP head: it contains CR/LF or other forbidden bytes, or a name is not a token.
    InvalidInput(&'static str),
}

impl HandshakeError {
    /// The HTTP status a server answers this error with. Response faults give 502 and
    /// local misuse 500; see the type's documentation.
    pub fn status(&self) -> u16 {
        use HandshakeError::*;
        match self {
            Incomplete
            | MalformedHttp(_)
            | BadHttpVersion
            | MissingUpgrade
            | MissingConnectionUpgrade
            | BadKey
            | MissingHost
            | DuplicateHeader(_)
            | MalformedProtocols
            | MalformedExtensions
            | BadHixieKey => 400,
            MethodNotGet => 405,
            BadVersion => 426,
            HeadersTooLarge => 431,
            MalformedResponse(_) | NotSwitching(_) | ResponseNotUpgraded | BadAccept
            | UnrequestedProtocol | UnrequestedExtension | BadExtensionParams => 502,
            InvalidInput(_) => 500,
        }
    }

    /// True when the peer (client or server) is at fault, false for local misuse.
    pub fn is_peer_fault(&self) -> bool {
        !matches!(self, HandshakeError::InvalidInput(_))
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use HandshakeError::*;
        match self {
            Incomplete => f.write_str("the connection closed before the request was complete"),
            MalformedHttp(what) => write!(f, "malformed HTTP request: {what}"),
            HeadersTooLarge => write!(
                f,
                "request header section too large (limit {MAX_HEADER_BYTES} bytes, {MAX_HEADERS} lines)"
            ),
            MethodNotGet => f.write_str("a WebSocket handshake must use the GET method"),
            BadHttpVersion => f.write_str("a WebSocket handshake needs HTTP/1.1 or later"),
            MissingUpgrade => f.write_str("missing \"Upgrade: websocket\" header"),
            MissingConnectionUpgrade => {
                f.write_str("missing \"Connection: Upgrade\" header (token \"upgrade\")")
            }
            BadVersion => f.write_str("unsupported WebSocket version: send Sec-WebSocket-Version: 13"),
            BadKey => f.write_str(
                "Sec-WebSocket-Key must be present once and be the base64 encoding of 16 bytes",
            ),
            MissingHost => f.write_str("missing Host header"),
            DuplicateHeader(name) => write!(f, "the {name} header must appear only once"),
            MalformedProtocols => {
                f.write_str("Sec-WebSocket-Protocol must be a comma-separated list of tokens")
            }
            MalformedExtensions => f.write_str(
                "Sec-WebSocket-Extensions does not follow the RFC 6455 section 9.1 grammar",
            ),
            BadHixieKey => f.write_str(
                "Sec-WebSocket-Key1/Key2 must each contain spaces and digits forming an exact multiple of the space count",
            ),
            MalformedResponse(what) => write!(f, "malformed HTTP response from the server: {what}"),
            NotSwitching(status) => write!(
                f,
                "the server answered {status} instead of 101 Switching Protocols"
            ),
            ResponseNotUpgraded => f.write_str(
                "the server's 101 response lacks \"Upgrade: websocket\" or \"Connection: Upgrade\"",
            ),
            BadAccept => f.write_str(
                "the server's Sec-WebSocket-Accept is missing or does not match our key",
            ),
            UnrequestedProtocol => {
                f.write_str("the server selected a subprotocol we did not offer")
            }
            UnrequestedExtension => {
                f.write_str("the server accepted an extension we did not offer")
            }
            BadExtensionParams => f.write_str(
                "the server's permessage-deflate parameters are invalid or contradict our offer",
            ),
            InvalidInput(what) => write!(f, "invalid handshake input: {what}"),
        }
    }
}

impl std::error::Error for HandshakeError {}

/// A complete HTTP/1.1 error response for `err`: status line, `Content-Type: text/plain`,
/// `Content-Length`, `Connection: close` and the error's message as the body. A 426 also
/// carries `Sec-WebSocket-Version: 13` and `Upgrade: websocket` (RFC 6455 §4.4, RFC 9110
/// §15.5.22); a 405 carries `Allow: GET`. Write it, then close the TCP connection.
pub fn reject_response(err: &HandshakeError) -> Vec<u8> {
    let status = err.status();
    let body = format!("{err}\n");
    let mut out = Vec::with_capacity(192 + body.len());
    out.extend_from_slice(format!("HTTP/1.1 {status} {}\r\n", reason_phrase(status)).as_bytes());
    out.extend_from_slice(b"Content-Type: text/plain; charset=utf-8\r\n");
    out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    match status {
        426 => {
            out.extend_from_slice(b"Sec-WebSocket-Version: 13\r\n");
            out.extend_from_slice(b"Upgrade: websocket\r\n");
            out.extend_from_slice(b"Connection: Upgrade, close\r\n");
        }
        405 => {
            out.extend_from_slice(b"Allow: GET\r\n");
            out.extend_from_slice(b"Connection: close\r\n");
        }
        _ => out.extend_from_slice(b"Connection: close\r\n"),
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
    out
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        405 => "Method Not Allowed",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        _ => "Error",
    }
}

/// True if any comma-separated element of any of `values` equals `token`, ignoring ASCII
/// case and surrounding whitespace (the HTTP list rule, RFC 9110 §5.6.1).
pub fn list_contains_token<'a>(values: impl IntoIterator<Item = &'a [u8]>, token: &str) -> bool {
    values.into_iter().any(|value| {
        value
            .split(|&b| b == b',')
            .any(|item| trim_ows(item).eq_ignore_ascii_case(token.as_bytes()))
    })
}

/// `value` without leading and trailing spaces and tabs.
pub(crate) fn trim_ows(value: &[u8]) -> &[u8] {
    let start = value
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |i| i + 1);
    &value[start..end]
}

/// RFC 9110 `tchar`.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A non-empty RFC 9110 `token`.
pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// A header value we write ourselves: visible ASCII, spaces and tabs, no CR/LF.
pub(crate) fn is_safe_value(s: &str) -> bool {
    s.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
}

/// Checks the extra headers a caller wants written into a handshake.
pub(crate) fn check_extra_headers(headers: &[(String, String)]) -> Result<(), HandshakeError> {
    for (name, value) in headers {
        if !is_token(name.as_bytes()) {
            return Err(HandshakeError::InvalidInput("header name is not a token"));
        }
        if !is_safe_value(value) {
            return Err(HandshakeError::InvalidInput(
                "header value contains control characters",
            ));
        }
    }
    Ok(())
}

/// Splits a `Sec-WebSocket-Protocol` value list into tokens; empty elements are skipped.
pub(crate) fn split_protocols<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for value in values {
        for item in value.split(|&b| b == b',') {
            let item = trim_ows(item);
            if item.is_empty() {
                continue;
            }
            if !is_token(item) {
                return None;
            }
            // A token is ASCII, so this conversion cannot lose anything.
            out.push(String::from_utf8_lossy(item).into_owned());
        }
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn head_of(resp: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut r = httparse::Response::new(&mut headers);
        let n = match r.parse(resp).unwrap() {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial => panic!("partial"),
        };
        let hs = r
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_ascii_lowercase(),
                    String::from_utf8(h.value.to_vec()).unwrap(),
                )
            })
            .collect();
        (r.code.unwrap(), hs, resp[n..].to_vec())
    }

    #[test]
    fn statuses() {
        assert_eq!(HandshakeError::BadVersion.status(), 426);
        assert_eq!(HandshakeError::HeadersTooLarge.status(), 431);
        assert_eq!(HandshakeError::MethodNotGet.status(), 405);
        assert_eq!(HandshakeError::BadKey.status(), 400);
        assert_eq!(HandshakeError::MalformedHttp("x").status(), 400);
        assert_eq!(HandshakeError::NotSwitching(404).status(), 502);
        assert_eq!(HandshakeError::InvalidInput("x").status(), 500);
        assert!(!HandshakeError::InvalidInput("x").is_peer_fault());
        assert!(HandshakeError::BadAccept.is_peer_fault());
    }

    #[test]
    fn reject_426_carries_version() {
        let resp = reject_response(&HandshakeError::BadVersion);
        let (code, headers, body) = head_of(&resp);
        assert_eq!(code, 426);
        assert!(headers.contains(&("sec-websocket-version".into(), "13".into())));
        assert!(headers.contains(&("upgrade".into(), "websocket".into())));
        let len: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .unwrap()
            .1
            .parse()
            .unwrap();
        assert_eq!(len, body.len());
        assert_eq!(
            String::from_utf8(body).unwrap(),
            format!("{}\n", HandshakeError::BadVersion)
        );
    }

    #[test]
    fn reject_400_and_405() {
        let (code, headers, body) = head_of(&reject_response(&HandshakeError::BadKey));
        assert_eq!(code, 400);
        assert!(headers.contains(&("connection".into(), "close".into())));
        assert!(headers.contains(&("content-type".into(), "text/plain; charset=utf-8".into())));
        assert!(!headers.iter().any(|(n, _)| n == "sec-websocket-version"));
        assert!(String::from_utf8(body)
            .unwrap()
            .contains("Sec-WebSocket-Key"));
        let (code, headers, _) = head_of(&reject_response(&HandshakeError::MethodNotGet));
        assert_eq!(code, 405);
        assert!(headers.contains(&("allow".into(), "GET".into())));
        let (code, _, _) = head_of(&reject_response(&HandshakeError::HeadersTooLarge));
        assert_eq!(code, 431);
    }

    #[test]
    fn token_lists() {
        let yes: [&[u8]; 4] = [
            b"Upgrade",
            b"keep-alive, Upgrade",
            b" upgrade ,x",
            b"a,UPGRADE",
        ];
        for v in yes {
            assert!(list_contains_token([v], "upgrade"), "{v:?}");
        }
        let no: [&[u8]; 3] = [b"keep-alive", b"upgrades", b""];
        for v in no {
            assert!(!list_contains_token([v], "upgrade"), "{v:?}");
        }
        assert!(list_contains_token([&b"close"[..], b"upgrade"], "upgrade"));
        assert_eq!(trim_ows(b" \t a b \t"), b"a b");
        assert_eq!(trim_ows(b"   "), b"");
        assert_eq!(
            split_protocols([&b"chat, superchat,,"[..], b"v2"]).unwrap(),
            ["chat", "superchat", "v2"]
        );
        assert!(split_protocols([&b"a b"[..]]).is_none());
    }
}
