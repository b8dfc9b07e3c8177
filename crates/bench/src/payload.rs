//! The generator's message payload and how it is found again on any transport.
//!
//! A payload is ASCII text `~sb<seq>.<micros>~` padded with `x` to the requested size:
//! a sequence number and the sender's wall-clock time in microseconds. It is not JSON
//! (so servers that embed JSON carry it as a string) and needs no escaping, so the same
//! bytes appear verbatim inside a WebSocket frame, an SSE `data:` line, a streamed
//! envelope or a poll body; [`scan`] finds every complete marker in a byte buffer.
//! [`Fill::Records`] makes the payload a JSON object of records instead (the marker in its
//! first field), for measuring compression on something like real data.

use std::time::{SystemTime, UNIX_EPOCH};

const OPEN: &[u8] = b"~sb";

/// Microseconds since the Unix epoch (shared by every generator process on the machine).
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// A payload for `seq` sent at `micros`, padded to `size` bytes (longer when the marker
/// itself does not fit).
pub fn encode(seq: u64, micros: u64, size: usize) -> String {
    let mut s = format!("~sb{seq}.{micros}~");
    while s.len() < size {
        s.push('x');
    }
    s
}

/// What pads a payload to its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fill {
    /// `x` repeated (see [`encode`]): as compressible as text gets.
    #[default]
    X,
    /// A JSON object `{"m":"<marker>","items":[{"id":…,"user":…,"score":…,"tags":[…]},…]}`
    /// whose numbers vary from message to message, padded with spaces before its end.
    Records,
}

/// A payload for `seq` sent at `micros`, `size` bytes (longer when the marker does not
/// fit), padded as `fill` says.
pub fn encode_filled(seq: u64, micros: u64, size: usize, fill: Fill) -> String {
    match fill {
        Fill::X => encode(seq, micros, size),
        Fill::Records => records(seq, micros, size),
    }
}

fn records(seq: u64, micros: u64, size: usize) -> String {
    const TAGS: [&str; 4] = ["red", "green", "blue", "amber"];
    const END: &str = "]}";
    let mut s = format!("{{\"m\":\"~sb{seq}.{micros}~\",\"items\":[");
    // A cheap generator seeded by the sequence number: the same message every run.
    let mut x = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for k in 0.. {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let record = format!(
            "{}{{\"id\":{},\"user\":\"user-{}\",\"score\":{},\"tags\":[\"{}\",\"{}\"]}}",
            if k == 0 { "" } else { "," },
            x % 1_000_000,
            (x >> 20) % 10_000,
            (x >> 34) % 100,
            TAGS[(x >> 41) as usize % 4],
            TAGS[(x >> 43) as usize % 4],
        );
        if s.len() + record.len() + END.len() > size {
            break;
        }
        s.push_str(&record);
    }
    while s.len() + END.len() < size {
        s.push(' ');
    }
    s.push_str(END);
    s
}

/// Calls `found(seq, micros)` for every complete marker in `buf` and returns how many
/// leading bytes the caller may drop (everything before an unfinished marker at the end).
pub fn scan(buf: &[u8], mut found: impl FnMut(u64, u64)) -> usize {
    let mut pos = 0;
    while let Some(i) = memchr::memmem::find(&buf[pos..], OPEN) {
        let start = pos + i;
        let body = &buf[start + OPEN.len()..];
        match parse_marker(body) {
            Marker::Complete { seq, micros, len } => {
                found(seq, micros);
                pos = start + OPEN.len() + len;
            }
            Marker::Malformed => pos = start + OPEN.len(),
            Marker::Partial => return start,
        }
    }
    // Keep a possible prefix of `~sb` at the very end.
    buf.len().saturating_sub(OPEN.len() - 1).max(pos)
}

enum Marker {
    Complete { seq: u64, micros: u64, len: usize },
    Partial,
    Malformed,
}

fn parse_marker(b: &[u8]) -> Marker {
    let Some((seq, a)) = digits(b) else {
        return Marker::Partial;
    };
    match b.get(a) {
        Some(b'.') => {}
        Some(_) => return Marker::Malformed,
        None => return Marker::Partial,
    }
    let Some((micros, c)) = digits(&b[a + 1..]) else {
        return Marker::Partial;
    };
    match b.get(a + 1 + c) {
        Some(b'~') if a > 0 && c > 0 => Marker::Complete {
            seq,
            micros,
            len: a + 1 + c + 1,
        },
        Some(_) => Marker::Malformed,
        None => Marker::Partial,
    }
}

/// The decimal number at the start of `b` and its length; `None` when `b` ends inside
/// the digits (more may follow). Overlong numbers wrap rather than fail: they only come
/// from a broken server and show up as missing messages.
fn digits(b: &[u8]) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    for (i, &c) in b.iter().enumerate() {
        if c.is_ascii_digit() {
            v = v.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
        } else {
            return Some((v, i));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(buf: &[u8]) -> (Vec<(u64, u64)>, usize) {
        let mut v = Vec::new();
        let keep = scan(buf, |s, t| v.push((s, t)));
        (v, keep)
    }

    #[test]
    fn padded_to_size_and_found_in_envelopes() {
        let p = encode(7, 123, 64);
        assert_eq!(p.len(), 64);
        let env = format!(
            "{{\"channel\":\"c\",\"data\":\"{p}\"}}data: {}\n",
            encode(8, 9, 0)
        );
        let (v, keep) = all(env.as_bytes());
        assert_eq!(v, vec![(7, 123), (8, 9)]);
        // Everything up to the end of the last marker may go.
        assert_eq!(keep, env.len() - 1);
    }

    #[test]
    fn records_are_json_of_the_size_with_the_marker() {
        for size in [0, 64, 1024, 4000] {
            let p = encode_filled(5, 77, size, Fill::Records);
            if size >= 64 {
                assert_eq!(p.len(), size);
            }
            let v: serde_json::Value =
                serde_json::from_str(&p).unwrap_or_else(|e| panic!("{e}: {p}"));
            assert!(v["items"].is_array());
            assert_eq!(all(p.as_bytes()).0, vec![(5, 77)]);
        }
        assert_ne!(
            encode_filled(5, 77, 1024, Fill::Records)[30..],
            encode_filled(6, 77, 1024, Fill::Records)[30..]
        );
    }

    #[test]
    fn split_markers_are_kept_for_the_next_read() {
        let p = encode(42, 1000, 0);
        for cut in 0..p.len() {
            let (v, keep) = all(&p.as_bytes()[..cut]);
            assert!(v.is_empty());
            // Whatever was kept plus the rest yields the marker exactly once.
            let mut joined = p.as_bytes()[keep.min(cut)..cut].to_vec();
            joined.extend_from_slice(&p.as_bytes()[cut..]);
            assert_eq!(all(&joined).0, vec![(42, 1000)], "cut at {cut}");
        }
    }

    #[test]
    fn malformed_markers_are_skipped() {
        let (v, _) = all(b"~sbx ~sb1.~ ~sb.5~ ~sb3.4~");
        assert_eq!(v, vec![(3, 4)]);
    }
}
