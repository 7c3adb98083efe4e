// One rule for integers across the API (issue 8, "bigint/number"):
// - in: wherever an exact integer is expected, a bigint and a safe-integer
//   number are both accepted and mean the same (`supply.delta(5)` and
//   `supply.delta(5n)` build the same payload); a number that is not an
//   integer, or not safe (|n| > 2^53 − 1), is a RangeError (ERR_OUT_OF_RANGE),
//   a value of another type a TypeError (ERR_INVALID_ARG_TYPE);
// - out: a value stored in a 64- or 128-bit field is a bigint; a value of at
//   most 32 bits (counts bounded by the cell, vertex ids, sequence numbers,
//   stats) is a number.
import test from 'ava'

import { Escrow, FactBatch, Kernel, invariants as I } from '../src/index.ts'

const supply = I.totalSupply()

/** [what, build(v) → something comparable] for every integer parameter. */
const inputs: Array<[string, (v: bigint | number) => unknown]> = [
  ['totalSupply.delta', (v) => supply.delta(v)],
  ['totalSupply.writeDelta (delta)', (v) => {
    const b = new Uint8Array(32)
    supply.writeDelta(b, 8, v)
    return b
  }],
  ['totalSupply.writeDelta (offset)', (v) => {
    const b = new Uint8Array(32)
    supply.writeDelta(b, v as number, 1n)
    return b
  }],
  ['totalSupply({ initial })', (v) => I.totalSupply({ initial: v }).native],
  ['totalSupply({ min })', (v) => I.totalSupply({ min: v, initial: 5n }).native],
  ['totalSupply({ max })', (v) => I.totalSupply({ max: v }).native],
  ['max.value', (v) => I.max().value(v)],
  ['max({ initial })', (v) => I.max({ initial: v }).native],
  ['gCounter.increment', (v) => I.gCounter().increment(v)],
  ['gCounter({ initial })', (v) => I.gCounter({ initial: v }).native],
  ['boundedGCounter({ bound })', (v) => I.boundedGCounter({ bound: v }).native],
  ['boundedGCounter({ initial })', (v) => I.boundedGCounter({ bound: 10n, initial: v }).native],
  ['boundedGCounter.increment', (v) => I.boundedGCounter({ bound: 10n }).increment(v)],
  ['lww.write (timestamp)', (v) => I.lww().write(v, new Uint8Array(1))],
  ['uniqueness.add', (v) => I.uniqueness().add(v)],
  ['uniqueness.read().has', (v) => I.uniqueness().read(new Uint8Array(64).fill(0xaa)).has(v)],
  ['uniqueSet({ maxElements })', (v) => I.uniqueSet({ maxElements: v }).native],
  ['gGraph.edge', (v) => I.gGraph().edge(v, v === 5 || v === 5n ? 4 : v)],
  ['gGraph({ maxOutDegree })', (v) => I.gGraph({ maxOutDegree: v }).native],
  ['gGraph({ maxInDegree })', (v) => I.gGraph({ maxInDegree: v }).native],
  ['gGraph.read().outDegree', (v) => I.gGraph().read(new Uint8Array(64)).outDegree(v)],
  ['graph.edge', (v) => I.graph().edge(v, 1n)],
  ['graph({ maxEdges })', (v) => I.graph({ maxEdges: v }).native],
  ['graph({ maxOutDegree })', (v) => I.graph({ maxOutDegree: v }).native],
  ['kernel.hasEdge', (v) => new Kernel({ invariant: I.graph() }).hasEdge(v, v)],
  ['Kernel({ maxDeps })', (v) => new Kernel({ invariant: supply, maxDeps: v }).limits],
  ['Kernel({ maxPayloadBytes })', (v) => new Kernel({ invariant: supply, maxPayloadBytes: v }).limits],
  ['Kernel({ maxFacts })', (v) => new Kernel({ invariant: supply, maxFacts: v }).limits],
  ['Kernel({ replica: { local } })', (v) => new Kernel({ invariant: supply, replica: { nodes: [5n, 6n], local: v } }).replica?.local],
  ['new Escrow(total)', (v) => new Escrow(v).total],
  ['Escrow.tryConsume', (v) => {
    const e = new Escrow(10n)
    e.initialize([1n, 2n])
    e.tryConsume(v === 5 || v === 5n ? 1 : v, v)
    return e.quotas
  }],
  ['new Escrow(_, { reservePercent })', (v) => new Escrow(10n, { reservePercent: v }).total],
  ['new FactBatch(capacityBytes)', (v) => new FactBatch(v).length],
]

