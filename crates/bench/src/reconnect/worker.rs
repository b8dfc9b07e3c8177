//! The hidden `reconnect-worker` process: a share of the clients of one channel (every
//! process here is capped at 20,000 open files). It subscribes them, says `ready`, then
//! follows the parent's commands ([`Command`]) on stdin, says `back` once every client is
//! back after the storm, and at `finish` waits for every client to catch up, checks each
//! ([`ledger::check`]) and prints its report ([`WorkerReport`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::Instant;

use super::backoff::RetryArgs;
use super::client::{self, Ctx, Kind, Phase, State, Tally};
use super::ledger::{self, Acks};
use super::lock;
use super::wire::{Command, Event, Windows, WorkerReport};
use crate::common::ServerArgs;
use crate::counting::WireCounters;
use crate::net;
use crate::payload;
use crate::stats::Histogram;

/// Options of `reconnect-worker` (set by the parent).
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[arg(long)]
    pub channel: String,
    #[arg(long)]
    pub clients: usize,
    /// Index of this worker's first client among all (spreads source addresses and
    /// transports).
    #[arg(long, default_value_t = 0)]
    pub first: usize,
    /// Share of WebSocket clients, the rest SSE.
    #[arg(long, default_value_t = 70)]
    pub ws_percent: u32,
    #[arg(long, default_value_t = 4)]
    pub sources: usize,
    #[arg(long, default_value_t = 1000)]
    pub over_ms: u64,
    #[command(flatten)]
    pub retry: RetryArgs,
    /// Seconds every client may take to catch up at `finish`.
    #[arg(long, default_value_t = 20.0)]
    pub drain: f64,
}

/// Whether global client `g` is a WebSocket: `percent` of every hundred consecutive
/// clients, spread evenly (the rest SSE).
pub(super) fn is_ws(g: usize, percent: u32) -> bool {
    let p = percent.min(100) as usize;
    (g + 1) * p / 100 != g * p / 100
}

/// Concurrent first subscriptions per process.
const FIRST_AT_ONCE: usize = 256;

/// Runs one worker.
pub fn run(args: WorkerArgs) -> std::io::Result<()> {
    net::check_loopback(args.server.addr)?;
    let rt = args.server.runtime()?;
    rt.block_on(work(args))
}

