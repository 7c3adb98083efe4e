import { checkState, int, optionsOf } from './common.ts'
import { register } from './registry.ts'
import { coordinationOf, type InvariantSpec } from './types.ts'

/** Size of the uniqueness universe: elements are `0..511`. */
export const UNIQUENESS_UNIVERSE = 512

/** The decoded uniqueness state. */
export interface UniquenessState {
  /** Elements in the set. */
  count: number
  /** The elements, ascending. */
  elements: number[]
  /** Whether `element` (an integer in `0..511`) is in the set. */
  has(element: number | bigint): boolean
}

/** An exact set over the elements `0..511`, each admitted at most once. */
export interface Uniqueness extends InvariantSpec<UniquenessState> {
  readonly name: 'uniqueness'
  readonly class: 'idempotentSet'
  readonly coordination: 'none'
  /** The payload of a fact adding `element` (an integer in `0..511`, a number or a bigint). */
  add(element: number | bigint): Uint8Array
}

function popcount8(b: number): number {
  b = b - ((b >> 1) & 0x55)
  b = (b & 0x33) + ((b >> 2) & 0x33)
  return (b + (b >> 4)) & 0x0f
}

/**
 * Each element of `0..511` may be admitted once — an exact set in the cell.
 *
 * - payload: 2 bytes, the element as u16 LE, below 512 ({@link Uniqueness.add});
 *   anything else is `MALFORMED_FACT`;
 * - state (64 bytes): a 512-bit set — element `e` is bit `e % 8` (least
 *   significant first) of byte `e / 8`; the count is the popcount;
 * - refusals: an element already present is `DUPLICATE_ELEMENT` (state unchanged);
 * - exact: the element *is* the bit index, so there is no hashing and no
 *   aliasing (unlike the reference's 512-bit hash, where distinct elements
 *   collided). For larger or arbitrary keys use {@link uniqueSet};
 * - class `'idempotentSet'`, coordination `'none'`: the state is the union of
 *   the elements whatever the order. Which *fact* carries an element is not
 *   convergent: two replicas that each admit `x` refuse each other's fact.
 *
 * @example
 * const seats = invariants.uniqueness()
 * const k = new Kernel({ invariant: seats })
 * k.admit(seats.add(12))
 * k.admit(seats.add(12)) // throws CtfsError DUPLICATE_ELEMENT
 */
export function uniqueness(options?: Record<string, never>): Uniqueness {
  optionsOf(options, [])
  return register({
    name: 'uniqueness',
    class: 'idempotentSet',
    coordination: coordinationOf('idempotentSet') as 'none',
    native: { kind: 'uniqueness' },
    add(element: number | bigint): Uint8Array {
      const e = int(element, 'element', 0, UNIQUENESS_UNIVERSE - 1)
      return new Uint8Array([e & 0xff, e >> 8])
    },
    read(state: Uint8Array): UniquenessState {
      checkState(state)
      const bits = state.slice(0, 64)
      let count = 0
      const elements: number[] = []
      for (let i = 0; i < 64; i++) {
        const b = bits[i] as number
        if (b === 0) continue
        count += popcount8(b)
        for (let j = 0; j < 8; j++) if (b & (1 << j)) elements.push(i * 8 + j)
      }
      return {
        count,
        elements,
        has(element: number | bigint): boolean {
          const e = int(element, 'element', 0, UNIQUENESS_UNIVERSE - 1)
          return ((bits[e >> 3] as number) & (1 << (e & 7))) !== 0
        },
      }
    },
  })
}
