// The exposition checked by the real tools: `promtool check metrics` on the
// text of every kind of kernel, and a real Prometheus server (Debian's
// `prometheus` package) scraping a ctfs process and answering queries.
// These tests FAIL, never skip, when prometheus/promtool are missing.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { get } from 'node:http'
import { join } from 'node:path'
import { createInterface } from 'node:readline'

import test, { type ExecutionContext } from 'ava'
import { Registry } from 'prom-client'

import { DurableKernel, FactBatch, Kernel, invariants } from '../src/index.ts'
import { METRIC_NAMES, collectMetrics } from '../src/prometheus.ts'
import { onFreePorts, startCluster, writeKey } from '../src/cli/local-cluster.ts'
import { tempDir } from './helpers.ts'
import { MISSING_PROMETHEUS, parseExposition, which } from './prom-helpers.ts'

const here = import.meta.dirname

/** Kernels of every kind, each with something to report. */
async function everyKind(t: ExecutionContext) {
  const supply = invariants.totalSupply({ initial: 100n, min: 0n })
  const plain = new Kernel({ invariant: supply })
  for (let i = 0; i < 500; i++) plain.admit(supply.delta(1n))
  t.throws(() => plain.admit(supply.delta(-10_000n)))
  plain.tenant('acme').admit(supply.delta(1n))
  t.throws(() => plain.tenant('acme').admit(supply.delta(-10_000n)))
  const b = new FactBatch()
  for (let i = 0; i < 100; i++) b.add(supply.delta(1n))
  plain.admitBatch(b)

  const inv = invariants.multi({ supply, seats: invariants.uniqueSet() })
  const multi = new Kernel({ invariant: inv })
  multi.admit(inv.fact({ supply: supply.delta(1n), seats: inv.specs.seats.add(new Uint8Array(32)) }))
  t.throws(() => multi.admit(inv.fact({ seats: inv.specs.seats.add(new Uint8Array(32)) })))

  const durable = await DurableKernel.open({ dir: tempDir(t), invariant: supply })
  t.teardown(() => durable.close())
  await Promise.all(Array.from({ length: 300 }, () => durable.admitDurable(supply.delta(1n))))
  await durable.checkpoint()

  const key = new Uint8Array(randomBytes(32))
  const replica = (local: bigint) => {
    const k = new Kernel({ invariant: supply, replica: { nodes: [1n, 2n], local } })
    return { k, s: k.replica!.sync({ key, epoch: 1, antiEntropyMs: 10 }) }
  }
  const r1 = replica(1n)
  const r2 = replica(2n)
  for (let i = 0; i < 10; i++) r1.k.admit(supply.delta(-1n))
  let now = 1000
  for (let round = 0; round < 3; round++) {
    now += 20
    let q = [...r1.s.tick(now).frames, ...r2.s.tick(now).frames]
    while (q.length > 0) q = q.flatMap((f) => (f.to === 2n ? r2 : r1).s.receive(f.data, now).frames)
  }
  r2.s.receive(new Uint8Array(10), now)
  return { plain, multi, durable, r1: r1.k, r2: r2.k }
}

test('promtool check metrics passes on the exposition of every kind of kernel', async (t) => {
  const promtool = which('promtool')
  if (promtool === null) return t.fail(`promtool not found: ${MISSING_PROMETHEUS}`)
  const kernels = await everyKind(t)
  const registry = new Registry()
  collectMetrics(kernels, { registry })
  const text = await registry.metrics()
  // every family of the snapshot is there (durable, escrow, sync included)
  const names = new Set(parseExposition(text).map((s) => s.name))
  for (const n of ['ctfs_wal_fsync_seconds_bucket', 'ctfs_escrow_quota', 'ctfs_sync_sent_bytes_total', 'ctfs_member_facts_refused_total', 'ctfs_checkpoint_seconds_count']) {
    t.true(names.has(n), n)
  }
  const r = spawnSync(promtool, ['check', 'metrics'], { input: text, encoding: 'utf8' })
  t.is(r.status, 0, `promtool: ${r.stdout}${r.stderr}`)
  t.is(`${r.stdout}${r.stderr}`.trim(), '', 'no lint findings')
  t.log(`${text.split('\n').filter((l) => l !== '' && !l.startsWith('#')).length} samples checked by promtool`)
})

function httpGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = get(url, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (body += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    req.setTimeout(2_000, () => req.destroy(new Error('timeout')))
  })
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Polls `f` until it returns a value (not undefined) or `ms` pass. */
async function until<T>(ms: number, f: () => Promise<T | undefined>): Promise<T | undefined> {
  const end = Date.now() + ms
  for (;;) {
    try {
      const v = await f()
      if (v !== undefined) return v
    } catch {
      // not up yet
    }
    if (Date.now() > end) return undefined
    await sleep(200)
  }
}

function stop(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    c.once('exit', () => resolve())
    c.kill('SIGTERM')
  })
}

