// Metrics read from real kernels (plain, multi, tenants, durable,
// replicated with the protocol attached): counters are exact, histograms
// agree with the counters they sample, the Prometheus exposition says the
// same thing as the snapshot, and prom-client stays out of `ctfs`.
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { request } from 'node:http'
import { join } from 'node:path'

import test from 'ava'
import { Registry } from 'prom-client'

import { CtfsError, DurableKernel, FactBatch, Kernel, invariants, type InvariantSpec, type MetricsSnapshot } from '../src/index.ts'
import { MetricsRegistry, collectMetrics, parseMetricsAddress, serveMetrics, METRIC_NAMES } from '../src/prometheus.ts'
import { hid, tempDir } from './helpers.ts'
import { parseExposition, value } from './prom-helpers.ts'

const root = join(import.meta.dirname, '..')

const codeOf = (e: unknown) => (e instanceof CtfsError ? e.code : String(e))

/** A multi kernel with a bounded supply and a unique set, small limits. */
function multiKernel(maxFacts: number) {
  const supply = invariants.totalSupply({ initial: 0n, min: 0n, max: 10n ** 15n })
  const seats = invariants.uniqueSet()
  const inv = invariants.multi({ supply, seats })
  const k = new Kernel({ invariant: inv, maxPayloadBytes: 128, maxFacts })
  return { k, inv, supply, seats }
}

const key = (i: number) => hid('seat', i)

