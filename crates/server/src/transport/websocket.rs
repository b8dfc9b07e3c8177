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
use switchboard_proto::{
    encode_error, encode_ok, encode_presence_result, encode_result_cursor, encode_result_raw,
    encode_ws_text, parse_command, Command, CommandData, Envelope, ErrorCode, Op, PollBody,
    PresenceEntry,
};
use switchboard_ws::handshake::{self, AcceptOptions};
use switchboard_ws::{CloseCode, DeflateConfig, Role};
use switchboard_ws_tokio::{Message, WebSocket};

use crate::channel;
use crate::clients::ClientHandle;
use crate::error::ServerError;
use crate::hub::{Item, PayloadKind, Subscriber};
use crate::state::AppState;
use crate::transport::live::PresenceGuard;
use crate::transport::poll::MAX_BATCH;
use crate::transport::Target;

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
pub fn upgrade(
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
    let native = match mode {
        Mode::Native(target) => {
            let ns = channel::for_subscribe(&state.config, &target.channel)?;
            let sub = state.hub.subscribe(&target.channel, target.since)?;
            Some((sub, ns.client_publish, ns.presence))
        }
        Mode::Mux => None,
    };
    let response = switching_response(&accepted.response)?;
    let on_upgrade = hyper::upgrade::on(&mut req);
    let guard = state.shutdown.guard().ok_or(ServerError::ShuttingDown)?;
    let state = state.clone();
    let client = state.clients.register(user);
    let mut config = switchboard_ws::Config::default();
    config.max_message_size = state.config.limits.max_publish_bytes.max(4096);
    config.max_frame_size = config.max_message_size;
    tokio::spawn(async move {
        let _guard = guard;
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "upgrade failed");
                return;
            }
        };
        let mut ws = WebSocket::from_upgraded(
            TokioIo::new(upgraded),
            Role::Server,
            config,
            accepted.deflate,
            &[],
        );
        ws.set_high_water_mark(HIGH_WATER);
        match native {
            Some((sub, may_publish, presence)) => {
                let channels = if presence {
                    vec![sub.channel().to_owned()]
                } else {
                    Vec::new()
                };
                let _presence = PresenceGuard::join(&state.hub, &client, channels);
                run_native(&state, &mut ws, sub, may_publish, &client).await;
            }
            None => run_mux(&state, &mut ws, &client).await,
        }
    });
    Ok(response)
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

fn queue_item(ws: &mut Socket, item: &Item) -> bool {
    let res = match item {
        Item::Message(m) => ws.queue_prepared(m.ws_frame()),
        Item::Reset { channel, cursor } => ws.queue(Message::Text(encode_ws_text(
            &Envelope::reset(channel, *cursor),
        ))),
    };
    res.is_ok()
}

/// Why the server ends a connection.
enum Ending {
    Shutdown,
    Kicked,
    Policy(&'static str),
    TooBig,
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
    };
    // close() drives the handshake to its end, bounded by the codec's close timeout.
    let _ = tokio::time::timeout(Duration::from_secs(10), ws.close(code, reason)).await;
}

/// Classifies a client payload: text that is valid JSON is embedded as JSON, other text
/// as a string, binary as bytes.
pub fn classify_text(t: &Bytes) -> PayloadKind {
    if switchboard_proto::validate_json(t).is_ok() {
        PayloadKind::Json
    } else {
        PayloadKind::Text
    }
}

