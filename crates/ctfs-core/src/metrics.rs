//! Metrics primitives shared by the kernel, the WAL and the sync core:
//! power-of-two histograms (64 buckets), a sampler that picks one call in
//! [`SAMPLE_EVERY`], one process-wide nanosecond clock, and the packed
//! snapshot encoding the TypeScript layer decodes (`src/metrics.ts`).
//!
//! ## Buckets
//! Bucket `i` counts values `v` with `2^(i-1) < v <= 2^i` (bucket 0: `v <= 1`;
//! bucket 63 also holds everything above `2^63`). Its upper bound is exactly
//! `2^i`, so a Prometheus `le` bound of `2^i` ns (`2^i / 1e9` s) covers the
//! cumulative count of buckets `0..=i` with nothing lost or estimated.
//!
//! ## Cost
//! A histogram is 64 `u64` buckets and a sum; [`Histogram::record`] is a
//! `leading_zeros`, two adds and no branch. Nothing here runs inside the
//! kernel's admission or the log's append: clock reads stay out of those
//! loops (a call there, even on a rare path, stops the compiler from keeping
//! loop-invariant loads in registers — measured: +6% on batch admission).
//! The Node binding times calls instead — one single admission in 64
//! ([`Sampler::due`]: an increment and a branch per call), every batch call,
//! the log's batches on the writer thread. Counters (admitted, refused by
//! code) are exact.
//!
//! ## Build switch
//! Everything here is on by default. Building `ctfs-core` without its
//! `metrics` feature (the benchmark's control build, see
//! `benches/metrics.ts`) turns [`Sampler::due`] into a constant `false` and
//! the histograms' `record` into no-ops, so the instrumented and uninstrumented
//! addons differ by exactly the instrumentation. Counters that existed
//! before the metrics (admitted, refused by code, WAL and sync counters)
//! are kept in both builds.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Buckets per histogram.
pub const BUCKETS: usize = 64;

/// One admission in this many is timed.
pub const SAMPLE_EVERY: u32 = 64;

/// Whether this build records latencies (the `metrics` feature).
pub const ENABLED: bool = cfg!(feature = "metrics");

/// The bucket of `v`: the smallest `i` with `v <= 2^i` (capped at 63).
#[inline(always)]
pub fn bucket_of(v: u64) -> usize {
    let i = (64 - v.saturating_sub(1).leading_zeros()) as usize;
    if i > BUCKETS - 1 { BUCKETS - 1 } else { i }
}

/// The inclusive upper bound of bucket `i` (`2^i`).
pub fn bucket_bound(i: usize) -> u64 {
    if i >= 63 { 1u64 << 63 } else { 1u64 << i }
}

/// Nanoseconds since the first call in this process (never 0): the clock
/// shared by every thread that records into a histogram.
#[inline(never)]
pub fn now_ns() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = BASE.get_or_init(Instant::now);
    (base.elapsed().as_nanos() as u64).saturating_add(1)
}

/// A power-of-two histogram owned by one thread.
#[derive(Clone, PartialEq, Eq)]
pub struct Histogram {
    buckets: [u64; BUCKETS],
    sum: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { buckets: [0; BUCKETS], sum: 0 }
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let nonzero: Vec<(u64, u64)> = self.nonzero().collect();
        f.debug_struct("Histogram").field("count", &self.count()).field("sum", &self.sum).field("buckets", &nonzero).finish()
    }
}

impl Histogram {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one observation of `v` (a no-op without the `metrics` feature).
    #[inline]
    pub fn record(&mut self, v: u64) {
        if ENABLED {
            self.buckets[bucket_of(v)] += 1;
            self.sum = self.sum.wrapping_add(v);
        }
    }

    /// Adds `other`'s observations to this one.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *a += b;
        }
        self.sum = self.sum.wrapping_add(other.sum);
    }

    /// Observations (the sum of the buckets).
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// Sum of the observed values.
    pub fn sum(&self) -> u64 {
        self.sum
    }

    pub fn buckets(&self) -> &[u64; BUCKETS] {
        &self.buckets
    }

    /// `(upper bound, count)` of every non-empty bucket, in order.
    pub fn nonzero(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.buckets.iter().enumerate().filter(|(_, n)| **n > 0).map(|(i, n)| (bucket_bound(i), *n))
    }

    /// The smallest bucket bound at or above the `q` quantile (0..=1), or 0
    /// when empty: an upper estimate within a factor of 2.
    pub fn quantile_bound(&self, q: f64) -> u64 {
        let count = self.count();
        if count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return bucket_bound(i);
            }
        }
        bucket_bound(BUCKETS - 1)
    }
}

/// A power-of-two histogram recorded by one thread and read by others
/// (the WAL writer records, the JS thread snapshots). Lock-free: relaxed
/// atomic adds. A snapshot taken during a record may miss that one
/// observation's sum or bucket, never corrupt either; its count is the
/// sum of the buckets read, so buckets and count always agree.
pub struct AtomicHistogram {
    buckets: [AtomicU64; BUCKETS],
    sum: AtomicU64,
}

impl Default for AtomicHistogram {
    fn default() -> Self {
        AtomicHistogram { buckets: std::array::from_fn(|_| AtomicU64::new(0)), sum: AtomicU64::new(0) }
    }
}

impl std::fmt::Debug for AtomicHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.snapshot().fmt(f)
    }
}

impl AtomicHistogram {
    pub fn new() -> Self {
        Self::default()
    }

