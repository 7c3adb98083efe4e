/**
 * `ctfs/prometheus`: ctfs kernels as prom-client metrics, and a tiny
 * `/metrics` server.
 *
 * ```ts
 * import { collectMetrics, serveMetrics } from 'ctfs/prometheus'
 * collectMetrics(kernel)                       // into prom-client's default registry
 * collectMetrics({ orders, audit }, { registry }) // several kernels, labelled kernel="orders" / "audit"
 * await serveMetrics({ port: 9464 })           // http://127.0.0.1:9464/metrics
 * ```
 *
 * Each scrape reads one packed snapshot per kernel (one native call; no
 * JavaScript runs per fact) and shares it between every ctfs metric of that
 * scrape. prom-client is an optional peer dependency: it is loaded only here,
 * and only to reach its default registry when you pass none; the rest of
 * ctfs never loads it. Metric names, units and label sets: README,
 * "Observability".
 *
 * @packageDocumentation
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createRequire } from 'node:module'

import { ERROR_CODES, invalidArgType, invalidArgValue, outOfRange, type CtfsErrorCode } from './errors.ts'
import type { MetricsSnapshot, PowerOfTwoHistogram } from './metrics.ts'

/**
 * The part of a prom-client `Registry` ctfs uses (prom-client 13 and later
 * fit it; pass your own or let ctfs use prom-client's default `register`).
 */
export interface PromRegistry {
  registerMetric(metric: never): void
  removeSingleMetric(name: string): void
  getSingleMetric(name: string): unknown
  metrics(): Promise<string>
  readonly contentType: string
}

/** Options of {@link collectMetrics}. */
export interface CollectMetricsOptions {
  /** Where to register (default: prom-client's global `register`). */
  registry?: PromRegistry
  /**
   * The `kernel` label of a single kernel (default `'default'`). With an
   * object of kernels, each key is its kernel's label.
   */
  name?: string
}

/** What {@link collectMetrics} registered. */
export interface MetricsCollection {
  /** The registry the metrics are in. */
  readonly registry: PromRegistry
  /** The `kernel` labels added by this call. */
  readonly kernels: readonly string[]
  /**
   * Stops exporting these kernels. The ctfs metrics leave the registry
   * once no kernel is exported to it any more. Idempotent.
   */
  remove(): void
}

/**
 * What {@link collectMetrics} reads: a `Kernel` or `DurableKernel` (any
 * object whose `metrics()` returns a ctfs {@link MetricsSnapshot}; checked
 * by shape, so two copies of ctfs in one process still work together).
 */
export interface MetricsSource {
  metrics(): MetricsSnapshot
}
type AnyKernel = MetricsSource
const isSource = (k: unknown): k is MetricsSource => typeof k === 'object' && k !== null && typeof (k as MetricsSource).metrics === 'function'
type Labels = Record<string, string>
interface Sample {
  labels: Labels
  value: number
  metricName?: string
  /**
   * prom-client 15 formats these once per object (cached by identity); a
   * missing one costs a fresh `{}` and a cache miss per value. ctfs passes
   * one constant empty object (labels, `kernel` first, are all in `labels`).
   */
  sharedLabels?: Labels
}
type MetricType = 'counter' | 'gauge' | 'histogram'
/** Families are registered by group, when a kernel that has them is added. */
type Group = 'kernel' | 'wal' | 'escrow' | 'sync'
interface Def {
  name: string
  help: string
  type: MetricType
  group: Group
  collect(out: Sample[], base: Labels, s: MetricsSnapshot): void
}

const requireHere = createRequire(import.meta.url)

function defaultRegistry(): PromRegistry {
  let prom: { register: PromRegistry }
  try {
    prom = requireHere('prom-client') as { register: PromRegistry }
  } catch (e) {
    const err = new Error(
      "ctfs/prometheus needs prom-client for its default registry: install it (npm install prom-client) or pass options.registry",
    ) as Error & { code: string; cause: unknown }
    err.code = 'ERR_MODULE_NOT_FOUND'
    err.cause = e
    throw err
  }
  return prom.register
}

// ---------------------------------------------------------------- histograms

/** Emitted `le` bounds: 2^lo .. 2^hi (ns for latencies); smaller buckets fold into the first, larger ones into +Inf. */
interface Range {
  lo: number
  hi: number
  /** Multiplier from the recorded unit to the exported one (ns → s: 1e-9). */
  seconds: boolean
}
const ADMIT_RANGE: Range = { lo: 5, hi: 30, seconds: true } // 32 ns .. 1.07 s
const IO_RANGE: Range = { lo: 10, hi: 36, seconds: true } // 1 µs .. 68.7 s
const BATCH_RANGE: Range = { lo: 8, hi: 36, seconds: true } // 256 ns .. 68.7 s
const CHECKPOINT_RANGE: Range = { lo: 16, hi: 40, seconds: true } // 65 µs .. 18 min
const COUNT_RANGE: Range = { lo: 0, hi: 24, seconds: false } // 1 .. 16 M
const BYTES_RANGE: Range = { lo: 6, hi: 32, seconds: false } // 64 B .. 4 GiB

