//! The table's staging ring: the last [`STAGE`] inserted `(key, ordinal)`
//! pairs, not yet placed in their segments.
//!
//! An insert requests its bucket's line and is placed `STAGE` inserts
//! later, when the line has arrived, so that an admission does not wait for
//! memory to insert. Lookups read the ring first: its keys sit in one cache
//! line, compared sixteen at a time.

/// Inserts staged before they are placed.
pub(super) const STAGE: usize = 16;

/// No key is `u32::MAX` (see `MAX_KEY`), so it marks a free slot.
const FREE: u32 = u32::MAX;

#[derive(Clone)]
#[repr(C, align(64))]
pub(super) struct Staging {
    keys: [u32; STAGE],
    ords: [u32; STAGE],
    /// The slot the next push takes (the oldest entry's).
    head: usize,
}

impl Staging {
    pub(super) fn new() -> Staging {
        Staging { keys: [FREE; STAGE], ords: [0; STAGE], head: 0 }
    }

    /// Bit i set: slot i holds `key`.
    #[inline(always)]
    pub(super) fn matches(&self, key: u32) -> u32 {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: SSE2 is part of the x86-64 baseline; the four unaligned
        // 16-byte loads read exactly the 64-byte `keys` array.
        unsafe {
            use core::arch::x86_64::*;
            let k = _mm_set1_epi32(key as i32);
            let p = self.keys.as_ptr() as *const __m128i;
            let m = |i: usize| _mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(_mm_loadu_si128(p.add(i)), k))) as u32;
            m(0) | m(1) << 4 | m(2) << 8 | m(3) << 12
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self.keys.iter().enumerate().fold(0, |m, (i, &k)| m | ((k == key) as u32) << i)
        }
    }

    #[inline(always)]
    pub(super) fn ord(&self, slot: usize) -> u32 {
        self.ords[slot]
    }

    /// Stages `(key, ord)`; returns the entry it displaces (the oldest),
    /// once the ring is full.
    #[inline(always)]
    pub(super) fn push(&mut self, key: u32, ord: u32) -> Option<(u32, u32)> {
        let h = self.head;
        let old = (self.keys[h], self.ords[h]);
        self.keys[h] = key;
        self.ords[h] = ord;
        self.head = (h + 1) % STAGE;
        (old.0 != FREE).then_some(old)
    }

    /// The staged entries (any order).
    pub(super) fn entries(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.keys.iter().zip(&self.ords).filter(|(k, _)| **k != FREE).map(|(&k, &o)| (k, o))
    }

    /// Removes and returns the oldest entry (the others stay staged, so a
    /// growth while it is placed still sees them).
    pub(super) fn pop(&mut self) -> Option<(u32, u32)> {
        let slot = (0..STAGE).map(|j| (self.head + j) % STAGE).find(|&i| self.keys[i] != FREE)?;
        let e = (self.keys[slot], self.ords[slot]);
        self.keys[slot] = FREE;
        Some(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_the_last_sixteen_and_finds_them() {
        let mut s = Staging::new();
        assert_eq!(s.matches(7), 0);
        for i in 0..STAGE as u32 {
            assert_eq!(s.push(100 + i, i), None);
        }
        assert_eq!(s.push(7, 99), Some((100, 0)));
        assert_eq!(s.matches(7), 1);
        assert_eq!(s.ord(0), 99);
        assert_eq!(s.matches(115), 1 << 15);
        assert_eq!(s.matches(100), 0);
        s.push(7, 98);
        assert_eq!(s.matches(7), 0b11);
        // Oldest first: 102..=115 (slots 2..15), then 7 and 7 (slots 0, 1).
        assert_eq!(s.pop(), Some((102, 2)));
        assert_eq!(s.entries().count(), STAGE - 1);
        let rest: Vec<_> = std::iter::from_fn(|| s.pop()).collect();
        assert_eq!(rest.len(), STAGE - 1);
        assert_eq!(rest[rest.len() - 2..], [(7, 99), (7, 98)]);
        assert_eq!(s.entries().count(), 0);
        assert_eq!(s.matches(7), 0);
    }
}
