// The typed invariant specs: payload encodings, state decoding, refusals
// (state unchanged), argument validation, and the class table against the
// native kernel's.
import test, { type ExecutionContext } from 'ava'
import fc from 'fast-check'

import { CtfsError, Kernel, invariants as I, type CtfsErrorCode, type InvariantSpec } from '../src/index.ts'
import { rid, snapshot } from './helpers.ts'

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

/** Admitting `payload` is refused with `code` and changes nothing. */
function refused(t: ExecutionContext, k: Kernel<InvariantSpec>, payload: Uint8Array, code: CtfsErrorCode, message?: RegExp) {
  const before = snapshot(k)
  const e = t.throws(() => k.admit(payload), { instanceOf: CtfsError })
  t.is(e?.code, code)
  if (message !== undefined) t.regex(e?.message ?? '', message)
  t.deepEqual(snapshot(k), before)
  t.is(k.stats.rejected[code] > 0, true)
}

function typeError(t: ExecutionContext, f: () => unknown) {
  const e = t.throws(f, { instanceOf: TypeError })
  t.is((e as TypeError & { code?: string }).code, 'ERR_INVALID_ARG_TYPE')
}

function rangeError(t: ExecutionContext, f: () => unknown) {
  const e = t.throws(f, { instanceOf: RangeError })
  t.is((e as RangeError & { code?: string }).code, 'ERR_OUT_OF_RANGE')
}

// ---------------------------------------------------------------- classes

const CONFIGS: Array<[string, () => InvariantSpec, string, string]> = [
  ['totalSupply()', () => I.totalSupply(), 'group', 'none'],
  ['totalSupply({ min })', () => I.totalSupply({ min: 0n }), 'bounded', 'escrow'],
  ['totalSupply({ max })', () => I.totalSupply({ max: 10n }), 'bounded', 'escrow'],
  ['max()', () => I.max(), 'semilattice', 'none'],
  ['max({ initial })', () => I.max({ initial: -3n }), 'semilattice', 'none'],
  ['gCounter()', () => I.gCounter(), 'commutativeMonoid', 'none'],
  ['boundedGCounter', () => I.boundedGCounter({ bound: 10n }), 'bounded', 'escrow'],
  ['lww()', () => I.lww(), 'lastWriterWins', 'none'],
  ['uniqueness()', () => I.uniqueness(), 'idempotentSet', 'none'],
  ['uniqueSet()', () => I.uniqueSet(), 'idempotentSet', 'none'],
  ['uniqueSet({ maxElements })', () => I.uniqueSet({ maxElements: 3 }), 'bounded', 'escrow'],
  ['gGraph()', () => I.gGraph(), 'growOnlyGraph', 'none'],
  ['gGraph({ allowSelfLoops })', () => I.gGraph({ allowSelfLoops: true }), 'growOnlyGraph', 'none'],
  ['gGraph({ maxOutDegree: 2 })', () => I.gGraph({ maxOutDegree: 2 }), 'nonCommutative', 'required'],
  ['gGraph({ maxInDegree: 1 })', () => I.gGraph({ maxInDegree: 1 }), 'nonCommutative', 'required'],
  ['gGraph({ maxOutDegree: 15 }) (cannot bind)', () => I.gGraph({ maxOutDegree: 15 }), 'growOnlyGraph', 'none'],
  ['gGraph({ maxOutDegree: 15, allowSelfLoops })', () => I.gGraph({ maxOutDegree: 15, allowSelfLoops: true }), 'nonCommutative', 'required'],
  ['gGraph({ maxInDegree: 16, allowSelfLoops })', () => I.gGraph({ maxInDegree: 16, allowSelfLoops: true }), 'growOnlyGraph', 'none'],
  ['graph()', () => I.graph(), 'growOnlyGraph', 'none'],
  ['graph({ maxEdges })', () => I.graph({ maxEdges: 5n }), 'bounded', 'escrow'],
  ['graph({ maxOutDegree })', () => I.graph({ maxOutDegree: 100 }), 'nonCommutative', 'required'],
  ['graph({ maxInDegree, maxEdges })', () => I.graph({ maxInDegree: 1, maxEdges: 9 }), 'nonCommutative', 'required'],
  ['custom group', () => I.custom({ name: 'c', class: 'group', initial: new Uint8Array(1), apply() {} }), 'group', 'none'],
  ['custom bounded', () => I.custom({ name: 'c', class: 'bounded', initial: new Uint8Array(1), apply() {} }), 'bounded', 'escrow'],
  ['custom nonCommutative', () => I.custom({ name: 'c', class: 'nonCommutative', initial: new Uint8Array(1), apply() {} }), 'nonCommutative', 'required'],
  ['multi(gCounter, max)', () => I.multi({ a: I.gCounter(), b: I.max() }), 'commutativeMonoid', 'none'],
  ['multi(gCounter, bounded supply)', () => I.multi({ a: I.gCounter(), b: I.totalSupply({ min: 0n }) }), 'bounded', 'escrow'],
  [
    'multi(supply, gGraph limited, bounded counter)',
    () => I.multi({ a: I.totalSupply(), b: I.gGraph({ maxInDegree: 1 }), c: I.boundedGCounter({ bound: 1n }) }),
    'nonCommutative',
    'required',
  ],
  ['multi(one member)', () => I.multi({ only: I.lww() }), 'lastWriterWins', 'none'],
]

