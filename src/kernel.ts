import { checkKeys, isUint8Array } from './args.ts'
import { ADMIT_OPTION_KEYS, FactBatch, type AdmitOptions, type FactInput } from './batch.ts'
import { EMPTY_BYTES as EMPTY, internalBytes, internalCopy } from './byte-pool.ts'
import { FAST } from './fast-path.ts'
import {
  CtfsError,
  ERROR_CODES,
  busyError,
  fromNativeError,
  invalidArgType,
  invalidArgValue,
  outOfRange,
  rethrowNative,
  type CtfsErrorCode,
} from './errors.ts'
import { Replica, nativeReplica, type ReplicaOptions } from './replica.ts'
import { FACT_ID_BYTES, checkFactId, isFactId, packFactIds, type FactId } from './fact-id.ts'
import type { AlgebraicClass, Coordination, CustomApply, InvariantSpec, StateOf } from './invariants/types.ts'
import { resolveMember } from './invariants/multi.ts'
import { decodeMetrics, type MetricsSnapshot } from './metrics.ts'
import { int, u64 } from './invariants/common.ts'
import { internalsOf } from './invariants/registry.ts'
import {
  native,
  type NativeError,
  type NativeFrontier,
  type NativeKernel,
  type NativeKernelConfig,
} from './native.ts'

export type { AdmitOptions, FactInput } from './batch.ts'

/**
 * How the kernel decides that a dependency was admitted:
 * - `'exact'` (default): Bloom clock as a fast negative filter, exact index
 *   as the judge. No false admissions, no horizon; ~44 bytes per fact.
 * - `'bloom'`: Bloom clock only. Constant memory but **probabilistic**: once
 *   the 512-bit clock fills up (a few hundred facts) a missing dependency can
 *   pass, and a new id can be refused as a duplicate.
 * - `'escalating'`: exact from the first fact; keeps a cheap id list while
 *   the Bloom clock is sparse, and builds the exact index once its
 *   saturation passes `escalationThreshold` (default 0.4).
 */
export type CausalityMode = 'bloom' | 'exact' | 'escalating'

/** Options of `new Kernel(...)`. */
export interface KernelOptions<I extends InvariantSpec> {
  /** The invariant guarding the state, e.g. `invariants.totalSupply(...)`. */
  invariant: I
  /** Default `'exact'`. */
  causality?: CausalityMode
  /** Escalating mode: Bloom saturation (0..1, exclusive) that triggers the exact index. Default 0.4. */
  escalationThreshold?: number
  /** Largest payload in bytes (default 65,536; at most 16 MiB). */
  maxPayloadBytes?: number | bigint
  /** Most dependencies per fact (default 256; at most 65,535). */
  maxDeps?: number | bigint
  /**
   * Most facts tracked. Past it the kernel refuses with
   * `CAUSAL_HORIZON_EXCEEDED` rather than forget (default 2^32 - 2).
   */
  maxFacts?: number | bigint
  /**
   * Makes this kernel one replica of a cluster: local admission then refuses
   * facts that need coordination (`REQUIRES_COORDINATION`) and routes
   * bounded invariants through escrow quotas (`INSUFFICIENT_QUOTA`). See
   * {@link Replica}.
   */
  replica?: ReplicaOptions
}

/** What a kernel has admitted, summarised. */
export interface Frontier {
  /** The 512-bit Bloom clock (64 bytes). */
  clock: Uint8Array
  /** Facts admitted. */
  count: number
  /** Order-independent 256-bit digest of the admitted ids. */
  digest: Uint8Array
  /** Up to 16 newest ids, newest first. */
  recent: FactId[]
}

/** A consistent view returned by {@link Domain.query}. */
export interface KernelView<S> {
  /** State bytes (64). */
  state: Uint8Array
  /** The state decoded by the invariant. */
  value: S
  frontier: Frontier
}

/** What {@link Domain.query} waits for. */
export type Requirement =
  | { clock: Uint8Array; facts?: undefined }
  | { facts: readonly FactId[]; clock?: undefined }

