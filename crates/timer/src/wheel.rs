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
//! * **Coarse.** Time is cut into ticks of `resolution` (at least 1 ms); a deadline is
//!   rounded up to the end of its tick, so a wake comes at most about one `resolution`
//!   late, never early.
//! * **Spurious wakes are normal.** A [`Sleeper`] re-registers only when it needs an
//!   earlier wake than the one it holds (it then moves its registration), when its
//!   registration fired, or when it is polled from another task; a later deadline keeps
//!   the earlier registration, whose wake is then spurious. A woken connection re-checks
//!   its real deadline ([`Sleeper::poll_until`] does).
//! * **Cancelled, not left behind.** A registration knows its slot in the bucket, and
//!   [`Sleeper::cancel`] takes the waker out ([`WheelTimer`] does it when dropped). A waker
//!   left behind by a wait that ended early (a long-poll answered before its timeout, a
//!   connection that closed) would keep its task's memory alive until the tick and then
//!   wake it for nothing: one per long-poll request, 30 s long.
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

/// The finest resolution a wheel takes.
const MIN_RESOLUTION: Duration = Duration::from_millis(1);

/// A shared coarse timer. Cheap to clone (one `Arc`); every clone is the same wheel. The
/// background task ends once every handle is dropped.
#[derive(Clone)]
pub struct Wheel {
    shared: Arc<Shared>,
}

struct Shared {
    origin: Instant,
    /// Nanoseconds per tick (at least [`MIN_RESOLUTION`]).
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

/// The wakers of one tick, in slots of fixed-size chunks: a bucket never holds more than
/// one chunk of spare room past its highest slot, where a doubling `Vec` of thousands of
/// wakers (every connection opened in the same half second) would hold up to as many
/// again. A cancelled waker's slot is reused by the bucket's next registration.
#[derive(Default)]
struct Bucket {
    chunks: Vec<Vec<Option<Waker>>>,
    /// Slots emptied by a cancel.
    free: Vec<u32>,
    /// Wakers held.
    live: usize,
}

impl Bucket {
    const CHUNK: usize = 64;

    /// Holds `waker`; returns its slot.
    fn insert(&mut self, waker: Waker) -> usize {
        self.live += 1;
        if let Some(slot) = self.free.pop() {
            let slot = slot as usize;
            if let Some(entry) = self.slot_mut(slot) {
                *entry = Some(waker);
                return slot;
            }
        }
        match self.chunks.last_mut() {
            Some(chunk) if chunk.len() < Self::CHUNK => chunk.push(Some(waker)),
            _ => {
                let mut chunk = Vec::with_capacity(Self::CHUNK);
                chunk.push(Some(waker));
                self.chunks.push(chunk);
            }
        }
        (self.chunks.len() - 1) * Self::CHUNK + self.chunks.last().map_or(1, Vec::len) - 1
    }

    /// Takes the waker out of `slot` (`None` if it holds none).
    fn remove(&mut self, slot: usize) -> Option<Waker> {
        let waker = self.slot_mut(slot)?.take()?;
        self.live -= 1;
        // Only slots a sleeper recorded (at most MAX_SLOT) are removed: this always fits.
        if let Ok(slot) = u32::try_from(slot) {
            self.free.push(slot);
        }
        Some(waker)
    }

    fn slot_mut(&mut self, slot: usize) -> Option<&mut Option<Waker>> {
        self.chunks
            .get_mut(slot / Self::CHUNK)?
            .get_mut(slot % Self::CHUNK)
    }

    fn len(&self) -> usize {
        self.live
    }

