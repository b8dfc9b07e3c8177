//! Minimal JSON writing helpers shared by the encoders: string escaping, raw JSON
//! embedding and base64, all appending to a `BytesMut` without temporary allocations; and
//! [`raw_or_null`], for reading a payload field whose value may be `null`.
//!
//! Why not `serde_json::to_writer` of a derived envelope: it takes 1.2–2.5× the
//! instructions for JSON and binary payloads and needs a `RawValue` per message (measured,
//! `docs/perf/handwritten.md`, section 1). String escaping is serde_json's own, which
//! measured faster than a hand-written loop (same section).

use base64::Engine as _;
use bytes::{BufMut, BytesMut};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// Appends `s` as a JSON string literal (with quotes), escaped by serde_json (which
/// takes fewer instructions than the hand-written loop this replaced: 1,467 against 1,749
/// for a short string, 17,160 against 20,739 for 1 KiB; `docs/perf/handwritten.md`,
/// section 1).
pub(crate) fn write_str(out: &mut BytesMut, s: &str) {
    out.reserve(s.len() + 2);
    // Writing a `str` into a `BytesMut` cannot fail.
    let _ = serde_json::to_writer(out.writer(), s);
}

/// Appends already-valid JSON text, turning raw CR/LF into spaces so the result stays on
/// one line. In valid JSON a raw CR or LF can only be insignificant whitespace (inside
/// strings they must be escaped), so the value is unchanged.
pub(crate) fn write_raw_one_line(out: &mut BytesMut, json: &[u8]) {
    let start = out.len();
    out.extend_from_slice(json);
    for b in &mut out[start..] {
        if *b == b'\n' || *b == b'\r' {
            *b = b' ';
        }
    }
}

/// Appends the standard (padded) base64 of `data`, without quotes.
pub(crate) fn write_base64(out: &mut BytesMut, data: &[u8]) {
    let Some(len) = base64::encoded_len(data.len(), true) else {
        // Only for inputs near usize::MAX, which cannot exist in memory.
        return;
    };
    let start = out.len();
    out.resize(start + len, 0);
    let written = base64::engine::general_purpose::STANDARD
        .encode_slice(data, &mut out[start..])
        .unwrap_or(0);
    out.truncate(start + written);
}

/// The decimal digits of `n`, written at the end of `tmp` (20 bytes hold any u64).
pub(crate) fn u64_digits(mut n: u64, tmp: &mut [u8; 20]) -> &[u8] {
    let mut t = tmp.len();
    loop {
        t -= 1;
        tmp[t] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &tmp[t..]
}

/// Appends a u64 in decimal.
pub(crate) fn write_u64(out: &mut BytesMut, n: u64) {
    out.extend_from_slice(u64_digits(n, &mut [0u8; 20]));
}

/// For `#[serde(default, borrow, deserialize_with = "raw_or_null")]` on an
/// `Option<&RawValue>` field: a present field is `Some` of its JSON text, `null` included.
/// (Plain `Option` reads `"data":null` as `None`, as if the field were absent; but `null`
/// is a payload like any other.)
///
/// # Errors
/// When the field is not valid JSON.
pub fn raw_or_null<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_serde_json() {
        for s in [
            "",
            "plain",
            "q\"b\\s",
            "nl\nt\tcr\r",
            "\u{1}\u{1f}",
            "é ünï 😀",
            "</script>",
        ] {
            let mut out = BytesMut::new();
            write_str(&mut out, s);
            let back: String =
                serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{s:?}: {e}"));
            assert_eq!(back, s);
        }
    }

    #[test]
    fn raw_json_is_flattened_to_one_line() {
        let mut out = BytesMut::new();
        write_raw_one_line(&mut out, b"{\r\n  \"a\": \"x\\ny\"\n}");
        assert_eq!(&out[..], b"{    \"a\": \"x\\ny\" }");
    }

    #[test]
    fn base64_and_numbers() {
        let mut out = BytesMut::new();
        write_base64(&mut out, b"\x00\xffhi");
        out.extend_from_slice(b" ");
        write_u64(&mut out, 0);
        out.extend_from_slice(b" ");
        write_u64(&mut out, u64::MAX);
        assert_eq!(&out[..], b"AP9oaQ== 0 18446744073709551615");
    }
}
