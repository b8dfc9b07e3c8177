//! Server-Sent Events: `GET /ch/NAME` with `Accept: text/event-stream` (what
//! `new EventSource("/ch/NAME")` sends), or `/sub?channel=…&transport=sse`.
//!
//! * Native endpoint: each event's `data:` is the payload alone, `id:` the cursor, `event:`
//!   `message` (so `onmessage` fires) for JSON and text, `binary` for bytes (`data:` their
//!   base64, which could not be told from text otherwise), `reset` (`data:` `{"lost":N}`
//!   when known), `join` or `leave`. The browser resends the
//!   last id as `Last-Event-ID` when it reconnects, which takes precedence over `?since=`
//!   (the URL's cursor is older by then).
//! * `/sub`: `data:` is the whole envelope (it names the channel); `Last-Event-ID` is
//!   ignored there because one id cannot hold a cursor per channel — resume with
//!   `channel=NAME,CURSOR`.
//! * The stream starts with a `retry:` hint; a comment line is sent as a heartbeat when
//!   idle; on shutdown (or when the hub closes the subscription) a final
//!   `event: reconnect` is sent and the response ends (the browser reconnects by itself
//!   after the retry delay, resuming from its last id); on a backend disconnect, a final
//!   `event: disconnect`; when the client token it was opened with expires, a final
//!   `event: refresh` (close the `EventSource` and open a new one with a fresh token, from
//!   the last id).

use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use switchboard_hub::Message;
use switchboard_proto::{Cursor, SseData, SseEnvelope};

use crate::error::ServerError;
use crate::state::AppState;
use crate::transport::live::{self, Farewells, Style};
use crate::transport::{parse_cursor, Principal, Target};

/// The native endpoint's resume cursor: `Last-Event-ID`, else `?since=`.
pub fn native_since(
    headers: &HeaderMap,
    since: Option<&str>,
) -> Result<Option<Cursor>, ServerError> {
    if let Some(v) = headers.get("last-event-id") {
        let s = v
            .to_str()
            .map_err(|_| ServerError::MalformedCursor("Last-Event-ID is not ASCII".into()))?;
        if !s.is_empty() {
            return parse_cursor(s).map(Some);
        }
    }
    since.map(parse_cursor).transpose()
}

/// The native endpoint's events (payload-only `data:`).
static NATIVE: Style = style(live::encoded::<SseData>);
/// `/sub`'s events (the whole envelope in `data:`).
static ENVELOPE: Style = style(live::encoded::<SseEnvelope>);

const fn style(encode: fn(&Message) -> Bytes) -> Style {
    Style {
        content_type: "text/event-stream; charset=utf-8",
        encode,
        heartbeat: b":\n",
        farewells: Farewells {
            reconnect: b"event: reconnect\ndata: service restart\n\n",
            resume: b"event: reconnect\ndata: resume from your last cursor\n\n",
            disconnect: b"event: disconnect\ndata: disconnected by the server\n\n",
            refresh: b"event: refresh\ndata: token expired\n\n",
        },
    }
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
