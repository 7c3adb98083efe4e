// The NATS JetStream transport: replicas that share a NATS server (or a
// NATS cluster) instead of a TCP mesh. It moves opaque frames, as the TCP
// mesh does; what it adds is a stream that keeps facts for replicas that
// are away.
//
// Subjects (C: the cluster's subject token, `natsTransport({ cluster })`,
// default the `replicate()` cluster name, else `default`):
//
//   ctfs.C.node.<to>.<from>  point-to-point frames, core NATS (not stored):
//                            probes, summaries, anti-entropy facts, quota
//                            requests and grants, snapshot chunks. A frame's
//                            MAC names its receiver: it verifies at <to> only.
//   ctfs.C.hello.<id>        presence, every heartbeat: a peer is reachable
//                            while its hellos (or its frames) arrive.
//   ctfs.C.facts.<origin>    broadcast frames: each replica's own facts, in
//                            batches, MACed for every member. Stored in one
//                            JetStream stream per cluster (created if missing);
//                            each publication carries `Nats-Msg-Id` = the
//                            frame's MAC (a keyed digest of its content), so
//                            the stream's duplicate window drops a retry.
//
// Each replica reads the stream through its own durable pull consumer
// (`ctfs-node-<id>`, explicit acks, every subject of the cluster): a
// message is acknowledged once its frame was handled and — for a durable
// kernel — what it admitted is durable, so a replica that was away (or
// crashed) is sent what it had not kept. An in-memory replica starts empty:
// its consumer is recreated to read the stream from the start. Publications
// are retried (same Msg-Id) until the stream acknowledges them.
//
// Nothing here decides anything: frames are authenticated, ordered by their
// dependencies and deduplicated by the protocol, whatever NATS does.
import { readFileSync } from 'node:fs'

import type { ConsumerMessages, JetStreamClient, JetStreamManager, JsMsg, NatsConnection, StreamConfig, Subscription } from 'nats'

import { CtfsError, invalidArgType, outOfRange } from '../errors.ts'
import { nodeId } from '../escrow.ts'
import type { Address, PeerAddress } from './peers.ts'
import {
  ClusterError,
  type FactStream,
  type FrameSource,
  type StreamStats,
  type Transport,
  type TransportContext,
  type TransportFactory,
  type TransportHandlers,
  type TransportPeerStats,
  type TransportStats,
} from './transport.ts'

/** Limits of the stream when this transport creates it (an existing stream keeps its own). */
export interface StreamLimits {
  /** Messages older than this are dropped, ms (default 7 days). */
  maxAgeMs?: number
  /** The stream keeps at most this many bytes, dropping the oldest (default 1 GiB; -1: no limit). */
  maxBytes?: number
  /** At most this many messages (default -1: no limit). */
  maxMsgs?: number
  /** `'file'` (default) or `'memory'`. */
  storage?: 'file' | 'memory'
  /** Stream replicas in a NATS cluster (default 1). */
  replicas?: number
  /** Publications with a Msg-Id seen within this window are dropped as duplicates, ms (default 120,000). */
  duplicateWindowMs?: number
}

/** Options of {@link natsTransport}. */
export interface NatsTransportOptions {
  /** NATS server URLs: `'nats://127.0.0.1:4222'`, `'127.0.0.1:4222'`, or a list (a NATS cluster). */
  servers: string | readonly string[]
  /** The JetStream stream (default `CTFS_<cluster>`): letters, digits, `-` and `_`. */
  stream?: string
  /** The subject token of the cluster, `ctfs.<cluster>.…` (default: the `replicate()` cluster name, else `default`). */
  cluster?: string
  /** A NATS credentials file (`.creds`: JWT and NKey seed), as a path or its contents. */
  credentials?: string | Uint8Array
  /** User and password, or a token, when the server wants them. */
  user?: string
  pass?: string
  token?: string
  /** Limits of the stream when it is created. */
  limits?: StreamLimits
  /** Broadcast frames waiting for the stream's acknowledgement, bytes at most (default 8 MiB): beyond, pushes wait. */
  publishWindowBytes?: number
  /** Point-to-point bytes sent and not yet confirmed by the server, at most (default 8 MiB): beyond, frames are dropped (anti-entropy repairs). */
  sendQueueBytes?: number
  /** Presence period, ms (default: a quarter of the peer timeout, within [50, 1000]). */
  heartbeatMs?: number
  /** Giving up on the first connection after this long, ms (default 5,000). */
  connectTimeoutMs?: number
  /** A publication not acknowledged within this is retried, ms (default 5,000). */
  publishTimeoutMs?: number
  /** A delivered stream message not acknowledged within this is delivered again, ms (default 30,000). */
  ackWaitMs?: number
  /**
   * Stream messages a replica asks for at a time (default 256): at most this
   * many frames wait in the client (each at most the frame limit). A byte
   * budget is not used: with a 16 MiB pull, deliveries lagged by a second
   * after a burst of large frames (bench:nats).
   */
  pullBatch?: number
  /** Connection name shown by the server (default `ctfs-node-<id>`). */
  name?: string
}

