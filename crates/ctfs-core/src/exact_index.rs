//! The exact causal index: every admitted fact id, with no horizon.
//!
//! Two parts:
//!
//! * the **arena** ([`IdArena`]) stores every id once, densely, in admission
//!   order (32 bytes per id); an id's *ordinal* is its position there;
//! * the **table** (`table.rs`) maps the top 32 bits of an id's hash (its
//!   *key*) to its ordinal, 8 bytes per slot, in 64-byte buckets of segments
//!   that grow one at a time (no stop-the-world rehash); a key match is
//!   confirmed by comparing the id in the arena, so the index is exact.
//!
//! Memory per id: 32 (arena) + 8 / load (the load lies between 0.45 and
//! 0.82, spread across segments so that it averages about 0.62), measured by
//! [`ExactIndex::memory_bytes`]: 44–46 bytes; below 4M ids the table also
//! keeps filters of its keys, half a byte per slot (see `table.rs`): peaks of
//! 47.3 B per id from 100K to 500K ids and 45.8 B from 500K to 1.5M
//! (46.3 and 45.0 without), 47.3–47.5 B over a 0 → 10M run.
//!
//! **Huge pages.** Once the index holds [`HUGE_FROM`] ids, large table
//! segments (rebuilt or cut from then on) come from a [`HugePool`] of 2 MiB
//! blocks advised `MADV_HUGEPAGE` (Linux; the heap elsewhere), and from
//! twice that many ids new arena chunks come from a second pool, so that
//! the random bucket and arena reads of admission do not also pay a TLB miss.
//! The pools are per index and freed with it; their blocks count whole in
//! [`ExactIndex::memory_bytes`]. The thresholds keep each pool's partly used
//! block (and the one faulted in ahead) within the 48-byte budget, and the
//! table pool's free ranges are capped at one byte per id: measured peak
//! 47.4–47.8 B per id from 100K to 10M ids in six runs (44–47 without huge
//! pages).
//! The table's pool starts at 2M ids, the arena's at 4M. Starting the
//! table's at 1M (the arena's staying at 4M) made single 0-dep admissions
//! at a 1M-fact history 1.26–1.67× the hashbrown control instead of
//! 1.66–1.80× (median 1.50×; five runs each, in interleaved pairs), with a
//! peak of 47.4–47.8 B per id in six 0 → 10M runs. Once the arena's chunks
//! were carved and faulted in ahead (`id_arena`), the peak varied more:
//! 47.2–47.9 B, and 48.27 and 48.03 once each in CI
//! (`memory_stays_under_48…`). The variation is the table's: each index has
//! its own random hash seed and rebuild phases, and where the peak falls
//! (100K–160K ids, the arena's per-id cost highest there) depends on how
//! many segments were rebuilt at the sparse end of their phase range. Over
//! 150 indexes (0 → 1.5M ids) the peak reached 47.90 B. Since then a
//! rebuild takes the dense end of the range whenever the table would
//! otherwise hold more than 15 B per entry (`TABLE_CAP_PER_ENTRY` in
//! `table.rs`): over 150 indexes the peak stayed at or under 47.53 B
//! (median 46.6 B), and a 0 → 10M run peaked at 47.1 B.
//! From 2M: 44.9–45.3 B in that test under the same load, 46.8–47.3 B in
//! three 0 → 10M runs.
//! Each next block is faulted in ahead by a helper thread, and a segment or
//! chunk that needs a block before it is ready goes to the heap, so no
//! admission pays the first touch of a huge page (2–5 ms each on the
//! development VM, ~180 of them to 10M ids). Measured at 10M there
//! (`admit_scale`, three interleaved pairs): single 0-dep admission
//! 1.58× → 1.10× the hashbrown control, packed 0-dep 1.38× → 0.88×; the
//! 0 → 10M run's p99.9 7.9–9.2 → 2.8–2.9 µs, its max unchanged (0.5–0.6 ms).
//!
//! The hash is seeded per index with OS randomness, so crafted ids cannot aim
//! at one probe chain; should a segment's overflow still reach its last
//! bucket it is rebuilt larger. Inserts never fail silently; the only
//! refusal is the optional size bound (`max_len`), reported to the caller.

mod filter;
mod staging;
mod table;

