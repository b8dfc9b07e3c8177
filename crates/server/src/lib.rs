//! Switchboard's HTTP server: the connection front every connection passes, routes,
//! the five transports, the backend API, the demo pages, graceful shutdown, and the
//! builder that runs it all inside another program.
//!
//! ```text
//!  TCP ─ server (accept loop, drain) ─ front (one per connection: head, admission check)
//!     ├─ own path: streaming GET, poll, long-poll, WebSocket upgrade ─┐
//!     │     └─ app::subscribe (or the router, for upgrades)          │
//!     └─ hyper path: anything else ─ app (router) ────────────────────┤
//!          ├─ GET /ch/NAME ─ transport::{websocket, sse, stream, longpoll, poll} ─┐
//!          ├─ POST /ch/NAME ─ publish ───────────────────────────────────────────┤
//!          ├─ GET /sub, GET /ws (several channels) ──────────────────────────────┼─ switchboard_hub
//!          ├─ /api/… ─ api (key-authenticated) ──────────────────────────────────┤
//!          └─ /, /demo/… ─ demo            ticker (publishes demo prices) ───────┘
//! ```
//!
//! Both request paths are drawn whole in `docs/ARCHITECTURE.md`.
//!
//! Module map:
//! - [`server`]: the [`server::Builder`] (config, broker, admission check, extra routes,
//!   WebSocket endpoints), [`server::Running`]; the accept loop (`accept`), and the event
//!   loops beyond the first, a thread each (`loops`, `serve --workers N`).
//! - [`front`]: every accepted stream ([`io::Io`]) and every request passes here: the
//!   admission hook ([`front::Admission`]), the requests answered without hyper, the
//!   hand-over to hyper for the rest.
//! - [`config`]: TOML file + environment + flags → [`config::Config`].
//! - [`error`]: every request failure → one HTTP status (and `/ws` error code); every
//!   reason to end a WebSocket → one close code.
//! - [`auth`]: client tokens (JWT): keys, verification into an identity, grants.
//! - [`channel`]: channel-name syntax, namespace policy and what a token grants.
//! - [`transport`]: one module per transport, plus the merge of several channels.
//! - [`publish`], [`api`], [`demo`], [`ticker`]: the other endpoints; [`sdk`]: the
//!   browser client at `/switchboard.js`.
//! - [`clients`]: connections the backend API can disconnect.
//! - [`broker`]: the in-memory broker, or Redis (feature `redis`) for several nodes.
//! - [`shutdown`]: graceful shutdown.
//! - `tls` (feature `tls`): the certificate files, the rustls configuration and its
//!   reload on SIGHUP; the handshake itself runs in the front (`front::TlsIo`).
//! - [`observe`]: `/metrics`, `/health`, `/ready` and the live `/status` page.

mod accept;
pub mod api;
pub mod app;
pub use switchboard_auth as auth;
pub mod backend;
pub mod body;
pub mod broker;
pub mod channel;
pub mod clients;
pub mod config;
pub(crate) mod conn_log;
pub mod demo;
pub mod error;
pub mod front;
pub mod io;
mod loops;
pub mod observe;
pub(crate) mod park;
pub mod publish;
pub mod sdk;
pub mod server;
pub mod shutdown;
pub mod state;
pub mod throttle;
pub mod ticker;
#[cfg(feature = "tls")]
pub mod tls;
pub mod transport;
