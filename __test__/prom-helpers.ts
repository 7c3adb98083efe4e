// Reading the Prometheus text format in tests (and finding promtool and
// prometheus, which the tests need: Debian's `prometheus` package).
import { spawnSync } from 'node:child_process'

export interface ExpoSample {
  name: string
  labels: Record<string, string>
  value: number
}

/** Parses sample lines of the Prometheus text exposition format. */
export function parseExposition(text: string): ExpoSample[] {
  const out: ExpoSample[] = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (m === null) throw new Error(`not a sample line: ${line}`)
    const labels: Record<string, string> = {}
    const body = m[2] ?? ''
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g
    for (let l = re.exec(body); l !== null; l = re.exec(body)) labels[l[1] as string] = (l[2] as string).replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c))
    const v = m[3] as string
    out.push({ name: m[1] as string, labels, value: v === '+Inf' ? Infinity : v === '-Inf' ? -Infinity : Number(v) })
  }
  return out
}

/** The value of the one sample of `name` whose labels are exactly `labels` (undefined if none). */
export function value(samples: ExpoSample[], name: string, labels: Record<string, string>): number | undefined {
  const want = Object.entries(labels)
  const hits = samples.filter(
    (s) => s.name === name && Object.keys(s.labels).length === want.length && want.every(([k, v]) => s.labels[k] === v),
  )
  if (hits.length > 1) throw new Error(`${hits.length} samples of ${name} ${JSON.stringify(labels)}`)
  return hits[0]?.value
}

/** Path of a command on PATH, or null. */
export function which(cmd: string): string | null {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' })
  return r.status === 0 ? r.stdout.trim() : null
}

/** Why a Prometheus test cannot run, as a failure message (never a skip). */
export const MISSING_PROMETHEUS =
  "needs Debian's prometheus package (prometheus and promtool on PATH): apt-get install -y prometheus (.ci/run installs it)"
