//! A server `Connection` fed arbitrary client bytes in arbitrary chunks, with
//! permessage-deflate negotiated (in several parameter sets) or not, small limits, timers
//! firing, the application echoing messages or closing, and output written out in pieces.
//!
//! Input layout (so that a seed file is two control bytes followed by real frames):
//! - byte 0, flags: bits 0-1 deflate parameters (0 = none), bit 2 small limits, bit 3 echo
//!   every message, bit 4 close after the first message, bits 5-7 how many bytes each
//!   transmit step writes (0 = everything);
//! - byte 1: chunking (0 = all input at once, n = chunks of pseudo-random length 1..=n);
//! - the rest: bytes from the client.
//!
//! Checked: no panic; every message is within `max_message_size` and text is UTF-8; the
//! receive buffer never exceeds the limit; control payloads and close reasons fit their
//! frames; nothing is read after a close or an error; the transmitted bytes are a valid
//! sequence of unmasked server frames with nothing after the close frame.
#![no_main]

use std::io::IoSlice;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use switchboard_ws::{
    CloseCode, Config, Connection, DeflateConfig, DeflateParams, Error, Event, FrameHeader, OpCode,
    Role,
};

fn deflate_params(variant: u8) -> Option<DeflateParams> {
    match variant & 3 {
        0 => None,
        1 => Some(DeflateParams {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        }),
        2 => Some(DeflateParams::default()),
        _ => Some(DeflateParams {
            server_no_context_takeover: true,
            client_no_context_takeover: false,
            server_max_window_bits: 10,
            client_max_window_bits: 9,
        }),
    }
}

/// Splits `data` into chunks whose lengths come from a small xorshift seeded by `seed`.
fn chunks(data: &[u8], seed: u8) -> Vec<&[u8]> {
    if seed == 0 || data.is_empty() {
        return vec![data];
    }
    let mut x = u32::from(seed) | 0x100;
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let len = (x % u32::from(seed)) as usize + 1;
        let (a, b) = rest.split_at(len.min(rest.len()));
        out.push(a);
        rest = b;
    }
    out
}

/// Checks that `tx` is a sequence of server frames: unmasked, RSV1 only on the first frame
/// of a data message and only with deflate, nothing after a close frame. A trailing
/// incomplete frame is allowed (its bytes were not all written yet).
fn check_transmitted(mut tx: &[u8], deflate: bool) {
    let mut closed = false;
    let mut in_message = false;
    while !tx.is_empty() {
        assert!(!closed, "bytes transmitted after the close frame");
        let (h, n) = match FrameHeader::parse(tx) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return,
            Err(e) => panic!("we transmitted an invalid header: {e:?}"),
        };
        assert!(h.mask.is_none(), "server frames are never masked");
        assert!(!h.rsv2 && !h.rsv3);
        if h.rsv1 {
            assert!(deflate, "RSV1 without deflate");
            assert!(matches!(h.opcode, OpCode::Text | OpCode::Binary));
        }
        match h.opcode {
            OpCode::Text | OpCode::Binary => {
                assert!(!in_message, "new message inside a fragmented one");
                in_message = !h.fin;
            }
            OpCode::Continue => {
                assert!(in_message, "continuation outside a message");
                in_message = !h.fin;
            }
            OpCode::Close => closed = true,
            OpCode::Ping | OpCode::Pong => {}
        }
        let Some(end) = usize::try_from(h.payload_len)
            .ok()
            .and_then(|len| n.checked_add(len))
            .filter(|&end| end <= tx.len())
        else {
            return;
        };
        tx = &tx[end..];
    }
}

fuzz_target!(|data: &[u8]| {
    let [flags, chunking, wire @ ..] = data else {
        return;
    };
    let params = deflate_params(*flags);
    let (max_frame, max_message) = if flags & 4 != 0 {
        (4 << 10, 16 << 10)
    } else {
        (64 << 10, 256 << 10)
    };
    let echo = flags & 8 != 0;
    let close_after_first = flags & 16 != 0;
    let write_step = match flags >> 5 {
        0 => usize::MAX,
        k => 1 << (2 * k),
    };
    let config = Config {
        max_frame_size: max_frame,
        max_message_size: max_message,
        ping_interval: Some(Duration::from_secs(2)),
        idle_timeout: Some(Duration::from_secs(5)),
        close_timeout: Duration::from_secs(3),
        write_timeout: None,
        deflate: params.map(|_| DeflateConfig {
            compression_threshold: 16,
            ..DeflateConfig::default()
        }),
    };
    let start = Instant::now();
    let mut now = start;
    let mut conn = Connection::new(Role::Server, config, params, now);
    let mut transmitted = Vec::new();
    let mut messages = 0usize;

    for chunk in chunks(wire, *chunking) {
        now += Duration::from_millis(700);
        let was_readable = conn.is_readable();
        conn.handle_input(chunk, now);
        let mut ended = false;
        while let Some(ev) = conn.poll_event() {
            assert!(
                was_readable && !ended,
                "event after reading stopped: {ev:?}"
            );
            match ev {
                Event::Text(b) => {
                    assert!(b.len() <= max_message);
                    assert!(std::str::from_utf8(&b).is_ok(), "text event is not UTF-8");
                    messages += 1;
                    if echo {
                        let r = conn.send_text_bytes(b);
                        assert!(matches!(r, Ok(()) | Err(Error::Closed)), "{r:?}");
                    }
                }
                Event::Binary(b) => {
                    assert!(b.len() <= max_message);
                    messages += 1;
                    if echo {
                        let r = conn.send_binary_bytes(b);
                        assert!(matches!(r, Ok(()) | Err(Error::Closed)), "{r:?}");
                    }
                }
                Event::Ping(p) | Event::Pong(p) => assert!(p.len() <= 125),
                Event::Close { reason, .. } => {
                    assert!(reason.len() <= 123);
                    assert!(!conn.is_readable());
                    ended = true;
                }
                Event::Error(_) => {
                    assert!(!conn.is_readable());
                    ended = true;
                }
            }
        }
        assert!(
            conn.receive_capacity() <= max_message + 1,
            "receive buffer {} over the limit {max_message}",
            conn.receive_capacity()
        );
        if close_after_first && messages > 0 {
            let _ = conn.close(CloseCode::NORMAL, "bye");
        }
        if conn.poll_timeout().is_some_and(|t| t <= now) {
            conn.handle_timeout(now);
        }

        // Write out up to `write_step` bytes, as a socket accepting partial writes would.
        let mut slices = [IoSlice::new(&[]); 64];
        let n = conn.transmit_slices(&mut slices);
        let queued: usize = slices[..n].iter().map(|s| s.len()).sum();
        if n < slices.len() {
            assert_eq!(queued, conn.pending_bytes(), "slices cover the queue");
        }
        let mut budget = write_step.min(queued);
        let written = budget;
        for s in &slices[..n] {
            let take = budget.min(s.len());
            transmitted.extend_from_slice(&s[..take]);
            budget -= take;
            if budget == 0 {
                break;
            }
        }
        conn.advance_transmit(written);
        if conn.should_close_tcp() {
            break;
        }
    }
    check_transmitted(&transmitted, params.is_some());
});
