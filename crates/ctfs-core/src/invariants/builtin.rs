//! [`Builtin`]: every built-in invariant behind one enum, for callers (the
//! N-API binding) that choose the invariant at run time. Static dispatch,
//! no trait objects on the hot path.
//!
//! **State** is a [`BuiltinState`]: the 64-byte cell every built-in has (for
//! the heap variants a summary: counts and an order-independent digest), plus
//! an [`Extension`] holding the heap part of [`UniqueSet`] and [`Graph`]. The
//! cell is always the bytes to expose as "the state".
//!
//! **Effect** is a [`BuiltinEffect`]: the new cell, plus an [`ExtEffect`]
//! naming what to insert into the extension on commit. Admission for the
//! cell invariants stays allocation-free (the effect is the new cell); the
//! heap variants look up the key or edge in `check` and insert it in
//! `commit`.
//!
//! Cloning a [`BuiltinState`] of a heap variant copies the whole set or
//! graph: cheap for cell variants, O(elements) for the heap ones.

use std::borrow::Cow;

use crate::fact::Fact;
use crate::invariant::{AlgebraicClass, CellInvariant, Coordination, Invariant, InvariantError};
use crate::invariants::ggraph::{DegreeLimits, GGraphCell, Graph, GraphEffect, VertexGraph};
use crate::invariants::uniqueness::{KeySet, SetEffect, UniqueSet, UniquenessCell, KEY_LEN};
use crate::invariants::{BoundedGCounter, GCounter, Lww, Max, TotalSupply};
use crate::replica::Escrowed;
use crate::state::StateCell;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Builtin {
    TotalSupply(TotalSupply),
    Max(Max),
    GCounter(GCounter),
    BoundedGCounter(BoundedGCounter),
    Lww(Lww),
    UniquenessCell(UniquenessCell),
    UniqueSet(UniqueSet),
    GGraphCell(GGraphCell),
    Graph(Graph),
    /// A rule written outside the core (a TypeScript `apply`).
    Custom(crate::custom::Custom),
}

/// The heap part of a built-in's state (only [`UniqueSet`] and [`Graph`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Extension {
    #[default]
    None,
    Set(KeySet),
    Graph(VertexGraph),
}

/// A built-in's state: the 64-byte cell, and the heap part if any.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuiltinState {
    pub cell: StateCell,
    pub ext: Extension,
}

impl BuiltinState {
    /// The keys of a [`UniqueSet`] state.
    pub fn keys(&self) -> Option<&KeySet> {
        match &self.ext {
            Extension::Set(k) => Some(k),
            _ => None,
        }
    }

    /// The graph of a [`Graph`] state.
    pub fn graph(&self) -> Option<&VertexGraph> {
        match &self.ext {
            Extension::Graph(g) => Some(g),
            _ => None,
        }
    }
}

