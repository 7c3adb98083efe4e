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
import test from 'ava'

import { iteration, type Plan } from './crash-run.ts'
import { prng } from './helpers.ts'

const ITERATIONS = Number(process.env.CTFS_CRASH_ITERATIONS ?? 50)
const SEED = Number(process.env.CTFS_CRASH_SEED ?? 20261124)
const PARALLEL = 2
const CHUNK = 10

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
    // Small segments in two thirds of the runs: kills land across rolls,
    // and while the next segment is being zeroed ahead (the spare).
    ...(iteration % 3 === 0 ? {} : { segmentBytes: iteration % 3 === 1 ? 256 << 10 : 1 << 20 }),
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
