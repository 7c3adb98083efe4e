// metrics: what the instrumentation costs. Instrumented vs uninstrumented
// admission in the same process (single admit, admitBatch, durable), and the
// cost of a scrape of a kernel with 100 tenants.
//
//   npm run bench:metrics
//   npm run bench:metrics -- --rounds 9 --json out.json    (or CTFS_BENCH_JSON=out.json)
//   npm run bench:metrics -- --only admitBatch --no-scrape  (one row)
//
// The control is an honest build switch, not a runtime flag: the addon is
// built a second time with `--no-default-features` (the `metrics` cargo
// feature off: no sampler, no clock reads, histogram records compiled out;
// the counters that existed before the metrics stay), into
// target/metrics-off/. Both addons are loaded in this process and driven
// through their raw admission functions (`fastPath()`, what `kernel.admit`
// calls after its argument checks). Samples are paired: each sample times
// the instrumented kernel's loop and the control's back to back (the order
// alternating), so load from other processes hits both alike; a row's
// overhead is the median of the per-pair ratios, and its p50s are the
// medians over rounds of each side's p50. The TypeScript wrapper is the
// same code for both and is left out, so the ratio is the native cost's.
import { spawnSync } from 'node:child_process'
import { randomFillSync } from 'node:crypto'
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

import { Registry } from 'prom-client'

import { FactBatch, Kernel, invariants } from '../src/index.ts'
import { internalsOf } from '../src/invariants/registry.ts'
import { native } from '../src/native.ts'
import { MetricsRegistry, collectMetrics } from '../src/prometheus.ts'
import { fmtNs, median, table, type TimedTask } from './common.ts'
import { collectMachine, formatMachine } from './machine.ts'

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '7' },
    samples: { type: 'string', default: '300' },
    history: { type: 'string', default: '200000' },
    json: { type: 'string' },
    only: { type: 'string' },
    'no-scrape': { type: 'boolean', default: false },
    aa: { type: 'boolean', default: false },
  },
})
const rounds = Number(values.rounds)
const samples = { samples: Number(values.samples), warmup: 30 }
const historySize = Number(values.history)
const jsonPath = values.json ?? process.env.CTFS_BENCH_JSON
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')

// ---------------------------------------------------------- the control addon
function buildControl(): string {
  const targetDir = join(root, 'target', 'metrics-off')
  process.stderr.write('building the uninstrumented control addon (cargo --no-default-features, target/metrics-off) …\n')
  const r = spawnSync('cargo', ['build', '--release', '--no-default-features', '--manifest-path', join(root, 'bindings', 'node', 'Cargo.toml')], {
    cwd: root,
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, CARGO_TARGET_DIR: targetDir },
  })
  if (r.status !== 0) throw new Error('cargo build of the control addon failed')
  const out = join(targetDir, 'ctfs-uninstrumented.node')
  copyFileSync(join(targetDir, 'release', 'libctfs_node.so'), out)
  return out
}

type Addon = typeof native
// `--aa`: the instrumented addon against itself (the A/A baseline of this method).
const controlAddon = values.aa ? native : (createRequire(import.meta.url)(buildControl()) as Addon)
const addons: Array<[string, Addon]> = [
  ['instrumented', native],
  ['uninstrumented', controlAddon],
]

const supply = invariants.totalSupply()
const config = { invariant: internalsOf(supply, 'supply').native, causality: 'exact' as const }
const payload = supply.delta(1n)
const EMPTY = new Uint8Array(0)
const OPS = 64
const BATCH = 1_000

function freshIds(n: number): Uint8Array[] {
  return Array.from({ length: n }, () => randomFillSync(new Uint8Array(32)))
}

/** A kernel of `addon` with `historySize` facts already admitted (past index growth). */
function grownKernel(addon: Addon) {
  const nk = new addon.NativeKernel(config, undefined)
  const fast = addon.fastPath()
  const target = nk.fastTarget(0)
  const b = new FactBatch(BATCH * 64)
  for (let done = 0; done < historySize; done += BATCH) {
    b.clear()
    for (const id of freshIds(BATCH)) b.add(payload, { id })
    fast.admitBatch(target, b.packed, new Uint8Array(BATCH))
  }
  return { nk, fast, target }
}

let errors = 0
function singleAdmit(addon: Addon): TimedTask {
  const { fast, target } = grownKernel(addon)
  const ids = freshIds(OPS)
  return {
    name: 'admit (64 per sample)',
    opsPerSample: OPS,
    prepare: () => {
      for (const id of ids) randomFillSync(id)
    },
    loop: () => {
      for (let j = 0; j < OPS; j++) errors += fast.admitWithId(target, ids[j]!, payload, EMPTY) === 0 ? 0 : 1
    },
  }
}

