// admit_shapes: the cost of `kernel.admit(payload, options)` for the four
// common option shapes — none, `{ id }` (ids off the JS heap, and fresh
// small arrays still in it), `{ deps }`, `{ id, deps }` — and of
// `FactBatch.add`, with the N-API floor of the same run beside it.
//
//   node --import @oxc-node/core/register benches/admit_shapes.ts
//   node --import @oxc-node/core/register benches/admit_shapes.ts --compare /path/to/other/src/index.ts
//
// With `--compare`, a second copy of the TypeScript API (e.g. the sources of
// an earlier commit, loading the same native addon) is measured in the same
// process, rounds alternating between the two: an A/B of the JS wrapper.
// Each row is the median over the rounds of the p50 per admission (64
// admissions timed together per sample).
import { randomFillSync } from 'node:crypto'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'

import { fmtNs, median, runTask, table, type TimedTask } from './common.ts'

const { values } = parseArgs({
  options: {
    compare: { type: 'string' },
    rounds: { type: 'string', default: '5' },
    samples: { type: 'string', default: '300' },
    history: { type: 'string', default: '20000' },
  },
})

const OPS = 64
const rounds = Number(values.rounds)
const samples = { samples: Number(values.samples), warmup: 30 }
const historySize = Number(values.history)

type Api = typeof import('../src/index.ts')
const impls: Array<[string, Api]> = [['this tree', await import('../src/index.ts')]]
if (values.compare !== undefined) impls.push(['compare', (await import(pathToFileURL(resolve(values.compare)).href)) as Api])

type Shape = 'admit(p)' | 'admit(p, {id})' | 'admit(p, {id}), JS-heap ids' | 'admit(p, {deps:[d]})' | 'admit(p, {id, deps:[d]})'
const SHAPES: Shape[] = ['admit(p)', 'admit(p, {id})', 'admit(p, {id}), JS-heap ids', 'admit(p, {deps:[d]})', 'admit(p, {id, deps:[d]})']

function task(api: Api, shape: Shape): TimedTask {
  const supply = api.invariants.totalSupply()
  const k = new api.Kernel({ invariant: supply, causality: 'exact' })
  const payload = supply.delta(1n)
  const history: Uint8Array[] = []
  for (let i = 0; i < historySize; i++) history.push(k.admit(payload))
  const ids: Uint8Array[] = Array.from({ length: OPS }, () => new Uint8Array(32))
  // Fresh small arrays each sample, as most JS code makes them (`slice`,
  // `new Uint8Array(32)`): V8 keeps them in its heap until a native call
  // asks for their bytes. (randomFillSync moves the others off-heap.)
  const random = new Uint8Array(32 * OPS)
  const heapIds: Uint8Array[] = new Array(OPS)
  const deps: Uint8Array[] = new Array(OPS)
  let n = 0
  const prepare = () => {
    for (const id of ids) randomFillSync(id)
    randomFillSync(random)
    for (let j = 0; j < OPS; j++) heapIds[j] = random.slice(32 * j, 32 * j + 32)
    for (let j = 0; j < OPS; j++) deps[j] = history[(n++ * 7919) % history.length]!
  }
  const loops: Record<Shape, () => void> = {
    'admit(p)': () => {
      for (let j = 0; j < OPS; j++) k.admit(payload)
    },
    'admit(p, {id})': () => {
      for (let j = 0; j < OPS; j++) k.admit(payload, { id: ids[j]! })
    },
    'admit(p, {id}), JS-heap ids': () => {
      for (let j = 0; j < OPS; j++) k.admit(payload, { id: heapIds[j]! })
    },
    'admit(p, {deps:[d]})': () => {
      for (let j = 0; j < OPS; j++) k.admit(payload, { deps: [deps[j]!] })
    },
    'admit(p, {id, deps:[d]})': () => {
      for (let j = 0; j < OPS; j++) k.admit(payload, { id: ids[j]!, deps: [deps[j]!] })
    },
  }
  return { name: shape, opsPerSample: OPS, prepare, loop: loops[shape] }
}

const { native } = await import('../src/native.ts')
const raw = native.floorRaw()
const a = new Uint8Array(32)
const b = new Uint8Array(16)
const c = new Uint8Array(0)
const floor: TimedTask = {
  name: 'raw N-API slices(n, 32B, 16B, 0B) (floor)',
  opsPerSample: OPS,
  loop: () => {
    for (let j = 0; j < OPS; j++) raw.slices(0, a, b, c)
  },
}

/** FactBatch.add with `{ id, deps: [d] }`, the batch cleared every sample (building, not admitting). */
function addTask(api: Api): TimedTask {
  const supply = api.invariants.totalSupply()
  const payload = supply.delta(1n)
  const ids: Uint8Array[] = Array.from({ length: OPS }, () => randomFillSync(new Uint8Array(32)))
  const b = new api.FactBatch(OPS * 128)
  return {
    name: 'FactBatch.add(p, {id, deps:[d]})',
    opsPerSample: OPS,
    prepare: () => b.clear(),
    loop: () => {
      for (let j = 0; j < OPS; j++) b.add(payload, { id: ids[j]!, deps: [ids[(j + 1) % OPS]!] })
    },
  }
}

const p50s = new Map<string, number[]>()
const note = (key: string, ns: number) => p50s.set(key, [...(p50s.get(key) ?? []), ns])
for (let r = 0; r < rounds; r++) {
  const order = r % 2 === 0 ? impls : [...impls].reverse()
  note(floor.name, runTask('admit_shapes', floor, samples).p50Ns)
  for (const shape of SHAPES) {
    for (const [label, api] of order) note(`${shape} [${label}]`, runTask('admit_shapes', task(api, shape), samples).p50Ns)
  }
  for (const [label, api] of order) note(`FactBatch.add(p, {id, deps:[d]}) [${label}]`, runTask('admit_shapes', addTask(api), samples).p50Ns)
  process.stderr.write(`  … round ${r + 1}/${rounds}\n`)
}

const rows = [...p50s].map(([name, xs]) => [name, fmtNs(median(xs)), xs.map((x) => x.toFixed(0)).join(' ')])
console.log(`admit_shapes: exact kernel, history ${historySize}, ${OPS} admissions per sample, ${samples.samples} samples, ${rounds} rounds`)
console.log(table(['task', 'median p50/op', 'p50 per round (ns)'], rows))
