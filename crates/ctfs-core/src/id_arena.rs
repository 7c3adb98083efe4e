//! Append-only storage of fact ids in admission order.
//!
//! Ids live in chunks of 1,024 (32 KiB). The first chunk starts at 16 ids
//! and doubles (one tenant among thousands stays small); every later chunk
//! is allocated whole and never moves, so admission never copies the arena
//! and unused capacity stays under 32 KiB. (Chunks were 256 KiB; 32 KiB
//! lets arena chunks fill the holes that table segments leave in the huge
//! page pool, and the chunk pointers of 10M ids still take only 80 KB.) An id's *ordinal* (u32) is its
//! position in this arena.
//!
//! Chunks come from the heap; from [`CARVE_FROM`] chunks on they are carved
//! from mappings instead, each next chunk faulted in ahead by a helper
//! thread, so that admissions neither `malloc` nor fault (see
//! [`crate::prefault`]); and when the caller passes an active
//! [`HugePool`] to [`IdArena::push_in`] (the exact index does once it holds
//! [`crate::exact_index::HUGE_FROM`] ids), from its 2 MiB huge-page blocks,
//! so that a dependency's random read of an old id does not also pay a TLB
//! miss. Such an arena points into the pool: its owner keeps the pool alive
//! as long as the arena (see `ExactIndex`); a clone is a deep copy on the
//! heap.

use crate::fact::FactId;
use crate::huge_pages::HugePool;
use crate::prefault::Reservation;
use std::sync::Arc;

const CHUNK_BITS: u32 = 10;
const CHUNK: usize = 1 << CHUNK_BITS;
const CHUNK_MASK: u32 = (CHUNK as u32) - 1;
const CHUNK_BYTES: usize = CHUNK * FactId::LEN;
/// Chunks are carved from mappings, each next one faulted in ahead, once the
/// arena has this many (64K ids, 2 MiB): one tenant among thousands keeps a
/// chunk of its own on the heap, and the chunk faulted in ahead (32 KiB)
/// costs at most half a byte per id.
const CARVE_FROM: usize = 64;
/// One mapping per 64 chunks (2 MiB of address space; only the chunks carved
/// and the one ahead are ever touched).
const RESERVATION_BYTES: usize = 64 * CHUNK_BYTES;

#[derive(Default)]
pub struct IdArena {
    /// Start of each chunk: `first`'s buffer, a heap chunk, a chunk carved
    /// from `carved` or a pool slot.
    ptrs: Vec<*mut FactId>,
    /// Chunk 0 (grows by doubling up to `CHUNK`).
    first: Vec<FactId>,
    /// Heap chunks 1.. (capacity `CHUNK`, length 0: written through `ptrs`);
    /// the other chunks past the first are carved or pool slots of exactly a
    /// chunk.
    heap: Vec<Vec<FactId>>,
    /// Mappings that chunks are carved from in order, from [`CARVE_FROM`]
    /// chunks until the pool takes over (see [`crate::prefault`]).
    carved: Vec<Arc<Reservation>>,
    /// Bytes carved from the last mapping (the ones before it are full).
    carved_bytes: usize,
    len: usize,
}

// SAFETY: the pointers lead to memory owned by this arena (`first`, `heap`,
// `carved`) or by the pool its owner keeps beside it; the arena mutates it
// only through `&mut self`, so sharing `&IdArena` across threads only reads.
unsafe impl Send for IdArena {}
// SAFETY: as above.
unsafe impl Sync for IdArena {}

