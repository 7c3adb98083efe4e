import { checkKeys, isUint8Array } from './args.ts'
import { invalidArgType, outOfRange } from './errors.ts'
import { FACT_ID_BYTES, checkFactId, isFactId, type FactId } from './fact-id.ts'
import { int } from './invariants/common.ts'
import { EMPTY_BYTES, internalBytes } from './byte-pool.ts'
import { FAST } from './fast-path.ts'

/** One fact for `kernel.admitBatch([...])`. Any other key is a TypeError (`ERR_INVALID_ARG_VALUE`). */
export interface FactInput {
  payload: Uint8Array
  id?: FactId
  deps?: readonly FactId[]
}

/** Options of a single admission. Any other key is a TypeError (`ERR_INVALID_ARG_VALUE`). */
export interface AdmitOptions {
  /** The fact's id. Omit it and the kernel derives a fresh one (keyed BLAKE3). */
  id?: FactId
  /** Facts this one causally depends on; each must already be admitted. */
  deps?: readonly FactId[]
}

/** Options of {@link FactBatch.fromPayloads}. Any other key is a TypeError (`ERR_INVALID_ARG_VALUE`). */
export interface FixedBatchOptions {
  /** The facts' ids, packed (32 bytes per fact). Omitted: the kernel derives them. */
  ids?: Uint8Array
  /** The facts' dependencies, packed: `depsPerFact` ids (32 bytes each) per fact, fact by fact. */
  deps?: Uint8Array
  /** Dependencies per fact (default 1 when `deps` is given, else 0). */
  depsPerFact?: number | bigint
}

const FIXED_BATCH_KEYS: readonly string[] = ['ids', 'deps', 'depsPerFact']

/** The keys of {@link AdmitOptions}. @internal */
export const ADMIT_OPTION_KEYS: readonly string[] = ['id', 'deps']
/** The keys of {@link FactInput}. @internal */
export const FACT_INPUT_KEYS: readonly string[] = ['payload', 'id', 'deps']

const { packFixed } = FAST
const HEADER_BYTES = 8
const FLAG_HAS_ID = 1
const MAX_BATCH_DEPS = 0xffff
const MAX_BYTES = 0xffff_ffff * 2

/**
 * Many facts packed into one buffer, admitted with one native call
 * (`kernel.admitBatch(batch)`). Facts are admitted in order, each on its own;
 * a later fact may depend on an earlier one of the same batch.
 *
 * Record layout (little-endian), shared with `ctfs_core::batch`:
 * `flags:u8 0:u8 depCount:u16 payloadLen:u32 id:[32] deps:[32*depCount] payload`.
 * Derived ids are written back into the batch, so {@link FactBatch.id} reads
 * them after admission and a retry of the same batch admits nothing twice.
 */
export class FactBatch {
  #buf: Uint8Array
  /** A view of `#buf` for the record headers, made when first needed (`#headers`). */
  #view: DataView | undefined
  #used = 0
  #offsets: number[] = []
  /** Records of a fixed-shape batch ({@link fromPayloads}): `#fixed` records `#stride` bytes apart, before any in `#offsets`. */
  #fixed = 0
  #stride = 0

  /**
   * @param capacityBytes initial buffer size (default 64 KiB); it grows as
   *   needed. For small batches built often, pass about their size (40 bytes
   *   per fact plus its dependencies and payload): up to 8 KiB the buffer is
   *   carved from a shared slab, where a buffer of its own costs a few µs to
   *   allocate on Node 20.
   */
  constructor(capacityBytes: number | bigint = 64 * 1024) {
    const cap = int(capacityBytes, 'capacityBytes', 0, MAX_BYTES)
    // 0: no buffer until the first fact (fromPayloads sets its own). The
    // buffer never leaves the batch (`toBytes` copies), so a small one comes
    // from the shared slabs (see byte-pool.ts).
    this.#buf = cap === 0 ? EMPTY_BYTES : internalBytes(cap)
  }

  /** True for a batch built by this class (`instanceof` is fooled by `Object.create(FactBatch.prototype)`). @internal */
  static isBatch(v: unknown): v is FactBatch {
    return typeof v === 'object' && v !== null && #buf in v
  }

  /** Number of facts in the batch. */
  get length(): number {
    return this.#fixed + this.#offsets.length
  }

  /** Bytes used by the packed records. */
  get byteLength(): number {
    return this.#used
  }

  /** Appends a fact; returns its index in the batch. Unknown option keys are a TypeError (`ERR_INVALID_ARG_VALUE`). */
  add(payload: Uint8Array, options?: AdmitOptions): number {
    if (options !== undefined) {
      if (typeof options !== 'object' || options === null) throw invalidArgType('options', 'an object', options)
      for (const key in options) if (key !== 'id' && key !== 'deps') checkKeys(options, ADMIT_OPTION_KEYS)
    }
    return this.#append(payload, options, 'options')
  }

