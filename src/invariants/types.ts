import type { NativeInvariantConfig } from '../native.ts'

/** What the operations of an invariant are, algebraically. */
export type AlgebraicClass =
  | 'group'
  | 'semilattice'
  | 'commutativeMonoid'
  | 'bounded'
  | 'lastWriterWins'
  | 'idempotentSet'
  | 'growOnlyGraph'
  | 'nonCommutative'

/**
 * What replicated admission needs: `'none'` (admit locally, converge by
 * gossip), `'escrow'` (admit locally within a share of the bound) or
 * `'required'` (refused with `REQUIRES_COORDINATION`).
 */
export type Coordination = 'none' | 'escrow' | 'required'

/** The coordination a class needs. */
export function coordinationOf(cls: AlgebraicClass): Coordination {
  switch (cls) {
    case 'bounded':
      return 'escrow'
    case 'nonCommutative':
      return 'required'
    default:
      return 'none'
  }
}

/**
 * An invariant description: how to build its payloads, how to read its
 * state, and its algebra. Pass it to `new Kernel({ invariant })`. Only
 * specs made by the `invariants.*` factories are accepted (they are frozen;
 * a copied or hand-made spec is a TypeError): the kernel is built from the
 * configuration the factory validated, never from `native` as it stands.
 */
export interface InvariantSpec<TState = unknown> {
  /** The invariant's name, e.g. `'totalSupply'`. */
  readonly name: string
  readonly class: AlgebraicClass
  readonly coordination: Coordination
  /** Decodes the kernel's state bytes (`kernel.state`). */
  read(state: Uint8Array): TState
  /** @internal How the native kernel builds this invariant. */
  readonly native: NativeInvariantConfig
  /** @internal Several invariants on one fact stream (multi-invariant kernels). */
  readonly members?: readonly NativeInvariantConfig[]
  /** @internal Apply functions of custom invariants, referenced by `native.rule`. */
  readonly rules?: readonly CustomApply[]
}

/**
 * The rule of a custom invariant: mutate `state` (a DataView over the
 * declared number of bytes) or throw to refuse the fact. Must be pure.
 */
export type CustomApply = (payload: Uint8Array, state: DataView, id: Uint8Array) => void

/** The decoded state type of an invariant spec. */
export type StateOf<I> = I extends InvariantSpec<infer S> ? S : never
