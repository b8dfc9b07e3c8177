//! `reconnect`: a reconnect storm against a restarted server, end to end. One run:
//!
//! 1. starts the server (`--server-cmd`, pinned with `--server-cpu`) and a publisher (the
//!    application's backend, [`publisher`]) sending `--rate` messages a second to the
//!    storm channel and `--control-rate` to the control channel;
//! 2. subscribes a control group (`--control` WebSocket clients of the control channel)
//!    and `--clients` storm clients of the storm channel (`--ws-percent` WebSocket, the
//!    rest SSE), in worker processes ([`worker`]) of at most `--per-process` clients each
//!    (every process here is capped at 20,000 open files), from `--sources` loopback
//!    addresses;
//! 3. measures `--before` seconds of steady state, then restarts the server: kills it
//!    (`--signal kill`: SIGKILL, a crash; `term`: a graceful shutdown) and starts it again
//!    on the same port, with a fresh in-memory broker (a new epoch: every resume is
//!    answered `reset`, then what the new server holds). The publisher holds off while
//!    the server is down and reconnects first, as a backend on its own connection would;
//!    the control group comes back next, at once, so it is connected again before the
//!    storm; then the storm's window opens and every storm client comes back at its own
//!    moment within `--over-ms`, resuming from its last cursor and following the retry
//!    rule of [`backoff`] whenever it is turned away. (`--cause blip` keeps the server
//!    and has the storm clients drop their connections instead: the same storm with the
//!    same epoch, so no `reset` and every message; the control group stays connected.)
//!    A restart that keeps the broker's data is the server's matter: with the in-memory
//!    broker there is none; a server on Redis (`serve --redis`) keeps its epochs and
//!    history, and the same run then expects every message and no `reset`;
//! 4. waits until every client is back, measures `--after` seconds more, stops the
//!    publisher and has every worker check every client against the publisher's
//!    acknowledgements ([`ledger`]).
//!
//! The JSON line reports: the time until all storm clients are subscribed again (from
//! the window's opening), attempts and refusals by kind, the check (clients with a gap no
//! `reset` announced: must be 0; resets), the server's RSS (steady before; peak from the
//! restart until all are back; at the end), server and generator CPU in each window, and
//! the delivery latency of live messages (sent after the receiving subscription was
//! answered: replays are not latency) for the control group and the storm clients in
//! each window: `before`, `during` (the window's opening until every client is back),
//! `after`.

pub mod backoff;
mod client;
pub mod ledger;
mod publisher;
mod wire;
mod worker;

pub use worker::{run as worker, WorkerArgs};

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::{mpsc, watch};

use crate::common::{self, r3, ServerArgs};
use crate::counting::WireCounters;
use crate::payload;
use crate::process::{self, ServerProcess};
use crate::stats::Histogram;
use publisher::Publisher;
use wire::{Attempts, Event, Windows, WorkerReport};

/// What ends the clients' connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Cause {
    /// The server is killed and started again (a new epoch with the in-memory broker).
    Restart,
    /// The storm clients drop their connections; the server stays.
    Blip,
}

/// How the server is stopped for a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Signal {
    /// SIGKILL: a crash.
    Kill,
    /// SIGTERM: a graceful shutdown (WebSocket close 1012, SSE `event: reconnect`).
    Term,
}

