// The `cluster` suite (see BENCHMARKING.md): three replica processes on
// 127.0.0.1 (benches/cluster-worker.ts, replicate() over the TCP mesh,
// gCounter kernels), driven over IPC.
//
//   npm run bench:cluster                       # full run (a few minutes on 2 cores)
//   npm run bench:cluster -- --quick            # smoke run (small N)
//   npm run bench:cluster -- --json out.json    # also write every figure as JSON (or CTFS_BENCH_JSON)
//   npm run bench:cluster -- --catchup 1000000 --facts 300000 --seconds 5
//
// Figures:
// - throughput: N facts admitted at replica 1 with admitBatch (1,000 per
//   call, yielding to the event loop between calls), until all three hold
//   them; control in the same run: admitBatch of N facts into a plain
//   in-memory kernel in the coordinator.
// - latency: admit (admitBatch returned at replica 1) -> visible at both
//   other replicas (their admission event), per fact, at an offered load of
//   10k and 100k facts/s for --seconds each. Times are wall-clock ms of
//   different processes; the offsets between their clocks are measured by
//   IPC ping and reported (they bound the error).
// - wire bytes per fact: bytes written by all three transports (frames and
//   length prefixes, pushes, probes, anti-entropy) / facts, in the
//   throughput run.
// - catch-up: replica 3 down while N facts are admitted at replica 1; then
//   (a) restarted from its data directory (durable: log replay, then
//   anti-entropy for what it missed), (b) restarted empty in memory,
//   anti-entropy only, from both peers, (c) the same with replica 2 down
//   (one source), (d) restarted empty in memory, snapshot join, replica 2
//   down (with two peers the other one's anti-entropy races the snapshot).
//   Time from its start (listening) to holding every fact, and bytes it received.
import { randomBytes } from 'node:crypto'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os, { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { parseArgs } from 'node:util'

import { FactBatch, Kernel, invariants } from '../src/index.ts'
import { freePort } from '../src/cli/local-cluster.ts'
import { ANTI_ENTROPY_MS, clockOffset, now, pct, sleep, Worker } from './cluster-coordinator.ts'
import { fmtRate, table } from './common.ts'
import { collectMachine, formatMachine } from './machine.ts'

const { values } = parseArgs({
  options: {
    json: { type: 'string' },
    quick: { type: 'boolean', default: false },
    facts: { type: 'string' },
    catchup: { type: 'string' },
    seconds: { type: 'string' },
  },
})
const quick = values.quick === true
const jsonPath = values.json ?? process.env.CTFS_BENCH_JSON
const N_THROUGHPUT = Number(values.facts ?? (quick ? 50_000 : 300_000))
const N_CATCHUP = Number(values.catchup ?? (quick ? 50_000 : 1_000_000))
const SECONDS = Number(values.seconds ?? (quick ? 2 : 5))

// ------------------------------------------------------------- workers


// ------------------------------------------------------------------ run

async function main(): Promise<void> {
  const machine = collectMachine()
  console.log(formatMachine(machine))
  console.log(`cluster suite: 3 replica processes on 127.0.0.1, gCounter, anti-entropy every ${ANTI_ENTROPY_MS} ms; throughput N = ${N_THROUGHPUT}, catch-up N = ${N_CATCHUP}, latency runs ${SECONDS} s\n`)
  const root = mkdtempSync(join(tmpdir(), 'ctfs-bench-cluster-'))
  const key = randomBytes(32).toString('hex')
  const ports = await Promise.all([freePort(), freePort(), freePort()])
  const all = ports.map((port, i) => ({ id: i + 1, port }))
  const workers = all.map(({ id, port }) => new Worker(id, { port, peers: all.filter((p) => p.id !== id), key }))
  const [w1, w2, w3] = workers as [Worker, Worker, Worker]
  const dir3 = join(root, 'node-3')
  const result: Record<string, unknown> = { suite: 'cluster', date: new Date().toISOString(), machine, loadAverageAtStart: os.loadavg() }
  console.log(`load average at start: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')} (other processes on these cores inflate every figure)`)
  try {
    await Promise.all([w1.start(), w2.start(), w3.start({ dir: dir3 })])
    await Promise.all(workers.map((w) => w.call({ cmd: 'synced' })))
    const offsets = await Promise.all(workers.map(clockOffset))
    result.clockOffsetsMs = offsets
    const offsetOf = (w: Worker) => offsets[w.id - 1]!.offset
    console.log(`clock offsets vs coordinator: ${offsets.map((o, i) => `${i + 1}: ${o.offset.toFixed(3)} ms (rtt ${o.rtt.toFixed(3)})`).join(', ')}`)
    let total = 0

    // ---- catch-up: replica 3 down while N facts are admitted
    const catchup: Array<Record<string, unknown>> = []
    const catchUp = async (label: string, start: () => Promise<void>, onePeer = false) => {
      await w3.kill()
      if (onePeer) await w2.kill() // replica 1 is the only source
      if (label.startsWith('durable')) {
        await w1.call({ cmd: 'load', n: N_CATCHUP, rate: null, maxBatch: 1000 })
        total += N_CATCHUP
        await w2.call({ cmd: 'wait', count: total, timeoutMs: 300_000 })
      }
      const t0 = now()
      await start()
      const readyAt = now()
      const done = await w3.call({ cmd: 'wait', count: total, timeoutMs: 300_000 })
      const st = await w3.call({ cmd: 'stats' })
      const bytes = st.bytes as { in: number; out: number }
      const ms = (done.at as number) - offsetOf(w3) - readyAt
      const row = {
        mode: label,
        facts: total,
        missed: label.startsWith('durable') ? N_CATCHUP : total,
        peersUp: onePeer ? 1 : 2,
        startMs: readyAt - t0,
        catchUpMs: ms,
        bytesIn: bytes.in,
        bytesPerFact: bytes.in / (label.startsWith('durable') ? N_CATCHUP : total),
        snapshot: st.snapshot,
        held: st.count,
        sync: (({ snapshotsInstalled, snapshotBytesIn, antiEntropyFactsSent, factsDuplicate, factsAdmitted, factsDeferred }) => ({
          snapshotsInstalled,
          snapshotBytesIn,
          antiEntropyFactsSent,
          factsDuplicate,
          factsAdmitted,
          factsDeferred,
        }))(st.syncStats as Record<string, number>),
      }
      catchup.push(row)
      if (onePeer) {
        await w2.start()
        await w2.call({ cmd: 'wait', count: total, timeoutMs: 300_000 })
      }
      console.log(`catch-up ${label}: ${row.missed} facts in ${ms.toFixed(0)} ms, ${(bytes.in / 2 ** 20).toFixed(1)} MiB in (${row.bytesPerFact.toFixed(1)} B/fact)${st.snapshot ? ' [snapshot join]' : ''}; process start ${(readyAt - t0).toFixed(0)} ms; ${JSON.stringify(row.sync)}`)
    }
    await catchUp('durable restart (log replay + anti-entropy)', () => w3.start({ dir: dir3 }))
    await catchUp('empty, anti-entropy from 2 peers', () => w3.start({ snapshotMinFacts: null }))
    await catchUp('empty, anti-entropy from 1 peer', () => w3.start({ snapshotMinFacts: null }), true)
    await catchUp('empty, snapshot join from 1 peer', () => w3.start(), true)
    result.catchup = catchup
    await Promise.all(workers.map((w) => w.call({ cmd: 'synced' })))

    // ---- throughput (with control)
    let controlCpuUs = 0
    const control = (() => {
      const c0 = process.cpuUsage()
      const g = invariants.gCounter()
      const k = new Kernel({ invariant: g })
      const inc = g.increment(1n)
      const t0 = now()
      for (let done = 0; done < N_THROUGHPUT; done += 1000) {
        const b = new FactBatch()
        for (let i = 0; i < 1000; i++) b.add(inc)
        k.admitBatch(b)
      }
      const c = process.cpuUsage(c0)
      controlCpuUs = c.user + c.system
      return N_THROUGHPUT / ((now() - t0) / 1000)
    })()
    const before = await Promise.all(workers.map((w) => w.call({ cmd: 'stats' })))
    const load = await w1.call({ cmd: 'load', n: N_THROUGHPUT, rate: null, maxBatch: 1000 })
    total += N_THROUGHPUT
    const visible = await Promise.all([w2, w3].map((w) => w.call({ cmd: 'wait', count: total, timeoutMs: 300_000 })))
    const marks = load.marks as number[]
    const start = (load.start as number) - offsetOf(w1)
    const admittedMs = marks[marks.length - 2]! - offsetOf(w1) - start
    const visibleMs = Math.max(...visible.map((v, i) => (v.at as number) - offsetOf([w2, w3][i]!))) - start
    await sleep(ANTI_ENTROPY_MS * 2) // let a probe round go by, as in steady state
    const after = await Promise.all(workers.map((w) => w.call({ cmd: 'stats' })))
    const wire = after.reduce((a, s, i) => a + (s.bytes as { out: number }).out - (before[i]!.bytes as { out: number }).out, 0)
    const pushed = (after[0]!.bytes as { out: number }).out - (before[0]!.bytes as { out: number }).out
    // CPU per fact, which contention for the cores does not inflate as much as wall time
    const cpu = after.map((s, i) => ((s.cpuUs as number) - (before[i]!.cpuUs as number)) / N_THROUGHPUT)
    const controlCpu = controlCpuUs / N_THROUGHPUT
    const throughput = {
      facts: N_THROUGHPUT,
      cpuUsPerFact: cpu,
      controlCpuUsPerFact: controlCpu,
      admittedPerSec: N_THROUGHPUT / (admittedMs / 1000),
      visiblePerSec: N_THROUGHPUT / (visibleMs / 1000),
      controlPerSec: control,
      ratio: N_THROUGHPUT / (visibleMs / 1000) / control,
      wireBytesPerFact: wire / N_THROUGHPUT,
      originBytesPerFact: pushed / N_THROUGHPUT,
    }
    result.throughput = throughput
    console.log(
      `throughput: ${fmtRate(throughput.visiblePerSec)} facts/s visible at all three (admitted at replica 1: ${fmtRate(throughput.admittedPerSec)}/s); ` +
        `control single-node admitBatch ${fmtRate(control)}/s (ratio ${throughput.ratio.toFixed(2)}); wire ${throughput.wireBytesPerFact.toFixed(1)} B/fact (replica 1 out: ${throughput.originBytesPerFact.toFixed(1)})`,
    )
    console.log(`cpu per fact: replica 1 ${cpu[0]!.toFixed(2)} µs, replicas 2/3 ${cpu[1]!.toFixed(2)} / ${cpu[2]!.toFixed(2)} µs; control ${controlCpu.toFixed(2)} µs`)

    // ---- latency at offered loads
    const latency: Array<Record<string, unknown>> = []
    const runs: Array<{ rate: number; flush: 'soon' | 'tick' }> = [
      { rate: 10_000, flush: 'soon' },
      { rate: 100_000, flush: 'soon' },
      { rate: 10_000, flush: 'tick' },
    ]
    for (const { rate, flush } of runs) {
      await Promise.all([w2, w3].map((w) => w.call({ cmd: 'reset' }))) // received = facts held = total
      const n = rate * SECONDS
      const l = await w1.call({ cmd: 'load', n, rate, maxBatch: 1000, flush })
      const base = total
      total += n
      await Promise.all([w2, w3].map((w) => w.call({ cmd: 'wait', count: total, timeoutMs: 120_000 })))
      const ev = await Promise.all([w2, w3].map((w) => w.call({ cmd: 'events' })))
      const m = l.marks as number[] // (time, facts of this phase admitted so far) after every admitBatch at replica 1
      const lat = new Float64Array(n)
      let filled = 0
      const cursors = ev.map(() => 0)
      for (let b = 0; b < m.length; b += 2) {
        const tAdmit = m[b]! - offsetOf(w1)
        const cum = m[b + 1]!
        let tVisible = 0
        for (let r = 0; r < ev.length; r++) {
          const xs = ev[r]!.events as number[] // (time, facts held) at every admission event
          let c = cursors[r]!
          while (c < xs.length && xs[c + 1]! < base + cum) c += 2
          cursors[r] = c
          const t = c < xs.length ? xs[c]! - offsetOf([w2, w3][r]!) : Infinity
          if (t > tVisible) tVisible = t
        }
        const prev = b === 0 ? 0 : m[b - 1]!
        for (let i = prev; i < cum; i++) lat[filled++] = tVisible - tAdmit
      }
      lat.sort()
      const row = {
        offeredPerSec: rate,
        push: flush === 'soon' ? 'flushSoon() after each admitBatch' : 'timer only (tickMs 2)',
        facts: n,
        achievedPerSec: n / ((m[m.length - 2]! - (l.start as number)) / 1000),
        p50Ms: pct(lat, 50),
        p99Ms: pct(lat, 99),
        maxMs: lat[lat.length - 1],
      }
      latency.push(row)
      console.log(`latency at ${fmtRate(rate)} facts/s offered (${fmtRate(row.achievedPerSec)}/s achieved, push by ${row.push}): admit -> visible at all three p50 ${row.p50Ms.toFixed(2)} ms, p99 ${row.p99Ms.toFixed(2)} ms, max ${row.maxMs!.toFixed(2)} ms`)
    }
    result.latency = latency
    const final = await Promise.all(workers.map((w) => w.call({ cmd: 'synced' })))
    result.converged = new Set(final.map((f) => JSON.stringify(f.digests))).size === 1
    result.rssBytes = (await Promise.all(workers.map((w) => w.call({ cmd: 'stats' })))).map((s) => s.rss)

    result.loadAverageAtEnd = os.loadavg()
    console.log('\n' + table(['figure', 'value', 'control / note'], summaryRows(result)))
    console.log(`load average at end: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}; converged: ${result.converged}`)
  } finally {
    await Promise.all(workers.map((w) => w.exit().catch(() => w.kill())))
    rmSync(root, { recursive: true, force: true })
  }
  if (jsonPath !== undefined) {
    mkdirSync(dirname(resolve(jsonPath)), { recursive: true })
    writeFileSync(jsonPath, JSON.stringify(result, null, 2))
    console.log(`\nJSON written to ${jsonPath}`)
  }
}

function summaryRows(r: Record<string, unknown>): string[][] {
  const t = r.throughput as Record<string, number>
  const lat = r.latency as Array<Record<string, number>>
  const cu = r.catchup as Array<Record<string, unknown>>
  const rows: string[][] = [
    ['facts/s visible at all 3 (admitBatch at replica 1)', `${fmtRate(t.visiblePerSec!)}/s`, `single-node admitBatch ${fmtRate(t.controlPerSec!)}/s: ratio ${t.ratio!.toFixed(2)}`],
    ['wire bytes per fact (all 3 transports)', t.wireBytesPerFact!.toFixed(1), `replica 1 out ${t.originBytesPerFact!.toFixed(1)} (2 pushes)`],
    [
      'CPU per fact: origin / receivers',
      `${(t.cpuUsPerFact as unknown as number[]).map((x) => x.toFixed(2)).join(' / ')} µs`,
      `single-node admitBatch ${(t.controlCpuUsPerFact as number).toFixed(2)} µs`,
    ],
  ]
  for (const l of lat) {
    rows.push([`admit -> visible everywhere at ${fmtRate(l.offeredPerSec!)}/s offered`, `p50 ${l.p50Ms!.toFixed(2)} ms, p99 ${l.p99Ms!.toFixed(2)} ms`, `max ${l.maxMs!.toFixed(1)} ms; push by ${(l as unknown as { push: string }).push}`])
  }
  for (const c of cu) {
    rows.push([`catch-up, ${c.mode}`, `${c.missed} facts: ${((c.catchUpMs as number) / 1000).toFixed(2)} s`, `${((c.bytesIn as number) / 2 ** 20).toFixed(1)} MiB in, ${(c.bytesPerFact as number).toFixed(1)} B/fact`])
  }
  return rows
}

await main()