for (const [label, make, cls, coordination] of CONFIGS) {
  test(`class table: ${label} is ${cls} / ${coordination}, as the native kernel says`, (t) => {
    const spec = make()
    t.is(spec.class, cls as never)
    t.is(spec.coordination, coordination as never)
    const k = new Kernel({ invariant: spec })
    t.is(k.invariantClass, spec.class)
    t.is(k.coordination, spec.coordination)
    t.is(k.state.length, 64 * (spec.members?.length ?? 1))
    t.notThrows(() => spec.read(k.state))
  })
}

// ---------------------------------------------------------------- max

test('max: payload, read, join, no refusal for lower values, malformed payloads', (t) => {
  const m = I.max({ initial: 10n })
  t.is(hex(m.value(1n)), '01' + '00'.repeat(15))
  t.is(hex(m.value(-1n)), 'ff'.repeat(16))
  const k = new Kernel({ invariant: m })
  t.deepEqual(m.read(k.state), { value: 10n, initial: 10n })
  k.admit(m.value(5n))
  t.deepEqual(k.read(), { value: 10n, initial: 10n })
  k.admit(m.value(1n << 100n))
  k.admit(m.value(7n))
  t.deepEqual(k.read(), { value: 1n << 100n, initial: 10n })
  t.is(k.stats.admitted, 3)
  refused(t, k, new Uint8Array(15), 'MALFORMED_FACT')
  refused(t, k, new Uint8Array(17), 'MALFORMED_FACT')
  t.is(I.max().read(new Kernel({ invariant: I.max() }).state).value, -(1n << 127n))
})

test('max: bad inputs', (t) => {
  const m = I.max()
  typeError(t, () => m.value('1' as never))
  rangeError(t, () => m.value(1.5))
  rangeError(t, () => m.value(2 ** 53))
  rangeError(t, () => m.value(1n << 127n))
  typeError(t, () => I.max({ initial: '0' as never }))
  rangeError(t, () => I.max({ initial: -(1n << 127n) - 1n }))
  typeError(t, () => I.max(null as never))
  typeError(t, () => m.read('x' as never))
  rangeError(t, () => m.read(new Uint8Array(8)))
})

// ---------------------------------------------------------------- gCounter

test('gCounter: payload, read, increments (number and bigint), zero, malformed', (t) => {
  const c = I.gCounter({ initial: 5n })
  t.is(hex(c.increment(1)), '0100000000000000')
  t.is(hex(c.increment(2n ** 64n - 1n)), 'ff'.repeat(8))
  t.deepEqual(c.increment(300), c.increment(300n))
  const k = new Kernel({ invariant: c })
  t.deepEqual(k.read(), { sum: 5n })
  k.admit(c.increment(10))
  k.admit(c.increment(0))
  k.admit(c.increment(2n ** 64n - 1n))
  t.deepEqual(k.read(), { sum: 15n + 2n ** 64n - 1n })
  refused(t, k, new Uint8Array(7), 'MALFORMED_FACT')
  refused(t, k, new Uint8Array(16), 'MALFORMED_FACT')
})

test('gCounter: u128 overflow is refused, never wrapped', (t) => {
  const c = I.gCounter({ initial: (1n << 128n) - 2n })
  const k = new Kernel({ invariant: c })
  k.admit(c.increment(1))
  refused(t, k, c.increment(1), 'INVARIANT_VIOLATION')
  t.is(k.read().sum, (1n << 128n) - 1n)
})

