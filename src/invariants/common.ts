// Shared validation and little-endian codecs of the invariant specs.
import { invalidArgType, outOfRange } from '../errors.ts'

export const U64_MAX = (1n << 64n) - 1n
export const U128_MAX = (1n << 128n) - 1n
/** Bytes of one state cell. */
export const CELL_BYTES = 64

/** Throws unless `options` is undefined or a plain object; returns it or `{}`. */
export function optionsOf<T extends object>(options: T | undefined, name = 'options'): Partial<T> {
  if (options === undefined) return {}
  if (typeof options !== 'object' || options === null) throw invalidArgType(name, 'an object', options)
  return options
}

/** Throws unless `v` is a bigint in `[0, max]`. */
export function checkUnsigned(v: unknown, name: string, max: bigint, what: string): asserts v is bigint {
  if (typeof v !== 'bigint') throw invalidArgType(name, 'a bigint (e.g. 100n)', v)
  if (v < 0n || v > max) throw outOfRange(name, what, v)
}

/** A u128 option as a bigint. */
export function u128(v: unknown, name: string): bigint {
  checkUnsigned(v, name, U128_MAX, 'in [0, 2^128)')
  return v
}

/**
 * A u64 from a bigint or a non-negative safe integer number. `min` is the
 * lowest accepted value (default 0).
 */
export function u64(v: unknown, name: string, min = 0n, max = U64_MAX): bigint {
  let b: bigint
  if (typeof v === 'bigint') b = v
  else if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw outOfRange(name, `an integer in [${min}, ${max}]`, v)
    b = BigInt(v)
  } else throw invalidArgType(name, 'a bigint or an integer number', v)
  if (b < min || b > max) throw outOfRange(name, `in [${min}, ${max}]`, v)
  return b
}

/** An integer number in `[min, max]`. */
export function int(v: unknown, name: string, min: number, max: number): number {
  if (typeof v !== 'number') throw invalidArgType(name, 'a number', v)
  if (!Number.isInteger(v) || v < min || v > max) throw outOfRange(name, `an integer in [${min}, ${max}]`, v)
  return v
}

/** A boolean option (default `dflt`). */
export function bool(v: unknown, name: string, dflt: boolean): boolean {
  if (v === undefined) return dflt
  if (typeof v !== 'boolean') throw invalidArgType(name, 'a boolean', v)
  return v
}

/** A Uint8Array of `min..max` bytes. */
export function bytes(v: unknown, name: string, min: number, max: number): Uint8Array {
  if (!(v instanceof Uint8Array)) throw invalidArgType(name, `a Uint8Array of ${min === max ? min : `${min} to ${max}`} bytes`, v)
  if (v.length < min || v.length > max) throw outOfRange(name, min === max ? `${min} bytes long` : `${min} to ${max} bytes long`, v)
  return v
}

/** Throws unless `state` is a Uint8Array of at least `min` bytes (a state cell). */
export function checkState(state: unknown, min = CELL_BYTES): asserts state is Uint8Array {
  if (!(state instanceof Uint8Array)) throw invalidArgType('state', 'a Uint8Array', state)
  if (state.length < min) throw outOfRange('state', `at least ${min} bytes (a state cell)`, state)
}

/** Writes `v` as u128 little-endian at `offset`. */
export function writeU128(view: DataView, offset: number, v: bigint): void {
  view.setBigUint64(offset, BigInt.asUintN(64, v), true)
  view.setBigUint64(offset + 8, BigInt.asUintN(64, v >> 64n), true)
}

/** Reads a u128 little-endian at `offset`. */
export function readU128(view: DataView, offset: number): bigint {
  return (view.getBigUint64(offset + 8, true) << 64n) | view.getBigUint64(offset, true)
}
