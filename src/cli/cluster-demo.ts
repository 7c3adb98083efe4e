// `ctfs cluster-demo` (npm start): three real `ctfs node` processes on
// 127.0.0.1 with durable kernels, a mixed workload driven into all three (a
// coordination-free counter and a bounded balance with escrow), one replica
// SIGKILLed mid-way and restarted, live progress, and a verdict checked
// from the outside: same digest everywhere, every fact acknowledged durable
// present everywhere, the balance never below its bound and equal to the
// sum of the facts present.
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'


import { AdminError, startCluster, writeKey, type NodeProcess } from './local-cluster.ts'
import type { NodeStatus } from './node.ts'
import { prng } from './prng.ts'

const INITIAL = 40_000n
const INVARIANT = `counter=gCounter;balance=totalSupply:initial=${INITIAL},min=0`

interface Fact {
  id: string
  counter?: bigint
  balance?: bigint
}

interface Driver {
  node: NodeProcess
  /** Facts acknowledged durable, and facts whose answer never came (the replica died). */
  acked: Fact[]
  unknown: Fact[]
  refused: Record<string, number>
  sent: number
}

interface Row {
  state: string
  status: NodeStatus | null
}

const hexId = () => randomBytes(32).toString('hex')

/** One batch of the mixed workload: 70% counter increments, 25% spends, 5% credits. */
function batch(n: number, rnd: () => number): Fact[] {
  const out: Fact[] = []
  for (let i = 0; i < n; i++) {
    const r = rnd()
    if (r < 0.7) out.push({ id: hexId(), counter: BigInt(1 + Math.floor(rnd() * 5)) })
    else if (r < 0.95) out.push({ id: hexId(), balance: -BigInt(1 + Math.floor(rnd() * 10)) })
    else out.push({ id: hexId(), balance: BigInt(1 + Math.floor(rnd() * 20)) })
  }
  return out
}

const toJson = (f: Fact) => ({ id: f.id, ...(f.counter !== undefined ? { counter: { increment: f.counter.toString() } } : {}), ...(f.balance !== undefined ? { balance: { delta: f.balance.toString() } } : {}) })

