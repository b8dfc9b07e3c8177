//! A client and a server `Connection` talking in memory: messages, fragmentation, control
//! frames, the close handshake, protocol errors and their close codes, limits, timers.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use switchboard_ws::connection::State;
use switchboard_ws::frame::OpCode;
use switchboard_ws::{
    CloseCode, Config, Connection, Error, Event, PreparedMessage, ProtocolError, Role,
};

fn text(s: &str) -> Event {
    Event::Text(Bytes::copy_from_slice(s.as_bytes()))
}

fn server() -> (Connection, std::time::Instant) {
    let now = std::time::Instant::now();
    (
        Connection::new(Role::Server, Config::default(), None, now),
        now,
    )
}

#[test]
fn messages_both_directions() {
    let mut p = Pair::new(None);
    p.client.send_text("hello").unwrap();
    p.client.send_binary(&[1, 2, 3]).unwrap();
    p.client.send_text("").unwrap();
    let big = vec![7u8; 70_000];
    p.client.send_binary(&big).unwrap();
    assert_eq!(
        p.c2s(),
        vec![
            text("hello"),
            Event::Binary(Bytes::from_static(&[1, 2, 3])),
            text(""),
            Event::Binary(Bytes::from(big.clone()))
        ]
    );
    assert!(matches!(
        p.server.send_text_bytes(Bytes::from_static(b"\xff")),
        Err(Error::InvalidUtf8)
    ));
    p.server
        .send_text_bytes(Bytes::from("shared ".repeat(300)))
        .unwrap();
    assert_eq!(p.s2c(), vec![text(&"shared ".repeat(300))]);
    p.server.send_text("héllo €").unwrap();
    p.server
        .send_binary_bytes(Bytes::from(big.clone()))
        .unwrap();
    assert_eq!(
        p.s2c(),
        vec![text("héllo €"), Event::Binary(Bytes::from(big))]
    );
}

#[test]
fn client_frames_are_masked_server_frames_are_not() {
    let mut p = Pair::new(None);
    p.client.send_text("x").unwrap();
    let from_client = parse_frames(&drain(&mut p.client));
    assert!(from_client[0].0.mask.is_some());
    p.server.send_text("x").unwrap();
    let from_server = parse_frames(&drain(&mut p.server));
    assert!(from_server[0].0.mask.is_none());
    assert_eq!(from_server[0].1, b"x");
}

#[test]
fn fragmented_message_with_interleaved_pings() {
    let (mut s, now) = server();
    let mut wire = client_frame(OpCode::Text, false, "frag".as_bytes());
    wire.extend(client_frame(OpCode::Ping, true, b"p1"));
    wire.extend(client_frame(OpCode::Continue, false, "mé".as_bytes()));
    wire.extend(client_frame(OpCode::Pong, true, b"unsolicited"));
    wire.extend(client_frame(OpCode::Ping, true, b""));
    wire.extend(client_frame(OpCode::Continue, true, "nt".as_bytes()));
    // Byte by byte: every split must give the same events.
    for b in &wire {
        s.handle_input(std::slice::from_ref(b), now);
    }
    assert_eq!(
        events(&mut s),
        vec![
            Event::Ping(Bytes::from_static(b"p1")),
            Event::Pong(Bytes::from_static(b"unsolicited")),
            Event::Ping(Bytes::new()),
            text("fragmént"),
        ]
    );
    let out = parse_frames(&drain(&mut s));
    let pongs: Vec<_> = out.iter().map(|(h, p)| (h.opcode, p.clone())).collect();
    assert_eq!(
        pongs,
        vec![(OpCode::Pong, b"p1".to_vec()), (OpCode::Pong, vec![])]
    );
    assert_eq!(s.state(), State::Open);
}

