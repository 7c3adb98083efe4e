import type { FactId } from '../fact-id.ts'
import { bytes, checkState, optionsOf, u64 } from './common.ts'
import { viewOf } from './int128.ts'
import { register } from './registry.ts'
import { coordinationOf, type InvariantSpec } from './types.ts'

/** The largest value an lww register holds, in bytes. */
export const LWW_MAX_VALUE_BYTES = 16

/** The decoded lww register. */
export interface LwwState {
  /** The winning write's timestamp (0n before the first write). */
  timestamp: bigint
  /** The id of the winning fact, or null before the first write. */
  writer: FactId | null
  /** The winning value (0..16 bytes; empty before the first write). */
  value: Uint8Array
  /** Whether anything was written. */
  written: boolean
}

/** A last-writer-wins register holding up to 16 bytes. */
export interface Lww extends InvariantSpec<LwwState> {
  readonly name: 'lww'
  readonly class: 'lastWriterWins'
  readonly coordination: 'none'
  /**
   * The payload of a write of `value` (0..16 bytes) at logical time
   * `timestamp` (a u64: a Lamport clock, a version number, a hybrid logical
   * clock — the invariant never reads a wall clock).
   */
  write(timestamp: bigint | number, value: Uint8Array): Uint8Array
}

/**
 * A last-writer-wins register holding up to 16 bytes.
 *
 * - payload: `timestamp` u64 LE, then the value (0..16 bytes), so 8..24
 *   bytes ({@link Lww.write}); anything else is `MALFORMED_FACT`. The value's
 *   length is the rest of the payload (`"ab"` and `"ab\0"` differ);
 * - state (64 bytes): `timestamp` u64 @0, winning fact id @8 (32 bytes),
 *   value @40 (16 bytes, zero-padded), `value_len` u8 @56, `written` u8 @57,
 *   6 zero bytes @58;
 * - merge: a write wins when the register was never written, or its
 *   timestamp is higher, or the timestamps are equal and its fact id is lower
 *   (the crate-wide rule: the lowest id wins). A losing write is admitted and
 *   changes nothing; there are no refusals for a well-formed payload;
 * - class `'lastWriterWins'`, coordination `'none'`: the state is the
 *   maximum of the writes under a total order, so any arrival order gives
 *   identical bytes.
 *
 * @example
 * const title = invariants.lww()
 * const k = new Kernel({ invariant: title })
 * k.admit(title.write(2n, new TextEncoder().encode('second')))
 * k.admit(title.write(1n, new TextEncoder().encode('first')))
 * new TextDecoder().decode(title.read(k.state).value) // 'second'
 */
export function lww(options?: Record<string, never>): Lww {
  optionsOf(options, [])
  return register({
    name: 'lww',
    class: 'lastWriterWins',
    coordination: coordinationOf('lastWriterWins') as 'none',
    native: { kind: 'lww' },
    write(timestamp: bigint | number, value: Uint8Array): Uint8Array {
      const ts = u64(timestamp, 'timestamp')
      bytes(value, 'value', 0, LWW_MAX_VALUE_BYTES)
      const out = new Uint8Array(8 + value.length)
      new DataView(out.buffer).setBigUint64(0, ts, true)
      out.set(value, 8)
      return out
    },
    read(state: Uint8Array): LwwState {
      checkState(state)
      const written = state[57] !== 0
      const len = Math.min(state[56] as number, LWW_MAX_VALUE_BYTES)
      return {
        timestamp: viewOf(state).getBigUint64(0, true),
        writer: written ? state.slice(8, 40) : null,
        value: state.slice(40, 40 + len),
        written,
      }
    },
  })
}