/// Options of `reconnect`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReconnectArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Storm clients.
    #[arg(long, default_value_t = 10_000)]
    pub clients: usize,
    /// Share of WebSocket storm clients in percent; the rest subscribe over SSE.
    #[arg(long, default_value_t = 70)]
    pub ws_percent: u32,
    /// Control group: WebSocket subscribers of the control channel, connected before the
    /// storm.
    #[arg(long, default_value_t = 500)]
    pub control: usize,
    /// Milliseconds of the window within which every client comes back.
    #[arg(long, default_value_t = 1000)]
    pub over_ms: u64,
    /// What ends the connections.
    #[arg(long, value_enum, default_value_t = Cause::Restart)]
    pub cause: Cause,
    /// How the server is stopped for a restart.
    #[arg(long, value_enum, default_value_t = Signal::Kill)]
    pub signal: Signal,
    /// Loopback source addresses (127.0.0.1 …) to spread connections over.
    #[arg(long, default_value_t = 4)]
    pub sources: usize,
    /// Storm channel.
    #[arg(long, default_value = "storm")]
    pub channel: String,
    /// Control channel.
    #[arg(long, default_value = "control")]
    pub control_channel: String,
    /// Messages a second to the storm channel (each one 10,000 deliveries at the
    /// default count: a burst the control group's messages may queue behind).
    #[arg(long, default_value_t = 2.0)]
    pub rate: f64,
    /// Messages a second to the control channel.
    #[arg(long, default_value_t = 20.0)]
    pub control_rate: f64,
    /// Payload bytes.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Seconds of steady state measured before the storm.
    #[arg(long, default_value_t = 5.0)]
    pub before: f64,
    /// Seconds measured after every client is back.
    #[arg(long, default_value_t = 5.0)]
    pub after: f64,
    /// Most clients per worker process.
    #[arg(long, default_value_t = 10_000)]
    pub per_process: usize,
    /// How clients retry (see `backoff`).
    #[command(flatten)]
    pub retry: backoff::RetryArgs,
    /// Seconds the clients may take to be back after the window opened.
    #[arg(long, default_value_t = 120.0)]
    pub timeout: f64,
    /// Seconds every client may take to catch up once publishing stopped.
    #[arg(long, default_value_t = 20.0)]
    pub drain: f64,
    /// Before starting, wait (up to 5 minutes) until fewer TCP sockets than this are in
    /// TIME_WAIT (`/proc/net/sockstat`): a run leaves one per client for a minute, each
    /// holding a local port of its source address (about 28,000 each). 0: do not wait.
    #[arg(long, default_value_t = 20_000)]
    pub max_time_wait: u64,
}

/// One worker process.
struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    control: bool,
}

impl Worker {
    fn send(&mut self, cmd: &wire::Command) -> std::io::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| std::io::Error::other("worker stdin closed"))?;
        let line = serde_json::to_string(cmd).map_err(std::io::Error::other)?;
        writeln!(stdin, "{line}")?;
        stdin.flush()
    }
}

/// Runs `reconnect` (the parent) and prints its JSON line. `self_cmd` re-invokes this
/// generator (program and leading arguments) for the workers.
pub fn run(args: ReconnectArgs, self_cmd: &[OsString]) -> std::io::Result<()> {
    if args.cause == Cause::Restart && args.server.server_cmd.is_none() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "a restart needs --server-cmd (the generator starts the server again)",
        ));
    }
    let time_wait = settle_time_wait(args.max_time_wait);
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let server = args.server.open()?;
    let rt = args.server.runtime()?;
    let mut workers = Vec::new();
    let result = rt.block_on(orchestrate(&args, server, self_cmd, &mut workers));
    // Closing stdin ends a worker; kill the ones that do not go.
    for w in &mut workers {
        drop(w.stdin.take());
    }
    process::reap(
        workers.iter_mut().map(|w| &mut w.child),
        Duration::from_secs(10),
    );
    let mut report = result?;
    if let Some(o) = report.as_object_mut() {
        o.insert("loadavg_before".into(), json!(loadavg.trim()));
        o.insert("time_wait_at_start".into(), json!(time_wait));
    }
    common::emit(&report);
    Ok(())
}

/// What the parent measures of the server's process (sampled every 20 ms).
#[derive(Debug, Default)]
struct Samples {
    /// (wall µs, pid, RSS KiB).
    rss: Vec<(u64, u32, u64)>,
}

impl Samples {
    fn peak(&self, pid: u32, from: u64, to: u64) -> Option<u64> {
        self.rss
            .iter()
            .filter(|(t, p, _)| *p == pid && (from..=to).contains(t))
            .map(|(_, _, k)| *k)
            .max()
    }