    #[inline]
    pub fn record(&self, v: u64) {
        if ENABLED {
            self.buckets[bucket_of(v)].fetch_add(1, Ordering::Relaxed);
            self.sum.fetch_add(v, Ordering::Relaxed);
        }
    }

    pub fn snapshot(&self) -> Histogram {
        let mut h = Histogram::default();
        for (d, s) in h.buckets.iter_mut().zip(self.buckets.iter()) {
            *d = s.load(Ordering::Relaxed);
        }
        h.sum = self.sum.load(Ordering::Relaxed);
        h
    }
}

/// Picks one call in [`SAMPLE_EVERY`] for timing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sampler {
    n: u32,
}

impl Sampler {
    /// Whether this call is the [`SAMPLE_EVERY`]-th (an increment and a
    /// mask). Always false without the `metrics` feature.
    #[inline(always)]
    pub fn due(&mut self) -> bool {
        if !ENABLED {
            return false;
        }
        self.n = self.n.wrapping_add(1);
        self.n & (SAMPLE_EVERY - 1) == 0
    }
}

/// Builds a packed snapshot: little-endian `u64`s, `f64`s and
/// length-prefixed UTF-8 strings, in an order both sides agree on (see
/// `src/metrics.ts`).
#[derive(Default)]
pub struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    pub fn with_capacity(n: usize) -> Self {
        Encoder { buf: Vec::with_capacity(n) }
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn f64(&mut self, v: f64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u64(v as u64)
    }

    /// Length (u64) then UTF-8 bytes, padded to 8 bytes.
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.u64(s.len() as u64);
        self.buf.extend_from_slice(s.as_bytes());
        let pad = (8 - s.len() % 8) % 8;
        self.buf.extend(std::iter::repeat_n(0u8, pad));
        self
    }

    /// Sum, then a 64-bit mask of the non-empty buckets, then their counts
    /// in bucket order.
    pub fn histogram(&mut self, h: &Histogram) -> &mut Self {
        let mut mask = 0u64;
        for (i, n) in h.buckets.iter().enumerate() {
            if *n > 0 {
                mask |= 1 << i;
            }
        }
        self.u64(h.sum).u64(mask);
        for n in h.buckets.iter().filter(|n| **n > 0) {
            self.u64(*n);
        }
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_powers_of_two_with_exact_upper_bounds() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1), 0);
        assert_eq!(bucket_of(2), 1);
        assert_eq!(bucket_of(3), 2);
        assert_eq!(bucket_of(4), 2);
        assert_eq!(bucket_of(5), 3);
        assert_eq!(bucket_of(1024), 10);
        assert_eq!(bucket_of(1025), 11);
        assert_eq!(bucket_of(u64::MAX), 63);
        for i in 1..63 {
            let b = bucket_bound(i);
            assert_eq!(bucket_of(b), i, "bound {b} is in its own bucket");
            assert_eq!(bucket_of(b + 1), i + 1, "bound + 1 is in the next");
        }
    }

    #[cfg(feature = "metrics")]
    #[test]
    fn histogram_counts_are_exact() {
        let mut h = Histogram::new();
        for v in 0..1000u64 {
            h.record(v);
        }
        assert_eq!(h.count(), 1000);
        assert_eq!(h.sum(), 999 * 1000 / 2);
        // Cumulative counts at each bound are exact: values <= 2^i.
        let mut cum = 0;
        for (i, n) in h.buckets().iter().enumerate() {
            cum += n;
            let bound = bucket_bound(i);
            let expected = (0..1000u64).filter(|v| *v <= bound).count() as u64;
            assert_eq!(cum, expected, "le {bound}");
        }
        let mut m = h.clone();
        m.merge(&h);
        assert_eq!(m.count(), 2000);
        assert_eq!(h.quantile_bound(0.5), 512);
        assert_eq!(h.quantile_bound(1.0), 1024);
        assert_eq!(Histogram::new().quantile_bound(0.5), 0);
    }

    #[cfg(feature = "metrics")]
    #[test]
    fn atomic_histogram_from_another_thread() {
        let h = std::sync::Arc::new(AtomicHistogram::new());
        let w = h.clone();
        std::thread::spawn(move || {
            for v in 1..=100u64 {
                w.record(v);
            }
        })
        .join()
        .unwrap();
        let s = h.snapshot();
        assert_eq!(s.count(), 100);
        assert_eq!(s.sum(), 5050);
    }

    #[cfg(feature = "metrics")]
    #[test]
    fn sampler_times_one_in_sample_every() {
        let mut s = Sampler::default();
        let due = (0..SAMPLE_EVERY * 10).filter(|_| s.due()).count();
        assert_eq!(due, 10);
        let a = now_ns();
        let b = now_ns();
        assert!(a > 0 && b >= a);
    }

    #[test]
    fn encoder_layout() {
        let mut h = Histogram::new();
        h.record(3);
        h.record(3);
        h.record(1000);
        let mut e = Encoder::default();
        e.u64(7).str("abc").histogram(&h);
        let b = e.finish();
        let u = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap());
        assert_eq!(u(0), 7);
        assert_eq!(u(1), 3);
        assert_eq!(&b[16..19], b"abc");
        if ENABLED {
            assert_eq!(u(3), 1006);
            assert_eq!(u(4), (1 << 2) | (1 << 10));
            assert_eq!((u(5), u(6)), (2, 1));
            assert_eq!(b.len(), 7 * 8);
        } else {
            assert_eq!((u(3), u(4)), (0, 0));
        }
    }
}
