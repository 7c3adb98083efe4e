// `ctfs node`: one replica of a cluster as a process — a kernel (durable
// with --dir), the TCP mesh (replicate()), a loopback admin interface and a
// status line every few seconds.
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

import { replicate, type ClusterNode } from '../cluster/node.ts'
import type { StreamStats } from '../cluster/transport.ts'
import { formatAddress, loadClusterFile, parseAddress, parsePeers, readKeyFile, type Address, type PeerAddress } from '../cluster/peers.ts'
import { DurableKernel } from '../durable.ts'
import { isCtfsError } from '../errors.ts'
import type { InvariantSpec } from '../invariants/index.ts'
import { Kernel } from '../kernel.ts'
import { MetricsRegistry, collectMetrics, serveMetrics, type MetricsServer } from '../prometheus.ts'
import { startAdmin, type LocalCounters } from './node-admin.ts'
import { parseInvariant } from './invariant-spec.ts'

export const NODE_USAGE = `usage: ctfs node --id N --invariant SPEC --key-file FILE [options]
       ctfs node --gen-key FILE

Runs one replica of a cluster: a kernel (durable with --dir), one TCP
connection per peer, and a local admin interface (HTTP on 127.0.0.1).

  --id N                 this node's id (an integer)
  --listen HOST:PORT     where peers connect (default: this node's address in --config)
  --peers LIST           peers, 'id@host:port' separated by commas (e.g. 2@127.0.0.1:7002,3@127.0.0.1:7003)
  --config FILE          a JSON cluster file: { "cluster"?, "keyFile"?, "nodes": [{ "id", "address" }] }
  --nodes LIST           every node id of the cluster (default: --id and the peers' ids)
  --dir DIR              data directory (durable kernel); without it the kernel is in memory
  --invariant SPEC       e.g. 'totalSupply:initial=1000,min=0', or named members for a multi
                         invariant: 'counter=gCounter;balance=totalSupply:initial=1000,min=0'
  --causality MODE       exact (default), escalating or bloom
  --key-file FILE        the cluster key: 64 hex characters or 32 bytes (make one with --gen-key)
  --cluster NAME         cluster name: nodes of other clusters are refused
  --admin HOST:PORT      admin interface, loopback only (default 127.0.0.1:0: any free port)
  --status-ms MS         print a status line every MS ms (default 5000; 0: never)
  --metrics HOST:PORT    serve Prometheus metrics at http://HOST:PORT/metrics (e.g. 127.0.0.1:9464;
                         port 0: any free port); off by default
  --anti-entropy-ms MS   anti-entropy period (default 1000)
  --tick-ms MS           push and timer period (default 2)
  --max-frame-bytes N    largest frame sent or accepted (default 1048576)
  --send-queue-bytes N   per-peer send queue (default 8388608)
  --peer-timeout-ms MS   a silent peer is unreachable after MS (default 4 anti-entropy periods, >= 2000)
  --nats SERVERS         replicate through NATS JetStream (e.g. nats://127.0.0.1:4222, comma-separated
                         for a NATS cluster); without --listen/--peers NATS replaces the TCP mesh; with
                         them this node is a bridge (the mesh for its --peers, NATS for every other node)
  --nats-stream NAME     the JetStream stream (default CTFS_<cluster>)
  --nats-creds FILE      a NATS credentials file (.creds)
  --json                 status lines as JSON

Admin interface: POST /admit (a fact or { facts: [...] }), GET /state,
GET /status, POST /contains, GET /synced, POST /peers, DELETE /peers/<id>,
POST /checkpoint, POST /stop. The first line printed says where it listens.`

const OPTIONS = {
  id: { type: 'string' },
  listen: { type: 'string' },
  peers: { type: 'string' },
  config: { type: 'string' },
  nodes: { type: 'string' },
  dir: { type: 'string' },
  invariant: { type: 'string', multiple: true },
  causality: { type: 'string' },
  'key-file': { type: 'string' },
  cluster: { type: 'string' },
  admin: { type: 'string' },
  'status-ms': { type: 'string' },
  'anti-entropy-ms': { type: 'string' },
  'tick-ms': { type: 'string' },
  'max-frame-bytes': { type: 'string' },
  'send-queue-bytes': { type: 'string' },
  'peer-timeout-ms': { type: 'string' },
  nats: { type: 'string' },
  'nats-stream': { type: 'string' },
  'nats-creds': { type: 'string' },
  json: { type: 'boolean' },
  'gen-key': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  metrics: { type: 'string' },
} as const