async fn run_native(
    state: &AppState,
    ws: &mut Socket,
    mut sub: Subscriber,
    may_publish: bool,
    client: &ClientHandle,
) {
    let max = state.config.limits.max_publish_bytes;
    let ending = loop {
        while ws.pending_bytes() < HIGH_WATER {
            match sub.try_recv() {
                Some(item) => {
                    if !queue_item(ws, &item) {
                        break;
                    }
                }
                None => break,
            }
        }
        let room = ws.pending_bytes() < HIGH_WATER;
        tokio::select! {
            biased;
            () = state.shutdown.wait() => break Some(Ending::Shutdown),
            () = client.kicked() => break Some(Ending::Kicked),
            msg = ws.recv() => match msg {
                None => break None,
                Some(Err(e)) => {
                    // The codec queued the close frame with the right code; keep driving.
                    tracing::debug!(error = %e, "websocket error");
                }
                Some(Ok(Message::Text(t))) | Some(Ok(Message::Binary(t))) if !may_publish => {
                    let _ = t;
                    break Some(Ending::Policy("clients may not publish to this channel"));
                }
                Some(Ok(Message::Text(t))) => {
                    if t.len() > max { break Some(Ending::TooBig); }
                    let kind = classify_text(&t);
                    if let Err(e) = state.hub.publish(sub.channel(), kind, t) {
                        tracing::warn!(error = %e, "publish failed");
                    }
                }
                Some(Ok(Message::Binary(b))) => {
                    if b.len() > max { break Some(Ending::TooBig); }
                    if let Err(e) = state.hub.publish(sub.channel(), PayloadKind::Binary, b) {
                        tracing::warn!(error = %e, "publish failed");
                    }
                }
                Some(Ok(_)) => {}
            },
            item = sub.recv(), if room => {
                let _ = queue_item(ws, &item);
            }
        }
    };
    if let Some(e) = ending {
        finish(ws, e).await;
    }
}

/// One subscription of a `/ws` connection.
struct MuxSub {
    sub: Subscriber,
}

async fn run_mux(state: &AppState, ws: &mut Socket, client: &ClientHandle) {
    let mut subs: Vec<MuxSub> = Vec::new();
    let mut presence: Vec<PresenceGuard> = Vec::new();
    let mut next = 0usize;
    let ending = loop {
        // Queue every ready push, channels in turn.
        let mut progressed = true;
        while progressed && ws.pending_bytes() < HIGH_WATER {
            progressed = false;
            let n = subs.len();
            for i in 0..n {
                let idx = (next + i) % n;
                if let Some(item) = subs[idx].sub.try_recv() {
                    let _ = queue_item(ws, &item);
                    next = (idx + 1) % n;
                    progressed = true;
                    break;
                }
            }
        }
        let room = ws.pending_bytes() < HIGH_WATER && !subs.is_empty();
        tokio::select! {
            biased;
            () = state.shutdown.wait() => break Some(Ending::Shutdown),
            () = client.kicked() => break Some(Ending::Kicked),
            msg = ws.recv() => match msg {
                None => break None,
                Some(Err(e)) => tracing::debug!(error = %e, "websocket error"),
                Some(Ok(Message::Text(t))) | Some(Ok(Message::Binary(t))) => {
                    let reply = command(state, client, &mut subs, &mut presence, &t);
                    let _ = ws.queue(Message::Text(reply));
                }
                Some(Ok(_)) => {}
            },
            item = async {
                futures_util::future::select_all(subs.iter_mut().map(|s| Box::pin(s.sub.recv())))
                    .await
                    .0
            }, if room => {
                let _ = queue_item(ws, &item);
            }
        }
    };
    if let Some(e) = ending {
        finish(ws, e).await;
    }
}

/// Executes one command and returns its reply frame.
fn command(
    state: &AppState,
    client: &ClientHandle,
    subs: &mut Vec<MuxSub>,
    presence: &mut Vec<PresenceGuard>,
    frame: &[u8],
) -> Bytes {
    let cmd = match parse_command(frame) {
        Ok(c) => c,
        Err(e) => return encode_error(e.id, e.code, &e.message),
    };
    let id = cmd.id;
    match execute(state, client, subs, presence, cmd) {
        Ok(reply) => reply,
        Err((code, message)) => encode_error(Some(id), code, &message),
    }
}

fn fail(e: ServerError) -> (ErrorCode, String) {
    (e.command_code(), e.to_string())
}