  /** Appends `fact` (`{ payload, id?, deps? }`), element `index` of an array of facts (`batch[index]` in errors). @internal */
  addFact(fact: FactInput, index: number): number {
    if (typeof fact !== 'object' || fact === null) throw invalidArgType(`batch[${index}]`, 'a fact object { payload, id?, deps? }', fact)
    for (const key in fact) if (key !== 'payload' && key !== 'id' && key !== 'deps') checkKeys(fact, FACT_INPUT_KEYS, `batch[${index}]`)
    return this.#append(fact.payload, fact, index)
  }

  /** `from`: 'options' (add), or the index of a fact in an array (admitBatch). */
  #append(payload: Uint8Array, options: AdmitOptions | undefined, from: 'options' | number): number {
    // names for errors are built only on the error path
    const name = (): string => (from === 'options' ? from : `batch[${from}]`)
    if (!isUint8Array(payload)) throw invalidArgType(from === 'options' ? 'payload' : `${name()}.payload`, 'a Uint8Array', payload)
    let id: FactId | undefined
    let deps: readonly FactId[] = []
    if (options !== undefined) {
      id = options.id
      if (id !== undefined && !isFactId(id)) checkFactId(id, `${name()}.id`)
      if (options.deps !== undefined) {
        if (!Array.isArray(options.deps)) throw invalidArgType(`${name()}.deps`, 'an array of fact ids', options.deps)
        deps = options.deps
        if (deps.length > MAX_BATCH_DEPS) throw outOfRange(`${name()}.deps`, `at most ${MAX_BATCH_DEPS} ids`, deps)
        for (let i = 0; i < deps.length; i++) if (!isFactId(deps[i])) checkFactId(deps[i], `${name()}.deps[${i}]`)
      }
    }
    const size = HEADER_BYTES + FACT_ID_BYTES + deps.length * FACT_ID_BYTES + payload.length
    this.#reserve(size)
    const at = this.#used
    const buf = this.#buf
    buf[at] = id === undefined ? 0 : FLAG_HAS_ID
    buf[at + 1] = 0
    const view = this.#headers()
    view.setUint16(at + 2, deps.length, true)
    view.setUint32(at + 4, payload.length, true)
    if (id === undefined) buf.fill(0, at + HEADER_BYTES, at + HEADER_BYTES + FACT_ID_BYTES)
    else buf.set(id, at + HEADER_BYTES)
    let p = at + HEADER_BYTES + FACT_ID_BYTES
    for (const d of deps) {
      buf.set(d, p)
      p += FACT_ID_BYTES
    }
    buf.set(payload, p)
    this.#used = at + size
    this.#offsets.push(at)
    return this.#fixed + this.#offsets.length - 1
  }

  /**
   * The id of fact `index`: the caller's, or after admission the derived
   * one. `undefined` for a fact whose id is still to be derived.
   */
  id(index: number): FactId | undefined {
    const at =
      typeof index === 'number' && Number.isInteger(index)
        ? index >= 0 && index < this.#fixed ? index * this.#stride : this.#offsets[index - this.#fixed]
        : undefined
    if (at === undefined) {
      if (typeof index !== 'number') throw invalidArgType('index', 'an integer', index)
      throw outOfRange('index', `in [0, ${this.length})`, index)
    }
    if ((this.#buf[at]! & FLAG_HAS_ID) === 0) return undefined
    return this.#buf.slice(at + HEADER_BYTES, at + HEADER_BYTES + FACT_ID_BYTES)
  }

  /**
   * A batch over packed records (the layout above) — e.g. what
   * `ReplicaSync.exportFacts()` returns or another process sent. The bytes
   * are checked record by record and copied.
   * @throws RangeError (`ERR_OUT_OF_RANGE`) naming the first bad record
   */
  static fromPacked(bytes: Uint8Array): FactBatch {
    if (!(bytes instanceof Uint8Array)) throw invalidArgType('bytes', 'a Uint8Array of packed records', bytes)
    const b = new FactBatch(bytes.length)
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    let at = 0
    while (at < bytes.length) {
      if (at + HEADER_BYTES + FACT_ID_BYTES > bytes.length) throw outOfRange('bytes', `complete records (record ${b.length} is truncated at byte ${at})`, bytes)
      const flags = bytes[at]!
      if ((flags & ~FLAG_HAS_ID) !== 0 || bytes[at + 1] !== 0) throw outOfRange('bytes', `valid records (record ${b.length} at byte ${at} has unknown flags)`, bytes)
      const size = HEADER_BYTES + FACT_ID_BYTES + view.getUint16(at + 2, true) * FACT_ID_BYTES + view.getUint32(at + 4, true)
      if (at + size > bytes.length) throw outOfRange('bytes', `complete records (record ${b.length} at byte ${at} runs past the end)`, bytes)
      b.#offsets.push(at)
      at += size
    }
    b.#buf.set(bytes)
    b.#used = bytes.length
    return b
  }

  /**
   * **The fast way to build a batch**: many facts of one shape from flat
   * buffers, packed by one native call (a few ns per fact) instead of one
   * {@link add} per fact. Fact `i` has the payload bytes
   * `[i * payloadBytes, (i + 1) * payloadBytes)` of `payloads`, the id
   * `ids[32 i .. 32 i + 32]` (omit `ids` and the kernel derives them; they are
   * written back into the batch and readable with {@link id} after
   * admission) and `depsPerFact` dependencies from `deps` (32 bytes each,
   * fact by fact). The typed helpers build `payloads` for you, e.g.
   * `gCounter.increments([1, 2, 3])` or `totalSupply.deltas(...)`.
   *
   * @example
   * const g = invariants.gCounter()
   * const k = new Kernel({ invariant: g })
   * const r = k.admitBatch(FactBatch.fromPayloads(g.increments(new BigUint64Array(1000).fill(1n)), 8))
   * r.admitted // 1000
   * @throws RangeError (`ERR_OUT_OF_RANGE`) when a length does not fit:
   *   `payloads` not a multiple of `payloadBytes`, `ids` not 32 bytes per
   *   fact, `deps` not `depsPerFact` x 32 bytes per fact
   */
  static fromPayloads(payloads: Uint8Array, payloadBytes: number, options?: FixedBatchOptions): FactBatch {
    if (!isUint8Array(payloads)) throw invalidArgType('payloads', 'a Uint8Array', payloads)
    const size = int(payloadBytes, 'payloadBytes', 1, 0xffff_ffff)
    let ids: Uint8Array | undefined
    let deps: Uint8Array | undefined
    let perFact = 0
    if (options !== undefined) {
      if (typeof options !== 'object' || options === null) throw invalidArgType('options', 'an object', options)
      checkKeys(options, FIXED_BATCH_KEYS)
      ids = options.ids
      if (ids !== undefined && !isUint8Array(ids)) throw invalidArgType('options.ids', 'a Uint8Array of packed 32-byte ids', ids)
      deps = options.deps
      if (deps !== undefined && !isUint8Array(deps)) throw invalidArgType('options.deps', 'a Uint8Array of packed 32-byte ids', deps)
      if (options.depsPerFact !== undefined) perFact = int(options.depsPerFact, 'options.depsPerFact', 0, MAX_BATCH_DEPS)
      else if (deps !== undefined) perFact = 1
    }
    const n = Math.floor(payloads.length / size)
    if (n * size !== payloads.length) throw outOfRange('payloads', `a multiple of payloadBytes (${size}) bytes long`, payloads.length)
    if (ids !== undefined && ids.length !== n * FACT_ID_BYTES) throw outOfRange('options.ids', `${n * FACT_ID_BYTES} bytes (32 per fact, ${n} facts)`, ids.length)
    if (perFact > 0 && deps === undefined) throw invalidArgType('options.deps', `a Uint8Array of ${perFact} x 32 bytes per fact`, deps)
    if (deps !== undefined && deps.length !== n * perFact * FACT_ID_BYTES) {
      throw outOfRange('options.deps', `${n * perFact * FACT_ID_BYTES} bytes (${perFact} x 32 per fact, ${n} facts)`, deps.length)
    }
    const stride = HEADER_BYTES + FACT_ID_BYTES + perFact * FACT_ID_BYTES + size
    if (n * stride > MAX_BYTES) throw outOfRange('payloads', 'a batch smaller than 8 GiB', n * stride)
    // From a shared slab: the batch keeps it to itself (`packed` is internal).
    const packed = internalBytes(n * stride)
    packFixed(packed, payloads, size, ids, deps, perFact)
    const b = new FactBatch(0)
    b.#buf = packed
    b.#used = packed.length
    b.#fixed = n
    b.#stride = stride
    return b
  }

  /** A copy of the packed records (see {@link fromPacked}). */
  toBytes(): Uint8Array {
    return this.#buf.slice(0, this.#used)
  }

  /** Empties the batch, keeping its buffer. */
  clear(): void {
    this.#used = 0
    this.#offsets.length = 0
    this.#fixed = 0
    this.#stride = 0
  }

  /** @internal The packed records. */
  get packed(): Uint8Array {
    const b = this.#buf
    return this.#used === b.length ? b : b.subarray(0, this.#used)
  }

  #reserve(extra: number): void {
    const need = this.#used + extra
    if (need > MAX_BYTES) throw outOfRange('batch', 'smaller than 8 GiB', need)
    if (need <= this.#buf.length) return
    let cap = Math.max(64, this.#buf.length * 2)
    while (cap < need) cap *= 2
    const next = internalBytes(cap)
    next.set(this.#buf.subarray(0, this.#used))
    this.#buf = next
    this.#view = undefined
  }

  #headers(): DataView {
    const b = this.#buf
    return (this.#view ??= new DataView(b.buffer, b.byteOffset, b.byteLength))
  }
}
