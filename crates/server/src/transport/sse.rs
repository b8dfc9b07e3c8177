//! Server-Sent Events: `GET /ch/NAME` with `Accept: text/event-stream` (what
//! `new EventSource("/ch/NAME")` sends), or `/sub?channel=…&transport=sse`.
//!
//! * Native endpoint: each event's `data:` is the payload alone, `id:` the cursor, `event:`
//!   `message` (so `onmessage` fires), `reset`, `join` or `leave`. The browser resends the
//!   last id as `Last-Event-ID` when it reconnects, which takes precedence over `?since=`
//!   (the URL's cursor is older by then).
//! * `/sub`: `data:` is the whole envelope (it names the channel); `Last-Event-ID` is
//!   ignored there because one id cannot hold a cursor per channel — resume with
//!   `channel=NAME,CURSOR`.
//! * The stream starts with a `retry:` hint; a comment line is sent as a heartbeat when
//!   idle; on shutdown (or when the hub closes the subscription) a final
//!   `event: reconnect` is sent and the response ends (the browser reconnects by itself
//!   after the retry delay, resuming from its last id); on a backend disconnect, a final
//!   `event: disconnect`.

use std::collections::VecDeque;

use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use switchboard_hub::WireFormat;
use switchboard_proto::Cursor;

use crate::error::ServerError;
use crate::state::AppState;
use crate::transport::live::{self, Farewells, Live};
use crate::transport::{parse_cursor, streaming_headers, with_client_id, Feed, Target};

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

/// Answers an SSE subscription. `native` selects the payload-only event format.
pub async fn respond(
    state: &AppState,
    targets: Vec<Target>,
    native: bool,
    user: Option<String>,
) -> Result<Response, ServerError> {
    let client = state.clients.register(user);
    let feed = Feed::open(state, &targets, &client).await?;
    let limits = &state.config.limits;
    let live = Live {
        feed,
        format: if native {
            WireFormat::SseData
        } else {
            WireFormat::SseEnvelope
        },
        head: VecDeque::from([switchboard_proto::sse_retry(limits.sse_retry_ms)]),
        heartbeat_every: limits.heartbeat(),
        heartbeat: switchboard_proto::sse_heartbeat(),
        farewells: Farewells {
            reconnect: Bytes::from_static(b"event: reconnect\ndata: service restart\n\n"),
            resume: Bytes::from_static(b"event: reconnect\ndata: resume from your last cursor\n\n"),
            disconnect: Bytes::from_static(
                b"event: disconnect\ndata: disconnected by the server\n\n",
            ),
        },
        shutdown: state.shutdown.clone(),
        client,
    };
    let id = live.client.id().to_owned();
    let resp = (
        streaming_headers("text/event-stream; charset=utf-8"),
        live::body(live),
    )
        .into_response();
    Ok(with_client_id(resp, &id))
}