test('gCounter / boundedGCounter: bad inputs', (t) => {
  const c = I.gCounter()
  rangeError(t, () => c.increment(-1))
  rangeError(t, () => c.increment(2n ** 64n))
  rangeError(t, () => c.increment(1.5))
  rangeError(t, () => c.increment(Number.MAX_SAFE_INTEGER + 1))
  typeError(t, () => c.increment('1' as never))
  rangeError(t, () => I.gCounter({ initial: -1n }))
  rangeError(t, () => I.gCounter({ initial: 1n << 128n }))
  typeError(t, () => I.boundedGCounter(undefined as never))
  typeError(t, () => I.boundedGCounter({} as never))
  typeError(t, () => I.boundedGCounter({ bound: '10' as never }))
  rangeError(t, () => I.boundedGCounter({ bound: 10.5 }))
  rangeError(t, () => I.boundedGCounter({ bound: 10n, initial: 11n }))
  rangeError(t, () => I.boundedGCounter({ bound: -1n }))
})

test('boundedGCounter: admits up to the bound, refuses past it (state unchanged)', (t) => {
  const c = I.boundedGCounter({ bound: 10n, initial: 2n })
  const k = new Kernel({ invariant: c })
  t.deepEqual(k.read(), { sum: 2n, bound: 10n })
  k.admit(c.increment(6))
  refused(t, k, c.increment(3), 'INVARIANT_VIOLATION', /exceed the bound 10/)
  k.admit(c.increment(2))
  t.deepEqual(k.read(), { sum: 10n, bound: 10n })
  refused(t, k, c.increment(1), 'INVARIANT_VIOLATION')
  k.admit(c.increment(0))
  refused(t, k, new Uint8Array(3), 'MALFORMED_FACT')
})

// ---------------------------------------------------------------- lww

test('lww: payload, read before and after writes, the higher timestamp wins, ties go to the lowest id', (t) => {
  const r = I.lww()
  const abc = new Uint8Array([97, 98, 99])
  t.is(hex(r.write(258n, abc)), '0201000000000000616263')
  t.is(r.write(1, new Uint8Array(0)).length, 8)
  const k = new Kernel({ invariant: r })
  t.deepEqual(k.read(), { timestamp: 0n, writer: null, value: new Uint8Array(0), written: false })
  const id5 = new Uint8Array(32).fill(5)
  k.admit(r.write(10n, abc), { id: id5 })
  t.deepEqual(k.read(), { timestamp: 10n, writer: id5, value: abc, written: true })
  k.admit(r.write(9n, new Uint8Array([1])))
  t.deepEqual(k.read().value, abc, 'an older write is admitted and loses')
  const id9 = new Uint8Array(32).fill(9)
  k.admit(r.write(10n, new Uint8Array([2])), { id: id9 })
  t.deepEqual(k.read().writer, id5, 'same timestamp, higher id: loses')
  const id1 = new Uint8Array(32).fill(1)
  k.admit(r.write(10n, new Uint8Array(16).fill(7)), { id: id1 })
  t.deepEqual(k.read(), { timestamp: 10n, writer: id1, value: new Uint8Array(16).fill(7), written: true })
  k.admit(r.write(2n ** 64n - 1n, new Uint8Array(0)))
  t.is(k.read().timestamp, 2n ** 64n - 1n)
  t.deepEqual(k.read().value, new Uint8Array(0))
  t.true(k.read().written)
  refused(t, k, new Uint8Array(7), 'MALFORMED_FACT')
  refused(t, k, new Uint8Array(25), 'MALFORMED_FACT')
})

test('lww: bad inputs', (t) => {
  const r = I.lww()
  rangeError(t, () => r.write(-1n, new Uint8Array(1)))
  rangeError(t, () => r.write(2n ** 64n, new Uint8Array(1)))
  rangeError(t, () => r.write(1n, new Uint8Array(17)))
  typeError(t, () => r.write(1n, 'abc' as never))
  typeError(t, () => r.write('1' as never, new Uint8Array(1)))
  rangeError(t, () => r.read(new Uint8Array(63)))
})

// ---------------------------------------------------------------- uniqueness

