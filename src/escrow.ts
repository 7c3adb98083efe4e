import { CtfsError, invalidArgType, rethrowNative } from './errors.ts'
import { U128_MAX, u64 } from './invariants/common.ts'
import { native, type NativeEscrow } from './native.ts'

/** Options of an {@link Escrow} (and of a replicated kernel's escrow). */
export interface EscrowOptions {
  /** First retry delay of a quota request (default 500 ms); doubles per retry. */
  backoffBaseMs?: number
  /** Longest retry delay (default 4,000 ms). */
  backoffMaxMs?: number
  /** Sends of one request before it is given up (default 6). */
  maxAttempts?: number
  /** Share of its available quota a node keeps when granting (default 50). */
  reservePercent?: number
}

/** One node's share of the bound. */
export interface Quota {
  node: bigint
  /** Allotment, consumed part included. */
  quota: bigint
  consumed: bigint
  available: bigint
}

/** Requests due again (same id, encoded) and requests given up. */
export interface QuotaPoll {
  resend: Uint8Array[]
  gaveUp: Uint8Array[]
}

/** What applying a grant did. */
export type GrantOutcome = 'applied' | 'appliedLate' | 'denied' | 'ignored'

/** A node id: a bigint or safe integer in [0, 2^64). @internal */
export function nodeId(v: bigint | number, name: string): bigint {
  return u64(v, name)
}

/** An amount: a bigint or safe integer in [0, 2^128). @internal */
export function amount(v: bigint | number, name: string): bigint {
  return u64(v, name, 0n, U128_MAX)
}

/** An encoded quota message from the native layer, or null. @internal */
export function message(m: Uint8Array | null | undefined): Uint8Array | null {
  return m === null || m === undefined ? null : new Uint8Array(m)
}

/** A native poll result as {@link QuotaPoll}. @internal */
export function toPoll(p: { resend: Uint8Array[]; gaveUp: Uint8Array[] }): QuotaPoll {
  return { resend: p.resend.map((b) => new Uint8Array(b)), gaveUp: p.gaveUp.map((b) => new Uint8Array(b)) }
}

/**
 * Escrow of a global bound: the bound is split into per-node quotas, each
 * node consumes its own quota without coordination, and quota moves between
 * nodes by request and grant (retried with exponential backoff 500 ms → 4 s;
 * a duplicated grant is never credited twice). Messages are 41-byte
 * encodings for any transport to carry.
 *
 * Two uses: a **ledger** of every node (`initialize(nodes)`, `transfer`), or
 * one **replica**'s view (`initialize(nodes)` then `setLocal(me)`), which
 * only changes its own share and gets more by `requestQuota` / `onGrant`.
 *
 * @example
 * const e = new Escrow(100n)
 * e.initialize([1n, 2n])
 * e.tryConsume(1n, 30n)
 * e.quota(1n).available // => 20n
 */
export class Escrow {
  readonly #n: NativeEscrow

  constructor(total: bigint | number, options: EscrowOptions = {}) {
    if (typeof options !== 'object' || options === null) throw invalidArgType('options', 'an object', options)
    this.#n = rethrowNative(() => new native.NativeEscrow(amount(total, 'total'), options))
  }

  /** Splits the total evenly over `nodes` (remainder to the lowest ids). Once. */
  initialize(nodes: readonly (bigint | number)[]): void {
    if (!Array.isArray(nodes)) throw invalidArgType('nodes', 'an array of node ids', nodes)
    rethrowNative(() => this.#n.initialize(nodes.map((n, i) => nodeId(n, `nodes[${i}]`))))
  }

  /** Makes this manager one replica's view: only `node`'s share changes from now on. */
  setLocal(node: bigint | number): void {
    rethrowNative(() => this.#n.setLocal(nodeId(node, 'node')))
  }

  get total(): bigint {
    return this.#n.total()
  }

  /** Every node's share. */
  get quotas(): Quota[] {
    return this.#n.quotas()
  }

  /** One node's share. */
  quota(node: bigint | number): Quota {
    const id = nodeId(node, 'node')
    const q = this.quotas.find((x) => x.node === id)
    if (q === undefined) throw new CtfsError('UNKNOWN_NODE', `node ${id} is not part of this escrow`)
    return q
  }

  /** Consumes `amount` of `node`'s quota, or throws `INSUFFICIENT_QUOTA` and changes nothing. */
  tryConsume(node: bigint | number, value: bigint | number): void {
    rethrowNative(() => this.#n.tryConsume(nodeId(node, 'node'), amount(value, 'amount')))
  }

  /** Gives back consumed quota (e.g. a refund). */
  release(node: bigint | number, value: bigint | number): void {
    rethrowNative(() => this.#n.release(nodeId(node, 'node'), amount(value, 'amount')))
  }

  /** Adds new headroom to `node` (and the total), e.g. money credited on that node. */
  credit(node: bigint | number, value: bigint | number): void {
    rethrowNative(() => this.#n.credit(nodeId(node, 'node'), amount(value, 'amount')))
  }

  /** Moves available quota between nodes (ledger mode). */
  transfer(from: bigint | number, to: bigint | number, value: bigint | number): void {
    rethrowNative(() => this.#n.transfer(nodeId(from, 'from'), nodeId(to, 'to'), amount(value, 'amount')))
  }

  /** An encoded request for `amount` from `peer`, or null if one is pending or the peer is backing off. */
  requestQuota(peer: bigint | number, value: bigint | number, nowMs: number = Date.now()): Uint8Array | null {
    return message(rethrowNative(() => this.#n.requestQuota(nodeId(peer, 'peer'), amount(value, 'amount'), nowMs)))
  }

  /** Answers an encoded request from a peer with an encoded grant (amount 0 = denial). */
  onRequest(request: Uint8Array): Uint8Array {
    if (!(request instanceof Uint8Array)) throw invalidArgType('request', 'a Uint8Array', request)
    return new Uint8Array(rethrowNative(() => this.#n.onRequest(request)))
  }

  /** Applies an encoded grant from a peer. Duplicates are `'ignored'`. */
  onGrant(grant: Uint8Array, nowMs: number = Date.now()): GrantOutcome {
    if (!(grant instanceof Uint8Array)) throw invalidArgType('grant', 'a Uint8Array', grant)
    return rethrowNative(() => this.#n.onGrant(grant, nowMs)) as GrantOutcome
  }

  /** Requests due for a resend, and those given up. */
  poll(nowMs: number = Date.now()): QuotaPoll {
    return toPoll(this.#n.poll(nowMs))
  }

  /** Requests awaiting a grant. */
  get pending(): number {
    return this.#n.pending()
  }
}
