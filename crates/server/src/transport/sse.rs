//! Server-Sent Events: `GET /ch/NAME` with `Accept: text/event-stream` (what
//! `new EventSource("/ch/NAME")` sends), or `/sub?channel=…&transport=sse`.
//!
//! * Native endpoint: each event's `data:` is the payload alone, `id:` the cursor, `event:`
//!   `message` (so `onmessage` fires) for JSON and text, `binary` for bytes (`data:` their
//!   base64, which could not be told from text otherwise), `reset` (`data:` `{"lost":N}`
//!   when known), `join` or `leave`. The browser resends the
//!   last id as `Last-Event-ID` when it reconnects, which takes precedence over `?since=`
//!   (the URL's cursor is older by then).
//! * `/sub`: `data:` is the whole envelope (it names the channel); `id:` lists every
//!   channel's cursor in the order of the request's `channel=` parameters
//!   (`id: E1:N1,E2:N2`, see `switchboard_proto::sse`), and the stream opens with such an
//!   id on an `event: ready` (empty data), so the browser's own reconnect (`Last-Event-ID`, which wins over the
//!   URL's `channel=NAME,SINCE`) resumes every channel exactly. Its heartbeat is an event
//!   (`event: heartbeat`), so a page can see it.
//! * The stream starts with a `retry:` hint; a comment line is sent as a heartbeat when
//!   idle (native endpoint); on shutdown (or when the hub closes the subscription) a final
//!   `event: reconnect` is sent and the response ends (the browser reconnects by itself
//!   after the retry delay, resuming from its last id); on a backend disconnect, a final
//!   `event: disconnect`; when the client token it was opened with expires, a final
//!   `event: refresh` (close the `EventSource` and open a new one with a fresh token, from
//!   the last id).

use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use switchboard_hub::Message;
use switchboard_proto::{parse_sse_cursors_id, Since, SseData, SseEnvelope, SSE_HEARTBEAT_EVENT};

use crate::error::ServerError;
use crate::observe::counters::Transport;
use crate::state::AppState;
use crate::transport::live::{self, Farewells, Style};
use crate::transport::{self, parse_cursor, Principal, SubQuery, Target};

/// The native endpoint's start: `Last-Event-ID` (a cursor), else `?since=` / `?last=`.
pub fn native_since(headers: &HeaderMap, query: &SubQuery) -> Result<Option<Since>, ServerError> {
    match last_event_id(headers)? {
        Some(id) => parse_cursor(id).map(|c| Some(Since::After(c))),
        None => transport::native_since(query),
    }
}

/// The `Last-Event-ID` a reconnecting `EventSource` sends, if not empty.
fn last_event_id(headers: &HeaderMap) -> Result<Option<&str>, ServerError> {
    let Some(v) = headers.get("last-event-id") else {
        return Ok(None);
    };
    let s = v
        .to_str()
        .map_err(|_| ServerError::MalformedCursor("Last-Event-ID is not ASCII".into()))?;
    Ok((!s.is_empty()).then_some(s))
}

/// The native endpoint's events (payload-only `data:`).
static NATIVE: Style = style(live::encoded::<SseData>, false);
/// `/sub`'s events (the whole envelope in `data:`, every channel's cursor in `id:`).
static ENVELOPE: Style = style(live::encoded::<SseEnvelope>, true);

const fn style(encode: fn(&Message) -> Bytes, multiplexed: bool) -> Style {
    Style {
        content_type: "text/event-stream; charset=utf-8",
        encode,
        heartbeat: if multiplexed {
            SSE_HEARTBEAT_EVENT
        } else {
            b":\n"
        },
        cursors_id: multiplexed,
        transport: Transport::Sse,
        farewells: Farewells {
            reconnect: b"event: reconnect\ndata: service restart\n\n",
            resume: b"event: reconnect\ndata: resume from your last cursor\n\n",
            disconnect: b"event: disconnect\ndata: disconnected by the server\n\n",
            refresh: b"event: refresh\ndata: token expired\n\n",
        },
    }
}

/// `/sub`'s resume: a `Last-Event-ID` (every channel's cursor, in `targets`' order)
/// replaces each target's start.
pub fn sub_resume(headers: &HeaderMap, targets: &mut [Target]) -> Result<(), ServerError> {
    let Some(id) = last_event_id(headers)? else {
        return Ok(());
    };
    let cursors = parse_sse_cursors_id(id, targets.len()).map_err(|e| {
        ServerError::MalformedCursor(format!(
            "Last-Event-ID must be one cursor per channel, in the order of the channel= \
             parameters, separated by commas ({e})"
        ))
    })?;
    for (t, c) in targets.iter_mut().zip(cursors) {
        t.since = Some(Since::After(c));
    }
    Ok(())
}

/// Answers an SSE subscription. `native` selects the payload-only event format.
pub async fn respond(
    state: &AppState,
    targets: Vec<Target>,
    native: bool,
    principal: Principal,
) -> Result<Response, ServerError> {
    let style = if native { &NATIVE } else { &ENVELOPE };
    let opening = switchboard_proto::sse_retry(state.config.limits.sse_retry_ms);
    live::respond(state, &targets, principal, style, opening).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_is_the_protocol_comment() {
        assert_eq!(NATIVE.heartbeat, &switchboard_proto::sse_heartbeat()[..]);
    }
}
