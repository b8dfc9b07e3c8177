//! The parent's side of `fanout --processes N`: starts the worker processes, follows each
//! one's reports on a thread of its own, and sums them.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::wire::{Report, Stop};
use super::worker::WorkerArgs;
use super::Tally;
use crate::process;
use crate::stats::Histogram;
use crate::subscriber::Target;

/// How long a worker may take to report after `Stop` (its subscribers take at most 10 s
/// to end).
const DONE_WITHIN: Duration = Duration::from_secs(20);

/// Worker processes, each with a share of the subscribers.
#[derive(Debug)]
pub struct Workers {
    procs: Vec<Proc>,
}

#[derive(Debug)]
struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    seen: Arc<Seen>,
}

/// What one worker reported last.
#[derive(Debug, Default)]
struct Seen {
    ready: AtomicU64,
    failed: AtomicU64,
    delivered: AtomicU64,
    read: AtomicU64,
    written: AtomicU64,
    done: Mutex<Option<Tally>>,
}

impl Workers {
    /// Starts `processes` workers (at most one per subscriber), splitting
    /// `target.subscribers` evenly.
    pub fn spawn(
        target: &Target,
        processes: usize,
        self_cmd: &[OsString],
    ) -> std::io::Result<Self> {
        let (program, lead) = self_cmd
            .split_first()
            .ok_or_else(|| std::io::Error::other("no program to start workers with"))?;
        let n = target.subscribers;
        // No more processes than subscribers: a worker with none would only cost a process.
        let processes = processes.clamp(1, n.max(1));
        let mut workers = Self { procs: Vec::new() };
        for p in 0..processes {
            let (first, end) = (n * p / processes, n * (p + 1) / processes);
            let mut child = Command::new(program)
                .args(lead)
                .arg("fanout-worker")
                .args(WorkerArgs::to_args(target, first, end - first))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()?;
            let out = child
                .stdout
                .take()
                .ok_or_else(|| std::io::Error::other("a worker without stdout"))?;
            let seen = Arc::new(Seen::default());
            let share = (end - first) as u64;
            let s = seen.clone();
            std::thread::spawn(move || follow(out, share, &s));
            workers.procs.push(Proc {
                stdin: child.stdin.take(),
                child,
                seen,
            });
        }
        Ok(workers)
    }

    fn sum(&self, f: impl Fn(&Seen) -> &AtomicU64) -> u64 {
        self.procs
            .iter()
            .map(|p| f(&p.seen).load(Ordering::Relaxed))
            .sum()
    }

    /// Subscribers ready and failed, over the workers that reported `Ready`.
    pub fn ready(&self) -> (u64, u64) {
        (self.sum(|s| &s.ready), self.sum(|s| &s.failed))
    }

    /// Messages received so far.
    pub fn delivered(&self) -> u64 {
        self.sum(|s| &s.delivered)
    }

    /// [`Self::delivered`] for another task.
    pub fn delivered_counter(&self) -> Box<dyn Fn() -> u64 + Send> {
        let seen: Vec<Arc<Seen>> = self.procs.iter().map(|p| p.seen.clone()).collect();
        Box::new(move || {
            seen.iter()
                .map(|s| s.delivered.load(Ordering::Relaxed))
                .sum()
        })
    }

    /// Bytes read and written so far.
    pub fn bytes(&self) -> (u64, u64) {
        (self.sum(|s| &s.read), self.sum(|s| &s.written))
    }

    /// Tells every worker to stop and sums their tallies; a worker that does not report
    /// counts every message of its share as missing.
    pub async fn finish(mut self, sent: u64) -> Tally {
        let line = serde_json::to_string(&Stop { sent }).unwrap_or_default();
        for p in &mut self.procs {
            if let Some(mut stdin) = p.stdin.take() {
                let _ = writeln!(stdin, "{line}");
            }
        }
        let deadline = Instant::now() + DONE_WITHIN;
        let mut tally = Tally::default();
        for p in &self.procs {
            loop {
                if let Some(t) = p.seen.done.lock().ok().and_then(|mut d| d.take()) {
                    tally.add(&t);
                    break;
                }
                if Instant::now() > deadline {
                    let share = p.seen.ready.load(Ordering::Relaxed)
                        + p.seen.failed.load(Ordering::Relaxed);
                    tally.missing += sent * share;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        tally
    }
}

impl Drop for Workers {
    /// Workers end when their stdin closes; one that does not within a few seconds is
    /// killed (only these children, by their handles).
    fn drop(&mut self) {
        for p in &mut self.procs {
            drop(p.stdin.take());
        }
        process::reap(
            self.procs.iter_mut().map(|p| &mut p.child),
            Duration::from_secs(5),
        );
    }
}

/// Reads one worker's reports until it ends. A worker that ends before `Ready` counts
/// its whole share (`share` subscribers) as failed.
fn follow(out: std::process::ChildStdout, share: u64, seen: &Seen) {
    let mut said_ready = false;
    for line in BufReader::new(out).lines() {
        let Ok(line) = line else { break };
        match serde_json::from_str::<Report>(&line) {
            Ok(Report::Ready { ready, failed }) => {
                said_ready = true;
                seen.failed.store(failed, Ordering::Relaxed);
                seen.ready.store(ready, Ordering::Relaxed);
            }
            Ok(Report::Progress {
                delivered,
                read,
                written,
            }) => {
                seen.delivered.store(delivered, Ordering::Relaxed);
                seen.read.store(read, Ordering::Relaxed);
                seen.written.store(written, Ordering::Relaxed);
            }
            Ok(Report::Done {
                delivered,
                missing,
                out_of_order,
                failed,
                latency,
            }) => {
                if let Ok(mut d) = seen.done.lock() {
                    *d = Some(Tally {
                        delivered,
                        missing,
                        out_of_order,
                        failed,
                        latency: Histogram::from_sparse(&latency),
                    });
                }
            }
            Err(e) => eprintln!("fanout: unreadable worker report ({e}): {line}"),
        }
    }
    if !said_ready {
        seen.failed.store(share, Ordering::Relaxed);
    }
}