#[test]
fn pong_jumps_ahead_of_unstarted_data_but_not_into_a_frame() {
    let (mut s, now) = server();
    let a = Bytes::from(vec![b'a'; 5000]);
    s.send_binary_bytes(a).unwrap();
    // Write the first 10 bytes of frame A only.
    let first: Vec<u8> = {
        let mut sl = [std::io::IoSlice::new(&[]); 4];
        let n = s.transmit_slices(&mut sl);
        sl[..n]
            .iter()
            .flat_map(|s| s.iter().copied())
            .take(10)
            .collect()
    };
    s.advance_transmit(10);
    s.send_text("B").unwrap();
    s.handle_input(&client_frame(OpCode::Ping, true, b"now"), now);
    let mut wire = first;
    wire.extend(drain(&mut s));
    let order: Vec<_> = parse_frames(&wire)
        .into_iter()
        .map(|(h, _)| h.opcode)
        .collect();
    assert_eq!(order, vec![OpCode::Binary, OpCode::Pong, OpCode::Text]);
}

#[test]
fn close_initiated_by_client() {
    let mut p = Pair::new(None);
    p.client.send_text("last").unwrap();
    p.client.close(CloseCode::NORMAL, "bye").unwrap();
    assert_eq!(
        p.client.state(),
        State::Closing {
            sent: true,
            received: false
        }
    );
    assert!(matches!(p.client.send_text("late"), Err(Error::Closed)));
    assert_eq!(
        p.c2s(),
        vec![
            text("last"),
            Event::Close {
                code: Some(CloseCode::NORMAL),
                reason: "bye".into()
            }
        ]
    );
    assert_eq!(p.server.state(), State::Closed);
    assert!(!p.server.is_readable());
    assert!(matches!(p.server.send_text("no"), Err(Error::Closed)));
    // The echo is still queued: TCP stays open until it is written.
    assert!(!p.server.should_close_tcp());
    assert_eq!(
        p.s2c(),
        vec![Event::Close {
            code: Some(CloseCode::NORMAL),
            reason: String::new()
        }]
    );
    assert!(p.server.should_close_tcp());
    assert_eq!(p.client.state(), State::Closed);
    // The client waits for the server's TCP close, bounded by close_timeout.
    assert!(!p.client.should_close_tcp());
    let deadline = p.client.poll_timeout().unwrap();
    p.client.handle_timeout(deadline);
    assert!(p.client.should_close_tcp());
}

#[test]
fn close_initiated_by_server_and_data_after_close_ignored() {
    let mut p = Pair::new(None);
    p.server.close(CloseCode::new(4000), "app").unwrap();
    p.client.send_text("in flight").unwrap();
    let client_events = p.s2c();
    assert_eq!(
        client_events,
        vec![Event::Close {
            code: Some(CloseCode::new(4000)),
            reason: "app".into()
        }]
    );
    // The client's message was queued before its echo; the server ignores it.
    assert_eq!(
        p.c2s(),
        vec![Event::Close {
            code: Some(CloseCode::new(4000)),
            reason: String::new()
        }]
    );
    assert!(p.server.should_close_tcp());
}

#[test]
fn close_without_code_is_echoed_as_1000() {
    let (mut s, now) = server();
    s.handle_input(&client_frame(OpCode::Close, true, b""), now);
    assert_eq!(
        events(&mut s),
        vec![Event::Close {
            code: None,
            reason: String::new()
        }]
    );
    assert_eq!(close_code(&drain(&mut s)), Some(1000));
}

#[test]
fn close_argument_errors() {
    let (mut s, _) = server();
    assert!(matches!(
        s.close(CloseCode::new(1005), ""),
        Err(Error::InvalidCloseCode(1005))
    ));
    assert!(matches!(
        s.close(CloseCode::NORMAL, &"x".repeat(124)),
        Err(Error::ControlPayloadTooLarge(_))
    ));
    assert!(matches!(
        s.send_ping(&[0; 126]),
        Err(Error::ControlPayloadTooLarge(126))
    ));
    s.close(CloseCode::NORMAL, "").unwrap();
    assert!(matches!(s.close(CloseCode::NORMAL, ""), Err(Error::Closed)));
}

