//! The causal buffer: facts that arrived before they can be admitted.
//!
//! A fact waits when its predecessor from the same origin has not been
//! admitted yet, or when one of its dependencies is missing. Only the *head*
//! of an origin (the next fact to deliver) can be blocked on a dependency;
//! it is registered under the missing id, so that admitting that id wakes
//! exactly the origins waiting for it (cascading delivery).
//!
//! The buffer is bounded in facts and bytes. When full, it evicts from the
//! tail — the highest-numbered facts of the origin with the most waiting,
//! the ones furthest from delivery — or refuses the newcomer if it would be
//! that tail itself. Evicted facts are counted, never silently lost: the
//! replica's version vector did not move past them, so anti-entropy brings
//! them again.

use std::collections::{BTreeMap, HashMap};

use ctfs_core::FactId;

use crate::origin::Origin;

/// Limits of a [`CausalBuffer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferLimits {
    pub max_facts: usize,
    pub max_bytes: usize,
}

impl Default for BufferLimits {
    fn default() -> Self {
        BufferLimits { max_facts: 65_536, max_bytes: 64 << 20 }
    }
}

/// What [`CausalBuffer::insert`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inserted {
    /// Stored; `evicted` other facts were dropped to make room.
    Stored { evicted: usize },
    /// Already waiting here.
    Duplicate,
    /// Not stored: the buffer is full of facts closer to delivery.
    Refused,
}

#[derive(Clone, Debug, Default)]
pub struct CausalBuffer {
    by_origin: BTreeMap<Origin, BTreeMap<u64, Vec<u8>>>,
    /// Missing dependency → origins whose head waits for it.
    blocked: HashMap<FactId, Vec<Origin>>,
    facts: usize,
    bytes: usize,
    limits: BufferLimits,
    evicted: u64,
    peak_facts: usize,
    peak_bytes: usize,
}

impl CausalBuffer {
    pub fn new(limits: BufferLimits) -> Self {
        CausalBuffer { limits, ..Self::default() }
    }

    pub fn limits(&self) -> BufferLimits {
        self.limits
    }

    pub fn len(&self) -> usize {
        self.facts
    }