impl IdArena {
    pub fn new() -> Self {
        IdArena::default()
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends an id and returns its ordinal (chunks from the heap).
    #[inline]
    pub fn push(&mut self, id: FactId) -> u32 {
        self.push_in(id, None)
    }

    /// Appends an id and returns its ordinal; a new chunk comes from `pool`
    /// when it is given and active.
    ///
    /// The caller keeps `pool` alive, and does not free its slots, for as
    /// long as this arena exists (the exact index owns both).
    #[inline]
    pub fn push_in(&mut self, id: FactId, pool: Option<&mut HugePool>) -> u32 {
        let ord = self.len as u32;
        let chunk = (ord >> CHUNK_BITS) as usize;
        let slot = (ord & CHUNK_MASK) as usize;
        if chunk == 0 {
            // The first chunk doubles up to exactly CHUNK (a power of two).
            if self.first.is_empty() {
                self.first.reserve_exact(16);
            }
            self.first.push(id);
            match self.ptrs.first_mut() {
                Some(p) => *p = self.first.as_mut_ptr(),
                None => self.ptrs.push(self.first.as_mut_ptr()),
            }
        } else {
            if slot == 0 {
                self.new_chunk(pool);
            }
            // SAFETY: chunk `chunk` was allocated with room for CHUNK ids
            // (heap capacity or pool slot) and slot < CHUNK; FactId is Copy
            // (no drop of the old contents).
            unsafe { self.ptrs[chunk].add(slot).write(id) };
        }
        self.len += 1;
        ord
    }

    #[cold]
    fn new_chunk(&mut self, pool: Option<&mut HugePool>) {
        if let Some(s) = pool.and_then(|p| p.alloc_exact(CHUNK_BYTES)) {
            debug_assert!(s.bytes() == CHUNK_BYTES && (s.as_ptr() as usize).is_multiple_of(std::mem::align_of::<FactId>()));
            self.ptrs.push(s.as_ptr() as *mut FactId);
        } else if let Some(p) = self.carve() {
            self.ptrs.push(p);
        } else {
            let mut v: Vec<FactId> = Vec::with_capacity(CHUNK);
            self.ptrs.push(v.as_mut_ptr());
            self.heap.push(v);
        }
    }

    /// The next chunk from the reservations (from [`CARVE_FROM`] chunks on),
    /// with the chunk after it asked to be faulted in ahead (see
    /// [`crate::prefault`]); `None` below that, or where nothing can be
    /// mapped (the heap is used).
    fn carve(&mut self) -> Option<*mut FactId> {
        if self.ptrs.len() < CARVE_FROM {
            return None;
        }
        if self.carved.is_empty() || self.carved_bytes == RESERVATION_BYTES {
            self.map_reservation()?;
        }
        let base = self.carved.last()?.as_ptr();
        // SAFETY: carved_bytes + CHUNK_BYTES <= RESERVATION_BYTES (both are
        // multiples of CHUNK_BYTES), so the chunk lies inside the mapping.
        let chunk = unsafe { base.add(self.carved_bytes) } as *mut FactId;
        self.carved_bytes += CHUNK_BYTES;
        // The next chunk: further in this mapping, or at the start of the
        // next one, mapped now (one mapping per 64 chunks).
        if self.carved_bytes == RESERVATION_BYTES && self.map_reservation().is_none() {
            return Some(chunk);
        }
        if let Some(r) = self.carved.last() {
            crate::prefault::populate_later(r, self.carved_bytes, CHUNK_BYTES);
        }
        Some(chunk)
    }

    /// Chunks carved, in all mappings.
    fn carved_chunks(&self) -> usize {
        match self.carved.len() {
            0 => 0,
            n => (n - 1) * (RESERVATION_BYTES / CHUNK_BYTES) + self.carved_bytes / CHUNK_BYTES,
        }
    }

    /// Whether a chunk past the carved ones was asked to be faulted in (it
    /// is resident, so counted): exactly when the last mapping has room,
    /// since each carve asks for the next chunk there and a mapping that
    /// fills is followed by a new one at once.
    fn ahead(&self) -> bool {
        !self.carved.is_empty() && self.carved_bytes < RESERVATION_BYTES
    }

    /// Maps a new reservation and makes it the one carved next.
    fn map_reservation(&mut self) -> Option<()> {
        let r = Reservation::new(RESERVATION_BYTES)?;
        self.carved.push(Arc::new(r));
        self.carved_bytes = 0;
        Some(())
    }

    /// The id at `ord`. Panics when out of range: ordinals come from `push`.
    #[inline(always)]
    pub fn get(&self, ord: u32) -> &FactId {
        assert!((ord as usize) < self.len, "ordinal out of range");
        let p = self.ptrs[(ord >> CHUNK_BITS) as usize];
        // SAFETY: ord < len, so the slot was written by `push_in` and its
        // chunk is alive (owned here or by the owner's pool).
        unsafe { &*p.add((ord & CHUNK_MASK) as usize) }
    }

    /// Hints the CPU to load the id at `ord` (no effect if out of range).
    #[inline(always)]
    pub fn prefetch(&self, ord: u32) {
        if let Some(c) = self.ptrs.get((ord >> CHUNK_BITS) as usize) {
            let p = c.wrapping_add((ord & CHUNK_MASK) as usize);
            crate::exact_index::prefetch_read(p);
        }
    }

    /// Linear search, newest first (used while an index is not yet built).
    pub fn contains_linear(&self, id: &FactId) -> bool {
        (0..self.len as u32).rev().any(|o| self.get(o) == id)
    }

    /// Ids in admission order.
    pub fn iter(&self) -> impl Iterator<Item = &FactId> + '_ {
        (0..self.len as u32).map(|o| self.get(o))
    }

    /// Bytes held: heap capacity (not length), and the carved chunks with the
    /// one faulted in ahead (the rest of a mapping is never touched); pool
    /// slots excluded (the pool counts its blocks whole).
    pub fn memory_bytes(&self) -> usize {
        (self.first.capacity() + (self.heap.len() + self.carved_chunks() + usize::from(self.ahead())) * CHUNK) * FactId::LEN
            + self.heap.capacity() * std::mem::size_of::<Vec<FactId>>()
            + self.carved.len() * (std::mem::size_of::<Reservation>() + 2 * std::mem::size_of::<usize>())
            + self.carved.capacity() * std::mem::size_of::<Arc<Reservation>>()
            + self.ptrs.capacity() * std::mem::size_of::<*mut FactId>()
    }

