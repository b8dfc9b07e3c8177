//! A native WebSocket connection (`GET /ch/NAME` with `Upgrade: websocket`): one
//! channel; each message is one envelope JSON text frame (with the subprotocol
//! `switchboard.compact`, the frame [`super::compact`] chooses); a text or binary frame from
//! the client publishes to the channel when its namespace allows client publishing (and,
//! with client tokens on, its token grants it; 1008 when not, 1009 over
//! `limits.max_publish_bytes`). A connection opened with a client token is closed with
//! 3000 when the token expires (it cannot take a new one: reconnect with a fresh token,
//! `?since=` the last cursor).
//!
//! A connection on plain TCP that waits with nothing to do parks ([`crate::park`]): its
//! task ends and its event loop's lot holds it until it has more to do than a ping, a
//! pong or a wake.

use std::future::Future;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use switchboard_hub::{Cursor, DirectSink, Hub, Payload, RecvError, Subscription};
use switchboard_ws_tokio::{Message, ParkedWebSocket, WebSocket};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::compact::{Compact, Envelopes, Framing};
use super::{ending_for, queue_message, HIGH_WATER};
use crate::clients::ClientHandle;
use crate::error::Ending;
use crate::front::connections::Counted;
use crate::park::{Parked, ParkedTcp, Woken};
use crate::state::AppState;
use crate::transport::expiry::{self, Expiry};

/// A client's text frame as a payload: valid JSON is embedded as JSON, other text is sent
/// as a string.
pub fn text_payload(t: Bytes) -> Payload {
    if switchboard_proto::validate_json(&t).is_ok() {
        Payload::json_prevalidated(t)
    } else {
        // Text frames are UTF-8 (checked by the codec).
        Payload::text(t.clone()).unwrap_or_else(|_| Payload::binary(t))
    }
}

/// What a native connection keeps besides its socket.
#[derive(Debug)]
pub struct Parts {
    /// Also the way to the hub (a client's publish), which the connection does not keep.
    sub: Subscription,
    /// Counted for the backend's disconnect (unregisters on drop); its publish budget.
    client: crate::clients::Registration,
    /// `limits.max_publish_bytes` (u32: a message limit over 4 GiB is no limit here).
    max: u32,
    may_publish: bool,
    /// The closing handshake is under way (here, beside the other small fields, so that
    /// they share one word).
    closing: bool,
    /// The connection may park when it next waits ([`crate::park`]): true from its start,
    /// false from a frame of the client's data until one of its deadlines passes (a
    /// publishing client keeps its task while it publishes).
    parkable: bool,
    /// A token's deadline and a publish in flight: most connections have neither, so
    /// they share one pointer (allocated while either exists).
    rare: Option<Box<Rare>>,
}

/// What only some native connections hold, and some only for a while.
#[derive(Default)]
struct Rare {
    /// The client token's deadline (`None` without a token).
    expiry: Option<Box<Expiry>>,
    /// A client's publish in flight.
    publishing: Option<PublishFuture>,
}

impl std::fmt::Debug for Rare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rare")
            .field("expiry", &self.expiry)
            .field("publishing", &self.publishing.is_some())
            .finish()
    }
}

impl Parts {
    /// What `client`'s connection subscribed with `sub` keeps; it may publish to the
    /// channel if `may_publish`, and ends when its token `expires`.
    pub(super) fn new(
        state: &AppState,
        sub: Subscription,
        client: ClientHandle,
        may_publish: bool,
        expires: Option<std::time::SystemTime>,
    ) -> Self {
        Self {
            sub,
            client: client.into_registration(),
            max: u32::try_from(state.config.limits.max_publish_bytes).unwrap_or(u32::MAX),
            may_publish,
            closing: false,
            parkable: true,
            rare: Expiry::new(state.clients.wheel(), expires).map(|expiry| {
                Box::new(Rare {
                    expiry: Some(expiry),
                    publishing: None,
                })
            }),
        }
    }
}

