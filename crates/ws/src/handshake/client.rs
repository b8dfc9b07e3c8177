//! Client side of the RFC 6455 opening handshake: build the upgrade request, then check
//! the server's response against it.
//!
//! [`build_request`] returns the request bytes and a [`ClientHandshake`] that remembers the
//! key, the offered subprotocols and the permessage-deflate offer.
//! [`ClientHandshake::parse_response`] returns `Ok(None)` until the response head is
//! complete, then either the agreed [`Response`] or the reason to drop the connection.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use super::server::push_header;
use super::{
    check_extra_headers, extensions, is_safe_value, is_token, list_contains_token, split_protocols,
    trim_ows, HandshakeError, MAX_HEADERS, MAX_HEADER_BYTES,
};
use crate::config::DeflateConfig;
use crate::deflate::DeflateParams;

/// What the client asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientRequest {
    /// The `Host` header, e.g. `example.com:8080`.
    pub host: String,
    /// The request-target: path and query, e.g. `/ws?room=1`. Must start with `/`.
    pub path: String,
    /// The `Origin` header, if any.
    pub origin: Option<String>,
    /// Subprotocols we offer, in preference order.
    pub protocols: Vec<String>,
    /// permessage-deflate offer; `None` offers no extension.
    pub deflate: Option<DeflateConfig>,
    /// Further request headers (e.g. `Authorization`). Names must be tokens and values
    /// free of control characters.
    pub extra_headers: Vec<(String, String)>,
}

impl ClientRequest {
    /// A request for `path` on `host` with no subprotocol, extension or extra header.
    pub fn new(host: impl Into<String>, path: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            path: path.into(),
            ..Self::default()
        }
    }
}

/// The state kept between sending the request and reading the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHandshake {
    key: String,
    protocols: Vec<String>,
    deflate: Option<DeflateConfig>,
}

/// A successful 101 response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The subprotocol the server selected (one we offered), if any.
    pub protocol: Option<String>,
    /// The agreed permessage-deflate parameters, if the server accepted our offer; pass
    /// them to `Connection::new`.
    pub deflate: Option<DeflateParams>,
    /// Every header line as received, names in their original case.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// Builds the request with a fresh random key (RFC 6455 §4.1 asks for a nonce per
/// connection). Fails with [`HandshakeError::InvalidInput`] if a value cannot be written
/// into an HTTP head.
pub fn build_request(req: &ClientRequest) -> Result<(Vec<u8>, ClientHandshake), HandshakeError> {
    build_request_with_key(req, rand::random())
}

/// [`build_request`] with a chosen 16-byte nonce, for tests and reproducible traces.
pub fn build_request_with_key(
    req: &ClientRequest,
    nonce: [u8; 16],
) -> Result<(Vec<u8>, ClientHandshake), HandshakeError> {
    if req.host.is_empty() || !is_safe_value(&req.host) || req.host.contains([' ', '\t']) {
        return Err(HandshakeError::InvalidInput(
            "host is empty or has spaces or control characters",
        ));
    }
    if !req.path.starts_with('/') || !req.path.bytes().all(|b| (b'!'..=b'~').contains(&b)) {
        return Err(HandshakeError::InvalidInput(
            "path must start with '/' and contain only visible ASCII",
        ));
    }
    if req.origin.as_deref().is_some_and(|o| !is_safe_value(o)) {
        return Err(HandshakeError::InvalidInput(
            "origin contains control characters",
        ));
    }
    if req.protocols.iter().any(|p| !is_token(p.as_bytes())) {
        return Err(HandshakeError::InvalidInput("subprotocol is not a token"));
    }
    check_extra_headers(&req.extra_headers)?;

    let key = BASE64.encode(nonce);
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"GET ");
    out.extend_from_slice(req.path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    push_header(&mut out, "Host", &req.host);
    out.extend_from_slice(b"Upgrade: websocket\r\nConnection: Upgrade\r\n");
    push_header(&mut out, "Sec-WebSocket-Key", &key);
    out.extend_from_slice(b"Sec-WebSocket-Version: 13\r\n");
    if let Some(origin) = &req.origin {
        push_header(&mut out, "Origin", origin);
    }
    if !req.protocols.is_empty() {
        push_header(
            &mut out,
            "Sec-WebSocket-Protocol",
            &req.protocols.join(", "),
        );
    }
    if let Some(config) = &req.deflate {
        push_header(
            &mut out,
            "Sec-WebSocket-Extensions",
            &extensions::client_offer(config),
        );
    }
    for (name, value) in &req.extra_headers {
        push_header(&mut out, name, value);
    }
    out.extend_from_slice(b"\r\n");
    let handshake = ClientHandshake {
        key,
        protocols: req.protocols.clone(),
        deflate: req.deflate.clone(),
    };
    Ok((out, handshake))
}

