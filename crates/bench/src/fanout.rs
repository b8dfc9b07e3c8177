//! `fanout`: N subscribers on one channel over a chosen transport, one WebSocket
//! publisher sending R messages per second of S bytes (each carrying its sequence number
//! and send time, see [`crate::payload`]). After the publisher's last message the run
//! waits (at most `--drain` seconds) until every subscriber has everything, then reports
//! deliveries per second and per server-CPU-second, delivery latency p50/p99/max,
//! missing and out-of-order counts, and bytes on the wire per delivered message.
//!
//! Protocol, shared with the baseline servers: subscribers `GET /ch/NAME` (WebSocket, or
//! the compact WebSocket format, SSE / `?transport=stream|longpoll|poll` on Switchboard,
//! long-poll and poll also with `format=compact`); the publisher is a WebSocket
//! client of `/ch/NAME` whose text messages are published to the channel (it receives
//! them too, and discards them: it is not counted as a subscriber), or with
//! `--publisher http` a backend sending `POST /ch/NAME` on one kept-alive connection (a
//! publish counts once answered 200). Deliveries are counted by the payload's marker
//! wherever it sits, so a server that wraps each message in an envelope (Switchboard's
//! JSON) and one that sends the bare payload (the uWebSockets peer) count alike.
//!
//! The subscribers run in the generator's process, or with `--processes N` in N worker
//! processes ([`crate::crowd`]); the publisher always runs here.

use std::ffi::OsString;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::json;
use switchboard_ws_tokio::{Message, WebSocket};
use tokio::sync::watch;

use crate::common::{self, per_cpu_second, r3, CpuWindow, ServerArgs};
use crate::counting::WireCounters;
use crate::crowd::Crowd;
use crate::net::{self, HttpConn, Stream};
use crate::payload;
use crate::process;
use crate::stats::Histogram;
use crate::subscriber::Target;
pub use crate::subscriber::Transport;

/// How the publisher sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PublisherKind {
    /// Text messages on a WebSocket connection to `/ch/NAME`.
    Ws,
    /// `POST /ch/NAME` bodies on one kept-alive HTTP connection.
    Http,
}

/// Options of `fanout`.
#[derive(Debug, Clone, clap::Args)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Subscribers.
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,
    /// Transport of the subscribers.
    #[arg(long, value_enum, default_value_t = Transport::Ws)]
    pub transport: Transport,
    /// Messages per second from the publisher.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// What pads the payload to its size.
    #[arg(long, value_enum, default_value_t = payload::Fill::X)]
    pub fill: payload::Fill,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Most seconds to wait after the last message for deliveries still in flight.
    #[arg(long, default_value_t = 5.0)]
    pub drain: f64,
    /// Channel name.
    #[arg(long, default_value = "bench")]
    pub channel: String,
    /// Poll interval of the `poll` transport, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub poll_interval_ms: u64,
    /// Loopback source addresses to spread subscribers over (127.0.0.1 …).
    #[arg(long, default_value_t = 1)]
    pub sources: usize,
    /// How the publisher sends.
    #[arg(long, value_enum, default_value_t = PublisherKind::Ws)]
    pub publisher: PublisherKind,
    /// Publish through this address instead of `--addr`: another node sharing the
    /// broker (Redis), so every delivery crosses from one node to the other (loopback only).
    #[arg(long)]
    pub publish_addr: Option<std::net::SocketAddr>,
    /// Generator processes for the subscribers (1: in this process). Each has an epoll
    /// instance of its own, as real clients do; the publisher stays in this process.
    #[arg(long, default_value_t = 1)]
    pub processes: usize,
}

impl FanoutArgs {
    /// What the subscribers connect to.
    pub fn target(&self) -> Target {
        Target {
            server: self.server.clone(),
            channel: self.channel.clone(),
            transport: self.transport,
            sources: self.sources,
            poll_interval_ms: self.poll_interval_ms,
            subscribers: self.subscribers,
        }
    }
}

