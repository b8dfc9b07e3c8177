//! WebSocket: the native endpoint `GET /ch/NAME` with `Upgrade: websocket` (one channel;
//! each push is one envelope JSON text frame; text and binary frames from the client
//! publish to the channel when its namespace allows client publishing; `?since=CURSOR`
//! resumes), and the multiplexed SDK endpoint `GET /ws` speaking
//! `switchboard_proto::command` (subscribe, unsubscribe, publish, presence, history,
//! ping) over one connection.
//!
//! Fan-out cost: each message's frame is built once (a `PreparedMessage` kept in the hub
//! message's extension slot) and queued by reference on every connection; all frames
//! ready for a connection leave in one vectored write. A connection whose queue passes
//! [`HIGH_WATER`] stops taking messages until the socket drains; the hub then serves it
//! from history (see [`switchboard_hub`]).
//!
//! Memory per connection: after the 101 answer, the connection is taken back from hyper
//! (the bare `TcpStream`, and any bytes hyper read ahead go to the codec first); its timers
//! are served by the registry's shared coarse wheel. A native connection's task is one
//! hand-written future over its socket and subscription (no shutdown or kick futures:
//! shutdown and the backend's disconnect close the subscription, see `Native`).
//!
//! Close codes: 1012 "service restart" on shutdown, 1008 when a client publishes where it
//! may not or the backend API disconnects it, 1009 for a message over
//! `limits.max_publish_bytes`, and the codec's codes (1002, 1007, …) for protocol errors.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use switchboard_hub::{
    CloseReason, Hub, Message as HubMessage, Payload, RecvError, Subscription, WireFormat,
};
use switchboard_proto::{
    encode_error, encode_ok, encode_presence_result, encode_result_cursor, encode_result_raw,
    parse_command, Command, CommandData, ErrorCode, Op, PresenceEntry,
};
use switchboard_ws::handshake::{self, AcceptOptions};
use switchboard_ws::PreparedMessage;
use switchboard_ws::{CloseCode, DeflateConfig, Role};
use switchboard_ws_tokio::{Message, WebSocket};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::channel;
use crate::clients::ClientHandle;
use crate::error::ServerError;
use crate::state::AppState;
use crate::transport::poll::MAX_BATCH;
use crate::transport::{client_info, with_client_id, Feed, FeedEvent, Target};

/// Queued output bytes above which a connection takes no more messages for now.
pub const HIGH_WATER: usize = 256 * 1024;

/// The IO type the accept loop hands hyper; a connection takes the `TcpStream` back from
/// hyper's `Upgraded` (no box, no hyper state).
type ServedIo = TokioIo<crate::takeover::Rewind>;

/// What the upgraded connection will do.
#[derive(Debug)]
pub enum Mode {
    /// One channel (`/ch/NAME`).
    Native(Target),
    /// The command protocol (`/ws`).
    Mux,
}