    fn into_wakers(self) -> impl Iterator<Item = Waker> {
        self.chunks.into_iter().flatten().flatten()
    }
}

/// Bits of [`Sleeper::reg`] that hold the tick: 2^40 ticks of at least 1 ms are 35 years.
const TICK_BITS: u32 = 40;
const TICK_MASK: u64 = (1 << TICK_BITS) - 1;
/// The last tick a wheel counts to (a later deadline is woken then, and re-checked).
const MAX_TICK: u64 = TICK_MASK;
/// Slots a sleeper can record (slot + 1 in the bits above the tick). A registration in a
/// slot past this (16 M wakers in one tick) cannot be cancelled and fires as a spurious
/// wake at its tick, as every registration used to.
const MAX_SLOT: usize = (1 << (64 - TICK_BITS)) - 2;

/// One connection's registration with a [`Wheel`]: the tick it registered for, its slot
/// in that tick's bucket, and the waker it registered. Starts unregistered ([`Default`]).
/// Dropping it leaves the registration in place until its tick; [`Sleeper::cancel`]
/// takes it out (or use a [`WheelTimer`], which does that when dropped).
#[derive(Debug, Default)]
pub struct Sleeper {
    /// The registered tick in the low [`TICK_BITS`] (0: none; tick 0 is always in the
    /// past), and its slot + 1 above them (0: not recorded). One word, so that a sleeper
    /// stays 24 bytes.
    reg: u64,
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
    /// A wheel whose ticks last `resolution` (at least 1 ms: less counts as 1 ms). Its
    /// task is spawned on the current tokio runtime at the first registration.
    pub fn new(resolution: Duration) -> Self {
        Self {
            shared: Arc::new(Shared {
                origin: Instant::now(),
                resolution: resolution.as_nanos().max(MIN_RESOLUTION.as_nanos()),
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

    /// Number of wakers held in buckets: registrations not yet fired nor cancelled.
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
        u64::try_from(ns.div_ceil(self.resolution)).map_or(MAX_TICK, |t| t.min(MAX_TICK))
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

    /// Puts `waker` in the bucket of `tick` and returns its slot; `None` when that tick
    /// already fired.
    fn register(self: &Arc<Self>, tick: u64, waker: &Waker) -> Option<usize> {
        let mut state = self.lock();
        if self.fired(tick) {
            return None;
        }
        let slot = state.buckets.entry(tick).or_default().insert(waker.clone());
        if !state.driver_started {
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                // No runtime to run the wheel on: the caller polls again at once instead.
                let waker = Self::take(&mut state, tick, slot);
                drop(state);
                drop(waker);
                return None;
            };
            state.driver_started = true;
            state.driver_next = None;
            runtime.spawn(drive(Arc::downgrade(self), self.notify.clone()));
        } else if state.driver_next.is_none_or(|next| tick < next) {
            state.driver_next = Some(tick);
            self.notify.notify_one();
        }
        Some(slot)
    }

    /// Takes the waker in `slot` of `tick`'s bucket out (nothing if that tick fired), and
    /// drops the bucket once empty.
    fn unregister(&self, tick: u64, slot: usize) {
        let mut state = self.lock();
        let waker = Self::take(&mut state, tick, slot);
        drop(state);
        // Outside the lock: dropping the last waker of a finished task frees the task.
        drop(waker);
    }

    fn take(state: &mut State, tick: u64, slot: usize) -> Option<Waker> {
        let bucket = state.buckets.get_mut(&tick)?;
        let waker = bucket.remove(slot);
        if bucket.len() == 0 {
            state.buckets.remove(&tick);
        }
        waker
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
            reg: 0,
            waker: None,
        }
    }

    fn tick(&self) -> u64 {
        self.reg & TICK_MASK
    }

    /// The registration's slot, if recorded.
    fn slot(&self) -> Option<usize> {
        usize::try_from(self.reg >> TICK_BITS)
            .ok()
            .and_then(|s| s.checked_sub(1))
    }

    fn set(&mut self, tick: u64, slot: usize) {
        let slot = if slot <= MAX_SLOT { slot as u64 + 1 } else { 0 };
        self.reg = (slot << TICK_BITS) | (tick & TICK_MASK);
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
        let tick = self.tick();
        if tick != 0
            && tick <= need
            && !shared.fired(tick)
            && self.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker()))
        {
            return Poll::Pending;
        }
        // Whatever comes next, the registration held (if any) is not wanted any more.
        self.unregister(wheel);
        if Instant::now() >= deadline {
            return Poll::Ready(());
        }
        match shared.register(need, cx.waker()) {
            Some(slot) => {
                self.set(need, slot);
                match &mut self.waker {
                    Some(w) => w.clone_from(cx.waker()),
                    None => self.waker = Some(cx.waker().clone()),
                }
            }
            // The tick passed (or there is no runtime to run the wheel): poll again soon.
            None => cx.waker().wake_by_ref(),
        }
        Poll::Pending
    }

    /// Takes the registration out of its bucket (if it has not fired), so that the task
    /// is not woken for it and the wheel holds no waker of it.
    pub fn cancel(&mut self, wheel: &Wheel) {
        self.unregister(wheel);
        self.waker = None;
    }

    fn unregister(&mut self, wheel: &Wheel) {
        let (tick, slot) = (self.tick(), self.slot());
        self.reg = 0;
        if let (true, Some(slot)) = (tick != 0, slot) {
            if !wheel.shared.fired(tick) {
                wheel.shared.unregister(tick, slot);
            }
        }
    }
}

/// A [`Sleeper`] with its wheel, cancelled when dropped: what a connection or a request
/// keeps to wait on the wheel, so that one that ends (a long-poll answered with news, a
/// connection that closes) leaves no waker behind. 32 bytes.
#[derive(Debug)]
pub struct WheelTimer {
    wheel: Wheel,
    sleeper: Sleeper,
}

impl WheelTimer {
    /// A timer on `wheel`; nothing is registered until it is polled.
    pub fn new(wheel: Wheel) -> Self {
        Self {
            wheel,
            sleeper: Sleeper::new(),
        }
    }

