// Facts and state as JSON for the `ctfs node` admin interface.
//
// A fact is `{ payload: hex }` or the invariant's own words:
//   totalSupply {delta}, gCounter/boundedGCounter {increment}, max {value},
//   lww {timestamp, value (text) | valueHex}, uniqueness {add: 0..511},
//   uniqueSet {add: 64 hex}, gGraph/graph {edge: [from, to]};
// for a multi invariant, `{ member: {...}, other: {...} }`. Optional `id`
// (64 hex) and `deps` (64-hex strings). Integers may be JSON numbers or
// decimal strings (for values beyond 2^53).
import type { FactInput } from '../batch.ts'
import type { InvariantSpec } from '../invariants/index.ts'
import type * as inv from '../invariants/index.ts'

export class FactJsonError extends Error {}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

function big(v: unknown, name: string): bigint {
  if (typeof v === 'number' && Number.isSafeInteger(v)) return BigInt(v)
  if (typeof v === 'string' && /^-?\d+$/.test(v.trim())) return BigInt(v.trim())
  throw new FactJsonError(`${name} must be an integer (a number or a decimal string), got ${JSON.stringify(v)}`)
}

function hex(v: unknown, name: string, bytes?: number): Uint8Array {
  if (typeof v !== 'string' || !/^([0-9a-fA-F]{2})*$/.test(v) || (bytes !== undefined && v.length !== bytes * 2)) {
    throw new FactJsonError(`${name} must be ${bytes !== undefined ? `${bytes * 2} hex characters` : 'hex'}, got ${JSON.stringify(v)}`)
  }
  return new Uint8Array(Buffer.from(v, 'hex'))
}

function part(spec: InvariantSpec, o: Record<string, unknown>, where: string): Uint8Array {
  if (o.payload !== undefined) return hex(o.payload, `${where}payload`)
  switch (spec.name) {
    case 'totalSupply':
      return (spec as inv.TotalSupply).delta(big(o.delta, `${where}delta`))
    case 'gCounter':
    case 'boundedGCounter':
      return (spec as inv.GCounter).increment(big(o.increment, `${where}increment`))
    case 'max':
      return (spec as inv.Max).value(big(o.value, `${where}value`))
    case 'lww': {
      const value = o.valueHex !== undefined ? hex(o.valueHex, `${where}valueHex`) : new TextEncoder().encode(String(o.value ?? ''))
      return (spec as inv.Lww).write(big(o.timestamp, `${where}timestamp`), value)
    }
    case 'uniqueness':
      return (spec as inv.Uniqueness).add(Number(big(o.add, `${where}add`)))
    case 'uniqueSet':
      return (spec as inv.UniqueSet).add(hex(o.add, `${where}add`, 32))
    case 'gGraph':
    case 'graph': {
      const e = o.edge
      if (!Array.isArray(e) || e.length !== 2) throw new FactJsonError(`${where}edge must be [from, to]`)
      const [a, b] = [big(e[0], `${where}edge[0]`), big(e[1], `${where}edge[1]`)]
      return spec.name === 'gGraph' ? (spec as inv.GGraph).edge(Number(a), Number(b)) : (spec as inv.Graph).edge(a, b)
    }
    default:
      throw new FactJsonError(`${spec.name}: give the payload as { payload: hex }`)
  }
}

/** The payload, id and deps of one JSON fact. Throws {@link FactJsonError} (or the invariant's TypeError/RangeError). */
export function factFromJson(spec: InvariantSpec, v: unknown): FactInput {
  if (!isObj(v)) throw new FactJsonError(`a fact must be an object, got ${JSON.stringify(v)}`)
  let payload: Uint8Array
  if (v.payload !== undefined) payload = hex(v.payload, 'payload')
  else if (spec.name === 'multi') {
    const m = spec as inv.Multi<Record<string, InvariantSpec>>
    const parts: Record<string, Uint8Array> = {}
    for (const name of m.names) {
      const p = v[name]
      if (p === undefined) continue
      if (!isObj(p)) throw new FactJsonError(`${name} must be an object, e.g. { "delta": -5 }`)
      parts[name] = part(m.specs[name] as InvariantSpec, p, `${name}.`)
    }
    const unknown = Object.keys(v).filter((k) => k !== 'id' && k !== 'deps' && !m.names.includes(k))
    if (unknown.length > 0) throw new FactJsonError(`unknown member(s) ${unknown.join(', ')} (members: ${m.names.join(', ')})`)
    if (Object.keys(parts).length === 0) throw new FactJsonError(`a fact must address at least one member (${m.names.join(', ')})`)
    payload = m.fact(parts)
  } else payload = part(spec, v, '')
  const f: FactInput = { payload }
  if (v.id !== undefined) f.id = hex(v.id, 'id', 32)
  if (v.deps !== undefined) {
    if (!Array.isArray(v.deps)) throw new FactJsonError('deps must be an array of 64-hex ids')
    f.deps = v.deps.map((d, i) => hex(d, `deps[${i}]`, 32))
  }
  return f
}

/** JSON.stringify with bigints as decimal strings and bytes as hex. */
export function toJson(v: unknown, space?: number): string {
  return JSON.stringify(
    v,
    (_k, x) => {
      if (typeof x === 'bigint') return x.toString()
      if (x instanceof Uint8Array) return Buffer.from(x.buffer, x.byteOffset, x.byteLength).toString('hex')
      if (typeof x === 'function') return undefined
      return x
    },
    space,
  )
}

/** A readable snapshot of a decoded state (functions such as `has()` dropped, bytes as hex). */
export function stateJson(state: unknown): unknown {
  return JSON.parse(toJson(state))
}
