import { randomBytes } from 'node:crypto'
import { FactBatch, Kernel, invariants, replicate } from './src/index.ts'

const key = new Uint8Array(randomBytes(32))
const nodes = [1n, 2n]
const a = new Kernel({ invariant: invariants.gCounter(), replica: { nodes, local: 1n } })
const na = await replicate(a, { key, listen: '127.0.0.1:0', sync: { antiEntropyMs: 200 } })
const N = Number(process.argv[2] ?? 300000)
for (let i = 0; i < N; i += 10000) {
  const b = new FactBatch()
  for (let j = 0; j < 10000; j++) b.add(a.invariant.increment(1n))
  a.admitBatch(b)
}
const b = new Kernel({ invariant: invariants.gCounter(), replica: { nodes, local: 2n } })
const t0 = performance.now()
const nb = await replicate(b, { key, peers: [{ id: 1n, address: na.address! }], sync: { antiEntropyMs: 200 } })
nb.on('sync', (e) => { if (e.type.startsWith('snapshot')) console.log(((performance.now() - t0) / 1000).toFixed(2), e) })
try {
  await nb.synced({ peers: 'all', timeoutMs: 40000 })
  console.log('synced in', ((performance.now() - t0) / 1000).toFixed(2), 's', b.frontier.count)
} catch (e) { console.log('FAILED', e.message, b.frontier.count) }
console.log(JSON.stringify(na.stats.transport.peers, (_, v) => typeof v === 'bigint' ? String(v) : v))
await na.close(); await nb.close()
