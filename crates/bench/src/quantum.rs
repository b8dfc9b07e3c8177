//! `quantum`: the same message stream to the same number of clients over every transport
//! (WebSocket, WebSocket + permessage-deflate, SSE, HTTP streaming, long-polling, polling
//! every second), one fan-out run each against a freshly started server, and what each
//! costs per delivered message: bytes on the wire (both directions, HTTP heads and
//! handshakes included), delivery latency p50/p99, server CPU. Writes a markdown table
//! and an SVG chart beside the figures websocket.org published (871 bytes of HTTP headers
//! per poll, 2 bytes of framing per WebSocket message).

use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::json;

use crate::common::{self, ServerArgs};
use crate::fanout::{self, FanoutArgs, Outcome, Transport};

/// Options of `quantum`.
#[derive(Debug, Clone, clap::Args)]
pub struct QuantumArgs {
    /// The server; with `--server-cmd`, `{ADDR}` in the command is replaced by a fresh
    /// address for each transport (port `--addr`'s + 0, 1, 2, …), so each transport gets
    /// a fresh server.
    #[command(flatten)]
    pub server: ServerArgs,
    /// Clients per transport; a comma-separated list runs every transport at each size
    /// (`--clients 1000,10000`).
    #[arg(long, value_delimiter = ',', default_values_t = [1000])]
    pub clients: Vec<usize>,
    /// Messages per second.
    #[arg(long, default_value_t = 1.0)]
    pub rate: f64,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Seconds of publishing per transport.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Poll interval of the polling transport, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub poll_interval_ms: u64,
    /// Loopback source addresses to spread clients over.
    #[arg(long, default_value_t = 1)]
    pub sources: usize,
    /// Where to write the markdown table (the SVG goes beside it, `.svg`).
    #[arg(long, default_value = "docs/perf/quantum.md")]
    pub out: PathBuf,
}

const TRANSPORTS: [Transport; 6] = [
    Transport::Ws,
    Transport::WsDeflate,
    Transport::Sse,
    Transport::Stream,
    Transport::Longpoll,
    Transport::Poll,
];

/// One transport's row.
#[derive(Debug)]
struct Row {
    transport: Transport,
    outcome: Outcome,
    clients: usize,
}

impl Row {
    fn delivered(&self) -> f64 {
        self.outcome.delivered.max(1) as f64
    }
    /// Bytes per delivered message in the measured window (both directions).
    fn steady_bytes(&self) -> f64 {
        (self.outcome.bytes_read + self.outcome.bytes_written) as f64 / self.delivered()
    }
    /// The same with the connection setup (handshakes, first requests) spread over the run.
    fn total_bytes(&self) -> f64 {
        (self.outcome.bytes_read + self.outcome.bytes_written + self.outcome.setup_bytes) as f64
            / self.delivered()
    }
    fn cpu_us(&self) -> Option<f64> {
        self.outcome.cpu.map(|c| c * 1e6 / self.delivered())
    }
}

/// Runs every transport at every size, prints one JSON line per run and writes the
/// report.
pub fn run(args: QuantumArgs) -> std::io::Result<()> {
    let mut rows = Vec::new();
    let runs = args
        .clients
        .iter()
        .flat_map(|&clients| TRANSPORTS.into_iter().map(move |t| (clients, t)));
    for (i, (clients, transport)) in runs.enumerate() {
        let mut server = args.server.clone();
        if let Some(cmd) = &args.server.server_cmd {
            let port = u16::try_from(i)
                .ok()
                .and_then(|i| args.server.addr.port().checked_add(i))
                .ok_or_else(|| std::io::Error::other("--addr port too high for this many runs"))?;
            server.addr.set_port(port);
            server.server_cmd = Some(cmd.replace("{ADDR}", &server.addr.to_string()));
        }
        let f = FanoutArgs {
            server,
            subscribers: clients,
            transport,
            rate: args.rate,
            size: args.size,
            fill: crate::payload::Fill::X,
            duration: args.duration,
            drain: (args.poll_interval_ms as f64 / 1000.0 + 2.0).max(5.0),
            channel: "quantum".into(),
            poll_interval_ms: args.poll_interval_ms,
            sources: args.sources,
        };
        eprintln!("[quantum] {} × {clients} clients", transport.name());
        let process = f.server.open()?;
        let rt = f.server.runtime()?;
        let outcome = rt.block_on(fanout::measure(&f, process.as_ref()))?;
        drop(process);
        let mut line = fanout::outcome_json(&f, &outcome);
        line["mode"] = json!("quantum");
        common::emit(&line);
        rows.push(Row {
            transport,
            outcome,
            clients,
        });
    }
    let md = markdown(&args, &rows);
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, md)?;
    std::fs::write(args.out.with_extension("svg"), svg(&rows))?;
    eprintln!("[quantum] wrote {}", args.out.display());
    Ok(())
}