/// What a commit inserts into the extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExtEffect {
    None,
    InsertKey([u8; KEY_LEN]),
    InsertEdge(u64, u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuiltinEffect {
    pub cell: StateCell,
    pub ext: ExtEffect,
}

/// Runs a cell invariant on a scratch copy of the cell.
#[inline(always)]
fn cell_check<C: CellInvariant>(inv: &C, fact: &Fact<'_>, cell: &StateCell) -> Result<BuiltinEffect, InvariantError> {
    let mut scratch = *cell;
    inv.apply(fact, &mut scratch)?;
    Ok(BuiltinEffect { cell: scratch, ext: ExtEffect::None })
}

/// [`cell_check`] with the replicated merge semantics.
fn cell_merge<C: CellInvariant>(inv: &C, fact: &Fact<'_>, cell: &StateCell) -> Result<BuiltinEffect, InvariantError> {
    let mut scratch = *cell;
    inv.apply_merge(fact, &mut scratch)?;
    Ok(BuiltinEffect { cell: scratch, ext: ExtEffect::None })
}

fn mismatch() -> InvariantError {
    InvariantError::Violation(Cow::Borrowed("internal error: the state does not belong to this invariant"))
}

impl Builtin {
    /// TotalSupply within `[min, max]`; fails unless `min <= initial <= max`.
    pub fn total_supply(initial: i128, min: i128, max: i128) -> Result<Self, String> {
        TotalSupply::new(initial, min, max).map(Builtin::TotalSupply)
    }

    pub fn max(initial: i128) -> Self {
        Builtin::Max(Max::new(initial))
    }

    pub fn g_counter(initial: u128) -> Self {
        Builtin::GCounter(GCounter::new(initial))
    }

    /// Starts at 0.
    pub fn bounded_g_counter(bound: u128) -> Self {
        Builtin::BoundedGCounter(BoundedGCounter::new(bound))
    }

    /// Fails unless `initial <= bound`.
    pub fn bounded_g_counter_from(initial: u128, bound: u128) -> Result<Self, String> {
        BoundedGCounter::with_initial(initial, bound).map(Builtin::BoundedGCounter)
    }

    pub fn lww() -> Self {
        Builtin::Lww(Lww)
    }

    /// Exact set over `0..512`, in the cell.
    pub fn uniqueness_cell() -> Self {
        Builtin::UniquenessCell(UniquenessCell)
    }

    /// Set of 32-byte keys; `max_elements` of `Some(0)` is refused.
    pub fn unique_set(max_elements: Option<u64>) -> Result<Self, String> {
        match max_elements {
            None => Ok(Builtin::UniqueSet(UniqueSet::new())),
            Some(m) => UniqueSet::with_max_elements(m).map(Builtin::UniqueSet),
        }
    }

    /// 16-vertex graph in the cell; each limit must be in `1..=16`.
    pub fn g_graph_cell(limits: DegreeLimits) -> Result<Self, String> {
        GGraphCell::new(limits).map(Builtin::GGraphCell)
    }

    /// Graph over u64 vertices; limits and `max_edges` must be at least 1.
    pub fn graph(limits: DegreeLimits, max_edges: Option<u64>) -> Result<Self, String> {
        Graph::new(limits, max_edges).map(Builtin::Graph)
    }

    /// The JS-facing name of the invariant kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Builtin::TotalSupply(_) => "totalSupply",
            Builtin::Max(_) => "max",
            Builtin::GCounter(_) => "gCounter",
            Builtin::BoundedGCounter(_) => "boundedGCounter",
            Builtin::Lww(_) => "lww",
            Builtin::UniquenessCell(_) => "uniqueness",
            Builtin::UniqueSet(_) => "uniqueSet",
            Builtin::GGraphCell(_) => "gGraph",
            Builtin::Graph(_) => "graph",
            Builtin::Custom(_) => "custom",
        }
    }

    /// The declared class (depends on bounds for some kinds).
    pub fn class(&self) -> AlgebraicClass {
        match self {
            Builtin::TotalSupply(i) => CellInvariant::class(i),
            Builtin::Max(i) => CellInvariant::class(i),
            Builtin::GCounter(i) => CellInvariant::class(i),
            Builtin::BoundedGCounter(i) => CellInvariant::class(i),
            Builtin::Lww(i) => CellInvariant::class(i),
            Builtin::UniquenessCell(i) => CellInvariant::class(i),
            Builtin::UniqueSet(i) => i.class(),
            Builtin::GGraphCell(i) => CellInvariant::class(i),
            Builtin::Graph(i) => i.class(),
            Builtin::Custom(i) => CellInvariant::class(i),
        }
    }

    pub fn coordination(&self) -> Coordination {
        self.class().coordination()
    }

    /// Whether the state has a heap part (sets and graphs).
    pub fn has_extension(&self) -> bool {
        matches!(self, Builtin::UniqueSet(_) | Builtin::Graph(_))
    }
}

impl Invariant for Builtin {
    type State = BuiltinState;
    type Effect = BuiltinEffect;

    fn name(&self) -> &str {
        match self {
            Builtin::Custom(c) => CellInvariant::name(c),
            other => other.kind(),
        }
    }

