// The invariant specs the factories built, and the native configuration of
// each, kept where user code cannot reach it.
//
// A spec is a plain object, so `{ ...supply, native: forged }` or
// `supply.native.min = 5n` would otherwise reach the native kernel with an
// unvalidated configuration. Every factory registers its spec here: the
// kernel builds from the private copy registered with it, never from the
// spec's public (frozen, informational) `native` / `members` / `rules`.
import { invalidArgType } from '../errors.ts'
import type { NativeInvariantConfig } from '../native.ts'
import type { CustomApply, InvariantSpec } from './types.ts'

/** What a kernel needs to build an invariant. @internal */
export interface InvariantInternals {
  readonly native: NativeInvariantConfig
  readonly members?: readonly NativeInvariantConfig[]
  readonly rules?: readonly CustomApply[]
}

const REGISTRY = new WeakMap<object, InvariantInternals>()

function copyConfig(c: NativeInvariantConfig): NativeInvariantConfig {
  const out = { ...c }
  if (c.initialState !== undefined && c.initialState !== null) out.initialState = Buffer.from(c.initialState)
  return Object.freeze(out)
}

/**
 * Registers a spec built by a factory (from its already validated
 * configuration) and freezes it. Returns the spec.
 * @internal
 */
export function register<S extends InvariantSpec>(spec: S): S {
  const internals: InvariantInternals = {
    native: copyConfig(spec.native),
    ...(spec.members !== undefined ? { members: Object.freeze(spec.members.map(copyConfig)) } : {}),
    ...(spec.rules !== undefined ? { rules: Object.freeze([...spec.rules]) } : {}),
  }
  const pub = spec as { native: NativeInvariantConfig; members?: readonly NativeInvariantConfig[]; rules?: readonly CustomApply[] }
  pub.native = copyConfig(spec.native)
  if (spec.members !== undefined) pub.members = Object.freeze(spec.members.map(copyConfig))
  if (spec.rules !== undefined) pub.rules = Object.freeze([...spec.rules])
  REGISTRY.set(Object.freeze(spec), internals)
  return spec
}

/**
 * The native configuration of a spec made by one of the `invariants.*`
 * factories; a TypeError (`ERR_INVALID_ARG_TYPE`) for anything else (a
 * hand-made or copied spec).
 * @internal
 */
export function internalsOf(spec: unknown, name: string): InvariantInternals {
  const i = typeof spec === 'object' && spec !== null ? REGISTRY.get(spec) : undefined
  if (i === undefined) throw invalidArgType(name, 'an invariant made by one of the invariants.* factories (e.g. invariants.totalSupply(...))', spec)
  return i
}