test('counters are exact: N admissions and M refusals of each code, single and batch, per member and per tenant', async (t) => {
  const N = 1_000
  const M = 7
  const { k, inv, supply, seats } = multiKernel(N)
  const ok = (i: number) => inv.fact({ supply: supply.delta(1n), seats: seats.add(key(i)) })
  // One refusal of `code` as (payload, options), given what is admitted so far.
  const first = hid('fact', 0)
  const refusals: Record<string, (j: number) => { payload: Uint8Array; id?: Uint8Array; deps?: Uint8Array[] }> = {
    DUPLICATE_FACT: () => ({ payload: ok(10_000), id: first }),
    CAUSALITY_VIOLATION: (j) => ({ payload: ok(20_000 + j), deps: [hid('missing', j)] }),
    INVARIANT_VIOLATION: () => ({ payload: inv.fact({ supply: supply.delta(-(10n ** 14n)) }) }),
    MALFORMED_FACT: () => ({ payload: inv.fact({ supply: new Uint8Array(3) }) }),
    PAYLOAD_TOO_LARGE: () => ({ payload: new Uint8Array(129) }),
    DUPLICATE_ELEMENT: () => ({ payload: inv.fact({ seats: seats.add(key(0)) }) }),
  }
  let admitted = 0
  const batch = new FactBatch()
  let batchRefusals = 0
  for (let i = 0; i < N - 100; i++) {
    if (i === 0) k.admit(ok(i), { id: first })
    else k.admit(ok(i), { id: hid('fact', i) })
    admitted++
    if (i >= 1 && i <= M * 6 * 2) {
      // after the first admissions: alternate single refusals and batched ones
      const codes = Object.keys(refusals)
      const n = i - 1
      const code = codes[n % codes.length] as string
      const r = (refusals[code] as (j: number) => { payload: Uint8Array; id?: Uint8Array; deps?: Uint8Array[] })(n)
      const opts = { ...(r.id ? { id: r.id } : {}), ...(r.deps ? { deps: r.deps } : {}) }
      if (n < M * 6) t.is(codeOf(t.throws(() => k.admit(r.payload, opts))), code)
      else {
        batch.add(r.payload, opts)
        batchRefusals++
      }
    }
  }
  t.is(batchRefusals, M * 6)
  // The batch: its refusals plus 100 admissions that fill the kernel up to N.
  for (let i = N - 100; i < N; i++) batch.add(ok(i), { id: hid('fact', i) })
  const r = k.admitBatch(batch)
  t.is(r.admitted, 100)
  t.is(r.refused, batchRefusals)
  admitted += 100
  t.is(admitted, N)
  // Full: M more are CAUSAL_HORIZON_EXCEEDED.
  for (let j = 0; j < M; j++) t.is(codeOf(t.throws(() => k.admit(ok(50_000 + j)))), 'CAUSAL_HORIZON_EXCEEDED')

  const s = k.metrics()
  const d = s.domains[0]!
  t.is(d.tenant, null)
  t.is(d.admitted, N)
  const expected: Record<string, number> = { CAUSAL_HORIZON_EXCEEDED: M }
  // single refusals: M*6 spread over 6 codes = M each; batched: another M each
  for (const code of Object.keys(refusals)) expected[code] = 2 * M
  for (const [code, n] of Object.entries(d.refused)) t.is(n, expected[code] ?? 0, code)
  t.deepEqual(k.stats.rejected, d.refused, 'the snapshot and kernel.stats agree')
  // per member: every admitted fact addressed both; refusals by the member that decided
  t.deepEqual(
    s.members.map((m) => [m.member, m.admitted, m.refused]),
    [
      ['supply', N, { INVARIANT_VIOLATION: 2 * M, MALFORMED_FACT: 2 * M, DUPLICATE_ELEMENT: 0 }],
      ['seats', N, { INVARIANT_VIOLATION: 0, MALFORMED_FACT: 0, DUPLICATE_ELEMENT: 2 * M }],
    ],
  )
  // batch sizes and times: one call of (refusals + 100) facts
  t.is(s.batchFacts.count, 1)
  t.is(s.batchFacts.sum, batchRefusals + 100)
  t.is(s.batchNs.count, 1)
  // latency: one single admission call in 64 timed (admitted or refused)
  const singleCalls = N - 100 + M * 6 + M
  t.is(s.admitNs.count, Math.floor(singleCalls / 64))

  // The same numbers in the Prometheus exposition.
  const registry = new Registry()
  collectMetrics(k, { registry, name: 'exact' })
  const samples = parseExposition(await registry.metrics())
  t.is(value(samples, 'ctfs_facts_admitted_total', { kernel: 'exact' }), N)
  for (const [code, n] of Object.entries(d.refused)) {
    if (code !== 'BUSY') t.is(value(samples, 'ctfs_facts_refused_total', { kernel: 'exact', code }), n, code)
  }
  t.is(value(samples, 'ctfs_member_facts_refused_total', { kernel: 'exact', member: 'seats', code: 'DUPLICATE_ELEMENT' }), 2 * M)
  t.is(value(samples, 'ctfs_member_facts_admitted_total', { kernel: 'exact', member: 'supply' }), N)
  t.is(value(samples, 'ctfs_admission_latency_seconds_count', { kernel: 'exact' }), Math.floor(singleCalls / 64))
  t.is(value(samples, 'ctfs_admit_batch_duration_seconds_count', { kernel: 'exact' }), 1)
})

test('tenants: each tenant its own admitted and refused counters, in the snapshot and the exposition', async (t) => {
  const supply = invariants.totalSupply({ initial: 10n, min: 0n })
  const k = new Kernel({ invariant: supply })
  const plan: Array<[string, number, number]> = [
    ['acme', 30, 2],
    ['globex', 5, 0],
    ['initech', 0, 4],
  ]
  for (const [name, n, m] of plan) {
    const d = k.tenant(name)
    for (let i = 0; i < n; i++) d.admit(supply.delta(1n))
    for (let i = 0; i < m; i++) t.is(codeOf(t.throws(() => d.admit(supply.delta(-1000n)))), 'INVARIANT_VIOLATION')
  }
  k.admit(supply.delta(1n))
  const s = k.metrics()
  t.deepEqual(
    s.domains.map((d) => [d.tenant, d.admitted, d.refused.INVARIANT_VIOLATION]),
    [[null, 1, 0], ...plan],
  )
  const registry = new Registry()
  collectMetrics(k, { registry, name: 't' })
  const samples = parseExposition(await registry.metrics())
  t.is(value(samples, 'ctfs_facts_admitted_total', { kernel: 't' }), 1)
  t.is(value(samples, 'ctfs_tenants', { kernel: 't' }), 3)
  for (const [name, n, m] of plan) {
    t.is(value(samples, 'ctfs_facts_admitted_total', { kernel: 't', tenant: name }), n)
    // a tenant exports only the codes it refused (low cardinality)
    t.is(value(samples, 'ctfs_facts_refused_total', { kernel: 't', tenant: name, code: 'INVARIANT_VIOLATION' }), m > 0 ? m : undefined)
    t.is(value(samples, 'ctfs_facts_refused_total', { kernel: 't', tenant: name, code: 'DUPLICATE_FACT' }), undefined)
  }
})

