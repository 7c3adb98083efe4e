// Every public function, called with odd values (fast-check's anything():
// nested objects and arrays, null-prototype objects, boxed values, bigints,
// typed arrays of every kind, sparse arrays, dates, maps, sets; plus
// Proxies and prototype-spoofed objects): each call either returns, or
// throws a CtfsError with a documented code or a TypeError / RangeError
// with a Node-style code — and a call that throws changes nothing.
import test, { type ExecutionContext } from 'ava'
import fc from 'fast-check'

import {
  CtfsError,
  DurableKernel,
  ERROR_CODES,
  Escrow,
  FactBatch,
  Kernel,
  OTHER_ERROR_CODES,
  checkFactId,
  compareFactIds,
  factIdEquals,
  factIdFromHex,
  factIdToHex,
  inspect,
  invariants as I,
  lowestFactId,
} from '../src/index.ts'
import { rid, snapshot, tempDir } from './helpers.ts'

const NODE_CODES = new Set(['ERR_INVALID_ARG_TYPE', 'ERR_INVALID_ARG_VALUE', 'ERR_OUT_OF_RANGE'])
const DOCUMENTED = new Set<string>([...ERROR_CODES.slice(1), ...OTHER_ERROR_CODES])

function shapeProblem(e: unknown): string | null {
  if (e instanceof CtfsError) return DOCUMENTED.has(e.code) ? null : `CtfsError with undocumented code ${e.code}`
  if (e instanceof TypeError || e instanceof RangeError) {
    const code = (e as { code?: unknown }).code
    return typeof code === 'string' && NODE_CODES.has(code) ? null : `${e.name} without a Node-style code (${String(code)}): ${e.message}`
  }
  return `not a public error: ${e instanceof Error ? `${e.name} (code ${String((e as { code?: unknown }).code)}): ${e.message}` : String(e)}`
}

const odd = (): fc.Arbitrary<unknown> =>
  fc.oneof(
    { weight: 8, arbitrary: fc.anything({ withBigInt: true, withTypedArray: true, withBoxedValues: true, withNullPrototype: true, withMap: true, withSet: true, withDate: true, withSparseArray: true, withObjectString: true }) },
    { weight: 1, arbitrary: fc.constantFrom<unknown>(NaN, Infinity, -0, 2 ** 53, -(2 ** 64), 2n ** 200n, -1n, '', 'down', 'up', 'exact', 'bloom') },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 64 }).map((n) => new Proxy(new Uint8Array(n), {})) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 64 }).map((n) => Object.setPrototypeOf({ length: n }, Uint8Array.prototype) as unknown) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 64 }).map((n) => Object.setPrototypeOf(new Uint16Array(n), Uint8Array.prototype) as unknown) },
    { weight: 2, arbitrary: fc.uint8Array({ minLength: 0, maxLength: 48 }) },
    { weight: 1, arbitrary: fc.array(fc.uint8Array({ minLength: 31, maxLength: 33 }), { maxLength: 3 }) },
  )

/** Calls `f` with odd arguments; asserts the error shape and that `observe()` did not change on a throw. */
function fuzz(t: ExecutionContext, name: string, arity: number, f: (...args: unknown[]) => unknown, observe: () => unknown = () => null, numRuns = 150): void {
  let calls = 0
  const details = fc.check(
    fc.property(fc.array(odd(), { minLength: 0, maxLength: arity }), (args) => {
      const before = JSON.stringify(observe())
      calls++
      try {
        f(...args)
      } catch (e) {
        const problem = shapeProblem(e)
        if (problem !== null) throw new Error(`${name}(${args.map((a) => describe(a)).join(', ')}): ${problem}`)
        const after = JSON.stringify(observe())
        if (after !== before) throw new Error(`${name}: a call that threw changed the state`)
      }
    }),
    { numRuns, seed: 8_0_8 },
  )
  if (details.failed) t.fail(String((details.errorInstance as Error | undefined)?.message ?? details.counterexample))
  t.true(calls > 0)
}

function describe(v: unknown): string {
  try {
    return typeof v === 'bigint' ? `${v}n` : (JSON.stringify(v) ?? String(v))
  } catch {
    return Object.prototype.toString.call(v)
  }
}