    fn last(&self, pid: u32, to: u64) -> Option<u64> {
        self.rss
            .iter()
            .rev()
            .find(|(t, p, _)| *p == pid && *t <= to)
            .map(|(_, _, k)| *k)
    }
}

/// CPU seconds of several processes, read at the edges of the windows.
fn cpu_of(pids: &[u32]) -> Vec<Option<f64>> {
    pids.iter().map(|p| process::cpu_seconds(*p).ok()).collect()
}

fn cpu_between(a: &[Option<f64>], b: &[Option<f64>]) -> Option<f64> {
    a.iter()
        .zip(b)
        .map(|(a, b)| Some(b.as_ref()? - a.as_ref()?))
        .sum()
}

async fn orchestrate(
    args: &ReconnectArgs,
    server: Option<ServerProcess>,
    self_cmd: &[OsString],
    workers: &mut Vec<Worker>,
) -> std::io::Result<serde_json::Value> {
    let mut server = server;
    let pid = Arc::new(AtomicU32::new(server.as_ref().map_or(0, |s| s.pid())));
    let samples = Arc::new(Mutex::new(Samples::default()));
    let sampler = tokio::spawn(sample(pid.clone(), samples.clone()));

    // The publishers first: a WebSocket client counts as subscribed at its first message.
    let counters = Arc::new(WireCounters::default());
    let (pause_tx, paused) = watch::channel(false);
    let (stop_tx, stop) = watch::channel(false);
    let publishers: Vec<Publisher> = [
        (&args.channel, args.rate),
        (&args.control_channel, args.control_rate),
    ]
    .into_iter()
    .map(|(channel, rate)| Publisher {
        addr: args.server.addr,
        channel: channel.clone(),
        rate,
        size: args.size,
        record: Arc::default(),
        counters: counters.clone(),
    })
    .collect();
    let pub_tasks: Vec<_> = publishers
        .iter()
        .map(|p| tokio::spawn(p.clone().run(paused.clone(), stop.clone())))
        .collect();
    wait_for_acks(&publishers, 1, Duration::from_secs(10)).await?;
    let progress = {
        let (publishers, samples) = (publishers.clone(), samples.clone());
        common::progress("reconnect".into(), move || {
            let rss = lock(&samples).rss.last().map_or(0, |s| s.2);
            let acked: Vec<String> = publishers
                .iter()
                .map(|p| format!("{} {}", p.channel, p.acked()))
                .collect();
            format!("published {}; server RSS {rss} KiB", acked.join(", "))
        })
    };

    // The workers, the control group first.
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let mut shares = vec![(
        args.control_channel.clone(),
        args.clients,
        args.control,
        100,
    )];
    let per = args.per_process.max(1);
    let processes = args.clients.div_ceil(per).max(1);
    let mut first = 0;
    for p in 0..processes {
        let n = (args.clients - first) / (processes - p);
        shares.push((args.channel.clone(), first, n, args.ws_percent));
        first += n;
    }
    for (i, (channel, first, n, ws)) in shares.into_iter().enumerate() {
        if n == 0 {
            continue;
        }
        workers.push(spawn_worker(
            args,
            self_cmd,
            &channel,
            first,
            n,
            ws,
            i == 0,
            workers.len(),
            &events_tx,
        )?);
    }
    drop(events_tx);
    let mut subscribed = 0;
    let mut failed_first = 0;
    for _ in 0..workers.len() {
        match next_event(&mut events, Duration::from_secs(330)).await? {
            (
                _,
                Event::Ready {
                    subscribed: s,
                    failed: f,
                },
            ) => {
                subscribed += s;
                failed_first += f;
            }
            (w, other) => return Err(unexpected(w, &other)),
        }
    }
    eprintln!("[reconnect] {subscribed} subscribed, {failed_first} failed; steady state");
    let worker_pids: Vec<u32> = workers.iter().map(|w| w.child.id()).collect();

    // Steady state.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before_start = payload::now_micros();
    let old_cpu = server.as_ref().and_then(|s| s.cpu_seconds().ok());
    let gen_cpu0 = cpu_of(&worker_pids);
    tokio::time::sleep(Duration::from_secs_f64(args.before)).await;
    let before_end = payload::now_micros();
    let old_cpu = old_cpu.zip(server.as_ref().and_then(|s| s.cpu_seconds().ok()));
    let gen_cpu1 = cpu_of(&worker_pids);
    let old_pid = pid.load(Ordering::Relaxed);

    // The storm's cause.
    let mut restart_ms = None;
    if args.cause == Cause::Restart {
        for w in workers.iter_mut() {
            w.send(&wire::Command::Down)?;
        }
        let _ = pause_tx.send(true);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let began = Instant::now();
        let old = server.take();
        let signal = args.signal;
        let server_args = args.server.clone();
        let new = tokio::task::spawn_blocking(move || {
            if let Some(mut s) = old {
                match signal {
                    Signal::Kill => s.kill(),
                    Signal::Term => s.stop(),
                }
            }
            server_args.open()
        })
        .await
        .map_err(std::io::Error::other)??;
        restart_ms = Some(r3(began.elapsed().as_secs_f64() * 1000.0));
        pid.store(new.as_ref().map_or(0, |s| s.pid()), Ordering::Relaxed);
        server = new;
        let acked: Vec<usize> = publishers.iter().map(Publisher::acked).collect();
        let _ = pause_tx.send(false);
        for (p, n) in publishers.iter().zip(acked) {
            wait_for_acks(std::slice::from_ref(p), n + 1, Duration::from_secs(10)).await?;
        }
    }
    let up_at = payload::now_micros();
    let rss_fresh = server.as_ref().and_then(|s| s.rss_kib().ok());
    // The control group is back before the window opens (it reconnected at once, as the
    // publisher did), so that through the storm it is what the issue asks about: clients
    // already connected, whose latency the storm must not blow up.
    let control_at = payload::now_micros();
    let mut back_at = BTreeMap::new();
    for w in workers.iter_mut().filter(|w| w.control) {
        w.send(&wire::Command::Storm {
            at_us: control_at,
            drop: false,
        })?;
    }
    let control_workers = workers.iter().filter(|w| w.control).count();
    while back_at.len() < control_workers {
        match next_event(&mut events, Duration::from_secs_f64(args.timeout)).await? {
            (w, Event::Back { last_us, .. }) if workers[w].control => {
                back_at.insert(w, last_us);
            }
            (w, other) => return Err(unexpected(w, &other)),
        }
    }
    let control_back_s = back_at
        .values()
        .max()
        .map(|t| r3(t.saturating_sub(control_at) as f64 / 1e6));
    // The window opens a moment later, so every worker has heard of it.
    let storm_at = payload::now_micros() + 50_000;
    for w in workers.iter_mut().filter(|w| !w.control) {
        w.send(&wire::Command::Storm {
            at_us: storm_at,
            drop: args.cause == Cause::Blip,
        })?;
    }
    let new_cpu0 = server.as_ref().and_then(|s| s.cpu_seconds().ok());
    let gen_cpu2 = cpu_of(&worker_pids);
    let deadline = Duration::from_secs_f64(args.timeout);
    let window_opened = Instant::now();
    let mut timed_out = false;
    while back_at.len() < workers.len() {
        let left = deadline.saturating_sub(window_opened.elapsed());
        match next_event(&mut events, left).await {
            Ok((w, Event::Back { last_us, .. })) => {
                back_at.insert(w, last_us);
            }
            Ok((w, other)) => return Err(unexpected(w, &other)),
            Err(_) => {
                timed_out = true;
                break;
            }
        }
    }
    let all_back = payload::now_micros();
    // The control group was back before the window opened: the last one back is a storm
    // client. Timed out, there is no such moment (the figure is then null).
    let back_us = (!timed_out).then(|| back_at.values().copied().max().unwrap_or(all_back));
    let new_cpu1 = server.as_ref().and_then(|s| s.cpu_seconds().ok());
    let gen_cpu3 = cpu_of(&worker_pids);
    match back_us {
        Some(t) => eprintln!(
            "[reconnect] all back after {:.2} s",
            t.saturating_sub(storm_at) as f64 / 1e6
        ),
        None => eprintln!(
            "[reconnect] not all back after {:.2} s (timed out)",
            all_back.saturating_sub(storm_at) as f64 / 1e6
        ),
    }

    // After: steady again.
    tokio::time::sleep(Duration::from_secs_f64(args.after)).await;
    let end = payload::now_micros();
    let new_cpu2 = server.as_ref().and_then(|s| s.cpu_seconds().ok());
    let gen_cpu4 = cpu_of(&worker_pids);
    let _ = stop_tx.send(true);
    for t in pub_tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    let windows = Windows {
        before: (before_start, before_end),
        during: (storm_at, all_back),
        after: (all_back, end),
    };
    let acks: Vec<Vec<_>> = publishers
        .iter()
        .map(|p| lock(&p.record).acks.clone())
        .collect();
    for w in workers.iter_mut() {
        let acks = if w.control { &acks[1] } else { &acks[0] };
        w.send(&wire::Command::Finish {
            acks: acks.clone(),
            windows,
        })?;
    }
    let mut reports: Vec<Option<WorkerReport>> = vec![None; workers.len()];
    for _ in 0..workers.len() {
        match next_event(&mut events, Duration::from_secs_f64(args.drain + 60.0)).await? {
            (w, Event::Done(r)) => reports[w] = Some(*r),
            (w, other) => return Err(unexpected(w, &other)),
        }
    }
    sampler.abort();
    progress.abort();
    let new_pid = pid.load(Ordering::Relaxed);
    let samples = lock(&samples);
    if let Some(s) = server.as_mut() {
        s.stop();
    }

    // The report.
    let (mut storm, mut control) = (Merged::default(), Merged::default());
    for (w, r) in workers.iter().zip(&reports) {
        if let Some(r) = r {
            if w.control {
                control.add(r);
            } else {
                storm.add(r);
            }
        }
    }
    let secs = |a: u64, b: u64| r3(b.saturating_sub(a) as f64 / 1e6);
    let per_s = |cpu: Option<f64>, a: u64, b: u64| {
        cpu.map(|c| r3(c / (b.saturating_sub(a) as f64 / 1e6).max(1e-3)))
    };
    let server_cpu_during = new_cpu0.zip(new_cpu1).map(|(a, b)| b - a);
    let server_cpu_after = new_cpu1.zip(new_cpu2).map(|(a, b)| b - a);
    let record = |i: usize| {
        let r = lock(&publishers[i].record);
        let mut post = [Histogram::new(), Histogram::new(), Histogram::new()];
        let ranges = [windows.before, windows.during, windows.after];
        for &(sent, rtt) in &r.round_trips {
            if let Some(w) = ranges.iter().position(|(a, b)| (*a..*b).contains(&sent)) {
                post[w].record(rtt);
            }
        }
        json!({
            "acked": r.acks.len(),
            "failed": r.failed,
            "connects": r.connects,
            "round_trip_ms": {
                "before": quantiles_ms(&post[0]),
                "during": quantiles_ms(&post[1]),
                "after": quantiles_ms(&post[2]),
            },
        })
    };
    Ok(json!({
        "mode": "reconnect",
        "server": args.server.label,
        "cause": format!("{:?}", args.cause).to_lowercase(),
        "signal": (args.cause == Cause::Restart).then(|| format!("{:?}", args.signal).to_lowercase()),
        "clients": args.clients,
        "ws": storm.ws,
        "sse": storm.sse,
        "control": args.control,
        "over_ms": args.over_ms,
        "rate": args.rate,
        "control_rate": args.control_rate,
        "size": args.size,
        "processes": workers.len(),
        "backoff": {
            "rule": match args.retry.retry_rule {
                backoff::Rule::Jitter => "hint + uniform(0, min(cap, base * 2^(failures-1)))",
                backoff::Rule::Sdk => "sdk: schedule = base + uniform(0, min(cap, base * 2^(failures-1)) - base); with a hint max(schedule, hint + uniform(0, min(hint, base)))",
            },
            "base_ms": args.retry.backoff_base_ms,
            "cap_ms": args.retry.backoff_cap_ms,
        },
        "subscribed_first": subscribed,
        "failed_first": failed_first,
        "restart_ms": restart_ms,
        "all_back": !timed_out,
        "all_back_s": back_us.map(|t| secs(storm_at, t)),
        "control_back_s": control_back_s,
        "back": {"storm": storm.back, "control": control.back},
        "back_ms": {"storm": quantiles_ms(&storm.back_us), "control": quantiles_ms(&control.back_us)},
        "attempts": {
            "storm": storm.storm.attempts,
            "storm_per_client": r3(storm.storm.attempts as f64 / args.clients.max(1) as f64),
            "most_by_one_client": storm.most,
            "control": control.storm.attempts,
        },
        "refusals": {"storm": storm.storm.failed, "control": control.storm.failed},
        "first_subscriptions": {"storm": storm.initial, "control": control.initial},
        "ends": {"storm": storm.ends, "control": control.ends},
        "check": {"storm": storm.check, "control": control.check},
        "behind_at_end": {"storm": storm.behind, "control": control.behind},
        "published": {"storm": record(0), "control": record(1)},
        "server_rss_kib": {
            "before": samples.last(old_pid, before_end),
            "before_peak": samples.peak(old_pid, before_start, before_end),
            "fresh": rss_fresh,
            "storm_peak": samples.peak(new_pid, up_at, all_back),
            "after_peak": samples.peak(new_pid, all_back, end),
            "end": samples.last(new_pid, end),
        },
        "server_cpu_per_s": {
            "before": per_s(old_cpu.map(|(a, b)| b - a), before_start, before_end),
            "during": per_s(server_cpu_during, storm_at, all_back),
            "after": per_s(server_cpu_after, all_back, end),
        },
        "server_cpu_s_during": server_cpu_during.map(r3),
        "generator_cpu_per_s": {
            "before": per_s(cpu_between(&gen_cpu0, &gen_cpu1), before_start, before_end),
            "during": per_s(cpu_between(&gen_cpu2, &gen_cpu3), storm_at, all_back),
            "after": per_s(cpu_between(&gen_cpu3, &gen_cpu4), all_back, end),
        },
        "latency_ms": {
            "control": windows_ms(&control.latency),
            "storm": windows_ms(&storm.latency),
        },
        "windows_s": {
            "before": secs(before_start, before_end),
            "during": secs(storm_at, all_back),
            "after": secs(all_back, end),
        },
    }))
}

