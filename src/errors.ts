import { types } from 'node:util'

import type { FactId } from './fact-id.ts'
import type { NativeError } from './native.ts'

/**
 * Stable error codes. The position in this list is the numeric status the
 * native layer returns; never reorder, only append. `BUSY`: the kernel was
 * called from inside one of its own admissions (a custom invariant's
 * `apply` calling back into its kernel); nothing changed.
 */
export const ERROR_CODES = [
  'OK',
  'DUPLICATE_FACT',
  'CAUSALITY_VIOLATION',
  'INVARIANT_VIOLATION',
  'MALFORMED_FACT',
  'PAYLOAD_TOO_LARGE',
  'CAUSAL_HORIZON_EXCEEDED',
  'REQUIRES_COORDINATION',
  'DUPLICATE_ELEMENT',
  'BUFFER_FULL',
  'INSUFFICIENT_QUOTA',
  'WAL_FAILED',
  'WAL_CLOSED',
  'BUSY',
] as const

/**
 * Codes of errors thrown outside admission (opening a data directory,
 * checkpoints, escrow messages). Stable like {@link ERROR_CODES}.
 */
export const OTHER_ERROR_CODES = [
  'WAL_CORRUPT',
  'CHECKPOINT_CORRUPT',
  'CHECKPOINT_MISMATCH',
  'WAL_REPLAY_REFUSED',
  'IO_ERROR',
  'INVALID_ARGUMENT',
  'BACKEND_UNAVAILABLE',
  'UNKNOWN_NODE',
  'NOT_LOCAL_NODE',
  'EXCEEDS_CONSUMED',
  'ESCROW_OVERFLOW',
  'MALFORMED_MESSAGE',
  'MALFORMED_FRAME',
  'FRAME_TOO_LARGE',
  'UNSUPPORTED_FRAME',
  'AUTH_FAILED',
  'CONFIG_MISMATCH',
  'REPLAYED_FRAME',
  'UNKNOWN_PEER',
  'PEER_UNREACHABLE',
  'NATS_UNAVAILABLE',
  'JETSTREAM_DISABLED',
  'STREAM_MISMATCH',
] as const

/** The `code` of a {@link CtfsError}. */
export type CtfsErrorCode = Exclude<(typeof ERROR_CODES)[number], 'OK'> | (typeof OTHER_ERROR_CODES)[number]

const KNOWN_CODES: ReadonlySet<string> = new Set<string>([...ERROR_CODES.slice(1), ...OTHER_ERROR_CODES])

/** `code`s of the N-API layer's own errors (napi-rs `Status` names). */
const NAPI_STATUSES: ReadonlySet<string> = new Set([
  'InvalidArg',
  'ObjectExpected',
  'StringExpected',
  'NameExpected',
  'FunctionExpected',
  'NumberExpected',
  'BooleanExpected',
  'ArrayExpected',
  'GenericFailure',
  'PendingException',
  'Cancelled',
  'EscapeCalledTwice',
  'HandleScopeMismatch',
  'CallbackScopeMismatch',
  'QueueFull',
  'Closing',
  'BigintExpected',
  'DateExpected',
  'ArrayBufferExpected',
  'DetachableArraybufferExpected',
  'WouldDeadlock',
  'NoExternalBuffersAllowed',
  'Unknown',
])

/**
 * Turns an error thrown by the native layer into the public error shape:
 * `"[CODE] message"` becomes a {@link CtfsError}; any other error of the
 * N-API layer (an argument the JS layer should have refused first) becomes
 * a TypeError with code `ERR_INVALID_ARG_VALUE`. Anything else (a CtfsError,
 * a Node-style TypeError / RangeError, a value a user callback threw) is
 * returned unchanged.
 * @internal
 */
export function fromNativeThrow(e: unknown): unknown {
  if (!(e instanceof Error) || e instanceof CtfsError) return e
  const m = /^\[([A-Z_]+)\] ([\s\S]*)$/.exec(e.message)
  if (m !== null && KNOWN_CODES.has(m[1] as string)) return new CtfsError(m[1] as CtfsErrorCode, m[2] as string)
  const code = (e as { code?: unknown }).code
  if (typeof code === 'string' && NAPI_STATUSES.has(code)) {
    const err = new TypeError(`invalid argument: ${e.message.trim() || code}`)
    return Object.assign(err, { code: 'ERR_INVALID_ARG_VALUE' as const })
  }
  return e
}

