//! The router: every URL the server answers and which module answers it.
//!
//! | route | answered by |
//! |---|---|
//! | `GET /` , `/demo/chat`, `/demo/ticker` | [`crate::demo`] |
//! | `GET /ch/{channel}` | a transport, chosen as in [`crate::transport`] |
//! | `POST /ch/{channel}` | [`crate::publish`] |
//! | `GET /sub?channel=NAME[,SINCE]&…` | SSE, stream, long-poll or poll over several channels |
//! | `GET /ws` | the multiplexed WebSocket ([`crate::transport::websocket`]) |
//! | `POST /ws` | one `/ws` command over HTTP: presence, history, ping ([`crate::transport::http_command`]) |
//! | `GET /switchboard.js` | the browser client ([`crate::sdk`]) |
//! | `/api/…` | the backend API ([`crate::api`]) |
//! | `GET /health`, `GET /ready`, `GET /healthz` | liveness, readiness ([`crate::observe::health`]) |
//! | `GET /metrics` | Prometheus text ([`crate::observe::metrics`]) |
//! | `GET /status`, `POST /status/ticket` | the live status page ([`crate::observe::status`]) |
//!
//! | `GET PATH` with `Upgrade: websocket` | a WebSocket endpoint an embedding program added ([`crate::server::Builder::websocket`]) |
//!
//! Everything else is a 404 with a JSON body; every failure goes through
//! [`crate::error::ServerError`]. Requests the connection front answers itself reach
//! [`subscribe`] directly; every other request comes through the router ([`router`]).
//! Either way a handler finds the request's client-token [`crate::auth::Identity`] (if
//! any) in its extensions, put there by the front, and reads it through
//! [`Principal::of`].

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::auth::Identity;
use crate::channel::Caller;
use crate::error::ServerError;
use crate::state::AppState;
use crate::transport::websocket::{self, endpoint::Endpoint};
use crate::transport::{self, Kind, Principal, SubQuery, Target};

/// Builds the router over `state`, with `endpoints`' WebSocket endpoints (path, endpoint)
/// and then `extra` routes of an embedding program beside the server's own (a path both
/// name panics here, as axum's `merge` does).
pub fn router(state: AppState, endpoints: &[(String, Arc<dyn Endpoint>)], extra: Router) -> Router {
    let mut r = Router::new()
        .route("/ch/{channel}", get(subscribe_routed).post(channel_post))
        .route("/sub", get(subscribe_routed))
        .route("/ws", get(mux_get).post(mux_post))
        .route(crate::sdk::PATH, get(crate::sdk::serve))
        .route("/healthz", get(crate::observe::health::healthz))
        .route("/health", get(crate::observe::health::health))
        .route("/ready", get(crate::observe::health::ready))
        .route("/metrics", get(crate::observe::metrics::serve))
        .route("/status", get(crate::observe::status::page))
        .route("/status/ticket", post(crate::observe::status::ticket))
        .nest("/api", crate::api::router(state.clone()));
    if state.config.demo {
        r = r.merge(crate::demo::router());
    }
    for (path, endpoint) in endpoints {
        let endpoint = Arc::clone(endpoint);
        r = r.route(
            path,
            get(
                move |State(state): State<AppState>, mut req: Request| async move {
                    let mut q = query(&req);
                    let upgrade = async {
                        let principal = Principal::of(&state, &mut req, &mut q)?;
                        let mode = websocket::Mode::Custom(endpoint);
                        websocket::upgrade(&state, req, mode, principal).await
                    };
                    respond(upgrade.await)
                },
            ),
        );
    }
    r.fallback(|req: Request| async move {
        ServerError::NotFound(format!("{} {}", req.method(), req.uri().path())).into_response()
    })
    .method_not_allowed_fallback(|req: Request| async move {
        ServerError::MethodNotAllowed(format!("{} {}", req.method(), req.uri().path()))
            .into_response()
    })
    .with_state(state)
    .merge(extra)
}

/// Whether [`subscribe`] answers `GET path` (`/ch/NAME` and `/sub`).
pub fn is_subscribe_path(path: &str) -> bool {
    path == "/sub" || path.starts_with("/ch/")
}

fn respond(r: Result<Response, ServerError>) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}

/// The subscribe parameters of `req`'s query string (read in place: no extractor copies).
fn query(req: &Request) -> SubQuery {
    SubQuery::parse(req.uri().query())
}