/**
 * A real Prometheus (temp config and data dir, random port on 127.0.0.1)
 * scraping `targets` every 500 ms; fails the test if not ready in 15 s. The
 * port comes from `onFreePorts` (started again on another port if it was
 * taken before Prometheus bound it), and the Prometheus answering must report
 * our data directory (never another test's Prometheus).
 */
async function startPrometheus(t: ExecutionContext, prometheus: string, targets: string[]) {
  const dir = tempDir(t, 'ctfs-prom-')
  const config = join(dir, 'prometheus.yml')
  writeFileSync(
    config,
    [
      'global:',
      '  scrape_interval: 500ms',
      '  evaluation_interval: 1s',
      'scrape_configs:',
      '  - job_name: ctfs',
      '    scrape_interval: 500ms',
      '    scrape_timeout: 400ms',
      '    static_configs:',
      `      - targets: [${targets.map((x) => `'${x}'`).join(', ')}]`,
      '',
    ].join('\n'),
  )
  const check = spawnSync(which('promtool') ?? 'promtool', ['check', 'config', config], { encoding: 'utf8' })
  t.is(check.status, 0, `promtool check config: ${check.stdout}${check.stderr}`)
  const data = join(dir, 'data')
  return onFreePorts(1, async ([port]) => {
    const prom = spawn(prometheus, [`--config.file=${config}`, `--storage.tsdb.path=${data}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    t.teardown(() => stop(prom))
    let log = ''
    prom.stderr!.on('data', (c: Buffer) => (log += c.toString()))
    // 'close': exited, and its stderr read to the end (the reason is in `log`)
    let closed = false
    prom.once('close', () => (closed = true))
    const api = `http://127.0.0.1:${port}`
    // ready and ours; false once it has exited; undefined while not (yet)
    const ready = await until(15_000, async () => {
      if (closed) return false
      if ((await httpGet(`${api}/-/ready`)).status !== 200) return undefined
      const flags = JSON.parse((await httpGet(`${api}/api/v1/status/flags`)).body) as { data?: Record<string, string> }
      return flags.data?.['storage.tsdb.path'] === data ? true : undefined
    })
    if (ready === true) return { api, query: queryOf(api), log: () => log }
    // (a port taken meanwhile: Prometheus exits at once with "address already in use", and onFreePorts starts it again)
    throw new Error(ready === false ? `Prometheus exited before it was ready on port ${port}: ${log}` : `Prometheus not ready within 15 s: ${log}`)
  })
}

/** Runs an instant PromQL query against the Prometheus at `api`. */
function queryOf(api: string) {
  return async (q: string) => {
    const r = await httpGet(`${api}/api/v1/query?query=${encodeURIComponent(q)}`)
    const body = JSON.parse(r.body) as { status: string; data?: { result: Array<{ metric: Record<string, string>; value: [number, string] }> }; error?: string }
    if (body.status !== 'success') throw new Error(`${q}: ${body.error}`)
    return body.data!.result
  }
}

test('a real Prometheus scrapes a ctfs process: admitted_total equals what it admitted, histogram_quantile is a number, every dashboard query runs', async (t) => {
  const prometheus = which('prometheus')
  if (prometheus === null) return t.fail(`prometheus not found: ${MISSING_PROMETHEUS}`)
  const started = Date.now()
  // 1. the ctfs process
  const n = 1_000 + Math.floor(Math.random() * 9_000)
  const child = spawn(process.execPath, ['--import', '@oxc-node/core/register', join(here, 'fixtures', 'metrics-child.ts'), String(n)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  t.teardown(() => stop(child))
  let childErr = ''
  child.stderr!.on('data', (c: Buffer) => (childErr += c.toString()))
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve)
    child.once('exit', (code) => reject(new Error(`metrics child exited (${code}): ${childErr}`)))
  })
  const info = JSON.parse(line) as { port: number; admitted: number; refused: number; tenant: number }
  t.is(info.admitted, n)

  // 2. Prometheus, scraping it every 500 ms
  const { query, log: promLog } = await startPrometheus(t, prometheus, [`127.0.0.1:${info.port}`])
  // 3. wait for the first scrape to land, then ask
  const admitted = await until(15_000, async () => {
    const r = await query('ctfs_facts_admitted_total{job="ctfs",kernel="child",tenant=""}')
    return r.length > 0 ? r : undefined
  })
  if (admitted === undefined) return t.fail(`no ctfs_facts_admitted_total after 15 s; prometheus log: ${promLog()}`)
  t.is(admitted.length, 1)
  t.is(Number(admitted[0]!.value[1]), n, 'Prometheus holds exactly what the process admitted')
  const tenant = await query('ctfs_facts_admitted_total{kernel="child",tenant="acme"}')
  t.is(Number(tenant[0]?.value[1]), info.tenant)
  const refused = await query('ctfs_facts_refused_total{kernel="child",tenant="",code="INVARIANT_VIOLATION"}')
  t.is(Number(refused[0]?.value[1]), info.refused)
  const up = await query('up{job="ctfs"}')
  t.is(up[0]?.value[1], '1')
  const q99 = await query('histogram_quantile(0.99, sum by (le) (ctfs_admission_latency_seconds_bucket{kernel="child"}))')
  t.is(q99.length, 1)
  const seconds = Number(q99[0]!.value[1])
  t.true(Number.isFinite(seconds) && seconds > 0 && seconds < 1, `p99 admission latency ${q99[0]!.value[1]} s`)
  // 4. every query of the Grafana dashboard parses and evaluates, on metric names ctfs exports
  const dashboard = JSON.parse(readFileSync(join(here, '..', 'dashboards', 'ctfs.json'), 'utf8')) as {
    panels: Array<{ type: string; title: string; targets?: Array<{ expr: string }> }>
  }
  const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((x) => [p.title, x.expr] as const))
  t.true(exprs.length >= 20)
  const known = new Set(METRIC_NAMES.flatMap((m) => [m, `${m}_bucket`, `${m}_sum`, `${m}_count`]))
  for (const [title, expr] of exprs) {
    for (const name of expr.match(/\bctfs_[a-z_]+/g) ?? []) t.true(known.has(name), `${title}: ${name} is not a ctfs metric`)
    const q = expr.replaceAll('$__rate_interval', '1m').replaceAll('$kernel', '.*').replaceAll('$instance', '.*')
    await t.notThrowsAsync(query(q), `${title}: ${q}`)
  }
  t.log(`n=${n}; p99 admission ${(seconds * 1e9).toFixed(0)} ns (histogram_quantile, interpolated in its power-of-two bucket); whole test ${Date.now() - started} ms`)
})

