import { isUint8Array } from './args.ts'
import { CtfsError, invalidArgType, outOfRange, rethrowNative } from './errors.ts'
import { U128_MAX, int, optionsOf, u64 } from './invariants/common.ts'
import { native, type NativeEscrow, type NativeEscrowOptions } from './native.ts'

/** Options of an {@link Escrow} (and of a replicated kernel's escrow). */
export interface EscrowOptions {
  /** First retry delay of a quota request (default 500 ms); doubles per retry. */
  backoffBaseMs?: number | bigint
  /** Longest retry delay (default 4,000 ms). */
  backoffMaxMs?: number | bigint
  /** Sends of one request before it is given up (default 6; at least 1). */
  maxAttempts?: number | bigint
  /** Share of its available quota a node keeps when granting (0..100, default 50). */
  reservePercent?: number | bigint
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

const ESCROW_OPTION_KEYS: readonly string[] = ['backoffBaseMs', 'backoffMaxMs', 'maxAttempts', 'reservePercent']
/** Longest backoff delay accepted: about 24 days (setTimeout's limit). */
const MAX_BACKOFF_MS = 2 ** 31 - 1

/** Validated {@link EscrowOptions} (`name` in errors). @internal */
export function escrowOptions(o: EscrowOptions | undefined, name: string): NativeEscrowOptions {
  const v = optionsOf(o, ESCROW_OPTION_KEYS, name)
  const out: NativeEscrowOptions = {}
  if (v.backoffBaseMs !== undefined) out.backoffBaseMs = int(v.backoffBaseMs, `${name}.backoffBaseMs`, 1, MAX_BACKOFF_MS)
  if (v.backoffMaxMs !== undefined) out.backoffMaxMs = int(v.backoffMaxMs, `${name}.backoffMaxMs`, 1, MAX_BACKOFF_MS)
  if (v.maxAttempts !== undefined) out.maxAttempts = int(v.maxAttempts, `${name}.maxAttempts`, 1, 2 ** 32 - 1)
  if (v.reservePercent !== undefined) out.reservePercent = int(v.reservePercent, `${name}.reservePercent`, 0, 100)
  return out
}

/** A time in ms (`Date.now()` scale): a finite number ≥ 0. @internal */
export function nowMsOf(v: unknown, name = 'nowMs'): number {
  if (typeof v !== 'number') throw invalidArgType(name, 'a number of milliseconds (e.g. Date.now())', v)
  if (!Number.isFinite(v) || v < 0) throw outOfRange(name, 'a finite number of milliseconds >= 0', v)
  return v
}

/** An encoded quota message argument. @internal */
export function messageArg(v: unknown, name: string): Uint8Array {
  if (!isUint8Array(v)) throw invalidArgType(name, 'an encoded quota message (a Uint8Array)', v)
  return v
}

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

  constructor(total: bigint | number, options?: EscrowOptions) {
    const t = amount(total, 'total')
    const o = escrowOptions(options, 'options')
    this.#n = rethrowNative(() => new native.NativeEscrow(t, o))
  }

  /** Splits the total evenly over `nodes` (remainder to the lowest ids). Once. */
  initialize(nodes: readonly (bigint | number)[]): void {
    if (!Array.isArray(nodes)) throw invalidArgType('nodes', 'an array of node ids', nodes)
    const ids = nodes.map((n, i) => nodeId(n, `nodes[${i}]`))
    rethrowNative(() => this.#n.initialize(ids))
  }

  /** Makes this manager one replica's view: only `node`'s share changes from now on. */
  setLocal(node: bigint | number): void {
    const id = nodeId(node, 'node')
    rethrowNative(() => this.#n.setLocal(id))
  }

  get total(): bigint {
    return rethrowNative(() => this.#n.total())
  }

  /** Every node's share. */
  get quotas(): Quota[] {
    return rethrowNative(() => this.#n.quotas())
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
    const [n, a] = [nodeId(node, 'node'), amount(value, 'amount')]
    rethrowNative(() => this.#n.tryConsume(n, a))
  }

  /** Gives back consumed quota (e.g. a refund). */
  release(node: bigint | number, value: bigint | number): void {
    const [n, a] = [nodeId(node, 'node'), amount(value, 'amount')]
    rethrowNative(() => this.#n.release(n, a))
  }

  /** Adds new headroom to `node` (and the total), e.g. money credited on that node. */
  credit(node: bigint | number, value: bigint | number): void {
    const [n, a] = [nodeId(node, 'node'), amount(value, 'amount')]
    rethrowNative(() => this.#n.credit(n, a))
  }

  /** Moves available quota between nodes (ledger mode). */
  transfer(from: bigint | number, to: bigint | number, value: bigint | number): void {
    const [f, t, a] = [nodeId(from, 'from'), nodeId(to, 'to'), amount(value, 'amount')]
    rethrowNative(() => this.#n.transfer(f, t, a))
  }

  /**
   * An encoded request for `amount` from `peer`, or null if one is pending
   * or the peer is backing off. `nowMs`: a finite time ≥ 0 in ms (default `Date.now()`).
   */
  requestQuota(peer: bigint | number, value: bigint | number, nowMs: number = Date.now()): Uint8Array | null {
    const [p, a, now] = [nodeId(peer, 'peer'), amount(value, 'amount'), nowMsOf(nowMs)]
    return message(rethrowNative(() => this.#n.requestQuota(p, a, now)))
  }

  /** Answers an encoded request from a peer with an encoded grant (amount 0 = denial). */
  onRequest(request: Uint8Array): Uint8Array {
    const r = messageArg(request, 'request')
    return new Uint8Array(rethrowNative(() => this.#n.onRequest(r)))
  }

  /** Applies an encoded grant from a peer. Duplicates are `'ignored'`. */
  onGrant(grant: Uint8Array, nowMs: number = Date.now()): GrantOutcome {
    const [g, now] = [messageArg(grant, 'grant'), nowMsOf(nowMs)]
    return rethrowNative(() => this.#n.onGrant(g, now)) as GrantOutcome
  }

  /** Requests due for a resend, and those given up. */
  poll(nowMs: number = Date.now()): QuotaPoll {
    const now = nowMsOf(nowMs)
    return toPoll(rethrowNative(() => this.#n.poll(now)))
  }

  /** Requests awaiting a grant. */
  get pending(): number {
    return rethrowNative(() => this.#n.pending())
  }
}
