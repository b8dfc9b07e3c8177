//! `GET /metrics`: every counter of the server in the Prometheus text format
//! (OpenMetrics 1.0), rendered at scrape time from counters that already exist.
//!
//! Built on `prometheus-client` rather than `metrics` + `metrics-exporter-prometheus`:
//! the counters are our own atomics (the hub's [`switchboard_hub::HubStats`], the
//! front's [`crate::observe::counters`]), touched on the hot path with one relaxed add
//! and read only when someone scrapes. `prometheus-client`'s [`Collector`] encodes such
//! values as they are, histograms included (the broker latency's buckets are atomics of
//! the hub); the `metrics` exporter would need each value copied into its own recorder
//! and keeps its own histogram samples, which allocate as they grow. Nothing here runs
//! unless `/metrics` is asked.
//!
//! Behind the API key when one is set (`Authorization: Bearer KEY`, as `/api`).

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use switchboard_hub::stats::LATENCY_BOUNDS;
use switchboard_hub::BrokerOp;

use crate::error::ServerError;
use crate::observe::counters::{self, Snapshot, Transport, CLOSE_CODES, CODES, TRANSPORTS};
use crate::observe::process::Process;
use crate::state::AppState;

/// The content type of the answer.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `GET /metrics`.
pub async fn serve(State(state): State<AppState>, req: Request) -> Response {
    if let Err(e) = super::check_operator(&state, &req) {
        return e.into_response();
    }
    match render(&state) {
        Ok(text) => {
            let mut resp = text.into_response();
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
            resp
        }
        Err(_) => {
            ServerError::BadRequest("the metrics could not be encoded".into()).into_response()
        }
    }
}

/// The text of one scrape.
pub fn render(state: &AppState) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape {
        state: state.clone(),
    }));
    let mut out = String::with_capacity(8 * 1024);
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    Ok(out)
}

#[derive(Debug)]
struct Scrape {
    state: AppState,
}

