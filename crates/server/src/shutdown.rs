//! Graceful shutdown: one signal every connection watches, and a count of live
//! connections the server waits on (with a deadline) before exiting.
//!
//! Order on SIGTERM/SIGINT: the listener stops accepting; [`Shutdown::trigger`] fires
//! the signal; idle keep-alive connections close; each transport tells its client to
//! reconnect (WebSocket close 1012 "service restart", SSE/stream a final `reconnect`
//! event, long-polls answer at once with what they have); then [`Shutdown::drain`]
//! waits until every [`DrainGuard`] is dropped or the deadline passes.

use std::time::Duration;

use tokio::sync::{mpsc, watch};

/// Owner side: fires the signal and waits for connections to leave.
#[derive(Debug)]
pub struct Shutdown {
    signal: watch::Sender<bool>,
    guards: mpsc::Sender<()>,
    drained: mpsc::Receiver<()>,
}

/// Watcher side, cheap to clone: tells a connection it is time to go.
#[derive(Debug, Clone)]
pub struct ShutdownSignal {
    rx: watch::Receiver<bool>,
    // Weak, so that holding a signal (e.g. in shared state) never blocks the drain.
    guards: mpsc::WeakSender<()>,
}

/// Held by each live connection; the server's drain waits for all of them to drop.
#[derive(Debug, Clone)]
pub struct DrainGuard {
    _tx: mpsc::Sender<()>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A fresh, untriggered shutdown.
    pub fn new() -> Self {
        let (signal, _) = watch::channel(false);
        let (guards, drained) = mpsc::channel(1);
        Self {
            signal,
            guards,
            drained,
        }
    }

    /// A watcher for the signal.
    pub fn signal(&self) -> ShutdownSignal {
        ShutdownSignal {
            rx: self.signal.subscribe(),
            guards: self.guards.downgrade(),
        }
    }

    /// A guard a connection holds while it lives.
    pub fn guard(&self) -> DrainGuard {
        DrainGuard {
            _tx: self.guards.clone(),
        }
    }

    /// Tells every connection to go.
    pub fn trigger(&self) {
        self.signal.send_replace(true);
    }

    /// Waits until every guard is dropped or `deadline` passes; returns whether all left.
    pub async fn drain(self, deadline: Duration) -> bool {
        let Self {
            signal,
            guards,
            mut drained,
        } = self;
        signal.send_replace(true);
        drop(guards);
        // `recv` yields `None` once every sender (guard) is gone; nobody sends values.
        tokio::time::timeout(deadline, drained.recv()).await.is_ok()
    }
}

impl ShutdownSignal {
    /// Whether shutdown has begun.
    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }

    /// A guard for a connection that outlives its HTTP request (an upgraded WebSocket);
    /// `None` once the drain has finished.
    pub fn guard(&self) -> Option<DrainGuard> {
        self.guards.upgrade().map(|tx| DrainGuard { _tx: tx })
    }

    /// Resolves once shutdown begins (at once if it already has).
    pub async fn wait(&self) {
        let mut rx = self.rx.clone();
        // An Err means the owner is gone, which also means shutting down.
        let _ = rx.wait_for(|v| *v).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn drain_waits_for_guards_and_honours_deadline() {
        let s = Shutdown::new();
        let sig = s.signal();
        let g = s.guard();
        let waiter = tokio::spawn(async move {
            sig.wait().await;
            drop(g);
        });
        assert!(s.drain(Duration::from_secs(5)).await);
        waiter.await.expect("waiter task");

        let s = Shutdown::new();
        let _stuck = s.guard();
        assert!(!s.drain(Duration::from_millis(20)).await);
    }
}
