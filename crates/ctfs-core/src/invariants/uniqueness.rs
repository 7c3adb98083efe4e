//! Uniqueness: each element may be admitted once. Two variants.
//!
//! # UniquenessCell — an exact set over the universe `0..512`
//!
//! **Payload**: exactly 2 bytes, the element as u16 little-endian, which must
//! be below 512 (`MalformedPayload` otherwise). There is no hashing: the
//! element *is* the bit index, so there is no aliasing and no false refusal.
//! (The reference hashed arbitrary elements modulo 512, so distinct elements
//! collided and were refused as duplicates. Callers with larger or arbitrary
//! keys use [`UniqueSet`].)
//!
//! **State**: the whole 64-byte cell is a 512-bit set: element `e` is bit
//! `e % 8` (least significant first) of byte `e / 8`. The element count is
//! the popcount ([`UniquenessCell::len`]).
//!
//! # UniqueSet — arbitrary 32-byte keys, on the heap
//!
//! **Payload**: exactly 32 bytes, the key (any bytes; hash a longer key into
//! 32 bytes first, e.g. with BLAKE3).
//!
//! **State**: a summary cell plus a [`KeySet`] of the admitted keys (growing
//! with the set: about 32 bytes per key plus hash-table overhead, ~50–70 B).
//! Summary cell: `count: u64 @0`, `digest: [u8; 32] @8` (lane-wise wrapping
//! sum of the keyed BLAKE3 of each key — order-independent, so equal sets have
//! equal cells), `max_elements: u64 @40` (`u64::MAX` = no limit), 16 zero
//! bytes @48. The cell is what the binding exposes as the state bytes.
//!
//! **Refusals** (both variants): an element already present is
//! [`InvariantError::DuplicateElement`] — that is the invariant. For
//! [`UniqueSet`] with `max_elements`, admitting a new key when the set is full
//! is a [`InvariantError::Violation`]. Refusals change nothing; `check` never
//! mutates and the key is inserted only on commit.
//!
//! # Class and replication
//!
//! [`AlgebraicClass::IdempotentSet`], coordination none. The *state* converges:
//! it is the union of the elements, and whether an element is refused depends
//! only on whether it is already in that union, not on order. What does not
//! converge is *which fact* carries an element: if replica A admits fact `f1`
//! adding `x` and replica B admits `f2` adding `x`, each refuses the other's
//! fact as a duplicate. Their states are byte-identical, their admitted fact
//! sets are not, so (a) anti-entropy must treat a gossiped fact refused with
//! `DUPLICATE_ELEMENT` as settled rather than missing, and (b) an application
//! that needs all replicas to agree on the *owner* of an element (first
//! claimant of a user name) needs coordination, not this invariant.
//!
//! [`UniqueSet`] with `max_elements` is [`AlgebraicClass::Bounded`] (escrow):
//! with room for one more key, replicas A and B can each admit a different
//! key, and each then refuses the other's — different states, forever. The
//! count bound is one scalar, so escrow can split the remaining room into
//! per-replica quotas.

use std::collections::HashSet;

use crate::fact::Fact;
use crate::invariant::{AlgebraicClass, CellInvariant, Invariant, InvariantError};
use crate::invariants::{digest_add, exact_payload, violation};
use crate::state::StateCell;

/// Size of the [`UniquenessCell`] universe.
pub const UNIVERSE: u16 = 512;
pub const CELL_PAYLOAD_LEN: usize = 2;

/// Exact set over `0..512`, entirely in the cell.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UniquenessCell;

impl UniquenessCell {
    pub fn new() -> Self {
        UniquenessCell
    }

    /// Encodes an element; `None` unless it is below 512.
    pub fn payload(element: u16) -> Option<[u8; 2]> {
        (element < UNIVERSE).then(|| element.to_le_bytes())
    }

    pub fn contains(cell: &StateCell, element: u16) -> bool {
        element < UNIVERSE && cell.0[element as usize / 8] & (1 << (element % 8)) != 0
    }

    pub fn len(cell: &StateCell) -> u32 {
        cell.0.iter().map(|b| b.count_ones()).sum()
    }

    pub fn is_empty(cell: &StateCell) -> bool {
        cell.0.iter().all(|b| *b == 0)
    }
}

impl CellInvariant for UniquenessCell {
    fn name(&self) -> &str {
        "uniqueness"
    }

    fn class(&self) -> AlgebraicClass {
        AlgebraicClass::IdempotentSet
    }

    fn initial_cell(&self) -> StateCell {
        StateCell::zeroed()
    }

