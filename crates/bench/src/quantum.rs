//! `quantum`: the same message stream to the same number of clients over every transport
//! (WebSocket, WebSocket + permessage-deflate, WebSocket in the compact format, SSE,
//! HTTP streaming, long-polling, polling every second, the last two also with
//! `format=compact` bodies), one fan-out run each against a freshly started server, and what each
//! costs per delivered message: bytes on the wire (both directions, HTTP heads and
//! handshakes included, and each direction apart: what the server sends is what it
//! controls, a poll's request is the client's), delivery latency p50/p99, server CPU.
//! Writes a markdown table and an SVG chart beside the figures websocket.org published
//! (871 bytes of HTTP headers per poll, 2 bytes of framing per WebSocket message).

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::json;

use crate::common::{self, ServerArgs};
use crate::fanout::{self, FanoutArgs, Outcome, Transport};
use crate::svg::{Scale, Svg};

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

const TRANSPORTS: [Transport; 9] = [
    Transport::Ws,
    Transport::WsDeflate,
    Transport::WsCompact,
    Transport::Sse,
    Transport::Stream,
    Transport::Longpoll,
    Transport::LongpollCompact,
    Transport::Poll,
    Transport::PollCompact,
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
    /// Bytes per delivered message the server sent (its answers, frames and events).
    fn server_bytes(&self) -> f64 {
        self.outcome.bytes_read as f64 / self.delivered()
    }
    /// Bytes per delivered message the clients sent (a poll's request; pongs).
    fn client_bytes(&self) -> f64 {
        self.outcome.bytes_written as f64 / self.delivered()
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
pub fn run(args: QuantumArgs, self_cmd: &[OsString]) -> std::io::Result<()> {
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
            publisher: fanout::PublisherKind::Ws,
            publish_addr: None,
            processes: 1,
        };
        eprintln!("[quantum] {} × {clients} clients", transport.name());
        let outcome = fanout::run_once(&f, self_cmd)?;
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
        "| transport | clients | delivered | missing | bytes/msg on the wire (steady) | server → client | client → server | incl. setup | latency p50 | latency p99 | server CPU µs/msg |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let o = &r.outcome;
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} | {} |",
            r.transport.name(),
            r.clients,
            o.delivered,
            o.missing,
            r.steady_bytes(),
            r.server_bytes(),
            r.client_bytes(),
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

/// A horizontal bar chart: bytes per message (log scale; both directions with setup, and
/// inside it what the server sent) with the two published reference lines, and latency
/// p50 per transport.
fn svg(rows: &[Row]) -> String {
    let (w, bar_h, gap, left, top) = (1040.0, 26.0, 12.0, 190.0, 70.0);
    let plot_w = 330.0;
    let h = top + rows.len() as f64 * (bar_h + gap) + 70.0;
    // 1 to 10^4 bytes.
    let bytes_axis = Scale::log(1.0, 1e4, left, left + plot_w);
    let lat_left = left + plot_w + 200.0;
    let max_lat = rows
        .iter()
        .map(|r| r.outcome.latency.quantile(0.5))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let lat_axis = Scale::linear(0.0, max_lat, lat_left, lat_left + 200.0);
    let first = rows.first().map_or(0, |r| r.clients);
    let several_sizes = rows.iter().any(|r| r.clients != first);
    let label = |r: &Row| {
        if several_sizes {
            format!("{} × {}", r.transport.name(), r.clients)
        } else {
            r.transport.name().to_owned()
        }
    };
    let mut s = Svg::new(w, h);
    s.title(left, 24.0, "Bytes per delivered message (log scale)");
    s.title(lat_left, 24.0, "Delivery latency p50");
    for decade in 0..=4 {
        let x = bytes_axis.at(10f64.powi(decade));
        s.line((x, top - 10.0), (x, h - 50.0), r##"stroke="#ddd""##);
        s.text(
            x,
            h - 34.0,
            r##"text-anchor="middle" fill="#666""##,
            &10u32.pow(decade as u32).to_string(),
        );
    }
    for (label, bytes, color) in [
        ("2 B framing (websocket.org)", 2.0, "#2a7"),
        ("871 B headers/poll (websocket.org)", 871.0, "#c33"),
    ] {
        let x = bytes_axis.at(bytes);
        s.line(
            (x, top - 10.0),
            (x, h - 50.0),
            &format!(r#"stroke="{color}" stroke-dasharray="4 3""#),
        );
        s.text(
            x,
            top - 16.0,
            &format!(r#"fill="{color}" font-size="11" text-anchor="middle""#),
            label,
        );
    }
    for (i, r) in rows.iter().enumerate() {
        let y = top + i as f64 * (bar_h + gap);
        let b = r.total_bytes();
        let sent = r.server_bytes();
        let lat = r.outcome.latency.quantile(0.5) as f64;
        s.text(
            left - 8.0,
            y + bar_h * 0.7,
            r#"text-anchor="end""#,
            &label(r),
        );
        bar(
            &mut s,
            (left, bytes_axis.at(b)),
            y,
            bar_h,
            "#9db8e3",
            &format!("{b:.0} B ({sent:.0} B from the server)"),
        );
        s.rect(
            left,
            y + bar_h * 0.3,
            (bytes_axis.at(sent) - left).max(1.0),
            bar_h * 0.4,
            "#2b4f8c",
        );
        bar(
            &mut s,
            (lat_left, lat_axis.at(lat)),
            y,
            bar_h,
            "#e39b2d",
            &ms(lat as u64),
        );
    }
    let clients = if several_sizes {
        "clients per transport after the ×".to_owned()
    } else {
        format!("{first} clients per transport")
    };
    s.text(
        left,
        h - 12.0,
        r##"fill="#666" font-size="11""##,
        &format!(
            "light: both directions, HTTP heads and handshakes included (setup spread over the run); dark: what the server sent; {clients}"
        ),
    );
    s.finish()
}

/// A bar from `x0` to `x1` (at least a pixel) at `y`, labelled just after its end.
fn bar(s: &mut Svg, (x0, x1): (f64, f64), y: f64, height: f64, color: &str, label: &str) {
    s.rect(x0, y, (x1 - x0).max(1.0), height, color);
    s.text(x1 + 6.0, y + height * 0.7, r##"fill="#222""##, label);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::stats::Histogram;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: QuantumArgs,
    }

    fn row(read: u64, written: u64) -> Row {
        Row {
            transport: Transport::LongpollCompact,
            clients: 10,
            outcome: Outcome {
                published: 10,
                expected: 100,
                delivered: 100,
                missing: 0,
                out_of_order: 0,
                failed: 0,
                publish_failed: 0,
                wall: 10.0,
                cpu: Some(0.01),
                latency: Histogram::new(),
                bytes_read: read,
                bytes_written: written,
                setup_bytes: 500,
                server_syscalls: None,
                server_segments: None,
            },
        }
    }

    #[test]
    fn the_report_says_each_direction_apart() {
        let args = Cli::parse_from(["quantum", "--clients", "10"]).args;
        let rows = [row(24_170, 11_060)];
        let md = markdown(&args, &rows);
        let line = md.lines().nth(2).unwrap();
        assert!(
            line.starts_with("| longpoll-compact | 10 | 100 | 0 | 352.3 | 241.7 | 110.6 | 357.3 |"),
            "{line}"
        );
        let chart = svg(&rows);
        assert!(chart.contains("357 B (242 B from the server)"), "{chart}");
    }
}