    /// Bytes of pool slots holding chunks.
    pub fn pooled_bytes(&self) -> usize {
        (self.ptrs.len().saturating_sub(1) - self.heap.len() - self.carved_chunks()) * CHUNK_BYTES
    }
}

/// A deep copy, on the heap.
impl Clone for IdArena {
    fn clone(&self) -> IdArena {
        let mut a = IdArena::new();
        for id in self.iter() {
            a.push(*id);
        }
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_get_across_chunks() {
        let mut a = IdArena::new();
        for i in 0..(CHUNK as u32 * 2 + 5) {
            let mut b = [0u8; 32];
            b[..4].copy_from_slice(&i.to_le_bytes());
            assert_eq!(a.push(FactId(b)), i);
        }
        for i in [0u32, 1, CHUNK as u32 - 1, CHUNK as u32, CHUNK as u32 * 2 + 4] {
            assert_eq!(&a.get(i).0[..4], &i.to_le_bytes());
        }
        assert_eq!(a.iter().count(), a.len());
        assert!(a.contains_linear(a.get(7)));
        // Only the newest chunk has room left, and never more than a chunk.
        assert!(a.memory_bytes() <= (a.len() + CHUNK) * 32 + 1024);
        assert!(a.heap.iter().all(|c| c.capacity() == CHUNK));
    }
}

#[cfg(test)]
mod carve_tests {
    use super::*;

    fn fid(i: u32) -> FactId {
        let mut b = [0u8; 32];
        b[..4].copy_from_slice(&i.to_le_bytes());
        b[31] = 0xA5;
        FactId(b)
    }

    #[test]
    fn chunks_past_carve_from_are_carved_and_counted() {
        // 63 heap chunks after the first, then 70 carved: the second mapping
        // is mapped when the first is used up.
        let chunks = CARVE_FROM + 70;
        let n = (chunks * CHUNK + 5) as u32;
        let mut a = IdArena::new();
        for i in 0..n {
            assert_eq!(a.push(fid(i)), i);
        }
        assert!((0..n).all(|i| a.get(i) == &fid(i)));
        assert!(a.iter().eq((0..n).map(fid).collect::<Vec<_>>().iter()));
        #[cfg(target_os = "linux")]
        {
            assert_eq!(a.heap.len(), CARVE_FROM - 1);
            assert_eq!(a.carved_chunks(), chunks + 1 - CARVE_FROM);
            assert_eq!(a.carved.len(), 2);
            assert!(a.ahead());
            // Every chunk counted once, plus the one faulted in ahead.
            let chunk_bytes = (CHUNK + (a.heap.len() + a.carved_chunks() + 1) * CHUNK) * 32;
            assert!(a.memory_bytes() >= chunk_bytes && a.memory_bytes() < chunk_bytes + 8192, "{}", a.memory_bytes());
            assert_eq!(a.pooled_bytes(), 0);
        }
        // A clone is a deep copy that outlives the original's mappings.
        let c = a.clone();
        drop(a);
        assert!((0..n).all(|i| c.get(i) == &fid(i)));
    }
}

#[cfg(test)]
mod pool_tests {
    use super::*;

    fn fid(i: u32) -> FactId {
        FactId(*blake3::hash(&i.to_le_bytes()).as_bytes())
    }

    fn fill(pool: Option<HugePool>, n: u32) -> (IdArena, Option<HugePool>) {
        let mut pool = pool.map(|mut p| {
            p.activate();
            p
        });
        let mut a = IdArena::new();
        for i in 0..n {
            assert_eq!(a.push_in(fid(i), pool.as_mut()), i);
        }
        (a, pool)
    }

    #[test]
    fn pooled_arena_holds_the_same_ids() {
        let n = CHUNK as u32 * 20 + 3;
        let (plain, _) = fill(None, n);
        for pool in [HugePool::new(), HugePool::heap_only()] {
            let (a, p) = fill(Some(pool), n);
            let p = p.unwrap();
            assert!(a.iter().eq(plain.iter()));
            assert!((0..n).all(|i| a.get(i) == plain.get(i)));
            assert!(a.contains_linear(&fid(5)) && !a.contains_linear(&fid(n)));
            // Chunk 0 stays on the heap; the 19 full chunks and the last one are pooled.
            assert_eq!(a.pooled_bytes(), 20 * CHUNK * 32);
            // Blocks counted whole.
            let block = crate::huge_pages::HUGE_PAGE;
            assert_eq!(p.reserved_bytes(), (20 * CHUNK * 32).div_ceil(block) * block);
            assert!(a.memory_bytes() < plain.memory_bytes());
            // A clone is a deep copy on the heap that outlives the pool.
            let c = a.clone();
            drop(a);
            drop(p);
            assert!(c.iter().eq(plain.iter()));
            assert_eq!(c.pooled_bytes(), 0);
        }
    }

    #[test]
    #[should_panic(expected = "ordinal out of range")]
    fn get_past_the_end_panics() {
        let (a, _) = fill(None, 3);
        a.get(3);
    }
}