test('uniqueness: payload, read, DUPLICATE_ELEMENT, exact over 0..511 (no aliasing)', (t) => {
  const u = I.uniqueness()
  t.is(hex(u.add(0)), '0000')
  t.is(hex(u.add(511)), 'ff01')
  const k = new Kernel({ invariant: u })
  t.is(k.read().count, 0)
  for (const e of [0, 7, 8, 511, 256]) k.admit(u.add(e))
  const s = k.read()
  t.is(s.count, 5)
  t.deepEqual(s.elements, [0, 7, 8, 256, 511])
  t.true(s.has(511))
  t.false(s.has(1))
  t.is(k.state[63], 0x80)
  refused(t, k, u.add(7), 'DUPLICATE_ELEMENT')
  refused(t, k, new Uint8Array([0, 2]), 'MALFORMED_FACT') // 512
  refused(t, k, new Uint8Array([1]), 'MALFORMED_FACT')
  // every element of the universe, exactly once: no false refusal
  const all = new Kernel({ invariant: u })
  const r = all.admitBatch(Array.from({ length: 512 }, (_, e) => ({ payload: u.add(e) })))
  t.is(r.admitted, 512)
  t.is(all.read().count, 512)
  t.deepEqual(all.state, new Uint8Array(64).fill(0xff))
  t.is(all.admitBatch(Array.from({ length: 512 }, (_, e) => ({ payload: u.add(e) }))).code(100), 'DUPLICATE_ELEMENT')
})

test('uniqueness: bad inputs', (t) => {
  const u = I.uniqueness()
  rangeError(t, () => u.add(512))
  rangeError(t, () => u.add(-1))
  rangeError(t, () => u.add(1.5))
  typeError(t, () => u.add('1' as never))
  rangeError(t, () => u.add(512n))
  const s = u.read(new Uint8Array(64))
  rangeError(t, () => s.has(600))
})

// ---------------------------------------------------------------- uniqueSet

test('uniqueSet: payload, summary cell, has(), DUPLICATE_ELEMENT, maxElements', (t) => {
  const s = I.uniqueSet({ maxElements: 2 })
  const a = new Uint8Array(32).fill(1)
  const b = new Uint8Array(32).fill(2)
  const c = new Uint8Array(32).fill(3)
  t.deepEqual(s.add(a), a)
  t.not(s.add(a), a)
  const k = new Kernel({ invariant: s })
  t.deepEqual(k.read(), { count: 0n, digest: new Uint8Array(32), maxElements: 2n })
  k.admit(s.add(a))
  t.true(k.has(a))
  t.false(k.has(b))
  refused(t, k, s.add(a), 'DUPLICATE_ELEMENT')
  k.admit(s.add(b))
  refused(t, k, s.add(c), 'INVARIANT_VIOLATION')
  t.false(k.has(c))
  t.is(k.read().count, 2n)
  refused(t, k, new Uint8Array(31), 'MALFORMED_FACT')
  // equal sets, equal digests, whatever the order
  const u = I.uniqueSet()
  const k1 = new Kernel({ invariant: u })
  const k2 = new Kernel({ invariant: u })
  k1.admit(u.add(a))
  k1.admit(u.add(b))
  k2.admit(u.add(b))
  k2.admit(u.add(a))
  t.deepEqual(k1.state, k2.state)
  t.notDeepEqual(k1.read().digest, new Uint8Array(32))
  t.is(k1.read().maxElements, null)
  // tenants have their own sets
  const tn = k1.tenant('other')
  t.false(tn.has(a))
  tn.admit(u.add(a))
  t.true(tn.has(a))
})

test('uniqueSet / has: bad inputs', (t) => {
  const s = I.uniqueSet()
  rangeError(t, () => s.add(new Uint8Array(31)))
  typeError(t, () => s.add('k' as never))
  rangeError(t, () => I.uniqueSet({ maxElements: 0 }))
  rangeError(t, () => I.uniqueSet({ maxElements: 2n ** 64n - 1n }))
  typeError(t, () => I.uniqueSet({ maxElements: '3' as never }))
  const k = new Kernel({ invariant: s })
  rangeError(t, () => k.has(new Uint8Array(33)))
  typeError(t, () => k.has(null as never))
  typeError(t, () => k.has(new Uint8Array(32), 'name'))
  rangeError(t, () => k.has(new Uint8Array(32), 1))
  const g = new Kernel({ invariant: I.gCounter() })
  typeError(t, () => g.has(new Uint8Array(32)))
  typeError(t, () => g.hasEdge(1n, 2n))
})