/// A native connection's task: one hand-written future over the socket and the
/// subscription, so an idle connection's task holds those and little else (no shutdown
/// or kick futures: shutdown and the backend's disconnect close the subscription).
///
/// Each poll: queue every message ready (they leave in one vectored write when the
/// socket is polled), then poll the socket (writes, then reads the client's frames), then
/// wait on the subscription while there is room below [`HIGH_WATER`]. A client's publish
/// is a boxed future (rare) that holds further reads until done; the close handshake
/// runs in place, bounded by the codec's close timeout (which also ends it when the peer
/// does not read).
///
/// `F` frames the messages: [`Envelopes`] (no state, so a connection in the envelope
/// format pays nothing for the compact one) or a boxed [`Compact`] position.
///
/// `parts` comes before `ws` so that it is dropped first: its subscription ends direct
/// delivery before the socket closes (the pacer must not write to a descriptor that may
/// be reused).
struct Native<S, F> {
    parts: Parts,
    ws: WebSocket<S>,
    framing: F,
}

/// The task of a native connection: the connection, until it parks ([`crate::park`]) and
/// its task ends; the lot gives it a new task when it has something to do.
struct Task<S, F>(Option<Native<S, F>>);

/// Spawns the connection's task (the socket already has its mark and wheel), in the
/// compact format if `compact`.
pub(super) fn spawn<S>(mut ws: WebSocket<S>, parts: Parts, compact: bool)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if compact {
        // The stream opens with its start record: a first message that follows it goes
        // as its payload alone.
        let mut c = Box::<Compact>::default();
        let start = c.start(parts.sub.channel(), parts.sub.position());
        // Fails only on a closed socket, which the task then finds.
        let _ = ws.queue(Message::Text(start));
        spawn_framed(ws, parts, c);
    } else {
        spawn_framed(ws, parts, Envelopes);
    }
}

fn spawn_framed<S, F: Framing>(ws: WebSocket<S>, parts: Parts, framing: F)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let task = Task(Some(Native { parts, ws, framing }));
    tracing::trace!(
        bytes = std::mem::size_of_val(&task),
        "native websocket task"
    );
    crate::conn_log::spawn(task);
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static, F: Framing> Future for Task<S, F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let Some(native) = &mut this.0 else {
            return Poll::Ready(());
        };
        if Pin::new(&mut *native).poll(cx).is_ready() {
            return Poll::Ready(());
        }
        if !native.idle() || crate::conn_log::logged() {
            return Poll::Pending;
        }
        // Only a plain TCP socket leaves tokio's poller.
        let any: &mut dyn std::any::Any = this;
        let Some(Task(slot)) = any.downcast_mut::<Task<Counted<TcpStream>, F>>() else {
            return Poll::Pending;
        };
        let Some(lot) = slot
            .as_ref()
            .and_then(|native| crate::park::lot_for(native.parts.sub.hub_id()))
        else {
            return Poll::Pending;
        };
        let Some(native) = slot.take() else {
            return Poll::Ready(());
        };
        match native.park(&lot) {
            Ok(()) => Poll::Ready(()),
            Err(native) => {
                *slot = Some(native);
                Poll::Pending
            }
        }
    }
}

impl<F: Framing> Native<Counted<TcpStream>, F> {
    /// Moves the connection into `lot` (its task then ends), or gives it back when its
    /// codec is not idle.
    #[allow(clippy::result_large_err)] // It comes back as it was, by value.
    fn park(self, lot: &crate::park::Parking) -> Result<(), Self> {
        let Self { parts, ws, framing } = self;
        let ws = match ws.park() {
            Ok(ws) => ws,
            Err(ws) => return Err(Self { parts, ws, framing }),
        };
        match ws.try_map_stream(|c| c.try_map(ParkedTcp::park)) {
            Ok(ws) => lot.park(Box::new(ParkedNative(Some(Asleep { parts, ws, framing })))),
            Err(e) => tracing::debug!(error = %e, "a connection could not park"),
        }
        Ok(())
    }
}

