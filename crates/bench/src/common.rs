//! What every mode shares: the server options (address, PID or command, CPU pinning),
//! the measured window (server CPU seconds between two instants), the WebSocket client
//! setup, progress lines on stderr and the final JSON line on stdout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard_ws_tokio::{ClientConfig, DeflateConfig, WebSocket};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::counting::WireCounters;
use crate::net::{self, Stream};
use crate::process::ServerProcess;

/// Which server to load and how to find its process.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// Server address (loopback only).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// PID of a running server (for its CPU and memory figures).
    #[arg(long, conflicts_with = "server_cmd")]
    pub server_pid: Option<u32>,
    /// Start the server with this command line (split on whitespace; `{ADDR}` is replaced
    /// by `--addr`) and stop it after the run; it must listen on `--addr`.
    #[arg(long)]
    pub server_cmd: Option<String>,
    /// Pin a started server to these CPUs (`taskset -c` list, e.g. `0`).
    #[arg(long)]
    pub server_cpu: Option<String>,
    /// Name of the server in the report.
    #[arg(long, default_value = "server")]
    pub label: String,
    /// Generator worker threads (1: a single-threaded runtime; pin the generator itself
    /// with `taskset` away from the server's CPU).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

impl ServerArgs {
    /// Starts or finds the server (blocking: call before the runtime runs).
    pub fn open(&self) -> std::io::Result<Option<ServerProcess>> {
        net::check_loopback(self.addr)?;
        Ok(match (&self.server_cmd, self.server_pid) {
            (Some(cmd), _) => {
                let cmd = cmd.replace("{ADDR}", &self.addr.to_string());
                Some(ServerProcess::spawn(
                    &cmd,
                    self.server_cpu.as_deref(),
                    self.addr,
                )?)
            }
            (None, Some(pid)) => Some(ServerProcess::existing(pid)),
            (None, None) => None,
        })
    }

    /// The `Host` header value.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// A runtime with `threads` workers.
    pub fn runtime(&self) -> std::io::Result<tokio::runtime::Runtime> {
        if self.threads <= 1 {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(self.threads)
                .enable_all()
                .build()
        }
    }
}

/// Server CPU seconds over a window (absent when the server's PID is unknown).
#[derive(Debug)]
pub struct CpuWindow {
    start_cpu: Option<f64>,
    start_sys: Option<(u64, u64)>,
    start: Instant,
}

impl CpuWindow {
    /// Opens the window now.
    pub fn start(server: Option<&ServerProcess>) -> Self {
        Self {
            start_cpu: server.and_then(|s| s.cpu_seconds().ok()),
            start_sys: server.and_then(|s| crate::process::syscalls(s.pid()).ok()),
            start: Instant::now(),
        }
    }

    /// The server's (read, write) system calls since the start.
    pub fn syscalls(&self, server: Option<&ServerProcess>) -> Option<(u64, u64)> {
        let (r0, w0) = self.start_sys?;
        let (r1, w1) = crate::process::syscalls(server?.pid()).ok()?;
        Some((r1.saturating_sub(r0), w1.saturating_sub(w0)))
    }

    /// (wall seconds, server CPU seconds) since the start.
    pub fn end(&self, server: Option<&ServerProcess>) -> (f64, Option<f64>) {
        let wall = self.start.elapsed().as_secs_f64();
        let cpu = match (self.start_cpu, server.and_then(|s| s.cpu_seconds().ok())) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        (wall, cpu)
    }
}

/// `count / cpu`, or `None` without a CPU figure (or with too little CPU to divide by).
pub fn per_cpu_second(count: f64, cpu: Option<f64>) -> Option<f64> {
    cpu.filter(|c| *c >= 0.01).map(|c| count / c)
}

/// Connects a WebSocket client to `path`, with permessage-deflate offered when asked.
pub async fn ws_connect(
    server: &ServerArgs,
    path: &str,
    deflate: bool,
    source: usize,
    sources: usize,
    counters: &Arc<WireCounters>,
) -> std::io::Result<WebSocket<Stream>> {
    let stream = net::connect(server.addr, source, sources, counters).await?;
    ws_handshake(stream, server, path, deflate).await
}

/// The WebSocket handshake for `path` over an open `stream` (TCP, or TLS).
pub async fn ws_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    server: &ServerArgs,
    path: &str,
    deflate: bool,
) -> std::io::Result<WebSocket<S>> {
    ws_handshake_offering(stream, server, path, deflate, &[]).await
}

/// [`ws_handshake`] offering `protocols` (`Sec-WebSocket-Protocol`).
pub async fn ws_handshake_offering<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    server: &ServerArgs,
    path: &str,
    deflate: bool,
    protocols: &[&str],
) -> std::io::Result<WebSocket<S>> {
    let mut config = ClientConfig {
        protocols: protocols.iter().map(|p| (*p).to_owned()).collect(),
        deflate: deflate.then(|| DeflateConfig {
            client_no_context_takeover: true,
            server_no_context_takeover: true,
            ..DeflateConfig::default()
        }),
        ..ClientConfig::default()
    };
    // The generator never wants the codec's keepalive pings or idle timeouts to fire
    // during a measurement.
    config.connection.ping_interval = None;
    config.connection.idle_timeout = None;
    let (ws, _) = switchboard_ws_tokio::connect(stream, &server.host(), path, &config)
        .await
        .map_err(|e| std::io::Error::other(format!("websocket handshake to {path}: {e}")))?;
    Ok(ws)
}

/// Prints `line` to stderr every second until `done` says stop (a progress line).
pub fn progress(
    label: String,
    mut line: impl FnMut() -> String + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let start = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        loop {
            tick.tick().await;
            eprintln!(
                "[{label} {:>4.0}s] {}",
                start.elapsed().as_secs_f64(),
                line()
            );
        }
    })
}

/// Writes the run's result as one JSON line on stdout, with a `machine` object (CPU model,
/// cores, kernel) added to an object: figures from different machines differ by their
/// kernel's cost per loopback write (see `bench floor`), so every line says where it was
/// measured.
pub fn emit(value: &serde_json::Value) {
    let mut value = value.clone();
    if let Some(object) = value.as_object_mut() {
        object.insert("machine".into(), machine());
    }
    println!("{value}");
}

/// What this machine is, from `/proc` (empty strings where it cannot be read).
pub fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
        .map_or("", |(_, v)| v.trim());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    // The machine's, not this process's (the generator is usually pinned to one).
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    serde_json::json!({ "cpu": cpu, "cores": cores, "kernel": kernel.trim() })
}

/// Rounds for the report (three decimals).
pub fn r3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}
