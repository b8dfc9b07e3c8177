//! `idle`: N idle connections (WebSocket or SSE subscribers), spread over several
//! generator processes (every process here is capped at 20,000 open files) and several
//! 127.0.0.x source addresses (bind-before-connect, one ephemeral-port range each). The
//! server's resident memory is read before and after; the difference per connection is
//! the figure. Server CPU while the connections sit idle (heartbeats, timers) is measured
//! over `--hold` seconds.
//!
//! The parent spawns itself as `idle-worker` children; each connects its share, prints
//! `ready OK FAILED` on stdout, and holds its connections until its stdin closes (or a
//! safety deadline passes).

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use switchboard_ws_tokio::Message;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Semaphore;

use crate::common::{self, per_cpu_second, r3, CpuWindow, ServerArgs};
use crate::counting::WireCounters;
use crate::net::{self, HttpConn};
use crate::process;

/// Idle connection kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IdleKind {
    Ws,
    Sse,
}

impl IdleKind {
    fn name(self) -> &'static str {
        match self {
            Self::Ws => "ws",
            Self::Sse => "sse",
        }
    }
}

/// Options of `idle`.
#[derive(Debug, Clone, clap::Args)]
pub struct IdleArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Idle connections in total.
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// Most connections per generator process (the open-file cap is 20,000).
    #[arg(long, default_value_t = 9000)]
    pub per_process: usize,
    /// Loopback source addresses (127.0.0.1 …) to spread connections over.
    #[arg(long, default_value_t = 4)]
    pub sources: usize,
    /// Connection kind.
    #[arg(long, value_enum, default_value_t = IdleKind::Ws)]
    pub kind: IdleKind,
    /// Seconds to hold the connections idle while measuring server CPU.
    #[arg(long, default_value_t = 10.0)]
    pub hold: f64,
    /// Channel the connections subscribe to (`/ch/NAME`).
    #[arg(long, default_value = "idle")]
    pub channel: String,
    /// Connect over TLS (wss://, https://), trusting the CA certificates in this PEM file
    /// (the server's certificate must name the `--addr` IP).
    #[cfg(feature = "tls")]
    #[arg(long)]
    pub tls_ca: Option<std::path::PathBuf>,
}

/// Machine-wide kernel memory that grows with TCP connections: slab objects (sockets,
/// files, epoll items, dentries) and pages charged to TCP socket buffers. Other work on
/// the machine moves these too, so the per-socket figure is an estimate.
#[derive(Debug, Clone, Copy, serde::Serialize)]
struct KernelMemory {
    slab_kib: u64,
    tcp_buffer_pages: u64,
}

impl KernelMemory {
    fn read() -> Option<Self> {
        let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
        let slab_kib = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("Slab:"))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        let tcp_buffer_pages = crate::process::sockstat_tcp("mem")?;
        Some(KernelMemory {
            slab_kib,
            tcp_buffer_pages,
        })
    }

    fn delta_bytes(self, before: Self) -> f64 {
        let slab = self.slab_kib as f64 - before.slab_kib as f64;
        let pages = self.tcp_buffer_pages as f64 - before.tcp_buffer_pages as f64;
        slab * 1024.0 + pages * 4096.0
    }
}

/// Options of the hidden `idle-worker` child.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[arg(long)]
    pub connections: usize,
    /// Index of this worker's first connection (spreads source addresses).
    #[arg(long, default_value_t = 0)]
    pub first: usize,
    #[arg(long, default_value_t = 4)]
    pub sources: usize,
    #[arg(long, value_enum, default_value_t = IdleKind::Ws)]
    pub kind: IdleKind,
    #[arg(long, default_value = "idle")]
    pub channel: String,
    #[cfg(feature = "tls")]
    #[arg(long)]
    pub tls_ca: Option<std::path::PathBuf>,
    /// Safety bound: exit after this many seconds even if stdin stays open.
    #[arg(long, default_value_t = 600.0)]
    pub max_seconds: f64,
}

