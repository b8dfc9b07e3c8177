//! Long-poll and poll response bodies (one JSON object per response).
//!
//! ```text
//! {"messages":[<envelope>,<envelope>],"cursor":"abc:5","reset":false}
//! ```
//!
//! * `messages`: envelopes in log order (possibly none, e.g. a long-poll timeout);
//! * `cursor`: where the next request resumes from (`?since=`); after a full answer it is
//!   the cursor of the last message (or the request's cursor when there was none);
//! * `reset: true`: the requested cursor could not be continued (history gone or the epoch
//!   changed); the messages still held follow in `messages` (the oldest held first),
//!   `cursor` is the position to continue from, and what came before the first of them
//!   is lost;
//! * `lost: N` (present only with `reset: true`, and only when known): how many messages
//!   were lost (the cursor asked for was of the same epoch; see
//!   [`crate::envelope::reset_data`]);
//! * `more: true` (present only when true): the answer was cut by a limit and the client
//!   should ask again at once from `cursor`. An answer is never silently partial.

use bytes::{BufMut, Bytes, BytesMut};

use crate::cursor::Cursor;
use crate::envelope::Envelope;

/// Builds a poll response from envelopes or pre-encoded envelope JSON (e.g. a cached
/// encoding shared by many requests).
#[derive(Debug)]
pub struct PollBody {
    out: BytesMut,
    count: usize,
    lost: Option<u64>,
}

impl Default for PollBody {
    fn default() -> Self {
        Self::new()
    }
}

impl PollBody {
    /// An empty body.
    pub fn new() -> Self {
        let mut out = BytesMut::with_capacity(256);
        out.extend_from_slice(b"{\"messages\":[");
        PollBody {
            out,
            count: 0,
            lost: None,
        }
    }

    /// Says how many messages a reset lost (written by [`PollBody::finish`] with
    /// `reset: true` only).
    pub fn set_lost(&mut self, lost: u64) {
        self.lost = Some(lost);
    }

    fn sep(&mut self) {
        if self.count > 0 {
            self.out.put_u8(b',');
        }
        self.count += 1;
    }

    /// Adds one envelope.
    pub fn push_envelope(&mut self, env: &Envelope<'_>) {
        self.sep();
        env.write_json(&mut self.out);
    }

    /// Adds one envelope already encoded as one-line JSON (see [`crate::encode_ws_text`]).
    pub fn push_json(&mut self, envelope_json: &[u8]) {
        self.sep();
        self.out.extend_from_slice(envelope_json);
    }

    /// How many messages were added.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no message was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Closes the body with the resume cursor and the flags.
    pub fn finish(mut self, cursor: Cursor, reset: bool, more: bool) -> Bytes {
        self.out.extend_from_slice(b"],\"cursor\":\"");
        self.out.extend_from_slice(cursor.to_str_buf().as_bytes());
        self.out.extend_from_slice(if reset {
            b"\",\"reset\":true"
        } else {
            b"\",\"reset\":false"
        });
        if let (true, Some(lost)) = (reset, self.lost) {
            self.out.extend_from_slice(b",\"lost\":");
            crate::json::write_u64(&mut self.out, lost);
        }
        if more {
            self.out.extend_from_slice(b",\"more\":true");
        }
        self.out.put_u8(b'}');
        self.out.freeze()
    }
}

/// A complete poll response from envelopes.
pub fn encode_poll_response(messages: &[Envelope<'_>], cursor: Cursor, reset: bool) -> Bytes {
    let mut body = PollBody::new();
    for m in messages {
        body.push_envelope(m);
    }
    body.finish(cursor, reset, false)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::cursor::Epoch;
    use crate::envelope::Data;

    #[test]
    fn table() {
        let e = Epoch(0xabc);
        let m1 = Envelope::message("c", Cursor::new(e, 4), Data::Json(b"1"));
        let m2 = Envelope::message("c", Cursor::new(e, 5), Data::Text("t"));
        let cases: &[(&[Envelope<'_>], Cursor, bool, &str)] = &[
            (
                &[],
                Cursor::new(e, 3),
                false,
                r#"{"messages":[],"cursor":"abc:3","reset":false}"#,
            ),
            (
                &[m1, m2],
                Cursor::new(e, 5),
                false,
                r#"{"messages":[{"channel":"c","event":"message","offset":4,"cursor":"abc:4","data":1},{"channel":"c","event":"message","offset":5,"cursor":"abc:5","data":"t"}],"cursor":"abc:5","reset":false}"#,
            ),
            (
                &[],
                Cursor::new(Epoch(0xf), 9),
                true,
                r#"{"messages":[],"cursor":"f:9","reset":true}"#,
            ),
        ];
        for (msgs, cur, reset, want) in cases {
            let body = encode_poll_response(msgs, *cur, *reset);
            assert_eq!(std::str::from_utf8(&body).unwrap(), *want);
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["reset"], serde_json::Value::Bool(*reset));
        }
    }

    #[test]
    fn pre_encoded_and_more() {
        let e = Epoch(1);
        let json = crate::encode_ws_text(&Envelope::message("c", Cursor::new(e, 1), Data::None));
        let mut b = PollBody::new();
        assert!(b.is_empty());
        b.push_json(&json);
        b.push_json(&json);
        assert_eq!(b.len(), 2);
        let body = b.finish(Cursor::new(e, 1), false, true);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["messages"].as_array().unwrap().len(), 2);
        assert_eq!(v["more"], serde_json::Value::Bool(true));
        assert_eq!(v["cursor"], "1:1");
    }

    #[test]
    fn a_reset_says_how_many_were_lost_when_known() {
        let e = Epoch(1);
        let held = Envelope::message("c", Cursor::new(e, 5), Data::Json(b"5"));
        let mut b = PollBody::new();
        b.push_envelope(&held);
        b.set_lost(3);
        assert_eq!(
            std::str::from_utf8(&b.finish(Cursor::new(e, 5), true, false)).unwrap(),
            r#"{"messages":[{"channel":"c","event":"message","offset":5,"cursor":"1:5","data":5}],"cursor":"1:5","reset":true,"lost":3}"#
        );
        // Only a reset says it.
        let mut b = PollBody::new();
        b.set_lost(3);
        assert_eq!(
            &b.finish(Cursor::new(e, 5), false, false)[..],
            br#"{"messages":[],"cursor":"1:5","reset":false}"#
        );
    }
}
