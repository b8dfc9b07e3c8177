//! `POST /ws`: one command of the `/ws` protocol (`switchboard_proto::command`) over plain
//! HTTP, for clients whose network allows no WebSocket (they read over `/sub`). Only the
//! commands that need no connection are taken: `presence`, `history` and `ping`. The
//! others are refused with `bad_request`: subscribing needs a connection (`GET /ws` or
//! `/sub`), and publishing over HTTP is `POST /ch/NAME` (rate-limited per address).
//!
//! The body is the command frame; the answer is `200` with its one reply frame, exactly
//! as `/ws` would have sent it (`{"id":N,"result":…}` or `{"id":N,"error":…}`). The
//! request's client token (`Authorization: Bearer`, `?token=`) decides what it may see,
//! as a `/ws` session's would.

use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use switchboard_proto::{encode_error, parse_command, ErrorCode, Op};

use crate::error::ServerError;
use crate::observe::counters::Transport;
use crate::state::AppState;
use crate::transport::poll::json_response;
use crate::transport::websocket::command;
use crate::transport::websocket::token::SessionToken;
use crate::transport::{Feed, Principal};

/// Longest command body taken (presence, history and ping are small).
pub const MAX_COMMAND_BYTES: usize = 4096;

/// Answers `POST /ws`.
pub async fn respond(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    principal: Principal,
) -> Result<Response, ServerError> {
    let limits = &state.config.limits;
    let frame =
        crate::body::read(headers, body, MAX_COMMAND_BYTES, limits.body_read_timeout()).await?;
    Ok(json_response(execute(state, &frame, principal).await))
}

async fn execute(state: &AppState, frame: &[u8], principal: Principal) -> Bytes {
    // A frame that does not parse is answered by the same parser below.
    if let Ok(cmd) = parse_command(frame) {
        if !matches!(cmd.op, Op::Presence { .. } | Op::History { .. } | Op::Ping) {
            return encode_error(
                Some(cmd.id),
                ErrorCode::BadRequest,
                "POST /ws takes presence, history and ping; subscribe over GET /ws or /sub, \
                 publish with POST /ch/NAME",
            );
        }
    }
    // These commands touch no subscription and publish nothing: a session that lives
    // for this one command is enough.
    let mut client = state.clients.register(principal.user, Transport::Ws);
    // No subscribe is taken here, so the backend is not asked about any (the request
    // itself passed its connect check in the front, as `GET /ws` does).
    let mut token = SessionToken::new(state, principal.identity, None);
    command::command(state, &mut client, &mut token, &mut Feed::default(), frame).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_commands_without_a_connection() {
        let server = crate::server::Builder::new(crate::config::Config::default())
            .build()
            .expect("server");
        let state = server.state().clone();
        let reply = |frame: &'static str| {
            let state = state.clone();
            async move {
                let r = execute(&state, frame.as_bytes(), Principal::default()).await;
                serde_json::from_slice::<serde_json::Value>(&r).expect("json")
            }
        };
        assert_eq!(
            reply(r#"{"id":1,"op":"ping"}"#).await,
            serde_json::json!({"id":1,"result":{}})
        );
        let presence = reply(r#"{"id":2,"op":"presence","channel":"room"}"#).await;
        assert_eq!(presence["result"]["count"], 0, "{presence}");
        let history = reply(r#"{"id":3,"op":"history","channel":"room"}"#).await;
        assert_eq!(history["result"]["reset"], false, "{history}");
        for refused in [
            r#"{"id":4,"op":"subscribe","channel":"room"}"#,
            r#"{"id":4,"op":"unsubscribe","channel":"room"}"#,
            r#"{"id":4,"op":"publish","channel":"room","data":1}"#,
        ] {
            let r = reply(refused).await;
            assert_eq!(r["id"], 4, "{refused}");
            assert_eq!(r["error"]["code"], "bad_request", "{refused}");
        }
        assert_eq!(reply("nope").await["error"]["code"], "bad_request");
    }
}
