// The machine line printed at the top of every benchmark report
// (BENCHMARKING.md, rule 5): CPU model and flags, cores, Node and napi-rs
// versions, file system of the working directory, kernel release.
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import os from 'node:os'

export interface MachineInfo {
  cpuModel: string
  flags: { avx2: boolean; avx512f: boolean; sha_ni: boolean }
  /** Logical CPUs the process may use. */
  cores: number
  node: string
  v8: string
  napi: string
  napiDerive: string
  napiCli: string
  /** `stat -f -c %T .` of the working directory. */
  fileSystem: string
  kernel: string
  arch: string
}

const root = new URL('../', import.meta.url)

function readText(rel: string): string | undefined {
  try {
    return readFileSync(new URL(rel, root), 'utf8')
  } catch {
    return undefined
  }
}

function cpuInfo(): { model: string; flags: Set<string> } {
  let text = ''
  try {
    text = readFileSync('/proc/cpuinfo', 'utf8')
  } catch {
    /* not Linux */
  }
  const model = /^model name\s*:\s*(.+)$/m.exec(text)?.[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown'
  const flags = new Set((/^flags\s*:\s*(.+)$/m.exec(text)?.[1] ?? '').trim().split(/\s+/))
  return { model, flags }
}

/** The version of crate `name` in Cargo.lock (first match), or 'unknown'. */
function lockedCrate(lock: string | undefined, name: string): string {
  if (lock === undefined) return 'unknown'
  const escaped = name.replace(/[-/\\^$*+?.()|[\]{}]/g, '\\$&')
  const m = new RegExp(`\\[\\[package\\]\\]\\s*\\nname = "${escaped}"\\s*\\nversion = "([^"]+)"`).exec(lock)
  return m?.[1] ?? 'unknown'
}

function napiCliVersion(): string {
  const pkg = readText('node_modules/@napi-rs/cli/package.json')
  if (pkg === undefined) return 'absent'
  try {
    return String((JSON.parse(pkg) as { version?: unknown }).version ?? 'unknown')
  } catch {
    return 'unknown'
  }
}

function fileSystem(): string {
  try {
    return execFileSync('stat', ['-f', '-c', '%T', '.'], { encoding: 'utf8' }).trim()
  } catch {
    return 'unknown'
  }
}

export function collectMachine(): MachineInfo {
  const { model, flags } = cpuInfo()
  const lock = readText('Cargo.lock')
  return {
    cpuModel: model,
    flags: { avx2: flags.has('avx2'), avx512f: flags.has('avx512f'), sha_ni: flags.has('sha_ni') },
    cores: typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length,
    node: process.version,
    v8: process.versions.v8,
    napi: lockedCrate(lock, 'napi'),
    napiDerive: lockedCrate(lock, 'napi-derive'),
    napiCli: napiCliVersion(),
    fileSystem: fileSystem(),
    kernel: os.release(),
    arch: process.arch,
  }
}

export function formatMachine(m: MachineInfo): string {
  const f = (on: boolean, name: string): string => `${name}${on ? '+' : '-'}`
  return [
    `machine: ${m.cpuModel} (${m.arch}) [${f(m.flags.avx2, 'avx2')} ${f(m.flags.avx512f, 'avx512f')} ${f(m.flags.sha_ni, 'sha_ni')}]`,
    `${m.cores} cores`,
    `node ${m.node} (v8 ${m.v8})`,
    `napi ${m.napi} / napi-derive ${m.napiDerive} / @napi-rs/cli ${m.napiCli}`,
    `fs ${m.fileSystem}`,
    `linux ${m.kernel}`,
  ].join(' | ')
}
