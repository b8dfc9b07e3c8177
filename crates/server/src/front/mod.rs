//! The connection front: every accepted stream passes through here, and every request
//! passes the one admission check, whichever of the two request paths answers it.
//!
//! ```text
//!  accepted stream (any Io: TCP, or TLS whose handshake runs on first read) ──▶ Front::connection
//!    └─ exchange::first_request: read a head (≤ 16 KiB, 30 s), classify it once (head::parse)
//!        ├─ streaming GET /ch, /sub ─┐
//!        ├─ poll, long-poll ─────────┼─ check ─▶ app::subscribe ─┬─ live body ─▶ Streaming (in place)
//!        ├─ Upgrade: websocket ──────┘    (or the router,        ├─ 101 ─▶ the WebSocket's task
//!        │                                 for upgrades)         └─ other ─▶ written; next head
//!        └─ anything else ─▶ http1 (hyper serves the rest of the connection)
//!                              each request: check ─▶ router ─▶ response (a 101 hands the
//!                              stream back to the WebSocket)
//! ```
//!
//! Why two paths: hyper answers everything (bodies, pipelining, malformed requests) and
//! the router holds every route; the front's own path answers the requests that dominate
//! a real-time server's load — streams that last as long as their subscriber, one
//! long-poll per message, one upgrade per WebSocket — with less memory per connection
//! and less CPU per request (`front/exchange.rs`'s docs give the figures). Whatever a
//! request's path, the admission check runs once for it, before any response byte ([`admission`]).
//!
//! The front is generic over the stream type ([`crate::io::Io`]): nothing below the
//! accept loop names `TcpStream`.
//!
//! With TLS on (feature `tls`), the accept loop hands the front a `TlsIo`: the handshake
//! runs on the connection's first read, inside its counted task (see `tls_stream`), and
//! both paths then serve the decrypted stream.

pub mod admission;
mod batch;
pub mod connections;
mod deadline;
mod exchange;
pub(crate) mod head;
mod http1;
mod identify;
mod later_heads;
pub mod origin;
mod parked;
mod rewind;
mod streaming;
#[cfg(feature = "tls")]
mod tls_stream;

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower::ServiceExt;

pub use admission::{Admission, AdmitAll, Ask, Endpoint};
pub use connections::{Connections, Counted};
pub use origin::OriginPolicy;
pub use streaming::Streaming;
#[cfg(feature = "tls")]
pub use tls_stream::TlsIo;

use crate::auth::Identity;
use crate::config::ConfigError;
use crate::conn_log::{self, ConnLog};
use crate::error::ServerError;
use crate::io::Io;
use crate::state::AppState;
use exchange::{AfterExchange, First};

/// How long a request head may be (`limits.max_header_bytes`) and how long it may take
/// to arrive (`limits.header_read_timeout_ms`, the slow-loris guard), on both paths. (A
/// head read by the front that goes to hyper after all starts hyper's own timer anew,
/// so such a head may take up to twice the timeout.)
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeadLimits {
    pub(crate) timeout: Duration,
    pub(crate) max: usize,
}

/// What every connection shares: the server's state, its router and the admission
/// check. Cheap to clone.
#[derive(Clone)]
pub struct Front {
    inner: Arc<Inner>,
}

struct Inner {
    state: AppState,
    router: Router,
    head: HeadLimits,
    connections: Arc<Connections>,
    origins: OriginPolicy,
    admission: Box<dyn Admission>,
}

/// What the checks of one request leave for its answer.
#[derive(Debug)]
pub(crate) struct Checked {
    /// The origin of an allowed cross-origin request (its answer gets CORS headers).
    cors: Option<HeaderValue>,
    /// What the request's client token says (tokens on, a token given).
    identity: Option<Identity>,
    /// The request carried a live status ticket ([`crate::observe::status`]).
    status: bool,
}

