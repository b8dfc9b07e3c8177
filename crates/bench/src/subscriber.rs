//! One fan-out subscriber, a client of one channel over one transport (WebSocket, its
//! deflate and compact forms, SSE, HTTP streaming, long-poll and poll), counting each
//! message's arrival, order and latency into what a crowd of them shares ([`Shared`]).
//! `fanout` runs them in its own process or in worker processes ([`crate::crowd`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchboard_ws_tokio::Message;
use tokio::sync::watch;

use crate::common::{self, ServerArgs};
use crate::counting::WireCounters;
use crate::net::{self, HttpConn};
use crate::payload;
use crate::stats::{Histogram, SeqTracker};

/// How subscribers receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    Ws,
    WsDeflate,
    /// WebSocket in the compact format (subprotocol `switchboard.compact`).
    WsCompact,
    Sse,
    Stream,
    Longpoll,
    Poll,
    /// Long-polling with `format=compact` bodies.
    LongpollCompact,
    /// Polling with `format=compact` bodies.
    PollCompact,
}

impl Transport {
    /// Name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ws => "ws",
            Self::WsDeflate => "ws-deflate",
            Self::WsCompact => "ws-compact",
            Self::Sse => "sse",
            Self::Stream => "stream",
            Self::Longpoll => "longpoll",
            Self::Poll => "poll",
            Self::LongpollCompact => "longpoll-compact",
            Self::PollCompact => "poll-compact",
        }
    }
}

/// What subscriber tasks share.
#[derive(Debug, Default)]
pub struct Shared {
    pub delivered: AtomicU64,
    pub latency: Mutex<Histogram>,
    pub failed: AtomicU64,
}

impl Shared {
    /// Records the messages found in `bytes` (received at one instant).
    fn record(&self, bytes: &[u8], tracker: &mut SeqTracker) -> usize {
        let now = payload::now_micros();
        let mut n = 0u64;
        let Ok(mut h) = self.latency.lock() else {
            return 0;
        };
        let keep = payload::scan(bytes, |seq, sent| {
            tracker.observe(seq);
            h.record(now.saturating_sub(sent));
            n += 1;
        });
        drop(h);
        self.delivered.fetch_add(n, Ordering::Relaxed);
        keep
    }
}

/// What every subscriber of a run connects to, and how.
#[derive(Debug, Clone)]
pub struct Target {
    pub server: ServerArgs,
    pub channel: String,
    pub transport: Transport,
    /// Loopback source addresses to spread subscribers over.
    pub sources: usize,
    /// Poll interval of the `poll` transports.
    pub poll_interval_ms: u64,
    /// Subscribers in the whole run (pollers spread their phase over all of them).
    pub subscribers: usize,
}

impl Target {
    /// The channel's path, `/ch/NAME`.
    pub fn path(&self) -> String {
        format!("/ch/{}", self.channel)
    }
}

