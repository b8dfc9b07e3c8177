//! `GET /health` (liveness), `GET /ready` (readiness) and the older `GET /healthz`.
//!
//! - `/health`: 200 `{"status":"ok"}` whenever the process answers at all. A process
//!   manager restarts the server when this fails.
//! - `/ready`: 200 `{"status":"ready"}` while the server can serve: it is listening
//!   (it answered), its broker answers a health check within a second, and it is not
//!   shutting down; otherwise 503 `{"status":"not_ready","reason":"…"}`. A load
//!   balancer stops sending new clients while this fails.
//! - `/healthz`: kept for those who use it: the readiness check, answered `ok` (or the
//!   server's usual JSON error with 503).
//!
//! None of them needs the API key: they say nothing but whether the server serves.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::error::ServerError;
use crate::state::AppState;

/// How long the broker may take to answer a readiness check.
const BROKER_TIMEOUT: Duration = Duration::from_secs(1);

/// `GET /health`.
pub async fn health() -> Response {
    Json(serde_json::json!({ "status": "ok" })).into_response()
}

/// `GET /ready`.
pub async fn ready(State(state): State<AppState>) -> Response {
    match readiness(&state).await {
        Ok(()) => Json(serde_json::json!({ "status": "ready" })).into_response(),
        Err(e) => {
            let (_, code) = e.status();
            let body = serde_json::json!({
                "status": "not_ready",
                "error": code,
                "reason": e.to_string(),
            });
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

/// `GET /healthz`: `ok`, or 503 with the reason.
pub async fn healthz(State(state): State<AppState>) -> Response {
    match readiness(&state).await {
        Ok(()) => "ok".into_response(),
        Err(e) => e.into_response(),
    }
}

/// Whether the server can serve now; `Err` says why not (a 503 error).
pub async fn readiness(state: &AppState) -> Result<(), ServerError> {
    if state.shutdown.is_triggered() {
        return Err(ServerError::ShuttingDown);
    }
    match tokio::time::timeout(BROKER_TIMEOUT, state.hub.health()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(ServerError::from(e)),
        Err(_) => Err(ServerError::Broker(
            switchboard_hub::BrokerError::Unavailable("no answer within 1 s".into()),
        )),
    }
}