function batchAdmit(addon: Addon): TimedTask {
  const { fast, target } = grownKernel(addon)
  const b = new FactBatch(BATCH * 64)
  const status = new Uint8Array(BATCH)
  const ids = freshIds(BATCH)
  return {
    name: `admitBatch (${BATCH} facts)`,
    opsPerSample: 1,
    factsPerOp: BATCH,
    prepare: () => {
      b.clear()
      for (const id of ids) b.add(payload, { id: randomFillSync(id) })
    },
    loop: () => {
      if (fast.admitBatch(target, b.packed, status) !== BATCH) errors++
    },
    after: () => {
      for (const s of status) errors += s === 0 ? 0 : 1
    },
  }
}

const dirs: string[] = []
const durables: Array<{ close(): void }> = []
function durableKernel(addon: Addon) {
  const dir = mkdtempSync(join(tmpdir(), 'ctfs-bench-metrics-'))
  dirs.push(dir)
  const nk = addon.NativeKernel.open(config, undefined, { dir }, () => {})
  durables.push(nk)
  return { nk, fast: addon.fastPath(), target: nk.fastTarget(0) }
}

/** Durable, volatile acknowledgement: admission + WAL append; the writer drains and syncs meanwhile. */
function durableAdmit(addon: Addon): TimedTask {
  const { nk, fast, target } = durableKernel(addon)
  const ids = freshIds(OPS)
  let n = 0
  return {
    name: 'durable admit (64 per sample, volatile ack)',
    opsPerSample: OPS,
    prepare: () => {
      for (const id of ids) randomFillSync(id)
      if (++n % 50 === 0) nk.sync() // keep the queue short (never BUFFER_FULL); untimed
    },
    loop: () => {
      for (let j = 0; j < OPS; j++) errors += fast.admitWithId(target, ids[j]!, payload, EMPTY) === 0 ? 0 : 1
    },
  }
}

/** Durable, acknowledged: a batch of 1,000 admitted and awaited until fdatasync covered it. */
function durableBatch(addon: Addon): TimedTask {
  const { nk, fast, target } = durableKernel(addon)
  const b = new FactBatch(BATCH * 64)
  const status = new Uint8Array(BATCH)
  const ids = freshIds(BATCH)
  return {
    name: `durable admitBatch (${BATCH}) + sync`,
    opsPerSample: 1,
    factsPerOp: BATCH,
    prepare: () => {
      b.clear()
      for (const id of ids) b.add(payload, { id: randomFillSync(id) })
    },
    loop: () => {
      fast.admitBatch(target, b.packed, status)
      nk.sync()
    },
    after: () => {
      for (const s of status) errors += s === 0 ? 0 : 1
    },
  }
}

const machine = collectMachine()
console.log(formatMachine(machine))
console.log(`control: ${addons[1]![0]} addon built with --no-default-features (target/metrics-off)\n`)

const makers: Array<[string, (a: Addon) => TimedTask, { samples: number; warmup: number }]> = [
  ['admit', singleAdmit, samples],
  ['admitBatch', batchAdmit, { samples: Math.max(30, samples.samples / 5), warmup: 10 }],
  ['durable admit', durableAdmit, samples],
  ['durable admitBatch+sync', durableBatch, { samples: Math.max(30, samples.samples / 5), warmup: 10 }],
]
/** Times `t.loop` once (after its `prepare`), per operation, ns. */
function timeOnce(t: TimedTask): number {
  t.prepare?.()
  const t0 = performance.now()
  t.loop()
  const dt = (performance.now() - t0) * 1e6
  t.after?.()
  return dt / t.opsPerSample / (t.factsPerOp ?? 1)
}

const pct = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!
const stats = new Map<string, { a50: number[]; b50: number[]; a99: number[]; b99: number[]; ratios: number[]; roundRatios: number[] }>()
const selected = values.only === undefined ? makers : makers.filter(([row]) => row === values.only)
if (selected.length === 0) throw new Error(`--only: no row '${values.only}' (rows: ${makers.map(([r]) => r).join(', ')})`)
for (let r = 0; r < rounds; r++) {
  for (const [row, make, s] of selected) {
    // creation order alternates too (the first kernel's memory is placed first)
    let a: TimedTask
    let b: TimedTask
    if (r % 2 === 0) {
      a = make(addons[0]![1])
      b = make(addons[1]![1])
    } else {
      b = make(addons[1]![1])
      a = make(addons[0]![1])
    }
    for (let i = 0; i < s.warmup; i++) {
      timeOnce(a)
      timeOnce(b)
    }
    const ta: number[] = []
    const tb: number[] = []
    const ratios: number[] = []
    for (let i = 0; i < s.samples; i++) {
      let x: number
      let y: number
      if ((i + r) % 2 === 0) {
        x = timeOnce(a)
        y = timeOnce(b)
      } else {
        y = timeOnce(b)
        x = timeOnce(a)
      }
      ta.push(x)
      tb.push(y)
      ratios.push(x / y)
    }
    const st = stats.get(row) ?? { a50: [], b50: [], a99: [], b99: [], ratios: [], roundRatios: [] }
    st.a50.push(pct(ta, 0.5))
    st.b50.push(pct(tb, 0.5))
    st.a99.push(pct(ta, 0.99))
    st.b99.push(pct(tb, 0.99))
    st.ratios.push(...ratios)
    st.roundRatios.push(median(ratios))
    stats.set(row, st)
  }
  for (const d of durables.splice(0)) d.close()
  process.stderr.write(`  … round ${r + 1}/${rounds}\n`)
}
for (const d of dirs) rmSync(d, { recursive: true, force: true })

