//! Channel names: validation and namespace lookup.
//!
//! A name is 1 to `max_channel_len` bytes of `A-Z a-z 0-9 _ - . : @ = ~` (safe in URL
//! paths and query strings without escaping). The namespace is the part before the first
//! `:`; both sides of that `:` must be non-empty. Later `:` belong to the name
//! (`chat:room:42` is in `chat`).

use crate::error::ChannelNameError;

const fn allowed(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':' | b'@' | b'=' | b'~')
}

/// Validates `name` and returns its namespace (`""` when it has no `:`).
pub fn parse_channel(name: &str, max_len: usize) -> Result<&str, ChannelNameError> {
    if name.is_empty() {
        return Err(ChannelNameError::Empty);
    }
    if name.len() > max_len {
        return Err(ChannelNameError::TooLong { max: max_len });
    }
    if let Some(index) = name.bytes().position(|b| !allowed(b)) {
        return Err(ChannelNameError::BadChar { index });
    }
    match name.split_once(':') {
        None => Ok(""),
        Some(("", _)) => Err(ChannelNameError::EmptyNamespace),
        Some((_, "")) => Err(ChannelNameError::EmptyName),
        Some((ns, _)) => Ok(ns),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let long = "a".repeat(256);
        let max = "a".repeat(255);
        let cases: &[(&str, Result<&str, ChannelNameError>)] = &[
            ("lobby", Ok("")),
            ("chat:lobby", Ok("chat")),
            ("chat:room:42", Ok("chat")),
            ("a-b_c.d@e=f~g", Ok("")),
            ("user:alice@example.com", Ok("user")),
            (&max, Ok("")),
            ("", Err(ChannelNameError::Empty)),
            (&long, Err(ChannelNameError::TooLong { max: 255 })),
            (":lobby", Err(ChannelNameError::EmptyNamespace)),
            ("chat:", Err(ChannelNameError::EmptyName)),
            ("chat lobby", Err(ChannelNameError::BadChar { index: 4 })),
            ("chat/lobby", Err(ChannelNameError::BadChar { index: 4 })),
            ("a?b", Err(ChannelNameError::BadChar { index: 1 })),
            ("a%20", Err(ChannelNameError::BadChar { index: 1 })),
            ("é", Err(ChannelNameError::BadChar { index: 0 })),
            ("a\nb", Err(ChannelNameError::BadChar { index: 1 })),
            ("a\"b", Err(ChannelNameError::BadChar { index: 1 })),
        ];
        for (name, want) in cases {
            assert_eq!(parse_channel(name, 255), *want, "{name:?}");
        }
    }
}