impl Checked {
    /// Hands the request's [`Identity`] to its handler, in the request's extensions.
    pub(crate) fn pass_identity<B>(&mut self, req: &mut http::Request<B>) {
        if let Some(identity) = self.identity.take() {
            req.extensions_mut().insert(identity);
        }
        if self.status {
            req.extensions_mut()
                .insert(crate::observe::status::StatusPass);
        }
    }

    /// Completes `resp` for the request checked (CORS headers).
    pub(crate) fn finish(self, resp: &mut Response) {
        origin::decorate(self.cors, resp);
    }
}

impl fmt::Debug for Front {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Front").finish_non_exhaustive()
    }
}

impl Front {
    /// A front over `state`, answering through `router` (the routes of
    /// [`crate::app::router`], plus any a program embedding the server added), every
    /// request checked by the server's own checks, then by `admission`. Fails when the
    /// configuration's allow-lists do not parse.
    pub fn new(
        state: AppState,
        router: Router,
        admission: Box<dyn Admission>,
    ) -> Result<Self, ConfigError> {
        let security = &state.config.security;
        let origins = OriginPolicy::new(
            state.config.listen,
            &security.allowed_origins,
            &security.allowed_hosts,
        )
        .map_err(|e| ConfigError::Invalid(e.0))?;
        let head = HeadLimits {
            timeout: state.config.limits.header_read_timeout(),
            max: state.config.limits.max_header_bytes,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                connections: Connections::new(&state.config.limits),
                head,
                state,
                router,
                origins,
                admission,
            }),
        })
    }

    /// The server's shared state.
    pub fn state(&self) -> &AppState {
        &self.inner.state
    }

    pub(crate) fn router(&self) -> &Router {
        &self.inner.router
    }

    pub(crate) fn head_limits(&self) -> HeadLimits {
        self.inner.head
    }

    /// The future that serves one accepted connection from `peer` until it ends (spawn
    /// it), counted in the server's connections. `None` when the server is shutting down
    /// (drop the stream), or when the connection limits turn it away (the answer is then
    /// sent by a task of its own; see [`connections`]).
    pub fn connection<S: Io>(&self, io: S, peer: SocketAddr) -> Option<Connection<Counted<S>>> {
        if self.inner.state.shutdown.is_triggered() {
            return None;
        }
        match self.inner.connections.admit(io, peer.ip()) {
            Ok(io) => Some(Connection::new(self.clone(), io, peer)),
            Err((io, why)) => {
                tokio::spawn(connections::turn_away(io, why));
                None
            }
        }
    }

    /// The server's connection counts.
    pub fn connections(&self) -> &Connections {
        &self.inner.connections
    }

    /// Every check of one request ([`Front::check`]), then the application's backend
    /// when it is asked about this request ([`crate::backend`]): `Err` is the answer.
    // The answer is handed on at once; boxing it would cost an allocation per refusal.
    #[allow(clippy::result_large_err)]
    pub(crate) async fn admit(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        peer: SocketAddr,
    ) -> Result<Checked, Response> {
        let mut checked = self.check(method, uri, headers, peer)?;
        let ask = Ask::new(method, uri, headers, peer);
        let endpoint = ask.endpoint();
        let transport = match &endpoint {
            Endpoint::Channel { transport, .. } | Endpoint::Channels { transport, .. } => {
                transport.map(crate::transport::Kind::name)
            }
            Endpoint::Multiplexed => Some("websocket"),
            Endpoint::Publish { .. } => Some("publish"),
            _ => {
                conn_log::note("transport", "http");
                return Ok(checked);
            }
        };
        conn_log::note("transport", transport.unwrap_or("unknown"));
        if !endpoint.channels().is_empty() {
            conn_log::note("channels", endpoint.channels().len());
        }
        let state = &self.inner.state;
        if let Some(backend) = state
            .backend
            .as_ref()
            .filter(|b| b.asks(crate::backend::Kind::Connect))
        {
            let question = crate::backend::Question {
                method,
                uri,
                headers,
                peer: peer.ip(),
                channels: endpoint.channels(),
                transport,
                user: checked.identity.as_ref().and_then(|i| i.user.as_deref()),
            };
            match backend.ask(crate::backend::Kind::Connect, question).await {
                // A client token's identity wins over the backend's.
                Ok(allowed) if checked.identity.is_none() => checked.identity = allowed.identity,
                Ok(_) => {}
                Err(refused) => return Err(refusal(refused, checked.cors)),
            }
        }
        // An authenticated user's connections are counted (a `?user=` is not: anyone
        // could name anyone); a poll or a publish holds none.
        let limit = state.config.limits.max_connections_per_user;
        let holds = !matches!(transport, Some("poll" | "publish"));
        if let (Some(user), true, true) = (
            checked.identity.as_ref().and_then(|i| i.user.as_deref()),
            limit > 0,
            holds,
        ) {
            if state.clients.connections_of(user) >= limit {
                let refused = ServerError::TooManyUserConnections { limit };
                return Err(refusal(refused, checked.cors));
            }
        }
        if let Some(transport) = transport {
            crate::observe::counters::admitted(transport);
        }
        Ok(checked)
    }

    /// Runs every check of one request (see [`admission`]): `Err` is the answer (a
    /// refusal, or a CORS preflight's).
    // The answer is handed on at once; boxing it would cost an allocation per refusal.
    #[allow(clippy::result_large_err)]
    pub(crate) fn check(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        peer: SocketAddr,
    ) -> Result<Checked, Response> {
        let ask = Ask::new(method, uri, headers, peer);
        let cors = self
            .inner
            .origins
            .check(&ask)
            .map_err(IntoResponse::into_response)?;
        if origin::is_preflight(&ask) {
            return Err(origin::preflight(cors, headers));
        }
        // A status ticket stands where a client token would; it is no client token.
        // (Only with an API key set: without one the feed needs no ticket.)
        let ticket = self
            .inner
            .state
            .config
            .api_key
            .as_ref()
            .and_then(|_| ask.token().filter(|t| crate::observe::status::is_ticket(t)));
        let (identity, status) = match ticket {
            Some(t) if crate::observe::status::ticket_live(&t) => (None, true),
            Some(_) => return Err(refusal(ServerError::Unauthorized, cors)),
            None => match identify::identify(&self.inner.state, &ask) {
                Ok(identity) => (identity, false),
                Err(refused) => return Err(refusal(refused, cors)),
            },
        };
        match self.inner.admission.admit(&ask) {
            Ok(()) => Ok(Checked {
                cors,
                identity,
                status,
            }),
            Err(refused) => Err(refusal(refused, cors)),
        }
    }

    /// The answer to a request the front reads itself: the admission check, then the
    /// subscribe handler for `/ch/NAME` and `/sub` (called directly, without the
    /// router's per-request work), the router for anything else (upgrades of `/ws` and
    /// of added WebSocket endpoints).
    pub(crate) async fn respond(&self, mut req: http::Request<()>, peer: SocketAddr) -> Response {
        let mut checked = match self
            .admit(req.method(), req.uri(), req.headers(), peer)
            .await
        {
            Ok(checked) => checked,
            Err(answer) => return answer,
        };
        checked.pass_identity(&mut req);
        if head::is_upgrade(req.headers()) {
            // Once per WebSocket: its session may need the address (the backend's asks).
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
        }
        let req = req.map(|()| axum::body::Body::empty());
        let mut resp = if crate::app::is_subscribe_path(req.uri().path()) {
            crate::app::subscribe(&self.inner.state, req).await
        } else {
            match self.inner.router.clone().oneshot(req).await {
                Ok(resp) => resp,
                Err(never) => match never {},
            }
        };
        checked.finish(&mut resp);
        resp
    }
}