/// Validates the upgrade, answers 101 and starts the connection's task.
pub async fn upgrade(
    state: &AppState,
    mut req: Request,
    mode: Mode,
    user: Option<String>,
) -> Result<Response, ServerError> {
    if state.shutdown.is_triggered() {
        return Err(ServerError::ShuttingDown);
    }
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let headers = req
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_bytes()));
    let request = handshake::validate_headers(req.method().as_str(), &path, headers)?;
    let accepted = handshake::accept(
        &request,
        &AcceptOptions {
            deflate: Some(DeflateConfig::default()),
            ..AcceptOptions::default()
        },
    )?;
    // Subscribe before answering, so the subscription starts at the handshake and a bad
    // channel is an HTTP error, not a close code. A native connection hears of shutdown
    // and of the backend's disconnect through its subscription closing (the hub closes
    // them all), so it keeps no kick notification and watches no shutdown signal.
    let native = matches!(mode, Mode::Native(_));
    let client = if native {
        state.clients.register_hub_kicked(user)
    } else {
        state.clients.register(user)
    };
    let native = match mode {
        Mode::Native(target) => {
            let ns = channel::for_subscribe(&state.hub, &target.channel)?;
            let may_publish = ns.allow_publish;
            let sub = state
                .hub
                .subscribe(&target.channel, target.since, client_info(&client))
                .await?;
            crate::transport::end_if_kicked_while_opening(state, &client);
            // A subscription registered while the hub was closing them all could be
            // missed by it; shutdown began before the hub's sweep, so this sees it.
            if state.shutdown.is_triggered() {
                return Err(ServerError::ShuttingDown);
            }
            Some((sub, may_publish))
        }
        Mode::Mux => None,
    };
    let response = with_client_id(switching_response(&accepted.response)?, client.id());
    let opening = Opening {
        on_upgrade: hyper::upgrade::on(&mut req),
        guard: state.shutdown.guard().ok_or(ServerError::ShuttingDown)?,
        deflate: accepted.deflate,
    };
    let state = state.clone();
    // One task type per mode, so a native connection's future is not as large as the
    // command protocol's (an idle connection holds its task's future for its whole life).
    match native {
        Some((sub, may_publish)) => {
            // This task lives only until hyper hands the connection over; the connection's
            // own task is a `Native`, sized for an idle connection's whole life.
            tokio::spawn(async move {
                let Some((tcp, leftover)) = take_over(opening.on_upgrade).await else {
                    return;
                };
                let parts = Parts {
                    sub,
                    hub: state.hub.clone(),
                    _client: client.into_registration(),
                    _guard: opening.guard,
                    max: u32::try_from(state.config.limits.max_publish_bytes).unwrap_or(u32::MAX),
                    may_publish,
                };
                spawn_native(socket(tcp, &leftover, &state, opening.deflate), parts);
            });
        }
        None => {
            tokio::spawn(async move {
                let Some((tcp, leftover)) = take_over(opening.on_upgrade).await else {
                    return;
                };
                let _guard = opening.guard;
                // Boxed: the codec's state is most of a connection's memory, and a box
                // keeps it out of every future that holds the socket across an await.
                let mut ws = Box::new(socket(tcp, &leftover, &state, opening.deflate));
                run_mux(&state, &mut ws, &client).await;
            });
        }
    }
    Ok(response)
}

/// What a connection needs between the 101 answer and its first frame.
struct Opening {
    on_upgrade: hyper::upgrade::OnUpgrade,
    guard: crate::shutdown::DrainGuard,
    deflate: Option<switchboard_ws::DeflateParams>,
}

/// Waits for hyper to hand the connection over and takes the bare stream back, with the
/// bytes already read past the request; `None` when the upgrade failed.
async fn take_over(on_upgrade: hyper::upgrade::OnUpgrade) -> Option<(TcpStream, Bytes)> {
    let upgraded = match on_upgrade.await {
        Ok(u) => u,
        Err(e) => {
            tracing::debug!(error = %e, "upgrade failed");
            return None;
        }
    };
    // `crate::server` hands hyper nothing but this type.
    let Ok(raw) = upgraded.downcast::<ServedIo>() else {
        tracing::error!("upgraded connection is not the IO the server gave hyper");
        return None;
    };
    let (unread, tcp) = raw.io.into_inner().into_parts();
    // What hyper read past the request, then what it had not read yet.
    let leftover = if unread.is_empty() {
        raw.read_buf
    } else {
        [raw.read_buf, unread].concat().into()
    };
    Some((tcp, leftover))
}

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
    config
}

/// Turns the codec's `101 Switching Protocols` bytes into a hyper response.
fn switching_response(raw: &[u8]) -> Result<Response, ServerError> {
    let text = std::str::from_utf8(raw)
        .map_err(|_| ServerError::Broker("handshake response is not ASCII".into()))?;
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for line in text.split("\r\n").skip(1).filter(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(value.trim()),
        ) {
            resp.headers_mut().append(n, v);
        }
    }
    Ok(resp)
}

/// A message's WebSocket frame, built once and shared by every connection.
fn prepared(m: &HubMessage) -> Option<&PreparedMessage> {
    m.extension(|m| PreparedMessage::text(m.encoded(WireFormat::Json).clone()))
}

fn queue_message<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocket<S>, m: &HubMessage) -> bool {
    let res = match prepared(m) {
        Some(p) => ws.queue_prepared(p),
        // The extension slot holds another type: frame this one for this connection.
        None => ws.queue(Message::Text(m.encoded(WireFormat::Json).clone())),
    };
    res.is_ok()
}

