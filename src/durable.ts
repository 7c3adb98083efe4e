import type { BatchResult } from './kernel.ts'
import type { AdmitOptions, FactBatch, FactInput } from './batch.ts'
import { checkKeys } from './args.ts'
import { CtfsError, busyError, invalidArgType, outOfRange, rethrowNative } from './errors.ts'
import type { FactId } from './fact-id.ts'
import { int } from './invariants/common.ts'
import type { InvariantSpec } from './invariants/types.ts'
import { KERNEL_OPTION_KEYS, Kernel, type KernelOptions } from './kernel.ts'
import type { Multi } from './invariants/multi.ts'
import {
  native,
  type NativeDurability,
  type NativeDurableConfig,
  type NativeKernel,
  type NativeKernelConfig,
  type NativeRecovery,
} from './native.ts'

/** Which write path a durable kernel uses. */
export type DurabilityBackend = 'auto' | 'io_uring' | 'portable'

/** Options of {@link DurableKernel.open}. */
export interface DurableKernelOptions<I extends InvariantSpec> extends KernelOptions<I> {
  /** Data directory (created if missing): log segments and checkpoints. */
  dir: string
  /**
   * `'auto'` (default): what measured best for acknowledgement latency —
   * today the portable pwrite + fdatasync writer (see the README's Durability
   * performance). `'io_uring'` is opt-in; where the kernel or seccomp does
   * not allow it, it fails with `BACKEND_UNAVAILABLE`.
   */
  backend?: DurabilityBackend
  /**
   * On a corrupt record *before* the log's tail that the newest valid
   * checkpoint does not cover, cut the log there instead of refusing to open
   * with `WAL_CORRUPT`: the kernel opens with every fact before the damage.
   * The bytes removed are moved aside into `*.corrupt` files next to the log
   * (never deleted) and listed in {@link RecoveryReport.movedAside}. Default
   * false: corruption is reported, never skipped. (Damage among records a
   * valid checkpoint covers needs no option: those records are not needed.)
   */
  truncateCorrupt?: boolean
  /**
   * Adopt a data directory written by an older format (1) that did not
   * record the kernel's configuration: you assert that it was written with
   * exactly this configuration, and its files are rewritten (atomically, file
   * by file) to record it. Without it such a directory is refused with
   * `CONFIG_MISMATCH`. Default false.
   */
  upgradeFormat?: boolean
  /** Bytes of the in-memory log queue (default 16 MiB). Full = `BUFFER_FULL`. */
  bufferBytes?: number | bigint
  /** Segment size in bytes before the log rolls to a new file (default 64 MiB). */
  segmentBytes?: number | bigint
}

/** Every key {@link DurableKernel.open} accepts: the kernel's and the log's. */
const DURABLE_OPTION_KEYS: readonly string[] = [
  ...KERNEL_OPTION_KEYS,
  'dir',
  'backend',
  'truncateCorrupt',
  'upgradeFormat',
  'bufferBytes',
  'segmentBytes',
]

/** What recovery did when the kernel was opened. */
export interface RecoveryReport {
  /** Sequence covered by the checkpoint restored (0: none). */
  checkpointSeq: number
  /** Newer checkpoints that failed verification and were not used. */
  skippedCheckpoints: string[]
  /** Logged facts admitted again after the checkpoint. */
  factsReplayed: number
  firstSeq: number
  lastSeq: number
  /** Bytes of torn tail (or corruption, with `truncateCorrupt`) removed from the log. */
  bytesCut: number
  /** `segment@offset` where a torn tail (a crash during a write; never acknowledged) was cut. */
  tornTailAt: string | null
  /** `segment@offset` where `truncateCorrupt` cut the log, and {@link truncateReason} why. */
  truncatedAt: string | null
  truncateReason: string | null
  /** The `*.corrupt` files holding every byte `truncateCorrupt` removed. */
  movedAside: string[]
  /**
   * Damage among records the restored checkpoint covers, skipped at no cost
   * (`segment @ offset: what`). Nothing was cut; a later checkpoint's
   * compaction removes those segments.
   */
  coveredDamage: string[]
  segments: number
}