use crate::fact::FactId;
use crate::hash::{hash_id, random_seed};
use crate::huge_pages::HugePool;
use crate::id_arena::IdArena;
use filter::FILTER_MAX_ENTRIES;
use table::{MAX_KEY, Table};
pub(crate) use table::Vacancy;

/// From this many ids on, large table segments come from huge-page blocks,
/// and from [`ARENA_HUGE_FACTOR`] times as many new arena chunks (see the
/// module documentation).
pub const HUGE_FROM: usize = 2 << 20;

/// The arena's pool turns on at this many times [`HUGE_FROM`] ids (4M): with
/// both pools' partly used and faulted-ahead blocks counted from 2M ids, the
/// peak reached 48.1 B per id (measured twice).
const ARENA_HUGE_FACTOR: usize = 2;

/// Ordinal `u32::MAX` is reserved.
pub const MAX_ENTRIES: usize = u32::MAX as usize - 1;

/// The index is full: the configured bound (or 2^32 - 2 ids) is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexFull {
    pub limit: usize,
}

#[derive(Clone)]
pub struct ExactIndex {
    ids: IdArena,
    seed: u64,
    table: Table,
    max_len: usize,
    /// Holds the arena's and the table's huge-page slots; declared last, so
    /// it is dropped after them.
    pool: HugePool,
    /// Holds the arena's chunks from `ARENA_HUGE_FACTOR` × `huge_from` ids on (apart from
    /// the table's segments, so that permanent chunks do not pin the holes
    /// that segments leave, and packed exactly: 64 chunks per block).
    arena_pool: HugePool,
    /// `HUGE_FROM` (tests lower it).
    huge_from: usize,
    /// The table's filters are dropped at this many ids:
    /// `FILTER_MAX_ENTRIES` (tests lower it).
    filter_max: usize,
    /// The arena length at which a pool is next turned on or the filters
    /// dropped (`usize::MAX` once all that is done).
    activate_at: usize,
}

/// The next arena length, after `n`, at which a pool turns on (see
/// `ExactIndex::cross_thresholds`).
fn next_activation(n: usize, huge_from: usize) -> usize {
    if n < huge_from {
        huge_from
    } else {
        match huge_from.checked_mul(ARENA_HUGE_FACTOR) {
            Some(at) if n < at => at,
            _ => usize::MAX,
        }
    }
}

/// The table key of hash `h`: its top 32 bits, below `u32::MAX`.
#[inline(always)]
fn key(h: u64) -> u32 {
    ((h >> 32) as u32).min(MAX_KEY)
}

impl ExactIndex {
    pub fn new() -> Self {
        Self::with_limit(MAX_ENTRIES)
    }

    /// An index that refuses inserts past `max_len` ids instead of forgetting.
    pub fn with_limit(max_len: usize) -> Self {
        Self::from_arena(IdArena::new(), max_len)
    }

    /// Indexes every id already in `ids` (escalation and snapshots build the
    /// index this way). The ids must be distinct.
    pub fn from_arena(ids: IdArena, max_len: usize) -> Self {
        Self::from_arena_in(ids, max_len, HugePool::new(), HUGE_FROM)
    }