const results: Array<{ row: string; instrumentedP50Ns: number; uninstrumentedP50Ns: number; overhead: number; perRound: number[] }> = []
const rows: string[][] = []
for (const [row] of selected) {
  const st = stats.get(row)!
  const overhead = median(st.ratios) - 1
  results.push({ row, instrumentedP50Ns: median(st.a50), uninstrumentedP50Ns: median(st.b50), overhead, perRound: st.roundRatios.map((x) => x - 1) })
  rows.push([
    row,
    fmtNs(median(st.b50)),
    fmtNs(median(st.a50)),
    `${(overhead * 100).toFixed(1)} %`,
    st.roundRatios.map((x) => `${((x - 1) * 100).toFixed(1)}`).join(' '),
    `${fmtNs(median(st.b99))} / ${fmtNs(median(st.a99))}`,
  ])
}
console.log(`admission, per fact: exact kernel with ${historySize} facts; ${rounds} rounds of paired samples (instrumented and control back to back)`)
console.log(table(['path', 'uninstrumented p50', 'instrumented p50', 'overhead (median of pair ratios)', 'per round (%)', 'p99 un / instr'], rows))
console.log(`errors (non-zero statuses): ${errors}\n`)

// ------------------------------------------------------------------- scrape
if (values['no-scrape']) process.exit(0)
console.log(`load average at the scrape measurement: ${(await import('node:os')).loadavg().map((x) => x.toFixed(2)).join(' ')}`)
const TENANTS = 100
const k = new Kernel({ invariant: supply })
for (let t = 0; t < TENANTS; t++) {
  const d = k.tenant(`tenant-${t}`)
  for (let i = 0; i < 200; i++) d.admit(payload)
  try {
    d.admit(supply.delta(-1n), { deps: [new Uint8Array(32)] })
  } catch {
    // a CAUSALITY_VIOLATION per tenant: every tenant exports a refusal series
  }
}
for (let i = 0; i < 10_000; i++) k.admit(payload)
const registry = new Registry()
collectMetrics(k, { registry })
const own = new MetricsRegistry()
collectMetrics(k, { registry: own })
const snapTimes: number[] = []
const scrapeTimes: number[] = []
const ownTimes: number[] = []
let bytes = 0
for (let i = 0; i < 50; i++) {
  k.metrics()
  await registry.metrics() // warm-up
  await own.metrics()
}
for (let i = 0; i < 500; i++) {
  const t0 = performance.now()
  k.metrics()
  const t1 = performance.now()
  const text = await registry.metrics()
  const t2 = performance.now()
  await own.metrics()
  const t3 = performance.now()
  snapTimes.push((t1 - t0) * 1e6)
  scrapeTimes.push((t2 - t1) * 1e6)
  ownTimes.push((t3 - t2) * 1e6)
  bytes = text.length
}
if ((await own.metrics()) !== (await registry.metrics())) throw new Error('MetricsRegistry and prom-client render different text')
const series = (await registry.metrics()).split('\n').filter((l) => l !== '' && !l.startsWith('#')).length
console.log(`scrape of one kernel with ${TENANTS} tenants (${series} series, ${(bytes / 1024).toFixed(1)} KiB of text), 500 scrapes`)
console.log(
  table(
    ['step', 'p50', 'p99'],
    [
      ['kernel.metrics() (native snapshot + decode)', fmtNs(pct(snapTimes, 0.5)), fmtNs(pct(snapTimes, 0.99))],
      ['prom-client registry.metrics() (snapshot + text)', fmtNs(pct(scrapeTimes, 0.5)), fmtNs(pct(scrapeTimes, 0.99))],
      ['MetricsRegistry.metrics() (snapshot + text)', fmtNs(pct(ownTimes, 0.5)), fmtNs(pct(ownTimes, 0.99))],
    ],
  ),
)

if (jsonPath !== undefined) {
  mkdirSync(dirname(resolve(jsonPath)), { recursive: true })
  writeFileSync(
    jsonPath,
    JSON.stringify(
      {
        suite: 'metrics',
        date: new Date().toISOString(),
        machine,
        rounds,
        samples: samples.samples,
        history: historySize,
        admission: results,
        errors,
        scrape: {
          tenants: TENANTS,
          series,
          bytes,
          snapshotP50Ns: pct(snapTimes, 0.5),
          snapshotP99Ns: pct(snapTimes, 0.99),
          scrapeP50Ns: pct(scrapeTimes, 0.5),
          scrapeP99Ns: pct(scrapeTimes, 0.99),
          ownRegistryP50Ns: pct(ownTimes, 0.5),
          ownRegistryP99Ns: pct(ownTimes, 0.99),
        },
      },
      null,
      2,
    ),
  )
  console.log(`\nJSON written to ${jsonPath}`)
}
