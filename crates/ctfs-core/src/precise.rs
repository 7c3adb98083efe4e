//! The precise clock: an exact ring of the 16 most recently admitted ids.
//!
//! It answers "is this one of my last 16 facts?" exactly and cheaply, which
//! is the common case for dependencies (a fact usually depends on something
//! just admitted). It is a fast path, never the only evidence of absence.

use crate::fact::FactId;

pub const PRECISE_CAPACITY: usize = 16;

#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PreciseClock {
    ring: [FactId; PRECISE_CAPACITY],
    len: u8,
    head: u8,
}

impl PreciseClock {
    pub const fn new() -> Self {
        PreciseClock { ring: [FactId([0; 32]); PRECISE_CAPACITY], len: 0, head: 0 }
    }

    #[inline]
    pub fn push(&mut self, id: &FactId) {
        self.ring[self.head as usize] = *id;
        self.head = ((self.head as usize + 1) % PRECISE_CAPACITY) as u8;
        if (self.len as usize) < PRECISE_CAPACITY {
            self.len += 1;
        }
    }

    #[inline]
    pub fn contains(&self, id: &FactId) -> bool {
        self.ring[..self.len as usize].iter().any(|x| x == id)
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The remembered ids, newest first.
    #[inline]
    pub fn recent(&self) -> impl Iterator<Item = &FactId> + '_ {
        let n = self.len as usize;
        (0..n).map(move |i| &self.ring[(self.head as usize + PRECISE_CAPACITY - 1 - i) % PRECISE_CAPACITY])
    }
}

impl Default for PreciseClock {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for PreciseClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.recent()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> FactId {
        FactId([n; 32])
    }

    #[test]
    fn remembers_last_sixteen_newest_first() {
        let mut p = PreciseClock::new();
        assert!(!p.contains(&id(0)));
        for i in 0..20 {
            p.push(&id(i));
        }
        assert_eq!(p.len(), 16);
        assert!(!p.contains(&id(3)));
        assert!(p.contains(&id(4)) && p.contains(&id(19)));
        let r: Vec<u8> = p.recent().map(|x| x.0[0]).collect();
        assert_eq!(r, (4..20).rev().collect::<Vec<u8>>());
    }
}
