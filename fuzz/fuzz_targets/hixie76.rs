//! The legacy hixie-76 server side on arbitrary bytes (feature `hixie76`): the opening
//! request (`parse_any_request`, then `accept`) and the frame decoder. Never panics; a
//! response never carries a line break the peer put in a header; frames round-trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_ws::hixie76::{
    accept, encode_text, parse_any_request, AcceptOptions, AnyRequest, Decoder, Frame,
};

fuzz_target!(|data: &[u8]| {
    let Some((&limit, stream)) = data.split_first() else {
        return;
    };
    handshake(stream);
    frames(Decoder::new(usize::from(limit)), stream);
});

fn handshake(data: &[u8]) {
    match parse_any_request(data) {
        Ok(None) => {}
        Ok(Some((AnyRequest::Rfc6455(_), used))) => assert!(used <= data.len()),
        Ok(Some((AnyRequest::Hixie76(req), used))) => {
            assert!(used <= data.len());
            let opts = AcceptOptions {
                secure: false,
                protocols: vec!["chat".into()],
            };
            let accepted = accept(&req, &opts);
            let r = &accepted.response;
            assert!(r.starts_with(b"HTTP/1.1 101 "));
            assert!(r.ends_with(&req.challenge_response));
            // Exactly one blank line, at the end of the head: nothing from the peer
            // splits or ends the head early.
            let head = &r[..r.len() - 16];
            assert!(head.ends_with(b"\r\n\r\n"));
            let blank = head.windows(4).filter(|w| w == b"\r\n\r\n").count();
            assert_eq!(blank, 1);
            for (i, &b) in head.iter().enumerate() {
                match b {
                    b'\r' => assert_eq!(head.get(i + 1), Some(&b'\n'), "a bare CR"),
                    b'\n' => assert_eq!(head[i - 1], b'\r', "a bare LF"),
                    _ => {}
                }
            }
            if let Some(p) = &accepted.protocol {
                assert!(opts.protocols.contains(p));
            }
        }
        Err(e) => {
            let status = e.status();
            assert!(
                (400..500).contains(&status),
                "peer fault mapped to {status}"
            );
        }
    }
}

fn frames(dec: Decoder, mut stream: &[u8]) {
    // Bounded: every step consumes at least one byte.
    while let Ok(Some((frame, used))) = dec.decode(stream) {
        assert!((1..=stream.len()).contains(&used));
        // The frame is complete at `used`: no strict prefix is.
        for cut in 0..used {
            assert_eq!(
                dec.decode(&stream[..cut]),
                Ok(None),
                "prefix {cut} of {used}"
            );
        }
        assert_eq!(dec.decode(&stream[..used]), Ok(Some((frame.clone(), used))));
        if let Frame::Text(t) = &frame {
            let mut out = Vec::new();
            encode_text(t, &mut out);
            let back = Decoder::new(t.len()).decode(&out);
            assert_eq!(back, Ok(Some((frame.clone(), t.len() + 2))));
        }
        stream = &stream[used..];
    }
}
