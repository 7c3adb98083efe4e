//! The table of the exact index: `(key, ordinal)` slots in segments that
//! grow one at a time.
//!
//! A slot is one `u64`: `key << 32 | ordinal`, where `key` is the top 32 bits
//! of the id's hash (never `u32::MAX`) and `ordinal` the id's position in the
//! arena. `EMPTY` (`u64::MAX`) matches no key.
//!
//! **Segments** (extendible hashing): the top `depth` bits of a key select a
//! directory entry, which names a segment; a segment of local depth `d`
//! holds every key with one `d`-bit prefix. A segment is an array of
//! 64-byte buckets of 8 slots (one cache line each); a key's *home* bucket
//! is `(key << d) * buckets >> 32`, a monotone function of the key, and an
//! entry goes into the first bucket from its home that has room (bucketed
//! linear probing). Slots fill from the left and are never removed, so a
//! lookup reads the home bucket (one line, the eight keys compared at once)
//! and moves on only while buckets are full; an insert writes one slot and
//! never shifts anything. A lookup that finds a key absent can hand back
//! where it stopped (a [`Vacancy`]), and the insert that follows writes
//! there without walking again, if the table has not changed since. A few
//! pad buckets past the home range take the overflow of the last ones; the
//! last bucket is never full.
//!
//! **Growth** never touches the whole table. A segment past `LOAD_MAX` is
//! either rebuilt alone, larger, from its own slots (they carry their keys:
//! neither the ids nor a hash are needed), or, once it has
//! `SEG_MAX_BUCKETS`, *cut* in two by the next key bit: since homes are
//! monotone, the keys with that bit clear have their homes in the first
//! half of the buckets at the same indexes, and the others in the second
//! half at the index minus half the buckets, so the halves become the two
//! new segments without moving entries (only the cluster straddling the cut
//! is placed again). The longest pause is the rebuild of one segment (at
//! most ~16K slots). Each rebuild picks a random *phase* (the load it
//! leaves lies anywhere in [`LOAD_MAX`/`GROWTH`^1.5, `LOAD_MAX`/`GROWTH`^0.5)),
//! so segments do not all grow at the same moment and the table's memory
//! follows the history smoothly instead of jumping by ×`GROWTH`.
//!
//! **Filters and staging** (while the index holds fewer than
//! `FILTER_MAX_ENTRIES` ids). Each segment keeps a filter of its keys
//! (`filter.rs`, half a byte per slot), so that the lookup of a new fact's
//! id reads one word of a structure 1/16 the table's size instead of the
//! id's bucket; and inserts go through a ring of the last 16 (`staging.rs`):
//! an insert requests its bucket and is placed 16 inserts later, when the
//! line has arrived. Together they take the wait for memory out of a single
//! admission of a fresh id. Past the threshold (chosen for the memory
//! budget; by then the filters fall out of cache too, and buy less) the
//! table drops them, places what is staged, and goes on reading buckets.
//! Measured (`admit_scale`, three interleaved pairs against the code
//! before): at a 1M-fact history, single 0-dep admissions 94–108 ns against
//! 137–143, admissions of replicated facts 91–111 against 138–142; at 10M
//! (no filters by then) unchanged. Two earlier trials on the EPYC VM brought nothing there: a byte-per-slot
//! filter alone (the insert still waited for the bucket), and a
//! quarter-byte filter passing 24 % of absent keys with this ring, read
//! before dependencies' buckets and in batches too (see the README).

use super::filter::{BUCKETS_PER_WORD, Filter};
use super::staging::Staging;
use super::prefetch_read;
use crate::huge_pages::{HugePool, Slot};
use std::ops::{Deref, DerefMut};

pub(super) const EMPTY: u64 = u64::MAX;
/// Keys are clamped below this (so that `EMPTY`'s key half matches no key).
pub(super) const MAX_KEY: u32 = u32::MAX - 1;
/// A segment is rebuilt when its length reaches this fraction of its slots.
const LOAD_MAX: f64 = 0.82;
const GROWTH: f64 = 1.5;
/// Largest segment (home buckets of 8 slots): a rebuild moves at most ~13K slots.
const SEG_MAX_BUCKETS: usize = 1 << 11;
const MIN_BUCKETS: usize = 2;
/// Bytes per entry the table may hold after a rebuild: past it, the
/// rebuild takes the dense end of its phase range (see `grow`). With the id
/// arena's ~32.7 B per id at its worst (100K ids, a chunk just started and
/// the next faulted in ahead), this keeps the index under its 48-byte
/// budget for every hash seed; without it, the random phases of a few
/// segments rebuilt sparse at once took an index over it (48.03 and 48.27
/// B once each in CI).
const TABLE_CAP_PER_ENTRY: f64 = 15.0;
/// Entries from which that cap applies (below, fixed overheads dominate).
const CAP_FROM: usize = 50_000;
/// Deepest directory (2^20 segments: far more than 2^32 ids need).
const MAX_DEPTH: u32 = 20;

