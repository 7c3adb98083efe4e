//! Grow-only directed graphs: [`GGraphCell`] (16 vertices, in the cell) and
//! [`Graph`] (u64 vertex ids, on the heap). Edges are added, never removed.
//!
//! # Constraints (both variants, [`DegreeLimits`])
//!
//! - **self loops** (`from == to`) are refused with a
//!   [`InvariantError::Violation`] unless `allow_self_loops`;
//! - **max out-degree** / **max in-degree** (optional): an edge that would
//!   give `from` more outgoing, or `to` more incoming, edges than the limit is
//!   a `Violation`;
//! - [`Graph`] only: **max_edges** (optional), a `Violation` once reached.
//!
//! **Re-adding an existing edge** is admitted and changes nothing (not
//! `DuplicateElement`). A grow-only graph is a set of edges, and the fact
//! that re-asserts an edge is true of the graph; admitting it as a no-op lets
//! replicas converge on the same *facts*, not only on the same state, and it
//! is never refused by a degree limit (the degree does not change). This is
//! deliberately unlike [`super::UniqueSet`], where refusing the second claim
//! *is* the invariant.
//!
//! Checks, in order: payload shape → self loop → existing edge (no-op) →
//! degree limits → edge limit. Refusals change nothing.
//!
//! # Class and coordination
//!
//! - **No degree limit, no edge limit** → [`AlgebraicClass::GrowOnlyGraph`],
//!   coordination none. The only refusals are the malformed payload and the
//!   self loop, both decided by the fact alone, so any order of the same facts
//!   admits the same facts and yields the same edge set (a G-Set).
//! - **Any effective degree limit** → [`AlgebraicClass::NonCommutative`],
//!   coordination **required**. With `max_in = 1`, replica A admits `1 → 3`
//!   and replica B admits `2 → 3`, each valid locally; after exchanging facts
//!   each refuses the other's edge and they differ forever. That is the same
//!   shape as a bounded counter, but the bound is one counter *per vertex*
//!   (two per vertex, with both limits), over a vertex space that for
//!   [`Graph`] is unbounded; escrow splits one scalar bound into per-replica
//!   quotas and cannot express it. Per-vertex escrow would be possible in
//!   principle; it is not offered, so replicated use needs coordination.
//! - [`Graph`] with only `max_edges` → [`AlgebraicClass::Bounded`], escrow:
//!   the edge count is one scalar bound.
//!
//! A limit is *effective* when it can bind: for [`GGraphCell`] a limit of 16
//! (15 without self loops) can never be reached past, so it counts as none.
//!
//! # GGraphCell
//!
//! **Payload**: exactly 2 bytes, `from: u8`, `to: u8`, each below 16.
//!
//! **State** (64 bytes): adjacency @0..32 — row `from` is a u16 little-endian
//! at byte `2·from`, bit `to` set when the edge exists; `edge_count: u16 @32`;
//! the limits, so the cell describes itself: `max_out: u8 @34`,
//! `max_in: u8 @35` (0xFF = none), `flags: u8 @36` (bit 0 = self loops
//! allowed); 27 zero bytes @37.
//!
//! # Graph
//!
//! **Payload**: exactly 16 bytes, `from: u64`, `to: u64`, little-endian.
//!
//! **State**: a summary cell plus a [`VertexGraph`] (edge set + per-vertex
//! degrees; grows with the graph, roughly 60–100 bytes per edge). Summary
//! cell: `edge_count: u64 @0`, `vertex_count: u64 @8` (vertices touched by an
//! edge), `digest: [u8; 32] @16` (lane-wise wrapping sum of the keyed BLAKE3
//! of each edge's 16-byte payload encoding — order-independent), 16 zero
//! bytes @48.

use std::collections::{HashMap, HashSet};

use crate::fact::Fact;
use crate::invariant::{AlgebraicClass, CellInvariant, Invariant, InvariantError};
use crate::invariants::{digest_add, exact_payload, violation};
use crate::state::StateCell;

/// Constraints on a grow-only graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DegreeLimits {
    pub allow_self_loops: bool,
    pub max_out: Option<u32>,
    pub max_in: Option<u32>,
}

