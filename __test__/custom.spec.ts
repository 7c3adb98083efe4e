// Custom invariants: a TypeScript apply called by the native kernel.
import test from 'ava'
import fc from 'fast-check'

import { CtfsError, DurableKernel, Kernel, invariants as I, type InvariantSpec } from '../src/index.ts'
import { rid, snapshot, tempDir } from './helpers.ts'

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const u64le = (n: bigint) => {
  const b = new Uint8Array(8)
  new DataView(b.buffer).setBigUint64(0, n, true)
  return b
}

/** A u64 sum that refuses odd increments (it writes first, then throws). */
function evenCounter() {
  return I.custom({
    name: 'evenCounter',
    class: 'commutativeMonoid',
    initial: new Uint8Array(8),
    apply(payload, state) {
      if (payload.length !== 8) throw new Error(`expected 8 bytes, got ${payload.length}`)
      const n = new DataView(payload.buffer, payload.byteOffset, 8).getBigUint64(0, true)
      state.setBigUint64(0, BigInt.asUintN(64, state.getBigUint64(0, true) + n), true)
      if (n % 2n === 1n) throw new Error(`odd increment ${n}`)
    },
    read: (s) => new DataView(s.buffer, s.byteOffset, s.byteLength).getBigUint64(0, true),
  })
}

test('custom: a TS counter admits, refuses with the thrown message, state unchanged', (t) => {
  const c = evenCounter()
  t.is(c.name, 'evenCounter')
  t.is(c.size, 8)
  t.deepEqual(c.native, { kind: 'custom', name: 'evenCounter', class: 'commutativeMonoid', initialState: Buffer.alloc(8), rule: 0 })
  t.is(c.rules?.length, 1)
  const k = new Kernel({ invariant: c })
  t.is(k.invariantClass, 'commutativeMonoid')
  t.is(k.coordination, 'none')
  t.is(k.read(), 0n)
  k.admit(u64le(4n))
  k.admit(u64le(10n))
  t.is(k.read(), 14n)
  t.is(k.state.length, 64)
  t.deepEqual(k.state.subarray(8), new Uint8Array(56), 'bytes past the declared size stay zero')
  const before = snapshot(k)
  const e = t.throws(() => k.admit(u64le(3n)), { instanceOf: CtfsError })
  t.is(e?.code, 'INVARIANT_VIOLATION')
  t.regex(e?.message ?? '', /odd increment 3/)
  t.deepEqual(snapshot(k), before, 'the write before the throw did not reach the kernel')
  const m = t.throws(() => k.admit(new Uint8Array(3)), { instanceOf: CtfsError })
  t.is(m?.code, 'INVARIANT_VIOLATION')
  t.regex(m?.message ?? '', /expected 8 bytes, got 3/)
  t.is(k.read(), 14n)
})

test('custom: apply receives a payload copy, the state as a DataView of the declared size, and the fact id', (t) => {
  const seen: Array<{ payload: string; size: number; id: string }> = []
  const c = I.custom({
    name: 'spy',
    class: 'group',
    initial: new Uint8Array([1, 2, 3]),
    apply(payload, state, id) {
      seen.push({ payload: hex(payload), size: state.byteLength, id: hex(id) })
      payload[0] = 0xee // mutating the copy changes nothing
      state.setUint8(0, state.getUint8(0) + 1)
    },
  })
  const k = new Kernel({ invariant: c })
  t.deepEqual(k.read(), new Uint8Array([1, 2, 3]), 'default read: a copy of the state bytes')
  const payload = new Uint8Array([9, 9])
  const id = rid()
  k.admit(payload, { id })
  t.deepEqual(payload, new Uint8Array([9, 9]))
  t.deepEqual(seen, [{ payload: '0909', size: 3, id: hex(id) }])
  t.deepEqual(k.read(), new Uint8Array([2, 2, 3]))
  const derived = k.admit(new Uint8Array(0))
  t.is(seen[1]?.id, hex(derived))
  t.is(seen[1]?.payload, '')
})

