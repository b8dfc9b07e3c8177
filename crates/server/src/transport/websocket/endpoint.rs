//! WebSocket endpoints a program embedding the server adds ([`crate::server::Builder::websocket`]),
//! in the shape of Java's JSR 356 (`@OnOpen`, `@OnMessage`, `@OnClose`, `@OnError`): the
//! server accepts the handshake (after the admission check, like every request), runs
//! the connection, and calls the [`Endpoint`]'s callbacks as its life goes on. A
//! callback gets the connection's [`Session`], which sends messages and closes it, from
//! the callback or from anywhere else (it is `Clone + Send`), and reaches the hub to
//! publish or subscribe.
//!
//! Order: `on_open` once, then `on_message` for every text or binary message (pings and
//! pongs are answered by the codec), `on_error` for a protocol error of the peer (the
//! codec has then queued the close with its code), and `on_close` exactly once, last,
//! with the close frame that ended the connection (the peer's, or the server's), or
//! `None` when it ended without one. Callbacks run on the connection's task: one that
//! blocks stalls this connection, never another; long work belongs in a task of its own.
//!
//! Limits: at most [`OUTBOX`] messages wait in a session's outbox ([`Session::send`]
//! fails beyond, or once the connection is gone), and the outbox is only drained while
//! the connection's output queue is under [`HIGH_WATER`], so a peer that does not read
//! holds at most that much. Messages from the peer obey the server's message size limit
//! (`limits.max_publish_bytes`). Shutdown closes every connection with 1012, the
//! backend API's disconnect with 1008, and the expiry of the client token the handshake
//! carried (client tokens on) with 3000.

use std::fmt;
use std::sync::Arc;

use switchboard_hub::Hub;
use switchboard_ws_tokio::WebSocket;
pub use switchboard_ws_tokio::{CloseCode, CloseFrame, Error, Message};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use super::session::{finish, recv_or_room, Wake};
use super::HIGH_WATER;
use crate::clients::ClientHandle;
use crate::error::Ending;
use crate::shutdown::ShutdownSignal;
use crate::transport::expiry::{self, Expiry};

/// Most messages waiting in a session's outbox.
pub const OUTBOX: usize = 1024;

/// The callbacks of an added WebSocket endpoint (see the module docs). Every method has
/// a default that does nothing.
pub trait Endpoint: Send + Sync + 'static {
    /// The connection is open; `session` can send already.
    fn on_open(&self, session: &Session) {
        let _ = session;
    }

    /// A text or binary message from the peer.
    fn on_message(&self, session: &Session, message: Message) {
        let _ = (session, message);
    }

    /// The connection ended: `frame` is the close frame that ended it (the peer's, or the
    /// server's), `None` when it ended without one. Called exactly once, last.
    fn on_close(&self, session: &Session, frame: Option<CloseFrame>) {
        let _ = (session, frame);
    }

    /// The peer broke the protocol (the close with the codec's code is under way), or a
    /// message could not be queued.
    fn on_error(&self, session: &Session, error: &Error) {
        let _ = (session, error);
    }
}

/// One connection of an added endpoint, as its callbacks see it. Cheap to clone.
#[derive(Clone)]
pub struct Session {
    inner: Arc<SessionInner>,
}

struct SessionInner {
    id: Box<str>,
    target: Box<str>,
    hub: Hub,
    outbox: mpsc::Sender<Outgoing>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.inner.id)
            .field("target", &self.inner.target)
            .finish_non_exhaustive()
    }
}

/// What a session asks its connection to do.
#[derive(Debug)]
enum Outgoing {
    Message(Message),
    Close(CloseCode, String),
}

/// Why [`Session::send`] did not queue a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// [`OUTBOX`] messages are waiting already: the peer reads too slowly.
    Full,
    /// The connection has ended.
    Closed,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Full => "the session's outbox is full (the peer reads too slowly)",
            Self::Closed => "the connection has ended",
        })
    }
}

impl std::error::Error for SendError {}

impl Session {
    /// The connection's client id (as in presence and `POST /api/disconnect`).
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The request target of the handshake (path and query), without the credentials
    /// it may carry (`token=`, `channel_token=`).
    pub fn target(&self) -> &str {
        &self.inner.target
    }

    /// The hub: publish, subscribe, history, presence.
    pub fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    /// Queues `message` for the peer.
    pub fn send(&self, message: Message) -> Result<(), SendError> {
        self.inner
            .outbox
            .try_send(Outgoing::Message(message))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => SendError::Full,
                mpsc::error::TrySendError::Closed(_) => SendError::Closed,
            })
    }

    /// Queues a text message.
    pub fn send_text(&self, text: impl Into<String>) -> Result<(), SendError> {
        self.send(Message::text(text))
    }

    /// Closes the connection with `code` and `reason` once what was queued before has
    /// gone out.
    pub fn close(&self, code: CloseCode, reason: &str) -> Result<(), SendError> {
        self.inner
            .outbox
            .try_send(Outgoing::Close(code, reason.to_owned()))
            .map_err(|_| SendError::Closed)
    }
}

