//! What permessage-deflate's context takeover buys and costs on the fan-out bench's
//! messages. For each payload kind (one JSON line each), 2,000 consecutive envelopes (as
//! the server sends them on a WebSocket) are sized three ways:
//!
//! - `plain`: the envelope's bytes;
//! - `no_takeover`: each message compressed alone (`server_no_context_takeover`: what the
//!   server does, once per message, shared by every subscriber);
//! - `takeover`: the messages compressed in one running context (what a server granting
//!   context takeover does, once per message *per subscriber*);
//!
//! with the mean bytes per message and the mean compression time per message (wall clock,
//! this thread; noisy on a busy machine); `prepared_frame` times the server's own path, a
//! `PreparedMessage`'s shared compressed frame.
//!
//! A last line gives the heap a compressor holds (window 15, after one message): what each
//! subscriber would keep with context takeover.
//!
//! `cargo run --release -p switchboard-bench --example deflate_context`

// A global allocator cannot be written without `unsafe`; it only forwards to `System`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

use bytes::BytesMut;
use switchboard_bench::payload::{self, Fill};
use switchboard_proto::{Cursor, Data, Envelope, Epoch};
use switchboard_ws::deflate::{Compressor, DeflateParams};
use switchboard_ws::PreparedMessage;

const MESSAGES: u64 = 2000;

/// The system allocator, counting the bytes live.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is passed on to `System` unchanged; only a counter is kept beside.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn main() {
    for (fill, size) in [
        (Fill::X, 64),
        (Fill::Records, 64),
        (Fill::X, 1024),
        (Fill::Records, 1024),
    ] {
        let envelopes: Vec<Vec<u8>> = (1..=MESSAGES)
            .map(|seq| envelope(seq, size, fill))
            .collect();
        let plain = envelopes.iter().map(Vec::len).sum::<usize>();
        let (no_takeover, ns_alone) = compress(&envelopes, true);
        let (takeover, ns_running) = compress(&envelopes, false);
        let ns_prepared = prepared(&envelopes);
        let per = |total: usize| total as f64 / MESSAGES as f64;
        println!(
            "{}",
            serde_json::json!({
                "mode": "deflate_context",
                "fill": fill,
                "size": size,
                "messages": MESSAGES,
                "bytes_per_message": {
                    "plain": per(plain),
                    "no_takeover": per(no_takeover),
                    "takeover": per(takeover),
                },
                "ratio": {
                    "no_takeover": no_takeover as f64 / plain as f64,
                    "takeover": takeover as f64 / plain as f64,
                },
                "compress_ns_per_message": {
                    "no_takeover": ns_alone,
                    "takeover": ns_running,
                    "prepared_frame": ns_prepared,
                },
            })
        );
    }
    let before = LIVE.load(Ordering::Relaxed);
    let mut c = Compressor::new(15, false);
    let mut out = Vec::new();
    c.compress(&envelope(1, 64, Fill::X), &mut out)
        .expect("compresses");
    drop(out);
    let held = LIVE.load(Ordering::Relaxed) - before;
    println!(
        "{}",
        serde_json::json!({ "mode": "deflate_context", "compressor_heap_bytes": held })
    );
    drop(c);
}

/// The `message` envelope the server sends for the bench's `seq`-th payload.
fn envelope(seq: u64, size: usize, fill: Fill) -> Vec<u8> {
    let micros = 1_765_000_000_000_000 + seq * 10_000;
    let text = payload::encode_filled(seq, micros, size, fill);
    let cursor = Cursor {
        epoch: Epoch(0x18f3_a2b4_c5d6),
        offset: seq,
    };
    // The server embeds a payload that is JSON as it is, anything else as a string.
    let data = if fill == Fill::Records {
        Data::Json(text.as_bytes())
    } else {
        Data::Text(&text)
    };
    let mut out = BytesMut::new();
    Envelope::message("bench", cursor, data).write_json(&mut out);
    out.to_vec()
}

/// Total compressed bytes (the frame payload; headers not counted) and mean nanoseconds
/// per message.
fn compress(messages: &[Vec<u8>], no_context_takeover: bool) -> (usize, f64) {
    let mut c = Compressor::new(15, no_context_takeover);
    let mut out = Vec::new();
    let mut total = 0;
    let start = Instant::now();
    for m in messages {
        out.clear();
        c.compress(m, &mut out).expect("compresses");
        total += out.len();
    }
    let ns = start.elapsed().as_nanos() as f64 / messages.len() as f64;
    (total, ns)
}

/// Mean nanoseconds to make each message's shared compressed frame.
fn prepared(messages: &[Vec<u8>]) -> f64 {
    let params = DeflateParams {
        server_no_context_takeover: true,
        ..DeflateParams::default()
    };
    let prepared: Vec<PreparedMessage> = messages
        .iter()
        .map(|m| PreparedMessage::binary(m.clone().into()))
        .collect();
    let start = Instant::now();
    for m in &prepared {
        std::hint::black_box(m.deflated_frame(&params));
    }
    start.elapsed().as_nanos() as f64 / messages.len() as f64
}
