//! Switchboard's HTTP server: routes, the five transports, the backend API, the demo
//! pages and graceful shutdown.
//!
//! Module map:
//! - [`config`]: TOML file + environment + flags → [`config::Config`].
//! - [`error`]: every request failure → one HTTP status and an actionable body.

pub mod config;
pub mod error;
