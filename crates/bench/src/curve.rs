//! `curve`: the cost curve. Fan-out runs (WebSocket subscribers) as subscribers grow at
//! one message size, and as the message size grows at one subscriber count, for every
//! server given (`--server 'LABEL|COMMAND'`), the servers interleaved at each point and a
//! fresh server process for every run. Each run is one JSON line (on stdout and appended
//! to `--jsonl`); the SVG chart (deliveries per server-CPU-second and latency p99, against
//! subscribers and against size) is drawn from the JSON lines in that file, so it can be
//! redrawn from committed figures alone (`--chart-only`).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde_json::{json, Value};

use crate::common::{self, ServerArgs};
use crate::fanout::{self, FanoutArgs, PublisherKind, Transport};
use crate::svg::{Scale, Svg};

/// Options of `curve`.
#[derive(Debug, Clone, clap::Args)]
pub struct CurveArgs {
    /// A server to measure, `LABEL|COMMAND` (`{ADDR}` in the command is replaced by each
    /// run's address); repeat for each server.
    #[arg(long = "server")]
    pub servers: Vec<String>,
    /// First address; each run takes the next port.
    #[arg(long, default_value = "127.0.0.1:9600")]
    pub addr: SocketAddr,
    /// Pin every server to these CPUs (`taskset -c` list).
    #[arg(long)]
    pub server_cpu: Option<String>,
    /// Subscriber counts of the subscriber curve (at the smallest `--sizes`).
    #[arg(long, value_delimiter = ',', default_values_t = [1000, 5000, 10000, 19000])]
    pub subscribers: Vec<usize>,
    /// Payload sizes in bytes of the size curve (at `--size-subscribers`).
    #[arg(long, value_delimiter = ',', default_values_t = [64, 1024, 16384])]
    pub sizes: Vec<usize>,
    /// Subscribers of the size curve.
    #[arg(long, default_value_t = 1000)]
    pub size_subscribers: usize,
    /// Messages per second.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Seconds of publishing per run.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Most seconds to wait after the last message for deliveries in flight.
    #[arg(long, default_value_t = 20.0)]
    pub drain: f64,
    /// Loopback source addresses to spread subscribers over.
    #[arg(long, default_value_t = 4)]
    pub sources: usize,
    /// How the publisher sends.
    #[arg(long, value_enum, default_value_t = PublisherKind::Http)]
    pub publisher: PublisherKind,
    /// Runs of every point per server.
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// The JSON lines file: each run is appended to it, and the chart drawn from it.
    #[arg(long, default_value = "docs/perf/curve.jsonl")]
    pub jsonl: PathBuf,
    /// Where to write the chart.
    #[arg(long, default_value = "docs/perf/curve.svg")]
    pub svg: PathBuf,
    /// Measure nothing: draw the chart from `--jsonl` as it is.
    #[arg(long)]
    pub chart_only: bool,
}

/// One run of the plan: its subscribers and size, and the curves it is a point of.
#[derive(Debug, Clone, PartialEq)]
struct Point {
    subscribers: usize,
    size: usize,
    series: Vec<&'static str>,
}

/// Every point once: the subscriber curve at the smallest size, then the rest of the size
/// curve (a point on both is run once and belongs to both).
fn plan(args: &CurveArgs) -> Vec<Point> {
    let base = args.sizes.iter().copied().min().unwrap_or(64);
    let mut points: Vec<Point> = args
        .subscribers
        .iter()
        .map(|&subscribers| Point {
            subscribers,
            size: base,
            series: vec!["subscribers"],
        })
        .collect();
    for &size in &args.sizes {
        match points
            .iter_mut()
            .find(|p| p.subscribers == args.size_subscribers && p.size == size)
        {
            Some(p) => p.series.push("size"),
            None => points.push(Point {
                subscribers: args.size_subscribers,
                size,
                series: vec!["size"],
            }),
        }
    }
    points
}

/// Runs the plan (unless `--chart-only`) and draws the chart from `--jsonl`.
pub fn run(args: CurveArgs, self_cmd: &[OsString]) -> std::io::Result<()> {
    if !args.chart_only {
        measure(&args, self_cmd)?;
    }
    let text = std::fs::read_to_string(&args.jsonl)?;
    let lines: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &Value| v["mode"] == "curve")
        .collect();
    if let Some(dir) = args.svg.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.svg, chart(&lines))?;
    eprintln!(
        "[curve] {} runs drawn in {}",
        lines.len(),
        args.svg.display()
    );
    Ok(())
}

