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
//!
//! Its own crate so that the WebSocket driver (`switchboard-ws-tokio`) and the HTTP
//! transports of the server (SSE and stream heartbeats, long-poll timeouts) share one
//! wheel without either depending on the other. Files: `wheel.rs` ([`Wheel`] and its
//! background task), `bucket.rs` (the wakers of one tick), `sleeper.rs` ([`Sleeper`],
//! [`WheelTimer`]).

mod bucket;
mod sleeper;
mod wheel;

pub use sleeper::{Sleeper, WheelTimer};
pub use wheel::Wheel;
