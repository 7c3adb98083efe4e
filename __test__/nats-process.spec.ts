// Real `ctfs node --nats` processes replicating through a real nats-server
// (JetStream, a store directory): convergence, a bounded balance with
// escrow, a replica that was offline while 100k facts were published, the
// server SIGKILLed and restarted mid-stream, and a mixed cluster (two
// replicas on the TCP mesh, one on NATS, through a bridge node).
// The server is started by each test (natsServerBinary(): a missing binary
// fails the test, it never skips).
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'

import test, { type ExecutionContext } from 'ava'
import { connect, type JetStreamManager, type StreamInfo } from 'nats'

import { freePort, NodeProcess, writeKey } from '../src/cli/local-cluster.ts'
import type { NodeStatus } from '../src/cli/node.ts'
import { convergeEveryInvariant, EVERY_FREE_INVARIANT, spendBoundedBalance } from './process-checks.ts'
import { prng, tempDir } from './helpers.ts'
import { NatsServer } from './nats-server.ts'

const FAST = ['--status-ms', '0', '--anti-entropy-ms', '150', '--peer-timeout-ms', '1500', '--cluster', 'spec']
const hexId = () => randomBytes(32).toString('hex')
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

interface Admit {
  ids: Array<string | null>
  errors: Array<{ index: number; code: string }>
}
type Digests = { count: number; ids: string; state: string }

async function server(t: ExecutionContext): Promise<NatsServer> {
  const s = await NatsServer.start()
  t.teardown(() => s.stop())
  return s
}

/** Three `ctfs node` processes on NATS only (no TCP listener). */
async function natsCluster(t: ExecutionContext, invariant: string, o: { durable?: boolean; start?: boolean } = {}) {
  const nats = await server(t)
  const dir = tempDir(t, 'ctfs-nats-')
  const keyFile = writeKey(dir)
  const ids = [1, 2, 3]
  const nodes = ids.map(
    (id) =>
      new NodeProcess({
        id,
        port: 0,
        listen: false,
        peers: ids.filter((p) => p !== id).map((p) => ({ id: p })),
        keyFile,
        invariant,
        ...(o.durable === true ? { dir: join(dir, `n${id}`) } : {}),
        args: [...FAST, '--nats', nats.url],
      }),
  )
  // registered after the server's: ava runs teardowns last-in first-out, so the nodes stop first
  t.teardown(() => Promise.all(nodes.map((n) => n.stop())))
  if (o.start !== false) await Promise.all(nodes.map((n) => n.start()))
  return { nodes, nats, dir, keyFile }
}

const synced = (nodes: NodeProcess[], peers = 'all') =>
  Promise.all(nodes.map((n) => n.api<Digests>('GET', `/synced?peers=${peers}&timeoutMs=60000`, undefined, 90_000)))

const status = (n: NodeProcess) => n.api<NodeStatus>('GET', '/status')

/** The stream's info, read with a connection of the test's own (and `also` run on its manager). */
async function streamInfo(url: string, also?: (jsm: JetStreamManager) => Promise<void>): Promise<StreamInfo> {
  const nc = await connect({ servers: url })
  try {
    const jsm = await nc.jetstreamManager()
    await also?.(jsm)
    return await jsm.streams.info('CTFS_spec')
  } finally {
    await nc.close()
  }
}

async function missingAnywhere(nodes: NodeProcess[], ids: string[]): Promise<number> {
  let missing = 0
  for (const n of nodes) {
    for (let i = 0; i < ids.length; i += 20_000) missing += (await n.api<{ missing: string[] }>('POST', '/contains', { ids: ids.slice(i, i + 20_000) })).missing.length
  }
  return missing
}

// ------------------------------------------------------------- convergence

test.serial('three processes converge through NATS JetStream for every coordination-free invariant', async (t) => {
  const { nodes } = await natsCluster(t, EVERY_FREE_INVARIANT)
  await convergeEveryInvariant(t, nodes, synced, 7)
  // the facts went through the stream: every replica published, and read the others' publications
  for (const n of nodes) {
    const s = (await status(n)).stream!
    t.true(s.acked > 0 && s.consumed >= s.acked, `node ${n.id}: ${JSON.stringify(s)}`)
    t.is(s.unacked, 0)
    t.is(s.stream, 'CTFS_spec')
  }
})

test.serial('a bounded balance with escrow over NATS never goes below its bound while all three spend', async (t) => {
  const { nodes } = await natsCluster(t, 'totalSupply:initial=3000,min=0')
  await spendBoundedBalance(t, nodes, synced, { initial: 3000n, durationMs: 5000 })
})

// ------------------------------------------------------------ offline replica

