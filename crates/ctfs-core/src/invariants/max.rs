//! Max: the largest i128 ever proposed (a join-semilattice register).
//!
//! **Payload**: exactly 16 bytes, the proposed value as i128 little-endian.
//! Any other length is [`InvariantError::MalformedPayload`].
//!
//! **State** (64 bytes, little-endian): `max: i128 @0` (the current maximum),
//! `floor: i128 @16` (the declared initial value, constant), 32 zero bytes @32.
//! Nothing about *how* the maximum was reached is kept (no fact count, no
//! winner id), so the state is a function of the set of values alone.
//!
//! **Class**: [`AlgebraicClass::Semilattice`] — `max` is commutative,
//! associative and idempotent, so any order of the same facts, with or
//! without repeated values, gives byte-identical state. **Coordination**: none.
//!
//! **Refusals**: none for a well-formed payload. A value at or below the
//! current maximum is admitted and changes nothing (the fact is still
//! recorded by the kernel; the join absorbed it).

use crate::fact::Fact;
use crate::invariant::{AlgebraicClass, CellInvariant, InvariantError};
use crate::invariants::exact_payload;
use crate::state::StateCell;

pub const MAX: usize = 0;
pub const FLOOR: usize = 16;
pub const PAYLOAD_LEN: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Max {
    /// The value before any fact (the semilattice's bottom for this register).
    pub initial: i128,
}

impl Max {
    pub fn new(initial: i128) -> Self {
        Max { initial }
    }

    pub fn payload(value: i128) -> [u8; 16] {
        value.to_le_bytes()
    }

    /// The current maximum.
    pub fn read(cell: &StateCell) -> i128 {
        cell.i128_at(MAX)
    }
}

impl Default for Max {
    /// Starts at `i128::MIN`, the true bottom.
    fn default() -> Self {
        Max { initial: i128::MIN }
    }
}

impl CellInvariant for Max {
    fn name(&self) -> &str {
        "max"
    }

    fn class(&self) -> AlgebraicClass {
        AlgebraicClass::Semilattice
    }

    fn initial_cell(&self) -> StateCell {
        let mut c = StateCell::zeroed();
        c.set_i128(MAX, self.initial);
        c.set_i128(FLOOR, self.initial);
        c
    }

    #[inline(always)]
    fn apply(&self, fact: &Fact<'_>, cell: &mut StateCell) -> Result<(), InvariantError> {
        let v = i128::from_le_bytes(exact_payload::<PAYLOAD_LEN>(fact.payload, "max", "i128 value")?);
        if v > cell.i128_at(MAX) {
            cell.set_i128(MAX, v);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invariant::Invariant;
    use crate::invariants::testkit::{fact, run, shuffle, OwnedFact};
    use proptest::prelude::*;

    #[test]
    fn layout_and_join() {
        let inv = Max::new(-5);
        let s0 = inv.initial_state();
        assert_eq!(s0.i128_at(MAX), -5);
        assert_eq!(s0.i128_at(FLOOR), -5);
        let s1 = inv.check(&fact(&Max::payload(7)), &s0).unwrap();
        assert_eq!(Max::read(&s1), 7);
        assert_eq!(s1.0[0], 7);
        // Lower value: admitted, no change.
        let s2 = inv.check(&fact(&Max::payload(3)), &s1).unwrap();
        assert_eq!(s2, s1);
        // Same value again: idempotent.
        assert_eq!(inv.check(&fact(&Max::payload(7)), &s1).unwrap(), s1);
        assert_eq!(&s2.0[32..], &[0; 32]);
    }

    #[test]
    fn extremes_and_malformed() {
        let inv = Max::default();
        let s = inv.initial_state();
        assert_eq!(Max::read(&s), i128::MIN);
        assert_eq!(Max::read(&inv.check(&fact(&Max::payload(i128::MAX)), &s).unwrap()), i128::MAX);
        for bad in [&[][..], &[0; 15][..], &[0; 17][..], &[0; 8][..]] {
            assert!(matches!(inv.check(&fact(bad), &s), Err(InvariantError::MalformedPayload(_))));
        }
        assert_eq!(CellInvariant::class(&inv), AlgebraicClass::Semilattice);
        assert_eq!(inv.coordination(), crate::invariant::Coordination::None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Any order, with duplicated values, gives the same bytes: the max.
        #[test]
        fn permutations_and_duplicates_agree(values in prop::collection::vec(any::<i128>(), 0..40), dups in prop::collection::vec(any::<prop::sample::Index>(), 0..10), seed in any::<u64>()) {
            let inv = Max::new(0);
            let mut vals = values.clone();
            if !values.is_empty() {
                for d in &dups { vals.push(values[d.index(values.len())]); }
            }
            let facts: Vec<OwnedFact> = values.iter().enumerate().map(|(i, v)| OwnedFact::new(i as u64, Max::payload(*v))).collect();
            let mut more: Vec<OwnedFact> = vals.iter().enumerate().map(|(i, v)| OwnedFact::new(1000 + i as u64, Max::payload(*v))).collect();
            shuffle(&mut more, seed);
            let a = run(&inv, &facts);
            prop_assert_eq!(a, run(&inv, &more));
            prop_assert_eq!(Max::read(&a), values.iter().copied().chain([0]).max().unwrap());
        }
    }
}