async fn work(args: WorkerArgs) -> std::io::Result<()> {
    let commands = read_commands();
    let (phase_tx, phase) = watch::channel(Phase::Steady);
    let (stop_tx, stop) = watch::channel(false);
    let ctx = Arc::new(Ctx {
        addr: args.server.addr,
        path: format!("/ch/{}", args.channel),
        sources: args.sources,
        backoff: args.retry.backoff(),
        attempt_timeout: Duration::from_secs_f64(args.retry.attempt_timeout),
        over: Duration::from_millis(args.over_ms),
        clients: args.clients,
        phase,
        stop,
        counters: Arc::new(WireCounters::default()),
        tally: Mutex::new(Tally::default()),
    });
    let gate = Arc::new(Semaphore::new(FIRST_AT_ONCE));
    let mut states = Vec::with_capacity(args.clients);
    let mut tasks = Vec::with_capacity(args.clients);
    let (mut ws, mut sse) = (0, 0);
    for j in 0..args.clients {
        let g = args.first + j;
        let kind = if is_ws(g, args.ws_percent) {
            ws += 1;
            Kind::Ws
        } else {
            sse += 1;
            Kind::Sse
        };
        let state = Arc::new(Mutex::new(State::default()));
        states.push(state.clone());
        let (ctx, gate) = (ctx.clone(), gate.clone());
        tasks.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await.ok();
            client::run(ctx, j, g, kind, state, permit).await;
        }));
    }
    let progress = {
        let (states, ctx) = (states.clone(), ctx.clone());
        let label = format!("reconnect {} {}+{}", args.channel, args.first, args.clients);
        crate::common::progress(label, move || {
            let (ready, back) = states.iter().fold((0, 0), |(r, b), s| {
                let s = lock(s);
                (r + u64::from(s.ready), b + u64::from(s.back_us.is_some()))
            });
            let t = lock(&ctx.tally);
            format!(
                "subscribed {ready}, back {back}, attempts {} + {}",
                t.initial.attempts, t.storm.attempts
            )
        })
    };

    // The first subscriptions.
    let deadline = Instant::now() + Duration::from_secs(300);
    let subscribed = loop {
        let ready = states.iter().filter(|s| lock(s).ready).count() as u64;
        if ready == args.clients as u64 || Instant::now() > deadline {
            break ready;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    emit(&Event::Ready {
        subscribed,
        failed: args.clients as u64 - subscribed,
    });

    // The parent's commands; `back` once every client is back after the storm.
    let mut storm_at_us = 0;
    let mut commands = commands;
    let mut back_said = false;
    let mut watch_back = tokio::time::interval(Duration::from_millis(20));
    let finish = loop {
        tokio::select! {
            cmd = commands.recv() => match cmd {
                Some(Command::Down) => {
                    let _ = phase_tx.send(Phase::Down);
                }
                Some(Command::Storm { at_us, drop }) => {
                    let wait = Duration::from_micros(at_us.saturating_sub(payload::now_micros()));
                    storm_at_us = at_us;
                    let _ = phase_tx.send(Phase::Storm { at: Instant::now() + wait, at_us, drop });
                }
                Some(Command::Finish { acks, windows }) => break Some((acks, windows)),
                None => break None,
            },
            _ = watch_back.tick(), if !back_said && storm_at_us > 0 => {
                let back: Vec<u64> = states.iter().filter_map(|s| lock(s).back_us).collect();
                if back.len() == args.clients {
                    back_said = true;
                    emit(&Event::Back {
                        clients: back.len() as u64,
                        last_us: back.iter().copied().max().unwrap_or(0),
                    });
                }
            }
        }
    };
    let Some((acks, windows)) = finish else {
        // The parent is gone: nothing to report to.
        let _ = stop_tx.send(true);
        return Ok(());
    };

    // Catch up, then check.
    let acks = Acks::new(acks);
    let last = acks.last_seq();
    let deadline = Instant::now() + Duration::from_secs_f64(args.drain);
    let behind = loop {
        let behind = match last {
            Some(last) => states.iter().filter(|s| !lock(s).log.has(last)).count(),
            None => 0,
        };
        if behind == 0 || Instant::now() > deadline {
            break behind as u64;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _ = stop_tx.send(true);
    progress.abort();
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    let report = report(
        &args,
        (ws, sse),
        &states,
        &ctx,
        &acks,
        windows,
        storm_at_us,
        behind,
    );
    emit(&Event::Done(Box::new(report)));
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn report(
    args: &WorkerArgs,
    (ws, sse): (u64, u64),
    states: &[Arc<Mutex<State>>],
    ctx: &Ctx,
    acks: &Acks,
    windows: Windows,
    storm_at_us: u64,
    behind: u64,
) -> WorkerReport {
    let mut check = ledger::Verdict::default();
    let mut back = Histogram::new();
    let mut most = 0;
    let mut latency = [Histogram::new(), Histogram::new(), Histogram::new()];
    let ranges = [windows.before, windows.during, windows.after];
    for s in states {
        let s = lock(s);
        check.add(&ledger::check(&s.log, acks));
        if let Some(b) = s.back_us {
            back.record(b.saturating_sub(storm_at_us));
        }
        most = most.max(s.storm_attempts);
        for &(sent, lat) in &s.samples {
            if let Some(i) = ranges.iter().position(|(a, b)| (*a..*b).contains(&sent)) {
                latency[i].record(u64::from(lat));
            }
        }
    }
    let tally = lock(&ctx.tally);
    WorkerReport {
        clients: args.clients as u64,
        ws,
        sse,
        back: back.count(),
        back_us: back.to_sparse(),
        initial: tally.initial.clone(),
        storm: tally.storm.clone(),
        most_storm_attempts: most,
        ends: tally.ends.clone(),
        behind,
        check,
        latency_us: ["before", "during", "after"]
            .iter()
            .zip(&latency)
            .map(|(name, h)| ((*name).to_owned(), h.to_sparse()))
            .collect(),
    }
}

/// The parent's commands from stdin (a line each; the channel closes with stdin).
fn read_commands() -> mpsc::UnboundedReceiver<Command> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            match serde_json::from_str(&line) {
                Ok(cmd) => {
                    if tx.send(cmd).is_err() {
                        break;
                    }
                }
                Err(e) => eprintln!("reconnect-worker: unreadable command ({e}): {line}"),
            }
        }
    });
    rx
}

fn emit(event: &Event) {
    match serde_json::to_string(event) {
        Ok(line) => println!("{line}"),
        Err(e) => eprintln!("reconnect-worker: cannot write an event: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports_are_shared_out_evenly() {
        let ws = (0..10_000).filter(|&g| is_ws(g, 70)).count();
        assert_eq!(ws, 7000);
        // Every run of ten has seven, not seven in a row then three.
        for start in (0..1000).step_by(10) {
            assert_eq!((start..start + 10).filter(|&g| is_ws(g, 70)).count(), 7);
        }
        assert!((0..100).all(|g| is_ws(g, 100)));
        assert!((0..100).all(|g| !is_ws(g, 0)));
        assert!((0..100).all(|g| is_ws(g, 250)), "clamped to 100 %");
    }
}
