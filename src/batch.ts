import { invalidArgType, outOfRange } from './errors.ts'
import { FACT_ID_BYTES, checkFactId, type FactId } from './fact-id.ts'

/** One fact for {@link FactBatch.add} / `kernel.admitBatch([...])`. */
export interface FactInput {
  payload: Uint8Array
  id?: FactId
  deps?: readonly FactId[]
}

/** Options of a single admission. */
export interface AdmitOptions {
  /** The fact's id. Omit it and the kernel derives a fresh one (keyed BLAKE3). */
  id?: FactId
  /** Facts this one causally depends on; each must already be admitted. */
  deps?: readonly FactId[]
}

const HEADER_BYTES = 8
const FLAG_HAS_ID = 1
const MAX_BATCH_DEPS = 0xffff

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
  #view: DataView
  #used = 0
  #offsets: number[] = []

  /** @param capacityBytes initial buffer size; it grows as needed. */
  constructor(capacityBytes = 64 * 1024) {
    if (!Number.isSafeInteger(capacityBytes) || capacityBytes < 0) {
      throw outOfRange('capacityBytes', 'a non-negative integer', capacityBytes)
    }
    this.#buf = new Uint8Array(Math.max(capacityBytes, 64))
    this.#view = new DataView(this.#buf.buffer)
  }

  /** Number of facts in the batch. */
  get length(): number {
    return this.#offsets.length
  }

  /** Bytes used by the packed records. */
  get byteLength(): number {
    return this.#used
  }

  /** Appends a fact; returns its index in the batch. */
  add(payload: Uint8Array, options?: AdmitOptions): number {
    if (!(payload instanceof Uint8Array)) throw invalidArgType('payload', 'a Uint8Array', payload)
    let id: FactId | undefined
    let deps: readonly FactId[] = []
    if (options !== undefined) {
      if (typeof options !== 'object' || options === null) throw invalidArgType('options', 'an object', options)
      id = options.id
      if (id !== undefined) checkFactId(id, 'options.id')
      if (options.deps !== undefined) {
        if (!Array.isArray(options.deps)) throw invalidArgType('options.deps', 'an array of fact ids', options.deps)
        deps = options.deps
        if (deps.length > MAX_BATCH_DEPS) throw outOfRange('options.deps', `at most ${MAX_BATCH_DEPS} ids`, deps)
        for (let i = 0; i < deps.length; i++) checkFactId(deps[i], `options.deps[${i}]`)
      }
    }
    const size = HEADER_BYTES + FACT_ID_BYTES + deps.length * FACT_ID_BYTES + payload.length
    this.#reserve(size)
    const at = this.#used
    const buf = this.#buf
    buf[at] = id === undefined ? 0 : FLAG_HAS_ID
    buf[at + 1] = 0
    this.#view.setUint16(at + 2, deps.length, true)
    this.#view.setUint32(at + 4, payload.length, true)
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
    return this.#offsets.length - 1
  }

  /**
   * The id of fact `index`: the caller's, or after admission the derived
   * one. `undefined` for a fact whose id is still to be derived.
   */
  id(index: number): FactId | undefined {
    const at = this.#offsets[index]
    if (at === undefined) throw outOfRange('index', `in [0, ${this.length})`, index)
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

  /** A copy of the packed records (see {@link fromPacked}). */
  toBytes(): Uint8Array {
    return this.#buf.slice(0, this.#used)
  }

  /** Empties the batch, keeping its buffer. */
  clear(): void {
    this.#used = 0
    this.#offsets.length = 0
  }

  /** @internal The packed records. */
  get packed(): Uint8Array {
    return this.#buf.subarray(0, this.#used)
  }

  #reserve(extra: number): void {
    const need = this.#used + extra
    if (need > 0xffff_ffff * 2) throw outOfRange('batch', 'smaller than 8 GiB', need)
    if (need <= this.#buf.length) return
    let cap = this.#buf.length * 2
    while (cap < need) cap *= 2
    const next = new Uint8Array(cap)
    next.set(this.#buf.subarray(0, this.#used))
    this.#buf = next
    this.#view = new DataView(next.buffer)
  }
}