/// The result of one fan-out run, also used by `quantum`.
#[derive(Debug)]
pub struct Outcome {
    pub published: u64,
    pub expected: u64,
    pub delivered: u64,
    pub missing: u64,
    pub out_of_order: u64,
    pub failed: u64,
    /// Publishes the server refused or left unanswered (`--publisher http`).
    pub publish_failed: u64,
    pub wall: f64,
    pub cpu: Option<f64>,
    pub latency: Histogram,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub setup_bytes: u64,
    /// The server's (read, write) system calls in the window.
    pub server_syscalls: Option<(u64, u64)>,
    /// TCP segments the server's sockets on the subscribers' port sent in the window.
    pub server_segments: Option<u64>,
}

/// Runs `fanout` and prints its JSON line. `self_cmd` starts this generator again (program
/// and leading arguments), for `--processes`.
pub fn run(args: FanoutArgs, self_cmd: &[OsString]) -> std::io::Result<()> {
    let o = run_once(&args, self_cmd)?;
    common::emit(&outcome_json(&args, &o));
    Ok(())
}

/// One measured run: starts the server when `--server-cmd` names one, measures on a
/// runtime of its own, and stops the server again (`quantum` and `curve` run many).
pub fn run_once(args: &FanoutArgs, self_cmd: &[OsString]) -> std::io::Result<Outcome> {
    let server = args.server.open()?;
    let rt = args.server.runtime()?;
    rt.block_on(measure(args, server.as_ref(), self_cmd))
}

/// The JSON report of one run.
pub fn outcome_json(args: &FanoutArgs, o: &Outcome) -> serde_json::Value {
    let d = o.delivered.max(1) as f64;
    json!({
        "mode": "fanout",
        "server": args.server.label,
        "transport": args.transport.name(),
        "publisher": args.publisher,
        "publish_addr": args.publish_addr.map(|a| a.to_string()),
        "subscribers": args.subscribers,
        "generator_processes": args.processes.max(1),
        "rate": args.rate,
        "size": args.size,
        "fill": args.fill,
        "published": o.published,
        "expected": o.expected,
        "delivered": o.delivered,
        "missing": o.missing,
        "out_of_order": o.out_of_order,
        "failed_subscribers": o.failed,
        "failed_publishes": o.publish_failed,
        "seconds": r3(o.wall),
        "delivered_per_s": r3(o.delivered as f64 / o.wall),
        "server_cpu_s": o.cpu.map(r3),
        "deliveries_per_server_cpu_s": per_cpu_second(o.delivered as f64, o.cpu).map(r3),
        "server_cpu_us_per_delivery": o.cpu.map(|c| r3(c * 1e6 / d)),
        "latency_us": {"count": o.latency.count(), "p50": o.latency.quantile(0.5), "p99": o.latency.quantile(0.99), "p999": o.latency.quantile(0.999), "max": o.latency.max(), "mean": r3(o.latency.mean())},
        "wire_bytes_per_delivery": {"read": r3(o.bytes_read as f64 / d), "written": r3(o.bytes_written as f64 / d)},
        "setup_bytes_per_subscriber": r3(o.setup_bytes as f64 / args.subscribers.max(1) as f64),
        "server_syscalls": o.server_syscalls.map(|(r, w)| json!({"read": r, "write": w})),
        // Each small write with TCP_NODELAY leaves as one segment: what a server does per
        // write, whichever call it writes with (`syscw` misses `send`).
        "server_tcp_segments_out": o.server_segments,
        "deliveries_per_server_segment": o.server_segments.and_then(|n| (n > 0).then(|| r3(o.delivered as f64 / n as f64))),
    })
}

