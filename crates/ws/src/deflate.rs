//! permessage-deflate (RFC 7692): negotiated parameters, compressor, decompressor.
//!
//! A compressed message is raw DEFLATE data ended by a sync flush, with the flush's trailing
//! `00 00 ff ff` removed ([`Compressor::compress`]); the receiver appends those four bytes
//! back before inflating the end of the message ([`Decompressor::finish`]). Without
//! "no_context_takeover" both ends keep their LZ77 window from one message to the next;
//! with it, the compressor (and the peer's decompressor) start every message afresh.
//!
//! Inflation is bounded: [`Decompressor`] never lets its output grow past the caller's cap
//! (plus one byte to tell "exactly full" from "more"), so a decompression bomb fails with
//! [`ProtocolError::MessageTooBig`] instead of allocating.
//!
//! Window bits: zlib's raw deflate cannot use an 8-bit window, so 8 is used as 9. For
//! inflating that is harmless (a larger window decodes data made with a smaller one); for
//! compressing it would exceed what the peer allowed, so when our sending window was
//! negotiated down to 8 we never compress ([`DeflateParams::compresses`]): RFC 7692 lets
//! an endpoint send any message uncompressed (RSV1 clear), and the peer's offer stays
//! accepted.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::config::Role;
use crate::error::{Error, ProtocolError};

/// The permessage-deflate parameters both ends agreed on in the handshake.
/// Produced by `handshake` (server: from the client's offers and our `DeflateConfig`;
/// client: from the server's response), consumed by `Connection`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateParams {
    pub server_no_context_takeover: bool,
    pub client_no_context_takeover: bool,
    /// 8..=15. A server sending window of 8 means the server sends uncompressed.
    pub server_max_window_bits: u8,
    /// 8..=15.
    pub client_max_window_bits: u8,
}

impl Default for DeflateParams {
    /// Full windows, context takeover both ways: what a bare `permessage-deflate` agrees to.
    fn default() -> Self {
        Self {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        }
    }
}

impl DeflateParams {
    /// (window bits, no context takeover) of the messages `role` sends.
    pub fn outgoing(&self, role: Role) -> (u8, bool) {
        match role {
            Role::Server => (self.server_max_window_bits, self.server_no_context_takeover),
            Role::Client => (self.client_max_window_bits, self.client_no_context_takeover),
        }
    }

    /// Whether `role` compresses what it sends: not with an 8-bit window, which zlib
    /// cannot honour (its smallest raw-deflate window is 9 bits).
    pub fn compresses(&self, role: Role) -> bool {
        self.outgoing(role).0 >= 9
    }

    /// (window bits, no context takeover) of the messages `role` receives.
    pub fn incoming(&self, role: Role) -> (u8, bool) {
        match role {
            Role::Server => self.outgoing(Role::Client),
            Role::Client => self.outgoing(Role::Server),
        }
    }
}

/// The trailer of a sync flush, stripped from every compressed message.
const TRAILER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The zlib compression level. Measured on short JSON messages with zlib-rs: level 1
/// (static Huffman only) barely shrinks them without context takeover; 2–3 compress as well
/// as the default 6 here at the same speed and stay cheaper on large messages.
pub const COMPRESSION_LEVEL: u32 = 3;

fn zlib_window_bits(bits: u8) -> u8 {
    bits.clamp(9, 15)
}

/// Compresses whole messages for one direction of one connection.
#[derive(Debug)]
pub struct Compressor {
    inner: Compress,
    no_context_takeover: bool,
}

impl Compressor {
    pub fn new(window_bits: u8, no_context_takeover: bool) -> Self {
        Self {
            inner: Compress::new_with_window_bits(
                Compression::new(COMPRESSION_LEVEL),
                false,
                zlib_window_bits(window_bits),
            ),
            no_context_takeover,
        }
    }

    /// Compress one whole message, appending the frame payload (trailer stripped) to `out`.
    pub fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        let start_in = self.inner.total_in();
        let start_out = out.len();
        out.reserve(input.len() / 2 + 64);
        loop {
            let consumed = (self.inner.total_in() - start_in) as usize;
            self.inner
                .compress_vec(&input[consumed..], out, FlushCompress::Sync)
                .map_err(|e| Error::Deflate(e.to_string()))?;
            let consumed = (self.inner.total_in() - start_in) as usize;
            // With input all taken and room left over, the flush has completed.
            if consumed == input.len() && out.len() < out.capacity() {
                break;
            }
            out.reserve(out.capacity().max(64));
        }
        if out.len() >= start_out + TRAILER.len() && out.ends_with(&TRAILER) {
            out.truncate(out.len() - TRAILER.len());
        }
        if out.len() == start_out {
            // zlib emits nothing for a second flush without new input; an empty stored
            // block's first byte keeps the message decodable (RFC 7692 §7.2.3.6).
            out.push(0x00);
        }
        if self.no_context_takeover {
            self.inner.reset();
        }
        Ok(())
    }
}

/// Inflates messages for one direction of one connection, with a hard output cap.
#[derive(Debug)]
pub struct Decompressor {
    inner: Decompress,
    no_context_takeover: bool,
    /// The stream ended (a BFINAL block): ignore the rest of this message's input.
    ended: bool,
}

impl Decompressor {
    pub fn new(window_bits: u8, no_context_takeover: bool) -> Self {
        Self {
            inner: Decompress::new_with_window_bits(false, zlib_window_bits(window_bits)),
            no_context_takeover,
            ended: false,
        }
    }

