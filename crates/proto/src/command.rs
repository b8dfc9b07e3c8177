//! The multiplexed SDK protocol: many channels over one WebSocket (or one fallback
//! stream plus POSTed commands). Pure parse/encode, one JSON object per frame.
//!
//! Client → server (every command carries a client-chosen `id`):
//!
//! ```text
//! {"id":1,"op":"subscribe","channel":"chat:lobby","since":"abc:3"}     since optional:
//!                                   a cursor, "oldest" or "last:N" (crate::since)
//! {"id":2,"op":"unsubscribe","channel":"chat:lobby"}
//! {"id":3,"op":"publish","channel":"chat:lobby","data":{"text":"hi"}}   or "data_b64":"AP8="
//! {"id":3,"op":"publish","channel":"chat:lobby","data":1,"idempotency_key":"k-1"}  retry-safe
//! {"id":4,"op":"presence","channel":"chat:lobby"}
//! {"id":5,"op":"history","channel":"chat:lobby","since":"abc:3","limit":50}  both optional
//! {"id":6,"op":"ping"}
//! {"id":7,"op":"connect","token":"JWT"}       first command: the connection's token
//! {"id":8,"op":"refresh","token":"JWT"}       a new token before the current one expires
//! {"id":9,"op":"subscribe","channel":"secret:x","token":"JWT"}   a subscription token
//! ```
//!
//! A publish's optional `idempotency_key` (opaque, at most 128 bytes) makes it safe to
//! retry: the server stores a key's message once per channel within its window and
//! answers a repeat with the first cursor.
//!
//! `connect` and `refresh` carry a client token (a JWT; the server's docs say which claims
//! it reads); `subscribe` may carry a subscription token for one private channel. This
//! crate only carries them: a [`Token`] prints as `Token(..)`, never its text.
//!
//! Server → client:
//!
//! ```text
//! {"id":1,"result":{"cursor":"abc:3"}}         subscribe: where the subscription starts;
//!                                              the history gap then follows as pushes
//! {"id":3,"result":{"cursor":"abc:4"}}         publish: the new message's cursor
//! {"id":2,"result":{}}                         unsubscribe, ping
//! {"id":4,"result":{"clients":[{"client":"c1","user":"u1"}],"count":1}}
//! {"id":5,"result":{"messages":[…],"cursor":"abc:5","reset":false}}   (see crate::poll)
//! {"id":7,"result":{"client":"…"}}             connect: the connection's client id
//! {"id":7,"error":{"code":"invalid_channel","message":"…"}}
//! {"error":{"code":"bad_request","message":"…"}}   a frame whose id could not be read
//! {"channel":"chat:lobby","event":"message",…}    a push: an envelope, never has "id"
//! {"event":"refresh"}                           the connection's token expires soon:
//!                                              send `refresh` with a new one
//! ```
//!
//! A frame with `id` or `error` is a reply; anything else is a push. Channel pushes are
//! exactly the envelope JSON of [`crate::envelope`], so one cached encoding serves every
//! subscriber; the one push without a channel is the connection's `refresh` request
//! ([`REFRESH_PUSH`]).
//! Unknown fields are ignored (forward compatibility); unknown `op`s are an error.

use std::borrow::Cow;

use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::cursor::Cursor;
use crate::envelope::{ProtoError, ReceivedEnvelope};
use crate::json;
use crate::since::Since;

/// One parsed command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command<'a> {
    /// The client's id, echoed in the reply.
    pub id: u64,
    /// What to do.
    pub op: Op<'a>,
}