test('fuzz: Kernel, Domain and Tenant methods', (t) => {
  const supply = I.totalSupply({ initial: 100n, min: 0n })
  const k = new Kernel({ invariant: supply, replica: { nodes: [1n, 2n], local: 1n } })
  const tenant = k.tenant('t')
  const a = k.admit(supply.delta(1n))
  const seen = () => [snapshot(k), snapshot(tenant), k.tenants]
  fuzz(t, 'new Kernel', 2, (o) => new Kernel(o as never))
  for (const key of ['invariant', 'causality', 'escalationThreshold', 'maxPayloadBytes', 'maxDeps', 'maxFacts', 'replica']) {
    fuzz(t, `new Kernel { ${key} }`, 1, (v) => new Kernel({ invariant: supply, [key]: v } as never))
  }
  fuzz(t, 'admit', 2, (p, o) => k.admit(p as never, o as never), seen)
  fuzz(t, 'admit(valid payload, odd options)', 1, (o) => k.admit(supply.delta(1n), o as never), seen)
  fuzz(t, 'admit(valid payload, { id: odd, deps: odd })', 2, (id, deps) => k.admit(supply.delta(1n), { id, deps } as never), seen)
  fuzz(t, 'admitBatch', 1, (b) => k.admitBatch(b as never), seen)
  fuzz(t, 'admitBatch([odd fact])', 1, (f) => k.admitBatch([f] as never), seen)
  fuzz(t, 'contains', 1, (id) => k.contains(id as never), seen)
  fuzz(t, 'query', 1, (r) => k.query(r as never), seen)
  fuzz(t, 'query({ facts: odd })', 1, (f) => k.query({ facts: f } as never), seen)
  fuzz(t, 'query({ clock: odd })', 1, (c) => k.query({ clock: c } as never), seen)
  fuzz(t, 'has', 2, (key, m) => k.has(key as never, m as never), seen)
  fuzz(t, 'hasEdge', 3, (f, to, m) => k.hasEdge(f as never, to as never, m as never), seen)
  fuzz(t, 'tenant', 1, (n) => k.tenant(n as never), () => snapshot(k))
  fuzz(t, 'tenant.admit', 2, (p, o) => tenant.admit(p as never, o as never), seen)
  const r = k.replica!
  fuzz(t, 'replica.admitRemote', 3, (id, p, o) => r.admitRemote(id as never, p as never, o as never), seen)
  fuzz(t, 'replica.quotas', 2, (s, m) => r.quotas(s as never, m as never), seen)
  fuzz(t, 'replica.requestQuota', 5, (...x) => (r.requestQuota as (...a: unknown[]) => unknown)(...x), seen)
  fuzz(t, 'replica.onRequest', 3, (...x) => (r.onRequest as (...a: unknown[]) => unknown)(...x), seen)
  fuzz(t, 'replica.onGrant', 4, (...x) => (r.onGrant as (...a: unknown[]) => unknown)(...x), seen)
  fuzz(t, 'replica.poll', 3, (...x) => (r.poll as (...a: unknown[]) => unknown)(...x), seen)
  const b = k.admitBatch([{ payload: supply.delta(1n) }, { payload: new Uint8Array(1) }])
  fuzz(t, 'BatchResult.ok / code / id', 1, (i) => [b.ok(i as never), b.code(i as never), b.id(i as never)])
  t.is(k.contains(a), 'yes')
})

test('fuzz: invariant factories, payload builders and decoders', (t) => {
  const factories: Array<[string, (o: unknown) => unknown]> = [
    ['totalSupply', (o) => I.totalSupply(o as never)],
    ['max', (o) => I.max(o as never)],
    ['gCounter', (o) => I.gCounter(o as never)],
    ['boundedGCounter', (o) => I.boundedGCounter(o as never)],
    ['lww', (o) => I.lww(o as never)],
    ['uniqueness', (o) => I.uniqueness(o as never)],
    ['uniqueSet', (o) => I.uniqueSet(o as never)],
    ['gGraph', (o) => I.gGraph(o as never)],
    ['graph', (o) => I.graph(o as never)],
    ['custom', (o) => I.custom(o as never)],
    ['multi', (o) => I.multi(o as never)],
  ]
  for (const [name, f] of factories) fuzz(t, `invariants.${name}`, 1, f)
  const keys: Array<[string, string[], (o: Record<string, unknown>) => unknown]> = [
    ['totalSupply', ['initial', 'min', 'max'], (o) => I.totalSupply(o)],
    ['max', ['initial'], (o) => I.max(o)],
    ['gCounter', ['initial'], (o) => I.gCounter(o)],
    ['boundedGCounter', ['bound', 'initial'], (o) => I.boundedGCounter({ bound: 10n, ...o } as never)],
    ['uniqueSet', ['maxElements'], (o) => I.uniqueSet(o)],
    ['gGraph', ['maxOutDegree', 'maxInDegree', 'allowSelfLoops'], (o) => I.gGraph(o)],
    ['graph', ['maxOutDegree', 'maxInDegree', 'allowSelfLoops', 'maxEdges'], (o) => I.graph(o)],
    ['custom', ['name', 'class', 'initial', 'apply', 'read'], (o) => I.custom({ name: 'c', class: 'group', initial: new Uint8Array(1), apply() {}, ...o } as never)],
  ]
  for (const [name, ks, f] of keys) for (const key of ks) fuzz(t, `invariants.${name}({ ${key}: odd })`, 1, (v) => f({ [key]: v }))
  const supply = I.totalSupply()
  const m = I.multi({ a: supply, b: I.gCounter() })
  const specs = [supply, I.max(), I.gCounter(), I.boundedGCounter({ bound: 5n }), I.lww(), I.uniqueness(), I.uniqueSet(), I.gGraph(), I.graph(), m]
  const builders: Array<[string, number, (...a: unknown[]) => unknown]> = [
    ['totalSupply.delta', 1, (d) => supply.delta(d as never)],
    ['totalSupply.writeDelta', 3, (b, o, d) => supply.writeDelta(b as never, o as never, d as never)],
    ['totalSupply.writeDelta(32 bytes, odd, 1n)', 1, (o) => supply.writeDelta(new Uint8Array(32), o as never, 1n)],
    ['max.value', 1, (v) => I.max().value(v as never)],
    ['gCounter.increment', 1, (v) => I.gCounter().increment(v as never)],
    ['lww.write', 2, (ts, v) => I.lww().write(ts as never, v as never)],
    ['uniqueness.add', 1, (e) => I.uniqueness().add(e as never)],
    ['uniqueSet.add', 1, (k) => I.uniqueSet().add(k as never)],
    ['gGraph.edge', 2, (f, to) => I.gGraph().edge(f as never, to as never)],
    ['graph.edge', 2, (f, to) => I.graph().edge(f as never, to as never)],
    ['multi.fact', 1, (p) => m.fact(p as never)],
    ['multi.memberIndex', 1, (n) => m.memberIndex(n as never)],
  ]
  for (const [name, arity, f] of builders) fuzz(t, name, arity, f)
  for (const s of specs) fuzz(t, `${s.name}.read`, 1, (st) => s.read(st as never))
  fuzz(t, 'uniqueness.read(cell).has', 1, (e) => I.uniqueness().read(new Uint8Array(64)).has(e as never))
  fuzz(t, 'gGraph.read(cell).hasEdge / outDegree', 2, (a, b) => {
    const g = I.gGraph().read(new Uint8Array(64))
    return [g.hasEdge(a as never, b as never), g.outDegree(a as never)]
  })
})

