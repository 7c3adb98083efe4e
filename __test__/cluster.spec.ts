// The cluster transport in one process, on real TCP sockets on 127.0.0.1:
// framing, peer specs, the bounded send queue, replicate() for every
// coordination-free invariant, run-time membership and failure events.
// (Separate processes, crashes and hostile peers: cluster-process.spec.ts.)
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'

import test from 'ava'

import {
  ClusterError,
  FactBatch,
  Kernel,
  invariants,
  loadClusterFile,
  parseAddress,
  parsePeer,
  readKeyFile,
  replicate,
  type ClusterNode,
  type InvariantSpec,
} from '../src/index.ts'
import { Connection } from '../src/cluster/connection.ts'
import { FrameDecoder, lengthPrefix } from '../src/cluster/framing.ts'
import { prng, tempDir } from './helpers.ts'

const KEY = new Uint8Array(randomBytes(32))
const NODES = [1n, 2n, 3n]

/** Three replicas of `make()` on 127.0.0.1, each told the others' addresses at run time. */
async function trio<I extends InvariantSpec>(make: () => I, opts: { key?: (id: bigint) => Uint8Array } = {}) {
  const kernels = NODES.map((local) => new Kernel({ invariant: make(), replica: { nodes: NODES, local } }))
  const nodes: ClusterNode<I>[] = []
  for (const k of kernels) {
    nodes.push(await replicate(k, { key: opts.key?.(k.replica!.local) ?? KEY, listen: '127.0.0.1:0', sync: { antiEntropyMs: 100 }, peerTimeoutMs: 2000 }))
  }
  for (const a of nodes) for (const b of nodes) if (a !== b) a.addPeer({ id: b.local, address: b.address! })
  return { kernels, nodes, close: () => Promise.all(nodes.map((n) => n.close())) }
}

// ------------------------------------------------------------------ framing

test('the frame decoder reassembles frames split anywhere and refuses a length above the limit before buffering', (t) => {
  const frames = [new Uint8Array(10).fill(1), new Uint8Array(3000).fill(2), new Uint8Array(1).fill(3)]
  const stream = Buffer.concat(frames.flatMap((f) => [lengthPrefix(f.length), f]))
  const rnd = prng(3)
  for (let trial = 0; trial < 50; trial++) {
    const d = new FrameDecoder(4096)
    const got: number[][] = []
    let at = 0
    while (at < stream.length) {
      const n = 1 + Math.floor(rnd() * 700)
      t.is(
        d.push(stream.subarray(at, at + n), (f) => (got.push([f.length, f[0]!]), true)),
        null,
      )
      at += n
    }
    t.deepEqual(got, [
      [10, 1],
      [3000, 2],
      [1, 3],
    ])
    t.is(d.buffered, 0)
  }
  const d = new FrameDecoder(4096)
  const err = d.push(Buffer.concat([lengthPrefix(4097), Buffer.alloc(100)]), () => t.fail() as never)
  t.deepEqual(err, { length: 4097, limit: 4096 })
  t.is(d.buffered, 0, 'nothing of the oversized frame was kept')
  t.deepEqual(new FrameDecoder(10).push(lengthPrefix(0), () => true), { length: 0, limit: 10 })
})

test('peer specs, addresses, the cluster file and the key file', (t) => {
  t.deepEqual(parsePeer('2@127.0.0.1:7002'), { id: 2n, address: { host: '127.0.0.1', port: 7002 } })
  t.deepEqual(parsePeer({ id: 3, address: '[::1]:9' }), { id: 3n, address: { host: '::1', port: 9 } })
  t.throws(() => parsePeer('127.0.0.1:7002'), { code: 'ERR_OUT_OF_RANGE', message: /node ids route frames/ })
  t.throws(() => parseAddress('127.0.0.1:70000'), { code: 'ERR_OUT_OF_RANGE' })
  t.throws(() => parseAddress(7 as never), { code: 'ERR_INVALID_ARG_TYPE' })
  const dir = tempDir(t)
  const file = join(dir, 'cluster.json')
  writeFileSync(file, JSON.stringify({ cluster: 'c', keyFile: 'k', nodes: [{ id: 1, address: '127.0.0.1:1' }, '2@127.0.0.1:2'] }))
  t.deepEqual(loadClusterFile(file), {
    cluster: 'c',
    keyFile: 'k',
    nodes: [
      { id: 1n, address: { host: '127.0.0.1', port: 1 } },
      { id: 2n, address: { host: '127.0.0.1', port: 2 } },
    ],
  })
  writeFileSync(file, '{"nodes": [{"id": 1, "address": "x:1"}, {"id": 1, "address": "y:2"}]}')
  t.throws(() => loadClusterFile(file), { code: 'INVALID_ARGUMENT', message: /listed twice/ })
  const key = join(dir, 'k')
  writeFileSync(key, Buffer.from(KEY).toString('hex') + '\n')
  t.deepEqual(readKeyFile(key), KEY)
  writeFileSync(key, 'short')
  t.throws(() => readKeyFile(key), { code: 'INVALID_ARGUMENT' })
})

