//! [`Wheel`]: one coarse timer serving many connections, and [`Sleeper`], the few bytes
//! each connection keeps to use it.
//!
//! A tokio `Sleep` is about a hundred bytes of timer-entry state per connection, held for
//! the connection's whole life although an idle connection's timers (pings every tens of
//! seconds, idle and close timeouts) need no precision. A wheel keeps instead, per
//! connection, one waker in a bucket of its deadline's tick, and one background task
//! (started on first use, parked while no bucket is held) wakes each bucket's wakers when
//! its tick passes.
//!
//! Semantics, for any transport (WebSocket pings, SSE heartbeats, …):
//!
//! * **Coarse.** Time is cut into ticks of `resolution`; a deadline is rounded up to the
//!   end of its tick, so a wake comes at most about one `resolution` late, never early.
//! * **Spurious wakes are normal.** A [`Sleeper`] re-registers only when it needs an
//!   earlier wake than the one it holds, when its registration fired, or when it is
//!   polled from another task; a later deadline keeps the earlier registration, whose wake
//!   is then spurious. A woken connection re-checks its real deadline
//!   ([`Sleeper::poll_until`] does).
//! * **Stale entries** (a connection that re-registered earlier, or is gone) stay in their
//!   bucket until its tick, then wake a waker that no longer waits; that costs nothing but
//!   the wake.
//! * **Cost.** Per registration one `Waker` (16 bytes) in a shared bucket; per
//!   connection a [`Sleeper`] (24 bytes) and, when kept next to it, a [`Wheel`] handle
//!   (8 bytes). One tokio task and one tokio timer serve the whole wheel.
//! * **Runtime.** The task runs on the runtime of the first registration; if that runtime
//!   shuts down while the wheel lives on, the next registration starts it again on the
//!   runtime current then (registrations made in between wait for that one).
//!
//! Time is tokio's clock (`tokio::time::Instant`), so paused-time tests drive it too.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// A shared coarse timer. Cheap to clone (one `Arc`); every clone is the same wheel. The
/// background task ends once every handle is dropped.
#[derive(Clone)]
pub struct Wheel {
    shared: Arc<Shared>,
}

struct Shared {
    origin: Instant,
    /// Nanoseconds per tick (at least 1).
    resolution: u128,
    /// Every tick up to and including this one has fired. Written under the lock before
    /// its wakers are woken, so a woken task that reads it sees its registration fired.
    fired_through: AtomicU64,
    state: Mutex<State>,
    /// Wakes the background task: an earlier bucket appeared, or the wheel is dropped.
    notify: Arc<Notify>,
}

#[derive(Default)]
struct State {
    buckets: BTreeMap<u64, Bucket>,
    /// The tick the background task sleeps until (`None`: parked, or not started).
    driver_next: Option<u64>,
    driver_started: bool,
}

/// The wakers of one tick, in fixed-size chunks: a bucket never holds more than one
/// chunk of spare room, where a doubling `Vec` of thousands of wakers (every connection
/// opened in the same half second) would hold up to as many again.
#[derive(Default)]
struct Bucket {
    chunks: Vec<Vec<Waker>>,
}

impl Bucket {
    const CHUNK: usize = 64;

    fn push(&mut self, waker: Waker) {
        match self.chunks.last_mut() {
            Some(chunk) if chunk.len() < Self::CHUNK => chunk.push(waker),
            _ => {
                let mut chunk = Vec::with_capacity(Self::CHUNK);
                chunk.push(waker);
                self.chunks.push(chunk);
            }
        }
    }

    fn pop(&mut self) {
        if let Some(chunk) = self.chunks.last_mut() {
            chunk.pop();
            if chunk.is_empty() {
                self.chunks.pop();
            }
        }
    }

    fn len(&self) -> usize {
        self.chunks.iter().map(Vec::len).sum()
    }

    fn into_wakers(self) -> impl Iterator<Item = Waker> {
        self.chunks.into_iter().flatten()
    }
}

/// One connection's registration with a [`Wheel`]: the tick it registered for and the
/// waker it registered. Starts unregistered ([`Default`]).
#[derive(Debug, Default)]
pub struct Sleeper {
    /// Registered tick; 0 means none (tick 0 is always in the past).
    tick: u64,
    waker: Option<Waker>,
}

impl std::fmt::Debug for Wheel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wheel")
            .field("resolution_ns", &self.shared.resolution)
            .field(
                "fired_through",
                &self.shared.fired_through.load(Ordering::Relaxed),
            )
            .finish_non_exhaustive()
    }
}

impl Wheel {
    /// A wheel whose ticks last `resolution` (a zero resolution counts as 1 ns). Its task
    /// is spawned on the current tokio runtime at the first registration.
    pub fn new(resolution: Duration) -> Self {
        Self {
            shared: Arc::new(Shared {
                origin: Instant::now(),
                resolution: resolution.as_nanos().max(1),
                fired_through: AtomicU64::new(0),
                state: Mutex::new(State::default()),
                notify: Arc::new(Notify::new()),
            }),
        }
    }

