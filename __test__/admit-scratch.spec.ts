// Single admissions of kernels without JS rules cross into Rust through a
// shared scratch (id, dependencies and payload copied there; two numbers
// passed). These tests hold it to the slice-passing paths: same outcomes,
// same state, whatever the sizes, the ids' memory and the tenants involved.
import test from 'ava'
import fc from 'fast-check'

import { FactBatch, Kernel, invariants, isCtfsError, type FactId } from '../src/index.ts'
import { native } from '../src/native.ts'
import { runModule, snapshot, srcUrl } from './helpers.ts'

const supplyOf = () => invariants.totalSupply({ initial: 1000n, min: 0n, max: 1_000_000n })

/** What one single admission did: `ok` or the refusal code. */
function single(k: Kernel<ReturnType<typeof supplyOf>>, payload: Uint8Array, id: FactId, deps: FactId[]): string {
  try {
    k.admit(payload, deps.length > 0 ? { id, deps } : { id })
    return 'ok'
  } catch (e) {
    if (!isCtfsError(e)) throw e
    return e.code
  }
}

test('single admissions (shared scratch) and admitBatch agree fact by fact: outcome, state, frontier (fast-check)', (t) => {
  const supply = supplyOf()
  // Payload sizes around the scratch's room (4,064 bytes without dependencies),
  // valid deltas and garbage; dependencies admitted, unknown or many.
  const op = fc.record({
    kind: fc.constantFrom('fresh', 'fresh', 'fresh', 'duplicate'),
    payload: fc.oneof(
      fc.bigInt({ min: -300n, max: 300n }).map((d) => supply.delta(d)),
      fc.constantFrom(0, 1, 15, 16, 17, 4000, 4031, 4032, 4033, 4063, 4064, 4065, 5000).map((n) => new Uint8Array(n).fill(7)),
    ),
    deps: fc.array(fc.oneof(fc.nat(), fc.constant(-1)), { maxLength: 3 }),
    manyDeps: fc.boolean(),
  })
  fc.assert(
    fc.property(fc.array(op, { minLength: 1, maxLength: 60 }), fc.integer({ min: 1, max: 2 ** 31 }), (ops, seed) => {
      const a = new Kernel({ invariant: supply, maxPayloadBytes: 8192 })
      const b = new Kernel({ invariant: supply, maxPayloadBytes: 8192 })
      const admitted: FactId[] = []
      let n = seed
      const fresh = (): FactId => {
        // Small arrays allocated one by one (kept in the JS heap by V8).
        const id = new Uint8Array(32)
        for (let i = 0; i < 32; i++) id[i] = (n = (Math.imul(n, 1103515245) + 12345) >>> 0) >>> 24
        return id
      }
      for (const o of ops) {
        const id = o.kind === 'duplicate' && admitted.length > 0 ? admitted[seed % admitted.length]!.slice() : fresh()
        let deps = o.deps.map((d) => (d < 0 || admitted.length === 0 ? fresh() : admitted[d % admitted.length]!.slice()))
        // Enough dependencies that the payload no longer fits beside them.
        if (o.manyDeps && admitted.length > 0) deps = Array.from({ length: 100 }, (_, i) => admitted[i % admitted.length]!.slice())
        const ra = single(a, o.payload, id, deps)
        const batch = new FactBatch()
        batch.add(o.payload, deps.length > 0 ? { id, deps } : { id })
        const r = b.admitBatch(batch)
        const rb = r.ok(0) ? 'ok' : r.code(0)!
        if (ra !== rb) return false
        if (ra === 'ok') admitted.push(id)
      }
      const sa = snapshot(a)
      const sb = snapshot(b)
      return sa.state === sb.state && sa.count === sb.count && sa.clock === sb.clock && sa.tracked === sb.tracked
    }),
    { numRuns: 150 },
  )
  t.pass()
})

test('a derived id from the scratch is the caller\'s own copy, and works as a dependency', (t) => {
  const supply = supplyOf()
  const k = new Kernel({ invariant: supply })
  const first = k.admit(supply.delta(1n))
  const keep = first.slice()
  const second = k.admit(supply.delta(2n), { deps: [first] })
  t.notDeepEqual(first, second)
  t.deepEqual(first, keep, 'the next admission did not overwrite the returned id')
  first.fill(0)
  t.is(k.contains(keep), 'yes')
  t.is(k.contains(second), 'yes')
  t.is(k.read().balance, 1003n)
  // A dependency that is a small JS-heap array, a Buffer and a subarray of a larger buffer.
  const third = k.admit(supply.delta(3n), { deps: [keep, Buffer.from(second), new Uint8Array([...new Uint8Array(8), ...second]).subarray(8)] })
  t.is(k.contains(third), 'yes')
  t.is(k.read().balance, 1006n)
})

