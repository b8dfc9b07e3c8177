//! Cursors: a subscriber's position in a channel's log, written `epoch:offset`.
//!
//! * `epoch` is a random 64-bit id for one life of a channel's history, written as 1 to 16
//!   lowercase hex digits (no leading zeros when formatted; upper case is accepted on input).
//! * `offset` is the decimal offset of the last message the holder has seen (0 = none yet).
//!
//! A cursor `e:n` therefore means "everything up to and including offset `n` of epoch `e`";
//! resuming from it asks for offsets `n+1, n+2, …`. Formatting never allocates
//! ([`Cursor::to_str_buf`]); parsing is strict and reports why an input was refused
//! ([`CursorError`]), which a server answers with HTTP 400.

use std::fmt;
use std::str::FromStr;

/// One life of a channel's history. Displayed as lowercase hex without leading zeros.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Epoch(pub u64);

/// A position in a channel's log: the last offset seen inside an epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Cursor {
    /// The epoch the offset belongs to.
    pub epoch: Epoch,
    /// The last offset seen (0 = before the first message).
    pub offset: u64,
}

/// Longest text form: 16 hex digits, `:`, 20 decimal digits.
pub const CURSOR_MAX_LEN: usize = 16 + 1 + 20;

/// A cursor formatted on the stack; derefs to `&str`.
#[derive(Clone, Copy)]
pub struct CursorStr {
    buf: [u8; CURSOR_MAX_LEN],
    len: u8,
}

impl CursorStr {
    /// The formatted cursor.
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits, ':' and decimal digits are ever written.
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl std::ops::Deref for CursorStr {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for CursorStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl Cursor {
    /// A cursor at `offset` inside `epoch`.
    pub const fn new(epoch: Epoch, offset: u64) -> Self {
        Cursor { epoch, offset }
    }

    /// The cursor one message further (`offset + 1`, same epoch).
    pub const fn next(self) -> Self {
        Cursor {
            epoch: self.epoch,
            offset: self.offset.saturating_add(1),
        }
    }

    /// How many messages lie between this position and `later` (`later.offset −
    /// self.offset`) when both are of one epoch and `later` is not behind; `None`
    /// otherwise (across epochs nobody knows). What a `reset` from here to `later` lost.
    pub const fn distance_to(self, later: Cursor) -> Option<u64> {
        if self.epoch.0 != later.epoch.0 {
            return None;
        }
        later.offset.checked_sub(self.offset)
    }

    /// Formats the cursor without allocating.
    pub fn to_str_buf(&self) -> CursorStr {
        let mut buf = [0u8; CURSOR_MAX_LEN];
        let mut len = 0;
        let e = self.epoch.0;
        let digits = if e == 0 {
            1
        } else {
            (64 - e.leading_zeros()).div_ceil(4) as usize
        };
        for i in (0..digits).rev() {
            let nibble = ((e >> (i * 4)) & 0xf) as u8;
            buf[len] = b"0123456789abcdef"[usize::from(nibble)];
            len += 1;
        }
        buf[len] = b':';
        len += 1;
        let mut tmp = [0u8; 20];
        let d = crate::json::u64_digits(self.offset, &mut tmp);
        buf[len..len + d.len()].copy_from_slice(d);
        len += d.len();
        CursorStr {
            buf,
            len: len as u8,
        }
    }

    /// Parses `epoch:offset` from bytes (see the module docs for the grammar).
    pub fn parse(input: &[u8]) -> Result<Self, CursorError> {
        if input.is_empty() {
            return Err(CursorError::Empty);
        }
        if input.len() > CURSOR_MAX_LEN {
            return Err(CursorError::TooLong);
        }
        let colon = input
            .iter()
            .position(|&b| b == b':')
            .ok_or(CursorError::MissingSeparator)?;
        let (ep, off) = (&input[..colon], &input[colon + 1..]);
        if ep.is_empty() || ep.len() > 16 {
            return Err(CursorError::InvalidEpoch);
        }
        let mut epoch = 0u64;
        for &b in ep {
            let v = match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                b'A'..=b'F' => b - b'A' + 10,
                _ => return Err(CursorError::InvalidEpoch),
            };
            epoch = (epoch << 4) | u64::from(v);
        }
        if off.is_empty() || off.len() > 20 {
            return Err(CursorError::InvalidOffset);
        }
        let mut offset = 0u64;
        for &b in off {
            if !b.is_ascii_digit() {
                return Err(CursorError::InvalidOffset);
            }
            offset = offset
                .checked_mul(10)
                .and_then(|o| o.checked_add(u64::from(b - b'0')))
                .ok_or(CursorError::InvalidOffset)?;
        }
        Ok(Cursor {
            epoch: Epoch(epoch),
            offset,
        })
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_str_buf())
    }
}

