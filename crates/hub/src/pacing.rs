//! Waking a channel's subscribers after a message, a slice at a time, on a
//! current-thread runtime (each of `serve`'s event loops is one).
//!
//! A message to N subscribers is queued to all N at once (see [`crate::fanout`]). Waking
//! all N at once puts N writer tasks in the run queue. tokio's current-thread scheduler
//! (what each of `serve`'s event loops runs on) queues a task woken by I/O behind them, so the
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
//! Several event loops (threads, each with its own current-thread runtime: `serve
//! --workers N`) each register ([`EventLoop::register`]) and have a pacer of their own. A
//! subscriber taking direct delivery names the loop it waits on, and the fan-out hands
//! that loop's pacer the visits to its subscribers, a list per loop per message, so each
//! loop writes to the sockets it serves, whichever loop published: one message's writes
//! are spread over every loop. A task's wake goes the same way, to the loop the task
//! runs on, so no loop wakes another's tasks one by one (each such wake takes the other
//! runtime's queue lock).
//!
//! Memory: the queued wakers, 16 B each. A subscriber's waker is taken when its message
//! is queued and stored again only when its task next waits, so the queue holds at most
//! one waker per subscriber of the thread's channels.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::Waker;

use crate::direct::DirectWrite;
use crate::event_loop::{this_loop, NO_LOOP};
use crate::inbox::{Inbox, Wake};

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

/// Every event loop registered, by index (entries stay; a loop that ended is marked so).
static LOOPS: RwLock<Vec<Arc<Remote>>> = RwLock::new(Vec::new());

/// What other threads hand an event loop's pacer.
struct Remote {
    items: Mutex<Vec<Item>>,
    /// A task to take `items` is spawned and has not taken them yet.
    scheduled: AtomicBool,
    /// The loop still runs (its [`EventLoop`] is alive).
    alive: Arc<AtomicBool>,
    runtime: Handle,
}

impl Remote {
    /// Hands `items` to this loop's pacer; `false` (and nothing taken) if the loop ended.
    fn hand(self: &Arc<Self>, items: &mut Vec<Item>) -> bool {
        if !self.alive.load(Ordering::Acquire) {
            return false;
        }
        self.items
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .append(items);
        if !self.scheduled.swap(true, Ordering::AcqRel) {
            let remote = Arc::clone(self);
            self.runtime.spawn(async move {
                // Cleared before taking: items handed after the take schedule a new task.
                remote.scheduled.store(false, Ordering::Release);
                let items =
                    std::mem::take(&mut *remote.items.lock().unwrap_or_else(|e| e.into_inner()));
                pace_on_this_thread(items);
            });
        }
        true
    }
}

/// A thread registered as an event loop (see the module docs), until dropped.
#[derive(Debug)]
pub struct EventLoop {
    index: u16,
    alive: Arc<AtomicBool>,
}

impl EventLoop {
    /// Registers the calling thread, inside a task of its current-thread runtime, as an
    /// event loop; `None` elsewhere, or when 65,535 loops registered already.
    pub fn register() -> Option<Self> {
        let runtime = Handle::try_current().ok()?;
        if runtime.runtime_flavor() != RuntimeFlavor::CurrentThread {
            return None;
        }
        let remote = Arc::new(Remote {
            items: Mutex::new(Vec::new()),
            scheduled: AtomicBool::new(false),
            alive: Arc::new(AtomicBool::new(true)),
            runtime,
        });
        let index = {
            let mut loops = LOOPS.write().unwrap_or_else(|e| e.into_inner());
            let index = u16::try_from(loops.len()).ok().filter(|i| *i != NO_LOOP)?;
            loops.push(Arc::clone(&remote));
            index
        };
        crate::event_loop::enter(index, Arc::clone(&remote.alive));
        Some(Self {
            index,
            alive: Arc::clone(&remote.alive),
        })
    }
}

impl Drop for EventLoop {
    fn drop(&mut self) {
        self.alive.store(false, Ordering::Release);
        crate::event_loop::leave(self.index);
    }
}

/// The wakes of one message, collected while it is queued to every subscriber.
pub(crate) struct Wakes {
    /// `Some` inside a task of a current-thread runtime, where wakes go through this
    /// thread's pacer; elsewhere (the multi-thread scheduler, a publish from a plain
    /// thread) each wake happens at once and nothing is collected.
    paced: Option<Vec<Item>>,
    /// This thread's event loop ([`this_loop`]), and what is for other loops.
    here: u16,
    others: Vec<(u16, Vec<Item>)>,
}

impl Wakes {
    /// For a message to at most `subscribers`.
    pub(crate) fn new(subscribers: usize) -> Self {
        let paced = tokio::task::try_id().is_some()
            && Handle::try_current()
                .is_ok_and(|rt| rt.runtime_flavor() == RuntimeFlavor::CurrentThread);
        Wakes {
            paced: paced.then(|| Vec::with_capacity(subscribers)),
            here: if paced { this_loop() } else { NO_LOOP },
            others: Vec::new(),
        }
    }

