//! Lww: a last-writer-wins register holding up to 16 bytes.
//!
//! **Payload**: `timestamp: u64` little-endian, followed by the value, 0 to 16
//! bytes (so the payload is 8..=24 bytes; anything else is
//! [`InvariantError::MalformedPayload`]). The value's length is the rest of
//! the payload, so `"ab"` and `"ab\0"` are different values. The timestamp is
//! a logical value chosen by the writer (a Lamport clock, a version number,
//! a hybrid logical clock) — the invariant never reads a wall clock, and it
//! trusts the timestamp: a writer that sends `u64::MAX` wins until another
//! `u64::MAX` with a lower id arrives.
//!
//! **State** (64 bytes): `timestamp: u64 @0`, `winner: [u8; 32] @8` (id of the
//! winning fact), `value: [u8; 16] @40` (zero-padded), `value_len: u8 @56`,
//! `written: u8 @57` (0 until the first write, then 1), 6 zero bytes @58.
//!
//! **Merge rule**: a write replaces the register when the register was never
//! written, or its timestamp is higher, or the timestamps are equal and its
//! fact id is lower ([`compare_fact_ids`]: bytewise, the lowest id wins, the
//! crate-wide conflict rule). Should two writes carry the same timestamp and
//! the same id (impossible inside one kernel, which refuses duplicate ids),
//! the shorter, then bytewise lower, value wins — so the order is total and
//! the outcome never depends on arrival.
//!
//! **Class**: [`AlgebraicClass::LastWriterWins`], coordination none: the state
//! is the maximum of the writes under a total order, so any permutation of the
//! same facts gives identical bytes. **Refusals**: none for a well-formed
//! payload; a losing write is admitted and changes nothing.

use std::cmp::Ordering;

use crate::conflict::compare_fact_ids;
use crate::fact::{Fact, FactId};
use crate::invariant::{AlgebraicClass, CellInvariant, InvariantError};
use crate::state::StateCell;

pub const TIMESTAMP: usize = 0;
pub const WINNER: usize = 8;
pub const VALUE: usize = 40;
pub const VALUE_LEN: usize = 56;
pub const WRITTEN: usize = 57;
pub const MAX_VALUE: usize = 16;
pub const MIN_PAYLOAD: usize = 8;
pub const MAX_PAYLOAD: usize = MIN_PAYLOAD + MAX_VALUE;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lww;

/// A decoded register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LwwState {
    pub timestamp: u64,
    pub winner: FactId,
    value: [u8; MAX_VALUE],
    len: u8,
}

impl LwwState {
    pub fn value(&self) -> &[u8] {
        &self.value[..self.len as usize]
    }
}

impl Lww {
    pub fn new() -> Self {
        Lww
    }

    /// Encodes a write; `None` if the value is longer than 16 bytes.
    pub fn payload(timestamp: u64, value: &[u8]) -> Option<Vec<u8>> {
        if value.len() > MAX_VALUE {
            return None;
        }
        let mut p = Vec::with_capacity(MIN_PAYLOAD + value.len());
        p.extend_from_slice(&timestamp.to_le_bytes());
        p.extend_from_slice(value);
        Some(p)
    }

    /// The register, or `None` if it was never written.
    pub fn read(cell: &StateCell) -> Option<LwwState> {
        if cell.0[WRITTEN] == 0 {
            return None;
        }
        let mut winner = [0u8; 32];
        winner.copy_from_slice(&cell.0[WINNER..WINNER + 32]);
        let mut value = [0u8; MAX_VALUE];
        value.copy_from_slice(&cell.0[VALUE..VALUE + MAX_VALUE]);
        Some(LwwState { timestamp: cell.u64_at(TIMESTAMP), winner: FactId(winner), value, len: cell.0[VALUE_LEN] })
    }
}

impl CellInvariant for Lww {
    fn name(&self) -> &str {
        "lww"
    }

    fn class(&self) -> AlgebraicClass {
        AlgebraicClass::LastWriterWins
    }

    fn initial_cell(&self) -> StateCell {
        StateCell::zeroed()
    }

    #[inline(always)]
    fn apply(&self, fact: &Fact<'_>, cell: &mut StateCell) -> Result<(), InvariantError> {
        let p = fact.payload;
        if p.len() < MIN_PAYLOAD || p.len() > MAX_PAYLOAD {
            return Err(InvariantError::MalformedPayload(std::borrow::Cow::Owned(format!(
                "lww expects a u64 timestamp followed by at most {MAX_VALUE} value bytes (8..=24 bytes), got {} bytes",
                p.len()
            ))));
        }
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&p[..8]);
        let ts = u64::from_le_bytes(ts);
        let value = &p[8..];