    pub fn is_empty(&self) -> bool {
        self.facts == 0
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Facts evicted (or refused) so far.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Largest size seen, in facts and bytes.
    pub fn peak(&self) -> (usize, usize) {
        (self.peak_facts, self.peak_bytes)
    }

    /// Stores `origin`'s fact `seq` until it can be delivered.
    pub fn insert(&mut self, origin: Origin, seq: u64, record: &[u8]) -> Inserted {
        if self.by_origin.get(&origin).is_some_and(|q| q.contains_key(&seq)) {
            return Inserted::Duplicate;
        }
        let size = record.len();
        if size > self.limits.max_bytes || self.limits.max_facts == 0 {
            self.evicted += 1;
            return Inserted::Refused;
        }
        let mut evicted = 0;
        while self.facts + 1 > self.limits.max_facts || self.bytes + size > self.limits.max_bytes {
            // the origin with the most waiting (ties: the lowest origin)
            let Some((&victim, _)) = self.by_origin.iter().max_by(|a, b| a.1.len().cmp(&b.1.len()).then(b.0.cmp(a.0))) else {
                break;
            };
            let tail = self.by_origin.get(&victim).and_then(|q| q.last_key_value()).map(|(s, _)| *s);
            let Some(tail) = tail else { break };
            if victim == origin && seq > tail {
                self.evicted += 1 + evicted as u64;
                return Inserted::Refused;
            }
            self.remove(victim, tail);
            evicted += 1;
        }
        self.by_origin.entry(origin).or_default().insert(seq, record.to_vec());
        self.facts += 1;
        self.bytes += size;
        self.peak_facts = self.peak_facts.max(self.facts);
        self.peak_bytes = self.peak_bytes.max(self.bytes);
        self.evicted += evicted as u64;
        Inserted::Stored { evicted }
    }

    fn remove(&mut self, origin: Origin, seq: u64) -> Option<Vec<u8>> {
        let q = self.by_origin.get_mut(&origin)?;
        let r = q.remove(&seq)?;
        if q.is_empty() {
            self.by_origin.remove(&origin);
        }
        self.facts -= 1;
        self.bytes -= r.len();
        Some(r)
    }

    /// Takes `origin`'s fact `seq` if it is waiting here.
    pub fn take(&mut self, origin: Origin, seq: u64) -> Option<Vec<u8>> {
        self.remove(origin, seq)
    }

    /// Puts back a fact taken with [`take`](Self::take) that still cannot be
    /// delivered (no eviction: it was just here).
    pub fn put_back(&mut self, origin: Origin, seq: u64, record: Vec<u8>) {
        self.facts += 1;
        self.bytes += record.len();
        self.by_origin.entry(origin).or_default().insert(seq, record);
    }

    /// Registers that `origin`'s head waits for `missing`.
    pub fn block(&mut self, missing: FactId, origin: Origin) {
        let v = self.blocked.entry(missing).or_default();
        if !v.contains(&origin) {
            v.push(origin);
        }
    }

    /// Origins whose head waited for `id` (now admitted).
    pub fn wake(&mut self, id: &FactId) -> Option<Vec<Origin>> {
        if self.blocked.is_empty() {
            return None;
        }
        self.blocked.remove(id)
    }

    /// Drops every fact of `origin` numbered `<= upto` (after a snapshot
    /// join covered them).
    pub fn drop_upto(&mut self, origin: Origin, upto: u64) {
        let seqs: Vec<u64> = match self.by_origin.get(&origin) {
            Some(q) => q.range(..=upto).map(|(s, _)| *s).collect(),
            None => return,
        };
        for s in seqs {
            self.remove(origin, s);
        }
    }

    /// Origins with facts waiting.
    pub fn origins(&self) -> Vec<Origin> {
        self.by_origin.keys().copied().collect()
    }

    /// Drops everything waiting (not counted as evictions).
    pub fn clear(&mut self) {
        self.by_origin.clear();
        self.blocked.clear();
        self.facts = 0;
        self.bytes = 0;
    }

    /// Forgets every dependency registration (they are rebuilt on the next
    /// delivery attempt).
    pub fn clear_blocked(&mut self) {
        self.blocked.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(n: u64) -> Origin {
        Origin { node: n, epoch: 1 }
    }

    #[test]
    fn bounded_and_evicts_the_tail_of_the_longest_queue() {
        let mut b = CausalBuffer::new(BufferLimits { max_facts: 4, max_bytes: 1000 });
        for s in 2..=4 {
            assert_eq!(b.insert(o(1), s, b"aa"), Inserted::Stored { evicted: 0 });
        }
        assert_eq!(b.insert(o(1), 3, b"aa"), Inserted::Duplicate);
        assert_eq!(b.insert(o(2), 5, b"bb"), Inserted::Stored { evicted: 0 });
        // full: origin 1 has most; its tail (4) goes
        assert_eq!(b.insert(o(2), 6, b"bb"), Inserted::Stored { evicted: 1 });
        assert!(b.take(o(1), 4).is_none());
        assert_eq!(b.len(), 4);
        // now both have 2; ties evict the lowest origin's tail... unless the
        // newcomer would be that tail
        assert_eq!(b.insert(o(1), 9, b"aa"), Inserted::Refused);
        assert_eq!(b.evicted(), 2);
        assert!(b.len() <= 4 && b.bytes() <= 1000);
        b.drop_upto(o(2), 5);
        assert_eq!(b.len(), 3);
    }

    #[test]
    fn byte_limit() {
        let mut b = CausalBuffer::new(BufferLimits { max_facts: 100, max_bytes: 10 });
        assert_eq!(b.insert(o(1), 2, &[0; 11]), Inserted::Refused);
        assert_eq!(b.insert(o(1), 2, &[0; 6]), Inserted::Stored { evicted: 0 });
        assert_eq!(b.insert(o(2), 2, &[0; 6]), Inserted::Stored { evicted: 1 });
        assert!(b.bytes() <= 10);
    }

    #[test]
    fn wake_returns_blocked_origins_once() {
        let mut b = CausalBuffer::new(BufferLimits::default());
        let id = FactId([3; 32]);
        b.block(id, o(1));
        b.block(id, o(1));
        b.block(id, o(2));
        assert_eq!(b.wake(&id), Some(vec![o(1), o(2)]));
        assert_eq!(b.wake(&id), None);
    }
}