    /// A subscriber's task to wake, running on event loop `owner`: woken by that loop's
    /// pacer, or this thread's when it is this loop or none; at once when not paced.
    pub(crate) fn add(&mut self, waker: Waker, owner: u16) {
        match self.paced {
            Some(_) => self.route(Item::Task(waker), owner),
            None => waker.wake(),
        }
    }

    fn route(&mut self, item: Item, owner: u16) {
        let Some(list) = &mut self.paced else {
            return;
        };
        if owner == self.here || owner == NO_LOOP {
            return list.push(item);
        }
        match self.others.iter_mut().find(|(o, _)| *o == owner) {
            Some((_, items)) => items.push(item),
            None => self.others.push((owner, vec![item])),
        }
    }

    /// Whether these wakes are paced (and so may write directly, [`crate::direct`]).
    pub(crate) fn paced(&self) -> bool {
        self.paced.is_some()
    }

    /// A subscriber taking direct delivery, waiting on event loop `owner`: that loop's
    /// pacer writes to it, or this thread's when it is this loop or none (only when
    /// [`Wakes::paced`]; otherwise nothing to do here).
    pub(crate) fn add_direct(&mut self, inbox: &Arc<Inbox>, write: DirectWrite, owner: u16) {
        if self.paced.is_some() {
            self.route(Item::Direct(Arc::clone(inbox), write), owner);
        }
    }

    /// Acts as an inbox's [`Wake`] says: its task's wake, or a visit of the pacer with
    /// the fan-out's direct writer `write` (none: the wake is not paced here).
    pub(crate) fn act(&mut self, inbox: &Arc<Inbox>, wake: Wake, write: Option<DirectWrite>) {
        match (wake, write) {
            (Wake::Task { waker, owner }, _) => self.add(waker, owner),
            (Wake::Direct { owner }, Some(write)) => self.add_direct(inbox, write, owner),
            _ => {}
        }
    }

    /// Hands each other loop its visits, and wakes what was collected through this
    /// thread's pacer (with the visits of loops that ended).
    pub(crate) fn finish(self) {
        let Some(mut wakers) = self.paced else {
            return;
        };
        if !self.others.is_empty() {
            let loops = LOOPS.read().unwrap_or_else(|e| e.into_inner());
            for (owner, mut items) in self.others {
                // The other loop visits these in the opposite order to the pushes. In the
                // same order, the next message's pushes caught up with its visits and then
                // followed them inbox by inbox, each push waiting out a visit's `send`
                // on the inbox's lock (a futex sleep and wake per inbox); now the two
                // cross once per message.
                items.reverse();
                let handed = loops
                    .get(usize::from(owner))
                    .is_some_and(|remote| remote.hand(&mut items));
                if !handed {
                    wakers.append(&mut items);
                }
            }
        }
        pace_on_this_thread(wakers);
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
        wakers.into_iter().for_each(|w| wakes.add(w, NO_LOOP));
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

    /// Records the name of the thread that wakes it.
    struct WokenOn(std::sync::Mutex<Vec<String>>);

    impl Wake for WokenOn {
        fn wake(self: Arc<Self>) {
            let name = std::thread::current().name().unwrap_or("").to_owned();
            self.0.lock().unwrap().push(name);
        }
    }

    /// Two event loops: a task waiting on loop B for a message that loop A publishes is
    /// woken by B's pacer, on B's thread.
    #[test]
    fn a_task_is_woken_by_the_pacer_of_its_own_loop() {
        use crate::test_loops::{publish, run_loop, spawn_loop, until};
        use crate::{ClientInfo, Hub, HubConfig};
        let hub = Hub::new(HubConfig::default());
        let woken = Arc::new(WokenOn(std::sync::Mutex::new(Vec::new())));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let (b_hub, b_woken) = (hub.clone(), woken.clone());
        let b = spawn_loop("loop-b", move || async move {
            let mut sub = b_hub
                .subscribe("c", None, ClientInfo::new("b1"))
                .await
                .unwrap();
            let waker = Waker::from(b_woken);
            let mut cx = std::task::Context::from_waker(&waker);
            assert!(sub.poll_recv(&mut cx).is_pending());
            ready_tx.send(()).unwrap();
            done_rx.await.unwrap();
        });
        ready_rx.recv().unwrap();
        run_loop(async {
            publish(&hub, 1).await;
            until(|| !woken.0.lock().unwrap().is_empty()).await;
        });
        assert_eq!(*woken.0.lock().unwrap(), ["loop-b"]);
        done_tx.send(()).unwrap();
        b.join().unwrap();
    }
}
