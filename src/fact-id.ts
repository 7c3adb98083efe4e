import { isUint8Array } from './args.ts'
import { invalidArgType, outOfRange } from './errors.ts'

/** A fact id: exactly 32 bytes. */
export type FactId = Uint8Array

/** Length of a {@link FactId} in bytes. */
export const FACT_ID_BYTES = 32

/** Throws TypeError / RangeError unless `id` is a 32-byte Uint8Array. */
export function checkFactId(id: unknown, name = 'id'): asserts id is FactId {
  if (typeof name !== 'string') throw invalidArgType('name', 'a string', name)
  if (!isUint8Array(id)) throw invalidArgType(name, 'a 32-byte Uint8Array', id)
  if (id.length !== FACT_ID_BYTES) throw outOfRange(name, 'exactly 32 bytes long', id)
}

/** True for a real 32-byte Uint8Array (the check without an error to build). @internal */
export function isFactId(v: unknown): v is FactId {
  return isUint8Array(v) && v.length === FACT_ID_BYTES
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'))

/** Lower-case hex of an id (64 characters). */
export function factIdToHex(id: FactId): string {
  checkFactId(id)
  let s = ''
  for (let i = 0; i < 32; i++) s += HEX[id[i]!]
  return s
}

/** Parses 64 hex characters into an id. */
export function factIdFromHex(hex: string): FactId {
  if (typeof hex !== 'string') throw invalidArgType('hex', 'a string of 64 hex digits', hex)
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw outOfRange('hex', '64 hex digits', hex)
  const out = new Uint8Array(32)
  for (let i = 0; i < 32; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16)
  return out
}

/** Byte-wise unsigned order of ids; the deterministic conflict order. */
export function compareFactIds(a: FactId, b: FactId): number {
  checkFactId(a, 'a')
  checkFactId(b, 'b')
  for (let i = 0; i < 32; i++) {
    if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1
  }
  return 0
}

/**
 * The winner of a conflict: the lowest id. Every replica picks the same one,
 * whatever the arrival order. `undefined` for an empty list.
 */
export function lowestFactId(ids: Iterable<FactId>): FactId | undefined {
  const expected = 'an iterable of fact ids (e.g. an array)'
  if (typeof ids !== 'object' || ids === null || typeof (ids as Partial<Iterable<FactId>>)[Symbol.iterator] !== 'function') {
    throw invalidArgType('ids', expected, ids)
  }
  let it: Iterator<FactId>
  try {
    it = ids[Symbol.iterator]()
  } catch (cause) {
    // e.g. an object dressed up as a typed array, whose iterator refuses it
    throw Object.assign(invalidArgType('ids', expected, ids), { cause })
  }
  let best: FactId | undefined
  for (let i = 0, r = it.next(); r.done !== true; r = it.next(), i++) {
    const id = r.value
    if (!isFactId(id)) checkFactId(id, `ids[${i}]`)
    if (best === undefined || compareFactIds(id, best) < 0) best = id
  }
  return best
}

/** True when both ids hold the same 32 bytes. */
export function factIdEquals(a: FactId, b: FactId): boolean {
  return compareFactIds(a, b) === 0
}

/**
 * Packs `ids` (checked, `name[i]` in errors) back to back into `scratch`,
 * growing it when too small. Returns the packed bytes and the scratch to
 * keep for next time. @internal
 */
export function packFactIds(ids: readonly FactId[], name: string, scratch: Uint8Array): { packed: Uint8Array; scratch: Uint8Array } {
  if (!Array.isArray(ids)) throw invalidArgType(name, 'an array of fact ids', ids)
  const bytes = ids.length * FACT_ID_BYTES
  if (scratch.length < bytes) scratch = new Uint8Array(Math.max(bytes, 8 * FACT_ID_BYTES))
  for (let i = 0; i < ids.length; i++) {
    if (!isFactId(ids[i])) checkFactId(ids[i], `${name}[${i}]`)
    scratch.set(ids[i] as FactId, i * FACT_ID_BYTES)
  }
  return { packed: scratch.subarray(0, bytes), scratch }
}
