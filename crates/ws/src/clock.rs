//! The times one connection keeps (the latest time passed in, the last input, the last
//! ping sent, the close deadline), as `u32` milliseconds after a base `Instant`: 32 bytes
//! instead of four 16-byte instants. With four instants the native WebSocket task would
//! outgrow its 512-byte tokio cell (`docs/perf/REPORT.md`, second session, "The codec's
//! `Connection` 312 → 184 B"; `docs/perf/handwritten.md`, section 3).
//!
//! Recorded times are rounded up to the millisecond and deadlines are compared with the
//! exact time passed in, so a timer never fires early; it fires at most a millisecond late.
//! Once the latest time is 2^31 ms (~24.8 days) past the base, the base moves forward.
//! A recorded time more than 2^31 ms older than the latest one is kept as that old: for
//! any timeout shorter than that its deadline has passed either way, so only timeouts of
//! 24 days or more can fire late. A close deadline that far out is never reached.

use std::time::{Duration, Instant};

/// Offsets stay at most this far after the base (see the module docs).
const WINDOW_MS: u64 = 1 << 31;
/// `close` when no close deadline is armed.
const NO_DEADLINE: u32 = u32::MAX;
/// `close` when a close deadline is armed but the time it was armed at is not known yet.
const PENDING: u32 = u32::MAX - 1;

/// The close deadline, as [`Clock::close_deadline`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deadline {
    None,
    /// Armed without knowing the time: resolved by the next call that passes `now`.
    Pending,
    At(Instant),
}

#[derive(Debug)]
pub(crate) struct Clock {
    base: Instant,
    /// The latest time passed in.
    now: u32,
    last_input: u32,
    last_ping: u32,
    /// The close deadline, or [`NO_DEADLINE`] / [`PENDING`].
    close: u32,
}

/// Milliseconds from `base` to `t`, rounded up; 0 if `t` is before `base`.
fn ms_after(base: Instant, t: Instant) -> u64 {
    ceil_ms(t.saturating_duration_since(base))
}

/// `d` in whole milliseconds, rounded up.
fn ceil_ms(d: Duration) -> u64 {
    // Not `as_millis`: that divides a u128, and this runs on every input.
    let ms = d
        .as_secs()
        .saturating_mul(1000)
        .saturating_add(u64::from(d.subsec_millis()));
    if d.subsec_nanos() % 1_000_000 == 0 {
        ms
    } else {
        ms.saturating_add(1)
    }
}

