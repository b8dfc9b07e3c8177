//! Property: any sequence of messages, cut into any frames (with pings between fragments),
//! delivered in any chunking of the byte stream (down to single bytes), yields exactly the
//! events the sender meant — through raw client frames, and through `Connection`'s own
//! sending with permessage-deflate. Each case is fed both through `handle_input` (borrowed
//! slices) and through `handle_input_buf` (a driver-owned `BytesMut`, whose large whole
//! frames are handed out without copying); both must give the same events.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::{Bytes, BytesMut};
use common::*;
use proptest::prelude::*;
use switchboard_ws::frame::{encode_frame, FrameHeader, OpCode};
use switchboard_ws::{Config, Connection, DeflateParams, Event, Role};

#[derive(Debug, Clone)]
struct Msg {
    text: bool,
    payload: Vec<u8>,
    /// Cut points as fractions (per 65536) of the payload length.
    cuts: Vec<u16>,
    /// Send a ping after each fragment but the last?
    pings: bool,
}

/// UTF-8 text of about `len` bytes mixing 1- to 4-byte characters (so cuts split them).
fn text_of(len: usize, seed: u8) -> Vec<u8> {
    let alphabet = ["a", "é", "€", "𝄞", "z", "ж"];
    let mut s = String::new();
    let mut i = usize::from(seed);
    while s.len() < len {
        s.push_str(alphabet[i % alphabet.len()]);
        i = i.wrapping_mul(7).wrapping_add(3);
    }
    while s.len() > len {
        s.pop();
    }
    s.into_bytes()
}

fn msg_strategy() -> impl Strategy<Value = Msg> {
    (
        any::<bool>(),
        prop_oneof![0usize..200, 0usize..70_000],
        any::<u8>(),
        proptest::collection::vec(any::<u16>(), 0..4),
        any::<bool>(),
    )
        .prop_map(|(text, len, seed, cuts, pings)| Msg {
            text,
            payload: if text {
                text_of(len, seed)
            } else {
                (0..len).map(|i| (i as u8).wrapping_mul(seed)).collect()
            },
            cuts,
            pings,
        })
}

fn event_of(m: &Msg) -> Event {
    let b = Bytes::from(m.payload.clone());
    if m.text {
        Event::Text(b)
    } else {
        Event::Binary(b)
    }
}

/// Client wire bytes for `msgs` and the events a server must report for them.
fn wire_and_events(msgs: &[Msg]) -> (Vec<u8>, Vec<Event>) {
    let mut wire = BytesMut::new();
    let mut want = Vec::new();
    for (n, m) in msgs.iter().enumerate() {
        let len = m.payload.len();
        let mut bounds: Vec<usize> = m
            .cuts
            .iter()
            .map(|&c| (len as u64 * u64::from(c) / 65536) as usize)
            .collect();
        bounds.push(0);
        bounds.push(len);
        bounds.sort_unstable();
        let frames = bounds.windows(2).count();
        for (i, w) in bounds.windows(2).enumerate() {
            let opcode = match (i, m.text) {
                (0, true) => OpCode::Text,
                (0, false) => OpCode::Binary,
                _ => OpCode::Continue,
            };
            let fin = i == frames - 1;
            let key = [n as u8, i as u8, 0xA5, 0x3C];
            let h = FrameHeader {
                fin,
                mask: Some(key),
                ..FrameHeader::new(opcode, 0)
            };
            encode_frame(&mut wire, h, &m.payload[w[0]..w[1]]);
            if m.pings && !fin {
                let ping = [i as u8; 3];
                let h = FrameHeader {
                    mask: Some(key),
                    ..FrameHeader::new(OpCode::Ping, 0)
                };
                encode_frame(&mut wire, h, &ping);
                want.push(Event::Ping(Bytes::copy_from_slice(&ping)));
            }
        }
        want.push(event_of(m));
    }
    (wire.to_vec(), want)
}