/// Worker reports of one role, summed.
#[derive(Debug, Default)]
struct Merged {
    ws: u64,
    sse: u64,
    back: u64,
    back_us: Histogram,
    initial: Attempts,
    storm: Attempts,
    most: u64,
    ends: BTreeMap<String, u64>,
    behind: u64,
    check: ledger::Verdict,
    latency: BTreeMap<String, Histogram>,
}

impl Merged {
    fn add(&mut self, r: &WorkerReport) {
        self.ws += r.ws;
        self.sse += r.sse;
        self.back += r.back;
        self.back_us.merge(&Histogram::from_sparse(&r.back_us));
        self.initial.add(&r.initial);
        self.storm.add(&r.storm);
        self.most = self.most.max(r.most_storm_attempts);
        for (k, v) in &r.ends {
            *self.ends.entry(k.clone()).or_default() += v;
        }
        self.behind += r.behind;
        self.check.add(&r.check);
        for (k, h) in &r.latency_us {
            self.latency
                .entry(k.clone())
                .or_default()
                .merge(&Histogram::from_sparse(h));
        }
    }
}

fn quantiles_ms(h: &Histogram) -> serde_json::Value {
    let ms = |us: u64| r3(us as f64 / 1000.0);
    json!({
        "n": h.count(),
        "p50": ms(h.quantile(0.5)),
        "p99": ms(h.quantile(0.99)),
        "max": ms(h.max()),
    })
}

