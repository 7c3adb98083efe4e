// DurableKernel.admitBatchDurable: one native call, one wait on the durable
// frontier per batch (issue 13, "Durable acknowledgements under concurrency").
import test from 'ava'

import { CtfsError, DurableKernel, FactBatch, Kernel, invariants, type FactInput } from '../src/index.ts'
import { native } from '../src/native.ts'
import { iteration, type Plan } from './crash-run.ts'
import { rid, snapshot, tempDir } from './helpers.ts'

const BACKENDS = ['portable', 'io_uring'] as const
const supply = invariants.totalSupply({ initial: 0n, min: 0n })

/** Resolves true when `p` settled after at most a few microtask turns (no native callback in between). */
async function settlesAtOnce(p: Promise<unknown>): Promise<boolean> {
  let settled = false
  p.then(
    () => (settled = true),
    () => (settled = true),
  )
  for (let i = 0; i < 4; i++) await Promise.resolve()
  return settled
}

for (const backend of BACKENDS) {
  const name = (s: string): string => `${backend}: ${s}`

  test(name('resolves only once fdatasync covered the last fact of the batch, for many concurrent batches'), async (t) => {
    const k = await DurableKernel.open({ dir: tempDir(t), invariant: supply, backend })
    t.teardown(() => k.close())
    const checks: Array<Promise<void>> = []
    let settled = 0
    for (let b = 0; b < 64; b++) {
      const batch = FactBatch.fromPayloads(supply.deltas(Array.from({ length: 16 }, (_, i) => b * 16 + i + 1)), 16)
      const p = k.admitBatchDurable(batch)
      // its last record: nothing else is admitted between the call and this read
      const last = k.durability.appendedSeq
      t.is(last, (b + 1) * 16)
      // the durable frontier moves only in a native callback (a macrotask): not within microtasks
      if (b === 0 && (await settlesAtOnce(p))) settled++
      checks.push(
        p.then((r) => {
          t.is(r.admitted, 16)
          t.is(r.refused, 0)
          t.true(k.durability.durableSeq >= last, `batch ${b}: durable ${k.durability.durableSeq} < last seq ${last}`)
          t.truthy(r.id(15))
        }),
      )
    }
    await Promise.all(checks)
    t.is(settled, 0, 'resolved before the frontier covered the batch')
    t.is(k.read().balance, (1024n * 1025n) / 2n)
  })

  test(name('refused facts are reported in the result, not thrown and not logged'), async (t) => {
    const dir = tempDir(t)
    let k = await DurableKernel.open({ dir, invariant: supply, backend })
    const dup = rid()
    await k.admitDurable(supply.delta(5n), { id: dup })
    const over = rid()
    const r = await k.admitBatchDurable([
      { payload: supply.delta(1n) },
      { payload: supply.delta(2n), id: dup }, // DUPLICATE_FACT
      { payload: supply.delta(-100n), id: over }, // INVARIANT_VIOLATION (min 0)
      { payload: supply.delta(3n) },
    ])
    t.is(r.admitted, 2)
    t.is(r.refused, 2)
    t.deepEqual([r.ok(0), r.code(1), r.code(2), r.ok(3)], [true, 'DUPLICATE_FACT', 'INVARIANT_VIOLATION', true])
    t.deepEqual(
      r.errors.map((e) => [e.index, e.error.code]),
      [
        [1, 'DUPLICATE_FACT'],
        [2, 'INVARIANT_VIOLATION'],
      ],
    )
    const d = k.durability
    t.is(d.appendedSeq, 3) // 1 + the two admitted: the refused ones were not logged
    t.true(d.durableSeq >= 3)
    await k.close()
    k = await DurableKernel.open({ dir, invariant: supply, backend })
    t.is(k.recovery.lastSeq, 3)
    t.is(k.read().balance, 9n)
    t.is(k.contains(over), 'no')
    t.is(k.contains(r.id(0)!), 'yes')
    t.is(k.contains(r.id(3)!), 'yes')
    await k.close()
  })

  test(name('a batch with nothing admitted (all refused, or empty) resolves at once'), async (t) => {
    const k = await DurableKernel.open({ dir: tempDir(t), invariant: supply, backend })
    t.teardown(() => k.close())
    const a = rid()
    const b = rid()
    await k.admitBatchDurable([{ payload: supply.delta(1n), id: a }, { payload: supply.delta(1n), id: b }])
    const before = k.durability.appendedSeq
    // a volatile admission leaves the frontier behind: a wait would not settle within microtasks
    k.admit(supply.delta(1n))
    const p = k.admitBatchDurable([
      { payload: supply.delta(1n), id: a },
      { payload: supply.delta(1n), id: b },
    ])
    t.true(await settlesAtOnce(p))
    const r = await p
    t.is(r.admitted, 0)
    t.deepEqual([r.code(0), r.code(1)], ['DUPLICATE_FACT', 'DUPLICATE_FACT'])
    t.true(await settlesAtOnce(k.admitBatchDurable([])))
    t.is((await k.admitBatchDurable(new FactBatch())).length, 0)
    t.is(k.durability.appendedSeq, before + 1)
  })

  test(name('a closed kernel rejects with WAL_CLOSED, like admitDurable'), async (t) => {
    const k = await DurableKernel.open({ dir: tempDir(t), invariant: supply, backend })
    await k.close()
    const one = await t.throwsAsync(k.admitDurable(supply.delta(1n)), { instanceOf: CtfsError })
    const batch = await t.throwsAsync(k.admitBatchDurable([{ payload: supply.delta(1n) }, { payload: supply.delta(2n) }]), { instanceOf: CtfsError })
    t.is(batch?.code, 'WAL_CLOSED')
    t.is(batch?.message, one?.message)
  })

  test(name('bad input rejects with the TypeError admitBatch throws, and changes nothing'), async (t) => {
    const k = await DurableKernel.open({ dir: tempDir(t), invariant: supply, backend })
    t.teardown(() => k.close())
    await k.admitDurable(supply.delta(1n))
    const before = snapshot(k)
    const bad: unknown[] = [42, null, 'facts', { payload: supply.delta(1n) }, [{ payload: 'x' }], [{ payload: supply.delta(1n), idd: rid() }], [{ payload: supply.delta(1n), id: new Uint8Array(3) }]]
    for (const b of bad) {
      let sync: unknown
      try {
        k.admitBatch(b as FactInput[])
      } catch (e) {
        sync = e
      }
      t.true(sync instanceof TypeError || sync instanceof RangeError, String(b))
      const p = k.admitBatchDurable(b as FactInput[]) // never throws synchronously
      const e = await t.throwsAsync(p)
      t.is(e?.constructor, (sync as Error).constructor, String(b))
      t.is((e as NodeJS.ErrnoException).code, (sync as NodeJS.ErrnoException).code, String(b))
      t.is(e?.message, (sync as Error).message)
    }
    t.deepEqual(snapshot(k), before)
    t.is(k.durability.appendedSeq, 1)
  })
}

