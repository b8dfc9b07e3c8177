//! The legacy draft-hixie-thewebsocketprotocol-76 protocol, server side: its opening
//! handshake and its framing, without I/O (feature `hixie76`).
//!
//! Handshake: the client sends `Sec-WebSocket-Key1`/`Key2` and 8 raw bytes (key3) after
//! the blank line. For each key, the digits read as a decimal number divided by the number
//! of spaces gives a 32-bit number; the response body is the MD5 of both numbers
//! (big-endian) followed by key3. A key with no spaces, a number that is not an exact
//! multiple of the spaces, or a quotient above `u32::MAX` is refused (400): the draft
//! calls these symptoms of a cross-protocol attack. [`parse_any_request`] tells a hixie-76
//! request from an RFC 6455 one, so a server can accept both on one port.
//!
//! Framing: a text frame is `0x00`, UTF-8 bytes, `0xFF`; the closing frame is `0xFF 0x00`.
//! Other frame types carry nothing an application can use and are skipped as the draft
//! says: sentinel-terminated ones (type below 0x80) up to `0xFF`, length-prefixed ones
//! (type 0x80 and above, base-128 length) by their length. [`Decoder::decode`] returns
//! `Ok(None)` until a whole frame is buffered; a frame larger than its limit fails before
//! it is buffered further. On [`Frame::Close`] a server writes [`CLOSE_FRAME`] (unless it
//! already did) and closes the TCP connection. There are no pings, binary messages or
//! close codes in this protocol.

use std::fmt;

use md5::{Digest, Md5};

use crate::handshake::server::{http_error, push_header};
use crate::handshake::{
    list_contains_token, server, trim_ows, HandshakeError, MAX_HEADERS, MAX_HEADER_BYTES,
};

/// A validated hixie-76 handshake request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The request-target as sent, e.g. `/demo`.
    pub path: String,
    /// The `Host` header (echoed in `Sec-WebSocket-Location`).
    pub host: String,
    /// The `Origin` header (echoed in `Sec-WebSocket-Origin`).
    pub origin: String,
    /// The `Sec-WebSocket-Protocol` value, if any (one protocol in this draft).
    pub protocol: Option<String>,
    /// The 16-byte challenge response, computed from the keys while parsing.
    pub challenge_response: [u8; 16],
    /// Every header line as received, names in their original case.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// Either kind of WebSocket opening request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnyRequest {
    Rfc6455(server::Request),
    Hixie76(Request),
}

/// Parses a request that may be RFC 6455 or hixie-76: a request with
/// `Sec-WebSocket-Key1` and without `Sec-WebSocket-Key` is hixie-76 (and then needs its 8
/// key bytes after the head, which `consumed` includes); anything else is validated as
/// RFC 6455 by [`server::validate_headers`]. `Ok(None)`: need more bytes.
pub fn parse_any_request(buf: &[u8]) -> Result<Option<(AnyRequest, usize)>, HandshakeError> {
    let window = &buf[..buf.len().min(MAX_HEADER_BYTES)];
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(window) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEADER_BYTES => {
            return Err(HandshakeError::HeadersTooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(http_error(e)),
    };
    let (Some(method), Some(path), Some(version)) = (req.method, req.path, req.version) else {
        return Err(HandshakeError::MalformedHttp("incomplete request line"));
    };
    if method != "GET" {
        return Err(HandshakeError::MethodNotGet);
    }
    if version < 1 {
        return Err(HandshakeError::BadHttpVersion);
    }
    let has = |name: &str| {
        req.headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case(name))
    };
    if !has("Sec-WebSocket-Key1") || has("Sec-WebSocket-Key") {
        let request =
            server::validate_headers(method, path, req.headers.iter().map(|h| (h.name, h.value)))?;
        return Ok(Some((AnyRequest::Rfc6455(request), head_len)));
    }
    let Some(key3) = buf.get(head_len..head_len + 8) else {
        return Ok(None);
    };
    let request = validate(path, req.headers, key3)?;
    Ok(Some((AnyRequest::Hixie76(request), head_len + 8)))
}