/// Where an absent key goes: a bucket of a segment, for as long as the table
/// holds `stamp` entries (any placement changes it, and only placements move
/// entries).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Vacancy {
    seg: u32,
    bucket: u32,
    stamp: usize,
}

/// Eight slots, one cache line. Slots fill from the left: a bucket is full
/// exactly when its last slot is occupied.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Bucket([u64; 8]);

const EMPTY_BUCKET: Bucket = Bucket([EMPTY; 8]);

impl Bucket {
    #[inline(always)]
    fn is_full(&self) -> bool {
        self.0[7] != EMPTY
    }

    /// Bit `2 i` set: slot `i` holds `key` (the odd bits are clear; see
    /// [`first_slot`]). Two bits per slot because the compare yields one per
    /// 32-bit half: gathering them into one per slot cost six dependent
    /// instructions on every lookup and insert.
    #[inline(always)]
    fn matches(&self, key: u32) -> u32 {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: SSE2 is part of the x86-64 baseline; the four 16-byte loads
        // read exactly this 64-byte, 64-aligned bucket.
        unsafe {
            use core::arch::x86_64::*;
            let k = _mm_set1_epi32(key as i32);
            let p = self.0.as_ptr() as *const __m128i;
            // Lanes 1 and 3 of each compare are the key halves of two slots.
            let m = |i: usize| _mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(_mm_load_si128(p.add(i)), k))) as u32;
            let all = m(0) | m(1) << 4 | m(2) << 8 | m(3) << 12;
            (all >> 1) & 0x5555
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let mut m = 0u32;
            for (i, &s) in self.0.iter().enumerate() {
                m |= (((s >> 32) as u32 == key) as u32) << (2 * i);
            }
            m
        }
    }

    /// Index of the first empty slot (the bucket is not full). Without a
    /// branch per slot: `EMPTY`'s key half is `u32::MAX`, which no key is,
    /// so the key compare finds exactly the empty slots.
    #[inline(always)]
    fn first_free(&self) -> usize {
        first_slot(self.matches(u32::MAX)).min(7)
    }
}

/// The slot of the lowest match in a [`Bucket::matches`] mask (16 for none).
#[inline(always)]
fn first_slot(m: u32) -> usize {
    (m.trailing_zeros() / 2) as usize
}

/// A segment's buckets: a heap vector, or a slot of the index's
/// [`HugePool`] (2 MiB huge-page blocks; large segments of a large table).
/// `ptr`/`len` describe the initialised buckets of either owner, so reads
/// need no branch on the owner.
struct Buckets {
    ptr: *mut Bucket,
    len: usize,
    owner: Owner,
}

enum Owner {
    /// Holds the buckets (never resized while owned here).
    Heap(#[allow(dead_code)] Vec<Bucket>),
    Pooled(Slot),
}

// SAFETY: the buckets belong to this value alone (a heap vector it owns, or
// a pool slot handed out once); mutation goes through `&mut self`.
unsafe impl Send for Buckets {}
// SAFETY: as above.
unsafe impl Sync for Buckets {}

impl Buckets {
    fn heap(mut v: Vec<Bucket>) -> Buckets {
        Buckets { ptr: v.as_mut_ptr(), len: v.len(), owner: Owner::Heap(v) }
    }

    /// `n` empty buckets, from `pool` when it hands out a slot.
    fn new(n: usize, pool: &mut HugePool) -> Buckets {
        let bytes = n * std::mem::size_of::<Bucket>();
        if n >= POOL_MIN_BUCKETS
            && let Some(slot) = pool.alloc(bytes)
        {
            let p = slot.as_ptr() as *mut Bucket;
            debug_assert!(slot.bytes() >= bytes && (p as usize).is_multiple_of(64));
            // SAFETY: the slot holds at least n buckets and is 64-byte aligned
            // (as Bucket needs); writing initialises them.
            unsafe {
                for i in 0..n {
                    p.add(i).write(EMPTY_BUCKET);
                }
            }
            return Buckets { ptr: p, len: n, owner: Owner::Pooled(slot) };
        }
        Buckets::heap(vec![EMPTY_BUCKET; n])
    }