/// The operations of the SDK protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op<'a> {
    /// Subscribe, from now or from `since`.
    Subscribe {
        /// Channel name (not validated here).
        channel: Cow<'a, str>,
        /// Where to start: a cursor (resume), the oldest held message, or the last N.
        since: Option<Since>,
        /// A subscription token for this channel (a private channel's), if any.
        token: Option<Token<'a>>,
    },
    /// Stop a subscription.
    Unsubscribe {
        /// Channel name.
        channel: Cow<'a, str>,
    },
    /// Publish a message.
    Publish {
        /// Channel name.
        channel: Cow<'a, str>,
        /// The payload.
        data: CommandData<'a>,
        /// An idempotency key, if any (not checked here).
        idempotency_key: Option<Cow<'a, str>>,
    },
    /// List who is subscribed.
    Presence {
        /// Channel name.
        channel: Cow<'a, str>,
    },
    /// Read history after `since` (or the latest messages), at most `limit`.
    History {
        /// Channel name.
        channel: Cow<'a, str>,
        /// Read after this position.
        since: Option<Cursor>,
        /// At most this many messages.
        limit: Option<u32>,
    },
    /// Liveness check; answered with an empty result.
    Ping,
    /// The connection's client token, for a client that could not put it in the URL.
    Connect {
        /// The token.
        token: Token<'a>,
    },
    /// A new client token for the same user, before the current one expires.
    Refresh {
        /// The token.
        token: Token<'a>,
    },
}

/// A client token as a command carries it (a JWT, not checked here). Its `Debug` hides
/// the text: tokens are secrets and must not reach logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Token<'a>(pub Cow<'a, str>);

impl Token<'_> {
    /// The token's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

/// The push that asks a client to send `refresh` with a new token: its token expires
/// soon, and the connection is closed (code 3000) if none comes in time.
pub const REFRESH_PUSH: &[u8] = br#"{"event":"refresh"}"#;

/// A publish payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandData<'a> {
    /// `data`: any JSON value, as its (already validated) JSON text.
    Json(&'a str),
    /// `data_b64`: decoded bytes.
    Binary(Vec<u8>),
}

/// Machine-readable error codes of replies. Stable strings ([`ErrorCode::as_str`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The frame is not a valid command.
    BadRequest,
    /// Unknown `op`.
    UnknownOp,
    /// A malformed `since` cursor.
    InvalidCursor,
    /// Channel name refused.
    InvalidChannel,
    /// The channel's namespace is not configured.
    UnknownNamespace,
    /// The policy forbids this operation.
    NotAllowed,
    /// Payload above the namespace's limit.
    MessageTooLarge,
    /// Unsubscribe from a channel not subscribed.
    NotSubscribed,
    /// Subscribe to a channel already subscribed on this connection.
    AlreadySubscribed,
    /// Rate or connection limit hit.
    TooManyRequests,
    /// The broker is unreachable; retry later.
    Unavailable,
    /// A server bug.
    Internal,
    /// A client token is needed for this (none was given).
    TokenRequired,
    /// The client token could not be accepted (signature, algorithm, claims, format).
    InvalidToken,
    /// The client token has expired.
    TokenExpired,
    /// The client's tokens do not grant this operation on this channel.
    NotGranted,
}

impl ErrorCode {
    /// The wire string, e.g. `invalid_channel`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownOp => "unknown_op",
            ErrorCode::InvalidCursor => "invalid_cursor",
            ErrorCode::InvalidChannel => "invalid_channel",
            ErrorCode::UnknownNamespace => "unknown_namespace",
            ErrorCode::NotAllowed => "not_allowed",
            ErrorCode::MessageTooLarge => "message_too_large",
            ErrorCode::NotSubscribed => "not_subscribed",
            ErrorCode::AlreadySubscribed => "already_subscribed",
            ErrorCode::TooManyRequests => "too_many_requests",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
            ErrorCode::TokenRequired => "token_required",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::NotGranted => "not_granted",
        }
    }
}

/// A command that could not be parsed; answer it with [`encode_error`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandError {
    /// The command's id when it could be read.
    pub id: Option<u64>,
    /// What was wrong.
    pub code: ErrorCode,
    /// Human-readable detail.
    pub message: String,
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for CommandError {}

