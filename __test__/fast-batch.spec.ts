import test from 'ava'
import { randomFillSync } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { DurableKernel, FactBatch, Kernel, invariants } from '../src/index.ts'
import { native } from '../src/native.ts'

test('FactBatch.fromPayloads + gCounter.increments: one batch of increments, derived ids readable after admission', (t) => {
  const g = invariants.gCounter()
  const k = new Kernel({ invariant: g, causality: 'exact' })
  const values = [1, 2, 3n, 2 ** 40, 0]
  const b = FactBatch.fromPayloads(g.increments(values), 8)
  t.is(b.length, 5)
  t.is(b.id(0), undefined) // derived at admission
  const r = k.admitBatch(b)
  t.is(r.admitted, 5)
  t.is(k.read().sum, 6n + 2n ** 40n)
  for (let i = 0; i < 5; i++) t.is(k.contains(r.id(i)!), 'yes')
  // The batch now carries its ids: a retry is refused as duplicates, the sum does not move.
  t.is(k.admitBatch(b).refused, 5)
  t.is(k.read().sum, 6n + 2n ** 40n)
})

test('gCounter.increments: a BigUint64Array is used in place and matches increment() byte for byte', (t) => {
  const g = invariants.gCounter()
  const values = new BigUint64Array([1n, 2n ** 64n - 1n, 7n])
  const p = g.increments(values)
  t.is(p.buffer, values.buffer)
  t.deepEqual(Array.from(p), [...g.increment(1n), ...g.increment(2n ** 64n - 1n), ...g.increment(7n)])
  t.deepEqual(g.increments([5, 6n]), new Uint8Array([...g.increment(5), ...g.increment(6n)]))
  t.throws(() => g.increments([1, -1]), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE', message: /values\[1\]/ })
  t.throws(() => g.increments([1, 2 ** 64]), { instanceOf: RangeError })
  t.throws(() => g.increments(3 as never), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
})

test('totalSupply.deltas matches delta() byte for byte, negatives included', (t) => {
  const s = invariants.totalSupply()
  const vals = [1, -1, -(2 ** 53 - 1), 2 ** 53 - 1, -(2n ** 127n), 2n ** 127n - 1n]
  const p = s.deltas(vals)
  t.is(p.length, 16 * vals.length)
  for (let i = 0; i < vals.length; i++) t.deepEqual(p.subarray(16 * i, 16 * i + 16), s.delta(vals[i]!), `value ${vals[i]}`)
  t.throws(() => s.deltas([2n ** 127n]), { instanceOf: RangeError, message: /values\[0\]/ })
  const k = new Kernel({ invariant: s, causality: 'exact' })
  t.is(k.admitBatch(FactBatch.fromPayloads(s.deltas([5, -2, 10]), 16)).admitted, 3)
  t.is(k.read().balance, 13n)
})

test('FactBatch.fromPayloads with caller ids and dependencies, same bytes as add()', (t) => {
  const g = invariants.gCounter()
  const ids = randomFillSync(new Uint8Array(3 * 32))
  const id = (i: number): Uint8Array => ids.subarray(32 * i, 32 * i + 32)
  const k = new Kernel({ invariant: g, causality: 'exact' })
  const root = k.admit(g.increment(1))
  const deps = new Uint8Array(3 * 32)
  deps.set(root, 0)
  deps.set(id(0), 32) // record 1 depends on record 0 of the same batch
  deps.set(id(1), 64)
  const b = FactBatch.fromPayloads(g.increments([1, 2, 3]), 8, { ids, deps })
  const ref = new FactBatch()
  ref.add(g.increment(1), { id: id(0), deps: [root] })
  ref.add(g.increment(2), { id: id(1), deps: [id(0)] })
  ref.add(g.increment(3), { id: id(2), deps: [id(1)] })
  t.deepEqual(b.toBytes(), ref.toBytes())
  t.deepEqual(b.id(2), id(2))
  t.is(k.admitBatch(b).admitted, 3)
  t.is(k.read().sum, 7n)
  // An unknown dependency is refused per record; the others go through.
  const missing = randomFillSync(new Uint8Array(32))
  const r = k.admitBatch(FactBatch.fromPayloads(g.increments([1, 1]), 8, { deps: new Uint8Array([...missing, ...root]) }))
  t.is(r.code(0), 'CAUSALITY_VIOLATION')
  t.true(r.ok(1))
  t.is(k.read().sum, 8n)
  // Appending with add() after a fixed-shape start keeps the indices.
  const mixed = FactBatch.fromPayloads(g.increments([1]), 8)
  t.is(mixed.add(g.increment(2)), 1)
  t.is(k.admitBatch(mixed).admitted, 2)
  t.is(k.read().sum, 11n)
})

test('FactBatch.fromPayloads: lengths that do not fit are RangeErrors, wrong types TypeErrors, nothing admitted', (t) => {
  const g = invariants.gCounter()
  const p = g.increments([1, 2])
  t.throws(() => FactBatch.fromPayloads(p, 7), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE', message: /payloads/ })
  t.throws(() => FactBatch.fromPayloads(p, 0), { instanceOf: RangeError })
  t.throws(() => FactBatch.fromPayloads(p, 8, { ids: new Uint8Array(32) }), { instanceOf: RangeError, message: /ids/ })
  t.throws(() => FactBatch.fromPayloads(p, 8, { deps: new Uint8Array(32) }), { instanceOf: RangeError, message: /deps/ })
  t.throws(() => FactBatch.fromPayloads(p, 8, { depsPerFact: 1 }), { instanceOf: TypeError, message: /deps/ })
  t.throws(() => FactBatch.fromPayloads(p, 8, { nope: 1 } as never), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_VALUE' })
  t.throws(() => FactBatch.fromPayloads([1, 2] as never, 8), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => FactBatch.fromPayloads(p, 8, { ids: 'x' as never }), { instanceOf: TypeError })
  t.is(FactBatch.fromPayloads(new Uint8Array(0), 8).length, 0)
})

test('a durable kernel logs a fromPayloads batch and recovers it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ctfs-fast-batch-'))
  try {
    const g = invariants.gCounter()
    const k = await DurableKernel.open({ dir, invariant: g })
    t.is(k.admitBatch(FactBatch.fromPayloads(g.increments(new BigUint64Array(1000).fill(3n)), 8)).admitted, 1000)
    // admitDurable resolves with the id once the log has it on disk (sequence read in the same call).
    const id = await k.admitDurable(g.increment(1))
    t.is(k.contains(id), 'yes')
    await k.close()
    const again = await DurableKernel.open({ dir, invariant: g })
    t.is(again.read().sum, 3001n)
    t.is(again.contains(id), 'yes')
    await again.close()
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('small batches share slabs without sharing bytes: many fromPayloads batches admitted in turn keep their own records, ids and statuses', (t) => {
  const g = invariants.gCounter()
  const k = new Kernel({ invariant: g, causality: 'exact' })
  // 16 facts of 8-byte payloads: 768 bytes of records, carved from a shared slab.
  const batches = Array.from({ length: 200 }, (_, i) => FactBatch.fromPayloads(g.increments(new Array(16).fill(i + 1)), 8))
  const before = batches.map((b) => b.toBytes())
  const results = batches.map((b) => k.admitBatch(b))
  // A refusal in between: one batch admitted twice.
  const again = k.admitBatch(batches[7]!)
  t.is(again.refused, 16)
  let sum = 0n
  const ids = new Set<string>()
  for (let i = 0; i < batches.length; i++) {
    const r = results[i]!
    t.is(r.admitted, 16, `batch ${i}`)
    for (let j = 0; j < 16; j++) {
      t.true(r.ok(j))
      ids.add(Buffer.from(r.id(j)!).toString('hex'))
    }
    sum += BigInt(16 * (i + 1))
    // Only the ids were filled in (and flagged); payloads and lengths are as built.
    const after = batches[i]!.toBytes()
    for (let j = 0; j < 16; j++) {
      const at = j * 48
      t.is(before[i]![at], 0)
      t.is(after[at], 1)
      t.deepEqual(after.subarray(at + 1, at + 8), before[i]!.subarray(at + 1, at + 8))
      t.deepEqual(after.subarray(at + 40, at + 48), before[i]!.subarray(at + 40, at + 48))
    }
  }
  t.is(ids.size, 200 * 16)
  t.is(k.read().sum, sum)
})

test('packFixed refuses bad lengths and types with catchable errors, and an output overlapping an input', (t) => {
  const { packFixed } = native.fastPath()
  const payloads = new Uint8Array(32).fill(7)
  const out = new Uint8Array(4 * 48)
  t.is(packFixed(out, payloads, 8), 0)
  t.deepEqual(out.subarray(40, 48), new Uint8Array(8).fill(7))
  t.throws(() => packFixed(out, payloads, 0), { message: /payloadBytes/ })
  t.throws(() => packFixed(out, payloads, 5), { message: /multiple/ })
  t.throws(() => packFixed(new Uint8Array(10), payloads, 8), { instanceOf: Error })
  t.throws(() => packFixed(out, 'nope' as unknown as Uint8Array, 8), { instanceOf: TypeError })
  t.throws(() => packFixed(out, payloads, 8, new Uint8Array(3)), { instanceOf: Error })
  const shared = new Uint8Array(512)
  t.throws(() => packFixed(shared.subarray(0, 192), shared.subarray(100, 132), 8), { message: /overlap/ })
  // undefined ids/deps are none, like absent ones.
  t.is(packFixed(out, payloads, 8, undefined, undefined, undefined), 0)
})
