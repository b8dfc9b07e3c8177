//! The HTTP-streaming body: one response that never ends, one envelope JSON per line.
//!
//! The body starts with [`stream_prelude`]: a line of 2048 spaces, so proxies and browsers
//! that buffer the first kilobytes of a response start delivering at once. Clients ignore
//! lines that are empty or only whitespace; that is also the heartbeat ([`stream_heartbeat`]).
//! Every other line is one envelope (see [`crate::envelope`]), which is always one line.

use bytes::{BufMut, Bytes, BytesMut};

use crate::envelope::Envelope;
use crate::sse::PRELUDE_PADDING;

static STREAM_PRELUDE: [u8; PRELUDE_PADDING + 1] = {
    let mut a = [b' '; PRELUDE_PADDING + 1];
    a[PRELUDE_PADDING] = b'\n';
    a
};

/// 2048 spaces and a newline; the first bytes of every streaming response.
pub fn stream_prelude() -> Bytes {
    Bytes::from_static(&STREAM_PRELUDE)
}

/// An empty line; keeps idle connections and proxies alive.
pub fn stream_heartbeat() -> Bytes {
    Bytes::from_static(b"\n")
}

/// Appends one envelope line (JSON + `\n`).
pub fn write_stream_line(out: &mut BytesMut, env: &Envelope<'_>) {
    env.write_json(out);
    out.put_u8(b'\n');
}

/// One envelope line (JSON + `\n`).
pub fn encode_stream_line(env: &Envelope<'_>) -> Bytes {
    let mut out = BytesMut::new();
    write_stream_line(&mut out, env);
    out.freeze()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::cursor::{Cursor, Epoch};
    use crate::envelope::Data;

    #[test]
    fn lines_table() {
        let c = Cursor::new(Epoch(0xabc), 3);
        let cases: &[(Envelope<'_>, &str)] = &[
            (
                Envelope::message("c", c, Data::Json(b"{\n\"a\":\"x\\ny\"\n}")),
                "{\"channel\":\"c\",\"event\":\"message\",\"offset\":3,\"cursor\":\"abc:3\",\"data\":{ \"a\":\"x\\ny\" }}\n",
            ),
            (
                Envelope::message("c", c, Data::Text("multi\nline")),
                "{\"channel\":\"c\",\"event\":\"message\",\"offset\":3,\"cursor\":\"abc:3\",\"data\":\"multi\\nline\"}\n",
            ),
            (Envelope::reset("c", c), "{\"channel\":\"c\",\"event\":\"reset\",\"offset\":3,\"cursor\":\"abc:3\"}\n"),
        ];
        for (env, want) in cases {
            let line = encode_stream_line(env);
            assert_eq!(std::str::from_utf8(&line).unwrap(), *want);
            assert_eq!(
                line.iter().filter(|&&b| b == b'\n').count(),
                1,
                "exactly one line"
            );
        }
    }

    #[test]
    fn prelude_and_heartbeat() {
        let p = stream_prelude();
        assert!(p.len() >= 2048);
        assert_eq!(p.iter().filter(|&&b| b == b'\n').count(), 1);
        assert!(p.iter().all(|&b| b == b' ' || b == b'\n'));
        assert_eq!(p[p.len() - 1], b'\n');
        assert_eq!(&stream_heartbeat()[..], b"\n");
    }
}
