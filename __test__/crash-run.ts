// The kill -9 harness of __test__/crash.spec.ts, shared with
// durable-batch.spec.ts: runs __test__/fixtures/crash-child.ts until a
// planned SIGKILL, reopens the directory and checks that every
// acknowledged fact is there, that the recovered facts are exactly a prefix
// of the child's chain with the state of that prefix, and that the log
// continues and inspects healthy afterwards.
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import type { ExecutionContext } from 'ava'

import { DurableKernel, inspect, invariants } from '../src/index.ts'
import { hid } from './helpers.ts'

const here = dirname(fileURLToPath(import.meta.url))
const supply = invariants.totalSupply()
const id = (i: number): Uint8Array => hid('crash', i)

export interface Plan {
  iteration: number
  backend: 'portable' | 'io_uring'
  reopenBackend: 'portable' | 'io_uring'
  inFlight: number
  checkpointEvery: number
  delayMs: number
  killAtCheckpoint: boolean
  /** Facts per admitBatchDurable (absent or 1: admitDurable one at a time). */
  batch?: number
  /** Log segment size of the child (absent: the default), small for many rolls and spare segments. */
  segmentBytes?: number
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
      ['--import', '@oxc-node/core/register', join(here, 'fixtures', 'crash-child.ts'), dir, p.backend, String(p.inFlight), String(p.checkpointEvery), String(p.batch ?? 1), String(p.segmentBytes ?? 0)],
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
    child.on('close', (code, signal) => {
      clearTimeout(guard)
      if (!killed || signal !== 'SIGKILL') reject(new Error(`child exited by itself (code ${code}, signal ${signal}): ${err}`))
      else resolve({ acked, completedCheckpoint, killedAtCheckpoint, ms: performance.now() - t0 })
    })
  })
}

export async function iteration(t: ExecutionContext, p: Plan): Promise<string> {
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
      `#${p.iteration} ${p.backend}->${p.reopenBackend} inFlight=${p.inFlight}${p.batch !== undefined ? ` batch=${p.batch}` : ''} ckptEvery=${p.checkpointEvery}` +
      `${p.segmentBytes !== undefined ? ` segment=${p.segmentBytes >> 10}KiB` : ''} ` +
      `kill@${p.delayMs}ms${o.killedAtCheckpoint ? ' at checkpoint start' : ''}: acked ${o.acked.size}, recovered ${n} ` +
      `(ckpt ${r.checkpointSeq}, replayed ${r.factsReplayed}, cut ${r.bytesCut} B)`
    )
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

