//! The publisher: the application's backend, sending `rate` messages a second to one
//! channel with `POST /ch/NAME` on one kept-alive connection. Every attempt carries a
//! fresh sequence number and its send time ([`crate::payload`]); a publish is counted
//! only once the server acknowledged it with its cursor, so one cut by the restart is
//! never expected by the check (a subscriber that got it anyway has one message more).
//! While paused (the server is being restarted) it sends nothing; after a failure it
//! reconnects at the next tick, or once the server's `Retry-After` passed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchboard_proto::Cursor;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use super::backoff;
use crate::counting::WireCounters;
use crate::net::{self, HttpConn};
use crate::payload;

/// What the publisher did.
#[derive(Debug, Default)]
pub(super) struct Record {
    /// Acknowledged publishes: sequence number and cursor, in order.
    pub(super) acks: Vec<(u64, Cursor)>,
    /// Failed attempts by kind.
    pub(super) failed: BTreeMap<String, u64>,
    /// Connections opened.
    pub(super) connects: u64,
    /// Each acknowledged publish's round trip (µs): (send time, round trip).
    pub(super) round_trips: Vec<(u64, u64)>,
}

/// One channel's publisher.
#[derive(Debug, Clone)]
pub(super) struct Publisher {
    pub(super) addr: SocketAddr,
    pub(super) channel: String,
    pub(super) rate: f64,
    pub(super) size: usize,
    pub(super) record: Arc<Mutex<Record>>,
    pub(super) counters: Arc<WireCounters>,
}

impl Publisher {
    /// Acknowledged publishes so far.
    pub(super) fn acked(&self) -> usize {
        self.lock().acks.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Record> {
        super::lock(&self.record)
    }

    /// Publishes until `stop`, holding off while `paused`.
    pub(super) async fn run(
        self,
        mut paused: watch::Receiver<bool>,
        mut stop: watch::Receiver<bool>,
    ) {
        let host = self.addr.to_string();
        let path = format!("/ch/{}", self.channel);
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / self.rate.max(0.01)));
        // A publisher held up (the server busy or gone) goes on at its rate, no burst.
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut conn: Option<HttpConn> = None;
        let mut seq = 0u64;
        loop {
            tokio::select! {
                biased;
                _ = stop.changed() => return,
                _ = tick.tick() => {}
            }
            if *paused.borrow() {
                conn = None;
                tokio::select! {
                    biased;
                    _ = stop.changed() => return,
                    _ = paused.wait_for(|p| !*p) => {}
                }
                tick.reset();
                continue;
            }
            let c = match conn.as_mut() {
                Some(c) => c,
                None => match net::connect(self.addr, 0, 1, &self.counters).await {
                    Ok(s) => {
                        self.lock().connects += 1;
                        conn.insert(HttpConn::new(s))
                    }
                    Err(e) => {
                        self.failed(if e.kind() == std::io::ErrorKind::ConnectionRefused {
                            "tcp_refused"
                        } else {
                            "tcp_error"
                        });
                        continue;
                    }
                },
            };
            let sent = payload::now_micros();
            let body = payload::encode(seq, sent, self.size);
            seq += 1;
            match publish(c, &host, &path, body.as_bytes()).await {
                Ok(Ok(cursor)) => {
                    let mut r = self.lock();
                    r.acks.push((seq - 1, cursor));
                    r.round_trips
                        .push((sent, payload::now_micros().saturating_sub(sent)));
                }
                Ok(Err((status, hint))) => {
                    self.failed(&format!("http_{status}"));
                    conn = None;
                    if let Some(wait) = hint {
                        tokio::select! {
                            biased;
                            _ = stop.changed() => return,
                            () = tokio::time::sleep(wait) => {}
                        }
                    }
                }
                Err(_) => {
                    self.failed("io_error");
                    conn = None;
                }
            }
        }
    }

    fn failed(&self, kind: &str) {
        *self.lock().failed.entry(kind.to_owned()).or_default() += 1;
    }
}

/// One publish: its cursor, or the status and `Retry-After` it was refused with.
async fn publish(
    c: &mut HttpConn,
    host: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<Result<Cursor, (u16, Option<Duration>)>> {
    c.post(host, path, "Content-Type: text/plain\r\n", body)
        .await?;
    let head = c.read_head().await?;
    let mut answer = Vec::new();
    c.read_to_end(&mut answer).await?;
    let cursor = net::last_cursor(&answer).and_then(|s| s.parse().ok());
    Ok(match (head.status, cursor) {
        (200, Some(cursor)) => Ok(cursor),
        (status, _) => Err((
            status,
            head.retry_after.as_deref().and_then(backoff::retry_after),
        )),
    })
}