test('single admissions are timed one call in 64, every batch call is timed and sized', (t) => {
  const supply = invariants.totalSupply()
  const k = new Kernel({ invariant: supply })
  for (let i = 0; i < 64 * 50; i++) k.admit(supply.delta(1n))
  let s = k.metrics()
  t.is(s.sampleEvery, 64)
  t.is(s.admitNs.count, 50)
  t.true(s.admitNs.sum > 0)
  t.is(s.admitNs.buckets.reduce((a, b) => a + b, 0), 50)
  for (const size of [1, 10, 1000]) {
    const b = new FactBatch()
    for (let i = 0; i < size; i++) b.add(supply.delta(1n))
    k.admitBatch(b)
  }
  s = k.metrics()
  t.is(s.batchFacts.count, 3)
  t.is(s.batchFacts.sum, 1011)
  // 1 <= 2^0, 10 <= 2^4, 1000 <= 2^10
  t.deepEqual(
    s.batchFacts.buckets.flatMap((n, i) => (n > 0 ? [[i, n]] : [])),
    [
      [0, 1],
      [4, 1],
      [10, 1],
    ],
  )
  t.is(s.admitNs.count, 50, 'batch records are not single admissions')
  t.is(s.batchNs.count, 3)
  t.true(s.batchNs.sum > 0)
  // tenants share the kernel's call sampler; their histograms merge into the kernel's
  const d = k.tenant('t')
  for (let i = 0; i < 64; i++) d.admit(supply.delta(1n))
  t.is(k.metrics().admitNs.count, 51)
  t.is(s.wal, null)
  t.is(s.escrow, null)
  t.is(s.sync, null)
})

test('durable kernel: group commits, fsync and durable-ack latency, queue, checkpoint and recovery', async (t) => {
  const dir = tempDir(t)
  const supply = invariants.totalSupply()
  const k = await DurableKernel.open({ dir, invariant: supply })
  const ps: Promise<unknown>[] = []
  for (let i = 0; i < 2_000; i++) ps.push(k.admitDurable(supply.delta(1n)))
  await Promise.all(ps)
  await k.checkpoint()
  for (let i = 0; i < 300; i++) await k.admitDurable(supply.delta(1n))
  const info = k.durability
  const w = k.metrics().wal!
  t.truthy(w)
  t.is(w.backend, info.backend)
  t.is(w.durableSeq, 2_300)
  t.is(w.appendedSeq, 2_300)
  t.is(w.groupCommits, info.batches)
  t.is(w.fsyncs, info.fsyncs)
  t.is(w.groupRecords.count, info.batches, 'one group-size observation per group commit')
  t.is(w.groupRecords.sum, info.recordsWritten)
  t.is(w.groupBytes.sum, info.bytesWritten)
  t.is(w.syncNs.count, info.fsyncs - 2 * w.segmentsCreated, 'one sync timing per durable write')
  if (w.backend === 'portable') t.is(w.writeNs.count, w.syncNs.count)
  else t.is(w.writeNs.count, 0)
  t.true(w.ackNs.count >= 1 && w.ackNs.count <= Math.ceil(2_300 / 64))
  t.is(w.queueBytes, 0)
  t.is(w.checkpoints, 1)
  t.is(w.checkpointSeq, 2_000)
  t.true(w.checkpointBytesLast > 2_000 * 32, 'a checkpoint holds every id')
  t.is(w.checkpointBytesTotal, w.checkpointBytesLast)
  t.is(w.checkpointNs.count, 1)
  t.true(w.recoveryNs > 0)
  t.is(w.factsReplayed, 0)
  await k.close()
  // closed: the log section is gone, the counters remain
  const closed = k.metrics()
  t.true(closed.closed)
  t.is(closed.wal, null)
  t.is(closed.domains[0]!.admitted, 2_300)
  t.is(codeOf(t.throws(() => k.admit(supply.delta(1n)))), 'WAL_CLOSED')
  t.is(k.metrics().domains[0]!.refused.WAL_CLOSED, 1)

  const k2 = await DurableKernel.open({ dir, invariant: supply })
  const w2 = k2.metrics().wal!
  t.is(w2.factsReplayed, 300, 'recovery replays what the checkpoint does not cover')
  t.is(w2.checkpointSeq, 2_000)
  t.true(w2.recoveryNs > 0)
  t.is(k2.metrics().domains[0]!.admitted, 2_300)
  await k2.close()
})