// From inside the kernel's own custom apply it rejects with BUSY and changes
// nothing: reentrancy.spec's table of durable calls.

// kill -9 of a child admitting with admitBatchDurable and printing each fact
// once its batch resolved: every acknowledged fact survives (crash-run.ts).
const plans: Plan[] = [
  { iteration: 0, backend: 'portable', reopenBackend: 'portable', inFlight: 64, checkpointEvery: 0, delayMs: 60, killAtCheckpoint: false, batch: 16 },
  { iteration: 1, backend: 'io_uring', reopenBackend: 'portable', inFlight: 64, checkpointEvery: 0, delayMs: 150, killAtCheckpoint: false, batch: 16 },
  { iteration: 2, backend: 'portable', reopenBackend: 'io_uring', inFlight: 8, checkpointEvery: 0, delayMs: 40, killAtCheckpoint: false, batch: 128 },
  { iteration: 3, backend: 'io_uring', reopenBackend: 'io_uring', inFlight: 4, checkpointEvery: 0, delayMs: 230, killAtCheckpoint: false, batch: 7 },
]
test.serial('kill -9 after admitBatchDurable resolved: reopening finds every acknowledged fact', async (t) => {
  for (const p of plans) t.log(await iteration(t, p))
})

test('portable: thousands of waiters always pending (the frontier queue never drains) resolve in order, each once durable', async (t) => {
  const k = await DurableKernel.open({ dir: tempDir(t), invariant: supply, backend: 'portable' })
  t.teardown(() => k.close())
  const window = 3000
  const total = 30_000
  const pending: Array<Promise<void>> = []
  let lastResolved = 0
  let outOfOrder = 0
  let early = 0
  for (let i = 0; i < total; i++) {
    if (i >= window) await pending[i - window]
    const h = k.admitAsync(supply.delta(1n))
    const seq = h.seq
    pending.push(
      h.durable.then(() => {
        if (seq < lastResolved) outOfOrder++
        lastResolved = seq
        if (!h.isDurable() || k.durability.durableSeq < seq) early++
      }),
    )
    // a batch in the same queue, between single facts
    if (i % 1000 === 999) pending.push(k.admitBatchDurable([{ payload: supply.delta(1n) }, { payload: supply.delta(1n) }]).then((r) => void t.is(r.admitted, 2)))
  }
  await Promise.all(pending)
  t.is(outOfOrder, 0)
  t.is(early, 0)
  t.is(k.read().balance, BigInt(total + 2 * (total / 1000)))
})

