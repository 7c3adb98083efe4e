// Real `ctfs node` processes on 127.0.0.1 (random ports, temp dirs, durable
// kernels): convergence, a bounded balance under concurrent spending,
// kill -9 and restart, hostile and stalled peers, a partition through a TCP
// proxy. Each test drives the processes through their admin API only.
import { randomBytes } from 'node:crypto'
import net from 'node:net'
import { join } from 'node:path'

import test, { type ExecutionContext } from 'ava'

import { Kernel, invariants } from '../src/index.ts'
import { lengthPrefix } from '../src/cluster/framing.ts'
import { AdminError, freePort, NodeProcess, startCluster, writeKey } from '../src/cli/local-cluster.ts'
import type { NodeStatus } from '../src/cli/node.ts'
import { convergeEveryInvariant, EVERY_FREE_INVARIANT, spendBoundedBalance } from './process-checks.ts'
import { prng, tempDir } from './helpers.ts'

const FAST = ['--status-ms', '0', '--anti-entropy-ms', '150', '--peer-timeout-ms', '1500']
const hexId = () => randomBytes(32).toString('hex')
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

interface Admit {
  ids: Array<string | null>
  errors: Array<{ index: number; code: string }>
}

async function cluster(t: ExecutionContext, invariant: string, o: { args?: string[]; durable?: boolean } = {}) {
  const dir = tempDir(t, 'ctfs-cluster-')
  const keyFile = writeKey(dir)
  const nodes = await startCluster({
    n: 3,
    keyFile,
    invariant,
    ...(o.durable !== false ? { dirs: (id: number) => join(dir, `n${id}`) } : {}),
    args: () => [...FAST, ...(o.args ?? [])],
  })
  t.teardown(() => Promise.all(nodes.map((n) => n.stop())))
  return { nodes, dir, keyFile }
}

const synced = (nodes: NodeProcess[], peers = 'all') =>
  Promise.all(nodes.map((n) => n.api<{ count: number; ids: string; state: string }>('GET', `/synced?peers=${peers}&timeoutMs=30000`)))

async function missingAnywhere(nodes: NodeProcess[], ids: string[]): Promise<number> {
  let missing = 0
  for (const n of nodes) {
    for (let i = 0; i < ids.length; i += 20_000) missing += (await n.api<{ missing: string[] }>('POST', '/contains', { ids: ids.slice(i, i + 20_000) })).missing.length
  }
  return missing
}

// --------------------------------------------------------------- convergence

test.serial('three processes converge for every coordination-free invariant (one kernel guarding all eight)', async (t) => {
  const { nodes } = await cluster(t, EVERY_FREE_INVARIANT)
  const s = await convergeEveryInvariant(t, nodes, synced, 11)
  // every member saw facts
  t.not(s.c!.sum, '0')
  t.true((s.u!.count as number) > 0)
})

test.serial('a bounded balance never goes below its bound while all three spend concurrently', async (t) => {
  const { nodes } = await cluster(t, 'totalSupply:initial=3000,min=0')
  await spendBoundedBalance(t, nodes, synced, { initial: 3000n, durationMs: 6000 })
})

// ------------------------------------------------------------------ crashes

