//! Graceful shutdown: one signal every connection watches.
//!
//! Order on SIGTERM/SIGINT: the listener stops accepting; [`Shutdown::trigger`] fires
//! the signal; idle keep-alive connections close; each transport tells its client to
//! reconnect (WebSocket close 1012 "service restart", SSE/stream a final `reconnect`
//! event, long-polls answer at once with what they have); then the server waits until
//! every connection has left or the drain deadline passes
//! ([`crate::front::Connections::wait_idle`]: a connection counts from accept until its
//! stream is dropped, wherever it went).

use tokio::sync::watch;

/// Owner side: fires the signal.
#[derive(Debug)]
pub struct Shutdown {
    signal: watch::Sender<bool>,
}

/// Watcher side, cheap to clone: tells a connection it is time to go.
#[derive(Debug, Clone)]
pub struct ShutdownSignal {
    rx: watch::Receiver<bool>,
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
        Self { signal }
    }

    /// A watcher for the signal.
    pub fn signal(&self) -> ShutdownSignal {
        ShutdownSignal {
            rx: self.signal.subscribe(),
        }
    }

    /// Tells every connection to go.
    pub fn trigger(&self) {
        self.signal.send_replace(true);
    }
}

impl ShutdownSignal {
    /// Whether shutdown has begun.
    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
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
    async fn the_signal_reaches_every_watcher_and_late_ones_at_once() {
        let s = Shutdown::new();
        let early = s.signal();
        let waiter = tokio::spawn(async move { early.wait().await });
        assert!(!s.signal().is_triggered());
        s.trigger();
        waiter.await.expect("waiter task");
        let late = s.signal();
        assert!(late.is_triggered());
        late.wait().await;
        drop(s);
    }
}
