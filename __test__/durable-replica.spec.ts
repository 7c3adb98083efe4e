// Durable replicated kernels: facts from peers go through the log with their
// origin, escrow quotas and grants are persisted, a restart resumes the
// replica in a new epoch, and no quota is created by a restart.
import { randomBytes } from 'node:crypto'

import test from 'ava'

import { DurableKernel, FactBatch, Kernel, invariants, type OutgoingFrame, type ReplicaSync } from '../src/index.ts'
import { tempDir } from './helpers.ts'

const KEY = new Uint8Array(randomBytes(32))
const nodes = [1n, 2n]
const supply = () => invariants.totalSupply({ initial: 1000n, min: 0n })

type K = DurableKernel<ReturnType<typeof supply>>

async function open(dir: string, local: bigint): Promise<{ k: K; s: ReplicaSync }> {
  const k = await DurableKernel.open({ dir, invariant: supply(), replica: { nodes, local } })
  const s = k.replica!.sync({ key: KEY, antiEntropyMs: 20 })
  return { k, s }
}

/** Moves frames between two replicas until quiet (ticks included). */
async function settle(a: { s: ReplicaSync }, b: { s: ReplicaSync }, rounds = 30) {
  let now = Date.now()
  for (let r = 0; r < rounds; r++) {
    now += 25
    let q: OutgoingFrame[] = [...a.s.tick(now).frames, ...b.s.tick(now).frames]
    while (q.length > 0) {
      const next: OutgoingFrame[] = []
      for (const f of q) next.push(...(f.to === 1n ? a : b).s.receive(f.data, now).frames)
      q = next
    }
    await new Promise((r) => setTimeout(r, 2)) // let fdatasync complete: local facts are pushed once durable
  }
}

test('durable replicas converge, recover their version vector in a new epoch, and keep their quota', async (t) => {
  const da = tempDir(t)
  const db = tempDir(t)
  let a = await open(da, 1n)
  const b = await open(db, 2n)
  t.is(a.k.replica!.quotas('down')!.find((q) => q.node === 1n)!.available, 500n)
  for (let i = 0; i < 20; i++) await a.k.admitDurable(a.k.invariant.delta(-10n))
  for (let i = 0; i < 5; i++) await b.k.admitDurable(b.k.invariant.delta(-7n))
  await settle(a, b)
  t.is(a.k.read().balance, 1000n - 200n - 35n)
  t.deepEqual(a.s.digests, b.s.digests)
  const epochBefore = a.s.epoch
  t.is(epochBefore, 1, 'a new directory starts at epoch 1 (the log chooses, not Date.now())')
  const vvBefore = a.s.stats.versionVector
  await a.k.close()

  a = await open(da, 1n)
  t.true(a.s.epoch > epochBefore, 'a restart starts a new epoch')
  t.deepEqual(a.s.stats.versionVector, vvBefore, 'the version vector is recovered from the log')
  t.is(a.k.read().balance, 765n)
  // the quota spent before the restart stays spent: 500 - 200
  t.is(a.k.replica!.quotas('down')!.find((q) => q.node === 1n)!.available, 300n)
  await t.throwsAsync(a.k.admitDurable(a.k.invariant.delta(-301n)), { code: 'INSUFFICIENT_QUOTA' })
  await settle(a, b)
  t.deepEqual(a.s.digests, b.s.digests, 'nothing to exchange after the restart')
  t.is(a.s.stats.factsAdmitted, 0)
  await a.k.checkpoint()
  await a.k.close()
  a = await open(da, 1n)
  t.deepEqual(a.s.stats.versionVector, vvBefore, 'and from a checkpoint')
  t.is(a.k.replica!.quotas('down')!.find((q) => q.node === 1n)!.available, 300n)
  await a.k.close()
  await b.k.close()
})