    fn class(&self) -> AlgebraicClass {
        Builtin::class(self)
    }

    fn initial_state(&self) -> BuiltinState {
        match self {
            Builtin::TotalSupply(i) => BuiltinState { cell: i.initial_cell(), ext: Extension::None },
            Builtin::Max(i) => BuiltinState { cell: i.initial_cell(), ext: Extension::None },
            Builtin::GCounter(i) => BuiltinState { cell: i.initial_cell(), ext: Extension::None },
            Builtin::BoundedGCounter(i) => BuiltinState { cell: i.initial_cell(), ext: Extension::None },
            Builtin::Lww(i) => BuiltinState { cell: i.initial_cell(), ext: Extension::None },
            Builtin::UniquenessCell(i) => BuiltinState { cell: i.initial_cell(), ext: Extension::None },
            Builtin::GGraphCell(i) => BuiltinState { cell: i.initial_cell(), ext: Extension::None },
            Builtin::UniqueSet(i) => BuiltinState { cell: i.summary_cell(), ext: Extension::Set(KeySet::default()) },
            Builtin::Graph(i) => BuiltinState { cell: i.summary_cell(), ext: Extension::Graph(VertexGraph::default()) },
            Builtin::Custom(i) => BuiltinState { cell: i.initial_cell(), ext: Extension::None },
        }
    }

    #[inline(always)]
    fn check(&self, fact: &Fact<'_>, state: &BuiltinState) -> Result<BuiltinEffect, InvariantError> {
        let cell = &state.cell;
        match self {
            Builtin::TotalSupply(i) => cell_check(i, fact, cell),
            Builtin::Max(i) => cell_check(i, fact, cell),
            Builtin::GCounter(i) => cell_check(i, fact, cell),
            Builtin::BoundedGCounter(i) => cell_check(i, fact, cell),
            Builtin::Lww(i) => cell_check(i, fact, cell),
            Builtin::UniquenessCell(i) => cell_check(i, fact, cell),
            Builtin::GGraphCell(i) => cell_check(i, fact, cell),
            Builtin::UniqueSet(i) => set_check(i, fact, state),
            Builtin::Graph(i) => graph_check(i, fact, state),
            Builtin::Custom(i) => custom_check(i, fact, cell),
        }
    }

    fn check_merge(&self, fact: &Fact<'_>, state: &BuiltinState) -> Result<BuiltinEffect, InvariantError> {
        let cell = &state.cell;
        match self {
            Builtin::TotalSupply(i) => cell_merge(i, fact, cell),
            Builtin::Max(i) => cell_merge(i, fact, cell),
            Builtin::GCounter(i) => cell_merge(i, fact, cell),
            Builtin::BoundedGCounter(i) => cell_merge(i, fact, cell),
            Builtin::Lww(i) => cell_merge(i, fact, cell),
            Builtin::UniquenessCell(i) => cell_merge(i, fact, cell),
            Builtin::GGraphCell(i) => cell_merge(i, fact, cell),
            Builtin::UniqueSet(i) => {
                let Extension::Set(keys) = &state.ext else { return Err(mismatch()) };
                let SetEffect { cell, key } = i.merge_parts(fact.payload, &state.cell, keys)?;
                Ok(BuiltinEffect { cell, ext: ExtEffect::InsertKey(key) })
            }
            Builtin::Graph(i) => {
                let Extension::Graph(g) = &state.ext else { return Err(mismatch()) };
                let GraphEffect { cell, edge } = i.check_parts_with(fact.payload, &state.cell, g, false)?;
                Ok(BuiltinEffect { cell, ext: edge.map_or(ExtEffect::None, |(f, t)| ExtEffect::InsertEdge(f, t)) })
            }
            Builtin::Custom(i) => cell_merge(i, fact, cell),
        }
    }

