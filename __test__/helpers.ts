import { randomBytes } from 'node:crypto'

import { Kernel, invariants, type CausalityMode } from '../src/index.ts'

export const MODES: CausalityMode[] = ['bloom', 'exact', 'escalating']

/** A fresh random 32-byte id. */
export const rid = (): Uint8Array => new Uint8Array(randomBytes(32))

export function supplyKernel(causality: CausalityMode = 'exact', opts: { initial?: bigint; min?: bigint; max?: bigint } = {}) {
  const supply = invariants.totalSupply({ initial: 1000n, min: 0n, max: 1_000_000n, ...opts })
  const k = new Kernel({ invariant: supply, causality })
  return { supply, k }
}

/** Everything observable about a domain, for "nothing changed" checks. */
export function snapshot(k: { state: Uint8Array; frontier: { count: number; digest: Uint8Array; clock: Uint8Array }; stats: { tracked: number } }) {
  const f = k.frontier
  return {
    state: Buffer.from(k.state).toString('hex'),
    count: f.count,
    digest: Buffer.from(f.digest).toString('hex'),
    clock: Buffer.from(f.clock).toString('hex'),
    tracked: k.stats.tracked,
  }
}
