// The replication protocol driven by hand (bytes in, bytes out): an
// in-process "network" moves frames between kernels, so these tests check
// the binding and the TS API; the protocol itself is proven by the
// simulator (cargo test -p ctfs-sync, npm run sim).
import { randomBytes } from 'node:crypto'

import test from 'ava'

import { CtfsError, FactBatch, Kernel, invariants, type InvariantSpec, type OutgoingFrame, type ReplicaSync } from '../src/index.ts'
import { prng } from './helpers.ts'

const KEY = new Uint8Array(randomBytes(32))

interface Member<I extends InvariantSpec> {
  k: Kernel<I>
  s: ReplicaSync
}

function cluster<I extends InvariantSpec>(make: () => I, n = 3, options: { key?: Uint8Array; antiEntropyMs?: number } = {}): Member<I>[] {
  const nodes = Array.from({ length: n }, (_, i) => BigInt(i + 1))
  return nodes.map((local) => {
    const k = new Kernel({ invariant: make(), replica: { nodes, local } })
    const s = k.replica!.sync({ key: options.key ?? KEY, epoch: 1, antiEntropyMs: options.antiEntropyMs ?? 50 })
    return { k, s }
  })
}

/** Delivers frames until nothing is in flight, ticking every member each round. */
function run<I extends InvariantSpec>(members: Member<I>[], opts: { rounds?: number; drop?: (f: OutgoingFrame) => boolean } = {}): number {
  let now = 1_000
  let queue: OutgoingFrame[] = []
  let delivered = 0
  for (let round = 0; round < (opts.rounds ?? 40); round++) {
    now += 60
    for (const m of members) queue.push(...m.s.tick(now).frames)
    while (queue.length > 0) {
      const next: OutgoingFrame[] = []
      for (const f of queue) {
        if (opts.drop?.(f)) continue
        const out = members[Number(f.to) - 1]!.s.receive(f.data, now)
        delivered++
        next.push(...out.frames)
      }
      queue = next
    }
  }
  return delivered
}

const converged = <I extends InvariantSpec>(ms: Member<I>[]) => new Set(ms.map((m) => JSON.stringify(m.s.digests))).size === 1

test('three replicas of a gCounter converge: pushed facts, anti-entropy after drops', (t) => {
  const g = () => invariants.gCounter()
  const ms = cluster(g)
  const rnd = prng(7)
  for (let i = 0; i < 300; i++) {
    const m = ms[Math.floor(rnd() * 3)]!
    m.k.admit(m.k.invariant.increment(1n + BigInt(Math.floor(rnd() * 5))))
  }
  // first rounds lose 30% of the frames; later rounds are clean
  let n = 0
  run(ms, { rounds: 5, drop: () => ++n % 3 === 0 })
  run(ms)
  t.true(converged(ms))
  const values = ms.map((m) => m.k.read())
  t.deepEqual(values[0], values[1])
  t.deepEqual(values[0], values[2])
  t.is(ms[0]!.s.digests.count, 300)
  const st = ms[0]!.s.stats
  t.true(st.factsAdmitted > 0 && st.probesSent > 0)
  t.true(st.peers.every((p) => p.synced))
  t.is(st.versionVector.reduce((a, v) => a + v.count, 0), 300)
})

test('dependencies travel with the facts: a causal chain across replicas arrives in order', (t) => {
  const ms = cluster(() => invariants.lww())
  let prev: Uint8Array | undefined
  for (let i = 0; i < 60; i++) {
    const m = ms[i % 3]!
    prev = m.k.admit(m.k.invariant.write(BigInt(i), new TextEncoder().encode(`v${i}`)), prev ? { deps: [prev] } : {})
    run(ms, { rounds: 1 }) // each replica sees the previous fact before building on it
  }
  // deliver the last pushes in reverse order: the causal buffer reorders them
  run(ms)
  t.true(converged(ms))
  for (const m of ms) t.is(new TextDecoder().decode(m.k.read()?.value), 'v59')
})

test('a bounded balance with escrow never goes below its bound across the cluster', (t) => {
  const supply = () => invariants.totalSupply({ initial: 900n, min: 0n })
  const ms = cluster(supply)
  let admitted = 0n
  let refused = 0
  for (let round = 0; round < 30; round++) {
    for (const m of ms) {
      for (let i = 0; i < 5; i++) {
        try {
          m.k.admit(m.k.invariant.delta(-10n))
          admitted += 10n
        } catch (e) {
          t.true(e instanceof CtfsError)
          t.is((e as CtfsError).code, 'INSUFFICIENT_QUOTA')
          refused++
          const out = m.s.needQuota(10n, 'down')
          for (const f of out.frames) ms[Number(f.to) - 1]!.s.receive(f.data)
        }
      }
    }
    run(ms, { rounds: 2 })
  }
  run(ms)
  t.true(converged(ms))
  t.true(admitted <= 900n, `spent ${admitted} of 900`)
  t.true(refused > 0)
  for (const m of ms) t.is(m.k.read().balance, 900n - admitted)
})

