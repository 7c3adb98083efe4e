//! A segment's filter of keys: proves most absent keys absent without
//! reading their bucket.
//!
//! One 64-bit word per [`BUCKETS_PER_WORD`] home buckets (half a byte per
//! slot); a key sets three bits, chosen by a multiplicative mix of the key,
//! in the word of its home bucket. A lookup whose bits are not all set is
//! certainly absent (no false negatives: every key placed or staged in the
//! segment has its bits set); one whose bits are set is looked up in the
//! table. Words follow home buckets, so a segment's filter is as large as
//! its table part and is rebuilt with it.
//!
//! Why: a fresh id's home bucket is a random line of a table that outgrows
//! the caches, while this word is one of 1/16 as many bytes (0.75 MB at 1M
//! ids, 3 MB at 4M, where the table drops them). With the insert deferred (the table's staging ring),
//! an admission of a fresh id no longer waits for main memory.

/// Home buckets (of 8 slots) per filter word.
pub(super) const BUCKETS_PER_WORD: usize = 2;

/// The index drops the table's filters once it holds this many ids, for the
/// 48-byte budget: the filters take ~0.75 B per id, and over a 0 → 10M run
/// the peak was 47.3–47.5 B per id with filters to 4M, 47.9 to 8M and
/// 48.0–48.1 to 16M (47.0–47.1 to 2M). What they buy shrinks with the
/// table, as their words fall out of cache too (`admit_scale`, interleaved,
/// single 0-dep admissions with filters against without: 106–113 / 164–165
/// ns at 2M, 138–148 / 167–169 at 4M, 164–188 / 174–194 at 10M). An off
/// filter holds no words and may hold every key.
pub(super) const FILTER_MAX_ENTRIES: usize = 4 << 20;

#[derive(Clone)]
pub(super) struct Filter(Vec<u64>);

/// The key's three bits (possibly fewer, when two coincide).
#[inline(always)]
fn mask(key: u32) -> u64 {
    let m = (key as u64 | 1 << 32).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (1 << (m >> 58)) | (1 << ((m >> 52) & 63)) | (1 << ((m >> 46) & 63))
}

impl Filter {
    /// An empty filter for `nb` home buckets, or an off one.
    pub(super) fn new(nb: usize, on: bool) -> Filter {
        Filter(vec![0; Self::words(nb, on)])
    }

    /// Words of a filter for `nb` home buckets (none when off).
    fn words(nb: usize, on: bool) -> usize {
        if on { nb.div_ceil(BUCKETS_PER_WORD) } else { 0 }
    }

    /// Bytes of a new filter for `nb` home buckets.
    pub(super) fn bytes_for(nb: usize, on: bool) -> usize {
        Self::words(nb, on) * 8
    }

    pub(super) fn is_on(&self) -> bool {
        !self.0.is_empty()
    }

    #[inline(always)]
    pub(super) fn set(&mut self, home: usize, key: u32) {
        if let Some(w) = self.0.get_mut(home / BUCKETS_PER_WORD) {
            *w |= mask(key);
        }
    }

    /// `false`: no key with this home was set (certainly absent).
    #[inline(always)]
    pub(super) fn may_hold(&self, home: usize, key: u32) -> bool {
        let m = mask(key);
        self.0.get(home / BUCKETS_PER_WORD).is_none_or(|&w| w & m == m)
    }

    /// Where the word of `home` lies (for prefetching).
    #[inline(always)]
    pub(super) fn word_ptr(&self, home: usize) -> *const u64 {
        self.0.as_ptr().wrapping_add(home / BUCKETS_PER_WORD)
    }

    /// Keeps the words of the first `at` words' buckets; returns the rest.
    pub(super) fn split_off(&mut self, at: usize) -> Filter {
        let rest = Filter(self.0.split_off(at));
        self.0.shrink_to_fit();
        rest
    }

    pub(super) fn bytes(&self) -> usize {
        self.0.capacity() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_false_negatives_and_few_false_positives() {
        // 16 slots per word at load ~0.7: about 11 keys per word.
        let nb = 4096;
        let mut f = Filter::new(nb, true);
        let mut x = 0x1234_5678u32;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        let home = |k: u32| ((k as u64 * nb as u64) >> 32) as usize;
        let keys: Vec<u32> = (0..nb * 8 * 7 / 10).map(|_| next()).collect();
        for &k in &keys {
            f.set(home(k), k);
        }
        assert!(keys.iter().all(|&k| f.may_hold(home(k), k)));
        let probes = 100_000;
        let fp = (0..probes).map(|_| next()).filter(|&k| f.may_hold(home(k), k)).count();
        let rate = fp as f64 / probes as f64;
        assert!(rate < 0.12, "false positive rate {rate}");
        let off = Filter::new(nb, false);
        assert!(!off.is_on() && off.may_hold(0, 1) && off.bytes() == 0);
    }
}
