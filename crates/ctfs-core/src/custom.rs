//! [`Custom`]: an invariant whose rule lives outside the core (a TypeScript
//! `apply` called through the N-API binding, or any Rust closure).
//!
//! The core knows its name, declared class, state size (1..=64 bytes, the
//! first bytes of the [`StateCell`]) and initial state; the rule is a
//! [`CustomRule`]. The rule runs on a scratch copy of the state (the
//! [`CellInvariant`] contract), so a refusal — or a rule that throws half-way
//! through — leaves the kernel's state untouched.
//!
//! The declared class is the author's claim: the core cannot prove that an
//! arbitrary rule commutes. It decides coordination like any built-in's class.
//! Rules must be pure functions of (fact, state); replicas re-running the same
//! facts must reach the same bytes.

use std::fmt;
use std::rc::Rc;

use crate::fact::Fact;
use crate::invariant::{AlgebraicClass, CellInvariant, InvariantError};
use crate::state::StateCell;

const CELL_SIZE: usize = StateCell::SIZE;

/// The rule of a custom invariant: mutate `state` (exactly the declared
/// number of bytes) or refuse.
pub trait CustomRule {
    fn apply(&self, fact: &Fact<'_>, state: &mut [u8]) -> Result<(), InvariantError>;
}

impl<F: Fn(&Fact<'_>, &mut [u8]) -> Result<(), InvariantError>> CustomRule for F {
    fn apply(&self, fact: &Fact<'_>, state: &mut [u8]) -> Result<(), InvariantError> {
        self(fact, state)
    }
}

/// A custom cell invariant.
#[derive(Clone)]
pub struct Custom {
    name: String,
    class: AlgebraicClass,
    /// The author's version of the rule (default 1): recorded in the
    /// configuration fingerprint, so that a log written by another version of
    /// the rule is refused instead of replayed.
    version: u32,
    size: usize,
    initial: StateCell,
    rule: Rc<dyn CustomRule>,
}

impl Custom {
    /// `initial` is the initial state (its length is the state size,
    /// 1..=64 bytes).
    pub fn new(name: impl Into<String>, class: AlgebraicClass, initial: &[u8], rule: Rc<dyn CustomRule>) -> Result<Self, String> {
        let name = name.into();
        if name.is_empty() || name.len() > 64 {
            return Err("a custom invariant needs a name of 1..=64 bytes".into());
        }
        if initial.is_empty() || initial.len() > CELL_SIZE {
            return Err(format!("custom state size must be 1..={CELL_SIZE} bytes, got {}", initial.len()));
        }
        let mut cell = StateCell::zeroed();
        cell.0[..initial.len()].copy_from_slice(initial);
        Ok(Custom { name, class, version: 1, size: initial.len(), initial: cell, rule })
    }

    /// The same invariant with the author's rule version `version` (>= 1).
    pub fn with_version(mut self, version: u32) -> Result<Self, String> {
        if version == 0 {
            return Err("a custom invariant's version must be at least 1".into());
        }
        self.version = version;
        Ok(self)
    }

    /// The author's rule version (1 unless set).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The initial state bytes (exactly [`Custom::size`] of them).
    pub fn initial_bytes(&self) -> &[u8] {
        &self.initial.0[..self.size]
    }

    /// State size in bytes (the rest of the cell stays zero).
    pub fn size(&self) -> usize {
        self.size
    }
}

impl fmt::Debug for Custom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Custom")
            .field("name", &self.name)
            .field("class", &self.class)
            .field("version", &self.version)
            .field("size", &self.size)
            .finish()
    }
}

/// Two custom invariants are equal when they are the same registration.
impl PartialEq for Custom {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.rule, &other.rule)
            && self.name == other.name
            && self.class == other.class
            && self.version == other.version
            && self.initial == other.initial
    }
}

impl Eq for Custom {}

impl CellInvariant for Custom {
    fn name(&self) -> &str {
        &self.name
    }

    fn class(&self) -> AlgebraicClass {
        self.class
    }

    fn initial_cell(&self) -> StateCell {
        self.initial
    }

    fn apply(&self, fact: &Fact<'_>, cell: &mut StateCell) -> Result<(), InvariantError> {
        self.rule.apply(fact, &mut cell.0[..self.size])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{CausalityMode, Kernel};
    use crate::{AdmitError, FactId};
    use std::borrow::Cow;

    /// A u64 counter that refuses odd increments and panics on none.
    fn even_counter() -> Custom {
        let rule = |fact: &Fact<'_>, state: &mut [u8]| -> Result<(), InvariantError> {
            let inc: [u8; 8] = fact.payload.try_into().map_err(|_| InvariantError::MalformedPayload(Cow::Borrowed("8 bytes")))?;
            let inc = u64::from_le_bytes(inc);
            let cur = u64::from_le_bytes(state[..8].try_into().unwrap_or([0; 8]));
            // write first, refuse after: the scratch copy must protect us
            state[..8].copy_from_slice(&cur.wrapping_add(inc).to_le_bytes());
            if inc % 2 == 1 {
                return Err(InvariantError::Violation(Cow::Borrowed("odd increment")));
            }
            Ok(())
        };
        Custom::new("even", AlgebraicClass::CommutativeMonoid, &[0u8; 8], Rc::new(rule)).unwrap()
    }

    #[test]
    fn refusal_after_partial_write_changes_nothing() {
        let mut k = Kernel::new(even_counter(), CausalityMode::Exact);
        k.admit(&FactId([1; 32]), &[], &4u64.to_le_bytes()).unwrap();
        let before = *k.state();
        let e = k.admit(&FactId([2; 32]), &[], &3u64.to_le_bytes()).unwrap_err();
        assert!(matches!(e, AdmitError::Invariant { .. }));
        assert_eq!(*k.state(), before);
        assert_eq!(u64::from_le_bytes(k.state().as_bytes()[..8].try_into().unwrap()), 4);
    }

    #[test]
    fn rejects_bad_sizes_and_names() {
        let rule: Rc<dyn CustomRule> = Rc::new(|_: &Fact<'_>, _: &mut [u8]| Ok(()));
        assert!(Custom::new("x", AlgebraicClass::Group, &[], rule.clone()).is_err());
        assert!(Custom::new("x", AlgebraicClass::Group, &[0; 65], rule.clone()).is_err());
        assert!(Custom::new("", AlgebraicClass::Group, &[0; 1], rule.clone()).is_err());
        assert!(Custom::new("x", AlgebraicClass::Group, &[0; 1], rule.clone()).unwrap().with_version(0).is_err());
        let c = Custom::new("x", AlgebraicClass::Group, &[7; 3], rule).unwrap();
        assert_eq!(c.version(), 1);
        assert_eq!(c.initial_bytes(), &[7, 7, 7]);
        assert_eq!(c.clone().with_version(3).unwrap().version(), 3);
        assert_ne!(c.clone().with_version(3).unwrap(), c);
        assert_eq!(c.initial_cell().as_bytes()[..4], [7, 7, 7, 0]);
    }
}
