//! One command of the `/ws` protocol, executed for a connection: subscribe,
//! unsubscribe, publish, presence, history, ping, and, with client tokens on, connect and
//! refresh. Each gets exactly one reply frame: its result, or an error whose code comes
//! from [`crate::error::ServerError::command_code`] (the same failure as over HTTP), or
//! one only the command protocol has. What a command may do on a channel is decided by
//! [`crate::channel`] with the session's token ([`super::token`]).

use bytes::Bytes;
use switchboard_hub::{Payload, PublishOptions};
use switchboard_proto::{
    encode_error, encode_ok, encode_presence_result, encode_result_cursor, encode_result_raw,
    parse_command, Command, CommandData, ErrorCode, Op, PresenceEntry, Token,
};

use super::token::SessionToken;
use crate::auth::Verifier;
use crate::channel::{self, Caller};
use crate::clients::ClientHandle;
use crate::error::ServerError;
use crate::observe::counters::Transport;
use crate::state::AppState;
use crate::throttle::Publisher;
use crate::transport::poll::MAX_BATCH;
use crate::transport::{client_info, Feed};

/// Executes one command and returns its reply frame. `connect` may register the
/// session anew (`client` then has its token's user and a new id, given in the reply).
pub async fn command(
    state: &AppState,
    client: &mut ClientHandle,
    token: &mut SessionToken,
    feed: &mut Feed,
    frame: &[u8],
) -> Bytes {
    let cmd = match parse_command(frame) {
        Ok(c) => c,
        Err(e) => return encode_error(e.id, e.code, &e.message),
    };
    let id = cmd.id;
    match execute(state, client, token, feed, cmd).await {
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
    client: &mut ClientHandle,
    token: &mut SessionToken,
    feed: &mut Feed,
    cmd: Command<'_>,
) -> Result<Bytes, ServerError> {
    let id = cmd.id;
    let limits = &state.config.limits;
    if matches!(
        cmd.op,
        Op::Subscribe { .. } | Op::Publish { .. } | Op::Presence { .. } | Op::History { .. }
    ) {
        token.fresh()?;
    }
    match cmd.op {
        Op::Subscribe {
            channel,
            since,
            token: pass,
        } => {
            let user = token.identity().and_then(|i| i.user.as_deref());
            let mut admitted = match (&state.auth, &pass) {
                (Some(verifier), Some(pass)) => {
                    verifier.subscription(pass.as_str(), &channel, user)?;
                    vec![channel.clone().into_owned()]
                }
                // Without tokens on, the field is ignored (as unknown fields are).
                _ => Vec::new(),
            };
            // The application's backend, when it is asked about subscribes: its yes
            // admits the channel as a subscription token would; its no is the answer.
            if let (Some(backend), Some(asker)) = (&state.backend, token.asker()) {
                if asker.subscribe(backend, &channel, user).await? && admitted.is_empty() {
                    admitted.push(channel.clone().into_owned());
                }
            }
            let caller = Caller {
                admitted: &admitted,
                ..token.caller()
            };
            channel::for_subscribe(state, caller, &channel)?;
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
            let since = crate::transport::join::start(&state.hub, &channel, since).await?;
            let sub = state
                .hub
                .subscribe(&channel, since, client_info(client))
                .await?;
            let start = sub.position();
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
        Op::Publish {
            channel,
            data,
            idempotency_key,
        } => {
            channel::for_client_publish(state, token.caller(), &channel)?;
            if let Some(k) = &idempotency_key {
                switchboard_hub::check_idempotency_key(k)?;
            }
            let payload = match data {
                CommandData::Json(j) => {
                    Payload::json_prevalidated(Bytes::copy_from_slice(j.as_bytes()))
                }
                // Exactly its bytes: base64 decoding may leave spare capacity, which a
                // `Bytes` would keep (and a header besides) as long as history holds it.
                CommandData::Binary(b) => Payload::binary(Bytes::from(b.into_boxed_slice())),
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
            let options = PublishOptions::from_client().with_key(idempotency_key.as_deref());
            let published = state.hub.publish_with(&channel, payload, options).await?;
            Ok(encode_result_cursor(id, published.cursor))
        }
        Op::Presence { channel } => {
            channel::for_presence(state, token.caller(), &channel)?;
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
            channel::for_history(state, token.caller(), &channel)?;
            let limit = limit.map_or(MAX_BATCH, |l| (l as usize).min(MAX_BATCH));
            let answer = state.hub.history(&channel, since, Some(limit)).await?;
            let body = crate::transport::poll::history_body(answer, since);
            Ok(encode_result_raw(id, &body))
        }
        Op::Ping => Ok(encode_ok(id)),
        Op::Connect { token: new } => connect(state, client, token, feed, id, &new),
        Op::Refresh { token: new } => {
            let verifier = verifier(state)?;
            let Some(current) = token.identity() else {
                return Err(ServerError::BadRequest(
                    "this connection has no token to refresh; send connect first".into(),
                ));
            };
            let next = verifier.refresh(new.as_str(), current)?;
            token.set(next);
            Ok(encode_ok(id))
        }
    }
}

/// `connect`: the session's token, before anything else happened on it. A token naming a
/// user registers the session anew under that user (presence and the backend's
/// disconnect see it), so its client id changes; the reply gives it.
fn connect(
    state: &AppState,
    client: &mut ClientHandle,
    token: &mut SessionToken,
    feed: &Feed,
    id: u64,
    new: &Token<'_>,
) -> Result<Bytes, ServerError> {
    let verifier = verifier(state)?;
    if token.identity().is_some() {
        return Err(ServerError::BadRequest(
            "this connection has a token already; send refresh to replace it".into(),
        ));
    }
    if !feed.is_empty() {
        return Err(ServerError::BadRequest(
            "connect must come before any subscribe".into(),
        ));
    }
    let identity = verifier.connection(new.as_str())?;
    if let Some(user) = &identity.user {
        // Only a `/ws` session connects (`POST /ws` refuses it).
        *client = state
            .clients
            .register(Some(user.to_string()), Transport::Ws);
    }
    token.set(identity);
    let result = serde_json::json!({ "client": client.id() }).to_string();
    Ok(encode_result_raw(id, result.as_bytes()))
}

fn verifier(state: &AppState) -> Result<&Verifier, ServerError> {
    state.auth.as_deref().ok_or_else(|| {
        ServerError::BadRequest("client tokens are not enabled on this server".into())
    })
}