test('fuzz: FactBatch and the fact-id helpers', (t) => {
  const b = new FactBatch()
  b.add(new Uint8Array(16))
  fuzz(t, 'new FactBatch', 1, (c) => new FactBatch(c as never))
  fuzz(t, 'FactBatch.add', 2, (p, o) => b.add(p as never, o as never), () => [b.length, b.byteLength])
  fuzz(t, 'FactBatch.id', 1, (i) => b.id(i as never))
  fuzz(t, 'factIdToHex', 1, (id) => factIdToHex(id as never))
  fuzz(t, 'factIdFromHex', 1, (h) => factIdFromHex(h as never))
  fuzz(t, 'compareFactIds', 2, (a, c) => compareFactIds(a as never, c as never))
  fuzz(t, 'factIdEquals', 2, (a, c) => factIdEquals(a as never, c as never))
  fuzz(t, 'lowestFactId', 1, (ids) => lowestFactId(ids as never))
  fuzz(t, 'lowestFactId([id, odd])', 1, (x) => lowestFactId([rid(), x] as never))
  fuzz(t, 'checkFactId', 2, (id, n) => checkFactId(id, n as never))
})

test('fuzz: Escrow', (t) => {
  fuzz(t, 'new Escrow', 2, (total, o) => new Escrow(total as never, o as never))
  for (const key of ['backoffBaseMs', 'backoffMaxMs', 'maxAttempts', 'reservePercent']) {
    fuzz(t, `new Escrow(10n, { ${key}: odd })`, 1, (v) => new Escrow(10n, { [key]: v }))
  }
  const e = new Escrow(100n)
  e.initialize([1n, 2n])
  const ledger = () => e.quotas.map((q) => [q.node, q.quota, q.consumed].map(String))
  for (const name of ['setLocal', 'quota', 'tryConsume', 'release', 'credit', 'transfer', 'requestQuota', 'onRequest', 'onGrant', 'poll', 'initialize'] as const) {
    fuzz(t, `Escrow.${name}`, 3, (...x) => (e[name] as (...a: unknown[]) => unknown).apply(e, x), ledger)
  }
})

test('fuzz: DurableKernel.open options and inspect()', async (t) => {
  const base = tempDir(t, 'ctfs-fuzz-')
  const supply = I.totalSupply()
  let n = 0
  for (const key of ['dir', 'backend', 'truncateCorrupt', 'bufferBytes', 'segmentBytes', 'causality', 'maxFacts', 'invariant']) {
    const values = fc.sample(odd(), { numRuns: 25, seed: 8 })
    for (const v of values) {
      const dir = `${base}/${n++}`
      // `dir` itself is fuzzed only with values that are not strings (a string is a path to create)
      if (key === 'dir' && typeof v === 'string') continue
      try {
        const k = await DurableKernel.open({ dir, invariant: supply, backend: 'portable', [key]: v } as never)
        await k.close()
      } catch (e) {
        t.is(shapeProblem(e), null, `open { ${key}: ${describe(v)} }`)
      }
    }
  }
  fuzz(t, 'inspect (non-strings)', 1, (d) => (typeof d === 'string' ? null : inspect(d as never)), () => null, 100)
  t.pass()
})
