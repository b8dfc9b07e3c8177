//! The send queue of a [`Connection`](super::Connection): frame bytes waiting to be
//! written, in wire order, by the rules in the `connection` docs. Small frames are
//! coalesced into one buffer, large `Bytes` are queued by reference, control frames go
//! ahead of data not yet begun (never into a frame that has begun), and a lone prepared
//! frame waits inline, so that an idle connection holds no send buffer.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};

use crate::frame::{encode_frame, FrameHeader};

/// Frames at least this long whose bytes already sit in a `Bytes` are queued by reference;
/// shorter ones are copied into the coalescing buffer (one write covers many of them).
pub(super) const SHARE_THRESHOLD: usize = 1024;

/// The send queue; see the module docs for its ordering rules.
#[derive(Debug, Default)]
pub(super) struct OutQueue {
    /// Chunks in wire order whose transmission has begun (the front may be partly written).
    active: VecDeque<Bytes>,
    /// Control frames waiting, coalesced; they go before any data unit not yet begun.
    control: BytesMut,
    /// Data units not yet begun: (head, body), sent back to back; body may be empty.
    data: VecDeque<(Bytes, Bytes)>,
    /// Small data frames being coalesced; newer than everything in `data`.
    pub(super) tail: BytesMut,
    pub(super) len: usize,
}

impl OutQueue {
    fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(super) fn push_control(&mut self, header: FrameHeader, payload: &[u8]) {
        let before = self.control.len();
        encode_frame(&mut self.control, header, payload);
        self.len += self.control.len() - before;
    }

    pub(super) fn push_data_copied(&mut self, header: FrameHeader, payload: &[u8]) {
        let before = self.tail.len();
        encode_frame(&mut self.tail, header, payload);
        self.len += self.tail.len() - before;
    }

    /// Queue a header (encoded here) followed by a payload that is not copied.
    pub(super) fn push_data_shared(&mut self, header: FrameHeader, payload: Bytes) {
        header.encode_to(&mut self.tail);
        self.len += header.encoded_len() + payload.len();
        let head = self.tail.split().freeze();
        self.data.push_back((head, payload));
    }

    /// Queue complete frame bytes.
    fn push_frame_bytes(&mut self, frame: Bytes) {
        if frame.len() < SHARE_THRESHOLD {
            self.tail.extend_from_slice(&frame);
            self.len += frame.len();
        } else {
            self.len += frame.len();
            let head = self.tail.split().freeze();
            self.data.push_back((head, frame));
        }
    }

    fn slices<'a>(&'a self, out: &mut [IoSlice<'a>]) -> usize {
        let control = (!self.control.is_empty()).then_some(&self.control[..]);
        let data = self.data.iter().flat_map(|(h, b)| [&h[..], &b[..]]);
        let tail = (!self.tail.is_empty()).then_some(&self.tail[..]);
        let all = self
            .active
            .iter()
            .map(|b| &b[..])
            .chain(control)
            .chain(data)
            .chain(tail)
            .filter(|s| !s.is_empty());
        let mut n = 0;
        for (slot, s) in out.iter_mut().zip(all) {
            *slot = IoSlice::new(s);
            n += 1;
        }
        n
    }

    /// Move the next unit, in the order `slices` lists them, into `active`.
    fn promote(&mut self) -> bool {
        if !self.control.is_empty() {
            self.active.push_back(self.control.split().freeze());
        } else if let Some((head, body)) = self.data.pop_front() {
            self.active
                .extend([head, body].into_iter().filter(|b| !b.is_empty()));
        } else if !self.tail.is_empty() {
            self.active.push_back(self.tail.split().freeze());
        } else {
            return false;
        }
        true
    }

