//! The body of a response that streams (SSE and HTTP streaming): opening bytes, then one
//! chunk per item in the transport's format (shared `Bytes`, encoded once per message),
//! heartbeats while idle, and a farewell chunk when the server shuts down or the backend
//! API disconnects the client, after which the body ends.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;

use crate::clients::ClientHandle;
use crate::hub::{Hub, Item};
use crate::shutdown::ShutdownSignal;
use crate::transport::Feed;

/// Encodes one item in a transport's format.
pub type Encode = fn(&Item) -> Bytes;

/// The parts of a streaming body.
#[derive(Debug)]
pub struct Live {
    pub feed: Feed,
    pub encode: Encode,
    /// Sent first, in order (e.g. `retry:` hint, padding prelude).
    pub head: VecDeque<Bytes>,
    pub heartbeat_every: Duration,
    pub heartbeat: Bytes,
    /// Last chunk on shutdown (tells the client to reconnect).
    pub on_shutdown: Bytes,
    /// Last chunk when the backend API disconnects the client.
    pub on_kick: Bytes,
    pub shutdown: ShutdownSignal,
    pub client: ClientHandle,
    pub presence: PresenceGuard,
}

/// Removes a client from its channels' presence when the connection ends.
#[derive(Debug)]
pub struct PresenceGuard {
    hub: Hub,
    client: String,
    channels: Vec<String>,
}

impl PresenceGuard {
    /// Joins `client` to `channels` (each already allowed presence by its namespace).
    pub fn join(hub: &Hub, client: &ClientHandle, channels: Vec<String>) -> Self {
        for c in &channels {
            hub.join(c, client.id(), client.user());
        }
        Self {
            hub: hub.clone(),
            client: client.id().to_owned(),
            channels,
        }
    }
}

impl PresenceGuard {
    /// Whether this guard covers `channel`.
    pub fn is_for(&self, channel: &str) -> bool {
        self.channels.iter().any(|c| c == channel)
    }
}

impl Drop for PresenceGuard {
    fn drop(&mut self) {
        for c in &self.channels {
            self.hub.leave(c, &self.client);
        }
    }
}

struct Running {
    live: Live,
    ticker: tokio::time::Interval,
    done: bool,
}

impl Running {
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(b) = self.live.head.pop_front() {
            return Some(b);
        }
        if self.done {
            return None;
        }
        if let Some(item) = self.live.feed.try_next() {
            return Some((self.live.encode)(&item));
        }
        let l = &mut self.live;
        tokio::select! {
            biased;
            () = l.shutdown.wait() => {
                self.done = true;
                Some(l.on_shutdown.clone())
            }
            () = l.client.kicked() => {
                self.done = true;
                Some(l.on_kick.clone())
            }
            item = l.feed.next() => Some((l.encode)(&item)),
            _ = self.ticker.tick() => Some(l.heartbeat.clone()),
        }
    }
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