test('replicas: per-peer frames and bytes, dropped and unauthenticated frames, causal buffer, anti-entropy, quotas', async (t) => {
  const key = new Uint8Array(randomBytes(32))
  const mk = (local: bigint) => {
    const k = new Kernel({ invariant: invariants.totalSupply({ initial: 100n, min: 0n }), replica: { nodes: [1n, 2n], local } })
    return { k, s: k.replica!.sync({ key, epoch: 1, antiEntropyMs: 10 }) }
  }
  const a = mk(1n)
  const b = mk(2n)
  for (let i = 0; i < 20; i++) a.k.admit(a.k.invariant.delta(-1n))
  t.is(codeOf(t.throws(() => a.k.admit(a.k.invariant.delta(-1000n)))), 'INSUFFICIENT_QUOTA')
  // deliver a's push and the anti-entropy rounds both ways
  let now = 1000
  for (let round = 0; round < 5; round++) {
    now += 20
    let q = [...a.s.tick(now).frames, ...b.s.tick(now).frames]
    while (q.length > 0) q = q.flatMap((f) => (f.to === 2n ? b : a).s.receive(f.data, now).frames)
  }
  // a frame under another key: dropped as AUTH_FAILED, counted
  const stranger = new Kernel({ invariant: invariants.totalSupply({ initial: 100n, min: 0n }), replica: { nodes: [1n, 2n], local: 1n } })
  const forged = stranger.replica!.sync({ key: new Uint8Array(32), epoch: 1 }).tick(now).frames[0]!
  t.is(b.s.receive(forged.data, now).dropped?.code, 'AUTH_FAILED')
  t.is(b.s.receive(new Uint8Array([1, 2, 3]), now).dropped?.code, 'MALFORMED_FRAME')

  const ma = a.k.metrics()
  const mb = b.k.metrics()
  const sa = a.s.stats
  const sb = b.s.stats
  t.truthy(ma.sync && mb.sync)
  t.is(mb.domains[0]!.admitted, 20)
  t.is(mb.sync!.factsAdmitted, 20)
  t.deepEqual(mb.sync!.dropped, { AUTH_FAILED: 1, MALFORMED_FRAME: 1 })
  t.deepEqual(mb.sync!.dropped, sb.dropped)
  for (const [m, s] of [
    [ma, sa],
    [mb, sb],
  ] as const) {
    t.deepEqual(
      m.sync!.peers.map((p) => [p.peer, p.up, p.synced, p.framesIn, p.bytesIn, p.framesOut, p.bytesOut, p.factsIn, p.factsOut]),
      s.peers.map((p) => [p.peer, p.up, p.synced, p.framesIn, p.bytesIn, p.framesOut, p.bytesOut, p.factsIn, p.factsOut]),
    )
    t.is(m.sync!.probesSent, s.probesSent)
    t.is(m.sync!.buffered, s.buffered)
    t.is(m.sync!.bufferEvicted, s.bufferEvicted)
    t.is(m.sync!.antiEntropyBytesSent, s.antiEntropyBytesSent)
  }
  t.true(ma.sync!.peers[0]!.bytesOut > 0 && ma.sync!.peers[0]!.framesOut > 0)
  t.deepEqual(mb.sync!.origins, [{ node: 1n, facts: 20 }])
  // escrow: a's share of the 100 down-headroom is 50, 20 consumed; one refusal counted
  const pool = ma.escrow!.find((p) => p.side === 'down')!
  t.is(pool.quota, 50)
  t.is(pool.consumed, 20)
  t.is(ma.domains[0]!.refused.INSUFFICIENT_QUOTA, 1)

  const registry = new Registry()
  collectMetrics({ a: a.k, b: b.k }, { registry })
  const samples = parseExposition(await registry.metrics())
  t.is(value(samples, 'ctfs_sync_frames_unauthenticated_total', { kernel: 'b' }), 1)
  t.is(value(samples, 'ctfs_sync_frames_dropped_total', { kernel: 'b', code: 'MALFORMED_FRAME' }), 1)
  t.is(value(samples, 'ctfs_sync_frames_dropped_total', { kernel: 'b', code: 'REPLAYED_FRAME' }), 0)
  t.is(value(samples, 'ctfs_sync_sent_bytes_total', { kernel: 'a', peer: '2' }), sa.peers[0]!.bytesOut)
  t.is(value(samples, 'ctfs_sync_peer_up', { kernel: 'a', peer: '2' }), 1)
  t.is(value(samples, 'ctfs_escrow_quota_available', { kernel: 'a', member: '0', side: 'down' }), 30)
  t.is(value(samples, 'ctfs_sync_origin_facts', { kernel: 'b', origin: '1' }), 20)
  a.s.setPeerUp(2n, false)
  t.is(value(parseExposition(await registry.metrics()), 'ctfs_sync_peer_up', { kernel: 'a', peer: '2' }), 0)
})