/// How a closed subscription ends the connection.
fn ending_for(reason: CloseReason) -> Ending {
    match reason {
        CloseReason::Shutdown => Ending::Shutdown,
        CloseReason::Disconnected => Ending::Kicked,
        _ => Ending::Resume,
    }
}

/// What woke a connection's loop on the socket side.
enum Wake {
    /// A message from the peer (or the end).
    Msg(Option<switchboard_ws_tokio::Result<Message>>),
    /// The output queue drained below [`HIGH_WATER`] while it was full: take more.
    Room,
}

/// Reads the next message; while the output queue is over [`HIGH_WATER`] (`room` false),
/// also resolves once writing brings it back under, so the loop takes more messages
/// even when the peer sends nothing.
async fn recv_or_room<S: AsyncRead + AsyncWrite + Unpin>(
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

/// Why the server ends a connection.
enum Ending {
    Shutdown,
    Kicked,
    Policy(&'static str),
    TooBig,
    /// The hub closed a subscription (slow consumer, broker trouble).
    Resume,
}

impl Ending {
    /// The close frame for it.
    fn close_frame(self) -> (CloseCode, &'static str) {
        match self {
            Ending::Shutdown => (CloseCode::SERVICE_RESTART, "service restart"),
            Ending::Kicked => (CloseCode::POLICY_VIOLATION, "disconnected by the server"),
            Ending::Policy(why) => (CloseCode::POLICY_VIOLATION, why),
            Ending::TooBig => (
                CloseCode::MESSAGE_TOO_BIG,
                "message over the publish size limit",
            ),
            Ending::Resume => (CloseCode::TRY_AGAIN_LATER, "resume from your last cursor"),
        }
    }
}

/// Longest the closing handshake may take after we start it (the codec's close timeout
/// bounds the wait for the peer's answer; this also bounds a peer that does not read).
const CLOSE_BOUND: Duration = Duration::from_secs(10);

async fn finish<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocket<S>, ending: Ending) {
    let (code, reason) = ending.close_frame();
    let _ = tokio::time::timeout(CLOSE_BOUND, ws.close(code, reason)).await;
}

/// A client's text frame as a payload: valid JSON is embedded as JSON, other text is sent
/// as a string.
pub fn text_payload(t: Bytes) -> Payload {
    if switchboard_proto::validate_json(&t).is_ok() {
        Payload::json_prevalidated(t)
    } else {
        // Text frames are UTF-8 (checked by the codec).
        Payload::text(t.clone()).unwrap_or_else(|_| Payload::binary(t))
    }
}

/// What a native connection keeps besides its socket.
struct Parts {
    sub: Subscription,
    hub: Hub,
    /// Counted for the backend's disconnect; unregisters on drop.
    _client: crate::clients::Registration,
    _guard: crate::shutdown::DrainGuard,
    /// `limits.max_publish_bytes` (u32: a message limit over 4 GiB is no limit here).
    max: u32,
    may_publish: bool,
}

/// A native connection's task: one hand-written future over the socket and the
/// subscription, so an idle connection's task holds those and little else (no shutdown
/// or kick futures: shutdown and the backend's disconnect close the subscription).
///
/// Each poll: queue every message ready (they leave in one vectored write when the
/// socket is polled), then poll the socket (writes, then reads the client's frames), then
/// wait on the subscription while there is room below [`HIGH_WATER`]. A client's publish
/// is a boxed future (rare) that holds further reads until done; the close handshake
/// runs in place, bounded by the codec's close timeout (which also ends it when the peer
/// does not read).
struct Native<S> {
    ws: WebSocket<S>,
    parts: Parts,
    /// A client's publish in flight.
    publishing: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// The closing handshake is under way.
    closing: bool,
}

/// Spawns the connection's task (the socket already has its mark and wheel).
fn spawn_native<S>(ws: WebSocket<S>, parts: Parts)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let task = Native {
        ws,
        parts,
        publishing: None,
        closing: false,
    };
    tracing::trace!(
        bytes = std::mem::size_of_val(&task),
        "native websocket task"
    );
    tokio::spawn(task);
}

