import test from 'ava'

import { CtfsError, DurableKernel, Escrow, Kernel, invariants } from '../src/index.ts'
import { tempDir } from './helpers.ts'

const supply = () => invariants.totalSupply({ initial: 100n, min: 0n })
const balance = (k: Kernel<ReturnType<typeof supply>>) => k.invariant.read(k.state).balance

function replica(local: bigint) {
  return new Kernel({ invariant: supply(), replica: { nodes: [1n, 2n], local } })
}

test('two replicas spending 60 of 100: without escrow both pass and the union breaks the bound', (t) => {
  const a = new Kernel({ invariant: supply() })
  const b = new Kernel({ invariant: supply() })
  const fa = a.admit(a.invariant.delta(-60n))
  const fb = b.admit(b.invariant.delta(-60n))
  // exchanging the facts: the union is not admissible
  const e = t.throws(() => a.admit(a.invariant.delta(-60n), { id: fb }), { instanceOf: CtfsError })
  t.is(e?.code, 'INVARIANT_VIOLATION')
  t.is(balance(a), 40n)
  void fa
})

test('with escrow each replica spends within its quota and every local fact is admissible everywhere', (t) => {
  const a = replica(1n)
  const b = replica(2n)
  t.deepEqual(
    a.replica?.quotas('down')?.map((q) => [q.node, q.available]),
    [
      [1n, 50n],
      [2n, 50n],
    ],
  )
  const e = t.throws(() => a.admit(a.invariant.delta(-60n)), { instanceOf: CtfsError })
  t.is(e?.code, 'INSUFFICIENT_QUOTA')
  t.is(balance(a), 100n, 'refused: nothing changed')
  const fa = a.admit(a.invariant.delta(-50n))
  const fb = b.admit(b.invariant.delta(-50n))
  t.is(t.throws<CtfsError>(() => b.admit(b.invariant.delta(-1n)))?.code, 'INSUFFICIENT_QUOTA')
  a.replica?.admitRemote(fb, b.invariant.delta(-50n))
  b.replica?.admitRemote(fa, a.invariant.delta(-50n))
  t.is(balance(a), 0n)
  t.is(balance(b), 0n)
  t.deepEqual(a.state, b.state)
})

test('quota moves by request and grant; a duplicated grant is credited once', (t) => {
  const a = replica(1n)
  const b = replica(2n)
  const req = a.replica?.requestQuota(2n, 20n, 'down', 0, 0)
  t.truthy(req)
  t.is(a.replica?.requestQuota(2n, 5n, 'down', 0, 1), null, 'one pending request per peer')
  const grant = b.replica!.onRequest(req!, 'down')
  t.is(a.replica?.onGrant(grant, 'down', 0, 10), 'applied')
  t.is(a.replica?.onGrant(grant, 'down', 0, 11), 'ignored')
  a.admit(a.invariant.delta(-70n))
  t.is(balance(a), 30n)
  t.is(t.throws<CtfsError>(() => b.admit(b.invariant.delta(-31n)))?.code, 'INSUFFICIENT_QUOTA')
  b.admit(b.invariant.delta(-30n))
})

test('credits created on a replica can be spent there', (t) => {
  const a = replica(1n)
  a.admit(a.invariant.delta(25n))
  a.admit(a.invariant.delta(-75n))
  t.is(balance(a), 50n)
})

test('invariants whose class needs coordination are refused in replicated mode', (t) => {
  const g = invariants.totalSupply({ initial: 0n })
  const unbounded = new Kernel({ invariant: g, replica: { nodes: [1n, 2n], local: 1n } })
  unbounded.admit(g.delta(-1_000_000n)) // group: coordination-free
  t.is(unbounded.coordination, 'none')
  t.is(unbounded.replica?.quotas('down'), null)

  // a 16-vertex graph with an out-degree limit: two replicas could each add
  // an edge under the limit and exceed it together, and escrow cannot split
  // per-vertex limits: coordination required.
  const graph = invariants.gGraph({ maxOutDegree: 1 })
  const k = new Kernel({ invariant: graph, replica: { nodes: [1n, 2n], local: 1n } })
  t.is(k.coordination, 'required')
  const before = k.state
  const e = t.throws(() => k.admit(new Uint8Array([0, 1])), { instanceOf: CtfsError })
  t.is(e?.code, 'REQUIRES_COORDINATION')
  t.deepEqual(k.state, before)
  // the same invariant on a single node admits
  const single = new Kernel({ invariant: graph })
  single.admit(new Uint8Array([0, 1]))
  t.is(t.throws<CtfsError>(() => single.admit(new Uint8Array([0, 2])))?.code, 'INVARIANT_VIOLATION')
})

test('Escrow: ledger split, consume, transfer, backoff schedule', (t) => {
  const e = new Escrow(101n)
  e.initialize([2n, 1n, 3n])
  t.deepEqual(
    e.quotas.map((q) => [q.node, q.quota]),
    [
      [1n, 34n],
      [2n, 34n],
      [3n, 33n],
    ],
  )
  e.tryConsume(1n, 30n)
  t.is(t.throws(() => e.tryConsume(1n, 5n), { instanceOf: CtfsError })?.code, 'INSUFFICIENT_QUOTA')
  e.transfer(2n, 1n, 10n)
  t.is(e.quota(1n).available, 14n)
  t.is(e.quotas.reduce((s, q) => s + q.quota, 0n), 101n, 'conservation')

  const r = new Escrow(100n, { maxAttempts: 4 })
  r.initialize([1n, 2n])
  r.setLocal(1n)
  t.truthy(r.requestQuota(2n, 10n, 0))
  const due: number[] = []
  for (let now = 0; now <= 20_000; now += 100) {
    const p = r.poll(now)
    if (p.resend.length > 0 || p.gaveUp.length > 0) due.push(now)
  }
  t.deepEqual(due, [500, 1500, 3500, 7500], 'retries after 500, 1000, 2000, then given up after 4000 ms')
  t.is(t.throws(() => r.onGrant(new Uint8Array(3)), { instanceOf: CtfsError })?.code, 'MALFORMED_MESSAGE')
})

test('durable kernels open replicated (escrow quotas are persisted: durable-replica.spec)', async (t) => {
  const dir = tempDir(t, 'ctfs-replica-')
  const r = await DurableKernel.open({ dir, invariant: supply(), replica: { nodes: [1n, 2n], local: 1n } })
  t.deepEqual(r.replica?.nodes, [1n, 2n])
  await r.close()
})