test('custom: determinism — two kernels re-running the same facts reach the same bytes', (t) => {
  const c = evenCounter()
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.bigInt({ min: 0n, max: 1000n })), { maxLength: 30 }), (facts) => {
      const run = () => {
        const k = new Kernel({ invariant: c })
        let refusedCount = 0
        for (const [id, n] of facts) {
          try {
            k.admit(u64le(n), { id })
          } catch (e) {
            if (!(e instanceof CtfsError)) throw e
            refusedCount++
          }
        }
        return { ...snapshot(k), refusedCount }
      }
      const a = run()
      const b = run()
      return JSON.stringify(a) === JSON.stringify(b)
    }),
    { numRuns: 50 },
  )
  t.pass()
})

test('custom: a declared-commutative rule converges under any order (property, for this rule)', (t) => {
  const c = evenCounter()
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.tuple(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.bigInt({ min: 0n, max: 500n }).map((n) => n * 2n)), {
        minLength: 1,
        maxLength: 30,
        selector: ([id]) => hex(id),
      }),
      fc.func(fc.integer()),
      (facts, order) => {
        const shuffled = [...facts].sort((a, b) => order(hex(a[0])) - order(hex(b[0])))
        const run = (fs: typeof facts) => {
          const k = new Kernel({ invariant: c })
          for (const [id, n] of fs) k.admit(u64le(n), { id })
          return snapshot(k)
        }
        return JSON.stringify(run(facts)) === JSON.stringify(run(shuffled))
      },
    ),
    { numRuns: 50 },
  )
  t.pass()
})

test('custom: re-entrancy — apply calling the kernel is refused cleanly and Node survives', (t) => {
  let k: Kernel<InvariantSpec> | undefined
  const inner: unknown[] = []
  const c = I.custom({
    name: 'reentrant',
    class: 'group',
    initial: new Uint8Array(1),
    apply(_payload, state) {
      try {
        k?.admit(new Uint8Array([2]))
      } catch (e) {
        inner.push(e)
        throw e
      }
      state.setUint8(0, state.getUint8(0) + 1)
    },
  })
  k = new Kernel({ invariant: c })
  const before = snapshot(k)
  const e = t.throws(() => k!.admit(new Uint8Array([1])), { instanceOf: CtfsError })
  t.is(e?.code, 'INVARIANT_VIOLATION')
  t.regex(e?.message ?? '', /busy/)
  t.is(inner.length, 1, 'the inner call threw')
  t.true(inner[0] instanceof Error)
  t.deepEqual(snapshot(k), before)
  // reading the kernel from inside apply is refused too, and a swallowed
  // inner error lets the outer admission succeed
  let readError: unknown
  let k2: Kernel<InvariantSpec> | undefined
  const c2 = I.custom({
    name: 'peek',
    class: 'group',
    initial: new Uint8Array(1),
    apply(_payload, state) {
      try {
        void k2?.state
      } catch (err) {
        readError = err
      }
      state.setUint8(0, 7)
    },
  })
  k2 = new Kernel({ invariant: c2 })
  k2.admit(new Uint8Array(0))
  t.true(readError instanceof Error)
  t.deepEqual(k2.read(), new Uint8Array([7]))
  // and the kernel still works afterwards
  t.is(k.stats.rejected.INVARIANT_VIOLATION, 1)
})

test('custom: throwing non-Errors (string, Symbol, number, null, objects) is an INVARIANT_VIOLATION', (t) => {
  const cases: Array<[unknown, RegExp]> = [
    ['plain string', /refused: plain string$/],
    [Symbol('sym'), /apply threw/],
    [42, /refused: 42$/],
    [null, /refused: null$/],
    [undefined, /refused: undefined$/],
    [{ message: 'from an object' }, /from an object/],
    [
      {
        get message(): string {
          throw new Error('getter throws')
        },
      },
      /./,
    ],
    [Object.create(null), /./],
  ]
  for (const [thrown, msg] of cases) {
    const c = I.custom({
      name: 'thrower',
      class: 'group',
      initial: new Uint8Array(2),
      apply(_p, state) {
        state.setUint16(0, 0xffff)
        throw thrown
      },
    })
    const k = new Kernel({ invariant: c })
    const e = t.throws(() => k.admit(new Uint8Array([1])), { instanceOf: CtfsError }, String(typeof thrown))
    t.is(e?.code, 'INVARIANT_VIOLATION')
    t.regex(e?.message ?? '', msg)
    t.deepEqual(k.state, new Uint8Array(64))
    t.is(k.stats.admitted, 0)
  }
})