/** The durable log's state. */
export interface DurabilityInfo {
  backend: 'io_uring' | 'portable'
  /** A note on the backend choice, if any (`null` today: `'auto'` is portable by measurement). */
  backendNote: string | null
  /** Every fact with a sequence <= this is on disk (fdatasync returned). */
  durableSeq: number
  /** Sequence of the last fact admitted (and queued for the log). */
  appendedSeq: number
  /** True once a write or fdatasync failed: nothing more is accepted. */
  failed: boolean
  fsyncs: number
  /** Group commits (one fdatasync each, one JS callback each). */
  batches: number
  recordsWritten: number
  bytesWritten: number
  checkpointSeq: number
  /**
   * Durable-frontier notifications delivered to JavaScript, and those merged
   * into one already pending (the writer never queues a second while the JS
   * thread has not run the first; the pending one carries the newest sequence).
   */
  notifications: number
  notificationsCoalesced: number
  recovery: RecoveryReport
}

/** What {@link DurableKernel.traceStop} returns. @internal */
export interface DurabilityTrace {
  /** One per durable batch of the log writer. */
  batches: Array<{ pickedNs: number; syncedNs: number; notifiedNs: number; firstSeq: number; lastSeq: number; rolls: number }>
  /** One per durable-frontier callback on the JavaScript thread. */
  callbacks: Array<{ seq: number; atNs: number }>
}

/** A fact admitted with {@link DurableKernel.admitAsync}. */
export interface DurableAdmission {
  /** The fact's id. */
  readonly id: FactId
  /** Its position in the log. */
  readonly seq: number
  /** True once the fact is durable (fdatasync covered it). */
  isDurable(): boolean
  /** Resolves with the id once durable; rejects with `WAL_FAILED` if the log fails first. */
  readonly durable: Promise<FactId>
}

/**
 * Shared between the native callback and the kernel object: the durable
 * sequence, and the promises waiting for it.
 *
 * Waiters are kept in sequence order as parallel arrays (no object per
 * wait), resolved in one pass from the head when the frontier moves. The
 * resolved prefix is dropped once it is half the queue: under sustained
 * load the queue may never drain, and without this it kept every resolved
 * waiter (and its resolving functions) alive until it did — 1 GB of heap
 * and 4x slower waits in a 3M-wait run with 1,024 in flight. (One shared
 * executor instead of a closure per promise measured no difference.)
 */
class DurableFrontier {
  durable = 0
  failure: CtfsError | null = null
  readonly seqs: number[] = []
  readonly values: unknown[] = []
  readonly resolves: Array<(v: unknown) => void> = []
  readonly rejects: Array<(e: unknown) => void> = []
  head = 0
  keepAlive: ReturnType<typeof setInterval> | null = null
  /** While tracing: (seq, process.hrtime ns) of each native callback. */
  trace: number[] | null = null
  /**
   * Told, in a microtask queued behind the continuations a callback resumed,
   * that the callback for `seq` has been processed: the log writer waits
   * for it before its next group commit, so that the producers it just
   * acknowledged join that commit (see `Wal::set_pacing`).
   */
  processed: ((seq: number) => void) | null = null

  advance(seq: number, failure: string | undefined): void {
    if (this.trace !== null) this.trace.push(seq, Number(process.hrtime.bigint()))
    const n = this.seqs.length
    if (seq < 0) {
      this.failure = new CtfsError('WAL_FAILED', `the write-ahead log failed: ${failure ?? 'unknown error'}; facts not yet durable never will be`)
      for (let i = this.head; i < n; i++) this.rejects[i]!(this.failure)
      this.head = n
    } else {
      if (seq > this.durable) this.durable = seq
      let i = this.head
      const durable = this.durable
      const seqs = this.seqs
      const resolves = this.resolves
      const values = this.values
      while (i < n && seqs[i]! <= durable) {
        resolves[i]!(values[i])
        i++
      }
      this.head = i
      const processed = this.processed
      if (processed !== null) queueMicrotask(() => processed(seq))
    }
    if (this.head === n) {
      this.seqs.length = 0
      this.values.length = 0
      this.resolves.length = 0
      this.rejects.length = 0
      this.head = 0
      if (this.keepAlive !== null) {
        clearInterval(this.keepAlive)
        this.keepAlive = null
      }
    } else if (this.head >= 1024 && this.head * 2 >= n) {
      // Under sustained load the queue may never drain: drop the resolved prefix.
      const h = this.head
      this.seqs.splice(0, h)
      this.values.splice(0, h)
      this.resolves.splice(0, h)
      this.rejects.splice(0, h)
      this.head = 0
    }
  }

