//! The invariant contract and algebraic classes.
//!
//! An invariant is a pure function of (fact, state). Admission calls
//! [`Invariant::check`], which must not modify anything and returns an
//! *effect*; only when every other check has passed does the kernel call
//! [`Invariant::commit`]. So a refused fact leaves the state untouched, and
//! several invariants can be checked first and committed together.
//!
//! The declared [`AlgebraicClass`] decides what replication needs
//! ([`Coordination`]): an operation set that commutes and cannot be refused
//! differently on different replicas needs nothing; a bound that two replicas
//! could each respect locally but break together needs escrow; anything else
//! needs coordination.

use std::borrow::Cow;
use std::fmt;

use crate::fact::Fact;
use crate::state::StateCell;

/// What the operations of an invariant are, algebraically.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AlgebraicClass {
    /// Abelian group (e.g. unbounded add/subtract): commutative, invertible.
    Group,
    /// Join-semilattice (e.g. max): commutative, associative, idempotent.
    Semilattice,
    /// Commutative monoid (e.g. grow-only counter).
    CommutativeMonoid,
    /// Commutative operations under a finite bound (TotalSupply with a min or
    /// max, BoundedGCounter): each replica can respect the bound locally while
    /// the replicas together break it. Replicated use needs escrow.
    Bounded,
    /// Last-writer-wins register with a deterministic tiebreak.
    LastWriterWins,
    /// Idempotent set: adding an element is commutative and idempotent.
    IdempotentSet,
    /// Grow-only graph without order-dependent constraints.
    GrowOnlyGraph,
    /// Order matters: replicated admission needs consensus.
    NonCommutative,
}

/// What replicated admission needs for a class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Coordination {
    /// Replicas admit locally and converge by gossip.
    None,
    /// Replicas admit locally within an escrowed share of the bound.
    Escrow,
    /// Replicated admission is refused (`REQUIRES_COORDINATION`).
    Required,
}

impl AlgebraicClass {
    pub fn coordination(self) -> Coordination {
        match self {
            AlgebraicClass::Group
            | AlgebraicClass::Semilattice
            | AlgebraicClass::CommutativeMonoid
            | AlgebraicClass::LastWriterWins
            | AlgebraicClass::IdempotentSet
            | AlgebraicClass::GrowOnlyGraph => Coordination::None,
            AlgebraicClass::Bounded => Coordination::Escrow,
            AlgebraicClass::NonCommutative => Coordination::Required,
        }
    }

    /// Stable lower-camel name used by the JS API.
    pub fn as_str(self) -> &'static str {
        match self {
            AlgebraicClass::Group => "group",
            AlgebraicClass::Semilattice => "semilattice",
            AlgebraicClass::CommutativeMonoid => "commutativeMonoid",
            AlgebraicClass::Bounded => "bounded",
            AlgebraicClass::LastWriterWins => "lastWriterWins",
            AlgebraicClass::IdempotentSet => "idempotentSet",
            AlgebraicClass::GrowOnlyGraph => "growOnlyGraph",
            AlgebraicClass::NonCommutative => "nonCommutative",
        }
    }
}

impl Coordination {
    pub fn as_str(self) -> &'static str {
        match self {
            Coordination::None => "none",
            Coordination::Escrow => "escrow",
            Coordination::Required => "required",
        }
    }
}

/// Why an invariant refused a fact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InvariantError {
    /// The fact is well-formed but would break the invariant.
    Violation(Cow<'static, str>),
    /// The payload cannot be decoded by this invariant.
    MalformedPayload(Cow<'static, str>),
    /// A set invariant already holds the element.
    DuplicateElement,
}

impl fmt::Display for InvariantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvariantError::Violation(m) => f.write_str(m),
            InvariantError::MalformedPayload(m) => f.write_str(m),
            InvariantError::DuplicateElement => f.write_str("the element is already in the set"),
        }
    }
}

impl std::error::Error for InvariantError {}

