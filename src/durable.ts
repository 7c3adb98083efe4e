import type { BatchResult } from './kernel.ts'
import type { AdmitOptions, FactBatch, FactInput } from './batch.ts'
import { checkKeys } from './args.ts'
import { CtfsError, busyError, invalidArgType, outOfRange, rethrowNative } from './errors.ts'
import type { FactId } from './fact-id.ts'
import { int } from './invariants/common.ts'
import type { InvariantSpec } from './invariants/types.ts'
import { KERNEL_OPTION_KEYS, Kernel, type KernelOptions } from './kernel.ts'
import { native, type NativeDurability, type NativeKernel, type NativeRecovery } from './native.ts'

/** Which write path a durable kernel uses. */
export type DurabilityBackend = 'auto' | 'io_uring' | 'portable'

/** Options of {@link DurableKernel.open}. */
export interface DurableKernelOptions<I extends InvariantSpec> extends KernelOptions<I> {
  /** Data directory (created if missing): log segments and checkpoints. */
  dir: string
  /**
   * `'auto'` (default): io_uring when the kernel and seccomp allow it (probed
   * at open), else pwrite + fdatasync. Forcing `'io_uring'` where it is
   * unavailable fails with `BACKEND_UNAVAILABLE`.
   */
  backend?: DurabilityBackend
  /**
   * On a corrupt record *before* the log's tail, truncate the log there
   * (dropping everything after it) instead of refusing to open with
   * `WAL_CORRUPT`. Default false: corruption is reported, never skipped.
   */
  truncateCorrupt?: boolean
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
  /** Bytes of torn tail (or corruption, with `truncateCorrupt`) removed. */
  bytesCut: number
  tornTailAt: string | null
  truncatedAt: string | null
  segments: number
}

/** The durable log's state. */
export interface DurabilityInfo {
  backend: 'io_uring' | 'portable'
  /** Why `'auto'` chose the portable backend, if it did. */
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
  recovery: RecoveryReport
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

interface Waiter {
  seq: number
  value: unknown
  resolve: (v: unknown) => void
  reject: (e: unknown) => void
}

/** Shared between the native callback and the kernel object. */
class DurableFrontier {
  durable = 0
  failure: CtfsError | null = null
  readonly waiters: Waiter[] = []
  head = 0
  keepAlive: ReturnType<typeof setInterval> | null = null

  advance(seq: number, failure: string | undefined): void {
    if (seq < 0) {
      this.failure = new CtfsError('WAL_FAILED', `the write-ahead log failed: ${failure ?? 'unknown error'}; facts not yet durable never will be`)
      for (let i = this.head; i < this.waiters.length; i++) (this.waiters[i] as Waiter).reject(this.failure)
      this.head = this.waiters.length
    } else {
      if (seq > this.durable) this.durable = seq
      while (this.head < this.waiters.length && (this.waiters[this.head] as Waiter).seq <= this.durable) {
        const w = this.waiters[this.head++] as Waiter
        w.resolve(w.value)
      }
    }
    if (this.head === this.waiters.length) {
      this.waiters.length = 0
      this.head = 0
      if (this.keepAlive !== null) {
        clearInterval(this.keepAlive)
        this.keepAlive = null
      }
    }
  }

