// Replica processes on 127.0.0.1 for the demo, the tests and the cluster
// benchmark: free ports, `ctfs node` child processes, their admin API.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { eachLine } from './lines.ts'

/** A free TCP port on 127.0.0.1 (bound then released: another process could take it, rarely). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen({ host: '127.0.0.1', port: 0 }, () => {
      const a = s.address()
      const port = typeof a === 'object' && a !== null ? a.port : 0
      s.close(() => resolve(port))
    })
  })
}

/**
 * Runs `start` on `n` ports from {@link freePort}, and again on new ones
 * (twice at most) when it fails because one was taken meanwhile: a port is
 * released before the process it is meant for binds it, so another process
 * can take it first. `start` cleans up after itself when it fails; a port
 * taken is an error whose message says `EADDRINUSE` or "address already in
 * use" (Node's and Go's wording).
 */
export async function onFreePorts<T>(n: number, start: (ports: number[]) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const ports = await Promise.all(Array.from({ length: n }, () => freePort()))
    try {
      return await start(ports)
    } catch (e) {
      if (attempt < 3 && e instanceof Error && /EADDRINUSE|address already in use/.test(e.message)) continue
      throw e
    }
  }
}

/** Writes a fresh cluster key file in `dir`. */
export function writeKey(dir: string): string {
  const path = join(dir, 'cluster.key')
  writeFileSync(path, randomBytes(32).toString('hex') + '\n', { mode: 0o600 })
  return path
}

/** How to start `ctfs node`: compiled (dist) or from the TypeScript sources. */
function entry(): { file: string; args: string[] } {
  const here = import.meta.url
  if (here.endsWith('.ts')) {
    return { file: fileURLToPath(new URL('./main.ts', here)), args: ['--import', '@oxc-node/core/register'] }
  }
  return { file: fileURLToPath(new URL('./main.js', here)), args: [] }
}

/** Options of one replica process. */
export interface NodeSpec {
  id: number
  /** Where it listens for the TCP mesh. */
  port: number
  /** False: no `--listen` (a node on NATS only, with `--nats` in `args`). Default true. */
  listen?: boolean
  /** The peers this node is told about: id and the port to dial (a proxy's, in partition tests). */
  peers: Array<{ id: number; port?: number }>
  keyFile: string
  invariant: string
  /** Data directory (durable); none: in memory. */
  dir?: string
  /** More `ctfs node` arguments. */
  args?: string[]
  /** Every output line. */
  onLine?: (line: string) => void
}

/** HTTP errors of the admin API. */
export class AdminError extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
  ) {
    super(`admin API ${status}: ${JSON.stringify(body)}`)
  }
}

/** A `ctfs node` child process. */
export class NodeProcess {
  readonly spec: NodeSpec
  proc: ChildProcess | null = null
  adminUrl = ''
  /** Output lines (bounded to the last 2,000). */
  readonly lines: string[] = []
  exited: Promise<number | null> = Promise.resolve(null)
  running = false

  constructor(spec: NodeSpec) {
    this.spec = spec
  }

  get id(): number {
    return this.spec.id
  }

