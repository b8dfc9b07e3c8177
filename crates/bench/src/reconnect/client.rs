//! One `reconnect` client: a subscriber of `/ch/NAME` over a native WebSocket or SSE that
//! subscribes, writes down what it receives ([`Log`]), and whenever its subscription
//! ends or is refused comes back from its last cursor (`?since=` on the WebSocket,
//! `Last-Event-ID` on SSE) by the retry rule of [`super::backoff`].
//!
//! When it comes back depends on where the storm stands ([`Phase`]): before the server
//! goes away, an end is an accident and the client retries by the rule; once the server
//! is going away (`Down`), the client waits for the storm's window and takes its own
//! moment in it (`at + over · j / n` for the `j`-th of `n` clients of its process); after
//! that, by the rule again. A refusal is anything that did not subscribe: a TCP connect
//! refused or failed, a status other than `101` / `200` (`503` with its `Retry-After`),
//! a WebSocket accepted and closed before its first message (1013 with `retry after N
//! ms`), a timeout. A subscription counts as answered when its `200` arrives (SSE) or its
//! first message does (a WebSocket turned away is accepted too, then closed at once);
//! the time written down is when its head arrived.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use switchboard_client::SseParser;
use switchboard_proto::Cursor;
use switchboard_ws::handshake::HandshakeError;
use switchboard_ws_tokio::{ClientConfig, CloseCode, Message, WebSocket};
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::time::Instant;

use super::backoff::{self, Backoff};
use super::ledger::Log;
use super::lock;
use super::wire::Attempts;
use crate::counting::WireCounters;
use crate::net::{self, HttpConn, Stream};
use crate::payload;

/// Where the storm stands, as the parent announced it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Phase {
    Steady,
    /// The server is going away: an end now waits for the window.
    Down,
    /// The window opened at `at`; with `drop`, live connections are closed first.
    Storm {
        at: Instant,
        at_us: u64,
        drop: bool,
    },
}

/// How a client subscribes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Ws,
    Sse,
}

/// What a worker's clients share.
#[derive(Debug)]
pub(super) struct Ctx {
    pub(super) addr: SocketAddr,
    pub(super) path: String,
    pub(super) sources: usize,
    pub(super) backoff: Backoff,
    pub(super) attempt_timeout: Duration,
    pub(super) over: Duration,
    /// Clients of this process (for each one's moment in the window).
    pub(super) clients: usize,
    pub(super) phase: watch::Receiver<Phase>,
    pub(super) stop: watch::Receiver<bool>,
    pub(super) counters: Arc<WireCounters>,
    pub(super) tally: Mutex<Tally>,
}

/// Attempts and ends over a worker's clients.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub(super) initial: Attempts,
    pub(super) storm: Attempts,
    pub(super) ends: std::collections::BTreeMap<String, u64>,
}

/// One client's state, read by its worker.
#[derive(Debug, Default)]
pub(super) struct State {
    pub(super) log: Log,
    /// Live messages: (send time, latency), µs.
    pub(super) samples: Vec<(u64, u32)>,
    /// Subscribed for the first time.
    pub(super) ready: bool,
    /// Took its moment in the storm (or stayed connected through it).
    pub(super) stormed: bool,
    /// When its lasting subscription after the storm was answered (wall clock µs).
    pub(super) back_us: Option<u64>,
    pub(super) storm_attempts: u64,
}

/// A refused attempt: its kind and the server's hint.
#[derive(Debug)]
struct Refusal {
    kind: String,
    hint: Option<Duration>,
}

impl Refusal {
    fn new(kind: impl Into<String>, hint: Option<Duration>) -> Self {
        Self {
            kind: kind.into(),
            hint,
        }
    }
}

/// How a subscription ended.
#[derive(Debug)]
enum End {
    /// Turned away after all (a WebSocket accepted and closed before its first message).
    Refused(Refusal),
    /// It was live and ended (how).
    Ended(String),
    /// Closed by the client for the storm (a blip).
    Dropped,
    Stopped,
}

/// An answered subscription.
enum Conn {
    Ws(WebSocket<Stream>),
    Sse(HttpConn),
}

