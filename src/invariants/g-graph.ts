import { bool, checkState, int, optionsOf } from './common.ts'
import { register } from './registry.ts'
import { coordinationOf, type AlgebraicClass, type InvariantSpec } from './types.ts'

/** Vertices of a gGraph: `0..15`. */
export const G_GRAPH_VERTICES = 16

/** Options of {@link gGraph}. Limits are integers in `1..16`. */
export interface GGraphOptions {
  /** Most outgoing edges per vertex (default: none). */
  maxOutDegree?: number | bigint
  /** Most incoming edges per vertex (default: none). */
  maxInDegree?: number | bigint
  /** Whether `v -> v` edges are admitted (default false). */
  allowSelfLoops?: boolean
}

/** The decoded gGraph state. */
export interface GGraphState {
  /** Edges, as `[from, to]`, ordered by `from` then `to`. */
  edges: Array<[number, number]>
  /** Number of edges. */
  edgeCount: number
  hasEdge(from: number | bigint, to: number | bigint): boolean
  outDegree(v: number | bigint): number
  inDegree(v: number | bigint): number
  /** The limits the cell records (null = none). */
  maxOutDegree: number | null
  maxInDegree: number | null
  allowSelfLoops: boolean
}

/** A grow-only directed graph over the vertices `0..15`, in the cell. */
export interface GGraph extends InvariantSpec<GGraphState> {
  readonly name: 'gGraph'
  /** The payload of a fact adding the edge `from -> to` (integers in `0..15`, numbers or bigints). */
  edge(from: number | bigint, to: number | bigint): Uint8Array
}

/**
 * A grow-only directed graph over the vertices `0..15`, entirely in the cell.
 *
 * - payload: 2 bytes, `from` u8 and `to` u8, each below 16 ({@link GGraph.edge});
 * - state (64 bytes): adjacency @0..32 (row `from` is a u16 LE at byte
 *   `2·from`, bit `to` set when the edge exists), `edgeCount` u16 @32,
 *   `maxOut` u8 @34 and `maxIn` u8 @35 (0xFF = none), flags u8 @36 (bit 0:
 *   self loops allowed), 27 zero bytes @37;
 * - refusals (`INVARIANT_VIOLATION`): a self loop unless `allowSelfLoops`,
 *   an edge past a degree limit. Re-adding an existing edge is admitted and
 *   changes nothing (never refused, not even by a limit);
 * - class `'growOnlyGraph'` (coordination `'none'`) without an effective
 *   degree limit; `'nonCommutative'` (`'required'`) with one: with
 *   `maxInDegree: 1`, replicas admitting `1 -> 3` and `2 -> 3` each refuse the
 *   other's edge. A limit of 16 (15 without self loops) can never bind and
 *   counts as none.
 *
 * @example
 * const deps = invariants.gGraph()
 * const k = new Kernel({ invariant: deps })
 * k.admit(deps.edge(0, 1))
 * deps.read(k.state).hasEdge(0, 1) // true
 */
export function gGraph(options?: GGraphOptions): GGraph {
  const o = optionsOf(options, ['maxOutDegree', 'maxInDegree', 'allowSelfLoops'])
  const maxOut = o.maxOutDegree === undefined ? null : int(o.maxOutDegree, 'maxOutDegree', 1, G_GRAPH_VERTICES)
  const maxIn = o.maxInDegree === undefined ? null : int(o.maxInDegree, 'maxInDegree', 1, G_GRAPH_VERTICES)
  const selfLoops = bool(o.allowSelfLoops, 'allowSelfLoops', false)
  const reachable = selfLoops ? G_GRAPH_VERTICES : G_GRAPH_VERTICES - 1
  const limited = (maxOut !== null && maxOut < reachable) || (maxIn !== null && maxIn < reachable)
  const cls: AlgebraicClass = limited ? 'nonCommutative' : 'growOnlyGraph'
  return register({
    name: 'gGraph',
    class: cls,
    coordination: coordinationOf(cls),
    native: {
      kind: 'gGraph',
      ...(maxOut !== null ? { maxOutDegree: maxOut } : {}),
      ...(maxIn !== null ? { maxInDegree: maxIn } : {}),
      allowSelfLoops: selfLoops,
    },
    edge(from: number | bigint, to: number | bigint): Uint8Array {
      return new Uint8Array([int(from, 'from', 0, G_GRAPH_VERTICES - 1), int(to, 'to', 0, G_GRAPH_VERTICES - 1)])
    },
    read(state: Uint8Array): GGraphState {
      checkState(state, 37)
      const rows: number[] = []
      for (let v = 0; v < G_GRAPH_VERTICES; v++) rows.push((state[2 * v] as number) | ((state[2 * v + 1] as number) << 8))
      const edges: Array<[number, number]> = []
      for (let f = 0; f < G_GRAPH_VERTICES; f++) {
        for (let t = 0; t < G_GRAPH_VERTICES; t++) if ((rows[f] as number) & (1 << t)) edges.push([f, t])
      }
      const vertex = (v: number | bigint, name: string) => int(v, name, 0, G_GRAPH_VERTICES - 1)
      const limit = (b: number) => (b === 0xff ? null : b)
      return {
        edges,
        edgeCount: (state[32] as number) | ((state[33] as number) << 8),
        hasEdge: (from, to) => ((rows[vertex(from, 'from')] as number) & (1 << vertex(to, 'to'))) !== 0,
        outDegree: (v) => {
          const u = vertex(v, 'v')
          return edges.filter(([f]) => f === u).length
        },
        inDegree: (v) => {
          const u = vertex(v, 'v')
          return edges.filter(([, t]) => t === u).length
        },
        maxOutDegree: limit(state[34] as number),
        maxInDegree: limit(state[35] as number),
        allowSelfLoops: ((state[36] as number) & 1) !== 0,
      }
    },
  })
}