test.serial('kill -9 of a replica at a random moment: restart, convergence, every durable acknowledgement present everywhere', async (t) => {
  const { nodes } = await cluster(t, 'counter=gCounter;balance=totalSupply:initial=100000,min=0')
  const rnd = prng(Date.now() % 100_000)
  const victim = nodes[Math.floor(rnd() * 3)]!
  const killAt = 500 + Math.floor(rnd() * 2500)
  t.log(`killing node ${victim.id} after ${killAt} ms`)
  const acked: string[] = []
  let unknown = 0
  let alive = true
  const until = Date.now() + 4500
  const drive = async (n: NodeProcess) => {
    while (Date.now() < until) {
      if (n === victim && !alive) {
        await sleep(20)
        continue
      }
      const facts = Array.from({ length: 50 }, () => (rnd() < 0.7 ? { id: hexId(), counter: { increment: 1 } } : { id: hexId(), balance: { delta: -1 } }))
      try {
        const res = await n.api<Admit>('POST', '/admit', { facts })
        res.ids.forEach((id) => id !== null && acked.push(id))
      } catch (e) {
        if (e instanceof AdminError) throw e
        unknown += facts.length // the answer was lost with the process
      }
    }
  }
  const chaos = (async () => {
    await sleep(killAt)
    alive = false
    await victim.kill('SIGKILL')
    await sleep(300)
    await victim.start()
    alive = true
  })()
  await Promise.all([...nodes.map(drive), chaos])
  const ds = await synced(nodes)
  t.deepEqual(ds[1], ds[0])
  t.deepEqual(ds[2], ds[0])
  t.is(await missingAnywhere(nodes, acked), 0)
  t.true(ds[0]!.count >= acked.length && ds[0]!.count <= acked.length + unknown)
  const st = await victim.api<NodeStatus>('GET', '/status')
  t.true(st.epoch > 0)
  t.log(`${acked.length} facts acknowledged durable, ${unknown} in flight at the kill, ${ds[0]!.count} facts everywhere`)
})

// ------------------------------------------------------------- hostile peers

/** Frames sealed by an in-process replica (node 2 of nodes 1..3) under `key` and `cluster`, addressed to node 1. */
function forgedFrames(key: Uint8Array, cluster: string | undefined, facts: number): Uint8Array[] {
  const k = new Kernel({ invariant: invariants.totalSupply({ initial: 100_000n, min: 0n }), replica: { nodes: [1n, 2n, 3n], local: 2n } })
  const s = k.replica!.sync({ key, ...(cluster !== undefined ? { cluster } : {}) })
  for (let i = 0; i < facts; i++) k.admit(k.invariant.delta(1n))
  return [...s.flush().frames, ...s.tick(1).frames].filter((f) => f.to === 1n).map((f) => new Uint8Array(f.data))
}

/** Connects to `port`, writes `chunks`, and resolves when the server closes the connection (or after `ms`). */
function attack(port: number, chunks: Uint8Array[], ms = 5000): Promise<{ closedByServer: boolean; written: number }> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1')
    let written = 0
    let done = false
    const finish = (closedByServer: boolean) => {
      if (done) return
      done = true
      s.destroy()
      resolve({ closedByServer, written })
    }
    s.on('error', () => finish(true))
    s.on('close', () => finish(true))
    s.on('data', () => {})
    s.on('connect', async () => {
      for (const c of chunks) {
        if (done) return
        written += c.length
        if (!s.write(c)) await new Promise((r) => s.once('drain', r).once('close', r))
      }
    })
    setTimeout(() => finish(false), ms).unref()
  })
}

