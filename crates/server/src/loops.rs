//! Event loops beyond the first: `serve --workers N` runs N loops, the caller's runtime
//! and N − 1 threads each with its own tokio current-thread runtime. Each loop serves
//! what it accepted on its own thread, as uWebSockets does with one app per thread.
//!
//! Where the listener was bound with `SO_REUSEPORT` (as `server::start_workers` binds it
//! for several loops), every other loop binds a socket of its own to the same address, and
//! the kernel spreads new connections over them by a hash of their addresses, so the
//! loops get even shares (as nginx's `reuseport`). Otherwise (a listener the embedding
//! program bound) the loops accept from the one socket, whichever wakes first.
//!
//! Why not tokio's multi-thread scheduler: its tasks move between threads and its wakes
//! are not paced, so the fan-out's pacer cannot write to sockets itself (`hub::direct`).
//! At 10,000 subscribers × 10/s a delivery on two of its workers cost 1.24× what it costs
//! on one; on two loops 1.06× (`docs/perf/REPORT.md`, "Event loops", same run). Each loop
//! registers as one with the hub (`switchboard_hub::EventLoop`), whose fan-out then hands
//! every loop's pacer the writes to the sockets that loop serves and the wakes of the tasks
//! it runs, whichever loop published.
//!
//! Each loop stops accepting when the first does, and keeps serving its connections until
//! the first loop's drain ends; its tasks are dropped with its runtime then.

use std::os::fd::AsFd;
use std::thread::JoinHandle;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::accept::{listen_on, Accepting};

/// The loops beyond the first, running.
pub(crate) struct Loops {
    /// `true` once the first loop stopped accepting.
    stop: watch::Sender<bool>,
    /// `true` once the first loop's drain ended.
    end: watch::Sender<bool>,
    threads: Vec<JoinHandle<()>>,
}

impl Loops {
    /// Starts `n` more loops accepting from `listener` into `accepting`.
    pub(crate) fn start(
        n: usize,
        listener: &TcpListener,
        accepting: &Accepting,
    ) -> std::io::Result<Self> {
        let (stop, _) = watch::channel(false);
        let (end, _) = watch::channel(false);
        let mut threads = Vec::with_capacity(n);
        let own = socket2::SockRef::from(listener)
            .reuse_port()
            .unwrap_or(false);
        let backlog = accepting.front.state().config.limits.listen_backlog();
        for i in 1..=n {
            let shared = if own {
                // A socket of its own on the same address; watched by this loop's runtime.
                listen_on(listener.local_addr()?, backlog, true)?.into_std()?
            } else {
                std::net::TcpListener::from(listener.as_fd().try_clone_to_owned()?)
            };
            let (accepting, stopped, ended) =
                (accepting.clone(), stop.subscribe(), end.subscribe());
            let thread = std::thread::Builder::new()
                .name(format!("switchboard-loop-{i}"))
                .spawn(move || run(shared, accepting, stopped, ended))?;
            threads.push(thread);
        }
        Ok(Self { stop, end, threads })
    }

    /// The first loop stopped accepting: so do the others.
    pub(crate) fn stop_accepting(&self) {
        self.stop.send_replace(true);
    }

    /// The drain ended: every loop ends, its remaining tasks dropped.
    pub(crate) async fn end(self) {
        self.end.send_replace(true);
        let threads = self.threads;
        let _ = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
    }
}

/// One loop's thread: accepts until told to stop, serves until told to end.
fn run(
    listener: std::net::TcpListener,
    accepting: Accepting,
    mut stopped: watch::Receiver<bool>,
    mut ended: watch::Receiver<bool>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start an event loop");
            return;
        }
    };
    runtime.block_on(async move {
        let _event_loop = switchboard_hub::EventLoop::register();
        let _lot = crate::park::Lot::start_for(&accepting.front.state().hub);
        let listener = match TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "an event loop cannot watch the listener");
                return;
            }
        };
        accepting
            .until(listener, async {
                let _ = stopped.wait_for(|v| *v).await;
            })
            .await;
        let _ = ended.wait_for(|v| *v).await;
    });
}
