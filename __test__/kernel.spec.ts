import test from 'ava'

import {
  CtfsError,
  FactBatch,
  Kernel,
  compareFactIds,
  factIdFromHex,
  factIdToHex,
  invariants,
  isCtfsError,
  lowestFactId,
} from '../src/index.ts'
import { MODES, rid, snapshot, supplyKernel } from './helpers.ts'

test('the issue example: admit, depend, read, refuse an overdraft without change', (t) => {
  const supply = invariants.totalSupply({ initial: 1000n, min: 0n, max: 1_000_000n })
  const k = new Kernel({ invariant: supply, causality: 'exact' })
  const a = k.admit(supply.delta(500n))
  t.true(a instanceof Uint8Array)
  t.is(a.length, 32)
  const b = k.admit(supply.delta(-200n), { deps: [a] })
  t.notDeepEqual(a, b)
  t.deepEqual(supply.read(k.state), { balance: 1300n, min: 0n, max: 1_000_000n })
  const before = snapshot(k)
  const err = t.throws(() => k.admit(supply.delta(-5000n)), { instanceOf: CtfsError })
  t.is(err.code, 'INVARIANT_VIOLATION')
  t.regex(err.message, /below min 0/)
  t.is(err.factId?.length, 32)
  t.deepEqual(snapshot(k), before)
})

for (const mode of MODES) {
  test(`${mode}: a caller id is returned as given and a retry is DUPLICATE_FACT`, (t) => {
    const { supply, k } = supplyKernel(mode)
    const id = rid()
    t.is(k.admit(supply.delta(1n), { id }), id)
    const before = snapshot(k)
    const e = t.throws(() => k.admit(supply.delta(1n), { id }), { instanceOf: CtfsError })
    t.is(e.code, 'DUPLICATE_FACT')
    t.deepEqual(snapshot(k), before)
    t.is(k.stats.rejected.DUPLICATE_FACT, 1)
  })

  test(`${mode}: identical payloads without ids are distinct facts`, (t) => {
    const { supply, k } = supplyKernel(mode)
    const p = supply.delta(7n)
    const a = k.admit(p)
    const b = k.admit(p)
    t.notDeepEqual(a, b)
    t.is(k.read().balance, 1014n)
    t.is(k.stats.admitted, 2)
  })

  test(`${mode}: a missing dependency is CAUSALITY_VIOLATION naming the dependency`, (t) => {
    const { supply, k } = supplyKernel(mode)
    const a = k.admit(supply.delta(1n))
    const ghost = rid()
    const before = snapshot(k)
    const e = t.throws(() => k.admit(supply.delta(1n), { deps: [a, ghost] }), { instanceOf: CtfsError })
    t.is(e.code, 'CAUSALITY_VIOLATION')
    t.deepEqual(e.missing, ghost)
    t.is(e.depIndex, 1)
    t.regex(e.message, /admit the dependency first/)
    t.deepEqual(snapshot(k), before)
  })
}

test('exact: no horizon — the first fact stays a valid dependency, unseen ones never pass', (t) => {
  const { supply, k } = supplyKernel('exact', { max: undefined as never })
  const first = k.admit(supply.delta(1n))
  const batch = new FactBatch()
  for (let i = 0; i < 100_000; i++) batch.add(supply.delta(1n), { id: rid() })
  t.is(k.admitBatch(batch).admitted, 100_000)
  t.true(k.stats.bloom.saturation > 0.99, 'the Bloom clock is saturated')
  k.admit(supply.delta(1n), { deps: [first] })
  for (let i = 0; i < 200; i++) {
    t.throws(() => k.admit(supply.delta(1n), { deps: [rid()] }), { code: 'CAUSALITY_VIOLATION' })
  }
  t.true(k.stats.bytesPerFact > 32 && k.stats.bytesPerFact <= 48, `bytes per fact ${k.stats.bytesPerFact}`)
})

test('bloom: saturates and is documented as probabilistic', (t) => {
  const { supply, k } = supplyKernel('bloom')
  for (let i = 0; i < 3000; i++) k.admit(supply.delta(1n))
  t.true(k.stats.bloom.saturation > 0.99)
  t.is(k.stats.tracked, 0)
  // A saturated clock accepts a dependency that was never admitted...
  t.notThrows(() => k.admit(supply.delta(1n), { deps: [rid()] }))
  // ...and cannot tell a new caller id from a retry, so it refuses it.
  const e = t.throws(() => k.admit(supply.delta(1n), { id: rid() }), { code: 'DUPLICATE_FACT' })
  t.regex(e.message, /bloom mode cannot tell/)
  t.is(k.contains(rid()), 'maybe')
})

test('escalating: switches to the exact index past the threshold and stays exact', (t) => {
  const supply = invariants.totalSupply({ initial: 0n })
  const k = new Kernel({ invariant: supply, causality: 'escalating', escalationThreshold: 0.25 })
  const first = k.admit(supply.delta(1n))
  let n = 1
  while (!k.stats.escalated) {
    t.true(k.stats.bloom.saturation <= 0.25)
    k.admit(supply.delta(1n))
    n++
  }
  t.is(k.stats.escalatedAt, n)
  t.true(k.stats.bloom.saturation > 0.25)
  t.is(k.contains(first), 'yes')
  for (let i = 0; i < 2000; i++) k.admit(supply.delta(1n))
  k.admit(supply.delta(1n), { deps: [first] })
  t.throws(() => k.admit(supply.delta(1n), { deps: [rid()] }), { code: 'CAUSALITY_VIOLATION' })
})