    /// Ready once `deadline` has passed; see [`Sleeper::poll_until`].
    pub fn poll_until(&mut self, deadline: Instant, cx: &mut Context<'_>) -> Poll<()> {
        self.sleeper.poll_until(&self.wheel, deadline, cx)
    }
}

impl Drop for WheelTimer {
    fn drop(&mut self) {
        self.sleeper.cancel(&self.wheel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;

    #[test]
    fn a_bucket_keeps_at_most_one_chunk_of_spare_room_and_reuses_cancelled_slots() {
        let mut b = Bucket::default();
        let slots: Vec<usize> = (0..200).map(|_| b.insert(Waker::noop().clone())).collect();
        assert_eq!(slots, (0..200).collect::<Vec<_>>());
        assert_eq!(b.len(), 200);
        let room: usize = b.chunks.iter().map(|c| c.capacity() - c.len()).sum();
        assert!(room < Bucket::CHUNK, "spare room {room}");
        for slot in 10..19 {
            assert!(b.remove(slot).is_some());
        }
        assert!(b.remove(10).is_none(), "a slot is emptied once");
        assert_eq!(b.len(), 191);
        let chunks = b.chunks.len();
        let mut reused: Vec<usize> = (0..9).map(|_| b.insert(Waker::noop().clone())).collect();
        reused.sort_unstable();
        assert_eq!(reused, (10..19).collect::<Vec<_>>());
        assert_eq!(
            b.chunks.len(),
            chunks,
            "no chunk added while slots were free"
        );
        assert_eq!(b.into_wakers().count(), 200);
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
    async fn a_later_deadline_keeps_the_registration_an_earlier_one_moves_it() {
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
        assert_eq!(
            wheel.registered(),
            1,
            "an earlier deadline moves the registration"
        );
        assert!(sleeper.poll_until(&wheel, now, &mut cx).is_ready());
        assert_eq!(
            wheel.registered(),
            0,
            "a deadline that passed keeps nothing"
        );
    }

    /// A waker that counts its wakes; the `Arc`'s count shows who still holds it.
    struct Counter(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn counter() -> (Arc<Counter>, Waker) {
        let c = Arc::new(Counter(std::sync::atomic::AtomicUsize::new(0)));
        (c.clone(), Waker::from(c))
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_registration_is_not_woken_and_holds_no_waker() {
        let wheel = Wheel::new(Duration::from_millis(100));
        let deadline = Instant::now() + Duration::from_millis(250);
        let mut sleepers: Vec<(Arc<Counter>, Waker, Sleeper)> = (0..3)
            .map(|_| {
                let (count, waker) = counter();
                (count, waker, Sleeper::new())
            })
            .collect();
        for (_, waker, sleeper) in &mut sleepers {
            let mut cx = Context::from_waker(waker);
            assert!(sleeper.poll_until(&wheel, deadline, &mut cx).is_pending());
        }
        assert_eq!(wheel.registered(), 3);
        let (count, _, sleeper) = &mut sleepers[1];
        // Held by the test (twice), the sleeper and the wheel's bucket.
        assert_eq!(Arc::strong_count(count), 4);
        sleeper.cancel(&wheel);
        assert_eq!(wheel.registered(), 2);
        assert_eq!(Arc::strong_count(count), 2, "only the test holds the waker");

        // A registration made after the cancel reuses the slot and is woken as usual.
        let (late, late_waker) = counter();
        let mut late_sleeper = Sleeper::new();
        let mut cx = Context::from_waker(&late_waker);
        assert!(late_sleeper
            .poll_until(&wheel, deadline, &mut cx)
            .is_pending());

        tokio::time::sleep(Duration::from_millis(400)).await;
        let woken: Vec<usize> = sleepers
            .iter()
            .map(|(c, ..)| c.0.load(Ordering::Relaxed))
            .collect();
        assert_eq!(woken, [1, 0, 1]);
        assert_eq!(late.0.load(Ordering::Relaxed), 1);
        assert_eq!(wheel.registered(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_timer_leaves_nothing_in_the_wheel() {
        let wheel = Wheel::new(Duration::from_millis(100));
        let (count, waker) = counter();
        let mut cx = Context::from_waker(&waker);
        let mut timer = WheelTimer::new(wheel.clone());
        let at = Instant::now() + Duration::from_secs(30);
        assert!(timer.poll_until(at, &mut cx).is_pending());
        assert_eq!(wheel.registered(), 1);
        drop(timer);
        assert_eq!(wheel.registered(), 0);
        assert_eq!(
            Arc::strong_count(&count),
            2,
            "only the test holds the waker"
        );

        let mut timer = WheelTimer::new(wheel.clone());
        let at = Instant::now() + Duration::from_millis(150);
        poll_fn(|cx| timer.poll_until(at, cx)).await;
        assert_eq!(wheel.registered(), 0);
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