impl<S: AsyncRead + AsyncWrite + Unpin> Future for Native<S> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.closing {
            return this.ws.poll_close(cx);
        }
        match this.poll_open(cx) {
            Poll::Ready(Some(ending)) => {
                let (code, reason) = ending.close_frame();
                // Fails only when a close is already under way; driving it is the same.
                let _ = this.ws.start_close(code, reason);
                this.closing = true;
                this.ws.poll_close(cx)
            }
            Poll::Ready(None) => Poll::Ready(()),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Native<S> {
    /// Ready with why the server ends the connection, or `None` once it is over.
    fn poll_open(&mut self, cx: &mut Context<'_>) -> Poll<Option<Ending>> {
        let Self {
            ws,
            parts,
            publishing,
            ..
        } = self;
        if let Some(p) = publishing {
            ready!(p.as_mut().poll(cx));
            *publishing = None;
        }
        let sub = &mut parts.sub;
        loop {
            while ws.pending_bytes() < HIGH_WATER {
                match sub.try_recv() {
                    Ok(Some(m)) => {
                        if !queue_message(ws, &m) {
                            break;
                        }
                    }
                    Ok(None) | Err(RecvError::Lagged { .. }) => break,
                    Err(RecvError::Closed { reason, .. }) => {
                        return Poll::Ready(Some(ending_for(reason)));
                    }
                }
            }
            let room = ws.pending_bytes() < HIGH_WATER;
            // Polling `recv` writes queued output (and waits for the socket when blocked).
            match ws.poll_recv(cx) {
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Err(e))) => {
                    // The codec queued the close frame with the right code; keep driving.
                    tracing::debug!(error = %e, "websocket error");
                    continue;
                }
                Poll::Ready(Some(Ok(m @ (Message::Text(_) | Message::Binary(_))))) => {
                    if !parts.may_publish {
                        return Poll::Ready(Some(Ending::Policy(
                            "clients may not publish to this channel",
                        )));
                    }
                    let payload = match m {
                        Message::Text(t) if fits(t.len(), parts.max) => text_payload(t),
                        Message::Binary(b) if fits(b.len(), parts.max) => Payload::binary(b),
                        _ => return Poll::Ready(Some(Ending::TooBig)),
                    };
                    let mut fut = publish(parts.hub.clone(), sub.channel().into(), payload);
                    if fut.as_mut().poll(cx).is_pending() {
                        *publishing = Some(fut);
                        return Poll::Pending;
                    }
                    continue;
                }
                Poll::Ready(Some(Ok(_))) => continue,
                Poll::Pending => {}
            }
            if !room {
                if ws.pending_bytes() < HIGH_WATER {
                    // The queue drained below the mark: take more messages.
                    continue;
                }
                return Poll::Pending;
            }
            match sub.poll_recv(cx) {
                Poll::Ready(Ok(m)) => {
                    let _ = queue_message(ws, &m);
                }
                Poll::Ready(Err(RecvError::Lagged { .. })) => {}
                Poll::Ready(Err(RecvError::Closed { reason, .. })) => {
                    return Poll::Ready(Some(ending_for(reason)));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

fn fits(len: usize, max: u32) -> bool {
    u32::try_from(len).is_ok_and(|len| len <= max)
}

/// Publishes a client's message. Boxed and owning what it needs: publishing is rare next
/// to receiving, and an idle connection's task should not be sized for it.
fn publish(
    hub: Hub,
    channel: Box<str>,
    payload: Payload,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        if let Err(e) = hub.publish_from_client(&channel, payload).await {
            tracing::warn!(error = %e, "publish failed");
        }
    })
}

async fn run_mux<S: AsyncRead + AsyncWrite + Unpin>(
    state: &AppState,
    ws: &mut WebSocket<S>,
    client: &ClientHandle,
) {
    let mut feed = Feed::default();
    let ending = 'conn: loop {
        while ws.pending_bytes() < HIGH_WATER {
            match feed.try_next() {
                Some(FeedEvent::Message(m)) => {
                    let _ = queue_message(ws, &m);
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
                    let reply = command(state, client, &mut feed, &t).await;
                    let _ = ws.queue(Message::Text(reply));
                }
                Wake::Msg(Some(Ok(_))) => {}
            },
            ev = feed.next(), if room && !feed.is_empty() => match ev {
                FeedEvent::Message(m) => { let _ = queue_message(ws, &m); }
                FeedEvent::Closed { reason, .. } => break Some(ending_for(reason)),
            },
        }
    };
    if let Some(e) = ending {
        finish(ws, e).await;
    }
}

/// Executes one command and returns its reply frame.
async fn command(state: &AppState, client: &ClientHandle, feed: &mut Feed, frame: &[u8]) -> Bytes {
    let cmd = match parse_command(frame) {
        Ok(c) => c,
        Err(e) => return encode_error(e.id, e.code, &e.message),
    };
    let id = cmd.id;
    match execute(state, client, feed, cmd).await {
        Ok(reply) => reply,
        Err(e) => encode_error(Some(id), e.command_code(), &e.to_string()),
    }
}

/// Errors that only exist in the command protocol.
fn protocol_error(id: u64, code: ErrorCode, message: String) -> Result<Bytes, ServerError> {
    Ok(encode_error(Some(id), code, &message))
}

async fn execute(
    state: &AppState,
    client: &ClientHandle,
    feed: &mut Feed,
    cmd: Command<'_>,
) -> Result<Bytes, ServerError> {
    let id = cmd.id;
    let limits = &state.config.limits;
    match cmd.op {
        Op::Subscribe { channel, since } => {
            channel::for_subscribe(&state.hub, &channel)?;
            if feed.contains(&channel) {
                return protocol_error(
                    id,
                    ErrorCode::AlreadySubscribed,
                    format!("already subscribed to {channel}"),
                );
            }
            if feed.len() >= limits.max_channels_per_request {
                return Err(ServerError::TooManyChannels {
                    limit: limits.max_channels_per_request,
                });
            }
            let sub = state
                .hub
                .subscribe(&channel, since, client_info(client))
                .await?;
            let start = sub.start();
            feed.push(sub);
            Ok(encode_result_cursor(id, start))
        }
        Op::Unsubscribe { channel } => {
            if !feed.remove(&channel) {
                return protocol_error(
                    id,
                    ErrorCode::NotSubscribed,
                    format!("not subscribed to {channel}"),
                );
            }
            Ok(encode_ok(id))
        }
        Op::Publish { channel, data } => {
            channel::for_client_publish(&state.hub, &channel)?;
            let payload = match data {
                CommandData::Json(j) => {
                    Payload::json_prevalidated(Bytes::copy_from_slice(j.as_bytes()))
                }
                CommandData::Binary(b) => Payload::binary(Bytes::from(b)),
            };
            if payload.len() > limits.max_publish_bytes {
                return Err(ServerError::PayloadTooLarge {
                    limit: limits.max_publish_bytes,
                });
            }
            let cursor = state.hub.publish_from_client(&channel, payload).await?;
            Ok(encode_result_cursor(id, cursor))
        }
        Op::Presence { channel } => {
            channel::for_subscribe(&state.hub, &channel)?;
            let list = state.hub.presence(&channel).await?;
            let entries: Vec<PresenceEntry<'_>> =
                list.iter().map(|c| c.as_presence_entry()).collect();
            Ok(encode_presence_result(id, &entries))
        }
        Op::History {
            channel,
            since,
            limit,
        } => {
            channel::for_subscribe(&state.hub, &channel)?;
            let limit = limit.map_or(MAX_BATCH, |l| (l as usize).min(MAX_BATCH));
            let answer = state.hub.history(&channel, since, Some(limit)).await?;
            let body = crate::transport::poll::history_body(answer, since);
            Ok(encode_result_raw(id, &body))
        }
        Op::Ping => Ok(encode_ok(id)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An idle connection holds its task for life: tokio keeps the future in a cell with
    /// about 100 bytes of its own, allocated in multiples of 128 bytes. Today's future
    /// (408 B) fits a 512-byte cell; this catches growth past it.
    #[test]
    fn an_idle_native_connection_task_fits_512_bytes() {
        let size = std::mem::size_of::<Native<tokio::net::TcpStream>>();
        assert!(size <= 512 - 104, "Native<TcpStream> is {size} bytes");
    }
}