const LE_CACHE = new Map<string, string[]>()
function bounds(r: Range): string[] {
  const key = `${r.lo}:${r.hi}:${r.seconds}`
  let b = LE_CACHE.get(key)
  if (b === undefined) {
    b = []
    for (let k = r.lo; k <= r.hi; k++) b.push(String(r.seconds ? 2 ** k / 1e9 : 2 ** k))
    LE_CACHE.set(key, b)
  }
  return b
}

/**
 * Label objects that recur every scrape (a tenant's, a tenant's per code),
 * cached on the kernel's label object: fewer allocations per scrape.
 */
const derived = new WeakMap<Labels, Map<string, Map<string, Labels>>>()
function withLabel(base: Labels, name: string, value: string): Labels {
  let byName = derived.get(base)
  if (byName === undefined) derived.set(base, (byName = new Map()))
  let byValue = byName.get(name)
  if (byValue === undefined) byName.set(name, (byValue = new Map()))
  let l = byValue.get(value)
  if (l === undefined) byValue.set(value, (l = Object.freeze({ ...base, [name]: value })))
  return l
}

/**
 * A power-of-two histogram as Prometheus buckets. The bound `2^k` is
 * exactly the upper bound of bucket `k`, so every cumulative count is exact:
 * nothing is interpolated or lost (observations above the last bound are
 * in `+Inf` and `_count`).
 */
function histogram(out: Sample[], name: string, base: Labels, h: PowerOfTwoHistogram, r: Range): void {
  const le = bounds(r)
  let cum = 0
  for (let i = 0; i < r.lo; i++) cum += h.buckets[i] ?? 0
  const bucket = `${name}_bucket`
  for (let k = r.lo; k <= r.hi; k++) {
    cum += h.buckets[k] ?? 0
    out.push({ metricName: bucket, labels: withLabel(base, 'le', le[k - r.lo] as string), value: cum })
  }
  out.push({ metricName: bucket, labels: withLabel(base, 'le', '+Inf'), value: h.count })
  out.push({ metricName: `${name}_sum`, labels: base, value: r.seconds ? h.sum / 1e9 : h.sum })
  out.push({ metricName: `${name}_count`, labels: base, value: h.count })
}

// --------------------------------------------------------------- definitions

/** Codes a kernel's own domain always exports (zeros included), so `rate()` sees the first refusal. */
const DROPPED_CODES = ['MALFORMED_FRAME', 'FRAME_TOO_LARGE', 'UNSUPPORTED_FRAME', 'AUTH_FAILED', 'CONFIG_MISMATCH', 'REPLAYED_FRAME', 'UNKNOWN_PEER']

const groupOf = (name: string): Group =>
  name.startsWith('ctfs_wal_') || name.startsWith('ctfs_recovery_') || name.startsWith('ctfs_checkpoint')
    ? 'wal'
    : name.startsWith('ctfs_escrow_')
      ? 'escrow'
      : name.startsWith('ctfs_sync_')
        ? 'sync'
        : 'kernel'
const gauge = (name: string, help: string, collect: Def['collect']): Def => ({ name, help, type: 'gauge', group: groupOf(name), collect })
const counter = (name: string, help: string, collect: Def['collect']): Def => ({ name, help, type: 'counter', group: groupOf(name), collect })
const hist = (name: string, help: string, collect: Def['collect']): Def => ({ name, help, type: 'histogram', group: groupOf(name), collect })

/** One value per kernel from part of the snapshot (skipped when that part is absent). */
function walValue(pick: (w: NonNullable<MetricsSnapshot['wal']>) => number): Def['collect'] {
  return (out, base, s) => {
    if (s.wal !== null) out.push({ labels: base, value: pick(s.wal) })
  }
}
function syncValue(pick: (w: NonNullable<MetricsSnapshot['sync']>) => number): Def['collect'] {
  return (out, base, s) => {
    if (s.sync !== null) out.push({ labels: base, value: pick(s.sync) })
  }
}
function peerValue(pick: (p: NonNullable<MetricsSnapshot['sync']>['peers'][number]) => number): Def['collect'] {
  return (out, base, s) => {
    if (s.sync !== null) for (const p of s.sync.peers) out.push({ labels: { ...base, peer: String(p.peer) }, value: pick(p) })
  }
}
function poolValue(pick: (p: NonNullable<MetricsSnapshot['escrow']>[number]) => number): Def['collect'] {
  return (out, base, s) => {
    if (s.escrow !== null) {
      for (const p of s.escrow) out.push({ labels: { ...base, member: memberLabel(s, p.member), side: p.side }, value: pick(p) })
    }
  }
}
function memberLabel(s: MetricsSnapshot, index: number): string {
  return s.members[index]?.member ?? String(index)
}

