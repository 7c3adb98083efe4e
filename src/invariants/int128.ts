import { integer } from './common.ts'

export const I128_MIN = -(1n << 127n)
export const I128_MAX = (1n << 127n) - 1n

/** An i128: a bigint or a safe integer number within the signed 128-bit range, as a bigint. */
export function i128(v: unknown, name: string): bigint {
  return integer(v, name, I128_MIN, I128_MAX, 'within the signed 128-bit range')
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
