import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import test from 'ava'

import { CtfsError, ERROR_CODES, Kernel, OTHER_ERROR_CODES, invariants, type CtfsErrorCode } from '../src/index.ts'
import { native } from '../src/native.ts'
import { rid } from './helpers.ts'

test('the TS list of codes matches the native numbering', (t) => {
  t.deepEqual(native.errorCodes(), [...ERROR_CODES])
})

test('every code a kernel produces today, with its message', (t) => {
  const supply = invariants.totalSupply({ initial: 10n, min: 0n, max: 100n })
  const k = new Kernel({ invariant: supply, maxFacts: 3, maxPayloadBytes: 32, maxDeps: 2 })
  const a = k.admit(supply.delta(1n))
  const cases: Array<[CtfsErrorCode, () => unknown, RegExp]> = [
    ['DUPLICATE_FACT', () => k.admit(supply.delta(1n), { id: a }), /already admitted/],
    ['CAUSALITY_VIOLATION', () => k.admit(supply.delta(1n), { deps: [rid()] }), /has not been admitted/],
    ['INVARIANT_VIOLATION', () => k.admit(supply.delta(1000n)), /exceed max 100/],
    ['MALFORMED_FACT', () => k.admit(new Uint8Array(3)), /16-byte i128 delta/],
    ['MALFORMED_FACT', () => k.admit(supply.delta(1n), { deps: [a, a, a] }), /limit is 2 \(maxDeps\)/],
    ['PAYLOAD_TOO_LARGE', () => k.admit(new Uint8Array(33)), /limit is 32/],
  ]
  for (const [code, fn, msg] of cases) {
    const e = t.throws(fn, { instanceOf: CtfsError }, code)
    t.is(e.code, code)
    t.is(e.name, 'CtfsError')
    t.regex(e.message, msg)
  }
  k.admit(supply.delta(1n))
  k.admit(supply.delta(1n))
  const e = t.throws(() => k.admit(supply.delta(1n)), { instanceOf: CtfsError })
  t.is(e.code, 'CAUSAL_HORIZON_EXCEEDED')
  t.regex(e.message, /at most 3 facts .* rather than forget/)
  t.is(k.stats.admitted, 3)
  t.is(k.stats.rejected.CAUSAL_HORIZON_EXCEEDED, 1)
  t.is(k.stats.rejected.MALFORMED_FACT, 1) // the maxDeps refusal happened in JS, before the native call
})

test('every error code is documented in the README error tables, BUSY included', (t) => {
  const readme = readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', 'README.md'), 'utf8')
  const errors = readme.slice(readme.indexOf('## Errors'), readme.indexOf('## Performance'))
  for (const code of [...ERROR_CODES.slice(1), ...OTHER_ERROR_CODES]) t.true(errors.includes(`\`${code}\``), code)
  t.true(ERROR_CODES.includes('BUSY'))
})

test("gGraph's out-of-range refusal names the real range, 0..15", (t) => {
  const k = new Kernel({ invariant: invariants.gGraph() })
  const e = t.throws(() => k.admit(new Uint8Array([3, 16])), { instanceOf: CtfsError })
  t.is(e?.code, 'MALFORMED_FACT')
  t.regex(e?.message ?? '', /gGraph vertices are 0\.\.15 \(16 vertices\), got edge 3 -> 16/)
})