impl Default for DegreeLimits {
    /// No self loops, no degree limits.
    fn default() -> Self {
        DegreeLimits { allow_self_loops: false, max_out: None, max_in: None }
    }
}

impl DegreeLimits {
    fn validate(&self, name: &str, ceiling: u32) -> Result<(), String> {
        for (label, v) in [("maxOutDegree", self.max_out), ("maxInDegree", self.max_in)] {
            if let Some(v) = v
                && (v == 0 || v > ceiling)
            {
                return Err(format!("{name} {label} must be in 1..={ceiling}, got {v}"));
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- GGraphCell

pub const VERTICES: u8 = 16;
pub const ADJACENCY: usize = 0;
pub const EDGE_COUNT: usize = 32;
pub const MAX_OUT: usize = 34;
pub const MAX_IN: usize = 35;
pub const FLAGS: usize = 36;
pub const FLAG_SELF_LOOPS: u8 = 1;
const NO_LIMIT: u8 = 0xFF;
pub const CELL_PAYLOAD_LEN: usize = 2;

/// Grow-only graph over the 16 vertices `0..=15`, entirely in the cell.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GGraphCell {
    limits: DegreeLimits,
}

#[inline(always)]
fn row(cell: &StateCell, v: u8) -> u16 {
    let at = ADJACENCY + 2 * v as usize;
    u16::from_le_bytes([cell.0[at], cell.0[at + 1]])
}

#[inline(always)]
fn set_row(cell: &mut StateCell, v: u8, bits: u16) {
    let at = ADJACENCY + 2 * v as usize;
    cell.0[at..at + 2].copy_from_slice(&bits.to_le_bytes());
}

impl GGraphCell {
    /// Fails unless each limit is in `1..=16`.
    pub fn new(limits: DegreeLimits) -> Result<Self, String> {
        limits.validate("gGraph", VERTICES as u32)?;
        Ok(GGraphCell { limits })
    }

    pub fn limits(&self) -> DegreeLimits {
        self.limits
    }

    /// Whether a degree limit can bind (see the module docs).
    pub fn is_degree_bounded(&self) -> bool {
        let reachable = if self.limits.allow_self_loops { VERTICES as u32 } else { VERTICES as u32 - 1 };
        self.limits.max_out.is_some_and(|m| m < reachable) || self.limits.max_in.is_some_and(|m| m < reachable)
    }

    /// Encodes an edge; `None` unless both ends are below 16.
    pub fn payload(from: u8, to: u8) -> Option<[u8; 2]> {
        (from < VERTICES && to < VERTICES).then_some([from, to])
    }

    pub fn has_edge(cell: &StateCell, from: u8, to: u8) -> bool {
        from < VERTICES && to < VERTICES && row(cell, from) & (1 << to) != 0
    }

    pub fn out_degree(cell: &StateCell, v: u8) -> u32 {
        if v < VERTICES { row(cell, v).count_ones() } else { 0 }
    }

    pub fn in_degree(cell: &StateCell, v: u8) -> u32 {
        if v >= VERTICES {
            return 0;
        }
        (0..VERTICES).filter(|&u| row(cell, u) & (1 << v) != 0).count() as u32
    }

    pub fn edge_count(cell: &StateCell) -> u16 {
        u16::from_le_bytes([cell.0[EDGE_COUNT], cell.0[EDGE_COUNT + 1]])
    }
}

impl CellInvariant for GGraphCell {
    fn name(&self) -> &str {
        "gGraph"
    }

    fn class(&self) -> AlgebraicClass {
        if self.is_degree_bounded() { AlgebraicClass::NonCommutative } else { AlgebraicClass::GrowOnlyGraph }
    }

    fn initial_cell(&self) -> StateCell {
        let mut c = StateCell::zeroed();
        c.0[MAX_OUT] = self.limits.max_out.map_or(NO_LIMIT, |m| m as u8);
        c.0[MAX_IN] = self.limits.max_in.map_or(NO_LIMIT, |m| m as u8);
        c.0[FLAGS] = if self.limits.allow_self_loops { FLAG_SELF_LOOPS } else { 0 };
        c
    }

    #[inline(always)]
    fn apply(&self, fact: &Fact<'_>, cell: &mut StateCell) -> Result<(), InvariantError> {
        let [from, to] = exact_payload::<CELL_PAYLOAD_LEN>(fact.payload, "gGraph", "u8 from, u8 to")?;
        if from >= VERTICES || to >= VERTICES {
            return Err(InvariantError::MalformedPayload(std::borrow::Cow::Owned(format!(
                "gGraph vertices are 0..{} ({VERTICES} vertices), got edge {from} -> {to}", VERTICES - 1
            ))));
        }
        if from == to && !self.limits.allow_self_loops {
            return Err(violation(format!("gGraph refuses the self loop {from} -> {to}")));
        }
        let out = row(cell, from);
        if out & (1 << to) != 0 {
            return Ok(());
        }
        if let Some(m) = self.limits.max_out
            && out.count_ones() >= m
        {
            return Err(violation(format!("gGraph edge {from} -> {to}: vertex {from} already has out-degree {m} (the limit)")));
        }
        if let Some(m) = self.limits.max_in {
            let d = Self::in_degree(cell, to);
            if d >= m {
                return Err(violation(format!("gGraph edge {from} -> {to}: vertex {to} already has in-degree {d} (limit {m})")));
            }
        }
        set_row(cell, from, out | (1 << to));
        let n = Self::edge_count(cell) + 1;
        cell.0[EDGE_COUNT..EDGE_COUNT + 2].copy_from_slice(&n.to_le_bytes());
        Ok(())
    }
}

// --------------------------------------------------------------------- Graph

pub const EDGES: usize = 0;
pub const VERTEX_COUNT: usize = 8;
pub const DIGEST: usize = 16;
pub const PAYLOAD_LEN: usize = 16;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Degree {
    out: u32,
    inc: u32,
}

/// The edges and degrees of a [`Graph`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VertexGraph {
    edges: HashSet<(u64, u64)>,
    degrees: HashMap<u64, Degree>,
}

impl VertexGraph {
    pub fn contains_edge(&self, from: u64, to: u64) -> bool {
        self.edges.contains(&(from, to))
    }

    pub fn contains_vertex(&self, v: u64) -> bool {
        self.degrees.contains_key(&v)
    }

    pub fn out_degree(&self, v: u64) -> u32 {
        self.degrees.get(&v).map_or(0, |d| d.out)
    }

    pub fn in_degree(&self, v: u64) -> u32 {
        self.degrees.get(&v).map_or(0, |d| d.inc)
    }

    pub fn edge_count(&self) -> usize {
        self.edges.len()
    }

    pub fn vertex_count(&self) -> usize {
        self.degrees.len()
    }

    /// The edges, in no particular order.
    pub fn edges(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.edges.iter().copied()
    }

    pub(crate) fn insert(&mut self, from: u64, to: u64) {
        if self.edges.insert((from, to)) {
            self.degrees.entry(from).or_default().out += 1;
            self.degrees.entry(to).or_default().inc += 1;
        }
    }
}

/// Grow-only graph over u64 vertex ids, on the heap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Graph {
    limits: DegreeLimits,
    max_edges: Option<u64>,
}

/// State of a standalone [`Graph`]: summary cell + graph.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GraphState {
    pub cell: StateCell,
    pub graph: VertexGraph,
}