/// The channel name of a `/ch/NAME` path segment, percent-decoded (every `/ch/` route
/// reads it here, whoever read the request).
fn channel_from_segment(raw: &str) -> Result<String, ServerError> {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|e| ServerError::InvalidChannel(format!("cannot read the channel name: {e}")))
}

/// `GET /ch/NAME` and `GET /sub`: the one entry for subscribe requests, whether hyper
/// read them (through the router) or the connection front did (called directly, without
/// the router's per-request work; it only passes requests of these two shapes).
pub async fn subscribe(state: &AppState, req: Request) -> Response {
    // Read before any await: no borrow of the request (its body is not `Sync`) may live
    // across one.
    let channel = req
        .uri()
        .path()
        .strip_prefix("/ch/")
        .map(channel_from_segment);
    let result = match channel {
        Some(Ok(channel)) => channel_get(state, channel, req).await,
        Some(Err(e)) => Err(e),
        None => sub_get(state, req).await,
    };
    respond(result)
}

async fn subscribe_routed(State(state): State<AppState>, req: Request) -> Response {
    subscribe(&state, req).await
}

async fn channel_get(
    state: &AppState,
    channel: String,
    mut req: Request,
) -> Result<Response, ServerError> {
    let mut q = query(&req);
    let principal = Principal::of(state, &mut req, &mut q)?;
    crate::channel::for_subscribe(state, principal.caller(), &channel)?;
    let kind = transport::choose(req.headers(), &q)?;
    let since = match kind {
        Kind::Sse => transport::sse::native_since(req.headers(), &q)?,
        _ => transport::native_since(&q)?,
    };
    let target = Target { channel, since };
    match kind {
        Kind::WebSocket => {
            websocket::upgrade(state, req, websocket::Mode::Native(target), principal).await
        }
        Kind::Sse => transport::sse::respond(state, vec![target], true, principal).await,
        Kind::Stream => transport::stream::respond(state, vec![target], principal).await,
        Kind::LongPoll => {
            transport::longpoll::respond(state, &[target], true, q.compact, principal.user).await
        }
        Kind::Poll => transport::poll::respond(state, &[target], true, q.compact).await,
    }
}

async fn channel_post(State(state): State<AppState>, req: Request) -> Response {
    let (mut parts, body) = req.into_parts();
    let identity = parts.extensions.remove::<Identity>();
    respond(
        async {
            let raw = parts.uri.path().strip_prefix("/ch/").unwrap_or_default();
            let channel = channel_from_segment(raw)?;
            let peer = parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0);
            let caller = Caller::new(identity.as_ref());
            crate::publish::publish(&state, caller, &channel, peer, &parts.headers, body).await
        }
        .await,
    )
}

async fn sub_get(state: &AppState, mut req: Request) -> Result<Response, ServerError> {
    let mut q = query(&req);
    let principal = Principal::of(state, &mut req, &mut q)?;
    let mut targets = transport::parse_targets(state, principal.caller(), &q.channels)?;
    // Decided before any await: the request's body is not `Sync`, so no borrow of it may
    // live across one.
    let kind = transport::choose(req.headers(), &q)?;
    if kind == Kind::Sse {
        transport::sse::sub_resume(req.headers(), &mut targets)?;
    }
    drop(req);
    match kind {
        Kind::WebSocket => Err(ServerError::BadRequest(
            "several channels over one WebSocket: connect to /ws and send subscribe commands"
                .into(),
        )),
        Kind::Sse => transport::sse::respond(state, targets, false, principal).await,
        Kind::Stream => transport::stream::respond(state, targets, principal).await,
        Kind::LongPoll => {
            transport::longpoll::respond(state, &targets, false, q.compact, principal.user).await
        }
        Kind::Poll => transport::poll::respond(state, &targets, false, q.compact).await,
    }
}

async fn mux_post(State(state): State<AppState>, mut req: Request) -> Response {
    let post = async {
        let mut q = query(&req);
        let principal = Principal::of(&state, &mut req, &mut q)?;
        let (parts, body) = req.into_parts();
        transport::http_command::respond(&state, &parts.headers, body, principal).await
    };
    respond(post.await)
}

async fn mux_get(State(state): State<AppState>, mut req: Request) -> Response {
    let upgrade = async {
        let mut q = query(&req);
        let principal = Principal::of(&state, &mut req, &mut q)?;
        websocket::upgrade(&state, req, websocket::Mode::Mux, principal).await
    };
    respond(upgrade.await)
}
