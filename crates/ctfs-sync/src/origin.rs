//! Origins and version vectors.
//!
//! Every fact admitted locally on a replica gets an *origin sequence*: the
//! pair ([`Origin`], n) where the origin is the replica's node id and its
//! *epoch* (one run of the replica: a restart that may have lost volatile
//! facts starts a new epoch) and n counts that origin's facts from 1.
//!
//! Receivers deliver one origin's facts in origin order (a fact waits in the
//! causal buffer until its predecessor from the same origin is admitted), so
//! what a replica holds of each origin is always a prefix `1..=n`. A
//! [`VersionVector`] — one `n` per origin — therefore describes a replica's
//! whole fact set exactly, and the difference between two replicas is
//! computed from their vectors alone: per origin, the facts numbered above
//! the other side's entry. Anti-entropy costs the difference, not the
//! history.

use std::collections::BTreeMap;

use ctfs_core::NodeId;

/// One run of one replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin {
    pub node: NodeId,
    /// Chosen by the caller at start-up; must grow across restarts of the
    /// same node (e.g. a persisted counter, or start time in ms).
    pub epoch: u64,
}

/// Bytes of one encoded vector entry: node u64, epoch u64, seq u64.
pub const ENTRY_LEN: usize = 24;

/// Per origin, how many of its facts (a prefix) this replica holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VersionVector {
    entries: BTreeMap<Origin, u64>,
}

impl VersionVector {
    pub fn new() -> Self {
        Self::default()
    }

    /// Facts of `origin` held (0 when unknown).
    pub fn get(&self, origin: &Origin) -> u64 {
        self.entries.get(origin).copied().unwrap_or(0)
    }

    pub fn set(&mut self, origin: Origin, seq: u64) {
        if seq == 0 {
            self.entries.remove(&origin);
        } else {
            self.entries.insert(origin, seq);
        }
    }

    /// Counts one more fact of `origin`; returns its sequence.
    pub fn advance(&mut self, origin: Origin) -> u64 {
        let e = self.entries.entry(origin).or_insert(0);
        *e += 1;
        *e
    }

    /// Origins with at least one fact, ascending.
    pub fn iter(&self) -> impl Iterator<Item = (Origin, u64)> + '_ {
        self.entries.iter().map(|(o, s)| (*o, *s))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Facts held in total.
    pub fn total(&self) -> u64 {
        self.entries.values().sum()
    }

    /// True when `other` holds everything this vector does.
    pub fn dominated_by(&self, other: &VersionVector) -> bool {
        self.entries.iter().all(|(o, s)| other.get(o) >= *s)
    }

    /// Facts `other` holds that this vector does not.
    pub fn missing_from(&self, other: &VersionVector) -> u64 {
        other.entries.iter().map(|(o, s)| s.saturating_sub(self.get(o))).sum()
    }

    /// `count u32 | count × (node u64, epoch u64, seq u64)`, ascending origins.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for (o, s) in &self.entries {
            out.extend_from_slice(&o.node.to_le_bytes());
            out.extend_from_slice(&o.epoch.to_le_bytes());
            out.extend_from_slice(&s.to_le_bytes());
        }
    }

    pub fn encoded_len(&self) -> usize {
        4 + self.entries.len() * ENTRY_LEN
    }

    /// Decodes a vector and returns the bytes after it. Origins must be
    /// strictly ascending and every seq non-zero; the entry count is checked
    /// against the bytes present before anything is allocated.
    pub fn decode(bytes: &[u8]) -> Result<(VersionVector, &[u8]), &'static str> {
        let (n, mut rest) = split_u32(bytes).ok_or("version vector: truncated count")?;
        let n = n as usize;
        if n.checked_mul(ENTRY_LEN).is_none_or(|len| len > rest.len()) {
            return Err("version vector: more entries than bytes");
        }
        let mut entries = BTreeMap::new();
        let mut last: Option<Origin> = None;
        for _ in 0..n {
            let (node, r) = split_u64(rest).ok_or("version vector: truncated entry")?;
            let (epoch, r) = split_u64(r).ok_or("version vector: truncated entry")?;
            let (seq, r) = split_u64(r).ok_or("version vector: truncated entry")?;
            rest = r;
            let o = Origin { node, epoch };
            if last.is_some_and(|l| o <= l) {
                return Err("version vector: origins not strictly ascending");
            }
            if seq == 0 {
                return Err("version vector: zero entry");
            }
            last = Some(o);
            entries.insert(o, seq);
        }
        Ok((VersionVector { entries }, rest))
    }
}

pub(crate) fn split_u64(b: &[u8]) -> Option<(u64, &[u8])> {
    let (h, r) = b.split_at_checked(8)?;
    Some((u64::from_le_bytes(h.try_into().ok()?), r))
}

pub(crate) fn split_u32(b: &[u8]) -> Option<(u32, &[u8])> {
    let (h, r) = b.split_at_checked(4)?;
    Some((u32::from_le_bytes(h.try_into().ok()?), r))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn o(node: u64, epoch: u64) -> Origin {
        Origin { node, epoch }
    }

    #[test]
    fn dominance_and_difference() {
        let mut a = VersionVector::new();
        let mut b = VersionVector::new();
        a.set(o(1, 1), 5);
        b.set(o(1, 1), 7);
        b.set(o(2, 1), 3);
        assert!(a.dominated_by(&b));
        assert!(!b.dominated_by(&a));
        assert_eq!(a.missing_from(&b), 5);
        assert_eq!(b.missing_from(&a), 0);
        assert_eq!(a.advance(o(1, 1)), 6);
        assert_eq!(b.total(), 10);
    }

    #[test]
    fn decode_refuses_garbage_without_allocating() {
        assert!(VersionVector::decode(&[]).is_err());
        assert!(VersionVector::decode(&u32::MAX.to_le_bytes()).is_err());
        let mut v = VersionVector::new();
        v.set(o(2, 1), 1);
        v.set(o(1, 9), 4);
        let mut bytes = Vec::new();
        v.encode(&mut bytes);
        // swap the two entries: not ascending
        let mut swapped = bytes.clone();
        swapped[4..28].copy_from_slice(&bytes[28..52]);
        swapped[28..52].copy_from_slice(&bytes[4..28]);
        assert!(VersionVector::decode(&swapped).is_err());
        let mut zero = bytes.clone();
        zero[20..28].fill(0);
        assert!(VersionVector::decode(&zero).is_err());
    }

    proptest! {
        #[test]
        fn round_trip(entries in proptest::collection::btree_map((0u64..5, 0u64..3), 1u64..1000, 0..10), tail in proptest::collection::vec(any::<u8>(), 0..8)) {
            let mut v = VersionVector::new();
            for ((n, e), s) in entries {
                v.set(o(n, e), s);
            }
            let mut bytes = Vec::new();
            v.encode(&mut bytes);
            prop_assert_eq!(bytes.len(), v.encoded_len());
            bytes.extend_from_slice(&tail);
            let (d, rest) = VersionVector::decode(&bytes).unwrap();
            prop_assert_eq!(d, v);
            prop_assert_eq!(rest, &tail[..]);
        }
    }
}