impl<F: Framing> Native<Counted<ParkedTcp>, F> {
    /// Gives the connection a task of its own again, on the running loop.
    fn resume(self) {
        let Self { parts, ws, framing } = self;
        match ws.try_map_stream(|c| c.try_map(ParkedTcp::resume)) {
            Ok(ws) => {
                tokio::spawn(Task(Some(Native { parts, ws, framing })));
            }
            Err(e) => tracing::debug!(error = %e, "a parked connection could not resume"),
        }
    }
}

/// A parked native connection ([`crate::park`]); `None` once it has left the lot.
struct ParkedNative<F>(Option<Asleep<F>>);

/// A parked connection's state: its socket out of tokio's poller, its codec reduced to
/// the idle form ([`ParkedWebSocket`]). Made whole again for each poll.
/// `parts` first, as in [`Native`].
struct Asleep<F> {
    parts: Parts,
    ws: ParkedWebSocket<Counted<ParkedTcp>>,
    framing: F,
}

impl<F: Framing> Parked for ParkedNative<F> {
    fn poll_parked(&mut self, cx: &mut Context<'_>, leave: &dyn Fn(RawFd)) -> Woken {
        let Some(Asleep { parts, ws, framing }) = self.0.take() else {
            return Woken::Gone;
        };
        let fd = ws.get_ref().get_ref().as_raw_fd();
        let mut native = Native {
            parts,
            ws: ws.unpark(),
            framing,
        };
        if Pin::new(&mut native).poll(cx).is_ready() {
            leave(fd);
            return Woken::Gone;
        }
        if native.idle() {
            let Native { parts, ws, framing } = native;
            match ws.park() {
                Ok(ws) => {
                    self.0 = Some(Asleep { parts, ws, framing });
                    return Woken::Stay;
                }
                Err(ws) => native = Native { parts, ws, framing },
            }
        }
        leave(fd);
        native.resume();
        Woken::Gone
    }

    fn fd(&self) -> RawFd {
        self.0
            .as_ref()
            .map_or(-1, |a| a.ws.get_ref().get_ref().as_raw_fd())
    }