#[derive(Deserialize)]
struct RawCommand<'a> {
    #[serde(default)]
    id: Option<u64>,
    #[serde(borrow)]
    op: Cow<'a, str>,
    #[serde(default, borrow)]
    channel: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    since: Option<Cow<'a, str>>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default, borrow, deserialize_with = "crate::json::raw_or_null")]
    data: Option<&'a RawValue>,
    #[serde(default, borrow)]
    data_b64: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    token: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    idempotency_key: Option<Cow<'a, str>>,
}

fn err(id: Option<u64>, code: ErrorCode, message: impl Into<String>) -> CommandError {
    CommandError {
        id,
        code,
        message: message.into(),
    }
}

/// Parses one command frame. The caller bounds the frame size before calling.
pub fn parse_command<'a>(input: &'a [u8]) -> Result<Command<'a>, CommandError> {
    let raw: RawCommand<'a> = serde_json::from_slice(input)
        .map_err(|e| err(None, ErrorCode::BadRequest, format!("invalid command: {e}")))?;
    let id = raw
        .id
        .ok_or_else(|| err(None, ErrorCode::BadRequest, "missing id"))?;
    let channel = |raw_channel: Option<Cow<'a, str>>| {
        raw_channel.ok_or_else(|| err(Some(id), ErrorCode::BadRequest, "missing channel"))
    };
    let bad_cursor =
        |e: crate::cursor::CursorError| err(Some(id), ErrorCode::InvalidCursor, e.to_string());
    let since = raw.since.as_deref().map(str::as_bytes);
    let token = |raw_token: Option<Cow<'a, str>>| {
        raw_token
            .map(Token)
            .ok_or_else(|| err(Some(id), ErrorCode::BadRequest, "missing token"))
    };
    let op = match &*raw.op {
        "subscribe" => Op::Subscribe {
            channel: channel(raw.channel)?,
            since: since.map(Since::parse).transpose().map_err(bad_cursor)?,
            token: raw.token.map(Token),
        },
        "unsubscribe" => Op::Unsubscribe {
            channel: channel(raw.channel)?,
        },
        "publish" => {
            let channel = channel(raw.channel)?;
            let data = match (raw.data, raw.data_b64) {
                (Some(d), None) => CommandData::Json(d.get()),
                (None, Some(b)) => {
                    use base64::Engine as _;
                    CommandData::Binary(
                        base64::engine::general_purpose::STANDARD
                            .decode(b.as_bytes())
                            .map_err(|_| {
                                err(
                                    Some(id),
                                    ErrorCode::BadRequest,
                                    "invalid base64 in data_b64",
                                )
                            })?,
                    )
                }
                (Some(_), Some(_)) => {
                    return Err(err(
                        Some(id),
                        ErrorCode::BadRequest,
                        "both data and data_b64",
                    ))
                }
                (None, None) => return Err(err(Some(id), ErrorCode::BadRequest, "missing data")),
            };
            Op::Publish {
                channel,
                data,
                idempotency_key: raw.idempotency_key,
            }
        }
        "presence" => Op::Presence {
            channel: channel(raw.channel)?,
        },
        "history" => Op::History {
            channel: channel(raw.channel)?,
            since: since.map(Cursor::parse).transpose().map_err(bad_cursor)?,
            limit: raw.limit,
        },
        "ping" => Op::Ping,
        "connect" => Op::Connect {
            token: token(raw.token)?,
        },
        "refresh" => Op::Refresh {
            token: token(raw.token)?,
        },
        other => {
            return Err(err(
                Some(id),
                ErrorCode::UnknownOp,
                format!("unknown op `{other}`"),
            ))
        }
    };
    Ok(Command { id, op })
}

