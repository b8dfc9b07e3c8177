//! A legacy hixie-76 session through the public API, in memory: handshake, text frames
//! both ways, closing handshake.
#![cfg(feature = "hixie76")]
#![allow(clippy::unwrap_used)]

use switchboard_ws::handshake::{reject_response, HandshakeError};
use switchboard_ws::hixie76::{
    accept, encode_text, parse_any_request, AcceptOptions, AnyRequest, Decoder, Frame, CLOSE_FRAME,
};

#[test]
fn echo_session() {
    // Head, key3 and two frames arrive in one read.
    let mut input = b"GET /echo?x=1 HTTP/1.1\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n\
        Host: 127.0.0.1:8080\r\nOrigin: http://127.0.0.1:8080\r\n\
        Sec-WebSocket-Key1: 18x 6]8vM;54 *(5:  {   U1]8  z [  8\r\n\
        Sec-WebSocket-Key2: 1_ tx7X d  <  nw  334J702) 7]o}` 0\r\n\r\nTm[K T2u"
        .to_vec();
    let head_and_key3 = input.len();
    encode_text("ping ♥", &mut input);
    input.extend_from_slice(&CLOSE_FRAME);

    let (any, consumed) = parse_any_request(&input).unwrap().unwrap();
    assert_eq!(consumed, head_and_key3);
    let AnyRequest::Hixie76(req) = any else {
        panic!("expected a hixie-76 request");
    };
    let accepted = accept(&req, &AcceptOptions::default());
    let response = String::from_utf8(accepted.response).unwrap();
    assert!(response.starts_with("HTTP/1.1 101 WebSocket Protocol Handshake\r\n"));
    assert!(response.contains("\r\nSec-WebSocket-Location: ws://127.0.0.1:8080/echo?x=1\r\n"));
    assert!(response.contains("\r\nSec-WebSocket-Origin: http://127.0.0.1:8080\r\n"));
    assert!(response.ends_with("\r\n\r\nfQJ,fN/4F4!~K~MH"));

    let decoder = Decoder::new(1024);
    let mut rest = &input[consumed..];
    let mut output = Vec::new();
    let mut closed = false;
    while let Some((frame, n)) = decoder.decode(rest).unwrap() {
        rest = &rest[n..];
        match frame {
            Frame::Text(text) => encode_text(&text, &mut output),
            Frame::Close => {
                output.extend_from_slice(&CLOSE_FRAME);
                closed = true;
            }
            Frame::Discarded => {}
        }
    }
    assert!(rest.is_empty());
    assert!(closed);
    let mut expected = vec![0x00];
    expected.extend_from_slice("ping ♥".as_bytes());
    expected.extend_from_slice(&[0xFF, 0xFF, 0x00]);
    assert_eq!(output, expected);
}

#[test]
fn bad_keys_are_refused_with_400() {
    let input = b"GET / HTTP/1.1\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\nHost: h\r\n\
        Origin: http://h\r\nSec-WebSocket-Key1: 123\r\nSec-WebSocket-Key2: 1 2\r\n\r\n12345678";
    let err = parse_any_request(input).unwrap_err();
    assert_eq!(err, HandshakeError::BadHixieKey);
    assert!(reject_response(&err).starts_with(b"HTTP/1.1 400 Bad Request\r\n"));
}
