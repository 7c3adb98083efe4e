// Multi-invariant kernels: several invariants on one fact stream, atomic.
import test from 'ava'

import { CtfsError, Kernel, invariants as I } from '../src/index.ts'
import { snapshot } from './helpers.ts'

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

function accounts() {
  const alice = I.totalSupply({ initial: 100n, min: 0n })
  const bob = I.totalSupply({ initial: 0n, min: 0n })
  return I.multi({ alice, bob })
}

test('multi: names, member indices, framing of fact()', (t) => {
  const m = accounts()
  t.deepEqual(m.names, ['alice', 'bob'])
  t.is(m.memberIndex('alice'), 0)
  t.is(m.memberIndex('bob'), 1)
  t.is(m.members?.length, 2)
  t.deepEqual(m.native, m.members?.[0])
  const f = m.fact({ bob: m.specs.bob.delta(5n), alice: m.specs.alice.delta(-5n) })
  // count, then members in increasing index order
  t.is(f.length, 1 + 2 * (5 + 16))
  t.is(f[0], 2)
  t.is(f[1], 0)
  t.is(hex(f.subarray(2, 6)), '10000000')
  t.deepEqual(f.subarray(6, 22), m.specs.alice.delta(-5n))
  t.is(f[22], 1)
  t.deepEqual(f.subarray(27), m.specs.bob.delta(5n))
  const one = m.fact({ bob: m.specs.bob.delta(1n) })
  t.is(hex(one.subarray(0, 6)), '010110000000')
})

test('multi: an atomic transfer across two totalSupply members — all or nothing', (t) => {
  const m = accounts()
  const k = new Kernel({ invariant: m })
  t.is(k.state.length, 128)
  t.is(k.invariantClass, 'bounded')
  k.admit(m.fact({ alice: m.specs.alice.delta(-30n), bob: m.specs.bob.delta(30n) }))
  t.is(k.read().alice.balance, 70n)
  t.is(k.read().bob.balance, 30n)
  // bob would go negative: the whole fact is refused, alice untouched too
  const before = snapshot(k)
  const e = t.throws(() => k.admit(m.fact({ alice: m.specs.alice.delta(50n), bob: m.specs.bob.delta(-50n) })), { instanceOf: CtfsError })
  t.is(e?.code, 'INVARIANT_VIOLATION')
  t.regex(e?.message ?? '', /totalSupply: balance 30/)
  t.deepEqual(snapshot(k), before)
  t.is(k.read().alice.balance, 70n)
})

test('multi: a fact addressed to one member leaves the others alone', (t) => {
  const m = I.multi({ views: I.gCounter(), high: I.max({ initial: 0n }) })
  const k = new Kernel({ invariant: m })
  k.admit(m.fact({ views: m.specs.views.increment(3) }))
  k.admit(m.fact({ high: m.specs.high.value(9n) }))
  k.admit(m.fact({ views: m.specs.views.increment(1), high: m.specs.high.value(4n) }))
  t.deepEqual(k.read(), { views: { sum: 4n }, high: { value: 9n, initial: 0n } })
  t.deepEqual(m.read(k.state).views, { sum: 4n })
})

test('multi: malformed framing is MALFORMED_FACT, state unchanged', (t) => {
  const m = accounts()
  const k = new Kernel({ invariant: m })
  const good = m.fact({ alice: m.specs.alice.delta(-1n), bob: m.specs.bob.delta(1n) })
  const bad: Uint8Array[] = [
    new Uint8Array(0), // no header
    new Uint8Array([0]), // count 0
    new Uint8Array([3]), // more parts than members
    good.subarray(0, good.length - 1), // truncated
    new Uint8Array([...good, 0]), // trailing byte
    (() => {
      const x = good.slice()
      x[22] = 0 // second part addresses member 0 again (not increasing)
      return x
    })(),
    (() => {
      const x = good.slice()
      x[1] = 7 // unknown member
      return x
    })(),
    (() => {
      const x = good.slice()
      x[2] = 15 // part length says 15, the member wants 16
      return x
    })(),
    m.specs.alice.delta(1n), // an unframed member payload
  ]
  const before = snapshot(k)
  for (const p of bad) {
    const e = t.throws(() => k.admit(p), { instanceOf: CtfsError }, hex(p))
    t.is(e?.code, 'MALFORMED_FACT', hex(p))
  }
  t.deepEqual(snapshot(k), before)
  k.admit(good)
  t.is(k.read().bob.balance, 1n)
})

