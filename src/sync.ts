import { CtfsError, invalidArgType, outOfRange, rethrowNative, type CtfsErrorCode } from './errors.ts'
import { amount, nodeId } from './escrow.ts'
import type { PeerMetrics } from './metrics.ts'
import type { NativeKernel } from './native.ts'
import type { BoundSide } from './replica.ts'

/** Options of {@link Replica.sync}: how this replica speaks the replication protocol. */
export interface SyncOptions {
  /** The 32-byte cluster key: every frame carries a keyed BLAKE3 MAC under it. */
  key: Uint8Array
  /**
   * This run of the replica. Must grow across restarts of the same node
   * (facts are numbered per node and epoch). Default: `Date.now()`.
   */
  epoch?: number
  /** Cluster name; replicas of different clusters refuse each other's frames. */
  cluster?: string
  /** Largest frame sent or accepted, bytes (default 1 MiB). */
  maxFrameBytes?: number
  /** Facts per pushed frame (default 1,024). */
  pushMaxFacts?: number
  /** Facts waiting for their dependencies, at most (default 65,536). */
  bufferMaxFacts?: number
  /** Bytes waiting for their dependencies, at most (default 64 MiB). */
  bufferMaxBytes?: number
  /** Anti-entropy period, ms (default 1,000). */
  antiEntropyMs?: number
  /** Fact bytes sent to one peer per anti-entropy round (default 8 MiB). */
  antiEntropyMaxBytes?: number
  /** Ask peers for quota when the local share falls below this (default: a quarter of the initial share). */
  quotaLowWater?: bigint | number
  /** How much quota to ask for (default: half of the initial share). */
  quotaRefill?: bigint | number
  /** An empty replica joins by snapshot from a peer with at least this many facts (default 10,000; `Infinity`: never). */
  snapshotMinFacts?: number
  /** Largest snapshot accepted, bytes (default 1 GiB). */
  maxSnapshotBytes?: number
}

/** A frame to hand to the transport. */
export interface OutgoingFrame {
  /** The peer's node id. */
  to: bigint
  data: Uint8Array
}

/** What the protocol reports. */
export type SyncEvent =
  | { type: 'admitted'; from: bigint; facts: number }
  | { type: 'synced'; peer: bigint }
  | { type: 'diverged'; peer: bigint }
  | { type: 'remoteRefused'; origin: bigint; seq: number; code: string; message: string }
  | { type: 'peerConfigMismatch'; peer: bigint }
  | { type: 'quotaReceived'; peer: bigint; member: number; side: BoundSide; amount: bigint }
  | { type: 'quotaDenied'; peer: bigint; member: number; side: BoundSide }
  | { type: 'quotaGaveUp'; peer: bigint; member: number; side: BoundSide }
  | { type: 'snapshotInstalled'; peer: bigint; facts: number; bytes: bigint }
  | { type: 'snapshotRefused'; peer: bigint; message: string }

/** The result of one input. */
export interface SyncOutput {
  frames: OutgoingFrame[]
  /**
   * Broadcast frames (broadcast mode only, see {@link ReplicaSync.setBroadcast}):
   * this replica's own facts, for every member — publish each once to the
   * stream that every replica reads.
   */
  broadcast: Uint8Array[]
  events: SyncEvent[]
  /** Why a received frame was dropped (it changed nothing). */
  dropped?: CtfsError
  /** Sender of a received frame that authenticated. */
  from?: bigint
}

/** Counters of the protocol. */
export interface SyncStats {
  factsReceived: number
  factsAdmitted: number
  factsDuplicate: number
  factsBuffered: number
  factsDiscarded: number
  /** Facts from peers this kernel could not take yet (a durable kernel's log queue was full): retried, never skipped. */
  factsDeferred: number
  remoteRefused: number
  factsPushed: number
  pushFrames: number
  probesSent: number
  summariesSent: number
  antiEntropyFactsSent: number
  antiEntropyBytesSent: number
  quotaRequestsSent: number
  quotaGrantsSent: number
  snapshotsSent: number
  snapshotsInstalled: number
  snapshotBytesIn: number
  /** Broadcast frames sealed (broadcast mode), and their bytes. */
  broadcastFrames: number
  broadcastBytes: number
  /** Probes left without a summary while this replica was catching up from a stream. */
  asksHeld: number
  /** Facts waiting for their dependencies now, and their bytes. */
  buffered: number
  bufferedBytes: number
  bufferEvicted: number
  /** Facts held to serve peers, and their bytes. */
  storeFacts: number
  storeBytes: number
  /** Facts admitted here not pushed yet. */
  unpushed: number
  /** Frames dropped, by code. */
  dropped: Record<string, number>
  /** Per peer: reachability, frames, bytes and facts each way. */
  peers: PeerMetrics[]
  /** Per origin (node, epoch): how many of its facts this replica holds. */
  versionVector: Array<{ node: bigint; epoch: number; count: number }>
}