fn measure(args: &CurveArgs, self_cmd: &[OsString]) -> std::io::Result<()> {
    let servers: Vec<(&str, &str)> = args
        .servers
        .iter()
        .map(|s| s.split_once('|').unwrap_or(("server", s)))
        .collect();
    if servers.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "curve: give at least one --server 'LABEL|COMMAND'",
        ));
    }
    if let Some(dir) = args.jsonl.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut run_index = 0u16;
    for point in plan(args) {
        for round in 1..=args.rounds {
            for &(label, cmd) in &servers {
                let mut addr = args.addr;
                addr.set_port(args.addr.port().checked_add(run_index).ok_or_else(|| {
                    std::io::Error::other("--addr port too high for this many runs")
                })?);
                run_index += 1;
                let f = FanoutArgs {
                    server: ServerArgs {
                        addr,
                        server_pid: None,
                        server_cmd: Some(cmd.replace("{ADDR}", &addr.to_string())),
                        server_cpu: args.server_cpu.clone(),
                        label: label.to_owned(),
                        threads: 1,
                    },
                    subscribers: point.subscribers,
                    transport: Transport::Ws,
                    rate: args.rate,
                    size: point.size,
                    duration: args.duration,
                    drain: args.drain,
                    channel: "curve".into(),
                    poll_interval_ms: 1000,
                    sources: args.sources,
                    publisher: args.publisher,
                    fill: Default::default(),
                    publish_addr: None,
                    processes: 1,
                };
                eprintln!(
                    "[curve] {label} × {} subscribers × {} B, round {round} (load {})",
                    point.subscribers,
                    point.size,
                    loadavg()
                );
                let outcome = fanout::run_once(&f, self_cmd)?;
                let mut line = fanout::outcome_json(&f, &outcome);
                line["mode"] = json!("curve");
                line["series"] = json!(point.series);
                line["round"] = json!(round);
                line["loadavg"] = json!(loadavg());
                common::emit(&line);
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&args.jsonl)?;
                // `emit` adds the machine; the file gets the same line.
                line["machine"] = common::machine();
                writeln!(file, "{line}")?;
            }
        }
    }
    Ok(())
}

/// The 1-, 5- and 15-minute load averages of `/proc/loadavg`.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a chart panel plots of one run.
#[derive(Debug, Clone, Copy)]
enum Metric {
    PerCpuSecond,
    P99,
}

impl Metric {
    fn of(self, line: &Value) -> Option<f64> {
        match self {
            Self::PerCpuSecond => line["deliveries_per_server_cpu_s"].as_f64(),
            Self::P99 => line["latency_us"]["p99"].as_f64().map(|us| us / 1000.0),
        }
    }
}

/// One server's points on one panel: x, the median of its runs' values, and whether any
/// run there missed deliveries.
type Line = Vec<(f64, f64, bool)>;

/// The lines of one panel, by server: the runs on curve `series` (`subscribers` or
/// `size`, also the field that is its x axis).
fn lines(runs: &[Value], series: &str, metric: Metric) -> BTreeMap<String, Line> {
    let mut by_server: BTreeMap<String, BTreeMap<u64, (Vec<f64>, bool)>> = BTreeMap::new();
    for run in runs {
        let in_series = run["series"]
            .as_array()
            .is_some_and(|s| s.iter().any(|v| v == series));
        let (Some(server), Some(x), Some(y)) =
            (run["server"].as_str(), run[series].as_u64(), metric.of(run))
        else {
            continue;
        };
        if !in_series {
            continue;
        }
        let missed = run["missing"].as_u64().unwrap_or(0) > 0;
        let point = by_server
            .entry(server.to_owned())
            .or_default()
            .entry(x)
            .or_default();
        point.0.push(y);
        point.1 |= missed;
    }
    by_server
        .into_iter()
        .map(|(server, points)| {
            let line = points
                .into_iter()
                .map(|(x, (mut ys, missed))| {
                    ys.sort_by(f64::total_cmp);
                    (x as f64, ys[ys.len() / 2], missed)
                })
                .collect();
            (server, line)
        })
        .collect()
}

const COLORS: [&str; 4] = ["#4a78c2", "#e39b2d", "#2a7", "#c33"];