    /// `from_arena` with a given pool (tests use a heap-only or inactive one).
    fn from_arena_in(ids: IdArena, max_len: usize, mut pool: HugePool, huge_from: usize) -> Self {
        pool.set_prefault(true);
        let seed = random_seed();
        let arena_pool = pool.clone();
        let mut ix = ExactIndex {
            ids,
            seed,
            table: Table::new(seed),
            max_len: max_len.min(MAX_ENTRIES),
            pool,
            arena_pool,
            huge_from,
            filter_max: FILTER_MAX_ENTRIES,
            activate_at: 0,
        };
        // When the arena is large, the pools are on (and the filters off)
        // before the table is built.
        ix.cross_thresholds();
        let ExactIndex { ids, table, pool, .. } = &mut ix;
        // Hash a window ahead and prefetch, so the table lines' misses overlap.
        const AHEAD: usize = 16;
        let n = ids.len();
        let keys = |ord: usize| key(hash_id(&ids.get(ord as u32).0, seed));
        let mut ring = [0u32; AHEAD];
        for (ord, k) in ring.iter_mut().enumerate().take(n) {
            *k = keys(ord);
            table.prefetch(*k);
        }
        for ord in 0..n {
            let k = ring[ord % AHEAD];
            if ord + AHEAD < n {
                let next = keys(ord + AHEAD);
                table.prefetch(next);
                ring[ord % AHEAD] = next;
            }
            table.insert(k, ord as u32, pool);
        }
        ix
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn limit(&self) -> usize {
        self.max_len
    }

    /// The ids in admission order.
    pub fn ids(&self) -> &IdArena {
        &self.ids
    }

    /// The hash this index uses for `id` (compute once, pass to the `_hashed` calls).
    #[inline(always)]
    pub fn hash(&self, id: &FactId) -> u64 {
        hash_id(&id.0, self.seed)
    }

    /// Asks the CPU to start loading the bucket where `h` is looked up and
    /// inserted, so that the miss overlaps other work (admission issues it
    /// for the dependencies; batches a few records ahead).
    #[inline(always)]
    pub fn prefetch(&self, h: u64) {
        self.table.prefetch(key(h));
    }

    /// Requests the lines the lookup and insert of a new fact's id `h` read
    /// first (`ExactIndex::lookup_fresh`): for a single admission, the
    /// filter word while the index keeps filters (its bucket is requested
    /// when its insert is staged), else the bucket; for a `batch` (a few
    /// records ahead), the bucket and the filter word its insert sets.
    #[inline(always)]
    pub fn prefetch_fresh(&self, h: u64, batch: bool) {
        self.table.prefetch_fresh(key(h), batch);
    }

    /// Prefetches the arena entry of the id that most probably answers a
    /// lookup of `h`: the first slot of its home bucket with its key. Call
    /// after `prefetch(h)` has had time to land.
    #[inline(always)]
    pub fn prefetch_key(&self, h: u64) {
        if let Some(ord) = self.table.first_candidate(key(h)) {
            self.ids.prefetch(ord);
        }
    }

    #[inline]
    pub fn contains(&self, id: &FactId) -> bool {
        self.lookup_hashed(id, self.hash(id)).is_some()
    }

    /// The ordinal of `id`, if present.
    #[inline]
    pub fn lookup(&self, id: &FactId) -> Option<u32> {
        self.lookup_hashed(id, self.hash(id))
    }

    /// The ordinal of `id` (hash `h`), if present.
    #[inline]
    pub fn lookup_hashed(&self, id: &FactId, h: u64) -> Option<u32> {
        self.lookup_or_vacancy(id, h).ok()
    }

    /// The ordinal of `id` (hash `h`), or, if absent, where it would be
    /// inserted (for [`ExactIndex::insert_placed`] right after, on this
    /// index; crate-private, since a place is only meaningful there).
    #[inline]
    pub(crate) fn lookup_or_vacancy(&self, id: &FactId, h: u64) -> Result<u32, Vacancy> {
        let ids = &self.ids;
        self.table.find_or_vacancy(key(h), |ord| ids.get(ord) == id)
    }

    /// [`ExactIndex::lookup_or_vacancy`] for an id that is most probably
    /// new (a new fact's): in a single admission, while the index keeps
    /// filters, the id's filter word is read first, and an id it proves
    /// absent is reported so (`Err(None)`) without reading the table. A
    /// `batch` reads the bucket it requested records ahead.
    #[inline]
    pub(crate) fn lookup_fresh(&self, id: &FactId, h: u64, batch: bool) -> Result<u32, Option<Vacancy>> {
        if !batch && !self.table.may_hold(key(h)) {
            return Err(None);
        }
        self.lookup_or_vacancy(id, h).map_err(Some)
    }

    /// Inserts `id`, which the caller has checked is absent. Returns its ordinal.
    #[inline]
    pub fn insert(&mut self, id: &FactId) -> Result<u32, IndexFull> {
        let h = self.hash(id);
        self.insert_hashed(id, h)
    }

    /// Reports whether an insert would be refused, without changing anything.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.ids.len() >= self.max_len
    }

    /// Inserts an absent `id` whose hash is `h`.
    #[inline]
    pub fn insert_hashed(&mut self, id: &FactId, h: u64) -> Result<u32, IndexFull> {
        self.insert_placed(id, h, None, false)
    }

