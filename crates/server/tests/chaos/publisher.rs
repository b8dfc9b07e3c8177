//! The publisher: one task per channel posting `{"ch": NAME, "seq": N}` with
//! `POST /ch/NAME` at a steady rate, each message with its own `Idempotency-Key`, retried
//! with the same key until the server answers 200. It speaks raw HTTP/1.1 on a fresh
//! connection per attempt so it can cut its own requests (half the body sent, the whole
//! request sent but the answer never read, only the answer's first bytes read; each
//! ended with a reset). Everything it did is written down in a [`Record`] per channel: when each
//! attempt started and which cursor the server acknowledged for which `seq`, when.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use switchboard_client::Cursor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// One acknowledged publish.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ack {
    pub(crate) seq: u64,
    pub(crate) cursor: Cursor,
    pub(crate) acked_at: Instant,
}

/// What the publisher did on one channel.
#[derive(Debug, Default)]
pub(crate) struct Record {
    /// When every attempt started (before it connected), in order.
    pub(crate) attempts: Vec<Instant>,
    /// Every acknowledged publish, in order.
    pub(crate) acks: Vec<Ack>,
}

/// How an attempt cuts itself short.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SelfCut {
    None,
    HalfBody,
    BeforeAnswer,
    MidAnswer,
}

/// Counts for the report.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub(crate) acked: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) cut_half_body: AtomicU64,
    pub(crate) cut_before_answer: AtomicU64,
    pub(crate) cut_mid_answer: AtomicU64,
    pub(crate) gave_up: AtomicU64,
    /// The slowest acknowledged attempt, in microseconds.
    pub(crate) slowest_us: AtomicU64,
}

/// How far a publisher got.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Progress {
    /// Messages acknowledged so far.
    pub(crate) acked: u64,
    /// It stopped: no more will come.
    pub(crate) done: bool,
}

/// The publisher of one channel.
#[derive(Debug, Clone)]
pub(crate) struct Publisher {
    pub(crate) server: SocketAddr,
    pub(crate) channel: String,
    /// Chance that an attempt cuts itself short (0 for no cuts).
    pub(crate) cut_chance: f64,
    pub(crate) record: Arc<Mutex<Record>>,
    /// How far it got (subscribers staying away wait on it).
    pub(crate) progress: Arc<watch::Sender<Progress>>,
    pub(crate) counts: Arc<Counts>,
}

/// An attempt that did not end in a 200 answer.
struct Failed;

impl Publisher {
    /// Publishes `seq`, retrying with the same key until acknowledged (given up after
    /// `patience`). Returns its cursor.
    pub(crate) async fn publish(&self, seq: u64, patience: Duration) -> Option<Cursor> {
        let key = format!("chaos-{}-{seq}", self.channel);
        let body = format!("{{\"ch\":\"{}\",\"seq\":{seq}}}", self.channel);
        let give_up = Instant::now() + patience;
        let mut first = true;
        while Instant::now() < give_up {
            if !first {
                self.counts.retries.fetch_add(1, Ordering::Relaxed);
            }
            first = false;
            let cut = self.pick_cut();
            let started = Instant::now();
            self.record.lock().unwrap().attempts.push(started);
            let attempt = self.attempt(&key, &body, cut);
            match tokio::time::timeout(Duration::from_secs(5), attempt).await {
                Ok(Ok(cursor)) => {
                    let acked_at = Instant::now();
                    let us = u64::try_from((acked_at - started).as_micros()).unwrap_or(u64::MAX);
                    self.counts.slowest_us.fetch_max(us, Ordering::Relaxed);
                    self.record.lock().unwrap().acks.push(Ack {
                        seq,
                        cursor,
                        acked_at,
                    });
                    self.counts.acked.fetch_add(1, Ordering::Relaxed);
                    self.progress.send_modify(|p| p.acked += 1);
                    return Some(cursor);
                }
                Ok(Err(Failed)) | Err(_) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        self.counts.gave_up.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// Publishes `seq` = 1, 2, ... every `period` until `stop`; the message in flight
    /// when `stop` comes is still finished.
    pub(crate) async fn run(self, period: Duration, stop: watch::Receiver<bool>) {
        self.publish_until(period, stop).await;
        self.progress.send_modify(|p| p.done = true);
    }

    async fn publish_until(&self, period: Duration, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seq = 1;
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tick.tick() => {}
            }
            if *stop.borrow() {
                return;
            }
            self.publish(seq, Duration::from_secs(20)).await;
            seq += 1;
        }
    }

    fn pick_cut(&self) -> SelfCut {
        let mut rng = rand::rng();
        if self.cut_chance <= 0.0 || !rng.random_bool(self.cut_chance) {
            return SelfCut::None;
        }
        let (cut, counter) = match rng.random_range(0..3) {
            0 => (SelfCut::HalfBody, &self.counts.cut_half_body),
            1 => (SelfCut::BeforeAnswer, &self.counts.cut_before_answer),
            _ => (SelfCut::MidAnswer, &self.counts.cut_mid_answer),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        cut
    }

    async fn attempt(&self, key: &str, body: &str, cut: SelfCut) -> Result<Cursor, Failed> {
        let mut s = TcpStream::connect(self.server).await.map_err(|_| Failed)?;
        let _ = s.set_nodelay(true);
        let head = format!(
            "POST /ch/{} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nIdempotency-Key: {key}\r\nConnection: close\r\n\r\n",
            self.channel,
            self.server,
            body.len()
        );
        let mut request = head.into_bytes();
        request.extend_from_slice(body.as_bytes());
        if cut == SelfCut::HalfBody {
            let end = request.len() - body.len() / 2;
            let _ = s.write_all(&request[..end]).await;
            return reset(s);
        }
        s.write_all(&request).await.map_err(|_| Failed)?;
        if cut == SelfCut::BeforeAnswer {
            // Sometimes before the server read the request, sometimes after it answered.
            let wait = rand::rng().random_range(0..4);
            tokio::time::sleep(Duration::from_millis(wait)).await;
            return reset(s);
        }
        if cut == SelfCut::MidAnswer {
            let mut some = [0u8; 8];
            let _ = s.read(&mut some).await;
            return reset(s);
        }
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).await.map_err(|_| Failed)?;
        parse_answer(&answer).ok_or(Failed)
    }
}

fn reset(s: TcpStream) -> Result<Cursor, Failed> {
    let _ = s.set_zero_linger();
    Err(Failed)
}

/// The cursor of a `200 {"channel", "cursor"}` answer (`Connection: close`, so the body
/// is everything after the head).
fn parse_answer(answer: &[u8]) -> Option<Cursor> {
    let end = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&answer[..end]).ok()?;
    if !head.starts_with("HTTP/1.1 200 ") {
        return None;
    }
    let body = &answer[end + 4..];
    #[derive(serde::Deserialize)]
    struct Published {
        cursor: Cursor,
    }
    // A chunked body would need de-chunking; the server answers with a length.
    serde_json::from_slice::<Published>(body)
        .ok()
        .map(|p| p.cursor)
}