test('histograms convert to seconds without losing counts: every le is an exact cumulative count', async (t) => {
  const supply = invariants.totalSupply()
  const k = new Kernel({ invariant: supply })
  for (let i = 0; i < 64 * 200; i++) k.admit(supply.delta(1n))
  const registry = new Registry()
  collectMetrics(k, { registry })
  const snap: MetricsSnapshot = k.metrics()
  const samples = parseExposition(await registry.metrics())
  const buckets = samples.filter((s) => s.name === 'ctfs_admission_latency_seconds_bucket')
  t.true(buckets.length > 20)
  for (const b of buckets) {
    const le = b.labels.le as string
    if (le === '+Inf') {
      t.is(b.value, snap.admitNs.count)
      continue
    }
    const k2 = Math.round(Math.log2(Number(le) * 1e9))
    t.is(2 ** k2 / 1e9, Number(le), 'le is a power of two of nanoseconds')
    const cum = snap.admitNs.buckets.slice(0, k2 + 1).reduce((a, n) => a + n, 0)
    t.is(b.value, cum, `le=${le}`)
  }
  t.is(value(samples, 'ctfs_admission_latency_seconds_count', { kernel: 'default' }), 200)
  t.is(value(samples, 'ctfs_admission_latency_seconds_sum', { kernel: 'default' }), snap.admitNs.sum / 1e9)
})

test('one snapshot per kernel per scrape, shared by every ctfs metric', async (t) => {
  const supply = invariants.totalSupply()
  const a = new Kernel({ invariant: supply })
  const b = new Kernel({ invariant: supply })
  const calls = { a: 0, b: 0 }
  for (const [name, k] of [
    ['a', a],
    ['b', b],
  ] as const) {
    const orig = k.metrics.bind(k)
    k.metrics = () => {
      calls[name]++
      return orig()
    }
  }
  const registry = new Registry()
  collectMetrics({ a, b }, { registry })
  t.deepEqual(calls, { a: 1, b: 1 }, 'one read at registration (which families to register)')
  calls.a = calls.b = 0
  await registry.metrics()
  t.deepEqual(calls, { a: 1, b: 1 })
  await registry.metrics()
  t.deepEqual(calls, { a: 2, b: 2 })
  await registry.getMetricsAsJSON()
  t.deepEqual(calls, { a: 3, b: 3 })
})

