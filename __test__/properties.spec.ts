// Property tests (fast-check) of the algebra and causality claims.
import test from 'ava'
import fc from 'fast-check'

import { CtfsError, Kernel, invariants, type CausalityMode } from '../src/index.ts'
import { snapshot } from './helpers.ts'

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const idArb = fc.uint8Array({ minLength: 32, maxLength: 32 })

test('unbounded supply: every permutation of a fact set gives byte-identical state and frontier', (t) => {
  const supply = invariants.totalSupply({ initial: 0n })
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.tuple(idArb, fc.bigInt({ min: -(1n << 100n), max: 1n << 100n })), {
        minLength: 1,
        maxLength: 40,
        selector: ([id]) => hex(id),
      }),
      fc.func(fc.integer()),
      (facts, order) => {
        const shuffled = [...facts].sort((a, b) => order(hex(a[0])) - order(hex(b[0])))
        const run = (fs: typeof facts) => {
          const k = new Kernel({ invariant: supply })
          for (const [id, d] of fs) k.admit(supply.delta(d), { id })
          return snapshot(k)
        }
        const a = run(facts)
        const b = run(shuffled)
        return a.state === b.state && a.digest === b.digest && a.clock === b.clock && a.count === b.count
      },
    ),
    { numRuns: 200 },
  )
  t.pass()
})

for (const mode of ['exact', 'escalating'] as CausalityMode[]) {
  test(`${mode}: admits exactly the facts whose dependencies were admitted (model check)`, (t) => {
    const supply = invariants.totalSupply({ initial: 0n })
    // Each step: a fresh id, depending on earlier step ids (which may have been
    // refused) or on ids that were never offered at all.
    const step = fc.record({
      deps: fc.array(fc.oneof(fc.nat(500).map((n) => ({ earlier: n })), idArb.map((g) => ({ ghost: g }))), { maxLength: 3 }),
      retry: fc.boolean(),
    })
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 300 }), fc.array(idArb, { minLength: 300, maxLength: 300 }), (steps, ids) => {
        const k = new Kernel({ invariant: supply, causality: mode, escalationThreshold: 0.2 })
        const admitted = new Set<string>()
        const offered: Uint8Array[] = []
        for (const s of steps) {
          const fresh = ids[offered.length % ids.length]!
          // Retry an already-offered id now and then: must be refused iff admitted before.
          const id = s.retry && offered.length > 0 ? offered[offered.length - 1]! : fresh
          const deps = s.deps.map((d) => ('ghost' in d ? d.ghost : offered.length ? offered[d.earlier % offered.length]! : d.earlier === 0 ? fresh : ids[(d.earlier + 7) % ids.length]!))
          const expectDup = admitted.has(hex(id))
          const expectOk = !expectDup && deps.every((d) => admitted.has(hex(d)))
          let ok = true
          try {
            k.admit(supply.delta(1n), { id, deps })
          } catch (e) {
            if (!(e instanceof CtfsError)) throw e
            ok = false
            if (expectDup && e.code !== 'DUPLICATE_FACT') return false
            if (!expectDup && !expectOk && e.code !== 'CAUSALITY_VIOLATION') return false
          }
          if (ok !== expectOk) return false
          if (ok) admitted.add(hex(id))
          offered.push(id)
        }
        return k.stats.admitted === admitted.size && k.read().balance === BigInt(admitted.size)
      }),
      { numRuns: 60 },
    )
    t.pass()
  })
}

test('bounded supply is order-dependent — the counterexample that makes it need escrow', (t) => {
  const supply = invariants.totalSupply({ initial: 0n, min: 0n, max: 100n })
  const run = (deltas: bigint[]) => {
    const k = new Kernel({ invariant: supply })
    for (const d of deltas) {
      try {
        k.admit(supply.delta(d))
      } catch {
        // refused locally
      }
    }
    return k.read().balance
  }
  t.not(run([10n, -10n]), run([-10n, 10n]))
  t.is(supply.class, 'bounded')
  t.is(supply.coordination, 'escrow')
})
