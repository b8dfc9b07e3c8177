//! The backend API: JSON over HTTP for application servers, authenticated with the API
//! key (`api_key` in the config file or `SWITCHBOARD_API_KEY`), sent as
//! `Authorization: Bearer KEY` or `X-Api-Key: KEY`.
//!
//! With no key configured the whole API answers 403 and says how to set one (it is
//! never open by default: a reverse proxy on the same host would make "loopback only"
//! mean "everyone"). A missing or wrong key is 401; the key is compared in constant time
//! (`subtle`), and after ten wrong keys in a minute an address gets 429 for the rest of
//! the minute, before its key is even looked at ([`crate::throttle`]). The API is not bound by a
//! namespace's `client_publish`; channel names and namespaces are still checked.
//!
//! An `idempotency_key` (1 to 128 bytes, opaque) makes a publish safe to retry: the same
//! key on the same channel within `limits.idempotency_window_ms` stores nothing and
//! answers the first publish's cursor. A broadcast gives its one key to every channel, so
//! each channel stores the message once however often the broadcast is retried.
//!
//! | request | body | answer |
//! |---|---|---|
//! | `POST /api/publish` | `{"channel", "data": JSON}` or `"text": "…"` or `"data_b64": "…"`; optional `"idempotency_key"` | `{"channel","cursor"}` (`"duplicate":true` when the key made it one) |
//! | `POST /api/broadcast` | `{"channels": […], data as above}`; optional `"idempotency_key"` | `{"cursors": {NAME: CURSOR}}` |
//! | `GET /api/channels` | | `{"channels": [{name, cursor, subscribers, retained}], "connections"}` |
//! | `GET /api/channels/{channel}` | | one channel's stats (404 if unknown to the broker and unsubscribed) |
//! | `GET /api/channels/{channel}/history?since=&limit=` | | poll body (`messages`, `cursor`, `reset`): after `since`, or the latest `limit` (default and most 1000) |
//! | `GET /api/channels/{channel}/presence` | | `{"channel","clients":[{client,user}],"count"}` |
//! | `POST /api/disconnect` | `{"client": ID}` or `{"user": ID}` | `{"disconnected": N, "other_nodes": M}` |
//!
//! A disconnect reaches every node: this one closes its connections of the client or
//! user (`disconnected` counts them), and the broker tells the other nodes to close
//! theirs (`other_nodes` is how many nodes it reached, from Redis's count of
//! subscribers to the control feed; 0 with the in-memory broker). Their connections are
//! closed as the message arrives, not counted here; a node cut off from Redis at that
//! moment misses it. With Redis unreachable the answer is 503 `broker_unavailable`, after
//! this node's own connections were closed: retrying is safe.

use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use subtle::ConstantTimeEq;

use switchboard_hub::{Disconnect, Payload, PublishOptions};

use crate::error::ServerError;
use crate::state::AppState;
use crate::transport::poll::{json_response, MAX_BATCH};

/// The API's routes, behind the key check.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/publish", post(publish))
        .route("/broadcast", post(broadcast))
        .route("/channels", get(channels))
        .route("/channels/{channel}", get(channel_stats))
        .route("/channels/{channel}/history", get(history))
        .route("/channels/{channel}/presence", get(presence))
        .route("/disconnect", post(disconnect))
        .layer(middleware::from_fn_with_state(state, auth))
}

async fn auth(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let throttle = state.clients.throttle();
    // An address that failed too often is not even told whether this key is right.
    if let Some(Err(e)) = peer.map(|ip| throttle.may_try_key(ip)) {
        return e.into_response();
    }
    match check_key(state.config.api_key.as_deref(), req.headers()) {
        Ok(()) => next.run(req).await,
        Err(e) => {
            if let (ServerError::Unauthorized, Some(ip)) = (&e, peer) {
                throttle.key_failed(ip);
            }
            e.into_response()
        }
    }
}

/// Checks the request's key against the configured one.
pub fn check_key(configured: Option<&str>, headers: &HeaderMap) -> Result<(), ServerError> {
    let Some(key) = configured else {
        return Err(ServerError::ApiDisabled);
    };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::front::admission::bearer);
    let given = bearer.or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()));
    match given {
        // Constant time in the bytes compared (only the length may show).
        Some(g) if bool::from(g.trim().as_bytes().ct_eq(key.as_bytes())) => Ok(()),
        _ => Err(ServerError::Unauthorized),
    }
}

fn respond(r: Result<Response, ServerError>) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}

/// A payload in an API body: exactly one of `data` (JSON), `text`, `data_b64`.
struct PayloadFields<'a> {
    data: Option<&'a RawValue>,
    text: Option<String>,
    data_b64: Option<String>,
}

