//! WebSocket: the native endpoint `GET /ch/NAME` with `Upgrade: websocket` (one channel;
//! each push is one envelope JSON text frame; text and binary frames from the client
//! publish to the channel when its namespace allows client publishing; `?since=CURSOR`
//! resumes), the multiplexed SDK endpoint `GET /ws` speaking `switchboard_proto::command`
//! (subscribe, unsubscribe, publish, presence, history, ping) over one connection, and
//! WebSocket endpoints a program embedding the server adds ([`endpoint`]).
//!
//! | file | what it owns |
//! |---|---|
//! | [`mod@upgrade`] | checking the handshake, subscribing, the `101` and the [`Accepted`] connection it hands over |
//! | [`native`] | a native connection's task (`/ch/NAME`) |
//! | [`session`] | a `/ws` connection's loop |
//! | [`token`] | a `/ws` session's client token: its identity, the refresh request, the close at expiry |
//! | [`command`] | executing one `/ws` command |
//! | [`endpoint`] | added endpoints: open / message / close / error callbacks |
//! | [`direct`] | the pacer's writer for direct delivery (a waiting native connection's frames, sent without waking its task) |
//! | [`compact`] | the compact format (subprotocol `switchboard.compact`): which frame a message goes out as |
//!
//! Whoever writes the `101` (the connection front, or hyper for a connection it serves)
//! claims the [`Accepted`] from the response ([`claim`]) and starts it on the stream.
//! Close codes are chosen in [`crate::error::Ending`].
//!
//! Fan-out cost: each message's frame is built once (a `PreparedMessage` kept in the hub
//! message's extension slot) and queued by reference on every connection; all frames
//! ready for a connection leave in one vectored write. A connection whose queue passes
//! [`HIGH_WATER`] stops taking messages until the socket drains; the hub then serves it
//! from history (see [`switchboard_hub`]).
//!
//! Memory per connection: after the `101`, a connection's task holds the bare stream
//! (any bytes read past the request go to the codec first) and its subscription; its
//! timers are served by the registry's shared coarse wheel. A native connection's task
//! is one hand-written future (no shutdown or kick futures: shutdown and the backend's
//! disconnect close the subscription, see [`native`]).

pub mod command;
pub mod compact;
pub mod direct;
pub mod endpoint;
pub mod native;
pub mod session;
pub mod token;
pub mod upgrade;

use switchboard_hub::{CloseReason, Encoding, Message as HubMessage};
use switchboard_proto::EnvelopeJson;
use switchboard_ws::{CloseCode, PreparedMessage, Role};
use switchboard_ws_tokio::WebSocket;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::Ending;
use crate::state::AppState;

pub use upgrade::{busy_close, claim, upgrade, Accepted, Mode};

/// Queued output bytes above which a connection takes no more messages for now.
pub const HIGH_WATER: usize = 256 * 1024;

/// A server WebSocket over `io` with this server's limits, mark and timer wheel.
fn socket<S: AsyncRead + AsyncWrite + Unpin>(
    io: S,
    leftover: &[u8],
    state: &AppState,
    deflate: Option<switchboard_ws::DeflateParams>,
) -> WebSocket<S> {
    let mut ws =
        WebSocket::from_upgraded(io, Role::Server, state.ws_config.clone(), deflate, leftover);
    ws.set_high_water_mark(HIGH_WATER);
    ws.set_wheel(state.clients.wheel().clone());
    ws
}

/// The codec's limits for a server connection (made once per server, shared by all).
pub(crate) fn ws_config(server: &crate::config::Config) -> switchboard_ws::Config {
    let mut config = switchboard_ws::Config::default();
    config.max_message_size = server.limits.max_publish_bytes.max(4096);
    config.max_frame_size = config.max_message_size;
    config.write_timeout = Some(server.limits.write_timeout());
    config.ping_interval = Some(server.limits.ws_ping());
    config.idle_timeout = Some(2 * server.limits.ws_ping());
    config
}

/// A message's WebSocket frame (its envelope JSON in a text frame), an encoding the hub
/// caches: built once and shared by every connection.
#[derive(Debug)]
struct WsFrame;

impl Encoding for WsFrame {
    type Output = PreparedMessage;

    fn encode(m: &HubMessage) -> PreparedMessage {
        PreparedMessage::text(m.encoded::<EnvelopeJson>().clone())
    }

    /// Its state and frame; the payload is `EnvelopeJson`'s, counted with it.
    fn weight(frame: &PreparedMessage) -> usize {
        frame.heap_bytes()
    }
}

/// Queues `m`'s frame as the connection's `framing` has it (its envelope, or the compact
/// format's choice).
fn queue_message<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocket<S>,
    m: &HubMessage,
    framing: &mut impl compact::Framing,
) -> bool {
    ws.queue_prepared(framing.frame(m)).is_ok()
}

/// Says in the connection's log (if it is logged) which close frame the server sent.
fn log_close(code: CloseCode, reason: &str) {
    let code = u16::from(code);
    crate::conn_log::note(
        "close",
        tracing::field::display(format_args!("{code} {reason}")),
    );
}

/// How a closed subscription ends the connection.
fn ending_for(reason: CloseReason) -> Ending {
    match reason {
        CloseReason::Shutdown => Ending::Shutdown,
        CloseReason::Disconnected => Ending::Kicked,
        _ => Ending::Resume,
    }
}
