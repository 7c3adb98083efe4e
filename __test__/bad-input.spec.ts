// Wrong inputs from JS never crash Node and never change state: each is a
// typed, catchable error (TypeError / RangeError with Node-style codes, or a
// CtfsError), and the kernel is byte-for-byte what it was.
import test, { type ExecutionContext } from 'ava'

import {
  CtfsError,
  DurableKernel,
  ERROR_CODES,
  Escrow,
  FactBatch,
  Kernel,
  OTHER_ERROR_CODES,
  factIdToHex,
  invariants,
  lowestFactId,
  type CtfsErrorCode,
} from '../src/index.ts'
import { fromNativeThrow } from '../src/errors.ts'
import { native } from '../src/native.ts'
import { MODES, rid, snapshot, supplyKernel, tempDir } from './helpers.ts'

const garbage: unknown[] = [undefined, null, 0, 1.5, NaN, 'abc', 'a'.repeat(64), 12n, true, {}, [], () => 1, Symbol('s'), new ArrayBuffer(32), new Uint16Array(16), new DataView(new ArrayBuffer(32))]

for (const mode of MODES) {
  test(`${mode}: garbage payloads, ids, deps and options are refused with typed errors and no change`, (t) => {
    const { supply, k } = supplyKernel(mode)
    const a = k.admit(supply.delta(1n))
    const before = snapshot(k)
    const p = supply.delta(1n)
    for (const g of garbage) {
      t.throws(() => k.admit(g as Uint8Array), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' } as never)
      if (g !== undefined) t.throws(() => k.admit(p, { id: g as Uint8Array }), { instanceOf: TypeError })
      t.throws(() => k.admit(p, { deps: [a, g as Uint8Array] }), { instanceOf: TypeError })
      if (g !== undefined && !Array.isArray(g)) t.throws(() => k.admit(p, { deps: g as Uint8Array[] }), { instanceOf: TypeError })
      if (g !== undefined && (typeof g !== 'object' || g === null)) {
        t.throws(() => k.admit(p, g as never), { instanceOf: TypeError })
      }
    }
    t.deepEqual(snapshot(k), before)
  })
}

test('ids of the wrong length are RangeErrors', (t) => {
  const { supply, k } = supplyKernel()
  const a = k.admit(supply.delta(1n))
  const before = snapshot(k)
  for (const n of [0, 1, 31, 33, 64]) {
    t.throws(() => k.admit(supply.delta(1n), { id: new Uint8Array(n) }), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' } as never)
    t.throws(() => k.admit(supply.delta(1n), { deps: [new Uint8Array(n)] }), { instanceOf: RangeError })
    t.throws(() => k.admit(supply.delta(1n), { deps: [a, new Uint8Array(n)] }), { instanceOf: RangeError })
    t.throws(() => k.contains(new Uint8Array(n)), { instanceOf: RangeError })
    if (n !== 64) t.throws(() => k.query({ clock: new Uint8Array(n) }), { instanceOf: RangeError })
  }
  t.deepEqual(snapshot(k), before)
})

test('100k dependencies: MALFORMED_FACT, no allocation storm, no change', (t) => {
  const { supply, k } = supplyKernel()
  const a = k.admit(supply.delta(1n))
  const before = snapshot(k)
  const deps = Array.from({ length: 100_000 }, () => a)
  const e = t.throws(() => k.admit(supply.delta(1n), { deps }), { instanceOf: CtfsError })
  t.is(e.code, 'MALFORMED_FACT')
  t.regex(e.message, /100000 dependencies; the limit is 256/)
  t.deepEqual(snapshot(k), before)
  // In a batch too (the batch format allows up to 65,535 deps; the kernel's limit applies).
  const b = new FactBatch()
  b.add(supply.delta(1n), { deps: deps.slice(0, 60_000) })
  t.throws(() => b.add(supply.delta(1n), { deps }), { instanceOf: RangeError })
  const r = k.admitBatch(b)
  t.is(r.code(0), 'MALFORMED_FACT')
  t.deepEqual(snapshot(k), before)
})

test('oversized payloads: PAYLOAD_TOO_LARGE, single and batch', (t) => {
  const supply = invariants.totalSupply()
  const k = new Kernel({ invariant: supply, maxPayloadBytes: 1024 })
  const before = snapshot(k)
  const e = t.throws(() => k.admit(new Uint8Array(1025)), { instanceOf: CtfsError })
  t.is(e.code, 'PAYLOAD_TOO_LARGE')
  t.regex(e.message, /1025 bytes; the limit is 1024/)
  t.throws(() => k.admit(new Uint8Array(20 * 1024 * 1024)), { code: 'PAYLOAD_TOO_LARGE' })
  t.is(k.admitBatch([{ payload: new Uint8Array(4096) }]).code(0), 'PAYLOAD_TOO_LARGE')
  t.deepEqual(snapshot(k), before)
})

test('payloads the invariant cannot decode are MALFORMED_FACT', (t) => {
  const { k } = supplyKernel()
  const before = snapshot(k)
  for (const n of [0, 1, 15, 17, 64]) {
    t.throws(() => k.admit(new Uint8Array(n)), { code: 'MALFORMED_FACT' })
  }
  t.deepEqual(snapshot(k), before)
})

test('non-integer and out-of-range deltas and bounds are TypeError / RangeError', (t) => {
  const supply = invariants.totalSupply()
  for (const g of ['5', undefined, null, {}, [1n], true]) {
    t.throws(() => supply.delta(g as bigint), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' } as never)
    if (g !== undefined) t.throws(() => invariants.totalSupply({ initial: g as bigint, min: 0n }), { instanceOf: TypeError })
  }
  for (const g of [1.5, NaN, Infinity, 2 ** 53, -(2 ** 53)]) {
    t.throws(() => supply.delta(g), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' } as never)
    t.throws(() => invariants.totalSupply({ initial: g, min: -(2n ** 60n) }), { instanceOf: RangeError })
  }
  t.deepEqual(supply.delta(5), supply.delta(5n))
  t.deepEqual(supply.delta(-(2 ** 53 - 1)), supply.delta(-(2n ** 53n - 1n)))
  t.throws(() => supply.delta(1n << 127n), { instanceOf: RangeError })
  t.throws(() => supply.delta(-(1n << 127n) - 1n), { instanceOf: RangeError })
  t.notThrows(() => supply.delta(-(1n << 127n)))
  t.notThrows(() => supply.delta((1n << 127n) - 1n))
  t.throws(() => invariants.totalSupply({ min: 10n, max: 5n }), { instanceOf: RangeError })
  t.throws(() => invariants.totalSupply({ initial: 11n, min: 0n, max: 10n }), { instanceOf: RangeError })
  t.throws(() => invariants.totalSupply(null as never), { instanceOf: TypeError })
  t.throws(() => supply.read('x' as never), { instanceOf: TypeError })
  t.throws(() => supply.read(new Uint8Array(8)), { instanceOf: RangeError })
})

test('bad kernel options are TypeError / RangeError', (t) => {
  const supply = invariants.totalSupply()
  t.throws(() => new Kernel(undefined as never), { instanceOf: TypeError })
  t.throws(() => new Kernel({} as never), { instanceOf: TypeError })
  t.throws(() => new Kernel({ invariant: {} as never }), { instanceOf: TypeError })
  t.throws(() => new Kernel({ invariant: supply, causality: 'fast' as never }), { instanceOf: RangeError })
  t.throws(() => new Kernel({ invariant: supply, escalationThreshold: 1.5 }), { instanceOf: RangeError })
  t.throws(() => new Kernel({ invariant: supply, escalationThreshold: '0.3' as never }), { instanceOf: TypeError })
  t.throws(() => new Kernel({ invariant: supply, maxDeps: 0 }), { instanceOf: RangeError })
  t.throws(() => new Kernel({ invariant: supply, maxDeps: 1e9 }), { instanceOf: RangeError })
  t.throws(() => new Kernel({ invariant: supply, maxPayloadBytes: 2 ** 40 }), { instanceOf: RangeError })
  t.throws(() => new Kernel({ invariant: supply, maxFacts: -1 }), { instanceOf: RangeError })
  t.throws(() => new Kernel({ invariant: supply, maxFacts: 1.5 }), { instanceOf: RangeError })
  const k = new Kernel({ invariant: supply })
  t.throws(() => k.tenant(5 as never), { instanceOf: TypeError })
  t.throws(() => k.tenant(''), { instanceOf: RangeError })
  t.throws(() => k.query(null as never), { instanceOf: TypeError })
  t.throws(() => k.query({} as never), { instanceOf: TypeError })
  t.throws(() => k.admitBatch('x' as never), { instanceOf: TypeError })
  t.throws(() => k.admitBatch([null] as never), { instanceOf: TypeError })
  t.throws(() => new FactBatch(-1), { instanceOf: RangeError })
})

test('the native layer itself refuses malformed arguments without crashing', (t) => {
  // Below the TS wrapper: direct calls with wrong types and lengths.
  const nk = new native.NativeKernel({ invariant: { kind: 'totalSupply' }, causality: 'exact' })
  const fast = native.fastPath()
  const target = nk.fastTarget(0)
  const p = new Uint8Array(16)
  const none = new Uint8Array(0)
  t.throws(() => fast.admitWithId(target, 'x' as never, p, none))
  t.throws(() => fast.admitWithId(target, new Uint8Array(31), p, none))
  t.throws(() => fast.admitWithId(target, rid(), p, new Uint8Array(33)))
  t.throws(() => nk.fastTarget(7)) // no such domain
  t.throws(() => fast.admitWithId(target + 1, rid(), p, none)) // no such target
  t.throws(() => fast.admitWithId(0, rid(), p, none)) // 0 names nothing
  t.throws(() => fast.admitDerived(target, new Uint8Array(8), p, none))
  t.throws(() => fast.admitWithId('0' as never, rid(), p, none), { instanceOf: TypeError })
  t.throws(() => (fast.admitWithId as (...a: unknown[]) => number)(0), { instanceOf: TypeError })
  t.throws(() => fast.admitBatch(target, new Uint16Array(8) as never, new Uint8Array(1)), { instanceOf: TypeError })
  t.throws(() => nk.queryClock(0, new Uint8Array(10)))
  t.throws(() => new native.NativeKernel({ invariant: { kind: 'nope' }, causality: 'exact' }))
  t.throws(() => new native.NativeKernel({ invariant: { kind: 'totalSupply', min: 1n << 200n }, causality: 'exact' }))
  t.throws(() => new native.NativeKernel({ invariant: { kind: 'totalSupply' }, causality: 'exact', maxFacts: NaN }))
  // Garbage batches: every length from 0 to 600 of random bytes.
  for (let n = 0; n < 600; n += 7) {
    const junk = new Uint8Array(n).map(() => Math.floor(Math.random() * 256))
    fast.admitBatch(target, junk, new Uint8Array(16))
  }
  t.is(nk.stats(0).admitted >= 0, true)
  t.is(fast.admitWithId(target, rid(), p, none), 0)
})

// ------------------------------------------------------ one error shape
//
// Every error the public API throws is a CtfsError with a documented code,
// or a TypeError / RangeError with a Node-style code; never a bare N-API
// error (GenericFailure, InvalidArg, BigintExpected...), never a V8 error
// without a code, never a silent wrong answer.

const NODE_CODES = new Set(['ERR_INVALID_ARG_TYPE', 'ERR_INVALID_ARG_VALUE', 'ERR_OUT_OF_RANGE'])
const DOCUMENTED = new Set<string>([...ERROR_CODES.slice(1), ...OTHER_ERROR_CODES])

/** Why `e` is not of the public error shape, or null when it is. */
function shapeProblem(e: unknown): string | null {
  if (e instanceof CtfsError) return DOCUMENTED.has(e.code) ? null : `CtfsError with undocumented code ${e.code}`
  if (e instanceof TypeError || e instanceof RangeError) {
    const code = (e as { code?: unknown }).code
    return typeof code === 'string' && NODE_CODES.has(code) ? null : `${e.name} with code ${String(code)}: ${e.message}`
  }
  return `not a CtfsError / TypeError / RangeError: ${e instanceof Error ? `${e.name} (code ${String((e as { code?: unknown }).code)}): ${e.message}` : String(e)}`
}

type Expected = ['TypeError' | 'RangeError', string] | ['CtfsError', CtfsErrorCode]

function expectError(t: ExecutionContext, e: unknown, [kind, code]: Expected, title: string): void {
  t.is(shapeProblem(e), null, title)
  t.is((e as Error).constructor.name === 'CtfsError' ? 'CtfsError' : (e as Error).name, kind, title)
  t.is((e as { code?: string }).code, code, title)
}

const id32 = () => rid()
const proxyId = () => new Proxy(new Uint8Array(32), {})
const spoofedId = () => Object.setPrototypeOf({ length: 32 }, Uint8Array.prototype) as Uint8Array
const spoofed16 = () => Object.setPrototypeOf(new Uint16Array(32), Uint8Array.prototype) as Uint8Array

function fixture() {
  const supply = invariants.totalSupply({ initial: 100n, min: 0n })
  const k = new Kernel({ invariant: supply, replica: { nodes: [1n, 2n], local: 1n } })
  const a = k.admit(supply.delta(1n))
  return { supply, k, a }
}

// The cases of issue 8 ("One error shape"), one row each, then more of the same kind.
const rows: Array<[string, (f: ReturnType<typeof fixture>) => unknown, Expected]> = [
  ['a Proxy of a Uint8Array as id', ({ k, supply }) => k.admit(supply.delta(1n), { id: proxyId() }), ['TypeError', 'ERR_INVALID_ARG_TYPE']],
  ['a Proxy id to contains()', ({ k }) => k.contains(proxyId()), ['TypeError', 'ERR_INVALID_ARG_TYPE']],
  ['a Proxy dependency', ({ k, supply }) => k.admit(supply.delta(1n), { deps: [proxyId()] }), ['TypeError', 'ERR_INVALID_ARG_TYPE']],
  ['a Proxy payload', ({ k }) => k.admit(new Proxy(new Uint8Array(16), {})), ['TypeError', 'ERR_INVALID_ARG_TYPE']],
  ['a prototype-spoofed id', ({ k, supply }) => k.admit(supply.delta(1n), { id: spoofedId() }), ['TypeError', 'ERR_INVALID_ARG_TYPE']],
  ['a Uint16Array dressed as a Uint8Array id', ({ k, supply }) => k.admit(supply.delta(1n), { id: spoofed16() }), ['TypeError', 'ERR_INVALID_ARG_TYPE']],
  ['a prototype-spoofed id to contains()', ({ k }) => k.contains(spoofedId()), ['TypeError', 'ERR_INVALID_ARG_TYPE']],
  ['a prototype-spoofed id in query({ facts })', ({ k }) => k.query({ facts: [spoofedId()] }), ['TypeError', 'ERR_INVALID_ARG_TYPE']],
  ['a prototype-spoofed id to admitRemote', ({ k, supply }) => k.replica!.admitRemote(spoofedId(), supply.delta(1n)), ['TypeError', 'ERR_INVALID_ARG_TYPE']],
  ['a prototype-spoofed id to factIdToHex', () => factIdToHex(spoofedId()), ['TypeError', 'ERR_INVALID_ARG_TYPE']],
  ['lowestFactId(5)', () => lowestFactId(5 as never), ['TypeError', 'ERR_INVALID_ARG_TYPE']],
  ['lowestFactId([a 31-byte id]) (returned it)', () => lowestFactId([new Uint8Array(31)]), ['RangeError', 'ERR_OUT_OF_RANGE']],
  ['lowestFactId([a good id, a string])', () => lowestFactId([id32(), 'x' as never]), ['TypeError', 'ERR_INVALID_ARG_TYPE']],
  ['admitBatch(Object.create(FactBatch.prototype))', ({ k }) => k.admitBatch(Object.create(FactBatch.prototype)), ['TypeError', 'ERR_INVALID_ARG_TYPE']],
  ['writeDelta with an offset past the end', ({ supply }) => supply.writeDelta(new Uint8Array(16), 8, 1n), ['RangeError', 'ERR_OUT_OF_RANGE']],
  ['writeDelta with a negative offset', ({ supply }) => supply.writeDelta(new Uint8Array(32), -1, 1n), ['RangeError', 'ERR_OUT_OF_RANGE']],
  ['writeDelta with a fractional offset', ({ supply }) => supply.writeDelta(new Uint8Array(32), 1.5, 1n), ['RangeError', 'ERR_OUT_OF_RANGE']],
  ["writeDelta with offset 'x' (was ignored)", ({ supply }) => supply.writeDelta(new Uint8Array(32), 'x' as never, 1n), ['TypeError', 'ERR_INVALID_ARG_TYPE']],
  ['writeDelta into a plain array', ({ supply }) => supply.writeDelta([] as never, 0, 1n), ['TypeError', 'ERR_INVALID_ARG_TYPE']],
  ['replica.onRequest(null)', ({ k }) => k.replica!.onRequest(null as never, 'down'), ['TypeError', 'ERR_INVALID_ARG_TYPE']],
  ["replica.onGrant('x')", ({ k }) => k.replica!.onGrant('x' as never, 'down'), ['TypeError', 'ERR_INVALID_ARG_TYPE']],
  ["replica side 'sideways'", ({ k }) => k.replica!.quotas('sideways' as never), ['RangeError', 'ERR_OUT_OF_RANGE']],
  ["replica.requestQuota side 'sideways'", ({ k }) => k.replica!.requestQuota(2n, 1n, 'sideways' as never), ['RangeError', 'ERR_OUT_OF_RANGE']],
  ["replica.quotas('down', 5) (returned null)", ({ k }) => k.replica!.quotas('down', 5), ['RangeError', 'ERR_OUT_OF_RANGE']],
  ['replica.poll with nowMs NaN', ({ k }) => k.replica!.poll('down', 0, NaN), ['RangeError', 'ERR_OUT_OF_RANGE']],
  ['replica.onRequest of a malformed message', ({ k }) => k.replica!.onRequest(new Uint8Array(3), 'down'), ['CtfsError', 'MALFORMED_MESSAGE']],
  ["replica.admitRemote with { dep } (a typo)", ({ k, supply, a }) => k.replica!.admitRemote(id32(), supply.delta(1n), { dep: [a] } as never), ['TypeError', 'ERR_INVALID_ARG_VALUE']],
  ['Escrow.requestQuota(2n, 1n, NaN) (accepted)', () => escrow().requestQuota(2n, 1n, NaN), ['RangeError', 'ERR_OUT_OF_RANGE']],
  ['Escrow.onGrant(grant, Infinity)', () => escrow().onGrant(new Uint8Array(41), Infinity), ['RangeError', 'ERR_OUT_OF_RANGE']],
  ["Escrow.poll('now')", () => escrow().poll('now' as never), ['TypeError', 'ERR_INVALID_ARG_TYPE']],
  ['new Escrow(10n, { backoffBaseMs: 0 })', () => new Escrow(10n, { backoffBaseMs: 0 }), ['RangeError', 'ERR_OUT_OF_RANGE']],
  ["new Escrow(10n, { reservePercent: '50' })", () => new Escrow(10n, { reservePercent: '50' as never }), ['TypeError', 'ERR_INVALID_ARG_TYPE']],
  ['new Escrow(10n, { maxAttempts: 0 }) (was clamped to 1)', () => new Escrow(10n, { maxAttempts: 0 }), ['RangeError', 'ERR_OUT_OF_RANGE']],
  ['query({ facts, clock }) (both accepted)', ({ k, a }) => k.query({ facts: [a], clock: new Uint8Array(64) } as never), ['TypeError', 'ERR_INVALID_ARG_VALUE']],
  ['a forged spec: { ...supply, native: { kind: nope } }', ({ supply }) => new Kernel({ invariant: { ...supply, native: { kind: 'nope' } } as never }), ['TypeError', 'ERR_INVALID_ARG_TYPE']],
  ['a forged spec with an unvalidated native config', ({ supply }) => new Kernel({ invariant: { ...supply, native: { kind: 'totalSupply', min: 5 } } as never }), ['TypeError', 'ERR_INVALID_ARG_TYPE']],
  ['a forged multi member', ({ supply }) => invariants.multi({ a: { ...supply } }), ['TypeError', 'ERR_INVALID_ARG_TYPE']],
  ["member 'nope' of has()", () => new Kernel({ invariant: invariants.multi({ s: invariants.uniqueSet() }) }).has(id32(), 'nope'), ['RangeError', 'ERR_OUT_OF_RANGE']],
  ['FactBatch.id(-1)', () => new FactBatch().id(-1), ['RangeError', 'ERR_OUT_OF_RANGE']],
  ["FactBatch.id('0')", () => new FactBatch().id('0' as never), ['TypeError', 'ERR_INVALID_ARG_TYPE']],
  ['new FactBatch(2 ** 40)', () => new FactBatch(2 ** 40), ['RangeError', 'ERR_OUT_OF_RANGE']],
  ['the native layer: NativeKernel with an unknown kind', () => fromNativeThrowOf(() => new native.NativeKernel({ invariant: { kind: 'nope' }, causality: 'exact' })), ['TypeError', 'ERR_INVALID_ARG_VALUE']],
]

function escrow(): Escrow {
  const e = new Escrow(100n)
  e.initialize([1n, 2n])
  e.setLocal(1n)
  return e
}

/** Runs a raw native call through the public layer's error conversion. */
function fromNativeThrowOf(f: () => unknown): unknown {
  try {
    return f()
  } catch (e) {
    throw fromNativeThrow(e)
  }
}

for (const [title, call, expected] of rows) {
  test(`error shape: ${title}`, (t) => {
    const f = fixture()
    const before = snapshot(f.k)
    let thrown: unknown
    let returned: unknown
    try {
      returned = call(f)
    } catch (e) {
      thrown = e
    }
    t.not(thrown, undefined, `returned ${String(returned)} instead of throwing`)
    expectError(t, thrown, expected, title)
    t.deepEqual(snapshot(f.k), before)
  })
}

test('error shape: DurableKernel.open({ truncateCorrupt: "yes" }) and other bad durable options', async (t) => {
  const dir = tempDir(t, 'ctfs-bad-open-')
  const supply = invariants.totalSupply()
  const cases: Array<[Record<string, unknown>, Expected]> = [
    [{ truncateCorrupt: 'yes' }, ['TypeError', 'ERR_INVALID_ARG_TYPE']],
    [{ backend: 'fast' }, ['RangeError', 'ERR_OUT_OF_RANGE']],
    [{ bufferBytes: '1 MiB' }, ['TypeError', 'ERR_INVALID_ARG_TYPE']],
    [{ bufferBytes: 1.5 }, ['RangeError', 'ERR_OUT_OF_RANGE']],
    [{ segmentBytes: 2 ** 40 }, ['RangeError', 'ERR_OUT_OF_RANGE']],
    [{ truncateCorrupted: true }, ['TypeError', 'ERR_INVALID_ARG_VALUE']],
  ]
  for (const [extra, expected] of cases) {
    const e = await t.throwsAsync(DurableKernel.open({ dir, invariant: supply, ...extra } as never))
    expectError(t, e, expected, JSON.stringify(extra, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v)))
  }
  // sizes follow the integer rule: a bigint is fine
  const k = await DurableKernel.open({ dir, invariant: supply, bufferBytes: 65536n, segmentBytes: 1n << 20n, backend: 'portable' })
  t.is(k.tenant('acme').name, 'acme', 'durable kernels have tenants')
  await k.close()
})

test('a mutated spec cannot change what a kernel is built from (the spec and its native config are frozen copies)', (t) => {
  const supply = invariants.totalSupply({ initial: 5n, min: 0n })
  t.true(Object.isFrozen(supply))
  t.true(Object.isFrozen(supply.native))
  t.throws(() => {
    ;(supply.native as { min?: bigint }).min = -100n
  }, { instanceOf: TypeError })
  t.throws(() => {
    ;(supply as { native: unknown }).native = { kind: 'max' }
  }, { instanceOf: TypeError })
  const k = new Kernel({ invariant: supply })
  t.deepEqual(k.read().min, 0n)
  t.throws(() => k.admit(supply.delta(-6n)), { code: 'INVARIANT_VIOLATION' } as never)
  // a custom invariant's initial state: the public copy can be written, the kernel does not see it
  const initial = new Uint8Array([1, 2])
  const c = invariants.custom({ name: 'c', class: 'group', initial, apply() {} })
  initial[0] = 9
  c.native.initialState![0] = 9
  const m = invariants.multi({ c })
  m.members![0]!.initialState![1] = 9
  t.deepEqual(new Kernel({ invariant: c }).read(), new Uint8Array([1, 2]))
  t.deepEqual(new Kernel({ invariant: m }).read().c, new Uint8Array([1, 2]))
})
