//! A subscriber's queue: the hub's ring (`src/queue.rs`, compiled into this bench since
//! it is private to the crate) against `std::collections::VecDeque<Message>`, on the
//! server's allocator (jemalloc, as in `crates/server/src/main.rs`).
//!
//! - Memory, printed at start: `size_of` of each queue, of the per-subscriber struct
//!   holding it (a copy of `SubShared`'s layout: the client, a mutex around the queue,
//!   the lag counter, the close reason and the waker; `subscription_is_small` in
//!   `src/subscription.rs` reports the real one) and of its `Arc` allocation. With
//!   `QUEUE_RSS=<kind>:<n>` (kind `ring` or `vecdeque`) the binary allocates `n` idle
//!   subscribers in a fresh process, prints the resident memory each took, and exits.
//! - `queue/<kind>_burst<k>_1000/<pass>`: a fan-out round over 1,000 subscribers: `k` messages
//!   pushed to every one (lock, `push_back`), then every queue drained (lock,
//!   `pop_front` until empty). Throughput in deliveries. Queues keep their buffers, as in
//!   the hub.
//!
//! Instruction counts: with `QUEUE_COUNT=<kind>_burst<k>:<rounds>` the binary runs that
//! many rounds inside `measured` and exits; run it under
//! `valgrind --tool=callgrind --toggle-collect='*measured*'` and divide the total Ir by
//! rounds × 1,000 × k.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::task::Waker;

use bytes::Bytes;
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use switchboard_hub::{ClientInfo, CloseReason, Cursor, Epoch, Message, Payload};

#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The hub's queue. Its unit tests come along without their `#[test]` functions, hence
/// `unused_imports`.
#[allow(dead_code, unused_imports)]
#[path = "../src/queue.rs"]
mod queue;

/// What `src/queue.rs` imports as `crate::message`.
mod message {
    pub(crate) use switchboard_hub::{Message, Payload};
}

/// The two queues behind one interface.
trait Fifo {
    const KIND: &'static str;
    fn empty() -> Self;
    fn push(&mut self, m: Message);
    fn pop(&mut self) -> Option<Message>;
}

impl Fifo for queue::Queue {
    const KIND: &'static str = "ring";
    fn empty() -> Self {
        queue::Queue::new()
    }
    #[inline]
    fn push(&mut self, m: Message) {
        self.push_back(m);
    }
    #[inline]
    fn pop(&mut self) -> Option<Message> {
        self.pop_front()
    }
}

impl Fifo for VecDeque<Message> {
    const KIND: &'static str = "vecdeque";
    fn empty() -> Self {
        VecDeque::new()
    }
    #[inline]
    fn push(&mut self, m: Message) {
        self.push_back(m);
    }
    #[inline]
    fn pop(&mut self) -> Option<Message> {
        self.pop_front()
    }
}

/// `SubState`'s layout (`src/subscription.rs`).
#[allow(dead_code)]
struct State<Q> {
    queue: Q,
    missed: u32,
    closed: Option<CloseReason>,
    waker: Option<Waker>,
}

/// `SubShared`'s layout: what the fan-out keeps per subscriber, in an `Arc`.
#[allow(dead_code)]
struct Shared<Q> {
    client: ClientInfo,
    state: Mutex<State<Q>>,
}

fn subscriber<Q: Fifo>(i: usize) -> Arc<Shared<Q>> {
    Arc::new(Shared {
        client: ClientInfo::new(format!("c{i}")),
        state: Mutex::new(State {
            queue: Q::empty(),
            missed: 0,
            closed: None,
            waker: None,
        }),
    })
}

