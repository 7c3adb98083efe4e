import { invalidArgType, outOfRange } from '../errors.ts'
import { isUint8Array } from '../args.ts'
import { TWO_32, checkState, int, optionsOf, packValues } from './common.ts'
import { I128_MAX, I128_MIN, i128, readI128, viewOf, writeI128 } from './int128.ts'
import { register } from './registry.ts'
import { coordinationOf, type AlgebraicClass, type InvariantSpec } from './types.ts'

/**
 * Options of {@link totalSupply}: i128 values, each a bigint or a safe
 * integer number; bounds default to the i128 range.
 */
export interface TotalSupplyOptions {
  /** Starting balance (default `0n`). Must lie within `[min, max]`. */
  initial?: bigint | number
  /** Lowest allowed balance (default: unbounded, -2^127). */
  min?: bigint | number
  /** Highest allowed balance (default: unbounded, 2^127 - 1). */
  max?: bigint | number
}

const KEYS: readonly string[] = ['initial', 'min', 'max']

/** The decoded TotalSupply state. */
export interface SupplyState {
  balance: bigint
  min: bigint
  max: bigint
}

/** A TotalSupply invariant: conservation of an i128 balance within `[min, max]`. */
export interface TotalSupply extends InvariantSpec<SupplyState> {
  readonly name: 'totalSupply'
  /**
   * The payload of a fact that adds `delta` (negative to spend) to the
   * balance: an i128, a bigint or a safe integer number.
   */
  delta(delta: bigint | number): Uint8Array
  /**
   * Writes the 16-byte payload of `delta` into `target` at `offset` (no
   * allocation); `offset` is an integer in `[0, target.length − 16]`.
   */
  writeDelta(target: Uint8Array, offset: number | bigint, delta: bigint | number): void
  /**
   * The payloads of many deltas, back to back (16 bytes each): with
   * `FactBatch.fromPayloads(supply.deltas(values), 16)` the fast way to admit
   * many.
   * @throws RangeError (`ERR_OUT_OF_RANGE`) naming the first value that is not an i128
   */
  deltas(values: BigInt64Array | ArrayLike<bigint | number>): Uint8Array
  readonly bounded: boolean
}

function writeDelta128(view: DataView, at: number, v: bigint | number, i: number): void {
  if (typeof v === 'number' && Number.isSafeInteger(v)) {
    // Two's complement of a safe integer, sign-extended to 128 bits.
    const ext = v < 0 ? 0xffffffff : 0
    view.setUint32(at, v >>> 0, true)
    view.setUint32(at + 4, Math.floor(v / TWO_32) >>> 0, true)
    view.setUint32(at + 8, ext, true)
    view.setUint32(at + 12, ext, true)
  } else {
    writeI128(view, at, i128(v, `values[${i}]`))
  }
}

function deltasPayload(values: BigInt64Array | ArrayLike<bigint | number>): Uint8Array {
  return packValues<bigint | number>(values, TOTAL_SUPPLY_PAYLOAD_BYTES, 'a BigInt64Array or an array of i128 deltas', writeDelta128)
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
export function totalSupply(options?: TotalSupplyOptions): TotalSupply {
  const o = optionsOf(options, KEYS)
  const initial = o.initial === undefined ? 0n : i128(o.initial, 'initial')
  const min = o.min === undefined ? I128_MIN : i128(o.min, 'min')
  const max = o.max === undefined ? I128_MAX : i128(o.max, 'max')
  if (min > max) throw outOfRange('min', `at most max (${max})`, min)
  if (initial < min || initial > max) throw outOfRange('initial', `within [${min}, ${max}]`, initial)
  const bounded = min !== I128_MIN || max !== I128_MAX
  const cls: AlgebraicClass = bounded ? 'bounded' : 'group'

  const writeDelta = (target: Uint8Array, offset: number | bigint, delta: bigint | number): void => {
    if (!isUint8Array(target)) throw invalidArgType('target', 'a Uint8Array', target)
    if (target.length < TOTAL_SUPPLY_PAYLOAD_BYTES) throw outOfRange('target', `at least ${TOTAL_SUPPLY_PAYLOAD_BYTES} bytes long`, target)
    const at = int(offset, 'offset', 0, target.length - TOTAL_SUPPLY_PAYLOAD_BYTES)
    writeI128(viewOf(target), at, i128(delta, 'delta'))
  }

  return register({
    name: 'totalSupply',
    class: cls,
    coordination: coordinationOf(cls),
    bounded,
    native: { kind: 'totalSupply', initial, min, max },
    delta(delta: bigint | number): Uint8Array {
      const d = i128(delta, 'delta')
      const out = new Uint8Array(TOTAL_SUPPLY_PAYLOAD_BYTES)
      writeI128(new DataView(out.buffer), 0, d)
      return out
    },
    writeDelta,
    deltas: deltasPayload,
    read(state: Uint8Array): SupplyState {
      checkState(state, 48)
      const v = viewOf(state)
      return { balance: readI128(v, 0), min: readI128(v, 16), max: readI128(v, 32) }
    },
  })
}
