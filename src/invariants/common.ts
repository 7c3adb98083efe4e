// Shared validation and little-endian codecs of the invariant specs.
import { checkKeys, isUint8Array } from '../args.ts'
import { invalidArgType, outOfRange } from '../errors.ts'

export const U64_MAX = (1n << 64n) - 1n
export const U128_MAX = (1n << 128n) - 1n
/** Bytes of one state cell. */
export const CELL_BYTES = 64
/** 2^32: a safe integer's high 32 bits are `Math.floor(v / TWO_32)`. */
export const TWO_32 = 4294967296

/**
 * Many values' encodings back to back, `width` bytes each (the payloads
 * buffer of `FactBatch.fromPayloads`): `write(view, offset, value, index)`
 * encodes one. `values` is an array or a typed array; anything else is a
 * TypeError naming `expected`.
 */
export function packValues<V>(values: ArrayLike<V>, width: number, expected: string, write: (view: DataView, at: number, v: V, i: number) => void): Uint8Array {
  if (typeof values !== 'object' || values === null || typeof (values as { length?: unknown }).length !== 'number') {
    throw invalidArgType('values', expected, values)
  }
  const n = values.length
  const out = new Uint8Array(n * width)
  const view = new DataView(out.buffer)
  for (let i = 0; i < n; i++) write(view, i * width, values[i]!, i)
  return out
}

/**
 * Throws unless `options` is undefined or an object whose own keys are all
 * in `known`; returns it or `{}`.
 */
export function optionsOf<T extends object>(options: T | undefined, known: readonly string[], name = 'options'): Partial<T> {
  if (options === undefined) return {}
  if (typeof options !== 'object' || options === null) throw invalidArgType(name, 'an object', options)
  checkKeys(options, known, name)
  return options
}

/**
 * The one rule for integers across the API: an exact integer is accepted as
 * a bigint or as a safe-integer number (`5n` and `5` alike). A number that is
 * not an integer or not safe (|n| > 2^53 − 1) is a RangeError
 * (`ERR_OUT_OF_RANGE`), any other type a TypeError (`ERR_INVALID_ARG_TYPE`),
 * a value outside `[min, max]` a RangeError. Returns the value as a bigint.
 */
export function integer(v: unknown, name: string, min: bigint, max: bigint, range = `in [${min}, ${max}]`): bigint {
  let b: bigint
  if (typeof v === 'bigint') b = v
  else if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw outOfRange(name, `an integer ${range} (a bigint, or a number that is a safe integer)`, v)
    b = BigInt(v)
  } else throw invalidArgType(name, 'a bigint or an integer number', v)
  if (b < min || b > max) throw outOfRange(name, range, v)
  return b
}

/** A u128 (bigint or safe integer number) as a bigint. */
export function u128(v: unknown, name: string): bigint {
  return integer(v, name, 0n, U128_MAX, 'in [0, 2^128)')
}

/**
 * A u64 from a bigint or a non-negative safe integer number. `min` is the
 * lowest accepted value (default 0).
 */
export function u64(v: unknown, name: string, min = 0n, max = U64_MAX): bigint {
  return integer(v, name, min, max)
}

/** An integer in `[min, max]` (both within the safe range), from a number or a bigint, as a number. */
export function int(v: unknown, name: string, min: number, max: number): number {
  if (typeof v === 'number') {
    if (!Number.isInteger(v) || v < min || v > max) throw outOfRange(name, `an integer in [${min}, ${max}]`, v)
    return v
  }
  if (typeof v === 'bigint') {
    if (v < BigInt(min) || v > BigInt(max)) throw outOfRange(name, `an integer in [${min}, ${max}]`, v)
    return Number(v)
  }
  throw invalidArgType(name, 'an integer (a number or a bigint)', v)
}

/** A boolean option (default `dflt`). */
export function bool(v: unknown, name: string, dflt: boolean): boolean {
  if (v === undefined) return dflt
  if (typeof v !== 'boolean') throw invalidArgType(name, 'a boolean', v)
  return v
}

/** A Uint8Array of `min..max` bytes. */
export function bytes(v: unknown, name: string, min: number, max: number): Uint8Array {
  if (!isUint8Array(v)) throw invalidArgType(name, `a Uint8Array of ${min === max ? min : `${min} to ${max}`} bytes`, v)
  if (v.length < min || v.length > max) throw outOfRange(name, min === max ? `${min} bytes long` : `${min} to ${max} bytes long`, v)
  return v
}

/** Throws unless `state` is a Uint8Array of at least `min` bytes (a state cell). */
export function checkState(state: unknown, min = CELL_BYTES): asserts state is Uint8Array {
  if (!isUint8Array(state)) throw invalidArgType('state', 'a Uint8Array', state)
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
