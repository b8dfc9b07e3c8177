//! [`Bucket`]: the wakers a wheel holds for one tick, each in a slot that its sleeper
//! records so that it can take the waker out again.

use std::task::Waker;

/// The wakers of one tick, in slots of fixed-size chunks: a bucket never holds more than
/// one chunk of spare room past its highest slot, where a doubling `Vec` of thousands of
/// wakers (every connection opened in the same half second) would hold up to as many
/// again. A cancelled waker's slot is reused by the bucket's next registration.
#[derive(Default)]
pub(crate) struct Bucket {
    chunks: Vec<Vec<Option<Waker>>>,
    /// Slots emptied by a cancel.
    free: Vec<u32>,
    /// Wakers held.
    live: usize,
}

impl Bucket {
    const CHUNK: usize = 64;

    /// Holds `waker`; returns its slot.
    pub(crate) fn insert(&mut self, waker: Waker) -> usize {
        self.live += 1;
        if let Some(slot) = self.free.pop() {
            let slot = slot as usize;
            if let Some(entry) = self.slot_mut(slot) {
                *entry = Some(waker);
                return slot;
            }
        }
        match self.chunks.last_mut() {
            Some(chunk) if chunk.len() < Self::CHUNK => chunk.push(Some(waker)),
            _ => {
                let mut chunk = Vec::with_capacity(Self::CHUNK);
                chunk.push(Some(waker));
                self.chunks.push(chunk);
            }
        }
        (self.chunks.len() - 1) * Self::CHUNK + self.chunks.last().map_or(1, Vec::len) - 1
    }

    /// Takes the waker out of `slot` (`None` if it holds none).
    pub(crate) fn remove(&mut self, slot: usize) -> Option<Waker> {
        let waker = self.slot_mut(slot)?.take()?;
        self.live -= 1;
        // Only slots a sleeper recorded (at most MAX_SLOT) are removed: this always fits.
        if let Ok(slot) = u32::try_from(slot) {
            self.free.push(slot);
        }
        Some(waker)
    }

    fn slot_mut(&mut self, slot: usize) -> Option<&mut Option<Waker>> {
        self.chunks
            .get_mut(slot / Self::CHUNK)?
            .get_mut(slot % Self::CHUNK)
    }

    pub(crate) fn len(&self) -> usize {
        self.live
    }

    pub(crate) fn into_wakers(self) -> impl Iterator<Item = Waker> {
        self.chunks.into_iter().flatten().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_keeps_at_most_one_chunk_of_spare_room_and_reuses_cancelled_slots() {
        let mut b = Bucket::default();
        let slots: Vec<usize> = (0..200).map(|_| b.insert(Waker::noop().clone())).collect();
        assert_eq!(slots, (0..200).collect::<Vec<_>>());
        assert_eq!(b.len(), 200);
        let room: usize = b.chunks.iter().map(|c| c.capacity() - c.len()).sum();
        assert!(room < Bucket::CHUNK, "spare room {room}");
        for slot in 10..19 {
            assert!(b.remove(slot).is_some());
        }
        assert!(b.remove(10).is_none(), "a slot is emptied once");
        assert_eq!(b.len(), 191);
        let chunks = b.chunks.len();
        let mut reused: Vec<usize> = (0..9).map(|_| b.insert(Waker::noop().clone())).collect();
        reused.sort_unstable();
        assert_eq!(reused, (10..19).collect::<Vec<_>>());
        assert_eq!(
            b.chunks.len(),
            chunks,
            "no chunk added while slots were free"
        );
        assert_eq!(b.into_wakers().count(), 200);
    }
}
