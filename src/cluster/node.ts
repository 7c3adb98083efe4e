// A replicated kernel on a transport: `replicate(kernel, options)`.
//
// The node is plumbing around the sync core: a received frame is one native
// call (`ReplicaSync.receive`: verify, admit, replies), a timer calls
// `tick` every `tickMs` (push, anti-entropy probes, quota retries), and
// every output frame goes to the transport. No fact is looked at here.
import { EventEmitter } from 'node:events'

import { CtfsError, invalidArgType, outOfRange } from '../errors.ts'
import type { InvariantSpec } from '../invariants/index.ts'
import type { Kernel } from '../kernel.ts'
import type { BoundSide } from '../replica.ts'
import { nowMs, type Digests, type ReplicaSync, type SyncEvent, type SyncOptions, type SyncOutput, type SyncStats } from '../sync.ts'
import type { BackoffOptions } from './backoff.ts'
import { loadClusterFile, parseAddress, parsePeer, parsePeers, readKeyFile, type Address, type PeerAddress, type PeerSpec } from './peers.ts'
import { TcpTransport } from './tcp.ts'
import { ClusterError, type FrameSource, type Transport, type TransportHandlers, type TransportStats } from './transport.ts'

/** Options of {@link replicate}. */
export interface ReplicateOptions {
  /** The 32-byte cluster key (or give `keyFile`, or a cluster file naming one). */
  key?: Uint8Array
  /** A file holding the key: 64 hex characters or 32 raw bytes. */
  keyFile?: string
  /** Cluster name: replicas of different clusters refuse each other. */
  cluster?: string
  /** Where to accept connections, `'host:port'` (port 0: any free port). Default: from `config`, else none (dial only). */
  listen?: string | Address
  /** Peers: `'2@127.0.0.1:7002'` or `{ id, address }`. */
  peers?: readonly PeerSpec[]
  /** A JSON cluster file (see {@link ClusterFile}): every node and its address; peers and `listen` are taken from it. */
  config?: string
  /** Replaces the TCP mesh (e.g. a message-bus transport). `listen`, `peers` and the TCP options are then unused. */
  transport?: Transport
  /** Timer period, ms: push, probes, quota retries (default 2). */
  tickMs?: number
  /** Largest frame sent or accepted, bytes (default 1 MiB). */
  maxFrameBytes?: number
  /** Per-peer send queue, bytes (default 8 MiB): beyond it frames to that peer are dropped and anti-entropy repairs. */
  sendQueueBytes?: number
  /** A peer silent for this long is unreachable (default: 4 anti-entropy periods, at least 2,000 ms). */
  peerTimeoutMs?: number
  /** Reconnect delays (default 50 ms doubling to 5 s, jittered). */
  reconnect?: BackoffOptions
  /** More protocol options (anti-entropy period, buffers, escrow refills...). */
  sync?: Omit<SyncOptions, 'key' | 'cluster' | 'maxFrameBytes'>
}

/** A peer came up or went down. */
export interface PeerEvent {
  peer: bigint
  state: 'up' | 'down'
  /** Why it went down, for failures. */
  reason?: ClusterError
}

/** Events of a {@link ClusterNode}. */
export interface ClusterEvents {
  /** Facts from peers were admitted (`facts` of them, received from `from`). */
  fact: [{ from: bigint; facts: number }]
  /** A peer's connection came up or went down. */
  peer: [PeerEvent]
  /** This replica and `peer` hold the same facts. */
  synced: [{ peer: bigint }]
  /** Quota moved: received, denied, or a request given up. */
  quota: [Extract<SyncEvent, { type: 'quotaReceived' | 'quotaDenied' | 'quotaGaveUp' }>]
  /** Every protocol event, unfiltered. */
  sync: [SyncEvent]
  /**
   * A failure, as a {@link ClusterError} with a stable code:
   * `PEER_UNREACHABLE` (a dial failed, a connection was lost or went
   * silent), `AUTH_FAILED` (wrong cluster key, or frames of another node),
   * `CONFIG_MISMATCH` (another cluster name or kernel configuration),
   * `FRAME_TOO_LARGE`, `MALFORMED_FRAME`, `UNSUPPORTED_FRAME`,
   * `UNKNOWN_PEER`, `IO_ERROR`. Reported once per connection, never per
   * frame. Emitted only when someone listens: an unheard error never throws
   * (`stats.errors` counts them either way).
   */
  error: [ClusterError]
}