fn markdown(args: &QuantumArgs, rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| transport | clients | delivered | missing | bytes/msg on the wire (steady) | incl. setup | latency p50 | latency p99 | server CPU µs/msg |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let o = &r.outcome;
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.1} | {:.1} | {} | {} | {} |",
            r.transport.name(),
            r.clients,
            o.delivered,
            o.missing,
            r.steady_bytes(),
            r.total_bytes(),
            ms(o.latency.quantile(0.5)),
            ms(o.latency.quantile(0.99)),
            r.cpu_us().map_or("–".into(), |c| format!("{c:.2}")),
        );
    }
    let _ = writeln!(
        s,
        "\n{} clients per transport, {} msg/s of {} B, {} s each, polling every {} ms; a fresh server per run.",
        sizes(args),
        args.rate,
        args.size,
        args.duration,
        args.poll_interval_ms
    );
    let _ = writeln!(
        s,
        "websocket.org's figures: 871 bytes of HTTP headers per poll; 2 bytes of framing per WebSocket message."
    );
    s
}

/// The client counts as prose: `1000 and 10000`.
fn sizes(args: &QuantumArgs) -> String {
    let all: Vec<String> = args.clients.iter().map(ToString::to_string).collect();
    match all.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => all.join(""),
    }
}

fn ms(us: u64) -> String {
    format!("{:.1} ms", us as f64 / 1000.0)
}

/// A horizontal bar chart: bytes per message (log scale) with the two published
/// reference lines, and latency p50 per transport.
fn svg(rows: &[Row]) -> String {
    let (w, bar_h, gap, left, top) = (1000.0, 26.0, 12.0, 150.0, 70.0);
    let plot_w = 330.0;
    let h = top + rows.len() as f64 * (bar_h + gap) + 70.0;
    let log_max = 4.0f64; // 10^4 bytes
    let x_bytes = |b: f64| left + plot_w * (b.max(1.0).log10() / log_max).min(1.0);
    let lat_left = left + plot_w + 200.0;
    let max_lat = rows
        .iter()
        .map(|r| r.outcome.latency.quantile(0.5))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let x_lat = |us: f64| lat_left + 200.0 * (us / max_lat);
    let first = rows.first().map_or(0, |r| r.clients);
    let several_sizes = rows.iter().any(|r| r.clients != first);
    let label = |r: &Row| {
        if several_sizes {
            format!("{} × {}", r.transport.name(), r.clients)
        } else {
            r.transport.name().to_owned()
        }
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="13">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{left}" y="24" font-size="16" font-weight="bold">Bytes per delivered message (log scale)</text>"#
    );
    let _ = writeln!(
        s,
        r#"<text x="{lat_left}" y="24" font-size="16" font-weight="bold">Delivery latency p50</text>"#
    );
    for decade in 0..=4 {
        let x = x_bytes(10f64.powi(decade));
        let _ = writeln!(
            s,
            r##"<line x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="#ddd"/><text x="{x}" y="{}" text-anchor="middle" fill="#666">{}</text>"##,
            top - 10.0,
            h - 50.0,
            h - 34.0,
            10u32.pow(decade as u32)
        );
    }
    for (label, bytes, color) in [
        ("2 B framing (websocket.org)", 2.0, "#2a7"),
        ("871 B headers/poll (websocket.org)", 871.0, "#c33"),
    ] {
        let x = x_bytes(bytes);
        let _ = writeln!(
            s,
            r#"<line x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="{color}" stroke-dasharray="4 3"/><text x="{x}" y="{}" fill="{color}" font-size="11" text-anchor="middle">{label}</text>"#,
            top - 10.0,
            h - 50.0,
            top - 16.0
        );
    }
    for (i, r) in rows.iter().enumerate() {
        let y = top + i as f64 * (bar_h + gap);
        let b = r.total_bytes();
        let lat = r.outcome.latency.quantile(0.5) as f64;
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            left - 8.0,
            y + bar_h * 0.7,
            label(r)
        );
        let _ = writeln!(
            s,
            r##"<rect x="{left}" y="{y}" width="{}" height="{bar_h}" fill="#4a78c2"/><text x="{}" y="{}" fill="#222">{b:.0} B</text>"##,
            (x_bytes(b) - left).max(1.0),
            x_bytes(b) + 6.0,
            y + bar_h * 0.7
        );
        let _ = writeln!(
            s,
            r##"<rect x="{lat_left}" y="{y}" width="{}" height="{bar_h}" fill="#e39b2d"/><text x="{}" y="{}" fill="#222">{}</text>"##,
            (x_lat(lat) - lat_left).max(1.0),
            x_lat(lat) + 6.0,
            y + bar_h * 0.7,
            ms(lat as u64)
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="{left}" y="{}" fill="#666" font-size="11">both directions, HTTP heads and handshakes included (setup spread over the run); {}</text>"##,
        h - 12.0,
        if several_sizes {
            "clients per transport after the ×".to_owned()
        } else {
            format!("{first} clients per transport")
        }
    );
    let _ = writeln!(s, "</svg>");
    s
}