/// [`Invariant::check`] (or [`Invariant::check_merge`] with `MERGE`), then
/// [`Invariant::commit`]: the default [`Invariant::check_commit`], for the
/// implementations that override it to reach in their other cases.
#[inline]
pub fn check_then_commit<I: Invariant + ?Sized, const MERGE: bool>(inv: &I, fact: &Fact<'_>, state: &mut I::State) -> Result<(), InvariantError> {
    let effect = if MERGE { inv.check_merge(fact, state)? } else { inv.check(fact, state)? };
    inv.commit(effect, state);
    Ok(())
}

/// An invariant with two-phase admission: `check` (pure) then `commit`.
pub trait Invariant {
    type State: Clone;
    type Effect;

    fn name(&self) -> &str;
    fn class(&self) -> AlgebraicClass;
    fn initial_state(&self) -> Self::State;

    /// Decides whether `fact` may be admitted on `state`; must not mutate
    /// anything and must be deterministic.
    fn check(&self, fact: &Fact<'_>, state: &Self::State) -> Result<Self::Effect, InvariantError>;

    /// Applies an effect returned by `check` on the same state.
    fn commit(&self, effect: Self::Effect, state: &mut Self::State);

    /// The decision for a fact another replica already admitted (replicated
    /// kernels, [`Kernel::admit_merge`](crate::Kernel::admit_merge)). The
    /// origin has checked the fact; what remains is to *merge* its effect so
    /// that every replica converges whatever the order of arrival:
    ///
    /// * an element already in a set is a no-op, not a refusal (the state is
    ///   the union; refusing would leave the replicas' fact sets different);
    /// * a finite bound whose headroom is escrowed is not checked here: the
    ///   origin consumed its own quota, and the quotas sum to the headroom, so
    ///   the bound holds once every fact has arrived.
    ///
    /// Everything else (malformed payloads, overflow, custom rules) decides
    /// as [`check`](Self::check) does. Default: `check`.
    fn check_merge(&self, fact: &Fact<'_>, state: &Self::State) -> Result<Self::Effect, InvariantError> {
        self.check(fact, state)
    }

    /// [`check`](Self::check) (or [`check_merge`](Self::check_merge) with
    /// `MERGE`) and [`commit`](Self::commit) in one step, for a fact nothing
    /// else can refuse any more: on `Err` the state is unchanged. The kernel
    /// admits through this; an implementation may update the state in place
    /// instead of building an effect value and moving it to `commit`.
    #[inline]
    fn check_commit<const MERGE: bool>(&self, fact: &Fact<'_>, state: &mut Self::State) -> Result<(), InvariantError> {
        check_then_commit::<Self, MERGE>(self, fact, state)
    }

    fn coordination(&self) -> Coordination {
        self.class().coordination()
    }
}

/// An invariant whose whole state is one [`StateCell`]. `apply` runs on a
/// scratch copy, so it may mutate freely and bail out half-way.
pub trait CellInvariant {
    fn name(&self) -> &str;
    fn class(&self) -> AlgebraicClass;
    fn initial_cell(&self) -> StateCell;
    fn apply(&self, fact: &Fact<'_>, cell: &mut StateCell) -> Result<(), InvariantError>;

    /// [`Invariant::check_merge`] for a cell invariant. Default: `apply`.
    fn apply_merge(&self, fact: &Fact<'_>, cell: &mut StateCell) -> Result<(), InvariantError> {
        self.apply(fact, cell)
    }
}

impl<T: CellInvariant> Invariant for T {
    type State = StateCell;
    type Effect = StateCell;

    fn name(&self) -> &str {
        CellInvariant::name(self)
    }

    fn class(&self) -> AlgebraicClass {
        CellInvariant::class(self)
    }

    fn initial_state(&self) -> StateCell {
        self.initial_cell()
    }

    #[inline]
    fn check(&self, fact: &Fact<'_>, state: &StateCell) -> Result<StateCell, InvariantError> {
        let mut scratch = *state;
        self.apply(fact, &mut scratch)?;
        Ok(scratch)
    }

    #[inline]
    fn commit(&self, effect: StateCell, state: &mut StateCell) {
        *state = effect;
    }

    fn check_merge(&self, fact: &Fact<'_>, state: &StateCell) -> Result<StateCell, InvariantError> {
        let mut scratch = *state;
        self.apply_merge(fact, &mut scratch)?;
        Ok(scratch)
    }
}