/** The refusal codes (ERROR_CODES without OK), in code order. */
const REFUSAL_CODES = ERROR_CODES.slice(1) as CtfsErrorCode[]

const DEFS: Def[] = [
  // ------------------------------------------------------------ admission
  counter('ctfs_facts_admitted_total', 'Facts admitted, per tenant (no tenant label: the kernel\'s own domain).', (out, base, s) => {
    for (const d of s.domains) out.push({ labels: d.tenant === null ? base : withLabel(base, 'tenant', d.tenant), value: d.admitted })
  }),
  counter(
    'ctfs_facts_refused_total',
    'Facts refused, by error code and tenant. The kernel\'s own domain exports every code; a tenant exports the codes it has refused.',
    (out, base, s) => {
      for (const d of s.domains) {
        const labels = d.tenant === null ? base : withLabel(base, 'tenant', d.tenant)
        for (const code of REFUSAL_CODES) {
          const n = d.refused[code]
          // BUSY is reported to the caller, never counted by a kernel: no series for it unless it ever is.
          if (n > 0 || (d.tenant === null && code !== 'BUSY')) out.push({ labels: withLabel(labels, 'code', code), value: n })
        }
      }
    },
  ),
  hist(
    'ctfs_admission_latency_seconds',
    'Native time of single admissions (admit/admitAsync/admitDurable, admitted or refused: dedup, causality, invariant, commit, log append): one call in 64 is timed.',
    (out, base, s) => histogram(out, 'ctfs_admission_latency_seconds', base, s.admitNs, ADMIT_RANGE),
  ),
  hist('ctfs_batch_facts', 'Facts per admitBatch call.', (out, base, s) => histogram(out, 'ctfs_batch_facts', base, s.batchFacts, COUNT_RANGE)),
  hist(
    'ctfs_admit_batch_duration_seconds',
    'Native time of every admitBatch call (per fact: rate of its _sum over rate of ctfs_batch_facts_sum).',
    (out, base, s) => histogram(out, 'ctfs_admit_batch_duration_seconds', base, s.batchNs, BATCH_RANGE),
  ),
  gauge('ctfs_tenants', 'Tenant domains created.', (out, base, s) => out.push({ labels: base, value: s.domains.length - 1 })),
  gauge('ctfs_facts_tracked', 'Fact ids tracked exactly, all domains.', (out, base, s) => {
    out.push({ labels: base, value: s.domains.reduce((a, d) => a + d.tracked, 0) })
  }),
  gauge('ctfs_index_bytes', 'Heap bytes of the exact indexes, all domains.', (out, base, s) => {
    out.push({ labels: base, value: s.domains.reduce((a, d) => a + d.indexBytes, 0) })
  }),
  counter('ctfs_member_facts_admitted_total', 'Multi invariants: facts admitted with a part for the member (all domains).', (out, base, s) => {
    for (const m of s.members) out.push({ labels: { ...base, member: m.member }, value: m.admitted })
  }),
  counter('ctfs_member_facts_refused_total', 'Multi invariants: refusals decided by the member, by code (all domains).', (out, base, s) => {
    for (const m of s.members) {
      for (const [code, n] of Object.entries(m.refused)) out.push({ labels: { ...base, member: m.member, code }, value: n })
    }
  }),
  // ------------------------------------------------------------ durability
  gauge('ctfs_wal_info', 'Durable kernels: 1, labelled with the log\'s I/O backend.', (out, base, s) => {
    if (s.wal !== null) out.push({ labels: { ...base, backend: s.wal.backend }, value: 1 })
  }),
  gauge('ctfs_wal_failed', 'Durable kernels: 1 once a write or fdatasync failed (nothing more is accepted).', walValue((w) => (w.failed ? 1 : 0))),
  gauge('ctfs_wal_appended_seq', 'Log sequence of the last record appended.', walValue((w) => w.appendedSeq)),
  gauge('ctfs_wal_durable_seq', 'Log sequence up to which every record is durable (fdatasync returned).', walValue((w) => w.durableSeq)),
  gauge('ctfs_wal_queue_records', 'Records appended and not yet durable (appended_seq - durable_seq).', walValue((w) => Math.max(0, w.appendedSeq - w.durableSeq))),
  gauge('ctfs_wal_queue_bytes', 'Bytes queued for the writer and not yet durable.', walValue((w) => w.queueBytes)),
  gauge('ctfs_wal_queue_capacity_bytes', 'Size of the log queue (full = BUFFER_FULL).', walValue((w) => w.queueCapacity)),
  counter('ctfs_wal_fsyncs_total', 'fdatasync calls (or io_uring equivalents), segment syncs included.', walValue((w) => w.fsyncs)),
  counter('ctfs_wal_group_commits_total', 'Durable batches (group commits).', walValue((w) => w.groupCommits)),
  counter('ctfs_wal_records_written_total', 'Records written and made durable.', walValue((w) => w.recordsWritten)),
  counter('ctfs_wal_written_bytes_total', 'Record bytes written and made durable.', walValue((w) => w.bytesWritten)),
  counter('ctfs_wal_segments_created_total', 'Log segments created since open.', walValue((w) => w.segmentsCreated)),
  hist('ctfs_wal_group_commit_records', 'Records per group commit.', (out, base, s) => {
    if (s.wal !== null) histogram(out, 'ctfs_wal_group_commit_records', base, s.wal.groupRecords, COUNT_RANGE)
  }),
  hist('ctfs_wal_group_commit_bytes', 'Bytes per group commit.', (out, base, s) => {
    if (s.wal !== null) histogram(out, 'ctfs_wal_group_commit_bytes', base, s.wal.groupBytes, BYTES_RANGE)
  }),
  hist('ctfs_wal_write_seconds', 'Write phase of a group commit (portable backend: the pwrites; io_uring writes and syncs in one operation, see ctfs_wal_fsync_seconds).', (out, base, s) => {
    if (s.wal !== null) histogram(out, 'ctfs_wal_write_seconds', base, s.wal.writeNs, IO_RANGE)
  }),
  hist('ctfs_wal_fsync_seconds', 'Making a group commit durable: fdatasync (portable), or the whole write + sync operation (io_uring).', (out, base, s) => {
    if (s.wal !== null) histogram(out, 'ctfs_wal_fsync_seconds', base, s.wal.syncNs, IO_RANGE)
  }),
  hist('ctfs_wal_durable_ack_seconds', 'From append to durable, for the last fact of a sampled single admission (one in 64) or of a batch call; one measurement in flight at a time.', (out, base, s) => {
    if (s.wal !== null) histogram(out, 'ctfs_wal_durable_ack_seconds', base, s.wal.ackNs, IO_RANGE)
  }),
  gauge('ctfs_recovery_seconds', 'Time the last open took: checkpoint restore and log replay.', walValue((w) => w.recoveryNs / 1e9)),
  gauge('ctfs_recovery_facts_replayed', 'Logged facts replayed at the last open.', walValue((w) => w.factsReplayed)),
  gauge('ctfs_checkpoint_seq', 'Log sequence covered by the newest checkpoint.', walValue((w) => w.checkpointSeq)),
  counter('ctfs_checkpoints_total', 'Checkpoints written since open.', walValue((w) => w.checkpoints)),
  gauge('ctfs_checkpoint_last_bytes', 'Bytes of the last checkpoint written.', walValue((w) => w.checkpointBytesLast)),
  counter('ctfs_checkpoint_written_bytes_total', 'Checkpoint bytes written since open.', walValue((w) => w.checkpointBytesTotal)),
  hist('ctfs_checkpoint_seconds', 'Time to write a checkpoint (sync, encode, write, compact).', (out, base, s) => {
    if (s.wal !== null) histogram(out, 'ctfs_checkpoint_seconds', base, s.wal.checkpointNs, CHECKPOINT_RANGE)
  }),
  // ---------------------------------------------------------------- escrow
  gauge('ctfs_escrow_quota', 'Replicated kernels: this replica\'s quota of an escrowed bound, consumed part included.', poolValue((p) => p.quota)),
  gauge('ctfs_escrow_quota_consumed', 'Quota consumed by local admissions.', poolValue((p) => p.consumed)),
  gauge('ctfs_escrow_quota_available', 'Quota left for local admissions (quota - consumed).', poolValue((p) => Math.max(0, p.quota - p.consumed))),
  gauge('ctfs_escrow_global_quota', 'The escrowed headroom of the whole cluster, as this replica knows it.', poolValue((p) => p.total)),
  counter('ctfs_escrow_requests_total', 'Quota requests sent to peers (first attempts).', poolValue((p) => p.requestsSent)),
  counter('ctfs_escrow_request_retries_total', 'Quota requests resent after a timeout.', poolValue((p) => p.retriesSent)),
  counter('ctfs_escrow_requests_given_up_total', 'Quota requests abandoned after the last retry.', poolValue((p) => p.requestsGivenUp)),
  counter('ctfs_escrow_grants_received_total', 'Quota grants received and applied.', poolValue((p) => p.grantsApplied)),
  counter('ctfs_escrow_denials_received_total', 'Quota requests denied by the peer asked.', poolValue((p) => p.denialsReceived)),
  counter('ctfs_escrow_grants_issued_total', 'Quota grants issued to peers.', poolValue((p) => p.grantsIssued)),
  counter('ctfs_escrow_quota_granted_out_total', 'Quota that left this replica in grants (invariant units).', poolValue((p) => p.grantedOut)),
  counter('ctfs_escrow_quota_granted_in_total', 'Quota that arrived at this replica in grants (invariant units).', poolValue((p) => p.grantedIn)),
  // ----------------------------------------------------------- replication
  gauge('ctfs_sync_peer_up', 'Attached replicas: 1 while the peer is marked reachable.', peerValue((p) => (p.up ? 1 : 0))),
  gauge('ctfs_sync_peer_synced', '1 when the last anti-entropy exchange with the peer found the same facts.', peerValue((p) => (p.synced ? 1 : 0))),
  counter('ctfs_sync_frames_received_total', 'Authenticated frames received from the peer.', peerValue((p) => p.framesIn)),
  counter('ctfs_sync_received_bytes_total', 'Bytes of authenticated frames received from the peer.', peerValue((p) => p.bytesIn)),
  counter('ctfs_sync_frames_sent_total', 'Frames built for the peer.', peerValue((p) => p.framesOut)),
  counter('ctfs_sync_sent_bytes_total', 'Bytes of frames built for the peer.', peerValue((p) => p.bytesOut)),
  counter('ctfs_sync_facts_received_total', 'Facts received from the peer (push and anti-entropy).', peerValue((p) => p.factsIn)),
  counter('ctfs_sync_facts_sent_total', 'Facts sent to the peer (push and anti-entropy).', peerValue((p) => p.factsOut)),
  counter('ctfs_sync_frames_dropped_total', 'Received frames dropped, by code (they changed nothing).', (out, base, s) => {
    if (s.sync === null) return
    const codes = new Set([...DROPPED_CODES, ...Object.keys(s.sync.dropped)])
    for (const code of codes) out.push({ labels: { ...base, code }, value: s.sync.dropped[code] ?? 0 })
  }),
  counter('ctfs_sync_frames_unauthenticated_total', 'Received frames whose MAC did not verify (also in frames_dropped code="AUTH_FAILED").', syncValue((s) => s.dropped.AUTH_FAILED ?? 0)),
  counter('ctfs_sync_remote_facts_admitted_total', 'Facts from peers admitted here.', syncValue((s) => s.factsAdmitted)),
  counter('ctfs_sync_remote_facts_duplicate_total', 'Facts from peers already here.', syncValue((s) => s.factsDuplicate)),
  counter('ctfs_sync_remote_facts_refused_total', 'Facts from peers this kernel refused.', syncValue((s) => s.remoteRefused)),
  counter('ctfs_sync_facts_pushed_total', 'Local facts pushed to peers.', syncValue((s) => s.factsPushed)),
  counter('ctfs_sync_push_frames_total', 'Push frames built.', syncValue((s) => s.pushFrames)),
  gauge('ctfs_sync_unpushed_facts', 'Local facts not pushed yet (durable kernels push only durable facts).', syncValue((s) => s.unpushed)),
  gauge('ctfs_sync_causal_buffer_facts', 'Facts waiting for their dependencies.', syncValue((s) => s.buffered)),
  gauge('ctfs_sync_causal_buffer_bytes', 'Bytes waiting for their dependencies.', syncValue((s) => s.bufferedBytes)),
  gauge('ctfs_sync_causal_buffer_max_facts', 'Limit of the causal buffer, facts.', syncValue((s) => s.bufferMaxFacts)),
  gauge('ctfs_sync_causal_buffer_max_bytes', 'Limit of the causal buffer, bytes.', syncValue((s) => s.bufferMaxBytes)),
  counter('ctfs_sync_causal_buffer_buffered_total', 'Facts that had to wait in the causal buffer.', syncValue((s) => s.factsBuffered)),
  counter('ctfs_sync_causal_buffer_evictions_total', 'Facts evicted from (or refused by) the full causal buffer.', syncValue((s) => s.bufferEvicted)),
  counter('ctfs_sync_causal_buffer_discarded_total', 'Buffered facts released because no reachable peer holds what they wait for.', syncValue((s) => s.factsDiscarded)),
  counter('ctfs_sync_anti_entropy_rounds_total', 'Anti-entropy probes sent (one per reachable peer per round).', syncValue((s) => s.probesSent)),
  counter('ctfs_sync_anti_entropy_repairs_total', 'Anti-entropy answers that shipped missing facts.', syncValue((s) => s.antiEntropyRepairs)),
  counter('ctfs_sync_anti_entropy_summaries_total', 'Version-vector summaries sent.', syncValue((s) => s.summariesSent)),
  counter('ctfs_sync_anti_entropy_facts_total', 'Facts shipped by anti-entropy.', syncValue((s) => s.antiEntropyFactsSent)),
  counter('ctfs_sync_anti_entropy_sent_bytes_total', 'Frame bytes shipped by anti-entropy.', syncValue((s) => s.antiEntropyBytesSent)),
  counter('ctfs_sync_quota_requests_total', 'Quota requests sent by the protocol.', syncValue((s) => s.quotaRequestsSent)),
  counter('ctfs_sync_quota_grants_total', 'Quota grants sent by the protocol.', syncValue((s) => s.quotaGrantsSent)),
  counter('ctfs_sync_snapshots_sent_total', 'Snapshots served to joining peers.', syncValue((s) => s.snapshotsSent)),
  counter('ctfs_sync_snapshots_installed_total', 'Snapshots installed here.', syncValue((s) => s.snapshotsInstalled)),
  counter('ctfs_sync_snapshot_received_bytes_total', 'Snapshot bytes received.', syncValue((s) => s.snapshotBytesIn)),
  gauge('ctfs_sync_store_facts', 'Facts held to serve peers.', syncValue((s) => s.storeFacts)),
  gauge('ctfs_sync_store_bytes', 'Bytes of the facts held to serve peers.', syncValue((s) => s.storeBytes)),
  gauge('ctfs_sync_origin_facts', 'Facts of each origin node held here (its epochs summed): max - min across replicas is the replication lag.', (out, base, s) => {
    if (s.sync !== null) for (const o of s.sync.origins) out.push({ labels: { ...base, origin: String(o.node) }, value: o.facts })
  }),
]