impl PayloadFields<'_> {
    fn into_payload(self, limit: usize) -> Result<Payload, ServerError> {
        // Each payload gets exactly its bytes in an allocation of its own (not a view into
        // the request body, no spare capacity): what a stored message keeps.
        let payload = match (self.data, self.text, self.data_b64) {
            // Parsed as part of the request body, so known to be valid JSON.
            (Some(d), None, None) => {
                Payload::json_prevalidated(Bytes::copy_from_slice(d.get().as_bytes()))
            }
            (None, Some(t), None) => Payload::text(Bytes::from(t.into_bytes().into_boxed_slice()))?,
            (None, None, Some(b)) => Payload::binary(Bytes::from(
                base64::engine::general_purpose::STANDARD
                    .decode(b.as_bytes())
                    .map_err(|_| ServerError::BadRequest("data_b64 is not valid base64".into()))?
                    .into_boxed_slice(),
            )),
            _ => {
                return Err(ServerError::BadRequest(
                    "give exactly one of \"data\" (JSON), \"text\" or \"data_b64\"".into(),
                ))
            }
        };
        if payload.len() > limit {
            return Err(ServerError::PayloadTooLarge { limit });
        }
        Ok(payload)
    }
}

async fn read_json_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Bytes, ServerError> {
    // Room for the payload (base64 grows it by a third) and the envelope of the request.
    let limit = state
        .config
        .limits
        .max_publish_bytes
        .saturating_mul(2)
        .saturating_add(64 * 1024);
    crate::body::read(
        headers,
        body,
        limit,
        state.config.limits.body_read_timeout(),
    )
    .await
}

/// An idempotency key from a body, checked before anything is published.
fn checked_key(key: Option<&str>) -> Result<Option<&str>, ServerError> {
    if let Some(k) = key {
        switchboard_hub::check_idempotency_key(k)?;
    }
    Ok(key)
}

fn bad_json(e: serde_json::Error) -> ServerError {
    ServerError::BadRequest(format!("invalid JSON body: {e}"))
}

async fn publish(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    respond(
        async {
            #[derive(Deserialize)]
            struct Req<'a> {
                channel: String,
                #[serde(default, borrow, deserialize_with = "switchboard_proto::raw_or_null")]
                data: Option<&'a RawValue>,
                #[serde(default)]
                text: Option<String>,
                #[serde(default)]
                data_b64: Option<String>,
                #[serde(default)]
                idempotency_key: Option<String>,
            }
            let raw = read_json_body(&state, &headers, body).await?;
            let req: Req<'_> = serde_json::from_slice(&raw).map_err(bad_json)?;
            crate::channel::resolve(&state.hub, &req.channel)?;
            let key = checked_key(req.idempotency_key.as_deref())?;
            let payload = PayloadFields {
                data: req.data,
                text: req.text,
                data_b64: req.data_b64,
            };
            let payload = payload.into_payload(state.config.limits.max_publish_bytes)?;
            let options = PublishOptions::from_backend().with_key(key);
            let published = state
                .hub
                .publish_with(&req.channel, payload, options)
                .await?;
            Ok(crate::publish::answer(&req.channel, published))
        }
        .await,
    )
}

async fn broadcast(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    respond(
        async {
            #[derive(Deserialize)]
            struct Req<'a> {
                channels: Vec<String>,
                #[serde(default, borrow, deserialize_with = "switchboard_proto::raw_or_null")]
                data: Option<&'a RawValue>,
                #[serde(default)]
                text: Option<String>,
                #[serde(default)]
                data_b64: Option<String>,
                #[serde(default)]
                idempotency_key: Option<String>,
            }
            let raw = read_json_body(&state, &headers, body).await?;
            let req: Req<'_> = serde_json::from_slice(&raw).map_err(bad_json)?;
            let key = checked_key(req.idempotency_key.as_deref())?;
            if req.channels.is_empty() {
                return Err(ServerError::BadRequest("\"channels\" is empty".into()));
            }
            const MAX_BROADCAST: usize = 10_000;
            if req.channels.len() > MAX_BROADCAST {
                return Err(ServerError::TooManyChannels {
                    limit: MAX_BROADCAST,
                });
            }
            // Check every name first, so a bad one publishes nowhere.
            for c in &req.channels {
                crate::channel::resolve(&state.hub, c)?;
            }
            let payload = PayloadFields {
                data: req.data,
                text: req.text,
                data_b64: req.data_b64,
            };
            let payload = payload.into_payload(state.config.limits.max_publish_bytes)?;
            let mut cursors = serde_json::Map::new();
            let options = PublishOptions::from_backend().with_key(key);
            for c in &req.channels {
                let published = state.hub.publish_with(c, payload.clone(), options).await?;
                cursors.insert(c.clone(), json!(published.cursor));
            }
            Ok(Json(json!({ "cursors": cursors })).into_response())
        }
        .await,
    )
}

