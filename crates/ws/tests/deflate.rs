//! permessage-deflate through two in-memory `Connection`s: every parameter combination,
//! shared prepared frames, fragmented compressed messages, and hostile compressed input.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::*;
use switchboard_ws::deflate::Compressor;
use switchboard_ws::frame::{FrameHeader, OpCode};
use switchboard_ws::mask::apply_mask;
use switchboard_ws::{
    Config, Connection, DeflateConfig, DeflateParams, Event, PreparedMessage, ProtocolError, Role,
};

fn messages() -> Vec<(bool, Vec<u8>)> {
    let json = br#"{"channel":"prices","offset":17,"data":{"symbol":"ABC","price":12.5}}"#;
    let noise: Vec<u8> = (0u32..5000)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    vec![
        (true, b"".to_vec()),
        (true, b"".to_vec()),
        (true, b"Hello".to_vec()),
        (true, json.to_vec()),
        (true, json.to_vec()),
        (false, noise),
        (true, "κόσμε ".repeat(5_000).into_bytes()),
        (false, vec![0u8; 100_000]),
        (true, json.to_vec()),
    ]
}

fn event(text: bool, payload: &[u8]) -> Event {
    let b = Bytes::copy_from_slice(payload);
    if text {
        Event::Text(b)
    } else {
        Event::Binary(b)
    }
}

fn send(conn: &mut Connection, text: bool, payload: &[u8]) {
    if text {
        conn.send_text(std::str::from_utf8(payload).unwrap())
            .unwrap();
    } else {
        conn.send_binary(payload).unwrap();
    }
}

#[test]
fn round_trip_every_parameter_combination() {
    let msgs = messages();
    for server_nct in [false, true] {
        for client_nct in [false, true] {
            for (sb, cb) in [(15, 15), (8, 8), (9, 15), (15, 10), (12, 8)] {
                let params = DeflateParams {
                    server_no_context_takeover: server_nct,
                    client_no_context_takeover: client_nct,
                    server_max_window_bits: sb,
                    client_max_window_bits: cb,
                };
                let mut p = Pair::new(Some(params));
                let label = format!("{params:?}");
                // Twice, so context takeover across messages is exercised.
                for _ in 0..2 {
                    for (text, m) in &msgs {
                        send(&mut p.client, *text, m);
                        send(&mut p.server, *text, m);
                    }
                    let c_wire = drain(&mut p.client);
                    let s_wire = drain(&mut p.server);
                    let plain: usize = msgs.iter().map(|(_, m)| m.len()).sum();
                    // A side whose sending window was negotiated down to 8 bits sends
                    // uncompressed (zlib cannot honour it); every other side compresses.
                    for (wire, bits, who) in [(&c_wire, cb, "client"), (&s_wire, sb, "server")] {
                        let frames = parse_frames(wire);
                        if bits == 8 {
                            assert!(wire.len() > plain, "{label}: {who} sent {}", wire.len());
                            assert!(frames.iter().all(|(h, _)| !h.rsv1), "{label}: {who}");
                        } else {
                            assert!(wire.len() < plain / 2, "{label}: {who} sent {}", wire.len());
                        }
                    }
                    if sb != 8 {
                        assert!(parse_frames(&s_wire).iter().all(|(h, _)| h.rsv1));
                    }
                    p.server.handle_input(&c_wire, p.now);
                    p.client.handle_input(&s_wire, p.now);
                    let want: Vec<Event> = msgs.iter().map(|(t, m)| event(*t, m)).collect();
                    // Compare without dumping megabytes on failure.
                    assert!(
                        events(&mut p.server) == want,
                        "{label}: server events differ"
                    );
                    assert!(
                        events(&mut p.client) == want,
                        "{label}: client events differ"
                    );
                }
            }
        }
    }
}

#[test]
fn threshold_leaves_small_messages_uncompressed() {
    let config = Config {
        deflate: Some(DeflateConfig {
            compression_threshold: 64,
            ..DeflateConfig::default()
        }),
        ..Config::default()
    };
    let mut p = Pair::with_configs(config.clone(), config, Some(DeflateParams::default()));
    p.server.send_text("short").unwrap();
    p.server.send_text(&"long enough ".repeat(10)).unwrap();
    let frames = parse_frames(&drain(&mut p.server));
    assert!(!frames[0].0.rsv1);
    assert!(frames[1].0.rsv1);
}

#[test]
fn prepared_frames_shared_only_without_context_takeover() {
    let payload = Bytes::from("ticker update ".repeat(200));
    let msg = PreparedMessage::text(payload.clone());
    // server_no_context_takeover: the prepared compressed frame is used as-is.
    let nct = DeflateParams {
        server_no_context_takeover: true,
        ..DeflateParams::default()
    };
    let shared = msg.deflated_frame(&nct).unwrap();
    for _ in 0..3 {
        let mut p = Pair::new(Some(nct));
        p.server.send_prepared(&msg).unwrap();
        let wire = drain(&mut p.server);
        assert_eq!(wire, &shared[..]);
        p.client.handle_input(&wire, p.now);
        assert_eq!(events(&mut p.client), vec![Event::Text(payload.clone())]);
    }
    // Context takeover: the connection compresses with its own context, still correct.
    let mut p = Pair::new(Some(DeflateParams::default()));
    for _ in 0..3 {
        p.server.send_prepared(&msg).unwrap();
    }
    let wire = drain(&mut p.server);
    assert!(wire.len() < 3 * shared.len());
    p.client.handle_input(&wire, p.now);
    assert_eq!(events(&mut p.client), vec![Event::Text(payload); 3]);
}

