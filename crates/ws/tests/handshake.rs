//! Client and server handshakes against each other through the public API, in memory.
#![allow(clippy::unwrap_used)]

use switchboard_ws::handshake::{
    accept, build_request, parse_request, reject_response, AcceptOptions, ClientRequest,
    HandshakeError,
};
use switchboard_ws::{DeflateConfig, DeflateParams};

/// Runs a full handshake, feeding each side its peer's bytes one byte at a time first
/// (every prefix must be `Ok(None)`), with trailing frame bytes that must be left alone.
fn round_trip(
    client: &ClientRequest,
    server: &AcceptOptions,
) -> (Option<String>, Option<DeflateParams>, Option<DeflateParams>) {
    let (mut request, handshake) = build_request(client).unwrap();
    let request_len = request.len();
    request.extend_from_slice(b"\x81\x80");
    for end in 0..request_len {
        assert_eq!(parse_request(&request[..end]), Ok(None));
    }
    let (req, consumed) = parse_request(&request).unwrap().unwrap();
    assert_eq!(consumed, request_len);
    assert_eq!(req.host, client.host);
    assert_eq!(req.path, client.path);
    assert_eq!(req.protocols, client.protocols);

    let accepted = accept(&req, server).unwrap();
    let mut response = accepted.response.clone();
    response.extend_from_slice(b"\x81\x00");
    for end in 0..accepted.response.len() {
        assert_eq!(handshake.parse_response(&response[..end]), Ok(None));
    }
    let (resp, consumed) = handshake.parse_response(&response).unwrap().unwrap();
    assert_eq!(consumed, accepted.response.len());
    assert_eq!(&response[consumed..], b"\x81\x00");
    assert_eq!(resp.protocol, accepted.protocol);
    (resp.protocol, accepted.deflate, resp.deflate)
}

#[test]
fn plain_round_trip() {
    let client = ClientRequest::new("127.0.0.1:9001", "/ws?room=lobby");
    let (protocol, server_deflate, client_deflate) = round_trip(&client, &AcceptOptions::default());
    assert_eq!(protocol, None);
    assert_eq!(server_deflate, None);
    assert_eq!(client_deflate, None);
}

#[test]
fn subprotocol_follows_server_preference() {
    let client = ClientRequest {
        protocols: vec!["v1.json".into(), "v2.msgpack".into()],
        ..ClientRequest::new("h", "/")
    };
    let server = AcceptOptions {
        protocols: vec!["v2.msgpack".into(), "v1.json".into()],
        ..AcceptOptions::default()
    };
    let (protocol, _, _) = round_trip(&client, &server);
    assert_eq!(protocol.as_deref(), Some("v2.msgpack"));
}

#[test]
fn deflate_params_agree_across_configs() {
    let configs = [
        DeflateConfig::default(),
        DeflateConfig {
            server_no_context_takeover: false,
            ..DeflateConfig::default()
        },
        DeflateConfig {
            server_no_context_takeover: false,
            client_no_context_takeover: true,
            server_max_window_bits: 10,
            client_max_window_bits: 9,
            compression_threshold: 0,
        },
        DeflateConfig {
            server_max_window_bits: 12,
            client_max_window_bits: 15,
            ..DeflateConfig::default()
        },
    ];
    for client_cfg in &configs {
        for server_cfg in &configs {
            let client = ClientRequest {
                deflate: Some(client_cfg.clone()),
                ..ClientRequest::new("h", "/")
            };
            let server = AcceptOptions {
                deflate: Some(server_cfg.clone()),
                ..AcceptOptions::default()
            };
            let (_, s, c) = round_trip(&client, &server);
            let s = s.expect("server accepts our own offer");
            assert_eq!(Some(s), c, "client {client_cfg:?} server {server_cfg:?}");
            // Each side's wishes are honoured.
            assert!(s.server_no_context_takeover >= client_cfg.server_no_context_takeover);
            assert!(s.server_no_context_takeover >= server_cfg.server_no_context_takeover);
            assert!(s.server_max_window_bits <= client_cfg.server_max_window_bits);
            assert!(s.server_max_window_bits <= server_cfg.server_max_window_bits);
            assert!(s.client_max_window_bits <= client_cfg.client_max_window_bits);
            assert!(s.client_max_window_bits <= server_cfg.client_max_window_bits);
        }
    }
}