// ---------------------------------------------------------------- gGraph

test('gGraph: payload, adjacency read, degrees, self loops, re-adding is a no-op', (t) => {
  const g = I.gGraph()
  t.is(hex(g.edge(3, 15)), '030f')
  const k = new Kernel({ invariant: g })
  k.admit(g.edge(0, 1))
  k.admit(g.edge(0, 2))
  k.admit(g.edge(15, 1))
  const s = k.read()
  t.deepEqual(s.edges, [
    [0, 1],
    [0, 2],
    [15, 1],
  ])
  t.is(s.edgeCount, 3)
  t.true(s.hasEdge(15, 1))
  t.false(s.hasEdge(1, 15))
  t.is(s.outDegree(0), 2)
  t.is(s.inDegree(1), 2)
  t.is(s.maxOutDegree, null)
  t.false(s.allowSelfLoops)
  const before = k.state
  k.admit(g.edge(0, 1))
  t.deepEqual(k.state, before, 're-adding an edge is admitted and changes nothing')
  refused(t, k, g.edge(4, 4), 'INVARIANT_VIOLATION', /self loop/)
  refused(t, k, new Uint8Array([16, 0]), 'MALFORMED_FACT')
  refused(t, k, new Uint8Array([1, 2, 3]), 'MALFORMED_FACT')
  const loops = I.gGraph({ allowSelfLoops: true })
  const kl = new Kernel({ invariant: loops })
  kl.admit(loops.edge(4, 4))
  t.true(kl.read().hasEdge(4, 4))
  t.true(kl.read().allowSelfLoops)
})

test('gGraph: degree limits refuse, re-adding at the limit does not', (t) => {
  const g = I.gGraph({ maxOutDegree: 2, maxInDegree: 1 })
  const k = new Kernel({ invariant: g })
  t.is(k.read().maxOutDegree, 2)
  t.is(k.read().maxInDegree, 1)
  k.admit(g.edge(0, 1))
  k.admit(g.edge(0, 2))
  refused(t, k, g.edge(0, 3), 'INVARIANT_VIOLATION', /out-degree/)
  refused(t, k, g.edge(5, 1), 'INVARIANT_VIOLATION', /in-degree/)
  k.admit(g.edge(0, 1))
  t.is(k.read().edgeCount, 2)
})

test('gGraph: bad inputs', (t) => {
  const g = I.gGraph()
  rangeError(t, () => g.edge(16, 0))
  rangeError(t, () => g.edge(0, -1))
  typeError(t, () => g.edge('0' as never, 1))
  rangeError(t, () => g.edge(16n, 1))
  rangeError(t, () => I.gGraph({ maxOutDegree: 0 }))
  rangeError(t, () => I.gGraph({ maxInDegree: 17 }))
  typeError(t, () => I.gGraph({ allowSelfLoops: 1 as never }))
  rangeError(t, () => g.read(new Uint8Array(64)).outDegree(16))
})

// ---------------------------------------------------------------- graph

test('graph: payload, summary cell, hasEdge, limits, re-adding is a no-op', (t) => {
  const g = I.graph({ maxEdges: 3 })
  t.is(hex(g.edge(1n, 2n ** 64n - 1n)), '0100000000000000' + 'ff'.repeat(8))
  t.deepEqual(g.edge(7, 8), g.edge(7n, 8n))
  const k = new Kernel({ invariant: g })
  t.deepEqual(k.read(), { edges: 0n, vertices: 0n, digest: new Uint8Array(32) })
  k.admit(g.edge(1n, 2n))
  k.admit(g.edge(2n, 3n))
  t.deepEqual([k.read().edges, k.read().vertices], [2n, 3n])
  t.true(k.hasEdge(1n, 2n))
  t.true(k.hasEdge(2, 3))
  t.false(k.hasEdge(3n, 2n))
  const before = k.state
  k.admit(g.edge(1n, 2n))
  t.deepEqual(k.state, before)
  refused(t, k, g.edge(9n, 9n), 'INVARIANT_VIOLATION', /self loop/)
  k.admit(g.edge(2n ** 64n - 1n, 0n))
  refused(t, k, g.edge(5n, 6n), 'INVARIANT_VIOLATION', /full/)
  refused(t, k, new Uint8Array(15), 'MALFORMED_FACT')
  const d = I.graph({ maxOutDegree: 1, maxInDegree: 1 })
  const kd = new Kernel({ invariant: d })
  kd.admit(d.edge(1n, 2n))
  refused(t, kd, d.edge(1n, 3n), 'INVARIANT_VIOLATION', /out-degree/)
  refused(t, kd, d.edge(4n, 2n), 'INVARIANT_VIOLATION', /in-degree/)
})

