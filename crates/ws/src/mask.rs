//! Client-to-server payload masking (RFC 6455 §5.3).
//!
//! Masking XORs payload byte `i` with `key[i % 4]`. [`apply_mask`] takes the position of
//! `buf` within the payload (`offset`) so a payload that arrives in pieces can be unmasked
//! piece by piece. It works eight bytes at a time on `u64` words in safe code, which the
//! compiler turns into vector instructions; [`apply_mask_bytewise`] is the obvious byte loop,
//! kept as the reference the fast version is tested (and benchmarked) against.

/// Below this length, lining the words up costs more than unaligned accesses do.
const ALIGN_MIN_LEN: usize = 64;

/// XOR `buf` with the masking `key`, where `buf[0]` is byte `offset` of the payload.
/// Applying it twice with the same arguments restores the input.
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    // A payload unmasked in place behind its header starts at an odd address, and unaligned
    // vector accesses made that a third slower on 64 KiB: mask a few bytes first so the
    // word loop runs on 16-byte aligned memory. (`align_offset` may decline with
    // usize::MAX; then everything goes the slow way, still correctly.)
    let head = if buf.len() >= ALIGN_MIN_LEN {
        buf.as_ptr().align_offset(16).min(buf.len())
    } else {
        0
    };
    let (pre, rest) = buf.split_at_mut(head);
    apply_mask_bytewise(pre, key, offset);
    apply_mask_words(rest, key, offset.wrapping_add(head));
}

#[inline]
fn apply_mask_words(buf: &mut [u8], key: [u8; 4], offset: usize) {
    // Rotate the key so that its first byte applies to buf[0]: in little-endian order
    // key[0] is the low byte, so a right rotation by r bytes brings key[r] to the front.
    let rotated = u32::from_le_bytes(key).rotate_right(8 * (offset & 3) as u32);
    let k = rotated.to_le_bytes();
    let word = u64::from(rotated) | u64::from(rotated) << 32;
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_le_bytes(w) ^ word).to_le_bytes());
    }
    // The remainder starts at a multiple of 8, so the rotated key lines up at index 0.
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= k[i & 3];
    }
}

/// The byte-at-a-time reference for [`apply_mask`]: same result, slower.
#[inline]
pub fn apply_mask_bytewise(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[i.wrapping_add(offset) & 3];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc_example() {
        // RFC 6455 §5.7: "Hello" masked with 37 fa 21 3d.
        let mut b = *b"Hello";
        apply_mask(&mut b, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(b, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    }

    #[test]
    fn piecewise_equals_whole() {
        let key = [1, 2, 3, 250];
        let data: Vec<u8> = (0..100u8).collect();
        let mut whole = data.clone();
        apply_mask(&mut whole, key, 0);
        let mut pieces = data;
        let (a, rest) = pieces.split_at_mut(3);
        let (b, c) = rest.split_at_mut(30);
        apply_mask(a, key, 0);
        apply_mask(b, key, 3);
        apply_mask(c, key, 33);
        assert_eq!(whole, pieces);
    }

    proptest! {
        #[test]
        fn matches_bytewise(data in proptest::collection::vec(any::<u8>(), 0..200),
                            key in any::<[u8; 4]>(), offset in 0usize..64) {
            let mut fast = data.clone();
            let mut slow = data.clone();
            apply_mask(&mut fast, key, offset);
            apply_mask_bytewise(&mut slow, key, offset);
            prop_assert_eq!(&fast, &slow);
            apply_mask(&mut fast, key, offset);
            prop_assert_eq!(fast, data);
        }

        /// Every start address relative to the 16-byte boundary takes the aligned path.
        #[test]
        fn matches_bytewise_at_any_alignment(start in 0usize..16, len in 0usize..300,
                                             key in any::<[u8; 4]>(), offset in any::<usize>()) {
            let data: Vec<u8> = (0..start + len).map(|i| i as u8).collect();
            let mut fast = data.clone();
            let mut slow = data;
            apply_mask(&mut fast[start..], key, offset);
            apply_mask_bytewise(&mut slow[start..], key, offset);
            prop_assert_eq!(fast, slow);
        }
    }
}