/** Count and digests of what a kernel holds: equal on converged replicas. */
export interface Digests {
  count: number
  /** Order-independent digest of the admitted ids (hex). */
  ids: string
  /** Digest of the state (hex). */
  state: string
}

/** @internal a monotonic-enough clock in ms. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now()
}

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')

/** @internal */
export function digestsOf(raw: Uint8Array): Digests {
  const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength)
  return { count: Number(v.getBigUint64(0, true)), ids: hex(raw.subarray(8, 40)), state: hex(raw.subarray(40, 72)) }
}

type NativeOutput = ReturnType<NativeKernel['syncTick']>

function unpack(o: NativeOutput): SyncOutput {
  const frames: OutgoingFrame[] = new Array(o.frameCount)
  const buf = o.frames
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  let at = 0
  for (let i = 0; i < o.frameCount; i++) {
    const to = v.getBigUint64(at, true)
    const len = v.getUint32(at + 8, true)
    frames[i] = { to, data: buf.subarray(at + 12, at + 12 + len) }
    at += 12 + len
  }
  const broadcast: Uint8Array[] = new Array(o.broadcastCount)
  const bb = o.broadcast
  const bv = new DataView(bb.buffer, bb.byteOffset, bb.byteLength)
  at = 0
  for (let i = 0; i < o.broadcastCount; i++) {
    const len = bv.getUint32(at, true)
    broadcast[i] = bb.subarray(at + 4, at + 4 + len)
    at += 4 + len
  }
  const events: SyncEvent[] = o.events.map((e) => {
    const peer = e.peer as bigint
    switch (e.kind) {
      case 'admitted':
        return { type: 'admitted', from: peer, facts: e.facts ?? 0 }
      case 'remoteRefused':
        return { type: 'remoteRefused', origin: peer, seq: e.facts ?? 0, code: e.code ?? '', message: e.message ?? '' }
      case 'quotaReceived':
        return { type: 'quotaReceived', peer, member: e.member ?? 0, side: e.side as BoundSide, amount: e.amount as bigint }
      case 'quotaDenied':
      case 'quotaGaveUp':
        return { type: e.kind, peer, member: e.member ?? 0, side: e.side as BoundSide }
      case 'snapshotInstalled':
        return { type: 'snapshotInstalled', peer, facts: e.facts ?? 0, bytes: e.amount as bigint }
      case 'snapshotRefused':
        return { type: 'snapshotRefused', peer, message: e.message ?? '' }
      default:
        return { type: e.kind as 'synced' | 'diverged' | 'peerConfigMismatch', peer }
    }
  })
  const out: SyncOutput = { frames, broadcast, events }
  if (o.droppedCode != null) out.dropped = new CtfsError(o.droppedCode as CtfsErrorCode, o.droppedMessage ?? 'frame dropped')
  if (o.from != null) out.from = o.from
  return out
}

function checkCount(v: unknown, name: string, min: number, max: number): number | undefined {
  if (v === undefined) return undefined
  if (typeof v !== 'number') throw invalidArgType(name, 'a number', v)
  if (!Number.isInteger(v) || v < min || v > max) throw outOfRange(name, `an integer in [${min}, ${max}]`, v)
  return v
}

const SYNC_KEYS: ReadonlySet<string> = new Set([
  'key',
  'epoch',
  'cluster',
  'maxFrameBytes',
  'pushMaxFacts',
  'bufferMaxFacts',
  'bufferMaxBytes',
  'antiEntropyMs',
  'antiEntropyMaxBytes',
  'quotaLowWater',
  'quotaRefill',
  'snapshotMinFacts',
  'maxSnapshotBytes',
])

