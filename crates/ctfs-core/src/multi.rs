//! [`Multi`]: several invariants guarding one fact stream.
//!
//! A fact is addressed to one or more member invariants and is admitted
//! atomically: every addressed member checks its part first, and only when
//! all of them pass are their effects committed. A refusal by any member
//! leaves every member's state untouched.
//!
//! **Payload** of a fact for a kernel with more than one member (little-endian):
//!
//! ```text
//! count u8 (1..=members)
//! count × { member index u8 | part length u32 | part bytes }
//! ```
//!
//! Member indices are strictly increasing (each member at most once) and the
//! parts fill the payload exactly; anything else is
//! [`InvariantError::MalformedPayload`]. With exactly one member the payload
//! is that member's payload as is (no header), so a single-invariant kernel
//! pays nothing for this layer.
//!
//! **Class**: the member whose class needs the most coordination decides
//! ([`Coordination::Required`] > [`Coordination::Escrow`] > none);
//! [`Multi::classes`] lists each member's own class.
//!
//! Committing allocates nothing for a fact addressed to one member; a fact
//! addressed to several keeps the extra effects in a small vector.

use std::borrow::Cow;
use std::cell::Cell;

use crate::fact::Fact;
use crate::invariant::{AlgebraicClass, Coordination, Invariant, InvariantError};

/// Most members one kernel can hold (indices are one byte on the wire; 64
/// keeps the atomic commit small and the payload header short).
pub const MAX_MEMBERS: usize = 64;

/// Bytes of one part header: member index u8 + part length u32.
pub const PART_HEADER: usize = 5;

/// Several invariants admitted atomically over one fact stream.
#[derive(Clone, Debug)]
pub struct Multi<I: Invariant> {
    members: Vec<I>,
    /// Per-member counters of a kernel with several members (metrics):
    /// facts admitted that address the member, and refusals it decided.
    /// Counted on the multi-part path only (a single member's counts are
    /// the kernel's). Interior mutability: they never affect a decision.
    counts: Vec<MemberCounts>,
}

/// What one member of a [`Multi`] admitted and refused.
#[derive(Clone, Debug, Default)]
pub struct MemberCounts {
    /// Facts admitted with a part for this member.
    pub admitted: Cell<u64>,
    /// Refusals by this member: `INVARIANT_VIOLATION`, `MALFORMED_FACT`
    /// (its part did not decode), `DUPLICATE_ELEMENT`.
    pub refused: [Cell<u64>; 3],
}

impl MemberCounts {
    /// The error codes of [`MemberCounts::refused`], in order.
    pub const CODES: [crate::ErrorCode; 3] =
        [crate::ErrorCode::InvariantViolation, crate::ErrorCode::MalformedFact, crate::ErrorCode::DuplicateElement];

    fn refuse(&self, e: &InvariantError) {
        let i = match e {
            InvariantError::Violation(_) => 0,
            InvariantError::MalformedPayload(_) => 1,
            InvariantError::DuplicateElement => 2,
        };
        self.refused[i].set(self.refused[i].get() + 1);
    }
}

/// The effects of one fact on the members it addresses.
pub struct MultiEffect<E> {
    first: (u8, E),
    rest: Vec<(u8, E)>,
}

impl<I: Invariant> Multi<I> {
    /// Fails when `members` is empty or longer than [`MAX_MEMBERS`].
    pub fn new(members: Vec<I>) -> Result<Self, String> {
        if members.is_empty() {
            return Err("a kernel needs at least one invariant".into());
        }
        if members.len() > MAX_MEMBERS {
            return Err(format!("at most {MAX_MEMBERS} invariants per kernel, got {}", members.len()));
        }
        let counts = vec![MemberCounts::default(); members.len()];
        Ok(Multi { members, counts })
    }

    /// One member: payloads go to it unchanged.
    pub fn single(member: I) -> Self {
        Multi { members: vec![member], counts: vec![MemberCounts::default()] }
    }

