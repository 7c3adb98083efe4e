import { invalidArgType, outOfRange } from '../errors.ts'

export const I128_MIN = -(1n << 127n)
export const I128_MAX = (1n << 127n) - 1n

/** Throws unless `v` is a bigint within the signed 128-bit range. */
export function checkI128(v: unknown, name: string): asserts v is bigint {
  if (typeof v !== 'bigint') throw invalidArgType(name, 'a bigint (e.g. 100n)', v)
  if (v < I128_MIN || v > I128_MAX) throw outOfRange(name, 'within the signed 128-bit range', v)
}

/** Writes `v` as i128 little-endian at `offset`. */
export function writeI128(view: DataView, offset: number, v: bigint): void {
  view.setBigUint64(offset, BigInt.asUintN(64, v), true)
  view.setBigInt64(offset + 8, BigInt.asIntN(64, v >> 64n), true)
}

/** Reads an i128 little-endian at `offset`. */
export function readI128(view: DataView, offset: number): bigint {
  const lo = view.getBigUint64(offset, true)
  const hi = view.getBigInt64(offset + 8, true)
  return (hi << 64n) | lo
}

/** A DataView over exactly the bytes of `bytes`. */
export function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}
