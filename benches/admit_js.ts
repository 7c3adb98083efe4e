import { randomFillSync } from 'node:crypto'
import { performance } from 'node:perf_hooks'

import { FactBatch, Kernel, invariants, isCtfsError, type Domain, type FactId, type InvariantSpec, type TotalSupply } from '../src/index.ts'
import { native } from '../src/native.ts'
import { fmtNs, median, runTask, type Row, type TimedTask } from './common.ts'

export const SUITE = 'admit_js'

const ID = 32
/** Facts per admitBatch call. */
const BATCH = 1000
/** Single admissions timed together per sample. */
const SINGLES = 64

export interface AdmitConfig {
  /** Facts admitted (via admitBatch) into each task's fresh kernel before measuring. */
  history: number
  /** Facts measured per admission task (the kernel grows from ~history to history + facts). */
  facts: number
  /** Samples of the FactBatch build tasks. */
  buildSamples: number
  /** floorCoreAdmitStats calls per control. */
  coreReps: number
}

/** What a Rust control mirrors of one JS task: same history size, same fact count, same deps. */
interface MirrorSpec {
  name: string
  /** The JS task it mirrors. */
  mirrors: string
  deps: number
  packed: boolean
  history: number
  count: number
  chunk: number
  /** Time the kernel type the binding runs (a one-member Multi of built-ins) instead of Kernel<TotalSupply>. */
  binding?: boolean
  /** The kernel derives the ids (records without one), as the JS task does. */
  derived?: boolean
}

/** The Rust control mirroring one JS task, measured. */
export interface CoreControl extends MirrorSpec {
  /** One entry per call. */
  runs: Array<{ meanNs: number; p50Ns: number; p99Ns: number; maxNs: number }>
  /** Medians over the calls, ns per fact. */
  meanNs: number
  p50Ns: number
  p99Ns: number
  maxNs: number
  factsPerSec: number
}

export interface AdmitResult {
  rows: Row[]
  core: CoreControl[]
  /** Refused facts (must be 0), per task name. */
  refused: Record<string, number>
  refusedTotal: number
  /** ms to build one history of `history` facts (first task). */
  historyBuildMs: number
  /** Kernel of the last admission task, at its end. */
  kernelStats: { admitted: number; tracked: number; bytesPerFact: number; bloomSaturation: number }
}

/** Every id admitted so far, packed, so that a dependency can be any of them. */
class IdHistory {
  #buf: Uint8Array
  count = 0

  constructor(capacity: number) {
    this.#buf = new Uint8Array(capacity * ID)
  }