// Batches of kernels without JS rules collect their statuses in the thread's
// one results buffer (copied out per batch), and a durable batch reads the
// log's last sequence in the same native call (`admitBatchSeq`).
test('batch results are each batch\'s own: a later batch does not change an earlier result', (t) => {
  const k = new Kernel({ invariant: supply })
  const first = k.admitBatch(FactBatch.fromPayloads(supply.deltas([5n, -10n, 1n]), 16))
  t.deepEqual([first.code(0), first.code(1), first.code(2)], [undefined, 'INVARIANT_VIOLATION', undefined])
  const second = k.admitBatch(FactBatch.fromPayloads(supply.deltas([-100n, 2n, -100n, 3n]), 16))
  t.deepEqual([second.code(0), second.code(1), second.code(2), second.code(3)], ['INVARIANT_VIOLATION', undefined, 'INVARIANT_VIOLATION', undefined])
  t.deepEqual([first.code(0), first.code(1), first.code(2)], [undefined, 'INVARIANT_VIOLATION', undefined])
  t.deepEqual([first.admitted, first.refused, second.admitted, second.refused], [2, 1, 2, 2])
  // Larger than the shared buffer (65,536): the batch's own array, same answers.
  const big = k.admitBatch(FactBatch.fromPayloads(supply.deltas(Array.from({ length: 70_000 }, (_, i) => (i % 1000 === 999 ? -1_000_000_000n : 1n))), 16))
  t.deepEqual([big.admitted, big.refused], [69_930, 70])
  t.is(big.code(999), 'INVARIANT_VIOLATION')
  t.is(big.code(1000), undefined)
  t.is(k.read().balance, 11n + 69_930n)
})

test('admitBatchSeq: statuses as admitBatch, and the log\'s last sequence in the 8 bytes after them', async (t) => {
  const fast = native.fastPath()
  // No log: the sequence is 0.
  const target = new native.NativeKernel({ invariant: supply.native as never, causality: 'exact' }).fastTarget(0)
  const plain = FactBatch.fromPayloads(supply.deltas([1n, 2n]), 16)
  const results = new Uint8Array(2 + 8).fill(0xee)
  t.is(fast.admitBatchSeq(target, plain.packed, results), 2)
  t.deepEqual([...results.subarray(0, 2)], [0, 0])
  t.is(new DataView(results.buffer).getFloat64(2, true), 0)
  t.throws(() => fast.admitBatchSeq(target, plain.packed, new Uint8Array(7)), { instanceOf: TypeError, message: /8 bytes for the log sequence/ })
  // A durable batch waits for its own last record: after the await, the
  // durable frontier covers it.
  const dk = await DurableKernel.open({ dir: tempDir(t), invariant: supply, backend: 'portable' })
  t.teardown(() => dk.close())
  dk.admit(supply.delta(1n))
  for (let b = 0; b < 20; b++) {
    const p = dk.admitBatchDurable(FactBatch.fromPayloads(supply.deltas([1n, 2n, 3n]), 16))
    const last = dk.durability.appendedSeq
    t.is(last, 1 + (b + 1) * 3)
    t.is((await p).admitted, 3)
    t.true(dk.durability.durableSeq >= last, `batch ${b}`)
  }
  // Past the shared results buffer (65,536 facts): the batch's own array carries the sequence.
  const big = dk.admitBatchDurable(FactBatch.fromPayloads(supply.deltas(new Array<bigint>(70_000).fill(1n)), 16))
  const bigLast = dk.durability.appendedSeq
  t.is(bigLast, 1 + 20 * 3 + 70_000)
  t.is((await big).admitted, 70_000)
  t.true(dk.durability.durableSeq >= bigLast)
})