test('tenants share the scratch without mixing their facts', (t) => {
  const supply = supplyOf()
  const k = new Kernel({ invariant: supply })
  const x = k.tenant('x')
  const y = k.tenant('y')
  let px = k.admit(supply.delta(1n))
  let py = x.admit(supply.delta(10n))
  let pz = y.admit(supply.delta(100n))
  for (let i = 0; i < 50; i++) {
    px = k.admit(supply.delta(1n), { deps: [px] })
    py = x.admit(supply.delta(10n), { deps: [py] })
    pz = y.admit(supply.delta(100n), { deps: [pz] })
  }
  t.is(k.read().balance, 1051n)
  t.is(x.read().balance, 1510n)
  t.is(y.read().balance, 6100n)
  // A tenant's id is not a dependency in another domain.
  const e = t.throws(() => x.admit(supply.delta(1n), { deps: [px] }))
  t.is((e as { code?: string }).code, 'CAUSALITY_VIOLATION')
  t.is(x.read().balance, 1510n)
})

test('every kernel of the thread shares the one set of functions and the scratch: interleaved admissions land in their own kernel and domain', (t) => {
  const supply = supplyOf()
  const ks = [new Kernel({ invariant: supply }), new Kernel({ invariant: supply }), new Kernel({ invariant: supply })]
  const domains = ks.flatMap((k) => [k, k.tenant('a')])
  const last: FactId[] = domains.map((d) => d.admit(supply.delta(1n)))
  for (let i = 0; i < 300; i++) {
    const j = (i * 7) % domains.length
    // a dependency on the domain's own previous fact: found only in that domain
    last[j] = domains[j]!.admit(supply.delta(BigInt(j + 1)), { deps: [last[j]!] })
  }
  domains.forEach((d, j) => {
    const n = BigInt(Array.from({ length: 300 }, (_, i) => (i * 7) % domains.length).filter((x) => x === j).length)
    t.is(d.read().balance, 1001n + n * BigInt(j + 1), `domain ${j}`)
    t.is(d.frontier.count, 1 + Number(n), `domain ${j}`)
  })
  // another domain's fact is no dependency here
  const e = t.throws(() => ks[1]!.admit(supply.delta(1n), { deps: [last[0]!] }))
  t.is((e as { code?: string }).code, 'CAUSALITY_VIOLATION')
})

test('the shared functions refuse handles that name no live target, and a kernel with JS rules has no scratch', (t) => {
  const fast = native.fastPath()
  const g = { invariant: { kind: 'gCounter', initial: 0n }, causality: 'exact' } as const
  const nk = new native.NativeKernel(g)
  const target = nk.fastTarget(0)
  const id = new Uint8Array(32).fill(9)
  const payload = invariants.gCounter().increment(1n)
  for (const bad of [0, -1, NaN, target + 1, target + 0.5, 2 ** 60]) {
    t.throws(() => fast.admitWithId(bad, id, payload), { instanceOf: TypeError }, String(bad))
  }
  t.throws(() => fast.admitWithId('1' as never, id, payload), { instanceOf: TypeError })
  t.throws(() => nk.fastTarget(3), undefined, 'no tenant domain 3')
  t.is(nk.stats(0).admitted, 0)
  t.is(fast.admitWithId(target, id, payload), 0)
  t.is(nk.stats(0).admitted, 1)
  // a kernel whose rule runs JavaScript: no scratch admission, even called directly
  const rule = invariants.custom({ name: 'sum', class: 'commutativeMonoid', initial: new Uint8Array(8), apply() {}, read: () => 0 })
  const k = new Kernel({ invariant: rule })
  t.is(k.admit(new Uint8Array(8)).length, 32)
  const ck = new native.NativeKernel({ invariant: rule.native as never, causality: 'exact' }, rule.rules as never)
  t.false(ck.admitsFromScratch())
  t.true(nk.admitsFromScratch())
  t.throws(() => fast.admitScratch!(ck.fastTarget(0), 8 * 4096 + 1), { instanceOf: TypeError, message: /JavaScript rules/ })
})

test('a dropped kernel\'s handle names nothing, even once its slot is reused (child process with gc)', (t) => {
  const src = srcUrl('native.ts')
  const script = `
    import { native } from ${JSON.stringify(src)}
    const fast = native.fastPath()
    const cfg = { invariant: { kind: 'gCounter', initial: 0n }, causality: 'exact' }
    const payload = new Uint8Array(8); payload[0] = 1
    const id = () => crypto.getRandomValues(new Uint8Array(32))
    let old = new native.NativeKernel(cfg)
    const stale = old.fastTarget(0)
    if (fast.admitWithId(stale, id(), payload) !== 0) throw new Error('live target refused')
    old = null
    // Until the collector has dropped it (while it lives, its handle still admits into it: correct)
    const refusedNow = () => { try { fast.admitWithId(stale, id(), payload); return false } catch (e) { if (e instanceof TypeError) return true; throw e } }
    let gone = false
    for (let i = 0; i < 50 && !gone; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 10)); gone = refusedNow() }
    // new kernels now take slots (the freed one first); the stale handle still names nothing
    const fresh = [new native.NativeKernel(cfg), new native.NativeKernel(cfg)]
    const targets = fresh.map((k) => k.fastTarget(0))
    const refused = refusedNow()
    console.log(JSON.stringify({ gone, refused, reused: targets.some((x) => x % 2 ** 32 === stale % 2 ** 32), admitted: fresh.map((k) => k.stats(0).admitted) }))
  `
  const r = runModule(script, { gc: true })
  t.is(r.status, 0, r.stderr)
  const out = JSON.parse(r.stdout) as { gone: boolean; refused: boolean; reused: boolean; admitted: number[] }
  t.true(out.gone, 'the dropped kernel was collected and its handle refused')
  t.true(out.reused, 'a new kernel took the freed slot')
  t.true(out.refused, 'the stale handle names nothing once its slot is reused')
  t.deepEqual(out.admitted, [0, 0], 'nothing landed in the kernels that took the slot over')
})