/** Options of a {@link NatsTransport} built by hand (what `replicate()` fills in from its context). */
export interface NatsTransportConfig extends NatsTransportOptions {
  local: bigint
  /** The peers on NATS (they read the stream). */
  peers: readonly bigint[]
  /** A peer silent this long is unreachable (default 5,000 ms). */
  peerTimeoutMs?: number
  /** Resume the consumer where it left off (a durable kernel with facts); false: read the stream from its start. */
  resume?: boolean
}

const TOKEN = /^[A-Za-z0-9_-]{1,64}$/
/** Room left in a message for its headers (`Nats-Msg-Id`) within the server's max_payload. */
const HEADER_ROOM = 256
const DAY_MS = 86_400_000

const DEFAULT_LIMITS: Required<StreamLimits> = {
  maxAgeMs: 7 * DAY_MS,
  maxBytes: 1 << 30,
  maxMsgs: -1,
  storage: 'file',
  replicas: 1,
  duplicateWindowMs: 120_000,
}

type Nats = typeof import('nats')
let loading: Promise<Nats> | null = null

/** The `nats` client, loaded on first use only (nothing loads it unless this transport starts). */
function loadNats(): Promise<Nats> {
  loading ??= import('nats').catch((e: unknown) => {
    loading = null
    throw new ClusterError('NATS_UNAVAILABLE', `the NATS client (npm package 'nats', an optional peer dependency of ctfs) could not be loaded: install it with \`npm install nats@~2.29\` (${(e as Error)?.message ?? e})`)
  })
  return loading
}

function positive(v: unknown, name: string, min: number, max: number): number | undefined {
  if (v === undefined) return undefined
  if (typeof v !== 'number' || !Number.isInteger(v)) throw invalidArgType(name, 'an integer', v)
  if (v < min || v > max) throw outOfRange(name, `in [${min}, ${max}]`, v)
  return v
}

function checkOptions(o: NatsTransportOptions): void {
  if (typeof o !== 'object' || o === null) throw invalidArgType('options', 'an object { servers, ... }', o)
  const servers = typeof o.servers === 'string' ? [o.servers] : o.servers
  if (!Array.isArray(servers) || servers.length === 0 || !servers.every((s) => typeof s === 'string' && s.length > 0)) {
    throw invalidArgType('options.servers', "a server URL or a non-empty list of them (e.g. 'nats://127.0.0.1:4222')", o.servers)
  }
  if (o.stream !== undefined && (typeof o.stream !== 'string' || !TOKEN.test(o.stream))) throw outOfRange('options.stream', 'a stream name of letters, digits, - and _ (at most 64)', o.stream)
  if (o.cluster !== undefined && (typeof o.cluster !== 'string' || !TOKEN.test(o.cluster))) throw outOfRange('options.cluster', 'a subject token of letters, digits, - and _ (at most 64)', o.cluster)
  if (o.credentials !== undefined && typeof o.credentials !== 'string' && !(o.credentials instanceof Uint8Array)) {
    throw invalidArgType('options.credentials', 'a .creds file path or its contents', o.credentials)
  }
  for (const k of ['user', 'pass', 'token', 'name'] as const) if (o[k] !== undefined && typeof o[k] !== 'string') throw invalidArgType(`options.${k}`, 'a string', o[k])
  positive(o.publishWindowBytes, 'options.publishWindowBytes', 4096, 2 ** 40)
  positive(o.sendQueueBytes, 'options.sendQueueBytes', 4096, 2 ** 40)
  positive(o.heartbeatMs, 'options.heartbeatMs', 10, 60_000)
  positive(o.connectTimeoutMs, 'options.connectTimeoutMs', 10, 600_000)
  positive(o.publishTimeoutMs, 'options.publishTimeoutMs', 10, 600_000)
  positive(o.ackWaitMs, 'options.ackWaitMs', 100, 2 ** 31)
  positive(o.pullBatch, 'options.pullBatch', 1, 10_000)
  const l = o.limits
  if (l !== undefined) {
    if (typeof l !== 'object' || l === null) throw invalidArgType('options.limits', 'an object', l)
    positive(l.maxAgeMs, 'options.limits.maxAgeMs', 0, Number.MAX_SAFE_INTEGER)
    positive(l.maxBytes, 'options.limits.maxBytes', -1, Number.MAX_SAFE_INTEGER)
    positive(l.maxMsgs, 'options.limits.maxMsgs', -1, Number.MAX_SAFE_INTEGER)
    positive(l.replicas, 'options.limits.replicas', 1, 5)
    positive(l.duplicateWindowMs, 'options.limits.duplicateWindowMs', 0, 7 * DAY_MS)
    if (l.storage !== undefined && l.storage !== 'file' && l.storage !== 'memory') throw outOfRange('options.limits.storage', "'file' or 'memory'", l.storage)
  }
}

/**
 * Replication through NATS JetStream instead of the TCP mesh (see the
 * README's NATS section). Needs a NATS server with JetStream enabled
 * (`nats-server -js`).
 *
 * @example
 * const node = await replicate(kernel, { key, cluster: 'shop', transport: natsTransport({ servers: 'nats://127.0.0.1:4222' }) })
 *
 * @throws TypeError/RangeError for malformed options (at once). When the
 *   node starts, `replicate()` rejects with `NATS_UNAVAILABLE` (the server
 *   cannot be reached), `JETSTREAM_DISABLED` (it runs without JetStream) or
 *   `STREAM_MISMATCH` (the stream exists with settings that cannot carry
 *   the cluster: a work queue, subjects that miss `ctfs.<cluster>.facts.*`,
 *   a sealed or mirror stream, a message size below a frame).
 */