impl Clock {
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            base: now,
            now: 0,
            last_input: 0,
            last_ping: 0,
            close: NO_DEADLINE,
        }
    }

    fn at(&self, ms: u32) -> Option<Instant> {
        self.base.checked_add(Duration::from_millis(u64::from(ms)))
    }

    /// Record the latest time passed in.
    pub(crate) fn set_now(&mut self, now: Instant) {
        let mut ms = ms_after(self.base, now);
        if ms > WINDOW_MS {
            self.rebase(ms);
            ms = ms_after(self.base, now);
        }
        // At most WINDOW_MS after a rebase.
        self.now = u32::try_from(ms).unwrap_or(u32::MAX);
    }

    /// Move the base forward so that `now_ms` (after the current base) fits the window.
    fn rebase(&mut self, now_ms: u64) {
        let floor = now_ms - WINDOW_MS;
        let clamp = |t: u32| u64::from(t).max(floor);
        let (input, ping) = (clamp(self.last_input), clamp(self.last_ping));
        let close = (self.close < PENDING).then(|| clamp(self.close));
        let shift = close.map_or(input.min(ping), |c| input.min(ping).min(c));
        let Some(base) = self.base.checked_add(Duration::from_millis(shift)) else {
            return;
        };
        // Every value is at least `shift` and was at most u32::MAX (or now_ms - shift,
        // which is at most WINDOW_MS).
        let rel = |t: u64| u32::try_from(t - shift).unwrap_or(u32::MAX);
        self.last_input = rel(input);
        self.last_ping = rel(ping);
        if let Some(c) = close {
            self.close = rel(c);
        }
        self.base = base;
    }

    /// Input arrived at the latest time passed in.
    pub(crate) fn input(&mut self) {
        self.last_input = self.now;
    }

    /// A ping was sent at the latest time passed in.
    pub(crate) fn pinged(&mut self) {
        self.last_ping = self.now;
    }

    /// The latest time passed in (rounded up to the millisecond).
    pub(crate) fn now(&self) -> Instant {
        self.at(self.now).unwrap_or(self.base)
    }

    /// Arm the close deadline `timeout` after the latest time passed in.
    pub(crate) fn arm_close(&mut self, timeout: Duration) {
        self.close = u64::from(self.now)
            .checked_add(ceil_ms(timeout))
            .and_then(|t| u32::try_from(t).ok())
            .filter(|&t| t < PENDING)
            .unwrap_or(NO_DEADLINE);
    }

    /// Disarm the close deadline (it then served as the write-stall deadline of an open
    /// connection).
    pub(crate) fn disarm_close(&mut self) {
        self.close = NO_DEADLINE;
    }

    /// Arm the close deadline without knowing the time: see [`Deadline::Pending`].
    pub(crate) fn arm_close_pending(&mut self) {
        self.close = PENDING;
    }

    pub(crate) fn close_pending(&self) -> bool {
        self.close == PENDING
    }

    pub(crate) fn close_deadline(&self) -> Deadline {
        match self.close {
            NO_DEADLINE => Deadline::None,
            PENDING => Deadline::Pending,
            t => self.at(t).map_or(Deadline::None, Deadline::At),
        }
    }

    /// `interval` after the last input or the last ping, whichever is later.
    pub(crate) fn ping_deadline(&self, interval: Duration) -> Option<Instant> {
        self.at(self.last_input.max(self.last_ping))?
            .checked_add(interval)
    }

    /// `timeout` after the last input.
    pub(crate) fn idle_deadline(&self, timeout: Duration) -> Option<Instant> {
        self.at(self.last_input)?.checked_add(timeout)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn recorded_times_round_up_so_deadlines_are_never_early() {
        let t0 = Instant::now();
        let mut c = Clock::new(t0);
        c.set_now(t0 + Duration::from_micros(1500));
        c.input();
        let idle = c.idle_deadline(Duration::from_secs(1)).unwrap();
        assert_eq!(idle, t0 + Duration::from_millis(1002));
        c.arm_close(Duration::from_micros(100));
        assert_eq!(
            c.close_deadline(),
            Deadline::At(t0 + Duration::from_millis(3))
        );
    }

    #[test]
    fn a_connection_older_than_the_window_keeps_exact_times() {
        let t0 = Instant::now();
        let mut c = Clock::new(t0);
        for day in 1..=60 {
            let t = t0 + DAY * day;
            c.set_now(t);
            c.input();
            c.pinged();
        }
        let t = t0 + DAY * 60;
        assert_eq!(c.now(), t);
        assert_eq!(
            c.idle_deadline(Duration::from_secs(60)),
            Some(t + Duration::from_secs(60))
        );
        c.arm_close(Duration::from_secs(5));
        assert_eq!(c.close_deadline(), Deadline::At(t + Duration::from_secs(5)));
        c.set_now(t + DAY * 20);
        assert_eq!(c.close_deadline(), Deadline::At(t + Duration::from_secs(5)));
        assert_eq!(c.now(), t + DAY * 20);
        // Older than the window: kept as that old, so still expired.
        c.set_now(t + DAY * 30);
        assert!(matches!(c.close_deadline(), Deadline::At(d) if d <= t + DAY * 30));
        assert_eq!(c.now(), t + DAY * 30);
    }

    #[test]
    fn a_long_silence_keeps_expired_deadlines_expired() {
        let t0 = Instant::now();
        let mut c = Clock::new(t0);
        c.pinged();
        let later = t0 + DAY * 100;
        c.set_now(later);
        let idle = c.idle_deadline(Duration::from_secs(60)).unwrap();
        assert!(idle <= later, "the idle deadline passed long ago");
        assert!(c.ping_deadline(DAY).unwrap() <= later);
    }

    #[test]
    fn close_deadlines_out_of_range_are_never_reached() {
        let t0 = Instant::now();
        let mut c = Clock::new(t0);
        c.arm_close(Duration::MAX);
        assert_eq!(c.close_deadline(), Deadline::None);
        c.arm_close_pending();
        assert_eq!(c.close_deadline(), Deadline::Pending);
    }
}