/// Four panels: deliveries per server-CPU-second and p99 (log scale), against subscribers
/// (log scale) and against message size (log scale); one line per server.
fn chart(runs: &[Value]) -> String {
    let (pw, ph, left, top, gap_x, gap_y) = (400.0, 240.0, 90.0, 70.0, 120.0, 125.0);
    let w = left + 2.0 * pw + gap_x + 60.0;
    let h = top + 2.0 * ph + gap_y + 100.0;
    // In the order they first appear (the order they were measured in).
    let mut servers: Vec<&str> = Vec::new();
    for name in runs.iter().filter_map(|r| r["server"].as_str()) {
        if !servers.contains(&name) {
            servers.push(name);
        }
    }
    let color = |server: &str| {
        let i = servers.iter().position(|s| *s == server).unwrap_or(0);
        COLORS[i % COLORS.len()]
    };
    let mut s = Svg::new(w, h);
    // What stays fixed along each curve, for the panel titles.
    let fixed = |series: &str, key: &str| {
        runs.iter()
            .find(|r| {
                r["series"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|v| v == series))
            })
            .and_then(|r| r[key].as_f64())
    };
    let by_subscribers = match fixed("subscribers", "size") {
        Some(size) => format!("by subscribers, messages of {}", bytes(size)),
        None => "by subscribers".to_owned(),
    };
    let by_size = match fixed("size", "subscribers") {
        Some(n) => format!("by message size, {} subscribers", short(n)),
        None => "by message size".to_owned(),
    };
    let panels = [
        ("subscribers", &by_subscribers, Metric::PerCpuSecond),
        ("subscribers", &by_subscribers, Metric::P99),
        ("size", &by_size, Metric::PerCpuSecond),
        ("size", &by_size, Metric::P99),
    ];
    for (i, (x_key, by, metric)) in panels.into_iter().enumerate() {
        let x0 = left + (i % 2) as f64 * (pw + gap_x);
        let y0 = top + (i / 2) as f64 * (ph + gap_y);
        panel(
            &mut s,
            (x0, y0, pw, ph),
            &lines(runs, x_key, metric),
            metric,
            (x_key, by),
            &color,
        );
    }
    // Legend and how to read it.
    let mut x = left;
    for server in &servers {
        let c = color(server);
        s.rect(x, h - 62.0, 14.0, 14.0, c);
        s.text(x + 20.0, h - 50.0, "", server);
        x += 40.0 + 8.0 * server.len() as f64;
    }
    let first = runs.first();
    let rate = first.and_then(|r| r["rate"].as_f64()).unwrap_or(0.0);
    let publisher = first.and_then(|r| r["publisher"].as_str()).unwrap_or("ws");
    for (i, note) in [
        format!("fan-out to WebSocket subscribers, {rate} msg/s from one {publisher} publisher, a fresh server per run;"),
        "the median of the runs at each point; a hollow dot: some run there missed deliveries".to_owned(),
    ]
    .iter()
    .enumerate()
    {
        s.text(
            left,
            h - 24.0 + 14.0 * i as f64,
            r##"fill="#666" font-size="11""##,
            note,
        );
    }
    s.finish()
}

