//! Sans-IO WebSocket codec: RFC 6455 framing and handshakes, RFC 7692 permessage-deflate.
//!
//! No sockets, no tokio, no clock reads. Bytes go in, events and bytes come out, and time
//! is passed in by the caller (the model of quinn-proto's `Connection`):
//!
//! ```text
//!            handshake::server::parse_request / handshake::client::parse_response
//!   bytes ──▶ Connection::handle_input(&[u8], now) ──▶ Connection::poll_event() ──▶ Event
//!         (or handle_input_buf(&mut BytesMut, now): large frames split off without a copy)
//!   app   ──▶ Connection::send_* / send_prepared ──▶ Connection::transmit_slices() ──▶ bytes
//!                                          (then Connection::advance_transmit(written))
//!   time  ──▶ Connection::handle_timeout(now)   ◀── Connection::poll_timeout()
//! ```
//!
//! A message meant for many connections is framed (and, where negotiated without context
//! takeover, compressed) once as a [`PreparedMessage`] and its bytes are shared by every
//! connection that sends it.
//!
//! The legacy hixie-76 handshake and framing live behind the `hixie76` feature.

mod clock;
pub mod close;
pub mod config;
pub mod connection;
pub mod deflate;
pub mod error;
pub mod frame;
pub mod handshake;
#[cfg(feature = "hixie76")]
pub mod hixie76;
pub mod mask;
pub mod prepared;
pub mod utf8;

pub use close::CloseCode;
pub use config::{Config, DeflateConfig, Role};
pub use connection::{Connection, Event, IdleConnection, State};
pub use deflate::DeflateParams;
pub use error::{Error, ProtocolError};
pub use frame::{FrameHeader, OpCode};
pub use prepared::{PreparedMessage, SharedFraming};