    /// Inflate the next piece of a compressed message, appending to `out`, which may never
    /// exceed `max` bytes.
    pub fn decompress(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        max: usize,
    ) -> Result<(), ProtocolError> {
        if self.ended {
            return Ok(());
        }
        let start_in = self.inner.total_in();
        loop {
            let consumed = (self.inner.total_in() - start_in) as usize;
            if out.len() == out.capacity() {
                // One byte past the cap tells "more output" from "exactly full".
                let allowed = (max + 1).saturating_sub(out.len());
                if allowed == 0 {
                    return Err(ProtocolError::MessageTooBig { max });
                }
                // Grow geometrically (amortised), guessing from the input left, never past
                // the cap.
                let want = (input.len() - consumed)
                    .saturating_mul(4)
                    .max(out.capacity())
                    .max(1024);
                out.reserve_exact(want.min(allowed));
            }
            let before_out = out.len();
            let status = self
                .inner
                .decompress_vec(&input[consumed..], out, FlushDecompress::Sync)
                .map_err(|_| ProtocolError::InvalidCompressedData)?;
            if out.len() > max {
                return Err(ProtocolError::MessageTooBig { max });
            }
            let now_consumed = (self.inner.total_in() - start_in) as usize;
            if status == Status::StreamEnd {
                self.ended = true;
                return Ok(());
            }
            let progressed = now_consumed != consumed || out.len() != before_out;
            let room_left = out.len() < out.capacity();
            if now_consumed == input.len() && room_left {
                return Ok(());
            }
            if !progressed && room_left {
                // Cannot happen with input left and room, but never spin.
                return Err(ProtocolError::InvalidCompressedData);
            }
        }
    }

    /// The message's last frame ended: feed the stripped trailer and reset per context
    /// takeover.
    pub fn finish(&mut self, out: &mut Vec<u8>, max: usize) -> Result<(), ProtocolError> {
        let r = self.decompress(&TRAILER, out, max);
        if self.no_context_takeover || self.ended {
            self.reset();
        }
        r
    }

    /// Forget any state (used after an error or a stream end).
    pub fn reset(&mut self) {
        self.inner.reset(false);
        self.ended = false;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn inflate(d: &mut Decompressor, data: &[u8], max: usize) -> Result<Vec<u8>, ProtocolError> {
        let mut out = Vec::new();
        d.decompress(data, &mut out, max)?;
        d.finish(&mut out, max)?;
        Ok(out)
    }

    #[test]
    fn rfc7692_hello_example() {
        // RFC 7692 §7.2.3.1: "Hello" compressed.
        let mut d = Decompressor::new(15, false);
        let out = inflate(&mut d, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], 100).unwrap();
        assert_eq!(out, b"Hello");
        // Context takeover: the second "Hello" refers back to the first.
        let out = inflate(&mut d, &[0xf2, 0x00, 0x11, 0x00, 0x00], 100).unwrap();
        assert_eq!(out, b"Hello");
    }

    #[test]
    fn round_trip_all_params() {
        let msgs: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"".to_vec(),
            b"hello hello hello hello".to_vec(),
            (0..100_000u32).map(|i| (i % 251) as u8).collect(),
            b"hello hello hello hello".to_vec(),
            b"".to_vec(),
        ];
        for bits in 8..=15u8 {
            for nct in [false, true] {
                let mut c = Compressor::new(bits, nct);
                let mut d = Decompressor::new(bits, nct);
                for m in &msgs {
                    let mut z = Vec::new();
                    c.compress(m, &mut z).unwrap();
                    assert!(!z.ends_with(&TRAILER));
                    // Feed in uneven pieces.
                    let mut out = Vec::new();
                    for piece in z.chunks(7) {
                        d.decompress(piece, &mut out, 1 << 20).unwrap();
                    }
                    d.finish(&mut out, 1 << 20).unwrap();
                    assert_eq!(&out, m, "bits {bits} nct {nct}");
                }
            }
        }
    }

    #[test]
    fn bomb_is_capped() {
        let zeros = vec![0u8; 10 << 20];
        let mut c = Compressor::new(15, true);
        let mut z = Vec::new();
        c.compress(&zeros, &mut z).unwrap();
        assert!(z.len() < 20_000, "{}", z.len());
        let mut d = Decompressor::new(15, true);
        let mut out = Vec::new();
        let max = 1 << 20;
        let r = d
            .decompress(&z, &mut out, max)
            .and_then(|()| d.finish(&mut out, max));
        assert_eq!(r, Err(ProtocolError::MessageTooBig { max }));
        assert!(out.capacity() <= max + 1, "capacity {}", out.capacity());
    }

    #[test]
    fn exact_cap_is_allowed() {
        let data = vec![7u8; 5000];
        let mut c = Compressor::new(15, true);
        let mut z = Vec::new();
        c.compress(&data, &mut z).unwrap();
        let mut d = Decompressor::new(15, true);
        assert_eq!(inflate(&mut d, &z, 5000).unwrap(), data);
        let mut d = Decompressor::new(15, true);
        assert_eq!(
            inflate(&mut d, &z, 4999),
            Err(ProtocolError::MessageTooBig { max: 4999 })
        );
    }

    #[test]
    fn garbage_is_invalid() {
        let mut d = Decompressor::new(15, false);
        assert_eq!(
            inflate(&mut d, &[0xff, 0xff, 0xff, 0xff], 100),
            Err(ProtocolError::InvalidCompressedData)
        );
    }
}