/// One panel at `(x0, y0)`, `pw` × `ph`: log x axis, and a linear (per CPU-second) or log
/// (p99) y axis.
fn panel(
    s: &mut Svg,
    (x0, y0, pw, ph): (f64, f64, f64, f64),
    lines: &BTreeMap<String, Line>,
    metric: Metric,
    (x_key, by): (&str, &str),
    color: &dyn Fn(&str) -> &'static str,
) {
    let all = || lines.values().flatten();
    let (x_lo, x_hi) = all().fold((f64::MAX, 0.0f64), |(lo, hi), p| (lo.min(p.0), hi.max(p.0)));
    let (x_lo, x_hi) = if x_hi > 0.0 {
        (x_lo, x_hi.max(x_lo * 1.01))
    } else {
        (1.0, 10.0)
    };
    let y_hi = all().map(|p| p.1).fold(0.0, f64::max).max(1e-3);
    let x = Scale::log(x_lo / 1.15, x_hi * 1.15, x0, x0 + pw);
    let (y, title, ticks): (Scale, String, Vec<f64>) = match metric {
        Metric::PerCpuSecond => {
            let top = nice_ceiling(y_hi);
            let ticks = (0..=4).map(|i| top * f64::from(i) / 4.0).collect();
            (
                Scale::linear(0.0, top, y0 + ph, y0),
                "Deliveries per server-CPU-second".to_owned(),
                ticks,
            )
        }
        Metric::P99 => {
            // An empty panel gets 1 to 10 ms; at most 12 decades of ticks.
            let y_lo = all().map(|p| p.1).reduce(f64::min).unwrap_or(1.0).max(0.1);
            let lo = 10f64.powf(y_lo.log10().floor());
            let hi = 10f64.powf(y_hi.log10().ceil()).max(lo * 10.0);
            let decades = ((hi / lo).log10().round() as i32).clamp(1, 12);
            let ticks = (0..=decades).map(|d| lo * 10f64.powi(d)).collect();
            (
                Scale::log(lo, hi, y0 + ph, y0),
                "Delivery latency p99 (ms, log scale)".to_owned(),
                ticks,
            )
        }
    };
    s.title(x0, y0 - 30.0, &title);
    s.text(x0, y0 - 12.0, r##"fill="#444""##, by);
    for t in ticks {
        let py = y.at(t);
        s.line((x0, py), (x0 + pw, py), r##"stroke="#ddd""##);
        s.text(
            x0 - 6.0,
            py + 4.0,
            r##"text-anchor="end" fill="#666" font-size="11""##,
            &short(t),
        );
    }
    let mut xs: Vec<f64> = all().map(|p| p.0).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    for v in xs {
        let px = x.at(v);
        s.line((px, y0), (px, y0 + ph), r##"stroke="#eee""##);
        let label = if x_key == "size" { bytes(v) } else { short(v) };
        s.text(
            px,
            y0 + ph + 16.0,
            r##"text-anchor="middle" fill="#666" font-size="11""##,
            &label,
        );
    }
    s.line((x0, y0 + ph), (x0 + pw, y0 + ph), r##"stroke="#888""##);
    s.line((x0, y0), (x0, y0 + ph), r##"stroke="#888""##);
    s.text(
        x0 + pw / 2.0,
        y0 + ph + 34.0,
        r##"text-anchor="middle" fill="#444""##,
        if x_key == "size" {
            "message size (log scale)"
        } else {
            "WebSocket subscribers (log scale)"
        },
    );
    for (server, line) in lines {
        let points: Vec<(f64, f64, bool)> = line
            .iter()
            .map(|&(vx, vy, missed)| (x.at(vx), y.at(vy), missed))
            .collect();
        s.series(&points, color(server));
    }
}

/// The next of 1, 2, 2.5, 5 × 10^k at or above `v`.
fn nice_ceiling(v: f64) -> f64 {
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|&c| c >= v)
        .unwrap_or(10.0 * p)
}

/// `1.5 M`, `250 k`, `19 k`, `0.5`: axis labels.
fn short(v: f64) -> String {
    if v >= 1e6 {
        format!("{} M", trim(v / 1e6))
    } else if v >= 1e3 {
        format!("{} k", trim(v / 1e3))
    } else {
        trim(v)
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// `64 B`, `1 KiB`, `16 KiB`.
fn bytes(v: f64) -> String {
    if v >= 1024.0 {
        format!("{} KiB", trim(v / 1024.0))
    } else {
        format!("{v} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: CurveArgs,
    }

    #[test]
    fn the_shared_point_runs_once_and_belongs_to_both_curves() {
        let args = Cli::parse_from(["curve", "--subscribers", "1000,5000"]).args;
        let p = plan(&args);
        let shape: Vec<(usize, usize, usize)> = p
            .iter()
            .map(|p| (p.subscribers, p.size, p.series.len()))
            .collect();
        assert_eq!(
            shape,
            vec![
                (1000, 64, 2),
                (5000, 64, 1),
                (1000, 1024, 1),
                (1000, 16384, 1)
            ]
        );
    }

    #[test]
    fn the_chart_takes_medians_and_marks_missed_points() {
        let run = |server: &str, subs: u64, per_cpu: f64, missing: u64| {
            json!({"mode": "curve", "server": server, "subscribers": subs, "size": 64,
                   "series": ["subscribers"], "deliveries_per_server_cpu_s": per_cpu,
                   "missing": missing, "latency_us": {"p99": 5000}})
        };
        let runs = vec![
            run("a", 1000, 1.0, 0),
            run("a", 1000, 3.0, 0),
            run("a", 1000, 2.0, 1),
            run("b", 1000, 9.0, 0),
        ];
        let l = lines(&runs, "subscribers", Metric::PerCpuSecond);
        assert_eq!(l["a"], vec![(1000.0, 2.0, true)]);
        assert_eq!(l["b"], vec![(1000.0, 9.0, false)]);
        assert!(lines(&runs, "size", Metric::P99).is_empty());
        let doc = chart(&runs);
        assert!(doc.contains("<polyline") && doc.contains("by subscribers, messages of 64 B"));
    }

    #[test]
    fn axis_labels() {
        assert_eq!(short(1_500_000.0), "1.5 M");
        assert_eq!(short(19_000.0), "19 k");
        assert_eq!(bytes(16384.0), "16 KiB");
        assert_eq!(bytes(64.0), "64 B");
        assert_eq!(nice_ceiling(1.12e6), 2e6);
        assert_eq!(nice_ceiling(180.0), 200.0);
    }
}