/// Parses a hixie-76 request (head and the 8 key bytes). `Ok(None)`: need more bytes.
/// An RFC 6455 request is refused with [`HandshakeError::BadHixieKey`].
pub fn parse_request(buf: &[u8]) -> Result<Option<(Request, usize)>, HandshakeError> {
    match parse_any_request(buf)? {
        None => Ok(None),
        Some((AnyRequest::Hixie76(req), n)) => Ok(Some((req, n))),
        Some((AnyRequest::Rfc6455(_), _)) => Err(HandshakeError::BadHixieKey),
    }
}

fn validate(
    path: &str,
    headers: &[httparse::Header<'_>],
    key3: &[u8],
) -> Result<Request, HandshakeError> {
    let all = |name: &'static str| {
        headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    let once = |name: &'static str| -> Result<Option<&[u8]>, HandshakeError> {
        let mut it = all(name);
        let first = it.next();
        if it.next().is_some() {
            return Err(HandshakeError::DuplicateHeader(name));
        }
        Ok(first)
    };
    if !list_contains_token(all("Upgrade"), "websocket") {
        return Err(HandshakeError::MissingUpgrade);
    }
    if !list_contains_token(all("Connection"), "upgrade") {
        return Err(HandshakeError::MissingConnectionUpgrade);
    }
    let text = |v: &[u8]| -> Option<String> {
        let v = trim_ows(v);
        v.iter()
            .all(|&b| (b' '..=b'~').contains(&b))
            .then(|| String::from_utf8_lossy(v).into_owned())
    };
    let host = match once("Host")? {
        Some(h) => text(h)
            .filter(|h| !h.is_empty() && !h.contains(' '))
            .ok_or(HandshakeError::MalformedHttp("invalid Host header"))?,
        None => return Err(HandshakeError::MissingHost),
    };
    let origin = once("Origin")?
        .and_then(text)
        .ok_or(HandshakeError::MalformedHttp(
            "hixie-76 request without a valid Origin",
        ))?;
    let protocol = match once("Sec-WebSocket-Protocol")? {
        Some(p) => Some(text(p).ok_or(HandshakeError::MalformedProtocols)?),
        None => None,
    };
    let key1 = once("Sec-WebSocket-Key1")?.ok_or(HandshakeError::BadHixieKey)?;
    let key2 = once("Sec-WebSocket-Key2")?.ok_or(HandshakeError::BadHixieKey)?;
    let mut key3_bytes = [0u8; 8];
    key3_bytes.copy_from_slice(key3);
    Ok(Request {
        path: path.to_owned(),
        host,
        origin,
        protocol,
        challenge_response: challenge_response(key1, key2, &key3_bytes)?,
        headers: headers
            .iter()
            .map(|h| (h.name.to_owned(), h.value.to_vec()))
            .collect(),
    })
}

/// The 16-byte answer to the hixie-76 challenge: MD5(part1 ‖ part2 ‖ key3), each part the
/// key's digits divided by its number of spaces, as a big-endian u32.
pub fn challenge_response(
    key1: &[u8],
    key2: &[u8],
    key3: &[u8; 8],
) -> Result<[u8; 16], HandshakeError> {
    let mut challenge = [0u8; 16];
    challenge[..4].copy_from_slice(&key_part(key1)?.to_be_bytes());
    challenge[4..8].copy_from_slice(&key_part(key2)?.to_be_bytes());
    challenge[8..].copy_from_slice(key3);
    Ok(Md5::digest(challenge).into())
}

fn key_part(key: &[u8]) -> Result<u32, HandshakeError> {
    let mut number: u64 = 0;
    let mut spaces: u64 = 0;
    for &b in key {
        if b.is_ascii_digit() {
            number = number
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(b - b'0')))
                .ok_or(HandshakeError::BadHixieKey)?;
        } else if b == b' ' {
            spaces += 1;
        }
    }
    if spaces == 0 || number % spaces != 0 {
        return Err(HandshakeError::BadHixieKey);
    }
    u32::try_from(number / spaces).map_err(|_| HandshakeError::BadHixieKey)
}