fn message() -> Message {
    let payload =
        Payload::json(Bytes::from_static(br#"{"price":101.25,"symbol":"ACME"}"#)).unwrap();
    Message::published(Arc::from("bench"), Cursor::new(Epoch(1), 1), payload)
}

/// Resident memory of this process, from `/proc/self/statm` (0 where there is none).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Resident bytes per idle subscriber: `n` of them allocated in a fresh process (client
/// ids short enough to stay inline), RSS before and after, less the list of pointers
/// (the fan-out's list, the same for both queues).
fn rss_per_subscriber<Q: Fifo>(n: usize) {
    let mut subs: Vec<Arc<Shared<Q>>> = Vec::with_capacity(n);
    let before = rss_bytes();
    subs.extend((0..n).map(subscriber::<Q>));
    let after = rss_bytes();
    let list = (n * std::mem::size_of::<usize>()) as f64;
    black_box(&subs);
    let per = (after.saturating_sub(before) as f64 - list) / n as f64;
    println!(
        "{}: {n} idle subscribers, {per:.1} B of RSS each (jemalloc)",
        Q::KIND
    );
}

fn print_sizes() {
    eprintln!("per idle subscriber:");
    for (kind, q, shared) in [
        (
            queue::Queue::KIND,
            std::mem::size_of::<queue::Queue>(),
            std::mem::size_of::<Shared<queue::Queue>>(),
        ),
        (
            <VecDeque<Message>>::KIND,
            std::mem::size_of::<VecDeque<Message>>(),
            std::mem::size_of::<Shared<VecDeque<Message>>>(),
        ),
    ] {
        eprintln!(
            "  {kind}: queue {q} B, per-subscriber struct {shared} B, its Arc allocation {} B",
            shared + 2 * std::mem::size_of::<usize>()
        );
    }
}

const SUBSCRIBERS: usize = 1000;

struct Round<Q> {
    subs: Vec<Arc<Shared<Q>>>,
    msg: Message,
    burst: usize,
}

impl<Q: Fifo> Round<Q> {
    fn new(burst: usize) -> Self {
        let round = Round {
            subs: (0..SUBSCRIBERS).map(subscriber::<Q>).collect(),
            msg: message(),
            burst,
        };
        // Grow every buffer once, as a subscriber that has received before has.
        round.run();
        round
    }

    fn run(&self) -> usize {
        for _ in 0..self.burst {
            for s in &self.subs {
                s.state.lock().unwrap().queue.push(self.msg.clone());
            }
        }
        let mut n = 0;
        for s in &self.subs {
            let mut st = s.state.lock().unwrap();
            while let Some(m) = st.queue.pop() {
                black_box(&m);
                n += 1;
            }
        }
        n
    }
}

const BURSTS: [usize; 2] = [1, 8];

fn bench_kind<Q: Fifo>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    pass: usize,
) {
    for burst in BURSTS {
        let round = Round::<Q>::new(burst);
        group.throughput(Throughput::Elements((SUBSCRIBERS * burst) as u64));
        group.bench_function(
            BenchmarkId::new(format!("{}_burst{burst}_{SUBSCRIBERS}", Q::KIND), pass),
            |b| b.iter(|| round.run()),
        );
    }
}

fn queues(c: &mut Criterion) {
    let mut group = c.benchmark_group("queue");
    // Alternating (ring, VecDeque, ring, VecDeque), so a change in the machine's load
    // hits both; the id's last part is the pass.
    for pass in 1..=2 {
        bench_kind::<queue::Queue>(&mut group, pass);
        bench_kind::<VecDeque<Message>>(&mut group, pass);
    }
    group.finish();
}

/// Runs `rounds` rounds; the only function callgrind counts in count mode.
#[inline(never)]
fn measured(run: &dyn Fn() -> usize, rounds: u64) -> usize {
    (0..rounds).map(|_| run()).sum()
}

fn count_kind<Q: Fifo>(burst: usize, rounds: u64) {
    let round = Round::<Q>::new(burst);
    let n = measured(&|| round.run(), rounds);
    println!("{}_burst{burst}: {rounds} rounds, {n} deliveries", Q::KIND);
}

fn count(spec: &str) {
    let (case, rounds) = spec.rsplit_once(':').expect("QUEUE_COUNT=<case>:<rounds>");
    let rounds: u64 = rounds.parse().unwrap();
    let (kind, burst) = case.split_once("_burst").expect("<kind>_burst<k>");
    let burst: usize = burst.parse().unwrap();
    match kind {
        "ring" => count_kind::<queue::Queue>(burst, rounds),
        "vecdeque" => count_kind::<VecDeque<Message>>(burst, rounds),
        _ => panic!("no queue kind {kind}"),
    }
}

criterion_group!(benches, queues);

fn main() {
    if let Ok(spec) = std::env::var("QUEUE_RSS") {
        let (kind, n) = spec.split_once(':').expect("QUEUE_RSS=<kind>:<n>");
        let n: usize = n.parse().unwrap();
        match kind {
            "ring" => rss_per_subscriber::<queue::Queue>(n),
            "vecdeque" => rss_per_subscriber::<VecDeque<Message>>(n),
            _ => panic!("no queue kind {kind}"),
        }
        return;
    }
    if let Ok(spec) = std::env::var("QUEUE_COUNT") {
        count(&spec);
        return;
    }
    print_sizes();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