    fn advance(&mut self, mut n: usize) {
        debug_assert!(n <= self.len, "advanced past the queued bytes");
        n = n.min(self.len);
        self.len -= n;
        while n > 0 {
            let Some(front) = self.active.front_mut() else {
                if self.promote() {
                    continue;
                }
                break;
            };
            if n >= front.len() {
                n -= front.len();
                self.active.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
        while self.active.front().is_some_and(|b| b.is_empty()) {
            self.active.pop_front();
        }
    }
}

/// The send queue, allocated only while bytes wait: an idle connection holds no send
/// buffer. A lone whole frame that is already `Bytes` (a shared prepared frame: the usual
/// fan-out delivery) waits inline, by reference, so delivering a message to an idle
/// connection and writing it out allocates nothing. The boxed queue is made when a second
/// unit arrives before the first is written, when a frame is only partly written, or when
/// bytes must be encoded or copied; it is freed once empty.
#[derive(Debug)]
pub(super) enum Output {
    /// Nothing queued (empty), or one whole frame whose transmission has not begun.
    Frame(Bytes),
    Queue(Box<OutQueue>),
}

impl Default for Output {
    fn default() -> Self {
        Output::Frame(Bytes::new())
    }
}

impl Output {
    pub(super) fn queue(&mut self) -> &mut OutQueue {
        if let Output::Frame(frame) = self {
            *self = Output::Queue(Self::spill(std::mem::take(frame)));
        }
        match self {
            Output::Queue(q) => q,
            Output::Frame(_) => unreachable!("replaced by a queue above"),
        }
    }

    /// The boxed queue holding the inline frame (if any), which has not begun: later
    /// control frames may still go ahead of it.
    fn spill(frame: Bytes) -> Box<OutQueue> {
        let mut q = Box::<OutQueue>::default();
        if !frame.is_empty() {
            q.len = frame.len();
            q.data.push_back((Bytes::new(), frame));
        }
        q
    }

    /// Queue the rest of a frame whose first bytes went to the socket elsewhere: it has
    /// begun, so it goes first and nothing goes ahead of it or into it.
    pub(super) fn push_begun(&mut self, rest: Bytes) {
        if rest.is_empty() {
            return;
        }
        let q = self.queue();
        q.len += rest.len();
        q.active.push_front(rest);
    }

    /// Queue complete frame bytes, inline when nothing else waits.
    pub(super) fn push_frame(&mut self, frame: Bytes) {
        match self {
            Output::Frame(slot) if slot.is_empty() => *slot = frame,
            _ => self.queue().push_frame_bytes(frame),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        match self {
            Output::Frame(f) => f.is_empty(),
            Output::Queue(q) => q.is_empty(),
        }
    }

    pub(super) fn len(&self) -> usize {
        match self {
            Output::Frame(f) => f.len(),
            Output::Queue(q) => q.len,
        }
    }

    // Inline: the caller (`Connection::transmit_slices`) is in another codegen unit, and the
    // lone-frame path should not cost a call; likewise `advance`.
    #[inline]
    pub(super) fn slices<'a>(&'a self, out: &mut [IoSlice<'a>]) -> usize {
        match (self, out.first_mut()) {
            (Output::Frame(f), Some(slot)) if !f.is_empty() => {
                *slot = IoSlice::new(f);
                1
            }
            (Output::Frame(_), _) => 0,
            (Output::Queue(q), _) => q.slices(out),
        }
    }

    #[inline]
    pub(super) fn advance(&mut self, n: usize) {
        match self {
            Output::Frame(f) => {
                debug_assert!(n <= f.len(), "advanced past the queued bytes");
                if n >= f.len() {
                    *f = Bytes::new();
                } else if n > 0 {
                    // Begun: from now on nothing may go ahead of the rest of it.
                    let mut rest = std::mem::take(f);
                    rest.advance(n);
                    let mut q = Box::<OutQueue>::default();
                    q.len = rest.len();
                    q.active.push_back(rest);
                    *self = Output::Queue(q);
                }
            }
            Output::Queue(q) => {
                q.advance(n);
                if q.is_empty() {
                    // Drop the spare capacity too.
                    *self = Output::default();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::close::CloseCode;
    use crate::connection::tests::{client_frame, opcodes, server, written};
    use crate::frame::OpCode;
    use crate::prepared::PreparedMessage;

    #[test]
    fn lone_prepared_frame_waits_inline_and_a_pong_still_goes_ahead() {
        let (mut s, now) = server();
        let m = PreparedMessage::from_text(&"x".repeat(5000));
        s.send_prepared(&m).unwrap();
        assert!(matches!(&s.out, Output::Frame(f) if f.as_ptr() == m.plain_frame().as_ptr()));
        s.handle_input(&client_frame(OpCode::Ping, true, b"now"), now);
        assert_eq!(opcodes(&written(&mut s)), [OpCode::Pong, OpCode::Text]);
        assert!(matches!(&s.out, Output::Frame(f) if f.is_empty()));
    }

    #[test]
    fn partly_written_inline_frame_is_finished_before_anything_else() {
        let (mut s, now) = server();
        let m = PreparedMessage::from_text(&"x".repeat(5000));
        s.send_prepared(&m).unwrap();
        let mut wire = m.plain_frame()[..10].to_vec();
        s.advance_transmit(10);
        assert_eq!(s.pending_bytes(), m.plain_frame().len() - 10);
        s.send_prepared(&PreparedMessage::from_text("second"))
            .unwrap();
        s.handle_input(&client_frame(OpCode::Ping, true, b"now"), now);
        wire.extend(written(&mut s));
        assert_eq!(opcodes(&wire), [OpCode::Text, OpCode::Pong, OpCode::Text]);
        assert!(
            matches!(&s.out, Output::Frame(f) if f.is_empty()),
            "queue freed"
        );
    }

    #[test]
    fn frames_queued_behind_the_inline_one_keep_their_order() {
        let (mut s, _) = server();
        let first = PreparedMessage::from_text("first");
        s.send_prepared(&first).unwrap();
        s.send_text("second").unwrap();
        s.send_prepared(&PreparedMessage::binary(vec![3u8; 2000].into()))
            .unwrap();
        s.close(CloseCode::NORMAL, "").unwrap();
        let wire = written(&mut s);
        assert_eq!(
            opcodes(&wire),
            [OpCode::Text, OpCode::Text, OpCode::Binary, OpCode::Close]
        );
        assert_eq!(&wire[..first.plain_frame().len()], &first.plain_frame()[..]);
    }
}