/// Runs `idle` (the parent) and prints its JSON line. `self_cmd` re-invokes this
/// generator (program and leading arguments).
pub fn run(args: IdleArgs, self_cmd: &[OsString]) -> std::io::Result<()> {
    let server = args.server.open()?;
    let rss_before = server.as_ref().and_then(|s| s.rss_kib().ok());
    let kernel_before = KernelMemory::read();
    let started = Instant::now();
    let mut children: Vec<Child> = Vec::new();
    let mut ok = 0u64;
    let mut failed = 0u64;
    let result = (|| {
        let (program, lead) = self_cmd
            .split_first()
            .ok_or_else(|| std::io::Error::other("no program to re-invoke"))?;
        let mut first = 0;
        while first < args.connections {
            let n = args.per_process.min(args.connections - first);
            let mut cmd = Command::new(program);
            cmd.args(lead)
                .arg("idle-worker")
                .arg("--addr")
                .arg(args.server.addr.to_string())
                .arg("--connections")
                .arg(n.to_string())
                .arg("--first")
                .arg(first.to_string())
                .arg("--sources")
                .arg(args.sources.to_string())
                .arg("--kind")
                .arg(args.kind.name())
                .arg("--channel")
                .arg(&args.channel)
                .arg("--max-seconds")
                .arg((args.hold + 300.0).to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit());
            #[cfg(feature = "tls")]
            if let Some(ca) = &args.tls_ca {
                cmd.arg("--tls-ca").arg(ca);
            }
            children.push(cmd.spawn()?);
            first += n;
        }
        // One `ready OK FAILED` line from each child.
        for child in &mut children {
            let out = child
                .stdout
                .take()
                .ok_or_else(|| std::io::Error::other("child without stdout"))?;
            let mut line = String::new();
            BufReader::new(out).read_line(&mut line)?;
            let mut words = line.split_whitespace().skip(1);
            ok += words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
            failed += words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
        }
        Ok::<_, std::io::Error>(())
    })();
    let connect_seconds = started.elapsed().as_secs_f64();
    let mut report = None;
    if result.is_ok() {
        eprintln!("[idle] {ok} connected, {failed} failed in {connect_seconds:.1}s; settling");
        std::thread::sleep(Duration::from_secs(2));
        let rss_loaded = server.as_ref().and_then(|s| s.rss_kib().ok());
        let kernel_loaded = KernelMemory::read();
        let window = CpuWindow::start(server.as_ref());
        std::thread::sleep(Duration::from_secs_f64(args.hold));
        let (wall, cpu) = window.end(server.as_ref());
        let rss_after = server.as_ref().and_then(|s| s.rss_kib().ok());
        let per_conn = |after: Option<u64>| match (rss_before, after) {
            (Some(a), Some(b)) if ok > 0 => Some(r3((b as f64 - a as f64) * 1024.0 / ok as f64)),
            _ => None,
        };
        report = Some(json!({
            "mode": "idle",
            "server": args.server.label,
            "kind": args.kind.name(),
            "tls": tls_on(&args),
            "connections": ok,
            "failed": failed,
            "processes": children.len(),
            "sources": args.sources,
            "connect_seconds": r3(connect_seconds),
            "server_rss_kib": {"before": rss_before, "loaded": rss_loaded, "after_hold": rss_after},
            "server_rss_bytes_per_connection": per_conn(rss_loaded),
            // After the hold: with a hold longer than the server's ping interval, what a
            // connection keeps once it has answered a ping (the steady state).
            "server_rss_bytes_per_connection_after_hold": per_conn(rss_after),
            "kernel": {
                "before": kernel_before,
                "loaded": kernel_loaded,
                // Both ends of every connection are sockets on this machine.
                "bytes_per_socket": kernel_before.zip(kernel_loaded)
                    .map(|(a, b)| r3(b.delta_bytes(a) / (2.0 * ok.max(1) as f64))),
            },
            "hold_seconds": r3(wall),
            "server_cpu_s_while_idle": cpu.map(r3),
            "server_cpu_us_per_connection_second": cpu.map(|c| r3(c * 1e6 / (ok.max(1) as f64 * wall))),
            "idle_connections_per_server_cpu_s": per_cpu_second(ok as f64 * wall, cpu).map(r3),
        }));
    }
    // Closing stdin tells each child to exit; kill the ones that do not.
    for child in &mut children {
        drop(child.stdin.take());
    }
    process::reap(&mut children, Duration::from_secs(15));
    result?;
    if let Some(r) = report {
        common::emit(&r);
    }
    Ok(())
}

