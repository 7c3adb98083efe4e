//! TotalSupply: conservation of an i128 balance within `[min, max]`.
//!
//! **State** (64 bytes, little-endian): `balance: i128 @0`, `min: i128 @16`,
//! `max: i128 @32`, 16 zero bytes @48.
//!
//! **Payload**: exactly 16 bytes, the signed delta as i128 little-endian.
//!
//! **Class**: with `min = i128::MIN` and `max = i128::MAX` the deltas form an
//! abelian group — coordination-free (the only refusal is i128 overflow,
//! which needs a balance beyond ±1.7·10^38). With any finite bound the class is
//! [`AlgebraicClass::Bounded`]: from balance 0 with `min = 0`, replica A
//! admitting `+10, −10` and replica B admitting `−10` (refused) then `+10`
//! end in different states. Replicated use goes through escrow. (The
//! reference labels this invariant "Group" regardless, and wraps on overflow.)

use std::borrow::Cow;

use crate::fact::Fact;
use crate::invariant::{AlgebraicClass, CellInvariant, InvariantError};
use crate::state::StateCell;

pub const BALANCE: usize = 0;
pub const MIN: usize = 16;
pub const MAX: usize = 32;
pub const PAYLOAD_LEN: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TotalSupply {
    pub initial: i128,
    pub min: i128,
    pub max: i128,
}

/// A decoded TotalSupply state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SupplyState {
    pub balance: i128,
    pub min: i128,
    pub max: i128,
}

impl TotalSupply {
    /// Fails unless `min <= initial <= max`.
    pub fn new(initial: i128, min: i128, max: i128) -> Result<Self, String> {
        if min > max {
            return Err(format!("min ({min}) is greater than max ({max})"));
        }
        if initial < min || initial > max {
            return Err(format!("initial balance {initial} is outside [{min}, {max}]"));
        }
        Ok(TotalSupply { initial, min, max })
    }

    pub fn unbounded(initial: i128) -> Self {
        TotalSupply { initial, min: i128::MIN, max: i128::MAX }
    }

    pub fn is_bounded(&self) -> bool {
        self.min != i128::MIN || self.max != i128::MAX
    }

    pub fn payload(delta: i128) -> [u8; 16] {
        delta.to_le_bytes()
    }

    pub fn read(cell: &StateCell) -> SupplyState {
        SupplyState { balance: cell.i128_at(BALANCE), min: cell.i128_at(MIN), max: cell.i128_at(MAX) }
    }
}

impl CellInvariant for TotalSupply {
    fn name(&self) -> &str {
        "totalSupply"
    }

    fn class(&self) -> AlgebraicClass {
        if self.is_bounded() { AlgebraicClass::Bounded } else { AlgebraicClass::Group }
    }

    fn initial_cell(&self) -> StateCell {
        let mut c = StateCell::zeroed();
        c.set_i128(BALANCE, self.initial);
        c.set_i128(MIN, self.min);
        c.set_i128(MAX, self.max);
        c
    }

    #[inline(always)]
    fn apply(&self, fact: &Fact<'_>, cell: &mut StateCell) -> Result<(), InvariantError> {
        self.apply_bounded(fact, cell, true)
    }

    /// Replicated merge: the escrowed bounds were enforced by the origin's quota.
    fn apply_merge(&self, fact: &Fact<'_>, cell: &mut StateCell) -> Result<(), InvariantError> {
        self.apply_bounded(fact, cell, false)
    }
}

impl TotalSupply {
    #[inline(always)]
    fn apply_bounded(&self, fact: &Fact<'_>, cell: &mut StateCell, enforce: bool) -> Result<(), InvariantError> {
        let raw: [u8; 16] = fact.payload.try_into().map_err(|_| {
            InvariantError::MalformedPayload(Cow::Owned(format!(
                "totalSupply expects a 16-byte i128 delta, got {} bytes",
                fact.payload.len()
            )))
        })?;
        let delta = i128::from_le_bytes(raw);
        let balance = cell.i128_at(BALANCE);
        let (min, max) = (cell.i128_at(MIN), cell.i128_at(MAX));
        let next = balance.checked_add(delta).ok_or_else(|| {
            InvariantError::Violation(Cow::Owned(format!("balance {balance} + {delta} overflows i128")))
        })?;
        if enforce && next < min {
            return Err(InvariantError::Violation(Cow::Owned(format!(
                "balance {balance} + ({delta}) = {next} would fall below min {min}"
            ))));
        }
        if enforce && next > max {
            return Err(InvariantError::Violation(Cow::Owned(format!(
                "balance {balance} + {delta} = {next} would exceed max {max}"
            ))));
        }
        cell.set_i128(BALANCE, next);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fact::FactId;
    use crate::invariant::Invariant;
    use proptest::prelude::*;

    fn fact(payload: &[u8]) -> Fact<'_> {
        static ID: FactId = FactId([0; 32]);
        Fact { id: &ID, deps: &[], payload }
    }

