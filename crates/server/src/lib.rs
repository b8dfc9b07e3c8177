//! Switchboard's HTTP server: routes, the five transports, the backend API, the demo
//! pages and graceful shutdown.
//!
//! ```text
//!  TCP ─ server (accept loop, hyper HTTP/1.1 + upgrades, drain) ─ app (router)
//!          ├─ GET /ch/NAME ─ transport::{websocket, sse, stream, longpoll, poll} ─┐
//!          ├─ POST /ch/NAME ─ publish ───────────────────────────────────────────┤
//!          ├─ GET /sub, GET /ws (several channels) ──────────────────────────────┼─ switchboard_hub
//!          ├─ /api/… ─ api (key-authenticated) ──────────────────────────────────┤
//!          └─ /, /demo/… ─ demo            ticker (publishes demo prices) ───────┘
//! ```
//!
//! Module map:
//! - [`config`]: TOML file + environment + flags → [`config::Config`].
//! - [`error`]: every request failure → one HTTP status (and `/ws` error code).
//! - [`channel`]: channel-name syntax and namespace policy.
//! - [`transport`]: one module per transport, plus the merge of several channels.
//! - [`publish`], [`api`], [`demo`], [`ticker`]: the other endpoints.
//! - [`clients`]: connections the backend API can disconnect.
//! - [`broker`]: the in-memory broker, or Redis (feature `redis`) for several nodes.
//! - [`server`], [`shutdown`]: accept loop and graceful shutdown; `takeover`: connections
//!   answered without hyper (streaming responses).

pub mod api;
pub mod app;
pub mod broker;
pub mod channel;
pub mod clients;
pub mod config;
pub mod demo;
pub mod error;
pub mod publish;
pub mod server;
pub mod shutdown;
pub mod state;
pub(crate) mod takeover;
pub mod ticker;
pub mod transport;