test.serial('hostile peers (wrong key, other cluster, random bytes, 100x oversized frames) and a peer that stops reading: no crash, no admission, bounded memory, the honest peers converge', async (t) => {
  const maxFrame = 128 * 1024
  const { nodes, dir } = await cluster(t, 'totalSupply:initial=100000,min=0', {
    args: ['--max-frame-bytes', String(maxFrame), '--send-queue-bytes', String(1 << 20), '--peer-timeout-ms', '4000'],
  })
  const [n1, n2, n3] = nodes as [NodeProcess, NodeProcess, NodeProcess]
  const port1 = n1.spec.port
  const before = await n1.api<NodeStatus>('GET', '/status')
  const withKey = (f: Uint8Array[]) => f.map((x) => Buffer.concat([lengthPrefix(x.length), x]))

  // wrong key: many valid-looking frames on one connection
  const wrong = await attack(port1, withKey(forgedFrames(new Uint8Array(randomBytes(32)), undefined, 3000)))
  t.true(wrong.closedByServer, 'the server closed the wrong-key connection')
  // right key, another cluster
  const key = new Uint8Array(Buffer.from((await import('node:fs')).readFileSync(join(dir, 'cluster.key'), 'utf8').trim(), 'hex'))
  const other = await attack(port1, withKey(forgedFrames(key, 'another-cluster', 100)))
  t.true(other.closedByServer)
  // random bytes, with and without a plausible length prefix
  const junk = await attack(port1, [new Uint8Array(randomBytes(256 * 1024))])
  t.true(junk.closedByServer)
  const junk2 = await attack(port1, [lengthPrefix(1000), new Uint8Array(randomBytes(1000)), new Uint8Array(randomBytes(100_000))])
  t.true(junk2.closedByServer)
  // a valid-looking frame header announcing 100x the limit, then the bytes
  const huge = 100 * maxFrame
  const header = Buffer.alloc(40)
  header.write('CF', 0, 'latin1')
  header[2] = 1
  header[3] = 1
  header.writeUInt32LE(huge - 56, 4)
  const big = await attack(port1, [lengthPrefix(huge), header, ...Array.from({ length: 100 }, () => new Uint8Array(maxFrame))])
  t.true(big.closedByServer)
  t.true(big.written < huge, `the server read ${big.written} of ${huge} bytes before closing`)

  const after = await n1.api<NodeStatus>('GET', '/status')
  t.is(after.facts, before.facts, 'nothing admitted')
  t.true((after.refused.AUTH_FAILED ?? 0) >= 1)
  t.true((after.refused.CONFIG_MISMATCH ?? 0) >= 1)
  t.true((after.refused.FRAME_TOO_LARGE ?? 0) + (after.refused.MALFORMED_FRAME ?? 0) >= 3)
  // reported once per connection, not per frame (the wrong-key connection carried thousands of frames)
  const authLines = n1.lines.filter((l) => l.includes('AUTH_FAILED')).length
  t.true(authLines <= (after.refused.AUTH_FAILED ?? 0) + 1, `${authLines} AUTH_FAILED lines`)
  t.true(after.rssBytes - before.rssBytes < 48 * 2 ** 20, `rss grew by ${after.rssBytes - before.rssBytes}`)

  // a peer that stops reading: node 3 frozen while node 1 pushes ~20 MB to it
  n3.proc!.kill('SIGSTOP')
  let maxQueued = 0
  let dropped = 0
  const t0 = Date.now()
  const load = async (n: NodeProcess, batches: number) => {
    for (let b = 0; b < batches; b++) {
      await n.api('POST', '/admit', { facts: Array.from({ length: 10_000 }, () => ({ delta: 1 })) })
      const st = await n.api<NodeStatus>('GET', '/status')
      const p = st.peers.find((x) => x.peer === '3')!
      maxQueued = Math.max(maxQueued, p.queuedBytes)
      dropped = Math.max(dropped, p.droppedFrames)
    }
  }
  await Promise.all([load(n1, 30), load(n2, 2)])
  const admitMs = Date.now() - t0
  // the two honest replicas converge while 3 is frozen
  const [d1, d2] = await Promise.all([n1, n2].map((n) => n.api<{ count: number; ids: string }>('GET', '/synced?peers=reachable&timeoutMs=30000')))
  t.deepEqual(d1, d2)
  t.is(d1!.count, 320_000)
  const st1 = await n1.api<NodeStatus>('GET', '/status')
  t.true(maxQueued <= 1 << 20, `queued ${maxQueued}`)
  t.true(st1.rssBytes < 400 * 2 ** 20, `rss ${st1.rssBytes}`)
  t.log(`frozen peer: max queued ${maxQueued} B (bound ${1 << 20}), frames dropped ${dropped}; 320k facts admitted in ${admitMs} ms; node 1 rss ${Math.round(st1.rssBytes / 2 ** 20)} MiB`)
  // thaw: node 3 catches up
  n3.proc!.kill('SIGCONT')
  const ds = await synced(nodes)
  t.deepEqual(ds[2], ds[0])
  t.is(ds[0]!.count, 320_000)
})

