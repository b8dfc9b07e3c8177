//! Waking a channel's subscribers after a message, a slice at a time, on a
//! current-thread runtime.
//!
//! A message to N subscribers is queued to all N at once (see [`crate::fanout`]). Waking
//! all N at once puts N writer tasks in the run queue. tokio's current-thread scheduler
//! (what `serve --workers 1` runs on) queues a task woken by I/O behind them, so the
//! publisher's next `POST` would be served only after every writer of the last message:
//! one frame per write, as uWebSockets does. The multi-thread scheduler runs a task woken
//! by I/O next (its LIFO slot), so there the next message is queued while most writers
//! have not run, and they carry both in one write.
//!
//! So on a current-thread runtime the wakes go through one pacer per thread: a queue of
//! wakers and a task that wakes [`SLICE`] of them and yields, which lets tokio poll for
//! I/O before the next slice. The run queue then holds about one slice of writers, and a
//! `POST` waits behind that slice. The pacer goes round the subscribers in the order
//! their wakes came, so each writer still runs once per pass, however many messages
//! arrived meanwhile (docs/perf/REPORT.md, "Paced wakes").
//!
//! Memory: the queued wakers, 16 B each. A subscriber's waker is taken when its message
//! is queued and stored again only when its task next waits, so the queue holds at most
//! one waker per subscriber of the thread's channels.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::Arc;
use std::task::Waker;

use crate::direct::DirectWrite;
use crate::inbox::Inbox;

use tokio::runtime::{Handle, RuntimeFlavor};

/// Subscribers woken per turn of the pacer.
pub(crate) const SLICE: usize = 128;

#[derive(Default)]
struct Pacer {
    queue: VecDeque<Item>,
    /// The pacer task of this thread is alive.
    running: bool,
}

/// One subscriber to see to: wake its task, or write to its socket ([`crate::direct`]).
enum Item {
    Task(Waker),
    Direct(Arc<Inbox>, DirectWrite),
}

impl Item {
    fn run(self) {
        match self {
            Item::Task(w) => w.wake(),
            Item::Direct(inbox, write) => inbox.deliver_direct(write),
        }
    }
}

thread_local! {
    static PACER: RefCell<Pacer> = RefCell::new(Pacer::default());
}

/// The wakes of one message, collected while it is queued to every subscriber.
pub(crate) struct Wakes {
    /// `Some` inside a task of a current-thread runtime, where wakes go through this
    /// thread's pacer; elsewhere (the multi-thread scheduler, a publish from a plain
    /// thread) each wake happens at once and nothing is collected.
    paced: Option<Vec<Item>>,
}

impl Wakes {
    /// For a message to at most `subscribers`.
    pub(crate) fn new(subscribers: usize) -> Self {
        let paced = tokio::task::try_id().is_some()
            && Handle::try_current()
                .is_ok_and(|rt| rt.runtime_flavor() == RuntimeFlavor::CurrentThread);
        Wakes {
            paced: paced.then(|| Vec::with_capacity(subscribers)),
        }
    }

    pub(crate) fn add(&mut self, waker: Waker) {
        match &mut self.paced {
            Some(list) => list.push(Item::Task(waker)),
            None => waker.wake(),
        }
    }

    /// Whether these wakes are paced (and so may write directly, [`crate::direct`]).
    pub(crate) fn paced(&self) -> bool {
        self.paced.is_some()
    }

    /// A subscriber taking direct delivery: the pacer writes to it (only when
    /// [`Wakes::paced`]; otherwise nothing to do here).
    pub(crate) fn add_direct(&mut self, inbox: &Arc<Inbox>, write: DirectWrite) {
        if let Some(list) = &mut self.paced {
            list.push(Item::Direct(Arc::clone(inbox), write));
        }
    }

    /// Wakes what was collected through this thread's pacer.
    pub(crate) fn finish(self) {
        if let Some(wakers) = self.paced {
            pace_on_this_thread(wakers);
        }
    }
}

/// Hands `wakers` to this thread's pacer (inside a task of a current-thread runtime).
fn pace_on_this_thread(wakers: Vec<Item>) {
    let mut wakers = Some(wakers);
    let start = PACER.with_borrow_mut(|p| {
        let small = wakers.as_ref().is_some_and(|w| w.len() <= SLICE);
        if !p.running && p.queue.is_empty() && small {
            // Nothing waits and a slice's worth: no need for the pacer.
            return false;
        }
        p.queue.extend(wakers.take().into_iter().flatten());
        !std::mem::replace(&mut p.running, true)
    });
    wakers.into_iter().flatten().for_each(Item::run);
    if start {
        // Inside a task of a current-thread runtime: the pacer runs on this thread.
        tokio::spawn(pace());
    }
}