/// Runs one `idle-worker` child.
pub fn worker(args: WorkerArgs) -> std::io::Result<()> {
    net::check_loopback(args.server.addr)?;
    #[cfg(feature = "tls")]
    let tls = match &args.tls_ca {
        Some(ca) => Some(crate::tls::TlsConnector::from_ca_file(ca)?),
        None => None,
    };
    #[cfg(not(feature = "tls"))]
    let tls: Option<Tls> = None;
    let rt = args.server.runtime()?;
    rt.block_on(async {
        let counters = Arc::new(WireCounters::default());
        let ready = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let gate = Arc::new(Semaphore::new(256));
        let path = format!("/ch/{}", args.channel);
        for i in 0..args.connections {
            let (a, counters, ready, failed, gate, path, tls) = (
                args.clone(),
                counters.clone(),
                ready.clone(),
                failed.clone(),
                gate.clone(),
                path.clone(),
                tls.clone(),
            );
            tokio::spawn(async move {
                let permit = gate.acquire_owned().await.ok();
                let source = a.first + i;
                let res = hold(&a, &path, source, &counters, &ready, permit, tls).await;
                if res.is_err() {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(180);
        while ready.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed)
            < args.connections as u64
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        println!(
            "ready {} {}",
            ready.load(Ordering::Relaxed),
            failed.load(Ordering::Relaxed)
        );
        // Hold until the parent closes our stdin (or the safety bound).
        let eof = tokio::task::spawn_blocking(|| {
            let mut sink = [0u8; 64];
            while std::io::stdin().read(&mut sink).is_ok_and(|n| n > 0) {}
        });
        let _ = tokio::time::timeout(Duration::from_secs_f64(args.max_seconds), eof).await;
        Ok(())
    })
}

/// Whether `idle` connects over TLS.
fn tls_on(args: &IdleArgs) -> bool {
    #[cfg(feature = "tls")]
    return args.tls_ca.is_some();
    #[cfg(not(feature = "tls"))]
    {
        let _ = args;
        false
    }
}

#[cfg(feature = "tls")]
type Tls = crate::tls::TlsConnector;
/// No TLS in this build: never a value.
#[cfg(not(feature = "tls"))]
#[derive(Clone)]
enum Tls {}

async fn hold(
    a: &WorkerArgs,
    path: &str,
    source: usize,
    counters: &Arc<WireCounters>,
    ready: &AtomicU64,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    tls: Option<Tls>,
) -> std::io::Result<()> {
    let stream = net::connect(a.server.addr, source, a.sources, counters).await?;
    if let Some(tls) = tls {
        #[cfg(feature = "tls")]
        {
            let stream = tls.connect(&a.server.addr.ip().to_string(), stream).await?;
            return hold_on(a, path, stream, ready, permit).await;
        }
        #[cfg(not(feature = "tls"))]
        match tls {}
    }
    hold_on(a, path, stream, ready, permit).await
}

/// Subscribes over `stream` and reads until the server closes.
async fn hold_on<S: AsyncRead + AsyncWrite + Unpin>(
    a: &WorkerArgs,
    path: &str,
    stream: S,
    ready: &AtomicU64,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
) -> std::io::Result<()> {
    match a.kind {
        IdleKind::Ws => {
            let mut ws = common::ws_handshake(stream, &a.server, path, false).await?;
            ready.fetch_add(1, Ordering::Relaxed);
            drop(permit);
            // Reading keeps pings answered; nothing else arrives on an idle channel.
            while let Some(Ok(m)) = ws.recv().await {
                if matches!(m, Message::Close(_)) {
                    break;
                }
            }
        }
        IdleKind::Sse => {
            let mut http = HttpConn::new(stream);
            http.get(&a.server.host(), path, "Accept: text/event-stream\r\n")
                .await?;
            let head = http.read_head().await?;
            if head.status != 200 {
                return Err(std::io::Error::other(format!("status {}", head.status)));
            }
            ready.fetch_add(1, Ordering::Relaxed);
            drop(permit);
            let mut body = Vec::new();
            while http.read_body(&mut body).await? {
                body.clear();
            }
        }
    }
    Ok(())
}
