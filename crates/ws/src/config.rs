//! Limits and options of one connection, with their defaults and what they cost.

use std::time::Duration;

/// Which end of the connection this codec plays. Clients mask every frame they send and
/// require unmasked frames; servers the reverse (RFC 6455 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Server,
    Client,
}

/// Limits and timers of one connection. Every limit is checked before memory is reserved.
#[derive(Debug, Clone)]
pub struct Config {
    /// Largest payload of a single frame accepted from the peer. Default 16 MiB.
    /// A larger frame closes the connection with 1009 before any of it is buffered.
    pub max_frame_size: usize,
    /// Largest message (sum of its fragments, after inflation) accepted from the peer.
    /// Default 64 MiB; exceeding it closes with 1009.
    pub max_message_size: usize,
    /// Send a ping after this long without input; `None` disables. Default 30 s.
    pub ping_interval: Option<Duration>,
    /// Close (1001 going away... or drop) after this long without any input from the peer;
    /// `None` disables. Default 60 s.
    pub idle_timeout: Option<Duration>,
    /// How long to wait for the peer's close frame after sending ours before reporting that
    /// the TCP connection should be dropped. Default 5 s.
    pub close_timeout: Duration,
    /// Report that the TCP connection should be dropped when queued output made no
    /// progress for this long while the connection is open: a peer that stopped reading
    /// (the driver says when a write would block, [`crate::Connection::output_blocked`]).
    /// `None` disables (default): a peer that stops reading is then ended by the idle
    /// timeout only once it also stops sending.
    pub write_timeout: Option<Duration>,
    /// permessage-deflate offer/acceptance policy; `None` disables compression.
    pub deflate: Option<DeflateConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_frame_size: 16 << 20,
            max_message_size: 64 << 20,
            ping_interval: Some(Duration::from_secs(30)),
            idle_timeout: Some(Duration::from_secs(60)),
            close_timeout: Duration::from_secs(5),
            write_timeout: None,
            deflate: None,
        }
    }
}

/// What this endpoint is willing to negotiate for permessage-deflate (RFC 7692).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeflateConfig {
    /// Ask for / insist on `server_no_context_takeover`. Servers that fan one compressed
    /// frame out to many connections need this. Default true.
    pub server_no_context_takeover: bool,
    /// Ask for / accept `client_no_context_takeover`. Default false.
    pub client_no_context_takeover: bool,
    /// Largest LZ77 window (8..=15) this endpoint compresses with. Default 15.
    pub server_max_window_bits: u8,
    /// Largest LZ77 window (8..=15) the client may compress with. Default 15.
    pub client_max_window_bits: u8,
    /// Messages shorter than this are sent uncompressed. Default 64 bytes.
    pub compression_threshold: usize,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        Self {
            server_no_context_takeover: true,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            compression_threshold: 64,
        }
    }
}
