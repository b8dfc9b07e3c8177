//! [`Inbox`]: one subscription's end that the fan-out writes to. The fan-out pushes
//! pointers to shared messages into its bounded queue, applying the slow-consumer policy
//! when it is full, and wakes the consumer; closing it (a slow consumer, a disconnect, the
//! hub's shutdown) frees the queue and wakes the consumer too, as does a resync request
//! (the broker's feed came back). The
//! [`Subscription`](crate::Subscription) takes events from it; what a subscriber then sees
//! is described in [`crate::subscription`].

use std::sync::{Mutex, MutexGuard};
use std::task::Waker;

use crate::config::SlowConsumerPolicy;
use crate::direct::{self, Direct, DirectWrite, Visit};
use crate::error::CloseReason;
use crate::message::Message;
use crate::presence::ClientInfo;
use crate::queue::Queue;

/// What the fan-out and the subscription share, under one lock.
pub(crate) struct InboxState {
    /// Keeps its capacity as it drains, so a steady stream of deliveries allocates nothing;
    /// freed only when the subscription closes.
    pub(crate) queue: Queue,
    /// Dropped since the last `Lagged` report; u32 (saturating) so that it and `closed`
    /// share one word and the shared state fits the next smaller allocation class.
    pub(crate) missed: u32,
    pub(crate) closed: Option<CloseReason>,
    /// The broker's feed came back after missing messages: read history from the
    /// position before taking more from the queue.
    pub(crate) resync: bool,
    pub(crate) waker: Option<Waker>,
    /// The event loop the waker's task runs on ([`crate::event_loop::this_loop`]): its
    /// pacer wakes the task, and writes for it while direct delivery is on.
    pub(crate) waker_loop: u16,
    /// Direct delivery's state ([`crate::direct`]).
    pub(crate) direct: Direct,
}

/// See the module docs. The queue bound and the slow-consumer policy are the channel's
/// (see `fanout::LocalChannel`), not stored here.
pub(crate) struct Inbox {
    pub(crate) client: ClientInfo,
    state: Mutex<InboxState>,
}

/// Who [`Inbox::push`] says must act on the new event.
#[derive(Debug)]
pub(crate) enum Wake {
    /// Nobody (the consumer runs already, or will be woken later).
    None,
    /// The consumer's task, running on event loop `owner`.
    Task { waker: Waker, owner: u16 },
    /// The pacer of event loop `owner` (or this thread's), writing directly
    /// ([`crate::direct`]): the first event queued while direct delivery is on.
    Direct { owner: u16 },
}

/// What [`Inbox::push`] did (counted by the fan-out: [`crate::stats`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    Queued,
    /// Queued after dropping the oldest (policy `drop_oldest`, queue full).
    DroppedOldest,
    /// The queue was full: the subscription is closed (policy `close`).
    Closed,
    /// The subscription was closed already.
    Gone,
}

impl Inbox {
    pub(crate) fn new(client: ClientInfo) -> Self {
        Inbox {
            client,
            state: Mutex::new(InboxState {
                queue: Queue::new(),
                missed: 0,
                closed: None,
                resync: false,
                waker: None,
                waker_loop: crate::event_loop::NO_LOOP,
                direct: Direct::Off,
            }),
        }
    }

    /// The state, locked; the subscription takes its events under this lock.
    pub(crate) fn lock(&self) -> MutexGuard<'_, InboxState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Enqueues one event, applying the slow-consumer policy when `capacity` (at least 1)
    /// events are queued already. If `wake`, says who must act: the consumer's task when
    /// it waits, or with `direct` (the fan-out is paced here) the pacer when the consumer
    /// takes direct delivery; otherwise the waker stays for a batch window's
    /// [`Inbox::wake`]. A subscription the policy closes is woken here either way.
    pub(crate) fn push(
        &self,
        msg: &Message,
        capacity: usize,
        policy: SlowConsumerPolicy,
        wake: bool,
        direct: bool,
    ) -> (Pushed, Wake) {
        let pushed;
        let waker = {
            let mut st = self.lock();
            if st.closed.is_some() {
                return (Pushed::Gone, Wake::None);
            }
            let was_empty = st.queue.len() == 0;
            if st.queue.len() >= capacity {
                match policy {
                    SlowConsumerPolicy::Close => {
                        st.closed = Some(CloseReason::SlowConsumer);
                        st.queue.free();
                        pushed = Pushed::Closed;
                    }
                    SlowConsumerPolicy::DropOldest => {
                        st.queue.pop_front();
                        st.missed = st.missed.saturating_add(1);
                        st.queue.push_back(msg.clone());
                        pushed = Pushed::DroppedOldest;
                    }
                }
            } else {
                st.queue.push_back(msg.clone());
                pushed = Pushed::Queued;
            }
            if wake || st.closed.is_some() {
                // The pacer visits once for all that queues before it comes.
                who_acts(&mut st, direct, was_empty)
            } else {
                Wake::None
            }
        };
        if pushed == Pushed::Closed {
            if let Wake::Task { waker: w, .. } = waker {
                w.wake();
            }
            return (pushed, Wake::None);
        }
        (pushed, waker)
    }

    /// A batch window's wake ([`crate::batch`]): who must act on what was queued without
    /// a wake, as [`Inbox::push`] says for one event. The pacer when direct delivery is
    /// on, the fan-out is paced here (`direct`) and something is queued; else the waiting
    /// task.
    pub(crate) fn wake_queued(&self, direct: bool) -> Wake {
        let mut st = self.lock();
        let queued = st.queue.len() > 0;
        who_acts(&mut st, direct, queued)
    }

    /// The pacer's visit: writes what is queued while direct delivery is on, through
    /// `write`; wakes the consumer when it must take over.
    pub(crate) fn deliver_direct(&self, write: DirectWrite) {
        let waker = {
            let mut st = self.lock();
            let stop = st.closed.is_some() || st.missed > 0 || st.resync;
            let InboxState { queue, direct, .. } = &mut *st;
            match direct::visit(direct, queue, stop, write) {
                Visit::Done => None,
                Visit::Wake => st.waker.take(),
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Asks the consumer to read what it may have missed from history, and wakes it.
    pub(crate) fn resync(&self) {
        let waker = {
            let mut st = self.lock();
            if st.closed.is_some() {
                return;
            }
            st.resync = true;
            st.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Closes the subscription; `false` if it was already closed.
    pub(crate) fn close(&self, reason: CloseReason) -> bool {
        let waker = {
            let mut st = self.lock();
            if st.closed.is_some() {
                return false;
            }
            st.closed = Some(reason);
            st.queue.free();
            st.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        true
    }
}

/// Who acts on queued events, under the inbox's lock. With direct delivery on and the
/// fan-out paced on this thread (`direct`): the pacer of the loop the task waits on (which
/// installed the sink), when it needs a `visit`. Direct delivery on but not paced here
/// (another runtime's thread): the task takes over from the pacer. Otherwise (and for a
/// closed subscription): the waiting task.
fn who_acts(st: &mut InboxState, direct: bool, visit: bool) -> Wake {
    if let (None, Direct::On { position, .. }) = (st.closed, st.direct) {
        if direct {
            return if visit {
                Wake::Direct {
                    owner: st.waker_loop,
                }
            } else {
                Wake::None
            };
        }
        st.direct = Direct::Handed {
            position,
            partial: 0,
        };
    }
    let owner = st.waker_loop;
    st.waker
        .take()
        .map_or(Wake::None, |waker| Wake::Task { waker, owner })
}