test('collectMetrics: labels, default registry, removal, typed argument errors', async (t) => {
  const supply = invariants.totalSupply()
  const a = new Kernel({ invariant: supply })
  const b = new Kernel({ invariant: supply })
  const registry = new Registry()
  const ca = collectMetrics(a, { registry, name: 'a' })
  t.is(t.throws(() => collectMetrics(b, { registry, name: 'a' }))?.['code' as never] as unknown, 'ERR_INVALID_ARG_VALUE')
  const cb = collectMetrics(b, { registry, name: 'b' })
  t.deepEqual([ca.kernels, cb.kernels], [['a'], ['b']])
  t.truthy(registry.getSingleMetric('ctfs_facts_admitted_total'))
  ca.remove()
  let samples = parseExposition(await registry.metrics())
  t.deepEqual([...new Set(samples.filter((s) => s.name === 'ctfs_facts_admitted_total').map((s) => s.labels.kernel))], ['b'])
  cb.remove()
  cb.remove()
  t.is(registry.getSingleMetric('ctfs_facts_admitted_total'), undefined, 'the last removal unregisters the ctfs metrics')
  t.is(await registry.metrics(), '\n')
  // other metrics of the user's registry are untouched and coexist
  const mine = new (await import('prom-client')).Counter({ name: 'app_requests_total', help: 'x', registers: [registry] })
  mine.inc(3)
  collectMetrics(a, { registry })
  samples = parseExposition(await registry.metrics())
  t.is(value(samples, 'app_requests_total', {}), 3)
  t.is(value(samples, 'ctfs_facts_admitted_total', { kernel: 'default' }), 0)
  // default registry
  const { register } = await import('prom-client')
  const c = collectMetrics(b, { name: 'global' })
  t.is(c.registry as unknown, register as unknown)
  t.true((await register.metrics()).includes('ctfs_facts_admitted_total{kernel="global"} 0'))
  c.remove()
  // typed errors
  t.is(t.throws(() => collectMetrics({} as never, { registry }))?.['code' as never] as unknown, 'ERR_INVALID_ARG_VALUE')
  t.is(t.throws(() => collectMetrics(42 as never, { registry }))?.['code' as never] as unknown, 'ERR_INVALID_ARG_TYPE')
  t.is(t.throws(() => collectMetrics({ x: 1 } as never, { registry }))?.['code' as never] as unknown, 'ERR_INVALID_ARG_TYPE')
  t.is(t.throws(() => collectMetrics(a, { registry, name: 'x', bogus: 1 } as never))?.['code' as never] as unknown, 'ERR_INVALID_ARG_VALUE')
  t.is(t.throws(() => collectMetrics(a, { registry: {} as never }))?.['code' as never] as unknown, 'ERR_INVALID_ARG_TYPE')
  t.is(t.throws(() => collectMetrics(a, { registry, name: 'bad\nlabel' }))?.['code' as never] as unknown, 'ERR_INVALID_ARG_VALUE')
  // a registry that already holds a foreign metric of a ctfs name is refused, nothing registered
  const clash = new Registry()
  new (await import('prom-client')).Gauge({ name: 'ctfs_tenants', help: 'x', registers: [clash] })
  t.is(t.throws(() => collectMetrics(a, { registry: clash }))?.['code' as never] as unknown, 'ERR_INVALID_ARG_VALUE')
  t.is(clash.getSingleMetric('ctfs_facts_admitted_total'), undefined)
  t.true(METRIC_NAMES.every((n) => n.startsWith('ctfs_')))
})

