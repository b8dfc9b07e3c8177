//! The generator's statistics: a log-linear latency [`Histogram`] (fixed memory, mergeable,
//! about 1 % relative error; [`SparseHistogram`] carries one between generator processes)
//! and a per-subscriber [`SeqTracker`] that counts what arrived, what arrived out of order
//! and, once the publisher is done, what is missing.

use serde::{Deserialize, Serialize};

/// Sub-buckets per power of two: values below `SUB` are exact, above it the relative
/// error is at most `1 / SUB`.
const SUB_BITS: u32 = 7;
const SUB: u64 = 1 << SUB_BITS;
/// Powers of two covered above the exact range (values up to ~2^(SUB_BITS+GROUPS)).
const GROUPS: usize = 40;

/// Counts of values (microseconds, bytes, …) in log-linear buckets.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
    sum: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self {
            counts: vec![0; (SUB as usize) * (GROUPS + 1)],
            total: 0,
            max: 0,
            sum: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < SUB {
            return v as usize;
        }
        // The group is how many bits lie above the sub-bucket bits; within it, the
        // top SUB_BITS bits after the leading one pick the sub-bucket.
        let group = (63 - v.leading_zeros()) - SUB_BITS + 1;
        let sub = (v >> (group - 1)) - SUB;
        let i = (group as usize) * (SUB as usize) + sub as usize;
        i.min((SUB as usize) * (GROUPS + 1) - 1)
    }

    /// The smallest value that falls in bucket `i` (what percentiles report).
    fn lower_bound(i: usize) -> u64 {
        let (group, sub) = ((i as u64) / SUB, (i as u64) % SUB);
        if group == 0 {
            sub
        } else {
            (SUB + sub) << (group - 1)
        }
    }

    /// Records one value.
    pub fn record(&mut self, v: u64) {
        self.counts[Self::index(v)] += 1;
        self.total += 1;
        self.max = self.max.max(v);
        self.sum += u128::from(v);
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    /// Number of values recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Largest value recorded (exact), 0 when empty.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Mean of the values, 0 when empty.
    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// The value at quantile `q` (0.0–1.0): the lower bound of the bucket holding the
    /// `ceil(q * count)`-th smallest value, capped at the exact maximum; 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        if rank >= self.total {
            return self.max;
        }
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::lower_bound(i).min(self.max);
            }
        }
        self.max
    }
}

/// A [`Histogram`]'s non-empty buckets (index, count), its maximum and sum: what a
/// generator process sends another as JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SparseHistogram {
    buckets: Vec<(u32, u64)>,
    max: u64,
    sum: u64,
}

impl Histogram {
    /// This histogram's sparse form.
    pub fn to_sparse(&self) -> SparseHistogram {
        SparseHistogram {
            buckets: self
                .counts
                .iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(i, c)| (i as u32, *c))
                .collect(),
            max: self.max,
            sum: u64::try_from(self.sum).unwrap_or(u64::MAX),
        }
    }

    /// A histogram from its sparse form (buckets out of range are dropped).
    pub fn from_sparse(sparse: &SparseHistogram) -> Self {
        let mut h = Self::new();
        for &(i, c) in &sparse.buckets {
            if let Some(slot) = h.counts.get_mut(i as usize) {
                *slot += c;
                h.total += c;
            }
        }
        h.max = sparse.max;
        h.sum = u128::from(sparse.sum);
        h
    }
}

/// One subscriber's view of a sequence numbered from 0: what arrived in order, what
/// arrived late (below a number already seen) and, given how many were sent, what never
/// arrived.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqTracker {
    next: u64,
    received: u64,
    out_of_order: u64,
}

impl SeqTracker {
    /// Notes the arrival of `seq`.
    pub fn observe(&mut self, seq: u64) {
        self.received += 1;
        if seq >= self.next {
            self.next = seq + 1;
        } else {
            self.out_of_order += 1;
        }
    }