    /// The cell variants check on a scratch copy and write it back: no
    /// effect value travels (measured ~75 ns per admission less for a
    /// one-member kernel of the binding). The others check, then commit.
    #[inline(always)]
    fn check_commit<const MERGE: bool>(&self, fact: &Fact<'_>, state: &mut BuiltinState) -> Result<(), InvariantError> {
        #[inline(always)]
        fn cell<C: CellInvariant, const MERGE: bool>(inv: &C, fact: &Fact<'_>, state: &mut BuiltinState) -> Result<(), InvariantError> {
            let mut scratch = state.cell;
            if MERGE { inv.apply_merge(fact, &mut scratch)? } else { inv.apply(fact, &mut scratch)? }
            state.cell = scratch;
            Ok(())
        }
        match self {
            Builtin::TotalSupply(i) => cell::<_, MERGE>(i, fact, state),
            Builtin::Max(i) => cell::<_, MERGE>(i, fact, state),
            Builtin::GCounter(i) => cell::<_, MERGE>(i, fact, state),
            Builtin::BoundedGCounter(i) => cell::<_, MERGE>(i, fact, state),
            Builtin::Lww(i) => cell::<_, MERGE>(i, fact, state),
            Builtin::UniquenessCell(i) => cell::<_, MERGE>(i, fact, state),
            Builtin::GGraphCell(i) => cell::<_, MERGE>(i, fact, state),
            _ => crate::invariant::check_then_commit::<Self, MERGE>(self, fact, state),
        }
    }

    #[inline(always)]
    fn commit(&self, effect: BuiltinEffect, state: &mut BuiltinState) {
        state.cell = effect.cell;
        if !matches!(effect.ext, ExtEffect::None) {
            ext_commit(effect.ext, &mut state.ext);
        }
    }
}

// The heap variants are kept out of line so that the dispatch above stays
// small enough to inline into the kernel for the cell variants.

#[inline(never)]
fn set_check(inv: &UniqueSet, fact: &Fact<'_>, state: &BuiltinState) -> Result<BuiltinEffect, InvariantError> {
    let Extension::Set(keys) = &state.ext else { return Err(mismatch()) };
    let SetEffect { cell, key } = inv.check_parts(fact.payload, &state.cell, keys)?;
    Ok(BuiltinEffect { cell, ext: ExtEffect::InsertKey(key) })
}

#[inline(never)]
fn graph_check(inv: &Graph, fact: &Fact<'_>, state: &BuiltinState) -> Result<BuiltinEffect, InvariantError> {
    let Extension::Graph(g) = &state.ext else { return Err(mismatch()) };
    let GraphEffect { cell, edge } = inv.check_parts(fact.payload, &state.cell, g)?;
    let ext = match edge {
        Some((from, to)) => ExtEffect::InsertEdge(from, to),
        None => ExtEffect::None,
    };
    Ok(BuiltinEffect { cell, ext })
}

#[inline(never)]
fn custom_check(inv: &crate::custom::Custom, fact: &Fact<'_>, cell: &StateCell) -> Result<BuiltinEffect, InvariantError> {
    cell_check(inv, fact, cell)
}

#[inline(never)]
fn ext_commit(effect: ExtEffect, ext: &mut Extension) {
    match (effect, ext) {
        (ExtEffect::None, _) => {}
        (ExtEffect::InsertKey(k), Extension::Set(keys)) => keys.insert(k),
        (ExtEffect::InsertEdge(from, to), Extension::Graph(g)) => g.insert(from, to),
        // `check` refuses a mismatched state, so no effect reaches here.
        _ => debug_assert!(false, "effect does not match the state's extension"),
    }
}

/// Checkpoint form: the 64-byte cell, then for a set `count u64 | keys
/// (32 B each, sorted)` and for a graph `count u64 | edges (from u64, to
/// u64, sorted)`. Sorted so that equal states encode to equal bytes.
impl crate::kernel::SnapshotState for Builtin {
    /// The cell: for the heap variants it holds the count and an
    /// order-independent digest of every element.
    fn digest_state(&self, state: &BuiltinState, hasher: &mut blake3::Hasher) {
        hasher.update(&state.cell.0);
    }