  /** A promise of `value` once `seq` is durable (one promise, no chaining). */
  wait<T>(seq: number, value: T): Promise<T> {
    if (seq <= this.durable) return Promise.resolve(value)
    if (this.failure !== null) return Promise.reject(this.failure)
    // Hold the event loop open while someone waits (the native callback itself never does).
    if (this.keepAlive === null) this.keepAlive = setInterval(() => {}, 1 << 30)
    return new Promise<T>((resolve, reject) =>
      this.waiters.push({ seq, value, resolve: resolve as (v: unknown) => void, reject }),
    )
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
 * Until replication lands, durable kernels have one domain and no replica
 * side: `tenant()` is refused with `INVALID_ARGUMENT` (the log does not
 * record tenants yet), and so is the `replica` option (escrow quotas are
 * not persisted yet).
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
  #appended: number
  #closed = false

  /** `options` as validated by {@link DurableKernel.open} (sizes as numbers). */
  private constructor(options: DurableKernelOptions<I> & { bufferBytes?: number; segmentBytes?: number }, frontier: DurableFrontier) {
    let nk: NativeKernel | undefined
    super(options, (config, rules) => {
      nk = rethrowNative(() =>
        native.NativeKernel.open(
          config,
          rules,
          {
            dir: options.dir,
            ...(options.backend !== undefined ? { backend: options.backend } : {}),
            ...(options.truncateCorrupt !== undefined ? { truncateCorrupt: options.truncateCorrupt } : {}),
            ...(options.bufferBytes !== undefined ? { bufferBytes: options.bufferBytes } : {}),
            ...(options.segmentBytes !== undefined ? { segmentBytes: options.segmentBytes } : {}),
          },
          (seq: number, failure?: string) => frontier.advance(seq, failure),
        ),
      )
      return nk
    })
    this.#nk = nk as NativeKernel
    this.#frontier = frontier
    const d = this.#info()
    this.#appended = d.appendedSeq
    frontier.advance(d.durableSeq, undefined)
  }

  /**
   * Opens (or creates) the kernel stored in `options.dir`.
   * @throws CtfsError `WAL_CORRUPT` (names the segment and offset),
   *   `CHECKPOINT_MISMATCH`, `WAL_REPLAY_REFUSED`, `IO_ERROR` (e.g. the
   *   directory is open in another process), `BACKEND_UNAVAILABLE`
   */
  static async open<I extends InvariantSpec>(options: DurableKernelOptions<I>): Promise<DurableKernel<I>> {
    if (typeof options !== 'object' || options === null) throw invalidArgType('options', 'an object', options)
    checkKeys(options, DURABLE_OPTION_KEYS)
    if (typeof options.dir !== 'string' || options.dir.length === 0) throw invalidArgType('options.dir', 'a directory path', options.dir)
    const b = options.backend
    if (b !== undefined && b !== 'auto' && b !== 'io_uring' && b !== 'portable') {
      throw outOfRange('options.backend', "'auto', 'io_uring' or 'portable'", b)
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
    const id = super.admit(payload, options)
    this.#appended++
    return id
  }

  /** Admits many facts in one native call; each admitted one is queued for the log in order. */
  override admitBatch(batch: FactBatch | readonly FactInput[]): BatchResult {
    const r = super.admitBatch(batch)
    this.#appended += r.length - r.refused
    return r
  }

  /** Admits a fact and returns a handle to await its durability. */
  admitAsync(payload: Uint8Array, options?: AdmitOptions): DurableAdmission {
    const id = this.admit(payload, options)
    const seq = this.#appended
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
      id = this.admit(payload, options)
    } catch (e) {
      return Promise.reject(e)
    }
    return this.#frontier.wait(this.#appended, id)
  }

  /** Resolves when every fact admitted so far is durable. */
  async flush(): Promise<void> {
    if (this.#nk.isBusy()) throw busyError()
    await this.#frontier.wait(this.#appended, undefined)
  }

  /**
   * Writes a checkpoint of the state, frontier and index covering every
   * admitted fact (after syncing the log), then deletes log segments and
   * checkpoints older than the previous checkpoint. Blocks the thread while
   * writing (tens of ms per million facts). Resolves with the covered sequence.
   */
  async checkpoint(): Promise<{ seq: number }> {
    if (this.#nk.isBusy()) throw busyError()
    if (this.#closed) throw new CtfsError('WAL_CLOSED', 'the kernel is closed')
    const seq = rethrowNative(() => this.#nk.checkpoint())
    this.#frontier.advance(seq, undefined)
    return { seq }
  }

  /**
   * Syncs and closes the log (resolving every pending durability promise) and
   * stops its writer thread. Later admissions fail with `WAL_CLOSED`. Idempotent.
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

function toRecovery(r: NativeRecovery): RecoveryReport {
  return { ...r, tornTailAt: r.tornTailAt ?? null, truncatedAt: r.truncatedAt ?? null }
}

/** What `ctfs inspect <dir>` reports. */
export interface InspectReport {
  text: string
  healthy: boolean
  segments: number
  records: number
  firstSeq: number
  lastSeq: number
  checkpoints: number
  validCheckpoints: number
  /** One line per damaged place: file, offset, reason. */
  damage: string[]
}

/** Verifies a data directory read-only: segments, sequence range, checkpoints, corruption. */
export function inspect(dir: string): InspectReport {
  if (typeof dir !== 'string') throw invalidArgType('dir', 'a directory path', dir)
  return rethrowNative(() => native.inspectDir(dir))
}

