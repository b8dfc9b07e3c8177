//! The hidden `fanout-worker` process: one share of a `fanout` run's subscribers. It
//! connects them, reports [`Report::Ready`], then its counts every 20 ms until the
//! parent's [`Stop`] (or its stdin closing), and last its [`Report::Done`].

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::wire::{Report, Stop};
use super::{settle, Local};
use crate::common::ServerArgs;
use crate::counting::WireCounters;
use crate::net;
use crate::subscriber::{Target, Transport};

/// Options of `fanout-worker` (set by the parent).
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[arg(long)]
    pub channel: String,
    #[arg(long, value_enum)]
    pub transport: Transport,
    #[arg(long)]
    pub sources: usize,
    #[arg(long)]
    pub poll_interval_ms: u64,
    /// Subscribers in the whole run.
    #[arg(long)]
    pub subscribers: usize,
    /// This share: subscribers `first..first + count` of the run.
    #[arg(long)]
    pub first: usize,
    #[arg(long)]
    pub count: usize,
}

impl WorkerArgs {
    /// The arguments that give `target`'s share `first..first + count`.
    pub(super) fn to_args(target: &Target, first: usize, count: usize) -> Vec<String> {
        vec![
            "--addr".into(),
            target.server.addr.to_string(),
            "--channel".into(),
            target.channel.clone(),
            "--transport".into(),
            target.transport.name().into(),
            "--sources".into(),
            target.sources.to_string(),
            "--poll-interval-ms".into(),
            target.poll_interval_ms.to_string(),
            "--subscribers".into(),
            target.subscribers.to_string(),
            "--first".into(),
            first.to_string(),
            "--count".into(),
            count.to_string(),
        ]
    }
}

/// Runs one worker.
pub fn run(args: WorkerArgs) -> std::io::Result<()> {
    net::check_loopback(args.server.addr)?;
    let rt = args.server.runtime()?;
    rt.block_on(work(args))
}

async fn work(args: WorkerArgs) -> std::io::Result<()> {
    let target = Target {
        server: args.server.clone(),
        channel: args.channel.clone(),
        transport: args.transport,
        sources: args.sources,
        poll_interval_ms: args.poll_interval_ms,
        subscribers: args.subscribers,
    };
    let counters = Arc::new(WireCounters::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let end = args.first.saturating_add(args.count);
    let local = Local::spawn(&target, args.first..end, &counters, &stop_rx);
    let (ready, failed) = settle(args.count, || local.ready()).await;
    report(&Report::Ready { ready, failed })?;
    // The parent's one line; a closed stdin (the parent gone) stops the share too.
    let mut stop = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).ok()?;
        serde_json::from_str::<Stop>(&line).ok()
    });
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let sent = loop {
        tokio::select! {
            s = &mut stop => break s.ok().flatten().map_or(0, |s| s.sent),
            _ = tick.tick() => report(&Report::Progress {
                delivered: local.delivered(),
                read: counters.read(),
                written: counters.written(),
            })?,
        }
    };
    let _ = stop_tx.send(true);
    let tally = local.finish(sent).await;
    report(&Report::Done {
        delivered: tally.delivered,
        missing: tally.missing,
        out_of_order: tally.out_of_order,
        failed: tally.failed,
        latency: tally.latency.to_sparse(),
    })
}

fn report(r: &Report) -> std::io::Result<()> {
    let line = serde_json::to_string(r).map_err(std::io::Error::other)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}