export interface KernelStats {
  admitted: number
  /** Refusals by code. */
  rejected: Record<CtfsErrorCode, number>
  bloom: {
    popcount: number
    saturation: number
    /** Chance that an id never admitted passes the Bloom filter now. */
    falsePositiveRate: number
  }
  /** Ids tracked exactly (0 in bloom mode). */
  tracked: number
  /** Heap bytes of the exact index (table + ids). */
  indexBytes: number
  /** indexBytes / tracked (0 when nothing is tracked). */
  bytesPerFact: number
  /** Escalating mode: whether the exact index has been built... */
  escalated: boolean
  /** ...and at which fact count. */
  escalatedAt: number | null
}

/** The outcome of {@link Domain.admitBatch}. */
export class BatchResult {
  /** Facts admitted. */
  readonly admitted: number
  /** Facts refused. */
  readonly refused: number
  readonly #status: Uint8Array
  readonly #batch: FactBatch
  readonly #details: () => Array<{ index: number; error: NativeError }>
  #errors?: Array<{ index: number; error: CtfsError }>

  /** @internal */
  constructor(status: Uint8Array, batch: FactBatch, details: () => Array<{ index: number; error: NativeError }>) {
    this.#status = status
    this.#batch = batch
    this.#details = details
    let admitted = 0
    for (let i = 0; i < status.length; i++) if (status[i] === 0) admitted++
    this.admitted = admitted
    this.refused = status.length - admitted
  }

  /** Facts read from the batch. */
  get length(): number {
    return this.#status.length
  }

  /** Whether fact `index` was admitted (false for an index past the end). */
  ok(index: number): boolean {
    if (typeof index !== 'number') throw invalidArgType('index', 'an integer', index)
    return this.#status[index] === 0
  }

  /** The refusal code of fact `index`, or `undefined` if it was admitted (or past the end). */
  code(index: number): CtfsErrorCode | undefined {
    if (typeof index !== 'number') throw invalidArgType('index', 'an integer', index)
    const s = this.#status[index]
    return s === 0 || s === undefined ? undefined : (ERROR_CODES[s] as CtfsErrorCode)
  }

  /** The id of fact `index` (derived ids included), if it has one. */
  id(index: number): FactId | undefined {
    return this.#batch.id(index)
  }

  /** Every refusal, with its full error. */
  get errors(): ReadonlyArray<{ index: number; error: CtfsError }> {
    this.#errors ??= this.refused === 0 ? [] : this.#details().map((e) => ({ index: e.index, error: fromNativeError(e.error) }))
    return this.#errors
  }
}

const { admitWithId, admitDerived, admitWithIdSeq, admitDerivedSeq, admitBatch, admitBatchSeq, admitScratch, admitScratchSeq } = FAST
/** The thread's shared admission scratch, where the runtime offers one. */
const SCRATCH: Uint8Array | undefined = FAST.scratch !== undefined && admitScratch !== undefined && admitScratchSeq !== undefined ? FAST.scratch : undefined
/**
 * The thread's batch results, for batches of up to {@link RESULTS_CAP}
 * facts of kernels that run no JavaScript during admission (so that no
 * other batch can write it meanwhile): one off-heap buffer instead of a new
 * array per batch, which V8 would first move out of its heap for the native
 * side, and its last 8 bytes receive the log sequence of `admitBatchSeq`.
 * Each batch's statuses are copied out of it.
 */
const RESULTS_CAP = 1 << 16
/** First capacity of the batch built from an array of facts: per fact (a header, an id, a 24-byte payload), at most. */
const ARRAY_BATCH_BYTES_PER_FACT = 64
const ARRAY_BATCH_BYTES_MAX = 64 * 1024
/** The log sequence's bytes after the statuses (see `FastPath.admitBatchSeq`). */
const SEQ_BYTES = 8
const RESULTS = new Uint8Array(new ArrayBuffer(RESULTS_CAP + SEQ_BYTES))
const RESULTS_SEQ = new Float64Array(RESULTS.buffer, RESULTS_CAP, 1)
/** The payload length's unit in a scratch admission's `shape` (see `FastPath.admitScratch`). */
const SHAPE_PAYLOAD_UNIT = 1 << 12

/**
 * The `shape` argument of a scratch admission (see `FastPath.admitScratch`):
 * the payload's length, the number of dependencies, and whether the id is
 * given. @internal
 */
