//! Test helpers shared by the invariant modules: facts with owned ids,
//! deterministic shuffles, and a replica that admits what its invariant
//! accepts and records what it refused.

use crate::fact::{Fact, FactId};
use crate::invariant::{Invariant, InvariantError};

/// A fact with an owned id and payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedFact {
    pub id: FactId,
    pub payload: Vec<u8>,
}

impl OwnedFact {
    pub fn new(n: u64, payload: impl Into<Vec<u8>>) -> Self {
        OwnedFact { id: id(n), payload: payload.into() }
    }

    pub fn fact(&self) -> Fact<'_> {
        Fact { id: &self.id, deps: &[], payload: &self.payload }
    }
}

pub fn id(n: u64) -> FactId {
    FactId(*blake3::hash(&n.to_le_bytes()).as_bytes())
}

/// A borrowed fact with a fixed id, for one-off checks.
pub fn fact(payload: &[u8]) -> Fact<'_> {
    static ID: FactId = FactId([0; 32]);
    Fact { id: &ID, deps: &[], payload }
}

/// Fisher–Yates with xorshift64 from `seed`.
pub fn shuffle<T>(v: &mut [T], seed: u64) {
    let mut x = seed | 1;
    for i in (1..v.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
}

/// One replica: the invariant's state plus which facts it admitted.
pub struct Replica<'a, I: Invariant> {
    pub inv: &'a I,
    pub state: I::State,
    pub admitted: Vec<FactId>,
    pub refused: Vec<(FactId, InvariantError)>,
}

impl<'a, I: Invariant> Replica<'a, I> {
    pub fn new(inv: &'a I) -> Self {
        Replica { inv, state: inv.initial_state(), admitted: Vec::new(), refused: Vec::new() }
    }

    /// Check then commit; a refusal must leave the state as it was.
    pub fn admit(&mut self, f: &OwnedFact) -> Result<(), InvariantError>
    where
        I::State: PartialEq + std::fmt::Debug,
    {
        let before = self.state.clone();
        match self.inv.check(&f.fact(), &self.state) {
            Ok(e) => {
                assert_eq!(self.state, before, "check mutated the state");
                self.inv.commit(e, &mut self.state);
                self.admitted.push(f.id);
                Ok(())
            }
            Err(e) => {
                assert_eq!(self.state, before, "a refusal changed the state");
                self.refused.push((f.id, e.clone()));
                Err(e)
            }
        }
    }

    pub fn admit_all(&mut self, facts: &[OwnedFact]) -> &mut Self
    where
        I::State: PartialEq + std::fmt::Debug,
    {
        for f in facts {
            let _ = self.admit(f);
        }
        self
    }
}

/// Runs `facts` in order on a fresh replica and returns the final state.
pub fn run<I: Invariant>(inv: &I, facts: &[OwnedFact]) -> I::State
where
    I::State: PartialEq + std::fmt::Debug,
{
    let mut r = Replica::new(inv);
    r.admit_all(facts);
    r.state
}