test('prom-client features: default labels, OpenMetrics content type, Registry.merge', async (t) => {
  const supply = invariants.totalSupply({ initial: 10n, min: 0n })
  const k = new Kernel({ invariant: supply })
  k.admit(supply.delta(1n))
  t.throws(() => k.admit(supply.delta(-100n)))
  const registry = new Registry()
  registry.setDefaultLabels({ app: 'shop' })
  const c = collectMetrics(k, { registry, name: 'om' })
  let samples = parseExposition(await registry.metrics())
  t.is(value(samples, 'ctfs_facts_admitted_total', { kernel: 'om', app: 'shop' }), 1)
  t.is(value(samples, 'ctfs_facts_refused_total', { kernel: 'om', app: 'shop', code: 'INVARIANT_VIOLATION' }), 1)
  const merged = Registry.merge([registry, new Registry()])
  samples = parseExposition(await merged.metrics())
  t.is(value(samples, 'ctfs_facts_admitted_total', { kernel: 'om' }), 1, 'a merged registry has no default labels')
  registry.setContentType(Registry.OPENMETRICS_CONTENT_TYPE as never)
  const om = await registry.metrics()
  t.true(om.includes('# TYPE ctfs_facts_admitted counter'), 'OpenMetrics names the counter family without _total')
  t.true(om.includes('ctfs_facts_admitted_total{kernel="om",app="shop"} 1'))
  t.true(om.includes('ctfs_admission_latency_seconds_bucket{kernel="om",le="+Inf",app="shop"}'))
  t.true(om.endsWith('# EOF\n'))
  c.remove()
  t.is(registry.getSingleMetric('ctfs_facts_admitted_total'), undefined, 'removed after OpenMetrics renamed the counters')
})

test('MetricsRegistry (no prom-client) renders exactly the text prom-client renders', async (t) => {
  const supply = invariants.totalSupply({ initial: 10n, min: 0n })
  const k = new Kernel({ invariant: supply })
  for (let i = 0; i < 200; i++) k.admit(supply.delta(1n))
  t.throws(() => k.admit(supply.delta(-1000n)))
  k.tenant('a "quoted" \\ tenant').admit(supply.delta(1n))
  const dir = tempDir(t)
  const d = await DurableKernel.open({ dir, invariant: supply })
  t.teardown(() => d.close())
  await d.admitDurable(supply.delta(1n))
  const prom = new Registry()
  const own = new MetricsRegistry()
  collectMetrics({ mem: k, disk: d }, { registry: prom })
  collectMetrics({ mem: k, disk: d }, { registry: own })
  const a = await prom.metrics()
  const b = await own.metrics()
  t.is(b, a)
  t.true(b.includes('tenant="a \\"quoted\\" \\\\ tenant"'), 'label values escaped')
  t.is(own.contentType, prom.contentType)
  // foreign metric objects work too, and removal unregisters
  const c = collectMetrics(k, { registry: new MetricsRegistry(), name: 'x' })
  t.true((await c.registry.metrics()).includes('ctfs_facts_admitted_total{kernel="x"} 200'))
  c.remove()
  t.is(await c.registry.metrics(), '')
})

/** GET a URL on 127.0.0.1. */
function get(url: string, method = 'GET'): Promise<{ status: number; type: string | undefined; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (body += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'], body }))
    })
    req.on('error', reject)
    req.end()
  })
}