    fn encode_state(&self, state: &BuiltinState, out: &mut Vec<u8>) {
        out.extend_from_slice(&state.cell.0);
        match &state.ext {
            Extension::None => {}
            Extension::Set(keys) => {
                let mut v: Vec<&[u8; KEY_LEN]> = keys.iter().collect();
                v.sort_unstable();
                out.extend_from_slice(&(v.len() as u64).to_le_bytes());
                for k in v {
                    out.extend_from_slice(k);
                }
            }
            Extension::Graph(g) => {
                let mut v: Vec<(u64, u64)> = g.edges().collect();
                v.sort_unstable();
                out.extend_from_slice(&(v.len() as u64).to_le_bytes());
                for (a, b) in v {
                    out.extend_from_slice(&a.to_le_bytes());
                    out.extend_from_slice(&b.to_le_bytes());
                }
            }
        }
    }

    fn decode_state(&self, bytes: &[u8]) -> Result<BuiltinState, String> {
        let (cell, rest) = bytes.split_at_checked(StateCell::SIZE).ok_or("state shorter than a cell")?;
        let cell = StateCell::from_prefix(cell).ok_or("bad cell")?;
        let count = |rest: &[u8], width: usize| -> Result<usize, String> {
            let (n, body) = rest.split_at_checked(8).ok_or("missing element count")?;
            let n = u64::from_le_bytes(n.try_into().map_err(|_| "short")?);
            if body.len() as u64 != n.saturating_mul(width as u64) {
                return Err(format!("{n} elements do not fill {} bytes", body.len()));
            }
            Ok(n as usize)
        };
        let ext = match self {
            Builtin::UniqueSet(_) => {
                count(rest, KEY_LEN)?;
                let mut keys = KeySet::default();
                for k in rest[8..].chunks_exact(KEY_LEN) {
                    keys.insert(k.try_into().map_err(|_| "short key")?);
                }
                if keys.len() as u64 != crate::invariants::uniqueness::UniqueSet::count(&cell) {
                    return Err("set size does not match its summary".into());
                }
                Extension::Set(keys)
            }
            Builtin::Graph(_) => {
                count(rest, 16)?;
                let mut g = VertexGraph::default();
                for e in rest[8..].chunks_exact(16) {
                    let a = u64::from_le_bytes(e[..8].try_into().map_err(|_| "short")?);
                    let b = u64::from_le_bytes(e[8..].try_into().map_err(|_| "short")?);
                    g.insert(a, b);
                }
                if g.edge_count() as u64 != Graph::edge_count(&cell) {
                    return Err("graph size does not match its summary".into());
                }
                Extension::Graph(g)
            }
            _ => {
                if !rest.is_empty() {
                    return Err("trailing bytes after a cell state".into());
                }
                Extension::None
            }
        };
        Ok(BuiltinState { cell, ext })
    }
}

/// Escrow: what each bounded built-in's facts use of its bound.
impl Escrowed for Builtin {
    fn member_class(&self, _member: usize) -> (&str, AlgebraicClass) {
        (Invariant::name(self), Builtin::class(self))
    }

    fn refuses_duplicates(&self, _member: usize) -> bool {
        matches!(self, Builtin::UniquenessCell(_) | Builtin::UniqueSet(_))
    }

    fn headroom(&self, _member: usize, state: &BuiltinState) -> crate::replica::Headroom {
        use crate::replica::Headroom;
        let cell = &state.cell;
        match self {
            Builtin::TotalSupply(t) => t.headroom(0, cell),
            Builtin::BoundedGCounter(_) => {
                let s = BoundedGCounter::read(cell);
                Headroom { down: None, up: Some(s.bound.saturating_sub(s.sum)) }
            }
            Builtin::UniqueSet(u) => match u.max_elements {
                Some(m) => Headroom { down: None, up: Some(m.saturating_sub(crate::invariants::uniqueness::UniqueSet::count(cell)) as u128) },
                None => Headroom::default(),
            },
            Builtin::Graph(g) => match g.max_edges() {
                Some(m) => Headroom { down: None, up: Some(m.saturating_sub(Graph::edge_count(cell)) as u128) },
                None => Headroom::default(),
            },
            _ => Headroom::default(),
        }
    }

