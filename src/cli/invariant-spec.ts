// `--invariant` for `ctfs node`: a built-in invariant with its options,
// `kind:key=value,...`, or several named members for a multi invariant,
// `name=kind:opts;name=kind:opts` (or repeated --invariant flags).
import * as inv from '../invariants/index.ts'
import type { InvariantSpec } from '../invariants/index.ts'

type Opts = Record<string, bigint | number | boolean>
type Factory = (o: Opts) => InvariantSpec

// option kinds: bigint (i128/u128), number (small ints), boolean
const KINDS: Record<string, { make: Factory; options: Record<string, 'big' | 'num' | 'bool'> }> = {
  totalSupply: { make: (o) => inv.totalSupply(o as inv.TotalSupplyOptions), options: { initial: 'big', min: 'big', max: 'big' } },
  max: { make: (o) => inv.max(o as inv.MaxOptions), options: { initial: 'big' } },
  gCounter: { make: (o) => inv.gCounter(o as inv.GCounterOptions), options: { initial: 'big' } },
  boundedGCounter: { make: (o) => inv.boundedGCounter(o as unknown as inv.BoundedGCounterOptions), options: { bound: 'big', initial: 'big' } },
  lww: { make: () => inv.lww(), options: {} },
  uniqueness: { make: () => inv.uniqueness(), options: {} },
  uniqueSet: { make: (o) => inv.uniqueSet(o as inv.UniqueSetOptions), options: { maxElements: 'big' } },
  gGraph: { make: (o) => inv.gGraph(o as inv.GGraphOptions), options: { maxOutDegree: 'num', maxInDegree: 'num', allowSelfLoops: 'bool' } },
  graph: {
    make: (o) => inv.graph(o as inv.GraphOptions),
    options: { maxOutDegree: 'num', maxInDegree: 'num', allowSelfLoops: 'bool', maxEdges: 'big' },
  },
}

/** The invariant kinds `--invariant` knows. */
export const INVARIANT_KINDS = Object.keys(KINDS)

class SpecError extends Error {}

function one(text: string): InvariantSpec {
  const colon = text.indexOf(':')
  const kind = (colon < 0 ? text : text.slice(0, colon)).trim()
  const k = KINDS[kind]
  if (k === undefined) throw new SpecError(`unknown invariant '${kind}' (known: ${INVARIANT_KINDS.join(', ')})`)
  const opts: Opts = {}
  const body = colon < 0 ? '' : text.slice(colon + 1).trim()
  for (const pair of body === '' ? [] : body.split(',')) {
    const eq = pair.indexOf('=')
    const key = (eq < 0 ? pair : pair.slice(0, eq)).trim()
    const value = eq < 0 ? '' : pair.slice(eq + 1).trim()
    const type = k.options[key]
    if (type === undefined) {
      const known = Object.keys(k.options)
      throw new SpecError(`${kind} has no option '${key}'${known.length > 0 ? ` (options: ${known.join(', ')})` : ' (it takes none)'}`)
    }
    if (type === 'bool') {
      if (value !== 'true' && value !== 'false') throw new SpecError(`${kind}.${key} must be true or false, got '${value}'`)
      opts[key] = value === 'true'
    } else {
      if (!/^-?\d+$/.test(value)) throw new SpecError(`${kind}.${key} must be an integer, got '${value}'`)
      opts[key] = type === 'big' ? BigInt(value) : Number(value)
    }
  }
  try {
    return k.make(opts)
  } catch (e) {
    throw new SpecError(`${kind}: ${(e as Error).message}`)
  }
}

/**
 * Builds the invariant of `--invariant` values:
 * - `'totalSupply:initial=1000,min=0'`: one invariant;
 * - `'counter=gCounter;balance=totalSupply:initial=1000,min=0'` (or the
 *   same parts as separate values): a multi invariant with named members.
 * Throws an Error whose message says what is wrong.
 */
export function parseInvariant(values: readonly string[]): InvariantSpec {
  const parts = values.flatMap((v) => v.split(';')).map((p) => p.trim()).filter((p) => p.length > 0)
  if (parts.length === 0) throw new SpecError('--invariant is required, e.g. totalSupply:initial=1000,min=0')
  const named = parts.map((p) => {
    const colon = p.indexOf(':')
    const eq = p.indexOf('=')
    return eq >= 0 && (colon < 0 || eq < colon) ? { name: p.slice(0, eq).trim(), spec: p.slice(eq + 1) } : { name: null, spec: p }
  })
  if (named.length === 1 && named[0]!.name === null) return one(named[0]!.spec)
  const members: Record<string, InvariantSpec> = {}
  for (const n of named) {
    if (n.name === null || n.name === '') throw new SpecError(`several invariants need a name each: name=kind:options (got '${n.spec}')`)
    if (members[n.name] !== undefined) throw new SpecError(`member '${n.name}' is given twice`)
    members[n.name] = one(n.spec)
  }
  try {
    return inv.multi(members)
  } catch (e) {
    throw new SpecError((e as Error).message)
  }
}