  /** Starts the process; resolves once its admin interface listens. */
  async start(timeoutMs = 20_000): Promise<void> {
    const s = this.spec
    const e = entry()
    const dialled = s.peers.filter((n) => n.port !== undefined)
    const peers = dialled.map((n) => `${n.id}@127.0.0.1:${n.port}`).join(',')
    const nodes = [s.id, ...s.peers.map((n) => n.id)].sort((a, b) => a - b).join(',')
    const args = [
      ...e.args,
      e.file,
      'node',
      '--id',
      String(s.id),
      ...(s.listen !== false ? ['--listen', `127.0.0.1:${s.port}`] : []),
      ...(peers !== '' ? ['--peers', peers] : []),
      '--nodes',
      nodes,
      '--key-file',
      s.keyFile,
      '--invariant',
      s.invariant,
      '--admin',
      '127.0.0.1:0',
      ...(s.dir !== undefined ? ['--dir', s.dir] : []),
      ...(s.args ?? []),
    ]
    const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    this.proc = proc
    this.running = true
    this.exited = new Promise((resolve) =>
      // 'close', not 'exit': the last lines (an EADDRINUSE the retry looks
      // for) may still be in the pipes when 'exit' fires
      proc.once('close', (code, signal) => {
        this.running = false
        resolve(code ?? (signal !== null ? -1 : null))
      }),
    )
    let ready: (url: string) => void = () => {}
    const readyP = new Promise<string>((r) => (ready = r))
    const onLine = (line: string) => {
      this.lines.push(line)
      if (this.lines.length > 2000) this.lines.splice(0, this.lines.length - 2000)
      s.onLine?.(line)
      const m = /admin (http:\/\/[\d.:]+)/.exec(line)
      if (m !== null) ready(m[1] as string)
    }
    eachLine(proc.stdout!, onLine)
    eachLine(proc.stderr!, onLine)
    const url = await Promise.race([
      readyP,
      this.exited.then((code) => {
        throw new Error(`node ${s.id} exited (${code}) before it was ready:\n${this.lines.slice(-20).join('\n')}`)
      }),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`node ${s.id} not ready after ${timeoutMs} ms:\n${this.lines.slice(-20).join('\n')}`)), timeoutMs).unref()),
    ])
    this.adminUrl = url
  }

  /** Sends a signal (SIGKILL: a crash) and waits for the exit. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!this.running || this.proc === null) return
    this.proc.kill(signal)
    if (signal === 'SIGSTOP' || signal === 'SIGCONT') return
    await this.exited
  }

  /** Graceful stop (SIGTERM: closes the log) with a SIGKILL fallback. */
  async stop(timeoutMs = 10_000): Promise<void> {
    if (!this.running || this.proc === null) return
    this.proc.kill('SIGCONT')
    this.proc.kill('SIGTERM')
    const t = setTimeout(() => this.proc?.kill('SIGKILL'), timeoutMs)
    await this.exited
    clearTimeout(t)
  }

  /** Calls the admin API; rejects with {@link AdminError} on a non-2xx answer (409 refusals included). */
  async api<T = unknown>(method: string, path: string, body?: unknown, timeoutMs = 60_000): Promise<T> {
    const res = await fetch(this.adminUrl + path, {
      method,
      ...(body !== undefined ? { body: JSON.stringify(body, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)), headers: { 'content-type': 'application/json' } } : {}),
      signal: AbortSignal.timeout(timeoutMs),
    })
    const text = await res.text()
    const json = text.length > 0 ? JSON.parse(text) : null
    if (!res.ok) throw new AdminError(res.status, json)
    return json as T
  }
}

/** Starts `n` replica processes that know each other. */
export async function startCluster(o: {
  n: number
  keyFile: string
  invariant: string
  dirs?: (id: number) => string | undefined
  args?: (id: number) => string[]
  onLine?: (id: number, line: string) => void
  /** Ports to listen on (default: free ports); tests put proxies in between with `peerPort`. */
  ports?: number[]
}): Promise<NodeProcess[]> {
  const start = async (ports: number[]) => {
    const all = ports.map((port, i) => ({ id: i + 1, port }))
    const nodes = all.map(
      ({ id, port }) =>
        new NodeProcess({
          id,
          port,
          peers: all.filter((p) => p.id !== id),
          keyFile: o.keyFile,
          invariant: o.invariant,
          ...(o.dirs?.(id) !== undefined ? { dir: o.dirs(id) as string } : {}),
          args: o.args?.(id) ?? [],
          ...(o.onLine !== undefined ? { onLine: (l: string) => o.onLine!(id, l) } : {}),
        }),
    )
    try {
      await Promise.all(nodes.map((n) => n.start()))
      return nodes
    } catch (e) {
      await Promise.all(nodes.map((n) => n.kill('SIGKILL')))
      throw e
    }
  }
  return o.ports !== undefined ? start(o.ports) : onFreePorts(o.n, start)
}