/// Client-side compressed frames built by hand: `parts` are the frames' payloads.
fn compressed_frames(opcode: OpCode, message: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut z = Vec::new();
    Compressor::new(15, false)
        .compress(message, &mut z)
        .unwrap();
    let mut bounds = vec![0];
    bounds.extend(cuts.iter().map(|&c| c.min(z.len())));
    bounds.push(z.len());
    let mut wire = Vec::new();
    for (i, w) in bounds.windows(2).enumerate() {
        let op = if i == 0 { opcode } else { OpCode::Continue };
        let fin = i == bounds.len() - 2;
        let h = FrameHeader {
            fin,
            rsv1: i == 0,
            mask: Some(KEY),
            ..FrameHeader::new(op, 0)
        };
        let mut buf = bytes::BytesMut::new();
        switchboard_ws::frame::encode_frame(&mut buf, h, &z[w[0]..w[1]]);
        wire.extend_from_slice(&buf);
    }
    wire
}

fn deflate_server(max_message_size: usize) -> Connection {
    let config = Config {
        max_message_size,
        ..Config::default()
    };
    Connection::new(
        Role::Server,
        config,
        Some(DeflateParams::default()),
        std::time::Instant::now(),
    )
}

#[test]
fn fragmented_compressed_message_fed_byte_by_byte() {
    let text = "fragmented and compressed ".repeat(300);
    let wire = compressed_frames(OpCode::Text, text.as_bytes(), &[3, 4, 100]);
    let mut s = deflate_server(1 << 20);
    for b in &wire {
        s.handle_input(std::slice::from_ref(b), std::time::Instant::now());
    }
    assert_eq!(events(&mut s), vec![Event::Text(Bytes::from(text))]);
}

#[test]
fn decompression_bomb_closes_with_1009() {
    let zeros = vec![0u8; 50 << 20];
    let wire = compressed_frames(OpCode::Binary, &zeros, &[]);
    assert!(wire.len() < 100_000);
    let mut s = deflate_server(1 << 20);
    s.handle_input(&wire, std::time::Instant::now());
    assert_eq!(
        events(&mut s),
        vec![Event::Error(ProtocolError::MessageTooBig { max: 1 << 20 })]
    );
    assert_eq!(close_code(&drain(&mut s)), Some(1009));
}

#[test]
fn compressed_size_counts_against_the_limit_too() {
    let noise: Vec<u8> = (0u32..20_000)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let wire = compressed_frames(OpCode::Binary, &noise, &[]);
    let mut s = deflate_server(10_000);
    s.handle_input(&wire, std::time::Instant::now());
    assert_eq!(
        events(&mut s),
        vec![Event::Error(ProtocolError::MessageTooBig { max: 10_000 })]
    );
}

#[test]
fn hostile_compressed_input() {
    // Garbage that does not inflate: 1007.
    let mut garbage = vec![0xC1, 0x84];
    garbage.extend_from_slice(&KEY);
    let mut body = [0xFF, 0xFF, 0xFF, 0xFF];
    apply_mask(&mut body, KEY, 0);
    garbage.extend_from_slice(&body);
    let mut s = deflate_server(1 << 20);
    s.handle_input(&garbage, std::time::Instant::now());
    assert_eq!(
        events(&mut s),
        vec![Event::Error(ProtocolError::InvalidCompressedData)]
    );
    assert_eq!(close_code(&drain(&mut s)), Some(1007));

    // Valid deflate, invalid UTF-8 inside: 1007.
    let wire = compressed_frames(OpCode::Text, b"abc\xff\xfe", &[]);
    let mut s = deflate_server(1 << 20);
    s.handle_input(&wire, std::time::Instant::now());
    assert_eq!(
        events(&mut s),
        vec![Event::Error(ProtocolError::InvalidUtf8)]
    );

    // RSV1 on a continuation frame: 1002.
    let mut wire = client_frame(OpCode::Text, false, b"a");
    wire.extend(raw_frame(0xC0, b"b"));
    let mut s = deflate_server(1 << 20);
    s.handle_input(&wire, std::time::Instant::now());
    assert_eq!(
        events(&mut s),
        vec![Event::Error(ProtocolError::CompressedControlOrContinuation)]
    );
    assert_eq!(close_code(&drain(&mut s)), Some(1002));
}

#[test]
fn empty_compressed_payload_is_an_empty_message() {
    let mut wire = raw_frame(0xC1, b"");
    wire.extend(compressed_frames(OpCode::Text, b"after", &[]));
    let mut s = deflate_server(1 << 20);
    s.handle_input(&wire, std::time::Instant::now());
    assert_eq!(
        events(&mut s),
        vec![
            Event::Text(Bytes::new()),
            Event::Text(Bytes::from_static(b"after"))
        ]
    );
}