test('frames under a wrong key, garbage and replays are dropped with a code and change nothing', (t) => {
  const g = () => invariants.gCounter()
  const [a, b] = cluster(g, 2)
  const [evil] = cluster(g, 2, { key: new Uint8Array(32).fill(9) })
  evil!.k.admit(evil!.k.invariant.increment(5n))
  const forged = evil!.s.flush().frames[0]!
  const before = b!.s.digests
  const r1 = b!.s.receive(forged.data)
  t.is(r1.dropped?.code, 'AUTH_FAILED')
  t.is(r1.frames.length, 0)
  const r2 = b!.s.receive(new Uint8Array(randomBytes(200)))
  t.is(r2.dropped?.code, 'MALFORMED_FRAME')
  const big = new Uint8Array(2 << 20)
  t.is(b!.s.receive(big).dropped?.code, 'FRAME_TOO_LARGE')
  t.deepEqual(b!.s.digests, before)
  a!.k.admit(a!.k.invariant.increment(3n))
  const push = a!.s.flush().frames[0]!
  t.is(b!.s.receive(push.data).dropped, undefined)
  t.is(b!.s.receive(push.data).dropped?.code, 'REPLAYED_FRAME')
  t.is(b!.k.read().sum, 3n)
  const st = b!.s.stats
  t.deepEqual(st.dropped, { AUTH_FAILED: 1, MALFORMED_FRAME: 1, FRAME_TOO_LARGE: 1, REPLAYED_FRAME: 1 })
})

test('a replica with another invariant configuration is refused and reported once', (t) => {
  const nodes = [1n, 2n]
  const a = new Kernel({ invariant: invariants.gCounter(), replica: { nodes, local: 1n } })
  const b = new Kernel({ invariant: invariants.max(), replica: { nodes, local: 2n } })
  const sa = a.replica!.sync({ key: KEY, epoch: 1 })
  const sb = b.replica!.sync({ key: KEY, epoch: 1 })
  a.admit(a.invariant.increment(1n))
  a.admit(a.invariant.increment(1n))
  const frames = [...sa.flush().frames, ...sa.tick(5).frames]
  const outs = frames.map((f) => sb.receive(f.data))
  t.true(outs.every((o) => o.dropped?.code === 'CONFIG_MISMATCH'))
  t.is(outs.flatMap((o) => o.events).filter((e) => e.type === 'peerConfigMismatch').length, 1)
  t.is(b.frontier.count, 0)
})

test('exportFacts + FactBatch.fromPacked rebuild a replica in one admitBatch', (t) => {
  const ms = cluster(() => invariants.gCounter(), 2)
  const prev: Array<Uint8Array | undefined> = [undefined, undefined]
  for (let i = 0; i < 100; i++) {
    const m = ms[i % 2]!
    // a dependency on the other replica's latest fact, once it has arrived
    const dep = prev[(i + 1) % 2]
    const deps = dep !== undefined && m.k.contains(dep) === 'yes' ? [dep] : []
    prev[i % 2] = m.k.admit(m.k.invariant.increment(1n), { deps })
    if (i % 10 === 0) run(ms, { rounds: 1 })
  }
  run(ms)
  const bytes = ms[0]!.s.exportFacts()
  const batch = FactBatch.fromPacked(bytes)
  t.is(batch.length, 100)
  const fresh = new Kernel({ invariant: invariants.gCounter() })
  const r = fresh.admitBatch(batch)
  t.is(r.admitted, 100)
  t.deepEqual(fresh.read(), ms[0]!.k.read())
  t.deepEqual(Buffer.from(fresh.frontier.digest), Buffer.from(ms[0]!.k.frontier.digest))
  t.throws(() => FactBatch.fromPacked(bytes.subarray(0, bytes.length - 1)), { code: 'ERR_OUT_OF_RANGE' })
  t.deepEqual(FactBatch.fromPacked(batch.toBytes()).toBytes(), batch.toBytes())
})

test('sync options are checked', (t) => {
  const k = new Kernel({ invariant: invariants.gCounter(), replica: { nodes: [1n, 2n], local: 1n } })
  t.throws(() => k.replica!.sync({ key: new Uint8Array(31) }), { code: 'ERR_OUT_OF_RANGE' })
  t.throws(() => k.replica!.sync({ key: KEY, antiEntropyMS: 5 } as never), { code: 'ERR_INVALID_ARG_VALUE' })
  t.throws(() => k.replica!.sync({ key: KEY, maxFrameBytes: 100 }), { code: 'ERR_OUT_OF_RANGE' })
  const plain = new Kernel({ invariant: invariants.gCounter() })
  t.is(plain.replica, null)
  k.admit(k.invariant.increment(1n))
  t.throws(() => k.replica!.sync({ key: KEY }), { instanceOf: CtfsError, message: /before admitting/ })
})
