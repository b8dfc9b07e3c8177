//! Memory use measured with a counting global allocator: limits hold before memory is
//! reserved, and the fan-out send path allocates nothing per delivery.
//!
//! One test function only, so no other test allocates concurrently in this binary.
// A global allocator cannot be written without `unsafe`; it only forwards to `System`
// and counts. This is test-only code.
#![allow(unsafe_code, clippy::unwrap_used)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::IoSlice;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Instant;

use common::*;
use switchboard_ws::deflate::Compressor;
use switchboard_ws::frame::{encode_frame, FrameHeader, OpCode};
use switchboard_ws::{
    Config, Connection, DeflateConfig, DeflateParams, Event, PreparedMessage, ProtocolError, Role,
};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// Allocation calls (`alloc` and `realloc`, which may move).
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = CURRENT.fetch_add(by, SeqCst) + by;
    PEAK.fetch_max(now, SeqCst);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, SeqCst);
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), SeqCst);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, SeqCst);
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                CURRENT.fetch_sub(layout.size() - new_size, SeqCst);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Peak bytes allocated above the starting level while `f` runs.
fn peak_during(f: impl FnOnce()) -> usize {
    let base = CURRENT.load(SeqCst);
    PEAK.store(base, SeqCst);
    f();
    PEAK.load(SeqCst) - base
}

/// Allocation calls while `f` runs.
fn allocations_during(f: impl FnOnce()) -> usize {
    let before = ALLOCS.load(SeqCst);
    f();
    ALLOCS.load(SeqCst) - before
}

#[test]
fn memory_use() {
    limits_are_checked_before_allocating();
    prepared_delivery_to_an_idle_connection_allocates_nothing();
}

fn limits_are_checked_before_allocating() {
    // 1. The header of a 1 GiB frame: rejected with 1009 without reserving anything.
    let mut header = vec![0x82, 0xFF];
    header.extend_from_slice(&(1u64 << 30).to_be_bytes());
    header.extend_from_slice(&KEY);
    let mut s = Connection::new(Role::Server, Config::default(), None, Instant::now());
    let peak = peak_during(|| s.handle_input(&header, Instant::now()));
    assert!(peak < 16 << 10, "1 GiB header cost {peak} bytes");
    assert!(matches!(
        s.poll_event(),
        Some(Event::Error(ProtocolError::FrameTooBig { .. }))
    ));
    assert_eq!(close_code(&drain(&mut s)), Some(1009));

    // 2. A frame within limits does not reserve its declared length up front: memory
    //    follows the bytes that actually arrived.
    let mut header = vec![0x82, 0xFF];
    header.extend_from_slice(&(10u64 << 20).to_be_bytes());
    header.extend_from_slice(&KEY);
    header.extend_from_slice(&[0u8; 100]);
    let mut s = Connection::new(Role::Server, Config::default(), None, Instant::now());
    let peak = peak_during(|| s.handle_input(&header, Instant::now()));
    assert!(
        peak < 16 << 10,
        "10 MiB frame header + 100 bytes cost {peak} bytes"
    );
    assert!(s.poll_event().is_none());

    // 3. A decompression bomb (50 MiB of zeros in a few tens of KiB) against a 1 MiB
    //    message limit: fails with 1009 having allocated about the limit, no more.
    let wire = {
        let zeros = vec![0u8; 50 << 20];
        let mut z = Vec::new();
        Compressor::new(15, false).compress(&zeros, &mut z).unwrap();
        let h = FrameHeader {
            rsv1: true,
            mask: Some(KEY),
            ..FrameHeader::new(OpCode::Binary, 0)
        };
        let mut buf = bytes::BytesMut::new();
        encode_frame(&mut buf, h, &z);
        buf.to_vec()
    };
    let config = Config {
        max_message_size: 1 << 20,
        ..Config::default()
    };
    let mut s = Connection::new(
        Role::Server,
        config,
        Some(DeflateParams::default()),
        Instant::now(),
    );
    let peak = peak_during(|| s.handle_input(&wire, Instant::now()));
    assert!(peak < (1 << 20) + (256 << 10), "bomb cost {peak} bytes");
    assert_eq!(
        s.poll_event(),
        Some(Event::Error(ProtocolError::MessageTooBig { max: 1 << 20 }))
    );
    assert_eq!(close_code(&drain(&mut s)), Some(1009));
}

/// Queue `m` on `conn` and write everything out, as a driver whose socket takes it all.
fn deliver(conn: &mut Connection, m: &PreparedMessage) -> usize {
    conn.send_prepared(m).unwrap();
    let mut slices = [IoSlice::new(&[]); 8];
    let written: usize = {
        let n = conn.transmit_slices(&mut slices);
        slices[..n].iter().map(|s| s.len()).sum()
    };
    conn.advance_transmit(written);
    assert_eq!(conn.pending_bytes(), 0);
    written
}

fn prepared_delivery_to_an_idle_connection_allocates_nothing() {
    const ROUNDS: usize = 100;
    let now = Instant::now();
    let params = DeflateParams {
        server_no_context_takeover: true,
        ..DeflateParams::default()
    };
    let deflate_cfg = Config {
        deflate: Some(DeflateConfig::default()),
        ..Config::default()
    };
    let mut conns = [
        Connection::new(Role::Server, Config::default(), None, now),
        Connection::new(Role::Server, deflate_cfg, Some(params), now),
    ];
    let text = "{\"symbol\":\"ACME\",\"price\":101.25} ".repeat(64);
    for m in [
        PreparedMessage::from_text("{\"symbol\":\"ACME\",\"price\":101.25}"),
        PreparedMessage::from_text(&text),
        PreparedMessage::binary(vec![7u8; 64 << 10].into()),
    ] {
        // The first sends build what the message shares: its compressed frame, and the
        // shared owner of its frame bytes.
        for c in &mut conns {
            deliver(c, &m);
        }
        for c in &mut conns {
            let mut written = 0;
            let allocs = allocations_during(|| {
                for _ in 0..ROUNDS {
                    written += deliver(c, &m);
                }
            });
            assert_eq!(
                allocs,
                0,
                "{ROUNDS} deliveries of a {}-byte message ({} bytes on the wire each, deflate: {})",
                m.payload().len(),
                written / ROUNDS,
                c.deflate().is_some()
            );
        }
    }
}
