import { invalidArgType, outOfRange } from '../errors.ts'
import { I128_MAX, I128_MIN, checkI128, readI128, viewOf, writeI128 } from './int128.ts'
import { coordinationOf, type AlgebraicClass, type InvariantSpec } from './types.ts'

/** Options of {@link totalSupply}. All bigints; bounds default to the i128 range. */
export interface TotalSupplyOptions {
  /** Starting balance (default `0n`). Must lie within `[min, max]`. */
  initial?: bigint
  /** Lowest allowed balance (default: unbounded, -2^127). */
  min?: bigint
  /** Highest allowed balance (default: unbounded, 2^127 - 1). */
  max?: bigint
}

/** The decoded TotalSupply state. */
export interface SupplyState {
  balance: bigint
  min: bigint
  max: bigint
}

/** A TotalSupply invariant: conservation of an i128 balance within `[min, max]`. */
export interface TotalSupply extends InvariantSpec<SupplyState> {
  readonly name: 'totalSupply'
  /** The payload of a fact that adds `delta` (negative to spend) to the balance. */
  delta(delta: bigint): Uint8Array
  /** Writes the 16-byte payload of `delta` into `target` at `offset` (no allocation). */
  writeDelta(target: Uint8Array, offset: number, delta: bigint): void
  readonly bounded: boolean
}

/** Payload length of a TotalSupply fact. */
export const TOTAL_SUPPLY_PAYLOAD_BYTES = 16

/**
 * Conservation of an i128 balance within `[min, max]`.
 *
 * - payload: 16 bytes, the delta as i128 little-endian ({@link TotalSupply.delta});
 * - state (64 bytes): balance @0, min @16, max @32 (i128 LE), zeros @48;
 * - class: `'group'` when unbounded (coordination-free), `'bounded'` with any
 *   finite bound (replicated use needs escrow: two replicas each spending 60
 *   of 100 would both pass locally).
 *
 * @example
 * const supply = invariants.totalSupply({ initial: 1000n, min: 0n })
 * const k = new Kernel({ invariant: supply })
 * k.admit(supply.delta(-200n))
 * supply.read(k.state).balance // 800n
 */
export function totalSupply(options: TotalSupplyOptions = {}): TotalSupply {
  if (typeof options !== 'object' || options === null) {
    throw invalidArgType('options', 'an object', options)
  }
  const initial = options.initial === undefined ? 0n : options.initial
  const min = options.min === undefined ? I128_MIN : options.min
  const max = options.max === undefined ? I128_MAX : options.max
  checkI128(initial, 'initial')
  checkI128(min, 'min')
  checkI128(max, 'max')
  if (min > max) throw outOfRange('min', `at most max (${max})`, min)
  if (initial < min || initial > max) throw outOfRange('initial', `within [${min}, ${max}]`, initial)
  const bounded = min !== I128_MIN || max !== I128_MAX
  const cls: AlgebraicClass = bounded ? 'bounded' : 'group'

  const writeDelta = (target: Uint8Array, offset: number, delta: bigint): void => {
    checkI128(delta, 'delta')
    writeI128(viewOf(target), offset, delta)
  }

  return {
    name: 'totalSupply',
    class: cls,
    coordination: coordinationOf(cls),
    bounded,
    native: { kind: 'totalSupply', initial, min, max },
    delta(delta: bigint): Uint8Array {
      checkI128(delta, 'delta')
      const out = new Uint8Array(TOTAL_SUPPLY_PAYLOAD_BYTES)
      writeI128(new DataView(out.buffer), 0, delta)
      return out
    },
    writeDelta,
    read(state: Uint8Array): SupplyState {
      if (!(state instanceof Uint8Array)) throw invalidArgType('state', 'a Uint8Array', state)
      if (state.length < 48) throw outOfRange('state', 'at least 48 bytes (a state cell)', state)
      const v = viewOf(state)
      return { balance: readI128(v, 0), min: readI128(v, 16), max: readI128(v, 32) }
    },
  }
}