    /// Per-member counters (kept when there are several members; zero for a
    /// single member, whose counts are the kernel's).
    pub fn member_counts(&self) -> &[MemberCounts] {
        &self.counts
    }

    pub fn members(&self) -> &[I] {
        &self.members
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Each member's declared class, in member order.
    pub fn classes(&self) -> impl Iterator<Item = AlgebraicClass> + '_ {
        self.members.iter().map(|m| m.class())
    }

    fn check_member(&self, index: usize, fact: &Fact<'_>, part: &[u8], state: &I::State, merge: bool) -> Result<I::Effect, InvariantError> {
        let member = &self.members[index];
        let sub = Fact { id: fact.id, deps: fact.deps, payload: part };
        let r = if merge { member.check_merge(&sub, state) } else { member.check(&sub, state) };
        r.map_err(|e| {
            if let Some(c) = self.counts.get(index) {
                c.refuse(&e);
            }
            e
        })
        .map_err(|e| match e {
            InvariantError::Violation(m) if self.members.len() > 1 => {
                InvariantError::Violation(Cow::Owned(format!("{}: {m}", member.name())))
            }
            InvariantError::MalformedPayload(m) if self.members.len() > 1 => {
                InvariantError::MalformedPayload(Cow::Owned(format!("{}: {m}", member.name())))
            }
            other => other,
        })
    }
}

/// Iterates the parts of a multi-member payload, validating the framing.
pub struct Parts<'a> {
    rest: &'a [u8],
    remaining: usize,
    last: Option<u8>,
    members: usize,
}

impl<'a> Parts<'a> {
    /// Validates the count byte; parts are validated as they are read.
    pub fn new(payload: &'a [u8], members: usize) -> Result<Self, InvariantError> {
        let (&count, rest) = payload
            .split_first()
            .ok_or(InvariantError::MalformedPayload(Cow::Borrowed("empty multi-invariant payload: expected a part count")))?;
        if count == 0 || count as usize > members {
            return Err(InvariantError::MalformedPayload(Cow::Owned(format!(
                "multi-invariant payload addresses {count} parts; expected 1..={members}"
            ))));
        }
        Ok(Parts { rest, remaining: count as usize, last: None, members })
    }

    /// The next `(member index, part)`, `None` after the last.
    pub fn next_part(&mut self) -> Result<Option<(u8, &'a [u8])>, InvariantError> {
        if self.remaining == 0 {
            if !self.rest.is_empty() {
                return Err(InvariantError::MalformedPayload(Cow::Owned(format!(
                    "{} trailing bytes after the last part",
                    self.rest.len()
                ))));
            }
            return Ok(None);
        }
        if self.rest.len() < PART_HEADER {
            return Err(InvariantError::MalformedPayload(Cow::Borrowed("truncated part header")));
        }
        let index = self.rest[0];
        let len = u32::from_le_bytes([self.rest[1], self.rest[2], self.rest[3], self.rest[4]]) as usize;
        if index as usize >= self.members {
            return Err(InvariantError::MalformedPayload(Cow::Owned(format!(
                "part addresses invariant {index}; the kernel has {}",
                self.members
            ))));
        }
        if self.last.is_some_and(|l| index <= l) {
            return Err(InvariantError::MalformedPayload(Cow::Borrowed(
                "parts must address invariants in increasing order, each at most once",
            )));
        }
        let body = &self.rest[PART_HEADER..];
        if body.len() < len {
            return Err(InvariantError::MalformedPayload(Cow::Owned(format!(
                "part for invariant {index} claims {len} bytes; {} remain",
                body.len()
            ))));
        }
        let (part, rest) = body.split_at(len);
        self.rest = rest;
        self.remaining -= 1;
        self.last = Some(index);
        Ok(Some((index, part)))
    }
}