test('a send queue is bounded in bytes against a peer that does not read, and respects drain', async (t) => {
  const held: net.Socket[] = []
  const server = net.createServer((s) => {
    s.pause() // never reads
    held.push(s)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as net.AddressInfo).port
  const socket = net.connect(port, '127.0.0.1')
  await new Promise((r) => socket.once('connect', r))
  const limit = 1 << 20
  const c = new Connection(socket, 'outbound', `127.0.0.1:${port}`, { maxFrameBytes: 1 << 20, sendQueueBytes: limit }, {
    frame: () => true,
    framing: () => {},
    closed: () => {},
  })
  const frame = new Uint8Array(60_000)
  let accepted = 0
  let maxQueued = 0
  for (let round = 0; round < 40; round++) {
    for (let i = 0; i < 50; i++) if (c.send(frame)) accepted++
    maxQueued = Math.max(maxQueued, c.queuedBytes)
    await new Promise((r) => setTimeout(r, 5))
  }
  t.true(maxQueued <= limit, `queued ${maxQueued} > ${limit}`)
  t.true(c.droppedFrames > 0)
  t.is(accepted + c.droppedFrames, 2000)
  // the kernel's socket buffers took some: frames accepted beyond the queue went to the socket, not to memory
  t.true(accepted * 60_004 > limit)
  // once the peer reads, the queue drains and frames flow again
  for (const s of held) s.resume()
  await new Promise((r) => setTimeout(r, 100))
  t.true(c.send(frame))
  c.destroy('done')
  for (const s of held) s.destroy()
  await new Promise<void>((r) => server.close(() => r()))
})

// -------------------------------------------------- every coordination-free invariant

const text = (s: string) => new TextEncoder().encode(s)
const FREE: Array<[string, () => InvariantSpec, (spec: never, rnd: () => number) => Uint8Array]> = [
  ['gCounter', () => invariants.gCounter(), (s: ReturnType<typeof invariants.gCounter>, r) => s.increment(BigInt(1 + Math.floor(r() * 9)))],
  ['max', () => invariants.max(), (s: ReturnType<typeof invariants.max>, r) => s.value(BigInt(Math.floor(r() * 1e9)))],
  ['lww', () => invariants.lww(), (s: ReturnType<typeof invariants.lww>, r) => s.write(BigInt(Math.floor(r() * 1000)), text(`v${Math.floor(r() * 1e6)}`))],
  ['uniqueness', () => invariants.uniqueness(), (s: ReturnType<typeof invariants.uniqueness>, r) => s.add(Math.floor(r() * 512))],
  ['uniqueSet', () => invariants.uniqueSet(), (s: ReturnType<typeof invariants.uniqueSet>, r) => s.add(new Uint8Array(32).fill(Math.floor(r() * 200)))],
  ['gGraph', () => invariants.gGraph(), (s: ReturnType<typeof invariants.gGraph>, r) => {
    const a = Math.floor(r() * 16)
    return s.edge(a, (a + 1 + Math.floor(r() * 15)) % 16)
  }],
  ['graph', () => invariants.graph(), (s: ReturnType<typeof invariants.graph>, r) => s.edge(BigInt(Math.floor(r() * 50)), BigInt(50 + Math.floor(r() * 50)))],
  ['totalSupply (unbounded)', () => invariants.totalSupply(), (s: ReturnType<typeof invariants.totalSupply>, r) => s.delta(BigInt(Math.floor(r() * 200) - 100))],
]

for (const [name, make, fact] of FREE) {
  test(`three replicas over TCP converge: ${name}`, async (t) => {
    const c = await trio(make)
    t.teardown(c.close)
    const rnd = prng(name.length * 7919)
    let admitted = 0
    for (let round = 0; round < 20; round++) {
      for (const k of c.kernels) {
        const b = new FactBatch()
        for (let i = 0; i < 25; i++) b.add(fact(k.invariant as never, rnd))
        admitted += k.admitBatch(b).admitted
      }
      await new Promise((r) => setTimeout(r, 3))
    }
    const ds = await Promise.all(c.nodes.map((n) => n.synced({ peers: 'all', timeoutMs: 20_000 })))
    t.is(ds[0]!.count, admitted)
    t.deepEqual(ds[1], ds[0])
    t.deepEqual(ds[2], ds[0])
    t.deepEqual(c.kernels[1]!.state, c.kernels[0]!.state)
    t.deepEqual(c.kernels[2]!.state, c.kernels[0]!.state)
    for (const n of c.nodes) {
      const st = n.stats
      t.deepEqual(st.sync.dropped, {})
      t.true(st.transport.peers.every((p) => p.connected && p.droppedFrames === 0))
    }
  })
}

// ------------------------------------------------------------- membership and events

test('typed events; removePeer closes and stops dialling, addPeer brings the peer back', async (t) => {
  const c = await trio(() => invariants.gCounter())
  t.teardown(c.close)
  const a = c.nodes[0]!
  const b = c.nodes[1]!
  await a.synced({ peers: 'all' })
  const events: string[] = []
  a.on('peer', (e) => events.push(`${e.peer}:${e.state}`))
  let facts = 0
  a.on('fact', (e) => (facts += e.facts))
  a.removePeer(2n)
  b.removePeer(1n)
  t.deepEqual(a.connected, [3n])
  t.deepEqual(events, ['2:down'])
  // facts still flow 2 -> 3 -> 1 (anti-entropy relays every origin)
  const kb = c.kernels[1]!
  for (let i = 0; i < 10; i++) kb.admit(kb.invariant.increment(1n))
  await c.nodes[2]!.synced({ peers: 'all' }) // 3 holds what 2 holds
  await a.synced({ peers: 'reachable' }) // and 1 what 3 holds
  t.is(c.kernels[0]!.read().sum, 10n)
  t.is(facts, 10)
  await new Promise((r) => setTimeout(r, 300))
  t.false(a.connected.includes(2n), 'a removed peer is not redialled')
  a.addPeer({ id: 2n, address: b.address! })
  b.addPeer({ id: 1n, address: a.address! })
  await a.synced({ peers: 'all' })
  t.deepEqual(a.connected, [2n, 3n])
  t.deepEqual(events, ['2:down', '2:up'])
  t.throws(() => a.addPeer({ id: 9n, address: '127.0.0.1:1' }), { code: 'INVALID_ARGUMENT', message: /replica\.nodes/ })
})

test('an unreachable peer is one PEER_UNREACHABLE event per failure streak, never an exception', async (t) => {
  const k = new Kernel({ invariant: invariants.gCounter(), replica: { nodes: [1n, 2n], local: 1n } })
  // nobody listens on this port
  const probe = net.createServer()
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r))
  const port = (probe.address() as net.AddressInfo).port
  await new Promise<void>((r) => probe.close(() => r()))
  const node = await replicate(k, { key: KEY, peers: [`2@127.0.0.1:${port}`], reconnect: { baseMs: 5, maxMs: 20 } })
  t.teardown(() => node.close())
  const errors: ClusterError[] = []
  node.on('error', (e) => errors.push(e))
  await new Promise((r) => setTimeout(r, 400))
  const attempts = node.stats.transport.peers[0]!
  t.true(errors.length === 1, `${errors.length} errors`)
  t.true(errors[0] instanceof ClusterError)
  t.is(errors[0]!.code, 'PEER_UNREACHABLE')
  t.is(errors[0]!.peer, 2n)
  t.true(attempts.lastError !== null)
  k.admit(k.invariant.increment(1n)) // local admission is not affected
  await t.throwsAsync(node.synced({ peers: 'all', timeoutMs: 50 }), { code: 'PEER_UNREACHABLE' })
  t.is(node.stats.errors.PEER_UNREACHABLE, 1)
})