    #[inline(always)]
    fn apply(&self, fact: &Fact<'_>, cell: &mut StateCell) -> Result<(), InvariantError> {
        let e = u16::from_le_bytes(exact_payload::<CELL_PAYLOAD_LEN>(fact.payload, "uniqueness", "u16 element")?);
        if e >= UNIVERSE {
            return Err(InvariantError::MalformedPayload(std::borrow::Cow::Owned(format!(
                "uniqueness elements are 0..{UNIVERSE}, got {e}"
            ))));
        }
        let (byte, bit) = (e as usize / 8, 1u8 << (e % 8));
        if cell.0[byte] & bit != 0 {
            return Err(InvariantError::DuplicateElement);
        }
        cell.0[byte] |= bit;
        Ok(())
    }

    /// Replicated merge: an element another replica added too is a no-op.
    fn apply_merge(&self, fact: &Fact<'_>, cell: &mut StateCell) -> Result<(), InvariantError> {
        match self.apply(fact, cell) {
            Err(InvariantError::DuplicateElement) => Ok(()),
            other => other,
        }
    }
}

pub const COUNT: usize = 0;
pub const DIGEST: usize = 8;
pub const MAX_ELEMENTS: usize = 40;
pub const KEY_LEN: usize = 32;

/// The admitted keys of a [`UniqueSet`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeySet {
    keys: HashSet<[u8; KEY_LEN]>,
}

impl KeySet {
    pub fn contains(&self, key: &[u8; KEY_LEN]) -> bool {
        self.keys.contains(key)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8; KEY_LEN]> + '_ {
        self.keys.iter()
    }

    pub(crate) fn insert(&mut self, key: [u8; KEY_LEN]) {
        self.keys.insert(key);
    }
}

/// Uniqueness over arbitrary 32-byte keys, exact, on the heap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UniqueSet {
    /// Most keys the set may hold; `None` = bounded only by memory.
    pub max_elements: Option<u64>,
}

/// State of a standalone [`UniqueSet`]: summary cell + keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UniqueSetState {
    pub cell: StateCell,
    pub keys: KeySet,
}

/// What committing an admitted key does: the new summary cell, the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetEffect {
    pub cell: StateCell,
    pub key: [u8; KEY_LEN],
}

impl UniqueSet {
    pub fn new() -> Self {
        UniqueSet { max_elements: None }
    }

    /// Fails when `max_elements` is 0 (a set that can hold nothing).
    pub fn with_max_elements(max_elements: u64) -> Result<Self, String> {
        if max_elements == 0 {
            return Err("uniqueSet maxElements must be at least 1".into());
        }
        Ok(UniqueSet { max_elements: Some(max_elements) })
    }

    pub fn count(cell: &StateCell) -> u64 {
        cell.u64_at(COUNT)
    }

    pub fn digest(cell: &StateCell) -> [u8; 32] {
        cell.0[DIGEST..DIGEST + 32].try_into().expect("32 bytes")
    }

    pub fn summary_cell(&self) -> StateCell {
        let mut c = StateCell::zeroed();
        c.set_u64(MAX_ELEMENTS, self.max_elements.unwrap_or(u64::MAX));
        c
    }

    pub fn class(&self) -> AlgebraicClass {
        if self.max_elements.is_some() { AlgebraicClass::Bounded } else { AlgebraicClass::IdempotentSet }
    }

    /// The admission decision on a summary cell and key set, without
    /// changing either.
    #[inline]
    pub fn check_parts(&self, payload: &[u8], cell: &StateCell, keys: &KeySet) -> Result<SetEffect, InvariantError> {
        self.check_parts_with(payload, cell, keys, true)
    }

    /// [`check_parts`](Self::check_parts), with `enforce_max: false` for a
    /// replicated merge (the origin's escrow quota enforced `max_elements`).
    /// A key already present is still [`InvariantError::DuplicateElement`];
    /// the merge turns it into a no-op.
    #[inline]
    pub fn check_parts_with(&self, payload: &[u8], cell: &StateCell, keys: &KeySet, enforce_max: bool) -> Result<SetEffect, InvariantError> {
        let key = exact_payload::<KEY_LEN>(payload, "uniqueSet", "32-byte key")?;
        if keys.contains(&key) {
            return Err(InvariantError::DuplicateElement);
        }
        let count = cell.u64_at(COUNT);
        if enforce_max
            && let Some(max) = self.max_elements
            && count >= max
        {
            return Err(violation(format!("uniqueSet is full: {count} of at most {max} elements")));
        }
        let mut next = *cell;
        next.set_u64(COUNT, count + 1);
        digest_add(&mut next, DIGEST, &key);
        Ok(SetEffect { cell: next, key })
    }

