// Decodes the packed metrics snapshot of a kernel (one native call, see
// bindings/node/src/metrics.rs for the layout). No prom-client here: this is
// the plain-object view; `ctfs/prometheus` turns it into Prometheus metrics.
import { ERROR_CODES, type CtfsErrorCode } from './errors.ts'

/** The layout version this build decodes. */
const VERSION = 2
const FLAG_DURABLE = 1
const FLAG_REPLICATED = 2
const FLAG_SYNC = 4
const FLAG_CLOSED = 8

/**
 * A power-of-two histogram: `buckets[i]` counts observations `v` with
 * `2^(i-1) < v <= 2^i` (bucket 0: `v <= 1`), 64 buckets. Latencies are in
 * nanoseconds, sizes in records or bytes.
 */
export interface PowerOfTwoHistogram {
  /** Observations (the sum of the buckets). */
  count: number
  /** Sum of the observed values. */
  sum: number
  /** 64 counts; the upper bound of bucket `i` is `2^i`. */
  buckets: number[]
}

/** What one causal domain (the kernel, or one tenant) admitted and refused. */
export interface DomainMetrics {
  /** `null` for the kernel's own domain, else the tenant's name. */
  tenant: string | null
  admitted: number
  /** Refusals by code (every code, zeros included). */
  refused: Record<CtfsErrorCode, number>
  /** Ids tracked exactly. */
  tracked: number
  /** Heap bytes of the exact index. */
  indexBytes: number
}

/** Per member of a multi invariant (summed over the kernel's domains). */
export interface MemberMetrics {
  /** The member's name. */
  member: string
  /** Facts admitted that had a part for this member. */
  admitted: number
  /** Refusals this member decided. */
  refused: { INVARIANT_VIOLATION: number; MALFORMED_FACT: number; DUPLICATE_ELEMENT: number }
}

/** The write-ahead log of a durable kernel. */
export interface WalMetrics {
  backend: string
  failed: boolean
  durableSeq: number
  appendedSeq: number
  fsyncs: number
  /** Group commits (durable batches). */
  groupCommits: number
  recordsWritten: number
  bytesWritten: number
  segmentsCreated: number
  /** Bytes queued and not yet durable, and the queue's size. */
  queueBytes: number
  queueCapacity: number
  /** Records per group commit. */
  groupRecords: PowerOfTwoHistogram
  /** Bytes per group commit. */
  groupBytes: PowerOfTwoHistogram
  /** ns of the write phase (portable backend; empty with io_uring). */
  writeNs: PowerOfTwoHistogram
  /** ns of fdatasync (portable) or of the whole durable write (io_uring). */
  syncNs: PowerOfTwoHistogram
  /** ns from append to durable, for the last fact of a sampled single admission or of a batch (one in flight at a time). */
  ackNs: PowerOfTwoHistogram
  /** ns to open: checkpoint restore and log replay. */
  recoveryNs: number
  factsReplayed: number
  checkpointSeq: number
  /** Checkpoints written since open, the last one's bytes, all their bytes, and their durations. */
  checkpoints: number
  checkpointBytesLast: number
  checkpointBytesTotal: number
  checkpointNs: PowerOfTwoHistogram
}

/** One escrow pool of a replicated kernel (quota amounts as numbers: they may round above 2^53). */
export interface EscrowPoolMetrics {
  /** Member index (0 for a single invariant). */
  member: number
  side: 'down' | 'up'
  /** The global headroom as this replica knows it. */
  total: number
  /** This replica's quota, and how much of it is consumed. */
  quota: number
  consumed: number
  requestsSent: number
  retriesSent: number
  requestsGivenUp: number
  grantsApplied: number
  denialsReceived: number
  grantsIssued: number
  grantedOut: number
  grantedIn: number
}

/** Per peer of an attached replica. */
export interface PeerMetrics {
  peer: bigint
  up: boolean
  synced: boolean
  framesIn: number
  bytesIn: number
  framesOut: number
  bytesOut: number
  factsIn: number
  factsOut: number
}

/** The replication protocol of an attached replica. */
export interface SyncMetrics {
  factsReceived: number
  factsAdmitted: number
  factsDuplicate: number
  factsBuffered: number
  factsDiscarded: number
  remoteRefused: number
  factsPushed: number
  pushFrames: number
  /** Anti-entropy probes sent (one per peer per round). */
  probesSent: number
  summariesSent: number
  antiEntropyFactsSent: number
  antiEntropyBytesSent: number
  /** Anti-entropy answers that shipped missing facts. */
  antiEntropyRepairs: number
  quotaRequestsSent: number
  quotaGrantsSent: number
  snapshotsSent: number
  snapshotsInstalled: number
  snapshotBytesIn: number
  /** The causal buffer: facts and bytes waiting now, evictions, limits. */
  buffered: number
  bufferedBytes: number
  bufferEvicted: number
  bufferMaxFacts: number
  bufferMaxBytes: number
  storeFacts: number
  storeBytes: number
  unpushed: number
  /** Frames dropped, by code (only codes seen). */
  dropped: Record<string, number>
  peers: PeerMetrics[]
  /** Facts held per origin node (its epochs summed). */
  origins: Array<{ node: bigint; facts: number }>
}

