//! [`Wheel`]: the shared state (one bucket of wakers per tick that has any) and the
//! background task that wakes each bucket when its tick passes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::Waker;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::bucket::Bucket;

/// The finest resolution a wheel takes.
const MIN_RESOLUTION: Duration = Duration::from_millis(1);

/// Bits a tick takes (a [`crate::Sleeper`] keeps its tick in them): 2^40 ticks of at
/// least 1 ms are 35 years.
pub(crate) const TICK_BITS: u32 = 40;
/// The last tick a wheel counts to (a later deadline is woken then, and re-checked).
pub(crate) const MAX_TICK: u64 = (1 << TICK_BITS) - 1;

/// A shared coarse timer. Cheap to clone (one `Arc`); every clone is the same wheel. The
/// background task ends once every handle is dropped.
#[derive(Clone)]
pub struct Wheel {
    pub(crate) shared: Arc<Shared>,
}

/// What every handle of a wheel shares.
pub(crate) struct Shared {
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
    pub(crate) fn tick_of(&self, deadline: Instant) -> u64 {
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

    pub(crate) fn fired(&self, tick: u64) -> bool {
        tick <= self.fired_through.load(Ordering::Acquire)
    }

    /// Puts `waker` in the bucket of `tick` and returns its slot; `None` when that tick
    /// already fired.
    pub(crate) fn register(self: &Arc<Self>, tick: u64, waker: &Waker) -> Option<usize> {
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
    pub(crate) fn unregister(&self, tick: u64, slot: usize) {
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
