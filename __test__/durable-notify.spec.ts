import test from 'ava'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { DurableKernel, invariants } from '../src/index.ts'

for (const backend of ['portable', 'io_uring'] as const) {
  test(`${backend}: every durable batch reaches JS, by its own callback or merged into a pending one; every ack resolves`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'ctfs-notify-'))
    try {
      const s = invariants.totalSupply()
      const k = await DurableKernel.open({ dir, invariant: s, backend })
      const acked: number[] = []
      await Promise.all(
        Array.from({ length: 256 }, async () => {
          for (let i = 0; i < 8; i++) {
            const h = k.admitAsync(s.delta(1n))
            await h.durable
            t.true(k.durability.durableSeq >= h.seq)
            acked.push(h.seq)
          }
        }),
      )
      t.is(acked.length, 2048)
      const d = k.durability
      t.true(d.notifications >= 1)
      t.is(d.notifications + d.notificationsCoalesced, d.batches)
      t.is(d.durableSeq, d.appendedSeq)
      await k.close()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
}