/** Counters of a {@link ClusterNode}. */
export interface ClusterStats {
  local: bigint
  digests: Digests
  sync: SyncStats
  transport: TransportStats
  /** Failures reported, by code. */
  errors: Record<string, number>
}

/** Options of {@link ClusterNode.synced}. */
export interface SyncedOptions {
  /** Give up after this long (default 30,000 ms): rejects with `PEER_UNREACHABLE`. */
  timeoutMs?: number
  /**
   * `'reachable'` (default): every peer that is connected holds the same
   * facts (and at least one is connected, if the node has peers).
   * `'all'`: every peer is connected and holds the same facts.
   */
  peers?: 'reachable' | 'all'
}

interface Waiter {
  all: boolean
  resolve: (d: Digests) => void
  reject: (e: ClusterError) => void
  timer: ReturnType<typeof setTimeout>
}

/**
 * One replica on the network (see {@link replicate}). Facts admitted into
 * the kernel (`admit`, `admitBatch`, `admitDurable`) are pushed to peers
 * within `tickMs`; facts from peers are admitted as they arrive.
 */
export class ClusterNode<I extends InvariantSpec = InvariantSpec> extends EventEmitter<ClusterEvents> {
  /** The replicated kernel. */
  readonly kernel: Kernel<I>
  /** The protocol, for direct use (`needQuota`, `stats`, `digests`...). */
  readonly sync: ReplicaSync
  /** This replica's node id. */
  readonly local: bigint
  readonly #transport: Transport
  readonly #up = new Set<bigint>()
  readonly #peers: Set<bigint>
  readonly #errors: Record<string, number> = {}
  readonly #waiters = new Set<Waiter>()
  #timer: ReturnType<typeof setInterval> | null = null
  #flushQueued = false
  #closed = false

  /** @internal use {@link replicate} */
  constructor(kernel: Kernel<I>, sync: ReplicaSync, transport: Transport, peers: Iterable<bigint>) {
    super()
    this.kernel = kernel
    this.sync = sync
    this.local = sync.local
    this.#transport = transport
    this.#peers = new Set(peers)
  }

