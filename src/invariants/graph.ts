import { bool, checkState, int, optionsOf, u64 } from './common.ts'
import { viewOf } from './int128.ts'
import { register } from './registry.ts'
import { coordinationOf, type AlgebraicClass, type InvariantSpec } from './types.ts'

/** Payload length of a graph fact. */
export const GRAPH_PAYLOAD_BYTES = 16

/** Options of {@link graph}. */
export interface GraphOptions {
  /** Most outgoing edges per vertex, `1..2^32−1` (default: none). */
  maxOutDegree?: number | bigint
  /** Most incoming edges per vertex, `1..2^32−1` (default: none). */
  maxInDegree?: number | bigint
  /** Whether `v -> v` edges are admitted (default false). */
  allowSelfLoops?: boolean
  /** Most edges in the graph, at least 1 (default: bounded by memory). */
  maxEdges?: bigint | number
}

/** The decoded graph summary cell. */
export interface GraphState {
  /** Number of edges. */
  edges: bigint
  /** Number of vertices touched by an edge. */
  vertices: bigint
  /**
   * Order-independent 256-bit digest of the edges (lane-wise wrapping sum of
   * the keyed BLAKE3 of each edge's payload): equal graphs, equal digests.
   */
  digest: Uint8Array
}

/** A grow-only directed graph over u64 vertex ids, on the heap. */
export interface Graph extends InvariantSpec<GraphState> {
  readonly name: 'graph'
  /**
   * The payload of a fact adding the edge `from -> to` (u64 vertex ids).
   * Test an edge with `kernel.hasEdge(from, to)`.
   */
  edge(from: bigint | number, to: bigint | number): Uint8Array
}

/**
 * A grow-only directed graph over u64 vertex ids, held on the heap (bounded
 * by memory, roughly 60–100 bytes per edge).
 *
 * - payload: 16 bytes, `from` u64 LE then `to` u64 LE ({@link Graph.edge});
 * - state: the edge set and per-vertex degrees (heap; query with
 *   `kernel.hasEdge(from, to)`), and a 64-byte summary cell — what
 *   `kernel.state` shows: `edges` u64 @0, `vertices` u64 @8, `digest` @16
 *   (32 bytes, order-independent), 16 zero bytes @48;
 * - refusals (`INVARIANT_VIOLATION`): a self loop unless `allowSelfLoops`,
 *   an edge past a degree limit, a new edge once `maxEdges` are held.
 *   Re-adding an existing edge is admitted and changes nothing;
 * - class: `'growOnlyGraph'` (`'none'`) with no limit; `'bounded'`
 *   (`'escrow'`) with only `maxEdges` (one scalar bound); `'nonCommutative'`
 *   (`'required'`) with any degree limit (one bound per vertex, which escrow
 *   cannot split).
 *
 * @example
 * const follows = invariants.graph()
 * const k = new Kernel({ invariant: follows })
 * k.admit(follows.edge(1n, 2n))
 * k.hasEdge(1n, 2n) // true
 */
export function graph(options?: GraphOptions): Graph {
  const o = optionsOf(options, ['maxOutDegree', 'maxInDegree', 'allowSelfLoops', 'maxEdges'])
  const maxOut = o.maxOutDegree === undefined ? null : int(o.maxOutDegree, 'maxOutDegree', 1, 2 ** 32 - 1)
  const maxIn = o.maxInDegree === undefined ? null : int(o.maxInDegree, 'maxInDegree', 1, 2 ** 32 - 1)
  const selfLoops = bool(o.allowSelfLoops, 'allowSelfLoops', false)
  const maxEdges = o.maxEdges === undefined ? null : u64(o.maxEdges, 'maxEdges', 1n)
  const cls: AlgebraicClass =
    maxOut !== null || maxIn !== null ? 'nonCommutative' : maxEdges !== null ? 'bounded' : 'growOnlyGraph'
  return register({
    name: 'graph',
    class: cls,
    coordination: coordinationOf(cls),
    native: {
      kind: 'graph',
      ...(maxOut !== null ? { maxOutDegree: maxOut } : {}),
      ...(maxIn !== null ? { maxInDegree: maxIn } : {}),
      ...(maxEdges !== null ? { maxEdges } : {}),
      allowSelfLoops: selfLoops,
    },
    edge(from: bigint | number, to: bigint | number): Uint8Array {
      const f = u64(from, 'from')
      const t = u64(to, 'to')
      const out = new Uint8Array(GRAPH_PAYLOAD_BYTES)
      const v = new DataView(out.buffer)
      v.setBigUint64(0, f, true)
      v.setBigUint64(8, t, true)
      return out
    },
    read(state: Uint8Array): GraphState {
      checkState(state, 48)
      const v = viewOf(state)
      return { edges: v.getBigUint64(0, true), vertices: v.getBigUint64(8, true), digest: state.slice(16, 48) }
    },
  })
}