test('multi: pay once per invoice id (uniqueSet + totalSupply)', (t) => {
  const pay = I.multi({ invoices: I.uniqueSet(), balance: I.totalSupply({ initial: 100n, min: 0n }) })
  const k = new Kernel({ invariant: pay })
  const invoice = (n: number) => new Uint8Array(32).fill(n)
  const payInvoice = (n: number, amount: bigint) =>
    k.admit(pay.fact({ invoices: pay.specs.invoices.add(invoice(n)), balance: pay.specs.balance.delta(-amount) }))
  payInvoice(1, 30n)
  t.true(k.has(invoice(1)))
  t.true(k.has(invoice(1), 'invoices'))
  t.true(k.has(invoice(1), 0))
  t.is(k.read().balance.balance, 70n)
  // paying the same invoice twice: DUPLICATE_ELEMENT, no money moves
  let e = t.throws(() => payInvoice(1, 30n), { instanceOf: CtfsError })
  t.is(e?.code, 'DUPLICATE_ELEMENT')
  t.is(k.read().balance.balance, 70n)
  // an invoice the balance cannot cover is not marked paid
  e = t.throws(() => payInvoice(2, 500n), { instanceOf: CtfsError })
  t.is(e?.code, 'INVARIANT_VIOLATION')
  t.false(k.has(invoice(2)))
  t.is(k.read().invoices.count, 1n)
  payInvoice(2, 70n)
  t.is(k.read().balance.balance, 0n)
  t.is(k.read().invoices.count, 2n)
  // wrong member kinds for has()
  t.throws(() => k.has(invoice(1), 'balance'), { instanceOf: TypeError })
  t.throws(() => k.has(invoice(1), 1), { instanceOf: TypeError })
  t.throws(() => k.has(invoice(1), 'nope' as never), { instanceOf: RangeError })
})

test('multi: graph membership by member name', (t) => {
  const m = I.multi({ count: I.gCounter(), follows: I.graph() })
  const k = new Kernel({ invariant: m })
  k.admit(m.fact({ count: m.specs.count.increment(1), follows: m.specs.follows.edge(1n, 2n) }))
  t.true(k.hasEdge(1n, 2n))
  t.true(k.hasEdge(1n, 2n, 'follows'))
  t.false(k.hasEdge(2n, 1n, 1))
  t.throws(() => k.hasEdge(1n, 2n, 'count'), { instanceOf: TypeError })
})

test('multi: custom members are renumbered into one rules array', (t) => {
  const adder = (name: string, by: number) =>
    I.custom({
      name,
      class: 'group',
      initial: new Uint8Array(1),
      apply(p, s) {
        if (p.length !== 0) throw new Error(`${name} takes an empty payload`)
        s.setUint8(0, s.getUint8(0) + by)
      },
      read: (s) => s[0] as number,
    })
  const m = I.multi({ one: adder('one', 1), supply: I.totalSupply(), ten: adder('ten', 10) })
  t.is(m.rules?.length, 2)
  t.deepEqual(
    m.members?.map((c) => c.rule),
    [0, undefined, 1],
  )
  const k = new Kernel({ invariant: m })
  k.admit(m.fact({ one: new Uint8Array(0), ten: new Uint8Array(0) }))
  k.admit(m.fact({ ten: new Uint8Array(0) }))
  t.deepEqual([k.read().one, k.read().ten], [1, 20])
  const e = t.throws(() => k.admit(m.fact({ one: new Uint8Array(0), ten: new Uint8Array(1) })), { instanceOf: CtfsError })
  t.is(e?.code, 'INVARIANT_VIOLATION')
  t.regex(e?.message ?? '', /ten takes an empty payload/)
  t.deepEqual([k.read().one, k.read().ten], [1, 20])
  // two custom members: rules 0 and 1
  const both = I.multi({ a: adder('a', 1), b: adder('b', 2) })
  t.deepEqual(
    both.members?.map((c) => c.rule),
    [0, 1],
  )
})

test('multi: one member takes the member payload unframed', (t) => {
  const m = I.multi({ only: I.gCounter() })
  const k = new Kernel({ invariant: m })
  const f = m.fact({ only: m.specs.only.increment(5) })
  t.deepEqual(f, m.specs.only.increment(5))
  k.admit(f)
  t.deepEqual(k.read(), { only: { sum: 5n } })
})

test('multi: bad inputs', (t) => {
  const type = (f: () => unknown) => t.throws(f, { instanceOf: TypeError })
  const range = (f: () => unknown) => t.throws(f, { instanceOf: RangeError })
  type(() => I.multi(null as never))
  type(() => I.multi([I.gCounter()] as never))
  range(() => I.multi({}))
  type(() => I.multi({ a: 1 as never }))
  type(() => I.multi({ a: I.multi({ x: I.gCounter(), y: I.max() }) as never }))
  range(() => I.multi({ 0: I.gCounter(), a: I.max() } as never))
  range(() => I.multi(Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`m${i}`, I.gCounter()]))))
  t.notThrows(() => I.multi(Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`m${i}`, I.gCounter()]))))
  const m = accounts()
  range(() => m.fact({}))
  t.like(t.throws(() => m.fact({ carol: new Uint8Array(16) } as never), { instanceOf: TypeError }), {
    code: 'ERR_INVALID_ARG_VALUE',
    message: "parts has an unknown key 'carol' (known keys: 'alice', 'bob')",
  })
  type(() => m.fact({ alice: 'x' as never }))
  type(() => m.fact(null as never))
  range(() => m.memberIndex('carol' as never))
  range(() => m.read(new Uint8Array(64)))
})