fn windows_ms(latency: &BTreeMap<String, Histogram>) -> serde_json::Value {
    latency
        .iter()
        .map(|(k, h)| (k.clone(), quantiles_ms(h)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

#[allow(clippy::too_many_arguments)]
fn spawn_worker(
    args: &ReconnectArgs,
    self_cmd: &[OsString],
    channel: &str,
    first: usize,
    n: usize,
    ws_percent: u32,
    control: bool,
    index: usize,
    events: &mpsc::UnboundedSender<(usize, Event)>,
) -> std::io::Result<Worker> {
    let (program, lead) = self_cmd
        .split_first()
        .ok_or_else(|| std::io::Error::other("no program to re-invoke"))?;
    let mut cmd = Command::new(program);
    cmd.args(lead)
        .arg("reconnect-worker")
        .arg("--addr")
        .arg(args.server.addr.to_string())
        .arg("--channel")
        .arg(channel)
        .arg("--clients")
        .arg(n.to_string())
        .arg("--first")
        .arg(first.to_string())
        .arg("--ws-percent")
        .arg(ws_percent.to_string())
        .arg("--sources")
        .arg(args.sources.to_string())
        .arg("--over-ms")
        // The control group comes back at once, before the storm's window opens.
        .arg(if control {
            "0".to_owned()
        } else {
            args.over_ms.to_string()
        })
        .args(args.retry.to_args())
        .arg("--drain")
        .arg(args.drain.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = cmd.spawn()?;
    let stdin = child.stdin.take();
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| std::io::Error::other("worker without stdout"))?;
    let events = events.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            match serde_json::from_str::<Event>(&line) {
                Ok(e) => {
                    if events.send((index, e)).is_err() {
                        break;
                    }
                }
                Err(e) => eprintln!("[reconnect] worker {index}: unreadable line ({e})"),
            }
        }
    });
    Ok(Worker {
        child,
        stdin,
        control,
    })
}

