//! The log of one connection: a `conn` span (a number, the peer's address, then the
//! transport, the channel count and why it closed, as they become known) that every
//! line logged while serving the connection sits in, an `opened` line when it is
//! accepted and a `closed` line (with its duration) when the last task serving it ends —
//! the front's own task, or the WebSocket's after an upgrade. Opened by the connection
//! front ([`crate::front`], which every connection passes); the front and the transports
//! note into it, so it sits below both.
//!
//! All of it at `debug` (target `switchboard_server::conn_log`): when that level
//! is off, [`ConnLog::open`] is a level check and nothing else, no connection holds a
//! byte more, and [`spawn`] and [`note`] find no log and do nothing. Nothing is
//! formatted per message in any case: the span's fields are written when recorded.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tracing::field::{Empty, Value};
use tracing::{Instrument, Span};

tokio::task_local! {
    /// The log of the connection the running task serves.
    static CURRENT: Arc<ConnLog>;
}

/// Numbers connections in the order they were accepted (only those logged).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// One connection's span and when it opened; dropping the last reference logs `closed`.
#[derive(Debug)]
pub(crate) struct ConnLog {
    span: Span,
    opened: Instant,
}

impl ConnLog {
    /// The log of a connection just accepted from `peer`, or `None` when debug lines are
    /// off for it (then nothing is formatted or allocated).
    pub(crate) fn open(peer: SocketAddr) -> Option<Arc<Self>> {
        let span = tracing::debug_span!(
            "conn",
            conn = NEXT_ID.fetch_add(1, Ordering::Relaxed),
            %peer,
            transport = Empty,
            channels = Empty,
            close = Empty,
        );
        if span.is_disabled() {
            return None;
        }
        span.in_scope(|| tracing::debug!("opened"));
        Some(Arc::new(Self {
            span,
            opened: Instant::now(),
        }))
    }

    /// `fut` run in this connection's span, where [`note`] and [`spawn`] find this log.
    pub(crate) fn scope<F: Future>(self: Arc<Self>, fut: F) -> impl Future<Output = F::Output> {
        let span = self.span.clone();
        CURRENT.scope(self, fut).instrument(span)
    }
}

impl Drop for ConnLog {
    fn drop(&mut self) {
        let duration_ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.span
            .in_scope(|| tracing::debug!(duration_ms, "closed"));
    }
}

/// Records `field` (`transport`, `channels` or `close`) on the running task's
/// connection, if it is logged.
pub(crate) fn note(field: &'static str, value: impl Value) {
    let _ = CURRENT.try_with(|log| {
        log.span.record(field, value);
    });
}

/// Whether the running task serves a logged connection.
pub(crate) fn logged() -> bool {
    CURRENT.try_with(|_| ()).is_ok()
}

/// Spawns `task`, in the running task's connection log when there is one (a WebSocket's
/// task after the upgrade: the connection closes when it ends).
pub(crate) fn spawn<F>(task: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    match CURRENT.try_with(Arc::clone) {
        Ok(log) => {
            tokio::spawn(log.scope(task));
        }
        Err(_) => {
            tokio::spawn(task);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tracing::Level;

    /// Below `debug` a connection gets no log: no span, no number taken, nothing held.
    #[test]
    fn no_log_and_no_number_below_debug() {
        let peer = SocketAddr::from(([127, 0, 0, 1], 1));
        let at = |level| {
            tracing_subscriber::fmt()
                .with_max_level(level)
                .with_writer(std::io::sink)
                .finish()
        };
        tracing::subscriber::with_default(at(Level::INFO), || {
            let before = NEXT_ID.load(Ordering::Relaxed);
            assert!(ConnLog::open(peer).is_none());
            assert_eq!(NEXT_ID.load(Ordering::Relaxed), before);
        });
        tracing::subscriber::with_default(at(Level::DEBUG), || {
            let log = ConnLog::open(peer).unwrap();
            assert!(!log.span.is_disabled());
        });
    }
}