/// Encodes a multi-member payload from `(member index, part)` pairs (indices
/// strictly increasing). The inverse of what [`Multi`] reads.
pub fn encode_parts(parts: &[(u8, &[u8])]) -> Result<Vec<u8>, String> {
    if parts.is_empty() || parts.len() > MAX_MEMBERS {
        return Err(format!("a fact addresses 1..={MAX_MEMBERS} invariants, got {}", parts.len()));
    }
    let mut out = Vec::with_capacity(1 + parts.iter().map(|(_, p)| PART_HEADER + p.len()).sum::<usize>());
    out.push(parts.len() as u8);
    let mut last: Option<u8> = None;
    for &(index, part) in parts {
        if last.is_some_and(|l| index <= l) {
            return Err("invariant indices must be strictly increasing".into());
        }
        let len = u32::try_from(part.len()).map_err(|_| "part longer than 4 GiB".to_string())?;
        out.push(index);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(part);
        last = Some(index);
    }
    Ok(out)
}

impl<I: Invariant> Invariant for Multi<I> {
    type State = Vec<I::State>;
    type Effect = MultiEffect<I::Effect>;

    fn name(&self) -> &str {
        if self.members.len() == 1 { self.members[0].name() } else { "multi" }
    }

    fn class(&self) -> AlgebraicClass {
        let rank = |c: AlgebraicClass| match c.coordination() {
            Coordination::None => 0,
            Coordination::Escrow => 1,
            Coordination::Required => 2,
        };
        let mut best = self.members[0].class();
        for c in self.classes().skip(1) {
            if rank(c) > rank(best) {
                best = c;
            }
        }
        best
    }

    fn initial_state(&self) -> Vec<I::State> {
        self.members.iter().map(|m| m.initial_state()).collect()
    }

    #[inline]
    fn check(&self, fact: &Fact<'_>, state: &Vec<I::State>) -> Result<Self::Effect, InvariantError> {
        if self.members.len() == 1 {
            let effect = self.members[0].check(fact, &state[0])?;
            return Ok(MultiEffect { first: (0, effect), rest: Vec::new() });
        }
        self.check_parts(fact, state, false)
    }

    fn check_merge(&self, fact: &Fact<'_>, state: &Vec<I::State>) -> Result<Self::Effect, InvariantError> {
        if self.members.len() == 1 {
            let effect = self.members[0].check_merge(fact, &state[0])?;
            return Ok(MultiEffect { first: (0, effect), rest: Vec::new() });
        }
        self.check_parts(fact, state, true)
    }

    #[inline]
    fn check_commit<const MERGE: bool>(&self, fact: &Fact<'_>, state: &mut Vec<I::State>) -> Result<(), InvariantError> {
        if self.members.len() == 1 {
            return self.members[0].check_commit::<MERGE>(fact, &mut state[0]);
        }
        crate::invariant::check_then_commit::<Self, MERGE>(self, fact, state)
    }

    #[inline]
    fn commit(&self, effect: Self::Effect, state: &mut Vec<I::State>) {
        let (index, e) = effect.first;
        self.members[index as usize].commit(e, &mut state[index as usize]);
        for (index, e) in effect.rest {
            self.members[index as usize].commit(e, &mut state[index as usize]);
        }
    }
}

