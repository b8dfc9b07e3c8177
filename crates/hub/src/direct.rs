//! Direct delivery: on a current-thread runtime, the pacer ([`crate::pacing`]) writes a
//! waiting subscriber's queued messages to its socket itself, instead of waking the
//! subscriber's task to do it.
//!
//! A connection whose task has nothing left to write and waits for its subscription
//! installs a [`DirectSink`] ([`crate::Subscription::poll_recv_direct`]): the socket's
//! descriptor and where the subscription stands. A message queued to it then costs the
//! pacer one lock and one write call, and the task is neither woken nor polled. Anything
//! the pacer does not handle itself (a message out of order, a join or leave, a lag, a
//! close, a resync, a socket that does not take everything) ends direct delivery
//! ([`Direct::Handed`]) and wakes the task, which takes over from where the pacer got to
//! ([`crate::Subscription::end_direct`]) before it uses the socket itself.
//!
//! Why: at one message per subscriber per write (10,000 subscribers at 10 msgs/s), the
//! wake, the task's poll and the socket's readiness checks were most of the user-space
//! time per delivery (`docs/perf/REPORT.md`, "Direct delivery").
//!
//! Writes go only through the [`DirectWrite`] the transport gives the fan-out, under the
//! inbox's lock, and only while the sink is installed: the transport ends direct delivery
//! (under the same lock) before it closes the socket.

use switchboard_proto::Cursor;

use crate::message::Message;
use crate::queue::Queue;

/// Writes `messages`, in order and as far as the socket `fd` takes them, without waiting
/// for it. Given by the transport ([`crate::Hub::set_direct_write`]); called by the pacer
/// under the subscriber's lock, so it must not call into the hub.
/// `kind` is the sink's (how the transport frames that connection's messages).
pub type DirectWrite =
    fn(fd: i32, kind: u16, messages: &mut dyn Iterator<Item = &Message>) -> Written;

/// How far a [`DirectWrite`] got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// Messages written whole.
    pub messages: usize,
    /// Bytes of the next message's frame written (the socket took only part of it).
    pub partial: usize,
    /// The socket took less than was offered (full, or failed): stop here.
    pub blocked: bool,
}

/// A connection's socket, offered for direct delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirectSink {
    /// The socket's descriptor; it must stay open until [`crate::Subscription::end_direct`].
    pub fd: i32,
    /// The transport's own tag, handed back to its [`DirectWrite`].
    pub kind: u16,
}

/// What a subscription's direct delivery left for its task
/// ([`crate::Subscription::end_direct`]).
#[derive(Debug)]
pub struct DirectEnd {
    /// A message whose frame the socket took only in part, and how many of its bytes:
    /// the rest must go before anything else.
    pub partial: Option<(Message, usize)>,
}

/// A subscription's direct-delivery state, in its inbox.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Direct {
    #[default]
    Off,
    /// Installed: the pacer may write to `fd`; `position` is the last message written.
    /// (The pacer that writes is that of the loop the task waits on: the inbox's
    /// `waker_loop`.)
    On {
        fd: i32,
        kind: u16,
        position: Cursor,
    },
    /// Ended by the pacer: where it got to, and how many bytes of the first queued
    /// message's frame it wrote.
    Handed { position: Cursor, partial: u32 },
}

/// What the pacer's visit did.
pub(crate) enum Visit {
    /// Everything queued was written (or nothing needed writing).
    Done,
    /// The task must take over: wake it.
    Wake,
}