test('worker threads each have their own functions, scratch and targets; one ending leaves the others admitting (child process)', (t) => {
  const src = srcUrl('index.ts')
  // Each thread: two kernels (one with a tenant), 20,000 single admissions
  // with dependencies interleaved across them, then a batch; it reports the
  // balances it reads back.
  const work = `
    const { Kernel, FactBatch, invariants } = await import(${JSON.stringify(src)})
    const g = invariants.gCounter()
    const run = (seed) => {
      const a = new Kernel({ invariant: g }), b = new Kernel({ invariant: g }), x = b.tenant('x')
      const ds = [a, b, x]
      const last = ds.map((d) => d.admit(g.increment(1n)))
      for (let i = 0; i < 20000; i++) {
        const j = (i + seed) % 3
        last[j] = ds[j].admit(g.increment(BigInt(j + 1)), { deps: [last[j]] })
      }
      const batch = new FactBatch()
      for (let i = 0; i < 1000; i++) batch.add(g.increment(1n))
      if (a.admitBatch(batch).admitted !== 1000) throw new Error('batch refused')
      return ds.map((d) => String(d.read().sum))
    }
  `
  const script = `
    import { Worker } from 'node:worker_threads'
    ${work}
    const body = ${JSON.stringify(work)} + ' ; const { parentPort, workerData } = await import("node:worker_threads"); parentPort.postMessage(run(workerData))'
    const start = (seed) => new Worker('(async () => {' + body + '})()', { eval: true, workerData: seed })
    const result = (w) => new Promise((resolve, reject) => { w.once('message', resolve); w.once('error', reject) })
    const w1 = start(1), w2 = start(2)
    const doomed = start(0)
    setTimeout(() => doomed.terminate(), 50)
    const main = run(0)
    const [r1, r2] = await Promise.all([result(w1), result(w2)])
    await doomed.terminate()
    const after = run(1)
    console.log(JSON.stringify({ main, r1, r2, after }))
  `
  const r = runModule(script, { timeout: 120_000 })
  t.is(r.status, 0, r.stderr)
  const out = JSON.parse(r.stdout) as Record<string, string[]>
  // Thread with seed s: domain j gets 1 + the admissions i < 20000 with (i + s) % 3 == j, each adding j + 1; a gets the batch too.
  const expected = (seed: number) =>
    [0, 1, 2].map((j) => {
      let n = 0
      for (let i = 0; i < 20000; i++) if ((i + seed) % 3 === j) n++
      return String(1 + n * (j + 1) + (j === 0 ? 1000 : 0))
    })
  t.deepEqual(out.main, expected(0))
  t.deepEqual(out.r1, expected(1))
  t.deepEqual(out.r2, expected(2))
  t.deepEqual(out.after, expected(1))
})

test('payloads beyond the scratch take the slice path with the same rules', (t) => {
  const supply = supplyOf()
  const k = new Kernel({ invariant: supply, maxPayloadBytes: 4064 })
  for (const n of [4064, 4065, 100_000]) {
    const e = t.throws(() => k.admit(new Uint8Array(n)))
    t.is((e as { code?: string }).code, n > 4064 ? 'PAYLOAD_TOO_LARGE' : 'MALFORMED_FACT', `payload of ${n} bytes`)
  }
  t.is(k.frontier.count, 0)
})

test('kernels with a scratch are released by gc: the scratch, its ArrayBuffer and the functions finalize cleanly', async (t) => {
  // A child process, so that a bad finalizer shows as a crash here instead of
  // taking the test runner down.
  const src = srcUrl('index.ts')
  const script = `
    import { Kernel, invariants } from ${JSON.stringify(src)}
    const g = invariants.gCounter()
    let admitted = 0
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < 25; i++) {
        const k = new Kernel({ invariant: g })
        const x = k.tenant('x')
        for (let j = 0; j < 10; j++) k.admit(g.increment(1n), { deps: [k.admit(g.increment(1n))] })
        x.admit(g.increment(2n))
        admitted += k.frontier.count + x.frontier.count
      }
      globalThis.gc()
      await new Promise((r) => setImmediate(r))
    }
    for (let i = 0; i < 5; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 10)) }
    console.log(admitted)
  `
  const r = runModule(script, { gc: true })
  t.is(r.signal, null, r.stderr)
  t.is(r.status, 0, r.stderr)
  t.is(r.stdout.trim(), String(20 * 25 * 21))
})
