//! WebSocket: the native endpoint `GET /ch/NAME` with `Upgrade: websocket` (one channel;
//! each push is one envelope JSON text frame; text and binary frames from the client
//! publish to the channel when its namespace allows client publishing; `?since=CURSOR`
//! resumes), and the multiplexed SDK endpoint `GET /ws` speaking
//! `switchboard_proto::command` (subscribe, unsubscribe, publish, presence, history,
//! ping) over one connection.
//!
//! Fan-out cost: each message's frame is built once ([`crate::hub::Message::ws_frame`])
//! and queued by reference on every connection; all frames ready for a connection leave
//! in one vectored write. A connection whose queue passes [`HIGH_WATER`] stops taking
//! messages until the socket drains; the hub then serves it from history (see
//! [`crate::hub`]).
//!
//! Close codes: 1012 "service restart" on shutdown, 1008 when a client publishes where it
//! may not or the backend API disconnects it, 1009 for a message over
//! `limits.max_publish_bytes`, and the codec's codes (1002, 1007, …) for protocol errors.

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use switchboard_hub::{CloseReason, Message as HubMessage, Payload, Subscription, WireFormat};
use switchboard_proto::{
    encode_error, encode_ok, encode_presence_result, encode_result_cursor, encode_result_raw,
    parse_command, Command, CommandData, ErrorCode, Op, PresenceEntry,
};
use switchboard_ws::handshake::{self, AcceptOptions};
use switchboard_ws::PreparedMessage;
use switchboard_ws::{CloseCode, DeflateConfig, Role};
use switchboard_ws_tokio::{Message, WebSocket};

use crate::channel;
use crate::clients::ClientHandle;
use crate::error::ServerError;
use crate::state::AppState;
use crate::transport::poll::MAX_BATCH;
use crate::transport::{client_info, with_client_id, Feed, FeedEvent, Target};

/// Queued output bytes above which a connection takes no more messages for now.
pub const HIGH_WATER: usize = 256 * 1024;

