//! The client's side of the opening handshake: the server's response on arbitrary bytes
//! (after a fixed request offering two subprotocols and permessage-deflate). Never panics;
//! an accepted response only agrees to what was offered.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_ws::handshake::client::{build_request_with_key, ClientRequest};
use switchboard_ws::DeflateConfig;

fuzz_target!(|data: &[u8]| {
    let req = ClientRequest {
        protocols: vec!["chat".into(), "superchat".into()],
        deflate: Some(DeflateConfig::default()),
        ..ClientRequest::new("example.com", "/ws")
    };
    // The nonce of RFC 6455 §1.3's example: key dGhlIHNhbXBsZSBub25jZQ==.
    let (_, hs) = build_request_with_key(&req, *b"the sample nonce").expect("valid request");
    match hs.parse_response(data) {
        Ok(Some((resp, used))) => {
            assert!(used <= data.len());
            if let Some(p) = &resp.protocol {
                assert!(req.protocols.contains(p));
            }
            if let Some(d) = resp.deflate {
                assert!((8..=15).contains(&d.client_max_window_bits));
                assert!((8..=15).contains(&d.server_max_window_bits));
            }
        }
        Ok(None) => {}
        Err(e) => {
            // Arbitrary bytes are a peer fault, never "local misuse".
            assert!(e.is_peer_fault(), "{e:?}");
        }
    }
});
