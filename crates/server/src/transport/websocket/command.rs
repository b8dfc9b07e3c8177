//! One command of the `/ws` protocol, executed for a connection: subscribe,
//! unsubscribe, publish, presence, history, ping. Each gets exactly one reply frame: its
//! result, or an error whose code comes from [`crate::error::ServerError::command_code`]
//! (the same failure as over HTTP), or one only the command protocol has.

use bytes::Bytes;
use switchboard_hub::Payload;
use switchboard_proto::{
    encode_error, encode_ok, encode_presence_result, encode_result_cursor, encode_result_raw,
    parse_command, Command, CommandData, ErrorCode, Op, PresenceEntry,
};

use crate::channel;
use crate::clients::ClientHandle;
use crate::error::ServerError;
use crate::state::AppState;
use crate::throttle::Publisher;
use crate::transport::poll::MAX_BATCH;
use crate::transport::{client_info, Feed};

/// Executes one command and returns its reply frame.
pub async fn command(
    state: &AppState,
    client: &ClientHandle,
    feed: &mut Feed,
    frame: &[u8],
) -> Bytes {
    let cmd = match parse_command(frame) {
        Ok(c) => c,
        Err(e) => return encode_error(e.id, e.code, &e.message),
    };
    let id = cmd.id;
    match execute(state, client, feed, cmd).await {
        Ok(reply) => reply,
        Err(e) => encode_error(Some(id), e.command_code(), &e.to_string()),
    }
}

/// Errors that only exist in the command protocol.
fn protocol_error(id: u64, code: ErrorCode, message: String) -> Result<Bytes, ServerError> {
    Ok(encode_error(Some(id), code, &message))
}

async fn execute(
    state: &AppState,
    client: &ClientHandle,
    feed: &mut Feed,
    cmd: Command<'_>,
) -> Result<Bytes, ServerError> {
    let id = cmd.id;
    let limits = &state.config.limits;
    match cmd.op {
        Op::Subscribe { channel, since } => {
            channel::for_subscribe(&state.hub, &channel)?;
            if feed.contains(&channel) {
                return protocol_error(
                    id,
                    ErrorCode::AlreadySubscribed,
                    format!("already subscribed to {channel}"),
                );
            }
            if feed.len() >= limits.max_channels_per_request {
                return Err(ServerError::TooManyChannels {
                    limit: limits.max_channels_per_request,
                });
            }
            let sub = state
                .hub
                .subscribe(&channel, since, client_info(client))
                .await?;
            let start = sub.start();
            feed.push(sub);
            Ok(encode_result_cursor(id, start))
        }
        Op::Unsubscribe { channel } => {
            if !feed.remove(&channel) {
                return protocol_error(
                    id,
                    ErrorCode::NotSubscribed,
                    format!("not subscribed to {channel}"),
                );
            }
            Ok(encode_ok(id))
        }
        Op::Publish { channel, data } => {
            channel::for_client_publish(&state.hub, &channel)?;
            let payload = match data {
                CommandData::Json(j) => {
                    Payload::json_prevalidated(Bytes::copy_from_slice(j.as_bytes()))
                }
                CommandData::Binary(b) => Payload::binary(Bytes::from(b)),
            };
            if payload.len() > limits.max_publish_bytes {
                return Err(ServerError::PayloadTooLarge {
                    limit: limits.max_publish_bytes,
                });
            }
            state
                .clients
                .throttle()
                .publish(Publisher::Connection(client.key()))?;
            let cursor = state.hub.publish_from_client(&channel, payload).await?;
            Ok(encode_result_cursor(id, cursor))
        }
        Op::Presence { channel } => {
            channel::for_subscribe(&state.hub, &channel)?;
            let list = state.hub.presence(&channel).await?;
            let entries: Vec<PresenceEntry<'_>> =
                list.iter().map(|c| c.as_presence_entry()).collect();
            Ok(encode_presence_result(id, &entries))
        }
        Op::History {
            channel,
            since,
            limit,
        } => {
            channel::for_subscribe(&state.hub, &channel)?;
            let limit = limit.map_or(MAX_BATCH, |l| (l as usize).min(MAX_BATCH));
            let answer = state.hub.history(&channel, since, Some(limit)).await?;
            let body = crate::transport::poll::history_body(answer, since);
            Ok(encode_result_raw(id, &body))
        }
        Op::Ping => Ok(encode_ok(id)),
    }
}
