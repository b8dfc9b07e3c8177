//! HTTP streaming: `GET /ch/NAME?transport=stream` (or `/sub?…&transport=stream`). One
//! response that never ends: a 2 KiB whitespace prelude (so buffering proxies and
//! browsers start delivering), then one envelope JSON per line; an empty line is the
//! heartbeat. On shutdown (or when the hub closes the subscription) the last line is
//! `{"event":"reconnect",…}`, on a backend disconnect `{"event":"disconnect",…}`, then
//! the response ends.

use std::collections::VecDeque;

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use switchboard_hub::WireFormat;

use crate::error::ServerError;
use crate::state::AppState;
use crate::transport::live::{self, Farewells, Live};
use crate::transport::{streaming_headers, with_client_id, Feed, Target};

/// Answers a streaming subscription.
pub async fn respond(
    state: &AppState,
    targets: Vec<Target>,
    user: Option<String>,
) -> Result<Response, ServerError> {
    let client = state.clients.register(user);
    let feed = Feed::open(state, &targets, &client).await?;
    let live = Live {
        feed,
        format: WireFormat::StreamLine,
        head: VecDeque::from([switchboard_proto::stream_prelude()]),
        heartbeat_every: state.config.limits.heartbeat(),
        heartbeat: switchboard_proto::stream_heartbeat(),
        farewells: Farewells {
            reconnect: Bytes::from_static(
                b"{\"event\":\"reconnect\",\"reason\":\"service restart\"}\n",
            ),
            resume: Bytes::from_static(
                b"{\"event\":\"reconnect\",\"reason\":\"resume from your last cursor\"}\n",
            ),
            disconnect: Bytes::from_static(
                b"{\"event\":\"disconnect\",\"reason\":\"disconnected by the server\"}\n",
            ),
        },
        shutdown: state.shutdown.clone(),
        client,
    };
    let id = live.client.id().to_owned();
    let resp = (
        streaming_headers("application/x-ndjson; charset=utf-8"),
        live::body(live),
    )
        .into_response();
    Ok(with_client_id(resp, &id))
}
