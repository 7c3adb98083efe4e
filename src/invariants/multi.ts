import { invalidArgType, outOfRange } from '../errors.ts'
import type { NativeInvariantConfig } from '../native.ts'
import { isUint8Array, unknownKey } from '../args.ts'
import { CELL_BYTES, checkState } from './common.ts'
import { internalsOf, register } from './registry.ts'
import { coordinationOf, type AlgebraicClass, type CustomApply, type InvariantSpec, type StateOf } from './types.ts'

/** Most members of one multi invariant. */
export const MULTI_MAX_MEMBERS = 64
/** Bytes of a part header in a multi payload: member index u8 + length u32. */
export const MULTI_PART_HEADER_BYTES = 5

/** The decoded state of a multi invariant: each member's state by name. */
export type MultiState<M extends Record<string, InvariantSpec>> = { [K in keyof M]: StateOf<M[K]> }

/** Several invariants guarding one fact stream, admitted atomically. */
export interface Multi<M extends Record<string, InvariantSpec>> extends InvariantSpec<MultiState<M>> {
  readonly name: 'multi'
  /** Member names, in member (index) order. */
  readonly names: ReadonlyArray<keyof M & string>
  /** The member specs by name (use them to build each part's payload). */
  readonly specs: Readonly<M>
  /** The member index of `name` (declaration order). */
  memberIndex(name: keyof M & string): number
  /**
   * The payload of one fact addressed to the named members, each with its
   * own payload, e.g. `fact({ from: supply.delta(-5n), to: supply.delta(5n) })`.
   * Every addressed member must accept its part, or nothing is admitted.
   */
  fact(parts: { [K in keyof M]?: Uint8Array }): Uint8Array
}

const RANK: Record<string, number> = { none: 0, escrow: 1, required: 2 }

/**
 * Several invariants guarding one fact stream. A fact addresses one or more
 * members and is admitted atomically: every addressed member checks its part,
 * and only if all pass are their effects committed. One refusal leaves every
 * member untouched.
 *
 * - names → member indices in declaration order (names must not look like
 *   array indices, which JavaScript would reorder);
 * - payload ({@link Multi.fact}): `count` u8 (1..members), then per addressed
 *   member in increasing index order: `index` u8, `length` u32 LE, the
 *   member's payload. Anything else is `MALFORMED_FACT`. (A multi of a single
 *   member takes that member's payload unframed; `fact` does that for you.);
 * - state: every member's 64-byte cell, concatenated in member order;
 *   `read` gives `{ name: member.read(cell) }`;
 * - class: the member needing the most coordination (`required` > `escrow` >
 *   `none`; the first such member's class), so one bounded member makes the
 *   whole kernel need escrow.
 *
 * @example
 * const pay = invariants.multi({ invoices: invariants.uniqueSet(), balance: invariants.totalSupply({ initial: 100n, min: 0n }) })
 * const k = new Kernel({ invariant: pay })
 * k.admit(pay.fact({ invoices: pay.specs.invoices.add(invoiceKey), balance: pay.specs.balance.delta(-30n) }))
 */
