// The bounded-balance check shared by the process cluster specs (TCP mesh and
// NATS): three `ctfs node` processes spend one balance concurrently through
// their admin APIs while a sampler watches every replica's state; afterwards
// the replicas agree, the bound was never crossed, the only refusal was
// INSUFFICIENT_QUOTA, and quota moved between replicas (more than two shares
// were spent).
import type { ExecutionContext } from 'ava'

import type { NodeProcess } from '../src/cli/local-cluster.ts'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

interface Admit {
  ids: Array<string | null>
  errors: Array<{ index: number; code: string }>
}

/**
 * Spends `initial` (split in three shares) in debits of 7 from every node for
 * `durationMs`, then checks the bound and convergence (`synced` returns each
 * node's digests once it is synced with its peers).
 */
export async function spendBoundedBalance(
  t: ExecutionContext,
  nodes: NodeProcess[],
  synced: (nodes: NodeProcess[]) => Promise<unknown[]>,
  o: { initial: bigint; durationMs: number },
): Promise<void> {
  let sampling = true
  let lowest = o.initial
  const balance = async (n: NodeProcess) => BigInt((await n.api<{ state: { balance: string } }>('GET', '/state')).state.balance)
  const sampler = (async () => {
    while (sampling) {
      for (const n of nodes) {
        const b = await balance(n)
        if (b < lowest) lowest = b
      }
      await sleep(20)
    }
  })()
  const spent: bigint[] = nodes.map(() => 0n)
  const refused: Record<string, number> = {}
  await Promise.all(
    nodes.map(async (n, i) => {
      const deadline = Date.now() + o.durationMs
      let insufficient = 0
      while (Date.now() < deadline && insufficient < 60) {
        const res = await n.api<Admit>('POST', '/admit', { facts: Array.from({ length: 10 }, () => ({ delta: -7 })) })
        spent[i]! += 7n * BigInt(res.ids.filter((x) => x !== null).length)
        for (const e of res.errors) refused[e.code] = (refused[e.code] ?? 0) + 1
        if (res.errors.length > 0) {
          insufficient++
          await sleep(30) // the node asked a peer for quota
        }
      }
    }),
  )
  sampling = false
  await sampler
  const total = spent.reduce((a, b) => a + b, 0n)
  const ds = await synced(nodes)
  for (const d of ds.slice(1)) t.deepEqual(d, ds[0])
  for (const n of nodes) t.is(await balance(n), o.initial - total)
  t.true(lowest >= 0n, `balance went down to ${lowest}`)
  t.true(total <= o.initial)
  t.deepEqual(Object.keys(refused), ['INSUFFICIENT_QUOTA'])
  // quota moved between replicas: together they spent more than two shares
  t.true(total > (o.initial * 2n) / 3n, `spent ${total}`)
  t.log(`spent ${total} of ${o.initial} (${spent.join(' + ')}), lowest balance seen ${lowest}, refusals ${JSON.stringify(refused)}`)
}
