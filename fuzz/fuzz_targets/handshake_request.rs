//! The server's opening handshake on arbitrary bytes: `parse_request`, then `accept` (with
//! a subprotocol list and permessage-deflate enabled) or `reject_response`. Never panics;
//! what it reports is consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_ws::handshake::reject_response;
use switchboard_ws::handshake::server::{accept, parse_request, AcceptOptions};
use switchboard_ws::{DeflateConfig, Role};

fuzz_target!(|data: &[u8]| {
    match parse_request(data) {
        Ok(None) => {}
        Ok(Some((req, used))) => {
            assert!(used <= data.len());
            assert_eq!(req.method, "GET");
            let opts = AcceptOptions {
                protocols: vec!["chat".into(), "superchat".into()],
                deflate: Some(DeflateConfig::default()),
                extra_headers: Vec::new(),
            };
            // The request was validated, so our answer must be a 101.
            let accepted = accept(&req, &opts).expect("accept a validated request");
            assert!(accepted.response.starts_with(b"HTTP/1.1 101 "));
            assert!(accepted.response.ends_with(b"\r\n\r\n"));
            if let Some(p) = &accepted.protocol {
                assert!(req.protocols.contains(p) && opts.protocols.contains(p));
            }
            if let Some(d) = accepted.deflate {
                assert!((8..=15).contains(&d.client_max_window_bits));
                // A client may ask for an 8-bit server window; it is accepted, and the
                // server then sends uncompressed (zlib cannot compress with 8 bits).
                assert!((8..=15).contains(&d.server_max_window_bits));
                assert_eq!(d.compresses(Role::Server), d.server_max_window_bits >= 9);
                // Our policy insists on server_no_context_takeover.
                assert!(d.server_no_context_takeover);
            }
        }
        Err(e) => {
            let status = e.status();
            assert!(
                (400..500).contains(&status),
                "peer fault mapped to {status}"
            );
            let resp = reject_response(&e);
            let want = format!("HTTP/1.1 {status} ");
            assert!(resp.starts_with(want.as_bytes()));
        }
    }
});
