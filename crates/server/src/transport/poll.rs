//! Polling: `GET /ch/NAME?since=CURSOR` (`transport=poll` or no transport at all), or
//! `/sub?channel=NAME,CURSOR&…&transport=poll`; `since=oldest` or `last:N` read the
//! history held ([`super::join`]). Answered at once from the history with
//! everything after the cursor (at most [`MAX_BATCH`] messages, then `more: true`).
//! Without a cursor the answer is empty and carries the current end cursor, so the next
//! poll gets only what is new. Stateless: any node answers any poll.
//!
//! Native body (see `switchboard_proto::poll`):
//! `{"messages":[envelope…],"cursor":"E:N","reset":false}`; with `format=compact`, when
//! the messages are contiguous JSON or text payloads and nothing was reset,
//! `{"cursor":"E:N","data":[payload…]}` (`switchboard_proto::encode_compact_poll`).
//! `/sub` body: `{"messages":[envelope…],"cursors":{"NAME":"E:N",…}}` where a channel
//! whose cursor could not be continued contributes a `reset` envelope first; a `/sub`
//! request for one channel with `format=compact` gets the compact body on the same terms
//! (it names no channel: the client asked for one).
//!
//! A cursor that cannot be continued (history gone, another epoch) is answered with
//! `reset: true` and every message still held (from the oldest, up to the batch limit):
//! what came before them is gone (`"lost": N` says how many when the cursor was of the
//! same epoch; on `/sub` the channel's `reset` envelope says it), `cursor` is where the
//! next poll continues. The same answer as a subscription's, see
//! `switchboard_hub::subscription`.

use std::sync::Arc;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use switchboard_hub::{HistoryAnswer, Message};
use switchboard_proto::{encode_compact_poll, Cursor, EnvelopeJson, Event, PollBody};

use crate::error::ServerError;
use crate::state::AppState;
use crate::transport::Target;

/// Most messages in one answer.
pub const MAX_BATCH: usize = 1000;

/// Builds a poll / long-poll answer for one or several channels.
#[derive(Debug)]
pub struct Answer {
    native: bool,
    body: PollBody,
    /// Each channel's resume cursor, in the order first given (few channels: a search
    /// beats a map, and updating one allocates nothing).
    cursors: Vec<(String, Cursor)>,
    reset: bool,
    /// How many the native body's reset lost (unknown once any reset did not say).
    lost: Option<u64>,
    more: bool,
    /// `format=compact` (one channel): the messages, for the compact body.
    compact: Option<Vec<Message>>,
}

impl Answer {
    /// An empty answer; `native` picks the single-channel body.
    pub fn new(native: bool) -> Self {
        Self {
            native,
            body: PollBody::new(),
            cursors: Vec::new(),
            reset: false,
            lost: None,
            more: false,
            compact: None,
        }
    }

    /// Answers in the compact body (`switchboard_proto::encode_compact_poll`) when
    /// `compact` and the answer allows it: one channel (a native answer, or `/sub` asked
    /// for one), nothing reset, contiguous JSON or text messages.
    pub fn compact(mut self, compact: bool) -> Self {
        self.compact = compact.then(Vec::new);
        self
    }

    /// Number of messages so far.
    pub fn len(&self) -> usize {
        self.body.len()
    }

    /// Whether there is nothing to deliver yet.
    pub fn is_empty(&self) -> bool {
        self.body.is_empty() && !self.reset
    }

    /// Sets a channel's resume cursor (its start, before any item).
    pub fn position(&mut self, channel: &str, cursor: Cursor) {
        match self.cursors.iter_mut().find(|(c, _)| c == channel) {
            Some((_, at)) => *at = cursor,
            None => self.cursors.push((channel.to_owned(), cursor)),
        }
    }

    /// Marks that a limit cut the answer.
    pub fn set_more(&mut self) {
        self.more = true;
    }

    /// Adds one channel event: a message (its shared JSON encoding) or a `reset` (on
    /// `/sub` its envelope; in the native body the `reset` flag and `lost`).
    /// `join`/`leave` events are not part of the log and not carried by polls.
    pub fn message(&mut self, m: &Message) {
        let Some(cursor) = m.cursor() else { return };
        match m.event() {
            Event::Message => {
                self.body.push_json(m.encoded::<EnvelopeJson>());
                self.position(m.channel(), cursor);
                if let Some(all) = &mut self.compact {
                    all.push(m.clone());
                }
            }
            Event::Reset => {
                if self.native {
                    // Several resets in one answer (a long-poll's) add up while each knows.
                    self.lost = match (self.reset, self.lost, m.reset_lost()) {
                        (false, _, lost) => lost,
                        (true, Some(a), Some(b)) => Some(a.saturating_add(b)),
                        (true, _, _) => None,
                    };
                } else {
                    self.body.push_json(m.encoded::<EnvelopeJson>());
                }
                self.reset = true;
                self.position(m.channel(), cursor);
            }
            Event::Join | Event::Leave => {}
        }
    }

