//! The body of a response that streams (SSE and HTTP streaming): opening bytes, then one
//! chunk per event in the transport's format (the hub's shared encoding of the message),
//! heartbeats while idle, and a farewell chunk when the connection must end — server
//! shutdown, a backend disconnect, a subscription closed by the hub (slow consumer,
//! broker lost), or the client token it was opened with expiring — after which the body
//! ends.
//!
//! Waiting costs no future per connection: a [`Source`] is polled ([`Source::poll_chunk`])
//! on its subscriptions and its heartbeat only (a [`WheelTimer`] on the server's shared
//! timer [`Wheel`], so a beat may come up to one wheel tick late). Shutdown and backend
//! disconnects reach it through the hub, which closes the subscriptions of every
//! connection concerned (reason `Shutdown` or `Disconnected`, hence the farewell); the
//! client is registered without a kick notification
//! ([`crate::clients::Clients::register_hub_kicked`]). The shutdown signal is checked
//! once more when the source is made, after subscribing, which covers a subscription
//! added after the hub's shutdown sweep. (A disconnect by user id that races the
//! subscription is missed, as for a WebSocket; a disconnect by client id cannot race, the
//! id is only known from the response.)
//!
//! [`response`] builds the HTTP response. Its chunks come from a [`Source`], which the
//! response carries twice: as its body (for a connection hyper serves), and as a
//! [`Handoff`] extension that a connection the front answers itself ([`crate::front`])
//! claims with [`claim`], so it drives the source inline instead of through a boxed
//! body. Whoever takes the source first gets it; the other finds the slot empty (an
//! empty body ends at once).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use switchboard_hub::{CloseReason, Encoding, Message};
use switchboard_proto::{write_sse_ready, write_sse_with_cursors};
use switchboard_timer::{Wheel, WheelTimer};
use tokio::time::Instant;

use crate::clients::{ClientHandle, Registration};
use crate::error::ServerError;
use crate::observe::counters::Transport;
use crate::shutdown::ShutdownSignal;
use crate::state::AppState;
use crate::transport::expiry::{self, Expiry};
use crate::transport::handoff::Handoff;
use crate::transport::{streaming_headers, with_client_id, Feed, FeedEvent, Principal, Target};

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
    /// The client token expired: reconnect with a new one from your cursor.
    pub refresh: &'static [u8],
}

/// What a transport's stream looks like (one `static` per transport).
#[derive(Debug)]
pub struct Style {
    /// The content type of the response.
    pub content_type: &'static str,
    /// Each message's chunk: its encoding in the transport's format, shared through the
    /// hub's cache ([`encoded`]).
    pub encode: fn(&Message) -> Bytes,
    /// Sent when idle for a heartbeat period.
    pub heartbeat: &'static [u8],
    pub farewells: Farewells,
    /// Each event's SSE id lists every channel's cursor, and the opening is a `ready`
    /// event with it (`/sub` over SSE; see `switchboard_proto::sse`): the chunk is the shared encoding
    /// with its own id line swapped for this connection's, so it is copied.
    pub cursors_id: bool,
    /// Which transport its connections are counted as (`switchboard_connections`).
    pub transport: Transport,
}

/// The parts of a streaming body.
#[derive(Debug)]
pub struct Live {
    pub feed: Feed,
    pub style: &'static Style,
    /// Sent first (e.g. `retry:` hint, padding prelude).
    pub opening: Bytes,
    pub heartbeat_every: Duration,
    /// How long a write may take nothing before the stream is given up.
    pub write_timeout: Duration,
    /// Checked once, after subscribing (see the module docs).
    pub shutdown: ShutdownSignal,
    /// Registered with [`crate::clients::Clients::register_hub_kicked`].
    pub client: ClientHandle,
    /// The server's shared timer, for heartbeats.
    pub wheel: Wheel,
    /// When the client token it was opened with expires (the body then ends).
    pub expires: Option<std::time::SystemTime>,
}

/// A live body's chunk source after its opening: [`Live`] reduced to what a connection
/// keeps.
#[derive(Debug)]
pub struct Source {
    feed: Feed,
    style: &'static Style,
    heartbeat: Heartbeat,
    _client: Registration,
    end: End,
    /// The token's deadline (`None` without a token).
    expiry: Option<Box<Expiry>>,
}

