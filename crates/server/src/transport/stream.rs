//! HTTP streaming: `GET /ch/NAME?transport=stream` (or `/sub?…&transport=stream`). One
//! response that never ends: a 2 KiB whitespace prelude (so buffering proxies and
//! browsers start delivering), then one envelope JSON per line; an empty line is the
//! heartbeat. On shutdown the last line is `{"event":"reconnect",…}`, on a backend
//! disconnect `{"event":"disconnect",…}`, then the response ends.

use std::collections::VecDeque;

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use switchboard_proto::{encode_stream_line, Envelope};

use crate::error::ServerError;
use crate::hub::Item;
use crate::state::AppState;
use crate::transport::live::{self, Live, PresenceGuard};
use crate::transport::sse::presence_channels;
use crate::transport::{streaming_headers, Feed, Target};

fn encode(item: &Item) -> Bytes {
    match item {
        Item::Message(m) => m.stream_line().clone(),
        Item::Reset { channel, cursor } => encode_stream_line(&Envelope::reset(channel, *cursor)),
    }
}

/// Answers a streaming subscription.
pub fn respond(
    state: &AppState,
    targets: Vec<Target>,
    user: Option<String>,
) -> Result<Response, ServerError> {
    let feed = Feed::open(state, &targets)?;
    let client = state.clients.register(user);
    let presence = PresenceGuard::join(&state.hub, &client, presence_channels(state, &targets));
    let live = Live {
        feed,
        encode,
        head: VecDeque::from([switchboard_proto::stream_prelude()]),
        heartbeat_every: state.config.limits.heartbeat(),
        heartbeat: switchboard_proto::stream_heartbeat(),
        on_shutdown: Bytes::from_static(
            b"{\"event\":\"reconnect\",\"reason\":\"service restart\"}\n",
        ),
        on_kick: Bytes::from_static(
            b"{\"event\":\"disconnect\",\"reason\":\"disconnected by the server\"}\n",
        ),
        shutdown: state.shutdown.clone(),
        client,
        presence,
    };
    Ok((
        streaming_headers("application/x-ndjson; charset=utf-8"),
        live::body(live),
    )
        .into_response())
}
