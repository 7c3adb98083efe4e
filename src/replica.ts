import { isUint8Array } from './args.ts'
import type { AdmitOptions } from './batch.ts'
import { CtfsError, fromNativeError, invalidArgType, outOfRange, rethrowNative } from './errors.ts'
import {
  amount,
  escrowOptions,
  message,
  messageArg,
  nodeId,
  nowMsOf,
  toPoll,
  type EscrowOptions,
  type GrantOutcome,
  type Quota,
  type QuotaPoll,
} from './escrow.ts'
import { checkFactId, packFactIds, type FactId } from './fact-id.ts'
import { int, optionsOf } from './invariants/common.ts'
import type { NativeEscrowOptions, NativeKernel } from './native.ts'
import { ReplicaSync, type SyncOptions } from './sync.ts'

/** Replicated admission: this kernel is one replica among `nodes`. */
export interface ReplicaOptions {
  /** Every replica's node id, the same list on every replica. */
  nodes: readonly (bigint | number)[]
  /** This replica's id. */
  local: bigint | number
  /** Escrow retry and grant policy. */
  escrow?: EscrowOptions
}

/** Which bound of a bounded invariant: towards `min` or towards `max`/the bound. */
export type BoundSide = 'down' | 'up'

const REPLICA_OPTION_KEYS: readonly string[] = ['nodes', 'local', 'escrow']
const REMOTE_OPTION_KEYS: readonly string[] = ['deps']
const SIDES: readonly BoundSide[] = ['down', 'up']

/** @internal */
export function nativeReplica(r: ReplicaOptions | undefined): { nodes: bigint[]; local: bigint; escrow?: NativeEscrowOptions } | undefined {
  if (r === undefined) return undefined
  if (typeof r !== 'object' || r === null) throw invalidArgType('options.replica', 'an object { nodes, local }', r)
  optionsOf(r, REPLICA_OPTION_KEYS, 'options.replica')
  if (!Array.isArray(r.nodes)) throw invalidArgType('options.replica.nodes', 'an array of node ids', r.nodes)
  return {
    nodes: r.nodes.map((n, i) => nodeId(n, `options.replica.nodes[${i}]`)),
    local: nodeId(r.local, 'options.replica.local'),
    ...(r.escrow !== undefined ? { escrow: escrowOptions(r.escrow, 'options.replica.escrow') } : {}),
  }
}

function sideOf(side: unknown): BoundSide {
  if (typeof side !== 'string') throw invalidArgType('side', "'down' or 'up'", side)
  if (!SIDES.includes(side as BoundSide)) throw outOfRange('side', "'down' or 'up'", side)
  return side as BoundSide
}

const EMPTY = new Uint8Array(0)

/**
 * The replica side of a replicated kernel (`new Kernel({ ..., replica })`):
 *
 * - `kernel.admit(...)` on a replicated kernel is *local* admission: facts for
 *   an invariant whose class needs coordination are refused with
 *   `REQUIRES_COORDINATION`; facts for a bounded invariant consume this
 *   replica's escrow quota first (`INSUFFICIENT_QUOTA` when it does not
 *   cover them — request quota from a peer); coordination-free facts pass.
 * - {@link admitRemote} admits a fact created by another replica (its
 *   creator consumed its own quota).
 * - The quota messages (`requestQuota` / `onRequest` / `onGrant` / `poll`)
 *   are encoded bytes for any transport to carry.
 */
export class Replica {
  readonly #nk: NativeKernel
  #sync: ReplicaSync | undefined
  readonly #members: number
  /** This replica's node id. */
  readonly local: bigint
  /** Every node of the cluster (`replica.nodes`), this one included. */
  readonly nodes: readonly bigint[]

  /** @internal */
  constructor(nk: NativeKernel, local: bigint, nodes: readonly bigint[], members: number) {
    this.#nk = nk
    this.local = local
    this.nodes = Object.freeze([...nodes])
    this.#members = members
  }

  /**
   * Attaches the replication protocol to this replica (once, before the
   * first admission): facts admitted from now on are pushed to peers, and
   * frames from peers are handled by the returned {@link ReplicaSync}.
   */
  sync(options: SyncOptions): ReplicaSync {
    if (this.#sync !== undefined) throw new CtfsError('INVALID_ARGUMENT', 'this replica is already attached to a cluster')
    this.#sync = new ReplicaSync(this.#nk, this.local, options)
    return this.#sync
  }

  /** The protocol attached with {@link sync}, if any. */
  get attached(): ReplicaSync | undefined {
    return this.#sync
  }

  /**
   * Admits a fact received from a peer, *merging* it: no escrow (its
   * creator consumed its own quota), the same dedup and causality checks as
   * `admit`, and the invariant's merge rule (an element already in a set is
   * a no-op, an escrowed bound is the origin's business).
   */
  admitRemote(id: FactId, payload: Uint8Array, options?: Omit<AdmitOptions, 'id'>): void {
    checkFactId(id, 'id')
    if (!isUint8Array(payload)) throw invalidArgType('payload', 'a Uint8Array', payload)
    const o = optionsOf(options, REMOTE_OPTION_KEYS)
    const { packed } = packFactIds(o.deps ?? [], 'options.deps', EMPTY)
    if (rethrowNative(() => this.#nk.admitRemote(id, payload, packed)) !== 0) {
      const e = rethrowNative(() => this.#nk.lastError())
      throw e ? fromNativeError(e) : new CtfsError('MALFORMED_FACT', 'refused without details')
    }
  }

  /**
   * Every replica's share of member `member`'s `side` bound, or null when
   * that side is not escrowed. `member`: an index of the kernel's
   * invariant (0 unless it is a multi).
   */
  quotas(side: BoundSide, member: number = 0): Quota[] | null {
    const [s, m] = [sideOf(side), this.#member(member)]
    return rethrowNative(() => this.#nk.escrowQuotas(m, s)) ?? null
  }

  /** An encoded quota request to `peer`, or null (one pending, or backing off). */
  requestQuota(peer: bigint | number, value: bigint | number, side: BoundSide, member: number = 0, nowMs: number = Date.now()): Uint8Array | null {
    const [p, a, s, m, now] = [nodeId(peer, 'peer'), amount(value, 'amount'), sideOf(side), this.#member(member), nowMsOf(nowMs)]
    return message(rethrowNative(() => this.#nk.escrowRequest(m, s, p, a, now)))
  }

  /** Answers a peer's encoded request with an encoded grant. */
  onRequest(request: Uint8Array, side: BoundSide, member: number = 0): Uint8Array {
    const [r, s, m] = [messageArg(request, 'request'), sideOf(side), this.#member(member)]
    return new Uint8Array(rethrowNative(() => this.#nk.escrowOnRequest(m, s, r)))
  }

  /** Applies a peer's encoded grant. */
  onGrant(grant: Uint8Array, side: BoundSide, member: number = 0, nowMs: number = Date.now()): GrantOutcome {
    const [g, s, m, now] = [messageArg(grant, 'grant'), sideOf(side), this.#member(member), nowMsOf(nowMs)]
    return rethrowNative(() => this.#nk.escrowOnGrant(m, s, g, now)) as GrantOutcome
  }

  /** Requests due for a resend (backoff 500 ms → 4 s) and given up. */
  poll(side: BoundSide, member: number = 0, nowMs: number = Date.now()): QuotaPoll {
    const [s, m, now] = [sideOf(side), this.#member(member), nowMsOf(nowMs)]
    return toPoll(rethrowNative(() => this.#nk.escrowPoll(m, s, now)))
  }

  #member(member: unknown): number {
    return int(member, 'member', 0, this.#members - 1)
  }
}