/// The answer to a request a check refused (with CORS headers for an allowed origin, so
/// that the page can read why).
fn refusal(refused: ServerError, cors: Option<HeaderValue>) -> Response {
    let mut resp = refused.into_response();
    origin::decorate(cors, &mut resp);
    resp
}

/// One accepted connection, the future its task runs. Its requests are read and
/// answered in a boxed opening phase (freed once done): polls, long-polls and upgrades
/// one exchange after another; a request for a streaming response then continues as a
/// [`Streaming`] held in place, so the task of an idle subscriber is no bigger than
/// that; any other request hands the connection to hyper inside the opening phase.
pub struct Connection<S> {
    phase: Phase<S>,
}

impl<S> fmt::Debug for Connection<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection").finish_non_exhaustive()
    }
}

type Opening<S> = Pin<Box<dyn Future<Output = Phase<S>> + Send>>;

// The big variant is the one that lives long; boxing it is the cost this avoids.
#[allow(clippy::large_enum_variant)]
enum Phase<S> {
    Opening(Opening<S>),
    Streaming(Streaming<S>),
    /// A streaming response of a connection logged at `debug` ([`conn_log`]): boxed with
    /// its log, so that a connection not logged holds no byte for it.
    Logged(Pin<Box<dyn Future<Output = ()> + Send>>),
    Done,
}

