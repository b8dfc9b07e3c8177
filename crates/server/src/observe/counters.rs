//! The server's own counters: static atomics every connection and every failure passes,
//! read at scrape time by [`crate::observe::metrics`] and by the status feed.
//!
//! Why statics: a counter must cost one relaxed atomic add where it is touched, with
//! no lock, no allocation and no pointer to carry into the code that counts (the codec's
//! byte stream, the one place errors become statuses). One process serves one server;
//! a program that runs several in one process reads their sum.
//!
//! What each costs: bytes in and out, one add per read or write call of a connection
//! (not per message); transports, one add per admitted request; failures, one add per
//! failed request (a search of a short table of codes); close codes, one add per close;
//! connections open per transport, one add when a connection registers and one when it
//! ends (the transport rides in its registration's key, so it costs no byte to keep);
//! their subscriptions, one add per subscribe and one per unsubscribe or end.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The transports a request is admitted for, as labelled (`publish`: `POST /ch/NAME`).
pub const TRANSPORTS: [&str; 6] = ["websocket", "sse", "stream", "longpoll", "poll", "publish"];

/// A kind of connection counted open while it lives (`switchboard_connections`): one
/// registered with the client registry ([`crate::clients`]), for as long as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A native WebSocket (`/ch/NAME`).
    Websocket,
    /// A `/ws` session (and a `POST /ws` command while it runs).
    Ws,
    /// An SSE stream (`/ch/NAME` or `/sub`).
    Sse,
    /// An HTTP stream (`/ch/NAME` or `/sub`).
    Stream,
    /// A long-poll, from its subscribing until its answer (held, mostly).
    Longpoll,
    /// A WebSocket on an endpoint a program embedding the server added.
    Custom,
}

impl Transport {
    /// Every transport, in the order of their numbers ([`Transport::number`]).
    pub const ALL: [Transport; 6] = [
        Transport::Websocket,
        Transport::Ws,
        Transport::Sse,
        Transport::Stream,
        Transport::Longpoll,
        Transport::Custom,
    ];

    /// Its label (`transport="…"`).
    pub const fn name(self) -> &'static str {
        match self {
            Transport::Websocket => "websocket",
            Transport::Ws => "ws",
            Transport::Sse => "sse",
            Transport::Stream => "stream",
            Transport::Longpoll => "longpoll",
            Transport::Custom => "custom",
        }
    }

    /// Its index in [`Transport::ALL`] (fits in 3 bits).
    pub const fn number(self) -> u8 {
        self as u8
    }

    /// The transport numbered `n` (`None` past the last).
    pub fn from_number(n: u8) -> Option<Transport> {
        Transport::ALL.get(usize::from(n)).copied()
    }
}

/// Every stable error code a failed request is answered with (`other`: a code an
/// embedding program's admission check chose).
pub const CODES: [&str; 34] = [
    "invalid_channel",
    "unknown_namespace",
    "publish_not_allowed",
    "subscribe_not_allowed",
    "not_allowed",
    "payload_too_large",
    "body_timeout",
    "malformed_cursor",
    "bad_request",
    "malformed_request",
    "header_too_large",
    "too_many_channels",
    "unauthorized",
    "api_disabled",
    "not_found",
    "method_not_allowed",
    "bad_handshake",
    "shutting_down",
    "busy",
    "server_full",
    "too_many_user_connections",
    "denied_by_backend",
    "backend_unavailable",
    "publish_rate",
    "too_many_failures",
    "too_many_connections",
    "broker_unavailable",
    "token_required",
    "invalid_token",
    "token_expired",
    "not_granted",
    "origin_not_allowed",
    "host_not_allowed",
    "other",
];

/// Admission refusals by reason: which [`CODES`] each reason counts.
pub const REFUSALS: [(&str, &[&str]); 5] = [
    (
        "connection_limit",
        &[
            "busy",
            "server_full",
            "too_many_connections",
            "too_many_user_connections",
        ],
    ),
    ("rate_limit", &["publish_rate", "too_many_failures"]),
    ("origin", &["origin_not_allowed", "host_not_allowed"]),
    ("api_key", &["unauthorized"]),
    (
        "token",
        &[
            "token_required",
            "invalid_token",
            "token_expired",
            "not_granted",
        ],
    ),
];

/// WebSocket close codes the server sends for its own reasons ([`crate::error::Ending`]).
pub const CLOSE_CODES: [u16; 5] = [1008, 1009, 1012, 1013, 3000];

// Only to initialise the statics below: each use is a new atomic.
#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicU64 = AtomicU64::new(0);

static BYTES_IN: AtomicU64 = ZERO;
static BYTES_OUT: AtomicU64 = ZERO;
static ACCEPTED: AtomicU64 = ZERO;
static CLOSED: AtomicU64 = ZERO;
static ADMITTED: [AtomicU64; TRANSPORTS.len()] = [ZERO; TRANSPORTS.len()];
static FAILURES: [AtomicU64; CODES.len()] = [ZERO; CODES.len()];
/// Failed requests by status, 400–599 (index: status − 400).
static STATUSES: [AtomicU64; 200] = [ZERO; 200];
static CLOSES: [AtomicU64; CLOSE_CODES.len()] = [ZERO; CLOSE_CODES.len()];
static OPEN: [AtomicU64; Transport::ALL.len()] = [ZERO; Transport::ALL.len()];
static SUBSCRIBED: [AtomicU64; Transport::ALL.len()] = [ZERO; Transport::ALL.len()];

/// `n` bytes read from a connection.
#[inline]
pub fn bytes_in(n: usize) {
    if n > 0 {
        BYTES_IN.fetch_add(n as u64, Relaxed);
    }
}