test.serial('a replica offline while 100k facts are published catches up from the stream', async (t) => {
  const { nodes } = await natsCluster(t, 'gCounter', { durable: true })
  const [n1, n2, n3] = nodes as [NodeProcess, NodeProcess, NodeProcess]
  await n1.api('POST', '/admit', { facts: [{ increment: 1 }] })
  await synced(nodes)
  await n3.stop()
  const N = 100_000
  const per = 5_000
  await Promise.all(
    [n1, n2].map(async (n) => {
      for (let i = 0; i < N / 2; i += per) {
        const res = await n.api<Admit>('POST', '/admit', { facts: Array.from({ length: per }, () => ({ increment: 1 })) })
        if (res.errors.length > 0) throw new Error(JSON.stringify(res.errors.slice(0, 3)))
      }
    }),
  )
  // everything is in the stream before node 3 comes back
  const published = async () => (await Promise.all([n1, n2].map(status))).every((s) => s.stream!.unacked === 0 && s.unpushed === 0)
  for (let i = 0; i < 200 && !(await published()); i++) await sleep(50)
  t.true(await published())
  const before = await Promise.all([n1, n2].map(status))
  const started = Date.now()
  await n3.start()
  const [d3] = await Promise.all([n3.api<Digests>('GET', '/synced?peers=all&timeoutMs=60000', undefined, 90_000)])
  const ms = Date.now() - started
  const ds = await synced(nodes)
  t.is(d3!.count, N + 1)
  t.deepEqual(ds[0], d3)
  t.deepEqual(ds[1], d3)
  const s3 = await status(n3)
  const after = await Promise.all([n1, n2].map(status))
  const shipped = after.reduce((a, s, i) => a + s.antiEntropyFactsSent - before[i]!.antiEntropyFactsSent, 0)
  // node 3 read what it missed from the stream, resuming its durable consumer; anti-entropy shipped little, if anything
  t.true(s3.stream!.consumed >= 2, JSON.stringify(s3.stream))
  t.true(s3.received >= N * 0.9, `received ${s3.received}`)
  t.true(shipped < N / 10, `anti-entropy shipped ${shipped} facts`)
  t.log(`node 3 caught up ${N} facts in ${ms} ms (process start included): ${s3.stream!.consumed} stream messages, ${(s3.stream!.consumedBytes / 2 ** 20).toFixed(1)} MiB; anti-entropy shipped ${shipped} facts`)
})

// ----------------------------------------------------------- server crash

test.serial('nats-server SIGKILLed and restarted mid-stream: nothing acknowledged is lost', async (t) => {
  const { nodes, nats } = await natsCluster(t, 'counter=gCounter;balance=totalSupply:initial=100000,min=0', { durable: true })
  const acked: string[] = []
  let failed = 0
  let running = true
  const drive = async (n: NodeProcess) => {
    const rnd = prng(n.id)
    while (running) {
      const facts = Array.from({ length: 50 }, () => (rnd() < 0.7 ? { id: hexId(), counter: { increment: 1 } } : { id: hexId(), balance: { delta: -1 } }))
      const res = await n.api<Admit>('POST', '/admit', { facts })
      res.ids.forEach((id) => id !== null && acked.push(id))
      failed += res.errors.length
      await sleep(5)
    }
  }
  const driving = nodes.map(drive)
  await sleep(1200)
  // what the stream acknowledged before the crash: at most its last sequence number then
  const ackedByStream = (await Promise.all(nodes.map(status))).reduce((a, s) => a + s.stream!.acked - s.stream!.duplicates, 0)
  const lastSeq = (await streamInfo(nats.url)).state.last_seq
  t.true(lastSeq >= ackedByStream && ackedByStream > 0)
  await nats.kill()
  const factsAtKill = acked.length
  await sleep(800) // the replicas keep admitting while the server is down
  await nats.restart()
  await sleep(1200)
  running = false
  await Promise.all(driving)
  const ds = await synced(nodes)
  t.deepEqual(ds[1], ds[0])
  t.deepEqual(ds[2], ds[0])
  t.is(await missingAnywhere(nodes, acked), 0)
  t.is(ds[0]!.count, acked.length)
  // the stream kept every publication it had acknowledged before the SIGKILL (file storage in -sd)
  // publications in flight at the crash were sent again (same Msg-Id) and acknowledged
  const settled = async () => (await Promise.all(nodes.map(status))).every((s) => s.stream!.unacked === 0)
  for (let i = 0; i < 200 && !(await settled()); i++) await sleep(50)
  const sts = await Promise.all(nodes.map(status))
  // the stream kept every message it held before the SIGKILL (file storage in -sd): sequences 1..lastSeq are all there
  const info = await streamInfo(nats.url, async (jsm) => {
    for (let seq = 1; seq <= lastSeq; seq++) {
      const m = await jsm.streams.getMessage('CTFS_spec', { seq })
      if (m.seq !== seq || m.data.length === 0) throw new Error(`message ${seq} is missing`)
    }
  })
  t.is(info.state.first_seq, 1)
  t.true(info.state.messages >= lastSeq)
  for (const s of sts) {
    t.true(s.stream!.connected)
    t.true(s.stream!.reconnects >= 1, JSON.stringify(s.stream))
    t.is(s.stream!.unacked, 0)
  }
  t.log(
    `${acked.length} facts acknowledged durable (${factsAtKill} before the kill), ${failed} refused; stream: ${ackedByStream} publications acknowledged before the kill (last sequence ${lastSeq}, all read back after the restart), ${info.state.messages} held at the end; ` +
      `retries ${sts.map((s) => s.stream!.retries).join('/')}, duplicates ${sts.map((s) => s.stream!.duplicates).join('/')}`,
  )
})

