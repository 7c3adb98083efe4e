// DurableKernel: round trips, acknowledgements, group commit, back-pressure,
// locking, checkpoints, corruption and torn tails, inspect(), and process
// lifetime. Every test runs for both write backends.
import { spawn } from 'node:child_process'
import { cpSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import test, { type ExecutionContext } from 'ava'

import { CtfsError, DurableKernel, Kernel, inspect, invariants, type DurabilityBackend, type FactId } from '../src/index.ts'
import { hid, prng, snapshot, tempDir } from './helpers.ts'

const here = dirname(fileURLToPath(import.meta.url))
const BACKENDS = ['portable', 'io_uring'] as const
const supply = invariants.totalSupply({ initial: 0n })

const tmp = (t: ExecutionContext, prefix = 'ctfs-durable-'): string => tempDir(t, prefix)

function copyDir(t: ExecutionContext, src: string): string {
  const d = tmp(t, 'ctfs-durable-copy-')
  cpSync(src, d, { recursive: true })
  return d
}

const segments = (dir: string): string[] => readdirSync(dir).filter((f) => /^wal-\d{20}\.log$/.test(f)).sort()
const checkpoints = (dir: string): string[] => readdirSync(dir).filter((f) => /^ckpt-\d{20}\.ctfs$/.test(f)).sort()

/** Bytes of a segment's header: it carries the configuration fingerprint, so its length varies. */
const headerLen = (file: string): number => readFileSync(file).readUInt32LE(12)

function flipBit(file: string, offset: number, bit: number): void {
  const b = readFileSync(file)
  b[offset] = (b[offset] as number) ^ (1 << bit)
  writeFileSync(file, b)
}

const open = (dir: string, backend: DurabilityBackend, extra: Record<string, unknown> = {}) =>
  DurableKernel.open({ dir, invariant: supply, backend, ...extra })

type DK = Awaited<ReturnType<typeof open>>

/** Admits facts from..to-1 of stream `tag`: fact i adds i+1 and depends on fact i-1. */
function chain(k: DK, tag: string, from: number, to: number): void {
  for (let i = from; i < to; i++) k.admit(supply.delta(BigInt(i + 1)), { id: hid(tag, i), deps: i > 0 ? [hid(tag, i - 1)] : [] })
}

/** The same facts in a volatile in-memory kernel: the state every recovery must reproduce exactly. */
function reference(tag: string, n: number) {
  const k = new Kernel({ invariant: supply })
  for (let i = 0; i < n; i++) k.admit(supply.delta(BigInt(i + 1)), { id: hid(tag, i), deps: i > 0 ? [hid(tag, i - 1)] : [] })
  return k
}

const triangle = (n: number): bigint => (BigInt(n) * BigInt(n + 1)) / 2n

/** Asserts that `k` holds exactly facts 0..n-1 of `tag` (state, frontier, membership). */
function assertPrefix(t: ExecutionContext, k: DK, tag: string, n: number): void {
  t.is(k.stats.admitted, n)
  t.is(supply.read(k.state).balance, triangle(n))
  t.deepEqual(snapshot(k), snapshot(reference(tag, n)))
  for (let i = 0; i < n; i++) if (k.contains(hid(tag, i)) !== 'yes') t.fail(`fact ${i} missing`)
  t.is(k.contains(hid(tag, n)), 'no')
}

/** Builds a directory holding facts 0..n-1 of `tag`, closed. */
async function build(t: ExecutionContext, backend: DurabilityBackend, tag: string, n: number, extra: Record<string, unknown> = {}): Promise<string> {
  const dir = tmp(t)
  const k = await open(dir, backend, extra)
  chain(k, tag, 0, n)
  await k.flush()
  await k.close()
  return dir
}

function codeOf(e: unknown): string | undefined {
  return e instanceof CtfsError ? e.code : undefined
}

for (const backend of BACKENDS) {
  const name = (s: string): string => `${backend}: ${s}`

  test(name('forced backend opens (or BACKEND_UNAVAILABLE) and reports itself'), async (t) => {
    const dir = tmp(t)
    try {
      const k = await open(dir, backend)
      t.is(k.durability.backend, backend)
      t.is(k.durability.backendNote, null)
      await k.close()
    } catch (e) {
      t.is(backend, 'io_uring')
      t.is(codeOf(e), 'BACKEND_UNAVAILABLE')
    }
  })

  test(name('round trip: reopen gives identical state, frontier and membership'), async (t) => {
    const dir = tmp(t)
    let k = await open(dir, backend)
    t.is(k.recovery.lastSeq, 0)
    chain(k, 'rt', 0, 500)
    const ids = await Promise.all([0, 1, 2].map((j) => k.admitDurable(supply.delta(1000n), { id: hid('rt-extra', j) })))
    await k.close()
    const before = snapshot(k)
    k = await open(dir, backend)
    t.deepEqual(snapshot(k), before)
    t.deepEqual(k.frontier.recent, (() => {
      const r = reference('rt', 500)
      for (let j = 0; j < 3; j++) r.admit(supply.delta(1000n), { id: hid('rt-extra', j) })
      return r.frontier.recent
    })())
    t.is(k.stats.admitted, 503)
    t.is(supply.read(k.state).balance, triangle(500) + 3000n)
    for (const id of ids) t.is(k.contains(id), 'yes')
    const r = k.recovery
    t.like(r, { checkpointSeq: 0, factsReplayed: 503, firstSeq: 1, lastSeq: 503, bytesCut: 0, tornTailAt: null, truncatedAt: null, segments: 1 })
    t.deepEqual(r.skippedCheckpoints, [])
    t.is(k.durability.durableSeq, 503)
    t.is(k.durability.appendedSeq, 503)
    // appends continue after the recovered sequence
    const h = k.admitAsync(supply.delta(1n))
    t.is(h.seq, 504)
    await h.durable
    await k.close()
    k = await open(dir, backend)
    t.is(k.stats.admitted, 504)
    await k.close()
  })

  test(name('round trip across many segments (segmentBytes = 4096)'), async (t) => {
    const dir = await build(t, backend, 'seg', 2000, { segmentBytes: 4096 })
    t.true(segments(dir).length > 40)
    const k = await open(dir, backend, { segmentBytes: 4096 })
    assertPrefix(t, k, 'seg', 2000)
    t.is(k.recovery.segments, segments(dir).length)
    await k.close()
  })

  test(name('admitDurable and admitAsync resolve only once durableSeq >= seq'), async (t) => {
    const dir = tmp(t)
    const k = await open(dir, backend)
    const checks: Array<Promise<void>> = []
    for (let i = 0; i < 2000; i++) {
      if (i % 2 === 0) {
        const h = k.admitAsync(supply.delta(1n))
        t.is(h.seq, i + 1)
        checks.push(
          h.durable.then((id) => {
            t.is(id, h.id)
            t.true(h.isDurable())
            t.true(k.durability.durableSeq >= h.seq, `durable ${k.durability.durableSeq} < seq ${h.seq}`)
          }),
        )
      } else {
        const p = k.admitDurable(supply.delta(1n))
        const seq = k.durability.appendedSeq
        t.is(seq, i + 1)
        checks.push(
          p.then(() => {
            t.true(k.durability.durableSeq >= seq, `durable ${k.durability.durableSeq} < seq ${seq}`)
          }),
        )
      }
      if (i % 97 === 0) await new Promise((r) => setImmediate(r))
    }
    await Promise.all(checks)
    t.is(k.durability.durableSeq, 2000)
    // after resolution the frontier only moves forward
    await k.flush()
    t.true(k.admitAsync(supply.delta(1n)).seq === 2001)
    await k.close()
  })

  test(name('group commit: 10k concurrent admitDurable share far fewer fsyncs'), async (t) => {
    const dir = tmp(t)
    const k = await open(dir, backend)
    const b0 = k.durability.batches
    const f0 = k.durability.fsyncs
    const n = 10_000
    const ps: Array<Promise<FactId>> = []
    const t0 = performance.now()
    for (let i = 0; i < n; i++) ps.push(k.admitDurable(supply.delta(1n), { id: hid('gc', i) }))
    await Promise.all(ps)
    const ms = performance.now() - t0
    const d = k.durability
    const batches = d.batches - b0
    t.true(batches >= 1)
    t.true(batches < n / 10, `${batches} batches for ${n} facts`)
    t.true(d.fsyncs - f0 <= batches + 2)
    t.is(d.durableSeq, n)
    t.log(`${backend}: ${n} facts, ${batches} group commits, ${d.fsyncs - f0} fsyncs, ${(n / batches).toFixed(1)} facts/commit, ${ms.toFixed(1)} ms`)
    await k.close()
  })

  test(name('BUFFER_FULL with a tiny buffer leaves the state unchanged'), async (t) => {
    const dir = tmp(t)
    const k = await open(dir, backend, { bufferBytes: 4096 })
    let full = 0
    let admitted = 0
    for (let i = 0; i < 20_000 && full < 5; i++) {
      const before = snapshot(k)
      const appended = k.durability.appendedSeq
      const id = hid('bf', i)
      try {
        k.admit(supply.delta(7n), { id })
        admitted++
      } catch (e) {
        t.is(codeOf(e), 'BUFFER_FULL')
        full++
        t.deepEqual(snapshot(k), before)
        t.is(k.contains(id), 'no')
        t.is(k.durability.appendedSeq, appended)
      }
    }
    t.true(full > 0, 'expected BUFFER_FULL')
    t.is(k.stats.rejected.BUFFER_FULL, full, 'log refusals are counted like kernel refusals')
    await k.flush()
    // space again once the writer drained
    await k.admitDurable(supply.delta(7n))
    admitted++
    t.is(supply.read(k.state).balance, 7n * BigInt(admitted))
    await k.close()
    const k2 = await open(dir, backend)
    t.is(k2.stats.admitted, admitted)
    t.is(supply.read(k2.state).balance, 7n * BigInt(admitted))
    await k2.close()
    t.log(`${admitted} admitted, ${full} refused with BUFFER_FULL`)
  })

  test(name('after close: WAL_CLOSED; close is idempotent; pending promises resolved'), async (t) => {
    const dir = tmp(t)
    const k = await open(dir, backend)
    const pending = [k.admitDurable(supply.delta(1n)), k.admitDurable(supply.delta(2n))]
    await k.close()
    await Promise.all(pending)
    await k.close()
    for (const fn of [() => k.admit(supply.delta(1n)), () => k.durability, () => k.recovery]) {
      const e = t.throws(fn, { instanceOf: CtfsError })
      t.is(e.code, 'WAL_CLOSED')
    }
    await t.throwsAsync(k.admitDurable(supply.delta(1n)), { instanceOf: CtfsError, code: 'WAL_CLOSED' } as never)
    await t.throwsAsync(k.checkpoint(), { instanceOf: CtfsError })
  })

  test(name('a second open of the same directory fails with IO_ERROR (lock)'), async (t) => {
    const dir = tmp(t)
    const k = await open(dir, backend)
    const e = await t.throwsAsync(open(dir, backend), { instanceOf: CtfsError })
    t.is(e.code, 'IO_ERROR')
    t.log(e.message)
    k.admit(supply.delta(1n))
    await k.close()
    const k2 = await open(dir, backend)
    t.is(k2.stats.admitted, 1)
    await k2.close()
  })

  test(name('checkpoint + reopen: checkpointSeq and factsReplayed'), async (t) => {
    const dir = tmp(t)
    let k = await open(dir, backend)
    chain(k, 'ck', 0, 300)
    t.deepEqual(await k.checkpoint(), { seq: 300 })
    t.is(k.durability.checkpointSeq, 300)
    t.is(k.durability.durableSeq, 300)
    chain(k, 'ck', 300, 340)
    await k.close()
    k = await open(dir, backend)
    t.like(k.recovery, { checkpointSeq: 300, factsReplayed: 40, lastSeq: 340, bytesCut: 0 })
    assertPrefix(t, k, 'ck', 340)
    await k.close()
    // a checkpoint covering everything: nothing to replay
    k = await open(dir, backend)
    await k.checkpoint()
    await k.close()
    k = await open(dir, backend)
    t.like(k.recovery, { checkpointSeq: 340, factsReplayed: 0, lastSeq: 340 })
    assertPrefix(t, k, 'ck', 340)
    await k.close()
  })

  test(name('re-anchoring: checkpoints, more facts, reopen; old segments and checkpoints pruned'), async (t) => {
    const dir = tmp(t)
    const seg = { segmentBytes: 8192 }
    let k = await open(dir, backend, seg)
    let n = 0
    for (let round = 1; round <= 5; round++) {
      chain(k, 'ra', n, n + 400)
      n += 400
      await k.checkpoint()
      chain(k, 'ra', n, n + 50)
      n += 50
      if (round % 2 === 0) {
        await k.close()
        k = await open(dir, backend, seg)
        t.is(k.recovery.checkpointSeq, n - 50)
        t.is(k.recovery.factsReplayed, 50)
        assertPrefix(t, k, 'ra', n)
      }
    }
    await k.close()
    t.true(checkpoints(dir).length <= 2, checkpoints(dir).join(','))
    const firstSeg = Number(segments(dir)[0]!.slice(4, 24))
    t.true(firstSeg > 1, 'segments before the previous checkpoint were deleted')
    k = await open(dir, backend, seg)
    assertPrefix(t, k, 'ra', n)
    t.true(k.recovery.firstSeq > 1)
    await k.close()
  })

  test(name('corrupt newest checkpoint: falls back to the previous one (or full replay), reports it'), async (t) => {
    const dir = tmp(t)
    let k = await open(dir, backend)
    chain(k, 'cc', 0, 200)
    await k.checkpoint()
    chain(k, 'cc', 200, 400)
    await k.checkpoint()
    chain(k, 'cc', 400, 420)
    await k.close()
    const [older, newest] = checkpoints(dir)
    t.truthy(older && newest)
    const two = copyDir(t, dir)
    flipBit(join(dir, newest!), Math.floor(statSync(join(dir, newest!)).size / 2), 3)
    k = await open(dir, backend)
    t.deepEqual(k.recovery.skippedCheckpoints.length, 1)
    t.regex(k.recovery.skippedCheckpoints[0]!, new RegExp(newest!.replace('.', '\\.')))
    t.like(k.recovery, { checkpointSeq: 200, factsReplayed: 220 })
    assertPrefix(t, k, 'cc', 420)
    await k.close()
    // both corrupt: full replay from the log
    flipBit(join(two, older!), 40, 0)
    flipBit(join(two, newest!), statSync(join(two, newest!)).size - 1, 7)
    k = await open(two, backend)
    t.is(k.recovery.skippedCheckpoints.length, 2)
    t.like(k.recovery, { checkpointSeq: 0, factsReplayed: 420 })
    assertPrefix(t, k, 'cc', 420)
    await k.close()
  })

  test(name('WAL corruption before the tail: WAL_CORRUPT names segment and offset; truncateCorrupt cuts there'), async (t) => {
    const dir = await build(t, backend, 'wc', 50)
    const [seg] = segments(dir)
    // record 0 has no deps (72 bytes), the others one dep (104 bytes)
    const h = headerLen(join(dir, seg!))
    const rec = (i: number): number => (i === 0 ? h : h + 72 + 104 * (i - 1))
    t.is(statSync(join(dir, seg!)).size, rec(50))
    flipBit(join(dir, seg!), rec(10) + 60, 2) // inside fact 10's dependency
    const copy = copyDir(t, dir)
    const e = await t.throwsAsync(open(dir, backend), { instanceOf: CtfsError })
    t.is(e.code, 'WAL_CORRUPT')
    t.true(e.message.includes(seg!), e.message)
    t.true(e.message.includes(String(rec(10))), e.message)
    t.log(e.message)
    // refused: nothing was changed on disk
    t.is(statSync(join(dir, seg!)).size, rec(50))
    const k = await open(copy, backend, { truncateCorrupt: true })
    t.truthy(k.recovery.truncatedAt)
    t.true(k.recovery.truncatedAt!.includes(seg!), k.recovery.truncatedAt!)
    t.is(k.recovery.bytesCut, rec(50) - rec(10))
    assertPrefix(t, k, 'wc', 10)
    chain(k, 'wc', 10, 12) // appends continue after the cut
    await k.close()
    const k2 = await open(copy, backend)
    assertPrefix(t, k2, 'wc', 12)
    await k2.close()
  })

  test(name('corruption at the end of a non-last segment is WAL_CORRUPT, not a torn tail'), async (t) => {
    const dir = await build(t, backend, 'ns', 300, { segmentBytes: 4096 })
    const segs = segments(dir)
    t.true(segs.length >= 3)
    const f = join(dir, segs[0]!)
    flipBit(f, statSync(f).size - 3, 5)
    const e = await t.throwsAsync(open(dir, backend), { instanceOf: CtfsError })
    t.is(e.code, 'WAL_CORRUPT')
    t.true(e.message.includes(segs[0]!), e.message)
  })

  test(name('torn tail: truncating at every byte of the last record recovers exactly the prefix'), async (t) => {
    const n = 30
    const dir = await build(t, backend, 'tt', n)
    const [seg] = segments(dir)
    const size = statSync(join(dir, seg!)).size
    const last = size - 104
    for (let cut = last; cut < size; cut++) {
      const d = copyDir(t, dir)
      truncateSync(join(d, seg!), cut)
      const k = await open(d, backend)
      const r = k.recovery
      if (r.bytesCut !== cut - last) t.fail(`cut at ${cut}: bytesCut ${r.bytesCut}, expected ${cut - last}`)
      if ((cut > last) !== (r.tornTailAt !== null)) t.fail(`cut at ${cut}: tornTailAt ${r.tornTailAt}`)
      if (k.stats.admitted !== n - 1 || supply.read(k.state).balance !== triangle(n - 1)) t.fail(`cut at ${cut}: ${k.stats.admitted} facts`)
      if (k.contains(hid('tt', n - 2)) !== 'yes' || k.contains(hid('tt', n - 1)) !== 'no') t.fail(`cut at ${cut}: wrong facts`)
      t.is(r.lastSeq, n - 1)
      // the log continues cleanly after the cut
      chain(k, 'tt', n - 1, n)
      await k.close()
      t.is(statSync(join(d, seg!)).size, size)
      rmSync(d, { recursive: true, force: true })
    }
    t.log(`${size - last} truncation points`)
  })

  test(name('~100 seeded random bit flips in records: every one detected, never a different state'), async (t) => {
    const n = 40
    const dir = await build(t, backend, 'bf', n)
    const [seg] = segments(dir)
    const size = statSync(join(dir, seg!)).size
    const h = headerLen(join(dir, seg!))
    const rnd = prng(backend === 'portable' ? 1234 : 5678)
    let corrupt = 0
    let cut = 0
    for (let trial = 0; trial < 100; trial++) {
      const off = h + Math.floor(rnd() * (size - h))
      const bit = Math.floor(rnd() * 8)
      const d = copyDir(t, dir)
      flipBit(join(d, seg!), off, bit)
      let k: DK
      try {
        k = await open(d, backend)
      } catch (e) {
        if (codeOf(e) !== 'WAL_CORRUPT') t.fail(`flip ${off}:${bit}: ${String(e)}`)
        corrupt++
        rmSync(d, { recursive: true, force: true })
        continue
      }
      // opened: only legitimate if the flip was cut off as a torn tail, leaving an exact prefix
      const m = k.stats.admitted
      if (m >= n || k.recovery.bytesCut === 0) t.fail(`flip at ${off} bit ${bit} went undetected (${m} facts, cut ${k.recovery.bytesCut})`)
      if (supply.read(k.state).balance !== triangle(m)) t.fail(`flip at ${off}: state not the prefix's`)
      for (let i = 0; i < m; i++) if (k.contains(hid('bf', i)) !== 'yes') t.fail(`flip at ${off}: fact ${i} missing`)
      t.deepEqual(snapshot(k), snapshot(reference('bf', m)))
      cut++
      await k.close()
      rmSync(d, { recursive: true, force: true })
    }
    t.is(corrupt + cut, 100)
    t.log(`100 flips: ${corrupt} WAL_CORRUPT, ${cut} cut as torn tail, 0 undetected`)
  })

  test(name('bit flips in checkpoints: every one refused, state still exact'), async (t) => {
    const dir = tmp(t)
    const k0 = await open(dir, backend)
    chain(k0, 'cf', 0, 150)
    await k0.checkpoint()
    chain(k0, 'cf', 150, 160)
    await k0.close()
    const [ck] = checkpoints(dir)
    const size = statSync(join(dir, ck!)).size
    const rnd = prng(backend === 'portable' ? 42 : 43)
    const trials = 60
    for (let trial = 0; trial < trials; trial++) {
      // the first trials hit the header, the table and the root on purpose; then anywhere
      const off = trial < 32 ? trial : trial === 32 ? size - 1 : Math.floor(rnd() * size)
      const d = copyDir(t, dir)
      flipBit(join(d, ck!), off, Math.floor(rnd() * 8))
      const k = await open(d, backend)
      if (k.recovery.skippedCheckpoints.length !== 1) t.fail(`flip at ${off} of ${size}: not refused`)
      if (k.recovery.checkpointSeq !== 0 || k.recovery.factsReplayed !== 160) t.fail(`flip at ${off}: ${JSON.stringify(k.recovery)}`)
      t.deepEqual(snapshot(k), snapshot(reference('cf', 160)))
      await k.close()
      rmSync(d, { recursive: true, force: true })
    }
    t.log(`${trials} flips in a ${size}-byte checkpoint: all refused`)
  })

  test(name('inspect() reports healthy directories and damage'), async (t) => {
    const dir = tmp(t)
    const k = await open(dir, backend)
    chain(k, 'in', 0, 100)
    await k.checkpoint()
    chain(k, 'in', 100, 120)
    await k.close()
    const ok = inspect(dir)
    t.like(ok, { healthy: true, segments: 1, records: 120, firstSeq: 1, lastSeq: 120, checkpoints: 1, validCheckpoints: 1 })
    t.deepEqual(ok.damage, [])
    t.regex(ok.text, /OK/)

    const bad = copyDir(t, dir)
    const [seg] = segments(bad)
    flipBit(join(bad, seg!), headerLen(join(bad, seg!)) + 72 + 104 * 105 + 50, 1) // after the checkpoint at 100
    const r = inspect(bad)
    t.false(r.healthy)
    t.true(r.damage.length >= 1)
    t.true(r.damage.some((l) => l.includes(seg!)), r.damage.join('\n'))
    t.log(r.damage.join('\n'))

    const badCk = copyDir(t, dir)
    const [ck] = checkpoints(badCk)
    flipBit(join(badCk, ck!), 100, 4)
    const c = inspect(badCk)
    // open falls back to a full replay (the whole log is there): healthy, the bad checkpoint listed
    t.true(c.healthy)
    t.is(c.validCheckpoints, 0)
    t.true(c.damage.some((l) => l.includes(ck!)), c.damage.join('\n'))
    t.regex(c.text, /INVALID/)

    const torn = copyDir(t, dir)
    truncateSync(join(torn, seg!), statSync(join(torn, seg!)).size - 10)
    const tr = inspect(torn)
    t.is(tr.lastSeq, 119)
    t.log(`torn tail: healthy=${tr.healthy} ${tr.damage.join('; ')}`)

    t.throws(() => inspect(join(dir, 'does-not-exist')), { instanceOf: CtfsError })
  })

  test(name('custom and multi-invariant kernels survive reopen'), async (t) => {
    const inv = invariants as unknown as Record<string, ((...a: unknown[]) => any) | undefined>
    const dir = tmp(t)
    // a bounded supply (min 0) refuses overdrafts identically after recovery
    const bounded = invariants.totalSupply({ initial: 100n, min: 0n, max: 1000n })
    let k = await DurableKernel.open({ dir, invariant: bounded, backend })
    await k.admitDurable(bounded.delta(-60n))
    t.throws(() => k.admit(bounded.delta(-60n)), { instanceOf: CtfsError, code: 'INVARIANT_VIOLATION' } as never)
    await k.close()
    k = await DurableKernel.open({ dir, invariant: bounded, backend })
    t.is(bounded.read(k.state).balance, 40n)
    t.throws(() => k.admit(bounded.delta(-60n)), { instanceOf: CtfsError, code: 'INVARIANT_VIOLATION' } as never)
    await k.close()

    if (typeof inv.custom === 'function') {
      const d2 = tmp(t)
      const mk = () =>
        inv.custom!({
          name: 'xorCounter',
          class: 'group',
          initial: new Uint8Array(8),
          apply: (payload: Uint8Array, state: DataView) => {
            state.setUint32(0, state.getUint32(0, true) + payload[0]!, true)
            state.setUint32(4, state.getUint32(4, true) ^ payload[1]!, true)
          },
        })
      let c = await DurableKernel.open({ dir: d2, invariant: mk(), backend })
      for (let i = 0; i < 50; i++) c.admit(new Uint8Array([i, i * 7]))
      await c.checkpoint()
      for (let i = 50; i < 80; i++) c.admit(new Uint8Array([i, i * 7]))
      const before = snapshot(c)
      await c.close()
      c = await DurableKernel.open({ dir: d2, invariant: mk(), backend })
      t.deepEqual(snapshot(c), before)
      t.like(c.recovery, { checkpointSeq: 50, factsReplayed: 30 })
      await c.close()
    } else t.log('invariants.custom not available: skipped')

    if (typeof inv.multi === 'function' && typeof inv.gCounter === 'function') {
      const d3 = tmp(t)
      const mk = () => inv.multi!({ views: inv.gCounter!(), balance: invariants.totalSupply({ initial: 100n, min: 0n }) })
      const m1 = mk()
      let m = await DurableKernel.open({ dir: d3, invariant: m1, backend })
      for (let i = 0; i < 40; i++) m.admit(m1.fact({ views: m1.specs.views.increment(1), balance: m1.specs.balance.delta(-1n) }))
      await m.checkpoint()
      for (let i = 0; i < 10; i++) m.admit(m1.fact({ views: m1.specs.views.increment(2), balance: m1.specs.balance.delta(-2n) }))
      const before = snapshot(m)
      await m.close()
      const m2 = mk()
      m = await DurableKernel.open({ dir: d3, invariant: m2, backend })
      t.deepEqual(snapshot(m), before)
      const v = m2.read(m.state)
      t.is(v.views.sum, 60n)
      t.is(v.balance.balance, 40n)
      t.throws(() => m.admit(m2.fact({ views: m2.specs.views.increment(1), balance: m2.specs.balance.delta(-41n) })), {
        instanceOf: CtfsError,
      })
      await m.close()
    } else t.log('invariants.multi/gCounter not available: skipped')
  })

  for (const mode of ['close', 'no-close'] as const) {
    test(name(`a process with a durable kernel exits by itself (${mode})`), async (t) => {
      const dir = tmp(t)
      const child = spawn(process.execPath, ['--import', '@oxc-node/core/register', join(here, 'fixtures', 'exit-child.ts'), dir, backend, mode], {
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      let out = ''
      let err = ''
      child.stdout.on('data', (b: Buffer) => (out += b.toString()))
      child.stderr.on('data', (b: Buffer) => (err += b.toString()))
      let ready = 0
      const code = await new Promise<number | string>((resolve) => {
        const timer = setTimeout(() => {
          child.kill('SIGKILL')
          resolve('timeout')
        }, 60_000)
        child.stdout.on('data', () => {
          if (ready === 0 && out.includes('done')) ready = performance.now()
        })
        child.on('close', (c, s) => {
          clearTimeout(timer)
          resolve(c ?? String(s))
        })
      })
      t.is(code, 0, err)
      t.true(out.includes('done'), out + err)
      // (how soon it exits is a benchmark, not a test: the timeout above only
      // catches a process that never exits)
      void ready
      const k = await open(dir, backend)
      t.is(k.stats.admitted, 101)
      await k.close()
    })
  }
}

test('ctfs inspect <dir>: report text; exit 0 healthy, 1 damaged, 2 usage or I/O error', async (t) => {
  const cli = join(here, '..', 'src', 'cli', 'main.ts')
  const run = (...args: string[]) =>
    new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
      const c = spawn(process.execPath, ['--import', '@oxc-node/core/register', cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
      let out = ''
      let err = ''
      c.stdout.on('data', (b: Buffer) => (out += b.toString()))
      c.stderr.on('data', (b: Buffer) => (err += b.toString()))
      c.on('close', (code) => resolve({ code, out, err }))
    })
  const dir = await build(t, 'portable', 'cli', 60)
  const ok = await run('inspect', dir)
  t.is(ok.code, 0, ok.err)
  t.is(ok.out.trimEnd(), inspect(dir).text.trimEnd())
  t.regex(ok.out, /records: 60/)
  const [seg] = segments(dir)
  flipBit(join(dir, seg!), headerLen(join(dir, seg!)) + 72 + 104 * 20 + 40, 6)
  const bad = await run('inspect', dir)
  t.is(bad.code, 1, bad.err)
  t.true(bad.out.includes(seg!))
  const missing = await run('inspect', join(dir, 'nope'))
  t.is(missing.code, 2)
  t.regex(missing.err, /IO_ERROR/)
  const usage = await run('inspect')
  t.is(usage.code, 2)
  t.regex(usage.err, /usage: ctfs inspect <dir>/)
})
