import { spawnSync, type SpawnSyncReturns } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

import type { ExecutionContext } from 'ava'

import { Kernel, invariants, type CausalityMode, type FactId } from '../src/index.ts'

export const MODES: CausalityMode[] = ['bloom', 'exact', 'escalating']

/** A fresh random 32-byte id. */
export const rid = (): Uint8Array => new Uint8Array(randomBytes(32))

export function supplyKernel(causality: CausalityMode = 'exact', opts: { initial?: bigint; min?: bigint; max?: bigint } = {}) {
  const supply = invariants.totalSupply({ initial: 1000n, min: 0n, max: 1_000_000n, ...opts })
  const k = new Kernel({ invariant: supply, causality })
  return { supply, k }
}

/** Everything observable about a domain, for "nothing changed" checks. */
export function snapshot(k: { state: Uint8Array; frontier: { count: number; digest: Uint8Array; clock: Uint8Array }; stats: { tracked: number } }) {
  const f = k.frontier
  return {
    state: Buffer.from(k.state).toString('hex'),
    count: f.count,
    digest: Buffer.from(f.digest).toString('hex'),
    clock: Buffer.from(f.clock).toString('hex'),
    tracked: k.stats.tracked,
  }
}

/** Deterministic, random-looking 32-byte id of fact `i` of stream `tag`. */
export const hid = (tag: string, i: number): FactId => new Uint8Array(createHash('sha256').update(`${tag}:${i}`).digest())

/** Small deterministic PRNG (mulberry32), the one the demo uses. */
export { prng } from '../src/cli/prng.ts'

/** A fresh temporary directory, removed when the test ends. */
export function tempDir(t: ExecutionContext, prefix = 'ctfs-test-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix))
  t.teardown(() => rmSync(d, { recursive: true, force: true }))
  return d
}

/** The `file:` URL of `src/<path>`, for scripts that a child process imports. */
export function srcUrl(path: string): string {
  return pathToFileURL(join(dirname(fileURLToPath(import.meta.url)), '..', 'src', path)).href
}

/**
 * Runs `code` as an ES module in a child Node that loads TypeScript (so a
 * crash there fails the test instead of the runner); `gc` exposes
 * `globalThis.gc`.
 */
export function runModule(code: string, o: { gc?: boolean; cwd?: string; timeout?: number } = {}): SpawnSyncReturns<string> {
  const args = [...(o.gc === true ? ['--expose-gc'] : []), '--import', '@oxc-node/core/register', '--input-type=module', '-e', code]
  return spawnSync(process.execPath, args, { encoding: 'utf8', ...(o.cwd !== undefined ? { cwd: o.cwd } : {}), ...(o.timeout !== undefined ? { timeout: o.timeout } : {}) })
}
