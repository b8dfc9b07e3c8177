//! `storm`: N subscribers (WebSocket or SSE) connecting within a short window, as after
//! a server restart or a network blip: how long each waits for its TCP handshake, and for
//! its subscription's answer (`101` or the SSE response head). A handshake that takes a
//! second or more had its SYN dropped because the server's listen queue was full, and
//! resent by the client's kernel: no answer the server chooses (a 503, a retry hint)
//! reaches that client. The share of such clients is the figure to compare between
//! listen backlogs (`limits.listen_backlog`).
//!
//! Attempts start evenly spread over `--over-ms` (0: all at once), from `--sources`
//! loopback addresses; every connection is held open until the last attempt ended, so
//! later ones meet a server that still holds the earlier ones.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use switchboard_ws_tokio::ClientConfig;

use crate::common::{self, r3, CpuWindow, ServerArgs};
use crate::counting::WireCounters;
use crate::net::{self, HttpConn};
use crate::stats::Histogram;

/// What each client opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StormKind {
    Ws,
    Sse,
}

/// Options of `storm`.
#[derive(Debug, Clone, clap::Args)]
pub struct StormArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Clients in the storm.
    #[arg(long, default_value_t = 10_000)]
    pub connections: usize,
    /// Milliseconds over which the attempts start, evenly spread (0: all at once).
    #[arg(long, default_value_t = 1000)]
    pub over_ms: u64,
    /// Loopback source addresses (127.0.0.1 …) to spread connections over.
    #[arg(long, default_value_t = 4)]
    pub sources: usize,
    /// Connection kind.
    #[arg(long, value_enum, default_value_t = StormKind::Ws)]
    pub kind: StormKind,
    /// Channel the clients subscribe to (`/ch/NAME`).
    #[arg(long, default_value = "storm")]
    pub channel: String,
    /// Seconds an attempt may take before it counts as failed.
    #[arg(long, default_value_t = 15.0)]
    pub timeout: f64,
}

/// One client's outcome: microseconds to the TCP handshake and to the subscription's
/// answer, or why it failed.
type Outcome = Result<(u64, u64), String>;

/// A held connection (kept open until every attempt ended).
type Held = Box<dyn Send>;

/// Handshakes at least this long were a resent SYN (Linux resends after one second).
const RESENT: Duration = Duration::from_millis(900);

async fn attempt(args: &StormArgs, i: usize, counters: &Arc<WireCounters>) -> (Outcome, Held) {
    let started = Instant::now();
    let stream = match net::connect(args.server.addr, i, args.sources, counters).await {
        Ok(s) => s,
        Err(e) => return (Err(format!("connect: {e}")), Box::new(())),
    };
    let tcp = micros(started.elapsed());
    let path = format!("/ch/{}", args.channel);
    match args.kind {
        StormKind::Ws => {
            let mut config = ClientConfig::default();
            config.connection.ping_interval = None;
            config.connection.idle_timeout = None;
            match switchboard_ws_tokio::connect(stream, &args.server.host(), &path, &config).await {
                Ok((ws, _)) => (Ok((tcp, micros(started.elapsed()))), Box::new(ws)),
                Err(e) => (Err(format!("upgrade: {e}")), Box::new(())),
            }
        }
        StormKind::Sse => {
            let mut conn = HttpConn::new(stream);
            let head = async {
                conn.get(&args.server.host(), &path, "Accept: text/event-stream\r\n")
                    .await?;
                conn.read_head().await
            };
            match head.await {
                Ok(h) if h.status == 200 => (Ok((tcp, micros(started.elapsed()))), Box::new(conn)),
                Ok(h) => (Err(format!("status {}", h.status)), Box::new(())),
                Err(e) => (Err(format!("sse: {e}")), Box::new(())),
            }
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn ms(us: u64) -> f64 {
    r3(us as f64 / 1000.0)
}

/// Runs the storm and prints its JSON line.
pub fn run(args: StormArgs) -> std::io::Result<()> {
    let mut server = args.server.open()?;
    let rt = args.server.runtime()?;
    let counters = Arc::new(WireCounters::default());
    let window = CpuWindow::start(server.as_ref());
    let args = Arc::new(args);
    let outcomes: Vec<Outcome> = rt.block_on(async {
        let start = tokio::time::Instant::now();
        let n = args.connections.max(1);
        let limit = Duration::from_secs_f64(args.timeout);
        let mut tasks = Vec::with_capacity(n);
        for i in 0..n {
            let at = start + Duration::from_millis(args.over_ms) * (i as u32) / (n as u32);
            let (args, counters) = (args.clone(), counters.clone());
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep_until(at).await;
                match tokio::time::timeout(limit, attempt(&args, i, &counters)).await {
                    Ok(r) => r,
                    Err(_) => (Err("timed out".into()), Box::new(()) as Held),
                }
            }));
        }
        let mut held = Vec::with_capacity(n);
        let mut outcomes = Vec::with_capacity(n);
        for t in tasks {
            let (outcome, conn) = t
                .await
                .unwrap_or_else(|e| (Err(format!("task: {e}")), Box::new(())));
            outcomes.push(outcome);
            held.push(conn);
        }
        drop(held);
        outcomes
    });
    let (wall, cpu) = window.end(server.as_ref());
    let (mut tcp, mut ready) = (Histogram::new(), Histogram::new());
    let mut errors: std::collections::BTreeMap<String, u64> = Default::default();
    for o in &outcomes {
        match o {
            Ok((t, r)) => {
                tcp.record(*t);
                ready.record(*r);
            }
            Err(e) => *errors.entry(e.clone()).or_default() += 1,
        }
    }
    let resent = outcomes
        .iter()
        .filter(|o| matches!(o, Ok((t, _)) if *t >= micros(RESENT)))
        .count();
    let total = outcomes.len();
    let report = json!({
        "mode": "storm",
        "server": args.server.label,
        "kind": format!("{:?}", args.kind).to_lowercase(),
        "connections": total,
        "over_ms": args.over_ms,
        "connected": tcp.count(),
        "failed": total as u64 - tcp.count(),
        "errors": errors,
        "resent_syn": resent,
        "resent_syn_pct": r3(100.0 * resent as f64 / total.max(1) as f64),
        "tcp_ms": { "p50": ms(tcp.quantile(0.5)), "p99": ms(tcp.quantile(0.99)), "max": ms(tcp.max()) },
        "ready_ms": { "p50": ms(ready.quantile(0.5)), "p99": ms(ready.quantile(0.99)), "max": ms(ready.max()) },
        "wall_s": r3(wall),
        "server_cpu_s": cpu.map(r3),
    });
    common::emit(&report);
    if let Some(s) = server.as_mut() {
        s.stop();
    }
    Ok(())
}