/// `n` bytes written to a connection.
#[inline]
pub fn bytes_out(n: usize) {
    if n > 0 {
        BYTES_OUT.fetch_add(n as u64, Relaxed);
    }
}

/// A connection accepted (counted in the front's connections).
pub fn accepted() {
    ACCEPTED.fetch_add(1, Relaxed);
}

/// A counted connection ended.
pub fn closed() {
    CLOSED.fetch_add(1, Relaxed);
}

/// A request admitted for `transport` (one of [`TRANSPORTS`]; others are not counted).
pub fn admitted(transport: &str) {
    if let Some(i) = TRANSPORTS.iter().position(|t| *t == transport) {
        ADMITTED[i].fetch_add(1, Relaxed);
    }
}

/// A request answered with the failure `code` and `status`.
pub fn failed(status: u16, code: &str) {
    let i = CODES
        .iter()
        .position(|c| *c == code)
        .unwrap_or(CODES.len() - 1);
    FAILURES[i].fetch_add(1, Relaxed);
    if let Some(s) = status
        .checked_sub(400)
        .and_then(|i| STATUSES.get(usize::from(i)))
    {
        s.fetch_add(1, Relaxed);
    }
}

/// A WebSocket closed by the server with `code`.
pub fn close_sent(code: u16) {
    if let Some(i) = CLOSE_CODES.iter().position(|c| *c == code) {
        CLOSES[i].fetch_add(1, Relaxed);
    }
}

/// A connection of `transport` registered.
pub fn opened_as(transport: Transport) {
    OPEN[usize::from(transport.number())].fetch_add(1, Relaxed);
}

/// A connection of `transport` ended (after [`opened_as`], so never below zero).
pub fn ended_as(transport: Transport) {
    OPEN[usize::from(transport.number())].fetch_sub(1, Relaxed);
}

/// `n` subscriptions of a `transport` connection made.
pub fn subscribed_as(transport: Transport, n: usize) {
    SUBSCRIBED[usize::from(transport.number())].fetch_add(n as u64, Relaxed);
}

/// `n` subscriptions of a `transport` connection ended (after [`subscribed_as`]).
pub fn unsubscribed_as(transport: Transport, n: usize) {
    if n > 0 {
        SUBSCRIBED[usize::from(transport.number())].fetch_sub(n as u64, Relaxed);
    }
}

/// What the counters say now.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Bytes read from connections.
    pub bytes_in: u64,
    /// Bytes written to connections.
    pub bytes_out: u64,
    /// Connections accepted.
    pub accepted: u64,
    /// Connections ended.
    pub closed: u64,
    /// Admitted requests per transport, as [`TRANSPORTS`].
    pub admitted: [u64; TRANSPORTS.len()],
    /// Failed requests per code, as [`CODES`].
    pub failures: [u64; CODES.len()],
    /// Failed requests per status (400–599), those seen only.
    pub statuses: Vec<(u16, u64)>,
    /// Close frames sent per code, as [`CLOSE_CODES`].
    pub closes: [u64; CLOSE_CODES.len()],
    /// Connections open now per transport, as [`Transport::ALL`].
    pub open_as: [u64; Transport::ALL.len()],
    /// Subscriptions held now per transport, as [`Transport::ALL`] (a native WebSocket's
    /// one is not counted here: see [`Snapshot::subscriptions_as`]).
    pub subscribed_as: [u64; Transport::ALL.len()],
}

impl Snapshot {
    /// Reads every counter.
    pub fn now() -> Self {
        let load = |a: &AtomicU64| a.load(Relaxed);
        Snapshot {
            bytes_in: load(&BYTES_IN),
            bytes_out: load(&BYTES_OUT),
            accepted: load(&ACCEPTED),
            closed: load(&CLOSED),
            admitted: std::array::from_fn(|i| load(&ADMITTED[i])),
            failures: std::array::from_fn(|i| load(&FAILURES[i])),
            statuses: (400..600u16)
                .zip(STATUSES.iter().map(load))
                .filter(|(_, n)| *n > 0)
                .collect(),
            closes: std::array::from_fn(|i| load(&CLOSES[i])),
            open_as: std::array::from_fn(|i| load(&OPEN[i])),
            subscribed_as: std::array::from_fn(|i| load(&SUBSCRIBED[i])),
        }
    }

    /// Failed requests with `code`.
    pub fn failures_of(&self, code: &str) -> u64 {
        CODES
            .iter()
            .position(|c| *c == code)
            .map_or(0, |i| self.failures[i])
    }

    /// Admission refusals per reason, as [`REFUSALS`].
    pub fn refusals(&self) -> [(&'static str, u64); REFUSALS.len()] {
        REFUSALS.map(|(reason, codes)| (reason, codes.iter().map(|c| self.failures_of(c)).sum()))
    }

    /// Subscriptions held now per transport, as [`Transport::ALL`]: a native WebSocket
    /// holds exactly one (its task keeps it beside its registration), so its count is its
    /// connections'; every other transport's are counted as they come and go.
    pub fn subscriptions_as(&self) -> [u64; Transport::ALL.len()] {
        let native = usize::from(Transport::Websocket.number());
        let mut n = self.subscribed_as;
        n[native] = self.open_as[native];
        n
    }

    /// Connections open now.
    pub fn open(&self) -> u64 {
        self.accepted.saturating_sub(self.closed)
    }
}

static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// Marks when the server started (the first call counts).
pub fn mark_start() {
    STARTED.get_or_init(std::time::Instant::now);
}

/// Time since [`mark_start`].
pub fn uptime() -> std::time::Duration {
    STARTED
        .get()
        .map_or(std::time::Duration::ZERO, |t| t.elapsed())
}