    /// Tick length.
    pub fn resolution(&self) -> Duration {
        let ns = u64::try_from(self.shared.resolution).unwrap_or(u64::MAX);
        Duration::from_nanos(ns)
    }

    /// Number of wakers held in buckets (live and stale registrations).
    pub fn registered(&self) -> usize {
        self.shared.lock().buckets.values().map(Bucket::len).sum()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The first tick whose end is at or after `deadline`.
    fn tick_of(&self, deadline: Instant) -> u64 {
        let ns = deadline.saturating_duration_since(self.origin).as_nanos();
        u64::try_from(ns.div_ceil(self.resolution)).unwrap_or(u64::MAX)
    }

    /// The tick in progress at `now` (the last one whose end has passed).
    fn tick_passed(&self, now: Instant) -> u64 {
        let ns = now.saturating_duration_since(self.origin).as_nanos();
        u64::try_from(ns / self.resolution).unwrap_or(u64::MAX)
    }

    fn instant_of(&self, tick: u64) -> Instant {
        let ns = self.resolution.saturating_mul(u128::from(tick));
        let ns = u64::try_from(ns).unwrap_or(u64::MAX);
        // Past the clock's range: a day later is as good (the task re-checks then).
        self.origin
            .checked_add(Duration::from_nanos(ns))
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400))
    }

    fn fired(&self, tick: u64) -> bool {
        tick <= self.fired_through.load(Ordering::Acquire)
    }

    /// Puts `waker` in the bucket of `tick`; false when that tick already fired.
    fn register(self: &Arc<Self>, tick: u64, waker: &Waker) -> bool {
        let mut state = self.lock();
        if self.fired(tick) {
            return false;
        }
        state.buckets.entry(tick).or_default().push(waker.clone());
        if !state.driver_started {
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                // No runtime to run the wheel on: the caller polls again at once instead.
                state.buckets.entry(tick).or_default().pop();
                return false;
            };
            state.driver_started = true;
            state.driver_next = None;
            runtime.spawn(drive(Arc::downgrade(self), self.notify.clone()));
        } else if state.driver_next.is_none_or(|next| tick < next) {
            state.driver_next = Some(tick);
            self.notify.notify_one();
        }
        true
    }

    /// Wakes every bucket whose tick has passed at `now`; returns when the next one is due.
    fn fire_due(&self, now: Instant) -> Option<Instant> {
        let passed = self.tick_passed(now);
        let mut state = self.lock();
        let later = state.buckets.split_off(&passed.saturating_add(1));
        let due = std::mem::replace(&mut state.buckets, later);
        self.fired_through.fetch_max(passed, Ordering::Release);
        state.driver_next = state.buckets.keys().next().copied();
        let next = state.driver_next.map(|t| self.instant_of(t));
        drop(state);
        for waker in due.into_values().flat_map(Bucket::into_wakers) {
            waker.wake();
        }
        next
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Lets the background task notice the wheel is gone.
        self.notify.notify_one();
    }
}

/// The wheel's background task: fire what is due, sleep until the next bucket (or until
/// an earlier one appears), repeat; ends when every handle is gone. If its runtime shuts
/// down first, the next registration starts it again on the runtime then current.
async fn drive(shared: Weak<Shared>, notify: Arc<Notify>) {
    let _restart = Restart(shared.clone());
    let sleep = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(sleep);
    loop {
        let next = {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            shared.fire_due(Instant::now())
        };
        match next {
            Some(at) => {
                sleep.as_mut().reset(at);
                tokio::select! {
                    () = sleep.as_mut() => {}
                    () = notify.notified() => {}
                }
            }
            None => notify.notified().await,
        }
    }
}

/// Marks the background task as gone when its future is dropped (finished, or dropped
/// with its runtime).
struct Restart(Weak<Shared>);

impl Drop for Restart {
    fn drop(&mut self) {
        if let Some(shared) = self.0.upgrade() {
            let mut state = shared.lock();
            state.driver_started = false;
            state.driver_next = None;
        }
    }
}

impl Sleeper {
    /// A sleeper with no registration.
    pub const fn new() -> Self {
        Self {
            tick: 0,
            waker: None,
        }
    }