/** The error of a call into a kernel from inside one of its own admissions. @internal */
export function busyError(): CtfsError {
  return new CtfsError(
    'BUSY',
    "the kernel is busy: it was called from inside one of its own admissions (a custom invariant's apply); nothing was changed — apply must not call its kernel",
  )
}

/** Runs `f`, rethrowing native `"[CODE] ..."` errors as {@link CtfsError}. @internal */
export function rethrowNative<T>(f: () => T): T {
  try {
    return f()
  } catch (e) {
    throw fromNativeThrow(e)
  }
}

/** Extra facts about a refusal, where the kernel knows them. */
export interface CtfsErrorDetails {
  /** The id of the refused fact (derived ids included). */
  factId?: FactId
  /** For `CAUSALITY_VIOLATION`: the dependency that was not admitted. */
  missing?: FactId
  /** For `CAUSALITY_VIOLATION`: its position in `deps`. */
  depIndex?: number
}

/**
 * Every refusal by the kernel. `code` is stable and documented; `message`
 * says what happened and what to do. A refused fact changes nothing.
 *
 * @example
 * try { k.admit(supply.delta(-5000n)) }
 * catch (e) { if (e instanceof CtfsError && e.code === 'INVARIANT_VIOLATION') ... }
 */
export class CtfsError extends Error {
  readonly code: CtfsErrorCode
  readonly factId?: FactId
  readonly missing?: FactId
  readonly depIndex?: number

  constructor(code: CtfsErrorCode, message: string, details: CtfsErrorDetails = {}) {
    super(message)
    this.name = 'CtfsError'
    this.code = code
    if (details.factId !== undefined) this.factId = details.factId
    if (details.missing !== undefined) this.missing = details.missing
    if (details.depIndex !== undefined) this.depIndex = details.depIndex
  }
}

/** True for a {@link CtfsError}, optionally of one code. */
export function isCtfsError(e: unknown, code?: CtfsErrorCode): e is CtfsError {
  return e instanceof CtfsError && (code === undefined || e.code === code)
}

/** A TypeError with Node's `ERR_INVALID_ARG_TYPE` code. */
export function invalidArgType(name: string, expected: string, actual: unknown): TypeError {
  const err = new TypeError(`${name} must be ${expected}; got ${describe(actual)}`)
  return Object.assign(err, { code: 'ERR_INVALID_ARG_TYPE' as const })
}

/** A TypeError with Node's `ERR_INVALID_ARG_VALUE` code: the right type, a value that is not allowed. */
export function invalidArgValue(name: string, problem: string): TypeError {
  const err = new TypeError(`${name} ${problem}`)
  return Object.assign(err, { code: 'ERR_INVALID_ARG_VALUE' as const })
}

/** A RangeError with Node's `ERR_OUT_OF_RANGE` code. */
export function outOfRange(name: string, expected: string, actual: unknown): RangeError {
  const err = new RangeError(`${name} must be ${expected}; got ${describe(actual)}`)
  return Object.assign(err, { code: 'ERR_OUT_OF_RANGE' as const })
}

function describe(v: unknown): string {
  try {
    return describeValue(v)
  } catch {
    return 'a value that cannot be described'
  }
}

function describeValue(v: unknown): string {
  if (v === null) return 'null'
  if (types.isUint8Array(v)) return `a ${Buffer.isBuffer(v) ? 'Buffer' : 'Uint8Array'} of ${v.length} bytes`
  if (types.isProxy(v)) return 'a Proxy'
  if (Array.isArray(v)) return `an array of ${v.length}`
  switch (typeof v) {
    case 'string':
      return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`
    case 'number':
    case 'bigint':
    case 'boolean':
      return `${typeof v} ${String(v)}${typeof v === 'bigint' ? 'n' : ''}`
    case 'undefined':
      return 'undefined'
    case 'function':
      return 'a function'
    default:
      return `an object (${Object.prototype.toString.call(v)})`
  }
}

/** The {@link CtfsError} of a native refusal's details. @internal */
export function fromNativeError(e: NativeError): CtfsError {
  return new CtfsError(e.code as CtfsErrorCode, e.message, {
    ...(e.factId ? { factId: new Uint8Array(e.factId) } : {}),
    ...(e.missing ? { missing: new Uint8Array(e.missing) } : {}),
    ...(e.depIndex !== undefined ? { depIndex: e.depIndex } : {}),
  })
}