/// What committing an admitted edge does. `edge` is `None` when the edge was
/// already present (admitted, no change).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GraphEffect {
    pub cell: StateCell,
    pub edge: Option<(u64, u64)>,
}

impl Graph {
    /// Fails when a degree limit or `max_edges` is 0.
    pub fn new(limits: DegreeLimits, max_edges: Option<u64>) -> Result<Self, String> {
        limits.validate("graph", u32::MAX)?;
        if max_edges == Some(0) {
            return Err("graph maxEdges must be at least 1".into());
        }
        Ok(Graph { limits, max_edges })
    }

    pub fn limits(&self) -> DegreeLimits {
        self.limits
    }

    pub fn max_edges(&self) -> Option<u64> {
        self.max_edges
    }

    pub fn is_degree_bounded(&self) -> bool {
        self.limits.max_out.is_some() || self.limits.max_in.is_some()
    }

    pub fn class(&self) -> AlgebraicClass {
        if self.is_degree_bounded() {
            AlgebraicClass::NonCommutative
        } else if self.max_edges.is_some() {
            AlgebraicClass::Bounded
        } else {
            AlgebraicClass::GrowOnlyGraph
        }
    }

    pub fn payload(from: u64, to: u64) -> [u8; 16] {
        let mut p = [0u8; 16];
        p[..8].copy_from_slice(&from.to_le_bytes());
        p[8..].copy_from_slice(&to.to_le_bytes());
        p
    }

