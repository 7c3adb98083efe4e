// Byte arrays for the library's own buffers, carved from shared slabs.
//
// On Node 20 a Uint8Array of more than 64 bytes gets its own off-heap
// ArrayBuffer (V8 keeps only the small ones on its heap), and that costs
// far more than the work it usually serves: 1.1 µs for 65 bytes, 2.4–2.7 µs
// for 896 bytes, 12 µs for 48,000 bytes on the development VM, against
// 43 ns for a view on an existing ArrayBuffer (measured with a loop of
// 200,000 allocations each). A durable batch of 16 facts allocated two
// such arrays (its packed records and its statuses' copy), a large share of
// the JavaScript thread's time per batch. Views carved from a 64 KiB slab
// cost the view only.
//
// Only arrays the library keeps to itself come from here (a batch's packed
// records, a batch result's statuses): a slab is shared, so an array handed
// to user code that transferred its `.buffer` to a worker would detach its
// neighbours. A slab is freed when the last view on it is collected (like
// Node's own Buffer pool); arrays larger than POOLED_MAX get their own
// buffer as before, so one small live array pins at most one slab.

/** The library's one empty byte array (compared by identity where it stands for "none"). @internal */
export const EMPTY_BYTES: Uint8Array = new Uint8Array(0)

/** Bytes per slab. */
const SLAB_BYTES = 64 * 1024
/** Largest array carved from a slab; larger ones get their own buffer. */
export const POOLED_MAX = 8 * 1024
/** Arrays up to this size live on V8's heap, which is cheap already. */
const ON_HEAP_MAX = 64

let slab = new ArrayBuffer(SLAB_BYTES)
let used = 0

/**
 * A zero-filled Uint8Array of `n` bytes, for the library's own use: never
 * hand it (or its `.buffer`) to user code that could transfer or keep it.
 * Each slab byte is handed out once (no reuse), so it is zero-filled.
 * @internal
 */
export function internalBytes(n: number): Uint8Array {
  if (n <= ON_HEAP_MAX || n > POOLED_MAX) return new Uint8Array(n)
  if (used + n > SLAB_BYTES) {
    slab = new ArrayBuffer(SLAB_BYTES)
    used = 0
  }
  const out = new Uint8Array(slab, used, n)
  // 8-byte alignment, so that DataViews and native reads of the records stay aligned.
  used = (used + n + 7) & ~7
  return out
}

/** A copy of `src[0..n)` in {@link internalBytes}. @internal */
export function internalCopy(src: Uint8Array, n: number): Uint8Array {
  if (n <= ON_HEAP_MAX || n > POOLED_MAX) return src.slice(0, n)
  const out = internalBytes(n)
  out.set(src.subarray(0, n))
  return out
}
