//! `echo`: C WebSocket connections each keep W messages of S bytes in flight against an
//! echo endpoint; every echoed message is answered with a new one. Reports messages per
//! second (and per server-CPU-second) and the round-trip time p50/p99/p999.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::json;
use switchboard_ws_tokio::Message;

use crate::common::{self, per_cpu_second, r3, CpuWindow, ServerArgs};
use crate::counting::WireCounters;
use crate::payload;
use crate::stats::Histogram;

/// Options of `echo`.
#[derive(Debug, Clone, clap::Args)]
pub struct EchoArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Connections.
    #[arg(long, default_value_t = 100)]
    pub connections: usize,
    /// Message size in bytes.
    #[arg(long, default_value_t = 32)]
    pub size: usize,
    /// Messages in flight per connection.
    #[arg(long, default_value_t = 1)]
    pub window: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Path of the echo endpoint.
    #[arg(long, default_value = "/echo")]
    pub path: String,
}

#[derive(Debug, Default)]
struct Shared {
    echoed: AtomicU64,
    stop: AtomicBool,
    rtt: Mutex<Histogram>,
}

/// Runs `echo` and prints its JSON line.
pub fn run(args: EchoArgs) -> std::io::Result<()> {
    let server = args.server.open()?;
    let rt = args.server.runtime()?;
    rt.block_on(async {
        let shared = Arc::new(Shared::default());
        let counters = Arc::new(WireCounters::default());
        let mut conns = Vec::with_capacity(args.connections);
        for i in 0..args.connections {
            conns.push(common::ws_connect(&args.server, &args.path, false, i, 1, &counters).await?);
        }
        let before = (counters.read(), counters.written());
        let window = CpuWindow::start(server.as_ref());
        let mut tasks = Vec::new();
        for mut ws in conns {
            let shared = shared.clone();
            let (size, w) = (args.size, args.window.max(1));
            tasks.push(tokio::spawn(async move {
                let mut seq = 0u64;
                for _ in 0..w {
                    let p = payload::encode(seq, payload::now_micros(), size);
                    seq += 1;
                    ws.send(Message::Text(Bytes::from(p))).await.ok()?;
                }
                let mut local = Histogram::new();
                while let Some(Ok(m)) = ws.recv().await {
                    let (Message::Text(b) | Message::Binary(b)) = m else { continue };
                    let now = payload::now_micros();
                    payload::scan(&b, |_, sent| local.record(now.saturating_sub(sent)));
                    shared.echoed.fetch_add(1, Ordering::Relaxed);
                    if shared.stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let p = payload::encode(seq, payload::now_micros(), size);
                    seq += 1;
                    if ws.send(Message::Text(Bytes::from(p))).await.is_err() {
                        break;
                    }
                }
                if let Ok(mut h) = shared.rtt.lock() {
                    h.merge(&local);
                }
                Some(())
            }));
        }
        let s2 = shared.clone();
        let progress = common::progress("echo".into(), move || {
            format!("echoed {}", s2.echoed.load(Ordering::Relaxed))
        });
        tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
        let echoed_at_end = shared.echoed.load(Ordering::Relaxed);
        let (wall, cpu) = window.end(server.as_ref());
        let bytes = (counters.read() - before.0, counters.written() - before.1);
        shared.stop.store(true, Ordering::Relaxed);
        progress.abort();
        let deadline = Instant::now() + Duration::from_secs(5);
        for t in tasks {
            let left = deadline.saturating_duration_since(Instant::now());
            let _ = tokio::time::timeout(left, t).await;
        }
        let h = shared.rtt.lock().map(|h| h.clone()).unwrap_or_default();
        let count = echoed_at_end as f64;
        common::emit(&json!({
            "mode": "echo",
            "server": args.server.label,
            "connections": args.connections,
            "size": args.size,
            "window": args.window,
            "seconds": r3(wall),
            "echoed": echoed_at_end,
            "msgs_per_s": r3(count / wall),
            "server_cpu_s": cpu.map(r3),
            "msgs_per_server_cpu_s": per_cpu_second(count, cpu).map(r3),
            "rtt_us": {"p50": h.quantile(0.5), "p99": h.quantile(0.99), "p999": h.quantile(0.999), "max": h.max()},
            "wire_bytes_per_msg": {"read": r3(bytes.0 as f64 / count.max(1.0)), "written": r3(bytes.1 as f64 / count.max(1.0))},
        }));
        Ok::<_, std::io::Error>(())
    })
}
