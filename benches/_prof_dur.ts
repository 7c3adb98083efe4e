import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DurableKernel, invariants } from '../src/index.ts'
const supply = invariants.totalSupply()
const backend = (process.argv[2] ?? 'portable') as 'portable' | 'io_uring'
const dir = mkdtempSync(join(tmpdir(), 'ctfs-prof-'))
const k = await DurableKernel.open({ dir, invariant: supply, backend, segmentBytes: 1 << 20 })
const payload = supply.delta(1n)
const lanes = 1024, per = 60
const t0 = performance.now()
await Promise.all(Array.from({ length: lanes }, async () => { for (let i = 0; i < per; i++) await k.admitDurable(payload) }))
const s = (performance.now() - t0) / 1000
const d = k.durability
console.log(backend, (lanes * per / s).toFixed(0), 'facts/s', d.batches, 'batches', (lanes * per / d.batches).toFixed(1), 'per batch')
await k.close(); rmSync(dir, { recursive: true, force: true })
