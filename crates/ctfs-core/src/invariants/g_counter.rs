//! Grow-only counters: [`GCounter`] (unbounded) and [`BoundedGCounter`].
//!
//! **Payload** (both): exactly 8 bytes, the increment as u64 little-endian.
//! Any other length is [`InvariantError::MalformedPayload`]. An increment of
//! 0 is admitted and changes nothing: it is the monoid's identity, and
//! refusing it would buy nothing (the state is the same either way).
//!
//! # GCounter
//!
//! **State**: `sum: u128 @0`, 48 zero bytes @16.
//!
//! **Class**: [`AlgebraicClass::CommutativeMonoid`], coordination none. The
//! only refusal is u128 overflow (a [`InvariantError::Violation`]; the sum is
//! never wrapped). Increments are non-negative, so every partial sum is at
//! most the total: if the total of a fact set fits in u128, every order
//! admits every fact. Reaching the limit takes more than 2^64 maximal
//! increments, so in practice the counter never refuses.
//!
//! # BoundedGCounter
//!
//! **State**: `sum: u128 @0`, `bound: u128 @16`, 32 zero bytes @32.
//!
//! **Refusal**: `sum + increment > bound` is a [`InvariantError::Violation`]
//! and leaves the state unchanged.
//!
//! **Class**: [`AlgebraicClass::Bounded`], coordination **escrow**. While the
//! total of *all* replicas' increments stays within the bound, the counter is
//! as coordination-free as a GCounter (the same facts in any order give the
//! same bytes). But no replica can see the others' pending increments: with
//! bound 10, replica A admits +6 and replica B admits +7, each valid locally;
//! when they exchange facts each refuses the other's, and they end in
//! different states (6 and 7) that no exchange will reconcile. Escrow fixes
//! this by splitting the remaining headroom `bound − sum` into per-replica
//! quotas that each replica spends locally without asking anyone.

use crate::fact::Fact;
use crate::invariant::{AlgebraicClass, CellInvariant, InvariantError};
use crate::invariants::{exact_payload, set_u128, u128_at, violation};
use crate::state::StateCell;

pub const SUM: usize = 0;
pub const BOUND: usize = 16;
pub const PAYLOAD_LEN: usize = 8;

#[inline(always)]
fn increment(payload: &[u8], name: &str) -> Result<u64, InvariantError> {
    Ok(u64::from_le_bytes(exact_payload::<PAYLOAD_LEN>(payload, name, "u64 increment")?))
}

/// Grow-only counter without a bound.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GCounter {
    pub initial: u128,
}

impl GCounter {
    pub fn new(initial: u128) -> Self {
        GCounter { initial }
    }

    pub fn payload(increment: u64) -> [u8; 8] {
        increment.to_le_bytes()
    }

    pub fn read(cell: &StateCell) -> u128 {
        u128_at(cell, SUM)
    }
}

impl CellInvariant for GCounter {
    fn name(&self) -> &str {
        "gCounter"
    }

    fn class(&self) -> AlgebraicClass {
        AlgebraicClass::CommutativeMonoid
    }

    fn initial_cell(&self) -> StateCell {
        let mut c = StateCell::zeroed();
        set_u128(&mut c, SUM, self.initial);
        c
    }

    #[inline(always)]
    fn apply(&self, fact: &Fact<'_>, cell: &mut StateCell) -> Result<(), InvariantError> {
        let inc = increment(fact.payload, "gCounter")?;
        let sum = u128_at(cell, SUM);
        let next = sum
            .checked_add(inc as u128)
            .ok_or_else(|| violation(format!("gCounter sum {sum} + {inc} overflows u128")))?;
        set_u128(cell, SUM, next);
        Ok(())
    }
}

/// Grow-only counter that may not exceed `bound`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoundedGCounter {
    pub initial: u128,
    pub bound: u128,
}

/// A decoded BoundedGCounter state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoundedState {
    pub sum: u128,
    pub bound: u128,
}

