//! Timers for many long-lived connections: a shared coarse [`Wheel`], the [`Sleeper`] a
//! connection keeps to wait on it, and [`WheelTimer`], a sleeper with its wheel that
//! cancels when dropped. See [`wheel`] for the semantics.
//!
//! Its own crate so that the WebSocket driver (`switchboard-ws-tokio`) and the HTTP
//! transports of the server (SSE and stream heartbeats, long-poll timeouts) share one
//! wheel without either depending on the other.

pub mod wheel;

pub use wheel::{Sleeper, Wheel, WheelTimer};