export function multi<M extends Record<string, InvariantSpec>>(members: M): Multi<M> {
  if (typeof members !== 'object' || members === null || Array.isArray(members)) {
    throw invalidArgType('members', 'an object { name: invariant, ... }', members)
  }
  const names = Object.keys(members) as Array<keyof M & string>
  if (names.length < 1 || names.length > MULTI_MAX_MEMBERS) {
    throw outOfRange('members', `1 to ${MULTI_MAX_MEMBERS} invariants`, names.length)
  }
  const index = new Map<string, number>()
  const configs: NativeInvariantConfig[] = []
  const rules: CustomApply[] = []
  let cls: AlgebraicClass | undefined
  for (const name of names) {
    if (/^(0|[1-9]\d*)$/.test(name)) throw outOfRange(`members.${name}`, 'a name that is not an array index', name)
    const spec = members[name] as InvariantSpec
    const own = internalsOf(spec, `members.${name}`)
    if (own.members !== undefined) throw invalidArgType(`members.${name}`, 'a single invariant, not a multi', spec)
    const offset = rules.length
    if (own.rules !== undefined) rules.push(...own.rules)
    configs.push(own.native.rule !== undefined ? { ...own.native, rule: own.native.rule + offset } : own.native)
    if (cls === undefined || (RANK[coordinationOf(spec.class)] as number) > (RANK[coordinationOf(cls)] as number)) cls = spec.class
    index.set(name, index.size)
  }
  const memberClass = cls as AlgebraicClass
  const n = names.length
  const specs = Object.freeze({ ...members })

  const memberIndex = (name: keyof M & string): number => {
    const i = typeof name === 'string' ? index.get(name) : undefined
    if (i === undefined) throw outOfRange('name', `one of ${names.map((x) => `'${x}'`).join(', ')}`, name)
    return i
  }

  return register({
    name: 'multi',
    class: memberClass,
    coordination: coordinationOf(memberClass),
    names,
    specs,
    native: configs[0] as NativeInvariantConfig,
    members: configs,
    ...(rules.length > 0 ? { rules } : {}),
    memberIndex,
    fact(parts: { [K in keyof M]?: Uint8Array }): Uint8Array {
      if (typeof parts !== 'object' || parts === null) throw invalidArgType('parts', 'an object { name: payload, ... }', parts)
      const addressed: Array<[number, Uint8Array]> = []
      for (const key of Object.keys(parts)) {
        const p = parts[key as keyof M]
        const i = index.get(key)
        if (i === undefined) throw unknownKey(key, names, 'parts')
        if (p === undefined) continue
        if (!isUint8Array(p)) throw invalidArgType(`parts.${key}`, 'a Uint8Array payload', p)
        addressed.push([i, p])
      }
      if (addressed.length === 0) throw outOfRange('parts', 'a payload for at least one member', parts)
      if (n === 1) return (addressed[0] as [number, Uint8Array])[1].slice()
      addressed.sort((a, b) => a[0] - b[0])
      let len = 1
      for (const [, p] of addressed) len += MULTI_PART_HEADER_BYTES + p.length
      const out = new Uint8Array(len)
      const view = new DataView(out.buffer)
      out[0] = addressed.length
      let at = 1
      for (const [i, p] of addressed) {
        out[at] = i
        view.setUint32(at + 1, p.length, true)
        out.set(p, at + MULTI_PART_HEADER_BYTES)
        at += MULTI_PART_HEADER_BYTES + p.length
      }
      return out
    },
    read(state: Uint8Array): MultiState<M> {
      checkState(state, n * CELL_BYTES)
      const out = {} as Record<string, unknown>
      names.forEach((name, i) => {
        out[name] = (members[name] as InvariantSpec).read(state.subarray(i * CELL_BYTES, (i + 1) * CELL_BYTES))
      })
      return out as MultiState<M>
    },
  })
}

/**
 * The member index of the `kind` member that `member` names (a member name,
 * an index, or undefined for the first member of that kind).
 * @internal used by `Domain.has` / `Domain.hasEdge`
 */
export function resolveMember(spec: InvariantSpec, member: string | number | undefined, kind: string): number {
  const configs = spec.members ?? [spec.native]
  let i: number
  if (member === undefined) {
    i = configs.findIndex((c) => c.kind === kind)
    if (i < 0) throw invalidArgType('invariant', `a ${kind} (or a multi with a ${kind} member)`, spec.name)
    return i
  }
  if (typeof member === 'string') {
    const m = spec as Partial<Multi<Record<string, InvariantSpec>>>
    if (typeof m.memberIndex !== 'function') throw invalidArgType('member', 'a member index (this invariant is not a multi)', member)
    i = m.memberIndex(member)
  } else if (typeof member === 'number') {
    if (!Number.isInteger(member) || member < 0 || member >= configs.length) {
      throw outOfRange('member', `an integer in [0, ${configs.length - 1}]`, member)
    }
    i = member
  } else throw invalidArgType('member', 'a member name or index', member)
  if ((configs[i] as NativeInvariantConfig).kind !== kind) {
    throw invalidArgType('member', `a ${kind} member`, `${(configs[i] as NativeInvariantConfig).kind} member ${i}`)
  }
  return i
}