impl BoundedGCounter {
    /// Starts at 0; any bound (0 admits only zero increments).
    pub fn new(bound: u128) -> Self {
        BoundedGCounter { initial: 0, bound }
    }

    /// Fails unless `initial <= bound`.
    pub fn with_initial(initial: u128, bound: u128) -> Result<Self, String> {
        if initial > bound {
            return Err(format!("boundedGCounter initial value {initial} exceeds its bound {bound}"));
        }
        Ok(BoundedGCounter { initial, bound })
    }

    pub fn payload(increment: u64) -> [u8; 8] {
        increment.to_le_bytes()
    }

    pub fn read(cell: &StateCell) -> BoundedState {
        BoundedState { sum: u128_at(cell, SUM), bound: u128_at(cell, BOUND) }
    }
}

impl CellInvariant for BoundedGCounter {
    fn name(&self) -> &str {
        "boundedGCounter"
    }

    fn class(&self) -> AlgebraicClass {
        AlgebraicClass::Bounded
    }

    fn initial_cell(&self) -> StateCell {
        let mut c = StateCell::zeroed();
        set_u128(&mut c, SUM, self.initial);
        set_u128(&mut c, BOUND, self.bound);
        c
    }

    /// Replicated merge: the bound was enforced by the origin's escrow quota.
    fn apply_merge(&self, fact: &Fact<'_>, cell: &mut StateCell) -> Result<(), InvariantError> {
        let inc = increment(fact.payload, "boundedGCounter")?;
        let sum = u128_at(cell, SUM);
        let next = sum
            .checked_add(inc as u128)
            .ok_or_else(|| violation(format!("boundedGCounter sum {sum} + {inc} overflows u128")))?;
        set_u128(cell, SUM, next);
        Ok(())
    }

