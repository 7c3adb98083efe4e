// The NATS JetStream transport in one process, against a real nats-server:
// configuration errors (server unreachable, JetStream disabled, a stream
// with incompatible settings), the stream and consumer it creates, the
// duplicate window and the kernel's own duplicate refusal, and the main
// entry not loading the `nats` client.
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

import test, { type ExecutionContext } from 'ava'
import { connect, headers as natsHeaders, RetentionPolicy, type JetStreamManager, type NatsConnection } from 'nats'

import { freePort } from '../src/cli/local-cluster.ts'
import { Kernel, invariants, replicate, type ClusterNode, type InvariantSpec } from '../src/index.ts'
import { natsTransport } from '../src/nats.ts'
import { runModule } from './helpers.ts'
import { NatsServer } from './nats-server.ts'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const key = new Uint8Array(randomBytes(32))
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function server(t: ExecutionContext, o: { jetstream?: boolean } = {}): Promise<NatsServer> {
  const s = await NatsServer.start(o)
  t.teardown(() => s.stop())
  return s
}

async function client(t: ExecutionContext, s: NatsServer): Promise<{ nc: NatsConnection; jsm: JetStreamManager }> {
  const nc = await connect({ servers: s.url })
  t.teardown(() => nc.close())
  return { nc, jsm: await nc.jetstreamManager() }
}

function kernels(n = 3) {
  const counter = invariants.gCounter()
  const nodes = Array.from({ length: n }, (_, i) => BigInt(i + 1))
  return { counter, nodes, kernels: nodes.map((local) => new Kernel({ invariant: counter, replica: { nodes, local } })) }
}

async function cluster(t: ExecutionContext, s: NatsServer, cluster: string, opts: Parameters<typeof natsTransport>[0] extends infer O ? Partial<O> : never = {}) {
  const k = kernels()
  const nodes = await Promise.all(k.kernels.map((kernel) => replicate(kernel, { key, cluster, sync: { antiEntropyMs: 200 }, transport: natsTransport({ servers: s.url, ...opts }) })))
  t.teardown(() => Promise.all(nodes.map((n) => n.close())))
  return { ...k, nodes }
}

// ------------------------------------------------------------------ errors

