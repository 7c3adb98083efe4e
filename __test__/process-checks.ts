// Checks shared by the process cluster specs (TCP mesh and NATS): three
// `ctfs node` processes driven through their admin APIs.
import type { ExecutionContext } from 'ava'

import type { NodeProcess } from '../src/cli/local-cluster.ts'
import { prng } from './helpers.ts'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

interface Admit {
  ids: Array<string | null>
  errors: Array<{ index: number; code: string }>
}

/** One kernel guarding every coordination-free invariant (the `--invariant` of {@link convergeEveryInvariant}). */
export const EVERY_FREE_INVARIANT = 'c=gCounter;m=max;l=lww;u=uniqueness;s=uniqueSet;gg=gGraph;gr=graph;t=totalSupply'

/**
 * Admits 2,000 random facts at each node, addressed to the members of
 * {@link EVERY_FREE_INVARIANT}, then checks that the nodes converge: the same
 * digests (`synced`) holding every admitted fact, and the same state. Returns
 * the first node's state.
 */
export async function convergeEveryInvariant(
  t: ExecutionContext,
  nodes: NodeProcess[],
  synced: (nodes: NodeProcess[]) => Promise<Array<{ count: number }>>,
  seed: number,
): Promise<Record<string, Record<string, unknown>>> {
  const rnd = prng(seed)
  const r = () => Math.floor(rnd() * 1e9)
  const fact = () => {
    switch (Math.floor(rnd() * 8)) {
      case 0:
        return { c: { increment: 1 + (r() % 9) } }
      case 1:
        return { m: { value: r() } }
      case 2:
        return { l: { timestamp: r() % 1000, value: `v${r()}` } }
      case 3:
        return { u: { add: r() % 512 } }
      case 4:
        return { s: { add: Buffer.alloc(32, r() % 200).toString('hex') } }
      case 5: {
        const a = r() % 16
        return { gg: { edge: [a, (a + 1 + (r() % 15)) % 16] } }
      }
      case 6:
        return { gr: { edge: [r() % 100, 100 + (r() % 100)] } }
      default:
        return { t: { delta: (r() % 200) - 100 } }
    }
  }
  let admitted = 0
  await Promise.all(
    nodes.map(async (n) => {
      for (let b = 0; b < 20; b++) {
        const res = await n.api<Admit>('POST', '/admit', { facts: Array.from({ length: 100 }, fact) })
        admitted += res.ids.filter((x) => x !== null).length
      }
    }),
  )
  const ds = await synced(nodes)
  t.is(ds[0]!.count, admitted)
  t.deepEqual(ds[1], ds[0])
  t.deepEqual(ds[2], ds[0])
  const states = await Promise.all(nodes.map((n) => n.api<{ state: unknown }>('GET', '/state')))
  t.deepEqual(states[1], states[0])
  t.deepEqual(states[2], states[0])
  return states[0]!.state as Record<string, Record<string, unknown>>
}

/**
 * Bounded balance: spends `initial` (split in three shares) in debits of 7 from every node for
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
