//! Sans-IO application protocol of Switchboard: the envelope every transport carries,
//! cursors, the multiplexed command protocol, and pure encoders for the SSE,
//! HTTP-streaming and long-poll bodies. No sockets, no clocks, no channel storage.
//!
//! # Data flow
//!
//! ```text
//!  hub message (channel, cursor, event, payload bytes)
//!        │  borrowed as an Envelope<'_>
//!        ├─ encode_ws_text        → {"channel":…,"event":…,"offset":…,"cursor":…,"data":…}
//!        ├─ encode_sse_envelope   → id: cursor / event: … / data: <envelope json>
//!        ├─ encode_sse_data       → id: cursor / event: … / data: <payload lines>
//!        ├─ encode_stream_line    → <envelope json>\n
//!        └─ PollBody / encode_poll_response → {"messages":[…],"cursor":…,"reset":…}
//!  SDK frame bytes ─ parse_command → Command { id, op } ─ server ─ encode_* replies
//! ```
//!
//! Encoders only allocate their output. Every output is `Bytes`, so a message encoded once
//! is shared by every subscriber of the same format. Each envelope encoder is also named by
//! a type ([`encoding`]), the key under which a message caches its encoding.
//!
//! # Public API
//!
//! * [`cursor`]: [`Cursor`] `{ epoch: Epoch, offset: u64 }`, text form `epoch:offset`
//!   (hex epoch, decimal offset) via `Display`/`FromStr`/serde, [`CursorError`].
//! * [`envelope`]: [`Envelope`] `{ channel, event: Event, cursor: Option<Cursor>, data: Data }`,
//!   [`Data`] `None | Json | Text | Binary` (binary is `data_b64` in JSON),
//!   [`encode_ws_text`], [`validate_json`], [`parse_envelope`] → [`ReceivedEnvelope`],
//!   [`ProtoError`]; a `reset`'s data: [`reset_data`] (`{"lost":N}`), [`reset_lost`].
//! * [`encoding`]: trait [`EnvelopeEncoding`] (`encode_envelope(&Envelope) -> Bytes`),
//!   implemented by [`EnvelopeJson`], [`SseEnvelope`], [`SseData`], [`StreamLine`].
//! * [`sse`]: [`SseEvent`], [`write_sse_event`], [`encode_sse_event`], [`encode_sse_envelope`],
//!   [`encode_sse_data`] (a binary message is [`SSE_BINARY_EVENT`] there), [`sse_comment`],
//!   [`sse_heartbeat`], [`sse_retry`], [`sse_prelude`]; the multiplexed stream's ids (every
//!   channel's cursor): [`write_sse_cursors_id`], [`write_sse_ready`],
//!   [`write_sse_with_cursors`], [`parse_sse_cursors_id`], [`SSE_HEARTBEAT_EVENT`].
//! * [`stream`]: [`stream_prelude`] (2048 spaces + `\n`), [`stream_heartbeat`],
//!   [`encode_stream_line`], [`write_stream_line`].
//! * [`compact`]: the compact WebSocket format (subprotocol [`COMPACT_PROTOCOL`]): payload-only
//!   frames while offsets are contiguous, [`CONTROL_PREFIX`]ed control records otherwise;
//!   [`encode_compact_payload`] → [`PayloadFrame`], [`encode_compact_control`], [`follows`],
//!   the native stream's start record [`encode_compact_start`], the compact poll body
//!   [`encode_compact_poll`],
//!   client side [`CompactDecoder`] → [`CompactItem`].
//! * [`since`]: [`Since`] `After(Cursor) | Oldest | Last(n)`, where a subscription starts
//!   (text `E:N`, `oldest`, `last:N`).
//! * [`poll`]: [`PollBody`] (push envelopes or cached JSON, `set_lost`,
//!   `finish(cursor, reset, more)`),
//!   [`encode_poll_response`].
//! * [`command`]: [`parse_command`] → [`Command`] `{ id, op: Op }`, [`CommandData`],
//!   [`CommandError`] / [`ErrorCode`], reply encoders [`encode_ok`], [`encode_result_cursor`],
//!   [`encode_result_raw`], [`encode_presence_result`] with [`PresenceEntry`],
//!   [`encode_error`], the [`REFRESH_PUSH`]; client side [`encode_command`],
//!   [`parse_server_frame`] → [`ServerFrame`]; [`Token`] (a client token, hidden from `Debug`).
//! * [`raw_or_null`]: serde helper for a payload field (`data`) where `null` is a value.

pub mod command;
pub mod compact;
pub mod cursor;
pub mod encoding;
pub mod envelope;
mod json;
pub mod poll;
pub mod since;
pub mod sse;
pub mod stream;

pub use command::{
    encode_command, encode_error, encode_ok, encode_presence_result, encode_result_cursor,
    encode_result_raw, parse_command, parse_server_frame, Command, CommandData, CommandError,
    ErrorCode, Op, PresenceEntry, ServerFrame, Token, REFRESH_PUSH,
};
pub use compact::{
    encode_compact_control, encode_compact_payload, encode_compact_poll, encode_compact_start,
    follows, CompactDecoder, CompactItem, PayloadFrame, COMPACT_PROTOCOL, CONTROL_PREFIX,
};
pub use cursor::{Cursor, CursorError, CursorStr, Epoch, CURSOR_MAX_LEN};
pub use encoding::{EnvelopeEncoding, EnvelopeJson, SseData, SseEnvelope, StreamLine};
pub use envelope::{
    encode_ws_text, parse_envelope, reset_data, reset_lost, validate_json, Data, Envelope, Event,
    ProtoError, ReceivedData, ReceivedEnvelope,
};
pub use json::raw_or_null;
pub use poll::{encode_poll_response, PollBody};
pub use since::Since;
pub use sse::{
    encode_sse_data, encode_sse_envelope, encode_sse_event, parse_sse_cursors_id, sse_comment,
    sse_heartbeat, sse_prelude, sse_retry, write_sse_cursors_id, write_sse_event, write_sse_ready,
    write_sse_with_cursors, SseEvent, PRELUDE_PADDING, SSE_BINARY_EVENT, SSE_HEARTBEAT_EVENT,
};
pub use stream::{encode_stream_line, stream_heartbeat, stream_prelude, write_stream_line};