/// How far a source is from its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Open,
    /// The farewell is due next (told before the first poll).
    Due(Farewell),
    /// The farewell was taken: the body has ended.
    Done,
}

/// Which farewell (see [`Farewells`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Farewell {
    Reconnect,
    Resume,
    Disconnect,
    Refresh,
}

/// When the next heartbeat is due; a beat is sent when idle for a period (traffic does
/// not postpone it). While a write is blocked no beat can go out, so the same timer then
/// serves as the write deadline ([`Source::poll_write_stalled`]).
#[derive(Debug)]
struct Heartbeat {
    /// Cancelled when the stream ends, so it leaves no waker in the wheel.
    timer: WheelTimer,
    due: Instant,
    /// Milliseconds (u32: both fit where one `Duration` would).
    every_ms: u32,
    write_timeout_ms: u32,
    /// `due` is the write deadline of a blocked write, not a beat.
    stalled: bool,
}

fn ms(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX).max(1)
}

fn after(ms: u32) -> Instant {
    Instant::now() + Duration::from_millis(u64::from(ms))
}

impl Heartbeat {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.timer.poll_until(self.due, cx).is_pending() {
            return Poll::Pending;
        }
        self.due = after(self.every_ms);
        Poll::Ready(())
    }
}

impl Source {
    /// The opening chunk and the source of the rest.
    fn new(live: Live) -> (Bytes, Self) {
        let expiry = Expiry::new(&live.wheel, live.expires);
        let opening = if live.style.cursors_id {
            // Sets the browser's last event id before the first message.
            let mut out = BytesMut::from(&live.opening[..]);
            write_sse_ready(&mut out, live.feed.positions());
            out.freeze()
        } else {
            live.opening
        };
        let mut source = Self {
            feed: live.feed,
            style: live.style,
            heartbeat: Heartbeat {
                timer: WheelTimer::new(live.wheel),
                due: Instant::now() + live.heartbeat_every,
                every_ms: ms(live.heartbeat_every),
                write_timeout_ms: ms(live.write_timeout),
                stalled: false,
            },
            _client: live.client.into_registration(),
            end: End::Open,
            expiry,
        };
        // After subscribing: a shutdown that began meanwhile may have swept the hub
        // before this connection's subscriptions were there.
        if live.shutdown.is_triggered() {
            source.end = End::Due(Farewell::Reconnect);
        }
        (opening, source)
    }

    fn chunk(&mut self, ev: FeedEvent) -> Bytes {
        match ev {
            FeedEvent::Message(m) if self.style.cursors_id => {
                let mut out = BytesMut::new();
                write_sse_with_cursors(&mut out, self.feed.positions(), &(self.style.encode)(&m));
                out.freeze()
            }
            FeedEvent::Message(m) => (self.style.encode)(&m),
            FeedEvent::Closed { reason, .. } => self.farewell(match reason {
                CloseReason::Disconnected => Farewell::Disconnect,
                CloseReason::Shutdown => Farewell::Reconnect,
                _ => Farewell::Resume,
            }),
        }
    }

    fn farewell(&mut self, which: Farewell) -> Bytes {
        self.end = End::Done;
        let f = &self.style.farewells;
        Bytes::from_static(match which {
            Farewell::Reconnect => f.reconnect,
            Farewell::Resume => f.resume,
            Farewell::Disconnect => f.disconnect,
            Farewell::Refresh => f.refresh,
        })
    }

    /// A chunk that is ready now (an event already queued, or a farewell), without
    /// waiting; `None` when nothing is ready or the body has ended.
    pub fn ready_chunk(&mut self) -> Option<Bytes> {
        match self.end {
            End::Open => {
                let ev = self.feed.try_next()?;
                Some(self.chunk(ev))
            }
            End::Due(which) => Some(self.farewell(which)),
            End::Done => None,
        }
    }

    /// A write of this stream is blocked: Ready once it has taken nothing for the write
    /// timeout (the stream is then given up); the deadline is armed at the first call
    /// after a write completed ([`Source::write_done`]).
    pub fn poll_write_stalled(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let beat = &mut self.heartbeat;
        if !beat.stalled {
            beat.stalled = true;
            beat.due = after(beat.write_timeout_ms);
        }
        beat.timer.poll_until(beat.due, cx)
    }