  /** A promise of `value` once `seq` is durable (one promise, no chaining). */
  wait<T>(seq: number, value: T): Promise<T> {
    if (seq <= this.durable) return Promise.resolve(value)
    if (this.failure !== null) return Promise.reject(this.failure)
    // Hold the event loop open while someone waits (the native callback itself never does).
    if (this.keepAlive === null) this.keepAlive = setInterval(() => {}, 1 << 30)
    this.seqs.push(seq)
    this.values.push(value)
    return new Promise<T>((resolve, reject) => {
      this.resolves.push(resolve as (v: unknown) => void)
      this.rejects.push(reject)
    })
  }
}

/**
 * A kernel whose facts survive `kill -9` and power loss: every admitted fact
 * is appended to a write-ahead log, written and fdatasync'ed in group
 * commits by a writer thread; opening the directory restores the newest
 * valid checkpoint and replays the log after it.
 *
 * Acknowledgements, from fastest to safest:
 * - `admit(...)` (**volatile**): returns once the fact is admitted in memory
 *   and queued for the log. A crash before the next group commit (typically
 *   well under a millisecond) loses it.
 * - `admitAsync(...)`: the same, plus a handle whose `durable` promise
 *   resolves when fdatasync has covered the fact.
 * - `await admitDurable(...)`: resolves only after fdatasync covered it.
 *   Many concurrent calls share one fdatasync.
 *
 * **Tenants** are durable too: `kernel.tenant(name)` logs the tenant's
 * creation, its facts are logged with it and replayed into it, and
 * checkpoints hold every tenant. Acknowledgements are per kernel: admit into
 * a tenant, then `await kernel.flush()` to know it is durable.
 *
 * **Replicas**: with the `replica` option, facts from peers are logged with
 * their origin, escrow quotas and grants are persisted, and a reopen resumes
 * the replica in a new epoch (see `replica.sync()`).
 *
 * **Configuration.** Every log segment and checkpoint records the kernel's
 * configuration (invariant kind and every parameter, causality mode and
 * threshold, multi member names, a custom invariant's name, class, version
 * and initial state). Opening a directory with another configuration is
 * refused with `CONFIG_MISMATCH` naming what differs: bytes are never read
 * by another invariant. Limits (`maxPayloadBytes`, `maxDeps`, `maxFacts`)
 * may change between opens.
 *
 * **Lifetime.** `await close()` is the way to make sure everything admitted
 * is durable and to release the directory at a known moment. A kernel that
 * is dropped without `close()` is released when it is garbage-collected: what
 * is queued is written and synced, the writer thread stops, and the directory
 * is unlocked — but only at some later collection, and nothing can await it.
 *
 * @example
 * const k = await DurableKernel.open({ dir: './data', invariant: supply })
 * const id = await k.admitDurable(supply.delta(10n))
 * await k.checkpoint()
 * await k.close()
 */
export class DurableKernel<I extends InvariantSpec> extends Kernel<I> {
  readonly #nk: NativeKernel
  readonly #frontier: DurableFrontier
  #closed = false