    fn resume(self: Box<Self>) {
        if let Some(Asleep { parts, ws, framing }) = self.0 {
            Native {
                parts,
                ws: ws.unpark(),
                framing,
            }
            .resume();
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + 'static, F: Framing> Future for Native<S, F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        // First of all: the pacer may have been writing to the socket while we waited.
        this.end_direct();
        if this.parts.closing {
            return this.ws.poll_close(cx);
        }
        match this.poll_open(cx) {
            Poll::Ready(Some(ending)) => {
                let (code, reason) = ending.close_frame();
                super::log_close(code, reason);
                // Fails only when a close is already under way; driving it is the same.
                let _ = this.ws.start_close(code, reason);
                this.parts.closing = true;
                this.ws.poll_close(cx)
            }
            Poll::Ready(None) => {
                crate::conn_log::note("close", "peer closed");
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin, F: Framing> Native<S, F> {
    /// Ends direct delivery if it is on ([`super::direct`]), and queues first what is left
    /// of a frame the pacer wrote only in part.
    fn end_direct(&mut self) {
        if !self.parts.sub.is_direct() {
            return;
        }
        let partial = self.parts.sub.end_direct().and_then(|end| end.partial);
        let at = self.parts.sub.position();
        match partial {
            None => self.framing.after_direct(at),
            Some((m, written)) => {
                // The pacer wrote the frame that follows the message before `m`.
                self.framing
                    .after_direct(Cursor::new(at.epoch, at.offset.saturating_sub(1)));
                // Direct delivery was on, so the connection shares its frames.
                let shared = self.ws.shared_framing().unwrap_or_default();
                let frame = shared.frame(self.framing.frame(&m));
                // Fails only on a closed socket, which the task then finds.
                let _ = self
                    .ws
                    .queue_frame_rest(frame.slice(written.min(frame.len())..));
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin, F> Native<S, F> {
    /// Whether the connection may park now (after a poll): it waits for nothing but its
    /// subscription, whose messages the pacer writes itself, and has nothing to write.
    /// A connection with deflate never parks (its codec keeps the zlib states).
    fn idle(&mut self) -> bool {
        if self.ws.take_ticked() {
            self.parts.parkable = true;
        }
        let p = &self.parts;
        p.parkable
            && !p.closing
            && p.rare.is_none()
            && p.sub.is_direct()
            && self.ws.pending_bytes() == 0
            && !self.ws.deflate_negotiated()
    }
}

/// The sink for direct delivery, when the connection may take it now: framing that
/// allows it at the subscription's position, nothing queued, the connection open with
/// frames it shares (no deflate, or deflate without the server's context), on plain TCP.
fn direct_sink<S, F>(ws: &WebSocket<S>, framing: &F, at: Cursor) -> Option<DirectSink>
where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
    F: Framing,
{
    if ws.pending_bytes() > 0 || ws.state() != switchboard_ws::connection::State::Open {
        return None;
    }
    let kind = super::direct::sink_kind(framing.direct(at)?, ws.shared_framing()?)?;
    crate::front::connections::tcp_fd(ws.get_ref()).map(|fd| DirectSink { fd, kind })
}

impl<S: AsyncRead + AsyncWrite + Unpin + 'static, F: Framing> Native<S, F> {
    /// Ready with why the server ends the connection, or `None` once it is over.
    fn poll_open(&mut self, cx: &mut Context<'_>) -> Poll<Option<Ending>> {
        let Self { parts, ws, framing } = self;
        if let Some(rare) = &mut parts.rare {
            if expiry::expired(&mut rare.expiry, cx) {
                return Poll::Ready(Some(Ending::TokenExpired));
            }
            if let Some(p) = &mut rare.publishing {
                ready!(p.as_mut().poll(cx));
                rare.publishing = None;
                if rare.expiry.is_none() {
                    parts.rare = None;
                }
            }
        }
        let sub = &mut parts.sub;
        loop {
            while ws.pending_bytes() < HIGH_WATER {
                match sub.try_recv() {
                    Ok(Some(m)) => {
                        if !queue_message(ws, &m, framing) {
                            break;
                        }
                    }
                    Ok(None) | Err(RecvError::Lagged { .. }) => break,
                    Err(RecvError::Closed { reason, .. }) => {
                        return Poll::Ready(Some(ending_for(reason)));
                    }
                }
            }
            let room = ws.pending_bytes() < HIGH_WATER;
            // Polling `recv` writes queued output (and waits for the socket when blocked).
            match ws.poll_recv(cx) {
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Err(e))) => {
                    // The codec queued the close frame with the right code; keep driving.
                    tracing::debug!(error = %e, "websocket error");
                    continue;
                }
                Poll::Ready(Some(Ok(m @ (Message::Text(_) | Message::Binary(_))))) => {
                    parts.parkable = false;
                    if !parts.may_publish {
                        return Poll::Ready(Some(Ending::Policy(
                            "clients may not publish to this channel",
                        )));
                    }
                    // The stored payload gets an allocation of its own: the frame's bytes
                    // may be a view into the connection's read buffer, which the message
                    // would otherwise keep alive as long as history holds it.
                    let payload = match m {
                        Message::Text(t) if fits(t.len(), parts.max) => {
                            text_payload(Bytes::copy_from_slice(&t))
                        }
                        Message::Binary(b) if fits(b.len(), parts.max) => {
                            Payload::binary(Bytes::copy_from_slice(&b))
                        }
                        _ => return Poll::Ready(Some(Ending::TooBig)),
                    };
                    if parts.client.publish().is_err() {
                        return Poll::Ready(Some(Ending::Policy(
                            "publishing faster than the server allows",
                        )));
                    }
                    let mut fut =
                        publish(sub.hub(), parts.client.key(), sub.channel().into(), payload);
                    if fut.as_mut().poll(cx).is_pending() {
                        parts.rare.get_or_insert_default().publishing = Some(fut);
                        return Poll::Pending;
                    }
                    continue;
                }
                Poll::Ready(Some(Ok(_))) => continue,
                Poll::Pending => {}
            }
            if !room {
                if ws.pending_bytes() < HIGH_WATER {
                    // The queue drained below the mark: take more messages.
                    continue;
                }
                return Poll::Pending;
            }
            let polled = match direct_sink(ws, framing, sub.position()) {
                Some(sink) => sub.poll_recv_direct(cx, sink),
                None => sub.poll_recv(cx),
            };
            match polled {
                Poll::Ready(Ok(m)) => {
                    let _ = queue_message(ws, &m, framing);
                }
                Poll::Ready(Err(RecvError::Lagged { .. })) => {}
                Poll::Ready(Err(RecvError::Closed { reason, .. })) => {
                    return Poll::Ready(Some(ending_for(reason)));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// A client's publish (see [`publish`]).
type PublishFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

fn fits(len: usize, max: u32) -> bool {
    u32::try_from(len).is_ok_and(|len| len <= max)
}

/// Publishes a client's message. Boxed and owning what it needs: publishing is rare next
/// to receiving, and an idle connection's task should not be sized for it. A failure is
/// logged with the client's id (`client`, as its `x-switchboard-client` header gives it),
/// at every log level, not only inside a `debug` connection span.
fn publish(hub: Hub, client: u64, channel: Box<str>, payload: Payload) -> PublishFuture {
    Box::pin(async move {
        if let Err(e) = hub.publish_from_client(&channel, payload).await {
            tracing::warn!(client = %format_args!("{client:016x}"), channel = %channel, error = %e, "publish failed");
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection that has work holds its task: tokio keeps the future in a cell with
    /// 96 bytes of its own (header 32, scheduler and id 16, trailer 48) and the stage's
    /// tag, allocated in multiples of 128 bytes. The tag sits in a niche of the future (the
    /// replica of tokio's `Stage` below is no bigger than the future), so a future of up to
    /// 288 B takes a 384-byte cell. Today's is 272 B (on the counted stream the front hands
    /// over; 408 B and a 512-byte cell before the codec's receiver, the client's publish
    /// and the token deadline went out of line); this catches growth past 288.
    /// A compact connection's future is one word more (its boxed position).
    ///
    /// An idle one is parked ([`crate::park`]): its state over a socket out of tokio's
    /// poller with the codec reduced to its idle form, boxed, 192 B (jemalloc's 192-byte
    /// class; the next is 224; the whole state, 256 B, before the idle form).
    #[test]
    fn a_native_connection_task_fits_384_bytes_and_a_parked_one_192() {
        type Stream = Counted<TcpStream>;
        #[allow(dead_code)]
        enum Stage<T> {
            Running(T),
            Finished(Result<(), tokio::task::JoinError>),
            Consumed,
        }
        let size = std::mem::size_of::<Task<Stream, Envelopes>>();
        let stage = std::mem::size_of::<Stage<Task<Stream, Envelopes>>>();
        assert!(
            stage <= 384 - 96,
            "Task<Counted<TcpStream>> is {size} bytes, its stage {stage}"
        );
        let compact = std::mem::size_of::<Task<Stream, Box<Compact>>>();
        assert_eq!(compact, size + 8);
        let parked = std::mem::size_of::<ParkedNative<Envelopes>>();
        assert!(parked <= 192, "a parked connection is {parked} bytes");
    }
}