// ------------------------------------------------------------- mixed cluster

test.serial('a mixed cluster converges: nodes 1 and 2 on the TCP mesh, node 3 on NATS, node 1 bridging both', async (t) => {
  const nats = await server(t)
  const dir = tempDir(t, 'ctfs-nats-bridge-')
  const keyFile = writeKey(dir)
  const [p1, p2] = await Promise.all([freePort(), freePort()])
  const common = { keyFile, invariant: 'c=gCounter;m=max' }
  const n1 = new NodeProcess({ ...common, id: 1, port: p1!, peers: [{ id: 2, port: p2! }, { id: 3 }], args: [...FAST, '--nats', nats.url] })
  const n2 = new NodeProcess({ ...common, id: 2, port: p2!, peers: [{ id: 1, port: p1! }, { id: 3 }], args: FAST })
  const n3 = new NodeProcess({ ...common, id: 3, port: 0, listen: false, peers: [{ id: 1 }, { id: 2 }], args: [...FAST, '--nats', nats.url] })
  const nodes = [n1, n2, n3]
  t.teardown(() => Promise.all(nodes.map((n) => n.stop())))
  await Promise.all(nodes.map((n) => n.start()))
  const ids: string[] = []
  await Promise.all(
    nodes.map(async (n) => {
      for (let b = 0; b < 10; b++) {
        const res = await n.api<Admit>('POST', '/admit', { facts: Array.from({ length: 100 }, (_, i) => (i % 2 === 0 ? { id: hexId(), c: { increment: 1 } } : { id: hexId(), m: { value: n.id * 10_000 + b * 100 + i } })) })
        res.ids.forEach((id) => id !== null && ids.push(id))
      }
    }),
  )
  // node 2 never reaches node 3 (nor 3 node 2): both are synced with every peer they reach, through node 1.
  // Each node's synced() is about its own peers: node 2 can match node 1 a moment before node 1 has
  // node 3's last frames, so ask again until all three agree (convergence is eventual, bounded here).
  let ds = await synced(nodes, 'reachable')
  for (let round = 0; round < 50 && !(ds[1]!.ids === ds[0]!.ids && ds[2]!.ids === ds[0]!.ids); round++) {
    await sleep(200)
    ds = await synced(nodes, 'reachable')
  }
  t.is(ds[0]!.count, 3000)
  t.deepEqual(ds[1], ds[0])
  t.deepEqual(ds[2], ds[0])
  t.is(await missingAnywhere(nodes, ids), 0)
  const [s1, s2, s3] = await Promise.all(nodes.map(status))
  t.deepEqual(s1!.peers.filter((p) => p.connected).map((p) => p.peer), ['2', '3'])
  t.deepEqual(s2!.peers.filter((p) => p.connected).map((p) => p.peer), ['1'])
  t.deepEqual(s3!.peers.filter((p) => p.connected).map((p) => p.peer), ['1'])
  t.is(s2!.stream, null)
  t.true(s1!.stream!.acked > 0 && s3!.stream!.acked > 0)
})

test.serial('ctfs node --nats: an unreachable server is a one-line NATS_UNAVAILABLE and exit 1', async (t) => {
  const dir = tempDir(t, 'ctfs-nats-cli-')
  const keyFile = writeKey(dir)
  const port = await freePort() // nothing listens there
  const n = new NodeProcess({ id: 1, port: 0, listen: false, peers: [{ id: 2 }], keyFile, invariant: 'gCounter', args: ['--nats', `nats://127.0.0.1:${port}`, '--status-ms', '0'] })
  await t.throwsAsync(n.start(), { message: /exited \(1\)/ })
  t.true(n.lines.some((l) => /ctfs node 1: NATS_UNAVAILABLE cannot connect to the NATS server at nats:\/\/127\.0\.0\.1:\d+/.test(l)), n.lines.join('\n'))
  t.false(n.lines.some((l) => /^\s+at /.test(l)), 'no stack trace')
})
