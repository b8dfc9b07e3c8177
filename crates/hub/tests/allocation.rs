//! The fan-out data path allocates per published message, never per subscriber: measured
//! with a counting global allocator over the whole steady state a WebSocket transport runs
//! (publish → each subscription drained through its waker → the shared prepared frame
//! queued on each connection → written out).
//!
//! One test function only, so nothing else allocates concurrently in this binary.
// A global allocator cannot be written without `unsafe`; it only forwards to `System`
// and counts. This is test-only code.
#![allow(unsafe_code, clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::IoSlice;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use bytes::Bytes;
use switchboard_hub::*;
use switchboard_proto::EnvelopeJson;
use switchboard_ws::{Config, Connection, PreparedMessage, Role};

struct Counting;

/// Allocation calls (`alloc`, `alloc_zeroed`, and `realloc`, which may move).
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, SeqCst);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, SeqCst);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, SeqCst);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// A connection task's waker: waking only counts (the test polls everything each round).
struct Task(AtomicUsize);

impl Wake for Task {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// The WebSocket transport's encoding: one prepared frame per message, built by the first
/// subscriber that sends it.
struct WsFrame;

impl Encoding for WsFrame {
    type Output = PreparedMessage;
    fn encode(m: &Message) -> PreparedMessage {
        PreparedMessage::text(m.encoded::<EnvelopeJson>().clone())
    }
}

struct Subscriber {
    sub: Subscription,
    conn: Connection,
}

/// Publishes `warmup` then `measured` messages to `n` subscribers, delivering each to every
/// connection and writing it out; returns the allocations counted during the measured part.
fn allocations_for(n: usize, warmup: usize, measured: usize) -> usize {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let ns = NamespaceConfig {
        history_size: 8,
        history_ttl: None,
        queue_capacity: 16,
        ..NamespaceConfig::default()
    };
    let hub = Hub::new(HubConfig::default().with_namespace("", ns));
    let now = Instant::now();
    let mut subs: Vec<Subscriber> = (0..n)
        .map(|i| Subscriber {
            sub: rt
                .block_on(hub.subscribe("prices", None, ClientInfo::new(format!("c{i}"))))
                .unwrap(),
            conn: Connection::new(Role::Server, Config::default(), None, now),
        })
        .collect();
    let task = Arc::new(Task(AtomicUsize::new(0)));
    let waker = Waker::from(task.clone());
    let mut cx = Context::from_waker(&waker);
    let payload = Payload::json_prevalidated(Bytes::from_static(
        br#"{"symbol":"ACME","price":101.25,"size":300}"#,
    ));

    for s in subs.iter_mut() {
        assert!(s.sub.poll_recv(&mut cx).is_pending(), "registers the waker");
    }
    let mut delivered = 0;
    let mut round = |subs: &mut Vec<Subscriber>| {
        rt.block_on(hub.publish("prices", payload.clone())).unwrap();
        for s in subs.iter_mut() {
            while let Poll::Ready(m) = s.sub.poll_recv(&mut cx) {
                s.conn
                    .send_prepared(m.unwrap().encoded::<WsFrame>())
                    .unwrap();
                delivered += 1;
            }
            // A socket that takes everything it is given.
            let mut slices = [IoSlice::new(&[]); 8];
            let written: usize = {
                let k = s.conn.transmit_slices(&mut slices);
                slices[..k].iter().map(|s| s.len()).sum()
            };
            s.conn.advance_transmit(written);
            assert_eq!(s.conn.pending_bytes(), 0);
        }
    };
    for _ in 0..warmup {
        round(&mut subs);
    }
    let before = ALLOCS.load(SeqCst);
    for _ in 0..measured {
        round(&mut subs);
    }
    let allocs = ALLOCS.load(SeqCst) - before;
    assert_eq!(
        delivered,
        n * (warmup + measured),
        "every message reached everyone"
    );
    assert_eq!(
        task.0.load(SeqCst),
        delivered,
        "each delivery woke its task"
    );
    allocs
}

#[test]
fn fanout_steady_state_allocates_per_message_not_per_subscriber() {
    const WARMUP: usize = 32;
    const MEASURED: usize = 200;
    let few = allocations_for(10, WARMUP, MEASURED);
    let many = allocations_for(100, WARMUP, MEASURED);
    eprintln!(
        "allocations per message: {:.2} with 10 subscribers, {:.2} with 100",
        few as f64 / MEASURED as f64,
        many as f64 / MEASURED as f64
    );
    // The message, its JSON encoding and its prepared frame are made once per publish.
    assert!(
        many <= 16 * MEASURED,
        "{many} allocations for {MEASURED} messages to 100 subscribers"
    );
    // 90 more subscribers cost not a single allocation more per message.
    assert!(
        many < few + MEASURED,
        "100 subscribers: {many} allocations, 10 subscribers: {few} ({MEASURED} messages)"
    );
}