class UsageError extends Error {}

function int(v: string | undefined, name: string, min: number, max: number): number | undefined {
  if (v === undefined) return undefined
  const n = Number(v)
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be an integer in [${min}, ${max}], got '${v}'`)
  return n
}

/** Parsed `ctfs node` options. */
export interface NodeConfig {
  id: bigint
  listen: Address | null
  peers: PeerAddress[]
  nodes: bigint[]
  dir: string | null
  invariant: InvariantSpec
  causality: 'exact' | 'escalating' | 'bloom'
  key: Uint8Array
  cluster: string | undefined
  admin: Address
  /** Where to serve `/metrics` (null: not served). */
  metrics: Address | null
  statusMs: number
  antiEntropyMs: number | undefined
  tickMs: number | undefined
  maxFrameBytes: number | undefined
  sendQueueBytes: number | undefined
  peerTimeoutMs: number | undefined
  /** NATS servers (replicate through JetStream), with the stream and a credentials file. */
  nats: { servers: string[]; stream: string | undefined; credentials: string | undefined } | null
  json: boolean
}

/** Parses `ctfs node` arguments (throws UsageError with a readable message). */
export function parseNodeArgs(argv: string[]): NodeConfig | { genKey: string } | { help: true } {
  let v
  try {
    v = parseArgs({ args: argv, options: OPTIONS, allowPositionals: false, strict: true }).values
  } catch (e) {
    throw new UsageError((e as Error).message)
  }
  if (v.help) return { help: true }
  if (v['gen-key'] !== undefined) return { genKey: v['gen-key'] }
  if (v.id === undefined || !/^\d+$/.test(v.id)) throw new UsageError('--id is required: a non-negative integer')
  const id = BigInt(v.id)
  const file = v.config !== undefined ? loadClusterFile(v.config) : undefined
  let peers: PeerAddress[] = []
  try {
    peers = parsePeers(
      (v.peers ?? '')
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s.length > 0),
      id,
      '--peers',
    )
  } catch (e) {
    throw new UsageError((e as Error).message)
  }
  if (file !== undefined) {
    const given = new Set(peers.map((p) => p.id))
    peers = [...peers, ...file.nodes.filter((n) => n.id !== id && !given.has(n.id))]
  }
  let listen: Address | null = null
  try {
    if (v.listen !== undefined) listen = parseAddress(v.listen, '--listen')
    else if (file !== undefined) listen = file.nodes.find((n) => n.id === id)?.address ?? null
  } catch (e) {
    throw new UsageError((e as Error).message)
  }
  let nodes: bigint[]
  if (v.nodes !== undefined) {
    const list = v.nodes.split(',').map((s) => s.trim())
    if (!list.every((s) => /^\d+$/.test(s))) throw new UsageError('--nodes must be node ids separated by commas')
    nodes = list.map((s) => BigInt(s))
    if (!nodes.includes(id)) throw new UsageError(`--nodes must include this node (${id})`)
  } else nodes = [id, ...peers.map((p) => p.id)]
  nodes = [...new Set(nodes)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
  if (nodes.length < 2) throw new UsageError('a cluster needs peers: give --peers, --config or --nodes')
  let nats: NodeConfig['nats'] = null
  if (v.nats !== undefined) {
    const servers = v.nats.split(',').map((s) => s.trim()).filter((s) => s.length > 0)
    if (servers.length === 0) throw new UsageError('--nats needs a server URL, e.g. nats://127.0.0.1:4222')
    nats = { servers, stream: v['nats-stream'], credentials: v['nats-creds'] }
  } else if (v['nats-stream'] !== undefined || v['nats-creds'] !== undefined) throw new UsageError('--nats-stream and --nats-creds need --nats')
  let invariant: InvariantSpec
  try {
    invariant = parseInvariant(v.invariant ?? [])
  } catch (e) {
    throw new UsageError(`--invariant: ${(e as Error).message}`)
  }
  const causality = (v.causality ?? 'exact') as NodeConfig['causality']
  if (!['exact', 'escalating', 'bloom'].includes(causality)) throw new UsageError('--causality must be exact, escalating or bloom')
  const keyFile = v['key-file'] ?? file?.keyFile
  if (keyFile === undefined) throw new UsageError('--key-file is required (make a key with: ctfs node --gen-key ./cluster.key)')
  const key = readKeyFile(keyFile)
  let admin: Address
  let metrics: Address | null = null
  try {
    admin = parseAddress(v.admin ?? '127.0.0.1:0', '--admin')
    if (v.metrics !== undefined) metrics = parseAddress(v.metrics, '--metrics')
  } catch (e) {
    throw new UsageError((e as Error).message)
  }
  return {
    id,
    listen,
    peers,
    nodes,
    dir: v.dir ?? null,
    invariant,
    causality,
    key,
    cluster: v.cluster ?? file?.cluster,
    admin,
    metrics,
    statusMs: int(v['status-ms'], 'status-ms', 0, 3_600_000) ?? 5000,
    antiEntropyMs: int(v['anti-entropy-ms'], 'anti-entropy-ms', 1, 3_600_000),
    tickMs: int(v['tick-ms'], 'tick-ms', 1, 1000),
    maxFrameBytes: int(v['max-frame-bytes'], 'max-frame-bytes', 4096, 2 ** 30),
    sendQueueBytes: int(v['send-queue-bytes'], 'send-queue-bytes', 4096, 2 ** 40),
    peerTimeoutMs: int(v['peer-timeout-ms'], 'peer-timeout-ms', 10, 2 ** 31),
    nats,
    json: v.json ?? false,
  }
}

/** A running `ctfs node`. */
export interface RunningNode {
  config: NodeConfig
  kernel: Kernel<InvariantSpec>
  node: ClusterNode<InvariantSpec>
  adminPort: number
  /** The `/metrics` URL when `--metrics` was given. */
  metricsUrl: string | null
  counters: LocalCounters
  status(): NodeStatus
  close(): Promise<void>
}

/** What GET /status and the status line report. */
export interface NodeStatus {
  id: string
  epoch: number
  durable: boolean
  listening: string | null
  admin: string
  uptimeMs: number
  rssBytes: number
  facts: number
  digest: string
  stateDigest: string
  local: LocalCounters
  received: number
  buffered: number
  unpushed: number
  quota: Array<{ member: number; side: string; available: string; consumed: string }>
  peers: Array<{
    peer: string
    connected: boolean
    synced: boolean
    framesIn: number
    framesOut: number
    bytesIn: number
    bytesOut: number
    queuedBytes: number
    droppedFrames: number
    lastError: string | null
  }>
  dropped: Record<string, number>
  refused: Record<string, number>
  errors: Record<string, number>
  /** Facts this replica sent to peers by anti-entropy (not by push or the stream). */
  antiEntropyFactsSent: number
  /** The NATS stream (with --nats). */
  stream: StreamStats | null
  durability: { durableSeq: number; appendedSeq: number } | null
}

/** Starts a node; resolves once it listens (the admin port is known). */
export async function runNode(cfg: NodeConfig, log: (line: string) => void = console.log): Promise<RunningNode> {
  const replica = { nodes: cfg.nodes, local: cfg.id }
  const kernel: Kernel<InvariantSpec> =
    cfg.dir !== null
      ? await DurableKernel.open({ dir: cfg.dir, invariant: cfg.invariant, causality: cfg.causality, replica })
      : new Kernel({ invariant: cfg.invariant, causality: cfg.causality, replica })
  // loaded only when asked for: the `nats` client is an optional peer dependency
  const transport = cfg.nats !== null ? (await import('../cluster/nats.ts')).natsTransport({
    servers: cfg.nats.servers,
    ...(cfg.nats.stream !== undefined ? { stream: cfg.nats.stream } : {}),
    ...(cfg.nats.credentials !== undefined ? { credentials: cfg.nats.credentials } : {}),
  }) : undefined
  const node = await replicate(kernel, {
    key: cfg.key,
    ...(transport !== undefined ? { transport } : {}),
    ...(cfg.cluster !== undefined ? { cluster: cfg.cluster } : {}),
    listen: cfg.listen ?? undefined,
    peers: cfg.peers.map((p) => ({ id: p.id, address: p.address })),
    ...(cfg.tickMs !== undefined ? { tickMs: cfg.tickMs } : {}),
    ...(cfg.maxFrameBytes !== undefined ? { maxFrameBytes: cfg.maxFrameBytes } : {}),
    ...(cfg.sendQueueBytes !== undefined ? { sendQueueBytes: cfg.sendQueueBytes } : {}),
    ...(cfg.peerTimeoutMs !== undefined ? { peerTimeoutMs: cfg.peerTimeoutMs } : {}),
    sync: cfg.antiEntropyMs !== undefined ? { antiEntropyMs: cfg.antiEntropyMs } : {},
  })
  // every failure is a line, never an exception
  node.on('error', (e) => log(`node ${cfg.id}: ${e.code} ${e.message}`))
  node.on('peer', (e) => log(`node ${cfg.id}: peer ${e.peer} ${e.state}${e.reason ? ` (${e.reason.message})` : ''}`))
  const started = Date.now()
  const counters: LocalCounters = { admitted: 0, durable: 0, refused: {} }
  const durable = kernel instanceof DurableKernel
  let closing: Promise<void> | null = null
  const status = (): NodeStatus => {
    const st = node.stats
    const r = kernel.replica
    const quota: NodeStatus['quota'] = []
    const members = (cfg.invariant as { names?: readonly string[] }).names?.length ?? 1
    for (let m = 0; m < members; m++) {
      for (const side of ['down', 'up'] as const) {
        const q = r?.quotas(side, m)?.find((x) => x.node === cfg.id)
        if (q) quota.push({ member: m, side, available: q.available.toString(), consumed: q.consumed.toString() })
      }
    }
    const tp = new Map(st.transport.peers.map((p) => [p.peer, p]))
    const d = durable ? (kernel as DurableKernel<InvariantSpec>).durability : null
    return {
      id: cfg.id.toString(),
      epoch: node.sync.epoch,
      durable,
      listening: node.address === null ? null : formatAddress(node.address),
      admin: `http://${formatAddress({ host: cfg.admin.host, port: adminPort })}`,
      uptimeMs: Date.now() - started,
      rssBytes: process.memoryUsage.rss(),
      facts: st.digests.count,
      digest: st.digests.ids,
      stateDigest: st.digests.state,
      local: counters,
      received: st.sync.factsAdmitted,
      buffered: st.sync.buffered,
      unpushed: st.sync.unpushed,
      quota,
      peers: st.sync.peers.map((p) => {
        const t = tp.get(p.peer)
        return {
          peer: p.peer.toString(),
          connected: t?.connected ?? false,
          synced: p.synced,
          framesIn: t?.framesIn ?? 0,
          framesOut: t?.framesOut ?? 0,
          bytesIn: t?.bytesIn ?? 0,
          bytesOut: t?.bytesOut ?? 0,
          queuedBytes: t?.queuedBytes ?? 0,
          droppedFrames: t?.droppedFrames ?? 0,
          lastError: t?.lastError ?? null,
        }
      }),
      dropped: st.sync.dropped,
      refused: st.transport.refused,
      errors: st.errors,
      antiEntropyFactsSent: st.sync.antiEntropyFactsSent,
      stream: st.transport.stream ?? null,
      durability: d === null ? null : { durableSeq: d.durableSeq, appendedSeq: d.appendedSeq },
    }
  }
  // Declared before `close`, which a failed start calls before they are set.
  let metrics: MetricsServer | null = null
  let statusTimer: ReturnType<typeof setInterval> | null = null
  const close = (): Promise<void> => {
    closing ??= (async () => {
      if (statusTimer !== null) clearInterval(statusTimer)
      admin.server.close()
      admin.server.closeAllConnections()
      if (metrics !== null) {
        metrics.server.closeAllConnections()
        await metrics.close()
      }
      await node.close()
      if (kernel instanceof DurableKernel) await kernel.close()
    })()
    return closing
  }
  const admin = await startAdmin({ kernel, node, counters, status, stop: () => void close().then(() => process.exit(0)) }, cfg.admin.host, cfg.admin.port)
  const adminPort = admin.port
  // Prometheus metrics of this node's kernel (no prom-client needed: ctfs's own registry).
  if (cfg.metrics !== null) {
    const registry = new MetricsRegistry()
    collectMetrics(kernel, { registry, name: `node-${cfg.id}` })
    try {
      metrics = await serveMetrics({ host: cfg.metrics.host, port: cfg.metrics.port, registry })
    } catch (e) {
      await close()
      throw e
    }
  }
  if (cfg.statusMs > 0) {
    let lastFacts = 0
    let lastAt = Date.now()
    statusTimer = setInterval(() => {
      const s = status()
      const now = Date.now()
      const rate = ((s.facts - lastFacts) * 1000) / Math.max(1, now - lastAt)
      lastFacts = s.facts
      lastAt = now
      log(cfg.json ? JSON.stringify({ status: s }) : statusLine(s, rate))
    }, cfg.statusMs)
    statusTimer.unref()
  }
  return { config: cfg, kernel, node, adminPort, metricsUrl: metrics?.url ?? null, counters, status, close }
}