test('tenants are isolated domains', (t) => {
  const { supply, k } = supplyKernel('exact')
  const acme = k.tenant('acme')
  const globex = k.tenant('globex')
  t.is(k.tenant('acme'), acme)
  const id = rid()
  acme.admit(supply.delta(5n), { id })
  globex.admit(supply.delta(7n), { id }) // same id, other domain: a new fact there
  t.throws(() => globex.admit(supply.delta(1n), { deps: [acme.admit(supply.delta(1n))] }), {
    code: 'CAUSALITY_VIOLATION',
  })
  t.is(acme.read().balance, 1006n)
  t.is(globex.read().balance, 1007n)
  t.is(k.read().balance, 1000n)
  t.is(acme.name, 'acme')
  t.deepEqual(k.tenants.sort(), ['acme', 'globex'])
  t.is(k.stats.admitted, 0)
})

test('query returns a consistent view only once the requirement is met', (t) => {
  const { supply, k } = supplyKernel('exact')
  const a = k.admit(supply.delta(5n))
  const b = rid()
  t.is(k.query({ facts: [a, b] }), null)
  const v1 = k.query({ facts: [a] })
  t.truthy(v1)
  t.is(v1!.value.balance, 1005n)
  t.is(v1!.frontier.count, 1)
  const other = supplyKernel('exact').k
  other.admit(supply.delta(1n), { id: b })
  k.admit(supply.delta(1n), { id: b })
  const v2 = k.query({ clock: other.clock })
  t.truthy(v2)
  t.is(v2!.value.balance, 1006n)
  t.deepEqual(v2!.frontier.recent[0], b)
  t.is(v2!.frontier.recent.length, 2)
})

test('frontier digest is order-independent', (t) => {
  const supply = invariants.totalSupply({ initial: 0n })
  const ids = Array.from({ length: 50 }, rid)
  const k1 = new Kernel({ invariant: supply })
  const k2 = new Kernel({ invariant: supply })
  for (const id of ids) k1.admit(supply.delta(1n), { id })
  for (const id of [...ids].reverse()) k2.admit(supply.delta(1n), { id })
  t.deepEqual(k1.frontier.digest, k2.frontier.digest)
  t.deepEqual(k1.frontier.clock, k2.frontier.clock)
  t.deepEqual(k1.state, k2.state)
  t.notDeepEqual(k1.frontier.recent, k2.frontier.recent)
})

test('admitBatch: per-fact results, in-batch dependencies, derived ids written back, retry admits nothing', (t) => {
  const { supply, k } = supplyKernel('exact')
  const a = rid()
  const batch = new FactBatch(16) // grows as needed
  batch.add(supply.delta(10n), { id: a })
  batch.add(supply.delta(5n), { deps: [a] })
  batch.add(supply.delta(5n), { deps: [rid()] })
  batch.add(supply.delta(-5000n))
  batch.add(supply.delta(1n), { id: a })
  t.is(batch.length, 5)
  t.is(batch.id(1), undefined)
  const r = k.admitBatch(batch)
  t.is(r.length, 5)
  t.is(r.admitted, 2)
  t.is(r.refused, 3)
  t.deepEqual([0, 1, 2, 3, 4].map((i) => r.code(i)), [undefined, undefined, 'CAUSALITY_VIOLATION', 'INVARIANT_VIOLATION', 'DUPLICATE_FACT'])
  t.true(r.ok(0) && r.ok(1) && !r.ok(2))
  const derived = r.id(1)!
  t.is(derived.length, 32)
  t.is(k.contains(derived), 'yes')
  t.deepEqual(r.errors.map((e) => [e.index, e.error.code]), [[2, 'CAUSALITY_VIOLATION'], [3, 'INVARIANT_VIOLATION'], [4, 'DUPLICATE_FACT']])
  t.true(r.errors[0]!.error instanceof CtfsError)
  t.is(k.read().balance, 1015n)
  const again = k.admitBatch(batch)
  t.is(again.admitted, 0)
  t.is(k.read().balance, 1015n)
  // Arrays of facts work too.
  const r2 = k.admitBatch([{ payload: supply.delta(1n) }, { payload: supply.delta(2n), deps: [derived] }])
  t.is(r2.admitted, 2)
  t.is(k.read().balance, 1018n)
})

test('fact id helpers and the deterministic conflict order', (t) => {
  const lo = factIdFromHex('00'.repeat(31) + 'ff')
  const hi = factIdFromHex('01' + '00'.repeat(31))
  t.is(factIdToHex(hi), '01' + '00'.repeat(31))
  t.is(compareFactIds(lo, hi), -1)
  t.is(compareFactIds(hi, lo), 1)
  t.is(compareFactIds(lo, new Uint8Array(lo)), 0)
  t.deepEqual(lowestFactId([hi, lo, hi]), lo)
  t.deepEqual(lowestFactId([lo, hi]), lo)
  t.is(lowestFactId([]), undefined)
  t.throws(() => factIdFromHex('zz'), { instanceOf: RangeError })
})

test('class and coordination are reported from the invariant', (t) => {
  const bounded = new Kernel({ invariant: invariants.totalSupply({ min: 0n }) })
  t.is(bounded.invariantClass, 'bounded')
  t.is(bounded.coordination, 'escrow')
  const group = new Kernel({ invariant: invariants.totalSupply() })
  t.is(group.invariantClass, 'group')
  t.is(group.coordination, 'none')
  t.is(group.mode, 'exact')
  t.deepEqual(group.limits, { maxPayloadBytes: 65_536, maxDeps: 256, maxFacts: 2 ** 32 - 2 })
})

test('isCtfsError narrows by code', (t) => {
  const { supply, k } = supplyKernel()
  try {
    k.admit(supply.delta(-1_000_000n))
    t.fail()
  } catch (e) {
    t.true(isCtfsError(e))
    t.true(isCtfsError(e, 'INVARIANT_VIOLATION'))
    t.false(isCtfsError(e, 'DUPLICATE_FACT'))
  }
})
