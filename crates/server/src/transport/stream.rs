//! HTTP streaming: `GET /ch/NAME?transport=stream` (or `/sub?…&transport=stream`). One
//! response that never ends: a 2 KiB whitespace prelude (so buffering proxies and
//! browsers start delivering), then one envelope JSON per line; an empty line is the
//! heartbeat. On shutdown (or when the hub closes the subscription) the last line is
//! `{"event":"reconnect",…}`, on a backend disconnect `{"event":"disconnect",…}`, when
//! the client token it was opened with expires `{"event":"refresh",…}` (reconnect with a
//! fresh token), then the response ends.

use axum::response::Response;
use switchboard_proto::StreamLine;

use crate::error::ServerError;
use crate::observe::counters::Transport;
use crate::state::AppState;
use crate::transport::live::{self, Farewells, Style};
use crate::transport::{Principal, Target};

static STYLE: Style = Style {
    content_type: "application/x-ndjson; charset=utf-8",
    encode: live::encoded::<StreamLine>,
    heartbeat: b"\n",
    farewells: Farewells {
        reconnect: b"{\"event\":\"reconnect\",\"reason\":\"service restart\"}\n",
        resume: b"{\"event\":\"reconnect\",\"reason\":\"resume from your last cursor\"}\n",
        disconnect: b"{\"event\":\"disconnect\",\"reason\":\"disconnected by the server\"}\n",
        refresh: b"{\"event\":\"refresh\",\"reason\":\"token expired\"}\n",
    },
    cursors_id: false,
    transport: Transport::Stream,
};

/// Answers a streaming subscription.
pub async fn respond(
    state: &AppState,
    targets: Vec<Target>,
    principal: Principal,
) -> Result<Response, ServerError> {
    live::respond(
        state,
        &targets,
        principal,
        &STYLE,
        switchboard_proto::stream_prelude(),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_is_the_protocol_empty_line() {
        assert_eq!(STYLE.heartbeat, &switchboard_proto::stream_heartbeat()[..]);
    }
}
