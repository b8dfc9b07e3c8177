//! The envelope encodings, as types: each names one encoder of this crate, so a cache of
//! encodings (the hub's, one per message, shared by every subscriber) can be keyed by it
//! without knowing the formats. A new byte format is one more type here.
//!
//! | type | encoder | carried by |
//! |---|---|---|
//! | [`EnvelopeJson`] | [`encode_ws_text`] | WebSocket text frames, SDK pushes, poll bodies |
//! | [`SseEnvelope`] | [`encode_sse_envelope`] | SSE of the multiplexed endpoint |
//! | [`SseData`] | [`encode_sse_data`] | SSE of the native `EventSource` endpoint |
//! | [`StreamLine`] | [`encode_stream_line`] | HTTP streaming |

use bytes::Bytes;

use crate::envelope::{encode_ws_text, Envelope};
use crate::sse::{encode_sse_data, encode_sse_envelope};
use crate::stream::encode_stream_line;

/// One way of writing an envelope as bytes. Implemented by marker types, so a cache can
/// use the type as its key.
pub trait EnvelopeEncoding: 'static {
    /// The bytes of `env` in this encoding.
    fn encode_envelope(env: &Envelope<'_>) -> Bytes;
}

/// The envelope as one line of JSON ([`encode_ws_text`]).
#[derive(Clone, Copy, Debug)]
pub struct EnvelopeJson;

/// An SSE event whose data is the envelope JSON ([`encode_sse_envelope`]).
#[derive(Clone, Copy, Debug)]
pub struct SseEnvelope;

/// An SSE event whose data is the payload alone ([`encode_sse_data`]).
#[derive(Clone, Copy, Debug)]
pub struct SseData;

/// An HTTP-streaming line: the envelope JSON and `\n` ([`encode_stream_line`]).
#[derive(Clone, Copy, Debug)]
pub struct StreamLine;

/// Implements [`EnvelopeEncoding`] for marker types, each with its encoder.
macro_rules! envelope_encodings {
    ($($name:ty => $encode:path),* $(,)?) => {$(
        impl EnvelopeEncoding for $name {
            fn encode_envelope(env: &Envelope<'_>) -> Bytes {
                $encode(env)
            }
        }
    )*};
}

envelope_encodings! {
    EnvelopeJson => encode_ws_text,
    SseEnvelope => encode_sse_envelope,
    SseData => encode_sse_data,
    StreamLine => encode_stream_line,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cursor::{Cursor, Epoch};
    use crate::envelope::{Data, Event};

    #[test]
    fn each_type_names_its_encoder() {
        let env = Envelope {
            channel: "c",
            event: Event::Message,
            cursor: Some(Cursor::new(Epoch(1), 2)),
            data: Data::Text("line 1\nline 2"),
        };
        assert_eq!(EnvelopeJson::encode_envelope(&env), encode_ws_text(&env));
        assert_eq!(
            SseEnvelope::encode_envelope(&env),
            encode_sse_envelope(&env)
        );
        assert_eq!(SseData::encode_envelope(&env), encode_sse_data(&env));
        assert_eq!(StreamLine::encode_envelope(&env), encode_stream_line(&env));
        // Four different byte strings, so a swapped pair would be caught.
        let all = [
            encode_ws_text(&env),
            encode_sse_envelope(&env),
            encode_sse_data(&env),
            encode_stream_line(&env),
        ];
        for (i, a) in all.iter().enumerate() {
            assert!(all[i + 1..].iter().all(|b| a != b));
        }
    }
}
