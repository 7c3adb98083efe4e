//! [`Builtin`]: every built-in invariant behind one enum, for callers (the
//! N-API binding) that choose the invariant at run time. Static dispatch,
//! no trait objects on the hot path.

use crate::fact::Fact;
use crate::invariant::{AlgebraicClass, CellInvariant, InvariantError};
use crate::invariants::TotalSupply;
use crate::state::StateCell;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Builtin {
    TotalSupply(TotalSupply),
}

impl CellInvariant for Builtin {
    fn name(&self) -> &str {
        match self {
            Builtin::TotalSupply(i) => CellInvariant::name(i),
        }
    }

    fn class(&self) -> AlgebraicClass {
        match self {
            Builtin::TotalSupply(i) => CellInvariant::class(i),
        }
    }

    fn initial_cell(&self) -> StateCell {
        match self {
            Builtin::TotalSupply(i) => i.initial_cell(),
        }
    }

    #[inline]
    fn apply(&self, fact: &Fact<'_>, cell: &mut StateCell) -> Result<(), InvariantError> {
        match self {
            Builtin::TotalSupply(i) => i.apply(fact, cell),
        }
    }
}