async function drive(d: Driver, until: number, rate: number, rnd: () => number, alive: () => boolean): Promise<void> {
  const perBatch = Math.max(1, Math.round(rate / 20))
  while (Date.now() < until) {
    const started = Date.now()
    if (!alive()) {
      await sleep(50)
      continue
    }
    const facts = batch(perBatch, rnd)
    d.sent += facts.length
    try {
      const r = await d.node.api<{ ids: Array<string | null>; errors: Array<{ index: number; code: string }> }>('POST', '/admit', { facts: facts.map(toJson) }, 10_000)
      facts.forEach((f, i) => {
        if (r.ids[i] !== null) d.acked.push(f)
      })
      for (const e of r.errors) d.refused[e.code] = (d.refused[e.code] ?? 0) + 1
    } catch (e) {
      // the replica died (or its answer did): these facts may or may not be in
      if (!(e instanceof AdminError)) d.unknown.push(...facts)
      else throw e
    }
    await sleep(Math.max(0, 50 - (Date.now() - started)))
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/**
 * The terminal libraries of the live view (log-update, cli-table3): dev
 * dependencies of the repository (`npm start`), not of the package, which
 * has no runtime dependencies. Without them the demo prints plain lines.
 */
interface Terminal {
  table(head: string[], rows: string[][]): string
  update(text: string): void
  done(): void
}

async function terminal(): Promise<Terminal | null> {
  try {
    const [{ default: Table }, { default: logUpdate }] = await Promise.all([import('cli-table3'), import('log-update')])
    return {
      table(head, rows) {
        const t = new Table({ head, style: { head: [], border: [] }, chars: { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' } })
        for (const r of rows) t.push(r)
        return t.toString()
      },
      update: (text) => logUpdate(text),
      done: () => logUpdate.done(),
    }
  } catch {
    return null
  }
}

let term: Terminal | null = null

/** A table: cli-table3's when installed, else aligned columns. */
function table(head: string[], rows: string[][]): string {
  if (term !== null) return term.table(head, rows)
  const all = [head, ...rows]
  const w = head.map((_, c) => Math.max(...all.map((r) => (r[c] ?? '').length)))
  return all.map((r) => r.map((v, c) => v.padEnd(w[c] ?? 0)).join('  ')).join('\n')
}

function render(rows: Row[], drivers: Driver[], phase: string, elapsed: number, violations: number): string {
  const head = ['replica', 'state', 'admitted', 'refused', 'received', 'buffered', 'quota', 'facts', 'balance', 'digest']
  const t: string[][] = []
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i] as Row
    const s = r.status
    t.push([
      String(i + 1),
      r.state,
      s ? String(s.local.admitted) : '-',
      String(Object.values(drivers[i]?.refused ?? {}).reduce((a, b) => a + b, 0)),
      s ? String(s.received) : '-',
      s ? String(s.buffered) : '-',
      s ? (s.quota.find((q) => q.side === 'down')?.available ?? '-') : '-',
      s ? String(s.facts) : '-',
      (r as Row & { balance?: string }).balance ?? '-',
      s ? s.digest.slice(0, 16) : '-',
    ])
  }
  return (
    `ctfs cluster demo — 3 replica processes on 127.0.0.1, durable kernels\ninvariant: ${INVARIANT}\n` +
    `${phase} (${(elapsed / 1000).toFixed(1)} s)   bound violations seen: ${violations}\n${table(head, t)}\n` +
    'admitted/received: facts since the process started; refused: INSUFFICIENT_QUOTA answers (the replica asked a peer for quota);\n' +
    "quota: this replica's escrow share of the balance left to spend"
  )
}

/** `ctfs cluster-demo [--seconds S] [--rate R] [--keep]`. */
export async function clusterDemoCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { seconds: { type: 'string' }, rate: { type: 'string' }, keep: { type: 'boolean' }, seed: { type: 'string' } },
    strict: true,
  })
  const seconds = Number(values.seconds ?? 12)
  const rate = Number(values.rate ?? 2000)
  const seed = Number(values.seed ?? Date.now() % 1e9)
  if (!(seconds >= 2 && seconds <= 600) || !(rate >= 20 && rate <= 100_000) || !Number.isSafeInteger(seed)) {
    console.error('usage: ctfs cluster-demo [--seconds 2..600 (default 12)] [--rate facts/s per replica (default 2000)] [--seed N] [--keep]')
    return 2
  }
  // the live view needs a terminal and its libraries; otherwise plain lines
  if (process.stdout.isTTY === true) term = await terminal()
  const tty = term !== null
  const root = mkdtempSync(join(tmpdir(), 'ctfs-demo-'))
  const keyFile = writeKey(root)
  const rnd = prng(seed)
  const t0 = Date.now()
  const log: string[] = []
  const note = (line: string) => {
    log.push(`${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s  ${line}`)
    if (!tty) console.log(log[log.length - 1])
  }
  let nodes: NodeProcess[] = []
  const rows: Array<Row & { balance?: string }> = [0, 1, 2].map(() => ({ state: 'starting', status: null }))
  let phase = 'starting'
  let violations = 0
  let ui: ReturnType<typeof setInterval> | null = null
  let drivers: Driver[] = []
  let finished = false
  const draw = () => {
    if (tty && !finished) term?.update(render(rows, drivers, phase, Date.now() - t0, violations) + '\n' + log.slice(-6).join('\n'))
  }
  try {
    nodes = await startCluster({
      n: 3,
      keyFile,
      invariant: INVARIANT,
      dirs: (id) => join(root, `node-${id}`),
      args: () => ['--status-ms', '0', '--anti-entropy-ms', '250', '--peer-timeout-ms', '1500'],
    })
    for (const n of nodes) rows[n.id - 1]!.state = 'up'
    note(`3 replicas up (data in ${root}); seed ${seed}`)
    // live progress: status and state of every replica, every 250 ms
    let polling: Promise<unknown> | null = null
    ui = setInterval(() => {
      if (polling !== null) return
      polling = Promise.all(
        nodes.map(async (n, i) => {
          const row = rows[i]!
          if (!n.running) return
          try {
            row.status = await n.api<NodeStatus>('GET', '/status', undefined, 2000)
            const st = await n.api<{ state: { balance: { balance: string } } }>('GET', '/state', undefined, 2000)
            row.balance = st.state.balance.balance
            if (BigInt(row.balance) < 0n) violations++
          } catch {
            /* down or restarting */
          }
        }),
      ).finally(() => {
        polling = null
        draw()
      })
    }, 250)
    // the workload, into all three; replica 3 is killed at a random moment in the middle
    phase = 'workload'
    drivers = nodes.map((node) => ({ node, acked: [], unknown: [], refused: {}, sent: 0 }))
    const until = Date.now() + seconds * 1000
    const victim = nodes[2] as NodeProcess
    const killAt = seconds * 1000 * (0.3 + rnd() * 0.2)
    let victimAlive = true
    const chaos = (async () => {
      await sleep(killAt)
      victimAlive = false
      rows[2]!.state = 'KILLED'
      note(`SIGKILL replica 3 at ${(killAt / 1000).toFixed(1)} s into the workload`)
      await victim.kill('SIGKILL')
      await sleep(1500)
      rows[2]!.state = 'restarting'
      await victim.start()
      rows[2]!.state = 'up'
      victimAlive = true
      note('replica 3 restarted from its data directory (new epoch), catching up by anti-entropy')
    })()
    await Promise.all([...drivers.map((d) => drive(d, until, rate, rnd, () => d.node !== victim || victimAlive)), chaos])
    const sent = drivers.reduce((a, d) => a + d.sent, 0)
    const acked = drivers.reduce((a, d) => a + d.acked.length, 0)
    const refusals: Record<string, number> = {}
    for (const d of drivers) for (const [code, n] of Object.entries(d.refused)) refusals[code] = (refusals[code] ?? 0) + n
    note(`workload done: ${sent} facts offered, ${acked} acknowledged durable, refused ${JSON.stringify(refusals)}`)

    // convergence
    phase = 'converging'
    const synced = await Promise.all(nodes.map((n) => n.api<{ count: number; ids: string; state: string }>('GET', '/synced?peers=all&timeoutMs=20000', undefined, 30_000)))
    const digests = new Set(synced.map((d) => `${d.ids}/${d.state}`))
    // every acknowledged fact everywhere
    phase = 'checking'
    const ackedIds = drivers.flatMap((d) => d.acked.map((f) => f.id))
    const unknown = drivers.flatMap((d) => d.unknown)
    let lost = 0
    for (const n of nodes) {
      for (let i = 0; i < ackedIds.length; i += 20_000) {
        const r = await n.api<{ missing: string[] }>('POST', '/contains', { ids: ackedIds.slice(i, i + 20_000) })
        lost += r.missing.length
      }
    }
    // the state is the sum of the facts present (acknowledged, plus those whose answer was lost in the crash)
    const present = new Set<string>()
    for (let i = 0; i < unknown.length; i += 20_000) {
      const ids = unknown.slice(i, i + 20_000).map((f) => f.id)
      const r = await nodes[0]!.api<{ missing: string[] }>('POST', '/contains', { ids })
      const missing = new Set(r.missing)
      for (const id of ids) if (!missing.has(id)) present.add(id)
    }
    const facts = [...drivers.flatMap((d) => d.acked), ...unknown.filter((f) => present.has(f.id))]
    const counter = facts.reduce((a, f) => a + (f.counter ?? 0n), 0n)
    const balance = facts.reduce((a, f) => a + (f.balance ?? 0n), INITIAL)
    const states = await Promise.all(nodes.map((n) => n.api<{ state: { counter: { sum: string }; balance: { balance: string } } }>('GET', '/state')))
    let boundViolations = violations
    let mismatch = ''
    for (const [i, s] of states.entries()) {
      if (BigInt(s.state.balance.balance) < 0n) boundViolations++
      if (BigInt(s.state.counter.sum) !== counter || BigInt(s.state.balance.balance) !== balance) {
        mismatch += `replica ${i + 1}: counter ${s.state.counter.sum} (facts say ${counter}), balance ${s.state.balance.balance} (facts say ${balance}); `
      }
    }
    phase = 'done'
    if (ui !== null) clearInterval(ui)
    await polling
    draw()
    finished = true
    if (tty) term?.done()
    const count = synced[0]!.count
    console.log(
      `\n${ackedIds.length} facts acknowledged durable (${present.size} more of ${unknown.length} in flight at the crash made it in); ` +
        `${count} facts per replica; counter ${counter}, balance ${balance} of ${INITIAL}`,
    )
    if (digests.size === 1 && lost === 0 && boundViolations === 0 && mismatch === '') {
      console.log(`3 replicas converged: digest ${synced[0]!.ids}, 0 facts lost, 0 bound violations`)
      return 0
    }
    console.log(
      `FAILED: ${digests.size} distinct digests, ${lost} acknowledged facts missing, ${boundViolations} bound violations${mismatch ? `; ${mismatch}` : ''}`,
    )
    return 1
  } catch (e) {
    if (ui !== null) clearInterval(ui)
    finished = true
    if (tty) term?.done()
    console.error(`FAILED: ${(e as Error).message}`)
    for (const n of nodes) console.error(`--- replica ${n.id} (last lines)\n${n.lines.slice(-10).join('\n')}`)
    return 1
  } finally {
    if (ui !== null) clearInterval(ui)
    await Promise.all(nodes.map((n) => n.stop()))
    if (values.keep) console.log(`data kept in ${root}`)
    else rmSync(root, { recursive: true, force: true })
  }
}