test('custom: detaching the state buffer is refused, not a crash', (t) => {
  const c = I.custom({
    name: 'detacher',
    class: 'group',
    initial: new Uint8Array(4),
    apply(_p, state) {
      structuredClone(state.buffer, { transfer: [state.buffer as ArrayBuffer] })
    },
  })
  const k = new Kernel({ invariant: c })
  const e = t.throws(() => k.admit(new Uint8Array([1])), { instanceOf: CtfsError })
  t.is(e?.code, 'INVARIANT_VIOLATION')
  t.regex(e?.message ?? '', /detached/)
})

test('custom: batches call apply per fact; refusals are per fact', (t) => {
  const c = evenCounter()
  const k = new Kernel({ invariant: c })
  const r = k.admitBatch([{ payload: u64le(2n) }, { payload: u64le(3n) }, { payload: u64le(6n) }])
  t.is(r.admitted, 2)
  t.is(r.code(1), 'INVARIANT_VIOLATION')
  t.regex(r.errors[0]?.error.message ?? '', /odd increment 3/)
  t.is(k.read(), 8n)
})

test('custom: the declared class decides coordination (bounded → escrow needs a replica quota)', (t) => {
  const c = I.custom({ name: 'b', class: 'nonCommutative', initial: new Uint8Array(1), apply() {} })
  const r = new Kernel({ invariant: c, replica: { nodes: [1n, 2n], local: 1n } })
  t.is(r.coordination, 'required')
  t.is(t.throws(() => r.admit(new Uint8Array(1)), { instanceOf: CtfsError })?.code, 'REQUIRES_COORDINATION')
})

test('custom: tenants each start from the initial state', (t) => {
  const c = evenCounter()
  const k = new Kernel({ invariant: c })
  k.admit(u64le(2n))
  const tn = k.tenant('x')
  t.is(tn.read(), 0n)
  tn.admit(u64le(4n))
  t.is(tn.read(), 4n)
  t.is(k.read(), 2n)
})

test('custom: bad options are TypeError / RangeError', (t) => {
  const ok = { name: 'x', class: 'group' as const, initial: new Uint8Array(1), apply() {} }
  const type = (o: unknown) => t.is((t.throws(() => I.custom(o as never), { instanceOf: TypeError }) as { code?: string }).code, 'ERR_INVALID_ARG_TYPE')
  const range = (o: unknown) => t.is((t.throws(() => I.custom(o as never), { instanceOf: RangeError }) as { code?: string }).code, 'ERR_OUT_OF_RANGE')
  type(null)
  type({ ...ok, name: 1 })
  range({ ...ok, name: '' })
  range({ ...ok, name: 'é'.repeat(33) })
  type({ ...ok, class: 3 })
  range({ ...ok, class: 'abelian' })
  type({ ...ok, initial: [0] })
  range({ ...ok, initial: new Uint8Array(0) })
  range({ ...ok, initial: new Uint8Array(65) })
  type({ ...ok, apply: 'f' })
  type({ ...ok, read: 1 })
  t.notThrows(() => I.custom({ ...ok, initial: new Uint8Array(64) }))
})

// ------------------------------------------------ apply must be synchronous

/** Records unhandled rejections while `f` runs, and a little after it. */
async function unhandledDuring(f: () => unknown): Promise<unknown[]> {
  const seen: unknown[] = []
  const onRejection = (reason: unknown) => seen.push(reason)
  process.on('unhandledRejection', onRejection)
  try {
    await f()
    await new Promise((r) => setTimeout(r, 30))
  } finally {
    process.off('unhandledRejection', onRejection)
  }
  return seen
}