test('serveMetrics: /metrics on 127.0.0.1 (random port), 404 elsewhere, 405 for POST; parseMetricsAddress', async (t) => {
  const supply = invariants.totalSupply()
  const k = new Kernel({ invariant: supply })
  k.admit(supply.delta(1n))
  const registry = new Registry()
  collectMetrics(k, { registry, name: 'served' })
  const srv = await serveMetrics({ port: 0, registry })
  t.teardown(() => srv.close())
  t.is(srv.host, '127.0.0.1')
  t.true(srv.port > 0)
  t.is(srv.url, `http://127.0.0.1:${srv.port}/metrics`)
  const r = await get(srv.url)
  t.is(r.status, 200)
  t.is(r.type, registry.contentType)
  t.true(r.body.includes('ctfs_facts_admitted_total{kernel="served"} 1'))
  t.is((await get(`http://127.0.0.1:${srv.port}/other`)).status, 404)
  t.is((await get(srv.url, 'POST')).status, 405)
  const head = await get(srv.url, 'HEAD')
  t.is(head.status, 200)
  t.is(head.body, '')
  t.deepEqual(parseMetricsAddress('127.0.0.1:9464'), { host: '127.0.0.1', port: 9464 })
  t.deepEqual(parseMetricsAddress('[::1]:9464'), { host: '::1', port: 9464 })
  t.deepEqual(parseMetricsAddress('0.0.0.0:1'), { host: '0.0.0.0', port: 1 })
  t.deepEqual(parseMetricsAddress('9464'), { host: '127.0.0.1', port: 9464 })
  for (const bad of ['', 'host', 'host:', ':80', '1.2.3.4:70000', 'a b:1']) {
    t.is(t.throws(() => parseMetricsAddress(bad))?.['code' as never] as unknown, 'ERR_INVALID_ARG_VALUE', bad)
  }
  await t.throwsAsync(serveMetrics({ port: 70000, registry }), { code: 'ERR_OUT_OF_RANGE' })
  await t.throwsAsync(serveMetrics({ port: 0, registry, bogus: 1 } as never), { code: 'ERR_INVALID_ARG_VALUE' })
})

test("'ctfs' never loads prom-client; 'ctfs/prometheus' is the package's subpath export", (t) => {
  // A child process importing the built package by name (the exports map).
  const script = `
    import { createRequire } from 'node:module'
    const require = createRequire(import.meta.url)
    const loaded = () => Object.keys(require.cache).some((p) => p.includes('/prom-client/'))
    const ctfs = await import('ctfs')
    const k = new ctfs.Kernel({ invariant: ctfs.invariants.totalSupply() })
    k.admit(ctfs.invariants.totalSupply().delta(1n))
    k.metrics()
    const before = loaded()
    const p = await import('ctfs/prometheus')
    const afterImport = loaded()
    const { Registry } = await import('prom-client')
    p.collectMetrics(k, { registry: new Registry() })
    console.log(JSON.stringify({ before, afterImport, fn: typeof p.collectMetrics, serve: typeof p.serveMetrics }))
  `
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8' })
  t.is(r.status, 0, r.stderr)
  t.deepEqual(JSON.parse(r.stdout.trim()), { before: false, afterImport: false, fn: 'function', serve: 'function' })
})

test("a snapshot from inside the kernel's own admission is BUSY; the kernel's counters are unchanged by it", (t) => {
  let k: Kernel<InvariantSpec> | undefined
  let inner: unknown
  const inv = invariants.custom({
    name: 'probe',
    class: 'commutativeMonoid',
    initial: new Uint8Array(1),
    apply(_payload, state) {
      try {
        k!.metrics()
      } catch (e) {
        inner = e
      }
      state.setUint8(0, state.getUint8(0) + 1)
    },
  })
  k = new Kernel({ invariant: inv as InvariantSpec })
  k.admit(new Uint8Array(1))
  t.is(codeOf(inner), 'BUSY')
  t.is(k.metrics().domains[0]!.admitted, 1)
})

test('ctfs node: --metrics takes a host:port, a bad one is a usage error', async (t) => {
  const { parseNodeArgs, NODE_USAGE } = await import('../src/cli/node.ts')
  const { writeKey } = await import('../src/cli/local-cluster.ts')
  const keyFile = writeKey(tempDir(t))
  const base = ['--id', '1', '--peers', '2@127.0.0.1:7002', '--invariant', 'gCounter', '--key-file', keyFile]
  const cfg = parseNodeArgs([...base, '--metrics', '127.0.0.1:9464'])
  t.deepEqual('metrics' in cfg ? cfg.metrics : undefined, { host: '127.0.0.1', port: 9464 })
  const off = parseNodeArgs(base)
  t.is('metrics' in off ? off.metrics : undefined, null, 'off by default')
  t.throws(() => parseNodeArgs([...base, '--metrics', 'nope']), { message: /--metrics/ })
  t.true(NODE_USAGE.includes('--metrics HOST:PORT'))
})