export function scratchShape(payloadBytes: number, deps: number, hasId: boolean): number {
  return payloadBytes * SHAPE_PAYLOAD_UNIT + deps * 2 + (hasId ? 1 : 0)
}
const CAUSALITY_MODES: readonly CausalityMode[] = ['bloom', 'exact', 'escalating']
/** The status of a call made from inside one of the kernel's own admissions. */
const BUSY_STATUS = ERROR_CODES.indexOf('BUSY')
/** The keys of {@link KernelOptions}. @internal */
export const KERNEL_OPTION_KEYS: readonly string[] = [
  'invariant',
  'causality',
  'escalationThreshold',
  'maxPayloadBytes',
  'maxDeps',
  'maxFacts',
  'replica',
]
const REQUIREMENT_KEYS: readonly string[] = ['facts', 'clock']

function toFrontier(f: NativeFrontier): Frontier {
  const recent: FactId[] = []
  for (let i = 0; i < f.recent.length; i += FACT_ID_BYTES) recent.push(new Uint8Array(f.recent.subarray(i, i + FACT_ID_BYTES)))
  return { clock: new Uint8Array(f.clock), count: f.count, digest: new Uint8Array(f.digest), recent }
}

function limit(v: unknown, name: string, max: number): number | undefined {
  return v === undefined ? undefined : int(v, name, 1, max)
}

/**
 * One causal domain: a state, a clock and an index. A {@link Kernel} is a
 * domain; `kernel.tenant(name)` returns more, isolated from each other.
 */
export class Domain<I extends InvariantSpec> {
  /** The invariant guarding this domain. */
  readonly invariant: I
  readonly #native: NativeKernel
  readonly #domain: number
  /** This domain's handle for the shared admission functions ({@link FAST}). */
  readonly #target: number
  readonly #maxDeps: number
  readonly #out = new Uint8Array(FACT_ID_BYTES)
  /** The shared admission scratch (kernels without JS rules; see `FastPath.admitScratch`). */
  readonly #scratch: Uint8Array | undefined
  #depScratch: Uint8Array = EMPTY

  /** @internal */
  protected constructor(nativeKernel: NativeKernel, domain: number, invariant: I, maxDeps: number) {
    this.#native = nativeKernel
    this.#target = rethrowNative(() => nativeKernel.fastTarget(domain))
    this.#scratch = nativeKernel.admitsFromScratch() ? SCRATCH : undefined
    this.#domain = domain
    this.invariant = invariant
    this.#maxDeps = maxDeps
  }

  /**
   * Admits one fact and returns its id (the given one, or a derived one).
   * Throws {@link CtfsError} when refused; a refused fact changes nothing.
   *
   * @param payload the bytes the invariant interprets (e.g. `supply.delta(5n)`)
   * @param options `{ id?, deps? }`; any other key is a TypeError
   *   (`ERR_INVALID_ARG_VALUE`) naming it — never ignored
   * @throws CtfsError `DUPLICATE_FACT`, `CAUSALITY_VIOLATION`, `INVARIANT_VIOLATION`,
   *   `MALFORMED_FACT`, `PAYLOAD_TOO_LARGE`, `CAUSAL_HORIZON_EXCEEDED`; `BUSY`
   *   when called from inside this kernel's own custom `apply`
   * @throws TypeError / RangeError for arguments of the wrong type or length
   */
  admit(payload: Uint8Array, options?: AdmitOptions): FactId {
    return this.#admit(payload, options, false)
  }

  /**
   * {@link admit}, reading the fact's log sequence in the same native call
   * (durable kernels; see {@link admittedSeq}).
   * @internal
   */
  protected admitLogged(payload: Uint8Array, options?: AdmitOptions): FactId {
    return this.#admit(payload, options, true)
  }

  /** The log sequence of the fact the last {@link admitLogged} admitted. @internal */
  protected get admittedSeq(): number {
    return this.#seq
  }

  #seq = 0

