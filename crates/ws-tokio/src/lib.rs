//! Drives the sans-IO `switchboard-ws` codec over tokio streams.
//!
//! ```text
//!   TcpStream / TLS / hyper Upgraded
//!        │  accept() · connect() · WebSocket::from_upgraded()
//!        ▼
//!   WebSocket<S> ── recv() ─▶ Message          (reads into a stack buffer → handle_input)
//!                ◀─ send() ── Message          (queue → one send of all frames)
//!                   timer ─▶ handle_timeout    (pings, idle and close timeouts; own tokio
//!                                               timer, or a shared coarse wheel of
//!                                               `switchboard-timer`)
//! ```
//!
//! The protocol (framing, masking, UTF-8, deflate, close codes, timers' meaning) is the
//! codec's; this crate moves bytes and time between it and the socket. See [`WebSocket`]
//! for reading, writing, backpressure and closing.

mod error;
mod gather;
mod handshake;
mod message;
mod websocket;

pub use error::{Error, Result};
pub use gather::{poll_write_gathered, with_scratch, GATHER_LIMIT};
pub use handshake::{accept, connect, ClientConfig, ServerConfig};
pub use message::{CloseFrame, Message};
/// The shared timer [`WebSocket::set_wheel`] takes (crate `switchboard-timer`).
pub use switchboard_timer::Wheel;
pub use websocket::{ParkedWebSocket, WebSocket, DEFAULT_HIGH_WATER_MARK};

pub use switchboard_ws::handshake::{AcceptOptions, Request, Response};
pub use switchboard_ws::{CloseCode, Config, DeflateConfig, DeflateParams, PreparedMessage, Role};
