//! `GET /status`: a live page for operators, fed over the server's own channels.
//!
//! The page (`status.html`, plain HTML and script, no build step) loads the browser
//! client from `/switchboard.js` and subscribes to [`CHANNEL`] (`_sys:stats`), where
//! [`run`] publishes one sample a second — connections per transport, messages and bytes
//! in and out, the busiest channels, broker state, uptime, version — while someone is
//! subscribed (nothing is published, and nothing counted, while nobody watches). The
//! page computes rates from successive totals and draws the last minutes in an SVG.
//!
//! The `_sys` namespace ([`crate::observe::sys`]) is the server's own: clients may not publish there, and it has
//! no presence. When an API key is set, subscribing to it needs a *status ticket*: the
//! page asks for the key (typed into the page, kept in the tab's `sessionStorage`,
//! never in a URL), trades it for a ticket at `POST /status/ticket` (`Authorization:
//! Bearer KEY`), and subscribes with the ticket as its client token. A ticket opens
//! subscriptions for [`TICKET_LIFE`] (the transports may carry it in a URL, so what a
//! log keeps of it soon opens nothing); connections opened with it stay open, and a
//! reconnection asks for a new one. Without an API key the feed is open, as `/metrics` is.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use switchboard_hub::Payload;

use crate::observe::counters::{Snapshot, Transport, TRANSPORTS};
use crate::observe::process::Process;
use crate::state::AppState;

pub use super::sys::{is_internal, CHANNEL, NAMESPACE};

/// How long a status ticket opens subscriptions.
pub const TICKET_LIFE: Duration = Duration::from_secs(60);

/// What a status ticket starts with (so the front tells it from a client token).
pub const TICKET_PREFIX: &str = "sbstatus_";

/// How often the feed publishes a sample.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// How many of the busiest channels a sample names.
const BUSIEST: usize = 8;

/// Put in a request's extensions by the front when the request carried a live status
/// ticket; the request's principal is then admitted to [`CHANNEL`].
#[derive(Debug, Clone, Copy)]
pub struct StatusPass;

static TICKETS: LazyLock<Mutex<HashMap<String, Instant>>> = LazyLock::new(Mutex::default);

/// At most this many tickets live at once (the oldest go first).
const MAX_TICKETS: usize = 1024;

/// A new ticket.
fn issue() -> String {
    let ticket = format!("{TICKET_PREFIX}{:032x}", rand::random::<u128>());
    let now = Instant::now();
    let mut map = TICKETS.lock().unwrap_or_else(PoisonError::into_inner);
    map.retain(|_, until| *until > now);
    if map.len() >= MAX_TICKETS {
        if let Some(oldest) = map.iter().min_by_key(|(_, u)| **u).map(|(t, _)| t.clone()) {
            map.remove(&oldest);
        }
    }
    map.insert(ticket.clone(), now + TICKET_LIFE);
    ticket
}

/// Whether `token` is a status ticket (live or not).
pub fn is_ticket(token: &str) -> bool {
    token.starts_with(TICKET_PREFIX)
}

/// Whether `ticket` is live.
pub fn ticket_live(ticket: &str) -> bool {
    let map = TICKETS.lock().unwrap_or_else(PoisonError::into_inner);
    map.get(ticket).is_some_and(|until| *until > Instant::now())
}

/// `POST /status/ticket`: a ticket for the API key in `Authorization: Bearer` (or
/// `X-Api-Key`); with no key set, a ticket for anyone (the feed is open then anyway).
pub async fn ticket(State(state): State<AppState>, req: Request) -> Response {
    if let Err(e) = super::check_operator(&state, &req) {
        return e.into_response();
    }
    let mut resp = Json(serde_json::json!({
        "ticket": issue(),
        "expires_in": TICKET_LIFE.as_secs(),
    }))
    .into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The page.
pub const PAGE: &str = include_str!("status.html");

/// `GET /status`: the page (it holds no data; the feed is what the key guards).
pub async fn page(State(state): State<AppState>) -> Response {
    let keyed = if state.config.api_key.is_some() {
        "true"
    } else {
        "false"
    };
    let html = PAGE.replace("__KEYED__", keyed);
    let mut resp = axum::response::Html(html).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Publishes a sample to [`CHANNEL`] every [`INTERVAL`] while someone is subscribed,
/// until the server shuts down.
pub async fn run(state: AppState) {
    let mut every = tokio::time::interval(INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = state.shutdown.wait() => return,
            _ = every.tick() => {}
        }
        if state.hub.subscriber_count(CHANNEL) == 0 {
            continue;
        }
        let sample = sample(&state).await;
        let Ok(bytes) = serde_json::to_vec(&sample) else {
            continue;
        };
        let payload = Payload::json_prevalidated(Bytes::from(bytes));
        if let Err(e) = state.hub.publish(CHANNEL, payload).await {
            tracing::debug!(error = %e, "status sample not published");
        }
    }
}

/// One sample of the feed: totals (the page turns them into rates) and gauges.
pub async fn sample(state: &AppState) -> serde_json::Value {
    let now = Snapshot::now();
    let hub = state.hub.stats();
    let mut local = state.hub.local_channels();
    local.retain(|(name, _)| !is_internal(name));
    let channels = local.len();
    let subscriptions: usize = local.iter().map(|(_, n)| n).sum();
    local.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    local.truncate(BUSIEST);
    let busiest: Vec<_> = local
        .iter()
        .map(|(name, n)| serde_json::json!({ "channel": &**name, "subscribers": n }))
        .collect();
    let broker = match super::health::readiness(state).await {
        Ok(()) => serde_json::json!({ "ok": true }),
        Err(e) => serde_json::json!({ "ok": false, "reason": e.to_string() }),
    };
    let admitted: serde_json::Map<_, _> = TRANSPORTS
        .iter()
        .zip(now.admitted)
        .map(|(t, n)| ((*t).to_owned(), n.into()))
        .collect();
    // Connections open now per transport (the page's "open" column).
    let open: serde_json::Map<_, _> = Transport::ALL
        .iter()
        .zip(now.open_as)
        .map(|(t, n)| (t.name().to_owned(), n.into()))
        .collect();
    let process = Process::now();
    let unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    serde_json::json!({
        "t": unix_ms,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime": super::counters::uptime().as_secs(),
        "broker": broker,
        "broker_kind": if state.config.redis.is_some() { "redis" } else { "memory" },
        "connections": now.open(),
        "live": state.clients.len(),
        "admitted": admitted,
        "open": open,
        "channels": channels,
        "subscriptions": subscriptions,
        "busiest": busiest,
        "published": hub.published(),
        "delivered": hub.delivered(),
        "bytes_in": now.bytes_in,
        "bytes_out": now.bytes_out,
        "failures": now.failures.iter().sum::<u64>(),
        "slow": hub.slow_closed() + hub.slow_dropped(),
        "rss": process.rss_bytes,
        "cpu": process.cpu_seconds,
    })
}