impl FromStr for Cursor {
    type Err = CursorError;
    fn from_str(s: &str) -> Result<Self, CursorError> {
        Cursor::parse(s.as_bytes())
    }
}

impl serde::Serialize for Cursor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_str_buf())
    }
}

impl<'de> serde::Deserialize<'de> for Cursor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Cursor::parse(s.as_bytes()).map_err(serde::de::Error::custom)
    }
}

/// Why a cursor string was refused. Always the client's fault (HTTP 400).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CursorError {
    /// The input was empty.
    Empty,
    /// Longer than [`CURSOR_MAX_LEN`] bytes.
    TooLong,
    /// No `:` between epoch and offset.
    MissingSeparator,
    /// The epoch is not 1 to 16 hex digits.
    InvalidEpoch,
    /// The offset is not 1 to 20 decimal digits fitting in a u64.
    InvalidOffset,
}

impl CursorError {
    /// What is wrong, without the "malformed cursor" the [`Display`](fmt::Display) puts
    /// first: for a message that says "cursor" itself (the server's errors do).
    pub const fn reason(&self) -> &'static str {
        match self {
            CursorError::Empty => "empty",
            CursorError::TooLong => "too long",
            CursorError::MissingSeparator => "expected `epoch:offset`",
            CursorError::InvalidEpoch => "epoch must be 1-16 hex digits",
            CursorError::InvalidOffset => "offset must be a decimal u64",
        }
    }
}

impl fmt::Display for CursorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed cursor: {}", self.reason())
    }
}

impl std::error::Error for CursorError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_and_parse_round_trip() {
        let cases: &[(u64, u64, &str)] = &[
            (0, 0, "0:0"),
            (0xabc, 3, "abc:3"),
            (u64::MAX, u64::MAX, "ffffffffffffffff:18446744073709551615"),
            (0x10, 10, "10:10"),
            (0x0123_4567_89ab_cdef, 1, "123456789abcdef:1"),
        ];
        for &(e, o, s) in cases {
            let c = Cursor::new(Epoch(e), o);
            assert_eq!(c.to_string(), s);
            assert_eq!(&*c.to_str_buf(), s);
            assert_eq!(s.parse::<Cursor>(), Ok(c), "{s}");
        }
        assert_eq!("ABC:7".parse::<Cursor>(), Ok(Cursor::new(Epoch(0xabc), 7)));
        assert_eq!(
            "000abc:007".parse::<Cursor>(),
            Ok(Cursor::new(Epoch(0xabc), 7))
        );
    }

    #[test]
    fn distance_within_an_epoch_only() {
        let (a, b) = (Epoch(1), Epoch(2));
        assert_eq!(Cursor::new(a, 1).distance_to(Cursor::new(a, 4)), Some(3));
        assert_eq!(Cursor::new(a, 4).distance_to(Cursor::new(a, 4)), Some(0));
        assert_eq!(Cursor::new(a, 5).distance_to(Cursor::new(a, 4)), None);
        assert_eq!(Cursor::new(a, 1).distance_to(Cursor::new(b, 4)), None);
    }

    #[test]
    fn malformed_inputs() {
        let cases: &[(&str, CursorError)] = &[
            ("", CursorError::Empty),
            ("abc", CursorError::MissingSeparator),
            (":3", CursorError::InvalidEpoch),
            ("abc:", CursorError::InvalidOffset),
            ("xyz:3", CursorError::InvalidEpoch),
            ("abc:-3", CursorError::InvalidOffset),
            ("abc:+3", CursorError::InvalidOffset),
            ("abc:3:4", CursorError::InvalidOffset),
            ("abc: 3", CursorError::InvalidOffset),
            (" abc:3", CursorError::InvalidEpoch),
            ("abc:18446744073709551616", CursorError::InvalidOffset),
            ("11111111111111111:1", CursorError::InvalidEpoch),
            ("1:123456789012345678901", CursorError::InvalidOffset),
            (
                "ffffffffffffffff:184467440737095516150",
                CursorError::TooLong,
            ),
            ("é:1", CursorError::InvalidEpoch),
        ];
        for &(s, err) in cases {
            assert_eq!(s.parse::<Cursor>(), Err(err), "{s:?}");
            assert!(!err.to_string().is_empty());
        }
    }

    #[test]
    fn serde_uses_the_string_form() {
        let c = Cursor::new(Epoch(0xab), 9);
        assert_eq!(serde_json::to_string(&c).unwrap_or_default(), "\"ab:9\"");
        let back: Result<Cursor, _> = serde_json::from_str("\"ab:9\"");
        assert_eq!(back.ok(), Some(c));
        assert!(serde_json::from_str::<Cursor>("\"ab\"").is_err());
    }
}
