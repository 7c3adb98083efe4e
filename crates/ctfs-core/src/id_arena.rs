//! Append-only storage of fact ids in admission order.
//!
//! Ids live in chunks of 8,192 (256 KiB). The first chunk starts at 16 ids
//! and doubles (one tenant among thousands stays small); every later chunk
//! is allocated whole and never moves, so admission never copies the arena
//! and unused capacity stays under 256 KiB. An id's *ordinal* (u32) is its
//! position in this arena.

use crate::fact::FactId;

const CHUNK_BITS: u32 = 13;
const CHUNK: usize = 1 << CHUNK_BITS;
const CHUNK_MASK: u32 = (CHUNK as u32) - 1;

#[derive(Clone, Default)]
pub struct IdArena {
    chunks: Vec<Vec<FactId>>,
    len: usize,
}

impl IdArena {
    pub fn new() -> Self {
        IdArena { chunks: Vec::new(), len: 0 }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends an id and returns its ordinal.
    #[inline]
    pub fn push(&mut self, id: FactId) -> u32 {
        let ord = self.len as u32;
        let chunk = (ord >> CHUNK_BITS) as usize;
        if chunk == self.chunks.len() {
            let cap = if chunk == 0 { 16 } else { CHUNK };
            self.chunks.push(Vec::with_capacity(cap));
        }
        // The first chunk doubles up to exactly CHUNK (a power of two).
        self.chunks[chunk].push(id);
        self.len += 1;
        ord
    }

    /// The id at `ord`. Panics when out of range: ordinals come from `push`.
    #[inline(always)]
    pub fn get(&self, ord: u32) -> &FactId {
        &self.chunks[(ord >> CHUNK_BITS) as usize][(ord & CHUNK_MASK) as usize]
    }

    /// Hints the CPU to load the id at `ord` (no effect if out of range).
    #[inline(always)]
    pub fn prefetch(&self, ord: u32) {
        if let Some(c) = self.chunks.get((ord >> CHUNK_BITS) as usize) {
            let p = c.as_ptr().wrapping_add((ord & CHUNK_MASK) as usize);
            crate::exact_index::prefetch_read(p);
        }
    }

    /// Linear search, newest first (used while an index is not yet built).
    pub fn contains_linear(&self, id: &FactId) -> bool {
        self.chunks.iter().rev().any(|c| c.iter().rev().any(|x| x == id))
    }

    /// Ids in admission order.
    pub fn iter(&self) -> impl Iterator<Item = &FactId> + '_ {
        self.chunks.iter().flat_map(|c| c.iter())
    }

    /// Heap bytes held (capacity, not length).
    pub fn memory_bytes(&self) -> usize {
        self.chunks.iter().map(|c| c.capacity() * FactId::LEN).sum::<usize>()
            + self.chunks.capacity() * std::mem::size_of::<Vec<FactId>>()
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
        assert!(a.chunks.iter().all(|c| c.capacity() == CHUNK));
    }
}
