//! Incremental UTF-8 validation for text messages that arrive in pieces.
//!
//! A text message may be split across frames and each frame across reads, and a code point
//! across any of those boundaries. [`Utf8Validator`] keeps at most three bytes of an
//! incomplete code point between chunks and reports invalid input as soon as the first byte
//! that cannot start or continue a valid sequence arrives (so a connection fails while the
//! frame is still streaming in, as RFC 6455 §8.1 and the Autobahn 6.4.x cases require).
//! The bulk of each chunk is checked with `simdutf8`, whose `compat` API tells a truncated
//! tail (possibly valid) from an impossible byte.

use crate::error::ProtocolError;

/// Validates a byte stream chunk by chunk; see the module docs.
#[derive(Debug, Default, Clone)]
pub struct Utf8Validator {
    partial: [u8; 4],
    partial_len: u8,
}

/// Length of the sequence a valid lead byte starts (only called on leads already accepted).
fn sequence_len(lead: u8) -> usize {
    match lead {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

impl Utf8Validator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Validate the next chunk. Fails as soon as the stream can no longer be valid UTF-8.
    pub fn feed(&mut self, mut chunk: &[u8]) -> Result<(), ProtocolError> {
        if self.partial_len > 0 {
            let have = usize::from(self.partial_len);
            let need = sequence_len(self.partial[0]) - have;
            let take = need.min(chunk.len());
            let mut tmp = self.partial;
            tmp[have..have + take].copy_from_slice(&chunk[..take]);
            match std::str::from_utf8(&tmp[..have + take]) {
                Ok(_) => self.partial_len = 0,
                Err(e) if e.error_len().is_none() => {
                    // Still a valid prefix; `take` was all of the chunk.
                    self.partial = tmp;
                    self.partial_len = (have + take) as u8;
                    return Ok(());
                }
                Err(_) => return Err(ProtocolError::InvalidUtf8),
            }
            chunk = &chunk[take..];
        }
        match simdutf8::compat::from_utf8(chunk) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_none() => {
                let tail = &chunk[e.valid_up_to()..];
                self.partial[..tail.len()].copy_from_slice(tail);
                self.partial_len = tail.len() as u8;
                Ok(())
            }
            Err(_) => Err(ProtocolError::InvalidUtf8),
        }
    }

    /// The message ended: fail if a code point is left incomplete. Resets the validator.
    pub fn finish(&mut self) -> Result<(), ProtocolError> {
        let complete = self.partial_len == 0;
        self.reset();
        if complete {
            Ok(())
        } else {
            Err(ProtocolError::InvalidUtf8)
        }
    }

    pub fn reset(&mut self) {
        self.partial_len = 0;
    }

    /// Whether an incomplete code point is pending.
    pub fn is_incomplete(&self) -> bool {
        self.partial_len > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check_split(bytes: &[u8], cuts: &[usize]) -> bool {
        let mut v = Utf8Validator::new();
        let mut pos = 0;
        for &c in cuts {
            let c = c.min(bytes.len()).max(pos);
            if v.feed(&bytes[pos..c]).is_err() {
                return false;
            }
            pos = c;
        }
        v.feed(&bytes[pos..]).is_ok() && v.finish().is_ok()
    }

    #[test]
    fn valid_split_everywhere() {
        let s = "κόσμε a€𝄞 ü\u{10FFFF}".as_bytes();
        for i in 0..=s.len() {
            for j in i..=s.len() {
                assert!(check_split(s, &[i, j]), "split {i} {j}");
            }
        }
    }

    #[test]
    fn fails_at_first_impossible_byte() {
        // Each input is invalid by its last byte even though more could follow.
        let cases: &[&[u8]] = &[
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90", // > U+10FFFF (6.4.1-ish)
            b"\xed\xa0",                                             // surrogate
            b"\xc0",                                                 // overlong lead
            b"\xe0\x80",                                             // overlong
            b"\xff",
            b"abc\x80",
            b"\xf0\x90\x80\x41",
        ];
        for case in cases {
            // Whole chunk.
            assert!(Utf8Validator::new().feed(case).is_err(), "{case:?}");
            // Byte by byte: the error appears exactly at the last byte.
            let mut v = Utf8Validator::new();
            for (i, b) in case.iter().enumerate() {
                let r = v.feed(std::slice::from_ref(b));
                assert_eq!(r.is_err(), i == case.len() - 1, "{case:?} at {i}");
            }
        }
    }

    #[test]
    fn incomplete_at_end_fails() {
        let mut v = Utf8Validator::new();
        v.feed(b"ab\xe2\x82").expect("prefix is valid so far");
        assert!(v.is_incomplete());
        assert!(v.finish().is_err());
        // finish resets.
        v.feed(b"ok").expect("valid");
        v.finish().expect("valid");
    }

    proptest! {
        #[test]
        fn agrees_with_std(bytes in proptest::collection::vec(any::<u8>(), 0..40),
                           cuts in proptest::collection::vec(0usize..40, 0..6)) {
            let mut cuts = cuts;
            cuts.sort_unstable();
            prop_assert_eq!(check_split(&bytes, &cuts), std::str::from_utf8(&bytes).is_ok());
        }

        #[test]
        fn valid_strings_any_split(s in "\\PC{0,30}", cuts in proptest::collection::vec(0usize..120, 0..6)) {
            let mut cuts = cuts;
            cuts.sort_unstable();
            prop_assert!(check_split(s.as_bytes(), &cuts));
        }
    }
}