/// Subscriber `i` of the run: connects, says `ready`, lets the next one connect
/// (`permit`), then records every message until `stop` or the connection ends.
pub async fn subscriber(
    a: &Target,
    i: usize,
    shared: &Shared,
    mut stop: watch::Receiver<bool>,
    ready: &AtomicU64,
    mut permit: Option<tokio::sync::OwnedSemaphorePermit>,
    counters: &Arc<WireCounters>,
) -> std::io::Result<SeqTracker> {
    let mut t = SeqTracker::default();
    let host = a.server.host();
    let path = a.path();
    let path = path.as_str();
    match a.transport {
        Transport::Ws | Transport::WsDeflate | Transport::WsCompact => {
            let deflate = a.transport == Transport::WsDeflate;
            let offer: &[&str] = if a.transport == Transport::WsCompact {
                &[switchboard_proto::COMPACT_PROTOCOL]
            } else {
                &[]
            };
            let stream = net::connect(a.server.addr, i, a.sources, counters).await?;
            let mut ws =
                common::ws_handshake_offering(stream, &a.server, path, deflate, offer).await?;
            ready.fetch_add(1, Ordering::Relaxed);
            drop(permit.take());
            loop {
                tokio::select! {
                    biased;
                    _ = stop.changed() => break,
                    m = ws.recv() => match m {
                        Some(Ok(Message::Text(b) | Message::Binary(b))) => {
                            shared.record(&b, &mut t);
                        }
                        Some(Ok(_)) => {}
                        Some(Err(_)) | None => break,
                    },
                }
            }
        }
        Transport::Sse | Transport::Stream => {
            let mut http =
                HttpConn::new(net::connect(a.server.addr, i, a.sources, counters).await?);
            if a.transport == Transport::Sse {
                http.get(&host, path, "Accept: text/event-stream\r\n")
                    .await?;
            } else {
                http.get(&host, &format!("{path}?transport=stream"), "")
                    .await?;
            }
            let head = http.read_head().await?;
            if head.status != 200 {
                return Err(std::io::Error::other(format!("status {}", head.status)));
            }
            ready.fetch_add(1, Ordering::Relaxed);
            drop(permit.take());
            let mut body = Vec::with_capacity(4096);
            loop {
                tokio::select! {
                    biased;
                    _ = stop.changed() => break,
                    more = http.read_body(&mut body) => {
                        if !more? { break; }
                        let keep = shared.record(&body, &mut t);
                        body.drain(..keep);
                    }
                }
            }
        }
        Transport::Longpoll
        | Transport::Poll
        | Transport::LongpollCompact
        | Transport::PollCompact => {
            let long = matches!(
                a.transport,
                Transport::Longpoll | Transport::LongpollCompact
            );
            let kind = match a.transport {
                Transport::Longpoll => "longpoll",
                Transport::Poll => "poll",
                Transport::LongpollCompact => "longpoll&format=compact",
                _ => "poll&format=compact",
            };
            let mut http =
                HttpConn::new(net::connect(a.server.addr, i, a.sources, counters).await?);
            let mut cursor: Option<String> = None;
            let mut body = Vec::with_capacity(4096);
            let mut first = true;
            let interval = Duration::from_millis(a.poll_interval_ms);
            // Pollers spread evenly over one interval, as independent clients would be;
            // started together they would all poll in the same instant, phase-locked to
            // the publisher, and every message would wait the same time. The offset is
            // waited before the first poll (the publisher starts once every subscriber has
            // polled, so no message waits an offset on top of the interval), with the
            // connection already open and the setup gate let go.
            if !long {
                drop(permit.take());
                let phase = interval.mul_f64(i as f64 / a.subscribers.max(1) as f64);
                tokio::select! {
                    biased;
                    _ = stop.changed() => return Ok(t),
                    () = tokio::time::sleep(phase) => {}
                }
            }
            loop {
                let asked = Instant::now();
                let url = match &cursor {
                    Some(c) => format!("{path}?transport={kind}&since={c}"),
                    None => format!("{path}?transport={kind}"),
                };
                http.get(&host, &url, "").await?;
                if first && long {
                    // A first long-poll is held until the first message: count it as
                    // ready once sent, and let the next subscriber connect.
                    ready.fetch_add(1, Ordering::Relaxed);
                    drop(permit.take());
                }
                let answer = async {
                    let head = http.read_head().await?;
                    body.clear();
                    http.read_to_end(&mut body).await?;
                    Ok::<_, std::io::Error>(head.status)
                };
                let status = tokio::select! {
                    biased;
                    _ = stop.changed() => break,
                    s = answer => s?,
                };
                if status != 200 {
                    return Err(std::io::Error::other(format!("status {status}")));
                }
                shared.record(&body, &mut t);
                if let Some(c) = net::last_cursor(&body) {
                    cursor = Some(c);
                }
                if first {
                    first = false;
                    if !long {
                        ready.fetch_add(1, Ordering::Relaxed);
                    }
                    drop(permit.take());
                }
                if !long {
                    let wait = interval.saturating_sub(asked.elapsed());
                    tokio::select! {
                        biased;
                        _ = stop.changed() => break,
                        () = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }
    Ok(t)
}
