//! The body of a response that streams (SSE and HTTP streaming): opening bytes, then one
//! chunk per event in the transport's format (the hub's shared encoding of the message),
//! heartbeats while idle, and a farewell chunk when the connection must end — server
//! shutdown, a backend disconnect, or a subscription closed by the hub (slow consumer,
//! broker lost) — after which the body ends.
//!
//! Waiting costs no future per connection: a [`Source`] is polled ([`Source::poll_chunk`])
//! on its subscriptions and its heartbeat timer only. Shutdown and backend disconnects
//! reach it through the hub, which closes the subscriptions of every connection
//! concerned (reason `Shutdown` or `Disconnected`, hence the farewell); the shutdown
//! signal and the client's kick are also checked when the source is made and at every
//! heartbeat, so a connection that subscribed while the hub was closing learns it at
//! its next heartbeat at the latest.
//!
//! [`response`] builds the HTTP response. Its chunks come from a [`Source`], which the
//! response carries twice: as its body (for a connection hyper serves), and as a
//! [`Handoff`] extension that a connection the server answers itself
//! ([`crate::takeover`]) claims with [`claim`], so it drives the source inline instead
//! of through a boxed body. Whoever takes the source first gets it; the other finds the
//! slot empty (an empty body ends at once).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::FutureExt;
use switchboard_hub::{CloseReason, Message, WireFormat};

use crate::clients::ClientHandle;
use crate::shutdown::ShutdownSignal;
use crate::transport::{streaming_headers, with_client_id, Feed, FeedEvent};

/// Last chunks, by why the connection ends.
#[derive(Debug)]
pub struct Farewells {
    /// Server shutdown: come back (to this or another node) from your cursor.
    pub reconnect: &'static [u8],
    /// The hub closed the subscription (slow consumer, broker trouble): resume from your
    /// cursor.
    pub resume: &'static [u8],
    /// The backend API disconnected this client.
    pub disconnect: &'static [u8],
}

/// What a transport's stream looks like (one `static` per transport).
#[derive(Debug)]
pub struct Style {
    /// The content type of the response.
    pub content_type: &'static str,
    /// The hub encoding each message is sent in.
    pub format: WireFormat,
    /// Sent when idle for a heartbeat period.
    pub heartbeat: &'static [u8],
    pub farewells: Farewells,
}

/// The parts of a streaming body.
#[derive(Debug)]
pub struct Live {
    pub feed: Feed,
    pub style: &'static Style,
    /// Sent first (e.g. `retry:` hint, padding prelude).
    pub opening: Bytes,
    pub heartbeat_every: Duration,
    pub shutdown: ShutdownSignal,
    pub client: ClientHandle,
}

/// A live body's chunk source: [`Live`] plus its heartbeat timer.
#[derive(Debug)]
pub struct Source {
    feed: Feed,
    style: &'static Style,
    opening: Option<Bytes>,
    shutdown: ShutdownSignal,
    client: ClientHandle,
    ticker: tokio::time::Interval,
    done: bool,
}

impl Source {
    fn new(live: Live) -> Self {
        let period = live.heartbeat_every;
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut source = Self {
            feed: live.feed,
            style: live.style,
            opening: Some(live.opening),
            shutdown: live.shutdown,
            client: live.client,
            ticker,
            done: false,
        };
        // Shutdown may have begun while the subscriptions were being opened.
        if let Some(farewell) = source.told_to_go() {
            source.farewell(farewell);
        }
        source
    }

    fn chunk(&mut self, ev: FeedEvent) -> Bytes {
        match ev {
            FeedEvent::Message(m) => encoded(&m, self.style.format),
            FeedEvent::Closed { reason, .. } => self.farewell(match reason {
                CloseReason::Disconnected => self.style.farewells.disconnect,
                CloseReason::Shutdown => self.style.farewells.reconnect,
                _ => self.style.farewells.resume,
            }),
        }
    }

    fn farewell(&mut self, last: &'static [u8]) -> Bytes {
        self.done = true;
        Bytes::from_static(last)
    }

    /// A chunk that is ready now (the opening, or an event already queued), without
    /// waiting; `None` when nothing is ready or the body has ended.
    pub fn ready_chunk(&mut self) -> Option<Bytes> {
        if let Some(b) = self.opening.take() {
            return Some(b);
        }
        if self.done {
            return None;
        }
        let ev = self.feed.try_next()?;
        Some(self.chunk(ev))
    }

    /// Whether the body has ended (its farewell was taken).
    pub fn is_finished(&self) -> bool {
        self.done && self.opening.is_none()
    }

    /// The next chunk: ready now, or `cx` is woken by a subscription or the heartbeat
    /// timer; `None` once the body has ended.
    pub fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        if let Some(b) = self.ready_chunk() {
            return Poll::Ready(Some(b));
        }
        if self.done {
            return Poll::Ready(None);
        }
        if let Poll::Ready(ev) = self.feed.poll_next(cx) {
            return Poll::Ready(Some(self.chunk(ev)));
        }
        if self.ticker.poll_tick(cx).is_ready() {
            let chunk = match self.told_to_go() {
                Some(farewell) => self.farewell(farewell),
                None => Bytes::from_static(self.style.heartbeat),
            };
            return Poll::Ready(Some(chunk));
        }
        Poll::Pending
    }

    /// The farewell for a shutdown or a backend disconnect that did not reach this
    /// connection through the hub (see the module docs).
    fn told_to_go(&self) -> Option<&'static [u8]> {
        let kicked = || self.client.kicked().now_or_never().is_some();
        if self.shutdown.is_triggered() {
            Some(self.style.farewells.reconnect)
        } else if kicked() {
            Some(self.style.farewells.disconnect)
        } else {
            None
        }
    }
}

/// A message in `format`: the hub's cached, shared bytes.
pub fn encoded(m: &Message, format: WireFormat) -> Bytes {
    m.encoded(format).clone()
}

/// The slot a streaming response's [`Source`] waits in until the body or a connection
/// owner takes it (a response extension, hence `Clone + Sync`).
#[derive(Debug, Clone)]
pub struct Handoff(Arc<Mutex<Option<Source>>>);

impl Handoff {
    fn take(&self) -> Option<Source> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// Takes the source out of a streaming response built by [`response`]; `None` for any
/// other response (or when the body already took it). The response's body is then empty.
pub fn claim(resp: &mut Response) -> Option<Source> {
    resp.extensions_mut().remove::<Handoff>()?.take()
}

/// The streaming response for `live`: the transport's streaming headers, the client id
/// header, and a body of `live`'s chunks (see the module docs for the handoff).
pub fn response(live: Live) -> Response {
    let id = live.client.id().to_owned();
    let content_type = live.style.content_type;
    let handoff = Handoff(Arc::new(Mutex::new(Some(Source::new(live)))));
    let body = LiveBody {
        slot: Some(handoff.clone()),
        source: None,
    };
    let mut resp = (streaming_headers(content_type), axum::body::Body::new(body)).into_response();
    resp.extensions_mut().insert(handoff);
    with_client_id(resp, &id)
}

/// The body hyper polls: takes the source from the slot at its first poll (a claimed
/// source leaves the slot empty, and the body ends at once).
struct LiveBody {
    slot: Option<Handoff>,
    source: Option<Source>,
}

impl http_body::Body for LiveBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if let Some(slot) = this.slot.take() {
            this.source = slot.take();
        }
        let Some(source) = &mut this.source else {
            return Poll::Ready(None);
        };
        source
            .poll_chunk(cx)
            .map(|chunk| chunk.map(|c| Ok(http_body::Frame::data(c))))
    }
}