/// Runs client `j` of its process (source address index `source`) until stopped.
pub(super) async fn run(
    ctx: Arc<Ctx>,
    j: usize,
    source: usize,
    kind: Kind,
    state: Arc<Mutex<State>>,
    first_permit: Option<OwnedSemaphorePermit>,
) {
    let mut phase = ctx.phase.clone();
    let mut stop = ctx.stop.clone();
    let mut permit = first_permit;
    let mut failures = 0u32;
    let mut next: Option<Instant> = None;
    loop {
        if let Some(at) = next.take() {
            tokio::select! {
                biased;
                _ = stop.changed() => return,
                () = tokio::time::sleep_until(at) => {}
            }
        }
        if *stop.borrow() {
            return;
        }
        let (cursor, stormed) = {
            let s = lock(&state);
            (s.log.position(), s.stormed)
        };
        let attempt =
            tokio::time::timeout(ctx.attempt_timeout, attempt(&ctx, kind, source, cursor));
        let result = tokio::select! {
            biased;
            _ = stop.changed() => return,
            r = attempt => r.unwrap_or_else(|_| Err(Refusal::new("timeout", None))),
        };
        if stormed {
            lock(&state).storm_attempts += 1;
        }
        let end = match result {
            Err(r) => End::Refused(r),
            Ok((conn, opened_us)) => {
                if kind == Kind::Sse {
                    mark_answered(&state, opened_us);
                }
                drop(permit.take());
                serve(conn, opened_us, &state, &mut phase, &mut stop).await
            }
        };
        {
            let mut t = lock(&ctx.tally);
            let attempts = if stormed {
                &mut t.storm
            } else {
                &mut t.initial
            };
            attempts.attempts += 1;
            match &end {
                End::Refused(r) => *attempts.failed.entry(r.kind.clone()).or_default() += 1,
                End::Ended(how) => *t.ends.entry(how.clone()).or_default() += 1,
                End::Dropped => *t.ends.entry("dropped".into()).or_default() += 1,
                End::Stopped => {}
            }
        }
        let now = Instant::now();
        next = Some(match end {
            End::Stopped => return,
            End::Refused(r) => {
                failures = failures.saturating_add(1);
                now + ctx.backoff.delay(failures, r.hint, rand::random())
            }
            End::Ended(_) | End::Dropped => {
                failures = 0;
                match come_back(&ctx, j, &state, &mut phase, &mut stop).await {
                    Some(at) => at,
                    None => return,
                }
            }
        });
    }
}

/// When a client whose subscription ended comes back (see the module docs); `None`
/// when stopped meanwhile.
async fn come_back(
    ctx: &Ctx,
    j: usize,
    state: &Mutex<State>,
    phase: &mut watch::Receiver<Phase>,
    stop: &mut watch::Receiver<bool>,
) -> Option<Instant> {
    loop {
        let now = Instant::now();
        let current = *phase.borrow_and_update();
        match current {
            Phase::Steady => return Some(now + ctx.backoff.delay(1, None, rand::random())),
            Phase::Storm { at, .. } => {
                let mut s = lock(state);
                if s.stormed {
                    return Some(now + ctx.backoff.delay(1, None, rand::random()));
                }
                s.stormed = true;
                let slot = ctx.over.mul_f64(j as f64 / ctx.clients.max(1) as f64);
                return Some((at + slot).max(now));
            }
            Phase::Down => {
                tokio::select! {
                    biased;
                    _ = stop.changed() => return None,
                    changed = phase.changed() => if changed.is_err() { return None },
                }
            }
        }
    }
}

/// Opens a subscription from `cursor`: the connection and when its answer's head came
/// (wall clock µs), or why not.
async fn attempt(
    ctx: &Ctx,
    kind: Kind,
    source: usize,
    cursor: Option<Cursor>,
) -> Result<(Conn, u64), Refusal> {
    let stream = net::connect(ctx.addr, source, ctx.sources, &ctx.counters)
        .await
        .map_err(|e| {
            let kind = match e.kind() {
                std::io::ErrorKind::ConnectionRefused => "tcp_refused",
                _ => "tcp_error",
            };
            Refusal::new(kind, None)
        })?;
    let host = ctx.addr.to_string();
    match kind {
        Kind::Ws => {
            let path = match cursor {
                Some(c) => format!("{}?since={c}", ctx.path),
                None => ctx.path.clone(),
            };
            let mut config = ClientConfig::default();
            config.connection.ping_interval = None;
            config.connection.idle_timeout = None;
            match switchboard_ws_tokio::connect(stream, &host, &path, &config).await {
                Ok((ws, _)) => Ok((Conn::Ws(ws), payload::now_micros())),
                Err(switchboard_ws_tokio::Error::Handshake(HandshakeError::NotSwitching(s))) => {
                    Err(Refusal::new(format!("http_{s}"), None))
                }
                Err(switchboard_ws_tokio::Error::Handshake(_)) => {
                    Err(Refusal::new("ws_handshake", None))
                }
                Err(_) => Err(Refusal::new("io_error", None)),
            }
        }
        Kind::Sse => {
            let mut http = HttpConn::new(stream);
            let extra = match cursor {
                Some(c) => format!("Accept: text/event-stream\r\nLast-Event-ID: {c}\r\n"),
                None => "Accept: text/event-stream\r\n".to_owned(),
            };
            let head = async {
                http.get(&host, &ctx.path, &extra).await?;
                http.read_head().await
            };
            match head.await {
                Ok(h) if h.status == 200 => Ok((Conn::Sse(http), payload::now_micros())),
                Ok(h) => Err(Refusal::new(
                    format!("http_{}", h.status),
                    h.retry_after.as_deref().and_then(backoff::retry_after),
                )),
                Err(_) => Err(Refusal::new("io_error", None)),
            }
        }
    }
}