/// Encodes a command (the client side of the protocol).
pub fn encode_command(cmd: &Command<'_>) -> Bytes {
    let mut out = BytesMut::with_capacity(96);
    out.extend_from_slice(b"{\"id\":");
    json::write_u64(&mut out, cmd.id);
    let (op, channel) = match &cmd.op {
        Op::Subscribe { channel, .. } => ("subscribe", Some(channel)),
        Op::Unsubscribe { channel } => ("unsubscribe", Some(channel)),
        Op::Publish { channel, .. } => ("publish", Some(channel)),
        Op::Presence { channel } => ("presence", Some(channel)),
        Op::History { channel, .. } => ("history", Some(channel)),
        Op::Ping => ("ping", None),
        Op::Connect { .. } => ("connect", None),
        Op::Refresh { .. } => ("refresh", None),
    };
    out.extend_from_slice(b",\"op\":\"");
    out.extend_from_slice(op.as_bytes());
    out.put_u8(b'"');
    if let Some(c) = channel {
        out.extend_from_slice(b",\"channel\":");
        json::write_str(&mut out, c);
    }
    let since = match &cmd.op {
        Op::Subscribe { since, .. } => *since,
        Op::History { since, .. } => since.map(Since::After),
        _ => None,
    };
    if let Some(s) = since {
        out.extend_from_slice(b",\"since\":\"");
        out.extend_from_slice(s.to_string().as_bytes());
        out.put_u8(b'"');
    }
    match &cmd.op {
        Op::History { limit: Some(l), .. } => {
            out.extend_from_slice(b",\"limit\":");
            json::write_u64(&mut out, u64::from(*l));
        }
        Op::Publish {
            data: CommandData::Json(j),
            ..
        } => {
            out.extend_from_slice(b",\"data\":");
            json::write_raw_one_line(&mut out, j.as_bytes());
        }
        Op::Publish {
            data: CommandData::Binary(b),
            ..
        } => {
            out.extend_from_slice(b",\"data_b64\":\"");
            json::write_base64(&mut out, b);
            out.put_u8(b'"');
        }
        _ => {}
    }
    if let Op::Publish {
        idempotency_key: Some(k),
        ..
    } = &cmd.op
    {
        out.extend_from_slice(b",\"idempotency_key\":");
        json::write_str(&mut out, k);
    }
    match &cmd.op {
        Op::Subscribe { token: Some(t), .. }
        | Op::Connect { token: t }
        | Op::Refresh { token: t } => {
            out.extend_from_slice(b",\"token\":");
            json::write_str(&mut out, t.as_str());
        }
        _ => {}
    }
    out.put_u8(b'}');
    out.freeze()
}

fn reply_prefix(out: &mut BytesMut, id: u64) {
    out.extend_from_slice(b"{\"id\":");
    json::write_u64(out, id);
    out.extend_from_slice(b",\"result\":");
}

/// `{"id":N,"result":{}}` — unsubscribe and ping.
pub fn encode_ok(id: u64) -> Bytes {
    encode_result_raw(id, b"{}")
}

/// `{"id":N,"result":{"cursor":"…"}}` — subscribe and publish.
pub fn encode_result_cursor(id: u64, cursor: Cursor) -> Bytes {
    let mut out = BytesMut::with_capacity(80);
    reply_prefix(&mut out, id);
    out.extend_from_slice(b"{\"cursor\":\"");
    out.extend_from_slice(cursor.to_str_buf().as_bytes());
    out.extend_from_slice(b"\"}}");
    out.freeze()
}

/// `{"id":N,"result":<result_json>}` with a pre-encoded result, e.g. a history body built
/// with [`crate::PollBody`].
pub fn encode_result_raw(id: u64, result_json: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(result_json.len() + 32);
    reply_prefix(&mut out, id);
    out.extend_from_slice(result_json);
    out.put_u8(b'}');
    out.freeze()
}

/// One subscriber as presence reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PresenceEntry<'a> {
    /// The connection's client id.
    pub client: &'a str,
    /// The authenticated user, if any.
    pub user: Option<&'a str>,
    /// Extra connection info, valid JSON supplied by the server.
    pub info: Option<&'a [u8]>,
}

