//! A message framed once and sent to many connections.
//!
//! Fan-out sends the same message to thousands of connections. [`PreparedMessage`] builds
//! the server's unmasked frame once ([`PreparedMessage::plain_frame`]) and, on first use,
//! a compressed frame per LZ77 window size ([`PreparedMessage::deflated_frame`]). A
//! compressed frame can be shared only with connections whose compressor starts every
//! message from an empty window, i.e. that negotiated `server_no_context_takeover`; other
//! deflate connections compress the payload with their own context. Client connections
//! mask every frame, so they frame the payload themselves. Cloning is cheap (one `Arc`).
//!
//! The shared frames are made with a compressor kept per thread and window size, reset
//! after every message: a zlib state is ~380 KB of heap, and making one per message cost
//! twice what compressing a short message with a kept one does.

use std::cell::RefCell;
use std::sync::{Arc, OnceLock};

use bytes::{Bytes, BytesMut};

use crate::config::Role;
use crate::deflate::{Compressor, DeflateParams};
use crate::frame::{encode_frame, FrameHeader, OpCode};

/// See the module docs.
#[derive(Debug, Clone)]
pub struct PreparedMessage(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    opcode: OpCode,
    payload: Bytes,
    plain: Bytes,
    /// Compressed frames for window bits 9..=15 (8 is compressed as 9); `None` inside when
    /// compression does not make the frame smaller.
    deflated: [OnceLock<Option<Bytes>>; 7],
}

impl PreparedMessage {
    /// A text message. The caller guarantees `payload` is UTF-8 (checked in debug builds);
    /// prefer [`PreparedMessage::from_text`] when starting from a `&str`.
    pub fn text(payload: Bytes) -> Self {
        debug_assert!(
            std::str::from_utf8(&payload).is_ok(),
            "text payload is not UTF-8"
        );
        Self::new(OpCode::Text, payload)
    }

    /// A text message from a string (no validation needed).
    pub fn from_text(text: &str) -> Self {
        Self::new(OpCode::Text, Bytes::copy_from_slice(text.as_bytes()))
    }

    pub fn binary(payload: Bytes) -> Self {
        Self::new(OpCode::Binary, payload)
    }

    fn new(opcode: OpCode, payload: Bytes) -> Self {
        let mut buf = BytesMut::new();
        encode_frame(&mut buf, FrameHeader::new(opcode, 0), &payload);
        Self(Arc::new(Inner {
            opcode,
            payload,
            plain: buf.freeze(),
            deflated: Default::default(),
        }))
    }

    /// `OpCode::Text` or `OpCode::Binary`.
    pub fn opcode(&self) -> OpCode {
        self.0.opcode
    }

    /// The message itself, unframed.
    pub fn payload(&self) -> &Bytes {
        &self.0.payload
    }

    /// Heap bytes this message holds besides its payload (shared with whoever gave it):
    /// its shared state, the plain frame, and the compressed frames made so far. A
    /// compressed frame is made on first use by a connection that negotiated
    /// `server_no_context_takeover`, one per window size, each smaller than the plain one.
    pub fn heap_bytes(&self) -> usize {
        // The `Arc`'s counts and state; each frame's bytes and the header `Bytes` allocates
        // once they are shared (every send clones them).
        const SHARED: usize = 32;
        let deflated: usize = self
            .0
            .deflated
            .iter()
            .filter_map(|slot| slot.get()?.as_ref())
            .map(|frame| frame.len() + SHARED)
            .sum();
        16 + std::mem::size_of::<Inner>() + self.0.plain.len() + SHARED + deflated
    }

    /// Server-role frame bytes, unmasked, uncompressed: shared as-is by every connection.
    pub fn plain_frame(&self) -> Bytes {
        self.0.plain.clone()
    }

    /// The same bytes, borrowed.
    pub fn plain_frame_bytes(&self) -> &[u8] {
        &self.0.plain
    }

    /// The compressed (RSV1) frame for a server connection that negotiated `params`,
    /// computed once per window size. `None` when the connection keeps its compression
    /// context (it must use its own compressor) or when compression does not shrink the frame.
    pub fn deflated_frame(&self, params: &DeflateParams) -> Option<Bytes> {
        if !params.server_no_context_takeover || !params.compresses(Role::Server) {
            return None;
        }
        self.deflated(params.server_max_window_bits).cloned()
    }

    /// The compressed frame for window `bits` (9..=15), made on first use.
    fn deflated(&self, bits: u8) -> Option<&Bytes> {
        let slot = &self.0.deflated[usize::from(bits.clamp(9, 15) - 9)];
        slot.get_or_init(|| self.compress(bits)).as_ref()
    }