/// Feed `wire` to a fresh server; the error event and the close code it sent.
fn server_fault(wire: &[u8]) -> (ProtocolError, u16) {
    let (mut s, now) = server();
    s.handle_input(wire, now);
    let ev = events(&mut s);
    let Some(Event::Error(e)) = ev.last().cloned() else {
        panic!("no error for {wire:02x?}: {ev:?}");
    };
    assert!(!s.is_readable());
    assert_eq!(s.state(), State::Closed);
    let code = close_code(&drain(&mut s)).unwrap();
    assert_eq!(code, e.close_code().as_u16());
    assert!(s.should_close_tcp());
    // Further input is ignored.
    s.handle_input(&client_frame(OpCode::Text, true, b"more"), now);
    assert!(events(&mut s).is_empty());
    (e, code)
}

#[test]
fn protocol_errors_map_to_close_codes() {
    let mut unmasked = vec![0x81, 0x02];
    unmasked.extend_from_slice(b"hi");
    let huge_len = [0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
    let mut frag = client_frame(OpCode::Text, false, b"a");
    frag.extend(client_frame(OpCode::Binary, true, b"b"));
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("unmasked", unmasked, 1002),
        ("reserved opcode 3", raw_frame(0x83, b""), 1002),
        ("reserved opcode 0xB", raw_frame(0x8B, b""), 1002),
        ("rsv1 without deflate", raw_frame(0xC1, b"x"), 1002),
        ("rsv2", raw_frame(0xA1, b"x"), 1002),
        ("rsv3", raw_frame(0x91, b"x"), 1002),
        (
            "continuation without start",
            client_frame(OpCode::Continue, true, b"x"),
            1002,
        ),
        ("new message while fragmented", frag, 1002),
        ("fragmented ping", raw_frame(0x09, b""), 1002),
        ("ping too large", raw_frame(0x89, &[0; 126]), 1002),
        ("close with 1 byte", raw_frame(0x88, &[3]), 1002),
        ("close code 1005", raw_frame(0x88, &[0x03, 0xED]), 1002),
        ("close code 999", raw_frame(0x88, &[0x03, 0xE7]), 1002),
        ("close code 2000", raw_frame(0x88, &[0x07, 0xD0]), 1002),
        (
            "close reason not utf8",
            raw_frame(0x88, &[0x03, 0xE8, 0xFF]),
            1007,
        ),
        ("text not utf8", raw_frame(0x81, &[b'a', 0xC0, 0x80]), 1007),
        ("64-bit length msb", huge_len.to_vec(), 1002),
    ];
    for (name, wire, want) in cases {
        let (e, code) = server_fault(&wire);
        assert_eq!(code, want, "{name}: {e}");
    }
}

#[test]
fn client_rejects_masked_frames() {
    let now = std::time::Instant::now();
    let mut c = Connection::new(Role::Client, Config::default(), None, now);
    c.handle_input(&client_frame(OpCode::Text, true, b"masked"), now);
    assert_eq!(
        events(&mut c),
        vec![Event::Error(ProtocolError::MaskedFrame)]
    );
    let out = drain(&mut c);
    assert_eq!(close_code(&out), Some(1002));
    assert!(
        parse_frames(&out)[0].0.mask.is_some(),
        "client close frames are masked"
    );
}

#[test]
fn utf8_fails_fast_inside_a_partial_frame() {
    let (mut s, now) = server();
    // A 1000-byte text frame; only its first bytes arrive, with an impossible byte.
    let mut payload = b"valid so far ".to_vec();
    payload.push(0xF5);
    payload.resize(1000, b'x');
    let wire = client_frame(OpCode::Text, true, &payload);
    s.handle_input(&wire[..8 + 14], now);
    assert_eq!(
        events(&mut s),
        vec![Event::Error(ProtocolError::InvalidUtf8)]
    );
    assert_eq!(close_code(&drain(&mut s)), Some(1007));

    // Same inside a fragmented message: the second fragment's first bytes are invalid.
    let (mut s, now) = server();
    let mut wire = client_frame(OpCode::Text, false, "κό".as_bytes());
    let second = client_frame(OpCode::Continue, true, b"\xce\xff and much more to come");
    wire.extend_from_slice(&second[..8]);
    s.handle_input(&wire, now);
    assert_eq!(
        events(&mut s),
        vec![Event::Error(ProtocolError::InvalidUtf8)]
    );

    // A code point split across fragments is fine; one left incomplete at the end is not.
    let (mut s, now) = server();
    let mut wire = client_frame(OpCode::Text, false, b"\xe2\x82");
    wire.extend(client_frame(OpCode::Continue, true, b"\xac"));
    wire.extend(client_frame(OpCode::Text, true, b"ab\xe2\x82"));
    s.handle_input(&wire, now);
    assert_eq!(
        events(&mut s),
        vec![text("€"), Event::Error(ProtocolError::InvalidUtf8)]
    );
}

