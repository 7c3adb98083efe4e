//! The frontier: what a kernel has admitted, summarised.
//!
//! * `clock` — the Bloom clock of every admitted id (order-independent);
//! * `count` — how many facts;
//! * `digest` — a lane-wise wrapping sum of the mixed ids, order-independent:
//!   two replicas that admitted the same set of facts in any order have equal
//!   `(count, digest, clock)` and so hash equally in a checkpoint (the
//!   reference's frontier was "the last 8 ids in arrival order");
//! * `recent` — the 16 newest ids (arrival order; informative, never hashed).

use crate::bloom::BloomClock;
use crate::fact::FactId;
use crate::hash::{fmix64, lanes};
use crate::precise::PreciseClock;

#[derive(Clone, Debug, Default)]
pub struct Frontier {
    pub clock: BloomClock,
    pub count: u64,
    pub digest: [u64; 4],
    pub recent: PreciseClock,
}

impl Frontier {
    pub fn new() -> Self {
        Self::default()
    }

    #[inline]
    pub fn observe(&mut self, id: &FactId) {
        // A full clock stays full: skip hashing the id for it (a history
        // past a few thousand facts sets all 512 bits).
        if !self.clock.is_full() {
            self.clock.observe(id);
        }
        self.count += 1;
        let w = lanes(&id.0);
        for i in 0..4 {
            self.digest[i] = self.digest[i].wrapping_add(fmix64(w[i] ^ (i as u64).wrapping_mul(0x9E37_79B9)));
        }
        self.recent.push(id);
    }

    /// The order-independent part, as 104 little-endian bytes:
    /// clock (64) ‖ count (8) ‖ digest (32).
    pub fn canonical_bytes(&self) -> [u8; 104] {
        let mut out = [0u8; 104];
        out[..64].copy_from_slice(&self.clock.to_bytes());
        out[64..72].copy_from_slice(&self.count.to_le_bytes());
        for i in 0..4 {
            out[72 + i * 8..80 + i * 8].copy_from_slice(&self.digest[i].to_le_bytes());
        }
        out
    }

    /// True when both frontiers summarise the same set of facts (up to a
    /// 256-bit digest collision).
    pub fn same_set(&self, other: &Frontier) -> bool {
        self.canonical_bytes() == other.canonical_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_independent() {
        let ids: Vec<FactId> = (0..50u64).map(|i| FactId(*blake3::hash(&i.to_le_bytes()).as_bytes())).collect();
        let mut a = Frontier::new();
        let mut b = Frontier::new();
        ids.iter().for_each(|i| a.observe(i));
        ids.iter().rev().for_each(|i| b.observe(i));
        assert!(a.same_set(&b));
        assert_ne!(a.recent, b.recent);
        let mut c = a.clone();
        c.observe(&FactId([1; 32]));
        assert!(!a.same_set(&c));
    }
}