impl<S: Io> Connection<S> {
    fn new(front: Front, io: S, peer: SocketAddr) -> Self {
        let opening = async move {
            let signal = front.state().shutdown.clone();
            let limits = front.head_limits();
            let mut next = exchange::first_request(io, Vec::new(), limits, &signal).await;
            if let Err(retry_after) = front.connections().new_connection_allowed() {
                exchange::busy(next, retry_after).await;
                return None;
            }
            loop {
                next = match next {
                    First::Own(io, req) => return exchange::answer(&front, io, req, peer).await,
                    First::Exchange(io, req) => {
                        let after = exchange::exchange(&front, io, req, peer, limits, &signal);
                        match after.await {
                            AfterExchange::Next(next) => next,
                            AfterExchange::Stream(streaming) => return streaming,
                        }
                    }
                    First::Hyper(io) => {
                        http1::serve(io, peer, front, signal).await;
                        return None;
                    }
                    First::Refuse(io, error) => {
                        exchange::refuse(io, error).await;
                        return None;
                    }
                    First::Gone => return None,
                };
            }
        };
        let opening: Opening<S> = match ConnLog::open(peer) {
            None => Box::pin(async move { opening.await.map_or(Phase::Done, Phase::Streaming) }),
            Some(log) => Box::pin(Arc::clone(&log).scope(async move {
                let Some(streaming) = opening.await else {
                    return Phase::Done;
                };
                Phase::Logged(Box::pin(log.scope(async move {
                    let ended = streaming.await;
                    conn_log::note("close", ended.as_str());
                })))
            })),
        };
        Self {
            phase: Phase::Opening(opening),
        }
    }
}

impl<S: Io> Future for Connection<S> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            match &mut this.phase {
                Phase::Opening(opening) => {
                    this.phase = match opening.as_mut().poll(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(next) => next,
                    };
                }
                Phase::Streaming(streaming) => {
                    if Pin::new(streaming).poll(cx).is_pending() {
                        // An idle response parks, and its task ends.
                        return if parked::park(this) {
                            Poll::Ready(())
                        } else {
                            Poll::Pending
                        };
                    }
                    this.phase = Phase::Done;
                }
                Phase::Logged(logged) => {
                    if logged.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    this.phase = Phase::Done;
                }
                Phase::Done => return Poll::Ready(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// An idle SSE or stream subscriber holds its connection's task for life: tokio keeps
    /// the future in a cell with 104 bytes of its own (header 32, scheduler and id 16, the
    /// stage's tag 8, trailer 48), aligned to 128 bytes. Today's future (256 B, with one
    /// pointer for a client token's deadline) takes a 384-byte cell; this catches growth
    /// past it.
    #[test]
    fn an_idle_streaming_connection_task_fits_384_bytes() {
        let size = std::mem::size_of::<super::Connection<super::Counted<tokio::net::TcpStream>>>();
        assert!(
            size <= 384 - 104,
            "Connection<Counted<TcpStream>> is {size} bytes"
        );
    }
}
