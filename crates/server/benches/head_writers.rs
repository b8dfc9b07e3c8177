//! The small writers of the connection front's responses (`src/front/head.rs`, compiled
//! into this bench since it is private to the crate) against the plain alternatives:
//!
//! - `chunk_size_line/hand`: `head::chunk_size_line`; `chunk_size_line/std`: `write!` of
//!   `{len:X}\r\n` into the same array.
//!
//! (The `Date` writer was measured here against the `httpdate` crate too; the crate won
//! on code for a cost of ~400 instructions per response, and the front now uses it,
//! `docs/perf/handwritten.md`, section 4.)
//!
//! Each case first checks that both sides write the same bytes. Instruction counts: with
//! `HEAD_WRITERS_COUNT=<case>:<n>` the binary runs one case `n` times inside `measured`
//! and exits; run it under `valgrind --tool=callgrind --toggle-collect='*measured*'` and
//! divide the total Ir by `n`.
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::io::Write as _;

use criterion::{criterion_group, BenchmarkId, Criterion};

/// The front's head writers. Its unit tests come along without their `#[test]`
/// functions, hence `unused_imports`.
#[allow(dead_code, unused_imports)]
#[path = "../src/front/head.rs"]
mod head;

fn chunk_std(len: usize, out: &mut [u8; 18]) -> &[u8] {
    let mut rest = &mut out[..];
    write!(rest, "{len:X}\r\n").unwrap();
    let left = rest.len();
    &out[..18 - left]
}

/// One bench case: a name and what it runs (returns a byte to keep the work alive).
type Case = (&'static str, fn() -> u8);

const CASES: [Case; 2] = [
    ("chunk_size_line/hand", || {
        let mut buf = [0u8; 18];
        head::chunk_size_line(black_box(1234), &mut buf)[0]
    }),
    ("chunk_size_line/std", || {
        let mut buf = [0u8; 18];
        chunk_std(black_box(1234), &mut buf)[0]
    }),
];

fn check_outputs() {
    for len in [0, 1, 15, 16, 1234, 65_535, usize::MAX] {
        let (mut a, mut b) = ([0u8; 18], [0u8; 18]);
        assert_eq!(head::chunk_size_line(len, &mut a), chunk_std(len, &mut b));
    }
}

fn head_writers(c: &mut Criterion) {
    let mut group = c.benchmark_group("head_writers");
    for (name, f) in CASES {
        group.bench_function(BenchmarkId::from_parameter(name), |b| b.iter(f));
    }
    group.finish();
}

/// Runs `f` `n` times; the only function callgrind counts in count mode.
#[inline(never)]
fn measured(f: fn() -> u8, n: u64) -> u64 {
    (0..n).map(|_| u64::from(black_box(f()))).sum()
}

criterion_group!(benches, head_writers);

fn main() {
    if let Ok(spec) = std::env::var("HEAD_WRITERS_COUNT") {
        let (case, n) = spec
            .rsplit_once(':')
            .expect("HEAD_WRITERS_COUNT=<case>:<n>");
        let n: u64 = n.parse().unwrap();
        let (_, f) = CASES
            .iter()
            .find(|(name, _)| *name == case)
            .expect("no such case");
        black_box(measured(*f, n));
        println!("{case}: {n} runs");
        return;
    }
    check_outputs();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