test('graph: bad inputs', (t) => {
  const g = I.graph()
  rangeError(t, () => g.edge(-1n, 0n))
  rangeError(t, () => g.edge(0n, 2n ** 64n))
  typeError(t, () => g.edge('1' as never, 0n))
  rangeError(t, () => I.graph({ maxEdges: 0 }))
  rangeError(t, () => I.graph({ maxOutDegree: 0 }))
  rangeError(t, () => I.graph({ maxInDegree: 2 ** 32 }))
  const k = new Kernel({ invariant: g })
  rangeError(t, () => k.hasEdge(-1, 0))
  typeError(t, () => k.hasEdge(null as never, 0))
})

// ---------------------------------------------------------------- misc

test('every spec survives garbage payloads without a crash or a change', (t) => {
  const specs: InvariantSpec[] = [
    I.max(),
    I.gCounter(),
    I.boundedGCounter({ bound: 5n }),
    I.lww(),
    I.uniqueness(),
    I.uniqueSet(),
    I.gGraph(),
    I.graph(),
    I.multi({ a: I.gCounter(), b: I.uniqueSet() }),
  ]
  for (const spec of specs) {
    const k = new Kernel({ invariant: spec })
    for (const len of [0, 1, 3, 33, 100, 4096]) {
      const payload = new Uint8Array(len).fill(0xff)
      const before = snapshot(k)
      try {
        k.admit(payload, { id: rid() })
      } catch (e) {
        t.true(e instanceof CtfsError, `${spec.name} ${len}`)
        t.deepEqual(snapshot(k), before)
      }
    }
  }
})

test('batches work for every built-in (mixed admitted and refused)', (t) => {
  const u = I.uniqueness()
  const k = new Kernel({ invariant: u })
  const r = k.admitBatch([{ payload: u.add(1) }, { payload: u.add(1) }, { payload: u.add(2) }, { payload: new Uint8Array(5) }])
  t.is(r.admitted, 2)
  t.is(r.code(1), 'DUPLICATE_ELEMENT')
  t.is(r.code(3), 'MALFORMED_FACT')
  t.deepEqual(k.read().elements, [1, 2])
})

// ---------------------------------------------------------------- properties

const idArb = fc.uint8Array({ minLength: 32, maxLength: 32 })

/**
 * For a coordination-free invariant: two kernels admitting the same facts (in
 * arbitrary order and a shuffled one) end with byte-identical state and
 * frontier. Each fact has its own id; `unique` draws payloads distinct by
 * hex (for sets, where a second carrier of an element is refused).
 */
function converges<P>(
  t: ExecutionContext,
  spec: InvariantSpec,
  arb: fc.Arbitrary<P>,
  payload: (p: P) => Uint8Array,
  opts: { unique?: boolean; numRuns?: number; expectAllAdmitted?: boolean } = {},
) {
  const entries = opts.unique
    ? fc.uniqueArray(fc.tuple(idArb, arb), { minLength: 1, maxLength: 40, selector: ([, p]) => hex(payload(p)) })
    : fc.array(fc.tuple(idArb, arb), { minLength: 1, maxLength: 40 })
  fc.assert(
    fc.property(
      entries.filter((fs) => new Set(fs.map(([id]) => hex(id))).size === fs.length),
      fc.func(fc.integer()),
      (facts, order) => {
        const shuffled = [...facts].sort((a, b) => order(hex(a[0])) - order(hex(b[0])))
        const run = (fs: typeof facts) => {
          const k = new Kernel({ invariant: spec })
          for (const [id, p] of fs) {
            try {
              k.admit(payload(p), { id })
            } catch (e) {
              if (!(e instanceof CtfsError)) throw e
              if (opts.expectAllAdmitted !== false) throw e
            }
          }
          return snapshot(k)
        }
        const a = run(facts)
        const b = run(shuffled)
        return a.state === b.state && a.digest === b.digest && a.count === b.count && a.clock === b.clock
      },
    ),
    { numRuns: opts.numRuns ?? 100 },
  )
  t.pass()
}