/// Writes what is in a subscriber's `queue` through `write` while its `direct` delivery
/// is on; ends it (for the task to take over) at the first thing it does not handle, or
/// at once when `stop` (the subscription is closed, lagged or asked to resync).
pub(crate) fn visit(
    direct: &mut Direct,
    queue: &mut Queue,
    stop: bool,
    write: DirectWrite,
) -> Visit {
    let Direct::On {
        fd,
        kind,
        mut position,
    } = *direct
    else {
        // The task took over meanwhile; if it waits with messages queued, wake it.
        return if queue.len() > 0 {
            Visit::Wake
        } else {
            Visit::Done
        };
    };
    if stop {
        *direct = Direct::Handed {
            position,
            partial: 0,
        };
        return Visit::Wake;
    }
    loop {
        let first = queue.iter().next().map(|m| in_order(position, m));
        match first {
            None => {
                *direct = Direct::On { fd, kind, position };
                return Visit::Done;
            }
            Some(None) => {
                // Not a message to write here (out of order, a join or leave, a reset).
                *direct = Direct::Handed {
                    position,
                    partial: 0,
                };
                return Visit::Wake;
            }
            Some(Some(_)) => {}
        }
        let mut at = position;
        let written = write(
            fd,
            kind,
            &mut queue.iter().map_while(|m| {
                at = in_order(at, m)?;
                Some(m)
            }),
        );
        for _ in 0..written.messages {
            match queue.pop_front().and_then(|m| m.cursor()) {
                Some(c) => position = c,
                None => break,
            }
        }
        if written.blocked || written.messages == 0 {
            // The socket took less than offered (or the writer took nothing, which it
            // only does when blocked): the task finishes the write and waits for it.
            let partial = if written.blocked { written.partial } else { 0 };
            *direct = Direct::Handed {
                position,
                partial: u32::try_from(partial).unwrap_or(u32::MAX),
            };
            return Visit::Wake;
        }
        // Everything offered was taken (the writer may stop at its buffer's size): go on
        // with what is left.
    }
}