    /// A write completed: the timer goes back to heartbeats.
    pub fn write_done(&mut self) {
        let beat = &mut self.heartbeat;
        if beat.stalled {
            beat.stalled = false;
            beat.due = after(beat.every_ms);
        }
    }

    /// The hub its subscriptions belong to ([`switchboard_hub::Hub::id`]).
    pub fn hub_id(&self) -> Option<usize> {
        self.feed
            .subscriptions()
            .first()
            .map(switchboard_hub::Subscription::hub_id)
    }

    /// Whether the body has ended (its farewell was taken).
    pub fn is_finished(&self) -> bool {
        self.end == End::Done
    }

    /// The next chunk: ready now, or `cx` is woken by a subscription or the heartbeat
    /// timer; `None` once the body has ended.
    pub fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        // Before the feed: a busy channel must not keep an expired token's stream open.
        if self.end == End::Open && expiry::expired(&mut self.expiry, cx) {
            self.end = End::Due(Farewell::Refresh);
        }
        if let Some(b) = self.ready_chunk() {
            return Poll::Ready(Some(b));
        }
        if self.is_finished() {
            return Poll::Ready(None);
        }
        if let Poll::Ready(ev) = self.feed.poll_next(cx) {
            return Poll::Ready(Some(self.chunk(ev)));
        }
        if self.heartbeat.poll(cx).is_ready() {
            return Poll::Ready(Some(Bytes::from_static(self.style.heartbeat)));
        }
        Poll::Pending
    }
}

/// A message in encoding `E`: the hub's cached, shared bytes.
pub fn encoded<E: Encoding<Output = Bytes>>(m: &Message) -> Bytes {
    m.encoded::<E>().clone()
}

/// Takes the opening chunk and the source out of a streaming response built by
/// [`response`]; `None` for any other response (or when the body already took them). The
/// response's body is then empty.
pub fn claim(resp: &mut Response) -> Option<(Bytes, Source)> {
    Handoff::claim(resp)
}

/// Subscribes `principal`'s new connection to `targets` and answers with a live body in
/// `style`, starting with `opening`: what SSE and HTTP streaming share.
pub async fn respond(
    state: &AppState,
    targets: &[Target],
    principal: Principal,
    style: &'static Style,
    opening: Bytes,
) -> Result<Response, ServerError> {
    let expires = principal.expires();
    let client = state
        .clients
        .register_hub_kicked(principal.user, style.transport);
    let feed = Feed::open(state, targets, &client).await?;
    Ok(response(Live {
        feed,
        style,
        opening,
        heartbeat_every: state.config.limits.heartbeat(),
        write_timeout: state.config.limits.write_timeout(),
        shutdown: state.shutdown.clone(),
        client,
        wheel: state.clients.wheel().clone(),
        expires,
    }))
}

/// The streaming response for `live`: the transport's streaming headers, the client id
/// header, and a body of `live`'s chunks (see the module docs for the handoff).
pub fn response(live: Live) -> Response {
    let id = live.client.id().to_owned();
    let content_type = live.style.content_type;
    let handoff = Handoff::new(Source::new(live));
    let body = LiveBody {
        slot: Some(handoff.clone()),
        opening: None,
        source: None,
    };
    let mut resp = (streaming_headers(content_type), axum::body::Body::new(body)).into_response();
    handoff.attach(&mut resp);
    with_client_id(resp, &id)
}

/// The body hyper polls: takes the opening and the source from the slot at its first
/// poll (claimed ones leave the slot empty, and the body ends at once).
struct LiveBody {
    slot: Option<Handoff<(Bytes, Source)>>,
    opening: Option<Bytes>,
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
        if let Some((opening, source)) = this.slot.take().and_then(|slot| slot.take()) {
            this.opening = Some(opening);
            this.source = Some(source);
        }
        if let Some(opening) = this.opening.take() {
            return Poll::Ready(Some(Ok(http_body::Frame::data(opening))));
        }
        let Some(source) = &mut this.source else {
            return Poll::Ready(None);
        };
        source
            .poll_chunk(cx)
            .map(|chunk| chunk.map(|c| Ok(http_body::Frame::data(c))))
    }
}
