//! [`Wheel`]: one coarse timer serving many connections, and [`Sleeper`], the few bytes
//! each connection keeps to use it.
//!
//! A tokio `Sleep` is 112 bytes (tokio 1.54), boxed so that a connection's future stays
//! small, and held for the connection's whole life although an idle connection's timers
//! (pings every tens of seconds, idle and close timeouts, heartbeats) need no precision.
//! A wheel keeps instead, per connection, one waker in a bucket of its deadline's tick,
//! and one background task (started on first use, parked while no bucket is held) wakes
//! each bucket's wakers when its tick passes.
//!
//! **Measured against one tokio `Sleep` per connection** (WebSockets on their own timer,
//! re-armed as the deadline moves; an SSE or stream heartbeat and a held long-poll one
//! `Sleep` each), release builds run alternately in one sitting; raw lines in
//! `docs/perf/results-6-timer.jsonl`, the table in `docs/perf/REPORT.md` ("The timer:
//! wheel against one tokio Sleep per connection"):
//!
//! | at | wheel | one `Sleep` each |
//! |---|---|---|
//! | 19,000 idle WebSockets, server RSS per connection after 40 s | 988–1,004 B | 1,085–1,099 B |
//! | 19,000 idle SSE streams, the same | 923–927 B | 1,027–1,033 B |
//! | long-poll, 1,000 × 25 msgs/s, server CPU per delivery | 8.7–10.6 µs | 8.8–10.7 µs |
//!
//! So the wheel saves about 100 B (10 %) per idle connection, which keeps an idle
//! WebSocket within 1 KiB; the long-poll CPU is a tie (four pairs on a busy machine).
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
//!   connection a [`Sleeper`] (16 bytes) and, when kept next to it, a [`Wheel`] handle
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