/** @internal validated native options */
export function nativeSyncConfig(o: SyncOptions): Parameters<NativeKernel['syncAttach']>[0] {
  if (typeof o !== 'object' || o === null) throw invalidArgType('options', 'an object { key, ... }', o)
  for (const k of Object.keys(o)) {
    if (!SYNC_KEYS.has(k)) {
      throw Object.assign(new TypeError(`options.${k} is not a replication option (known: ${[...SYNC_KEYS].join(', ')})`), {
        code: 'ERR_INVALID_ARG_VALUE' as const,
      })
    }
  }
  if (!(o.key instanceof Uint8Array)) throw invalidArgType('options.key', 'a 32-byte Uint8Array', o.key)
  if (o.key.length !== 32) throw outOfRange('options.key', '32 bytes', o.key)
  const epoch = checkCount(o.epoch, 'options.epoch', 0, Number.MAX_SAFE_INTEGER) ?? Date.now()
  if (o.cluster !== undefined && typeof o.cluster !== 'string') throw invalidArgType('options.cluster', 'a string', o.cluster)
  const snap = o.snapshotMinFacts
  if (snap !== undefined && snap !== Infinity) checkCount(snap, 'options.snapshotMinFacts', 0, Number.MAX_SAFE_INTEGER)
  const cfg: Parameters<NativeKernel['syncAttach']>[0] = { key: Buffer.from(o.key), epoch }
  if (o.cluster !== undefined) cfg.cluster = o.cluster
  const set = <K extends keyof typeof cfg>(k: K, v: (typeof cfg)[K] | undefined) => {
    if (v !== undefined) cfg[k] = v
  }
  set('maxFrameBytes', checkCount(o.maxFrameBytes, 'options.maxFrameBytes', 4096, 2 ** 30))
  set('pushMaxFacts', checkCount(o.pushMaxFacts, 'options.pushMaxFacts', 1, 1 << 20))
  set('bufferMaxFacts', checkCount(o.bufferMaxFacts, 'options.bufferMaxFacts', 0, 2 ** 31))
  set('bufferMaxBytes', checkCount(o.bufferMaxBytes, 'options.bufferMaxBytes', 0, Number.MAX_SAFE_INTEGER))
  set('antiEntropyMs', checkCount(o.antiEntropyMs, 'options.antiEntropyMs', 1, 2 ** 31))
  set('antiEntropyMaxBytes', checkCount(o.antiEntropyMaxBytes, 'options.antiEntropyMaxBytes', 1, 2 ** 31))
  if (o.quotaLowWater !== undefined) cfg.quotaLowWater = amount(o.quotaLowWater, 'options.quotaLowWater')
  if (o.quotaRefill !== undefined) cfg.quotaRefill = amount(o.quotaRefill, 'options.quotaRefill')
  if (snap !== undefined) cfg.snapshotMinFacts = snap
  set('maxSnapshotBytes', checkCount(o.maxSnapshotBytes, 'options.maxSnapshotBytes', 0, Number.MAX_SAFE_INTEGER))
  return cfg
}

/**
 * One replica's side of the replication protocol, driven by hand: bytes in,
 * bytes out. Get one with `kernel.replica.sync({ key })`; a transport (see
 * `replicate()`) or your own code moves the frames between replicas.
 *
 * - `receive(frame)` handles a frame from a peer in one native call
 *   (verify, admit its facts as a batch, build the replies);
 * - `tick()` runs the timers (push, anti-entropy every `antiEntropyMs`,
 *   quota retries, snapshot chunks) — call it every few ms;
 * - `flush()` pushes the facts admitted since the last push right away.
 *
 * Facts admitted with `kernel.admit` / `admitBatch` after `sync()` are
 * numbered and pushed to every peer; frames from peers are authenticated
 * with the cluster key, checked against this kernel's configuration, and
 * their facts admitted in causal order. Dropped frames are reported, never
 * thrown.
 *
 * @example
 * const out = a.replica!.sync({ key }).tick()
 * for (const f of out.frames) send(f.to, f.data)
 */
export class ReplicaSync {
  readonly #nk: NativeKernel
  /** This replica's node id. */
  readonly local: bigint
  /** This run's epoch. */
  readonly epoch: number

  /** @internal */
  constructor(nk: NativeKernel, local: bigint, options: SyncOptions) {
    const cfg = nativeSyncConfig(options)
    rethrowNative(() => nk.syncAttach(cfg))
    this.#nk = nk
    this.local = local
    // a durable replica runs in the epoch its log chose, not the one asked for
    this.epoch = rethrowNative(() => nk.syncStats()).epoch
  }