/// `wire` cut into chunks whose sizes cycle through `sizes` (0 = all at once).
fn chunks<'a>(wire: &'a [u8], sizes: &'a [usize]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut pos = 0;
    let mut i = 0;
    std::iter::from_fn(move || {
        if pos >= wire.len() {
            return None;
        }
        let size = match sizes.get(i % sizes.len().max(1)) {
            Some(&0) | None => wire.len(),
            Some(&s) => s,
        };
        let end = (pos + size).min(wire.len());
        let chunk = &wire[pos..end];
        pos = end;
        i += 1;
        Some(chunk)
    })
}

/// Feed `wire` to `handle_input` in the chunks of [`chunks`].
fn feed(conn: &mut Connection, wire: &[u8], sizes: &[usize]) -> Vec<Event> {
    let now = std::time::Instant::now();
    for chunk in chunks(wire, sizes) {
        conn.handle_input(chunk, now);
    }
    events(conn)
}

/// Like [`feed`], as a driver owning a `BytesMut` read buffer: each chunk is appended to
/// what the connection left in the buffer (an incomplete frame), then the buffer is passed
/// to `handle_input_buf`. At the end nothing may be left over.
fn feed_buf(conn: &mut Connection, wire: &[u8], sizes: &[usize]) -> Vec<Event> {
    let now = std::time::Instant::now();
    let mut buf = BytesMut::new();
    for chunk in chunks(wire, sizes) {
        buf.extend_from_slice(chunk);
        conn.handle_input_buf(&mut buf, now);
    }
    assert!(buf.is_empty(), "{} bytes left in the buffer", buf.len());
    events(conn)
}

fn chunking() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        Just(vec![1]),
        Just(vec![0]),
        proptest::collection::vec(1usize..3000, 1..8),
        proptest::collection::vec(1usize..20, 1..8),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn raw_frames_any_fragmentation_any_chunking(
        msgs in proptest::collection::vec(msg_strategy(), 0..5),
        sizes in chunking(),
    ) {
        let (wire, want) = wire_and_events(&msgs);
        let now = std::time::Instant::now();
        let mut server = Connection::new(Role::Server, Config::default(), None, now);
        let mut owned = Connection::new(Role::Server, Config::default(), None, now);
        let got = feed(&mut server, &wire, &sizes);
        let got_owned = feed_buf(&mut owned, &wire, &sizes);
        prop_assert!(got == want, "events differ: {} vs {}", got.len(), want.len());
        prop_assert!(got_owned == want, "owned: {} vs {}", got_owned.len(), want.len());
        let pings: Vec<_> = want.into_iter().filter(|e| matches!(e, Event::Ping(_))).collect();
        for conn in [&mut server, &mut owned] {
            conn.release_idle_memory();
            prop_assert_eq!(conn.receive_capacity(), 0);
            // Every ping was answered, in order, unmasked.
            let pongs: Vec<_> = parse_frames(&drain(conn)).into_iter().map(|(h, p)| {
                assert!(h.mask.is_none());
                Event::Ping(Bytes::from(p))
            }).collect();
            prop_assert_eq!(&pongs, &pings);
        }
    }

    #[test]
    fn compressed_messages_any_chunking(
        msgs in proptest::collection::vec(msg_strategy(), 0..5),
        sizes in chunking(),
        client_nct in any::<bool>(),
        bits in 8u8..=15,
    ) {
        let params = DeflateParams {
            client_no_context_takeover: client_nct,
            client_max_window_bits: bits,
            ..DeflateParams::default()
        };
        let now = std::time::Instant::now();
        let mut client = Connection::new(Role::Client, Config::default(), Some(params), now);
        let mut server = Connection::new(Role::Server, Config::default(), Some(params), now);
        let mut owned = Connection::new(Role::Server, Config::default(), Some(params), now);
        for m in &msgs {
            if m.text {
                client.send_text(std::str::from_utf8(&m.payload).unwrap()).unwrap();
            } else {
                client.send_binary(&m.payload).unwrap();
            }
        }
        let wire = drain(&mut client);
        let got = feed(&mut server, &wire, &sizes);
        let got_owned = feed_buf(&mut owned, &wire, &sizes);
        let want: Vec<Event> = msgs.iter().map(event_of).collect();
        prop_assert!(got == want, "events differ: {} vs {}", got.len(), want.len());
        prop_assert!(got_owned == want, "owned: {} vs {}", got_owned.len(), want.len());
    }
}
