//! `POST /ch/NAME`: a client publishes one message (when its namespace allows client
//! publishing). The body is the payload; its `Content-Type` says how subscribers get it:
//! `application/json` → embedded JSON (must be valid, else 400),
//! `application/octet-stream` → bytes (`data_b64`), anything else → text (must be UTF-8).
//! Bodies over `limits.max_publish_bytes` are refused with 413 before they are read in
//! full, and a body slower than `limits.body_read_timeout_ms` with 408 ([`crate::body`]). Answer: `{"channel":"NAME","cursor":"E:N"}`.
//!
//! An `Idempotency-Key` header (1 to 128 bytes of visible ASCII, opaque; 400 otherwise)
//! makes the publish safe to retry: the same key on the same channel within
//! `limits.idempotency_window_ms` stores nothing and answers the first publish's cursor,
//! with `"duplicate":true`.

use std::net::SocketAddr;

use axum::body::Body;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use switchboard_hub::{Payload, PublishOptions};

use crate::channel::Caller;
use crate::error::ServerError;
use crate::state::AppState;
use crate::throttle::Publisher;

/// The payload a body with these headers carries.
pub fn payload_for(headers: &HeaderMap, body: Bytes) -> Result<Payload, ServerError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match ct.as_str() {
        "application/json" => Payload::json(body).map_err(|_| {
            ServerError::BadRequest(
                "the body is not valid JSON (Content-Type: application/json)".into(),
            )
        }),
        "application/octet-stream" => Ok(Payload::binary(body)),
        _ => Payload::text(body).map_err(|_| {
            ServerError::BadRequest(
                "the body is not UTF-8 text; send binary data with \
                 Content-Type: application/octet-stream"
                    .into(),
            )
        }),
    }
}

/// The request's `Idempotency-Key` header, checked (400 when it is not 1 to 128 bytes of
/// visible ASCII).
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, ServerError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().map_err(|_| {
        ServerError::BadRequest("the Idempotency-Key header is not visible ASCII".into())
    })?;
    switchboard_hub::check_idempotency_key(key)?;
    Ok(Some(key))
}

/// The answer to a publish: `{"channel","cursor"}`, and `"duplicate":true` when its
/// idempotency key made it one.
pub fn answer(channel: &str, published: switchboard_hub::Published) -> Response {
    let mut body = serde_json::json!({ "channel": channel, "cursor": published.cursor });
    if published.duplicate {
        body["duplicate"] = true.into();
    }
    axum::Json(body).into_response()
}

/// Handles `POST /ch/NAME` from `caller` at `peer` (rate-limited per user when its token
/// names one, else per address when known).
pub async fn publish(
    state: &AppState,
    caller: Caller<'_>,
    channel: &str,
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ServerError> {
    crate::channel::for_client_publish(state, caller, channel)?;
    let key = idempotency_key(headers)?;
    let throttle = state.clients.throttle();
    match (caller.identity.and_then(|i| i.user.as_deref()), peer) {
        (Some(user), _) => throttle.publish(throttle.user(user))?,
        (None, Some(peer)) => throttle.publish(Publisher::Address(peer.ip()))?,
        (None, None) => {}
    }
    let limits = &state.config.limits;
    let bytes = crate::body::read(
        headers,
        body,
        limits.max_publish_bytes,
        limits.body_read_timeout(),
    )
    .await?;
    let payload = payload_for(headers, bytes)?;
    let options = PublishOptions::from_client().with_key(key);
    let published = state.hub.publish_with(channel, payload, options).await?;
    Ok(answer(channel, published))
}
