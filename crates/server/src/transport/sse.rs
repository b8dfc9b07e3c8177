//! Server-Sent Events: `GET /ch/NAME` with `Accept: text/event-stream` (what
//! `new EventSource("/ch/NAME")` sends), or `/sub?channel=…&transport=sse`.
//!
//! * Native endpoint: each event's `data:` is the payload alone, `id:` the cursor, `event:`
//!   `message` (so `onmessage` fires) or `reset`. The browser resends the last id as
//!   `Last-Event-ID` when it reconnects, which takes precedence over `?since=` (the URL's
//!   cursor is older by then).
//! * `/sub`: `data:` is the whole envelope (it names the channel); `Last-Event-ID` is
//!   ignored there because one id cannot hold a cursor per channel — resume with
//!   `channel=NAME@CURSOR`.
//! * The stream starts with a `retry:` hint; a comment line is sent as a heartbeat when
//!   idle; on shutdown a final `event: reconnect` is sent and the response ends (the
//!   browser reconnects by itself after the retry delay); on a backend disconnect, a final
//!   `event: disconnect`.

use std::collections::VecDeque;

use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use switchboard_proto::{encode_sse_data, encode_sse_envelope, Envelope};

use crate::error::ServerError;
use crate::hub::Item;
use crate::state::AppState;
use crate::transport::live::{self, Live, PresenceGuard};
use crate::transport::{parse_cursor, streaming_headers, Feed, Target};

fn encode_native(item: &Item) -> Bytes {
    match item {
        Item::Message(m) => m.sse_data().clone(),
        Item::Reset { channel, cursor } => encode_sse_data(&Envelope::reset(channel, *cursor)),
    }
}

fn encode_mux(item: &Item) -> Bytes {
    match item {
        Item::Message(m) => m.sse_envelope().clone(),
        Item::Reset { channel, cursor } => encode_sse_envelope(&Envelope::reset(channel, *cursor)),
    }
}

/// The native endpoint's resume cursor: `Last-Event-ID`, else `?since=`.
pub fn native_since(
    headers: &HeaderMap,
    since: Option<&str>,
) -> Result<Option<switchboard_proto::Cursor>, ServerError> {
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

/// Answers an SSE subscription. `native` selects the payload-only event format.
pub fn respond(
    state: &AppState,
    targets: Vec<Target>,
    native: bool,
    user: Option<String>,
) -> Result<Response, ServerError> {
    let feed = Feed::open(state, &targets)?;
    let client = state.clients.register(user);
    let presence_channels = presence_channels(state, &targets);
    let presence = PresenceGuard::join(&state.hub, &client, presence_channels);
    let limits = &state.config.limits;
    let live = Live {
        feed,
        encode: if native { encode_native } else { encode_mux },
        head: VecDeque::from([switchboard_proto::sse_retry(limits.sse_retry_ms)]),
        heartbeat_every: limits.heartbeat(),
        heartbeat: switchboard_proto::sse_heartbeat(),
        on_shutdown: Bytes::from_static(b"event: reconnect\ndata: service restart\n\n"),
        on_kick: Bytes::from_static(b"event: disconnect\ndata: disconnected by the server\n\n"),
        shutdown: state.shutdown.clone(),
        client,
        presence,
    };
    Ok((
        streaming_headers("text/event-stream; charset=utf-8"),
        live::body(live),
    )
        .into_response())
}

/// Channels whose namespace shows presence.
pub(crate) fn presence_channels(state: &AppState, targets: &[Target]) -> Vec<String> {
    targets
        .iter()
        .filter(|t| {
            state
                .config
                .namespace_for(&t.channel)
                .is_some_and(|n| n.presence)
        })
        .map(|t| t.channel.clone())
        .collect()
}