impl PresenceEntry<'_> {
    /// Appends `{"client":…,"user":…,"info":…}` (absent fields omitted).
    pub fn write_json(&self, out: &mut BytesMut) {
        out.extend_from_slice(b"{\"client\":");
        json::write_str(out, self.client);
        if let Some(u) = self.user {
            out.extend_from_slice(b",\"user\":");
            json::write_str(out, u);
        }
        if let Some(i) = self.info {
            out.extend_from_slice(b",\"info\":");
            json::write_raw_one_line(out, i);
        }
        out.put_u8(b'}');
    }

    /// The JSON object alone; the `data` of join/leave envelopes.
    pub fn to_json(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(64);
        self.write_json(&mut out);
        out.freeze()
    }
}

/// `{"id":N,"result":{"clients":[…],"count":K}}`.
pub fn encode_presence_result(id: u64, clients: &[PresenceEntry<'_>]) -> Bytes {
    let mut out = BytesMut::with_capacity(64 + clients.len() * 48);
    reply_prefix(&mut out, id);
    out.extend_from_slice(b"{\"clients\":[");
    for (i, c) in clients.iter().enumerate() {
        if i > 0 {
            out.put_u8(b',');
        }
        c.write_json(&mut out);
    }
    out.extend_from_slice(b"],\"count\":");
    json::write_u64(&mut out, clients.len() as u64);
    out.extend_from_slice(b"}}");
    out.freeze()
}

/// `{"id":N,"error":{"code":…,"message":…}}`; without an id when none could be read.
pub fn encode_error(id: Option<u64>, code: ErrorCode, message: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(message.len() + 64);
    out.put_u8(b'{');
    if let Some(id) = id {
        out.extend_from_slice(b"\"id\":");
        json::write_u64(&mut out, id);
        out.put_u8(b',');
    }
    out.extend_from_slice(b"\"error\":{\"code\":\"");
    out.extend_from_slice(code.as_str().as_bytes());
    out.extend_from_slice(b"\",\"message\":");
    json::write_str(&mut out, message);
    out.extend_from_slice(b"}}");
    out.freeze()
}

/// A frame from the server, as a client decodes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerFrame {
    /// A successful reply; `result` is its JSON text.
    Reply {
        /// The command id.
        id: u64,
        /// The `result` JSON text.
        result: String,
    },
    /// An error reply.
    Error {
        /// The command id, when the server could read it.
        id: Option<u64>,
        /// The error code string (see [`ErrorCode::as_str`]).
        code: String,
        /// Human-readable detail.
        message: String,
    },
    /// A channel event.
    Push(ReceivedEnvelope),
    /// The server asks for a new token ([`REFRESH_PUSH`]).
    Refresh,
}

#[derive(Deserialize)]
struct RawFrame<'a> {
    #[serde(default)]
    id: Option<u64>,
    #[serde(default, borrow)]
    result: Option<&'a RawValue>,
    #[serde(default)]
    error: Option<RawError>,
    #[serde(default)]
    channel: Option<serde::de::IgnoredAny>,
    #[serde(default, borrow)]
    event: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct RawError {
    code: String,
    message: String,
}

