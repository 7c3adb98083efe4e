import { invalidArgType, outOfRange } from '../errors.ts'
import { TWO_32, checkState, optionsOf, packValues, readU128, u128, u64 } from './common.ts'
import { viewOf } from './int128.ts'
import { register } from './registry.ts'
import { coordinationOf, type InvariantSpec } from './types.ts'

/** Payload length of a gCounter / boundedGCounter fact. */
export const G_COUNTER_PAYLOAD_BYTES = 8

function incrementPayload(n: bigint | number): Uint8Array {
  const v = u64(n, 'n')
  const out = new Uint8Array(G_COUNTER_PAYLOAD_BYTES)
  new DataView(out.buffer).setBigUint64(0, v, true)
  return out
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

function writeIncrement(view: DataView, at: number, v: bigint | number, i: number): void {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) {
    view.setUint32(at, v >>> 0, true)
    view.setUint32(at + 4, Math.floor(v / TWO_32), true)
  } else {
    view.setBigUint64(at, u64(v, `values[${i}]`), true)
  }
}

/**
 * The payloads of many increments, back to back (8 bytes each), for
 * `FactBatch.fromPayloads(payloads, 8)`. A `BigUint64Array` is used in place
 * (no copy) on little-endian hosts.
 */
function incrementsPayload(values: BigUint64Array | ArrayLike<bigint | number>): Uint8Array {
  if (values instanceof BigUint64Array && LITTLE_ENDIAN) return new Uint8Array(values.buffer, values.byteOffset, values.byteLength)
  return packValues<bigint | number>(values, G_COUNTER_PAYLOAD_BYTES, 'a BigUint64Array or an array of u64 increments', writeIncrement)
}

/** Options of {@link gCounter}. */
export interface GCounterOptions {
  /** Starting sum, in `[0, 2^128)`: a bigint or a safe integer number (default `0n`). */
  initial?: bigint | number
}

const G_COUNTER_KEYS: readonly string[] = ['initial']
const BOUNDED_KEYS: readonly string[] = ['bound', 'initial']

/** The decoded gCounter state. */
export interface GCounterState {
  sum: bigint
}

/** A grow-only counter without a bound. */
export interface GCounter extends InvariantSpec<GCounterState> {
  readonly name: 'gCounter'
  readonly class: 'commutativeMonoid'
  readonly coordination: 'none'
  /** The payload of a fact adding `n` (a u64: `0 ≤ n < 2^64`) to the sum. */
  increment(n: bigint | number): Uint8Array
  /**
   * The payloads of many increments, back to back (8 bytes each): with
   * `FactBatch.fromPayloads(g.increments(values), 8)` the fast way to admit
   * many (a `BigUint64Array` is used in place, no copy).
   * @throws RangeError (`ERR_OUT_OF_RANGE`) naming the first value that is not a u64
   */
  increments(values: BigUint64Array | ArrayLike<bigint | number>): Uint8Array
}

/**
 * A grow-only counter (unbounded).
 *
 * - payload: 8 bytes, the increment as u64 little-endian ({@link GCounter.increment});
 *   an increment of 0 is admitted and changes nothing;
 * - state (64 bytes): `sum` u128 LE @0, 48 zero bytes @16;
 * - refusals: only u128 overflow (`INVARIANT_VIOLATION`; never wrapped);
 * - class `'commutativeMonoid'`, coordination `'none'`.
 *
 * @example
 * const views = invariants.gCounter()
 * const k = new Kernel({ invariant: views })
 * k.admit(views.increment(3))
 * views.read(k.state).sum // 3n
 */
export function gCounter(options?: GCounterOptions): GCounter {
  const o = optionsOf(options, G_COUNTER_KEYS)
  const initial = o.initial === undefined ? 0n : u128(o.initial, 'initial')
  return register({
    name: 'gCounter',
    class: 'commutativeMonoid',
    coordination: coordinationOf('commutativeMonoid') as 'none',
    native: { kind: 'gCounter', initial },
    increment: incrementPayload,
    increments: incrementsPayload,
    read(state: Uint8Array): GCounterState {
      checkState(state, 16)
      return { sum: readU128(viewOf(state), 0) }
    },
  })
}

/** Options of {@link boundedGCounter}. */
export interface BoundedGCounterOptions {
  /** The largest sum allowed, in `[0, 2^128)` (required): a bigint or a safe integer number. */
  bound: bigint | number
  /** Starting sum, at most `bound` (default `0n`). */
  initial?: bigint | number
}

/** The decoded boundedGCounter state. */
export interface BoundedGCounterState {
  sum: bigint
  bound: bigint
}

/** A grow-only counter that may not exceed its bound. */
export interface BoundedGCounter extends InvariantSpec<BoundedGCounterState> {
  readonly name: 'boundedGCounter'
  readonly class: 'bounded'
  readonly coordination: 'escrow'
  /** The payload of a fact adding `n` (a u64) to the sum. */
  increment(n: bigint | number): Uint8Array
  /** The payloads of many increments, back to back (see {@link GCounter.increments}). */
  increments(values: BigUint64Array | ArrayLike<bigint | number>): Uint8Array
}

/**
 * A grow-only counter that may not exceed `bound`.
 *
 * - payload: 8 bytes, the increment as u64 LE ({@link BoundedGCounter.increment});
 * - state (64 bytes): `sum` u128 LE @0, `bound` u128 LE @16, 32 zero bytes @32;
 * - refusals: `sum + n > bound` is `INVARIANT_VIOLATION` (state unchanged);
 * - class `'bounded'`, coordination `'escrow'`: with bound 10, replica A
 *   admitting +6 and replica B +7 are each valid locally, but the union is
 *   not admissible — each then refuses the other's fact, forever apart.
 *   Escrow splits the headroom `bound − sum` into per-replica quotas.
 *
 * @example
 * const seats = invariants.boundedGCounter({ bound: 100n })
 * const k = new Kernel({ invariant: seats })
 * k.admit(seats.increment(60))
 * k.admit(seats.increment(41)) // throws CtfsError INVARIANT_VIOLATION
 */
export function boundedGCounter(options: BoundedGCounterOptions): BoundedGCounter {
  if (typeof options !== 'object' || options === null) {
    throw invalidArgType('options', 'an object { bound, initial? }', options)
  }
  const o = optionsOf(options, BOUNDED_KEYS)
  const bound = u128(o.bound, 'bound')
  const initial = o.initial === undefined ? 0n : u128(o.initial, 'initial')
  if (initial > bound) {
    throw outOfRange('initial', `at most bound (${bound})`, initial)
  }
  return register({
    name: 'boundedGCounter',
    class: 'bounded',
    coordination: coordinationOf('bounded') as 'escrow',
    native: { kind: 'boundedGCounter', initial, bound },
    increment: incrementPayload,
    increments: incrementsPayload,
    read(state: Uint8Array): BoundedGCounterState {
      checkState(state, 32)
      const v = viewOf(state)
      return { sum: readU128(v, 0), bound: readU128(v, 16) }
    },
  })
}
