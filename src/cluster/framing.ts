// Stream framing for byte-stream transports (TCP): every frame travels as
// `length u32 LE | frame`. The decoder checks each length against the
// limit before buffering a single byte of the frame, so a peer announcing
// a huge frame costs nothing but the 4 bytes of its prefix.

/** Bytes of the length prefix. */
export const LENGTH_PREFIX_BYTES = 4

/** The 4-byte little-endian length prefix of a frame of `length` bytes. */
export function lengthPrefix(length: number): Buffer {
  const b = Buffer.allocUnsafe(LENGTH_PREFIX_BYTES)
  b.writeUInt32LE(length, 0)
  return b
}

/** Why a stream cannot be decoded any further. */
export interface FramingError {
  /** The announced length (above the limit, or zero). */
  length: number
  limit: number
}

/**
 * Reassembles frames from stream chunks. `push(chunk, onFrame)` calls `onFrame` for
 * every complete frame (a view into the chunk when the frame lies inside
 * one chunk: no copy) and returns a {@link FramingError} — after which the
 * stream must be closed — when a prefix announces an empty frame or one
 * longer than `maxFrameBytes`. Memory held: at most one partial frame
 * (≤ `maxFrameBytes`) plus a partial prefix.
 */
export class FrameDecoder {
  readonly #max: number
  /** A partial frame being assembled (allocated to its announced length). */
  #partial: Buffer | null = null
  #filled = 0
  /** A partial length prefix. */
  readonly #prefix = Buffer.alloc(LENGTH_PREFIX_BYTES)
  #prefixFilled = 0
  #failed: FramingError | null = null

  constructor(maxFrameBytes: number) {
    this.#max = maxFrameBytes
  }

  /** Bytes buffered for an incomplete frame. */
  get buffered(): number {
    return this.#filled + this.#prefixFilled
  }

  /** `onFrame` returns false to stop decoding (the stream is being closed). */
  push(chunk: Uint8Array, onFrame: (frame: Uint8Array) => boolean): FramingError | null {
    if (this.#failed !== null) return this.#failed
    let at = 0
    const n = chunk.length
    while (at < n) {
      if (this.#partial !== null) {
        const take = Math.min(this.#partial.length - this.#filled, n - at)
        this.#partial.set(chunk.subarray(at, at + take), this.#filled)
        this.#filled += take
        at += take
        if (this.#filled === this.#partial.length) {
          const f = this.#partial
          this.#partial = null
          this.#filled = 0
          if (!onFrame(f)) return null
        }
        continue
      }
      let length: number
      if (this.#prefixFilled === 0 && n - at >= LENGTH_PREFIX_BYTES) {
        length = (chunk[at]! | (chunk[at + 1]! << 8) | (chunk[at + 2]! << 16)) + chunk[at + 3]! * 0x1000000
        at += LENGTH_PREFIX_BYTES
      } else {
        const take = Math.min(LENGTH_PREFIX_BYTES - this.#prefixFilled, n - at)
        this.#prefix.set(chunk.subarray(at, at + take), this.#prefixFilled)
        this.#prefixFilled += take
        at += take
        if (this.#prefixFilled < LENGTH_PREFIX_BYTES) break
        this.#prefixFilled = 0
        length = this.#prefix.readUInt32LE(0)
      }
      if (length === 0 || length > this.#max) {
        this.#failed = { length, limit: this.#max }
        return this.#failed
      }
      if (n - at >= length) {
        if (!onFrame(chunk.subarray(at, at + length))) return null
        at += length
      } else {
        this.#partial = Buffer.allocUnsafe(length)
        this.#filled = 0
      }
    }
    return null
  }
}