/** Every metric of a kernel, read in one native call. */
export interface MetricsSnapshot {
  /** One single admission in this many is timed for {@link admitNs}. */
  sampleEvery: number
  closed: boolean
  /** The kernel's own domain first, then its tenants in creation order. */
  domains: DomainMetrics[]
  /**
   * Single admissions (`admit`, `admitAsync`, `admitDurable`; admitted or
   * refused), one call in {@link sampleEvery} timed in native code, ns,
   * all domains.
   */
  admitNs: PowerOfTwoHistogram
  /** Facts per `admitBatch` call, all domains. */
  batchFacts: PowerOfTwoHistogram
  /** Native time of every `admitBatch` call, ns, all domains. */
  batchNs: PowerOfTwoHistogram
  /** Multi invariants only (empty otherwise). */
  members: MemberMetrics[]
  /** Durable kernels only. */
  wal: WalMetrics | null
  /** Replicated kernels only. */
  escrow: EscrowPoolMetrics[] | null
  /** Replicas with `replica.sync()` attached only. */
  sync: SyncMetrics | null
}

const TWO_32 = 2 ** 32
const utf8 = new TextDecoder()

class Reader {
  #view: DataView
  #bytes: Uint8Array
  #at = 0

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }

  u64(): number {
    const lo = this.#view.getUint32(this.#at, true)
    const hi = this.#view.getUint32(this.#at + 4, true)
    this.#at += 8
    return hi * TWO_32 + lo
  }

  big(): bigint {
    const v = this.#view.getBigUint64(this.#at, true)
    this.#at += 8
    return v
  }

  f64(): number {
    const v = this.#view.getFloat64(this.#at, true)
    this.#at += 8
    return v
  }

  bool(): boolean {
    return this.u64() !== 0
  }

  str(): string {
    const n = this.u64()
    const b = this.#bytes
    const at = this.#at
    let s = ''
    let ascii = n <= 64
    for (let i = 0; ascii && i < n; i++) {
      const c = b[at + i] as number
      if (c < 0x80) s += String.fromCharCode(c)
      else ascii = false
    }
    if (!ascii) s = utf8.decode(b.subarray(at, at + n))
    this.#at = at + n + ((8 - (n % 8)) % 8)
    return s
  }

  hist(): PowerOfTwoHistogram {
    const sum = this.u64()
    const lo = this.#view.getUint32(this.#at, true)
    const hi = this.#view.getUint32(this.#at + 4, true)
    this.#at += 8
    const buckets = new Array<number>(64).fill(0)
    let count = 0
    for (let i = 0; i < 64; i++) {
      if (((i < 32 ? lo >>> i : hi >>> (i - 32)) & 1) !== 0) {
        const n = this.u64()
        buckets[i] = n
        count += n
      }
    }
    return { count, sum, buckets }
  }

  get done(): boolean {
    return this.#at === this.#bytes.byteLength
  }
}

const MEMBER_CODES = ['INVARIANT_VIOLATION', 'MALFORMED_FACT', 'DUPLICATE_ELEMENT'] as const
/** Every refusal code at 0, in code order (cloned per domain: one object shape). */
const ZERO_REFUSALS = Object.fromEntries(ERROR_CODES.slice(1).map((c) => [c, 0])) as Record<CtfsErrorCode, number>

/**
 * Decodes a snapshot from `NativeKernel.metricsSnapshot()`.
 * @param memberNames names of a multi invariant's members, in member order
 * @internal
 */