/** The names of every metric ctfs registers (for documentation and tests). */
export const METRIC_NAMES: readonly string[] = DEFS.map((d) => d.name)

// ---------------------------------------------------------------- collector

/** The ctfs metrics of one registry and the kernels they read. */
class Collector {
  readonly registry: PromRegistry
  readonly kernels = new Map<string, AnyKernel>()
  readonly #metrics: CtfsMetric[] = []
  readonly #groups = new Set<Group>()
  readonly #shared = new Map<string, Labels>()
  #scrape: Array<[Labels, MetricsSnapshot]> | null = null

  constructor(registry: PromRegistry) {
    this.registry = registry
  }

  /** The families `k` reports (a plain kernel needs a dozen, a durable replica all of them). */
  static groupsOf(s: MetricsSnapshot): Group[] {
    const g: Group[] = ['kernel']
    if (s.wal !== null) g.push('wal')
    // replicated: the protocol may be attached later
    if (s.escrow !== null) g.push('escrow', 'sync')
    return g
  }

  /** Checks that the families of `groups` not registered yet can be (no foreign metric of the same name). */
  check(groups: Group[]): void {
    for (const d of DEFS) {
      if (groups.includes(d.group) && !this.#groups.has(d.group) && this.registry.getSingleMetric(d.name) !== undefined) {
        throw invalidArgValue('options.registry', `already has a metric named ${d.name} that ctfs did not register`)
      }
    }
  }