fn counter(e: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge<V>(e: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: V) -> std::fmt::Result
where
    ConstGauge<V>: EncodeMetric,
{
    let g = ConstGauge::new(v);
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

/// One counter family with one label: `(label value, count)` pairs.
fn counters<'a>(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    label: &str,
    values: impl IntoIterator<Item = (&'a str, u64)>,
) -> std::fmt::Result {
    let values = values.into_iter().map(|(v, n)| (v, ConstCounter::new(n)));
    family(e, name, help, label, MetricType::Counter, values)
}

/// One family of `kind` with one label: `(label value, metric)` pairs.
fn family<'a, M: EncodeMetric>(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    label: &str,
    kind: MetricType,
    values: impl IntoIterator<Item = (&'a str, M)>,
) -> std::fmt::Result {
    let mut family = e.encode_descriptor(name, help, None, kind)?;
    for (value, metric) in values {
        let labels = [(label, value)];
        metric.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> std::fmt::Result {
        let state = &self.state;
        let now = Snapshot::now();
        let hub = state.hub.stats();
        let local = state.hub.local_channels();
        let (channels, subscriptions) = (local.len(), local.iter().map(|(_, n)| n).sum::<usize>());
        let e = &mut e;

        {
            let mut info = e.encode_descriptor(
                "switchboard_build",
                "The server's version.",
                None,
                MetricType::Info,
            )?;
            info.encode_info(&[("version", env!("CARGO_PKG_VERSION"))])?;
        }
        gauge(
            e,
            "switchboard_uptime_seconds",
            "Seconds since the server started.",
            counters::uptime().as_secs_f64(),
        )?;
        counter(
            e,
            "switchboard_connections_accepted",
            "Connections admitted by the connection limits.",
            now.accepted,
        )?;
        gauge(
            e,
            "switchboard_connections_open",
            "Connections open now.",
            now.open(),
        )?;
        gauge(
            e,
            "switchboard_connections_parked",
            "Idle connections parked now (no task of their own until they have work).",
            crate::park::parked(),
        )?;
        gauge(
            e,
            "switchboard_clients_live",
            "Live WebSocket, SSE and streaming connections registered now.",
            state.clients.len() as u64,
        )?;
        family(
            e,
            "switchboard_connections",
            "Live connections open now, by transport (websocket: a native WebSocket; \
             ws: a /ws session; sse and stream: /ch/NAME or /sub; longpoll: a long-poll \
             being held; custom: an endpoint the embedding program added).",
            "transport",
            MetricType::Gauge,
            Transport::ALL
                .iter()
                .map(|t| t.name())
                .zip(now.open_as.map(ConstGauge::new)),
        )?;
        counters(
            e,
            "switchboard_requests_admitted",
            "Requests admitted, by transport (a WebSocket or a stream is one request; \
             each poll and long-poll is one; publish: POST /ch/NAME).",
            "transport",
            TRANSPORTS.iter().copied().zip(now.admitted),
        )?;
        gauge(
            e,
            "switchboard_channels",
            "Channels with subscribers on this node.",
            channels as u64,
        )?;
        gauge(
            e,
            "switchboard_subscriptions",
            "Channel subscriptions on this node (every transport).",
            subscriptions as u64,
        )?;
        family(
            e,
            "switchboard_subscriptions_by_transport",
            "Channel subscriptions held now by live connections, by transport (as \
             switchboard_connections; a native WebSocket holds one).",
            "transport",
            MetricType::Gauge,
            Transport::ALL
                .iter()
                .map(|t| t.name())
                .zip(now.subscriptions_as().map(ConstGauge::new)),
        )?;
        counter(
            e,
            "switchboard_messages_published",
            "Messages this node published (the broker accepted them).",
            hub.published(),
        )?;
        counter(
            e,
            "switchboard_messages_delivered",
            "Messages queued to this node's subscribers, one per subscriber and message.",
            hub.delivered(),
        )?;
        counter(
            e,
            "switchboard_received_bytes",
            "Bytes read from client connections.",
            now.bytes_in,
        )?;
        counter(
            e,
            "switchboard_sent_bytes",
            "Bytes written to client connections.",
            now.bytes_out,
        )?;
        counters(
            e,
            "switchboard_slow_consumers",
            "Slow subscribers by policy: close = subscriptions closed, \
             drop_oldest = messages dropped.",
            "policy",
            [
                ("close", hub.slow_closed()),
                ("drop_oldest", hub.slow_dropped()),
            ],
        )?;
        counter(
            e,
            "switchboard_resets",
            "reset messages sent to subscribers whose history was gone.",
            hub.resets(),
        )?;
        counters(
            e,
            "switchboard_request_failures",
            "Failed requests (handshakes included) by error code.",
            "code",
            CODES
                .iter()
                .copied()
                .zip(now.failures)
                .filter(|(_, n)| *n > 0),
        )?;
        let statuses: Vec<(String, u64)> = now
            .statuses
            .iter()
            .map(|(s, n)| (s.to_string(), *n))
            .collect();
        counters(
            e,
            "switchboard_request_failures_by_status",
            "Failed requests (handshakes included) by HTTP status.",
            "status",
            statuses.iter().map(|(s, n)| (s.as_str(), *n)),
        )?;
        counters(
            e,
            "switchboard_admission_refusals",
            "Requests refused at admission, by reason.",
            "reason",
            now.refusals(),
        )?;
        let closes: Vec<(String, u64)> = CLOSE_CODES
            .iter()
            .zip(now.closes)
            .map(|(c, n)| (c.to_string(), n))
            .collect();
        counters(
            e,
            "switchboard_websocket_closes",
            "WebSocket close frames the server sent for its own reasons, by close code.",
            "code",
            closes.iter().map(|(c, n)| (c.as_str(), *n)),
        )?;
        let ops: Vec<_> = BrokerOp::ALL.map(|op| (op.name(), hub.broker(op))).to_vec();
        counters(
            e,
            "switchboard_broker_operations",
            "Broker operations by kind.",
            "op",
            ops.iter().map(|(op, s)| (*op, s.calls)),
        )?;
        counters(
            e,
            "switchboard_broker_errors",
            "Broker operations that failed, by kind.",
            "op",
            ops.iter().map(|(op, s)| (*op, s.errors)),
        )?;
        {
            let mut family = e.encode_descriptor(
                "switchboard_broker_operation_seconds",
                "Latency of broker operations, by kind.",
                None,
                MetricType::Histogram,
            )?;
            for (op, s) in &ops {
                let buckets: Vec<(f64, u64)> = LATENCY_BOUNDS
                    .iter()
                    .copied()
                    .chain([f64::INFINITY])
                    .zip(s.buckets.iter().copied())
                    .collect();
                let labels = [("op", *op)];
                family
                    .encode_family(&labels)?
                    .encode_histogram::<NoLabelSet>(s.sum_seconds, s.calls, &buckets, None)?;
            }
        }
        let process = Process::now();
        if let Some(rss) = process.rss_bytes {
            gauge(
                e,
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                rss,
            )?;
        }
        if let Some(fds) = process.open_fds {
            gauge(
                e,
                "process_open_fds",
                "Number of open file descriptors.",
                fds,
            )?;
        }
        if let Some(cpu) = process.cpu_seconds {
            let c = ConstCounter::new(cpu);
            c.encode(e.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                None,
                c.metric_type(),
            )?)?;
        }
        Ok(())
    }
}
