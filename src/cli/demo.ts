// `ctfs demo`: an honest tour of the three causality modes.
import { randomBytes } from 'node:crypto'

import { FactBatch } from '../batch.ts'
import { CtfsError } from '../errors.ts'
import { factIdToHex, type FactId } from '../fact-id.ts'
import { totalSupply } from '../invariants/total-supply.ts'
import { Kernel, type CausalityMode } from '../kernel.ts'

export interface DemoOptions {
  facts: number
  log?: (line: string) => void
}

const short = (id: FactId) => factIdToHex(id).slice(0, 12) + '…'

export async function runDemo({ facts, log = console.log }: DemoOptions): Promise<void> {
  const supply = totalSupply({ initial: 1_000n, min: 0n })
  log('ctfs demo — one stream of facts, three causality modes')
  log(`invariant: totalSupply (initial 1000, min 0) — class '${supply.class}', replication needs '${supply.coordination}'`)
  log(`stream: ${facts.toLocaleString()} facts with random 32-byte ids, each depending on 1 earlier fact\n`)

  // One stream for all kernels: ids, and a dependency picked from the whole history.
  const ids = randomBytes(facts * 32)
  const idAt = (i: number) => ids.subarray(i * 32, i * 32 + 32)
  const deposit = supply.delta(1n)
  let seed = 0x9e3779b9
  const rand = (n: number) => {
    seed ^= seed << 13
    seed ^= seed >>> 17
    seed ^= seed << 5
    return (seed >>> 0) % n
  }
  const depOf = Array.from({ length: facts }, (_, i) => (i === 0 ? -1 : rand(i)))

  const modes: CausalityMode[] = ['bloom', 'exact', 'escalating']
  for (const mode of modes) {
    const k = new Kernel({ invariant: supply, causality: mode })
    log(`── ${mode} ──`)
    const chunk = 10_000
    const t0 = process.hrtime.bigint()
    let admitted = 0
    let refused = 0
    let escalationShown = false
    // Bloom mode cannot dedup caller-chosen ids once its clock fills, so it
    // is fed kernel-derived ids (fresh by construction); the exact modes take
    // the caller's ids, a batch of 10,000 per native call.
    const derived: FactId[] = []
    const firstId = () => (mode === 'bloom' ? derived[0]! : idAt(0))
    for (let start = 0; start < facts; start += chunk) {
      const end = Math.min(facts, start + chunk)
      if (mode === 'bloom') {
        for (let i = start; i < end; i++) {
          const d = depOf[i]!
          derived.push(k.admit(deposit, d < 0 ? undefined : { deps: [derived[d]!] }))
          admitted++
        }
      } else {
        const b = new FactBatch(chunk * 90)
        for (let i = start; i < end; i++) {
          const d = depOf[i]!
          b.add(deposit, d < 0 ? { id: idAt(i) } : { id: idAt(i), deps: [idAt(d)] })
        }
        const r = k.admitBatch(b)
        admitted += r.admitted
        refused += r.refused
      }
      const s = k.stats
      if (mode === 'escalating' && s.escalated && !escalationShown) {
        log(`  escalated to the exact index at fact #${s.escalatedAt} (Bloom saturation passed 40%)`)
        escalationShown = true
      }
      if (start === 0 || end === facts || (start / chunk) % 10 === 0) {
        log(
          `  ${end.toLocaleString().padStart(9)} facts  bloom saturation ${(s.bloom.saturation * 100).toFixed(1).padStart(5)}%` +
            `  tracked exactly ${s.tracked.toLocaleString()}`,
        )
      }
      await new Promise((r) => setImmediate(r))
    }
    const secs = Number(process.hrtime.bigint() - t0) / 1e9
    const s = k.stats
    const how = mode === 'bloom' ? 'one admit() per fact' : `batches of ${chunk.toLocaleString()}`
    log(`  ${admitted.toLocaleString()} admitted, ${refused} refused, ${Math.round(facts / secs).toLocaleString()} facts/s (${how})`)
    if (s.tracked > 0) log(`  exact index: ${s.bytesPerFact.toFixed(1)} bytes per fact`)

    // 1. A fact that would break the invariant.
    try {
      k.admit(supply.delta(-10_000_000n))
      log('  !! an overdraft was admitted')
    } catch (e) {
      if (!(e instanceof CtfsError)) throw e
      log(`  overdraft refused: ${e.code} — ${e.message.replace(/^fact \S+ refused: /, '')}`)
    }
    // 2. A fact whose dependency was never admitted.
    const ghost = randomBytes(32)
    try {
      const id = k.admit(deposit, { deps: [ghost] })
      log(`  !! fact ${short(id)} ADMITTED although its dependency ${short(ghost)} never was — a false admission`)
      log(`     (the ${mode} clock is ${(s.bloom.saturation * 100).toFixed(1)}% full, false-positive rate ${(s.bloom.falsePositiveRate * 100).toFixed(1)}%)`)
    } catch (e) {
      if (!(e instanceof CtfsError)) throw e
      log(`  missing dependency refused: ${e.code} (dependency ${short(ghost)})`)
    }
    // 3. The first fact of the stream is still a valid dependency.
    try {
      k.admit(deposit, { deps: [firstId()] })
      log('  a dependency on the very first fact is still accepted')
    } catch (e) {
      if (!(e instanceof CtfsError)) throw e
      log(`  dependency on the first fact: ${e.code}`)
    }
    // 4. A retry of an earlier fact is refused, never applied twice.
    try {
      k.admit(deposit, { id: mode === 'bloom' ? randomBytes(32) : idAt(1) })
      log('  !! a retried fact was applied twice')
    } catch (e) {
      if (!(e instanceof CtfsError)) throw e
      log(
        mode === 'bloom'
          ? `  a new caller-chosen id: ${e.code} — bloom mode cannot tell it from a retry, so it refuses`
          : `  retry of fact #1: ${e.code} — nothing applied twice`,
      )
    }
    log(`  balance ${k.read().balance}\n`)
  }
  log('bloom mode is constant-memory and probabilistic; exact and escalating never admit a missing dependency.')
}