test('property: max converges under any order', (t) => {
  const m = I.max({ initial: 0n })
  converges(t, m, fc.bigInt({ min: -(1n << 127n), max: (1n << 127n) - 1n }), (v) => m.value(v))
})

test('property: gCounter converges under any order', (t) => {
  const c = I.gCounter()
  converges(t, c, fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), (v) => c.increment(v))
})

test('property: lww converges under any order (timestamp ties included)', (t) => {
  const r = I.lww()
  converges(t, r, fc.tuple(fc.bigInt({ min: 0n, max: 5n }), fc.uint8Array({ maxLength: 16 })), ([ts, v]) => r.write(ts, v))
})

test('property: uniqueness converges under any order', (t) => {
  const u = I.uniqueness()
  converges(t, u, fc.integer({ min: 0, max: 511 }), (e) => u.add(e), { unique: true })
})

test('property: uniqueSet converges under any order', (t) => {
  const s = I.uniqueSet()
  converges(t, s, fc.uint8Array({ minLength: 32, maxLength: 32 }), (k) => s.add(k), { unique: true })
})

test('property: gGraph (no limits) converges under any order, re-added edges included', (t) => {
  const g = I.gGraph()
  const v = fc.integer({ min: 0, max: 15 })
  converges(t, g, fc.tuple(v, v).filter(([a, b]) => a !== b), ([a, b]) => g.edge(a, b))
})

test('property: graph (no limits) converges under any order, re-added edges included', (t) => {
  const g = I.graph()
  const v = fc.bigInt({ min: 0n, max: 20n })
  converges(t, g, fc.tuple(v, v).filter(([a, b]) => a !== b), ([a, b]) => g.edge(a, b))
})

test('property: a multi of coordination-free members converges under any order', (t) => {
  const m = I.multi({ count: I.gCounter(), high: I.max(), reg: I.lww() })
  const part = fc.record({
    count: fc.option(fc.bigInt({ min: 0n, max: 1000n }), { nil: undefined }),
    high: fc.option(fc.bigInt({ min: -100n, max: 100n }), { nil: undefined }),
    reg: fc.option(fc.tuple(fc.bigInt({ min: 0n, max: 3n }), fc.uint8Array({ maxLength: 4 })), { nil: undefined }),
  })
  converges(
    t,
    m,
    part.filter((p) => p.count !== undefined || p.high !== undefined || p.reg !== undefined),
    (p) =>
      m.fact({
        ...(p.count !== undefined ? { count: m.specs.count.increment(p.count) } : {}),
        ...(p.high !== undefined ? { high: m.specs.high.value(p.high) } : {}),
        ...(p.reg !== undefined ? { reg: m.specs.reg.write(p.reg[0], p.reg[1]) } : {}),
      }),
    { numRuns: 60 },
  )
})

test('property: sets with repeated elements still reach identical state (not identical facts)', (t) => {
  const u = I.uniqueness()
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 40 }), { minLength: 1, maxLength: 60 }), fc.func(fc.integer()), (els, order) => {
      const facts = els.map((e, i) => ({ id: new Uint8Array(32).fill(0).map((_, j) => (j < 4 ? (i >> (8 * j)) & 0xff : 7)), e }))
      const shuffled = [...facts].sort((a, b) => order(hex(a.id)) - order(hex(b.id)))
      const run = (fs: typeof facts) => {
        const k = new Kernel({ invariant: u })
        let dup = 0
        for (const f of fs) {
          try {
            k.admit(u.add(f.e), { id: f.id })
          } catch (e) {
            if (!(e instanceof CtfsError) || e.code !== 'DUPLICATE_ELEMENT') throw e
            dup++
          }
        }
        return { state: hex(k.state), dup }
      }
      const a = run(facts)
      const b = run(shuffled)
      return a.state === b.state && a.dup === b.dup && a.dup === els.length - new Set(els).size
    }),
    { numRuns: 100 },
  )
  t.pass()
})

