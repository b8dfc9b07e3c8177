//! Subscriptions: one subscriber's ordered view of a channel, and what happens when it
//! cannot keep up.
//!
//! # What a subscriber receives
//!
//! [`Hub::subscribe`](crate::Hub::subscribe) returns a [`Subscription`] whose
//! [`recv`](Subscription::recv) yields, in order:
//!
//! 1. with `since = Some(cursor)`: every message after `cursor` still in history (the
//!    gap); or, when the gap is not available (the cursor is of another epoch — the
//!    channel's log was lost, e.g. a broker restart —, the messages after it are no
//!    longer retained, or it is ahead of the head), a `reset` message followed at once by
//!    every message still held. With `since = None`: nothing from the past.
//! 2. then every message published afterwards, each exactly once, in offset order, plus
//!    `join`/`leave` events when the namespace enables them.
//!
//! # What a `reset` says
//!
//! A `reset` (event [`Event::Reset`]) is the position the stream continues from: its
//! cursor is just before the oldest message still held (held offsets 5–7: the reset is at
//! offset 4, then 5, 6 and 7 follow), or the head when nothing is held. What came before
//! it is lost; when the cursor given was of the same epoch the reset says how many
//! ([`Message::reset_lost`], in the envelope `"data":{"lost":N}`: the reset's offset minus
//! the cursor's). Across epochs the number is not known and the reset has no data. The
//! same holds wherever a subscription meets a gap later (below): a reset never skips a
//! message still held, in history or in the subscription's queue.
//!
//! There is no race between the history read and going live: the subscription is
//! registered for live delivery *before* history is read, and live messages the history
//! answer already contained are recognised by offset and skipped. If a live message ever
//! arrives with an offset beyond the next expected one, or of a new epoch (a broker lost
//! live messages, or its log), the subscription reads the gap from history before going
//! on, or delivers `reset` and what is held. A broker whose feed comes back after an
//! interruption tells every subscription at once ([`crate::FeedSink::resync_all`]): each
//! reads what it missed the same way, without waiting for the next message to reveal it
//! (on a quiet channel that could be never).
//!
//! # Slow consumers
//!
//! Each subscription has a bounded queue of `queue_capacity` events (pointers to shared
//! messages). When a new event finds the queue full, the namespace's
//! [`SlowConsumerPolicy`] decides:
//!
//! * [`SlowConsumerPolicy::Close`] (default): the queue is emptied at once and the
//!   subscription is closed. `recv` first returns whatever history gap is still pending,
//!   then `Err(RecvError::Closed { reason: CloseReason::SlowConsumer, resume_from })`,
//!   where `resume_from` is the cursor of the last message `recv` returned. Subscribing
//!   again with `since = resume_from` continues with nothing lost or repeated (from
//!   history), or with `reset` if history no longer reaches back that far.
//! * [`SlowConsumerPolicy::DropOldest`]: the oldest queued event is dropped to make room.
//!   The next `recv` returns `Err(RecvError::Lagged { missed })` (the number dropped since
//!   the last report), then the subscription refills the gap from history and continues:
//!   the messages dropped are delivered again from history, in order, or a `reset`
//!   message says those that are gone and what is still held follows. `join`/`leave`
//!   events are not in history; dropped ones
//!   are lost (they are counted in `missed`).
//!
//! After `Closed`, `recv` keeps returning the same `Closed`. Other close reasons
//! ([`CloseReason`]) behave the same way: the queue is dropped and `resume_from` is exact.
//!
//! [`SlowConsumerPolicy`]: crate::SlowConsumerPolicy
//! [`SlowConsumerPolicy::Close`]: crate::SlowConsumerPolicy::Close
//! [`SlowConsumerPolicy::DropOldest`]: crate::SlowConsumerPolicy::DropOldest
//!
//! ```
//! # #![allow(clippy::unwrap_used)]
//! use bytes::Bytes;
//! use switchboard_hub::*;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let ns = NamespaceConfig { queue_capacity: 2, ..NamespaceConfig::default() };
//! let hub = Hub::new(HubConfig::default().with_namespace("", ns));
//! let mut sub = hub.subscribe("news", None, ClientInfo::new("c1")).await.unwrap();
//! let start = sub.position();
//! for i in 0..3 {
//!     hub.publish("news", Payload::json(Bytes::from(i.to_string())).unwrap()).await.unwrap();
//! }
//! // The third message found the queue full: the subscription was closed.
//! let err = sub.recv().await.unwrap_err();
//! assert_eq!(err, RecvError::Closed { reason: CloseReason::SlowConsumer, resume_from: start });
//!
//! // Resuming from the cursor delivers all three, from history.
//! let mut again = hub.subscribe("news", Some(start), ClientInfo::new("c1")).await.unwrap();
//! for offset in 1..=3 {
//!     assert_eq!(again.recv().await.unwrap().cursor().unwrap().offset, offset);
//! }
//! # });
//! ```
//!
//! # Driving many subscriptions without a task each
//!
//! [`Subscription::poll_recv`] registers the caller's waker and is woken when an event is
//! queued (or the subscription closes); a connection task serving many subscriptions polls
//! them all with its own context. [`Subscription::try_recv`] drains without registering.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use switchboard_proto::{Cursor, Event};

