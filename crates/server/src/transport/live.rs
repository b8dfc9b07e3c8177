//! The body of a response that streams (SSE and HTTP streaming): opening bytes, then one
//! chunk per event in the transport's format (the hub's shared encoding of the message),
//! heartbeats while idle, and a farewell chunk when the connection must end — server
//! shutdown, a backend disconnect, or a subscription closed by the hub (slow consumer,
//! broker lost) — after which the body ends.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use switchboard_hub::{CloseReason, Message, WireFormat};

use crate::clients::ClientHandle;
use crate::shutdown::ShutdownSignal;
use crate::transport::{Feed, FeedEvent};

/// Last chunks, by why the connection ends.
#[derive(Debug, Clone)]
pub struct Farewells {
    /// Server shutdown: come back (to this or another node) from your cursor.
    pub reconnect: Bytes,
    /// The hub closed the subscription (slow consumer, broker trouble): resume from your
    /// cursor.
    pub resume: Bytes,
    /// The backend API disconnected this client.
    pub disconnect: Bytes,
}

/// The parts of a streaming body.
#[derive(Debug)]
pub struct Live {
    pub feed: Feed,
    pub format: WireFormat,
    /// Sent first, in order (e.g. `retry:` hint, padding prelude).
    pub head: VecDeque<Bytes>,
    pub heartbeat_every: Duration,
    pub heartbeat: Bytes,
    pub farewells: Farewells,
    pub shutdown: ShutdownSignal,
    pub client: ClientHandle,
}

struct Running {
    live: Live,
    ticker: tokio::time::Interval,
    done: bool,
}

impl Running {
    fn chunk(&mut self, ev: FeedEvent) -> Bytes {
        match ev {
            FeedEvent::Message(m) => encoded(&m, self.live.format),
            FeedEvent::Closed { reason, .. } => {
                self.done = true;
                match reason {
                    CloseReason::Disconnected => self.live.farewells.disconnect.clone(),
                    CloseReason::Shutdown => self.live.farewells.reconnect.clone(),
                    _ => self.live.farewells.resume.clone(),
                }
            }
        }
    }

    async fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(b) = self.live.head.pop_front() {
            return Some(b);
        }
        if self.done {
            return None;
        }
        if let Some(ev) = self.live.feed.try_next() {
            return Some(self.chunk(ev));
        }
        let l = &mut self.live;
        let ev = tokio::select! {
            biased;
            () = l.shutdown.wait() => {
                self.done = true;
                return Some(l.farewells.reconnect.clone());
            }
            () = l.client.kicked() => {
                self.done = true;
                return Some(l.farewells.disconnect.clone());
            }
            ev = l.feed.next() => ev,
            _ = self.ticker.tick() => return Some(l.heartbeat.clone()),
        };
        Some(self.chunk(ev))
    }
}

/// A message in `format`: the hub's cached, shared bytes.
pub fn encoded(m: &Message, format: WireFormat) -> Bytes {
    m.encoded(format).clone()
}

/// Turns `live` into a response body.
pub fn body(live: Live) -> axum::body::Body {
    let period = live.heartbeat_every;
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let running = Running {
        live,
        ticker,
        done: false,
    };
    let stream = futures_util::stream::unfold(running, |mut r| async move {
        let chunk = r.next_chunk().await?;
        Some((Ok::<Bytes, Infallible>(chunk), r))
    });
    axum::body::Body::from_stream(stream)
}