/// An accepted connection of an added endpoint, before its stream arrives.
pub(super) struct Opened {
    endpoint: Arc<dyn Endpoint>,
    session: Session,
    outbox: mpsc::Receiver<Outgoing>,
    client: ClientHandle,
    expiry: Option<Box<Expiry>>,
}

impl fmt::Debug for Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opened")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl Opened {
    pub(super) fn new(
        endpoint: Arc<dyn Endpoint>,
        client: ClientHandle,
        hub: Hub,
        target: String,
        expiry: Option<Box<Expiry>>,
    ) -> Self {
        let (tx, outbox) = mpsc::channel(OUTBOX);
        let session = Session {
            inner: Arc::new(SessionInner {
                id: client.id().into(),
                target: without_credentials(&target).into_boxed_str(),
                hub,
                outbox: tx,
            }),
        };
        Self {
            endpoint,
            session,
            outbox,
            client,
            expiry,
        }
    }
}

/// The connection's task: calls the callbacks in the documented order, sends what the
/// session queues, and closes on shutdown, disconnect or the session's request.
pub(super) async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    mut ws: Box<WebSocket<S>>,
    opened: Opened,
    shutdown: ShutdownSignal,
) {
    let Opened {
        endpoint,
        session,
        mut outbox,
        client,
        mut expiry,
    } = opened;
    endpoint.on_open(&session);
    let mut closed_by_peer = None;
    let ours = loop {
        let room = ws.pending_bytes() < HIGH_WATER;
        tokio::select! {
            biased;
            () = shutdown.wait() => break Some(Closing::Ending(Ending::Shutdown)),
            () = client.kicked() => break Some(Closing::Ending(Ending::Kicked)),
            () = std::future::poll_fn(|cx| {
                if expiry::expired(&mut expiry, cx) {
                    std::task::Poll::Ready(())
                } else {
                    std::task::Poll::Pending
                }
            }), if expiry.is_some() => break Some(Closing::Ending(Ending::TokenExpired)),
            woke = recv_or_room(&mut ws, room) => match woke {
                Wake::Room => {}
                Wake::Msg(None) => break None,
                Wake::Msg(Some(Err(e))) => endpoint.on_error(&session, &e),
                Wake::Msg(Some(Ok(Message::Close(frame)))) => closed_by_peer = frame,
                Wake::Msg(Some(Ok(m @ (Message::Text(_) | Message::Binary(_))))) => {
                    endpoint.on_message(&session, m);
                }
                Wake::Msg(Some(Ok(_))) => {}
            },
            out = outbox.recv(), if room => match out {
                Some(Outgoing::Message(m)) => {
                    if let Err(e) = ws.queue(m) {
                        endpoint.on_error(&session, &e);
                    }
                }
                Some(Outgoing::Close(code, reason)) => break Some(Closing::Asked(code, reason)),
                // The session above holds a sender, so the outbox never closes here.
                None => {}
            },
        }
    };
    // Sends made after this point fail with `Closed`.
    outbox.close();
    let frame = match ours {
        None => closed_by_peer,
        Some(closing) => {
            let (code, reason) = match closing {
                Closing::Ending(ending) => {
                    let (code, reason) = ending.close_frame();
                    (code, reason.to_owned())
                }
                Closing::Asked(code, reason) => (code, reason),
            };
            finish(&mut ws, code, &reason).await;
            Some(CloseFrame { code, reason })
        }
    };
    endpoint.on_close(&session, frame);
}

/// How the server side ends a connection.
enum Closing {
    Ending(Ending),
    Asked(CloseCode, String),
}

/// `target` without its `token=` and `channel_token=` query parameters (credentials are
/// the server's to check, not the endpoint's to see).
fn without_credentials(target: &str) -> String {
    let Some((path, query)) = target.split_once('?') else {
        return target.to_owned();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| {
            let name = p.split('=').next().unwrap_or("");
            name != "token" && name != "channel_token"
        })
        .collect();
    if kept.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", kept.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sessions_target_keeps_no_credentials() {
        assert_eq!(without_credentials("/e"), "/e");
        assert_eq!(without_credentials("/e?token=abc"), "/e");
        assert_eq!(
            without_credentials("/e?a=1&token=x&b=2&channel_token=y"),
            "/e?a=1&b=2"
        );
        assert_eq!(without_credentials("/e?tokens=1"), "/e?tokens=1");
    }
}