#[test]
fn deflate_declined_when_server_has_none() {
    let client = ClientRequest {
        deflate: Some(DeflateConfig::default()),
        ..ClientRequest::new("h", "/")
    };
    let (_, s, c) = round_trip(&client, &AcceptOptions::default());
    assert_eq!((s, c), (None, None));
}

#[test]
fn rejected_request_gets_a_readable_response() {
    let raw = b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n";
    let err = parse_request(raw).unwrap_err();
    assert_eq!(err, HandshakeError::BadVersion);
    let response = String::from_utf8(reject_response(&err)).unwrap();
    assert!(response.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
    assert!(response.contains("\r\nSec-WebSocket-Version: 13\r\n"));
    assert!(response.contains("\r\nConnection: Upgrade, close\r\n"));
    assert!(response
        .ends_with("\r\n\r\nunsupported WebSocket version: send Sec-WebSocket-Version: 13\n"));
}

#[test]
fn autobahn_style_multiple_offers() {
    // Autobahn 13.7.x offers several variants; we take the first one we can honour.
    // The first offer asks for an 8-bit server window: it is accepted, and the server then
    // sends uncompressed since zlib cannot compress with an 8-bit window.
    let raw = "GET / HTTP/1.1\r\nHost: 127.0.0.1:9001\r\nUpgrade: WebSocket\r\n\
               Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
               Sec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate; \
               client_no_context_takeover; client_max_window_bits; server_no_context_takeover; \
               server_max_window_bits=8, permessage-deflate; client_no_context_takeover; \
               client_max_window_bits; server_no_context_takeover, permessage-deflate; \
               client_no_context_takeover; client_max_window_bits\r\n\r\n";
    let (req, _) = parse_request(raw.as_bytes()).unwrap().unwrap();
    let server = AcceptOptions {
        deflate: Some(DeflateConfig::default()),
        ..AcceptOptions::default()
    };
    let accepted = accept(&req, &server).unwrap();
    assert_eq!(
        accepted.deflate,
        Some(DeflateParams {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: 8,
            client_max_window_bits: 15,
        })
    );
    let text = String::from_utf8(accepted.response).unwrap();
    assert!(text.contains(
        "\r\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; \
         client_no_context_takeover; server_max_window_bits=8\r\n"
    ));
}

mod hostile_input {
    use proptest::prelude::*;
    use switchboard_ws::handshake::{extensions, parse_request, ClientRequest};

    proptest! {
        /// Arbitrary bytes never panic the request parser, and a result is either "need
        /// more" or within the header limit.
        #[test]
        fn request_parser_total(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            if let Ok(Some((_, n))) = parse_request(&bytes) {
                prop_assert!(n <= bytes.len());
            }
        }

        /// Mutating one byte of a valid request never panics, whatever it breaks.
        #[test]
        fn mutated_request(pos in 0usize..200, byte in any::<u8>()) {
            let (mut bytes, _) = switchboard_ws::handshake::build_request_with_key(
                &ClientRequest::new("h", "/"), [7; 16]).unwrap();
            let i = pos % bytes.len();
            bytes[i] = byte;
            let _ = parse_request(&bytes);
        }

        /// The extension grammar and both negotiations never panic on arbitrary text.
        #[test]
        fn extension_parser_total(text in "[ -~\t]{0,200}") {
            if let Ok(list) = extensions::parse(&text) {
                let config = switchboard_ws::DeflateConfig::default();
                let _ = extensions::negotiate_server(&list, &config);
                let _ = extensions::negotiate_client(&list, Some(&config));
            }
        }
    }
}