use crate::broker::HistoryAnswer;
use crate::error::{BrokerError, CloseReason, RecvError};
use crate::inbox::Inbox;
use crate::message::Message;
use crate::presence::ClientInfo;
use crate::registry::{Registered, Registry};

type HistoryFuture = Pin<Box<dyn Future<Output = Result<HistoryAnswer, BrokerError>> + Send>>;

enum Class {
    Deliver,
    Skip,
    Gap,
}

/// A history catch-up: the messages read but not yet returned, the read in flight, and
/// the live message that revealed a gap. Only a subscription that started from a cursor or
/// met a gap has one (boxed: an idle subscription lives in its connection's task, where
/// every byte counts), and it is dropped once drained.
#[derive(Default)]
struct CatchUp {
    backlog: VecDeque<Message>,
    resync: Option<HistoryFuture>,
    gap_target: Option<Cursor>,
}

/// One subscriber's receiver. See the [module docs](self) for the exact semantics.
///
/// Dropping it unsubscribes (presence removal and `leave` run in the background); use
/// [`Subscription::unsubscribe`] to wait for them.
pub struct Subscription {
    inbox: Arc<Inbox>,
    registry: Arc<Registry>,
    channel: Arc<str>,
    position: Cursor,
    catch_up: Option<Box<CatchUp>>,
    pub(crate) registered: Registered,
    released: bool,
    /// Direct delivery is installed ([`crate::direct`]): [`Subscription::end_direct`]
    /// must run before the socket is used or the subscription polled.
    direct: bool,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("channel", &self.channel)
            .field("client", &self.inbox.client.client_id())
            .field("position", &self.position)
            .finish()
    }
}

impl Subscription {
    pub(crate) fn new(registry: Arc<Registry>, channel: Arc<str>, inbox: Arc<Inbox>) -> Self {
        Subscription {
            inbox,
            registry,
            channel,
            position: Cursor::default(),
            catch_up: None,
            registered: Registered::default(),
            released: false,
            direct: false,
        }
    }

    /// Applies the first history answer: `since` is where the subscriber stands.
    pub(crate) fn start_from(&mut self, since: Option<Cursor>, answer: HistoryAnswer) {
        match (since, answer) {
            (None, HistoryAnswer::Gap { head, .. } | HistoryAnswer::Reset { head, .. }) => {
                self.position = head;
            }
            (Some(c), answer) => {
                self.position = c;
                self.apply(answer);
            }
        }
    }

    /// The channel.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// The hub this subscription belongs to (so that a connection holding the
    /// subscription need not keep a handle of its own).
    pub fn hub(&self) -> crate::Hub {
        crate::Hub::from_registry(Arc::clone(&self.registry))
    }

    /// The identity of its hub ([`crate::Hub::id`]).
    pub fn hub_id(&self) -> usize {
        crate::Hub::id_of(&self.registry)
    }

    /// The subscriber.
    pub fn client(&self) -> &ClientInfo {
        &self.inbox.client
    }

    /// The cursor of the last message returned. Before the first, it is where the
    /// subscription started: `since` when given, else the channel's head at subscribe
    /// time (after a `reset`, the `reset` message carries the new position). Resuming
    /// from it loses nothing. (Not kept apart: a connection's subscription is held for as
    /// long as it is subscribed, so each word counts.)
    pub fn position(&self) -> Cursor {
        self.position
    }