export function natsTransport(options: NatsTransportOptions): TransportFactory {
  checkOptions(options)
  const o = { ...options }
  return (ctx: TransportContext) => {
    const cluster = o.cluster ?? ctx.cluster ?? 'default'
    if (!TOKEN.test(cluster)) {
      throw new ClusterError('INVALID_ARGUMENT', `the cluster name '${cluster}' is not a NATS subject token: give natsTransport({ cluster }) letters, digits, - and _ only`)
    }
    return new NatsTransport({ ...o, cluster, local: ctx.local, peers: ctx.peers, peerTimeoutMs: ctx.peerTimeoutMs, resume: ctx.resume })
  }
}

interface Peer {
  id: bigint
  up: boolean
  lastSeen: number
  framesIn: number
  bytesIn: number
  framesOut: number
  bytesOut: number
  droppedFrames: number
  droppedBytes: number
  unsentFrames: number
  connects: number
  disconnects: number
  lastError: string | null
}

interface Publication {
  id: string
  data: Uint8Array
  inFlight: boolean
  tries: number
}

const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')

function describe(e: unknown): string {
  const err = e as { message?: string; code?: string; api_error?: { description?: string; err_code?: number } }
  return err?.api_error?.description ?? err?.message ?? String(e)
}

function apiCode(e: unknown): number | undefined {
  return (e as { api_error?: { err_code?: number } })?.api_error?.err_code
}

/** Whether subject pattern `p` matches every subject `ctfs.C.facts.<token>`. */
function covers(p: string, facts: string): boolean {
  const a = p.split('.')
  const b = [...facts.split('.'), '*']
  for (let i = 0; i < a.length; i++) {
    if (a[i] === '>') return i < b.length
    if (i >= b.length) return false
    if (a[i] === '*') continue
    if (a[i] !== b[i]) return false
  }
  return a.length === b.length
}