test('property: duplicates under new ids change nothing (max: absorbed; uniqueness: DUPLICATE_ELEMENT; graphs: no-op)', (t) => {
  const m = I.max()
  const u = I.uniqueness()
  const gg = I.gGraph()
  const g = I.graph()
  const gen = fc.record({
    value: fc.bigInt({ min: -1000n, max: 1000n }),
    element: fc.integer({ min: 0, max: 511 }),
    from: fc.integer({ min: 0, max: 15 }),
    to: fc.integer({ min: 0, max: 15 }),
  })
  fc.assert(
    fc.property(fc.array(gen, { minLength: 1, maxLength: 20 }), (items) => {
      const cases: Array<[InvariantSpec, (x: (typeof items)[number]) => Uint8Array, 'absorbed' | 'refused']> = [
        [m, (x) => m.value(x.value), 'absorbed'],
        [u, (x) => u.add(x.element), 'refused'],
        [gg, (x) => gg.edge(x.from, (x.to + (x.from === x.to ? 1 : 0)) % 16), 'absorbed'],
        [g, (x) => g.edge(BigInt(x.from), BigInt(x.to + 16)), 'absorbed'],
      ]
      for (const [spec, payload, how] of cases) {
        const k = new Kernel({ invariant: spec })
        for (const x of items) {
          try {
            k.admit(payload(x))
          } catch (e) {
            if (!(e instanceof CtfsError) || e.code !== 'DUPLICATE_ELEMENT') throw e
          }
        }
        const state = hex(k.state)
        for (const x of items) {
          try {
            k.admit(payload(x))
            if (how === 'refused') return false
          } catch (e) {
            if (how !== 'refused' || !(e instanceof CtfsError) || e.code !== 'DUPLICATE_ELEMENT') return false
          }
          if (hex(k.state) !== state) return false
        }
      }
      return true
    }),
    { numRuns: 100 },
  )
  t.pass()
})

// ---------------------------------------------------------------- bounded: why escrow

/**
 * Two replicas each admit a locally valid fact; each then refuses the
 * other's (the union is not admissible) and they stay apart.
 */
function counterexample(t: ExecutionContext, spec: InvariantSpec, fa: Uint8Array, fb: Uint8Array) {
  t.is(spec.coordination, 'escrow')
  const a = new Kernel({ invariant: spec })
  const b = new Kernel({ invariant: spec })
  const idA = a.admit(fa)
  const idB = b.admit(fb)
  const e1 = t.throws(() => a.admit(fb, { id: idB }), { instanceOf: CtfsError })
  const e2 = t.throws(() => b.admit(fa, { id: idA }), { instanceOf: CtfsError })
  t.is(e1?.code, 'INVARIANT_VIOLATION')
  t.is(e2?.code, 'INVARIANT_VIOLATION')
  t.notDeepEqual(a.state, b.state, 'after exchanging facts the replicas still differ')
  t.is(a.contains(idB), 'no')
}

test('bounded totalSupply: two locally valid spends whose union is refused (why escrow exists)', (t) => {
  const s = I.totalSupply({ initial: 100n, min: 0n })
  counterexample(t, s, s.delta(-60n), s.delta(-70n))
})

test('boundedGCounter: two locally valid increments whose union is refused (why escrow exists)', (t) => {
  const c = I.boundedGCounter({ bound: 10n })
  counterexample(t, c, c.increment(6), c.increment(7))
})

test('uniqueSet with maxElements: two keys into the last slot (why escrow exists)', (t) => {
  const s = I.uniqueSet({ maxElements: 1 })
  counterexample(t, s, s.add(new Uint8Array(32).fill(1)), s.add(new Uint8Array(32).fill(2)))
})

test('gGraph with maxInDegree 1: each replica refuses the other edge; replicated use is REQUIRES_COORDINATION', (t) => {
  const g = I.gGraph({ maxInDegree: 1 })
  const a = new Kernel({ invariant: g })
  const b = new Kernel({ invariant: g })
  const ia = a.admit(g.edge(1, 3))
  const ib = b.admit(g.edge(2, 3))
  t.is(t.throws(() => a.admit(g.edge(2, 3), { id: ib }), { instanceOf: CtfsError })?.code, 'INVARIANT_VIOLATION')
  t.is(t.throws(() => b.admit(g.edge(1, 3), { id: ia }), { instanceOf: CtfsError })?.code, 'INVARIANT_VIOLATION')
  t.notDeepEqual(a.state, b.state)
  const r = new Kernel({ invariant: g, replica: { nodes: [1n, 2n], local: 1n } })
  t.is(t.throws(() => r.admit(g.edge(1, 3)), { instanceOf: CtfsError })?.code, 'REQUIRES_COORDINATION')
})