    /// Receives the next event. Cancel safe.
    pub async fn recv(&mut self) -> Result<Message, RecvError> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next event, registering `cx`'s waker to be woken when one is queued.
    ///
    /// The waker is called from inside the publishing call, with the channel's locks held:
    /// it must only schedule work (as task wakers do), never call into the hub or drop a
    /// subscription.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Message, RecvError>> {
        self.poll_inner(cx, true, None)
    }

    /// [`poll_recv`](Self::poll_recv), and when it is pending, offers `sink` for direct
    /// delivery ([`crate::direct`]): while the subscription waits, the fan-out's pacer may
    /// write its messages to `sink.fd` with the hub's
    /// [`DirectWrite`](crate::DirectWrite) instead of waking `cx`. The caller must have
    /// nothing queued on that socket, and must call [`end_direct`](Self::end_direct)
    /// before it writes to the socket, closes it or polls this subscription again.
    pub fn poll_recv_direct(
        &mut self,
        cx: &mut Context<'_>,
        sink: crate::DirectSink,
    ) -> Poll<Result<Message, RecvError>> {
        self.poll_inner(cx, true, Some(sink))
    }

    /// Whether direct delivery is installed (see [`end_direct`](Self::end_direct)).
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// Ends direct delivery: from here on the pacer writes nothing more to the socket, and
    /// the subscription stands where the pacer got to. `None` when it was not installed.
    /// A message whose frame the socket took only in part comes back with the number of
    /// bytes written: the caller writes the rest first.
    pub fn end_direct(&mut self) -> Option<crate::DirectEnd> {
        if !std::mem::take(&mut self.direct) {
            return None;
        }
        let mut st = self.inbox.lock();
        let (position, partial) = match std::mem::take(&mut st.direct) {
            crate::direct::Direct::Off => return Some(crate::DirectEnd { partial: None }),
            crate::direct::Direct::On { position, .. } => (position, 0),
            crate::direct::Direct::Handed { position, partial } => (position, partial),
        };
        // The message written in part is the first still queued: the position passes it.
        let rest = if partial > 0 {
            st.queue.pop_front()
        } else {
            None
        };
        drop(st);
        self.position = position;
        if let Some(m) = &rest {
            self.advance(m);
        }
        Some(crate::DirectEnd {
            partial: rest.map(|m| (m, partial as usize)),
        })
    }

    /// The next event if one is ready, without registering a waker: `Ok(None)` when
    /// nothing is ready. A history catch-up in flight is advanced with the last waker
    /// registered by `poll_recv`.
    pub fn try_recv(&mut self) -> Result<Option<Message>, RecvError> {
        // Only a catch-up polls futures with the waker; the steady state (a queue pop per
        // message) takes no clone of it.
        let poll = if self.catch_up.is_some() {
            self.poll_with_registered_waker()
        } else {
            let r = self.poll_inner(&mut Context::from_waker(Waker::noop()), false, None);
            if r.is_pending() && self.catch_up.is_some() {
                // A gap started a catch-up just now: its history read must wake the
                // consumer when it completes, so poll it again with the consumer's waker.
                self.poll_with_registered_waker()
            } else {
                r
            }
        };
        match poll {
            Poll::Ready(Ok(m)) => Ok(Some(m)),
            Poll::Ready(Err(e)) => Err(e),
            Poll::Pending => Ok(None),
        }
    }

    fn poll_with_registered_waker(&mut self) -> Poll<Result<Message, RecvError>> {
        let waker = self
            .inbox
            .lock()
            .waker
            .clone()
            .unwrap_or_else(|| Waker::noop().clone());
        self.poll_inner(&mut Context::from_waker(&waker), false, None)
    }

    /// Unsubscribes and waits until presence removal, `leave` and the broker
    /// unsubscription are done.
    pub async fn unsubscribe(mut self) {
        self.end_direct();
        self.released = true;
        self.registry
            .release(&self.channel, &self.inbox, self.registered)
            .await;
    }

    fn advance(&mut self, m: &Message) {
        if let Some(c) = m.cursor() {
            self.position = c;
        }
    }

    fn start_resync(&mut self, target: Option<Cursor>) {
        let broker = self.registry.broker.clone();
        let channel = self.channel.clone();
        let since = self.position;
        let retention = self.registry.retention(&self.channel);
        let catch_up = self.catch_up.get_or_insert_with(Box::default);
        catch_up.gap_target = target;
        catch_up.resync = Some(Box::pin(async move {
            broker.history(&channel, Some(since), None, retention).await
        }));
    }

    /// Queues a history answer's messages after the current position; for a `reset`
    /// answer, the `reset` and then every message still held.
    fn apply(&mut self, answer: HistoryAnswer) {
        if let HistoryAnswer::Gap { head, .. } = &answer {
            // A gap continues the position in the head's epoch: the same one, unless the
            // position was another name of an empty channel's offset 0 (see `epochs`),
            // which then takes the channel's name for it.
            let drained = self.catch_up.as_ref().is_none_or(|c| c.backlog.is_empty());
            if drained && self.position.epoch != head.epoch {
                self.position = Cursor::new(head.epoch, self.position.offset);
            }
        }
        let position = self.position;
        let channel = &self.channel;
        let catch_up = self.catch_up.get_or_insert_with(Box::default);
        // The first live message still queued when the catch-up began, if any.
        let target = catch_up.gap_target.take();
        let backlog = &mut catch_up.backlog;
        let mut reached = backlog.back().and_then(Message::cursor).unwrap_or(position);
        let messages = match answer {
            HistoryAnswer::Gap { messages, .. } => messages,
            HistoryAnswer::Reset {
                earliest, messages, ..
            } => {
                // Continue just before the oldest message still held, and deliver those at
                // once. Only when a live message still queued is older than that (history
                // shorter than the queue) continue just before it instead, so the queue
                // goes on from there and nothing it holds is thrown away.
                let queued_first = target.filter(|t| {
                    t.epoch == earliest.epoch && t.offset >= 1 && t.offset - 1 < earliest.offset
                });
                let at = queued_first.map_or(earliest, |t| Cursor::new(t.epoch, t.offset - 1));
                backlog.push_back(Message::reset_after(channel.clone(), reached, at));
                self.registry.stats.count_reset();
                reached = at;
                if queued_first.is_some() {
                    Vec::new()
                } else {
                    messages
                }
            }
        };
        for m in messages {
            if let Some(c) = m.cursor() {
                if c.epoch == reached.epoch && c.offset > reached.offset {
                    reached = c;
                    backlog.push_back(m);
                }
            }
        }
        let mut stale = None;
        if let Some(t) = target {
            if t.epoch != reached.epoch {
                // History, read after that message came, knows another epoch only: its
                // log is gone (the reset before said so), and the queued messages of that
                // log cannot follow the new one's.
                stale = Some(t.epoch);
            } else if reached.offset + 1 < t.offset {
                // The live message that revealed a gap must follow directly; history did
                // not bridge to it: say so rather than skip silently.
                let at = Cursor::new(t.epoch, t.offset - 1);
                backlog.push_back(Message::reset_after(channel.clone(), reached, at));
                self.registry.stats.count_reset();
            }
        }
        if catch_up.backlog.is_empty() && catch_up.resync.is_none() {
            self.catch_up = None;
        }
        if let Some(epoch) = stale {
            let mut st = self.inbox.lock();
            while st
                .queue
                .iter()
                .next()
                .and_then(Message::cursor)
                .is_some_and(|c| c.epoch == epoch)
            {
                st.queue.pop_front();
            }
        }
    }

    /// The catch-up's next step: `Ready(Some(m))` to return `m`, `Pending` while history
    /// is being read, `Ready(None)` when there is none (the box is then freed).
    fn poll_catch_up(&mut self, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        let Some(catch_up) = self.catch_up.as_mut() else {
            return Poll::Ready(None);
        };
        if let Some(fut) = catch_up.resync.as_mut() {
            match fut.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(answer)) => {
                    catch_up.resync = None;
                    self.apply(answer);
                }
                Poll::Ready(Err(_)) => {
                    catch_up.resync = None;
                    self.inbox.close(CloseReason::BrokerUnavailable);
                }
            }
        }
        let Some(catch_up) = self.catch_up.as_mut() else {
            return Poll::Ready(None);
        };
        let next = catch_up.backlog.pop_front();
        if catch_up.backlog.is_empty() && catch_up.resync.is_none() {
            self.catch_up = None;
        }
        Poll::Ready(next)
    }

    fn poll_inner(
        &mut self,
        cx: &mut Context<'_>,
        register: bool,
        sink: Option<crate::DirectSink>,
    ) -> Poll<Result<Message, RecvError>> {
        if self.direct {
            // The caller forgot `end_direct`: end it here (a partial frame, which only
            // `end_direct` can hand back, is the caller's to finish; it keeps it queued).
            debug_assert!(
                false,
                "a subscription polled with direct delivery installed"
            );
            if let Some(crate::DirectEnd {
                partial: Some((m, _)),
            }) = self.end_direct()
            {
                self.inbox.lock().queue.push_front(m);
            }
        }
        loop {
            if self.catch_up.is_some() {
                match self.poll_catch_up(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(m)) => {
                        self.advance(&m);
                        return Poll::Ready(Ok(m));
                    }
                    Poll::Ready(None) => {}
                }
            }
            let mut st = self.inbox.lock();
            if st.missed > 0 && st.closed.is_none() {
                let missed = std::mem::take(&mut st.missed);
                let first_queued = st
                    .queue
                    .iter()
                    .find(|m| m.event() == Event::Message)
                    .and_then(Message::cursor);
                drop(st);
                self.start_resync(first_queued);
                return Poll::Ready(Err(RecvError::Lagged {
                    missed: u64::from(missed),
                }));
            }
            let mut gap = None;
            while let Some(m) = st.queue.pop_front() {
                match classify(self.position, &m) {
                    Class::Skip => {}
                    Class::Deliver => {
                        drop(st);
                        self.advance(&m);
                        return Poll::Ready(Ok(m));
                    }
                    Class::Gap => {
                        gap = m.cursor();
                        st.queue.push_front(m);
                        break;
                    }
                }
            }
            // A gap in the queue, or (once what is queued was taken) the broker's feed whole
            // again after missing messages: read them from history now.
            if gap.is_some() || (st.resync && st.closed.is_none()) {
                st.resync = false;
                drop(st);
                self.start_resync(gap);
                continue;
            }
            if let Some(reason) = st.closed {
                return Poll::Ready(Err(RecvError::Closed {
                    reason,
                    resume_from: self.position,
                }));
            }
            if register {
                match &st.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => {
                        st.waker = Some(cx.waker().clone());
                        st.waker_loop = crate::event_loop::this_loop();
                    }
                }
                if let Some(sink) = sink.filter(|_| self.catch_up.is_none()) {
                    st.direct = crate::direct::Direct::On {
                        fd: sink.fd,
                        kind: sink.kind,
                        position: self.position,
                    };
                    self.direct = true;
                }
            }
            return Poll::Pending;
        }
    }
}

