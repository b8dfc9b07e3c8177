//! A live connection's token deadline: a native WebSocket, an SSE or HTTP stream, or an
//! added WebSocket endpoint opened with a client token ends when the token expires (it
//! cannot take a new one: the client reconnects with a fresh token, resuming from its
//! cursor). Served by the shared timer wheel, so the end comes up to one wheel tick
//! after `exp`. A connection without a token keeps `None`: one pointer's room.

use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use switchboard_timer::{Wheel, WheelTimer};
use tokio::time::Instant;

/// When a connection's token expires, and the timer that wakes it then.
#[derive(Debug)]
pub struct Expiry {
    at: Instant,
    timer: WheelTimer,
}

impl Expiry {
    /// The deadline of a token that expires at `expires` (`None`: no token, no deadline),
    /// boxed: connections without a token are the many.
    pub fn new(wheel: &Wheel, expires: Option<SystemTime>) -> Option<Box<Self>> {
        Some(Box::new(Self {
            at: instant_of(expires?),
            timer: WheelTimer::new(wheel.clone()),
        }))
    }

    /// Ready once the token has expired; otherwise `cx` is woken then.
    pub fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.timer.poll_until(self.at, cx)
    }
}

/// Whether the token behind `expiry` has expired (never without one); registers `cx`
/// to be woken when it does.
pub fn expired(expiry: &mut Option<Box<Expiry>>, cx: &mut Context<'_>) -> bool {
    expiry.as_mut().is_some_and(|e| e.poll(cx).is_ready())
}

/// The tokio instant of a wall-clock time (now, when it has passed; a year from now at
/// most, so that a token's far-off `exp` cannot overflow the clock).
pub fn instant_of(at: SystemTime) -> Instant {
    const FAR: Duration = Duration::from_secs(365 * 24 * 3600);
    let left = at
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    Instant::now() + left.min(FAR)
}
