//! Which event loop the current thread runs, if any: the index an event loop registered
//! under ([`crate::EventLoop`], in [`crate::pacing`]), kept per thread, and whether that
//! loop still runs. Subscriptions note it where they wait, so that the fan-out can hand
//! their writes and wakes to that loop's pacer.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// No registered event loop: the publishing thread's pacer acts.
pub(crate) const NO_LOOP: u16 = u16::MAX;

thread_local! {
    /// This thread's event loop and its liveness flag, when it registered as one.
    static LOOP: RefCell<Option<(u16, Arc<AtomicBool>)>> = const { RefCell::new(None) };
}

/// The event loop this thread runs, or [`NO_LOOP`].
pub(crate) fn this_loop() -> u16 {
    LOOP.try_with(|l| match &*l.borrow() {
        Some((i, alive)) if alive.load(Ordering::Relaxed) => *i,
        _ => NO_LOOP,
    })
    .unwrap_or(NO_LOOP)
}

/// This thread runs event loop `index` while `alive`.
pub(crate) fn enter(index: u16, alive: Arc<AtomicBool>) {
    LOOP.set(Some((index, alive)));
}

/// This thread no longer runs event loop `index` (if it still noted that one).
pub(crate) fn leave(index: u16) {
    let _ = LOOP.try_with(|l| {
        let mut l = l.borrow_mut();
        if l.as_ref().is_some_and(|(i, _)| *i == index) {
            *l = None;
        }
    });
}