/** The one-line status. */
export function statusLine(s: NodeStatus, rate: number): string {
  const peers = s.peers.map((p) => `${p.peer}${p.connected ? (p.synced ? '=' : '~') : '×'}`).join(' ')
  const quota = s.quota.map((q) => `${q.member}${q.side === 'down' ? '↓' : '↑'}${q.available}`).join(' ')
  const dropped = Object.values(s.dropped).reduce((a, b) => a + b, 0) + s.peers.reduce((a, p) => a + p.droppedFrames, 0)
  return (
    `node ${s.id} | facts ${s.facts} (${Math.round(rate)}/s) local ${s.local.admitted} received ${s.received} | buffered ${s.buffered} | ` +
    `peers ${peers}${s.stream !== null ? ` | stream ${s.stream.connected ? `pending ${s.stream.pending}` : 'disconnected'}` : ''} | quota ${quota || '-'} | dropped ${dropped} | digest ${s.digest.slice(0, 12)} | rss ${Math.round(s.rssBytes / 2 ** 20)} MiB`
  )
}

/** `ctfs node ...`: runs until SIGINT/SIGTERM or POST /stop. Resolves with the exit code on usage errors only. */
export async function nodeCommand(argv: string[]): Promise<number> {
  let parsed
  try {
    parsed = parseNodeArgs(argv)
  } catch (e) {
    if (e instanceof UsageError || isCtfsError(e)) {
      console.error(`ctfs node: ${(e as Error).message}\n\n${NODE_USAGE}`)
      return 2
    }
    throw e
  }
  if ('help' in parsed) {
    console.log(NODE_USAGE)
    return 0
  }
  if ('genKey' in parsed) {
    writeFileSync(parsed.genKey, randomBytes(32).toString('hex') + '\n', { mode: 0o600, flag: 'wx' })
    console.log(`wrote a new cluster key to ${parsed.genKey} (give the same file to every node)`)
    return 0
  }
  let running: RunningNode
  try {
    running = await runNode(parsed)
  } catch (e) {
    console.error(`ctfs node ${parsed.id}: ${isCtfsError(e) ? `${e.code} ${e.message}` : String((e as Error)?.message ?? e)}`)
    return 1
  }
  const s = running.status()
  console.log(
    `ctfs node ${s.id} (epoch ${s.epoch}, ${s.durable ? `durable in ${parsed.dir}` : 'in memory'}) listening on ${s.listening ?? '-'}; admin ${s.admin}; ` +
      `nodes ${parsed.nodes.join(',')}; ${s.facts} facts${running.metricsUrl !== null ? `; metrics ${running.metricsUrl}` : ''}`,
  )
  const stop = (signal: string) => {
    console.log(`node ${s.id}: ${signal}, closing`)
    running.close().then(
      () => process.exit(0),
      (e) => {
        console.error(`node ${s.id}: close failed: ${(e as Error).message}`)
        process.exit(1)
      },
    )
  }
  process.once('SIGINT', () => stop('SIGINT'))
  process.once('SIGTERM', () => stop('SIGTERM'))
  return new Promise<number>(() => {}) // runs until a signal or POST /stop
}
