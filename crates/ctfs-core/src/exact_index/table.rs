//! The table of the exact index: `(key, ordinal)` slots in segments that
//! grow one at a time, each with a small filter of its keys.
//!
//! A slot is one `u64`: `key << 32 | ordinal`, where `key` is the top 32 bits
//! of the id's hash (never `u32::MAX`) and `ordinal` the id's position in the
//! arena. `EMPTY` (`u64::MAX`) is greater than every slot.
//!
//! **Segments** (extendible hashing): the top `depth` bits of a key select a
//! directory entry, which names a segment; a segment of local depth `d`
//! holds every key with one `d`-bit prefix. Each segment is an ordered
//! linear-probing table: the key's *home* is `(key << d) * cap >> 32`, a
//! monotone function of the key, and every cluster of occupied slots is
//! sorted by key, so the whole segment is sorted. A lookup walks from the
//! home and stops at the first greater slot (or an empty one); an insert
//! shifts the rest of its cluster right by one slot. `pad` slots past the
//! capacity take clusters that run over the end; the last slot is always
//! empty.
//!
//! **Filters**: each segment carries a blocked Bloom filter of its keys, one
//! byte per slot (one 64-bit word per 8 slots; a key sets 4 bits of the word
//! its home falls in, chosen by a remix of the key). At the segment's load
//! (0.55–0.82) that is 10–15 bits per key: about 2% false positives when the
//! segment is fullest, under 1% after it grows. The filters hold 1/9 of the
//! table's bytes (1.3–1.8 MiB at 1M ids), which stay in cache where the slots
//! cannot, so that a lookup of a fresh id (the common case: a new fact) is
//! answered without a DRAM round trip. A false positive only costs the slot
//! walk: the slots and the arena, never the filter, are the judge.
//!
//! **Growth** never touches the whole table: a segment past `LOAD_MAX` is
//! rebuilt alone, by one sequential pass over its sorted slots (which carry
//! their keys, so neither the ids nor a hash are needed; the filter is
//! rebuilt in the same pass), either larger (×`GROWTH`) or, past
//! `SEG_MAX_CAP`, split into two segments by the next key bit. The longest
//! pause is the rebuild of one segment (at most `SEG_MAX_CAP` slots). Each
//! segment is built with a random *phase* (its load right after a rebuild
//! lies anywhere in (`LOAD_MAX`/`GROWTH`, `LOAD_MAX`]), so segments do not
//! all grow at the same moment and the table's memory follows the history
//! smoothly instead of jumping by ×`GROWTH`.

use super::prefetch_read;

pub(super) const EMPTY: u64 = u64::MAX;
/// Keys are clamped below this (so that `EMPTY` compares greater than any slot).
pub(super) const MAX_KEY: u32 = u32::MAX - 1;
/// A segment is rebuilt when its length reaches this fraction of its capacity.
const LOAD_MAX: f64 = 0.82;
const GROWTH: f64 = 1.5;
/// Largest segment capacity (slots): a rebuild moves at most ~54K slots.
const SEG_MAX_CAP: usize = 1 << 16;
const MIN_CAP: usize = 16;
/// Pad slots past the capacity (a quarter of the capacity, at most this).
const MAX_PAD: usize = 256;
/// Deepest directory (2^20 segments: far more than 2^32 ids need).
const MAX_DEPTH: u32 = 20;
/// Slots per filter word.
const SLOTS_PER_WORD: usize = 8;