    /// A copy of `src` followed by `extra` empty buckets, from `pool` when it can.
    fn copy_of(src: &[Bucket], extra: usize, pool: &mut HugePool) -> Buckets {
        let mut b = Buckets::new(src.len() + extra, pool);
        b[..src.len()].copy_from_slice(src);
        b
    }

    /// Gives a pooled slot back to `pool` (the pool it came from).
    fn release(self, pool: &mut HugePool) {
        if let Owner::Pooled(slot) = self.owner {
            // SAFETY: every pooled slot of a table comes from the one pool
            // its index passes to every call, and `self` is consumed:
            // nothing uses the slot afterwards.
            unsafe { pool.free(slot) };
        }
    }

    /// Heap bytes (pooled slots are counted by the pool).
    fn heap_bytes(&self) -> usize {
        match &self.owner {
            Owner::Heap(v) => v.capacity() * std::mem::size_of::<Bucket>(),
            Owner::Pooled(_) => 0,
        }
    }

    #[cfg(test)]
    fn pooled_bytes(&self) -> usize {
        match &self.owner {
            Owner::Heap(_) => 0,
            Owner::Pooled(slot) => slot.bytes(),
        }
    }
}

impl Deref for Buckets {
    type Target = [Bucket];
    #[inline(always)]
    fn deref(&self) -> &[Bucket] {
        // SAFETY: `ptr` leads to `len` initialised buckets owned by `owner`.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl DerefMut for Buckets {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [Bucket] {
        // SAFETY: as in `deref`, and `&mut self` makes the access unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

/// A deep copy on the heap (a slot is never shared).
impl Clone for Buckets {
    fn clone(&self) -> Buckets {
        Buckets::heap(self.to_vec())
    }
}

/// Segments of at least this many buckets (64 KiB) go to the pool.
const POOL_MIN_BUCKETS: usize = 1 << 10;

#[derive(Clone)]
struct Segment {
    /// `nb` home buckets plus `pad` overflow buckets; the last one is never full.
    buckets: Buckets,
    nb: usize,
    len: usize,
    grow_at: usize,
    /// Bits of the key prefix this segment holds...
    local_depth: u32,
    /// ...and the prefix.
    prefix: u32,
    /// Bits of every key placed here or staged for here (see `filter.rs`).
    filter: Filter,
}

fn pad_for(nb: usize) -> usize {
    (nb / 64).clamp(2, 8)
}

impl Segment {
    /// Bytes of a new segment of `nb` home buckets on the heap (see
    /// `Segment::heap_bytes`).
    fn bytes_for(nb: usize, filtered: bool) -> usize {
        (nb + pad_for(nb)) * std::mem::size_of::<Bucket>() + Filter::bytes_for(nb, filtered)
    }

    /// Heap bytes of its buckets (none in pool slots) and its filter.
    fn heap_bytes(&self) -> usize {
        self.buckets.heap_bytes() + self.filter.bytes()
    }

    fn empty(nb: usize, local_depth: u32, prefix: u32, filtered: bool, pool: &mut HugePool) -> Segment {
        Segment {
            buckets: Buckets::new(nb + pad_for(nb), pool),
            nb,
            len: 0,
            grow_at: ((nb * 8) as f64 * LOAD_MAX) as usize,
            local_depth,
            prefix,
            filter: Filter::new(nb, filtered),
        }
    }

    /// Sets the filter bits of every entry in a new filter (after a cut).
    fn refilter(&mut self) {
        let mut f = Filter::new(self.nb, true);
        for bk in self.buckets.iter() {
            for &e in bk.0.iter().take_while(|&&e| e != EMPTY) {
                let key = (e >> 32) as u32;
                f.set(self.home(key), key);
            }
        }
        self.filter = f;
    }

    /// The key's home bucket (a monotone function of the key).
    #[inline(always)]
    fn home(&self, key: u32) -> usize {
        let residual = (((key as u64) << self.local_depth) as u32) as u64;
        ((residual * self.nb as u64) >> 32) as usize
    }

    /// Places an entry in the first bucket from its home that has room.
    /// `false` (nothing changed) if that would fill the last bucket.
    #[inline(always)]
    fn place(&mut self, key: u32, e: u64) -> bool {
        let home = self.home(key);
        let last = self.buckets.len() - 1;
        let mut b = home;
        // SAFETY: the last bucket is never full, so the walk stops at `last`
        // at the latest.
        unsafe {
            while self.buckets.get_unchecked(b).is_full() {
                b += 1;
            }
            let bk = self.buckets.get_unchecked_mut(b);
            let i = bk.first_free();
            if b == last && i == 7 {
                return false;
            }
            bk.0[i] = e;
        }
        self.len += 1;
        true
    }

    /// This segment's entries in a new segment of `nb` home buckets; `None`
    /// if the overflow would reach its last bucket (then try larger).
    fn rebuilt(&self, nb: usize, pool: &mut HugePool) -> Option<Segment> {
        let mut b = Builder::new(nb, self.local_depth, self.prefix, self.filter.is_on(), pool);
        for bk in self.buckets.iter() {
            for &e in &bk.0 {
                if e == EMPTY {
                    break;
                }
                if !b.push(e) {
                    b.seg.buckets.release(pool);
                    return None;
                }
            }
        }
        Some(b.finish())
    }

    /// Splits this segment by the next key bit without moving its entries
    /// (`nb` even): keys with the bit clear have their homes in the first
    /// half of the buckets, at the same indexes in a segment of half the
    /// buckets one level deeper; keys with the bit set have theirs in the
    /// second half, at the index minus `nb / 2`. So the first half stays
    /// here (truncated) and the second half is copied out.
    /// Only the buckets around the cut change: entries of the first half
    /// that overflowed past it move into this segment's new pad, and the
    /// second half's first cluster (up to its first bucket that was not
    /// full) is placed again without them. Returns the second half, or
    /// `None` (nothing changed) if the first half's overflow does not fit
    /// its pad.
    fn cut(&mut self, pool: &mut HugePool) -> Option<Segment> {
        let h = self.nb / 2;
        let ld = self.local_depth + 1;
        let bit = 1u32 << (32 - ld);
        let is_hi = |e: u64| (e >> 32) as u32 & bit != 0;
        // The cluster that straddles the cut ends at the first non-full bucket.
        let q = (h..self.buckets.len()).find(|&b| !self.buckets[b].is_full()).unwrap_or(self.buckets.len() - 1);
        let spill: Vec<u64> = self.buckets[h..=q].iter().flat_map(|b| b.0).filter(|&e| e != EMPTY && !is_hi(e)).collect();
        let pad_lo = pad_for(h);
        if spill.len() >= pad_lo * 8 {
            return None;
        }
        // The right child: buckets h.. of this one, its first cluster placed again.
        let mut right = Segment {
            buckets: Buckets::copy_of(&self.buckets[h..], 0, pool),
            nb: self.nb - h,
            len: 0,
            grow_at: (((self.nb - h) * 8) as f64 * LOAD_MAX) as usize,
            local_depth: ld,
            prefix: (self.prefix << 1) | 1,
            filter: Filter::new(0, false),
        };
        let moved: Vec<u64> = right.buckets[..=q - h].iter().flat_map(|b| b.0).filter(|&e| e != EMPTY && is_hi(e)).collect();
        for b in &mut right.buckets[..=q - h] {
            *b = EMPTY_BUCKET;
        }
        let right_rest: usize = right.buckets[q - h + 1..].iter().map(|b| b.0.iter().take_while(|&&e| e != EMPTY).count()).sum();
        right.len = right_rest;
        for e in moved {
            // They fit where they were: the slots linear probing occupies do
            // not depend on the insertion order, and these are a subset of
            // what buckets h..=q held with q not full.
            let placed = right.place((e >> 32) as u32, e);
            debug_assert!(placed, "a re-placed entry reached the last bucket");
        }
        // This segment becomes the left child: buckets 0..h plus a new pad
        // holding the spill in order (first fit: buckets home..h-1 are full).
        let left_len = self.len - right.len;
        let left = Buckets::copy_of(&self.buckets[..h], pad_lo, pool);
        std::mem::replace(&mut self.buckets, left).release(pool);
        for (i, &e) in spill.iter().enumerate() {
            self.buckets[h + i / 8].0[i % 8] = e;
        }
        self.nb = h;
        self.len = left_len;
        self.grow_at = ((h * 8) as f64 * LOAD_MAX) as usize;
        self.local_depth = ld;
        self.prefix <<= 1;
        // Homes keep their indexes (less `h` on the right), so with `h` a
        // whole number of words each half keeps its words of the filter.
        // (Without filters, the right half's stays off.)
        if self.filter.is_on() {
            if h.is_multiple_of(BUCKETS_PER_WORD) {
                right.filter = self.filter.split_off(h / BUCKETS_PER_WORD);
            } else {
                self.refilter();
                right.refilter();
            }
        }
        Some(right)
    }

}

/// Fills a new segment entry by entry (rebuilds and splits): a count per
/// bucket makes each placement O(1) and the writes move forward through
/// memory, since entries arrive roughly in home order.
struct Builder {
    seg: Segment,
    fills: Vec<u8>,
    ok: bool,
}

impl Builder {
    fn new(nb: usize, local_depth: u32, prefix: u32, filtered: bool, pool: &mut HugePool) -> Builder {
        let seg = Segment::empty(nb, local_depth, prefix, filtered, pool);
        let fills = vec![0u8; seg.buckets.len()];
        Builder { seg, fills, ok: true }
    }

    /// Places `e`; `false` if that would fill the last bucket (the segment
    /// is then unusable: start over larger).
    #[inline(always)]
    fn push(&mut self, e: u64) -> bool {
        let key = (e >> 32) as u32;
        let home = self.seg.home(key);
        let last = self.fills.len() - 1;
        let mut b = home;
        // SAFETY: `home < nb < fills.len() = buckets.len()`; the walk stops
        // at `last` at the latest (checked before it could pass it), and
        // `fills[b] < 8` when a slot is written.
        unsafe {
            while *self.fills.get_unchecked(b) == 8 && b < last {
                b += 1;
            }
            let f = self.fills.get_unchecked_mut(b);
            if b == last && *f >= 7 {
                self.ok = false;
                return false;
            }
            self.seg.buckets.get_unchecked_mut(b).0[*f as usize] = e;
            *f += 1;
        }
        self.seg.filter.set(home, key);
        self.seg.len += 1;
        true
    }

    fn finish(self) -> Segment {
        debug_assert!(self.ok);
        self.seg
    }
}

#[derive(Clone)]
pub(super) struct Table {
    dir: Vec<u32>,
    depth: u32,
    segs: Vec<Segment>,
    len: usize,
    rng: u64,
    rebuilds: u64,
    /// The last `STAGE` entries inserted with [`Table::stage`], not yet
    /// placed. Their filter bits are set, and lookups read the ring before
    /// the segments.
    staging: Staging,
    /// Segments keep filters (until [`Table::unfilter`]).
    filtered: bool,
}

impl Table {
    pub(super) fn new(seed: u64) -> Table {
        let seg = Segment::empty(MIN_BUCKETS, 0, 0, true, &mut HugePool::new());
        Table { dir: vec![0], depth: 0, segs: vec![seg], len: 0, rng: seed | 1, rebuilds: 0, staging: Staging::new(), filtered: true }
    }

    #[inline(always)]
    fn seg_index(&self, key: u32) -> usize {
        // `key >> (32 - depth)` < 2^depth = dir.len(), and every directory
        // entry names a segment.
        self.dir[((key as u64) >> (32 - self.depth)) as usize] as usize
    }

    #[inline(always)]
    fn seg(&self, key: u32) -> &Segment {
        &self.segs[self.seg_index(key)]
    }

    /// `false` when `key` is certainly absent (its segment's filter), without
    /// reading its bucket.
    #[inline(always)]
    pub(super) fn may_hold(&self, key: u32) -> bool {
        let seg = self.seg(key);
        seg.filter.may_hold(seg.home(key), key)
    }

    #[cfg(test)]
    pub(super) fn find(&self, key: u32, is_it: impl FnMut(u32) -> bool) -> Option<u32> {
        self.find_or_vacancy(key, is_it).ok()
    }

    /// The ordinal of the first entry holding `key` (staged ones first)
    /// that `is_it` accepts (it compares the stored id), or, for an absent
    /// key, where it would be placed:
    /// the bucket where the walk ended (the first from its home with room,
    /// as `Segment::place` would pick). That place is valid until the table
    /// next places an entry; [`Table::insert_at`] checks that. The filter is
    /// not consulted (see [`Table::may_hold`]).
    #[inline(always)]
    pub(super) fn find_or_vacancy(&self, key: u32, mut is_it: impl FnMut(u32) -> bool) -> Result<u32, Vacancy> {
        let mut m = self.staging.matches(key);
        while m != 0 {
            let ord = self.staging.ord(m.trailing_zeros() as usize);
            if is_it(ord) {
                return Ok(ord);
            }
            m &= m - 1;
        }
        let si = self.seg_index(key);
        let seg = &self.segs[si];
        let mut b = seg.home(key);
        loop {
            // SAFETY: the last bucket is never full: the walk stops there.
            let bk = unsafe { seg.buckets.get_unchecked(b) };
            let mut m = bk.matches(key);
            while m != 0 {
                let ord = bk.0[first_slot(m)] as u32;
                if is_it(ord) {
                    return Ok(ord);
                }
                m &= m - 1;
            }
            if !bk.is_full() {
                return Err(Vacancy { seg: si as u32, bucket: b as u32, stamp: self.len });
            }
            b += 1;
        }
    }

    /// Inserts a key (its id is absent) where `place`, from
    /// [`Table::find_or_vacancy`] of the same key, says, without walking
    /// again; or as [`Table::insert`] does if the table changed since, or
    /// the segment must grow first, or the slot is the last bucket's last.
    #[inline]
    pub(super) fn insert_at(&mut self, key: u32, ord: u32, place: Vacancy, pool: &mut HugePool) {
        if place.stamp == self.len {
            let seg = &mut self.segs[place.seg as usize];
            let last = seg.buckets.len() - 1;
            let b = place.bucket as usize;
            if seg.len < seg.grow_at && b <= last {
                debug_assert_eq!(b, (seg.home(key)..=last).find(|&x| !seg.buckets[x].is_full()).unwrap_or(last));
                let home = seg.home(key);
                let bk = &mut seg.buckets[b];
                let i = bk.first_free();
                if !bk.is_full() && (b != last || i != 7) {
                    bk.0[i] = ((key as u64) << 32) | ord as u64;
                    seg.filter.set(home, key);
                    seg.len += 1;
                    self.len += 1;
                    return;
                }
            }
        }
        self.insert(key, ord, pool);
    }

    /// Inserts a key (its id is absent) through the staging ring: its
    /// filter bits are set and its home bucket requested now, and it is
    /// placed `STAGE` insertions later (when that line has arrived), so
    /// that an insert does not wait for memory.
    #[inline(always)]
    pub(super) fn stage(&mut self, key: u32, ord: u32, pool: &mut HugePool) {
        let si = self.seg_index(key);
        let seg = &mut self.segs[si];
        let home = seg.home(key);
        seg.filter.set(home, key);
        prefetch_read(seg.buckets.as_ptr().wrapping_add(home));
        if let Some((k, o)) = self.staging.push(key, ord) {
            self.place_entry(((k as u64) << 32) | o as u64, pool);
        }
    }

    /// Places every staged entry (so that the segments hold everything),
    /// oldest first, one at a time: the ones still staged keep their filter
    /// bits through a growth that placing another one causes.
    pub(super) fn flush(&mut self, pool: &mut HugePool) {
        while let Some((k, o)) = self.staging.pop() {
            self.place_entry(((k as u64) << 32) | o as u64, pool);
        }
    }

    /// The ordinal in the first slot holding `key` in its home bucket, if
    /// any (for prefetching the id that most probably answers a lookup).
    #[inline]
    pub(super) fn first_candidate(&self, key: u32) -> Option<u32> {
        let seg = self.seg(key);
        let bk = &seg.buckets[seg.home(key)];
        let m = bk.matches(key);
        (m != 0).then(|| bk.0[first_slot(m)] as u32)
    }

    /// Requests the bucket where `key` is looked up and inserted.
    #[inline(always)]
    pub(super) fn prefetch(&self, key: u32) {
        self.request(key, false, true);
    }

    /// Requests what a new key's lookup and insert read first: while the
    /// table keeps filters its filter word and, for a `batch` (whose insert
    /// is not staged), its bucket; without filters, its bucket.
    #[inline(always)]
    pub(super) fn prefetch_fresh(&self, key: u32, batch: bool) {
        self.request(key, self.filtered, batch || !self.filtered);
    }

    #[inline(always)]
    fn request(&self, key: u32, word: bool, bucket: bool) {
        let seg = self.seg(key);
        let home = seg.home(key);
        if word {
            prefetch_read(seg.filter.word_ptr(home));
        }
        if bucket {
            prefetch_read(seg.buckets.as_ptr().wrapping_add(home));
        }
    }

    /// Inserts a key (its id is absent). Segments rebuilt or cut on the way
    /// take their buckets from `pool` when it hands out slots (always pass
    /// the same pool to one table: freed slots go back to it).
    pub(super) fn insert(&mut self, key: u32, ord: u32, pool: &mut HugePool) {
        let si = self.seg_index(key);
        let seg = &mut self.segs[si];
        seg.filter.set(seg.home(key), key);
        self.place_entry(((key as u64) << 32) | ord as u64, pool);
    }

    /// Places entry `e` in its segment (its filter bits are already set),
    /// growing the segment first when it is full (the grown segment's
    /// filter is made from the entries it holds, so `e`'s bits are set
    /// again there).
    fn place_entry(&mut self, e: u64, pool: &mut HugePool) {
        let key = (e >> 32) as u32;
        let mut grown = false;
        loop {
            let si = self.seg_index(key);
            let seg = &mut self.segs[si];
            if seg.len < seg.grow_at && seg.place(key, e) {
                if grown {
                    seg.filter.set(seg.home(key), key);
                }
                self.len += 1;
                return;
            }
            self.grow(si, pool);
            grown = true;
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

    /// Home buckets (even) for `n` entries with a random phase: the load
    /// lands in [LOAD_MAX / GROWTH^1.5, LOAD_MAX / GROWTH^0.5), so a rebuild
    /// leaves room for at least ×1.22 more entries, and segments drift apart
    /// in when they grow.
    fn phased_buckets(&mut self, n: usize) -> usize {
        let load = LOAD_MAX / GROWTH.powf(0.5 + self.phase());
        Self::buckets_for(n, load)
    }

    /// Home buckets for rebuilding segment `si` larger: at a random phase
    /// (`phased_buckets`), or at the dense end of the range when the random
    /// one would take the table past `TABLE_CAP_PER_ENTRY`.
    fn rebuild_buckets(&mut self, si: usize) -> usize {
        let (n, least) = (self.segs[si].len, self.segs[si].nb + 2);
        let nb = self.phased_buckets(n).max(least);
        if self.len < CAP_FROM {
            return nb;
        }
        let after = self.memory_bytes() - self.segs[si].heap_bytes() + Segment::bytes_for(nb, self.filtered);
        if after <= (TABLE_CAP_PER_ENTRY * self.len as f64) as usize {
            return nb;
        }
        nb.min(Self::buckets_for(n, LOAD_MAX / GROWTH.sqrt()).max(least))
    }

    /// Home buckets (even) for `n` entries at `load`.
    fn buckets_for(n: usize, load: f64) -> usize {
        let nb = ((n as f64 / load / 8.0).ceil() as usize).max(MIN_BUCKETS);
        nb + (nb & 1)
    }

    /// Makes room in segment `si`: splits it (past `SEG_MAX_BUCKETS`), or
    /// rebuilds it larger, at a random phase unless that would take the
    /// table past `TABLE_CAP_PER_ENTRY`.
    #[inline(never)]
    fn grow(&mut self, si: usize, pool: &mut HugePool) {
        self.rebuilds += 1;
        // The pool's fragmentation is held to a byte per entry (the index's
        // 48-byte budget; see HugePool::set_free_cap). Only growth allocates.
        pool.set_free_cap(self.len);
        let seg = &self.segs[si];
        if seg.nb >= SEG_MAX_BUCKETS && seg.nb % 2 == 0 && seg.local_depth < MAX_DEPTH {
            if let Some(right) = self.segs[si].cut(pool) {
                self.attach(right);
                self.refilter_staged();
                return;
            }
        }
        let mut nb = self.rebuild_buckets(si);
        let grown = loop {
            if let Some(g) = self.segs[si].rebuilt(nb, pool) {
                break g;
            }
            nb += (nb / 4 + 1) & !1;
        };
        std::mem::replace(&mut self.segs[si], grown).buckets.release(pool);
        self.refilter_staged();
    }

    /// Sets the staged entries' filter bits again (a rebuilt or cut segment
    /// has a new filter, made from its own entries).
    fn refilter_staged(&mut self) {
        // A copy of the ring (128 bytes), so that the segments can be changed.
        let staged = self.staging.clone();
        for (key, _) in staged.entries() {
            let si = self.seg_index(key);
            let seg = &mut self.segs[si];
            seg.filter.set(seg.home(key), key);
        }
    }

    /// Registers `right`, just cut from another segment, in the directory.
    fn attach(&mut self, right: Segment) {
        let ld = right.local_depth;
        if ld > self.depth {
            // Double the directory: entry i of depth+1 is entry i/2 of depth.
            let dir: Vec<u32> = (0..self.dir.len() * 2).map(|i| self.dir[i >> 1]).collect();
            self.dir = dir;
            self.depth += 1;
        }
        let ri = self.segs.len() as u32;
        let span = 1usize << (self.depth - ld);
        let start = right.prefix as usize * span;
        self.segs.push(right);
        for e in &mut self.dir[start..start + span] {
            *e = ri;
        }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Whether segments still keep filters (and inserts are staged).
    #[inline(always)]
    pub(super) fn filtered(&self) -> bool {
        self.filtered
    }

    /// Places the staged entries and drops every filter: from now on
    /// lookups read buckets, and inserts write where the lookup stopped.
    #[cold]
    pub(super) fn unfilter(&mut self, pool: &mut HugePool) {
        self.flush(pool);
        self.filtered = false;
        for seg in &mut self.segs {
            seg.filter = Filter::new(0, false);
        }
    }

    pub(super) fn memory_bytes(&self) -> usize {
        self.segs.iter().map(Segment::heap_bytes).sum::<usize>()
            + self.segs.capacity() * std::mem::size_of::<Segment>()
            + self.dir.capacity() * 4
    }


    /// Bytes of pool slots holding segments.
    #[cfg(test)]
    pub(super) fn pooled_bytes(&self) -> usize {
        self.segs.iter().map(|s| s.buckets.pooled_bytes()).sum()
    }

    /// Home slots (capacity, pads excluded).
    pub(super) fn capacity(&self) -> usize {
        self.segs.iter().map(|s| s.nb * 8).sum()
    }

    /// Longest distance, in buckets, of a slot from its home bucket.
    pub(super) fn max_probe(&self) -> u64 {
        let mut m = 0;
        for s in &self.segs {
            for (b, bk) in s.buckets.iter().enumerate() {
                for &e in bk.0.iter().filter(|&&e| e != EMPTY) {
                    m = m.max((b - s.home((e >> 32) as u32)) as u64);
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

    /// Checks the structure (tests): directory, prefixes, homes.
    #[cfg(test)]
    pub(super) fn check(&self) {
        assert_eq!(self.dir.len(), 1 << self.depth);
        let mut total = 0;
        for (i, &si) in self.dir.iter().enumerate() {
            let s = &self.segs[si as usize];
            assert_eq!(i >> (self.depth - s.local_depth), s.prefix as usize);
        }
        for s in &self.segs {
            let mut n = 0;
            for (b, bk) in s.buckets.iter().enumerate() {
                let used = bk.0.iter().take_while(|&&e| e != EMPTY).count();
                assert!(bk.0[used..].iter().all(|&e| e == EMPTY), "a gap inside a bucket");
                for &e in &bk.0[..used] {
                    n += 1;
                    let key = (e >> 32) as u32;
                    let home = s.home(key);
                    assert!(home <= b, "slot before its home");
                    assert!(s.buckets[home..b].iter().all(Bucket::is_full), "a non-full bucket between home and slot");
                    if s.local_depth > 0 {
                        assert_eq!(key >> (32 - s.local_depth), s.prefix);
                    }
                    assert!(s.filter.may_hold(home, key), "a placed key missing from its filter");
                }
            }
            assert_eq!(n, s.len);
            assert!(!s.buckets.last().unwrap().is_full());
            total += n;
        }
        assert_eq!(total, self.len);
        for (key, _) in self.staging.entries() {
            assert!(self.may_hold(key), "a staged key missing from its filter");
        }
    }
}