    fn compress(&self, bits: u8) -> Option<Bytes> {
        let mut z = Vec::new();
        let kept = COMPRESSORS.try_with(|cell| {
            let mut slots = cell.try_borrow_mut().ok()?;
            let slot = &mut slots[usize::from(bits.clamp(9, 15) - 9)];
            let c = slot.get_or_insert_with(|| Compressor::new(bits, true));
            let done = c.compress(&self.0.payload, &mut z);
            if done.is_err() {
                // Its state is unknown after a failure: the next message gets a new one.
                *slot = None;
            }
            Some(done)
        });
        match kept {
            Ok(Some(done)) => done.ok()?,
            // The thread is ending (or, never, the slots are in use): a compressor of its own.
            _ => Compressor::new(bits, true)
                .compress(&self.0.payload, &mut z)
                .ok()?,
        }
        let header = FrameHeader {
            rsv1: true,
            ..FrameHeader::new(self.0.opcode, z.len() as u64)
        };
        if header.encoded_len() + z.len() >= self.0.plain.len() {
            return None;
        }
        let mut buf = BytesMut::new();
        encode_frame(&mut buf, header, &z);
        Some(buf.freeze())
    }
}

/// What a server connection sends for a [`PreparedMessage`] when it shares its bytes:
/// the plain frame, or (permessage-deflate with `server_no_context_takeover`) the shared
/// compressed frame of its window size for payloads from its compression threshold on,
/// where compression makes the frame smaller. [`Connection::shared_framing`] gives a
/// connection's; whoever writes frames for the connection outside it (a server's direct
/// delivery) sends exactly what [`Connection::send_prepared`] would queue.
///
/// [`Connection::shared_framing`]: crate::Connection::shared_framing
/// [`Connection::send_prepared`]: crate::Connection::send_prepared
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SharedFraming {
    /// `(window bits 9..=15, threshold in bytes)` when compressed frames are shared.
    deflate: Option<(u8, usize)>,
}

impl SharedFraming {
    /// Every message as its plain frame.
    pub const PLAIN: Self = Self { deflate: None };

    /// Messages of `threshold` bytes or more as the compressed frame of window `bits`
    /// (9..=15; others are taken as the nearest).
    pub fn deflated(bits: u8, threshold: usize) -> Self {
        Self {
            deflate: Some((bits.clamp(9, 15), threshold)),
        }
    }

    /// `(window bits, threshold)` when compressed frames are shared; `None` for plain.
    pub fn deflate(self) -> Option<(u8, usize)> {
        self.deflate
    }

    /// The frame `msg` goes out as.
    pub fn frame_bytes(self, msg: &PreparedMessage) -> &[u8] {
        self.shared(msg).unwrap_or(&msg.0.plain)
    }

    /// The same, as shared `Bytes`.
    pub fn frame(self, msg: &PreparedMessage) -> Bytes {
        self.shared(msg).unwrap_or(&msg.0.plain).clone()
    }

    fn shared(self, msg: &PreparedMessage) -> Option<&Bytes> {
        let (bits, threshold) = self.deflate?;
        (msg.0.payload.len() >= threshold)
            .then(|| msg.deflated(bits))
            .flatten()
    }
}

thread_local! {
    /// This thread's compressors for shared frames, by window bits (9..=15), made on first
    /// use; each starts every message afresh (no context takeover). See the module docs.
    static COMPRESSORS: RefCell<[Option<Compressor>; 7]> =
        const { RefCell::new([const { None }; 7]) };
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::deflate::Decompressor;

    #[test]
    fn plain_frame_is_a_server_frame() {
        let m = PreparedMessage::from_text("hi");
        assert_eq!(&m.plain_frame()[..], &[0x81, 2, b'h', b'i']);
        assert_eq!(m.opcode(), OpCode::Text);
    }

    #[test]
    fn heap_bytes_count_the_frames_made() {
        let text = "abc ".repeat(500);
        let m = PreparedMessage::from_text(&text);
        let plain = m.heap_bytes();
        assert!(plain >= m.plain_frame().len() + std::mem::size_of::<Inner>());
        let params = DeflateParams {
            server_no_context_takeover: true,
            ..DeflateParams::default()
        };
        let z = m.deflated_frame(&params).unwrap();
        assert_eq!(m.heap_bytes(), plain + z.len() + 32);
    }

    #[test]
    fn deflated_frame_computed_once_and_inflates() {
        let text = "abc ".repeat(500);
        let m = PreparedMessage::from_text(&text);
        let params = DeflateParams {
            server_no_context_takeover: true,
            ..DeflateParams::default()
        };
        let a = m.deflated_frame(&params).unwrap();
        let b = m.clone().deflated_frame(&params).unwrap();
        assert_eq!(a.as_ptr(), b.as_ptr(), "shared, not recomputed");
        let (h, n) = FrameHeader::parse(&a).unwrap().unwrap();
        assert!(h.rsv1 && h.fin && h.opcode == OpCode::Text);
        let mut out = Vec::new();
        let mut d = Decompressor::new(15, true);
        d.decompress(&a[n..], &mut out, 1 << 20).unwrap();
        d.finish(&mut out, 1 << 20).unwrap();
        assert_eq!(out, text.as_bytes());
        // Context takeover connections get nothing shared.
        assert!(m.deflated_frame(&DeflateParams::default()).is_none());
        // The thread's kept compressor carries nothing from one message to the next: the
        // same text makes the same frame (a kept context would make it a back-reference).
        let again = PreparedMessage::from_text(&text)
            .deflated_frame(&params)
            .unwrap();
        assert_eq!(again, a);
        // Incompressible / tiny messages are not worth it.
        assert!(PreparedMessage::from_text("x")
            .deflated_frame(&params)
            .is_none());
    }
}
