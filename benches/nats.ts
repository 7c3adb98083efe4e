// The `nats` suite (see BENCHMARKING.md): three replica processes
// (benches/cluster-worker.ts, gCounter kernels in memory) replicating
// through a real nats-server with JetStream (started here: -js -sd on a
// temporary directory), against the same three processes on the TCP mesh in
// the same run.
//
//   npm run bench:nats                       # full run (about a minute on 2 cores)
//   npm run bench:nats -- --quick            # smoke run
//   npm run bench:nats -- --json out.json    # also write every figure as JSON (or CTFS_BENCH_JSON)
//   npm run bench:nats -- --facts 300000 --seconds 5
//
// Figures, per transport:
// - throughput: N facts admitted at replica 1 with admitBatch (1,000 per
//   call, yielding between calls) until all three hold them. Over NATS each
//   batch is one broadcast frame (Nats-Msg-Id = its MAC) published once to
//   the stream, which delivers it to the 3 durable consumers (replica 1
//   reads its own back and ignores it).
// - latency: admit (admitBatch returned at replica 1) -> visible at both
//   other replicas, per fact, at an offered load of 10k facts/s (and 100k),
//   flushSoon() after each batch. Clock offsets between processes are
//   measured by IPC ping (they bound the error).
// - bytes on the wire per fact: bytes written to every socket (mesh: the
//   replicas' connections; NATS: the 3 clients' connections to the server,
//   and what the server wrote to them, protocol lines included) / facts.
import { randomBytes } from 'node:crypto'
import { mkdirSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { dirname, resolve } from 'node:path'
import { parseArgs } from 'node:util'

import { freePort } from '../src/cli/local-cluster.ts'
import { NatsServer } from '../__test__/nats-server.ts'
import { ANTI_ENTROPY_MS, clockOffset, pct, sleep, Worker, type Msg } from './cluster-coordinator.ts'
import { fmtRate, table } from './common.ts'
import { collectMachine, formatMachine } from './machine.ts'

const { values } = parseArgs({
  options: {
    json: { type: 'string' },
    quick: { type: 'boolean', default: false },
    facts: { type: 'string' },
    seconds: { type: 'string' },
  },
})
const quick = values.quick === true
const jsonPath = values.json ?? process.env.CTFS_BENCH_JSON
const N = Number(values.facts ?? (quick ? 50_000 : 300_000))
const SECONDS = Number(values.seconds ?? (quick ? 2 : 5))

interface Run {
  transport: string
  visiblePerSec: number
  admittedPerSec: number
  cpuUsPerFact: number[]
  wireOutPerFact: number
  wireInPerFact: number
  latency: Array<{ offeredPerSec: number; achievedPerSec: number; p50Ms: number; p99Ms: number; maxMs: number }>
  converged: boolean
  /** Protocol counters after the throughput run, per replica. */
  protocol?: unknown
  stream?: unknown
}

async function run(transport: 'mesh' | 'nats', nats: NatsServer | null): Promise<Run> {
  const key = randomBytes(32).toString('hex')
  const ports = await Promise.all([freePort(), freePort(), freePort()])
  const all = ports.map((port, i) => ({ id: i + 1, port }))
  const natsCfg = nats !== null ? { nats: nats.url, natsCluster: `bench${Date.now()}` } : {}
  const workers = all.map(({ id, port }) => new Worker(id, { port, peers: all.filter((p) => p.id !== id), key, ...natsCfg }))
  const [w1, w2, w3] = workers as [Worker, Worker, Worker]
  try {
    await Promise.all(workers.map((w) => w.start()))
    await Promise.all(workers.map((w) => w.call({ cmd: 'synced' })))
    const offsets = (await Promise.all(workers.map(clockOffset))).map((o) => o.offset)
    const off = (w: Worker) => offsets[w.id - 1]!
    let total = 0

    // ---- throughput
    const before = await Promise.all(workers.map((w) => w.call({ cmd: 'stats' })))
    const load = await w1.call({ cmd: 'load', n: N, rate: null, maxBatch: 1000 })
    total += N
    const visible = await Promise.all([w2, w3].map((w) => w.call({ cmd: 'wait', count: total, timeoutMs: 300_000 })))
    const marks = load.marks as number[]
    const start = (load.start as number) - off(w1)
    const admittedMs = marks[marks.length - 2]! - off(w1) - start
    const visibleMs = Math.max(...visible.map((v, i) => (v.at as number) - off([w2, w3][i]!))) - start
    await sleep(ANTI_ENTROPY_MS * 2) // a probe round, as in steady state
    const after = await Promise.all(workers.map((w) => w.call({ cmd: 'stats' })))
    const sum = (dir: 'out' | 'in') => after.reduce((a, s, i) => a + (s.bytes as Record<string, number>)[dir]! - (before[i]!.bytes as Record<string, number>)[dir]!, 0)
    const cpu = after.map((s, i) => ((s.cpuUs as number) - (before[i]!.cpuUs as number)) / N)
    const r: Run = {
      transport,
      visiblePerSec: N / (visibleMs / 1000),
      admittedPerSec: N / (admittedMs / 1000),
      cpuUsPerFact: cpu,
      wireOutPerFact: sum('out') / N,
      wireInPerFact: sum('in') / N,
      latency: [],
      converged: false,
    }
    const pick = (x: Msg) => {
      const st = x.syncStats as Record<string, number>
      return { antiEntropyFactsSent: st.antiEntropyFactsSent, factsDuplicate: st.factsDuplicate, asksHeld: st.asksHeld, pushFrames: st.pushFrames, broadcastFrames: st.broadcastFrames, summariesSent: st.summariesSent }
    }
    r.protocol = after.map(pick)
    if (process.env.CTFS_BENCH_VERBOSE === '1') console.log(JSON.stringify(r.protocol))
    console.log(
      `${transport}: ${fmtRate(r.visiblePerSec)} facts/s visible at all three (admitted at replica 1: ${fmtRate(r.admittedPerSec)}/s); ` +
        `sockets: ${r.wireOutPerFact.toFixed(1)} B/fact written, ${r.wireInPerFact.toFixed(1)} B/fact read; cpu per fact ${cpu.map((x) => x.toFixed(2)).join(' / ')} µs`,
    )

    // ---- latency
    for (const rate of quick ? [10_000] : [10_000, 100_000]) {
      await Promise.all([w2, w3].map((w) => w.call({ cmd: 'reset' })))
      const n = rate * SECONDS
      const l = await w1.call({ cmd: 'load', n, rate, maxBatch: 1000, flush: 'soon' })
      const base = total
      total += n
      await Promise.all([w2, w3].map((w) => w.call({ cmd: 'wait', count: total, timeoutMs: 120_000 })))
      const ev = await Promise.all([w2, w3].map((w) => w.call({ cmd: 'events' })))
      const m = l.marks as number[]
      const lat = new Float64Array(n)
      let filled = 0
      const cursors = ev.map(() => 0)
      for (let b = 0; b < m.length; b += 2) {
        const tAdmit = m[b]! - off(w1)
        const cum = m[b + 1]!
        let tVisible = 0
        for (let x = 0; x < ev.length; x++) {
          const xs = ev[x]!.events as number[]
          let c = cursors[x]!
          while (c < xs.length && xs[c + 1]! < base + cum) c += 2
          cursors[x] = c
          const t = c < xs.length ? xs[c]! - off([w2, w3][x]!) : Infinity
          if (t > tVisible) tVisible = t
        }
        const prev = b === 0 ? 0 : m[b - 1]!
        for (let i = prev; i < cum; i++) lat[filled++] = tVisible - tAdmit
      }
      lat.sort()
      const row = { offeredPerSec: rate, achievedPerSec: n / ((m[m.length - 2]! - (l.start as number)) / 1000), p50Ms: pct(lat, 50), p99Ms: pct(lat, 99), maxMs: lat[lat.length - 1]! }
      r.latency.push(row)
      console.log(`${transport}: latency at ${fmtRate(rate)} facts/s offered (${fmtRate(row.achievedPerSec)}/s achieved): p50 ${row.p50Ms.toFixed(2)} ms, p99 ${row.p99Ms.toFixed(2)} ms, max ${row.maxMs.toFixed(2)} ms`)
    }
    const final = await Promise.all(workers.map((w) => w.call({ cmd: 'synced' })))
    r.converged = final.every((f) => f.ok === true) && new Set(final.map((f) => JSON.stringify(f.digests))).size === 1
    if (transport === 'nats') r.stream = ((await w1.call({ cmd: 'stats' })).syncStats as Record<string, unknown>).broadcastFrames
    return r
  } finally {
    await Promise.all(workers.map((w) => w.exit()))
  }
}

async function main(): Promise<void> {
  const machine = collectMachine()
  console.log(formatMachine(machine))
  console.log(`nats suite: 3 replica processes on 127.0.0.1, gCounter in memory, anti-entropy every ${ANTI_ENTROPY_MS} ms; N = ${N}, latency runs ${SECONDS} s`)
  console.log(`load average at start: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}\n`)
  const nats = await NatsServer.start()
  const result: Record<string, unknown> = { suite: 'nats', date: new Date().toISOString(), machine, loadAverageAtStart: os.loadavg(), natsServer: nats.log.find((l) => /Version:/.test(l)) ?? null }
  const runs: Run[] = []
  try {
    runs.push(await run('nats', nats))
    runs.push(await run('mesh', null))
  } finally {
    await nats.stop()
  }
  result.runs = runs
  result.loadAverageAtEnd = os.loadavg()
  const [n, m] = runs as [Run, Run]
  const rows: string[][] = [
    ['facts/s visible at all 3 (admitBatch of 1,000 at replica 1)', `${fmtRate(n.visiblePerSec)}/s`, `${fmtRate(m.visiblePerSec)}/s`],
    ['CPU per fact: replica 1 / 2 / 3', n.cpuUsPerFact.map((x) => x.toFixed(2)).join(' / ') + ' µs', m.cpuUsPerFact.map((x) => x.toFixed(2)).join(' / ') + ' µs'],
    ['socket bytes written per fact (all processes)', n.wireOutPerFact.toFixed(1), m.wireOutPerFact.toFixed(1)],
    ['socket bytes read per fact (all processes)', n.wireInPerFact.toFixed(1), m.wireInPerFact.toFixed(1)],
  ]
  for (let i = 0; i < n.latency.length; i++) {
    const a = n.latency[i]!
    const b = m.latency[i]!
    rows.push([`admit -> visible at both others, ${fmtRate(a.offeredPerSec)}/s offered`, `p50 ${a.p50Ms.toFixed(2)} ms, p99 ${a.p99Ms.toFixed(2)} ms`, `p50 ${b.p50Ms.toFixed(2)} ms, p99 ${b.p99Ms.toFixed(2)} ms`])
  }
  rows.push(['converged', String(n.converged), String(m.converged)])
  console.log('\n' + table(['figure', 'NATS JetStream', 'TCP mesh (same run)'], rows))
  console.log(`load average at end: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`)
  if (jsonPath !== undefined) {
    mkdirSync(dirname(resolve(jsonPath)), { recursive: true })
    writeFileSync(jsonPath, JSON.stringify(result, null, 2))
    console.log(`\nJSON written to ${jsonPath}`)
  }
  if (!n.converged || !m.converged) process.exitCode = 1
}

await main()