test('natsTransport() checks its options at once: TypeError / RangeError with Node codes', (t) => {
  t.throws(() => natsTransport(undefined as never), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => natsTransport({ servers: [] }), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => natsTransport({ servers: 'nats://x', stream: 'a.b' }), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
  t.throws(() => natsTransport({ servers: 'nats://x', cluster: 'a b' }), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
  t.throws(() => natsTransport({ servers: 'nats://x', limits: { storage: 'disk' as 'file' } }), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
  t.throws(() => natsTransport({ servers: 'nats://x', limits: { maxAgeMs: 1.5 } }), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => natsTransport({ servers: 'nats://x', publishWindowBytes: 10 }), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
})

test('an unreachable server: replicate() rejects with NATS_UNAVAILABLE and the kernel is left as it was', async (t) => {
  const port = await freePort() // nothing listens there
  const { counter, kernels: [k] } = kernels(2)
  const e = await t.throwsAsync(replicate(k!, { key, transport: natsTransport({ servers: `nats://127.0.0.1:${port}`, connectTimeoutMs: 500 }) }))
  t.is((e as { code?: string }).code, 'NATS_UNAVAILABLE')
  t.regex(e!.message, new RegExp(`cannot connect to the NATS server at nats://127\\.0\\.0\\.1:${port}`))
  k!.admit(counter.increment(1)) // still usable, and replicate() can be called again
  t.is(k!.read().sum, 1n)
})

test('a server without JetStream: JETSTREAM_DISABLED, naming the fix', async (t) => {
  const s = await server(t, { jetstream: false })
  const { kernels: [k] } = kernels(2)
  const e = await t.throwsAsync(replicate(k!, { key, transport: natsTransport({ servers: s.url }) }))
  t.is((e as { code?: string }).code, 'JETSTREAM_DISABLED')
  t.regex(e!.message, /runs without JetStream: start it with -js/)
})

test('a stream that exists with incompatible settings: STREAM_MISMATCH (work queue; subjects that miss the cluster)', async (t) => {
  const s = await server(t)
  const { jsm } = await client(t, s)
  await jsm.streams.add({ name: 'WORK', subjects: ['ctfs.wq.facts.>'], retention: RetentionPolicy.Workqueue })
  await jsm.streams.add({ name: 'OTHER', subjects: ['orders.>'] })
  const { kernels: [k] } = kernels(2)
  const e1 = await t.throwsAsync(replicate(k!, { key, cluster: 'wq', transport: natsTransport({ servers: s.url, stream: 'WORK' }) }))
  t.is((e1 as { code?: string }).code, 'STREAM_MISMATCH')
  t.regex(e1!.message, /the stream WORK exists with settings that cannot carry the cluster: it is a work queue/)
  const e2 = await t.throwsAsync(replicate(k!, { key, cluster: 'shop', transport: natsTransport({ servers: s.url, stream: 'OTHER' }) }))
  t.is((e2 as { code?: string }).code, 'STREAM_MISMATCH')
  t.regex(e2!.message, /its subjects \(orders\.>\) do not cover ctfs\.shop\.facts\.\*/)
  // another stream already captures the cluster's subjects: named in the message
  const e3 = await t.throwsAsync(replicate(k!, { key, cluster: 'wq', transport: natsTransport({ servers: s.url }) }))
  t.is((e3 as { code?: string }).code, 'STREAM_MISMATCH')
  t.regex(e3!.message, /another stream already captures the subjects ctfs\.wq\.facts\.>/)
})

// ------------------------------------------------------- stream and consumer

test('the stream is created if missing with the documented settings, and each replica gets a durable consumer with explicit acks', async (t) => {
  const s = await server(t)
  const { nodes } = await cluster(t, s, 'shop')
  const { jsm } = await client(t, s)
  const c = (await jsm.streams.info('CTFS_shop')).config
  t.deepEqual(c.subjects, ['ctfs.shop.facts.>'])
  t.is(c.retention as string, 'limits')
  t.is(c.storage as string, 'file')
  t.is(c.discard as string, 'old')
  t.is(c.max_age, 7 * 86_400 * 1e9)
  t.is(c.max_bytes, 2 ** 30)
  t.is(c.max_msgs, -1)
  t.is(c.duplicate_window, 120 * 1e9)
  t.is(c.num_replicas, 1)
  for (const n of nodes) {
    const ci = await jsm.consumers.info('CTFS_shop', `ctfs-node-${n.local}`)
    t.is(ci.config.durable_name, `ctfs-node-${n.local}`)
    t.is(ci.config.ack_policy as string, 'explicit')
    t.is(ci.config.filter_subject, 'ctfs.shop.facts.>')
    t.is(ci.config.deliver_policy as string, 'all')
  }
  const st = nodes[0]!.stats.transport.stream!
  t.like(st, { stream: 'CTFS_shop', consumer: 'ctfs-node-1', connected: true })
  t.like(st.config, { retention: 'limits', storage: 'file', maxAgeMs: 7 * 86_400_000, maxBytes: 2 ** 30, duplicateWindowMs: 120_000 })
})

test('limits given to natsTransport() are used when it creates the stream; an existing compatible stream keeps its own', async (t) => {
  const s = await server(t)
  const limits = { maxAgeMs: 3_600_000, maxBytes: 64 << 20, maxMsgs: 100_000, storage: 'memory' as const, duplicateWindowMs: 30_000 }
  await cluster(t, s, 'lim', { stream: 'LIMITED', limits })
  const { jsm } = await client(t, s)
  const c = (await jsm.streams.info('LIMITED')).config
  t.like(c, { storage: 'memory', max_age: 3_600_000 * 1e6, max_bytes: 64 << 20, max_msgs: 100_000, duplicate_window: 30_000 * 1e6 })
  // a second cluster on the same stream name with other limits: the stream is kept as it is
  const { kernels: [k] } = kernels(2)
  const n = await replicate(k!, { key, cluster: 'lim', transport: natsTransport({ servers: s.url, stream: 'LIMITED', limits: { maxAgeMs: 1000 } }) })
  t.is(n.stats.transport.stream!.config.maxAgeMs, 3_600_000)
  await n.close()
})

// ------------------------------------------------------------- duplicates

test('publishing the same batch twice admits nothing twice: the duplicate window drops it, and past the window the kernel refuses it', async (t) => {
  const s = await server(t)
  const { nc } = await client(t, s)
  const captured: Array<{ subject: string; data: Uint8Array; msgId: string | undefined }> = []
  const sub = nc.subscribe('ctfs.dup.facts.>', { callback: (_e, m) => captured.push({ subject: m.subject, data: m.data, msgId: m.headers?.get('Nats-Msg-Id') }) })
  t.teardown(() => sub.unsubscribe())
  await nc.flush()
  const { counter, kernels: ks, nodes } = await cluster(t, s, 'dup')
  for (let i = 0; i < 100; i++) ks[0]!.admit(counter.increment(1))
  nodes[0]!.flush()
  const ds = await Promise.all(nodes.map((n) => n.synced({ peers: 'all', timeoutMs: 20_000 })))
  t.true(ds.every((d) => d.count === 100))
  for (let i = 0; i < 100 && captured.length === 0; i++) await sleep(10)
  t.true(captured.length >= 1)
  const batch = captured[0]!
  // Nats-Msg-Id is the frame's MAC: a keyed digest of its content
  t.is(batch.msgId, Buffer.from(batch.data.subarray(batch.data.length - 16)).toString('hex'))
  const js = nc.jetstream()
  const before = nodes.map((n) => n.sync.stats)
  // again with the same Msg-Id (a retry): the stream drops it
  const again = await js.publish(batch.subject, batch.data, { msgID: batch.msgId! })
  t.true(again.duplicate)
  // again under another Msg-Id (outside any window): stored, delivered, and refused by the kernels as duplicates
  const h = natsHeaders()
  const forced = await js.publish(batch.subject, batch.data, { msgID: 'another-id', headers: h })
  t.false(forced.duplicate)
  for (let i = 0; i < 200; i++) {
    if (nodes.slice(1).every((n, j) => n.sync.stats.factsDuplicate >= before[j + 1]!.factsDuplicate + 100)) break
    await sleep(10)
  }
  for (const [i, n] of nodes.entries()) {
    t.is(n.digests.count, 100)
    t.deepEqual(n.digests, ds[i])
    t.is(ks[i]!.read().sum, 100n)
    if (i > 0) t.true(n.sync.stats.factsDuplicate >= before[i]!.factsDuplicate + 100, `node ${n.local} refused the replayed facts as duplicates`)
  }
  t.is(nodes[0]!.sync.stats.factsReceived, before[0]!.factsReceived, 'its own publication read back changes nothing')
})

test('a replica restarted empty (in memory) with no peer up reads every fact from the stream, its own earlier ones included; old frames are not presence', async (t) => {
  const s = await server(t)
  const { counter, kernels: ks, nodes } = await cluster(t, s, 'again')
  for (let i = 0; i < 50; i++) ks[1]!.admit(counter.increment(2))
  for (let i = 0; i < 10; i++) ks[2]!.admit(counter.increment(5))
  await Promise.all(nodes.map((n) => n.synced({ peers: 'all', timeoutMs: 20_000 })))
  await nodes[2]!.close()
  t.is(nodes[2]!.stats.transport.stream!.unacked, 0)
  for (let i = 0; i < 50; i++) ks[1]!.admit(counter.increment(2))
  nodes[1]!.flush()
  // node 3 comes back empty (in memory), alone: only the stream can give it the 110 facts
  await Promise.all([nodes[0]!.close(), nodes[1]!.close()])
  const k3 = new Kernel({ invariant: counter, replica: { nodes: [1n, 2n, 3n], local: 3n } })
  const n3: ClusterNode<InvariantSpec> = await replicate(k3, { key, cluster: 'again', transport: natsTransport({ servers: s.url }) })
  t.teardown(() => n3.close())
  for (let i = 0; i < 300 && k3.frontier.count < 110; i++) await sleep(10)
  t.is(k3.frontier.count, 110)
  t.is(k3.read().sum, 250n)
  t.deepEqual(n3.connected, [])
})

// ------------------------------------------------------------------ hostile

test('garbage and frames under another key on the stream and the node subjects: refused, reported once per source and code, honest replicas converge', async (t) => {
  const s = await server(t)
  const { nc } = await client(t, s)
  const { counter, kernels: ks, nodes } = await cluster(t, s, 'hx')
  const errors: string[] = []
  nodes[0]!.on('error', (e) => errors.push(e.code))
  // a replica under another key publishes to the stream (node 4: its consumer is its own)
  const other = new Kernel({ invariant: counter, replica: { nodes: [1n, 2n, 3n, 4n], local: 4n } })
  const foreign = await replicate(other, { key: new Uint8Array(32).fill(7), cluster: 'hx', transport: natsTransport({ servers: s.url, stream: 'CTFS_hx' }) }).catch((e) => e)
  t.false(foreign instanceof Error, String(foreign))
  t.teardown(() => (foreign as ClusterNode).close())
  for (let i = 0; i < 20; i++) other.admit(counter.increment(1000))
  const js = nc.jetstream()
  for (let i = 0; i < 50; i++) {
    await js.publish('ctfs.hx.facts.2', randomBytes(200), { msgID: `junk-${i}` })
    nc.publish(`ctfs.hx.node.1.${1000 + i}`, randomBytes(100)) // made-up senders
    nc.publish('ctfs.hx.node.1.2', randomBytes(100))
  }
  for (let i = 0; i < 10; i++) ks[i % 3]!.admit(counter.increment(1))
  const ds = await Promise.all(nodes.map((n) => n.synced({ peers: 'all', timeoutMs: 20_000 })))
  await sleep(300)
  for (const [i, n] of nodes.entries()) {
    t.is(ks[i]!.read().sum, 10n, `node ${n.local}: nothing from the other key or the garbage was admitted`)
    t.deepEqual(n.digests, ds[0])
    const refused = n.stats.transport.refused
    t.true((refused.MALFORMED_FRAME ?? 0) + (refused.AUTH_FAILED ?? 0) >= 50, JSON.stringify({ refused, errors: n.stats.errors, dropped: n.stats.sync.dropped }))
  }
  // reported once per source and code, not once per frame
  t.true(errors.length > 0 && errors.length <= 12, errors.join(', '))
  t.log(`node 1 refused ${JSON.stringify(nodes[0]!.stats.transport.refused)}; error events: ${errors.join(', ')}`)
})

// ------------------------------------------------------------------ package

test("the main entry does not load the nats client; 'ctfs/nats' is a subpath export", (t) => {
  const code = `
    const { createRequire } = await import('node:module')
    const require = createRequire(import.meta.url)
    const loaded = () => Object.keys(require.cache).filter((f) => f.includes('/node_modules/nats/')).length
    await import(${JSON.stringify(join(root, 'src', 'index.ts'))})
    const afterMain = loaded()
    await import('nats')
    console.log(JSON.stringify({ afterMain, afterNats: loaded() }))`
  const r = runModule(code, { cwd: root })
  t.is(r.status, 0, r.stderr)
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { afterMain: number; afterNats: number }
  t.is(out.afterMain, 0)
  t.true(out.afterNats > 0, 'the check sees the client once it is loaded')
  const pkg = JSON.parse(spawnSync(process.execPath, ['-p', "JSON.stringify(require('./package.json'))"], { cwd: root, encoding: 'utf8' }).stdout) as {
    exports: Record<string, { types: string; default: string }>
    peerDependencies: Record<string, string>
    peerDependenciesMeta: Record<string, { optional: boolean }>
    dependencies?: Record<string, string>
  }
  t.deepEqual(pkg.exports['./nats'], { types: './dist/nats.d.ts', default: './dist/nats.js' })
  t.regex(pkg.peerDependencies.nats!, /^~2\.29\./)
  t.true(pkg.peerDependenciesMeta.nats!.optional)
  t.false('nats' in (pkg.dependencies ?? {}))
})
