import { invalidArgType, outOfRange } from '../errors.ts'
import { CELL_BYTES, bytes, optionsOf } from './common.ts'
import { register } from './registry.ts'
import { coordinationOf, type AlgebraicClass, type Coordination, type CustomApply, type InvariantSpec } from './types.ts'

const CLASSES: readonly AlgebraicClass[] = [
  'group',
  'semilattice',
  'commutativeMonoid',
  'bounded',
  'lastWriterWins',
  'idempotentSet',
  'growOnlyGraph',
  'nonCommutative',
]

/** The keys of {@link CustomOptions}. */
const KEYS: readonly string[] = ['name', 'class', 'initial', 'apply', 'read', 'version']

/** Options of {@link custom}. */
export interface CustomOptions<T> {
  /** The invariant's name (1..64 bytes of UTF-8), shown in refusals. */
  name: string
  /**
   * The algebraic class the author **declares** for `apply`. The kernel
   * cannot prove it: it only decides coordination from it (`'bounded'` →
   * escrow, `'nonCommutative'` → required, anything else → none).
   */
  class: AlgebraicClass
  /** The initial state; its length (1..64 bytes) is the state size. */
  initial: Uint8Array
  /**
   * The rule: mutate `state` (a DataView over the state bytes) or throw to
   * refuse the fact (`INVARIANT_VIOLATION` with the thrown message). Must be
   * a pure function of (payload, state, id): replicas re-running the same
   * facts must reach the same bytes. It runs synchronously inside admission
   * on a scratch copy and must be synchronous itself: an `async` apply (any
   * returned promise or thenable) is refused with `INVARIANT_VIOLATION`.
   * It must not call back into its kernel: such calls throw `BUSY`.
   */
  apply: CustomApply
  /** Decodes the state bytes (the first `initial.length` bytes of the cell). Default: a copy of them. */
  read?: (state: Uint8Array) => T
  /**
   * The version of your rule (an integer >= 1, default 1). A durable kernel
   * records it with the name, class and initial state: bump it whenever
   * `apply` changes meaning, and a data directory written by the old rule is
   * refused with `CONFIG_MISMATCH` instead of being replayed by the new one.
   */
  version?: number
}

/** A custom invariant whose rule is a TypeScript function. */
export interface Custom<T = Uint8Array> extends InvariantSpec<T> {
  /** State size in bytes. */
  readonly size: number
  /** The apply function. */
  readonly apply: CustomApply
  /** The rule's declared version (default 1). */
  readonly version: number
}

/**
 * An invariant whose rule is a TypeScript function called by the kernel on
 * every admission.
 *
 * - payload: whatever `apply` decodes (the kernel passes it as a fresh
 *   `Uint8Array`, with the fact's 32-byte id);
 * - state: the first `initial.length` bytes (1..64) of the 64-byte cell,
 *   passed to `apply` as a DataView over a scratch copy — a throw, even after
 *   writing, leaves the kernel's state untouched; the rest of the cell stays
 *   zero;
 * - refusals: a throw is `INVARIANT_VIOLATION` with the thrown message
 *   (`error.message`, or `String(value)`); a throw of a value that cannot be
 *   turned into a string (a Symbol) gives a generic message;
 * - class and coordination: **declared by the author, not proven**. Declare
 *   `'commutativeMonoid'` only if the rule really commutes.
 *
 * Cost: one call from Rust into JS per admission (see the benchmarks).
 *
 * @example
 * const even = invariants.custom({
 *   name: 'evenCounter', class: 'commutativeMonoid', initial: new Uint8Array(8),
 *   apply(payload, state) {
 *     const n = new DataView(payload.buffer, payload.byteOffset).getBigUint64(0, true)
 *     if (n % 2n === 1n) throw new Error('odd increment')
 *     state.setBigUint64(0, state.getBigUint64(0, true) + n, true)
 *   },
 *   read: (s) => new DataView(s.buffer, s.byteOffset).getBigUint64(0, true),
 * })
 */
export function custom<T = Uint8Array>(options: CustomOptions<T>): Custom<T> {
  if (typeof options !== 'object' || options === null) {
    throw invalidArgType('options', 'an object { name, class, initial, apply, read? }', options)
  }
  optionsOf(options, KEYS)
  const { name, initial, apply, read, version } = options
  const cls = options.class
  if (typeof name !== 'string') throw invalidArgType('name', 'a string', name)
  const nameBytes = Buffer.byteLength(name, 'utf8')
  if (nameBytes < 1 || nameBytes > 64) throw outOfRange('name', '1 to 64 bytes of UTF-8', name)
  if (typeof cls !== 'string') throw invalidArgType('class', 'an algebraic class name', cls)
  if (!CLASSES.includes(cls)) throw outOfRange('class', `one of ${CLASSES.map((c) => `'${c}'`).join(', ')}`, cls)
  bytes(initial, 'initial', 1, CELL_BYTES)
  if (typeof apply !== 'function') throw invalidArgType('apply', 'a function (payload, state, id) => void', apply)
  if (read !== undefined && typeof read !== 'function') throw invalidArgType('read', 'a function (state) => value', read)
  if (version !== undefined) {
    if (typeof version !== 'number') throw invalidArgType('version', 'an integer >= 1', version)
    if (!Number.isInteger(version) || version < 1 || version > 0xffff_ffff) throw outOfRange('version', 'an integer in [1, 2^32 - 1]', version)
  }
  const size = initial.length
  const initialState = Buffer.from(initial)
  const coordination: Coordination = coordinationOf(cls)
  return register({
    name,
    class: cls,
    coordination,
    size,
    apply,
    version: version ?? 1,
    native: { kind: 'custom', name, class: cls, initialState, rule: 0, ...(version !== undefined ? { version } : {}) },
    rules: [apply],
    read(state: Uint8Array): T {
      if (!(state instanceof Uint8Array)) throw invalidArgType('state', 'a Uint8Array', state)
      if (state.length < size) throw outOfRange('state', `at least ${size} bytes`, state)
      const own = state.slice(0, size)
      return read !== undefined ? read(own) : (own as T)
    },
  })
}