test('a quota grant leaves only after its debit is durable, and survives the granter restarting', async (t) => {
  const da = tempDir(t)
  const db = tempDir(t)
  let a = await open(da, 1n)
  const b = await open(db, 2n)
  // b needs 200 more: it asks a for the refill amount (half its initial share, 250)
  const req = b.s.needQuota(200n, 'down')
  t.is(req.frames.length, 1)
  const reply = a.s.receive(req.frames[0]!.data)
  // the grant is held until the debit record is durable, then released by a tick
  let grants = reply.frames
  for (let i = 0; i < 50 && grants.length === 0; i++) {
    await new Promise((r) => setTimeout(r, 2))
    grants = a.s.tick().frames.filter((f) => f.to === 2n && f.data[3] === 6)
  }
  t.is(grants.length, 1)
  const got = b.s.receive(grants[0]!.data)
  t.deepEqual(
    got.events.filter((e) => e.type === 'quotaReceived').map((e) => (e as { amount: bigint }).amount),
    [250n],
  )
  const aShare = () => a.k.replica!.quotas('down')!.find((q) => q.node === 1n)!.available
  t.is(aShare(), 250n)
  await a.k.close()
  a = await open(da, 1n)
  t.is(aShare(), 250n, 'the granted quota did not come back with the restart')
  t.is(b.k.replica!.quotas('down')!.find((q) => q.node === 2n)!.available, 750n)
  await a.k.close()
  await b.k.close()
})

test('durable tenants: creation and facts are logged, replayed and checkpointed', async (t) => {
  const dir = tempDir(t)
  const inv = () => invariants.gCounter()
  let k = await DurableKernel.open({ dir, invariant: inv() })
  const acme = k.tenant('acme')
  const zeta = k.tenant('zeta')
  const x = acme.admit(acme.invariant.increment(5n))
  acme.admit(acme.invariant.increment(2n), { deps: [x] })
  zeta.admit(zeta.invariant.increment(9n))
  k.admit(k.invariant.increment(1n))
  await k.flush()
  await k.close()

  k = await DurableKernel.open({ dir, invariant: inv() })
  t.is(k.tenant('acme').read().sum, 7n)
  t.is(k.tenant('zeta').read().sum, 9n)
  t.is(k.read().sum, 1n)
  t.is(k.tenant('acme').contains(x), 'yes')
  t.is(k.contains(x), 'no', 'a tenant fact stays in its tenant')
  await k.checkpoint()
  k.tenant('acme').admit(k.invariant.increment(1n))
  k.tenant('new').admit(k.invariant.increment(4n))
  await k.flush()
  await k.close()

  k = await DurableKernel.open({ dir, invariant: inv() })
  t.is(k.tenant('acme').read().sum, 8n)
  t.is(k.tenant('zeta').read().sum, 9n)
  t.is(k.tenant('new').read().sum, 4n)
  t.is(k.recovery.factsReplayed, 3, 'after the checkpoint only the later records were replayed: two facts and a tenant creation')
  await k.close()
})

test('a durable replica whose log queue is full defers facts from peers (BUFFER_FULL) instead of skipping them, and converges', async (t) => {
  const g = () => invariants.gCounter()
  const a = new Kernel({ invariant: g(), replica: { nodes, local: 1n } })
  const sa = a.replica!.sync({ key: KEY, epoch: 1, antiEntropyMs: 20 })
  sa.setPeerUp(2n, false) // b is away while a admits
  for (let i = 0; i < 20; i++) {
    const batch = new FactBatch()
    for (let j = 0; j < 1000; j++) batch.add(a.invariant.increment(1n))
    a.admitBatch(batch)
  }
  sa.flush()
  sa.setPeerUp(2n, true)
  // b's log queue holds 64 KiB: one anti-entropy round of 20,000 facts (about 1.8 MB to log) cannot fit
  const b = await DurableKernel.open({ dir: tempDir(t), invariant: g(), replica: { nodes, local: 2n }, bufferBytes: 64 * 1024 })
  const sb = b.replica!.sync({ key: KEY, antiEntropyMs: 20 })
  const pair = { s: sa }
  for (let round = 0; round < 1000 && b.frontier.count < 20_000; round++) await settle(pair, { s: sb }, 1)
  t.is(b.frontier.count, 20_000)
  t.deepEqual(sb.digests, sa.digests)
  t.true(sb.stats.factsDeferred > 0, 'the log refused some facts for a while')
  t.is(sb.stats.remoteRefused, 0)
  await b.close()
})