/// What this server agrees to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcceptOptions {
    /// The connection is TLS: the location is `wss://` instead of `ws://`.
    pub secure: bool,
    /// Subprotocols we speak; the client's one is echoed only if it is among them.
    pub protocols: Vec<String>,
}

/// The outcome of [`accept`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The complete 101 response including the 16-byte challenge response after the head.
    pub response: Vec<u8>,
    /// The echoed subprotocol, if any.
    pub protocol: Option<String>,
}

/// Builds the 101 response for `req`.
pub fn accept(req: &Request, opts: &AcceptOptions) -> Accepted {
    let protocol = req
        .protocol
        .as_ref()
        .filter(|p| opts.protocols.contains(p))
        .cloned();
    let scheme = if opts.secure { "wss" } else { "ws" };
    let mut response = Vec::with_capacity(256);
    response.extend_from_slice(
        b"HTTP/1.1 101 WebSocket Protocol Handshake\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n",
    );
    push_header(&mut response, "Sec-WebSocket-Origin", &req.origin);
    push_header(
        &mut response,
        "Sec-WebSocket-Location",
        &format!("{scheme}://{}{}", req.host, req.path),
    );
    if let Some(p) = &protocol {
        push_header(&mut response, "Sec-WebSocket-Protocol", p);
    }
    response.extend_from_slice(b"\r\n");
    response.extend_from_slice(&req.challenge_response);
    Accepted { response, protocol }
}

/// The closing frame, sent by either side to close.
pub const CLOSE_FRAME: [u8; 2] = [0xFF, 0x00];

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text message; invalid UTF-8 is replaced with U+FFFD, as the draft says.
    Text(String),
    /// The peer started the closing handshake.
    Close,
    /// A frame of a type this draft defines no meaning for; skip it.
    Discarded,
}

/// A framing fault of the peer; the connection should be dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The frame is longer than the decoder's limit (or its length prefix is absurd).
    TooLarge,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::TooLarge => f.write_str("hixie-76 frame exceeds the size limit"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Splits a byte stream into frames. Stateless: the caller keeps the unconsumed bytes and
/// calls again with more appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoder {
    max_frame_size: usize,
}

/// A base-128 length longer than this many bytes is refused (10 bytes cover a u64).
const MAX_LENGTH_BYTES: usize = 10;

impl Decoder {
    /// A decoder refusing frames whose payload is longer than `max_frame_size` bytes.
    pub fn new(max_frame_size: usize) -> Self {
        Self { max_frame_size }
    }

    /// Decodes the frame at the start of `buf`: `Ok(None)` if it is not complete yet,
    /// else the frame and how many bytes it took.
    pub fn decode(&self, buf: &[u8]) -> Result<Option<(Frame, usize)>, DecodeError> {
        let Some(&frame_type) = buf.first() else {
            return Ok(None);
        };
        if frame_type & 0x80 == 0 {
            // Sentinel-terminated: look for 0xFF no further than the limit allows.
            let limit = buf.len().min(self.max_frame_size.saturating_add(2));
            return match buf[1..limit].iter().position(|&b| b == 0xFF) {
                Some(len) => {
                    let frame = if frame_type == 0x00 {
                        Frame::Text(String::from_utf8_lossy(&buf[1..1 + len]).into_owned())
                    } else {
                        Frame::Discarded
                    };
                    Ok(Some((frame, len + 2)))
                }
                None if buf.len() - 1 > self.max_frame_size => Err(DecodeError::TooLarge),
                None => Ok(None),
            };
        }
        // Length-prefixed: base-128 digits, high bit set on all but the last.
        let mut len: usize = 0;
        let mut i = 1;
        loop {
            if i > MAX_LENGTH_BYTES {
                return Err(DecodeError::TooLarge);
            }
            let Some(&b) = buf.get(i) else {
                return Ok(None);
            };
            i += 1;
            len = len
                .checked_mul(128)
                .map(|l| l + usize::from(b & 0x7F))
                .filter(|&l| l <= self.max_frame_size)
                .ok_or(DecodeError::TooLarge)?;
            if b & 0x80 == 0 {
                break;
            }
        }
        if frame_type == 0xFF && len == 0 {
            return Ok(Some((Frame::Close, i)));
        }
        if buf.len() - i < len {
            return Ok(None);
        }
        Ok(Some((Frame::Discarded, i + len)))
    }
}