type Socket = WebSocket<TokioIo<hyper::upgrade::Upgraded>>;

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
    // channel is an HTTP error, not a close code.
    let client = state.clients.register(user);
    let native = match mode {
        Mode::Native(target) => {
            let ns = channel::for_subscribe(&state.hub, &target.channel)?;
            let may_publish = ns.allow_publish;
            let sub = state
                .hub
                .subscribe(&target.channel, target.since, client_info(&client))
                .await?;
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
            let task = async move {
                let Some((mut ws, _guard)) = opening.open(&state).await else {
                    return;
                };
                let mut sub = sub;
                run_native(&state, &mut ws, &mut sub, may_publish, &client).await;
            };
            tracing::trace!(bytes = std::mem::size_of_val(&task), "websocket task");
            tokio::spawn(task);
        }
        None => {
            tokio::spawn(async move {
                let Some((mut ws, _guard)) = opening.open(&state).await else {
                    return;
                };
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

impl Opening {
    /// Waits for hyper to hand the connection over; `None` when the upgrade failed.
    async fn open(self, state: &AppState) -> Option<(Box<Socket>, crate::shutdown::DrainGuard)> {
        let upgraded = match self.on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "upgrade failed");
                return None;
            }
        };
        let mut config = switchboard_ws::Config::default();
        config.max_message_size = state.config.limits.max_publish_bytes.max(4096);
        config.max_frame_size = config.max_message_size;
        // Boxed: the codec's state is most of a connection's memory, and a box keeps it
        // out of every future that holds the socket across an await.
        let mut ws = Box::new(WebSocket::from_upgraded(
            TokioIo::new(upgraded),
            Role::Server,
            config,
            self.deflate,
            &[],
        ));
        ws.set_high_water_mark(HIGH_WATER);
        Some((ws, self.guard))
    }
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

fn queue_message(ws: &mut Socket, m: &HubMessage) -> bool {
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
async fn recv_or_room(ws: &mut Socket, room: bool) -> Wake {
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

async fn finish(ws: &mut Socket, ending: Ending) {
    let (code, reason) = match ending {
        Ending::Shutdown => (CloseCode::SERVICE_RESTART, "service restart"),
        Ending::Kicked => (CloseCode::POLICY_VIOLATION, "disconnected by the server"),
        Ending::Policy(why) => (CloseCode::POLICY_VIOLATION, why),
        Ending::TooBig => (
            CloseCode::MESSAGE_TOO_BIG,
            "message over the publish size limit",
        ),
        Ending::Resume => (CloseCode::TRY_AGAIN_LATER, "resume from your last cursor"),
    };
    // close() drives the handshake to its end, bounded by the codec's close timeout.
    let _ = tokio::time::timeout(Duration::from_secs(10), ws.close(code, reason)).await;
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

async fn run_native(
    state: &AppState,
    ws: &mut Socket,
    sub: &mut Subscription,
    may_publish: bool,
    client: &ClientHandle,
) {
    let max = state.config.limits.max_publish_bytes;
    // Armed once for the connection's life: re-creating them on every turn of the loop
    // (once per delivered message) cost about 6 % of the fan-out CPU.
    let mut shutdown = std::pin::pin!(state.shutdown.wait());
    let mut kicked = std::pin::pin!(client.kicked());
    let ending = 'conn: loop {
        // Queue everything ready; it leaves in one vectored write when `recv` is polled.
        while ws.pending_bytes() < HIGH_WATER {
            match sub.try_recv() {
                Ok(Some(m)) => {
                    if !queue_message(ws, &m) {
                        break;
                    }
                }
                Ok(None) | Err(switchboard_hub::RecvError::Lagged { .. }) => break,
                Err(switchboard_hub::RecvError::Closed { reason, .. }) => {
                    break 'conn Some(ending_for(reason));
                }
            }
        }
        let room = ws.pending_bytes() < HIGH_WATER;
        tokio::select! {
            biased;
            () = &mut shutdown => break Some(Ending::Shutdown),
            () = &mut kicked => break Some(Ending::Kicked),
            msg = recv_or_room(ws, room) => match msg {
                Wake::Room => {}
                Wake::Msg(None) => break None,
                Wake::Msg(Some(Err(e))) => {
                    // The codec queued the close frame with the right code; keep driving.
                    tracing::debug!(error = %e, "websocket error");
                }
                Wake::Msg(Some(Ok(Message::Text(_) | Message::Binary(_)))) if !may_publish => {
                    break Some(Ending::Policy("clients may not publish to this channel"));
                }
                Wake::Msg(Some(Ok(Message::Text(t)))) => {
                    if t.len() > max {
                        break Some(Ending::TooBig);
                    }
                    publish(state, sub.channel(), text_payload(t)).await;
                }
                Wake::Msg(Some(Ok(Message::Binary(b)))) => {
                    if b.len() > max {
                        break Some(Ending::TooBig);
                    }
                    publish(state, sub.channel(), Payload::binary(b)).await;
                }
                Wake::Msg(Some(Ok(_))) => {}
            },
            r = sub.recv(), if room => match r {
                Ok(m) => { let _ = queue_message(ws, &m); }
                Err(switchboard_hub::RecvError::Lagged { .. }) => {}
                Err(switchboard_hub::RecvError::Closed { reason, .. }) => break Some(ending_for(reason)),
            },
        }
    };
    if let Some(e) = ending {
        Box::pin(finish(ws, e)).await;
    }
}

/// Publishes a client's message. Boxed: publishing is rare next to receiving, and its
/// future would otherwise be part of every idle connection's task.
async fn publish(state: &AppState, channel: &str, payload: Payload) {
    if let Err(e) = Box::pin(state.hub.publish_from_client(channel, payload)).await {
        tracing::warn!(error = %e, "publish failed");
    }
}

async fn run_mux(state: &AppState, ws: &mut Socket, client: &ClientHandle) {
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