#[test]
fn frame_larger_than_limit_rejected_from_its_header() {
    let (mut s, now) = server();
    // Just the header of a 1 GiB binary frame.
    let mut header = vec![0x82, 0xFF];
    header.extend_from_slice(&(1u64 << 30).to_be_bytes());
    header.extend_from_slice(&KEY);
    s.handle_input(&header, now);
    assert!(matches!(
        events(&mut s).as_slice(),
        [Event::Error(ProtocolError::FrameTooBig {
            len: 1073741824,
            ..
        })]
    ));
    s.release_idle_memory();
    assert_eq!(
        s.receive_capacity(),
        0,
        "nothing reserved for the 1 GiB frame"
    );
    assert_eq!(close_code(&drain(&mut s)), Some(1009));
}

#[test]
fn message_larger_than_limit_rejected_across_fragments() {
    let now = std::time::Instant::now();
    let config = Config {
        max_frame_size: 1000,
        max_message_size: 2500,
        ..Config::default()
    };
    let mut s = Connection::new(Role::Server, config, None, now);
    let mut wire = client_frame(OpCode::Binary, false, &[1; 1000]);
    wire.extend(client_frame(OpCode::Continue, false, &[2; 1000]));
    wire.extend(client_frame(OpCode::Continue, true, &[3; 1000]));
    s.handle_input(&wire, now);
    assert_eq!(
        events(&mut s),
        vec![Event::Error(ProtocolError::MessageTooBig { max: 2500 })]
    );
    assert_eq!(close_code(&drain(&mut s)), Some(1009));
    // And a single frame over max_frame_size.
    let (e, code) = {
        let mut s = Connection::new(
            Role::Server,
            Config {
                max_frame_size: 1000,
                ..Config::default()
            },
            None,
            now,
        );
        s.handle_input(&client_frame(OpCode::Text, true, &[b'a'; 1001]), now);
        let e = events(&mut s).pop().unwrap();
        (e, close_code(&drain(&mut s)))
    };
    assert!(matches!(
        e,
        Event::Error(ProtocolError::FrameTooBig {
            len: 1001,
            max: 1000
        })
    ));
    assert_eq!(code, Some(1009));
}

#[test]
fn no_receive_memory_held_between_messages() {
    let (mut s, now) = server();
    let wire = client_frame(OpCode::Binary, true, &[9; 4000]);
    s.handle_input(&wire[..5], now); // partial header
    assert_eq!(s.receive_capacity(), 0);
    s.handle_input(&wire[5..2000], now);
    assert!(s.receive_capacity() >= 1000);
    s.handle_input(&wire[2000..], now);
    assert_eq!(events(&mut s).len(), 1);
    // Events taken and the driver about to wait: nothing held.
    s.release_idle_memory();
    assert_eq!(s.receive_capacity(), 0);
}