/// Connects, publishes, drains and measures.
pub async fn measure(
    args: &FanoutArgs,
    server: Option<&crate::process::ServerProcess>,
    self_cmd: &[OsString],
) -> std::io::Result<Outcome> {
    let counters = Arc::new(WireCounters::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let target = args.target();
    let path = target.path();

    // Subscribers first, all of them ready before the first message.
    let crowd = Crowd::start(&target, args.processes, self_cmd, &counters, &stop_rx).await?;
    // Long-polls cannot say when the server holds them; give the last ones a moment.
    if matches!(
        args.transport,
        Transport::Longpoll | Transport::LongpollCompact
    ) {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let on_wire = || {
        let (r, w) = crowd.worker_bytes();
        (counters.read() + r, counters.written() + w)
    };
    let setup_bytes = {
        let (r, w) = on_wire();
        r + w
    };

    let mut publish_to = args.server.clone();
    if let Some(addr) = args.publish_addr {
        net::check_loopback(addr)?;
        publish_to.addr = addr;
    }
    let total = (args.rate * args.duration).round().max(1.0) as u64;
    let plan = Plan {
        rate: args.rate,
        total,
        size: args.size,
        fill: args.fill,
        host: publish_to.host(),
        path: path.clone(),
    };
    let published = Arc::new(AtomicU64::new(0));
    let publish_failed = Arc::new(AtomicU64::new(0));
    let (connected, go, publisher_thread) = spawn_publisher(
        args.publisher,
        publish_to,
        plan,
        &counters,
        &published,
        &publish_failed,
        &stop_rx,
    );
    let go = match connected.await {
        Ok(Ok(())) => go,
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err(std::io::Error::other("the publisher thread ended")),
    };
    let before = on_wire();
    let segments_before = process::tcp_segments_out(args.server.addr.port());
    let window = CpuWindow::start(server);
    let delivered = crowd.delivered_counter();
    let progress = common::progress(format!("fanout {}", args.transport.name()), move || {
        format!("delivered {}", delivered())
    });
    let _ = go.send(());
    // Publishing, then draining.
    let expected = total * args.subscribers as u64;
    let pub_end = Instant::now() + Duration::from_secs_f64(args.duration + 2.0);
    let mut drain_end: Option<Instant> = None;
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = Instant::now();
        if crowd.delivered() >= expected {
            break;
        }
        let sent = published.load(Ordering::Relaxed);
        match drain_end {
            None if sent >= total || now > pub_end => {
                drain_end = Some(now + Duration::from_secs_f64(args.drain));
            }
            Some(end) if now > end => break,
            _ => {}
        }
    }
    let (wall, cpu) = window.end(server);
    let server_syscalls = window.syscalls(server);
    let server_segments = segments_before
        .and_then(|a| Some(process::tcp_segments_out(args.server.addr.port())?.saturating_sub(a)));
    let after = on_wire();
    let bytes = (after.0 - before.0, after.1 - before.1);
    progress.abort();
    let _ = stop_tx.send(true);
    let sent = published.load(Ordering::Relaxed);
    let tally = crowd.finish(sent).await;
    // The publisher's thread ends at `stop` (after the publish in flight): give it as
    // long as a run's last publish may take, so the next run starts without it.
    let joined = Instant::now() + Duration::from_secs(5);
    while !publisher_thread.is_finished() && Instant::now() < joined {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(Outcome {
        published: sent,
        expected: sent * args.subscribers as u64,
        delivered: tally.delivered,
        missing: tally.missing,
        out_of_order: tally.out_of_order,
        failed: tally.failed,
        publish_failed: publish_failed.load(Ordering::Relaxed),
        wall,
        cpu,
        latency: tally.latency,
        bytes_read: bytes.0,
        bytes_written: bytes.1,
        setup_bytes,
        server_syscalls,
        server_segments,
    })
}

/// Starts the publisher on a thread and runtime of its own: its ticks then wait for the
/// OS scheduler, not behind thousands of subscriber reads in this runtime's queue, so
/// the planned rate holds while the subscribers are busy (with one shared runtime, a
/// server that wrote in small batches slowed the generator's reads and so its
/// publisher, and a run settled at 60 % of the rate or at all of it by chance).
/// The first receiver says whether it connected; sending on the second starts it; the
/// handle says when the thread is over.
fn spawn_publisher(
    kind: PublisherKind,
    to: ServerArgs,
    plan: Plan,
    counters: &Arc<WireCounters>,
    published: &Arc<AtomicU64>,
    failed: &Arc<AtomicU64>,
    stop: &watch::Receiver<bool>,
) -> (
    tokio::sync::oneshot::Receiver<std::io::Result<()>>,
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<()>,
) {
    let (connected_tx, connected_rx) = tokio::sync::oneshot::channel();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let (counters, published, failed, stop) = (
        counters.clone(),
        published.clone(),
        failed.clone(),
        stop.clone(),
    );
    let thread = std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                let _ = connected_tx.send(Err(e));
                return;
            }
        };
        rt.block_on(async move {
            let publisher = match kind {
                PublisherKind::Ws => common::ws_connect(&to, &plan.path, false, 0, 1, &counters)
                    .await
                    .map(Publisher::Ws),
                PublisherKind::Http => net::connect(to.addr, 0, 1, &counters)
                    .await
                    .map(|c| Publisher::Http(HttpConn::new(c))),
            };
            let publisher = match publisher {
                Ok(p) => p,
                Err(e) => {
                    let _ = connected_tx.send(Err(e));
                    return;
                }
            };
            let _ = connected_tx.send(Ok(()));
            if go_rx.await.is_ok() {
                publish(publisher, plan, published, failed, stop).await;
            }
        });
    });
    (connected_rx, go_tx, thread)
}