    /// The replicated merge of an insert: a key already present is a no-op
    /// effect (re-inserting it changes nothing), `max_elements` is not checked.
    pub fn merge_parts(&self, payload: &[u8], cell: &StateCell, keys: &KeySet) -> Result<SetEffect, InvariantError> {
        match self.check_parts_with(payload, cell, keys, false) {
            Err(InvariantError::DuplicateElement) => {
                let key = exact_payload::<KEY_LEN>(payload, "uniqueSet", "32-byte key")?;
                Ok(SetEffect { cell: *cell, key })
            }
            other => other,
        }
    }

    #[inline]
    pub fn commit_parts(effect: SetEffect, cell: &mut StateCell, keys: &mut KeySet) {
        *cell = effect.cell;
        keys.insert(effect.key);
    }
}

impl Invariant for UniqueSet {
    type State = UniqueSetState;
    type Effect = SetEffect;

    fn name(&self) -> &str {
        "uniqueSet"
    }

    fn class(&self) -> AlgebraicClass {
        UniqueSet::class(self)
    }

    fn initial_state(&self) -> UniqueSetState {
        UniqueSetState { cell: self.summary_cell(), keys: KeySet::default() }
    }

    fn check(&self, fact: &Fact<'_>, state: &UniqueSetState) -> Result<SetEffect, InvariantError> {
        self.check_parts(fact.payload, &state.cell, &state.keys)
    }

    fn check_merge(&self, fact: &Fact<'_>, state: &UniqueSetState) -> Result<SetEffect, InvariantError> {
        self.merge_parts(fact.payload, &state.cell, &state.keys)
    }