    #[inline(always)]
    fn apply(&self, fact: &Fact<'_>, cell: &mut StateCell) -> Result<(), InvariantError> {
        let inc = increment(fact.payload, "boundedGCounter")?;
        let (sum, bound) = (u128_at(cell, SUM), u128_at(cell, BOUND));
        match sum.checked_add(inc as u128) {
            Some(next) if next <= bound => {
                set_u128(cell, SUM, next);
                Ok(())
            }
            _ => Err(violation(format!("boundedGCounter sum {sum} + {inc} would exceed the bound {bound}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invariant::{Coordination, Invariant};
    use crate::invariants::testkit::{fact, run, shuffle, OwnedFact, Replica};
    use proptest::prelude::*;

    #[test]
    fn gcounter_layout_and_identity() {
        let inv = GCounter::new(5);
        let s = inv.initial_state();
        let s1 = inv.check(&fact(&GCounter::payload(0x0102)), &s).unwrap();
        assert_eq!(GCounter::read(&s1), 0x0107);
        assert_eq!(&s1.0[..3], &[7, 1, 0]);
        assert_eq!(&s1.0[16..], &[0; 48]);
        assert_eq!(inv.check(&fact(&GCounter::payload(0)), &s1).unwrap(), s1);
        assert_eq!(inv.coordination(), Coordination::None);
        assert_eq!(CellInvariant::class(&inv), AlgebraicClass::CommutativeMonoid);
    }

    #[test]
    fn gcounter_refuses_overflow_and_malformed() {
        let inv = GCounter::new(u128::MAX - 1);
        let s = inv.initial_state();
        assert_eq!(GCounter::read(&inv.check(&fact(&GCounter::payload(1)), &s).unwrap()), u128::MAX);
        assert!(matches!(inv.check(&fact(&GCounter::payload(2)), &s), Err(InvariantError::Violation(_))));
        for bad in [&[][..], &[1; 7][..], &[1; 9][..], &[1; 16][..]] {
            assert!(matches!(inv.check(&fact(bad), &s), Err(InvariantError::MalformedPayload(_))));
        }
        assert_eq!(GCounter::read(&s), u128::MAX - 1);
    }

    #[test]
    fn bounded_refuses_beyond_bound_unchanged() {
        let inv = BoundedGCounter::with_initial(2, 10).unwrap();
        let s = inv.initial_state();
        assert_eq!(BoundedGCounter::read(&s), BoundedState { sum: 2, bound: 10 });
        assert_eq!(u128_at(&s, BOUND), 10);
        let s8 = inv.check(&fact(&BoundedGCounter::payload(8)), &s).unwrap();
        assert_eq!(BoundedGCounter::read(&s8).sum, 10);
        assert!(matches!(inv.check(&fact(&BoundedGCounter::payload(1)), &s8), Err(InvariantError::Violation(_))));
        assert!(matches!(inv.check(&fact(&BoundedGCounter::payload(9)), &s), Err(InvariantError::Violation(_))));
        assert!(matches!(inv.check(&fact(&[0; 3]), &s), Err(InvariantError::MalformedPayload(_))));
        assert_eq!(inv.check(&fact(&BoundedGCounter::payload(0)), &s8).unwrap(), s8);
        // Overflow near u128::MAX is a refusal, not a wrap.
        let big = BoundedGCounter::with_initial(u128::MAX - 1, u128::MAX).unwrap();
        assert!(big.check(&fact(&BoundedGCounter::payload(5)), &big.initial_state()).is_err());
        assert!(BoundedGCounter::with_initial(11, 10).unwrap_err().contains("exceeds its bound"));
        assert_eq!(inv.coordination(), Coordination::Escrow);
    }

    /// Why a bounded counter needs escrow: two replicas each admit a locally
    /// valid increment; the union of their facts is not admissible, and after
    /// exchanging facts they stay apart forever.
    #[test]
    fn bounded_two_replica_counterexample() {
        let inv = BoundedGCounter::new(10);
        let a = OwnedFact::new(1, BoundedGCounter::payload(6));
        let b = OwnedFact::new(2, BoundedGCounter::payload(7));
        let mut ra = Replica::new(&inv);
        let mut rb = Replica::new(&inv);
        ra.admit(&a).unwrap();
        rb.admit(&b).unwrap();
        // Exchange.
        assert!(matches!(ra.admit(&b), Err(InvariantError::Violation(_))));
        assert!(matches!(rb.admit(&a), Err(InvariantError::Violation(_))));
        assert_ne!(ra.state, rb.state);
        assert_ne!(ra.admitted, rb.admitted);
        // The union is inadmissible in every order.
        for order in [[&a, &b], [&b, &a]] {
            let mut r = Replica::new(&inv);
            for f in order {
                let _ = r.admit(f);
            }
            assert_eq!(r.admitted.len(), 1);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn gcounter_permutations_agree(incs in prop::collection::vec(any::<u64>(), 0..40), seed in any::<u64>()) {
            let inv = GCounter::default();
            let mut facts: Vec<OwnedFact> = incs.iter().enumerate().map(|(i, v)| OwnedFact::new(i as u64, GCounter::payload(*v))).collect();
            let a = run(&inv, &facts);
            shuffle(&mut facts, seed);
            prop_assert_eq!(a, run(&inv, &facts));
            prop_assert_eq!(GCounter::read(&a), incs.iter().map(|v| *v as u128).sum::<u128>());
        }

        /// Within the bound the bounded counter is order-independent too.
        #[test]
        fn bounded_within_bound_permutations_agree(incs in prop::collection::vec(0u64..1000, 0..40), seed in any::<u64>()) {
            let total: u128 = incs.iter().map(|v| *v as u128).sum();
            let inv = BoundedGCounter::new(total);
            let mut facts: Vec<OwnedFact> = incs.iter().enumerate().map(|(i, v)| OwnedFact::new(i as u64, BoundedGCounter::payload(*v))).collect();
            let mut r = Replica::new(&inv);
            r.admit_all(&facts);
            prop_assert!(r.refused.is_empty());
            shuffle(&mut facts, seed);
            prop_assert_eq!(r.state, run(&inv, &facts));
        }
    }
}