  #admit(payload: Uint8Array, options: AdmitOptions | undefined, logged: boolean): FactId {
    if (!isUint8Array(payload)) throw invalidArgType('payload', 'a Uint8Array', payload)
    let depList: readonly FactId[] | undefined
    let id: FactId | undefined
    if (options !== undefined) {
      if (typeof options !== 'object' || options === null) throw invalidArgType('options', 'an object', options)
      // The common shapes ({id}, {deps}, {id, deps}) pass with two compares per key.
      for (const key in options) if (key !== 'id' && key !== 'deps') checkKeys(options, ADMIT_OPTION_KEYS)
      id = options.id
      if (id !== undefined && !isFactId(id)) checkFactId(id, 'options.id')
      if (options.deps !== undefined) depList = this.#checkDepList(options.deps)
    }
    const nd = depList === undefined ? 0 : depList.length
    const target = this.#target
    const s = this.#scratch
    // The fact fits the shared scratch: written there, it crosses as two numbers.
    if (s !== undefined && payload.length <= s.length - (nd + 1) * FACT_ID_BYTES) {
      if (id !== undefined) s.set(id)
      for (let i = 0; i < nd; i++) {
        const d = depList![i]
        if (!isFactId(d)) checkFactId(d, `options.deps[${i}]`)
        s.set(d, FACT_ID_BYTES * (i + 1))
      }
      if (payload.length !== 0) s.set(payload, FACT_ID_BYTES * (nd + 1))
      const shape = scratchShape(payload.length, nd, id !== undefined)
      if (logged) {
        const r = admitScratchSeq!(target, shape)
        if (r <= 0) throw this.#lastError(-r)
        this.#seq = r
      } else {
        const status = admitScratch!(target, shape)
        if (status !== 0) throw this.#lastError(status)
      }
      return id ?? s.slice(0, FACT_ID_BYTES)
    }
    const deps = nd === 0 ? EMPTY : nd === 1 ? this.#oneDep(depList![0]) : this.#packIds(depList!, 'options.deps')
    if (logged) {
      // One crossing returns the log sequence (or minus the refusal status).
      const r =
        id !== undefined
          ? deps === EMPTY ? admitWithIdSeq(target, id, payload) : admitWithIdSeq(target, id, payload, deps)
          : deps === EMPTY ? admitDerivedSeq(target, this.#out, payload) : admitDerivedSeq(target, this.#out, payload, deps)
      if (r <= 0) throw this.#lastError(-r)
      this.#seq = r
      return id ?? this.#out.slice()
    }
    // Without dependencies the call carries one handle fewer.
    if (id !== undefined) {
      const status = deps === EMPTY ? admitWithId(target, id, payload) : admitWithId(target, id, payload, deps)
      if (status !== 0) throw this.#lastError(status)
      return id
    }
    const status = deps === EMPTY ? admitDerived(target, this.#out, payload) : admitDerived(target, this.#out, payload, deps)
    if (status !== 0) throw this.#lastError(status)
    return this.#out.slice()
  }

  /**
   * Admits many facts in one native call. Each fact is admitted or refused on
   * its own, in order; nothing throws for a refused fact — inspect the result.
   */
  admitBatch(batch: FactBatch | readonly FactInput[]): BatchResult {
    return this.#admitBatch(batch, false)
  }

  /**
   * {@link admitBatch}, reading the log's last appended sequence in the same
   * native call (durable kernels; see {@link admittedBatchSeq}).
   * @internal
   */
  protected admitBatchLogged(batch: FactBatch | readonly FactInput[]): BatchResult {
    return this.#admitBatch(batch, true)
  }

  /** The log's last appended sequence after the last {@link admitBatchLogged}. @internal */
  protected get admittedBatchSeq(): number {
    return this.#batchSeq
  }

  #batchSeq = 0

  #admitBatch(batch: FactBatch | readonly FactInput[], logged: boolean): BatchResult {
    let b: FactBatch
    if (FactBatch.isBatch(batch)) b = batch
    else if (Array.isArray(batch)) {
      // Room for small facts (it grows for larger ones): a 16-fact batch
      // takes 1 KiB of a shared slab instead of 64 KiB of its own.
      b = new FactBatch(Math.min(ARRAY_BATCH_BYTES_MAX, batch.length * ARRAY_BATCH_BYTES_PER_FACT))
      for (let i = 0; i < batch.length; i++) {
        b.addFact(batch[i] as FactInput, i)
      }
    } else throw invalidArgType('batch', 'a FactBatch or an array of facts', batch)
    const n = b.length
    const nk = this.#native
    // The thread's results buffer when no JavaScript runs during this call;
    // otherwise (or past its size) the batch's own, with room for the sequence.
    const shared = this.#scratch !== undefined && n <= RESULTS_CAP
    const out = shared ? RESULTS : internalBytes(n + SEQ_BYTES)
    // One call site per native function keeps V8's fast API call.
    const read = logged
      ? rethrowNative(() => admitBatchSeq(this.#target, b.packed, out))
      : rethrowNative(() => admitBatch(this.#target, b.packed, out))
    if (logged) this.#batchSeq = shared ? RESULTS_SEQ[0]! : new DataView(out.buffer, out.byteOffset + out.length - SEQ_BYTES).getFloat64(0, true)
    const status = shared ? internalCopy(RESULTS, read) : out.subarray(0, read)
    return new BatchResult(status, b, () => nk.batchErrors())
  }

  /** A copy of the state bytes (64). Decode with `invariant.read(state)` or {@link read}. */
  get state(): Uint8Array {
    return new Uint8Array(rethrowNative(() => this.#native.state(this.#domain)))
  }

  /** The state, decoded by the invariant. */
  read(): StateOf<I> {
    return this.invariant.read(this.state) as StateOf<I>
  }

  /** The 64-byte Bloom clock. */
  get clock(): Uint8Array {
    return this.frontier.clock
  }

  get frontier(): Frontier {
    return toFrontier(rethrowNative(() => this.#native.frontier(this.#domain)))
  }

  /**
   * `'yes'` / `'no'` whether `id` was admitted; `'maybe'` in bloom mode when
   * the clock cannot tell.
   */
  contains(id: FactId): 'yes' | 'no' | 'maybe' {
    checkFactId(id)
    const r = rethrowNative(() => this.#native.contains(this.#domain, id))
    return r === 1 ? 'yes' : r === 2 ? 'maybe' : 'no'
  }

  /**
   * Whether the uniqueSet holds `key` (32 bytes). `member`: in a multi, the
   * uniqueSet member's name or index (default: the first uniqueSet member).
   */
  has(key: Uint8Array, member?: string | number): boolean {
    if (!isUint8Array(key)) throw invalidArgType('key', 'a 32-byte Uint8Array', key)
    if (key.length !== 32) throw outOfRange('key', '32 bytes long', key)
    const m = resolveMember(this.invariant, member, 'uniqueSet')
    return rethrowNative(() => this.#native.setContains(this.#domain, m, key))
  }

  /**
   * Whether the graph has the edge `from -> to` (u64 vertex ids). `member`:
   * in a multi, the graph member's name or index (default: the first graph
   * member). For a gGraph, read the state: `invariant.read(k.state).hasEdge`.
   */
  hasEdge(from: bigint | number, to: bigint | number, member?: string | number): boolean {
    const f = u64(from, 'from')
    const t = u64(to, 'to')
    const m = resolveMember(this.invariant, member, 'graph')
    return rethrowNative(() => this.#native.graphHasEdge(this.#domain, m, f, t))
  }

  /**
   * A consistent view (state + frontier) once `required` is met, else `null`.
   * `{ facts }` is exact in exact modes; `{ clock }` (a 64-byte Bloom clock,
   * e.g. another replica's) is a probabilistic superset test.
   */
  query(required: Requirement): KernelView<StateOf<I>> | null {
    if (typeof required !== 'object' || required === null) {
      throw invalidArgType('required', 'an object { facts } or { clock }', required)
    }
    checkKeys(required, REQUIREMENT_KEYS, 'required')
    const { facts, clock } = required
    if (facts !== undefined && clock !== undefined) {
      throw invalidArgValue('required', 'must have either facts or clock, not both: { facts } is exact, { clock } a probabilistic superset test')
    }
    let v
    if (facts !== undefined) {
      const packed = this.#packIds(facts, 'required.facts')
      v = rethrowNative(() => this.#native.queryFacts(this.#domain, packed))
    } else if (clock !== undefined) {
      if (!isUint8Array(clock)) throw invalidArgType('required.clock', 'a 64-byte Uint8Array', clock)
      if (clock.length !== 64) throw outOfRange('required.clock', '64 bytes', clock)
      v = rethrowNative(() => this.#native.queryClock(this.#domain, clock))
    } else throw invalidArgType('required', 'an object { facts } or { clock }', required)
    if (v === null || v === undefined) return null
    const state = new Uint8Array(v.state)
    return { state, value: this.invariant.read(state) as StateOf<I>, frontier: toFrontier(v.frontier) }
  }

  get stats(): KernelStats {
    const s = rethrowNative(() => this.#native.stats(this.#domain))
    const rejected = {} as Record<CtfsErrorCode, number>
    for (let i = 1; i < ERROR_CODES.length; i++) rejected[ERROR_CODES[i] as CtfsErrorCode] = s.rejected[i] ?? 0
    return {
      admitted: s.admitted,
      rejected,
      bloom: { popcount: s.bloomPopcount, saturation: s.bloomSaturation, falsePositiveRate: s.bloomFalsePositiveRate },
      tracked: s.tracked,
      indexBytes: s.indexBytes,
      bytesPerFact: s.tracked > 0 ? s.indexBytes / s.tracked : 0,
      escalated: s.escalated,
      escalatedAt: s.escalatedAt ?? null,
    }
  }

  #lastError(status: number): CtfsError {
    if (status === BUSY_STATUS) return busyError()
    const e = rethrowNative(() => this.#native.lastError())
    return e ? fromNativeError(e) : new CtfsError('MALFORMED_FACT', 'refused without details')
  }

  /** `options.deps` checked as a list within `maxDeps` (its ids are checked where they are written); `undefined` when empty. */
  #checkDepList(deps: readonly FactId[]): readonly FactId[] | undefined {
    if (!Array.isArray(deps)) throw invalidArgType('options.deps', 'an array of fact ids', deps)
    const n = deps.length
    if (n === 0) return undefined
    if (n > this.#maxDeps) {
      throw new CtfsError('MALFORMED_FACT', `malformed fact: ${n} dependencies; the limit is ${this.#maxDeps} (maxDeps)`)
    }
    return deps
  }

  #oneDep(d: FactId | undefined): FactId {
    if (!isFactId(d)) checkFactId(d, 'options.deps[0]')
    return d
  }

  #packIds(ids: readonly FactId[], name: string): Uint8Array {
    const { packed, scratch } = packFactIds(ids, name, this.#depScratch)
    this.#depScratch = scratch
    return packed
  }
}

/** A tenant's isolated domain, from {@link Kernel.tenant}. */
export class Tenant<I extends InvariantSpec> extends Domain<I> {
  /** The tenant's name. */
  readonly name: string

  /** @internal */
  constructor(nativeKernel: NativeKernel, domain: number, invariant: I, maxDeps: number, name: string) {
    super(nativeKernel, domain, invariant, maxDeps)
    this.name = name
  }
}

/**
 * A single-node, in-memory ctfs kernel: admits facts into a state guarded
 * by an invariant.
 *
 * @example
 * const supply = invariants.totalSupply({ initial: 1000n, min: 0n, max: 1_000_000n })
 * const k = new Kernel({ invariant: supply, causality: 'exact' })
 * const a = k.admit(supply.delta(500n))
 * k.admit(supply.delta(-200n), { deps: [a] })
 * supply.read(k.state) // { balance: 1300n, min: 0n, max: 1000000n }
 */
export class Kernel<I extends InvariantSpec> extends Domain<I> {
  /** The causality mode. */
  readonly mode: CausalityMode
  /** The invariant's algebraic class. */
  readonly invariantClass: AlgebraicClass
  /** What replicated admission of this invariant needs. */
  readonly coordination: Coordination
  /** Effective limits. */
  readonly limits: { maxPayloadBytes: number; maxDeps: number; maxFacts: number }
  readonly #nativeKernel: NativeKernel
  readonly #tenants = new Map<string, Tenant<I>>()

  /**
   * @param options the invariant, causality mode and limits
   * @param open @internal builds the native kernel another way (durable
   *   kernels, which check the keys of their own options first)
   * @throws TypeError (`ERR_INVALID_ARG_TYPE`, or `ERR_INVALID_ARG_VALUE`
   *   for an unknown option key) / RangeError (`ERR_OUT_OF_RANGE`)
   */
  constructor(options: KernelOptions<I>, open?: (config: NativeKernelConfig, rules: CustomApply[] | undefined) => NativeKernel) {
    if (typeof options !== 'object' || options === null) throw invalidArgType('options', 'an object', options)
    if (open === undefined) checkKeys(options, KERNEL_OPTION_KEYS)
    const inv = options.invariant
    const built = internalsOf(inv, 'options.invariant')
    const mode = options.causality ?? 'exact'
    if (typeof mode !== 'string') throw invalidArgType('options.causality', "'bloom', 'exact' or 'escalating'", mode)
    if (!CAUSALITY_MODES.includes(mode)) throw outOfRange('options.causality', "'bloom', 'exact' or 'escalating'", mode)
    const t = options.escalationThreshold
    if (t !== undefined) {
      if (typeof t !== 'number') throw invalidArgType('options.escalationThreshold', 'a number', t)
      if (!(t > 0 && t < 1)) throw outOfRange('options.escalationThreshold', 'in (0, 1)', t)
    }
    const maxPayloadBytes = limit(options.maxPayloadBytes, 'options.maxPayloadBytes', 16 * 1024 * 1024)
    const maxDeps = limit(options.maxDeps, 'options.maxDeps', 65_535)
    const maxFacts = limit(options.maxFacts, 'options.maxFacts', 2 ** 32 - 2)
    const config: NativeKernelConfig = {
      invariant: built.native,
      ...(built.members !== undefined ? { members: [...built.members] } : {}),
      causality: mode,
      ...(t !== undefined ? { escalationThreshold: t } : {}),
      ...(maxPayloadBytes !== undefined ? { maxPayloadBytes } : {}),
      ...(maxDeps !== undefined ? { maxDeps } : {}),
      ...(maxFacts !== undefined ? { maxFacts } : {}),
    }
    const replica = nativeReplica(options.replica)
    if (replica !== undefined) config.replica = replica
    const rules = built.rules !== undefined ? [...built.rules] : undefined
    const nk = rethrowNative(() => (open !== undefined ? open(config, rules) : new native.NativeKernel(config, rules)))
    const info = nk.info()
    super(nk, 0, inv, info.maxDeps)
    this.#nativeKernel = nk
    this.mode = info.mode as CausalityMode
    this.invariantClass = info.class as AlgebraicClass
    this.coordination = info.coordination as Coordination
    this.limits = { maxPayloadBytes: info.maxPayloadBytes, maxDeps: info.maxDeps, maxFacts: info.maxFacts }
    this.replica = replica !== undefined ? new Replica(nk, replica.local, replica.nodes, built.members?.length ?? 1) : null
  }

  /** The replica side (escrow, remote facts) when created with `replica`, else null. */
  readonly replica: Replica | null

  /**
   * The isolated domain of tenant `name` (created on first use): its own
   * clock, index and state, starting from the invariant's initial state.
   * One tenant's facts never satisfy another tenant's dependencies.
   */
  tenant(name: string): Tenant<I> {
    if (typeof name !== 'string') throw invalidArgType('name', 'a string', name)
    if (name.length === 0 || name.length > 256) throw outOfRange('name', '1 to 256 characters long', name)
    let t = this.#tenants.get(name)
    if (t !== undefined && this.#nativeKernel.isBusy()) throw busyError()
    if (t === undefined) {
      const domain = rethrowNative(() => this.#nativeKernel.tenant(name))
      t = new Tenant(this.#nativeKernel, domain, this.invariant, this.limits.maxDeps, name)
      this.#tenants.set(name, t)
    }
    return t
  }

  /**
   * Every metric of this kernel in one native call (no JS runs per fact):
   * admitted and refused facts by code for the kernel and each tenant,
   * admission latency (one single admission call in 64 is timed), batch
   * sizes and times (every call), per-member
   * counts of a multi invariant, and — where they exist — the log's group
   * commits, write/fdatasync/durable-ack latency, queue, recovery and
   * checkpoints; the escrow pools' quotas; the replication protocol's
   * per-peer frames and bytes, dropped frames, causal buffer and
   * anti-entropy. `ctfs/prometheus` exposes the same snapshot to prom-client.
   * @throws CtfsError `BUSY` from inside one of the kernel's own admissions
   */
  metrics(): MetricsSnapshot {
    const inv = this.invariant as unknown as { name: string; names?: readonly string[] }
    const names = inv.name === 'multi' && Array.isArray(inv.names) ? inv.names : []
    return decodeMetrics(rethrowNative(() => this.#nativeKernel.metricsSnapshot()), names)
  }

  /** Names of the tenants created so far. */
  get tenants(): string[] {
    if (this.#nativeKernel.isBusy()) throw busyError()
    return [...this.#tenants.keys()]
  }
}

// The TS list of codes must match the native numbering.
{
  const nativeCodes = native.errorCodes()
  if (nativeCodes.length !== ERROR_CODES.length || nativeCodes.some((c, i) => c !== ERROR_CODES[i])) {
    throw new Error(`ctfs: native error codes [${nativeCodes.join(', ')}] do not match this build of the JS API`)
  }
}
