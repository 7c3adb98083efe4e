// Shared measurement helpers for the JS benchmark suites.
//
// Every task times an inner loop of `opsPerSample` operations itself and
// hands tinybench the mean per operation of that loop as the sample
// (`overriddenDuration`). Preparation (fresh ids, batches, dependency
// choices) happens in the same task function but outside the timed loop.
// So for a task with opsPerSample = K, p50/p99 are percentiles of K-op
// means; with K = 1 (batches) they are per-call latencies.
import { performance } from 'node:perf_hooks'

import { Bench, type FnOptions, type Task } from 'tinybench'

/** How many samples a task takes (count-based, so that every run does the same work). */
export interface Samples {
  samples: number
  warmup: number
}

export interface Row {
  suite: string
  name: string
  /** Operations timed together per sample (percentiles are of per-op means over this many ops). */
  opsPerSample: number
  samples: number
  /** Per operation (one call), ns. */
  p50Ns: number
  p99Ns: number
  maxNs: number
  meanNs: number
  opsPerSec: number
  /** Batch rows: facts per call and per-fact figures. */
  factsPerOp?: number
  perFact?: { p50Ns: number; p99Ns: number; meanNs: number; factsPerSec: number }
  note?: string
}

/**
 * A bench that runs exactly `samples` samples (after `warmup` untimed ones)
 * per task: no time budget, so the amount of work, and hence the size a
 * kernel reaches, is the same on every machine.
 */
export function newBench(name: string, s: Samples): Bench {
  return new Bench({
    name,
    time: 0,
    warmupTime: 0,
    iterations: s.samples,
    warmupIterations: s.warmup,
    warmup: s.warmup > 0,
    throws: true,
  })
}

export interface TimedTask {
  name: string
  opsPerSample: number
  /** Facts per operation (batch rows). */
  factsPerOp?: number
  note?: string
  /** Untimed: prepares the inputs of the next sample. */
  prepare?: () => void
  /** Timed: runs `opsPerSample` operations. */
  loop: () => void
  /** Untimed: after the timed loop (bookkeeping, checks). */
  after?: () => void
  options?: FnOptions
}

export function addTimed(bench: Bench, t: TimedTask): void {
  const k = t.opsPerSample
  const { prepare, loop, after } = t
  bench.add(
    t.name,
    () => {
      if (prepare !== undefined) prepare()
      const t0 = performance.now()
      loop()
      const dt = performance.now() - t0
      if (after !== undefined) after()
      return { overriddenDuration: dt / k, overriddenIterationCost: dt }
    },
    t.options,
  )
}

export function rowOf(suite: string, task: Task, t: Pick<TimedTask, 'opsPerSample' | 'factsPerOp' | 'note'>): Row {
  const r = task.result
  if (r.state !== 'completed') {
    const err = r.state === 'errored' ? `: ${r.error.message}` : ''
    throw new Error(`benchmark task '${task.name}' did not complete (${r.state})${err}`)
  }
  const ms = 1e6
  const lat = r.latency
  const row: Row = {
    suite,
    name: task.name,
    opsPerSample: t.opsPerSample,
    samples: lat.samplesCount,
    p50Ns: lat.p50 * ms,
    p99Ns: lat.p99 * ms,
    maxNs: lat.max * ms,
    meanNs: lat.mean * ms,
    opsPerSec: lat.mean > 0 ? 1000 / lat.mean : 0,
  }
  if (t.factsPerOp !== undefined) {
    const f = t.factsPerOp
    row.factsPerOp = f
    row.perFact = {
      p50Ns: row.p50Ns / f,
      p99Ns: row.p99Ns / f,
      meanNs: row.meanNs / f,
      factsPerSec: row.opsPerSec * f,
    }
  }
  if (t.note !== undefined) row.note = t.note
  return row
}

/** Runs one task on its own bench of `s` samples and returns its row. */
export function runTask(suite: string, t: TimedTask, s: Samples): Row {
  const bench = newBench(`${suite}: ${t.name}`, s)
  addTimed(bench, t)
  bench.runSync()
  const task = bench.getTask(t.name)
  if (task === undefined) throw new Error(`no task '${t.name}'`)
  return rowOf(suite, task, t)
}

export function fmtNs(ns: number): string {
  if (!Number.isFinite(ns)) return String(ns)
  if (ns >= 1e6) return `${(ns / 1e6).toFixed(2)} ms`
  if (ns >= 1e3) return `${(ns / 1e3).toFixed(2)} µs`
  if (ns >= 100) return `${ns.toFixed(0)} ns`
  return `${ns.toFixed(1)} ns`
}

export function fmtRate(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`
  return n.toFixed(0)
}

/** A plain fixed-width table. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n')
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const n = s.length
  if (n === 0) return NaN
  return n % 2 === 1 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2
}