/// The cursor of `m` if it is the next message after `position` (a message event of the
/// same epoch, at the next offset), else `None`.
fn in_order(position: Cursor, m: &Message) -> Option<Cursor> {
    let c = m.cursor()?;
    (m.event() == switchboard_proto::Event::Message
        && switchboard_proto::follows(Some(position), c))
    .then_some(c)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::cell::RefCell;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};

    use super::*;
    use crate::test_loops::publish;
    use crate::{ClientInfo, Hub, HubConfig};

    thread_local! {
        /// Offsets written, and how many more whole messages the "socket" takes before
        /// it takes 5 bytes of the next and is full.
        static WROTE: RefCell<(Vec<u64>, usize)> = const { RefCell::new((Vec::new(), usize::MAX)) };
    }

    fn record(fd: i32, kind: u16, messages: &mut dyn Iterator<Item = &Message>) -> Written {
        assert_eq!((fd, kind), (7, 3));
        WROTE.with_borrow_mut(|(wrote, room)| {
            let mut w = Written::default();
            for m in messages {
                if *room == 0 {
                    w.partial = 5;
                    w.blocked = true;
                    break;
                }
                *room -= 1;
                wrote.push(m.cursor().unwrap().offset);
                w.messages += 1;
            }
            w
        })
    }

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A subscriber of `c` on `hub` whose writes go through `write`, waiting with the sink
    /// installed; and how often its task was woken.
    async fn waiting(hub: &Hub, write: DirectWrite) -> (crate::Subscription, Arc<Count>) {
        hub.set_direct_write(write);
        let mut sub = hub
            .subscribe("c", None, ClientInfo::new("c1"))
            .await
            .unwrap();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let sink = DirectSink { fd: 7, kind: 3 };
        assert!(sub
            .poll_recv_direct(&mut Context::from_waker(&waker), sink)
            .is_pending());
        assert!(sub.is_direct());
        (sub, count)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_pacer_writes_in_order_and_hands_a_partial_frame_back() {
        let hub = Hub::new(HubConfig::default());
        let (mut sub, count) = waiting(&hub, record).await;
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let sink = DirectSink { fd: 7, kind: 3 };

        // Waiting with the sink installed: three messages are written, nobody is woken.
        publish(&hub, 3).await;
        assert_eq!(WROTE.with_borrow(|w| w.0.clone()), [1, 2, 3]);
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        let end = sub.end_direct().unwrap();
        assert!(end.partial.is_none());
        assert_eq!(sub.position().offset, 3);

        // The socket takes one more whole message and 5 bytes of the next: the task is
        // woken, gets that message back with the bytes written, then the rest in order.
        WROTE.with_borrow_mut(|w| *w = (Vec::new(), 1));
        assert!(sub.poll_recv_direct(&mut cx, sink).is_pending());
        publish(&hub, 3).await;
        assert_eq!(WROTE.with_borrow(|w| w.0.clone()), [4]);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        let (m, written) = sub.end_direct().unwrap().partial.unwrap();
        assert_eq!((m.cursor().unwrap().offset, written), (5, 5));
        assert_eq!(sub.position().offset, 5);
        let Poll::Ready(Ok(next)) = sub.poll_recv(&mut cx) else {
            panic!("the last message is queued")
        };
        assert_eq!(next.cursor().unwrap().offset, 6);
        assert!(!sub.is_direct());
        assert!(sub.end_direct().is_none());
    }

    thread_local! {
        /// The offsets of each write call.
        static CALLS: RefCell<Vec<Vec<u64>>> = const { RefCell::new(Vec::new()) };
    }

    fn record_calls(_: i32, _: u16, messages: &mut dyn Iterator<Item = &Message>) -> Written {
        let offsets: Vec<u64> = messages.map(|m| m.cursor().unwrap().offset).collect();
        let n = offsets.len();
        CALLS.with_borrow_mut(|c| c.push(offsets));
        Written {
            messages: n,
            ..Written::default()
        }
    }

    /// Under a batch window the pacer still writes directly: the first message at once,
    /// the window's others in one write at its end, and the task is never woken.
    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_batch_window_s_messages_leave_in_one_direct_write() {
        let mut config = HubConfig::default();
        let window = std::time::Duration::from_millis(100);
        config.namespaces.get_mut("").unwrap().batch_window = Some(window);
        let hub = Hub::new(config);
        let (sub, count) = waiting(&hub, record_calls).await;
        publish(&hub, 3).await;
        assert_eq!(CALLS.with_borrow(Clone::clone), [vec![1]]);
        tokio::time::sleep(window).await;
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(CALLS.with_borrow(Clone::clone), [vec![1], vec![2, 3]]);
        assert_eq!(count.0.load(Ordering::SeqCst), 0, "the task was woken");
        assert!(sub.is_direct());
    }

    /// Who wrote which offset, from any thread.
    static BY_THREAD: std::sync::Mutex<Vec<(String, u64)>> = std::sync::Mutex::new(Vec::new());

    fn record_thread(fd: i32, _: u16, messages: &mut dyn Iterator<Item = &Message>) -> Written {
        assert_eq!(fd, 9);
        let name = std::thread::current().name().unwrap_or("").to_owned();
        let mut w = Written::default();
        for m in messages {
            let offset = m.cursor().unwrap().offset;
            BY_THREAD.lock().unwrap().push((name.clone(), offset));
            w.messages += 1;
        }
        w
    }

    /// Two event loops: a subscriber waiting on loop B has its messages written by B's
    /// pacer, in order, though loop A publishes them.
    #[test]
    fn an_event_loop_writes_to_the_sockets_it_serves_whoever_publishes() {
        use crate::test_loops::{run_loop, spawn_loop, until};
        let hub = Hub::new(HubConfig::default());
        hub.set_direct_write(record_thread);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let b_hub = hub.clone();
        let b = spawn_loop("loop-b", move || async move {
            let mut sub = b_hub
                .subscribe("c", None, ClientInfo::new("b1"))
                .await
                .unwrap();
            let count = Arc::new(Count(AtomicUsize::new(0)));
            let waker = Waker::from(count.clone());
            let sink = DirectSink { fd: 9, kind: 0 };
            let mut cx = Context::from_waker(&waker);
            assert!(sub.poll_recv_direct(&mut cx, sink).is_pending());
            ready_tx.send(()).unwrap();
            // The loop runs (its pacer with it) until the test has seen the writes.
            done_rx.await.unwrap();
            assert_eq!(count.0.load(Ordering::SeqCst), 0, "nobody woken");
            assert!(sub.end_direct().unwrap().partial.is_none());
            assert_eq!(sub.position().offset, 3);
        });
        ready_rx.recv().unwrap();
        run_loop(async {
            publish(&hub, 3).await;
            until(|| BY_THREAD.lock().unwrap().len() >= 3).await;
        });
        let wrote = BY_THREAD.lock().unwrap().clone();
        let b_wrote: Vec<(String, u64)> = (1..=3).map(|o| ("loop-b".to_owned(), o)).collect();
        assert_eq!(wrote, b_wrote);
        done_tx.send(()).unwrap();
        b.join().unwrap();
    }
}