impl ClientHandshake {
    /// The `Sec-WebSocket-Key` we sent.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Parses and checks the server's response from the start of `buf`.
    ///
    /// `Ok(None)`: the head is not complete yet. `Ok(Some((response, consumed)))`:
    /// `buf[consumed..]` is already WebSocket data. Checks: status 101 (else
    /// [`HandshakeError::NotSwitching`]), HTTP/1.1, `Upgrade: websocket` and
    /// `Connection: upgrade`, `Sec-WebSocket-Accept` once and matching our key, at most one
    /// subprotocol and one we offered, extensions as [`extensions::negotiate_client`].
    pub fn parse_response(&self, buf: &[u8]) -> Result<Option<(Response, usize)>, HandshakeError> {
        let window = &buf[..buf.len().min(MAX_HEADER_BYTES)];
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        let consumed = match resp.parse(window) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if buf.len() >= MAX_HEADER_BYTES => {
                return Err(HandshakeError::HeadersTooLarge)
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::HeadersTooLarge),
            Err(e) => return Err(response_error(e)),
        };
        let (Some(code), Some(version)) = (resp.code, resp.version) else {
            return Err(HandshakeError::MalformedResponse("incomplete status line"));
        };
        if code != 101 {
            return Err(HandshakeError::NotSwitching(code));
        }
        if version < 1 {
            return Err(HandshakeError::MalformedResponse(
                "101 response is not HTTP/1.1",
            ));
        }
        let all = |name: &'static str| {
            resp.headers
                .iter()
                .filter(move |h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value)
        };
        if !list_contains_token(all("Upgrade"), "websocket")
            || !list_contains_token(all("Connection"), "upgrade")
        {
            return Err(HandshakeError::ResponseNotUpgraded);
        }
        let expected = super::accept_key(&self.key);
        let mut accepts = all("Sec-WebSocket-Accept");
        match (accepts.next(), accepts.next()) {
            (Some(value), None) if trim_ows(value) == expected.as_bytes() => {}
            _ => return Err(HandshakeError::BadAccept),
        }

        let chosen = split_protocols(all("Sec-WebSocket-Protocol"))
            .ok_or(HandshakeError::UnrequestedProtocol)?;
        let protocol = match chosen.as_slice() {
            [] => None,
            [one] if self.protocols.contains(one) => Some(one.clone()),
            _ => return Err(HandshakeError::UnrequestedProtocol),
        };

        let mut ext = String::new();
        for line in all("Sec-WebSocket-Extensions") {
            let line = std::str::from_utf8(line).map_err(|_| HandshakeError::BadExtensionParams)?;
            ext.push_str(line);
            ext.push(',');
        }
        let offers = extensions::parse(&ext).map_err(|_| HandshakeError::BadExtensionParams)?;
        let deflate = extensions::negotiate_client(&offers, self.deflate.as_ref())?;

        let headers = resp
            .headers
            .iter()
            .map(|h| (h.name.to_owned(), h.value.to_vec()))
            .collect();
        Ok(Some((
            Response {
                protocol,
                deflate,
                headers,
            },
            consumed,
        )))
    }
}