impl<I: Invariant> Multi<I> {
    fn check_parts(&self, fact: &Fact<'_>, state: &[I::State], merge: bool) -> Result<MultiEffect<I::Effect>, InvariantError> {
        let mut parts = Parts::new(fact.payload, self.members.len())?;
        let (index, part) = match parts.next_part()? {
            Some(p) => p,
            None => return Err(InvariantError::MalformedPayload(Cow::Borrowed("no parts"))),
        };
        let first = (index, self.check_member(index as usize, fact, part, &state[index as usize], merge)?);
        let mut rest = Vec::new();
        while let Some((index, part)) = parts.next_part()? {
            rest.push((index, self.check_member(index as usize, fact, part, &state[index as usize], merge)?));
        }
        // Checked means committed (the kernel commits every effect it gets).
        for i in std::iter::once(first.0).chain(rest.iter().map(|(i, _)| *i)) {
            if let Some(c) = self.counts.get(i as usize) {
                c.admitted.set(c.admitted.get() + 1);
            }
        }
        Ok(MultiEffect { first, rest })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invariants::total_supply::TotalSupply;
    use crate::kernel::{CausalityMode, Kernel};
    use crate::{AdmitError, FactId};

    fn delta(d: i128) -> [u8; 16] {
        d.to_le_bytes()
    }

    fn balance(cell: &crate::StateCell) -> i128 {
        TotalSupply::read(cell).balance
    }

    fn two() -> Kernel<Multi<TotalSupply>> {
        let a = TotalSupply::new(100, 0, 1000).unwrap();
        let b = TotalSupply::new(10, 0, 1000).unwrap();
        Kernel::new(Multi::new(vec![a, b]).unwrap(), CausalityMode::Exact)
    }

    #[test]
    fn single_member_payload_passes_through() {
        let mut k = Kernel::new(Multi::single(TotalSupply::unbounded(0)), CausalityMode::Exact);
        k.admit(&FactId([1; 32]), &[], &delta(5)).unwrap();
        assert_eq!(balance(&k.state()[0]), 5);
    }

    #[test]
    fn transfer_between_members_is_atomic() {
        let mut k = two();
        let p = encode_parts(&[(0, &delta(-30)), (1, &delta(30))]).unwrap();
        k.admit(&FactId([1; 32]), &[], &p).unwrap();
        assert_eq!((balance(&k.state()[0]), balance(&k.state()[1])), (70, 40));

        // member 1 would go below 0: nothing changes, not even member 0.
        let p = encode_parts(&[(0, &delta(50)), (1, &delta(-41))]).unwrap();
        let err = k.admit(&FactId([2; 32]), &[], &p).unwrap_err();
        assert!(matches!(err, AdmitError::Invariant { error: InvariantError::Violation(_), .. }), "{err:?}");
        assert_eq!((balance(&k.state()[0]), balance(&k.state()[1])), (70, 40));
        assert_eq!(k.len(), 1);
    }

    /// The binding's kernel type: a refused fact (overdraft, bound, a key
    /// already in the set, a malformed payload; plain and merge admission)
    /// changes no state, one member or several; admitted ones apply once.
    #[test]
    fn builtin_kernels_change_nothing_on_refusal() {
        use crate::invariants::builtin::Builtin;
        let supply = || Builtin::total_supply(10, 0, 100).unwrap();
        let set = || Builtin::unique_set(Some(2)).unwrap();
        let mut ks = [
            Kernel::new(Multi::new(vec![supply()]).unwrap(), CausalityMode::Exact),
            Kernel::new(Multi::new(vec![set()]).unwrap(), CausalityMode::Exact),
            Kernel::new(Multi::new(vec![supply(), set()]).unwrap(), CausalityMode::Exact),
        ];
        let snap = |k: &Kernel<Multi<Builtin>>| (k.state().clone(), k.len(), k.frontier().canonical_bytes());
        let mut refused = 0;
        for n in 1..=40u8 {
            let d = delta(if n % 3 == 0 { -25 } else { 7 });
            let key = [n % 4; 32];
            let parts = encode_parts(&[(0, &d), (1, &key)]).unwrap();
            for (which, payload) in [(0usize, &d[..]), (1, &key[..]), (2, &parts[..]), (0, &d[..5])] {
                let k = &mut ks[which];
                let before = snap(k);
                let fact = FactId([n, which as u8, payload.len() as u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]);
                let r = if n % 2 == 0 { k.admit(&fact, &[], payload) } else { k.admit_merge(&fact, &[], payload) };
                match r {
                    Err(e) => {
                        refused += 1;
                        assert_eq!(snap(k), before, "fact {n} refused ({e:?}) but the kernel changed");
                    }
                    Ok(()) => assert!(k.admit(&fact, &[], payload).is_err(), "fact {n} admitted twice"),
                }
            }
        }
        assert!(refused > 20, "{refused} refusals: the refusal paths must be exercised");
        // (Merges do not check escrowed bounds, so the balance may leave [0, 100].)
        assert!(crate::invariants::uniqueness::UniqueSet::count(&ks[1].state()[0].cell) <= 4);
    }

    #[test]
    fn one_part_touches_one_member() {
        let mut k = two();
        let p = encode_parts(&[(1, &delta(-10))]).unwrap();
        k.admit(&FactId([3; 32]), &[], &p).unwrap();
        assert_eq!((balance(&k.state()[0]), balance(&k.state()[1])), (100, 0));
    }

    #[test]
    fn malformed_framing_is_refused() {
        let mut k = two();
        let d = delta(1);
        let mut bad: Vec<Vec<u8>> = vec![
            vec![],
            vec![0],
            vec![3],
            vec![1, 0, 16, 0, 0],
            vec![1, 2, 16, 0, 0, 0],
        ];
        let mut dup = encode_parts(&[(0, &d)]).unwrap();
        dup[0] = 2;
        dup.extend_from_slice(&[0, 16, 0, 0, 0]);
        dup.extend_from_slice(&d);
        bad.push(dup);
        let mut trailing = encode_parts(&[(0, &d)]).unwrap();
        trailing.push(9);
        bad.push(trailing);
        for (i, p) in bad.iter().enumerate() {
            let err = k.admit(&FactId([i as u8 + 10; 32]), &[], p).unwrap_err();
            assert!(matches!(err, AdmitError::Invariant { error: InvariantError::MalformedPayload(_), .. }), "case {i}: {err:?}");
        }
        assert_eq!(k.len(), 0);
        assert_eq!((balance(&k.state()[0]), balance(&k.state()[1])), (100, 10));
    }

    #[test]
    fn members_count_what_they_admit_and_refuse() {
        let mut k = two();
        let counts = |k: &Kernel<Multi<TotalSupply>>| -> Vec<(u64, [u64; 3])> {
            k.invariant().member_counts().iter().map(|c| (c.admitted.get(), c.refused.clone().map(|x| x.get()))).collect()
        };
        let both = encode_parts(&[(0, &delta(-30)), (1, &delta(30))]).unwrap();
        k.admit(&FactId([1; 32]), &[], &both).unwrap();
        k.admit(&FactId([2; 32]), &[], &encode_parts(&[(1, &delta(1))]).unwrap()).unwrap();
        // member 1 refuses (below 0); member 0 passed its check but nothing was admitted.
        for i in 0..3u8 {
            let p = encode_parts(&[(0, &delta(1)), (1, &delta(-1000))]).unwrap();
            k.admit(&FactId([10 + i; 32]), &[], &p).unwrap_err();
        }
        // member 0's part does not decode.
        k.admit(&FactId([20; 32]), &[], &encode_parts(&[(0, &[1, 2, 3][..])]).unwrap()).unwrap_err();
        // framing errors belong to no member; a duplicate id never reaches them.
        k.admit(&FactId([21; 32]), &[], &[9]).unwrap_err();
        k.admit(&FactId([1; 32]), &[], &both).unwrap_err();
        assert_eq!(counts(&k), vec![(1, [0, 1, 0]), (2, [3, 0, 0])]);
        let s = k.stats();
        assert_eq!(s.admitted, 2);
        assert_eq!(s.rejected[crate::ErrorCode::InvariantViolation as usize], 3);
        assert_eq!(s.rejected[crate::ErrorCode::MalformedFact as usize], 2);
        assert_eq!(s.rejected[crate::ErrorCode::DuplicateFact as usize], 1);
    }

    #[test]
    fn encode_rejects_unordered_indices() {
        assert!(encode_parts(&[(1, &[][..]), (0, &[][..])]).is_err());
        assert!(encode_parts(&[]).is_err());
    }

    #[test]
    fn class_is_the_most_demanding_member() {
        let m = Multi::new(vec![TotalSupply::unbounded(0), TotalSupply::new(0, 0, 10).unwrap()]).unwrap();
        assert_eq!(m.class(), AlgebraicClass::Bounded);
        let m = Multi::new(vec![TotalSupply::unbounded(0)]).unwrap();
        assert_eq!(m.class(), AlgebraicClass::Group);
    }
}