/** The issue 8 reproduction, and apply results that are promises or thenables. */
const asyncRules: Array<[string, (payload: Uint8Array, state: DataView) => unknown]> = [
  [
    'async apply that writes then throws',
    async (_p, s) => {
      s.setUint8(0, 7)
      throw new Error('no')
    },
  ],
  [
    'async apply that writes and resolves',
    async (_p, s) => {
      s.setUint8(0, 7)
    },
  ],
  ['apply returning a rejected promise', (_p, s) => (s.setUint8(0, 7), Promise.reject(new Error('later')))],
  ['apply returning a thenable', (_p, s) => (s.setUint8(0, 7), { then() {} })],
  [
    'apply returning an object whose then getter throws',
    (_p, s) => (
      s.setUint8(0, 7),
      {
        get then(): never {
          throw new Error('getter')
        },
      }
    ),
  ],
]

for (const [title, rule] of asyncRules) {
  test(`custom: ${title} is refused (INVARIANT_VIOLATION), state unchanged, no unhandled rejection`, async (t) => {
    const c = I.custom({ name: 'async', class: 'group', initial: new Uint8Array(1), apply: rule as never })
    const k = new Kernel({ invariant: c })
    const m = I.multi({ c, g: I.gCounter() })
    const km = new Kernel({ invariant: m })
    const unhandled = await unhandledDuring(() => {
      const e = t.throws(() => k.admit(new Uint8Array([1])), { instanceOf: CtfsError })
      t.is(e?.code, 'INVARIANT_VIOLATION')
      t.regex(e?.message ?? '', /apply must be synchronous/)
      t.deepEqual(k.state, new Uint8Array(64))
      t.is(k.stats.admitted, 0)
      // in a batch: refused per fact, the other facts admitted
      const r = k.admitBatch([{ payload: new Uint8Array([1]) }, { payload: new Uint8Array([2]) }])
      t.is(r.admitted, 0)
      t.is(r.code(1), 'INVARIANT_VIOLATION')
      t.regex(r.errors[0]?.error.message ?? '', /apply must be synchronous/)
      t.deepEqual(k.state, new Uint8Array(64))
      // in a multi kernel: the whole fact is refused, the other member untouched
      const me = t.throws(() => km.admit(m.fact({ c: new Uint8Array([1]), g: m.specs.g.increment(5) })), { instanceOf: CtfsError })
      t.regex(me?.message ?? '', /apply must be synchronous/)
      t.deepEqual(km.state, new Uint8Array(128))
    })
    t.deepEqual(unhandled, [])
  })
}

test('custom: an async apply is refused during durable replay too (WAL_REPLAY_REFUSED), no unhandled rejection', async (t) => {
  const dir = tempDir(t, 'ctfs-async-replay-')
  const sync = I.custom({ name: 'counter', class: 'group', initial: new Uint8Array(1), apply: (_p, s) => s.setUint8(0, s.getUint8(0) + 1) })
  const k = await DurableKernel.open({ dir, invariant: sync, backend: 'portable' })
  await k.admitDurable(new Uint8Array([1]))
  await k.close()
  const asyncVersion = I.custom({
    name: 'counter',
    class: 'group',
    initial: new Uint8Array(1),
    async apply(_p, s) {
      s.setUint8(0, s.getUint8(0) + 1)
      throw new Error('no')
    },
  })
  const unhandled = await unhandledDuring(async () => {
    const e = await t.throwsAsync(DurableKernel.open({ dir, invariant: asyncVersion, backend: 'portable' }), { instanceOf: CtfsError })
    t.is(e?.code, 'WAL_REPLAY_REFUSED')
    t.regex(e?.message ?? '', /apply must be synchronous/)
  })
  t.deepEqual(unhandled, [])
  // the directory is intact: the synchronous rule still opens it
  const again = await DurableKernel.open({ dir, invariant: sync, backend: 'portable' })
  t.deepEqual(again.read(), new Uint8Array([1]))
  await again.close()
})