    fn commit(&self, effect: SetEffect, state: &mut UniqueSetState) {
        Self::commit_parts(effect, &mut state.cell, &mut state.keys);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invariant::Coordination;
    use crate::invariants::testkit::{fact, run, shuffle, OwnedFact, Replica};
    use proptest::prelude::*;

    fn key(n: u8) -> [u8; 32] {
        let mut k = [0u8; 32];
        k[0] = n;
        k[31] = n.wrapping_mul(7);
        k
    }

    #[test]
    fn cell_layout_and_refusals() {
        let inv = UniquenessCell;
        let s = inv.initial_state();
        let s1 = inv.check(&fact(&UniquenessCell::payload(9).unwrap()), &s).unwrap();
        assert_eq!(s1.0[1], 0b10);
        let s2 = inv.check(&fact(&UniquenessCell::payload(511).unwrap()), &s1).unwrap();
        assert_eq!(s2.0[63], 0x80);
        assert!(UniquenessCell::contains(&s2, 9) && UniquenessCell::contains(&s2, 511) && !UniquenessCell::contains(&s2, 8));
        assert_eq!(UniquenessCell::len(&s2), 2);
        assert_eq!(inv.check(&fact(&UniquenessCell::payload(9).unwrap()), &s2), Err(InvariantError::DuplicateElement));
        // 512 and beyond, and wrong lengths, are malformed — never aliased.
        assert!(UniquenessCell::payload(512).is_none());
        for bad in [&512u16.to_le_bytes()[..], &[0xff, 0xff][..], &[1][..], &[1, 0, 0][..], &[][..]] {
            assert!(matches!(inv.check(&fact(bad), &s2), Err(InvariantError::MalformedPayload(_))), "{bad:?}");
        }
        // 9 and 9 + 512 would have aliased in the reference; here 521 is refused as malformed.
        assert!(UniquenessCell::is_empty(&s) && !UniquenessCell::is_empty(&s2));
        assert_eq!(inv.coordination(), Coordination::None);
    }

    #[test]
    fn cell_holds_all_512() {
        let facts: Vec<OwnedFact> = (0..512u16).map(|e| OwnedFact::new(e as u64, UniquenessCell::payload(e).unwrap())).collect();
        let mut r = Replica::new(&UniquenessCell);
        r.admit_all(&facts);
        assert!(r.refused.is_empty());
        assert_eq!(r.state.0, [0xff; 64]);
        assert_eq!(r.admit(&OwnedFact::new(999, [0, 0])), Err(InvariantError::DuplicateElement));
    }

    #[test]
    fn set_layout_and_refusals() {
        let inv = UniqueSet::with_max_elements(2).unwrap();
        let mut r = Replica::new(&inv);
        assert_eq!(r.state.cell.u64_at(MAX_ELEMENTS), 2);
        r.admit(&OwnedFact::new(1, key(1))).unwrap();
        assert_eq!(UniqueSet::count(&r.state.cell), 1);
        assert_ne!(UniqueSet::digest(&r.state.cell), [0; 32]);
        assert!(r.state.keys.contains(&key(1)) && !r.state.keys.contains(&key(2)));
        assert_eq!(r.admit(&OwnedFact::new(2, key(1))), Err(InvariantError::DuplicateElement));
        r.admit(&OwnedFact::new(3, key(2))).unwrap();
        assert!(matches!(r.admit(&OwnedFact::new(4, key(3))), Err(InvariantError::Violation(_))));
        // A duplicate of a present key is still DuplicateElement when full.
        assert_eq!(r.admit(&OwnedFact::new(5, key(2))), Err(InvariantError::DuplicateElement));
        for bad in [&[0u8; 31][..], &[0; 33][..], &[][..]] {
            assert!(matches!(r.admit(&OwnedFact { id: crate::fact::FactId([6; 32]), payload: bad.to_vec() }), Err(InvariantError::MalformedPayload(_))));
        }
        assert_eq!((r.state.keys.len(), UniqueSet::count(&r.state.cell)), (2, 2));
        assert_eq!(&r.state.cell.0[48..], &[0; 16]);
        assert!(UniqueSet::with_max_elements(0).is_err());
        assert_eq!(UniqueSet::new().summary_cell().u64_at(MAX_ELEMENTS), u64::MAX);
        assert_eq!(inv.coordination(), Coordination::Escrow);
        assert_eq!(UniqueSet::new().coordination(), Coordination::None);
    }

    /// Replicas that admitted the same element through different facts end in
    /// the same state but with different admitted facts (see module docs).
    #[test]
    fn concurrent_claims_converge_in_state_only() {
        let inv = UniqueSet::new();
        let (f1, f2) = (OwnedFact::new(1, key(5)), OwnedFact::new(2, key(5)));
        let mut a = Replica::new(&inv);
        let mut b = Replica::new(&inv);
        a.admit(&f1).unwrap();
        b.admit(&f2).unwrap();
        assert_eq!(a.admit(&f2), Err(InvariantError::DuplicateElement));
        assert_eq!(b.admit(&f1), Err(InvariantError::DuplicateElement));
        assert_eq!(a.state, b.state);
        assert_ne!(a.admitted, b.admitted);
    }

    /// Why `max_elements` needs escrow.
    #[test]
    fn max_elements_two_replica_counterexample() {
        let inv = UniqueSet::with_max_elements(1).unwrap();
        let (f1, f2) = (OwnedFact::new(1, key(1)), OwnedFact::new(2, key(2)));
        let mut a = Replica::new(&inv);
        let mut b = Replica::new(&inv);
        a.admit(&f1).unwrap();
        b.admit(&f2).unwrap();
        assert!(matches!(a.admit(&f2), Err(InvariantError::Violation(_))));
        assert!(matches!(b.admit(&f1), Err(InvariantError::Violation(_))));
        assert_ne!(a.state, b.state);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Any order of the same facts (with repeated elements) gives the same
        /// set, the same cell, and refuses the repeats without a change.
        #[test]
        fn cell_permutations_agree(elems in prop::collection::vec(0u16..600, 0..60), seed in any::<u64>()) {
            let mut facts: Vec<OwnedFact> = elems.iter().enumerate().map(|(i, e)| OwnedFact::new(i as u64, e.to_le_bytes())).collect();
            let a = run(&UniquenessCell, &facts);
            shuffle(&mut facts, seed);
            let mut r = Replica::new(&UniquenessCell);
            r.admit_all(&facts);
            prop_assert_eq!(a, r.state);
            let distinct: std::collections::BTreeSet<u16> = elems.iter().copied().filter(|e| *e < 512).collect();
            prop_assert_eq!(UniquenessCell::len(&a) as usize, distinct.len());
            prop_assert_eq!(r.admitted.len(), distinct.len());
            for (_, e) in &r.refused {
                prop_assert!(matches!(e, InvariantError::DuplicateElement | InvariantError::MalformedPayload(_)));
            }
        }

        #[test]
        fn set_permutations_agree(elems in prop::collection::vec(0u8..40, 0..60), seed in any::<u64>()) {
            let inv = UniqueSet::new();
            let mut facts: Vec<OwnedFact> = elems.iter().enumerate().map(|(i, e)| OwnedFact::new(i as u64, key(*e))).collect();
            let a = run(&inv, &facts);
            shuffle(&mut facts, seed);
            let mut r = Replica::new(&inv);
            r.admit_all(&facts);
            prop_assert_eq!(&a, &r.state);
            let distinct: std::collections::BTreeSet<u8> = elems.iter().copied().collect();
            prop_assert_eq!(a.keys.len(), distinct.len());
            prop_assert_eq!(UniqueSet::count(&a.cell) as usize, distinct.len());
            prop_assert!(r.refused.iter().all(|(_, e)| *e == InvariantError::DuplicateElement));
        }
    }
}