    fn demands(&self, payload: &[u8], out: &mut Vec<crate::replica::Demand>) {
        use crate::replica::Demand;
        match self {
            Builtin::TotalSupply(t) => t.demands(payload, out),
            Builtin::BoundedGCounter(_) => {
                if let Ok(raw) = <[u8; 8]>::try_from(payload) {
                    out.push(Demand { member: 0, down: 0, up: u64::from_le_bytes(raw) as u128 });
                }
            }
            // one element / edge each (a duplicate is refused later and its
            // quota released; a re-added edge is admitted and uses one unit)
            Builtin::UniqueSet(_) | Builtin::Graph(_) => out.push(Demand { member: 0, down: 0, up: 1 }),
            _ => out.push(Demand { member: 0, down: 0, up: 0 }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invariants::testkit::{fact, run, shuffle, OwnedFact, Replica};
    use crate::kernel::{CausalityMode, Kernel};
    use proptest::prelude::*;

    fn all() -> Vec<Builtin> {
        vec![
            Builtin::total_supply(0, i128::MIN, i128::MAX).unwrap(),
            Builtin::total_supply(0, 0, 100).unwrap(),
            Builtin::max(0),
            Builtin::g_counter(0),
            Builtin::bounded_g_counter(100),
            Builtin::lww(),
            Builtin::uniqueness_cell(),
            Builtin::unique_set(None).unwrap(),
            Builtin::unique_set(Some(3)).unwrap(),
            Builtin::g_graph_cell(DegreeLimits::default()).unwrap(),
            Builtin::g_graph_cell(DegreeLimits { max_in: Some(1), ..Default::default() }).unwrap(),
            Builtin::graph(DegreeLimits::default(), None).unwrap(),
            Builtin::graph(DegreeLimits::default(), Some(5)).unwrap(),
            Builtin::graph(DegreeLimits { max_out: Some(2), ..Default::default() }, None).unwrap(),
        ]
    }

    #[test]
    fn class_and_coordination_table() {
        use AlgebraicClass as C;
        use Coordination as K;
        let got: Vec<(&str, C, K)> = all().iter().map(|b| (b.kind(), b.class(), b.coordination())).collect();
        assert_eq!(
            got,
            vec![
                ("totalSupply", C::Group, K::None),
                ("totalSupply", C::Bounded, K::Escrow),
                ("max", C::Semilattice, K::None),
                ("gCounter", C::CommutativeMonoid, K::None),
                ("boundedGCounter", C::Bounded, K::Escrow),
                ("lww", C::LastWriterWins, K::None),
                ("uniqueness", C::IdempotentSet, K::None),
                ("uniqueSet", C::IdempotentSet, K::None),
                ("uniqueSet", C::Bounded, K::Escrow),
                ("gGraph", C::GrowOnlyGraph, K::None),
                ("gGraph", C::NonCommutative, K::Required),
                ("graph", C::GrowOnlyGraph, K::None),
                ("graph", C::Bounded, K::Escrow),
                ("graph", C::NonCommutative, K::Required),
            ]
        );
        for b in all() {
            assert_eq!(Invariant::coordination(&b), b.coordination());
            assert_eq!(Invariant::name(&b), b.kind());
            assert_eq!(b.has_extension(), !matches!(b.initial_state().ext, Extension::None));
        }
    }

    #[test]
    fn constructors_validate() {
        assert!(Builtin::total_supply(5, 6, 10).unwrap_err().contains("outside"));
        assert!(Builtin::bounded_g_counter_from(11, 10).unwrap_err().contains("bound"));
        assert!(Builtin::unique_set(Some(0)).unwrap_err().contains("maxElements"));
        assert!(Builtin::g_graph_cell(DegreeLimits { max_out: Some(17), ..Default::default() }).unwrap_err().contains("maxOutDegree"));
        assert!(Builtin::graph(DegreeLimits { max_in: Some(0), ..Default::default() }, None).unwrap_err().contains("maxInDegree"));
        assert!(Builtin::graph(DegreeLimits::default(), Some(0)).unwrap_err().contains("maxEdges"));
    }

    /// Each variant's cell matches the standalone invariant's, byte for byte.
    #[test]
    fn cells_match_standalone_invariants() {
        let facts: Vec<OwnedFact> = (0..20u64).map(|i| OwnedFact::new(i, (i as u128 * 3).to_le_bytes())).collect();
        let b = run(&Builtin::max(0), &facts);
        assert_eq!(b.cell, run(&Max::new(0), &facts));
        let facts: Vec<OwnedFact> = (0..20u64).map(|i| OwnedFact::new(i, [i as u8 % 7, 1 + i as u8 % 5])).collect();
        let b = run(&Builtin::g_graph_cell(DegreeLimits::default()).unwrap(), &facts);
        assert_eq!(b.cell, run(&GGraphCell::new(DegreeLimits::default()).unwrap(), &facts));
        let keys: Vec<OwnedFact> = (0..20u64).map(|i| OwnedFact::new(i, [(i % 9) as u8; 32])).collect();
        let b = run(&Builtin::unique_set(None).unwrap(), &keys);
        let s = run(&UniqueSet::new(), &keys);
        assert_eq!((b.cell, b.keys().unwrap()), (s.cell, &s.keys));
        let edges: Vec<OwnedFact> = (0..20u64).map(|i| OwnedFact::new(i, Graph::payload(i % 4, i % 7))).collect();
        let b = run(&Builtin::graph(DegreeLimits::default(), None).unwrap(), &edges);
        let g = run(&Graph::new(DegreeLimits::default(), None).unwrap(), &edges);
        assert_eq!((b.cell, b.graph().unwrap()), (g.cell, &g.graph));
    }

    #[test]
    fn refusals_leave_state_unchanged() {
        // (invariant, a fact it refuses once the first facts are in)
        type Case = (Builtin, Vec<Vec<u8>>, Vec<u8>, fn(&InvariantError) -> bool);
        let cases: Vec<Case> = vec![
            (Builtin::total_supply(0, 0, 10).unwrap(), vec![5i128.to_le_bytes().to_vec()], 6i128.to_le_bytes().to_vec(), |e| matches!(e, InvariantError::Violation(_))),
            (Builtin::bounded_g_counter(10), vec![5u64.to_le_bytes().to_vec()], 6u64.to_le_bytes().to_vec(), |e| matches!(e, InvariantError::Violation(_))),
            (Builtin::max(0), vec![5i128.to_le_bytes().to_vec()], vec![1, 2], |e| matches!(e, InvariantError::MalformedPayload(_))),
            (Builtin::lww(), vec![Lww::payload(1, b"x").unwrap()], vec![0; 25], |e| matches!(e, InvariantError::MalformedPayload(_))),
            (Builtin::uniqueness_cell(), vec![vec![7, 0]], vec![7, 0], |e| *e == InvariantError::DuplicateElement),
            (Builtin::unique_set(None).unwrap(), vec![vec![1; 32]], vec![1; 32], |e| *e == InvariantError::DuplicateElement),
            (Builtin::unique_set(Some(1)).unwrap(), vec![vec![1; 32]], vec![2; 32], |e| matches!(e, InvariantError::Violation(_))),
            (Builtin::g_graph_cell(DegreeLimits::default()).unwrap(), vec![vec![1, 2]], vec![3, 3], |e| matches!(e, InvariantError::Violation(_))),
            (Builtin::graph(DegreeLimits { max_out: Some(1), ..Default::default() }, None).unwrap(), vec![Graph::payload(1, 2).to_vec()], Graph::payload(1, 3).to_vec(), |e| matches!(e, InvariantError::Violation(_))),
            (Builtin::graph(DegreeLimits::default(), None).unwrap(), vec![Graph::payload(1, 2).to_vec()], vec![0; 8], |e| matches!(e, InvariantError::MalformedPayload(_))),
        ];
        for (inv, setup, bad, is_expected) in cases {
            let mut r = Replica::new(&inv);
            for (i, p) in setup.iter().enumerate() {
                r.admit(&OwnedFact::new(i as u64, p.clone())).unwrap();
            }
            let e = r.admit(&OwnedFact::new(99, bad)).unwrap_err(); // Replica asserts "unchanged"
            assert!(is_expected(&e), "{}: unexpected {e:?}", inv.kind());
        }
    }

    #[test]
    fn mismatched_state_is_refused_not_panicking() {
        let inv = Builtin::unique_set(None).unwrap();
        let wrong = Builtin::max(0).initial_state();
        assert!(matches!(inv.check(&fact(&[0; 32]), &wrong), Err(InvariantError::Violation(_))));
    }

    #[test]
    fn kernel_of_builtin_admits_and_refuses() {
        let mut k = Kernel::new(Builtin::unique_set(None).unwrap(), CausalityMode::Exact);
        k.admit_derived(&[], &[4; 32]).unwrap();
        let before = k.state().clone();
        let e = k.admit_derived(&[], &[4; 32]).unwrap_err();
        assert_eq!(e.code(), crate::error::ErrorCode::DuplicateElement);
        assert_eq!(*k.state(), before);
        assert!(k.state().keys().unwrap().contains(&[4; 32]));
        assert_eq!(UniqueSet::count(&k.state().cell), 1);

        let mut k = Kernel::new(Builtin::total_supply(1000, 0, 1_000_000).unwrap(), CausalityMode::Exact);
        k.admit_derived(&[], &TotalSupply::payload(500)).unwrap();
        assert_eq!(TotalSupply::read(&k.state().cell).balance, 1500);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        /// Every coordination-free built-in: any permutation of the same facts
        /// gives the same state (cell and extension). Payloads are arbitrary
        /// bytes of the right sizes (and some wrong ones).
        #[test]
        fn coordination_free_builtins_commute(raw in prop::collection::vec((prop::collection::vec(any::<u8>(), 32), 0usize..4), 0..40), seed in any::<u64>()) {
            for inv in all().into_iter().filter(|b| b.coordination() == Coordination::None) {
                let len = match &inv {
                    Builtin::TotalSupply(_) | Builtin::Max(_) | Builtin::Graph(_) => 16,
                    Builtin::GCounter(_) => 8,
                    Builtin::Lww(_) => 8 + 3,
                    Builtin::UniquenessCell(_) | Builtin::GGraphCell(_) => 2,
                    Builtin::UniqueSet(_) => 32,
                    Builtin::BoundedGCounter(_) | Builtin::Custom(_) => unreachable!(),
                };
                let mut facts: Vec<OwnedFact> = raw.iter().enumerate().map(|(i, (bytes, shape))| {
                    let mut p = bytes.clone();
                    match (&inv, shape) {
                        // Small values so counters and sums stay meaningful and sets repeat.
                        (Builtin::TotalSupply(_), _) => { let sign = if p[3] & 0x80 != 0 { 0xff } else { 0 }; p[4..16].fill(sign); }
                        (Builtin::UniquenessCell(_), _) | (Builtin::GGraphCell(_), _) => { p[0] %= 24; p[1] &= 3; }
                        (Builtin::UniqueSet(_), _) => { p[1..].fill(0); p[0] %= 16; }
                        (Builtin::Graph(_), _) => { p[1..8].fill(0); p[9..16].fill(0); p[0] %= 8; p[8] %= 8; }
                        (Builtin::Lww(_), _) => { p[1..8].fill(0); p[0] %= 3; }
                        _ => {}
                    }
                    let l = if *shape == 3 { len - 1 } else { len };
                    p.truncate(l);
                    OwnedFact::new(i as u64, p)
                }).collect();
                let a = run(&inv, &facts);
                shuffle(&mut facts, seed);
                let b = run(&inv, &facts);
                prop_assert_eq!(a, b, "{} diverged", inv.kind());
            }
        }
    }
}