#[test]
fn ping_interval_and_idle_timeout() {
    let now = std::time::Instant::now();
    let config = Config {
        ping_interval: Some(Duration::from_secs(10)),
        idle_timeout: Some(Duration::from_secs(25)),
        close_timeout: Duration::from_secs(5),
        ..Config::default()
    };
    let mut s = Connection::new(Role::Server, config, None, now);
    assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(10)));
    s.handle_timeout(now + Duration::from_secs(10));
    let out = parse_frames(&drain(&mut s));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0.opcode, OpCode::Ping);
    // Next ping 10 s after the last one; input pushes both timers back.
    assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(20)));
    s.handle_input(
        &client_frame(OpCode::Pong, true, b""),
        now + Duration::from_secs(12),
    );
    assert_eq!(events(&mut s), vec![Event::Pong(Bytes::new())]);
    assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(22)));
    s.handle_timeout(now + Duration::from_secs(22));
    s.handle_timeout(now + Duration::from_secs(32));
    drain(&mut s);
    // Idle: 25 s after the last input.
    assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(37)));
    s.handle_timeout(now + Duration::from_secs(37));
    assert_eq!(close_code(&drain(&mut s)), Some(1001));
    assert_eq!(
        s.state(),
        State::Closing {
            sent: true,
            received: false
        }
    );
    assert!(!s.should_close_tcp());
    // The peer never answers: give up after close_timeout.
    assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(42)));
    s.handle_timeout(now + Duration::from_secs(42));
    assert!(s.should_close_tcp());
    assert_eq!(s.state(), State::Closed);
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn close_without_now_asks_for_an_immediate_timeout_call() {
    let now = std::time::Instant::now();
    let mut s = Connection::new(Role::Server, Config::default(), None, now);
    s.close(CloseCode::GOING_AWAY, "").unwrap();
    // The close happened at an unknown time: poll_timeout asks to be called now...
    assert_eq!(s.poll_timeout(), Some(now));
    let later = now + Duration::from_secs(100);
    s.handle_timeout(later);
    // ...which starts the close timeout from then, not from the stale `now`.
    assert!(!s.should_close_tcp());
    assert_eq!(s.poll_timeout(), Some(later + Duration::from_secs(5)));
}

#[test]
fn send_prepared_shares_large_frames() {
    let (mut s, _) = server();
    let msg = PreparedMessage::binary(Bytes::from(vec![5u8; 4096]));
    s.send_prepared(&msg).unwrap();
    let plain = msg.plain_frame();
    {
        let mut sl = [std::io::IoSlice::new(&[]); 4];
        let n = s.transmit_slices(&mut sl);
        assert!(
            sl[..n].iter().any(|x| x.as_ptr() == plain.as_ptr()),
            "frame not copied"
        );
    }
    let bytes = drain(&mut s);
    assert_eq!(&bytes[..], &plain[..]);
    // Through a client connection the payload is framed (masked) again and arrives intact.
    let mut p = Pair::new(None);
    p.client.send_prepared(&msg).unwrap();
    p.server
        .send_prepared(&PreparedMessage::from_text("small"))
        .unwrap();
    assert_eq!(p.c2s(), vec![Event::Binary(msg.payload().clone())]);
    assert_eq!(p.s2c(), vec![text("small")]);
}

#[test]
fn output_that_makes_no_progress_for_the_write_timeout_gives_up() {
    let t0 = std::time::Instant::now();
    let config = Config {
        write_timeout: Some(Duration::from_secs(10)),
        ping_interval: None,
        idle_timeout: None,
        ..Config::default()
    };
    let mut s = Connection::new(Role::Server, config.clone(), None, t0);
    s.send_text("hello").unwrap();
    // The socket takes nothing: the deadline is armed at the first blocked write only.
    s.output_blocked(t0);
    s.output_blocked(t0 + Duration::from_secs(5));
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(10)));
    s.handle_timeout(t0 + Duration::from_secs(9));
    assert!(!s.should_close_tcp());
    s.handle_timeout(t0 + Duration::from_secs(10));
    assert!(
        s.should_close_tcp(),
        "a peer that reads nothing is given up on"
    );
    assert_eq!(s.state(), State::Closed);

    // Any progress disarms it; the next block arms it anew from then.
    let mut s = Connection::new(Role::Server, config, None, t0);
    s.send_text("hello").unwrap();
    s.output_blocked(t0);
    s.advance_transmit(1);
    assert_eq!(s.poll_timeout(), None, "progress: no deadline");
    s.output_blocked(t0 + Duration::from_secs(8));
    s.handle_timeout(t0 + Duration::from_secs(12));
    assert!(!s.should_close_tcp());
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(18)));

    // Without a write timeout, a blocked write arms nothing.
    let (mut s, now) = server();
    s.send_text("hello").unwrap();
    let before = s.poll_timeout();
    s.output_blocked(now);
    assert_eq!(s.poll_timeout(), before);
}