/// Reads an answered subscription until it ends (or the storm drops it).
async fn serve(
    conn: Conn,
    opened_us: u64,
    state: &Mutex<State>,
    phase: &mut watch::Receiver<Phase>,
    stop: &mut watch::Receiver<bool>,
) -> End {
    match conn {
        Conn::Ws(mut ws) => {
            let mut answered = false;
            loop {
                tokio::select! {
                    biased;
                    end = outside(state, phase, stop, answered) => return end,
                    m = ws.recv() => match m {
                        Some(Ok(Message::Text(b) | Message::Binary(b))) => {
                            if !answered {
                                answered = true;
                                mark_answered(state, opened_us);
                            }
                            envelope(&b, opened_us, state);
                        }
                        Some(Ok(Message::Close(frame))) => {
                            let code = frame.as_ref().map_or(1005, |f| f.code.as_u16());
                            if !answered && code == CloseCode::TRY_AGAIN_LATER.as_u16() {
                                let hint = frame.and_then(|f| backoff::ws_hint(&f.reason));
                                return End::Refused(Refusal::new("ws_1013", hint));
                            }
                            if !answered {
                                return End::Refused(Refusal::new(format!("ws_close_{code}"), None));
                            }
                            return End::Ended(format!("ws_close_{code}"));
                        }
                        Some(Ok(_)) => {}
                        Some(Err(_)) | None => {
                            return if answered {
                                End::Ended("ws_eof".into())
                            } else {
                                End::Refused(Refusal::new("io_error", None))
                            };
                        }
                    },
                }
            }
        }
        Conn::Sse(mut http) => {
            let mut parser = SseParser::default();
            let mut body = Vec::with_capacity(4096);
            loop {
                tokio::select! {
                    biased;
                    end = outside(state, phase, stop, true) => return end,
                    more = http.read_body(&mut body) => match more {
                        Ok(true) => {
                            for e in parser.feed(&body) {
                                sse_event(&e, opened_us, state);
                            }
                            body.clear();
                        }
                        Ok(false) => return End::Ended("sse_end".into()),
                        Err(_) => return End::Ended("sse_eof".into()),
                    },
                }
            }
        }
    }
}

/// What ends a live subscription from outside: the stop, or a storm announced while it
/// lives, which drops it (a blip) or counts the client as never away. Never returns
/// otherwise; cancel-safe (the subscription's loop makes a new one each turn).
async fn outside(
    state: &Mutex<State>,
    phase: &mut watch::Receiver<Phase>,
    stop: &mut watch::Receiver<bool>,
    answered: bool,
) -> End {
    let mut phase_open = true;
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => return End::Stopped,
            changed = phase.changed(), if phase_open => {
                if changed.is_err() {
                    phase_open = false;
                    continue;
                }
                let Phase::Storm { at_us, drop, .. } = *phase.borrow_and_update() else {
                    continue;
                };
                let mut s = lock(state);
                if s.stormed || !answered {
                    continue;
                }
                if drop {
                    return End::Dropped;
                }
                s.stormed = true;
                s.back_us = Some(at_us);
            }
        }
    }
}

/// Notes that a subscription was answered (its head came at `opened_us`).
fn mark_answered(state: &Mutex<State>, opened_us: u64) {
    let mut s = lock(state);
    s.ready = true;
    if s.stormed && s.back_us.is_none() {
        s.back_us = Some(opened_us);
    }
}

/// The fields of a WebSocket push that matter here (the rest is skipped unread).
#[derive(Deserialize)]
struct Push<'a> {
    #[serde(borrow)]
    event: &'a str,
    #[serde(default)]
    cursor: Option<Cursor>,
}

/// A WebSocket push: an envelope (`message` or `reset`).
fn envelope(bytes: &[u8], opened_us: u64, state: &Mutex<State>) {
    let Ok(push) = serde_json::from_slice::<Push<'_>>(bytes) else {
        return;
    };
    match (push.event, push.cursor) {
        ("message", Some(c)) => message(bytes, c, opened_us, state),
        ("reset", Some(c)) => lock(state).log.reset(c),
        _ => {}
    }
}

/// An SSE event: `message` (`id:` its cursor, `data:` the payload) or `reset`.
fn sse_event(e: &switchboard_client::SseEvent, opened_us: u64, state: &Mutex<State>) {
    let Some(c) = e.id.as_deref().and_then(|id| id.parse().ok()) else {
        return;
    };
    match e.event.as_str() {
        "" | "message" => message(e.data.as_bytes(), c, opened_us, state),
        "reset" => lock(state).log.reset(c),
        _ => {}
    }
}

/// A message at `cursor` whose payload is in `bytes`; its latency counts when it was sent
/// after this subscription was answered (a live message, not a replayed one).
fn message(bytes: &[u8], cursor: Cursor, opened_us: u64, state: &Mutex<State>) {
    let now = payload::now_micros();
    let mut s = lock(state);
    payload::scan(bytes, |seq, sent| {
        s.log.message(seq, cursor);
        if sent >= opened_us {
            let latency = u32::try_from(now.saturating_sub(sent)).unwrap_or(u32::MAX);
            s.samples.push((sent, latency));
        }
    });
}
