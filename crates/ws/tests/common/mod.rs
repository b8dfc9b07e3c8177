//! In-memory harness: two `Connection`s wired back to back, raw frame builders and a frame
//! reader for asserting on wire bytes. No sockets; time is simulated.
#![allow(dead_code, clippy::unwrap_used, unreachable_pub)]

use std::io::IoSlice;
use std::time::Instant;

use switchboard_ws::frame::{encode_frame, FrameHeader, OpCode};
use switchboard_ws::mask::apply_mask;
use switchboard_ws::{Config, Connection, DeflateParams, Event, Role};

pub const KEY: [u8; 4] = [0x12, 0x34, 0x56, 0x78];

/// Take every queued output byte, as a writer would, and mark it written.
pub fn drain(conn: &mut Connection) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut slices = [IoSlice::new(&[]); 8];
        let n = conn.transmit_slices(&mut slices);
        if n == 0 {
            break;
        }
        for s in &slices[..n] {
            out.extend_from_slice(s);
        }
        let written: usize = slices[..n].iter().map(|s| s.len()).sum();
        conn.advance_transmit(written);
    }
    assert_eq!(conn.pending_bytes(), 0);
    out
}

pub fn events(conn: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| conn.poll_event()).collect()
}

pub struct Pair {
    pub client: Connection,
    pub server: Connection,
    pub now: Instant,
}

impl Pair {
    pub fn new(deflate: Option<DeflateParams>) -> Self {
        Self::with_configs(Config::default(), Config::default(), deflate)
    }

    pub fn with_configs(client: Config, server: Config, deflate: Option<DeflateParams>) -> Self {
        let now = Instant::now();
        Self {
            client: Connection::new(Role::Client, client, deflate, now),
            server: Connection::new(Role::Server, server, deflate, now),
            now,
        }
    }

    /// Move the client's output to the server (in one piece); the server's events.
    pub fn c2s(&mut self) -> Vec<Event> {
        let bytes = drain(&mut self.client);
        self.server.handle_input(&bytes, self.now);
        events(&mut self.server)
    }

    /// Move the server's output to the client; the client's events.
    pub fn s2c(&mut self) -> Vec<Event> {
        let bytes = drain(&mut self.server);
        self.client.handle_input(&bytes, self.now);
        events(&mut self.client)
    }
}

/// A raw frame as a client would send it (masked with `KEY`), any bits allowed.
pub fn raw_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![b0];
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 0xFFFF {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&KEY);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], KEY, 0);
    out
}

/// A well-formed client frame.
pub fn client_frame(opcode: OpCode, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mut buf = bytes::BytesMut::new();
    let header = FrameHeader {
        fin,
        mask: Some(KEY),
        ..FrameHeader::new(opcode, 0)
    };
    encode_frame(&mut buf, header, payload);
    buf.to_vec()
}

/// Split wire bytes into frames (unmasked payloads). Panics on malformed input.
pub fn parse_frames(mut bytes: &[u8]) -> Vec<(FrameHeader, Vec<u8>)> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let (h, n) = FrameHeader::parse(bytes).unwrap().unwrap();
        let len = h.payload_len as usize;
        let mut payload = bytes[n..n + len].to_vec();
        if let Some(key) = h.mask {
            apply_mask(&mut payload, key, 0);
        }
        frames.push((h, payload));
        bytes = &bytes[n + len..];
    }
    frames
}

/// The code of the (last) close frame in `bytes`.
pub fn close_code(bytes: &[u8]) -> Option<u16> {
    parse_frames(bytes)
        .into_iter()
        .filter(|(h, _)| h.opcode == OpCode::Close)
        .map(|(_, p)| u16::from_be_bytes([p[0], p[1]]))
        .next_back()
}