/// The publisher's connection.
enum Publisher {
    Ws(WebSocket<Stream>),
    Http(HttpConn),
}

/// What the publisher sends: `total` messages of `size` bytes at `rate` per second to
/// `path`.
struct Plan {
    rate: f64,
    total: u64,
    size: usize,
    fill: payload::Fill,
    host: String,
    path: String,
}

impl Publisher {
    /// Sends one message; `Ok(false)` when an HTTP publish was answered other than 200.
    async fn send(&mut self, plan: &Plan, body: String) -> std::io::Result<bool> {
        match self {
            Self::Ws(ws) => ws
                .send(Message::Text(Bytes::from(body)))
                .await
                .map(|()| true)
                .map_err(|e| std::io::Error::other(e.to_string())),
            Self::Http(http) => {
                http.post(
                    &plan.host,
                    &plan.path,
                    "Content-Type: text/plain\r\n",
                    body.as_bytes(),
                )
                .await?;
                let head = http.read_head().await?;
                let mut answer = Vec::new();
                http.read_to_end(&mut answer).await?;
                Ok(head.status == 200)
            }
        }
    }

    /// Waits for what the server sends unasked (a WebSocket publisher's own messages,
    /// dropped); `false` once the connection is gone. An HTTP publisher hears nothing.
    async fn idle(&mut self) -> bool {
        match self {
            Self::Ws(ws) => ws.recv().await.is_some(),
            Self::Http(_) => std::future::pending().await,
        }
    }
}

/// Sends `plan.total` messages at `plan.rate` per second, counting those sent (and, over
/// HTTP, those refused), until `stop`.
async fn publish(
    mut publisher: Publisher,
    plan: Plan,
    published: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) {
    let start = Instant::now();
    let period = Duration::from_secs_f64((1.0 / plan.rate).max(0.001));
    let mut tick = tokio::time::interval(period);
    let mut sent = 0u64;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tick.tick(), if sent < plan.total => {
                let due = ((start.elapsed().as_secs_f64() * plan.rate) as u64 + 1).min(plan.total);
                while sent < due {
                    let p = payload::encode_filled(sent, payload::now_micros(), plan.size, plan.fill);
                    match publisher.send(&plan, p).await {
                        Ok(true) => {}
                        // A refused publish keeps its sequence number: subscribers then
                        // count it missing, as they would a lost one.
                        Ok(false) => { failed.fetch_add(1, Ordering::Relaxed); }
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                    }
                    sent += 1;
                    published.store(sent, Ordering::Relaxed);
                }
            }
            alive = publisher.idle() => if !alive { break },
        }
    }
}