async fn next_event(
    events: &mut mpsc::UnboundedReceiver<(usize, Event)>,
    within: Duration,
) -> std::io::Result<(usize, Event)> {
    match tokio::time::timeout(within, events.recv()).await {
        Ok(Some(e)) => Ok(e),
        Ok(None) => Err(std::io::Error::other("every worker is gone")),
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "a worker did not answer in time",
        )),
    }
}

fn unexpected(worker: usize, event: &Event) -> std::io::Error {
    let what = match event {
        Event::Ready { .. } => "ready",
        Event::Back { .. } => "back",
        Event::Done(_) => "done",
    };
    std::io::Error::other(format!("worker {worker} said {what} out of turn"))
}

/// Waits until every publisher has at least `n` acknowledged publishes.
async fn wait_for_acks(
    publishers: &[Publisher],
    n: usize,
    within: Duration,
) -> std::io::Result<()> {
    let deadline = Instant::now() + within;
    while publishers.iter().any(|p| p.acked() < n) {
        if Instant::now() > deadline {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the publisher got no acknowledgement from the server",
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Samples the server's RSS every 20 ms (the PID changes at the restart).
async fn sample(pid: Arc<AtomicU32>, samples: Arc<Mutex<Samples>>) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tick.tick().await;
        let p = pid.load(Ordering::Relaxed);
        if p == 0 {
            continue;
        }
        if let Ok(kib) = process::rss_kib(p) {
            lock(&samples).rss.push((payload::now_micros(), p, kib));
        }
    }
}

/// Waits (up to 5 minutes) until fewer than `max` sockets are in TIME_WAIT; the count
/// then.
fn settle_time_wait(max: u64) -> Option<u64> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let now = process::sockstat_tcp("tw");
        match now {
            Some(n) if max > 0 && n >= max && Instant::now() < deadline => {
                eprintln!("[reconnect] {n} sockets in TIME_WAIT; waiting for fewer than {max}");
                std::thread::sleep(Duration::from_secs(5));
            }
            _ => return now,
        }
    }
}

/// Locks `m`, poisoned or not (a panicking client task leaves its figures readable).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