test('ctfs node --metrics: a real Prometheus scrapes a two-process cluster; replication lag reaches 0', async (t) => {
  const prometheus = which('prometheus')
  const promtool = which('promtool')
  if (prometheus === null || promtool === null) return t.fail(`prometheus/promtool not found: ${MISSING_PROMETHEUS}`)
  const dir = tempDir(t, 'ctfs-node-metrics-')
  const keyFile = writeKey(dir)
  // Port 0: each node binds a free port itself and prints its metrics URL
  // (a port picked here and released could be taken before the node binds it).
  const nodes = await startCluster({
    n: 2,
    keyFile,
    invariant: 'gCounter',
    dirs: (id) => join(dir, `n${id}`),
    args: () => ['--status-ms', '0', '--anti-entropy-ms', '200', '--metrics', '127.0.0.1:0'],
  })
  t.teardown(() => Promise.all(nodes.map((n) => n.stop())))
  const metricsPorts = nodes.map((n) => {
    const m = n.lines.map((l) => /metrics http:\/\/127\.0\.0\.1:(\d+)\/metrics/.exec(l)).find((x) => x !== null)
    if (m === undefined || m === null) throw new Error(`no metrics URL in the node's output:\n${n.lines.join('\n')}`)
    return Number(m[1])
  })
  t.true(metricsPorts.every((p) => p > 0), String(metricsPorts))
  const N = 60
  for (let i = 0; i < N; i += 10) await nodes[0]!.api('POST', '/admit', { facts: Array.from({ length: 10 }, () => ({ increment: 1 })) })
  await Promise.all(nodes.map((n) => n.api('GET', '/synced?peers=all&timeoutMs=20000')))

  // the node's own exposition (ctfs's registry, no prom-client) passes promtool
  const text = (await httpGet(`http://127.0.0.1:${metricsPorts[1]}/metrics`)).body
  const r = spawnSync(promtool, ['check', 'metrics'], { input: text, encoding: 'utf8' })
  t.is(r.status, 0, `promtool: ${r.stdout}${r.stderr}`)
  t.is(`${r.stdout}${r.stderr}`.trim(), '')

  const { query } = await startPrometheus(t, prometheus, metricsPorts.map((p) => `127.0.0.1:${p}`))
  const all = await until(15_000, async () => {
    const q = await query('ctfs_facts_admitted_total{job="ctfs",tenant=""}')
    return q.length === 2 && q.every((x) => Number(x.value[1]) === N) ? q : undefined
  })
  t.truthy(all, 'both nodes report every fact admitted (local on node 1, from its peer on node 2)')
  const lag = await query('max by (origin) (ctfs_sync_origin_facts) - min by (origin) (ctfs_sync_origin_facts)')
  t.deepEqual(lag.map((x) => [x.metric.origin, x.value[1]]), [['1', '0']])
  const up = await query('ctfs_sync_peer_up')
  t.deepEqual(up.map((x) => x.value[1]).sort(), ['1', '1'])
  const sent = await query('ctfs_sync_facts_sent_total{kernel="node-1",peer="2"}')
  t.true(Number(sent[0]?.value[1]) >= N)
  const ack = await query('histogram_quantile(0.5, sum by (le) (ctfs_wal_durable_ack_seconds_bucket{kernel="node-1"}))')
  t.true(ack.length === 1 && Number(ack[0]!.value[1]) > 0, 'durable nodes report durable-ack latency')
})