  /** `options` as validated by {@link DurableKernel.open} (sizes as numbers). */
  private constructor(options: DurableKernelOptions<I> & { bufferBytes?: number; segmentBytes?: number }, frontier: DurableFrontier) {
    let nk: NativeKernel | undefined
    const durable = durableConfig(options)
    // Built outside this scope: the native log holds the callback for as long
    // as it runs, and a closure created here would keep this kernel alive.
    const onDurable = durableCallback(frontier)
    super(options, (config, rules) => {
      nk = rethrowNative(() => native.NativeKernel.open(config, rules, durable, onDurable))
      return nk
    })
    this.#nk = nk as NativeKernel
    this.#frontier = frontier
    frontier.processed = consumedCallback(this.#nk)
    this.#nk.walPacing(true)
    const d = this.#info()
    frontier.advance(d.durableSeq, undefined)
  }

  /**
   * Opens (or creates) the kernel stored in `options.dir`.
   * @throws CtfsError `CONFIG_MISMATCH` (written under another
   *   configuration: names the differing keys), `WAL_CORRUPT` (names the
   *   segment and offset), `CHECKPOINT_MISMATCH`, `WAL_REPLAY_REFUSED`,
   *   `IO_ERROR` (e.g. the directory is open in another process),
   *   `BACKEND_UNAVAILABLE`
   */
  static async open<I extends InvariantSpec>(options: DurableKernelOptions<I>): Promise<DurableKernel<I>> {
    if (typeof options !== 'object' || options === null) throw invalidArgType('options', 'an object', options)
    checkKeys(options, DURABLE_OPTION_KEYS)
    if (typeof options.dir !== 'string' || options.dir.length === 0) throw invalidArgType('options.dir', 'a directory path', options.dir)
    const b = options.backend
    if (b !== undefined && b !== 'auto' && b !== 'io_uring' && b !== 'portable') {
      throw outOfRange('options.backend', "'auto', 'io_uring' or 'portable'", b)
    }
    if (options.upgradeFormat !== undefined && typeof options.upgradeFormat !== 'boolean') {
      throw invalidArgType('options.upgradeFormat', 'a boolean', options.upgradeFormat)
    }
    const tc = options.truncateCorrupt
    if (tc !== undefined && typeof tc !== 'boolean') throw invalidArgType('options.truncateCorrupt', 'a boolean', tc)
    const sizes: { bufferBytes?: number; segmentBytes?: number } = {}
    for (const k of ['bufferBytes', 'segmentBytes'] as const) {
      if (options[k] !== undefined) sizes[k] = int(options[k], `options.${k}`, 4096, 2 ** 31)
    }
    return new DurableKernel({ ...options, bufferBytes: undefined, segmentBytes: undefined, ...sizes }, new DurableFrontier())
  }

  #info(): NativeDurability {
    const d = rethrowNative(() => this.#nk.durability())
    if (d === null || d === undefined) throw new CtfsError('WAL_CLOSED', 'the kernel is closed')
    return d
  }

  /** The log's state: backend, durable and appended sequences, fsyncs, recovery report. */
  get durability(): DurabilityInfo {
    const d = this.#info()
    return { ...d, backend: d.backend as 'io_uring' | 'portable', backendNote: d.backendNote ?? null, recovery: toRecovery(d.recovery) }
  }

  /** What opening the directory did. */
  get recovery(): RecoveryReport {
    return toRecovery(this.#info().recovery)
  }

  /** Admits a fact; volatile acknowledgement (see the class docs). */
  override admit(payload: Uint8Array, options?: AdmitOptions): FactId {
    return super.admit(payload, options)
  }

  /** Admits many facts in one native call; each admitted one is queued for the log in order. */
  override admitBatch(batch: FactBatch | readonly FactInput[]): BatchResult {
    return super.admitBatch(batch)
  }

  /**
   * Log sequence of the last record appended. Read from the log itself: a
   * replicated kernel also logs facts from peers and quota records, so
   * counting local admissions would not give the position of a fact.
   */
  #appended(): number {
    return this.#nk.appendedSeq()
  }

  /** Admits a fact and returns a handle to await its durability. */
  admitAsync(payload: Uint8Array, options?: AdmitOptions): DurableAdmission {
    const id = this.admitLogged(payload, options)
    const seq = this.admittedSeq
    const f = this.#frontier
    const durable = f.wait(seq, id)
    return { id, seq, isDurable: () => f.durable >= seq, durable }
  }

  /**
   * Admits a fact and resolves with its id once fdatasync covered it.
   * Refusals reject with the same {@link CtfsError} `admit` throws.
   */
  admitDurable(payload: Uint8Array, options?: AdmitOptions): Promise<FactId> {
    let id: FactId
    try {
      id = this.admitLogged(payload, options)
    } catch (e) {
      return Promise.reject(e)
    }
    return this.#frontier.wait(this.admittedSeq, id)
  }

  /**
   * **The way to high durable throughput**: admits a whole batch in one
   * native call, exactly like {@link admitBatch} (the same
   * {@link BatchResult}; a refused fact is reported in it, not thrown), and
   * resolves with that result once fdatasync covered every fact of the batch
   * that was admitted — one wait on the durable frontier for the batch's last
   * log record, no promise per fact. A batch with nothing admitted resolves
   * at once.
   *
   * Rejects (nothing is thrown synchronously) with the {@link CtfsError}
   * the other calls throw when the batch could not be logged: `BUSY` (called
   * from inside this kernel's own custom `apply`), `WAL_CLOSED` (closed
   * kernel), `WAL_FAILED` (the log failed, before or while the batch waited:
   * the same error {@link admitDurable} rejects with); a `TypeError` for a
   * batch of the wrong shape, like `admitBatch`. `BUFFER_FULL` is a per-fact
   * refusal: await this promise and admit the refused facts again.
   *
   * @example
   * const k = await DurableKernel.open({ dir: './data', invariant: supply })
   * const r = await k.admitBatchDurable(FactBatch.fromPayloads(supply.deltas([1n, 2n, 3n]), 16))
   * r.admitted // 3: all durable now
   */
  admitBatchDurable(batch: FactBatch | readonly FactInput[]): Promise<BatchResult> {
    let r: BatchResult
    try {
      r = this.admitBatchLogged(batch)
    } catch (e) {
      return Promise.reject(e)
    }
    if (r.refused > 0) {
      const e = logRefusal(r)
      if (e !== undefined) return Promise.reject(e)
    }
    if (r.admitted === 0) return Promise.resolve(r)
    // Read by the batch's own call: its last record or later.
    return this.#frontier.wait(this.admittedBatchSeq, r)
  }

  /**
   * Diagnostics: starts recording, per durable batch, when the log writer
   * picked it up, when it was synced and when the JavaScript callback ran
   * ({@link traceStop} returns them). For benchmarks; off by default.
   * @internal
   */
  traceStart(): void {
    rethrowNative(() => this.#nk.durabilityTrace(true))
    this.#frontier.trace = []
  }

  /**
   * Stops the trace started by {@link traceStart}. Times are
   * `process.hrtime` nanoseconds.
   * @internal
   */
  traceStop(): DurabilityTrace {
    const raw = rethrowNative(() => this.#nk.durabilityTrace(false))
    const batches: DurabilityTrace['batches'] = []
    for (let i = 0; i + 5 < raw.length; i += 6) {
      batches.push({ pickedNs: raw[i]!, syncedNs: raw[i + 1]!, notifiedNs: raw[i + 2]!, firstSeq: raw[i + 3]!, lastSeq: raw[i + 4]!, rolls: raw[i + 5]! })
    }
    const cb = this.#frontier.trace ?? []
    this.#frontier.trace = null
    const callbacks: DurabilityTrace['callbacks'] = []
    for (let i = 0; i + 1 < cb.length; i += 2) callbacks.push({ seq: cb[i]!, atNs: cb[i + 1]! })
    return { batches, callbacks }
  }

  /** Resolves when every fact admitted so far is durable. */
  async flush(): Promise<void> {
    if (this.#nk.isBusy()) throw busyError()
    await this.#frontier.wait(this.#appended(), undefined)
  }

  /**
   * Writes a checkpoint of the state, frontier and index covering every
   * admitted fact (after syncing the log), then deletes log segments and
   * checkpoints older than the previous checkpoint. Blocks the thread while
   * writing (tens of ms per million facts). Resolves with the covered sequence.
   * @throws CtfsError `IO_ERROR` when the data directory was removed (or
   *   replaced) while the kernel was open, or the file system refuses
   */
  async checkpoint(): Promise<{ seq: number }> {
    if (this.#nk.isBusy()) throw busyError()
    if (this.#closed) throw new CtfsError('WAL_CLOSED', 'the kernel is closed')
    const seq = rethrowNative(() => this.#nk.checkpoint())
    this.#frontier.advance(seq, undefined)
    return { seq }
  }

  /**
   * Syncs and closes the log (resolving every pending durability promise),
   * stops its writer thread and unlocks the directory. Later admissions fail
   * with `WAL_CLOSED`. Idempotent. Await it: it is the only way to know
   * that everything admitted is durable and the directory is free.
   */
  async close(): Promise<void> {
    // From inside an admission (a custom rule): refused before anything changes.
    if (this.#nk.isBusy()) throw busyError()
    if (this.#closed) return
    this.#closed = true
    let seq: number
    try {
      seq = rethrowNative(() => this.#nk.sync())
    } finally {
      rethrowNative(() => this.#nk.close())
    }
    this.#frontier.advance(seq, undefined)
  }
}

/**
 * A refusal of the log itself among a batch's refusals (`WAL_CLOSED`,
 * `WAL_FAILED`): the batch could not be made durable.
 */
function logRefusal(r: BatchResult): CtfsError | undefined {
  for (let i = 0; i < r.length; i++) {
    const c = r.code(i)
    if (c === 'WAL_CLOSED' || c === 'WAL_FAILED') return r.errors.find((e) => e.index === i)?.error ?? new CtfsError(c, c === 'WAL_CLOSED' ? 'the kernel is closed; nothing was admitted' : 'the write-ahead log failed')
  }
  return undefined
}

/** The durability options for the native layer. */
function durableConfig(options: DurableKernelOptions<InvariantSpec> & { bufferBytes?: number; segmentBytes?: number }): NativeDurableConfig {
  const names = (options.invariant as Partial<Multi<Record<string, InvariantSpec>>>).names
  return {
    dir: options.dir,
    ...(options.backend !== undefined ? { backend: options.backend } : {}),
    ...(options.truncateCorrupt !== undefined ? { truncateCorrupt: options.truncateCorrupt } : {}),
    ...(options.bufferBytes !== undefined ? { bufferBytes: options.bufferBytes } : {}),
    ...(options.segmentBytes !== undefined ? { segmentBytes: options.segmentBytes } : {}),
    ...(options.upgradeFormat !== undefined ? { upgradeFormat: options.upgradeFormat } : {}),
    ...(options.invariant.members !== undefined && Array.isArray(names) ? { memberNames: [...names] } : {}),
  }
}

/** The native log's callback: it references the frontier only, never the kernel. */
function durableCallback(frontier: DurableFrontier): (seq: number, failure?: string) => void {
  return (seq, failure) => frontier.advance(seq, failure)
}

/**
 * Reports processed durable callbacks to the log writer (`walConsumed`).
 * Weak, and built outside the constructor's scope: the native callback holds
 * the frontier, and a strong reference from there to the native kernel
 * (even through a closure's shared scope) would keep the kernel alive.
 */
function consumedCallback(nk: NativeKernel): (seq: number) => void {
  const weak = new WeakRef(nk)
  return (seq) => weak.deref()?.walConsumed(seq)
}

function toRecovery(r: NativeRecovery): RecoveryReport {
  return { ...r, tornTailAt: r.tornTailAt ?? null, truncatedAt: r.truncatedAt ?? null, truncateReason: r.truncateReason ?? null }
}

/** What `ctfs inspect <dir>` reports. */
export interface InspectReport {
  text: string
  /**
   * `DurableKernel.open` would succeed on this directory (with the options
   * given to {@link inspect}, or with the configuration it records): the
   * same checkpoint choice and the same recovery rules. Tolerated damage
   * (a corrupt checkpoint with a fallback, damage a checkpoint covers, a torn
   * tail) is listed in `damage` but keeps it healthy.
   */
  healthy: boolean
  /** The configuration the directory records, e.g. `invariant totalSupply{initial=0,min=0,max=∞}, causality exact`. */
  config: string | null
  segments: number
  records: number
  firstSeq: number
  lastSeq: number
  checkpoints: number
  validCheckpoints: number
  /** One line per damaged place: file, offset, reason. */
  damage: string[]
}

/**
 * Verifies a data directory read-only: segments, sequence gaps (from 1, or
 * from the newest valid checkpoint), checkpoints, configuration, corruption.
 * With `options` (the kernel options you would open it with), a directory
 * written under another configuration is reported unhealthy too.
 */
export function inspect<I extends InvariantSpec>(dir: string, options?: KernelOptions<I>): InspectReport {
  if (typeof dir !== 'string') throw invalidArgType('dir', 'a directory path', dir)
  let fingerprint: Buffer | undefined
  if (options !== undefined) {
    let config: NativeKernelConfig | undefined
    // validates the options exactly as a kernel does, and captures the native configuration
    new Kernel(options, (c, rules) => {
      config = c
      return new native.NativeKernel(c, rules)
    })
    const names = (options.invariant as Partial<Multi<Record<string, InvariantSpec>>>).names
    const members = options.invariant.members !== undefined && Array.isArray(names) ? [...names] : undefined
    fingerprint = rethrowNative(() => native.configFingerprint(config as NativeKernelConfig, members))
  }
  const r = rethrowNative(() => native.inspectDir(dir, fingerprint))
  return { ...r, config: r.config ?? null }
}

