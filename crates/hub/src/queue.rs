//! A subscriber's queue: a ring buffer of pointers to shared messages, 16 bytes (a
//! `VecDeque` takes 32), since one exists per subscriber inside its lock. The buffer is a
//! [`ThinVec`], one pointer with its length in the allocation (an empty one points to a
//! shared static and allocates nothing). That keeps a subscriber's shared state in a
//! 112-byte jemalloc block instead of 128: 16 B of RSS per idle subscriber. A `VecDeque`'s
//! push and pop are 12 instructions cheaper, which does not show in wall time
//! (`docs/perf/handwritten.md`, section 2).
//!
//! It grows by doubling up to what is pushed (the fan-out bounds that by the channel's
//! queue capacity, which [`Queue::MAX`] caps) and keeps its buffer as it drains, so a
//! steady stream of deliveries allocates nothing. [`Queue::free`] gives the buffer back.

use thin_vec::ThinVec;

use crate::message::Message;

pub(crate) struct Queue {
    /// Its length is the capacity (slots without an event are `None`).
    buf: ThinVec<Option<Message>>,
    head: u32,
    len: u32,
}

impl Queue {
    /// The most events a queue holds.
    pub(crate) const MAX: usize = u32::MAX as usize;

    /// An empty queue (allocates nothing).
    pub(crate) fn new() -> Self {
        Queue {
            buf: ThinVec::new(),
            head: 0,
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len as usize
    }

    /// Empties the queue and frees its buffer.
    pub(crate) fn free(&mut self) {
        *self = Queue::new();
    }

    /// The buffer index of the `i`-th event (`i < buf.len()`).
    fn index(&self, i: usize) -> usize {
        let at = self.head as usize + i;
        if at >= self.buf.len() {
            at - self.buf.len()
        } else {
            at
        }
    }

    /// Doubles the buffer (the queue is full). Out of line: the hot path only compares.
    #[cold]
    #[inline(never)]
    fn grow(&mut self) {
        let cap = (self.buf.len() * 2).clamp(4, Self::MAX);
        let mut grown: ThinVec<Option<Message>> = ThinVec::with_capacity(cap);
        for i in 0..self.len() {
            let at = self.index(i);
            grown.push(self.buf[at].take());
        }
        while grown.len() < cap {
            grown.push(None);
        }
        self.buf = grown;
        self.head = 0;
    }

    /// Appends an event. The caller keeps the length below [`Queue::MAX`].
    #[inline]
    pub(crate) fn push_back(&mut self, msg: Message) {
        if self.len() == self.buf.len() {
            self.grow();
        }
        let at = self.index(self.len());
        if let Some(slot) = self.buf.get_mut(at) {
            *slot = Some(msg);
            self.len += 1;
        }
    }

    /// Puts an event back in front. The caller keeps the length below [`Queue::MAX`].
    pub(crate) fn push_front(&mut self, msg: Message) {
        if self.len() == self.buf.len() {
            self.grow();
        }
        let head = self.index(self.buf.len() - 1);
        if let (Some(slot), Ok(at)) = (self.buf.get_mut(head), u32::try_from(head)) {
            *slot = Some(msg);
            self.head = at;
            self.len += 1;
        }
    }

    #[inline]
    pub(crate) fn pop_front(&mut self) -> Option<Message> {
        if self.len == 0 {
            return None;
        }
        let head = self.head as usize;
        let msg = self.buf.get_mut(head)?.take();
        let next = self.head + 1;
        self.head = if next as usize == self.buf.len() {
            0
        } else {
            next
        };
        self.len -= 1;
        msg
    }

    /// The events, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Message> {
        (0..self.len()).filter_map(|i| self.buf[self.index(i)].as_ref())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::VecDeque;
    use std::sync::Arc;

    use bytes::Bytes;
    use switchboard_proto::{Cursor, Epoch};

    use super::*;
    use crate::message::Payload;

    fn msg(n: u64) -> Message {
        let payload = Payload::json(Bytes::from(n.to_string())).unwrap();
        Message::published(Arc::from("c"), Cursor::new(Epoch(1), n), payload)
    }

    fn offsets<'a>(it: impl Iterator<Item = &'a Message>) -> Vec<u64> {
        it.map(|m| m.cursor().unwrap().offset).collect()
    }

    /// Follows a `VecDeque` through pushes at both ends, pops and wrap-around.
    #[test]
    fn behaves_like_a_deque() {
        let mut q = Queue::new();
        let mut model = VecDeque::new();
        let mut n = 0;
        for step in 0..2000u64 {
            match step % 7 {
                0 | 1 | 3 | 5 => {
                    n += 1;
                    q.push_back(msg(n));
                    model.push_back(n);
                }
                2 => {
                    n += 1;
                    q.push_front(msg(n));
                    model.push_front(n);
                }
                _ => {
                    let got = q.pop_front().map(|m| m.cursor().unwrap().offset);
                    assert_eq!(got, model.pop_front());
                }
            }
            assert_eq!(q.len(), model.len());
            assert_eq!(offsets(q.iter()), model.iter().copied().collect::<Vec<_>>());
        }
        while let Some(m) = q.pop_front() {
            assert_eq!(Some(m.cursor().unwrap().offset), model.pop_front());
        }
        assert!(model.is_empty());
        q.free();
        assert_eq!(q.len(), 0);
        assert!(q.pop_front().is_none());
    }

    #[test]
    fn is_small() {
        assert_eq!(std::mem::size_of::<Queue>(), 16);
    }
}
