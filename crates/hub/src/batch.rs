//! A channel's batch window: when its local subscribers are woken for new messages.
//!
//! Without a window (the default) every message wakes every subscriber at once. With a
//! window `w` (the namespace's `batch_window`), messages are still queued to every
//! subscriber at once, but subscribers are woken at most once per `w`:
//!
//! * the first message after a quiet spell (no wake in the last `w`) wakes them at once,
//!   so a channel publishing slower than once per `w` gets no added latency;
//! * a message inside the window waits for the window's end, where one wake delivers
//!   everything queued meanwhile, and a new window starts.
//!
//! One wake per window means one socket write per subscriber per window (the pacer's, or
//! its task's, as for a message without a window: `fanout::LocalChannel::wake_all`),
//! however many messages arrived: under heavy fan-out, where the kernel's cost per write
//! dominates, that trades at most `w` of latency for a multiple fewer writes.
//! A subscriber woken for another reason (its socket, a timer) drains its queue then, so
//! `w` bounds the added wait; it is not a promise to wait.
//!
//! [`Window`] is the decision alone (time passed in); the fan-out acts on it.

use tokio::time::{Duration, Instant};

/// What the fan-out does after queueing a message to every subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Wake every subscriber now.
    WakeNow,
    /// Wake every subscriber at this instant (no wake is scheduled yet).
    WakeAt(Instant),
    /// A scheduled wake already covers this message.
    Nothing,
}

/// The state of one channel's window.
#[derive(Debug, Default)]
pub(crate) struct Window {
    /// End of the window opened by the last wake.
    end: Option<Instant>,
    /// A wake is scheduled for `end`.
    scheduled: bool,
}

impl Window {
    /// A message was queued to every subscriber at `now`.
    pub(crate) fn on_message(&mut self, now: Instant, window: Duration) -> Action {
        if self.scheduled {
            return Action::Nothing;
        }
        match self.end {
            Some(end) if now < end => {
                self.scheduled = true;
                Action::WakeAt(end)
            }
            _ => {
                self.end = Some(now + window);
                Action::WakeNow
            }
        }
    }

    /// The wake scheduled for `at` is happening: a new window starts at `at` (not at the
    /// timer's late firing, which would drift each window later than a steady publisher
    /// and delay its every message more). Messages queued before this call are covered by
    /// the wake that follows it; later ones go through [`Window::on_message`] again.
    pub(crate) fn on_scheduled_wake(&mut self, at: Instant, window: Duration) {
        self.scheduled = false;
        self.end = Some(at + window);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_millis(50);

    #[test]
    fn the_first_message_goes_at_once_and_later_ones_wait_for_the_window_end() {
        let t0 = Instant::now();
        let mut w = Window::default();
        assert_eq!(w.on_message(t0, W), Action::WakeNow);
        let end = t0 + W;
        assert_eq!(
            w.on_message(t0 + Duration::from_millis(10), W),
            Action::WakeAt(end)
        );
        assert_eq!(
            w.on_message(t0 + Duration::from_millis(20), W),
            Action::Nothing
        );
        w.on_scheduled_wake(end, W);
        // Inside the window the scheduled wake opened: wait for its end.
        assert_eq!(
            w.on_message(end + Duration::from_millis(1), W),
            Action::WakeAt(end + W)
        );
    }

    #[test]
    fn windows_follow_the_schedule_not_the_late_timer() {
        let t0 = Instant::now();
        let mut w = Window::default();
        assert_eq!(w.on_message(t0, W), Action::WakeNow);
        assert_eq!(w.on_message(t0 + W / 2, W), Action::WakeAt(t0 + W));
        // The timer fired 5 ms late; the next window still ends at t0 + 2W, so a steady
        // publisher's message at t0 + 2W goes at once instead of waiting 5 ms more.
        w.on_scheduled_wake(t0 + W, W);
        assert_eq!(w.on_message(t0 + W * 2, W), Action::WakeNow);
    }

    #[test]
    fn a_message_after_a_quiet_window_goes_at_once() {
        let t0 = Instant::now();
        let mut w = Window::default();
        assert_eq!(w.on_message(t0, W), Action::WakeNow);
        assert_eq!(w.on_message(t0 + W, W), Action::WakeNow);
        assert_eq!(
            w.on_message(t0 + W + Duration::from_millis(200), W),
            Action::WakeNow
        );
    }
}