    /// Ready once `deadline` has passed; otherwise makes sure `cx`'s task is woken by
    /// `wheel` no later than about one resolution after `deadline` (maybe earlier:
    /// re-check the deadline when woken). Cheap when nothing changed: no lock, no clock
    /// read while the held registration is still due at or before `deadline`'s tick.
    /// Always use the same wheel with one sleeper.
    pub fn poll_until(
        &mut self,
        wheel: &Wheel,
        deadline: Instant,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        let shared = &wheel.shared;
        let need = shared.tick_of(deadline);
        if self.tick != 0
            && self.tick <= need
            && !shared.fired(self.tick)
            && self.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker()))
        {
            return Poll::Pending;
        }
        if Instant::now() >= deadline {
            self.tick = 0;
            return Poll::Ready(());
        }
        if shared.register(need, cx.waker()) {
            self.tick = need;
            match &mut self.waker {
                Some(w) => w.clone_from(cx.waker()),
                None => self.waker = Some(cx.waker().clone()),
            }
        } else {
            // The tick passed (or there is no runtime to run the wheel): poll again soon.
            self.tick = 0;
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }

    /// Forgets the registration (its bucket entry stays until its tick; that wake is
    /// then spurious).
    pub fn reset(&mut self) {
        self.tick = 0;
        self.waker = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;

    #[test]
    fn a_bucket_keeps_at_most_one_chunk_of_spare_room() {
        let mut b = Bucket::default();
        for _ in 0..200 {
            b.push(Waker::noop().clone());
        }
        assert_eq!(b.len(), 200);
        let room: usize = b.chunks.iter().map(|c| c.capacity() - c.len()).sum();
        assert!(room < Bucket::CHUNK, "spare room {room}");
        for _ in 0..9 {
            b.pop();
        }
        assert_eq!(b.len(), 191);
        assert_eq!(b.chunks.len(), 3, "the emptied last chunk is dropped");
        assert_eq!(b.into_wakers().count(), 191);
    }

    #[tokio::test(start_paused = true)]
    async fn wakes_after_the_deadline_within_one_resolution() {
        let wheel = Wheel::new(Duration::from_millis(500));
        let mut sleeper = Sleeper::new();
        let start = Instant::now();
        let deadline = start + Duration::from_millis(1200);
        poll_fn(|cx| sleeper.poll_until(&wheel, deadline, cx)).await;
        let woke = Instant::now();
        assert!(woke >= deadline);
        assert!(woke <= deadline + Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn a_later_deadline_keeps_the_registration_an_earlier_one_adds_one() {
        let wheel = Wheel::new(Duration::from_secs(1));
        let mut sleeper = Sleeper::new();
        let now = Instant::now();
        let waker = futures_waker();
        let mut cx = Context::from_waker(&waker);
        let at = |s| now + Duration::from_secs(s);
        assert!(sleeper.poll_until(&wheel, at(10), &mut cx).is_pending());
        assert_eq!(wheel.registered(), 1);
        assert!(sleeper.poll_until(&wheel, at(20), &mut cx).is_pending());
        assert_eq!(
            wheel.registered(),
            1,
            "a later deadline re-uses the earlier wake"
        );
        assert!(sleeper.poll_until(&wheel, at(5), &mut cx).is_pending());
        assert_eq!(wheel.registered(), 2, "an earlier deadline registers again");
        assert!(sleeper.poll_until(&wheel, now, &mut cx).is_ready());
    }

    #[tokio::test(start_paused = true)]
    async fn one_wheel_serves_many_sleepers() {
        let wheel = Wheel::new(Duration::from_millis(250));
        let mut tasks = Vec::new();
        for i in 0..50u64 {
            let wheel = wheel.clone();
            tasks.push(tokio::spawn(async move {
                let deadline = Instant::now() + Duration::from_millis(100 * i + 1);
                let mut sleeper = Sleeper::new();
                poll_fn(|cx| sleeper.poll_until(&wheel, deadline, cx)).await;
                Instant::now() >= deadline
            }));
        }
        for t in tasks {
            assert!(t.await.expect("sleeper task"));
        }
        assert_eq!(wheel.registered(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_task_ends_when_the_wheel_is_dropped() {
        let metrics = tokio::runtime::Handle::current().metrics();
        let before = metrics.num_alive_tasks();
        let wheel = Wheel::new(Duration::from_millis(100));
        let mut sleeper = Sleeper::new();
        let deadline = Instant::now() + Duration::from_millis(150);
        poll_fn(|cx| sleeper.poll_until(&wheel, deadline, cx)).await;
        assert_eq!(
            metrics.num_alive_tasks(),
            before + 1,
            "the wheel runs one task"
        );
        drop(wheel);
        for _ in 0..100 {
            if metrics.num_alive_tasks() == before {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(metrics.num_alive_tasks(), before, "the wheel's task ended");
    }

    #[test]
    fn a_wheel_outlives_the_runtime_its_task_ran_on() {
        let wheel = Wheel::new(Duration::from_millis(10));
        let first = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        first.block_on(async {
            let mut sleeper = Sleeper::new();
            let deadline = Instant::now() + Duration::from_millis(20);
            poll_fn(|cx| sleeper.poll_until(&wheel, deadline, cx)).await;
        });
        drop(first);
        let second = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        second.block_on(async {
            let mut sleeper = Sleeper::new();
            let deadline = Instant::now() + Duration::from_millis(20);
            let woke = tokio::time::timeout(
                Duration::from_secs(10),
                poll_fn(|cx| sleeper.poll_until(&wheel, deadline, cx)),
            )
            .await;
            assert!(woke.is_ok(), "the wheel fires on the second runtime");
        });
    }

    fn futures_waker() -> Waker {
        struct Noop;
        impl std::task::Wake for Noop {
            fn wake(self: Arc<Self>) {}
        }
        Waker::from(Arc::new(Noop))
    }
}
