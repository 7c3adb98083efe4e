// Unknown option keys are a TypeError (ERR_INVALID_ARG_VALUE) naming the key
// and, when one is close, the key that was meant — never obeyed silently
// (issue 8, item 7: `{ dep: [x] }` used to admit with no dependencies).
import test from 'ava'

import { CtfsError, DurableKernel, Escrow, FactBatch, Kernel, invariants as I } from '../src/index.ts'
import { rid, snapshot, tempDir } from './helpers.ts'

const supply = I.totalSupply({ initial: 100n, min: 0n })
const noop = () => {}
const customOk = { name: 'c', class: 'group' as const, initial: new Uint8Array(1), apply: noop }

function fixture() {
  const k = new Kernel({ invariant: supply, replica: { nodes: [1n, 2n], local: 1n } })
  const a = k.admit(supply.delta(1n))
  return { k, a, t: k.tenant('acme') }
}

// [what, call, the key named, the suggestion (or null)]
const rows: Array<[string, (f: ReturnType<typeof fixture>) => unknown, string, string | null]> = [
  ['admit { dep } (the issue: admitted with no dependencies)', ({ k, a }) => k.admit(supply.delta(1n), { dep: [a] } as never), 'dep', 'deps'],
  ['admit { Id }', ({ k }) => k.admit(supply.delta(1n), { Id: rid() } as never), 'Id', 'id'],
  ['admit { id, deps, extra }', ({ k, a }) => k.admit(supply.delta(1n), { id: rid(), deps: [a], extra: 1 } as never), 'extra', null],
  ['tenant.admit { dep }', ({ t, a }) => t.admit(supply.delta(1n), { dep: [a] } as never), 'dep', 'deps'],
  ['admitBatch([{ payload, dep }])', ({ k, a }) => k.admitBatch([{ payload: supply.delta(1n), dep: [a] } as never]), 'dep', 'deps'],
  ['admitBatch([{ paylaod }])', ({ k }) => k.admitBatch([{ paylaod: supply.delta(1n) } as never]), 'paylaod', 'payload'],
  ['FactBatch.add { ID }', () => new FactBatch().add(supply.delta(1n), { ID: rid() } as never), 'ID', 'id'],
  ['query({ fact })', ({ k, a }) => k.query({ fact: [a] } as never), 'fact', 'facts'],
  ['replica.admitRemote { dep }', ({ k, a }) => k.replica!.admitRemote(rid(), supply.delta(1n), { dep: [a] } as never), 'dep', 'deps'],
  ['new Kernel { causalty }', () => new Kernel({ invariant: supply, causalty: 'bloom' } as never), 'causalty', 'causality'],
  ['new Kernel { maxDep }', () => new Kernel({ invariant: supply, maxDep: 3 } as never), 'maxDep', 'maxDeps'],
  ['new Kernel { dir } (a durable option)', () => new Kernel({ invariant: supply, dir: '/tmp/x' } as never), 'dir', null],
  ['replica { local, nodes, escrows }', () => new Kernel({ invariant: supply, replica: { nodes: [1n], local: 1n, escrows: {} } } as never), 'escrows', 'escrow'],
  ['replica escrow { backoffBase }', () => new Kernel({ invariant: supply, replica: { nodes: [1n], local: 1n, escrow: { backoffBase: 5 } } } as never), 'backoffBase', 'backoffBaseMs'],
  ['new Escrow { reserve }', () => new Escrow(10n, { reserve: 5 } as never), 'reserve', 'reservePercent'],
  ['totalSupply { minimum }', () => I.totalSupply({ minimum: 0n } as never), 'minimum', 'min'],
  ['totalSupply { Initial }', () => I.totalSupply({ Initial: 5n } as never), 'Initial', 'initial'],
  ['max { init }', () => I.max({ init: 0n } as never), 'init', 'initial'],
  ['gCounter { intial }', () => I.gCounter({ intial: 1n } as never), 'intial', 'initial'],
  ['boundedGCounter { bound, bounds }', () => I.boundedGCounter({ bound: 1n, bounds: 2n } as never), 'bounds', 'bound'],
  ['lww { x }', () => I.lww({ x: 1 } as never), 'x', null],
  ['uniqueness { max }', () => I.uniqueness({ max: 5 } as never), 'max', null],
  ['uniqueSet { maxElement }', () => I.uniqueSet({ maxElement: 5 } as never), 'maxElement', 'maxElements'],
  ['gGraph { maxOutdegree }', () => I.gGraph({ maxOutdegree: 2 } as never), 'maxOutdegree', 'maxOutDegree'],
  ['graph { maxEdge }', () => I.graph({ maxEdge: 5 } as never), 'maxEdge', 'maxEdges'],
  ['custom { Read }', () => I.custom({ ...customOk, Read: noop } as never), 'Read', 'read'],
  ['multi.fact { alicee }', () => I.multi({ alice: supply }).fact({ alicee: supply.delta(1n) } as never), 'alicee', 'alice'],
]