/** A {@link Transport} over NATS: see the module comment. Build one with {@link natsTransport}. */
export class NatsTransport implements Transport {
  readonly #o: NatsTransportConfig & { cluster: string }
  readonly #peers = new Map<bigint, Peer>()
  readonly #readers: bigint[]
  readonly #subjects: { facts: string; node: string; hello: string }
  readonly #streamName: string
  readonly #consumerName: string
  readonly #refused: Record<string, number> = {}
  readonly #sources = new Map<string, FrameSource & { reported: Set<string> }>()
  readonly #queue = new Map<string, Publication>()
  readonly #peerTimeoutMs: number
  #handlers: TransportHandlers | null = null
  #nats: Nats | null = null
  #nc: NatsConnection | null = null
  #js: JetStreamClient | null = null
  #messages: ConsumerMessages | null = null
  #subs: Subscription[] = []
  #timers: Array<ReturnType<typeof setInterval>> = []
  #retry: ReturnType<typeof setTimeout> | null = null
  #retryMs = 100
  #connected = false
  #closing = false
  #maxFrame: number | null = null
  /** Point-to-point bytes published and not yet confirmed by a server round trip. */
  #unflushed = 0
  #flushing = false
  #toAck: JsMsg[] = []
  #ackQueued = false
  #acking: Promise<void> = Promise.resolve()
  #lastHello = 0
  #outage = false
  #config: StreamStats['config'] = { retention: 'limits', storage: 'file', maxAgeMs: 0, maxBytes: -1, maxMsgs: -1, duplicateWindowMs: 0, replicas: 1 }
  readonly #s = {
    published: 0,
    publishedBytes: 0,
    acked: 0,
    duplicates: 0,
    retries: 0,
    unackedBytes: 0,
    refused: 0,
    consumed: 0,
    consumedBytes: 0,
    pending: 0,
    lastDelivery: 0,
    consumerAcks: 0,
    disconnects: 0,
    reconnects: 0,
    lastError: null as string | null,
  }
  /** The stream, for the node: publish broadcast frames, room, readers, behind. */
  readonly stream: FactStream

  constructor(o: NatsTransportConfig) {
    checkOptions(o)
    const cluster = o.cluster ?? 'default'
    if (!TOKEN.test(cluster)) throw outOfRange('options.cluster', 'a subject token of letters, digits, - and _', cluster)
    this.#o = { ...o, cluster }
    this.#peerTimeoutMs = o.peerTimeoutMs ?? 5_000
    const local = nodeId(o.local, 'options.local')
    this.#readers = o.peers.map((p, i) => nodeId(p, `options.peers[${i}]`)).filter((p) => p !== local)
    for (const p of this.#readers) this.#peer(p)
    this.#subjects = { facts: `ctfs.${cluster}.facts`, node: `ctfs.${cluster}.node`, hello: `ctfs.${cluster}.hello` }
    this.#streamName = o.stream ?? `CTFS_${cluster}`
    this.#consumerName = `ctfs-node-${local}`
    const self = this
    this.stream = {
      get readers() {
        return self.#readers
      },
      publish: (frame) => this.#publish(frame),
      room: () => Math.max(0, (this.#o.publishWindowBytes ?? 8 << 20) - this.#s.unackedBytes),
      behind: () => this.#behind(),
    }
  }

  get address(): Address | null {
    return null
  }

  /** The server's max_payload (and the stream's max_msg_size) less header room, once started. */
  get maxFrameBytes(): number | null {
    return this.#maxFrame
  }

  #peer(id: bigint): Peer {
    let p = this.#peers.get(id)
    if (p === undefined) {
      p = { id, up: false, lastSeen: 0, framesIn: 0, bytesIn: 0, framesOut: 0, bytesOut: 0, droppedFrames: 0, droppedBytes: 0, unsentFrames: 0, connects: 0, disconnects: 0, lastError: null }
      this.#peers.set(id, p)
    }
    return p
  }

  // --------------------------------------------------------------- start

  async start(handlers: TransportHandlers): Promise<void> {
    this.#handlers = handlers
    const nats = await loadNats()
    this.#nats = nats
    const o = this.#o
    const servers = typeof o.servers === 'string' ? [o.servers] : [...o.servers]
    let nc: NatsConnection
    try {
      const creds = o.credentials
      nc = await nats.connect({
        servers,
        name: o.name ?? this.#consumerName,
        timeout: o.connectTimeoutMs ?? 5_000,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
        reconnectJitter: 100,
        pingInterval: 10_000,
        ...(o.user !== undefined ? { user: o.user } : {}),
        ...(o.pass !== undefined ? { pass: o.pass } : {}),
        ...(o.token !== undefined ? { token: o.token } : {}),
        ...(creds !== undefined ? { authenticator: nats.credsAuthenticator(typeof creds === 'string' ? readFileSync(creds) : creds) } : {}),
      })
    } catch (e) {
      throw new ClusterError('NATS_UNAVAILABLE', `cannot connect to the NATS server at ${servers.join(', ')}: ${describe(e)}`, { remote: servers.join(',') })
    }
    this.#nc = nc
    try {
      await this.#attach(nats, nc)
    } catch (e) {
      await this.#shutdown()
      throw e instanceof CtfsError ? e : new ClusterError('NATS_UNAVAILABLE', `NATS at ${servers.join(', ')}: ${describe(e)}`)
    }
  }

  async #attach(nats: Nats, nc: NatsConnection): Promise<void> {
    const o = this.#o
    if (nc.info?.jetstream !== true) {
      throw new ClusterError('JETSTREAM_DISABLED', `the NATS server at ${nc.getServer()} runs without JetStream: start it with -js (or 'jetstream {}' in its configuration)`)
    }
    let jsm: JetStreamManager
    try {
      jsm = await nc.jetstreamManager()
    } catch (e) {
      throw new ClusterError('JETSTREAM_DISABLED', `JetStream is not available on the NATS server at ${nc.getServer()} (for this account): ${describe(e)}`)
    }
    const maxMsgSize = await this.#ensureStream(nats, jsm)
    const payload = nc.info?.max_payload ?? 1 << 20
    this.#maxFrame = Math.min(payload, maxMsgSize > 0 ? maxMsgSize : Infinity) - HEADER_ROOM
    const pending = await this.#ensureConsumer(nats, jsm)
    this.#s.pending = pending
    this.#s.lastDelivery = Date.now()
    this.#js = nc.jetstream()
    this.#connected = true
    const local = this.#o.local
    this.#subs.push(nc.subscribe(`${this.#subjects.node}.${local}.*`, { callback: (err, m) => err === null && this.#onFrame(m.subject, m.data) }))
    this.#subs.push(nc.subscribe(`${this.#subjects.hello}.*`, { callback: (err, m) => err === null && this.#onHello(m.subject) }))
    void this.#watchStatus(nc)
    const consumer = await this.#js.consumers.get(this.#streamName, this.#consumerName)
    this.#messages = await consumer.consume({ max_messages: this.#o.pullBatch ?? 256, callback: (m) => this.#onStream(m) })
    void this.#watchConsumer(this.#messages)
    const heartbeat = o.heartbeatMs ?? Math.max(50, Math.min(1000, Math.floor(this.#peerTimeoutMs / 4)))
    this.#timers.push(setInterval(() => this.#hello(), heartbeat))
    this.#timers.push(setInterval(() => this.#watch(), Math.max(20, Math.min(250, Math.floor(this.#peerTimeoutMs / 4)))))
    for (const t of this.#timers) t.unref()
    this.#hello()
  }

  /** Creates the stream if missing, or checks that the existing one can carry the cluster; returns its max_msg_size. */
  async #ensureStream(nats: Nats, jsm: JetStreamManager): Promise<number> {
    const name = this.#streamName
    const facts = this.#subjects.facts
    const l = { ...DEFAULT_LIMITS, ...(this.#o.limits ?? {}) }
    const wanted: Partial<StreamConfig> = {
      name,
      subjects: [`${facts}.>`],
      retention: nats.RetentionPolicy.Limits,
      storage: l.storage === 'memory' ? nats.StorageType.Memory : nats.StorageType.File,
      discard: nats.DiscardPolicy.Old,
      max_age: nats.nanos(l.maxAgeMs),
      max_bytes: l.maxBytes,
      max_msgs: l.maxMsgs,
      max_msg_size: -1,
      num_replicas: l.replicas,
      duplicate_window: nats.nanos(l.duplicateWindowMs),
    }
    let config: StreamConfig
    try {
      config = (await jsm.streams.info(name)).config
    } catch (e) {
      if (apiCode(e) !== 10059) throw new ClusterError('NATS_UNAVAILABLE', `cannot read the stream ${name}: ${describe(e)}`)
      try {
        config = (await jsm.streams.add(wanted)).config
      } catch (e2) {
        const code = apiCode(e2)
        if (code === 10058) config = (await jsm.streams.info(name)).config // created meanwhile by another replica
        else if (code === 10065) {
          throw new ClusterError('STREAM_MISMATCH', `cannot create the stream ${name}: another stream already captures the subjects ${facts}.> (give natsTransport({ stream }) that stream's name)`)
        } else throw new ClusterError('STREAM_MISMATCH', `cannot create the stream ${name}: ${describe(e2)}`)
      }
    }
    const refuse = (why: string) => new ClusterError('STREAM_MISMATCH', `the stream ${name} exists with settings that cannot carry the cluster: ${why}`)
    if (config.retention === nats.RetentionPolicy.Workqueue) throw refuse('it is a work queue (each message goes to one consumer; every replica must read every message): use limits retention')
    if (!(config.subjects ?? []).some((p) => covers(p, facts))) throw refuse(`its subjects (${(config.subjects ?? []).join(', ') || 'none'}) do not cover ${facts}.*`)
    if (config.sealed === true) throw refuse('it is sealed (it takes no new message)')
    if (config.mirror != null) throw refuse('it is a mirror (it takes no publication)')
    if ((config as { no_ack?: boolean }).no_ack === true) throw refuse('no_ack is set (publications must be acknowledged)')
    const maxMsgSize = config.max_msg_size ?? -1
    if (maxMsgSize > 0 && maxMsgSize < 8192 + HEADER_ROOM) throw refuse(`max_msg_size ${maxMsgSize} is too small for a frame`)
    this.#config = {
      retention: String(config.retention),
      storage: String(config.storage),
      maxAgeMs: Math.round((config.max_age ?? 0) / 1e6),
      maxBytes: config.max_bytes ?? -1,
      maxMsgs: config.max_msgs ?? -1,
      duplicateWindowMs: Math.round((config.duplicate_window ?? 0) / 1e6),
      replicas: config.num_replicas ?? 1,
    }
    return maxMsgSize
  }

  /** This replica's durable consumer: resumed (durable kernels), or recreated to read from the start. Returns its pending count. */
  async #ensureConsumer(nats: Nats, jsm: JetStreamManager): Promise<number> {
    const stream = this.#streamName
    const name = this.#consumerName
    const filter = `${this.#subjects.facts}.>`
    const want = {
      durable_name: name,
      ack_policy: nats.AckPolicy.Explicit,
      deliver_policy: nats.DeliverPolicy.All,
      filter_subject: filter,
      ack_wait: nats.nanos(this.#o.ackWaitMs ?? 30_000),
      max_ack_pending: 20_000,
      max_deliver: -1,
      replay_policy: nats.ReplayPolicy.Instant,
    }
    const remove = async () => {
      try {
        await jsm.consumers.delete(stream, name)
      } catch (e) {
        if (apiCode(e) !== 10014) throw e
      }
    }
    if (this.#o.resume !== true) await remove()
    try {
      const info = await jsm.consumers.info(stream, name)
      const c = info.config
      if (c.filter_subject === filter && c.ack_policy === nats.AckPolicy.Explicit && c.deliver_subject === undefined) return info.num_pending
      await remove() // ours by name, but not what this version needs
    } catch (e) {
      if (apiCode(e) !== 10014) throw new ClusterError('STREAM_MISMATCH', `cannot read the consumer ${name} of the stream ${stream}: ${describe(e)}`)
    }
    try {
      return (await jsm.consumers.add(stream, want)).num_pending
    } catch (e) {
      throw new ClusterError('STREAM_MISMATCH', `cannot create the consumer ${name} on the stream ${stream}: ${describe(e)}`)
    }
  }

  // ------------------------------------------------------------- receive

  /**
   * Where a frame came from: one source per peer (or this node, for its own
   * publications read back) and way; subjects naming any other id share one
   * source, so that a flood of made-up ids cannot grow this map.
   */
  #source(claimed: bigint, via: 'node' | 'stream'): FrameSource & { reported: Set<string> } {
    const known = claimed === this.#o.local || this.#peers.has(claimed)
    const key = known ? `${via}:${claimed}` : `${via}:?`
    let s = this.#sources.get(key)
    if (s === undefined) {
      const who = known ? String(claimed) : '*'
      const remote = via === 'node' ? `nats ${this.#subjects.node}.${this.#o.local}.${who}` : `stream ${this.#streamName} (${this.#subjects.facts}.${who})`
      const reported = new Set<string>()
      const peer = known ? claimed : undefined
      s = {
        peer,
        remote,
        reported,
        authenticated: (p: bigint) => {
          reported.clear()
          // a frame on its own node subject is presence; one read from the stream may be hours old
          if (via === 'node' && p === peer) this.#seen(p)
          return true
        },
        refuse: (error: ClusterError) => {
          this.#refused[error.code] = (this.#refused[error.code] ?? 0) + 1
          // a bus has no connection to close: report once per sender and code
          if (!reported.has(error.code)) {
            reported.add(error.code)
            const p = peer !== undefined ? this.#peers.get(peer) : undefined
            if (p !== undefined) p.lastError = error.message
            this.#handlers?.error(error)
          }
        },
      }
      this.#sources.set(key, s)
    }
    return s
  }

  #onFrame(subject: string, data: Uint8Array): void {
    if (this.#closing) return
    const from = subject.slice(subject.lastIndexOf('.') + 1)
    if (!/^\d{1,20}$/.test(from)) return
    const peer = BigInt(from)
    const p = this.#peers.get(peer)
    if (p !== undefined) {
      p.framesIn++
      p.bytesIn += data.length
    }
    this.#handlers?.frame(data, this.#source(peer, 'node'))
  }

  #onStream(m: JsMsg): void {
    const s = this.#s
    s.consumed++
    s.consumedBytes += m.data.length
    s.pending = m.info.pending
    s.lastDelivery = Date.now()
    if (this.#closing) return // not acknowledged: delivered again next time
    const from = m.subject.slice(m.subject.lastIndexOf('.') + 1)
    const origin = /^\d{1,20}$/.test(from) ? BigInt(from) : null
    // its own publications too: the protocol ignores this run's, and takes an
    // earlier run's back (an in-memory replica restarted empty)
    if (origin !== null) this.#handlers?.frame(m.data, this.#source(origin, 'stream'))
    // own publications, garbage (refused by the node) and handled frames are all acknowledged, once settled
    this.#toAck.push(m)
    if (!this.#ackQueued) {
      this.#ackQueued = true
      setImmediate(() => this.#ackSettled())
    }
  }

  /** Acknowledges what was handled, once it is durable (a durable kernel) — never before. */
  #ackSettled(): void {
    this.#ackQueued = false
    const batch = this.#toAck
    this.#toAck = []
    const settled = this.#handlers?.settled?.() ?? Promise.resolve()
    this.#acking = this.#acking.then(() =>
      settled.then(
        () => {
          for (const m of batch) m.ack()
          this.#s.consumerAcks += batch.length
        },
        (e: unknown) => {
          // not durable: not acknowledged, delivered again after ackWaitMs
          this.#note(`stream messages not acknowledged: ${describe(e)}`)
        },
      ),
    )
  }

  #behind(): boolean {
    // pending is as of the last delivery; a silent consumer is not trusted for long
    return this.#s.pending > 0 && Date.now() - this.#s.lastDelivery < 3_000
  }

  // ------------------------------------------------------------ presence

  #hello(): void {
    const nc = this.#nc
    if (nc === null || !this.#connected || this.#closing) return
    this.#lastHello = Date.now()
    try {
      nc.publish(`${this.#subjects.hello}.${this.#o.local}`)
    } catch {
      /* closed: the status watcher reports it */
    }
  }

  #onHello(subject: string): void {
    const id = subject.slice(subject.lastIndexOf('.') + 1)
    if (!/^\d{1,20}$/.test(id)) return
    const peer = BigInt(id)
    if (peer === this.#o.local) return
    const p = this.#peers.get(peer)
    if (p === undefined) return
    const wasUp = p.up
    this.#seen(peer)
    // a peer that just appeared hears from us at once, not a heartbeat later
    if (!wasUp && Date.now() - this.#lastHello > 20) this.#hello()
  }

  #seen(peer: bigint): void {
    const p = this.#peers.get(peer)
    if (p === undefined || this.#closing) return
    p.lastSeen = Date.now()
    if (!p.up && this.#connected) {
      p.up = true
      p.connects++
      p.lastError = null
      this.#handlers?.peerUp(peer)
    }
  }

  #down(p: Peer, reason: ClusterError | null): void {
    if (!p.up) return
    p.up = false
    p.disconnects++
    if (reason !== null) p.lastError = reason.message
    this.#handlers?.peerDown(p.id, reason)
  }

  #watch(): void {
    if (this.#closing) return
    const now = Date.now()
    for (const p of this.#peers.values()) {
      if (p.up && now - p.lastSeen > this.#peerTimeoutMs) {
        this.#down(p, new ClusterError('PEER_UNREACHABLE', `node ${p.id} sent nothing on NATS for ${now - p.lastSeen} ms`, { peer: p.id }))
      }
    }
  }

  async #watchStatus(nc: NatsConnection): Promise<void> {
    const nats = this.#nats as Nats
    for await (const s of nc.status()) {
      if (this.#closing) return
      if (s.type === nats.Events.Disconnect) {
        this.#connected = false
        this.#s.disconnects++
        const e = new ClusterError('NATS_UNAVAILABLE', `lost the connection to the NATS server ${String(s.data)}; reconnecting`, { remote: String(s.data) })
        this.#note(e.message)
        const up = [...this.#peers.values()].filter((p) => p.up)
        for (const p of up) this.#down(p, e)
        if (up.length === 0) this.#handlers?.error(e)
      } else if (s.type === nats.Events.Reconnect) {
        this.#connected = true
        this.#s.reconnects++
        this.#outage = false
        this.#hello()
        // everything not acknowledged goes again, in flight or not: a publication
        // lost with the connection would otherwise wait for its timeout, and the
        // stream's duplicate window drops a second copy (same Msg-Id)
        this.#retryNow(true)
      }
    }
  }

  async #watchConsumer(messages: ConsumerMessages): Promise<void> {
    try {
      for await (const s of await messages.status()) {
        if (this.#closing) return
        const type = String(s.type)
        if (type === 'consumer_deleted' || type === 'consumer_not_found' || type === 'stream_not_found') {
          this.#note(`the stream consumer reports ${type}`)
          this.#handlers?.error(new ClusterError('STREAM_MISMATCH', `stream ${this.#streamName}, consumer ${this.#consumerName}: ${type} (restart the node to recreate it)`))
        }
      }
    } catch {
      /* closed */
    }
  }

  #note(message: string): void {
    this.#s.lastError = message
  }

  // ---------------------------------------------------------------- send

  send(peer: bigint, frame: Uint8Array): boolean {
    const p = this.#peers.get(peer)
    const nc = this.#nc
    if (p === undefined || nc === null || !p.up || !this.#connected || this.#closing) {
      if (p !== undefined) p.unsentFrames++
      return false
    }
    if (this.#unflushed + frame.length > (this.#o.sendQueueBytes ?? 8 << 20)) {
      p.droppedFrames++
      p.droppedBytes += frame.length
      return false
    }
    try {
      nc.publish(`${this.#subjects.node}.${peer}.${this.#o.local}`, frame)
    } catch (e) {
      p.unsentFrames++
      p.lastError = describe(e)
      return false
    }
    p.framesOut++
    p.bytesOut += frame.length
    this.#unflushed += frame.length
    this.#flush()
    return true
  }

  /** Counts point-to-point bytes as gone once a server round trip (PING/PONG) confirms it processed them. */
  #flush(): void {
    const nc = this.#nc
    if (this.#flushing || this.#unflushed === 0 || nc === null) return
    this.#flushing = true
    const covered = this.#unflushed
    nc.flush().then(
      () => {
        this.#flushing = false
        this.#unflushed = Math.max(0, this.#unflushed - covered)
        this.#flush()
      },
      () => {
        this.#flushing = false
        this.#unflushed = 0 // the connection was lost: what was buffered is gone or resent
      },
    )
  }

  room(peer: bigint): number {
    const p = this.#peers.get(peer)
    if (p === undefined || !p.up || !this.#connected) return 0
    return Math.max(0, (this.#o.sendQueueBytes ?? 8 << 20) - this.#unflushed)
  }

  // ------------------------------------------------------------- publish

  #publish(frame: Uint8Array): boolean {
    const s = this.#s
    const window = this.#o.publishWindowBytes ?? 8 << 20
    if (this.#closing || this.#js === null || (s.unackedBytes > 0 && s.unackedBytes + frame.length > window)) {
      s.refused++
      return false
    }
    // the frame's MAC: a keyed digest of its whole content
    const id = hex(frame.subarray(frame.length - 16))
    if (this.#queue.has(id)) return true
    const pub: Publication = { id, data: new Uint8Array(frame), inFlight: false, tries: 0 }
    this.#queue.set(id, pub)
    s.published++
    s.publishedBytes += frame.length
    s.unackedBytes += frame.length
    if (this.#retry === null) this.#send(pub)
    return true
  }

  #send(pub: Publication): void {
    const js = this.#js
    if (js === null || this.#closing) return
    pub.inFlight = true
    const attempt = ++pub.tries
    if (attempt > 1) this.#s.retries++
    js.publish(`${this.#subjects.facts}.${this.#o.local}`, pub.data, { msgID: pub.id, timeout: this.#o.publishTimeoutMs ?? 5_000 }).then(
      (ack) => {
        if (!this.#queue.delete(pub.id)) return
        this.#s.unackedBytes -= pub.data.length
        this.#s.acked++
        if (ack.duplicate) this.#s.duplicates++
        this.#retryMs = 100
        this.#outage = false
      },
      (e: unknown) => {
        // an earlier attempt failing while a later one is in flight changes nothing
        if (this.#closing || attempt !== pub.tries || !this.#queue.has(pub.id)) return
        pub.inFlight = false
        const message = `publication to the stream ${this.#streamName} failed (retried): ${describe(e)}`
        this.#note(message)
        if (!this.#outage) {
          this.#outage = true
          this.#handlers?.error(new ClusterError('NATS_UNAVAILABLE', message))
        }
        this.#scheduleRetry()
      },
    )
  }

  #scheduleRetry(): void {
    if (this.#retry !== null || this.#closing) return
    this.#retry = setTimeout(() => this.#retryNow(), this.#retryMs)
    this.#retry.unref()
    this.#retryMs = Math.min(2_000, this.#retryMs * 2)
  }

  /** Sends again, in their order, the publications not in flight (`all`: every one). */
  #retryNow(all = false): void {
    if (this.#retry !== null) {
      clearTimeout(this.#retry)
      this.#retry = null
    }
    if (!this.#connected) {
      this.#scheduleRetry()
      return
    }
    for (const pub of this.#queue.values()) if (all || !pub.inFlight) this.#send(pub)
  }

  // -------------------------------------------------------------- peers

  addPeer(peer: PeerAddress): void {
    if (peer.id === this.#o.local) throw new ClusterError('INVALID_ARGUMENT', `node ${peer.id} is this replica`)
    this.#peer(peer.id)
    if (!this.#readers.includes(peer.id)) this.#readers.push(peer.id)
  }

  removePeer(peer: bigint): void {
    const p = this.#peers.get(peer)
    if (p === undefined) return
    this.#down(p, null)
    this.#peers.delete(peer)
    const i = this.#readers.indexOf(peer)
    if (i >= 0) this.#readers.splice(i, 1)
  }

  // --------------------------------------------------------------- stats

  stats(): TransportStats {
    const peers: TransportPeerStats[] = [...this.#peers.values()]
      .sort((a, b) => (a.id < b.id ? -1 : 1))
      .map((p) => ({
        peer: p.id,
        address: null,
        connected: p.up,
        direction: null,
        framesIn: p.framesIn,
        bytesIn: p.bytesIn,
        framesOut: p.framesOut,
        bytesOut: p.bytesOut,
        queuedBytes: p.up ? this.#unflushed : 0,
        droppedFrames: p.droppedFrames,
        droppedBytes: p.droppedBytes,
        unsentFrames: p.unsentFrames,
        connects: p.connects,
        disconnects: p.disconnects,
        lastError: p.lastError,
      }))
    const s = this.#s
    const w = this.#nc?.stats()
    return {
      listening: null,
      peers,
      refused: { ...this.#refused },
      pendingInbound: 0,
      stream: {
        stream: this.#streamName,
        consumer: this.#consumerName,
        subjects: { facts: `${this.#subjects.facts}.<origin>`, node: `${this.#subjects.node}.<to>.<from>`, hello: `${this.#subjects.hello}.<id>` },
        published: s.published,
        publishedBytes: s.publishedBytes,
        acked: s.acked,
        duplicates: s.duplicates,
        retries: s.retries,
        unacked: this.#queue.size,
        unackedBytes: s.unackedBytes,
        refused: s.refused,
        consumed: s.consumed,
        consumedBytes: s.consumedBytes,
        pending: s.pending,
        behind: this.#behind(),
        consumerAcks: s.consumerAcks,
        wire: { inMsgs: w?.inMsgs ?? 0, outMsgs: w?.outMsgs ?? 0, inBytes: w?.inBytes ?? 0, outBytes: w?.outBytes ?? 0, ...this.#socketBytes() },
        config: { ...this.#config },
        connected: this.#connected,
        disconnects: s.disconnects,
        reconnects: s.reconnects,
        lastError: s.lastError,
      },
    }
  }

  /** Bytes through the client's socket (Node transport of the `nats` client: not part of its typed API, so read defensively). */
  #socketBytes(): { socketBytesIn: number | null; socketBytesOut: number | null } {
    const socket = (this.#nc as unknown as { protocol?: { transport?: { socket?: { bytesRead?: unknown; bytesWritten?: unknown } } } } | null)?.protocol?.transport?.socket
    const read = socket?.bytesRead
    const written = socket?.bytesWritten
    return { socketBytesIn: typeof read === 'number' ? read : null, socketBytesOut: typeof written === 'number' ? written : null }
  }

  // --------------------------------------------------------------- close

  /**
   * Stops reading the stream, waits (up to 2 s) for publications in flight
   * and for the acknowledgements of handled messages, then closes the
   * connection.
   */
  async close(): Promise<void> {
    if (this.#closing) return
    this.#closing = true
    for (const t of this.#timers) clearInterval(t)
    this.#timers = []
    if (this.#retry !== null) clearTimeout(this.#retry)
    this.#retry = null
    const deadline = Date.now() + 2_000
    while (this.#queue.size > 0 && this.#connected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    await this.#shutdown()
    for (const p of this.#peers.values()) p.up = false
  }

  async #shutdown(): Promise<void> {
    this.#closing = true
    const nc = this.#nc
    try {
      await this.#messages?.close()
    } catch {
      /* already closed */
    }
    // the acknowledgements of what was handled go out before the connection closes
    if (this.#toAck.length > 0) this.#ackSettled()
    await Promise.race([this.#acking, new Promise((r) => setTimeout(r, 2_000).unref())])
    for (const s of this.#subs) s.unsubscribe()
    this.#subs = []
    if (nc !== null && !nc.isClosed()) {
      try {
        await Promise.race([nc.flush(), new Promise((r) => setTimeout(r, 500).unref())])
      } catch {
        /* disconnected */
      }
      await nc.close()
    }
  }
}