/// What to do with a queued message, given the position reached.
fn classify(position: Cursor, m: &Message) -> Class {
    match (m.event(), m.cursor()) {
        (_, None) | (Event::Reset, _) => Class::Deliver,
        (_, Some(c)) if c.epoch != position.epoch => Class::Gap,
        (_, Some(c)) if c.offset <= position.offset => Class::Skip,
        (_, Some(c)) if c.offset == position.offset + 1 => Class::Deliver,
        _ => Class::Gap,
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // The pacer must not write to the socket once its owner lets go of it.
        self.end_direct();
        if !self.released {
            self.released = true;
            self.registry.release_detached(
                self.channel.clone(),
                self.inbox.clone(),
                self.registered,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A subscription lives in its connection's task for as long as the connection is
    /// subscribed (tokio allocates a task in 128-byte steps), and the fan-out side once per
    /// subscriber: catch-up state is boxed and the queue bound kept per channel so both
    /// stay small. This catches growth.
    #[test]
    fn subscription_is_small() {
        let sub = std::mem::size_of::<Subscription>();
        eprintln!(
            "Subscription {sub} B, Inbox {} B, ClientInfo {} B",
            std::mem::size_of::<Inbox>(),
            std::mem::size_of::<ClientInfo>()
        );
        // 64 since the start position is no longer kept apart from the position (80
        // before): a parked connection's state then fits a 192-byte block.
        assert!(sub <= 64, "Subscription is {sub} bytes");
        let inbox = std::mem::size_of::<Inbox>();
        // 96 with direct delivery's state (descriptor and position, `crate::direct`) and
        // the queue as one pointer (`crate::queue`): with the `Arc`'s counts a 112-byte
        // block (104 and a 128-byte block with the queue's slice pointer).
        assert!(inbox <= 96, "Inbox is {inbox} bytes");
    }
}
