// One replica process of the cluster benchmark (benches/cluster.ts forks
// three): a gCounter kernel (in memory, or durable with `dir`) replicated
// with replicate() on 127.0.0.1, driven over IPC by the coordinator.
//
// Receivers record (time, facts received so far) at every admission event;
// the origin records (time, facts admitted so far) after every batch. All
// times are performance.timeOrigin + performance.now() (ms), comparable
// across processes of one machine (the coordinator measures the offsets).
import { DurableKernel, FactBatch, Kernel, invariants, replicate, type ClusterNode, type InvariantSpec } from '../src/index.ts'

interface WorkerConfig {
  id: number
  port: number
  peers: Array<{ id: number; port: number }>
  key: string
  dir?: string
  snapshotMinFacts?: number | null
  antiEntropyMs: number
}

const cfg = JSON.parse(process.env.CTFS_BENCH_WORKER ?? '{}') as WorkerConfig
const now = () => performance.timeOrigin + performance.now()
const send = (m: unknown) => process.send?.(m)

const nodes = [1n, 2n, 3n]
const invariant = invariants.gCounter()
const kernel: Kernel<InvariantSpec> =
  cfg.dir !== undefined
    ? await DurableKernel.open({ dir: cfg.dir, invariant, replica: { nodes, local: BigInt(cfg.id) } })
    : new Kernel({ invariant, replica: { nodes, local: BigInt(cfg.id) } })
const node: ClusterNode<InvariantSpec> = await replicate(kernel, {
  key: new Uint8Array(Buffer.from(cfg.key, 'hex')),
  listen: `127.0.0.1:${cfg.port}`,
  peers: cfg.peers.map((p) => `${p.id}@127.0.0.1:${p.port}`),
  sync: {
    antiEntropyMs: cfg.antiEntropyMs,
    ...(cfg.snapshotMinFacts !== undefined ? { snapshotMinFacts: cfg.snapshotMinFacts ?? Infinity } : {}),
  },
})
node.on('error', () => {})

let received = 0
let events: number[] = []
node.on('fact', (e) => {
  received += e.facts
  events.push(now(), received)
})
let snapshot: { at: number; facts: number; bytes: number } | null = null
node.on('sync', (e) => {
  if (e.type === 'snapshotInstalled') {
    snapshot = { at: now(), facts: e.facts, bytes: Number(e.bytes) }
    received = kernel.frontier.count
    events.push(now(), received)
  }
})

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const immediate = () => new Promise((r) => setImmediate(r))

/** Admits `n` facts at `rate` facts/s (Infinity: as fast as admitBatch goes, yielding between batches). */
async function load(n: number, rate: number, maxBatch: number, flushSoon: boolean): Promise<number[]> {
  const marks: number[] = []
  const inc = invariant.increment(1n)
  const start = now()
  let done = 0
  while (done < n) {
    const due = rate === Infinity ? n : Math.min(n, Math.floor(((now() - start) * rate) / 1000))
    if (due <= done) {
      await sleep(1)
      continue
    }
    const k = Math.min(due - done, maxBatch)
    const b = new FactBatch()
    for (let i = 0; i < k; i++) b.add(inc)
    kernel.admitBatch(b)
    done += k
    marks.push(now(), done)
    if (flushSoon) node.flushSoon() // else the node's timer pushes within tickMs
    await immediate()
  }
  return marks
}

/** CPU time this process used so far (user + system), µs. */
function cpuUs(): number {
  const c = process.cpuUsage()
  return c.user + c.system
}

function transportBytes(): { out: number; in: number } {
  const t = node.stats.transport
  return { out: t.peers.reduce((a, p) => a + p.bytesOut, 0), in: t.peers.reduce((a, p) => a + p.bytesIn, 0) }
}

process.on('message', async (m: { cmd: string; [k: string]: unknown }) => {
  switch (m.cmd) {
    case 'now':
      send({ cmd: 'now', t: now() })
      break
    case 'load': {
      const start = now()
      const marks = await load(m.n as number, (m.rate as number | null) ?? Infinity, (m.maxBatch as number) ?? 1000, m.flush !== 'tick')
      send({ cmd: 'load', marks, start })
      break
    }
    case 'events':
      send({ cmd: 'events', events, received })
      events = []
      break
    case 'reset':
      // from now on `received` is the number of facts held (only replica 1 admits)
      events = []
      received = kernel.frontier.count
      send({ cmd: 'reset', received })
      break
    case 'wait': {
      // until this replica holds `count` facts
      const count = m.count as number
      const t0 = now()
      while (kernel.frontier.count < count && now() - t0 < (m.timeoutMs as number)) await sleep(2)
      send({ cmd: 'wait', at: now(), count: kernel.frontier.count })
      break
    }
    case 'stats':
      send({ cmd: 'stats', cpuUs: cpuUs(), bytes: transportBytes(), count: kernel.frontier.count, snapshot, rss: process.memoryUsage.rss(), syncStats: JSON.parse(JSON.stringify(node.sync.stats, (_k, v) => (typeof v === 'bigint' ? Number(v) : v))) })
      break
    case 'synced':
      try {
        const d = await node.synced({ peers: 'all', timeoutMs: (m.timeoutMs as number) ?? 60_000 })
        send({ cmd: 'synced', ok: true, digests: d })
      } catch (e) {
        send({ cmd: 'synced', ok: false, error: (e as Error).message })
      }
      break
    case 'exit':
      await node.close()
      if (kernel instanceof DurableKernel) await kernel.close()
      process.exit(0)
  }
})
send({ cmd: 'ready' })