    pub fn edge_count(cell: &StateCell) -> u64 {
        cell.u64_at(EDGES)
    }

    pub fn vertex_count(cell: &StateCell) -> u64 {
        cell.u64_at(VERTEX_COUNT)
    }

    pub fn digest(cell: &StateCell) -> [u8; 32] {
        cell.0[DIGEST..DIGEST + 32].try_into().expect("32 bytes")
    }

    pub fn summary_cell(&self) -> StateCell {
        StateCell::zeroed()
    }

    /// The admission decision on a summary cell and graph, changing neither.
    #[inline]
    pub fn check_parts(&self, payload: &[u8], cell: &StateCell, g: &VertexGraph) -> Result<GraphEffect, InvariantError> {
        self.check_parts_with(payload, cell, g, true)
    }

    /// [`check_parts`](Self::check_parts), with `enforce_max: false` for a
    /// replicated merge (the origin's escrow quota enforced `max_edges`).
    #[inline]
    pub fn check_parts_with(&self, payload: &[u8], cell: &StateCell, g: &VertexGraph, enforce_max: bool) -> Result<GraphEffect, InvariantError> {
        let p = exact_payload::<PAYLOAD_LEN>(payload, "graph", "u64 from, u64 to")?;
        let from = u64::from_le_bytes(p[..8].try_into().expect("8 bytes"));
        let to = u64::from_le_bytes(p[8..].try_into().expect("8 bytes"));
        if from == to && !self.limits.allow_self_loops {
            return Err(violation(format!("graph refuses the self loop {from} -> {to}")));
        }
        if g.contains_edge(from, to) {
            return Ok(GraphEffect { cell: *cell, edge: None });
        }
        let (df, dt) = (g.degrees.get(&from), g.degrees.get(&to));
        if let Some(m) = self.limits.max_out
            && df.map_or(0, |d| d.out) >= m
        {
            return Err(violation(format!("graph edge {from} -> {to}: vertex {from} already has out-degree {m} (the limit)")));
        }
        if let Some(m) = self.limits.max_in
            && dt.map_or(0, |d| d.inc) >= m
        {
            return Err(violation(format!("graph edge {from} -> {to}: vertex {to} already has in-degree {m} (the limit)")));
        }
        let edges = cell.u64_at(EDGES);
        if enforce_max
            && let Some(m) = self.max_edges
            && edges >= m
        {
            return Err(violation(format!("graph is full: {edges} of at most {m} edges")));
        }
        let new_vertices = df.is_none() as u64 + (dt.is_none() && to != from) as u64;
        let mut next = *cell;
        next.set_u64(EDGES, edges + 1);
        next.set_u64(VERTEX_COUNT, cell.u64_at(VERTEX_COUNT) + new_vertices);
        digest_add(&mut next, DIGEST, &p);
        Ok(GraphEffect { cell: next, edge: Some((from, to)) })
    }

    #[inline]
    pub fn commit_parts(effect: GraphEffect, cell: &mut StateCell, g: &mut VertexGraph) {
        *cell = effect.cell;
        if let Some((from, to)) = effect.edge {
            g.insert(from, to);
        }
    }
}

impl Invariant for Graph {
    type State = GraphState;
    type Effect = GraphEffect;

    fn name(&self) -> &str {
        "graph"
    }

    fn class(&self) -> AlgebraicClass {
        Graph::class(self)
    }

    fn initial_state(&self) -> GraphState {
        GraphState { cell: self.summary_cell(), graph: VertexGraph::default() }
    }

    fn check(&self, fact: &Fact<'_>, state: &GraphState) -> Result<GraphEffect, InvariantError> {
        self.check_parts(fact.payload, &state.cell, &state.graph)
    }

