// Runs the JS benchmark suites (napi_floor, admit_js) and prints one report:
// the machine line, a table per suite (p50/p99 per op; per call and per
// fact for batches), the same-run controls and the ratios to them.
//
//   npm run bench:js                       # full run (about a minute on 2 cores)
//   npm run bench:js -- --json out.json    # also write every number as JSON
//   CTFS_BENCH_JSON=out.json npm run bench:js
//   npm run bench:js -- --quick            # smoke run: small history, few samples
//   npm run bench:js -- --history 2000000 --facts 1000000
//
// Work is count-based (a fixed number of samples per task), not time-based,
// so every run measures the same kernel sizes.
import { execFileSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { parseArgs } from 'node:util'

import { CUSTOM_CASE, NATIVE_G_COUNTER_CASE, runAdmitJs, runInvariantsJs, type AdmitConfig, type CoreControl } from './admit_js.ts'
import { fmtNs, fmtRate, table, type Row, type Samples } from './common.ts'
import { collectMachine, formatMachine } from './machine.ts'
import { runNapiFloor } from './napi_floor.ts'

const { values } = parseArgs({
  options: {
    json: { type: 'string' },
    quick: { type: 'boolean', default: false },
    history: { type: 'string' },
    facts: { type: 'string' },
  },
  allowPositionals: false,
})

function intArg(v: string | undefined, name: string, dflt: number): number {
  if (v === undefined) return dflt
  const n = Number(v.replace(/_/g, ''))
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer, got ${v}`)
  return n
}

const quick = values.quick === true
const cfg: AdmitConfig = {
  history: intArg(values.history, 'history', quick ? 100_000 : 1_000_000),
  facts: intArg(values.facts, 'facts', quick ? 50_000 : 500_000),
  buildSamples: quick ? 50 : 500,
  coreReps: quick ? 1 : 5,
}
const floorSamples: Samples = quick ? { samples: 200, warmup: 20 } : { samples: 2000, warmup: 100 }
const jsonPath = values.json ?? process.env.CTFS_BENCH_JSON

function gitCommit(): string {
  try {
    const sha = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim()
    return dirty.length > 0 ? `${sha}+dirty` : sha
  } catch {
    return 'unknown'
  }
}

const progress = (s: string): void => {
  process.stderr.write(`  … ${s}\n`)
}

interface Ratio {
  name: string
  /** Which statistic of each side: p50 (default) or mean. */
  stat: 'p50' | 'mean'
  numerator: string
  denominator: string
  value: number
  target?: number
  pass?: boolean
}

function perOpTable(rows: readonly Row[]): string {
  return table(
    ['task', 'ops/sample', 'samples', 'p50/op', 'p99/op', 'max/op', 'ops/s', 'note'],
    rows.map((r) => [
      r.name,
      String(r.opsPerSample),
      String(r.samples),
      fmtNs(r.p50Ns),
      fmtNs(r.p99Ns),
      fmtNs(r.maxNs),
      fmtRate(r.opsPerSec),
      r.note ?? '',
    ]),
  )
}

function batchTable(rows: readonly Row[]): string {
  return table(
    ['task', 'samples', 'p50/call', 'p99/call', 'max/call', 'calls/s', 'p50/fact', 'p99/fact', 'facts/s', 'note'],
    rows.map((r) => [
      r.name,
      String(r.samples),
      fmtNs(r.p50Ns),
      fmtNs(r.p99Ns),
      fmtNs(r.maxNs),
      fmtRate(r.opsPerSec),
      fmtNs(r.perFact!.p50Ns),
      fmtNs(r.perFact!.p99Ns),
      fmtRate(r.perFact!.factsPerSec),
      r.note ?? '',
    ]),
  )
}

function coreTable(core: readonly CoreControl[]): string {
  return table(
    ['control (Rust, timed in-process)', 'mirrors JS task', 'history', 'facts', 'chunk', 'runs', 'mean/fact', 'p50/fact', 'p99/fact', 'max/fact', 'facts/s'],
    core.map((c) => [
      c.name,
      c.mirrors,
      c.history.toLocaleString('en-US'),
      c.count.toLocaleString('en-US'),
      String(c.chunk),
      String(c.runs.length),
      fmtNs(c.meanNs),
      fmtNs(c.p50Ns),
      fmtNs(c.p99Ns),
      fmtNs(c.maxNs),
      fmtRate(c.factsPerSec),
    ]),
  )
}

function find<T extends { name: string }>(xs: readonly T[], name: string): T {
  const x = xs.find((r) => r.name === name)
  if (x === undefined) throw new Error(`no benchmark row '${name}'`)
  return x
}

async function main(): Promise<void> {
  const started = Date.now()
  const machine = collectMachine()
  const commit = gitCommit()
  const out: string[] = []
  const print = (s = ''): void => {
    out.push(s)
    console.log(s)
  }

  print(`ctfs JS benchmarks — ${new Date().toISOString()} — commit ${commit}`)
  print(formatMachine(machine))
  print(
    `config: ${cfg.history.toLocaleString('en-US')} facts of history in a fresh 'exact' kernel per admission task, ` +
      `${cfg.facts.toLocaleString('en-US')} facts measured per task; napi_floor ${floorSamples.samples} samples; ` +
      `core controls ${cfg.coreReps} runs each${quick ? ' [--quick]' : ''}`,
  )
  print('note: a sample times `ops/sample` operations together; p50/p99/max are of the per-op mean of a sample.')

  progress('napi_floor')
  const floor = runNapiFloor(floorSamples, progress)
  print()
  print('== napi_floor (controls) ==')
  print(perOpTable(floor))

  progress('admit_js')
  const admit = runAdmitJs(cfg, progress)
  const singles = admit.rows.filter((r) => r.factsPerOp === undefined)
  const batches = admit.rows.filter((r) => r.factsPerOp !== undefined)
  print()
  print(
    `== admit_js (kernel 'exact', totalSupply, ids = 32 random bytes; each admission task on a fresh kernel with ` +
      `${cfg.history.toLocaleString('en-US')} facts of history (built in ${(admit.historyBuildMs / 1000).toFixed(2)} s); ` +
      `last kernel: ${admit.kernelStats.admitted.toLocaleString('en-US')} facts, Bloom saturation ` +
      `${(admit.kernelStats.bloomSaturation * 100).toFixed(1)}%, ${admit.kernelStats.bytesPerFact.toFixed(1)} B/fact in the index) ==`,
  )
  print(perOpTable(singles))
  print()
  print(batchTable(batches))
  print()
  print(coreTable(admit.core))

  // Steady-state single admissions per invariant (short history), and a
  // custom TS invariant against its native twin.
  progress('invariants')
  const invHistory = Math.min(cfg.history, 100_000)
  const inv = runInvariantsJs(invHistory, Math.min(cfg.facts, 200_000), progress)
  print()
  print(
    `== invariants (single admit with a caller id, 0 deps, kernel 'exact', ${invHistory.toLocaleString('en-US')} facts of ` +
      `history per kernel; payloads precomputed) ==`,
  )
  print(perOpTable(inv.rows))

  // Ratios within this run: p50 over p50 unless marked mean.
  const noop = find(floor, 'N-API floorNoop()')
  const emptyJs = find(floor, 'empty JS fn')
  const three = find(floor, 'N-API floorThreeSlices(32B,16B,0B)')
  const rawSlices = find(floor, 'raw N-API slices(n,32B,16B,0B)')
  const crossing = find(floor, 'admitScratch refused before the index')
  const single0 = find(singles, 'admit(payload, {id}), 0 deps')
  const single1 = find(singles, 'admit(payload, {id, deps:[1]}), 1 dep')
  const derived = find(singles, 'admit(payload), derived id, 0 deps')
  const batch0 = find(batches, 'admitBatch(1000 facts), 0 deps')
  const batch1 = find(batches, 'admitBatch(1000 facts), 1 dep')
  const core0 = find(admit.core, 'core Kernel::admit, 0 deps')
  const core1 = find(admit.core, 'core Kernel::admit, 1 dep')
  const coreB0 = find(admit.core, 'core Kernel::admit x1000, 0 deps')
  const coreB1 = find(admit.core, 'core Kernel::admit x1000, 1 dep')
  const packed0 = find(admit.core, 'core admit_packed x1000, 0 deps')
  const packed1 = find(admit.core, 'core admit_packed x1000, 1 dep')
  const ratio = (
    name: string,
    num: { name: string },
    n: number,
    den: { name: string },
    d: number,
    opts: { target?: number; stat?: 'p50' | 'mean' } = {},
  ): Ratio => {
    const value = n / d
    return {
      name,
      stat: opts.stat ?? 'p50',
      numerator: num.name,
      denominator: den.name,
      value,
      ...(opts.target !== undefined ? { target: opts.target, pass: value <= opts.target } : {}),
    }
  }
  const pf = (r: Row): NonNullable<Row['perFact']> => r.perFact!
  const ratios: Ratio[] = [
    ratio('single admit / empty N-API call', single0, single0.p50Ns, noop, noop.p50Ns, { target: 5 }),
    ratio('single admit / empty JS fn', single0, single0.p50Ns, emptyJs, emptyJs.p50Ns),
    ratio('single admit / N-API call with 3 slices', single0, single0.p50Ns, three, three.p50Ns),
    ratio('single admit / raw N-API call of the same shape', single0, single0.p50Ns, rawSlices, rawSlices.p50Ns),
    ratio('single admit / its crossing refused before the index', single0, single0.p50Ns, crossing, crossing.p50Ns),
    ratio('single admit, 1 dep / empty N-API call', single1, single1.p50Ns, noop, noop.p50Ns),
    ratio('derived-id admit / empty N-API call', derived, derived.p50Ns, noop, noop.p50Ns),
    ratio('single admit / core admit per fact, 0 deps', single0, single0.p50Ns, core0, core0.p50Ns),
    ratio('single admit, 1 dep / core admit per fact, 1 dep', single1, single1.p50Ns, core1, core1.p50Ns),
    ratio('batch per fact / core admit per fact, 0 deps', batch0, pf(batch0).p50Ns, coreB0, coreB0.p50Ns, { target: 1.1 }),
    ratio('batch per fact / core admit per fact, 1 dep', batch1, pf(batch1).p50Ns, coreB1, coreB1.p50Ns, { target: 1.1 }),
    ratio('batch per fact / core admit per fact, 0 deps', batch0, pf(batch0).meanNs, coreB0, coreB0.meanNs, { stat: 'mean' }),
    ratio('batch per fact / core admit per fact, 1 dep', batch1, pf(batch1).meanNs, coreB1, coreB1.meanNs, { stat: 'mean' }),
    ratio('batch per fact / core admit_packed per fact, 0 deps', batch0, pf(batch0).p50Ns, packed0, packed0.p50Ns),
    ratio('batch per fact / core admit_packed per fact, 1 dep', batch1, pf(batch1).p50Ns, packed1, packed1.p50Ns),
    ratio('custom TS invariant / native gCounter, single admit', find(inv.rows, CUSTOM_CASE), find(inv.rows, CUSTOM_CASE).p50Ns, find(inv.rows, NATIVE_G_COUNTER_CASE), find(inv.rows, NATIVE_G_COUNTER_CASE).p50Ns),
  ]
  const incD = find(batches, 'gCounter increments x1000: encode + fromPayloads + admitBatch, derived ids')
  const incI = find(batches, 'gCounter increments x1000: encode + fromPayloads + admitBatch, caller ids')
  const incCore = find(admit.core, 'core admit_packed x1000, 0 deps, caller ids')
  const incCoreD = find(admit.core, 'core admit_packed x1000, 0 deps, derived ids')
  ratios.push(ratio('increments (caller ids) per fact / core admit_packed per fact, 0 deps', incI, pf(incI).p50Ns, incCore, incCore.p50Ns))
  ratios.push(ratio('increments (derived ids) per fact / core admit_packed, derived ids, per fact', incD, pf(incD).p50Ns, incCoreD, incCoreD.p50Ns))
  const core0b = find(admit.core, 'core Kernel::admit, 0 deps, binding kernel type')
  const packed0b = find(admit.core, 'core admit_packed x1000, 0 deps, binding kernel type')
  ratios.push(ratio('core Kernel::admit, binding kernel type / Kernel<TotalSupply>, 0 deps', core0b, core0b.p50Ns, core0, core0.p50Ns))
  ratios.push(ratio('batch per fact / core admit_packed (binding kernel type) per fact, 0 deps', batch0, pf(batch0).p50Ns, packed0b, packed0b.p50Ns))
  ratios.push(ratio('single admit / core admit (binding kernel type), 0 deps', single0, single0.p50Ns, core0b, core0b.p50Ns))
  const targets = [
    { name: 'gCounter increments x1000 built + admitted from JS, derived ids, ns/fact p50', value: pf(incD).p50Ns, goal: 120 },
    { name: 'gCounter increments x1000 built + admitted from JS, caller ids, ns/fact p50', value: pf(incI).p50Ns, goal: 120 },
    { name: 'single kernel.admit − core Kernel::admit, 0 deps, ns (p50 − p50)', value: single0.p50Ns - core0.p50Ns, goal: 40 },
    { name: 'single kernel.admit − core Kernel::admit, 1 dep, ns (p50 − p50)', value: single1.p50Ns - core1.p50Ns, goal: 40 },
    { name: 'single kernel.admit − core admit of the binding kernel type, 0 deps, ns', value: single0.p50Ns - core0b.p50Ns, goal: 40 },
  ]
  print()
  print(`== targets (history ${cfg.history.toLocaleString('en-US')} facts) ==`)
  print(table(['target', 'value', 'goal', ''], targets.map((t) => [t.name, t.value.toFixed(1), `≤ ${t.goal}`, t.value <= t.goal ? 'met' : 'MISSED'])))
  print()
  print('== ratios (same run) ==')
  print(
    table(
      ['ratio', 'stat', 'value', 'target', ''],
      ratios.map((r) => [
        r.name,
        r.stat,
        `${r.value < 10 ? r.value.toFixed(2) : r.value.toFixed(0)}×`,
        r.target !== undefined ? `≤ ${r.target}×` : '',
        r.pass === undefined ? '' : r.pass ? 'met' : 'MISSED',
      ]),
    ),
  )

  print()
  const refusedTotal = admit.refusedTotal + Object.values(inv.refused).reduce((a, b) => a + b, 0)
  if (refusedTotal === 0) {
    print('refused facts during measurement: 0 (every measured admission succeeded)')
  } else {
    const banner = '!'.repeat(78)
    print(banner)
    print(`!!! ${refusedTotal} FACTS WERE REFUSED DURING THE BENCHMARK — figures above are NOT success figures`)
    for (const [task, n] of Object.entries({ ...admit.refused, ...inv.refused })) print(`!!!   ${task}: ${n}`)
    print(banner)
    process.exitCode = 1
  }
  const elapsedS = (Date.now() - started) / 1000
  print(`total run time: ${elapsedS.toFixed(1)} s`)

  if (jsonPath !== undefined && jsonPath !== '') {
    const file = resolve(jsonPath)
    mkdirSync(dirname(file), { recursive: true })
    const doc = {
      schema: 'ctfs-bench-js/1',
      date: new Date(started).toISOString(),
      commit,
      machine,
      config: { ...cfg, quick },
      suites: {
        napi_floor: { rows: floor },
        admit_js: {
          rows: admit.rows,
          core: admit.core,
          historyBuildMs: admit.historyBuildMs,
          kernelStats: admit.kernelStats,
          refused: admit.refused,
          refusedTotal: admit.refusedTotal,
        },
        invariants: { rows: inv.rows, history: inv.history, refused: inv.refused },
      },
      ratios,
      targets,
      refusedTotal,
      elapsedS,
    }
    writeFileSync(file, JSON.stringify(doc, null, 2) + '\n')
    console.log(`wrote ${file}`)
  }
}

main().catch((e: unknown) => {
  console.error(e)
  process.exitCode = 1
})