fn stats_json(c: &switchboard_hub::ChannelStats) -> serde_json::Value {
    json!({
        "name": &*c.name,
        "subscribers": c.subscribers,
        "cursor": c.head,
        "retained": c.retained,
    })
}

async fn channels(State(state): State<AppState>) -> Response {
    respond(
        async {
            let list: Vec<_> = state.hub.channels().await?.iter().map(stats_json).collect();
            Ok(
                Json(json!({ "channels": list, "connections": state.clients.len() }))
                    .into_response(),
            )
        }
        .await,
    )
}

fn channel_path(
    state: &AppState,
    p: Result<Path<String>, PathRejection>,
) -> Result<String, ServerError> {
    let Path(c) = p.map_err(|e| ServerError::InvalidChannel(e.to_string()))?;
    crate::channel::resolve(&state.hub, &c)?;
    Ok(c)
}

async fn channel_stats(
    State(state): State<AppState>,
    p: Result<Path<String>, PathRejection>,
) -> Response {
    respond(
        async {
            let c = channel_path(&state, p)?;
            let all = state.hub.channels().await?;
            let stats = all.iter().find(|s| *s.name == *c).ok_or_else(|| {
                ServerError::NotFound(format!("channel {c:?} has no history and no subscribers"))
            })?;
            Ok(Json(stats_json(stats)).into_response())
        }
        .await,
    )
}

#[derive(Deserialize)]
struct HistoryQuery {
    since: Option<String>,
    limit: Option<usize>,
}

async fn history(
    State(state): State<AppState>,
    p: Result<Path<String>, PathRejection>,
    q: Result<Query<HistoryQuery>, QueryRejection>,
) -> Response {
    respond(
        async {
            let c = channel_path(&state, p)?;
            let Query(q) =
                q.map_err(|e| ServerError::BadRequest(format!("bad query string: {e}")))?;
            let limit = q.limit.unwrap_or(MAX_BATCH).min(MAX_BATCH);
            let since = q
                .since
                .as_deref()
                .map(crate::transport::parse_cursor)
                .transpose()?;
            let answer = state.hub.history(&c, since, Some(limit)).await?;
            let body = crate::transport::poll::history_body(answer, since);
            Ok(json_response(body))
        }
        .await,
    )
}

async fn presence(
    State(state): State<AppState>,
    p: Result<Path<String>, PathRejection>,
) -> Response {
    respond(
        async {
            let c = channel_path(&state, p)?;
            let clients: Vec<_> = state
                .hub
                .presence(&c)
                .await?
                .iter()
                .map(|i| json!({ "client": i.client_id(), "user": i.user_id() }))
                .collect();
            let count = clients.len();
            Ok(Json(json!({ "channel": c, "clients": clients, "count": count })).into_response())
        }
        .await,
    )
}

async fn disconnect(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    respond(
        async {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Req {
                client: Option<String>,
                user: Option<String>,
            }
            let raw = read_json_body(&state, &headers, body).await?;
            let req: Req = serde_json::from_slice(&raw).map_err(bad_json)?;
            // Connections end (with a `disconnect` farewell) and the hub closes their
            // subscriptions; the count is of connections.
            let (n, target) = match (req.client, req.user) {
                (Some(c), None) => {
                    // An id is one connection: found by the hub (its subscriptions) or
                    // by the registry (connections it lists), it counts once.
                    let in_hub = state.hub.disconnect(&c) > 0;
                    let n = state.clients.disconnect_client(&c).max(usize::from(in_hub));
                    (n, Disconnect::Client(c))
                }
                (None, Some(u)) => {
                    // The registry first: a connection subscribing right now is either
                    // marked there (and ends itself) or already known to the hub.
                    let n = state.clients.disconnect_user(&u);
                    state.hub.disconnect_user(&u);
                    (n, Disconnect::User(u))
                }
                _ => {
                    return Err(ServerError::BadRequest(
                        "give exactly one of \"client\" or \"user\"".into(),
                    ))
                }
            };
            // The other nodes close theirs; they are reached, not counted.
            let other_nodes = state.hub.disconnect_elsewhere(&target).await?;
            Ok(Json(json!({ "disconnected": n, "other_nodes": other_nodes })).into_response())
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn keys() {
        let mut h = HeaderMap::new();
        assert!(matches!(check_key(None, &h), Err(ServerError::ApiDisabled)));
        assert!(matches!(
            check_key(Some("k"), &h),
            Err(ServerError::Unauthorized)
        ));
        h.insert("x-api-key", HeaderValue::from_static("k"));
        assert!(check_key(Some("k"), &h).is_ok());
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer nope"),
        );
        assert!(check_key(Some("k"), &h).is_err());
    }
}