  /** Handles one frame received from a peer. */
  receive(frame: Uint8Array, now: number = nowMs()): SyncOutput {
    if (!(frame instanceof Uint8Array)) throw invalidArgType('frame', 'a Uint8Array', frame)
    return unpack(rethrowNative(() => this.#nk.syncReceive(frame, now)))
  }

  /** Runs the timers; call every few ms (e.g. 5–50). */
  tick(now: number = nowMs()): SyncOutput {
    return unpack(rethrowNative(() => this.#nk.syncTick(now)))
  }

  /** Pushes every fact admitted here and not pushed yet. */
  flush(): SyncOutput {
    return unpack(rethrowNative(() => this.#nk.syncFlush()))
  }

  /** After `INSUFFICIENT_QUOTA`: asks a peer for at least `value` more quota now. */
  needQuota(value: bigint | number, side: BoundSide, member = 0, now: number = nowMs()): SyncOutput {
    if (side !== 'down' && side !== 'up') throw outOfRange('side', "'down' or 'up'", side)
    checkCount(member, 'member', 0, 63)
    return unpack(rethrowNative(() => this.#nk.syncNeedQuota(member, side, amount(value, 'value'), now)))
  }

  /** Tells the protocol whether `peer` is reachable (frames are built for reachable peers only). */
  setPeerUp(peer: bigint | number, up: boolean): void {
    if (typeof up !== 'boolean') throw invalidArgType('up', 'a boolean', up)
    rethrowNative(() => this.#nk.syncSetPeerUp(nodeId(peer, 'peer'), up))
  }

  /**
   * How many bytes the transport can queue for `peer` now (`null`: no
   * limit, the default). Anti-entropy rounds and snapshot chunks for that
   * peer stay within it — a chunk that does not fit waits for a later
   * tick — so a bounded send queue does not drop them. Every frame built
   * for the peer uses the budget up; set it again before each input.
   */
  setSendBudget(peer: bigint | number, bytes: number | null): void {
    if (bytes !== null && (typeof bytes !== 'number' || !(bytes >= 0))) throw outOfRange('bytes', 'a non-negative number or null', bytes)
    rethrowNative(() => this.#nk.syncSetSendBudget(nodeId(peer, 'peer'), bytes ?? -1))
  }

  /**
   * Broadcast mode, for a transport with a stream that every replica reads
   * (a message bus such as NATS JetStream). With `streamed` (the peers that
   * read the stream), this replica's own facts are pushed once, as
   * broadcast frames in `output.broadcast` that every member verifies —
   * whether or not a peer is reachable: the stream keeps them for replicas
   * that are away — and `streamed` peers get no point-to-point push (other
   * peers, reached by another transport, still do). `null`: back to
   * point-to-point pushes to every peer.
   */
  setBroadcast(streamed: ReadonlyArray<bigint | number> | null): void {
    if (streamed !== null && !Array.isArray(streamed)) throw invalidArgType('streamed', 'an array of node ids or null', streamed)
    const peers = (streamed ?? []).map((p, i) => nodeId(p, `streamed[${i}]`))
    rethrowNative(() => this.#nk.syncSetBroadcast(streamed !== null, peers))
  }

  /**
   * How many bytes the stream can take now (`null`: no limit). In broadcast
   * mode a push waits — its facts stay unpushed — until its frame fits.
   */
  setBroadcastBudget(bytes: number | null): void {
    if (bytes !== null && (typeof bytes !== 'number' || !(bytes >= 0))) throw outOfRange('bytes', 'a non-negative number or null', bytes)
    rethrowNative(() => this.#nk.syncSetBroadcastBudget(bytes ?? -1))
  }

  /**
   * Whether this replica is reading a backlog from the stream. While it
   * is, a probe that finds a difference gets no summary: the stream brings
   * the facts, and asking would make the peer ship them a second time.
   */
  setCatchingUp(catchingUp: boolean): void {
    if (typeof catchingUp !== 'boolean') throw invalidArgType('catchingUp', 'a boolean', catchingUp)
    rethrowNative(() => this.#nk.syncSetCatchingUp(catchingUp))
  }

  /**
   * Makes the next `tick()` probe every peer, and forgets which peers were
   * in sync: `isSynced` is true again only after an exchange that starts
   * now (use it before waiting for convergence).
   */
  probeSoon(): void {
    rethrowNative(() => this.#nk.syncProbeSoon())
  }

  /** Whether the last exchange with `peer` found the same facts. */
  isSynced(peer: bigint | number): boolean {
    const p = nodeId(peer, 'peer')
    return this.stats.peers.some((s) => s.peer === p && s.synced)
  }

  /** Count and digests of this kernel: equal on converged replicas. */
  get digests(): Digests {
    return digestsOf(rethrowNative(() => this.#nk.digests()))
  }

  get stats(): SyncStats {
    const s = rethrowNative(() => this.#nk.syncStats())
    const dropped: Record<string, number> = {}
    s.droppedCodes.forEach((c, i) => (dropped[c] = s.droppedCounts[i] ?? 0))
    const { droppedCodes: _c, droppedCounts: _n, originNodes, originEpochs, originCounts, epoch: _e, ...rest } = s
    return {
      ...rest,
      dropped,
      versionVector: originNodes.map((node, i) => ({ node, epoch: originEpochs[i] ?? 0, count: originCounts[i] ?? 0 })),
    }
  }

  /**
   * Every fact this replica holds, as packed batch records in dependency
   * order: `FactBatch.fromPacked(bytes)` and `kernel.admitBatch` admit them
   * elsewhere in one call.
   */
  exportFacts(): Uint8Array {
    return rethrowNative(() => this.#nk.syncExport())
  }
}
