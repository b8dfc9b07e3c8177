//! What an operator watches: `/metrics` for Prometheus, `/health` and `/ready` for a
//! process manager and a load balancer, and `/status`, a live page fed over the
//! server's own channels.
//!
//! - [`counters`]: the front's counters (bytes, connections, transports, failures by
//!   code and status, close codes); the hub keeps its own ([`switchboard_hub::HubStats`]).
//! - [`process`]: resident memory, file descriptors and CPU time, read at scrape time.
//! - [`metrics`]: `GET /metrics`, the Prometheus text of all of them.
//! - [`health`]: `GET /health`, `GET /ready`, `GET /healthz`.
//! - [`status`]: `GET /status` and the `_sys:stats` feed it subscribes to; [`sys`]: the
//!   server's own namespace.

pub mod counters;
pub mod health;
pub mod metrics;
pub mod process;
pub mod status;
pub mod sys;

use axum::extract::{ConnectInfo, Request};

use crate::error::ServerError;
use crate::state::AppState;

/// The API key check of the operator's endpoints: none when no key is configured
/// (the server is open then, as its channels are), the key otherwise, with the same
/// limit on wrong keys per address as `/api`.
pub fn check_operator(state: &AppState, req: &Request) -> Result<(), ServerError> {
    let Some(key) = state.config.api_key.as_deref() else {
        return Ok(());
    };
    let peer = req
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let throttle = state.clients.throttle();
    if let Some(ip) = peer {
        throttle.may_try_key(ip)?;
    }
    let checked = crate::api::check_key(Some(key), req.headers());
    if let (Err(ServerError::Unauthorized), Some(ip)) = (&checked, peer) {
        throttle.key_failed(ip);
    }
    checked
}
