import { I128_MIN, i128, readI128, viewOf, writeI128 } from './int128.ts'
import { checkState, optionsOf } from './common.ts'
import { register } from './registry.ts'
import { coordinationOf, type InvariantSpec } from './types.ts'

/** Options of {@link max}. */
export interface MaxOptions {
  /** The value before any fact: an i128, a bigint or a safe integer number (default `-2^127`, the true bottom). */
  initial?: bigint | number
}

const KEYS: readonly string[] = ['initial']

/** The decoded Max state. */
export interface MaxState {
  /** The largest value proposed so far (or `initial`). */
  value: bigint
  /** The declared initial value (constant). */
  initial: bigint
}

/** A Max invariant: the largest i128 ever proposed. */
export interface Max extends InvariantSpec<MaxState> {
  readonly name: 'max'
  readonly class: 'semilattice'
  readonly coordination: 'none'
  /** The payload of a fact proposing `value` (an i128: a bigint or a safe integer number). */
  value(value: bigint | number): Uint8Array
}

/** Payload length of a Max fact. */
export const MAX_PAYLOAD_BYTES = 16

/**
 * The largest i128 ever proposed (a join-semilattice register).
 *
 * - payload: 16 bytes, the proposed value as i128 little-endian
 *   ({@link Max.value}); any other length is `MALFORMED_FACT`;
 * - state (64 bytes): current maximum @0, the declared initial value @16
 *   (both i128 LE), 32 zero bytes @32;
 * - refusals: none for a well-formed payload — a value at or below the
 *   maximum is admitted and changes nothing;
 * - class `'semilattice'` (commutative, associative, idempotent), coordination
 *   `'none'`: any order of the same facts, repeats included, gives
 *   byte-identical state.
 *
 * @example
 * const high = invariants.max({ initial: 0n })
 * const k = new Kernel({ invariant: high })
 * k.admit(high.value(7n)); k.admit(high.value(3n))
 * high.read(k.state).value // 7n
 */
export function max(options?: MaxOptions): Max {
  const o = optionsOf(options, KEYS)
  const initial = o.initial === undefined ? I128_MIN : i128(o.initial, 'initial')
  return register({
    name: 'max',
    class: 'semilattice',
    coordination: coordinationOf('semilattice') as 'none',
    native: { kind: 'max', initial },
    value(value: bigint | number): Uint8Array {
      const v = i128(value, 'value')
      const out = new Uint8Array(MAX_PAYLOAD_BYTES)
      writeI128(new DataView(out.buffer), 0, v)
      return out
    },
    read(state: Uint8Array): MaxState {
      checkState(state, 32)
      const v = viewOf(state)
      return { value: readI128(v, 0), initial: readI128(v, 16) }
    },
  })
}