export function decodeMetrics(bytes: Uint8Array, memberNames: readonly string[] = []): MetricsSnapshot {
  const r = new Reader(bytes)
  const version = r.u64()
  if (version !== VERSION) throw new Error(`ctfs: metrics snapshot version ${version}; this build reads ${VERSION}`)
  const sampleEvery = r.u64()
  const codeCount = r.u64()
  const flags = r.u64()
  const nd = r.u64()
  const domains: DomainMetrics[] = []
  for (let d = 0; d < nd; d++) {
    const name = r.str()
    const admitted = r.u64()
    const refused = { ...ZERO_REFUSALS }
    for (let c = 0; c < codeCount; c++) {
      const n = r.u64()
      if (c > 0) refused[(ERROR_CODES[c] ?? `CODE_${c}`) as CtfsErrorCode] = n
    }
    domains.push({ tenant: d === 0 ? null : name, admitted, refused, tracked: r.u64(), indexBytes: r.u64() })
  }
  const admitNs = r.hist()
  const batchFacts = r.hist()
  const batchNs = r.hist()
  const nm = r.u64()
  const members: MemberMetrics[] = []
  for (let m = 0; m < nm; m++) {
    const admitted = r.u64()
    const refused = { INVARIANT_VIOLATION: 0, MALFORMED_FACT: 0, DUPLICATE_ELEMENT: 0 }
    for (const code of MEMBER_CODES) refused[code] = r.u64()
    members.push({ member: memberNames[m] ?? String(m), admitted, refused })
  }
  let wal: WalMetrics | null = null
  if (flags & FLAG_DURABLE) {
    wal = {
      backend: r.str(),
      failed: r.bool(),
      durableSeq: r.u64(),
      appendedSeq: r.u64(),
      fsyncs: r.u64(),
      groupCommits: r.u64(),
      recordsWritten: r.u64(),
      bytesWritten: r.u64(),
      segmentsCreated: r.u64(),
      queueBytes: r.u64(),
      queueCapacity: r.u64(),
      groupRecords: r.hist(),
      groupBytes: r.hist(),
      writeNs: r.hist(),
      syncNs: r.hist(),
      ackNs: r.hist(),
      recoveryNs: r.u64(),
      factsReplayed: r.u64(),
      checkpointSeq: r.u64(),
      checkpoints: r.u64(),
      checkpointBytesLast: r.u64(),
      checkpointBytesTotal: r.u64(),
      checkpointNs: r.hist(),
    }
  }
  let escrow: EscrowPoolMetrics[] | null = null
  if (flags & FLAG_REPLICATED) {
    escrow = []
    const np = r.u64()
    for (let p = 0; p < np; p++) {
      escrow.push({
        member: r.u64(),
        side: r.u64() === 1 ? 'up' : 'down',
        total: r.f64(),
        quota: r.f64(),
        consumed: r.f64(),
        requestsSent: r.u64(),
        retriesSent: r.u64(),
        requestsGivenUp: r.u64(),
        grantsApplied: r.u64(),
        denialsReceived: r.u64(),
        grantsIssued: r.u64(),
        grantedOut: r.f64(),
        grantedIn: r.f64(),
      })
    }
  }
  let sync: SyncMetrics | null = null
  if (flags & FLAG_SYNC) {
    const s = {
      factsReceived: r.u64(),
      factsAdmitted: r.u64(),
      factsDuplicate: r.u64(),
      factsBuffered: r.u64(),
      factsDiscarded: r.u64(),
      remoteRefused: r.u64(),
      factsPushed: r.u64(),
      pushFrames: r.u64(),
      probesSent: r.u64(),
      summariesSent: r.u64(),
      antiEntropyFactsSent: r.u64(),
      antiEntropyBytesSent: r.u64(),
      antiEntropyRepairs: r.u64(),
      quotaRequestsSent: r.u64(),
      quotaGrantsSent: r.u64(),
      snapshotsSent: r.u64(),
      snapshotsInstalled: r.u64(),
      snapshotBytesIn: r.u64(),
      buffered: r.u64(),
      bufferedBytes: r.u64(),
      bufferEvicted: r.u64(),
      bufferMaxFacts: r.u64(),
      bufferMaxBytes: r.u64(),
      storeFacts: r.u64(),
      storeBytes: r.u64(),
      unpushed: r.u64(),
    }
    const dropped: Record<string, number> = {}
    const nk = r.u64()
    for (let i = 0; i < nk; i++) {
      const code = r.str()
      dropped[code] = r.u64()
    }
    const peers: PeerMetrics[] = []
    const npeers = r.u64()
    for (let i = 0; i < npeers; i++) {
      peers.push({
        peer: r.big(),
        up: r.bool(),
        synced: r.bool(),
        framesIn: r.u64(),
        bytesIn: r.u64(),
        framesOut: r.u64(),
        bytesOut: r.u64(),
        factsIn: r.u64(),
        factsOut: r.u64(),
      })
    }
    const origins: Array<{ node: bigint; facts: number }> = []
    const no = r.u64()
    for (let i = 0; i < no; i++) origins.push({ node: r.big(), facts: r.u64() })
    sync = { ...s, dropped, peers, origins }
  }
  if (!r.done) throw new Error('ctfs: metrics snapshot has trailing bytes (addon and JS layer out of step)')
  return { sampleEvery, closed: (flags & FLAG_CLOSED) !== 0, domains, admitNs, batchFacts, batchNs, members, wal, escrow, sync }
}
