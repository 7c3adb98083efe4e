// Crash test: a child process admits a deterministic chain of facts with
// admitDurable (many in flight, so acknowledgements come from group
// commits) and reports every acknowledgement; we SIGKILL it at a seeded
// random moment (sometimes right as it starts a checkpoint), reopen the
// directory and check that
//   - every acknowledged fact is there,
//   - the recovered facts are exactly the prefix 0..N-1 of the child's chain,
//   - the state is exactly the replay of that prefix: sum_{i<N} (i+1),
//   - the log continues and the directory inspects healthy afterwards.
//
//   CTFS_CRASH_ITERATIONS (default 50; `npm run test:crash` runs 500)
//   CTFS_CRASH_SEED       (default 20261124)
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import test, { type ExecutionContext } from 'ava'

import { DurableKernel, inspect, invariants } from '../src/index.ts'
import { hid, prng } from './helpers.ts'

const here = dirname(fileURLToPath(import.meta.url))
const ITERATIONS = Number(process.env.CTFS_CRASH_ITERATIONS ?? 50)
const SEED = Number(process.env.CTFS_CRASH_SEED ?? 20261124)
const PARALLEL = 2
const CHUNK = 10
const supply = invariants.totalSupply()
const id = (i: number): Uint8Array => hid('crash', i)

interface Plan {
  iteration: number
  backend: 'portable' | 'io_uring'
  reopenBackend: 'portable' | 'io_uring'
  inFlight: number
  checkpointEvery: number
  delayMs: number
  killAtCheckpoint: boolean
}

function plan(iteration: number): Plan {
  const r = prng(SEED * 7919 + iteration)
  const checkpointEvery = r() < 0.3 ? 0 : 200 + Math.floor(r() * 3000)
  return {
    iteration,
    backend: iteration % 2 === 0 ? 'portable' : 'io_uring',
    reopenBackend: r() < 0.5 ? 'portable' : 'io_uring',
    inFlight: r() < 0.75 ? 64 : 1 + Math.floor(r() * 16),
    checkpointEvery,
    delayMs: 20 + Math.floor(r() * 281),
    killAtCheckpoint: checkpointEvery > 0 && r() < 0.35,
  }
}

interface Outcome {
  acked: Set<number>
  completedCheckpoint: number
  killedAtCheckpoint: boolean
  ms: number
}

/** Runs the child until the planned kill; resolves with what it acknowledged. */
function runChild(p: Plan, dir: string): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now()
    const child = spawn(
      process.execPath,
      ['--import', '@oxc-node/core/register', join(here, 'fixtures', 'crash-child.ts'), dir, p.backend, String(p.inFlight), String(p.checkpointEvery)],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    const acked = new Set<number>()
    let completedCheckpoint = 0
    let killed = false
    let killedAtCheckpoint = false
    let armed = false
    let buf = ''
    let err = ''
    const kill = (atCheckpoint: boolean): void => {
      if (killed) return
      killed = true
      killedAtCheckpoint = atCheckpoint
      child.kill('SIGKILL')
    }
    const guard = setTimeout(() => {
      kill(false)
      reject(new Error(`child never acknowledged anything within 20 s: ${err}`))
    }, 20_000)
    child.stderr.on('data', (b: Buffer) => (err += b.toString()))
    child.stdout.on('data', (b: Buffer) => {
      buf += b.toString()
      let nl: number
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl)
        buf = buf.slice(nl + 1)
        const [tag, ...rest] = line.split(' ')
        if (tag === 'a') {
          for (const x of rest) acked.add(Number(x))
          if (!armed) {
            armed = true
            clearTimeout(guard)
            setTimeout(() => {
              if (!p.killAtCheckpoint) kill(false)
              else setTimeout(() => kill(false), 2000) // no checkpoint came: kill anyway
            }, p.delayMs)
          }
        } else if (tag === 'c') {
          if (armed && p.killAtCheckpoint && performance.now() - t0 > 0) kill(true)
        } else if (tag === 'k') {
          completedCheckpoint = Math.max(completedCheckpoint, Number(rest[0]))
        }
      }
    })
    child.on('exit', (code, signal) => {
      clearTimeout(guard)
      if (!killed || signal !== 'SIGKILL') reject(new Error(`child exited by itself (code ${code}, signal ${signal}): ${err}`))
      else resolve({ acked, completedCheckpoint, killedAtCheckpoint, ms: performance.now() - t0 })
    })
  })
}

async function iteration(t: ExecutionContext, p: Plan): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'ctfs-crash-'))
  try {
    const o = await runChild(p, dir)
    const k = await DurableKernel.open({ dir, invariant: supply, backend: p.reopenBackend })
    const n = k.stats.admitted
    const where = `iteration ${p.iteration} (${JSON.stringify(p)})`
    let maxAcked = -1
    for (const i of o.acked) {
      if (i > maxAcked) maxAcked = i
      if (k.contains(id(i)) !== 'yes') t.fail(`${where}: acknowledged fact ${i} lost (recovered ${n})`)
    }
    t.true(maxAcked < n, `${where}: acked up to ${maxAcked}, recovered ${n}`)
    for (let i = 0; i < n; i++) if (k.contains(id(i)) !== 'yes') t.fail(`${where}: recovered facts are not a prefix: ${i} missing of ${n}`)
    t.is(k.contains(id(n)), 'no', where)
    t.is(supply.read(k.state).balance, (BigInt(n) * BigInt(n + 1)) / 2n, where)
    const r = k.recovery
    t.is(r.lastSeq, n, where)
    t.is(r.skippedCheckpoints.length, 0, where)
    t.true(r.checkpointSeq >= o.completedCheckpoint, `${where}: checkpoint ${o.completedCheckpoint} completed but recovery used ${r.checkpointSeq}`)
    // the log continues after recovery
    await k.admitDurable(supply.delta(BigInt(n + 1)), { id: id(n), deps: n > 0 ? [id(n - 1)] : [] })
    await k.close()
    const health = inspect(dir)
    t.true(health.healthy, `${where}: ${health.text}`)
    t.is(health.lastSeq, n + 1, where)
    return (
      `#${p.iteration} ${p.backend}->${p.reopenBackend} inFlight=${p.inFlight} ckptEvery=${p.checkpointEvery} ` +
      `kill@${p.delayMs}ms${o.killedAtCheckpoint ? ' at checkpoint start' : ''}: acked ${o.acked.size}, recovered ${n} ` +
      `(ckpt ${r.checkpointSeq}, replayed ${r.factsReplayed}, cut ${r.bytesCut} B)`
    )
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

for (let start = 0; start < ITERATIONS; start += CHUNK) {
  const end = Math.min(ITERATIONS, start + CHUNK)
  test.serial(`kill -9 during durable admission: iterations ${start}..${end - 1} of ${ITERATIONS} (seed ${SEED})`, async (t) => {
    let nextIt = start
    const lines: string[] = []
    let torn = 0
    const worker = async (): Promise<void> => {
      while (nextIt < end) {
        const line = await iteration(t, plan(nextIt++))
        if (!line.includes('cut 0 B')) torn++
        lines.push(line)
      }
    }
    await Promise.all(Array.from({ length: PARALLEL }, worker))
    for (const l of lines.sort((a, b) => Number(a.slice(1, a.indexOf(' '))) - Number(b.slice(1, b.indexOf(' '))))) t.log(l)
    t.log(`${torn} of ${end - start} recoveries cut a torn tail`)
  })
}