    /// [`ExactIndex::insert_hashed`] at `place`, when a lookup of `id` found
    /// one (see [`ExactIndex::lookup_or_vacancy`]; checked: if the index
    /// changed since, the id is placed as usual). Without a place, while the
    /// index keeps filters, a single admission's id is staged: found from
    /// now on, its table slot written a few inserts later, when the line
    /// requested now has arrived. A `batch`'s is written at once (it
    /// requested the bucket records ahead).
    #[inline(always)]
    pub(crate) fn insert_placed(&mut self, id: &FactId, h: u64, place: Option<Vacancy>, batch: bool) -> Result<u32, IndexFull> {
        if self.is_full() {
            return Err(IndexFull { limit: self.max_len });
        }
        debug_assert!(self.lookup_hashed(id, h).is_none(), "insert of a present id");
        if self.ids.len() >= self.activate_at {
            self.cross_thresholds();
        }
        let ord = self.ids.push_in(*id, Some(&mut self.arena_pool));
        match place {
            Some(v) => self.table.insert_at(key(h), ord, v, &mut self.pool),
            None if !batch && self.table.filtered() => self.table.stage(key(h), ord, &mut self.pool),
            None => self.table.insert(key(h), ord, &mut self.pool),
        }
        Ok(ord)
    }

    /// Turns the table's pool on at `huge_from` ids and the arena's at
    /// `ARENA_HUGE_FACTOR` times that, drops the table's filters at
    /// `filter_max` ids, and sets when to look again.
    #[cold]
    fn cross_thresholds(&mut self) {
        let n = self.ids.len();
        if n >= self.huge_from {
            self.pool.activate();
        }
        if n / ARENA_HUGE_FACTOR >= self.huge_from {
            self.arena_pool.activate();
        }
        if self.table.filtered() && n >= self.filter_max {
            self.table.unfilter(&mut self.pool);
        }
        let filters_at = if self.table.filtered() { self.filter_max } else { usize::MAX };
        self.activate_at = next_activation(n, self.huge_from).min(filters_at);
    }

    /// Drops the filters at `n` ids instead of `FILTER_MAX_ENTRIES`.
    #[cfg(test)]
    fn set_filter_max(&mut self, n: usize) {
        self.filter_max = n;
        self.cross_thresholds();
    }

    /// Bytes held by the arena and the table: their heap memory, and every
    /// huge-page block of the pool counted whole (partly used or not).
    pub fn memory_bytes(&self) -> usize {
        self.ids.memory_bytes() + self.table.memory_bytes() + self.pool.reserved_bytes() + self.arena_pool.reserved_bytes()
    }

    /// Huge-page blocks reserved, and how many `madvise` accepted (diagnostics).
    pub fn huge_blocks(&self) -> (usize, usize) {
        let (a, b) = (self.pool.blocks(), self.arena_pool.blocks());
        (a.0 + b.0, a.1 + b.1)
    }

    /// Table occupancy: ids / home slots.
    pub fn load(&self) -> f64 {
        self.table.len() as f64 / self.table.capacity() as f64
    }

    /// Longest distance of a table slot from its home (diagnostics and tests).
    pub fn max_probe(&self) -> u64 {
        self.table.max_probe()
    }

    /// Table segments rebuilt (grown or split) so far.
    pub fn segment_rebuilds(&self) -> u64 {
        self.table.rebuilds()
    }

    /// Table segments.
    pub fn segments(&self) -> usize {
        self.table.segments()
    }
}

impl Default for ExactIndex {
    fn default() -> Self {
        Self::new()
    }
}