test('a replica under another key is refused once per connection and nothing of it is admitted', async (t) => {
  const evilKey = new Uint8Array(32).fill(7)
  const c = await trio(() => invariants.gCounter(), { key: (id) => (id === 3n ? evilKey : KEY) })
  t.teardown(c.close)
  const errors: string[] = []
  c.nodes[0]!.on('error', (e) => errors.push(e.code))
  const evil = c.kernels[2]!
  for (let i = 0; i < 50; i++) evil.admit(evil.invariant.increment(100n))
  const k1 = c.kernels[0]!
  k1.admit(k1.invariant.increment(1n))
  await c.nodes[0]!.synced({ peers: 'reachable', timeoutMs: 10_000 })
  await new Promise((r) => setTimeout(r, 300))
  t.is(k1.read().sum, 1n)
  t.is(c.kernels[1]!.read().sum, 1n)
  const st = c.nodes[0]!.stats
  const refusals = st.transport.refused.AUTH_FAILED ?? 0
  t.true(refusals >= 1)
  // one report per refused connection, however many frames it carried
  t.is(errors.filter((e) => e === 'AUTH_FAILED').length, refusals)
  t.true((st.sync.dropped.AUTH_FAILED ?? 0) <= refusals + 1)
})

test('replicate() checks its inputs', async (t) => {
  const plain = new Kernel({ invariant: invariants.gCounter() })
  await t.throwsAsync(replicate(plain, { key: KEY }), { code: 'INVALID_ARGUMENT', message: /replicated kernel/ })
  const k = new Kernel({ invariant: invariants.gCounter(), replica: { nodes: [1n, 2n], local: 1n } })
  await t.throwsAsync(replicate(k, { key: KEY, peers: ['1@127.0.0.1:1'] }), { code: 'ERR_OUT_OF_RANGE' })
  await t.throwsAsync(replicate(k, { key: KEY, peers: ['2@nowhere'] }), { code: 'ERR_OUT_OF_RANGE' })
  await t.throwsAsync(replicate(k, {} as never), { code: 'ERR_INVALID_ARG_TYPE' })
  const k2 = new Kernel({ invariant: invariants.gCounter(), replica: { nodes: [1n, 2n], local: 1n } })
  await t.throwsAsync(replicate(k2, { key: KEY, peers: ['5@127.0.0.1:1'] }), { code: 'INVALID_ARGUMENT', message: /replica\.nodes/ })
})
