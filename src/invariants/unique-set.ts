import { bytes, checkState, optionsOf, u64, U64_MAX } from './common.ts'
import { viewOf } from './int128.ts'
import { register } from './registry.ts'
import { coordinationOf, type InvariantSpec } from './types.ts'

/** Key length of a uniqueSet. */
export const UNIQUE_SET_KEY_BYTES = 32

/** Options of {@link uniqueSet}. */
export interface UniqueSetOptions {
  /**
   * Most keys the set may hold (at least 1, below 2^64 − 1). Omit for a set
   * bounded only by memory. Any limit makes the class `'bounded'` (escrow).
   */
  maxElements?: bigint | number
}

/** The decoded uniqueSet summary cell. */
export interface UniqueSetState {
  /** Keys in the set. */
  count: bigint
  /**
   * Order-independent 256-bit digest of the keys (lane-wise wrapping sum of
   * the keyed BLAKE3 of each key): equal sets have equal digests.
   */
  digest: Uint8Array
  /** The limit, or null when there is none. */
  maxElements: bigint | null
}

/** Uniqueness over arbitrary 32-byte keys, exact, on the heap. */
export interface UniqueSet extends InvariantSpec<UniqueSetState> {
  readonly name: 'uniqueSet'
  /** `'idempotentSet'`, or `'bounded'` with `maxElements`. */
  readonly maxElements: bigint | null
  /**
   * The payload of a fact adding `key` (exactly 32 bytes; hash longer keys
   * first, e.g. with BLAKE3 or SHA-256). Test membership with
   * `kernel.has(key)`.
   */
  add(key: Uint8Array): Uint8Array
}

/**
 * Each 32-byte key may be admitted once — an exact set on the heap.
 *
 * - payload: exactly 32 bytes, the key ({@link UniqueSet.add});
 * - state: the keys (~50–70 bytes each, on the heap; membership through
 *   `kernel.has(key)`) and a 64-byte summary cell, which is what
 *   `kernel.state` shows: `count` u64 @0, `digest` @8 (32 bytes,
 *   order-independent), `maxElements` u64 @40 (2^64 − 1 = none), 16 zero
 *   bytes @48;
 * - refusals: a key already present is `DUPLICATE_ELEMENT`; a new key when
 *   the set holds `maxElements` is `INVARIANT_VIOLATION`;
 * - class `'idempotentSet'` (coordination `'none'`) without a limit;
 *   `'bounded'` (`'escrow'`) with `maxElements`: with room for one more key,
 *   two replicas can each admit a different key and then refuse each other's.
 *
 * @example
 * const invoices = invariants.uniqueSet()
 * const k = new Kernel({ invariant: invoices })
 * const key = new Uint8Array(32).fill(1)
 * k.admit(invoices.add(key))
 * k.has(key) // true
 */
export function uniqueSet(options?: UniqueSetOptions): UniqueSet {
  const o = optionsOf(options, ['maxElements'])
  const maxElements = o.maxElements === undefined ? null : u64(o.maxElements, 'maxElements', 1n, U64_MAX - 1n)
  const cls = maxElements === null ? 'idempotentSet' : 'bounded'
  return register({
    name: 'uniqueSet',
    class: cls,
    coordination: coordinationOf(cls),
    maxElements,
    native: maxElements === null ? { kind: 'uniqueSet' } : { kind: 'uniqueSet', maxElements },
    add(key: Uint8Array): Uint8Array {
      return bytes(key, 'key', UNIQUE_SET_KEY_BYTES, UNIQUE_SET_KEY_BYTES).slice()
    },
    read(state: Uint8Array): UniqueSetState {
      checkState(state, 48)
      const v = viewOf(state)
      const m = v.getBigUint64(40, true)
      return { count: v.getBigUint64(0, true), digest: state.slice(8, 40), maxElements: m === U64_MAX ? null : m }
    },
  })
}