  register(groups: Group[]): void {
    for (const g of groups) {
      if (this.#groups.has(g)) continue
      this.#groups.add(g)
      for (const d of DEFS) {
        if (d.group !== g) continue
        const m = new CtfsMetric(d, this)
        this.#metrics.push(m)
        this.registry.registerMetric(m as never)
      }
    }
  }

  /** One snapshot per kernel per scrape: every metric of one `registry.metrics()` call shares it. */
  snapshots(): Array<[Labels, MetricsSnapshot]> {
    if (this.#scrape === null) {
      const s: Array<[Labels, MetricsSnapshot]> = []
      for (const [name, k] of this.kernels) {
        let labels = this.#shared.get(name)
        if (labels === undefined) this.#shared.set(name, (labels = Object.freeze({ kernel: name })))
        try {
          s.push([labels, k.metrics()])
        } catch {
          // BUSY (scraped from inside the kernel's own admission): skipped this once.
        }
      }
      this.#scrape = s
      // prom-client calls every metric's get() in one synchronous pass.
      queueMicrotask(() => (this.#scrape = null))
    }
    return this.#scrape
  }

  unregister(): void {
    for (const m of this.#metrics) {
      if (this.registry.getSingleMetric(m.registeredAs) === m) this.registry.removeSingleMetric(m.registeredAs)
    }
    this.#metrics.length = 0
    this.#groups.clear()
  }
}

/** A prom-client metric object (the shape `Registry.registerMetric` takes) reading the shared snapshot. */
class CtfsMetric {
  /** prom-client renames counters in place for OpenMetrics (drops `_total`): the name registered under. */
  readonly registeredAs: string
  name: string
  readonly help: string
  readonly type: MetricType
  readonly aggregator = 'sum'
  readonly #def: Def
  readonly #collector: Collector

  constructor(def: Def, collector: Collector) {
    this.name = def.name
    this.registeredAs = def.name
    this.help = def.help
    this.type = def.type
    this.#def = def
    this.#collector = collector
  }

  get(): { name: string; help: string; type: MetricType; values: Sample[]; aggregator: string } {
    const values: Sample[] = []
    for (const [base, s] of this.#collector.snapshots()) {
      const from = values.length
      this.#def.collect(values, base, s)
      for (let i = from; i < values.length; i++) (values[i] as Sample).sharedLabels = NO_SHARED_LABELS
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator }
  }

  /** prom-client's `registry.resetMetrics()`: ctfs counters live in the kernel and are not reset. */
  reset(): void {}
}

const NO_SHARED_LABELS: Labels = Object.freeze({}) as Labels
const collectors = new WeakMap<object, Collector>()
const LABEL_VALUE = /^[\x20-\x7e]{1,128}$/

/**
 * Exports kernels' metrics to a prom-client registry: one snapshot per
 * kernel per scrape (a single native call each), every metric named
 * `ctfs_*` and labelled `kernel`. Call it again (or pass an object of
 * kernels) to add kernels to the same registry; each needs its own label.
 *
 * @param kernels a kernel (`Kernel` or `DurableKernel`), or `{ label: kernel, ... }`
 * @throws TypeError `ERR_INVALID_ARG_TYPE` / `ERR_INVALID_ARG_VALUE` (e.g. a
 *   label already used in that registry)
 * @throws Error `ERR_MODULE_NOT_FOUND` when no registry is given and
 *   prom-client is not installed
 */
export function collectMetrics(
  kernels: MetricsSource | Readonly<Record<string, MetricsSource>>,
  options: CollectMetricsOptions = {},
): MetricsCollection {
  if (typeof options !== 'object' || options === null) throw invalidArgType('options', 'an object', options)
  for (const key of Object.keys(options)) if (key !== 'registry' && key !== 'name') throw invalidArgValue('options', `has an unknown key '${key}' (expected registry, name)`)
  let entries: Array<[string, AnyKernel]>
  if (isSource(kernels)) {
    entries = [[options.name ?? 'default', kernels]]
  } else if (typeof kernels === 'object' && kernels !== null && !Array.isArray(kernels)) {
    if (options.name !== undefined) throw invalidArgValue('options.name', 'is for a single kernel; with an object of kernels, the keys are the labels')
    entries = Object.entries(kernels)
    if (entries.length === 0) throw invalidArgValue('kernels', 'must name at least one kernel')
    for (const [label, k] of entries) if (!isSource(k)) throw invalidArgType(`kernels.${label}`, 'a Kernel', k)
  } else throw invalidArgType('kernels', 'a Kernel or an object { label: kernel }', kernels)
  for (const [label] of entries) {
    if (typeof label !== 'string' || !LABEL_VALUE.test(label)) throw invalidArgValue('name', `must be 1 to 128 printable ASCII characters, got ${JSON.stringify(label)}`)
  }
  const registry = options.registry ?? defaultRegistry()
  if (typeof registry !== 'object' || registry === null || typeof registry.registerMetric !== 'function' || typeof registry.metrics !== 'function') {
    throw invalidArgType('options.registry', 'a prom-client Registry', registry)
  }
  const collector = collectors.get(registry) ?? new Collector(registry)
  for (const [label] of entries) {
    if (collector.kernels.has(label)) throw invalidArgValue('name', `'${label}' already labels a kernel in this registry; give each kernel its own name`)
  }
  // Which families these kernels need (and a first read: a kernel that cannot be read fails here).
  const groups = [...new Set(entries.flatMap(([, k]) => Collector.groupsOf(k.metrics())))]
  collector.check(groups)
  collectors.set(registry, collector)
  collector.register(groups)
  for (const [label, k] of entries) collector.kernels.set(label, k)
  let removed = false
  return {
    registry,
    kernels: entries.map(([l]) => l),
    remove(): void {
      if (removed) return
      removed = true
      for (const [label, k] of entries) if (collector.kernels.get(label) === k) collector.kernels.delete(label)
      if (collector.kernels.size === 0) {
        collector.unregister()
        collectors.delete(registry)
      }
    },
  }
}

// ----------------------------------------------------------------- registry

interface TextMetric {
  name: string
  get(): { name: string; help: string; type: string; values?: Sample[] } | Promise<{ name: string; help: string; type: string; values?: Sample[] }>
}

const NEEDS_ESCAPE = /[\\\n"]/
const escapeHelp = (s: string) => s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')
const escapeLabel = (s: string) => (NEEDS_ESCAPE.test(s) ? escapeHelp(s).replace(/"/g, '\\"') : s)
/**
 * Formatted `{k="v",...}` of a label object; cached for frozen ones (ctfs's
 * label objects are frozen and reused across scrapes).
 */
const labelText = new WeakMap<object, string>()
function formatLabels(labels: Labels | undefined): string {
  if (labels === undefined) return ''
  let t = labelText.get(labels)
  if (t === undefined) {
    const e = Object.entries(labels)
    t = e.length === 0 ? '' : `{${e.map(([k, x]) => `${k}="${escapeLabel(String(x))}"`).join(',')}}`
    if (Object.isFrozen(labels)) labelText.set(labels, t)
  }
  return t
}

/**
 * A minimal registry that needs no prom-client: it holds ctfs's metrics (or
 * any metric object with `name` and `get()`) and renders the Prometheus text
 * format 0.0.4. For processes without prom-client — `ctfs node --metrics`
 * uses one. With prom-client, use its `Registry` instead (your own metrics
 * then share the endpoint).
 *
 * @example
 * const registry = new MetricsRegistry()
 * collectMetrics(kernel, { registry })
 * await serveMetrics({ registry })
 */
export class MetricsRegistry implements PromRegistry {
  readonly contentType = 'text/plain; version=0.0.4; charset=utf-8'
  readonly #metrics = new Map<string, TextMetric>()

  registerMetric(metric: never): void {
    const m = metric as TextMetric
    const had = this.#metrics.get(m.name)
    if (had !== undefined && had !== m) throw new Error(`A metric with the name ${m.name} has already been registered.`)
    this.#metrics.set(m.name, m)
  }

  removeSingleMetric(name: string): void {
    this.#metrics.delete(name)
  }

  getSingleMetric(name: string): unknown {
    return this.#metrics.get(name)
  }

  /** The text exposition of every metric (one `get()` each, in registration order). */
  async metrics(): Promise<string> {
    const got = await Promise.all([...this.#metrics.values()].map((m) => m.get()))
    const out: string[] = []
    for (const g of got) {
      out.push(`# HELP ${g.name} ${escapeHelp(g.help)}`, `# TYPE ${g.name} ${g.type}`)
      for (const v of g.values ?? []) {
        const n = v.value
        out.push(`${v.metricName ?? g.name}${formatLabels(v.labels)} ${Number.isFinite(n) ? String(n) : Number.isNaN(n) ? 'NaN' : n > 0 ? '+Inf' : '-Inf'}`)
      }
      out.push('')
    }
    return out.join('\n')
  }
}

// ------------------------------------------------------------------- server

/** Options of {@link serveMetrics}. */
export interface ServeMetricsOptions {
  /** TCP port (default 9464; 0 picks a free one). */
  port?: number
  /** Address to listen on (default `'127.0.0.1'`: not reachable from other hosts). */
  host?: string
  /** The registry served (default: prom-client's global `register`). */
  registry?: PromRegistry
  /** Path of the endpoint (default `'/metrics'`). */
  path?: string
}

/** A running `/metrics` endpoint. */
export interface MetricsServer {
  /** The port actually bound (useful with `port: 0`). */
  readonly port: number
  readonly host: string
  /** `http://host:port/path`. */
  readonly url: string
  readonly server: Server
  /** Stops listening. */
  close(): Promise<void>
}

/**
 * Serves a registry in the Prometheus text format over `node:http`: `GET
 * /metrics` (and `HEAD`); anything else is 404 or 405. Binds 127.0.0.1 by
 * default. The cluster CLI's `--metrics host:port` is
 * `serveMetrics(parseMetricsAddress(value))`.
 */
export async function serveMetrics(options: ServeMetricsOptions = {}): Promise<MetricsServer> {
  if (typeof options !== 'object' || options === null) throw invalidArgType('options', 'an object', options)
  for (const key of Object.keys(options)) {
    if (!['port', 'host', 'registry', 'path'].includes(key)) throw invalidArgValue('options', `has an unknown key '${key}' (expected port, host, registry, path)`)
  }
  const port = options.port ?? 9464
  if (typeof port !== 'number') throw invalidArgType('options.port', 'an integer', port)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw outOfRange('options.port', 'an integer in 0..65535', port)
  const host = options.host ?? '127.0.0.1'
  if (typeof host !== 'string' || host.length === 0) throw invalidArgType('options.host', 'a host name or address', host)
  const path = options.path ?? '/metrics'
  if (typeof path !== 'string' || !path.startsWith('/')) throw invalidArgType('options.path', "a path starting with '/'", path)
  const registry = options.registry ?? defaultRegistry()
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = (req.url ?? '/').split('?')[0]
    if (url !== path) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end(`not found; metrics are at ${path}\n`)
      return
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end()
      return
    }
    registry.metrics().then(
      (text) => {
        res.writeHead(200, { 'content-type': registry.contentType })
        res.end(req.method === 'HEAD' ? undefined : text)
      },
      (e: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`metrics failed: ${e instanceof Error ? e.message : String(e)}\n`)
      },
    )
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const addr = server.address()
  const bound = typeof addr === 'object' && addr !== null ? addr.port : port
  const shown = host.includes(':') ? `[${host}]` : host
  return {
    port: bound,
    host,
    url: `http://${shown}:${bound}${path}`,
    server,
    close: () => new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve()))),
  }
}

/**
 * Parses a `host:port` (or `[v6]:port`, or `port` alone for 127.0.0.1)
 * metrics address, as given to `ctfs node --metrics 127.0.0.1:9464`.
 * @throws TypeError `ERR_INVALID_ARG_VALUE` for anything else
 */
export function parseMetricsAddress(address: string): { host: string; port: number } {
  if (typeof address !== 'string') throw invalidArgType('address', "a 'host:port' string", address)
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(address) ?? /^()()(\d{1,5})$/.exec(address)
  const port = m === null ? NaN : Number(m[3])
  if (m === null || !(port >= 0 && port <= 65535)) {
    throw invalidArgValue('address', `must be 'host:port' (e.g. 127.0.0.1:9464), got ${JSON.stringify(address)}`)
  }
  return { host: m[1] || m[2] || '127.0.0.1', port }
}