  /** @internal the transport's callbacks are connected here (it was started by {@link replicate}). */
  bind(relay: Relay, tickMs: number): void {
    // nothing is reachable until the transport says so
    for (const p of this.#peers) this.sync.setPeerUp(p, false)
    relay.connect({
      frame: (data, source) => this.#receive(data, source),
      peerUp: (peer) => this.#peerUp(peer),
      peerDown: (peer, reason) => this.#peerDown(peer, reason),
      error: (e) => this.#error(e),
    })
    this.#timer = setInterval(() => this.#tick(), tickMs)
    this.#timer.unref()
  }

  /** Where this node accepts connections (the real port when 0 was asked), or null. */
  get address(): Address | null {
    return this.#transport.address
  }

  /** Peers connected now. */
  get connected(): bigint[] {
    return [...this.#up].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
  }

  /** Count and digests of this replica's facts and state. */
  get digests(): Digests {
    return this.sync.digests
  }

  get stats(): ClusterStats {
    return { local: this.local, digests: this.sync.digests, sync: this.sync.stats, transport: this.#transport.stats(), errors: { ...this.#errors } }
  }

  /** Pushes facts admitted since the last push now (the timer does it within `tickMs` anyway). */
  flush(): void {
    if (this.#closed) return
    this.#run(() => this.sync.flush())
  }

  /** Pushes on the next turn of the event loop: one push for a burst of admissions. */
  flushSoon(): void {
    if (this.#flushQueued || this.#closed) return
    this.#flushQueued = true
    setImmediate(() => {
      this.#flushQueued = false
      this.flush()
    })
  }

  /**
   * After a local admission was refused with `INSUFFICIENT_QUOTA`: asks a
   * peer for at least `value` more of `member`'s `side` bound. Returns
   * whether a request left (false: one is pending, or no peer is up).
   */
  needQuota(value: bigint | number, side: BoundSide = 'down', member = 0): boolean {
    if (this.#closed) return false
    let sent = false
    this.#run(() => {
      const out = this.sync.needQuota(value, side, member)
      sent = out.frames.length > 0
      return out
    })
    return sent
  }

  /**
   * Resolves (with the digests) when the peers hold the same facts as this
   * replica (see {@link SyncedOptions}); probes every peer first. Rejects
   * with `PEER_UNREACHABLE` after `timeoutMs`.
   */
  synced(options: SyncedOptions = {}): Promise<Digests> {
    const timeoutMs = options.timeoutMs ?? 30_000
    if (typeof timeoutMs !== 'number' || !(timeoutMs >= 0)) throw outOfRange('options.timeoutMs', 'a non-negative number', timeoutMs)
    const mode = options.peers ?? 'reachable'
    if (mode !== 'reachable' && mode !== 'all') throw outOfRange('options.peers', "'reachable' or 'all'", mode)
    if (this.#closed) return Promise.reject(new ClusterError('INVALID_ARGUMENT', 'the node is closed'))
    return new Promise<Digests>((resolve, reject) => {
      const w: Waiter = {
        all: mode === 'all',
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#waiters.delete(w)
          const missing = [...this.#peers].filter((p) => !this.#up.has(p) || !this.sync.isSynced(p))
          reject(new ClusterError('PEER_UNREACHABLE', `not synced after ${timeoutMs} ms with node(s) ${missing.join(', ')}`))
        }, timeoutMs),
      }
      this.#waiters.add(w)
      // forget earlier matches: only an exchange from now on counts
      this.sync.probeSoon()
      this.#tick()
    })
  }

  /** Adds a peer (or moves it to a new address) at run time. It must be one of the kernel's `replica.nodes`. */
  addPeer(peer: PeerSpec): void {
    const p = parsePeer(peer)
    if (p.id === this.local) throw outOfRange('peer', `a node other than the local node ${this.local}`, peer)
    checkMember(this.kernel.replica?.nodes ?? [], p.id)
    this.#peers.add(p.id)
    this.#transport.addPeer(p)
  }

  /** Closes the connection to a peer and stops dialling it. */
  removePeer(id: bigint | number): void {
    const peer = BigInt(id)
    this.#transport.removePeer(peer)
    this.#peers.delete(peer)
    if (this.#up.delete(peer)) this.sync.setPeerUp(peer, false)
  }

  /**
   * Stops replicating: closes every connection and the listening socket.
   * The kernel stays open (close a durable kernel yourself, after this).
   */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    if (this.#timer !== null) clearInterval(this.#timer)
    for (const w of this.#waiters) {
      clearTimeout(w.timer)
      w.reject(new ClusterError('INVALID_ARGUMENT', 'the node was closed'))
    }
    this.#waiters.clear()
    await this.#transport.close()
    for (const p of this.#up) {
      try {
        this.sync.setPeerUp(p, false)
      } catch {
        /* kernel closed */
      }
    }
    this.#up.clear()
  }

  // -------------------------------------------------------------- inputs

  /** Tells the protocol how much each reachable peer's queue can take now. */
  #budgets(): void {
    for (const p of this.#up) this.sync.setSendBudget(p, this.#transport.room(p))
  }

  #tick(): void {
    if (this.#closed) return
    this.#run(() => {
      this.#budgets()
      return this.sync.tick(nowMs())
    })
    if (this.#waiters.size > 0) this.#checkWaiters()
  }

  #receive(data: Uint8Array, source: FrameSource): void {
    if (this.#closed) return
    let out: SyncOutput
    try {
      this.#budgets()
      out = this.sync.receive(data, nowMs())
    } catch (e) {
      this.#fail(e)
      return
    }
    if (out.dropped !== undefined) {
      const d = out.dropped
      // a replayed frame on an authenticated connection is harmless; any
      // other dropped frame means this connection is not an honest peer
      if (!(d.code === 'REPLAYED_FRAME' && source.peer !== undefined)) {
        source.refuse(new ClusterError(d.code, `${source.peer !== undefined ? `node ${source.peer}` : 'a connection'} from ${source.remote}: ${d.message}; connection closed`, { peer: source.peer, remote: source.remote }))
      }
    } else if (out.from !== undefined) {
      source.authenticated(out.from)
    }
    this.#dispatch(out)
  }

  #peerUp(peer: bigint): void {
    if (this.#closed) return
    const fresh = !this.#up.has(peer)
    this.#up.add(peer)
    try {
      this.sync.setPeerUp(peer, true)
      this.sync.probeSoon()
    } catch (e) {
      this.#fail(e)
      return
    }
    if (fresh) this.emit('peer', { peer, state: 'up' })
    this.#tick()
  }

  #peerDown(peer: bigint, reason: ClusterError | null): void {
    if (!this.#up.delete(peer)) return
    try {
      this.sync.setPeerUp(peer, false)
    } catch {
      /* kernel closed */
    }
    this.emit('peer', reason === null ? { peer, state: 'down' } : { peer, state: 'down', reason })
    if (reason !== null) this.#error(reason)
  }

  #run(f: () => SyncOutput): void {
    let out: SyncOutput
    try {
      out = f()
    } catch (e) {
      this.#fail(e)
      return
    }
    this.#dispatch(out)
  }

  #dispatch(out: SyncOutput): void {
    for (const f of out.frames) this.#transport.send(f.to, f.data)
    for (const e of out.events) {
      this.emit('sync', e)
      switch (e.type) {
        case 'admitted':
          this.emit('fact', { from: e.from, facts: e.facts })
          break
        case 'synced':
          this.emit('synced', { peer: e.peer })
          break
        case 'quotaReceived':
        case 'quotaDenied':
        case 'quotaGaveUp':
          this.emit('quota', e)
          break
        case 'peerConfigMismatch':
          this.#error(new ClusterError('CONFIG_MISMATCH', `node ${e.peer} runs another configuration (invariant, causality mode or cluster name): its frames are refused`, { peer: e.peer }))
          break
        default:
          break
      }
    }
  }

  #checkWaiters(): void {
    const peers = [...this.#peers]
    const up = peers.filter((p) => this.#up.has(p))
    let synced: Set<bigint>
    try {
      synced = new Set(this.sync.stats.peers.filter((p) => p.synced).map((p) => p.peer))
    } catch {
      return
    }
    if (!up.every((p) => synced.has(p))) return
    for (const w of [...this.#waiters]) {
      const ok = w.all ? up.length === peers.length : up.length > 0 || peers.length === 0
      if (!ok) continue
      this.#waiters.delete(w)
      clearTimeout(w.timer)
      w.resolve(this.sync.digests)
    }
  }

  #fail(e: unknown): void {
    const err = e instanceof ClusterError ? e : e instanceof CtfsError ? new ClusterError(e.code, e.message) : new ClusterError('INVALID_ARGUMENT', String((e as Error)?.message ?? e))
    this.#error(err)
  }

  #error(e: ClusterError): void {
    this.#errors[e.code] = (this.#errors[e.code] ?? 0) + 1
    if (this.listenerCount('error') > 0) this.emit('error', e)
  }
}

function checkMember(nodes: readonly bigint[], id: bigint): void {
  if (!nodes.includes(id)) {
    throw new ClusterError('INVALID_ARGUMENT', `node ${id} is not one of this kernel's replica.nodes (${nodes.join(', ')}): every node of the cluster must be listed there (escrow splits bounds among them)`, { peer: id })
  }
}

/**
 * Transport callbacks that wait for their target: the transport starts
 * (and listens) before the protocol is attached, so that a failure to
 * listen leaves the kernel untouched. Whatever arrives in between is
 * replayed in order.
 */
class Relay implements TransportHandlers {
  #target: TransportHandlers | null = null
  #queued: Array<(h: TransportHandlers) => void> = []

  connect(target: TransportHandlers): void {
    this.#target = target
    const q = this.#queued
    this.#queued = []
    for (const f of q) f(target)
  }

  frame(data: Uint8Array, source: FrameSource): void {
    if (this.#target !== null) this.#target.frame(data, source)
    else {
      const copy = new Uint8Array(data)
      this.#queued.push((h) => h.frame(copy, source))
    }
  }

  peerUp(peer: bigint): void {
    if (this.#target !== null) this.#target.peerUp(peer)
    else this.#queued.push((h) => h.peerUp(peer))
  }

  peerDown(peer: bigint, reason: ClusterError | null): void {
    if (this.#target !== null) this.#target.peerDown(peer, reason)
    else this.#queued.push((h) => h.peerDown(peer, reason))
  }

  error(e: ClusterError): void {
    if (this.#target !== null) this.#target.error(e)
    else this.#queued.push((h) => h.error(e))
  }
}

function checkMs(v: unknown, name: string, min: number, max: number): number | undefined {
  if (v === undefined) return undefined
  if (typeof v !== 'number' || !Number.isInteger(v)) throw invalidArgType(name, 'an integer number of ms', v)
  if (v < min || v > max) throw outOfRange(name, `in [${min}, ${max}]`, v)
  return v
}

/**
 * Turns a replicated kernel (`replica: { nodes, local }`, in memory or
 * durable) into a node of a cluster: listens, connects to its peers (one
 * persistent TCP connection per pair, reconnecting with jittered backoff),
 * pushes local facts and admits peers' facts as they arrive, and checks
 * convergence by anti-entropy.
 *
 * @example
 * const supply = invariants.totalSupply({ initial: 1_000n, min: 0n })
 * const kernel = await DurableKernel.open({ dir: './data/a', invariant: supply, replica: { nodes: [1n, 2n, 3n], local: 1n } })
 * const node = await replicate(kernel, { listen: '127.0.0.1:7001', peers: ['2@127.0.0.1:7002', '3@127.0.0.1:7003'], key })
 * node.on('peer', (e) => console.log(e.peer, e.state))
 * await node.synced()
 * await node.close()
 *
 * @throws CtfsError `INVALID_ARGUMENT` (not a replicated kernel, already
 *   attached, a peer that is not in `replica.nodes`), `IO_ERROR` (cannot
 *   listen); TypeError/RangeError for malformed options.
 */
export async function replicate<I extends InvariantSpec>(kernel: Kernel<I>, options: ReplicateOptions): Promise<ClusterNode<I>> {
  if (typeof options !== 'object' || options === null) throw invalidArgType('options', 'an object { key, listen, peers, ... }', options)
  const replica = kernel.replica
  if (replica === null) {
    throw new ClusterError('INVALID_ARGUMENT', 'replicate() needs a replicated kernel: create it with `replica: { nodes, local }`')
  }
  const local = replica.local
  const file = options.config !== undefined ? loadClusterFile(options.config) : undefined
  let key = options.key
  const keyFile = options.keyFile ?? file?.keyFile
  if (key === undefined && keyFile !== undefined) key = readKeyFile(keyFile)
  if (key === undefined) throw invalidArgType('options.key', 'a 32-byte Uint8Array (or keyFile)', key)
  const cluster = options.cluster ?? file?.cluster
  const tickMs = checkMs(options.tickMs, 'options.tickMs', 1, 1000) ?? 2
  const maxFrameBytes = options.maxFrameBytes ?? 1 << 20
  const syncOptions: SyncOptions = { ...(options.sync ?? {}), key, maxFrameBytes }
  if (cluster !== undefined) syncOptions.cluster = cluster
  const antiEntropyMs = options.sync?.antiEntropyMs ?? 1000
  const peerTimeoutMs = checkMs(options.peerTimeoutMs, 'options.peerTimeoutMs', 10, 2 ** 31) ?? Math.max(2000, 4 * antiEntropyMs)

  let peers: PeerAddress[] = parsePeers(options.peers ?? [], local, 'options.peers')
  let listen: Address | null = options.listen !== undefined ? parseAddress(options.listen, 'options.listen') : null
  if (file !== undefined) {
    const mine = file.nodes.find((n) => n.id === local)
    if (listen === null && mine !== undefined) listen = mine.address
    const given = new Set(peers.map((p) => p.id))
    peers = [...peers, ...file.nodes.filter((n) => n.id !== local && !given.has(n.id))]
  }
  for (const p of peers) checkMember(replica.nodes, p.id)
  const transport =
    options.transport ??
    new TcpTransport({
      local,
      listen,
      peers,
      maxFrameBytes,
      ...(options.sendQueueBytes !== undefined ? { sendQueueBytes: options.sendQueueBytes } : {}),
      peerTimeoutMs,
      ...(options.reconnect !== undefined ? { reconnect: options.reconnect } : {}),
    })
  // Listen first, attach last: if anything fails, the kernel is left as it was.
  const relay = new Relay()
  await transport.start(relay)
  let sync: ReplicaSync
  try {
    sync = replica.sync(syncOptions)
  } catch (e) {
    await transport.close()
    throw e
  }
  const node = new ClusterNode(kernel, sync, transport, replica.nodes.filter((n) => n !== local))
  node.bind(relay, tickMs)
  return node
}