for (const [name, build] of inputs) {
  test(`integer rule: ${name} takes 5 and 5n alike; 5.5, 2^53 are RangeErrors, '5' a TypeError`, (t) => {
    t.deepEqual(build(5), build(5n))
    t.throws(() => build(5.5), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' } as never)
    t.throws(() => build(2 ** 53), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' } as never)
    t.throws(() => build('5' as never), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' } as never)
  })
}

test('integer rule: the issue 8 pair — supply.delta(5) and gCounter.increment(5) are both fine', (t) => {
  const k = new Kernel({ invariant: supply })
  k.admit(supply.delta(5))
  k.admit(supply.delta(-2))
  t.is(k.read().balance, 3n)
  const views = I.gCounter()
  const g = new Kernel({ invariant: views })
  g.admit(views.increment(5))
  g.admit(views.increment(5n))
  t.is(g.read().sum, 10n)
})

test('integer rule, out: 64/128-bit fields are bigints, fields of at most 32 bits are numbers', (t) => {
  const types = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).filter(([, v]) => typeof v !== 'function').map(([k, v]) => [k, v === null ? 'null' : v instanceof Uint8Array ? 'bytes' : Array.isArray(v) ? 'array' : typeof v]))
  const cell = new Uint8Array(64)
  t.deepEqual(types({ ...I.totalSupply().read(cell) }), { balance: 'bigint', min: 'bigint', max: 'bigint' }) // i128
  t.deepEqual(types({ ...I.max().read(cell) }), { value: 'bigint', initial: 'bigint' }) // i128
  t.deepEqual(types({ ...I.gCounter().read(cell) }), { sum: 'bigint' }) // u128
  t.deepEqual(types({ ...I.boundedGCounter({ bound: 1n }).read(cell) }), { sum: 'bigint', bound: 'bigint' }) // u128
  t.deepEqual(types({ ...I.lww().read(cell) }), { timestamp: 'bigint', writer: 'null', value: 'bytes', written: 'boolean' }) // u64
  t.deepEqual(types({ ...I.uniqueSet({ maxElements: 3 }).read(new Uint8Array(64).fill(1)) }), { count: 'bigint', digest: 'bytes', maxElements: 'bigint' }) // u64
  t.deepEqual(types({ ...I.graph().read(cell) }), { edges: 'bigint', vertices: 'bigint', digest: 'bytes' }) // u64
  // at most 32 bits: the uniqueness count (a popcount, 0..512) and elements (0..511), gGraph's u16 edge count and u8 limits
  t.deepEqual(types({ ...I.uniqueness().read(cell) }), { count: 'number', elements: 'array' })
  const gg = I.gGraph({ maxOutDegree: 2 })
  t.deepEqual(types({ ...gg.read(new Kernel({ invariant: gg }).state) }), {
    edges: 'array',
    edgeCount: 'number',
    maxOutDegree: 'number',
    maxInDegree: 'null',
    allowSelfLoops: 'boolean',
  })
  // node ids and amounts are u64 / u128: bigints; kernel counters (bounded by maxFacts < 2^32) are numbers
  const e = new Escrow(10)
  e.initialize([1, 2])
  t.deepEqual(types({ ...e.quota(1) }), { node: 'bigint', quota: 'bigint', consumed: 'bigint', available: 'bigint' })
  t.is(typeof e.total, 'bigint')
  t.is(typeof e.pending, 'number')
  const k = new Kernel({ invariant: supply, replica: { nodes: [1, 2], local: 1 } })
  t.is(typeof k.replica?.local, 'bigint')
  t.is(typeof k.frontier.count, 'number')
  t.is(typeof k.stats.admitted, 'number')
  t.is(typeof k.limits.maxFacts, 'number')
})
