// The coordinator side of the process benchmarks (bench:cluster, bench:nats):
// replica processes running benches/cluster-worker.ts, driven over IPC, and
// the timing helpers both suites share.
import { fork, type ChildProcess } from 'node:child_process'

/** Anti-entropy period of every replica in the suites, ms. */
export const ANTI_ENTROPY_MS = 500

export interface Msg {
  cmd: string
  [k: string]: unknown
}

/** One replica process; its configuration is `base` plus what {@link start} adds. */
export class Worker {
  proc: ChildProcess | null = null
  readonly #waiting = new Map<string, Array<(m: Msg) => void>>()

  constructor(
    readonly id: number,
    readonly base: Record<string, unknown>,
  ) {}

  /**
   * Forks the process and waits for it to be ready. `CTFS_BENCH_PROF=<id>`
   * CPU-profiles that replica (into `CTFS_BENCH_PROF_DIR`, default `.`).
   */
  async start(extra: Record<string, unknown> = {}): Promise<void> {
    const prof = process.env.CTFS_BENCH_PROF === String(this.id) ? ['--cpu-prof', '--cpu-prof-dir', process.env.CTFS_BENCH_PROF_DIR ?? '.'] : []
    const p = fork(new URL('./cluster-worker.ts', import.meta.url), [], {
      execArgv: ['--import', '@oxc-node/core/register', ...prof],
      env: { ...process.env, CTFS_BENCH_WORKER: JSON.stringify({ id: this.id, antiEntropyMs: ANTI_ENTROPY_MS, ...this.base, ...extra }) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
    this.proc = p
    p.on('message', (m: Msg) => this.#waiting.get(m.cmd)?.shift()?.(m))
    await this.next('ready')
  }

  /** The next message `cmd` from the process. */
  next(cmd: string): Promise<Msg> {
    return new Promise((resolve) => {
      const q = this.#waiting.get(cmd) ?? []
      q.push(resolve)
      this.#waiting.set(cmd, q)
    })
  }

  /** Sends `m` and waits for the answer of the same `cmd`. */
  call(m: Msg): Promise<Msg> {
    const p = this.next(m.cmd)
    this.proc!.send(m)
    return p
  }

  /** SIGKILL, as a crash. */
  async kill(): Promise<void> {
    const p = this.proc
    if (p === null || p.exitCode !== null) return
    const exited = new Promise((r) => p.once('exit', r))
    p.kill('SIGKILL')
    await exited
    this.proc = null
  }

  /** Asks the process to close its node and exit (SIGKILL after 10 s). */
  async exit(): Promise<void> {
    const p = this.proc
    if (p === null || p.exitCode !== null) return
    const exited = new Promise((r) => p.once('exit', r))
    p.send({ cmd: 'exit' })
    const t = setTimeout(() => p.kill('SIGKILL'), 10_000)
    await exited
    clearTimeout(t)
  }
}

/** Wall-clock ms, comparable across the processes of one machine. */
export const now = () => performance.timeOrigin + performance.now()

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Offset of a worker's clock against ours (ms), from the ping with the shortest round trip. */
export async function clockOffset(w: Worker): Promise<{ offset: number; rtt: number }> {
  let best = { offset: 0, rtt: Infinity }
  for (let i = 0; i < 30; i++) {
    const t0 = now()
    const m = await w.call({ cmd: 'now' })
    const t1 = now()
    if (t1 - t0 < best.rtt) best = { offset: (m.t as number) - (t0 + t1) / 2, rtt: t1 - t0 }
  }
  return best
}

/** The p-th percentile of sorted samples (NaN when there are none). */
export function pct(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}
