//! A streaming response (SSE, HTTP streaming) parked in its event loop's lot
//! ([`crate::park`]) while it waits with nothing to write: its task ends, and the lot
//! keeps it in its idle form (the stream and the source, without the empty batch) and
//! polls it where it lies, made whole, when a message, a heartbeat or the peer wakes it.
//! Its messages are written from there, most often whole; only a write the socket does
//! not take at once (or a peer that closes) makes it leave: for its own task again, or
//! for good.
//!
//! Only a plain TCP stream as the front hands it over parks (counted, not TLS): the one
//! place below the accept loop that names `TcpStream`, as the socket has to move
//! between pollers.

use std::future::Future;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::task::Context;

use tokio::net::TcpStream;

use super::connections::Counted;
use super::streaming::{IdleStreaming, Streaming};
use super::{Connection, Phase};
use crate::io::Io;
use crate::park::{Parked, ParkedTcp, Woken};

/// Parks `conn`'s streaming response, when it is one on plain TCP, idle, and its loop
/// has a lot for its server: true when its task may end (the response is parked, or
/// dropped because its socket could not leave tokio's poller).
pub(super) fn park<S: Io>(conn: &mut Connection<S>) -> bool {
    let any: &mut dyn std::any::Any = conn;
    let Some(conn) = any.downcast_mut::<Connection<Counted<TcpStream>>>() else {
        return false;
    };
    let lot = match &conn.phase {
        Phase::Streaming(streaming) => streaming.hub_id().and_then(crate::park::lot_for),
        _ => None,
    };
    let Some(lot) = lot else {
        return false;
    };
    // Taken out to park; anything that does not park goes back as it was.
    let streaming = match std::mem::replace(&mut conn.phase, Phase::Done) {
        Phase::Streaming(streaming) => streaming,
        other => {
            conn.phase = other;
            return false;
        }
    };
    let idle = match streaming.into_idle() {
        Ok(idle) => idle,
        Err(streaming) => {
            conn.phase = Phase::Streaming(streaming);
            return false;
        }
    };
    match idle.try_map_io(|c| c.try_map(ParkedTcp::park)) {
        Ok(idle) => lot.park(Box::new(ParkedStreaming(Some(idle)))),
        Err(e) => tracing::debug!(error = %e, "a streaming response could not park"),
    }
    true
}

/// A parked streaming response, in its idle form (made whole for each poll); `None`
/// once it has left the lot.
struct ParkedStreaming(Option<IdleStreaming<Counted<ParkedTcp>>>);

/// Gives `streaming` a task of its own again, on the running loop.
fn resume(streaming: Streaming<Counted<ParkedTcp>>) {
    match streaming.try_map_io(|c| c.try_map(ParkedTcp::resume)) {
        Ok(streaming) => {
            tokio::spawn(Connection {
                phase: Phase::Streaming(streaming),
            });
        }
        Err(e) => tracing::debug!(error = %e, "a parked streaming response could not resume"),
    }
}

impl Parked for ParkedStreaming {
    fn poll_parked(&mut self, cx: &mut Context<'_>, leave: &dyn Fn(RawFd)) -> Woken {
        let Some(idle) = self.0.take() else {
            return Woken::Gone;
        };
        let fd = idle.io().get_ref().as_raw_fd();
        let mut streaming = idle.resume();
        if Pin::new(&mut streaming).poll(cx).is_ready() {
            leave(fd);
            return Woken::Gone;
        }
        match streaming.into_idle() {
            Ok(idle) => {
                self.0 = Some(idle);
                Woken::Stay
            }
            Err(streaming) => {
                leave(fd);
                resume(streaming);
                Woken::Gone
            }
        }
    }

    fn fd(&self) -> RawFd {
        self.0.as_ref().map_or(-1, |s| s.io().get_ref().as_raw_fd())
    }

    fn resume(self: Box<Self>) {
        if let Some(idle) = self.0 {
            resume(idle.resume());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A parked streaming response is boxed: the response's idle state (no batch) over a
    /// socket out of tokio's poller, 160 B (jemalloc's 160-byte class; 224 with the
    /// batch), where its task took a 384-byte cell and tokio's readiness block 256 bytes
    /// more.
    #[test]
    fn a_parked_streaming_response_fits_160_bytes() {
        let size = std::mem::size_of::<ParkedStreaming>();
        assert!(size <= 160, "a parked streaming response is {size} bytes");
    }
}
