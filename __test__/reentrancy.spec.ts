// A custom invariant's apply runs inside an admission. Every call it makes
// back into its own kernel is refused with CtfsError BUSY and changes
// nothing (issue 8, item 5) — in particular close() does not half-close a
// durable kernel.
import test from 'ava'

import { CtfsError, DurableKernel, FactBatch, Kernel, invariants as I, type InvariantSpec } from '../src/index.ts'
import { rid, snapshot, tempDir } from './helpers.ts'

interface Probe {
  /** Run by the next apply (once), before it adds payload[0]. */
  probe?: () => unknown
  /** What the probe returned. */
  result?: unknown
}

/** A one-byte counter whose apply runs the probe (when set) before adding payload[0]. */
function probing() {
  const box: Probe = {}
  const spec = I.custom({
    name: 'probing',
    class: 'commutativeMonoid',
    initial: new Uint8Array(1),
    apply(payload, state) {
      const p = box.probe
      box.probe = undefined // an admission made by the probe must not probe again
      if (p !== undefined) box.result = p()
      state.setUint8(0, state.getUint8(0) + (payload[0] ?? 0))
    },
  })
  return Object.assign(box, { spec })
}

/** Runs `call` inside apply; returns what it threw (or rejected with). */
async function insideApply(
  k: Kernel<InvariantSpec>,
  box: Probe,
  call: () => unknown,
  payload: Uint8Array = new Uint8Array([1]),
): Promise<unknown> {
  let thrown: unknown
  box.probe = () => {
    try {
      const r = call()
      if (r instanceof Promise) return r.catch((e: unknown) => (thrown = e))
    } catch (e) {
      thrown = e
    }
    return undefined
  }
  k.admit(payload)
  await box.result
  return thrown
}

const key = new Uint8Array(32).fill(3)

test('every call into an in-memory kernel from inside apply is BUSY and changes nothing', async (t) => {
  const box = probing()
  const multi = I.multi({ rule: box.spec, keys: I.uniqueSet(), edges: I.graph() })
  const k = new Kernel({ invariant: multi, replica: { nodes: [1n, 2n], local: 1n } })
  const tenant = k.tenant('acme')
  const a = k.admit(multi.fact({ keys: multi.specs.keys.add(key) }))
  const batch = new FactBatch()
  batch.add(multi.fact({ rule: new Uint8Array([5]) }))
  const calls: Array<[string, () => unknown]> = [
    ['admit', () => k.admit(multi.fact({ rule: new Uint8Array([9]) }))],
    ['admit({id})', () => k.admit(multi.fact({ rule: new Uint8Array([9]) }), { id: rid() })],
    ['admit({deps})', () => k.admit(multi.fact({ rule: new Uint8Array([9]) }), { deps: [a] })],
    ['admitBatch(FactBatch)', () => k.admitBatch(batch)],
    ['admitBatch([...])', () => k.admitBatch([{ payload: multi.fact({ rule: new Uint8Array([9]) }) }])],
    ['state', () => k.state],
    ['read()', () => k.read()],
    ['clock', () => k.clock],
    ['frontier', () => k.frontier],
    ['contains', () => k.contains(a)],
    ['query({ facts })', () => k.query({ facts: [a] })],
    ['query({ clock })', () => k.query({ clock: new Uint8Array(64) })],
    ['stats', () => k.stats],
    ['has', () => k.has(key)],
    ['hasEdge', () => k.hasEdge(1n, 2n)],
    ["tenant('acme') (exists)", () => k.tenant('acme')],
    ["tenant('new')", () => k.tenant('new')],
    ['tenants', () => k.tenants],
    ['tenant.admit', () => tenant.admit(multi.fact({ rule: new Uint8Array([9]) }))],
    ['tenant.state', () => tenant.state],
    ['replica.admitRemote', () => k.replica!.admitRemote(rid(), multi.fact({ rule: new Uint8Array([9]) }))],
    ['replica.quotas', () => k.replica!.quotas('down')],
    ['replica.requestQuota', () => k.replica!.requestQuota(2n, 1n, 'down')],
    ['replica.onRequest', () => k.replica!.onRequest(new Uint8Array(41), 'down')],
    ['replica.onGrant', () => k.replica!.onGrant(new Uint8Array(41), 'down')],
    ['replica.poll', () => k.replica!.poll('down')],
  ]
  for (const [name, call] of calls) {
    const rule = k.read().rule[0]!
    const { keys, edges } = k.read()
    const tenantBefore = snapshot(tenant)
    const admitted = k.stats.admitted
    const e = await insideApply(k, box, call, multi.fact({ rule: new Uint8Array([1]) }))
    t.true(e instanceof CtfsError, `${name}: ${String(e)}`)
    t.is((e as CtfsError).code, 'BUSY', name)
    t.regex((e as Error).message, /busy: it was called from inside one of its own admissions/, name)
    // only the outer admission happened: one more fact, +1 in the rule's byte
    t.is(k.stats.admitted, admitted + 1, name)
    t.is(k.read().rule[0], rule + 1, name)
    t.deepEqual([k.read().keys, k.read().edges], [keys, edges], name)
    t.deepEqual(snapshot(tenant), tenantBefore, name)
    t.deepEqual(k.tenants, ['acme'], name)
  }
  // and the kernel works normally afterwards
  const admitted = k.stats.admitted
  k.admit(multi.fact({ rule: new Uint8Array([1]) }))
  t.is(k.admitBatch(batch).admitted, 1)
  t.is(k.stats.admitted, admitted + 2)
})

