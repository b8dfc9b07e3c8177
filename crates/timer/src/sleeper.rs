//! [`Sleeper`]: the few bytes a connection keeps to wait on a [`Wheel`], and
//! [`WheelTimer`], a sleeper with its wheel that cancels when dropped.

use std::task::{Context, Poll, Waker};

use tokio::time::Instant;

use crate::wheel::{Wheel, MAX_TICK, TICK_BITS};

/// Bits of [`Sleeper::reg`] that hold the tick.
const TICK_MASK: u64 = MAX_TICK;
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
    /// stays 16 bytes.
    reg: u64,
    /// The data pointer of the waker registered (0: none), to tell whether a later poll's
    /// waker wakes the same task: a pointer instead of a clone (8 bytes where a `Waker`
    /// is 16; most of an idle connection's task). Compared only while the registration
    /// is live, when the wheel holds a clone of that waker: its task cannot have been
    /// freed and its address taken by another.
    registered_by: usize,
}

impl Sleeper {
    /// A sleeper with no registration.
    pub const fn new() -> Self {
        Self {
            reg: 0,
            registered_by: 0,
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
            && self.registered_by == waker_id(cx.waker())
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
                self.registered_by = waker_id(cx.waker());
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
        self.registered_by = 0;
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

/// Which task `waker` wakes, as far as [`Sleeper::poll_until`] needs to know: its data
/// pointer (a tokio task's header).
fn waker_id(waker: &Waker) -> usize {
    waker.data() as usize
}

/// A [`Sleeper`] with its wheel, cancelled when dropped: what a connection or a request
/// keeps to wait on the wheel, so that one that ends (a long-poll answered with news, a
/// connection that closes) leaves no waker behind. 24 bytes.
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