/// The pacer task: a slice per turn until the queue is empty.
async fn pace() {
    // Dropped with the runtime mid-way: wake what is left rather than lose it.
    let mut guard = Guard(true);
    loop {
        for _ in 0..SLICE {
            // Taken one at a time, so no borrow is held while a waker runs.
            let Some(item) = PACER.with_borrow_mut(|p| p.queue.pop_front()) else {
                break;
            };
            item.run();
        }
        let done = PACER.with_borrow_mut(|p| {
            p.running = !p.queue.is_empty();
            !p.running
        });
        if done {
            guard.0 = false;
            return;
        }
        tokio::task::yield_now().await;
    }
}

struct Guard(bool);

impl Drop for Guard {
    fn drop(&mut self) {
        if self.0 {
            let left = PACER
                .try_with(|p| {
                    let mut p = p.borrow_mut();
                    p.running = false;
                    std::mem::take(&mut p.queue)
                })
                .unwrap_or_default();
            left.into_iter().for_each(Item::run);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// What the fan-out does with one message's wakes.
    fn wake_paced(wakers: Vec<Waker>) {
        let mut wakes = Wakes::new(wakers.len());
        wakers.into_iter().for_each(|w| wakes.add(w));
        wakes.finish();
    }

    fn wakers(n: usize) -> (Arc<Count>, Vec<Waker>) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let wakers = (0..n).map(|_| Waker::from(count.clone())).collect();
        (count, wakers)
    }

    async fn settle(count: &Count, n: usize) -> usize {
        for _ in 0..1000 {
            if count.0.load(Ordering::SeqCst) >= n {
                break;
            }
            tokio::task::yield_now().await;
        }
        count.0.load(Ordering::SeqCst)
    }

    /// In a task of a current-thread runtime, a large wake goes a slice per turn, and
    /// every waker of two messages is woken exactly once.
    #[tokio::test(flavor = "current_thread")]
    async fn paces_a_slice_per_turn_and_wakes_everyone_once() {
        tokio::spawn(async {
            let n = SLICE * 3 + 5;
            let (count, all) = wakers(n);
            let (count2, more) = wakers(SLICE + 1);
            wake_paced(all);
            wake_paced(more);
            assert_eq!(
                count.0.load(Ordering::SeqCst),
                0,
                "the pacer has not run yet"
            );
            tokio::task::yield_now().await;
            // The pacer has had a turn or two (tokio wakes deferred tasks last-in first),
            // a whole slice each, and not all of them.
            let seen = count.0.load(Ordering::SeqCst);
            assert!(seen > 0 && seen < n && seen % SLICE == 0, "{seen} woken");
            assert_eq!(settle(&count, n).await, n);
            assert_eq!(settle(&count2, SLICE + 1).await, SLICE + 1);
            // Its next turn finds the queue empty and ends it.
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            assert!(!PACER.with_borrow(|p| p.running), "the pacer stopped");
            assert_eq!(count.0.load(Ordering::SeqCst), n, "nobody woken twice");
        })
        .await
        .unwrap();
    }

    /// A slice's worth with nothing queued goes at once.
    #[tokio::test(flavor = "current_thread")]
    async fn a_small_wake_goes_at_once() {
        tokio::spawn(async {
            let (count, all) = wakers(SLICE);
            wake_paced(all);
            assert_eq!(count.0.load(Ordering::SeqCst), SLICE);
        })
        .await
        .unwrap();
    }

    /// Outside a current-thread runtime's task nothing is paced.
    #[test]
    fn elsewhere_wakes_everyone_at_once() {
        let (count, all) = wakers(SLICE * 2);
        wake_paced(all);
        assert_eq!(count.0.load(Ordering::SeqCst), SLICE * 2);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let (count, all) = wakers(SLICE * 2);
        rt.block_on(async move {
            tokio::spawn(async move { wake_paced(all) }).await.unwrap();
        });
        assert_eq!(count.0.load(Ordering::SeqCst), SLICE * 2);
    }

    /// A runtime dropped while its pacer has work wakes what was left.
    #[test]
    fn a_dropped_pacer_wakes_what_is_left() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (count, all) = wakers(SLICE * 4);
        rt.block_on(async move {
            tokio::spawn(async move { wake_paced(all) }).await.unwrap();
        });
        drop(rt);
        assert_eq!(count.0.load(Ordering::SeqCst), SLICE * 4);
    }
}