/// The 4 filter bits of a key (independent of its home, which picks the word).
#[inline(always)]
fn mask(key: u32) -> u64 {
    let x = (key as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let x = x ^ (x >> 29);
    (1u64 << ((x >> 40) & 63)) | (1u64 << ((x >> 46) & 63)) | (1u64 << ((x >> 52) & 63)) | (1u64 << (x >> 58))
}

#[derive(Clone)]
struct Segment {
    /// `cap + pad` slots; the last one is always `EMPTY`.
    slots: Vec<u64>,
    /// `cap / SLOTS_PER_WORD` words (at least one).
    filter: Vec<u64>,
    cap: usize,
    len: usize,
    grow_at: usize,
    /// Bits of the key prefix this segment holds...
    local_depth: u32,
    /// ...and the prefix.
    prefix: u32,
}

impl Segment {
    #[inline(always)]
    fn residual(&self, key: u32) -> u64 {
        (((key as u64) << self.local_depth) as u32) as u64
    }

    #[inline(always)]
    fn home(&self, key: u32) -> usize {
        ((self.residual(key) * self.cap as u64) >> 32) as usize
    }

    #[inline(always)]
    fn word(&self, key: u32) -> usize {
        ((self.residual(key) * self.filter.len() as u64) >> 32) as usize
    }

    #[inline(always)]
    fn maybe(&self, key: u32) -> bool {
        // SAFETY: `word() < filter.len()` (a fraction of it).
        let w = unsafe { *self.filter.get_unchecked(self.word(key)) };
        let m = mask(key);
        w & m == m
    }

    #[inline(always)]
    fn note(&mut self, key: u32) {
        let i = self.word(key);
        self.filter[i] |= mask(key);
    }
}

/// Writes a segment slot by slot, in key order (rebuilds and splits).
struct Builder {
    seg: Segment,
    next: usize,
}

impl Builder {
    fn new(n: usize, cap: usize, local_depth: u32, prefix: u32) -> Builder {
        let len = cap + pad_for(cap);
        let words = cap.div_ceil(SLOTS_PER_WORD).max(1);
        let seg = Segment {
            slots: Vec::with_capacity(len),
            filter: vec![0; words],
            cap,
            len: n,
            grow_at: ((cap as f64 * LOAD_MAX) as usize).max(1),
            local_depth,
            prefix,
        };
        Builder { seg, next: 0 }
    }

    /// Appends `e` (keys non-decreasing); `false` if it would reach the last slot.
    #[inline(always)]
    fn push(&mut self, e: u64) -> bool {
        let key = (e >> 32) as u32;
        let pos = self.seg.home(key).max(self.next);
        let total = self.seg.slots.capacity();
        if pos + 1 >= total {
            return false;
        }
        // SAFETY: `pos < total` = the capacity reserved; slots from the
        // current length up to `pos` are written here (gaps as EMPTY) before
        // the length covers them.
        unsafe {
            let p = self.seg.slots.as_mut_ptr();
            for i in self.next..pos {
                *p.add(i) = EMPTY;
            }
            *p.add(pos) = e;
            self.seg.slots.set_len(pos + 1);
        }
        self.next = pos + 1;
        self.seg.note(key);
        true
    }

    fn finish(mut self) -> Segment {
        let total = self.seg.slots.capacity();
        self.seg.slots.resize(total, EMPTY);
        self.seg
    }
}

fn pad_for(cap: usize) -> usize {
    (cap / 4).clamp(4, MAX_PAD)
}

#[derive(Clone)]
pub(super) struct Table {
    dir: Vec<u32>,
    depth: u32,
    segs: Vec<Segment>,
    len: usize,
    rng: u64,
    rebuilds: u64,
}

impl Table {
    pub(super) fn new(seed: u64) -> Table {
        Table {
            dir: vec![0],
            depth: 0,
            segs: vec![Builder::new(0, MIN_CAP, 0, 0).finish()],
            len: 0,
            rng: seed | 1,
            rebuilds: 0,
        }
    }

    #[inline(always)]
    fn seg(&self, key: u32) -> &Segment {
        // `key >> (32 - depth)` < 2^depth = dir.len(), and every directory
        // entry names a segment: both indexings are in bounds.
        &self.segs[self.dir[((key as u64) >> (32 - self.depth)) as usize] as usize]
    }

    #[inline(always)]
    fn seg_index(&self, key: u32) -> usize {
        self.dir[((key as u64) >> (32 - self.depth)) as usize] as usize
    }

    /// `false`: no slot holds `key` (the segment's filter rules it out).
    #[inline(always)]
    pub(super) fn maybe(&self, key: u32) -> bool {
        self.seg(key).maybe(key)
    }

    /// Ordinals of the slots holding `key`, tried in order with `is_it`
    /// (which compares the stored id); the first accepted one is returned.
    #[inline]
    pub(super) fn find(&self, key: u32, mut is_it: impl FnMut(u32) -> bool) -> Option<u32> {
        let seg = self.seg(key);
        let upper = ((key as u64) << 32) | 0xFFFF_FFFF;
        let mut p = seg.home(key);
        loop {
            // SAFETY: `home < cap` and the segment's last slot (index
            // `cap + pad - 1`) is always EMPTY, which is `> upper`: the walk
            // returns before it could pass the end.
            let s = unsafe { *seg.slots.get_unchecked(p) };
            if s > upper {
                return None;
            }
            if (s >> 32) as u32 == key && is_it(s as u32) {
                return Some(s as u32);
            }
            p += 1;
        }
    }

    /// The ordinal in the first slot holding `key`, if any (for prefetching
    /// the id that most probably answers a lookup).
    #[inline]
    pub(super) fn first_candidate(&self, key: u32) -> Option<u32> {
        let seg = self.seg(key);
        let upper = ((key as u64) << 32) | 0xFFFF_FFFF;
        for &s in seg.slots[seg.home(key)..].iter().take(8) {
            if s > upper {
                return None;
            }
            if (s >> 32) as u32 == key {
                return Some(s as u32);
            }
        }
        None
    }

    /// Requests the filter word a lookup of `key` reads first.
    #[inline(always)]
    pub(super) fn prefetch_filter(&self, key: u32) {
        let seg = self.seg(key);
        prefetch_read(seg.filter.as_ptr().wrapping_add(seg.word(key)));
    }

    /// Requests the slot line where `key` is looked up and inserted.
    #[inline(always)]
    pub(super) fn prefetch(&self, key: u32) {
        let seg = self.seg(key);
        prefetch_read(seg.slots.as_ptr().wrapping_add(seg.home(key)));
    }

    /// Inserts a key (its id is absent).
    pub(super) fn insert(&mut self, key: u32, ord: u32) {
        let mut si = self.seg_index(key);
        if self.segs[si].len >= self.segs[si].grow_at {
            self.grow(si);
            si = self.seg_index(key);
        }
        let seg = &mut self.segs[si];
        let upper = ((key as u64) << 32) | 0xFFFF_FFFF;
        let last = seg.slots.len() - 1;
        let slots = seg.slots.as_mut_ptr();
        let mut p = seg.home(key);
        // SAFETY: every index below is at most `last`: the walks stop at the
        // first EMPTY slot (which is `> upper`), and slot `last` is EMPTY.
        unsafe {
            while *slots.add(p) <= upper {
                p += 1;
            }
            // Insert at p and shift the rest of the cluster right by one.
            let mut carry = ((key as u64) << 32) | ord as u64;
            loop {
                let s = *slots.add(p);
                *slots.add(p) = carry;
                if s == EMPTY {
                    break;
                }
                carry = s;
                p += 1;
            }
        }
        seg.note(key);
        seg.len += 1;
        self.len += 1;
        if p == last {
            // The cluster reached the last slot, which must stay empty:
            // rebuild the segment larger (every slot, this one included, moves).
            self.grow(si);
        }
    }

    fn phase(&mut self) -> f64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Capacity for `n` slots with a fresh random phase: the load lands in
    /// (LOAD_MAX / GROWTH, LOAD_MAX].
    fn phased_cap(&mut self, n: usize) -> usize {
        let load = LOAD_MAX / GROWTH.powf(self.phase());
        ((n as f64 / load).ceil() as usize + 1).max(MIN_CAP)
    }

    /// Rebuilds segment `si` larger, or splits it.
    fn grow(&mut self, si: usize) {
        self.rebuilds += 1;
        let old = std::mem::replace(&mut self.segs[si], Builder::new(0, MIN_CAP, 0, 0).finish());
        let (ld, prefix) = (old.local_depth, old.prefix);
        let grown = ((old.cap as f64 * GROWTH) as usize).max(old.cap + 1);
        let occupied = || old.slots.iter().copied().filter(|&e| e != EMPTY);
        if grown <= SEG_MAX_CAP || ld >= MAX_DEPTH {
            self.segs[si] = Self::build(occupied, old.len, grown, ld, prefix);
            return;
        }
        // Split by key bit `31 - ld`: sorted, so all 0s come first.
        let bit = 1u32 << (31 - ld);
        let is_hi = |e: &u64| (e >> 32) as u32 & bit != 0;
        let n_hi = old.slots.iter().filter(|&&e| e != EMPTY && is_hi(&e)).count();
        let n_lo = old.len - n_hi;
        let (cap_lo, cap_hi) = (self.phased_cap(n_lo), self.phased_cap(n_hi));
        let left = Self::build(|| occupied().filter(|e| !is_hi(e)), n_lo, cap_lo, ld + 1, prefix << 1);
        let right = Self::build(|| occupied().filter(is_hi), n_hi, cap_hi, ld + 1, (prefix << 1) | 1);
        if ld == self.depth {
            // Double the directory: entry i of depth+1 is entry i/2 of depth.
            let dir: Vec<u32> = (0..self.dir.len() * 2).map(|i| self.dir[i >> 1]).collect();
            self.dir = dir;
            self.depth += 1;
        }
        let ri = self.segs.len() as u32;
        self.segs[si] = left;
        self.segs.push(right);
        // Directory entries of the right child: prefix|1 at depth ld+1.
        let span = 1usize << (self.depth - (ld + 1));
        let start = (((prefix << 1) | 1) as usize) * span;
        for e in &mut self.dir[start..start + span] {
            *e = ri;
        }
    }

    /// A segment of capacity `cap` (or larger, should a cluster run past the
    /// pad) holding the `n` sorted slots `entries()` yields.
    fn build<It: Iterator<Item = u64>>(entries: impl Fn() -> It, n: usize, mut cap: usize, ld: u32, prefix: u32) -> Segment {
        'retry: loop {
            let mut b = Builder::new(n, cap, ld, prefix);
            for e in entries() {
                if !b.push(e) {
                    cap += cap / 4 + 1;
                    continue 'retry;
                }
            }
            return b.finish();
        }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn memory_bytes(&self) -> usize {
        self.segs.iter().map(|s| (s.slots.capacity() + s.filter.capacity()) * 8).sum::<usize>()
            + self.segs.capacity() * std::mem::size_of::<Segment>()
            + self.dir.capacity() * 4
    }

    /// Bytes of the filters alone.
    pub(super) fn filter_bytes(&self) -> usize {
        self.segs.iter().map(|s| s.filter.capacity() * 8).sum()
    }

    /// Home slots (capacity, pads excluded).
    pub(super) fn capacity(&self) -> usize {
        self.segs.iter().map(|s| s.cap).sum()
    }

    /// Longest distance of a slot from its home.
    pub(super) fn max_probe(&self) -> u64 {
        let mut m = 0;
        for s in &self.segs {
            for (p, &e) in s.slots.iter().enumerate() {
                if e != EMPTY {
                    m = m.max((p - s.home((e >> 32) as u32)) as u64);
                }
            }
        }
        m
    }

    pub(super) fn rebuilds(&self) -> u64 {
        self.rebuilds
    }

    pub(super) fn segments(&self) -> usize {
        self.segs.len()
    }

    /// Checks the structure (tests): directory, prefixes, order, homes, filters.
    #[cfg(test)]
    pub(super) fn check(&self) {
        assert_eq!(self.dir.len(), 1 << self.depth);
        let mut total = 0;
        for (i, &si) in self.dir.iter().enumerate() {
            let s = &self.segs[si as usize];
            assert_eq!(i >> (self.depth - s.local_depth), s.prefix as usize);
        }
        for s in &self.segs {
            let mut prev = 0u64;
            let mut n = 0;
            for (p, &e) in s.slots.iter().enumerate() {
                if e == EMPTY {
                    continue;
                }
                n += 1;
                let key = (e >> 32) as u32;
                assert!(s.home(key) <= p, "slot before its home");
                assert!(e >= prev, "segment not sorted");
                assert!(s.maybe(key), "a key missing from its segment's filter");
                if s.local_depth > 0 {
                    assert_eq!(key >> (32 - s.local_depth), s.prefix);
                }
                prev = e & !0xFFFF_FFFF;
            }
            assert_eq!(n, s.len);
            assert_eq!(*s.slots.last().unwrap(), EMPTY);
            total += n;
        }
        assert_eq!(total, self.len);
    }
}