#[inline(always)]
pub(crate) fn prefetch_read<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch is a hint; it never faults, whatever the address.
    unsafe {
        core::arch::x86_64::_mm_prefetch(p as *const i8, core::arch::x86_64::_MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn id(n: u64) -> FactId {
        FactId(*blake3::hash(&n.to_le_bytes()).as_bytes())
    }

    #[test]
    fn finds_what_it_holds_across_growth() {
        let mut ix = ExactIndex::new();
        for i in 0..100_000 {
            assert!(!ix.contains(&id(i)));
            assert_eq!(ix.insert(&id(i)), Ok(i as u32));
        }
        for i in 0..100_000 {
            assert_eq!(ix.lookup(&id(i)), Some(i as u32));
        }
        for i in 100_000..110_000 {
            assert!(!ix.contains(&id(i)));
        }
        assert!(ix.load() <= 0.85 && ix.load() > 0.4, "load {}", ix.load());
    }

    #[test]
    fn filters_are_dropped_past_their_size_and_nothing_is_lost() {
        let mut ix = ExactIndex::new();
        ix.set_filter_max(10_000);
        for i in 0..50_000 {
            ix.insert(&id(i)).unwrap();
        }
        assert!(!ix.table.filtered());
        ix.table.check();
        assert!((0..50_000).all(|i| ix.lookup(&id(i)) == Some(i as u32)));
        assert!((0..50_000).all(|i| ix.lookup_fresh(&id(i), ix.hash(&id(i)), false) == Ok(i as u32)));
        assert!((50_000..60_000).all(|i| !ix.contains(&id(i)) && ix.lookup_fresh(&id(i), ix.hash(&id(i)), false).is_err()));
    }

    #[test]
    fn first_fact_still_found_after_a_million() {
        let mut ix = ExactIndex::new();
        for i in 0..1_000_000 {
            ix.insert(&id(i)).unwrap();
        }
        assert!(ix.contains(&id(0)));
        let per_fact = ix.memory_bytes() as f64 / ix.len() as f64;
        assert!(per_fact <= 48.0, "bytes per fact {per_fact}");
    }

    #[test]
    fn structured_ids_do_not_collapse() {
        // Counter in the first 8 bytes, zeros elsewhere: the reference's worst case.
        let mut ix = ExactIndex::new();
        for i in 0..50_000u64 {
            let mut b = [0u8; 32];
            b[..8].copy_from_slice(&i.to_le_bytes());
            ix.insert(&FactId(b)).unwrap();
        }
        assert!(ix.max_probe() < 64, "max probe {}", ix.max_probe());
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&49_999u64.to_le_bytes());
        assert!(ix.contains(&FactId(b)));
    }

    #[test]
    fn limit_refuses_instead_of_forgetting() {
        let mut ix = ExactIndex::with_limit(3);
        for i in 0..3 {
            ix.insert(&id(i)).unwrap();
        }
        assert_eq!(ix.insert(&id(3)), Err(IndexFull { limit: 3 }));
        assert_eq!(ix.len(), 3);
        assert!(ix.contains(&id(0)) && !ix.contains(&id(3)));
    }

    #[test]
    fn from_arena_indexes_existing_ids() {
        let mut arena = IdArena::new();
        for i in 0..1000 {
            arena.push(id(i));
        }
        let mut ix = ExactIndex::from_arena(arena, MAX_ENTRIES);
        assert!((0..1000).all(|i| ix.contains(&id(i))));
        assert!((0..1000).all(|i| ix.lookup_fresh(&id(i), ix.hash(&id(i)), false).is_ok()));
        ix.insert(&id(1000)).unwrap();
        assert!(ix.contains(&id(1000)));
    }

    #[test]
    fn segments_split_and_stay_consistent() {
        let mut ix = ExactIndex::new();
        let n = 400_000u64;
        for i in 0..n {
            ix.insert(&id(i)).unwrap();
            assert_eq!(ix.lookup(&id(i)), Some(i as u32));
            if i % 50_000 == 0 {
                ix.table.check();
            }
        }
        assert!(ix.segments() > 4, "{} segments", ix.segments());
        ix.table.check();
        for i in 0..n {
            assert_eq!(ix.lookup(&id(i)), Some(i as u32));
        }
        assert!((n..n + 20_000).all(|i| !ix.contains(&id(i))));
        assert!(ix.max_probe() < 1024);
    }

    #[test]
    fn every_present_id_is_found_at_every_step() {
        // Across many segment rebuilds and cuts, a random earlier id is found
        // after every insert, and fresh ids never are.
        let mut ix = ExactIndex::new();
        let n = 300_000u64;
        let mut x = 7u64;
        for i in 0..n {
            ix.insert(&id(i)).unwrap();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let old = x % (i + 1);
            assert_eq!(ix.lookup(&id(old)), Some(old as u32), "id {old} lost at {i}");
            assert!(!ix.contains(&id(n + i)), "fresh id {} found at {i}", n + i);
        }
        ix.table.check();
    }

    #[test]
    fn equal_keys_are_told_apart_by_the_arena() {
        // Ids whose hashes share the top 32 bits land on one key; the table
        // keeps them all and the arena comparison picks the right one.
        let mut t = table::Table::new(1);
        let mut pool = HugePool::new();
        let mut x = 99u64;
        let mut keys = Vec::new();
        for ord in 0..100_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = if ord % 3 == 0 { 0xDEAD_BEEF } else { (x as u32).min(MAX_KEY) };
            t.insert(k, ord, &mut pool);
            keys.push(k);
        }
        t.check();
        for (ord, &k) in keys.iter().enumerate() {
            assert_eq!(t.find(k, |o| o == ord as u32), Some(ord as u32));
        }
        assert_eq!(t.find(0xDEAD_BEEF, |o| o == 1), None);
        assert_eq!(t.find(MAX_KEY, |_| true).is_some(), keys.contains(&MAX_KEY));
    }

    /// Each index draws its own hash seed and rebuild phases, and the peak
    /// depends on them (see the module docs): a dozen indexes.
    #[test]
    fn memory_stays_under_48_bytes_per_id_while_growing() {
        for round in 0..12 {
            let mut ix = ExactIndex::new();
            let mut peak = (0f64, 0);
            for i in 0..1_500_000u64 {
                ix.insert(&id(i)).unwrap();
                if i >= 100_000 && i % 4096 == 0 {
                    let b = ix.memory_bytes() as f64 / ix.len() as f64;
                    if b > peak.0 {
                        peak = (b, i);
                    }
                }
            }
            assert!(peak.0 <= 48.0, "index {round}: peak {} bytes per id at {} ids", peak.0, peak.1);
        }
    }

    /// Inserts `n` ids into an index whose huge pages start at `huge_from`
    /// ids, from `pool`; checks the structure along the way.
    fn filled(n: u64, huge_from: usize, pool: HugePool) -> ExactIndex {
        let mut ix = ExactIndex::from_arena_in(IdArena::new(), MAX_ENTRIES, pool, huge_from);
        for i in 0..n {
            assert_eq!(ix.insert(&id(i)), Ok(i as u32));
            if i % 100_000 == 0 {
                ix.table.check();
            }
        }
        ix.table.check();
        ix
    }

    #[test]
    fn huge_page_index_holds_the_same_contents() {
        let n = 400_000u64;
        let plain = filled(n, usize::MAX, HugePool::new());
        assert_eq!(plain.huge_blocks().0, 0);
        for pool in [HugePool::new(), HugePool::heap_only()] {
            let ix = filled(n, 20_000, pool);
            assert!(ix.huge_blocks().0 > 0, "the pool was used");
            assert!(ix.ids.pooled_bytes() > 0 && ix.table.pooled_bytes() > 0);
            assert!(ix.ids().iter().eq(plain.ids().iter()));
            for i in 0..n {
                assert_eq!(ix.lookup(&id(i)), Some(i as u32));
            }
            assert!((n..n + 20_000).all(|i| !ix.contains(&id(i))));
            // Reserved blocks cover what is in use; the rest is the last
            // block's tail, free slots and size rounding.
            let p = &ix.pool;
            assert_eq!(p.reserved_bytes(), ix.table.pooled_bytes() + p.free_bytes() + p.tail_bytes() + p.in_flight_bytes(), "no byte of a block lost");
            let a = &ix.arena_pool;
            assert_eq!(a.free_bytes(), 0);
            assert_eq!(a.reserved_bytes(), ix.ids.pooled_bytes() + a.tail_bytes() + a.in_flight_bytes(), "arena chunks packed");
            assert!(ix.memory_bytes() >= plain.memory_bytes() - plain.ids.memory_bytes() / 2);
            // A clone is a deep copy on the heap, alive after the original.
            let c = ix.clone();
            drop(ix);
            assert_eq!(c.huge_blocks().0, 0);
            assert!(c.ids().iter().eq(plain.ids().iter()));
            assert!((0..n).step_by(7).all(|i| c.lookup(&id(i)) == Some(i as u32)));
            c.table.check();
        }
    }

    #[test]
    fn from_arena_past_the_threshold_uses_huge_pages() {
        let mut arena = IdArena::new();
        for i in 0..200_000 {
            arena.push(id(i));
        }
        let mut ix = ExactIndex::from_arena_in(arena, MAX_ENTRIES, HugePool::new(), 100_000);
        assert!(ix.pool.is_active());
        // The first block is faulted in by a helper thread: on a loaded
        // machine (tests in parallel) the build may end before it is ready,
        // every segment then on the heap. Segments rebuilt as the index
        // grows take the pool's block once it is there.
        let mut next = 200_000;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            ix.insert(&id(next)).unwrap();
            next += 1;
            if ix.table.pooled_bytes() > 0 || next == 2_000_000 || std::time::Instant::now() > deadline {
                break;
            }
            if next % 4096 == 0 {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        assert!(ix.table.pooled_bytes() > 0, "no segment in the pool after {} inserts", next - 200_000);
        assert!((0..next).all(|i| ix.lookup(&id(i)) == Some(i as u32)));
        ix.table.check();
    }

    #[test]
    fn a_small_index_reserves_no_huge_page() {
        let ix = filled(100_000, HUGE_FROM, HugePool::new());
        assert_eq!(ix.huge_blocks(), (0, 0));
        assert!(!ix.pool.is_active());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Agrees with a HashSet over random inserts and lookups, across resizes.
        #[test]
        fn agrees_with_hashset(seed in any::<u64>(), ops in 20_000usize..120_000) {
            let mut ix = ExactIndex::new();
            let mut set = HashSet::new();
            let mut x = seed | 1;
            for _ in 0..ops {
                // xorshift picks keys from a space twice the op count, so about
                // half the operations hit an existing id.
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                let k = id(x % (ops as u64 * 2));
                let present = set.contains(&k);
                prop_assert_eq!(ix.contains(&k), present);
                if x & 1 == 0 && !present {
                    ix.insert(&k).unwrap();
                    set.insert(k);
                }
            }
            prop_assert_eq!(ix.len(), set.len());
            for k in &set { prop_assert!(ix.contains(k)); }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        /// Inserting where a lookup found room (`insert_placed`) keeps the
        /// table's structure and answers: fresh vacancies, vacancies made
        /// stale by another insert in between (never used as they are), and
        /// plain (staged) inserts and inserts written at once (a batch's),
        /// interleaved across growth, splits and cuts.
        #[test]
        fn vacancies_place_ids_as_insert_would(seed in any::<u64>(), n in 5_000u64..60_000) {
            let mut ix = ExactIndex::new();
            let mut x = seed | 1;
            let mut next = 0u64;
            let mut fresh = || { next += 1; id(next) };
            let mut inserted = Vec::new();
            for _ in 0..n {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                let a = fresh();
                let h = ix.hash(&a);
                match x % 5 {
                    0 => { ix.insert_hashed(&a, h).unwrap(); }
                    4 => { ix.insert_placed(&a, h, None, true).unwrap(); }
                    1 => {
                        // Another insert lands between the lookup and its use.
                        let v = ix.lookup_or_vacancy(&a, h).unwrap_err();
                        let b = fresh();
                        ix.insert(&b).unwrap();
                        inserted.push(b);
                        ix.insert_placed(&a, h, Some(v), false).unwrap();
                    }
                    _ => {
                        let v = ix.lookup_or_vacancy(&a, h).unwrap_err();
                        ix.insert_placed(&a, h, Some(v), false).unwrap();
                    }
                }
                inserted.push(a);
            }
            ix.table.check();
            prop_assert_eq!(ix.len(), inserted.len());
            // Ordinals follow insertion order.
            for (ord, k) in inserted.iter().enumerate() {
                prop_assert_eq!(ix.lookup_or_vacancy(k, ix.hash(k)), Ok(ord as u32));
            }
            for k in (next + 1..next + 1_000).map(id) {
                prop_assert!(ix.lookup_or_vacancy(&k, ix.hash(&k)).is_err());
            }
        }

        /// Inserts go through the staging ring and the filters: every id is
        /// found from the moment it is inserted (while staged, and once
        /// placed, across growth, splits and cuts), with its ordinal, and
        /// absent ids are never found, whatever mix of lookups comes between.
        #[test]
        fn staged_and_placed_ids_are_found(seed in any::<u64>(), n in 5_000u64..60_000, filter_max in 1_000usize..80_000) {
            let mut ix = ExactIndex::new();
            // Filters are dropped past `filter_max` entries (or kept to the end).
            ix.set_filter_max(filter_max);
            let mut x = seed | 1;
            let mut inserted: Vec<FactId> = Vec::new();
            for i in 0..n {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                let a = id(i);
                let fresh = |ix: &ExactIndex, k: &FactId| ix.lookup_fresh(k, ix.hash(k), false).ok();
                prop_assert_eq!(ix.lookup(&a), None);
                prop_assert_eq!(fresh(&ix, &a), None);
                prop_assert_eq!(ix.insert(&a), Ok(i as u32));
                inserted.push(a);
                // The newest few (staged), one at random, and an absent one.
                let back = (x % 20) as usize;
                if back < inserted.len() {
                    let ord = inserted.len() - 1 - back;
                    prop_assert_eq!(ix.lookup(&inserted[ord]), Some(ord as u32));
                    prop_assert_eq!(fresh(&ix, &inserted[ord]), Some(ord as u32));
                }
                let any = (x >> 8) as usize % inserted.len();
                prop_assert_eq!(ix.lookup(&inserted[any]), Some(any as u32));
                prop_assert_eq!(fresh(&ix, &inserted[any]), Some(any as u32));
                prop_assert_eq!(fresh(&ix, &id(n + i)), None);
            }
            ix.table.check();
            // Dropped at the first insert that finds `filter_max` entries placed.
            let placed = ix.table.len();
            let consistent = if ix.table.filtered() { placed <= filter_max } else { placed >= filter_max };
            prop_assert!(consistent, "filtered {} with {} placed", ix.table.filtered(), placed);
            prop_assert_eq!(ix.len(), inserted.len());
            for (ord, k) in inserted.iter().enumerate() {
                prop_assert_eq!(ix.lookup(k), Some(ord as u32));
                prop_assert_eq!(ix.lookup_fresh(k, ix.hash(k), false), Ok(ord as u32));
            }
            ix.table.flush(&mut ix.pool);
            ix.table.check();
            prop_assert_eq!(ix.table.len(), inserted.len());
            for (ord, k) in inserted.iter().enumerate() {
                prop_assert_eq!(ix.lookup(k), Some(ord as u32));
            }
        }
    }

    /// Millions of operations in one run (release-grade check; ~2 s at opt-level 1).
    #[test]
    fn agrees_with_hashset_millions() {
        let mut ix = ExactIndex::new();
        let mut set = HashSet::new();
        let mut x = 0x1234_5678_9abc_def1u64;
        for _ in 0..3_000_000 {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            let k = id(x % 4_000_000);
            let present = set.contains(&k);
            assert_eq!(ix.contains(&k), present);
            if !present && x & 3 != 0 {
                ix.insert(&k).unwrap();
                set.insert(k);
            }
        }
        assert_eq!(ix.len(), set.len());
    }
}
/// Diagnostics, run by hand: where an index's bytes go on its way to 10M ids
/// (`cargo test --release -p ctfs-core --lib -- --ignored memory_breakdown --nocapture`).
#[cfg(test)]
mod diagnostics {
    use super::*;
    #[test]
    #[ignore]
    fn memory_breakdown_to_ten_million() {
        let mut ix = ExactIndex::new();
        let mut peak = (0f64, 0);
        for i in 0..10_000_000u64 {
            if i >= 100_000 && i % 4096 == 0 {
                let b = ix.memory_bytes() as f64 / ix.len() as f64;
                if b > peak.0 { peak = (b, i); }
            }
            ix.insert(&FactId(*blake3::hash(&i.to_le_bytes()).as_bytes())).unwrap();
            if i >= 100_000 && i % 50_000 == 0 {
                let n = ix.len() as f64;
                println!("{i:>8}: arena {:.2} table {:.2} pool {:.2} (arena {:.2} table {:.2} free {:.2} tail {:.2}) total {:.2} load {:.3} segs {}", ix.ids.memory_bytes() as f64 / n, ix.table.memory_bytes() as f64 / n, (ix.pool.reserved_bytes() + ix.arena_pool.reserved_bytes()) as f64 / n, ix.ids.pooled_bytes() as f64 / n, ix.table.pooled_bytes() as f64 / n, ix.pool.free_bytes() as f64 / n, (ix.pool.tail_bytes() + ix.arena_pool.tail_bytes()) as f64 / n, ix.memory_bytes() as f64 / n, ix.load(), ix.segments());
            }
        }
        println!("peak {:.2} at {}", peak.0, peak.1);
    }
}