test('a batch whose rule calls back into the kernel: each such fact is refused on its own, Node survives', (t) => {
  const box = probing()
  const k = new Kernel({ invariant: box.spec })
  let inner: unknown
  const spec = box.spec
  box.probe = () => {
    try {
      k.admitBatch([{ payload: new Uint8Array([1]) }])
    } catch (e) {
      inner = e
      throw e
    }
  }
  const r = k.admitBatch([{ payload: new Uint8Array([1]) }, { payload: new Uint8Array([2]) }])
  t.is((inner as CtfsError).code, 'BUSY')
  t.is(r.code(0), 'INVARIANT_VIOLATION') // the rethrown BUSY refused the first fact
  t.regex(r.errors[0]!.error.message, /busy/)
  t.true(r.ok(1))
  t.deepEqual(spec.read(k.state), new Uint8Array([2]))
})

test('durable kernel: close, checkpoint, flush, durability, admitDurable, admitBatchDurable from inside apply are BUSY; nothing half-closes', async (t) => {
  const dir = tempDir(t, 'ctfs-reentrant-')
  const box = probing()
  let k = await DurableKernel.open({ dir, invariant: box.spec, backend: 'portable' })
  const first = await k.admitDurable(new Uint8Array([1]))
  const calls: Array<[string, () => unknown]> = [
    ['close()', () => k.close()],
    ['checkpoint()', () => k.checkpoint()],
    ['flush()', () => k.flush()],
    ['durability', () => k.durability],
    ['recovery', () => k.recovery],
    ['admitDurable', () => k.admitDurable(new Uint8Array([7]))],
    ['admitAsync', () => k.admitAsync(new Uint8Array([7]))],
    ['admitBatchDurable', () => k.admitBatchDurable([{ payload: new Uint8Array([7]) }])],
  ]
  for (const [name, call] of calls) {
    const e = await insideApply(k, box, call)
    t.true(e instanceof CtfsError, `${name}: ${String(e)}`)
    t.is((e as CtfsError).code, 'BUSY', name)
  }
  // 1 + one outer admission per call
  t.deepEqual(k.read(), new Uint8Array([1 + calls.length]))
  // not half-closed: admissions and checkpoints still work, then close() really closes
  await k.admitDurable(new Uint8Array([1]))
  t.deepEqual(await k.checkpoint(), { seq: calls.length + 2 })
  await k.close()
  t.throws(() => k.admit(new Uint8Array([1])), { instanceOf: CtfsError, code: 'WAL_CLOSED' } as never)
  // the directory was unlocked: it reopens with everything
  k = await DurableKernel.open({ dir, invariant: box.spec, backend: 'portable' })
  t.deepEqual(k.read(), new Uint8Array([2 + calls.length]))
  t.is(k.contains(first), 'yes')
  await k.close()
})

test('the issue 8 reproduction: close() inside apply, then close() closes and the directory unlocks', async (t) => {
  const dir = tempDir(t, 'ctfs-reentrant-')
  let inner: Promise<void> | undefined
  let k: DurableKernel<InvariantSpec> | undefined
  const c = I.custom({
    name: 'closer',
    class: 'group',
    initial: new Uint8Array(1),
    apply(payload, state) {
      if (payload[0] === 1) inner = k!.close()
      state.setUint8(0, state.getUint8(0) + 1)
    },
  })
  k = await DurableKernel.open({ dir, invariant: c, backend: 'portable' })
  k.admit(new Uint8Array([1]))
  const e = await t.throwsAsync(inner!, { instanceOf: CtfsError })
  t.is(e?.code, 'BUSY')
  k.admit(new Uint8Array([0]))
  await k.close()
  t.throws(() => k!.admit(new Uint8Array([0])), { code: 'WAL_CLOSED' } as never)
  const again = await DurableKernel.open({ dir, invariant: c, backend: 'portable' })
  t.deepEqual(again.read(), new Uint8Array([2]))
  await again.close()
})