fn response_error(e: httparse::Error) -> HandshakeError {
    match e {
        httparse::Error::HeaderName => HandshakeError::MalformedResponse("invalid header name"),
        httparse::Error::HeaderValue => HandshakeError::MalformedResponse("invalid header value"),
        httparse::Error::NewLine => HandshakeError::MalformedResponse("invalid line ending"),
        httparse::Error::Status => HandshakeError::MalformedResponse("invalid status"),
        httparse::Error::Token => HandshakeError::MalformedResponse("invalid token"),
        httparse::Error::Version => HandshakeError::MalformedResponse("invalid HTTP version"),
        httparse::Error::TooManyHeaders => HandshakeError::HeadersTooLarge,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The RFC 6455 §1.3 nonce, "the sample nonce".
    const NONCE: [u8; 16] = *b"the sample nonce";
    const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    fn handshake(protocols: &[&str], deflate: Option<DeflateConfig>) -> (String, ClientHandshake) {
        let req = ClientRequest {
            protocols: protocols.iter().map(|p| (*p).to_owned()).collect(),
            deflate,
            ..ClientRequest::new("server.example.com", "/chat")
        };
        let (bytes, hs) = build_request_with_key(&req, NONCE).unwrap();
        (String::from_utf8(bytes).unwrap(), hs)
    }

    fn response(extra: &str) -> String {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {ACCEPT}\r\n{extra}\r\n"
        )
    }

    #[test]
    fn request_bytes() {
        let req = ClientRequest {
            origin: Some("http://example.com".into()),
            protocols: vec!["chat".into(), "superchat".into()],
            deflate: Some(DeflateConfig::default()),
            extra_headers: vec![("Authorization".into(), "Bearer t".into())],
            ..ClientRequest::new("server.example.com", "/chat?a=b")
        };
        let (bytes, hs) = build_request_with_key(&req, NONCE).unwrap();
        assert_eq!(hs.key(), "dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "GET /chat?a=b HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\nOrigin: http://example.com\r\n\
             Sec-WebSocket-Protocol: chat, superchat\r\n\
             Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; \
             client_max_window_bits\r\nAuthorization: Bearer t\r\n\r\n"
        );
    }

    #[test]
    fn random_keys_differ() {
        let req = ClientRequest::new("h", "/");
        let (_, a) = build_request(&req).unwrap();
        let (_, b) = build_request(&req).unwrap();
        assert_ne!(a.key(), b.key());
        assert_eq!(BASE64.decode(a.key()).unwrap().len(), 16);
    }

    #[test]
    fn refuses_unwritable_input() {
        let bad = [
            ClientRequest::new("h\r\nX: y", "/"),
            ClientRequest::new("", "/"),
            ClientRequest::new("h", "no-slash"),
            ClientRequest::new("h", "/a b"),
            ClientRequest {
                origin: Some("o\n".into()),
                ..ClientRequest::new("h", "/")
            },
            ClientRequest {
                protocols: vec!["a,b".into()],
                ..ClientRequest::new("h", "/")
            },
            ClientRequest {
                extra_headers: vec![("X".into(), "\r\n".into())],
                ..ClientRequest::new("h", "/")
            },
        ];
        for req in bad {
            assert!(
                matches!(build_request(&req), Err(HandshakeError::InvalidInput(_))),
                "{req:?}"
            );
        }
    }

    #[test]
    fn accepts_a_valid_response() {
        let (_, hs) = handshake(&["chat", "superchat"], None);
        let text = response("Sec-WebSocket-Protocol: superchat\r\n");
        let mut bytes = text.clone().into_bytes();
        bytes.extend_from_slice(b"\x81\x02hi");
        let (resp, n) = hs.parse_response(&bytes).unwrap().unwrap();
        assert_eq!(n, text.len());
        assert_eq!(resp.protocol.as_deref(), Some("superchat"));
        assert_eq!(resp.deflate, None);
        assert_eq!(resp.headers.len(), 4);
        for end in 0..text.len() {
            assert_eq!(hs.parse_response(&bytes[..end]), Ok(None), "prefix {end}");
        }
    }

    #[test]
    fn response_faults() {
        let (_, hs) = handshake(&["chat"], Some(DeflateConfig::default()));
        let ok = response("");
        let cases: Vec<(String, HandshakeError)> = vec![
            (
                "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n".into(),
                HandshakeError::NotSwitching(403),
            ),
            (ok.replacen("HTTP/1.1", "HTTP/1.0", 1), HandshakeError::MalformedResponse("101 response is not HTTP/1.1")),
            (ok.replacen("Upgrade: websocket\r\n", "", 1), HandshakeError::ResponseNotUpgraded),
            (ok.replacen("Connection: Upgrade", "Connection: close", 1), HandshakeError::ResponseNotUpgraded),
            (ok.replacen(ACCEPT, "s3pPLMBiTxaQ9kYGzzhZRbK+xOp=", 1), HandshakeError::BadAccept),
            (ok.replacen(&format!("Sec-WebSocket-Accept: {ACCEPT}\r\n"), "", 1), HandshakeError::BadAccept),
            (response(&format!("Sec-WebSocket-Accept: {ACCEPT}\r\n")), HandshakeError::BadAccept),
            (response("Sec-WebSocket-Protocol: superchat\r\n"), HandshakeError::UnrequestedProtocol),
            (response("Sec-WebSocket-Protocol: chat, chat\r\n"), HandshakeError::UnrequestedProtocol),
            (response("Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: chat\r\n"), HandshakeError::UnrequestedProtocol),
            (response("Sec-WebSocket-Extensions: x-foo\r\n"), HandshakeError::UnrequestedExtension),
            (
                response("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_max_window_bits\r\n"),
                HandshakeError::BadExtensionParams,
            ),
            (
                response("Sec-WebSocket-Extensions: permessage-deflate;\r\n"),
                HandshakeError::BadExtensionParams,
            ),
            ("HTTP/1.1 101 OK\r\nBad Header: x\r\n\r\n".into(), HandshakeError::MalformedResponse("invalid header name")),
        ];
        for (text, expected) in cases {
            assert_eq!(
                hs.parse_response(text.as_bytes()),
                Err(expected),
                "{text:?}"
            );
        }
        // We offered no subprotocol and no extension.
        let (_, bare) = handshake(&[], None);
        assert_eq!(
            bare.parse_response(response("Sec-WebSocket-Protocol: chat\r\n").as_bytes()),
            Err(HandshakeError::UnrequestedProtocol)
        );
        assert_eq!(
            bare.parse_response(
                response("Sec-WebSocket-Extensions: permessage-deflate\r\n").as_bytes()
            ),
            Err(HandshakeError::UnrequestedExtension)
        );
    }

    #[test]
    fn deflate_response_and_limits() {
        let (_, hs) = handshake(&[], Some(DeflateConfig::default()));
        let text = response(
            "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n\
             Sec-WebSocket-Extensions: \r\n",
        );
        let (resp, _) = hs.parse_response(text.as_bytes()).unwrap().unwrap();
        assert_eq!(
            resp.deflate,
            Some(DeflateParams {
                server_no_context_takeover: true,
                client_no_context_takeover: false,
                server_max_window_bits: 15,
                client_max_window_bits: 15,
            })
        );
        let many: String = (0..MAX_HEADERS).map(|i| format!("X-{i}: y\r\n")).collect();
        assert_eq!(
            hs.parse_response(response(&many).as_bytes()),
            Err(HandshakeError::HeadersTooLarge)
        );
        let endless = format!("HTTP/1.1 101 OK\r\nX: {}", "a".repeat(MAX_HEADER_BYTES));
        assert_eq!(
            hs.parse_response(endless.as_bytes()),
            Err(HandshakeError::HeadersTooLarge)
        );
    }
}