// ---------------------------------------------------------------- partition

/** A TCP proxy that forwards, or black-holes (bytes discarded both ways), until healed. */
async function proxy(target: number) {
  let blackhole = false
  const pairs = new Set<[net.Socket, net.Socket]>()
  const server = net.createServer((inbound) => {
    const out = net.connect(target, '127.0.0.1')
    const pair: [net.Socket, net.Socket] = [inbound, out]
    pairs.add(pair)
    const end = () => {
      inbound.destroy()
      out.destroy()
      pairs.delete(pair)
    }
    inbound.on('error', end).on('close', end)
    out.on('error', end).on('close', end)
    inbound.on('data', (d) => blackhole || out.write(d))
    out.on('data', (d) => blackhole || inbound.write(d))
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    port: (server.address() as net.AddressInfo).port,
    partition() {
      blackhole = true
    },
    heal() {
      // a stream with a hole cannot be resumed: cut the black-holed connections, forward new ones
      for (const [a, b] of pairs) {
        a.destroy()
        b.destroy()
      }
      pairs.clear()
      blackhole = false
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  }
}

test.serial('partition through a TCP proxy, then heal: both sides admit, then converge', async (t) => {
  const dir = tempDir(t, 'ctfs-partition-')
  const keyFile = writeKey(dir)
  const ports = await Promise.all([freePort(), freePort(), freePort()])
  // 1 and 2 reach 3 only through proxies; 3 knows no address (it never dials)
  const p13 = await proxy(ports[2]!)
  const p23 = await proxy(ports[2]!)
  t.teardown(() => Promise.all([p13.close(), p23.close()]))
  const invariant = 'counter=gCounter;balance=totalSupply:initial=9000,min=0'
  const mk = (id: number, peers: Array<{ id: number; port?: number }>) =>
    new NodeProcess({ id, port: ports[id - 1]!, peers, keyFile, invariant, dir: join(dir, `n${id}`), args: FAST })
  const nodes = [
    mk(1, [{ id: 2, port: ports[1]! }, { id: 3, port: p13.port }]),
    mk(2, [{ id: 1, port: ports[0]! }, { id: 3, port: p23.port }]),
    mk(3, [{ id: 1 }, { id: 2 }]),
  ]
  await Promise.all(nodes.map((n) => n.start()))
  t.teardown(() => Promise.all(nodes.map((n) => n.stop())))
  const admit = async (n: NodeProcess, count: number) => {
    const res = await n.api<Admit>('POST', '/admit', {
      facts: Array.from({ length: count }, (_, i) => (i % 2 === 0 ? { counter: { increment: 1 } } : { balance: { delta: -1 } })),
    })
    return res.ids.filter((x) => x !== null).length
  }
  let total = 0
  for (const n of nodes) total += await admit(n, 200)
  await synced(nodes)
  p13.partition()
  p23.partition()
  // both sides keep admitting (3 alone, on its own quota)
  for (let round = 0; round < 10; round++) for (const n of nodes) total += await admit(n, 100)
  await sleep(2000) // longer than the peer timeout: the silent links are cut
  const s3 = await nodes[2]!.api<NodeStatus>('GET', '/status')
  t.true(s3.peers.every((p) => !p.connected), 'node 3 is cut off')
  const [d1] = await Promise.all([nodes[0]!.api<{ count: number }>('GET', '/synced?peers=reachable&timeoutMs=10000')])
  t.true(d1!.count < total, 'the sides differ during the partition')
  p13.heal()
  p23.heal()
  const ds = await synced(nodes)
  t.deepEqual(ds[1], ds[0])
  t.deepEqual(ds[2], ds[0])
  t.is(ds[0]!.count, total)
  const st = await nodes[2]!.api<{ state: { counter: { sum: string }; balance: { balance: string } } }>('GET', '/state')
  t.true(BigInt(st.state.balance.balance) >= 0n)
})