    /// Messages received (including late ones).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Messages that arrived after a higher sequence number.
    pub fn out_of_order(&self) -> u64 {
        self.out_of_order
    }

    /// Messages of `0..sent` never received (duplicates are not told apart from late
    /// arrivals, so a duplicate hides one missing message; the servers under test never
    /// duplicate).
    pub fn missing(&self, sent: u64) -> u64 {
        sent.saturating_sub(self.received)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_below_sub_and_bounded_error_above() {
        let mut h = Histogram::new();
        for v in 1..=100 {
            h.record(v);
        }
        assert_eq!(h.count(), 100);
        assert_eq!(h.quantile(0.5), 50);
        assert_eq!(h.quantile(0.99), 99);
        assert_eq!(h.quantile(1.0), 100);
        assert_eq!(h.max(), 100);
        assert!((h.mean() - 50.5).abs() < 1e-9);

        let mut h = Histogram::new();
        for v in 1..=100_000u64 {
            h.record(v);
        }
        for (q, exact) in [(0.5, 50_000.0), (0.99, 99_000.0), (0.999, 99_900.0)] {
            let got = h.quantile(q) as f64;
            assert!(
                (got - exact).abs() / exact <= 1.0 / SUB as f64,
                "q{q}: {got} vs {exact}"
            );
        }
        assert_eq!(h.quantile(1.0), 100_000);
    }

    #[test]
    fn buckets_are_monotonic_and_bounds_round_trip() {
        let mut last = 0;
        for v in (0..1_000_000u64).step_by(7) {
            let i = Histogram::index(v);
            assert!(i >= last);
            last = i;
            assert!(Histogram::lower_bound(i) <= v);
        }
        // Huge values land in the last bucket instead of out of bounds.
        let mut h = Histogram::new();
        h.record(u64::MAX);
        h.record(1);
        assert_eq!(h.quantile(0.5), 1);
        assert_eq!(h.quantile(1.0), u64::MAX);
    }

    #[test]
    fn empty_and_merge() {
        let h = Histogram::new();
        assert_eq!(h.quantile(0.99), 0);
        assert_eq!(h.mean(), 0.0);
        let (mut a, mut b) = (Histogram::new(), Histogram::new());
        a.record(10);
        b.record(20);
        b.record(30);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.max(), 30);
        assert_eq!(a.quantile(0.5), 20);
    }

    #[test]
    fn the_sparse_form_round_trips_through_json() {
        let mut h = Histogram::new();
        for v in [0, 5, 5, 300, 70_000, 12_345_678] {
            h.record(v);
        }
        let json = serde_json::to_string(&h.to_sparse()).expect("serialize");
        let sparse: SparseHistogram = serde_json::from_str(&json).expect("deserialize");
        let back = Histogram::from_sparse(&sparse);
        assert_eq!(back.count(), 6);
        assert_eq!(back.max(), 12_345_678);
        for q in [0.0, 0.3, 0.5, 0.9, 1.0] {
            assert_eq!(back.quantile(q), h.quantile(q), "q{q}");
        }
        assert!((back.mean() - h.mean()).abs() < 1e-9);
        assert_eq!(
            Histogram::from_sparse(&SparseHistogram::default()).count(),
            0
        );
    }

    #[test]
    fn seq_tracker_counts_gaps_and_late_arrivals() {
        let mut t = SeqTracker::default();
        for s in [0, 1, 2, 3] {
            t.observe(s);
        }
        assert_eq!((t.received(), t.out_of_order(), t.missing(4)), (4, 0, 0));

        let mut t = SeqTracker::default();
        // 2 is lost, 4 comes after 5.
        for s in [0, 1, 3, 5, 4, 6] {
            t.observe(s);
        }
        assert_eq!(t.received(), 6);
        assert_eq!(t.out_of_order(), 1);
        assert_eq!(t.missing(7), 1);
        // Messages sent after the last one received are missing too.
        assert_eq!(t.missing(10), 4);
    }
}
