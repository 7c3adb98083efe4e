// Wrong inputs from JS never crash Node and never change state: each is a
// typed, catchable error (TypeError / RangeError with Node-style codes, or a
// CtfsError), and the kernel is byte-for-byte what it was.
import test from 'ava'

import { CtfsError, FactBatch, Kernel, invariants } from '../src/index.ts'
import { native } from '../src/native.ts'
import { MODES, rid, snapshot, supplyKernel } from './helpers.ts'

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

test('non-bigint and out-of-range deltas and bounds are TypeError / RangeError', (t) => {
  const supply = invariants.totalSupply()
  for (const g of [1, 1.5, '5', undefined, null, {}, [1n]]) {
    t.throws(() => supply.delta(g as bigint), { instanceOf: TypeError })
    if (g !== undefined) t.throws(() => invariants.totalSupply({ initial: g as bigint, min: 0n }), { instanceOf: TypeError })
  }
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
  const fast = nk.fastPath()
  const p = new Uint8Array(16)
  const none = new Uint8Array(0)
  t.throws(() => fast.admitWithId(0, 'x' as never, p, none))
  t.throws(() => fast.admitWithId(0, new Uint8Array(31), p, none))
  t.throws(() => fast.admitWithId(0, rid(), p, new Uint8Array(33)))
  t.throws(() => fast.admitWithId(7, rid(), p, none))
  t.throws(() => fast.admitDerived(0, new Uint8Array(8), p, none))
  t.throws(() => fast.admitWithId('0' as never, rid(), p, none), { instanceOf: TypeError })
  t.throws(() => (fast.admitWithId as (...a: unknown[]) => number)(0), { instanceOf: TypeError })
  t.throws(() => fast.admitBatch(0, new Uint16Array(8) as never, new Uint8Array(1)), { instanceOf: TypeError })
  t.throws(() => nk.queryClock(0, new Uint8Array(10)))
  t.throws(() => new native.NativeKernel({ invariant: { kind: 'nope' }, causality: 'exact' }))
  t.throws(() => new native.NativeKernel({ invariant: { kind: 'totalSupply', min: 1n << 200n }, causality: 'exact' }))
  t.throws(() => new native.NativeKernel({ invariant: { kind: 'totalSupply' }, causality: 'exact', maxFacts: NaN }))
  // Garbage batches: every length from 0 to 600 of random bytes.
  for (let n = 0; n < 600; n += 7) {
    const junk = new Uint8Array(n).map(() => Math.floor(Math.random() * 256))
    fast.admitBatch(0, junk, new Uint8Array(16))
  }
  t.is(nk.stats(0).admitted >= 0, true)
  t.is(fast.admitWithId(0, rid(), p, none), 0)
})
