// A real `nats-server` for the NATS specs and the benchmark: started on a
// free port of 127.0.0.1 with JetStream and a store directory (so that a
// SIGKILL and restart keeps what the stream acknowledged). A missing binary
// is an error, never a skip: CI installs Debian's nats-server.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'

import { eachLine } from '../src/cli/lines.ts'
import { freePort } from '../src/cli/local-cluster.ts'

/** The nats-server binary: $NATS_SERVER, on PATH, or Debian's /usr/sbin/nats-server. */
export function natsServerBinary(): string {
  const env = process.env.NATS_SERVER
  if (env !== undefined && env !== '') return env
  for (const d of [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin', '/usr/local/bin']) {
    const f = join(d, 'nats-server')
    if (d !== '' && existsSync(f)) return f
  }
  throw new Error('nats-server is not installed (apt-get install nats-server, or set NATS_SERVER): the NATS specs need a real server')
}

export interface NatsServerOptions {
  /** Without JetStream (`-js` left out). */
  jetstream?: boolean
  /** Store directory (default: a new temporary directory, removed by stop()). */
  storeDir?: string
  /** More arguments. */
  args?: string[]
}

/** One nats-server process. */
export class NatsServer {
  readonly port: number
  readonly storeDir: string
  readonly #ownsDir: boolean
  readonly #o: NatsServerOptions
  #proc: ChildProcess | null = null
  #exited: Promise<void> = Promise.resolve()
  readonly log: string[] = []

  private constructor(port: number, storeDir: string, ownsDir: boolean, o: NatsServerOptions) {
    this.port = port
    this.storeDir = storeDir
    this.#ownsDir = ownsDir
    this.#o = o
  }

  /** Starts a server on a free port; resolves once it accepts clients. */
  static async start(o: NatsServerOptions = {}): Promise<NatsServer> {
    const bin = natsServerBinary()
    const version = spawnSync(bin, ['--version'], { encoding: 'utf8' })
    if (version.status !== 0) throw new Error(`${bin} --version failed: ${version.stderr ?? version.error}`)
    const dir = o.storeDir ?? mkdtempSync(join(tmpdir(), 'ctfs-nats-'))
    const s = new NatsServer(await freePort(), dir, o.storeDir === undefined, o)
    await s.restart()
    return s
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`
  }

  get running(): boolean {
    return this.#proc !== null
  }

  /** (Re)starts the process on the same port and store directory. */
  async restart(timeoutMs = 15_000): Promise<void> {
    if (this.#proc !== null) throw new Error('nats-server is running')
    const args = ['-a', '127.0.0.1', '-p', String(this.port), ...(this.#o.jetstream === false ? [] : ['-js', '-sd', this.storeDir]), ...(this.#o.args ?? [])]
    const proc = spawn(natsServerBinary(), args, { stdio: ['ignore', 'pipe', 'pipe'] })
    this.#proc = proc
    this.#exited = new Promise((resolve) =>
      proc.once('close', () => {
        this.#proc = null
        resolve()
      }),
    )
    let ready: () => void = () => {}
    const readyP = new Promise<void>((r) => (ready = r))
    const onLine = (line: string) => {
      this.log.push(line)
      if (this.log.length > 500) this.log.splice(0, this.log.length - 500)
      if (line.includes('Server is ready')) ready()
    }
    eachLine(proc.stdout!, onLine)
    eachLine(proc.stderr!, onLine)
    await Promise.race([
      readyP,
      this.#exited.then(() => {
        throw new Error(`nats-server ${args.join(' ')} exited before it was ready:\n${this.log.slice(-20).join('\n')}`)
      }),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`nats-server not ready after ${timeoutMs} ms:\n${this.log.slice(-20).join('\n')}`)), timeoutMs).unref()),
    ])
  }

  /** SIGKILL (a crash: nothing flushed beyond what the server already wrote). */
  async kill(): Promise<void> {
    if (this.#proc === null) return
    this.#proc.kill('SIGKILL')
    await this.#exited
  }

  /** Stops the server and removes its store directory (if it made it). */
  async stop(): Promise<void> {
    if (this.#proc !== null) {
      this.#proc.kill('SIGTERM')
      const t = setTimeout(() => this.#proc?.kill('SIGKILL'), 5_000)
      await this.#exited
      clearTimeout(t)
    }
    if (this.#ownsDir) rmSync(this.storeDir, { recursive: true, force: true })
  }
}