for (const [title, call, key, near] of rows) {
  test(`unknown option key: ${title}`, (t) => {
    const f = fixture()
    const before = snapshot(f.k)
    const tenantBefore = snapshot(f.t)
    const e = t.throws(() => call(f), { instanceOf: TypeError })
    t.is((e as { code?: string }).code, 'ERR_INVALID_ARG_VALUE')
    t.true(e?.message.includes(`unknown key '${key}'`), e?.message)
    if (near !== null) t.true(e?.message.includes(`did you mean '${near}'?`), e?.message)
    else t.false(e?.message.includes('did you mean'), e?.message)
    t.deepEqual(snapshot(f.k), before)
    t.deepEqual(snapshot(f.t), tenantBefore)
  })
}

test('unknown option key: DurableKernel.open { truncateCorupt } (one list of known keys: the kernel options and the log options)', async (t) => {
  const dir = tempDir(t, 'ctfs-options-')
  const e = await t.throwsAsync(DurableKernel.open({ dir, invariant: supply, truncateCorupt: true } as never), { instanceOf: TypeError })
  t.is((e as { code?: string }).code, 'ERR_INVALID_ARG_VALUE')
  t.regex(e?.message ?? '', /unknown key 'truncateCorupt'; did you mean 'truncateCorrupt'\?/)
  for (const key of ['dir', 'invariant', 'causality', 'maxFacts', 'backend', 'segmentBytes']) t.true(e?.message.includes(`'${key}'`))
  // every documented option is known
  const k = await DurableKernel.open({
    dir,
    invariant: supply,
    causality: 'exact',
    escalationThreshold: 0.5,
    maxPayloadBytes: 1024,
    maxDeps: 8,
    maxFacts: 1000,
    backend: 'portable',
    truncateCorrupt: false,
    bufferBytes: 1 << 20,
    segmentBytes: 1 << 20,
  })
  await k.close()
})

test('the common shapes still pass, and keys the object inherits are not checked', (t) => {
  const { k, a } = fixture()
  k.admit(supply.delta(1n))
  k.admit(supply.delta(1n), {})
  k.admit(supply.delta(1n), { id: rid() })
  k.admit(supply.delta(1n), { deps: [a] })
  k.admit(supply.delta(1n), { id: rid(), deps: [a] })
  k.admit(supply.delta(1n), { deps: [a], id: rid() })
  k.admit(supply.delta(1n), { id: undefined, deps: undefined })
  // an options object with an inherited enumerable key (e.g. from a class or a prototype)
  const opts = Object.assign(Object.create({ note: 'inherited' }) as object, { deps: [a] })
  k.admit(supply.delta(1n), opts)
  t.is(k.stats.admitted, 9)
  // and a refusal with a known shape is still a CtfsError
  t.throws(() => k.admit(supply.delta(1n), { deps: [rid()] }), { instanceOf: CtfsError, code: 'CAUSALITY_VIOLATION' } as never)
})
