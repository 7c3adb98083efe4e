//! The staging ring: the newest ids, not yet placed in the table.
//!
//! Placing an id in the table needs the table line at its home, which at a
//! history of millions is a DRAM miss. An admitted id's `(key, ordinal)`
//! waits here for `STAGED` admissions while its line is prefetched, and is
//! placed when it leaves the ring; a lookup checks the ring (one vector
//! compare of the keys) before the table. The ring also answers the most
//! common dependency, on a fact just admitted, without touching the table.

pub(super) const STAGED: usize = 16;
const _: () = assert!(STAGED == 16, "matches() compares four lanes of four keys");

#[derive(Clone)]
pub(super) struct Staging {
    keys: [u32; STAGED],
    ords: [u32; STAGED],
    /// Bit i: slot i holds an entry.
    valid: u32,
    head: usize,
}

impl Staging {
    pub(super) fn new() -> Staging {
        Staging { keys: [0; STAGED], ords: [0; STAGED], valid: 0, head: 0 }
    }

    /// Bit i set: slot i holds `key`.
    #[inline(always)]
    pub(super) fn matches(&self, key: u32) -> u32 {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: SSE2 is part of the x86-64 baseline; the four unaligned
        // 16-byte loads read exactly the 64 bytes of `keys`.
        let m = unsafe {
            use core::arch::x86_64::*;
            let k = _mm_set1_epi32(key as i32);
            let p = self.keys.as_ptr() as *const __m128i;
            let eq = |i: usize| _mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(_mm_loadu_si128(p.add(i)), k))) as u32;
            eq(0) | eq(1) << 4 | eq(2) << 8 | eq(3) << 12
        };
        #[cfg(not(target_arch = "x86_64"))]
        let m = {
            let mut m = 0u32;
            for (i, &k) in self.keys.iter().enumerate() {
                m |= ((k == key) as u32) << i;
            }
            m
        };
        m & self.valid
    }

    #[inline(always)]
    pub(super) fn ord(&self, slot: u32) -> u32 {
        self.ords[slot as usize]
    }

    /// Stages an entry; returns the oldest one when it leaves the ring.
    #[inline(always)]
    pub(super) fn push(&mut self, key: u32, ord: u32) -> Option<(u32, u32)> {
        let h = self.head;
        let out = (self.valid & (1 << h) != 0).then(|| (self.keys[h], self.ords[h]));
        self.keys[h] = key;
        self.ords[h] = ord;
        self.valid |= 1 << h;
        self.head = if h + 1 == STAGED { 0 } else { h + 1 };
        out
    }

    /// Removes every entry (oldest first).
    #[cfg(test)]
    pub(super) fn drain(&mut self) -> Vec<(u32, u32)> {
        let start = self.head;
        let valid = std::mem::take(&mut self.valid);
        self.head = 0;
        (0..STAGED)
            .map(|i| (start + i) % STAGED)
            .filter(|&i| valid & (1 << i) != 0)
            .map(|i| (self.keys[i], self.ords[i]))
            .collect()
    }
}
