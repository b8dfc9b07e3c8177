//! A `/ws` connection's loop: the multiplexed SDK protocol (`switchboard_proto::command`)
//! over one WebSocket. Messages of every subscription the client opened are queued as
//! they come (one prepared frame per message, shared by every connection); each command
//! frame is executed by [`super::command`] and answered with one reply frame. With a
//! client token, the session asks for a new one before it expires and closes with 3000
//! when none comes in time ([`super::token`]). On a compact connection (subprotocol
//! `switchboard.compact`) messages go as [`super::compact`] chooses, and every reply and
//! push as a control record.

use std::time::Duration;

use switchboard_ws::CloseCode;
use switchboard_ws_tokio::{Message, WebSocket};
use tokio::io::{AsyncRead, AsyncWrite};

use super::compact::Compact;
use super::token::{Due, SessionToken};
use super::{command, ending_for, queue_message, HIGH_WATER};
use crate::auth::Identity;
use crate::backend::Asker;
use crate::clients::ClientHandle;
use crate::error::Ending;
use crate::observe::counters::Transport;
use crate::state::AppState;
use crate::transport::{Feed, FeedEvent};

/// Runs `client`'s `/ws` connection until it ends: queues the messages of its
/// subscriptions (while under [`HIGH_WATER`]), executes each command frame and queues its
/// reply, and ends with a close frame when the server shuts down, the backend
/// disconnects the client, a subscription is closed by the hub, or its client token
/// (`identity`, or one a `connect` command gives) expires without a refresh.
pub async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    state: &AppState,
    ws: &mut WebSocket<S>,
    client: &mut ClientHandle,
    identity: Option<Identity>,
    asker: Option<Asker>,
    compact: bool,
) {
    // A reply or push as the connection's format has it.
    let control = move |json: bytes::Bytes| {
        Message::Text(if compact {
            super::compact::control(&json)
        } else {
            json
        })
    };
    let mut compact = compact.then(Compact::default);
    let mut feed = Feed::of(Transport::Ws);
    let mut token = SessionToken::new(state, identity, asker);
    let ending = 'conn: loop {
        while ws.pending_bytes() < HIGH_WATER {
            match feed.try_next() {
                Some(FeedEvent::Message(m)) => {
                    let _ = queue_message(ws, &m, &mut compact);
                }
                Some(FeedEvent::Closed { reason, .. }) => break 'conn Some(ending_for(reason)),
                None => break,
            }
        }
        let room = ws.pending_bytes() < HIGH_WATER;
        tokio::select! {
            biased;
            () = state.shutdown.wait() => break Some(Ending::Shutdown),
            () = client.kicked() => break Some(Ending::Kicked),
            msg = recv_or_room(ws, room) => match msg {
                Wake::Room => {}
                Wake::Msg(None) => break None,
                Wake::Msg(Some(Err(e))) => tracing::debug!(error = %e, "websocket error"),
                Wake::Msg(Some(Ok(Message::Text(t) | Message::Binary(t)))) => {
                    let reply = command::command(state, client, &mut token, &mut feed, &t).await;
                    let _ = ws.queue(control(reply));
                }
                Wake::Msg(Some(Ok(_))) => {}
            },
            ev = feed.next(), if room && !feed.is_empty() => match ev {
                FeedEvent::Message(m) => { let _ = queue_message(ws, &m, &mut compact); }
                FeedEvent::Closed { reason, .. } => break Some(ending_for(reason)),
            },
            due = token.due(), if token.has_deadline() => match due {
                Due::AskRefresh => {
                    let push = bytes::Bytes::from_static(switchboard_proto::REFRESH_PUSH);
                    let _ = ws.queue(control(push));
                }
                Due::Expired => break Some(Ending::TokenExpired),
            },
        }
    };
    crate::conn_log::note("channels", feed.len());
    match ending {
        Some(e) => {
            let (code, reason) = e.close_frame();
            super::log_close(code, reason);
            finish(ws, code, reason).await;
        }
        None => crate::conn_log::note("close", "peer closed"),
    }
}

/// What woke a connection's loop on the socket side.
pub(super) enum Wake {
    /// A message from the peer (or the end).
    Msg(Option<switchboard_ws_tokio::Result<Message>>),
    /// The output queue drained below [`HIGH_WATER`] while it was full: take more.
    Room,
}

/// Reads the next message; while the output queue is over [`HIGH_WATER`] (`room` false),
/// also resolves once writing brings it back under, so the loop takes more messages
/// even when the peer sends nothing.
pub(super) async fn recv_or_room<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocket<S>,
    room: bool,
) -> Wake {
    std::future::poll_fn(|cx| {
        // Polling `recv` writes queued output (and waits for the socket when blocked).
        if let std::task::Poll::Ready(m) = ws.poll_recv(cx) {
            return std::task::Poll::Ready(Wake::Msg(m));
        }
        if !room && ws.pending_bytes() < HIGH_WATER {
            return std::task::Poll::Ready(Wake::Room);
        }
        std::task::Poll::Pending
    })
    .await
}

/// Longest the closing handshake may take after we start it (the codec's close timeout
/// bounds the wait for the peer's answer; this also bounds a peer that does not read).
const CLOSE_BOUND: Duration = Duration::from_secs(10);

/// Closes with `code` and `reason`, bounded by [`CLOSE_BOUND`].
pub(super) async fn finish<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocket<S>,
    code: CloseCode,
    reason: &str,
) {
    let _ = tokio::time::timeout(CLOSE_BOUND, ws.close(code, reason)).await;
}