    /// The compact body, when it was asked for and says the answer exactly: one
    /// channel's cursor (the body names no channel, so `/sub` gets it only for one), no
    /// reset, and messages `encode_compact_poll` can carry.
    fn compact_body(&mut self) -> Option<Bytes> {
        let all = self.compact.take().filter(|_| !self.reset)?;
        let [(_, cursor)] = self.cursors[..] else {
            return None;
        };
        let envelopes: Vec<_> = all.iter().map(Message::envelope).collect();
        encode_compact_poll(cursor, &envelopes, self.more)
    }

    /// The response.
    pub fn into_response(mut self) -> Response {
        if let Some(body) = self.compact_body() {
            return json_response(body);
        }
        let body = if self.native {
            let cursor = self.cursors.first().map(|(_, c)| *c).unwrap_or_default();
            if let Some(lost) = self.lost {
                self.body.set_lost(lost);
            }
            self.body.finish(cursor, self.reset, self.more)
        } else {
            // Reuse proto's body for the messages array, then replace its tail.
            let mut out = BytesMut::from(&self.body.finish(Cursor::default(), false, false)[..]);
            if let Some(pos) = out.windows(12).rposition(|w| w == b"],\"cursor\":\"") {
                out.truncate(pos + 1);
            }
            out.extend_from_slice(b",\"cursors\":{");
            // By name, so the same state always gives the same body.
            self.cursors.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            for (i, (ch, c)) in self.cursors.iter().enumerate() {
                if i > 0 {
                    out.put_u8(b',');
                }
                // Channel names are restricted to characters that need no JSON escaping.
                out.put_u8(b'"');
                out.extend_from_slice(ch.as_bytes());
                out.extend_from_slice(b"\":\"");
                out.extend_from_slice(c.to_str_buf().as_bytes());
                out.put_u8(b'"');
            }
            out.put_u8(b'}');
            if self.more {
                out.extend_from_slice(b",\"more\":true");
            }
            out.put_u8(b'}');
            out.freeze()
        };
        json_response(body)
    }
}

/// A 200 JSON response that no cache keeps. `no-store` alone says it (`no-cache` beside
/// it only repeated it in 11 more bytes, on every poll answer); the type stays, so a
/// browser never sniffs a payload as a page.
pub fn json_response(body: Bytes) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// The body of a one-channel history answer, as the backend API's history endpoint and
/// the multiplexed WebSocket's `history` command send it: the messages after `since`,
/// the cursor to continue from, `more` when `limit` cut it; when the gap is gone,
/// `reset` (and `lost` when known) with the messages still held.
pub fn history_body(answer: HistoryAnswer, since: Option<Cursor>) -> Bytes {
    let (messages, head, more, reset) = match answer {
        HistoryAnswer::Gap {
            messages,
            head,
            more,
        } => (messages, head, more, None),
        HistoryAnswer::Reset {
            earliest,
            messages,
            more,
            ..
        } => (messages, earliest, more, Some(earliest)),
    };
    let mut body = PollBody::new();
    for m in &messages {
        body.push_json(m.encoded::<EnvelopeJson>());
    }
    if let Some(lost) = since.zip(reset).and_then(|(s, at)| s.distance_to(at)) {
        body.set_lost(lost);
    }
    body.finish(
        resume_cursor(&messages, since.filter(|_| reset.is_none()), head, more),
        reset.is_some(),
        more,
    )
}

/// Where a reader continues after an answer of `messages`: the last one; with none, the
/// position the read started from (`start`, when it was continued) if a limit cut the
/// answer, else `end` (the head, or a reset's earliest), which then names the same place
/// (an empty gap after `start` ends at the head).
fn resume_cursor(messages: &[Message], start: Option<Cursor>, end: Cursor, more: bool) -> Cursor {
    match messages.last().and_then(Message::cursor) {
        Some(last) => last,
        None if more => start.unwrap_or(end),
        None => end,
    }
}

/// Answers a poll at once (in the compact body if `compact`, see [`Answer::compact`]).
pub async fn respond(
    state: &AppState,
    targets: &[Target],
    native: bool,
    compact: bool,
) -> Result<Response, ServerError> {
    let mut answer = Answer::new(native).compact(compact);
    for t in targets {
        let since = crate::transport::join::start(&state.hub, &t.channel, t.since).await?;
        let room = MAX_BATCH.saturating_sub(answer.len());
        let limit = if since.is_some() { room } else { 0 };
        let (messages, more) = match state.hub.history(&t.channel, since, Some(limit)).await? {
            HistoryAnswer::Gap {
                messages,
                head,
                more,
            } => {
                // Messages move the cursor on; without any it stays where the read began
                // when a limit cut the answer, else it is the head (the same place).
                answer.position(&t.channel, if more { since.unwrap_or(head) } else { head });
                (messages, more)
            }
            HistoryAnswer::Reset {
                earliest,
                messages,
                more,
                ..
            } => {
                let from = since.unwrap_or(earliest);
                answer.message(&Message::reset_after(
                    Arc::from(t.channel.as_str()),
                    from,
                    earliest,
                ));
                (messages, more)
            }
        };
        for m in &messages {
            answer.message(m);
        }
        if more {
            answer.set_more();
        }
    }
    Ok(answer.into_response())
}