    fn check_merge(&self, fact: &Fact<'_>, state: &GraphState) -> Result<GraphEffect, InvariantError> {
        self.check_parts_with(fact.payload, &state.cell, &state.graph, false)
    }

    fn commit(&self, effect: GraphEffect, state: &mut GraphState) {
        Self::commit_parts(effect, &mut state.cell, &mut state.graph);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invariant::Coordination;
    use crate::invariants::testkit::{fact, run, shuffle, OwnedFact, Replica};
    use proptest::prelude::*;

    fn limits(self_loops: bool, max_out: Option<u32>, max_in: Option<u32>) -> DegreeLimits {
        DegreeLimits { allow_self_loops: self_loops, max_out, max_in }
    }

    fn cell_edge(n: u64, from: u8, to: u8) -> OwnedFact {
        OwnedFact::new(n, [from, to])
    }

    fn edge(n: u64, from: u64, to: u64) -> OwnedFact {
        OwnedFact::new(n, Graph::payload(from, to))
    }

    #[test]
    fn cell_layout() {
        let inv = GGraphCell::new(limits(false, Some(3), None)).unwrap();
        let s0 = inv.initial_state();
        assert_eq!((s0.0[MAX_OUT], s0.0[MAX_IN], s0.0[FLAGS]), (3, 0xFF, 0));
        let s = run(&inv, &[cell_edge(1, 2, 9), cell_edge(2, 15, 0)]);
        // Row 2 at bytes 4..6, bit 9 → byte 5 bit 1.
        assert_eq!((s.0[4], s.0[5]), (0, 0b10));
        assert_eq!((s.0[30], s.0[31]), (1, 0));
        assert_eq!(GGraphCell::edge_count(&s), 2);
        assert_eq!(&s.0[32..34], &[2, 0]);
        assert_eq!(&s.0[37..], &[0; 27]);
        assert!(GGraphCell::has_edge(&s, 2, 9) && !GGraphCell::has_edge(&s, 9, 2));
        assert_eq!((GGraphCell::out_degree(&s, 2), GGraphCell::in_degree(&s, 9)), (1, 1));
        let with_loops = GGraphCell::new(limits(true, None, None)).unwrap();
        assert_eq!(with_loops.initial_state().0[FLAGS], FLAG_SELF_LOOPS);
    }

    #[test]
    fn cell_refusals_change_nothing() {
        let inv = GGraphCell::new(limits(false, Some(1), Some(2))).unwrap();
        let mut r = Replica::new(&inv);
        r.admit(&cell_edge(1, 0, 1)).unwrap();
        assert!(matches!(r.admit(&cell_edge(2, 3, 3)), Err(InvariantError::Violation(m)) if m.contains("self loop")));
        assert!(matches!(r.admit(&cell_edge(3, 0, 2)), Err(InvariantError::Violation(m)) if m.contains("out-degree")));
        r.admit(&cell_edge(4, 2, 1)).unwrap();
        assert!(matches!(r.admit(&cell_edge(5, 3, 1)), Err(InvariantError::Violation(m)) if m.contains("in-degree")));
        // Re-adding an edge is a no-op, even at the limits.
        let before = r.state;
        r.admit(&cell_edge(6, 0, 1)).unwrap();
        assert_eq!(r.state, before);
        for bad in [&[0u8, 16][..], &[16, 0][..], &[1][..], &[1, 2, 3][..]] {
            assert!(matches!(inv.check(&fact(bad), &r.state), Err(InvariantError::MalformedPayload(_))));
        }
        assert!(GGraphCell::payload(16, 0).is_none());
        // The message names the real range, 0..15.
        let e = inv.check(&fact(&[3, 16]), &r.state).unwrap_err();
        assert!(matches!(&e, InvariantError::MalformedPayload(m) if m.contains("vertices are 0..15") && m.contains("3 -> 16")), "{e:?}");
        assert!(GGraphCell::new(limits(false, Some(0), None)).is_err());
        assert!(GGraphCell::new(limits(false, None, Some(17))).is_err());
        // Self loops when allowed.
        let loops = GGraphCell::new(limits(true, None, None)).unwrap();
        assert!(loops.check(&fact(&[3, 3]), &loops.initial_state()).is_ok());
    }

    #[test]
    fn cell_is_complete_graph_capable() {
        let inv = GGraphCell::new(limits(true, None, None)).unwrap();
        let facts: Vec<OwnedFact> = (0..256u64).map(|i| cell_edge(i, (i / 16) as u8, (i % 16) as u8)).collect();
        let s = run(&inv, &facts);
        assert_eq!(GGraphCell::edge_count(&s), 256);
        assert_eq!(&s.0[..32], &[0xff; 32]);
    }

    #[test]
    fn classes() {
        let c = |l| CellInvariant::class(&GGraphCell::new(l).unwrap());
        assert_eq!(c(DegreeLimits::default()), AlgebraicClass::GrowOnlyGraph);
        assert_eq!(c(limits(false, Some(15), Some(15))), AlgebraicClass::GrowOnlyGraph);
        assert_eq!(c(limits(true, Some(15), None)), AlgebraicClass::NonCommutative);
        assert_eq!(c(limits(false, None, Some(4))), AlgebraicClass::NonCommutative);
        let g = |l, m| Graph::new(l, m).unwrap().class();
        assert_eq!(g(DegreeLimits::default(), None), AlgebraicClass::GrowOnlyGraph);
        assert_eq!(g(DegreeLimits::default(), Some(10)), AlgebraicClass::Bounded);
        assert_eq!(g(limits(true, Some(1000), None), Some(10)), AlgebraicClass::NonCommutative);
        assert_eq!(Graph::new(limits(false, Some(1), None), None).unwrap().coordination(), Coordination::Required);
        assert!(Graph::new(DegreeLimits::default(), Some(0)).is_err());
        assert!(Graph::new(limits(false, Some(0), None), None).is_err());
    }

    #[test]
    fn graph_summary_and_refusals() {
        let inv = Graph::new(limits(false, Some(2), Some(1)), Some(3)).unwrap();
        let mut r = Replica::new(&inv);
        r.admit(&edge(1, 10, 20)).unwrap();
        assert_eq!((Graph::edge_count(&r.state.cell), Graph::vertex_count(&r.state.cell)), (1, 2));
        r.admit(&edge(2, 10, 30)).unwrap();
        assert_eq!(Graph::vertex_count(&r.state.cell), 3);
        assert!(matches!(r.admit(&edge(3, 10, 40)), Err(InvariantError::Violation(m)) if m.contains("out-degree")));
        assert!(matches!(r.admit(&edge(4, 20, 30)), Err(InvariantError::Violation(m)) if m.contains("in-degree")));
        assert!(matches!(r.admit(&edge(5, 7, 7)), Err(InvariantError::Violation(m)) if m.contains("self loop")));
        let before = r.state.clone();
        r.admit(&edge(6, 10, 20)).unwrap();
        assert_eq!(r.state, before);
        r.admit(&edge(7, 20, 10)).unwrap();
        assert!(matches!(r.admit(&edge(8, 30, 50)), Err(InvariantError::Violation(m)) if m.contains("full")));
        assert!(matches!(r.admit(&OwnedFact::new(9, [0u8; 15])), Err(InvariantError::MalformedPayload(_))));
        let g = &r.state.graph;
        assert!(g.contains_edge(10, 20) && g.contains_edge(20, 10) && !g.contains_edge(10, 40));
        assert_eq!((g.out_degree(10), g.in_degree(10), g.edge_count(), g.vertex_count()), (2, 1, 3, 3));
        assert_eq!(Graph::vertex_count(&r.state.cell), 3);
        assert_ne!(Graph::digest(&r.state.cell), [0; 32]);
        assert_eq!(&r.state.cell.0[48..], &[0; 16]);
        // A self loop, when allowed, adds one vertex.
        let loops = Graph::new(limits(true, None, None), None).unwrap();
        let s = run(&loops, &[edge(1, 5, 5)]);
        assert_eq!((Graph::edge_count(&s.cell), Graph::vertex_count(&s.cell)), (1, 1));
        assert_eq!((s.graph.out_degree(5), s.graph.in_degree(5)), (1, 1));
    }

    /// Why degree limits need coordination: two replicas each admit an edge
    /// into the same vertex under `max_in = 1`; neither accepts the other's.
    #[test]
    fn degree_bound_two_replica_counterexample() {
        let cell_inv = GGraphCell::new(limits(false, None, Some(1))).unwrap();
        let (a, b) = (cell_edge(1, 1, 3), cell_edge(2, 2, 3));
        let mut ra = Replica::new(&cell_inv);
        let mut rb = Replica::new(&cell_inv);
        ra.admit(&a).unwrap();
        rb.admit(&b).unwrap();
        assert!(ra.admit(&b).is_err() && rb.admit(&a).is_err());
        assert_ne!(ra.state, rb.state);

        let inv = Graph::new(limits(false, Some(1), None), None).unwrap();
        let (a, b) = (edge(1, 7, 100), edge(2, 7, 200));
        let mut ra = Replica::new(&inv);
        let mut rb = Replica::new(&inv);
        ra.admit(&a).unwrap();
        rb.admit(&b).unwrap();
        assert!(ra.admit(&b).is_err() && rb.admit(&a).is_err());
        assert_ne!(ra.state, rb.state);
        assert_eq!(Graph::edge_count(&ra.state.cell), Graph::edge_count(&rb.state.cell));
    }

    /// Why `max_edges` needs escrow.
    #[test]
    fn max_edges_two_replica_counterexample() {
        let inv = Graph::new(DegreeLimits::default(), Some(1)).unwrap();
        let (a, b) = (edge(1, 1, 2), edge(2, 3, 4));
        let mut ra = Replica::new(&inv);
        let mut rb = Replica::new(&inv);
        ra.admit(&a).unwrap();
        rb.admit(&b).unwrap();
        assert!(ra.admit(&b).is_err() && rb.admit(&a).is_err());
        assert_ne!(ra.state, rb.state);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Without degree limits, any order (with repeated edges and self
        /// loops) gives the same cell and admits the same facts.
        #[test]
        fn cell_permutations_agree(edges in prop::collection::vec((0u8..16, 0u8..16), 0..80), seed in any::<u64>(), self_loops in any::<bool>()) {
            let inv = GGraphCell::new(limits(self_loops, None, None)).unwrap();
            let mut facts: Vec<OwnedFact> = edges.iter().enumerate().map(|(i, (f, t))| cell_edge(i as u64, *f, *t)).collect();
            let mut a = Replica::new(&inv);
            a.admit_all(&facts);
            shuffle(&mut facts, seed);
            let mut b = Replica::new(&inv);
            b.admit_all(&facts);
            prop_assert_eq!(a.state, b.state);
            a.admitted.sort();
            b.admitted.sort();
            prop_assert_eq!(a.admitted, b.admitted);
            let distinct: HashSet<(u8, u8)> = edges.iter().copied().filter(|(f, t)| self_loops || f != t).collect();
            prop_assert_eq!(GGraphCell::edge_count(&a.state) as usize, distinct.len());
        }

        #[test]
        fn graph_permutations_agree(edges in prop::collection::vec((0u64..12, 0u64..12), 0..80), seed in any::<u64>(), self_loops in any::<bool>()) {
            let inv = Graph::new(limits(self_loops, None, None), None).unwrap();
            let mut facts: Vec<OwnedFact> = edges.iter().enumerate().map(|(i, (f, t))| edge(i as u64, *f, *t)).collect();
            let mut a = Replica::new(&inv);
            a.admit_all(&facts);
            shuffle(&mut facts, seed);
            let mut b = Replica::new(&inv);
            b.admit_all(&facts);
            prop_assert_eq!(&a.state, &b.state);
            a.admitted.sort();
            b.admitted.sort();
            prop_assert_eq!(a.admitted, b.admitted);
            let distinct: HashSet<(u64, u64)> = edges.iter().copied().filter(|(f, t)| self_loops || f != t).collect();
            let vertices: HashSet<u64> = distinct.iter().flat_map(|(f, t)| [*f, *t]).collect();
            prop_assert_eq!(Graph::edge_count(&a.state.cell) as usize, distinct.len());
            prop_assert_eq!(Graph::vertex_count(&a.state.cell) as usize, vertices.len());
            prop_assert_eq!(a.state.graph.vertex_count(), vertices.len());
        }
    }
}