    #[test]
    fn applies_within_bounds() {
        let inv = TotalSupply::new(1000, 0, 1_000_000).unwrap();
        let mut s = inv.initial_state();
        let e = inv.check(&fact(&TotalSupply::payload(500)), &s).unwrap();
        inv.commit(e, &mut s);
        assert_eq!(TotalSupply::read(&s), SupplyState { balance: 1500, min: 0, max: 1_000_000 });
    }

    #[test]
    fn refuses_breaking_bounds_without_change() {
        let inv = TotalSupply::new(10, 0, 100).unwrap();
        let s = inv.initial_state();
        assert!(matches!(inv.check(&fact(&TotalSupply::payload(-11)), &s), Err(InvariantError::Violation(_))));
        assert!(matches!(inv.check(&fact(&TotalSupply::payload(91)), &s), Err(InvariantError::Violation(_))));
        assert!(matches!(inv.check(&fact(&[1, 2, 3]), &s), Err(InvariantError::MalformedPayload(_))));
        assert_eq!(TotalSupply::read(&s).balance, 10);
    }

    #[test]
    fn overflow_is_refused_not_wrapped() {
        let inv = TotalSupply::unbounded(i128::MAX - 1);
        let s = inv.initial_state();
        assert!(inv.check(&fact(&TotalSupply::payload(2)), &s).is_err());
    }

    #[test]
    fn class_follows_bounds() {
        assert_eq!(CellInvariant::class(&TotalSupply::unbounded(0)), AlgebraicClass::Group);
        assert_eq!(CellInvariant::class(&TotalSupply::new(0, 0, 10).unwrap()), AlgebraicClass::Bounded);
        assert!(TotalSupply::new(5, 6, 10).is_err());
        assert!(TotalSupply::new(0, 10, 5).is_err());
    }

    #[test]
    fn bounded_is_order_dependent() {
        // The counterexample that makes a bounded supply need escrow.
        let inv = TotalSupply::new(0, 0, 100).unwrap();
        let run = |deltas: &[i128]| {
            let mut s = inv.initial_state();
            for d in deltas {
                if let Ok(e) = inv.check(&fact(&TotalSupply::payload(*d)), &s) {
                    inv.commit(e, &mut s);
                }
            }
            s
        };
        assert_ne!(run(&[10, -10]), run(&[-10, 10]));
    }

    /// Why a bounded supply needs escrow: from balance 10 with min 0, replicas
    /// A and B each admit a locally valid withdrawal of 6; after exchanging
    /// facts each refuses the other's, and the union of their facts (−12) is
    /// admissible in no order.
    #[test]
    fn bounded_two_replica_counterexample() {
        use crate::invariants::testkit::{OwnedFact, Replica};
        let inv = TotalSupply::new(10, 0, 100).unwrap();
        let (a, b) = (OwnedFact::new(1, TotalSupply::payload(-6)), OwnedFact::new(2, TotalSupply::payload(-6)));
        let mut ra = Replica::new(&inv);
        let mut rb = Replica::new(&inv);
        ra.admit(&a).unwrap();
        rb.admit(&b).unwrap();
        assert!(matches!(ra.admit(&b), Err(InvariantError::Violation(_))));
        assert!(matches!(rb.admit(&a), Err(InvariantError::Violation(_))));
        // Same balance, different facts: the replicas disagree on history.
        assert_eq!(ra.state, rb.state);
        assert_ne!(ra.admitted, rb.admitted);
        // With different amounts the states differ too.
        let c = OwnedFact::new(3, TotalSupply::payload(-7));
        let mut rc = Replica::new(&inv);
        rc.admit(&c).unwrap();
        assert!(rc.admit(&a).is_err() && ra.admit(&c).is_err());
        assert_ne!(ra.state, rc.state);
        assert_eq!(inv.coordination(), crate::invariant::Coordination::Escrow);
    }

    proptest! {
        /// Unbounded supply: any order of the same deltas gives identical bytes.
        #[test]
        fn unbounded_commutes(mut deltas in prop::collection::vec(-1_000_000_000i128..1_000_000_000, 1..40), seed in any::<u64>()) {
            let inv = TotalSupply::unbounded(0);
            let run = |ds: &[i128]| {
                let mut s = inv.initial_state();
                for d in ds {
                    let e = inv.check(&fact(&TotalSupply::payload(*d)), &s).unwrap();
                    inv.commit(e, &mut s);
                }
                s
            };
            let a = run(&deltas);
            let n = deltas.len();
            let mut x = seed | 1;
            for i in (1..n).rev() { x ^= x << 13; x ^= x >> 7; x ^= x << 17; deltas.swap(i, (x % (i as u64 + 1)) as usize); }
            prop_assert_eq!(a, run(&deltas));
        }
    }
}