fn execute(
    state: &AppState,
    client: &ClientHandle,
    subs: &mut Vec<MuxSub>,
    presence: &mut Vec<PresenceGuard>,
    cmd: Command<'_>,
) -> Result<Bytes, (ErrorCode, String)> {
    let id = cmd.id;
    let cfg = &state.config;
    match cmd.op {
        Op::Subscribe { channel, since } => {
            let ns = channel::for_subscribe(cfg, &channel).map_err(fail)?;
            if subs.iter().any(|s| s.sub.channel() == channel) {
                return Err((
                    ErrorCode::AlreadySubscribed,
                    format!("already subscribed to {channel}"),
                ));
            }
            if subs.len() >= cfg.limits.max_channels_per_request {
                return Err(fail(ServerError::TooManyChannels {
                    limit: cfg.limits.max_channels_per_request,
                }));
            }
            let sub = state
                .hub
                .subscribe(&channel, since)
                .map_err(|e| fail(e.into()))?;
            let start = sub.cursor();
            if ns.presence {
                presence.push(PresenceGuard::join(
                    &state.hub,
                    client,
                    vec![channel.to_string()],
                ));
            }
            subs.push(MuxSub { sub });
            Ok(encode_result_cursor(id, start))
        }
        Op::Unsubscribe { channel } => {
            let before = subs.len();
            subs.retain(|s| s.sub.channel() != channel);
            if subs.len() == before {
                return Err((
                    ErrorCode::NotSubscribed,
                    format!("not subscribed to {channel}"),
                ));
            }
            presence.retain(|p| !p.is_for(&channel));
            Ok(encode_ok(id))
        }
        Op::Publish { channel, data } => {
            channel::for_client_publish(cfg, &channel).map_err(fail)?;
            let (kind, bytes) = match data {
                CommandData::Json(j) => (PayloadKind::Json, Bytes::copy_from_slice(j.as_bytes())),
                CommandData::Binary(b) => (PayloadKind::Binary, Bytes::from(b)),
            };
            let limit = cfg.limits.max_publish_bytes;
            if bytes.len() > limit {
                return Err(fail(ServerError::PayloadTooLarge { limit }));
            }
            let cursor = state
                .hub
                .publish(&channel, kind, bytes)
                .map_err(|e| fail(e.into()))?;
            Ok(encode_result_cursor(id, cursor))
        }
        Op::Presence { channel } => {
            let ns = channel::for_subscribe(cfg, &channel).map_err(fail)?;
            if !ns.presence {
                return Err(fail(ServerError::NotAllowed(format!(
                    "presence of {channel}"
                ))));
            }
            let list = state.hub.presence(&channel);
            let entries: Vec<PresenceEntry<'_>> = list
                .iter()
                .map(|(c, u)| PresenceEntry {
                    client: c,
                    user: u.as_deref(),
                    info: None,
                })
                .collect();
            Ok(encode_presence_result(id, &entries))
        }
        Op::History {
            channel,
            since,
            limit,
        } => {
            let ns = channel::for_subscribe(cfg, &channel).map_err(fail)?;
            if !ns.history {
                return Err(fail(ServerError::NotAllowed(format!(
                    "history of {channel}"
                ))));
            }
            let limit = limit.map_or(MAX_BATCH, |l| (l as usize).min(MAX_BATCH));
            // Without a cursor, history means "what is held", from the oldest message.
            let since = since.or_else(|| {
                state
                    .hub
                    .read(&channel, None, 0)
                    .ok()
                    .map(|r| switchboard_proto::Cursor::new(r.cursor.epoch, 0))
            });
            let range = state
                .hub
                .read(&channel, since, limit)
                .map_err(|e| fail(e.into()))?;
            let mut body = PollBody::new();
            for m in &range.messages {
                body.push_json(m.json());
            }
            // A reset is expected when asking from the start of a trimmed history.
            let reset = range.reset && since.is_some_and(|c| c.offset > 0);
            Ok(encode_result_raw(
                id,
                &body.finish(range.cursor, reset, range.more),
            ))
        }
        Op::Ping => Ok(encode_ok(id)),
    }
}
