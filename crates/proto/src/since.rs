//! Where a subscription starts: the `since` of `GET /ch/NAME?since=…`, of `/sub`'s
//! `channel=NAME,SINCE` and of the `/ws` `subscribe` command.
//!
//! | text | meaning |
//! |---|---|
//! | `E:N` (a [`Cursor`]) | resume: everything after offset `N` of epoch `E` |
//! | `oldest` | join with all the history the channel still holds |
//! | `last:N` | join with the last `N` messages the channel holds (fewer if it holds fewer) |
//!
//! No `since` at all means "from now". `oldest` and `last:N` are resolved to a cursor by
//! the server when it subscribes (the channel's retention decides what is there); a
//! channel that holds fewer messages than asked starts at its oldest, without a `reset`:
//! nothing the client asked for was lost. `last` cannot be read as a cursor (`l`, `s` and
//! `t` are not hex digits), so the three forms never overlap.

use std::fmt;

use crate::cursor::{Cursor, CursorError};

/// Where a subscription starts (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Since {
    /// After this cursor.
    After(Cursor),
    /// With everything the channel still holds.
    Oldest,
    /// With (at most) the last N messages.
    Last(u32),
}

/// The text of [`Since::Oldest`].
pub const OLDEST: &str = "oldest";

const LAST_PREFIX: &[u8] = b"last:";

impl Since {
    /// Parses `E:N`, `oldest` or `last:N` (N a decimal `u32`).
    pub fn parse(input: &[u8]) -> Result<Self, CursorError> {
        if input == OLDEST.as_bytes() {
            return Ok(Since::Oldest);
        }
        if let Some(n) = input.strip_prefix(LAST_PREFIX) {
            if n.is_empty() || n.len() > 10 || !n.iter().all(u8::is_ascii_digit) {
                return Err(CursorError::InvalidOffset);
            }
            return std::str::from_utf8(n)
                .ok()
                .and_then(|s| s.parse().ok())
                .map(Since::Last)
                .ok_or(CursorError::InvalidOffset);
        }
        Cursor::parse(input).map(Since::After)
    }

    /// The cursor, when this is one.
    pub const fn cursor(self) -> Option<Cursor> {
        match self {
            Since::After(c) => Some(c),
            Since::Oldest | Since::Last(_) => None,
        }
    }
}

impl From<Cursor> for Since {
    fn from(c: Cursor) -> Self {
        Since::After(c)
    }
}

impl fmt::Display for Since {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Since::After(c) => fmt::Display::fmt(c, f),
            Since::Oldest => f.write_str(OLDEST),
            Since::Last(n) => write!(f, "last:{n}"),
        }
    }
}

impl std::str::FromStr for Since {
    type Err = CursorError;
    fn from_str(s: &str) -> Result<Self, CursorError> {
        Since::parse(s.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cursor::Epoch;

    #[test]
    fn forms_round_trip() {
        let cases: &[(&str, Since)] = &[
            ("abc:3", Since::After(Cursor::new(Epoch(0xabc), 3))),
            ("oldest", Since::Oldest),
            ("last:0", Since::Last(0)),
            ("last:25", Since::Last(25)),
            ("last:4294967295", Since::Last(u32::MAX)),
        ];
        for &(text, want) in cases {
            assert_eq!(text.parse::<Since>(), Ok(want), "{text}");
            assert_eq!(want.to_string(), text);
        }
        assert_eq!(
            Since::After(Cursor::new(Epoch(1), 2)).cursor(),
            Some(Cursor::new(Epoch(1), 2))
        );
        assert_eq!(Since::Oldest.cursor(), None);
    }

    #[test]
    fn malformed() {
        for bad in [
            "",
            "Oldest",
            "oldest ",
            "last:",
            "last:-1",
            "last:x",
            "last:4294967296",
            "last:12345678901",
            "last: 3",
            "latest",
            "abc",
        ] {
            assert!(bad.parse::<Since>().is_err(), "{bad:?}");
        }
    }
}