/// Decodes a server frame (client side).
pub fn parse_server_frame(input: &[u8]) -> Result<ServerFrame, ProtoError> {
    let whole: &RawValue =
        serde_json::from_slice(input).map_err(|e| ProtoError::InvalidJson(e.to_string()))?;
    let raw: RawFrame<'_> =
        serde_json::from_str(whole.get()).map_err(|e| ProtoError::InvalidJson(e.to_string()))?;
    match (raw.id, raw.result, raw.error, raw.channel) {
        (id, _, Some(e), _) => Ok(ServerFrame::Error {
            id,
            code: e.code,
            message: e.message,
        }),
        (Some(id), Some(r), None, _) => Ok(ServerFrame::Reply {
            id,
            result: r.get().to_owned(),
        }),
        (None, None, None, Some(_)) => Ok(ServerFrame::Push(crate::envelope::envelope_from_value(
            whole,
        )?)),
        (None, None, None, None) if raw.event.as_deref() == Some("refresh") => {
            Ok(ServerFrame::Refresh)
        }
        _ => Err(ProtoError::InvalidJson("neither a reply nor a push".into())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::cursor::Epoch;

    fn ch(s: &str) -> Cow<'_, str> {
        Cow::Borrowed(s)
    }

    #[test]
    fn parse_table() {
        let c3 = Cursor::new(Epoch(0xabc), 3);
        let cases: Vec<(&str, Command<'_>)> = vec![
            (
                r#"{"id":1,"op":"subscribe","channel":"chat:lobby","since":"abc:3"}"#,
                Command {
                    id: 1,
                    op: Op::Subscribe {
                        channel: ch("chat:lobby"),
                        since: Some(Since::After(c3)),
                        token: None,
                    },
                },
            ),
            (
                r#"{"op":"subscribe","id":2,"channel":"a"}"#,
                Command {
                    id: 2,
                    op: Op::Subscribe {
                        channel: ch("a"),
                        since: None,
                        token: None,
                    },
                },
            ),
            (
                r#"{"id":21,"op":"subscribe","channel":"a","since":"oldest"}"#,
                Command {
                    id: 21,
                    op: Op::Subscribe {
                        channel: ch("a"),
                        since: Some(Since::Oldest),
                        token: None,
                    },
                },
            ),
            (
                r#"{"id":22,"op":"subscribe","channel":"a","since":"last:10"}"#,
                Command {
                    id: 22,
                    op: Op::Subscribe {
                        channel: ch("a"),
                        since: Some(Since::Last(10)),
                        token: None,
                    },
                },
            ),
            (
                r#"{"id":3,"op":"unsubscribe","channel":"a"}"#,
                Command {
                    id: 3,
                    op: Op::Unsubscribe { channel: ch("a") },
                },
            ),
            (
                r#"{"id":4,"op":"publish","channel":"a","data":{"x":[1,2]}}"#,
                Command {
                    id: 4,
                    op: Op::Publish {
                        channel: ch("a"),
                        data: CommandData::Json(r#"{"x":[1,2]}"#),
                        idempotency_key: None,
                    },
                },
            ),
            (
                r#"{"id":5,"op":"publish","channel":"a","data_b64":"AP8="}"#,
                Command {
                    id: 5,
                    op: Op::Publish {
                        channel: ch("a"),
                        data: CommandData::Binary(vec![0, 255]),
                        idempotency_key: None,
                    },
                },
            ),
            (
                r#"{"id":6,"op":"presence","channel":"a"}"#,
                Command {
                    id: 6,
                    op: Op::Presence { channel: ch("a") },
                },
            ),
            (
                r#"{"id":7,"op":"history","channel":"a","since":"abc:3","limit":50}"#,
                Command {
                    id: 7,
                    op: Op::History {
                        channel: ch("a"),
                        since: Some(c3),
                        limit: Some(50),
                    },
                },
            ),
            (
                r#"{"id":8,"op":"ping","future_field":true}"#,
                Command {
                    id: 8,
                    op: Op::Ping,
                },
            ),
            (
                r#"{"id":10,"op":"publish","channel":"a","data":null}"#,
                Command {
                    id: 10,
                    op: Op::Publish {
                        channel: ch("a"),
                        data: CommandData::Json("null"),
                        idempotency_key: None,
                    },
                },
            ),
            (
                r#"{"id":13,"op":"publish","channel":"a","data":1,"idempotency_key":"k \"1\""}"#,
                Command {
                    id: 13,
                    op: Op::Publish {
                        channel: ch("a"),
                        data: CommandData::Json("1"),
                        idempotency_key: Some(Cow::Owned("k \"1\"".into())),
                    },
                },
            ),
            (
                r#"{"id":9,"op":"subscribe","channel":"esc\u0061ped"}"#,
                Command {
                    id: 9,
                    op: Op::Subscribe {
                        channel: Cow::Owned("escaped".into()),
                        since: None,
                        token: None,
                    },
                },
            ),
            (
                r#"{"id":11,"op":"connect","token":"h.p.s"}"#,
                Command {
                    id: 11,
                    op: Op::Connect {
                        token: Token(ch("h.p.s")),
                    },
                },
            ),
            (
                r#"{"id":12,"op":"refresh","token":"h.p.t"}"#,
                Command {
                    id: 12,
                    op: Op::Refresh {
                        token: Token(ch("h.p.t")),
                    },
                },
            ),
            (
                r#"{"id":13,"op":"subscribe","channel":"s:x","token":"h.p.u"}"#,
                Command {
                    id: 13,
                    op: Op::Subscribe {
                        channel: ch("s:x"),
                        since: None,
                        token: Some(Token(ch("h.p.u"))),
                    },
                },
            ),
        ];
        for (input, want) in cases {
            let got = parse_command(input.as_bytes()).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(got, want, "{input}");
            // Encoding then parsing gives the same command back.
            let again = encode_command(&got);
            assert_eq!(parse_command(&again).unwrap(), want, "re-encoded {input}");
        }
    }

    #[test]
    fn parse_errors_table() {
        let cases: &[(&str, Option<u64>, ErrorCode)] = &[
            ("", None, ErrorCode::BadRequest),
            ("[1]", None, ErrorCode::BadRequest),
            (r#"{"op":"ping"}"#, None, ErrorCode::BadRequest),
            (r#"{"id":-1,"op":"ping"}"#, None, ErrorCode::BadRequest),
            (r#"{"id":1,"op":"fly"}"#, Some(1), ErrorCode::UnknownOp),
            (
                r#"{"id":1,"op":"subscribe"}"#,
                Some(1),
                ErrorCode::BadRequest,
            ),
            (
                r#"{"id":1,"op":"subscribe","channel":"a","since":"nope"}"#,
                Some(1),
                ErrorCode::InvalidCursor,
            ),
            (
                r#"{"id":1,"op":"subscribe","channel":"a","since":"last:x"}"#,
                Some(1),
                ErrorCode::InvalidCursor,
            ),
            (
                r#"{"id":1,"op":"history","channel":"a","since":"oldest"}"#,
                Some(1),
                ErrorCode::InvalidCursor,
            ),
            (
                r#"{"id":1,"op":"publish","channel":"a"}"#,
                Some(1),
                ErrorCode::BadRequest,
            ),
            (
                r#"{"id":1,"op":"publish","channel":"a","data":1,"data_b64":"AA=="}"#,
                Some(1),
                ErrorCode::BadRequest,
            ),
            (
                r#"{"id":1,"op":"publish","channel":"a","data_b64":"***"}"#,
                Some(1),
                ErrorCode::BadRequest,
            ),
            (
                r#"{"id":1,"op":"publish","channel":"a","data":}"#,
                None,
                ErrorCode::BadRequest,
            ),
            (r#"{"id":1,"op":"connect"}"#, Some(1), ErrorCode::BadRequest),
            (r#"{"id":1,"op":"refresh"}"#, Some(1), ErrorCode::BadRequest),
            (
                r#"{"id":1,"op":"connect","token":7}"#,
                None,
                ErrorCode::BadRequest,
            ),
        ];
        for &(input, id, code) in cases {
            let e = parse_command(input.as_bytes()).unwrap_err();
            assert_eq!((e.id, e.code), (id, code), "{input}: {e}");
        }
        // Deeply nested data is skipped over without recursion: no stack overflow.
        let deep = format!(
            r#"{{"id":1,"op":"publish","channel":"a","data":{}{}}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        let ok = matches!(parse_command(deep.as_bytes()), Ok(Command { op: Op::Publish { data: CommandData::Json(j), .. }, .. }) if j.len() == 20_000);
        assert!(ok);
        let unbalanced = format!(
            r#"{{"id":1,"op":"publish","channel":"a","data":{}}}"#,
            "[".repeat(10_000)
        );
        assert_eq!(
            parse_command(unbalanced.as_bytes())
                .map_err(|e| e.code)
                .err(),
            Some(ErrorCode::BadRequest)
        );
    }

    #[test]
    fn replies_table() {
        let c = Cursor::new(Epoch(0xabc), 4);
        let cases: Vec<(Bytes, &str)> = vec![
            (encode_ok(2), r#"{"id":2,"result":{}}"#),
            (
                encode_result_cursor(3, c),
                r#"{"id":3,"result":{"cursor":"abc:4"}}"#,
            ),
            (
                encode_presence_result(
                    4,
                    &[
                        PresenceEntry {
                            client: "c1",
                            user: Some("u1"),
                            info: None,
                        },
                        PresenceEntry {
                            client: "c2",
                            user: None,
                            info: Some(br#"{"ip":"::1"}"#),
                        },
                    ],
                ),
                r#"{"id":4,"result":{"clients":[{"client":"c1","user":"u1"},{"client":"c2","info":{"ip":"::1"}}],"count":2}}"#,
            ),
            (
                encode_presence_result(4, &[]),
                r#"{"id":4,"result":{"clients":[],"count":0}}"#,
            ),
            (
                encode_result_raw(5, &crate::poll::PollBody::new().finish(c, true, false)),
                r#"{"id":5,"result":{"messages":[],"cursor":"abc:4","reset":true}}"#,
            ),
            (
                encode_error(Some(7), ErrorCode::InvalidChannel, "bad \"name\""),
                r#"{"id":7,"error":{"code":"invalid_channel","message":"bad \"name\""}}"#,
            ),
            (
                encode_error(None, ErrorCode::BadRequest, "x"),
                r#"{"error":{"code":"bad_request","message":"x"}}"#,
            ),
        ];
        for (got, want) in cases {
            assert_eq!(std::str::from_utf8(&got).unwrap(), want);
        }
    }

    #[test]
    fn client_side_frames() {
        let c = Cursor::new(Epoch(1), 2);
        assert_eq!(
            parse_server_frame(&encode_result_cursor(9, c)).unwrap(),
            ServerFrame::Reply {
                id: 9,
                result: r#"{"cursor":"1:2"}"#.into()
            }
        );
        assert_eq!(
            parse_server_frame(&encode_error(Some(9), ErrorCode::NotAllowed, "no")).unwrap(),
            ServerFrame::Error {
                id: Some(9),
                code: "not_allowed".into(),
                message: "no".into()
            }
        );
        let push = crate::encode_ws_text(&crate::Envelope::message("a", c, crate::Data::Text("t")));
        match parse_server_frame(&push).unwrap() {
            ServerFrame::Push(env) => {
                assert_eq!(env.channel, "a");
                assert_eq!(env.cursor, Some(c));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse_server_frame(REFRESH_PUSH).unwrap(),
            ServerFrame::Refresh
        );
        assert!(parse_server_frame(br#"{"event":"other"}"#).is_err());
        assert!(parse_server_frame(b"{}").is_err());
        assert!(parse_server_frame(b"nope").is_err());
    }

    #[test]
    fn a_token_is_not_shown_by_debug() {
        let cmd = parse_command(br#"{"id":1,"op":"connect","token":"secret.jwt.text"}"#).unwrap();
        let shown = format!("{cmd:?}");
        assert!(!shown.contains("secret"), "{shown}");
        let codes = [
            (ErrorCode::TokenRequired, "token_required"),
            (ErrorCode::InvalidToken, "invalid_token"),
            (ErrorCode::TokenExpired, "token_expired"),
            (ErrorCode::NotGranted, "not_granted"),
        ];
        for (code, text) in codes {
            assert_eq!(code.as_str(), text);
        }
    }
}