/// Appends the text frame for `text` to `out`. UTF-8 never contains 0xFF, so no escaping
/// is needed.
pub fn encode_text(text: &str, out: &mut Vec<u8>) {
    out.reserve(text.len() + 2);
    out.push(0x00);
    out.extend_from_slice(text.as_bytes());
    out.push(0xFF);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The example handshake of draft-hixie-thewebsocketprotocol-76 §1.3.
    const DRAFT_REQUEST: &[u8] = b"GET /demo HTTP/1.1\r\nHost: example.com\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Key2: 12998 5 Y3 1  .P00\r\n\
        Sec-WebSocket-Protocol: sample\r\nUpgrade: WebSocket\r\n\
        Sec-WebSocket-Key1: 4 @1  46546xW%0l 1 5\r\nOrigin: http://example.com\r\n\r\n^n:ds[4U";
    const DRAFT_RESPONSE: &[u8] = b"HTTP/1.1 101 WebSocket Protocol Handshake\r\n\
        Upgrade: WebSocket\r\nConnection: Upgrade\r\nSec-WebSocket-Origin: http://example.com\r\n\
        Sec-WebSocket-Location: ws://example.com/demo\r\nSec-WebSocket-Protocol: sample\r\n\r\n\
        8jKS'y:G*Co,Wxa-";

    #[test]
    fn draft_example_handshake() {
        let mut bytes = DRAFT_REQUEST.to_vec();
        bytes.extend_from_slice(b"\x00hi\xFF");
        for end in 0..DRAFT_REQUEST.len() {
            assert_eq!(parse_request(&bytes[..end]), Ok(None), "prefix {end}");
        }
        let (req, n) = parse_request(&bytes).unwrap().unwrap();
        assert_eq!(n, DRAFT_REQUEST.len());
        assert_eq!(req.path, "/demo");
        assert_eq!(req.host, "example.com");
        assert_eq!(req.origin, "http://example.com");
        assert_eq!(req.protocol.as_deref(), Some("sample"));
        assert_eq!(&req.challenge_response, b"8jKS'y:G*Co,Wxa-");
        let opts = AcceptOptions {
            secure: false,
            protocols: vec!["sample".into()],
        };
        let accepted = accept(&req, &opts);
        assert_eq!(accepted.response, DRAFT_RESPONSE);
        assert_eq!(accepted.protocol.as_deref(), Some("sample"));
        // Without the protocol on our side, and over TLS.
        let accepted = accept(
            &req,
            &AcceptOptions {
                secure: true,
                protocols: vec![],
            },
        );
        let text = String::from_utf8_lossy(&accepted.response);
        assert!(text.contains("Sec-WebSocket-Location: wss://example.com/demo\r\n"));
        assert!(!text.contains("Sec-WebSocket-Protocol"));
        assert_eq!(accepted.protocol, None);
    }

    #[test]
    fn challenge_vectors() {
        assert_eq!(
            &challenge_response(b"4 @1  46546xW%0l 1 5", b"12998 5 Y3 1  .P00", b"^n:ds[4U")
                .unwrap(),
            b"8jKS'y:G*Co,Wxa-"
        );
        // The draft's second example (§5.2).
        assert_eq!(
            &challenge_response(
                b"18x 6]8vM;54 *(5:  {   U1]8  z [  8",
                b"1_ tx7X d  <  nw  334J702) 7]o}` 0",
                b"Tm[K T2u"
            )
            .unwrap(),
            b"fQJ,fN/4F4!~K~MH"
        );
        // Spaces count: with the double spaces collapsed, as copies of the example often
        // show it, key1 is no longer an exact multiple (4146546015 / 4)...
        assert_eq!(
            challenge_response(b"4 @1 46546xW%0l 1 5", b"12998 5 Y3 1 .P00", b"^n:ds[4U"),
            Err(HandshakeError::BadHixieKey)
        );
        // ...or, with one more space lost, gives other numbers and another answer.
        assert_ne!(
            &challenge_response(b"4@1 46546xW%0l 1 5", b"12998 5 Y3 1 .P00", b"^n:ds[4U").unwrap(),
            b"8jKS'y:G*Co,Wxa-"
        );
    }

    #[test]
    fn bad_keys() {
        let k3 = b"12345678";
        for (k1, k2) in [
            (&b"12345"[..], &b"1 2"[..]),           // no spaces
            (b"1 2", b"1 2 3"),                     // 123 % 2 != 0
            (b"", b"1 2"),                          // empty
            (b"99999999999 9", b"1 2"),             // quotient over u32::MAX
            (b"99999999999999999999999 9", b"1 2"), // digits overflow u64
        ] {
            assert_eq!(
                challenge_response(k1, k2, k3),
                Err(HandshakeError::BadHixieKey),
                "{k1:?} {k2:?}"
            );
        }
        assert!(challenge_response(b"1 2", b"1 2", k3).is_ok());
    }

    #[test]
    fn request_rejections() {
        let req = std::str::from_utf8(DRAFT_REQUEST).unwrap();
        let cases = [
            (req.replacen("GET", "POST", 1), HandshakeError::MethodNotGet),
            (
                req.replacen("Upgrade: WebSocket", "Upgrade: h2c", 1),
                HandshakeError::MissingUpgrade,
            ),
            (
                req.replacen("Connection: Upgrade", "Connection: close", 1),
                HandshakeError::MissingConnectionUpgrade,
            ),
            (
                req.replacen("Host: example.com\r\n", "", 1),
                HandshakeError::MissingHost,
            ),
            (
                req.replacen("Origin: http://example.com\r\n", "", 1),
                HandshakeError::MalformedHttp("hixie-76 request without a valid Origin"),
            ),
            (
                req.replacen("Sec-WebSocket-Key2", "X-Key2", 1),
                HandshakeError::BadHixieKey,
            ),
            (
                req.replacen("12998 5 Y3 1  .P00", "12998", 1),
                HandshakeError::BadHixieKey,
            ),
            (
                req.replacen("Origin:", "Sec-WebSocket-Key2: 1 2\r\nOrigin:", 1),
                HandshakeError::DuplicateHeader("Sec-WebSocket-Key2"),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_request(text.as_bytes()), Err(expected), "{text:?}");
        }
    }

    #[test]
    fn dispatches_both_protocols() {
        let rfc = b"GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
            Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        let (any, n) = parse_any_request(rfc).unwrap().unwrap();
        assert_eq!(n, rfc.len());
        assert!(matches!(any, AnyRequest::Rfc6455(ref r) if r.path == "/chat"));
        assert_eq!(parse_request(rfc), Err(HandshakeError::BadHixieKey));
        let (any, n) = parse_any_request(DRAFT_REQUEST).unwrap().unwrap();
        assert_eq!(n, DRAFT_REQUEST.len());
        assert!(matches!(any, AnyRequest::Hixie76(ref r) if r.path == "/demo"));
        // The head alone is not enough for hixie-76: key3 must follow.
        assert_eq!(
            parse_any_request(&DRAFT_REQUEST[..DRAFT_REQUEST.len() - 1]),
            Ok(None)
        );
        // A plain GET is refused as an RFC 6455 request would be.
        assert_eq!(
            parse_any_request(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"),
            Err(HandshakeError::MissingUpgrade)
        );
    }

    #[test]
    fn frames_round_trip() {
        let d = Decoder::new(64);
        let mut wire = Vec::new();
        encode_text("héllo", &mut wire);
        encode_text("", &mut wire);
        wire.extend_from_slice(&CLOSE_FRAME);
        assert_eq!(wire[0], 0x00);
        let (f1, n1) = d.decode(&wire).unwrap().unwrap();
        assert_eq!(f1, Frame::Text("héllo".into()));
        let (f2, n2) = d.decode(&wire[n1..]).unwrap().unwrap();
        assert_eq!((f2, n2), (Frame::Text(String::new()), 2));
        let (f3, n3) = d.decode(&wire[n1 + n2..]).unwrap().unwrap();
        assert_eq!((f3, n3), (Frame::Close, 2));
        assert_eq!(n1 + n2 + n3, wire.len());
        // Every strict prefix of a frame needs more bytes.
        for end in 0..n1 {
            assert_eq!(d.decode(&wire[..end]), Ok(None));
        }
        assert_eq!(d.decode(&[0xFF]), Ok(None));
    }

    /// Input bytes and the expected decode.
    type FrameCase = (&'static [u8], Result<Option<(Frame, usize)>, DecodeError>);

    #[test]
    fn frame_table() {
        let d = Decoder::new(8);
        #[rustfmt::skip]
        let cases: Vec<FrameCase> = vec![
            (b"", Ok(None)),
            (b"\x00abc\xFFrest", Ok(Some((Frame::Text("abc".into()), 5)))),
            (b"\x00a\x80b\xFF", Ok(Some((Frame::Text("a\u{FFFD}b".into()), 5)))),
            (b"\x00abc", Ok(None)),
            // Exactly the limit, then one over.
            (b"\x0012345678\xFF", Ok(Some((Frame::Text("12345678".into()), 10)))),
            (b"\x0012345678", Ok(None)),
            (b"\x00123456789", Err(DecodeError::TooLarge)),
            (b"\x00123456789\xFF", Err(DecodeError::TooLarge)),
            // Other sentinel types are skipped.
            (b"\x05abc\xFF", Ok(Some((Frame::Discarded, 5)))),
            // Length-prefixed: skipped by length; 0xFF 0x00 closes.
            (b"\x80\x03abc", Ok(Some((Frame::Discarded, 5)))),
            (b"\x80\x03ab", Ok(None)),
            (b"\x80", Ok(None)),
            (b"\x80\x81", Ok(None)),
            (b"\x80\x81\x00", Err(DecodeError::TooLarge)),
            (b"\xFF\x00", Ok(Some((Frame::Close, 2)))),
            (b"\xFF\x80\x00", Ok(Some((Frame::Close, 3)))),
            (b"\xFF\x01x", Ok(Some((Frame::Discarded, 3)))),
            (b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80", Err(DecodeError::TooLarge)),
            (b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80", Ok(None)),
        ];
        for (input, expected) in cases {
            assert_eq!(d.decode(input), expected, "{input:?}");
        }
    }

    /// The digest the challenge is answered with, in hex (checked below against RFC 1321's
    /// test suite and the lengths around the padding's one/two block boundary).
    fn md5_hex(data: &[u8]) -> String {
        let d: [u8; 16] = Md5::digest(data).into();
        d.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn md5_rfc1321_test_suite() {
        let cases = [
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("a", "0cc175b9c0f1b6a831c399e269772661"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            (
                "abcdefghijklmnopqrstuvwxyz",
                "c3fcd3d76192e4007dfb496cca67e13b",
            ),
            (
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
                "d174ab98d277d9f5a5611c2c9f419d9f",
            ),
            (
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(md5_hex(input.as_bytes()), expected, "{input:?}");
        }
    }

    #[test]
    fn md5_padding_boundaries() {
        // 55, 56 and 64 bytes straddle the one/two padding block boundary.
        assert_eq!(md5_hex(&[b'a'; 55]), "ef1772b6dff9a122358552954ad0df65");
        assert_eq!(md5_hex(&[b'a'; 56]), "3b0c8ac703f828b04c6c197006d17218");
        assert_eq!(md5_hex(&[b'a'; 64]), "014842d480b571495a4a0363793f7367");
    }
}