        let wins = cell.0[WRITTEN] == 0 || {
            let cur_ts = cell.u64_at(TIMESTAMP);
            let cur_id: &[u8; 32] = cell.0[WINNER..WINNER + 32].try_into().expect("32 bytes");
            let cur_len = cell.0[VALUE_LEN] as usize;
            let cur_value = &cell.0[VALUE..VALUE + cur_len];
            ts.cmp(&cur_ts)
                .reverse()
                .then_with(|| compare_fact_ids(fact.id, &FactId(*cur_id)))
                .then_with(|| value.len().cmp(&cur_len))
                .then_with(|| value.cmp(cur_value))
                == Ordering::Less
        };
        if wins {
            cell.set_u64(TIMESTAMP, ts);
            cell.0[WINNER..WINNER + 32].copy_from_slice(&fact.id.0);
            cell.0[VALUE..VALUE + MAX_VALUE].fill(0);
            cell.0[VALUE..VALUE + value.len()].copy_from_slice(value);
            cell.0[VALUE_LEN] = value.len() as u8;
            cell.0[WRITTEN] = 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invariant::{Coordination, Invariant};
    use crate::invariants::testkit::{run, shuffle, OwnedFact};
    use proptest::prelude::*;

    fn w(id: u8, ts: u64, v: &[u8]) -> OwnedFact {
        OwnedFact { id: FactId([id; 32]), payload: Lww::payload(ts, v).unwrap() }
    }

    fn apply(facts: &[OwnedFact]) -> StateCell {
        run(&Lww, facts)
    }

    #[test]
    fn layout() {
        let s = apply(&[w(9, 0x0102, b"hello")]);
        assert_eq!(&s.0[..8], &[2, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&s.0[8..40], &[9; 32]);
        assert_eq!(&s.0[40..45], b"hello");
        assert_eq!(&s.0[45..56], &[0; 11]);
        assert_eq!((s.0[56], s.0[57]), (5, 1));
        assert_eq!(&s.0[58..], &[0; 6]);
        let r = Lww::read(&s).unwrap();
        assert_eq!((r.timestamp, r.winner, r.value()), (0x0102, FactId([9; 32]), &b"hello"[..]));
        assert_eq!(Lww::read(&Lww.initial_state()), None);
    }

    #[test]
    fn higher_timestamp_then_lowest_id_wins() {
        // Higher timestamp wins regardless of id.
        let s = apply(&[w(1, 5, b"old"), w(9, 6, b"new")]);
        assert_eq!(Lww::read(&s).unwrap().value(), b"new");
        let s = apply(&[w(9, 6, b"new"), w(1, 5, b"old")]);
        assert_eq!(Lww::read(&s).unwrap().value(), b"new");
        // Equal timestamps: lowest id wins.
        let s = apply(&[w(7, 5, b"seven"), w(3, 5, b"three")]);
        assert_eq!(Lww::read(&s).unwrap().value(), b"three");
        let s2 = apply(&[w(3, 5, b"three"), w(7, 5, b"seven")]);
        assert_eq!(s, s2);
        // Timestamp 0 and an all-zero id still beat the unwritten register.
        let s = apply(&[w(0, 0, b"")]);
        assert_eq!(Lww::read(&s).unwrap().value(), b"");
        assert_eq!(s.0[WRITTEN], 1);
        // A shorter value overwrites a longer one completely.
        let s = apply(&[w(1, 1, b"0123456789abcdef"), w(1, 2, b"x")]);
        assert_eq!(Lww::read(&s).unwrap().value(), b"x");
        assert_eq!(&s.0[41..56], &[0; 15]);
    }

    #[test]
    fn malformed_is_refused_unchanged() {
        let s = apply(&[w(1, 1, b"v")]);
        let id = FactId([0; 32]);
        for len in [0, 1, 7, 25, 64] {
            let p = vec![0xff; len];
            let e = Lww.check(&Fact { id: &id, deps: &[], payload: &p }, &s);
            assert!(matches!(e, Err(InvariantError::MalformedPayload(_))), "len {len}");
        }
        assert!(Lww::payload(0, &[0; 17]).is_none());
        assert_eq!(Lww.coordination(), Coordination::None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Any permutation gives identical bytes; the winner is the maximum
        /// under (timestamp desc, id asc). Small timestamps force ties.
        #[test]
        fn permutations_agree(writes in prop::collection::vec((0u64..4, prop::collection::vec(any::<u8>(), 0..=16)), 1..30), seed in any::<u64>()) {
            let mut facts: Vec<OwnedFact> = writes.iter().enumerate()
                .map(|(i, (ts, v))| OwnedFact { id: crate::invariants::testkit::id(i as u64), payload: Lww::payload(*ts, v).unwrap() })
                .collect();
            let a = apply(&facts);
            let best = facts.iter().zip(&writes).max_by(|(fa, (ta, _)), (fb, (tb, _))| ta.cmp(tb).then(fb.id.0.cmp(&fa.id.0))).unwrap();
            let r = Lww::read(&a).unwrap();
            prop_assert_eq!(r.winner, best.0.id);
            prop_assert_eq!(r.value(), &best.1 .1[..]);
            shuffle(&mut facts, seed);
            prop_assert_eq!(a, apply(&facts));
        }
    }
}