  append(ids: Uint8Array): void {
    const need = (this.count * ID + ids.length)
    if (need > this.#buf.length) {
      let cap = this.#buf.length * 2
      while (cap < need) cap *= 2
      const next = new Uint8Array(cap)
      next.set(this.#buf.subarray(0, this.count * ID))
      this.#buf = next
    }
    this.#buf.set(ids, this.count * ID)
    this.count += ids.length / ID
  }

  /** A copy of a random admitted id. */
  pick(): FactId {
    const i = Math.floor(Math.random() * this.count)
    return this.#buf.slice(i * ID, i * ID + ID)
  }
}

/** `n` fresh random ids: the packed bytes and one view per id. */
function freshIds(n: number): { bytes: Uint8Array; ids: FactId[] } {
  const bytes = randomFillSync(new Uint8Array(n * ID))
  const ids: FactId[] = new Array(n)
  for (let i = 0; i < n; i++) ids[i] = bytes.subarray(i * ID, i * ID + ID)
  return { bytes, ids }
}


/** One kernel with its history, for one task. */
interface Fixture {
  kernel: Kernel<TotalSupply>
  payload: Uint8Array
  history: IdHistory
  /** Facts refused so far (history included). */
  refused: number
  /** Kernel size when the measured (run) phase began. */
  runStart: number
  buildMs: number
}

/** A fresh 'exact' kernel holding `cfg.history` facts with random ids, admitted in batches of 1,000. */
function fixture(cfg: AdmitConfig): Fixture {
  const supply = invariants.totalSupply({ initial: 0n })
  const kernel = new Kernel({ invariant: supply, causality: 'exact' })
  const payload = supply.delta(1n)
  const history = new IdHistory(cfg.history + cfg.facts + 64 * 1024)
  let refused = 0
  const t0 = performance.now()
  for (let done = 0; done < cfg.history; done += BATCH) {
    const n = Math.min(BATCH, cfg.history - done)
    const { bytes, ids } = freshIds(n)
    const b = new FactBatch()
    for (let i = 0; i < n; i++) b.add(payload, { id: ids[i]! })
    const r = kernel.admitBatch(b)
    if (r.admitted !== n || r.length !== n) {
      refused += n - r.admitted
      for (let i = 0; i < n; i++) if (r.ok(i)) history.append(ids[i]!)
    } else history.append(bytes)
  }
  return { kernel, payload, history, refused, runStart: 0, buildMs: performance.now() - t0 }
}

function singleTask(fx: Fixture, name: string, withDep: boolean): TimedTask {
  const { kernel, payload, history } = fx
  let ids: FactId[] = []
  let bytes: Uint8Array = new Uint8Array(0)
  let deps: FactId[] = []
  let failed: number[] = []
  return {
    name,
    opsPerSample: SINGLES,
    note: withDep ? 'dep: random id from the whole history' : undefined,
    prepare: () => {
      ;({ bytes, ids } = freshIds(SINGLES))
      if (withDep) {
        deps = new Array(SINGLES)
        for (let j = 0; j < SINGLES; j++) deps[j] = history.pick()
      }
      failed = []
    },
    loop: withDep
      ? () => {
          for (let j = 0; j < SINGLES; j++) {
            try {
              kernel.admit(payload, { id: ids[j]!, deps: [deps[j]!] })
            } catch (e) {
              if (!isCtfsError(e)) throw e
              failed.push(j)
            }
          }
        }
      : () => {
          for (let j = 0; j < SINGLES; j++) {
            try {
              kernel.admit(payload, { id: ids[j]! })
            } catch (e) {
              if (!isCtfsError(e)) throw e
              failed.push(j)
            }
          }
        },
    after: () => {
      if (failed.length === 0) history.append(bytes)
      else {
        fx.refused += failed.length
        for (let j = 0; j < SINGLES; j++) if (!failed.includes(j)) history.append(ids[j]!)
      }
    },
  }
}

function derivedTask(fx: Fixture, name: string): TimedTask {
  const { kernel, payload, history } = fx
  const out: Array<FactId | undefined> = new Array(SINGLES)
  let failures = 0
  return {
    name,
    opsPerSample: SINGLES,
    note: 'id derived by the kernel (keyed BLAKE3)',
    prepare: () => {
      failures = 0
      out.fill(undefined)
    },
    loop: () => {
      for (let j = 0; j < SINGLES; j++) {
        try {
          out[j] = kernel.admit(payload)
        } catch (e) {
          if (!isCtfsError(e)) throw e
          failures++
        }
      }
    },
    after: () => {
      fx.refused += failures
      for (let j = 0; j < SINGLES; j++) {
        const id = out[j]
        if (id !== undefined) history.append(id)
      }
    },
  }
}

function pickDeps(history: IdHistory, n: number): FactId[] {
  const d: FactId[] = new Array(n)
  for (let i = 0; i < n; i++) d[i] = history.pick()
  return d
}

function batchTask(fx: Fixture, name: string, withDep: boolean): TimedTask {
  const { kernel, payload, history } = fx
  let batch = new FactBatch()
  let bytes: Uint8Array = new Uint8Array(0)
  let admitted = 0
  let length = 0
  return {
    name,
    opsPerSample: 1,
    factsPerOp: BATCH,
    note: withDep ? 'fresh batch per call; dep: random id from the whole history' : 'fresh batch per call',
    prepare: () => {
      const f = freshIds(BATCH)
      bytes = f.bytes
      const deps = withDep ? pickDeps(history, BATCH) : null
      const b = new FactBatch()
      if (deps === null) for (let i = 0; i < BATCH; i++) b.add(payload, { id: f.ids[i]! })
      else for (let i = 0; i < BATCH; i++) b.add(payload, { id: f.ids[i]!, deps: [deps[i]!] })
      batch = b
      admitted = 0
      length = 0
    },
    loop: () => {
      const r = kernel.admitBatch(batch)
      admitted = r.admitted
      length = r.length
    },
    after: () => {
      if (admitted === BATCH && length === BATCH) history.append(bytes)
      else {
        fx.refused += BATCH - admitted
        for (let i = 0; i < BATCH; i++) {
          const id = batch.id(i)
          if (id !== undefined && kernel.contains(id) === 'yes') history.append(id)
        }
      }
    },
  }
}

function buildTask(payload: Uint8Array, name: string, withDep: boolean): TimedTask {
  let ids: FactId[] = []
  let deps: FactId[] = []
  let built: FactBatch | undefined
  return {
    name,
    opsPerSample: 1,
    factsPerOp: BATCH,
    note: 'new FactBatch() + 1,000 add(); not admitted',
    prepare: () => {
      ids = freshIds(BATCH).ids
      if (withDep) deps = freshIds(BATCH).ids
      built = undefined
    },
    loop: withDep
      ? () => {
          const b = new FactBatch()
          for (let i = 0; i < BATCH; i++) b.add(payload, { id: ids[i]!, deps: [deps[i]!] })
          built = b
        }
      : () => {
          const b = new FactBatch()
          for (let i = 0; i < BATCH; i++) b.add(payload, { id: ids[i]! })
          built = b
        },
    after: () => {
      if (built === undefined || built.length !== BATCH) throw new Error(`${name}: built ${built?.length} facts`)
    },
  }
}

// ------------------------------------------------- counter increments (fast path)

/**
 * The documented fast way to admit many counter increments from JS: the
 * payloads encoded by `gCounter.increments(values)` (one 8-byte payload per
 * value, from a plain array of numbers), packed by `FactBatch.fromPayloads`
 * (one native call), admitted by `admitBatch`. Everything inside the timed
 * loop: encoding, packing, admission. `ids`: caller ids (random, generated
 * untimed like every other task's); otherwise the kernel derives them.
 */
function incrementsTask(cfg: AdmitConfig, name: string, callerIds: boolean): { task: TimedTask; check: () => { inRun: number; measured: number; runStart: number; refused: number } } {
  const g = invariants.gCounter()
  const kernel = new Kernel({ invariant: g, causality: 'exact' })
  const ones = new BigUint64Array(BATCH).fill(1n)
  for (let done = 0; done < cfg.history; done += BATCH) {
    const n = Math.min(BATCH, cfg.history - done)
    kernel.admitBatch(FactBatch.fromPayloads(g.increments(ones.subarray(0, n)), 8, { ids: randomFillSync(new Uint8Array(n * ID)) }))
  }
  // Increments of 1..7 as plain numbers: the encoding is part of the timed work.
  const values: number[] = Array.from({ length: BATCH }, (_, i) => 1 + (i % 7))
  let ids: Uint8Array | undefined
  let admitted = 0
  let refused = 0
  let runStart = 0
  let samples = 0
  const task: TimedTask = {
    name,
    opsPerSample: 1,
    factsPerOp: BATCH,
    note: `gCounter.increments(number[1000]) + FactBatch.fromPayloads(payloads, 8${callerIds ? ', {ids}' : ''}) + admitBatch; ${callerIds ? 'caller ids' : 'ids derived by the kernel'}`,
    options: {
      beforeAll: (mode) => {
        if (mode === 'run') {
          runStart = kernel.stats.admitted
          samples = 0
        }
      },
    },
    prepare: () => {
      if (callerIds) ids = randomFillSync(new Uint8Array(BATCH * ID))
    },
    loop: callerIds
      ? () => {
          admitted = kernel.admitBatch(FactBatch.fromPayloads(g.increments(values), 8, { ids: ids! })).admitted
        }
      : () => {
          admitted = kernel.admitBatch(FactBatch.fromPayloads(g.increments(values), 8)).admitted
        },
    after: () => {
      refused += BATCH - admitted
      samples++
    },
  }
  return { task, check: () => ({ inRun: kernel.stats.admitted - runStart, measured: samples * BATCH, runStart, refused }) }
}

export function runAdmitJs(cfg: AdmitConfig, log: (s: string) => void): AdmitResult {
  const rows: Row[] = []
  const refused: Record<string, number> = {}
  const mirrors: MirrorSpec[] = []
  let historyBuildMs = 0
  let kernelStats: AdmitResult['kernelStats'] = { admitted: 0, tracked: 0, bytesPerFact: 0, bloomSaturation: 0 }

  const admission = (
    make: (fx: Fixture) => TimedTask,
    samples: number,
    warmup: number,
    core: Array<{ name: string; deps: number; packed: boolean; chunk: number; binding?: boolean }>,
  ): void => {
    const fx = fixture(cfg)
    if (historyBuildMs === 0) {
      historyBuildMs = fx.buildMs
      const s = fx.kernel.stats
      log(
        `admit_js: history of ${s.admitted.toLocaleString('en-US')} facts in ${fx.buildMs.toFixed(0)} ms ` +
          `(Bloom saturation ${(s.bloom.saturation * 100).toFixed(1)}%, ${s.bytesPerFact.toFixed(1)} B/fact in the index)`,
      )
    }
    const t = make(fx)
    t.options = {
      beforeAll: (mode) => {
        if (mode === 'run') fx.runStart = fx.kernel.stats.admitted
      },
    }
    const row = runTask(SUITE, t, { samples, warmup })
    const measured = row.samples * row.opsPerSample * (row.factsPerOp ?? 1)
    // Every admission accounted for: the kernel's own counters against ours.
    const s = fx.kernel.stats
    const rejected = Object.values(s.rejected).reduce((a, b) => a + b, 0)
    if (s.admitted !== fx.history.count) {
      throw new Error(`admit_js: ${t.name}: kernel admitted ${s.admitted} facts, the benchmark recorded ${fx.history.count}`)
    }
    const bad = Math.max(rejected, fx.refused)
    if (bad > 0) {
      refused[t.name] = bad
      row.note = `${row.note !== undefined ? row.note + '; ' : ''}REFUSED ${bad}`
    } else if (s.admitted - fx.runStart !== measured) {
      throw new Error(`admit_js: ${t.name}: ${s.admitted - fx.runStart} facts admitted while measuring, expected ${measured}`)
    }
    for (const c of core) {
      mirrors.push({ ...c, mirrors: t.name, history: fx.runStart, count: measured })
    }
    kernelStats = { admitted: s.admitted, tracked: s.tracked, bytesPerFact: s.bytesPerFact, bloomSaturation: s.bloom.saturation }
    rows.push(row)
    log(`admit_js: ${t.name}: p50 ${fmtNs(row.p50Ns)}/op, ${row.samples} samples, kernel ${fx.runStart} → ${s.admitted} facts`)
  }

  const singleSamples = Math.ceil(cfg.facts / SINGLES)
  const singleWarmup = Math.ceil(singleSamples / 20)
  const batchSamples = Math.ceil(cfg.facts / BATCH)
  const batchWarmup = Math.ceil(batchSamples / 20)

  admission((fx) => singleTask(fx, 'admit(payload, {id}), 0 deps', false), singleSamples, singleWarmup, [
    { name: 'core Kernel::admit, 0 deps', deps: 0, packed: false, chunk: SINGLES },
    { name: 'core Kernel::admit, 0 deps, binding kernel type', deps: 0, packed: false, chunk: SINGLES, binding: true },
  ])
  admission((fx) => singleTask(fx, 'admit(payload, {id, deps:[1]}), 1 dep', true), singleSamples, singleWarmup, [
    { name: 'core Kernel::admit, 1 dep', deps: 1, packed: false, chunk: SINGLES },
  ])
  admission((fx) => derivedTask(fx, 'admit(payload), derived id, 0 deps'), singleSamples, singleWarmup, [])
  admission((fx) => batchTask(fx, 'admitBatch(1000 facts), 0 deps', false), batchSamples, batchWarmup, [
    { name: 'core Kernel::admit x1000, 0 deps', deps: 0, packed: false, chunk: BATCH },
    { name: 'core admit_packed x1000, 0 deps', deps: 0, packed: true, chunk: BATCH },
    { name: 'core admit_packed x1000, 0 deps, binding kernel type', deps: 0, packed: true, chunk: BATCH, binding: true },
  ])
  admission((fx) => batchTask(fx, 'admitBatch(1000 facts), 1 dep', true), batchSamples, batchWarmup, [
    { name: 'core Kernel::admit x1000, 1 dep', deps: 1, packed: false, chunk: BATCH },
    { name: 'core admit_packed x1000, 1 dep', deps: 1, packed: true, chunk: BATCH },
  ])

  const payload = invariants.totalSupply({ initial: 0n }).delta(1n)
  for (const [name, withDep] of [
    ['FactBatch build (1000 add), 0 deps', false],
    ['FactBatch build (1000 add), 1 dep', true],
  ] as const) {
    const row = runTask(SUITE, buildTask(payload, name, withDep), {
      samples: cfg.buildSamples,
      warmup: Math.ceil(cfg.buildSamples / 20),
    })
    rows.push(row)
    log(`admit_js: ${name}: p50 ${fmtNs(row.p50Ns)}/batch`)
  }

  // The fast path for counter increments, built and admitted from JS.
  for (const [name, callerIds] of [
    ['gCounter increments x1000: encode + fromPayloads + admitBatch, derived ids', false],
    ['gCounter increments x1000: encode + fromPayloads + admitBatch, caller ids', true],
  ] as const) {
    const { task, check } = incrementsTask(cfg, name, callerIds)
    const row = runTask(SUITE, task, { samples: batchSamples, warmup: batchWarmup })
    const c = check()
    if (c.refused > 0) {
      refused[name] = c.refused
      row.note = `${row.note}; REFUSED ${c.refused}`
    } else if (c.inRun !== c.measured) throw new Error(`admit_js: ${name}: ${c.inRun} facts admitted while measuring, expected ${c.measured}`)
    mirrors.push({ name: `core admit_packed x1000, 0 deps, ${callerIds ? 'caller' : 'derived'} ids`, deps: 0, packed: true, chunk: BATCH, mirrors: name, history: c.runStart, count: c.measured, derived: !callerIds })
    rows.push(row)
    log(`admit_js: ${name}: p50 ${fmtNs(row.perFact!.p50Ns)}/fact, kernel ${c.runStart} → ${c.runStart + c.inRun} facts`)
  }

  // --- Same-run core controls, round-robin so that noise spreads evenly. ---
  const runs = mirrors.map(() => [] as CoreControl['runs'])
  for (let rep = 0; rep < cfg.coreReps; rep++) {
    mirrors.forEach((m, i) => {
      const r = native.floorCoreAdmitStats(m.history, m.count, m.deps, m.chunk, m.packed, m.binding === true, m.derived === true)
      runs[i]!.push({ meanNs: r.meanNs, p50Ns: r.p50Ns, p99Ns: r.p99Ns, maxNs: r.maxNs })
    })
    log(`admit_js: core controls, round ${rep + 1}/${cfg.coreReps}`)
  }
  const core: CoreControl[] = mirrors.map((m, i) => {
    const rs = runs[i]!
    const p50Ns = median(rs.map((r) => r.p50Ns))
    return {
      ...m,
      runs: rs,
      meanNs: median(rs.map((r) => r.meanNs)),
      p50Ns,
      p99Ns: median(rs.map((r) => r.p99Ns)),
      maxNs: Math.max(...rs.map((r) => r.maxNs)),
      factsPerSec: 1e9 / median(rs.map((r) => r.meanNs)),
    }
  })

  const refusedTotal = Object.values(refused).reduce((a, b) => a + b, 0)
  return { rows, core, refused, refusedTotal, historyBuildMs, kernelStats }
}

// ---------------------------------------------------------------- invariants

/** One invariant's steady-state single-admission task. */
interface InvariantCase {
  name: string
  spec: InvariantSpec
  /** `n` valid payloads for the steady state (cycled). */
  payloads: (n: number) => Uint8Array[]
  /** Admit each sample into a fresh tenant (invariants whose universe fills up). */
  tenantPerSample?: boolean
  /** A fresh payload per fact instead of a cycled pool (sets and graphs that grow). */
  fresh?: () => Uint8Array
}

export interface InvariantBenchResult {
  rows: Row[]
  /** History admitted into each kernel before measuring. */
  history: number
  refused: Record<string, number>
}

const POOL = 4096
const rnd = (): bigint => BigInt.asUintN(64, randomFillSync(new BigUint64Array(1))[0]!)
const u64le = (n: bigint): Uint8Array => {
  const b = new Uint8Array(8)
  new DataView(b.buffer).setBigUint64(0, n, true)
  return b
}

/** A u64 counter written in TypeScript: the custom twin of the native gCounter. */
export function customCounter(): InvariantSpec {
  return invariants.custom({
    name: 'u64Counter',
    class: 'commutativeMonoid',
    initial: new Uint8Array(8),
    apply(payload, state) {
      if (payload.length !== 8) throw new Error('u64Counter: payload must be 8 bytes')
      const n = new DataView(payload.buffer, payload.byteOffset, 8).getBigUint64(0, true)
      const sum = state.getBigUint64(0, true) + n
      if (sum >= 1n << 64n) throw new Error('u64Counter: overflow')
      state.setBigUint64(0, sum, true)
    },
  })
}

export const CUSTOM_CASE = 'admit custom TS invariant (u64 counter)'
export const NATIVE_G_COUNTER_CASE = 'admit gCounter (native)'

function invariantCases(): InvariantCase[] {
  const supply = invariants.totalSupply()
  const bounded = invariants.totalSupply({ initial: 1n << 100n, min: 0n, max: 1n << 120n })
  const max = invariants.max()
  const g = invariants.gCounter()
  const bg = invariants.boundedGCounter({ bound: 1n << 120n })
  const lww = invariants.lww()
  const uq = invariants.uniqueness()
  const us = invariants.uniqueSet()
  const gg = invariants.gGraph()
  const gr = invariants.graph()
  const multi = invariants.multi({ count: invariants.gCounter(), balance: invariants.totalSupply() })
  const many = <T>(n: number, f: (i: number) => T): T[] => Array.from({ length: n }, (_, i) => f(i))
  return [
    { name: 'admit totalSupply (native)', spec: supply, payloads: (n) => many(n, (i) => supply.delta(BigInt((i % 7) - 3))) },
    { name: 'admit totalSupply bounded (native)', spec: bounded, payloads: (n) => many(n, (i) => bounded.delta(BigInt((i % 7) - 3))) },
    { name: 'admit max (native)', spec: max, payloads: (n) => many(n, () => max.value(rnd())) },
    { name: NATIVE_G_COUNTER_CASE, spec: g, payloads: (n) => many(n, (i) => g.increment(i % 100)) },
    { name: CUSTOM_CASE, spec: customCounter(), payloads: (n) => many(n, (i) => u64le(BigInt(i % 100))) },
    { name: 'admit boundedGCounter (native)', spec: bg, payloads: (n) => many(n, (i) => bg.increment(i % 100)) },
    { name: 'admit lww (native)', spec: lww, payloads: (n) => many(n, (i) => lww.write(rnd(), u64le(BigInt(i)))) },
    {
      name: 'admit uniqueness (native)',
      spec: uq,
      tenantPerSample: true,
      // each sample: SINGLES distinct elements into a fresh tenant
      payloads: (n) => many(n, (i) => uq.add((i * 37) % 512)),
    },
    { name: 'admit uniqueSet (native)', spec: us, payloads: () => [], fresh: () => us.add(randomFillSync(new Uint8Array(32))) },
    {
      name: 'admit gGraph (native; re-adds once full)',
      spec: gg,
      // the 240 edges without self loops, cycled: after the first 240, every fact re-adds an edge (admitted, no-op)
      payloads: (n) =>
        many(n, (i) => {
          const e = i % 240
          const from = Math.floor(e / 15)
          const to = e % 15
          return gg.edge(from, to >= from ? to + 1 : to)
        }),
    },
    { name: 'admit graph (native)', spec: gr, payloads: () => [], fresh: () => gr.edge(rnd() & ~1n, rnd() | 1n) },
    {
      name: 'admit multi(gCounter + totalSupply), both parts',
      spec: multi,
      payloads: (n) => many(n, (i) => multi.fact({ count: multi.specs.count.increment(1), balance: multi.specs.balance.delta(BigInt((i % 5) - 2)) })),
    },
  ]
}

/**
 * Single admissions (caller id, 0 deps) into a kernel of each invariant at
 * steady state: `history` facts first (batches), then `facts` measured.
 * uniqueSet and graph get fresh random keys / edges per fact (never refused);
 * uniqueness fills a fresh tenant per sample (its universe is 512 elements).
 */
export function runInvariantsJs(history: number, facts: number, log: (s: string) => void): InvariantBenchResult {
  const rows: Row[] = []
  const refused: Record<string, number> = {}
  const samples = Math.max(20, Math.ceil(facts / SINGLES))
  const warmup = Math.ceil(samples / 20)
  // An untimed pass over every case first, so that the first measured case
  // does not pay for JIT warm-up of the shared code.
  for (const c of invariantCases()) measureInvariant(c, 1000, 20, 5)
  for (const c of invariantCases()) {
    const { row, failures } = measureInvariant(c, history, samples, warmup)
    if (failures > 0) {
      refused[c.name] = failures
      row.note = `${row.note ?? ''}; REFUSED ${failures}`
    }
    rows.push(row)
    log(`invariants: ${c.name}: p50 ${fmtNs(row.p50Ns)}/op`)
  }
  return { rows, history, refused }
}

function measureInvariant(c: InvariantCase, history: number, samples: number, warmup: number): { row: Row; failures: number } {
  const kernel = new Kernel({ invariant: c.spec, causality: 'exact' })
  const fresh = c.fresh
  const pool = fresh === undefined ? c.payloads(POOL) : []
  let next = 0
  const payload = (): Uint8Array => (fresh !== undefined ? fresh() : pool[next++ % pool.length]!)
  if (!c.tenantPerSample) {
    for (let done = 0; done < history; done += BATCH) {
      const n = Math.min(BATCH, history - done)
      const b = new FactBatch()
      for (let i = 0; i < n; i++) b.add(payload(), { id: randomFillSync(new Uint8Array(ID)) })
      kernel.admitBatch(b)
    }
  }
  let dom: Domain<InvariantSpec> = kernel
  let tenants = 0
  let ids: FactId[] = []
  let payloads: Uint8Array[] = []
  let failures = 0
  const task: TimedTask = {
    name: c.name,
    opsPerSample: SINGLES,
    note: c.tenantPerSample ? 'fresh tenant per sample' : `history ${history.toLocaleString('en-US')}`,
    prepare: () => {
      ids = freshIds(SINGLES).ids
      if (c.tenantPerSample) {
        dom = kernel.tenant(`s${tenants++}`)
        next = Math.floor(Math.random() * 512)
      }
      payloads = new Array(SINGLES)
      for (let j = 0; j < SINGLES; j++) payloads[j] = payload()
    },
    loop: () => {
      for (let j = 0; j < SINGLES; j++) {
        try {
          dom.admit(payloads[j]!, { id: ids[j]! })
        } catch (e) {
          if (!isCtfsError(e)) throw e
          failures++
        }
      }
    },
  }
  return { row: runTask(SUITE, task, { samples, warmup }), failures }
}
