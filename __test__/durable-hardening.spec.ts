// Durability hardening (issue 8): a directory never reopens under another
// configuration, truncateCorrupt never destroys, inspect agrees with open,
// a dropped DurableKernel is released, a checkpoint into a deleted directory
// is an error.
import { spawn } from 'node:child_process'
import { cpSync, existsSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import test, { type ExecutionContext } from 'ava'

import { CtfsError, DurableKernel, inspect, invariants, type InvariantSpec } from '../src/index.ts'
import { hid, tempDir } from './helpers.ts'

const here = dirname(fileURLToPath(import.meta.url))
const backend = 'portable' as const
const supply = invariants.totalSupply({ initial: 0n })

const segments = (dir: string): string[] => readdirSync(dir).filter((f) => /^wal-\d{20}\.log$/.test(f)).sort()
const checkpoints = (dir: string): string[] => readdirSync(dir).filter((f) => /^ckpt-\d{20}\.ctfs$/.test(f)).sort()
/** Bytes of a segment's header (it carries the configuration fingerprint, so its length varies). */
const headerLen = (file: string): number => readFileSync(file).readUInt32LE(12)

function flipBit(file: string, offset: number, bit: number): void {
  const b = readFileSync(file)
  b[offset] = (b[offset] as number) ^ (1 << bit)
  writeFileSync(file, b)
}

function copyDir(t: ExecutionContext, src: string): string {
  const d = tempDir(t, 'ctfs-hard-copy-')
  cpSync(src, d, { recursive: true })
  return d
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    const k = (await p) as { close(): Promise<void> }
    await k.close()
    return 'OK'
  } catch (e) {
    return e instanceof CtfsError ? e.code : `not a CtfsError: ${String(e)}`
  }
}

async function rejection(p: Promise<unknown>): Promise<CtfsError> {
  try {
    const k = (await p) as { close(): Promise<void> }
    await k.close()
  } catch (e) {
    if (e instanceof CtfsError) return e
    throw e
  }
  throw new Error('expected a rejection, but it opened')
}

// ---------------------------------------------------------------- item 1

const bounded = () => invariants.totalSupply({ min: 0n })

/** totalSupply({ min: 0n }), admit 16, checkpoint (optional), close. */
async function boundedDir(t: ExecutionContext, withCheckpoint: boolean): Promise<string> {
  const dir = tempDir(t, 'ctfs-hard-cfg-')
  const inv = bounded()
  const k = await DurableKernel.open({ dir, invariant: inv, backend })
  k.admit(inv.delta(16n))
  if (withCheckpoint) await k.checkpoint()
  await k.close()
  return dir
}

const others: Array<[string, () => InvariantSpec, RegExp]> = [
  ['uniqueness', () => invariants.uniqueness(), /uniqueness/],
  ['gCounter', () => invariants.gCounter(), /gCounter/],
  ['max', () => invariants.max(), /max/],
  ['totalSupply with another initial', () => invariants.totalSupply({ initial: 5n, min: 0n }), /initial/],
  ['totalSupply without the bound', () => invariants.totalSupply(), /min/],
]

for (const withCheckpoint of [true, false]) {
  for (const [label, make, names] of others) {
    test(`CONFIG_MISMATCH: totalSupply({ min: 0n }) ${withCheckpoint ? 'checkpointed' : 'log only'}, reopened as ${label}`, async (t) => {
      const dir = await boundedDir(t, withCheckpoint)
      const before = readdirSync(dir).map((f) => [f, statSync(join(dir, f)).size])
      const e = await rejection(DurableKernel.open({ dir, invariant: make(), backend }))
      t.is(e.code, 'CONFIG_MISMATCH', e.message)
      t.regex(e.message, /totalSupply\{initial=0,min=0,max=∞\}/)
      t.regex(e.message, names)
      t.log(e.message)
      // refused: nothing changed on disk, and the right configuration still opens it
      t.deepEqual(readdirSync(dir).map((f) => [f, statSync(join(dir, f)).size]), before)
      const inv = bounded()
      const k = await DurableKernel.open({ dir, invariant: inv, backend })
      t.is(inv.read(k.state).balance, 16n)
      await k.close()
    })
  }
}

test('CONFIG_MISMATCH: a log of totalSupply facts is never replayed as lww writes', async (t) => {
  const dir = tempDir(t, 'ctfs-hard-cfg-')
  const k = await DurableKernel.open({ dir, invariant: supply, backend })
  for (let i = 0; i < 10; i++) k.admit(supply.delta(BigInt(i)))
  await k.close()
  const e = await rejection(DurableKernel.open({ dir, invariant: invariants.lww(), backend }))
  t.is(e.code, 'CONFIG_MISMATCH')
  t.regex(e.message, /lww/)
  t.regex(e.message, /invariant\.kind/)
})

test('CONFIG_MISMATCH: causality mode, escalation threshold, multi member names and kinds', async (t) => {
  const dir = tempDir(t, 'ctfs-hard-cfg-')
  const k = await DurableKernel.open({ dir, invariant: supply, backend, causality: 'escalating', escalationThreshold: 0.3 })
  k.admit(supply.delta(1n))
  await k.close()
  const bloom = await rejection(DurableKernel.open({ dir, invariant: supply, backend, causality: 'bloom' }))
  t.is(bloom.code, 'CONFIG_MISMATCH')
  t.regex(bloom.message, /causality/)
  const thr = await rejection(DurableKernel.open({ dir, invariant: supply, backend, causality: 'escalating' }))
  t.regex(thr.message, /escalationThreshold/)
  t.is(await codeOf(DurableKernel.open({ dir, invariant: supply, backend, causality: 'escalating', escalationThreshold: 0.3 })), 'OK')

  const m = tempDir(t, 'ctfs-hard-cfg-')
  const mk = (a: string, b: string, second: InvariantSpec = invariants.gCounter()) =>
    invariants.multi({ [a]: invariants.totalSupply(), [b]: second })
  const m1 = mk('balance', 'views')
  const mk1 = await DurableKernel.open({ dir: m, invariant: m1, backend })
  mk1.admit(m1.fact({ balance: (m1.specs.balance as ReturnType<typeof invariants.totalSupply>).delta(1n) }))
  await mk1.checkpoint()
  await mk1.close()
  const renamed = await rejection(DurableKernel.open({ dir: m, invariant: mk('balance', 'visits'), backend }))
  t.is(renamed.code, 'CONFIG_MISMATCH')
  t.regex(renamed.message, /views/)
  t.regex(renamed.message, /visits/)
  const kind = await rejection(DurableKernel.open({ dir: m, invariant: mk('balance', 'views', invariants.max()), backend }))
  t.regex(kind.message, /gCounter/)
  t.is(await codeOf(DurableKernel.open({ dir: m, invariant: mk('balance', 'views'), backend })), 'OK')
})

test('CONFIG_MISMATCH: a custom invariant is identified by name, declared class, version and initial state', async (t) => {
  const dir = tempDir(t, 'ctfs-hard-cfg-')
  const mk = (o: { name?: string; class?: 'group' | 'commutativeMonoid'; version?: number; initial?: Uint8Array } = {}) =>
    invariants.custom({
      name: o.name ?? 'adder',
      class: o.class ?? 'commutativeMonoid',
      initial: o.initial ?? new Uint8Array(4),
      ...(o.version !== undefined ? { version: o.version } : {}),
      apply(p: Uint8Array, s: DataView) {
        s.setUint32(0, s.getUint32(0, true) + (p[0] as number), true)
      },
    } as Parameters<typeof invariants.custom>[0])
  const k = await DurableKernel.open({ dir, invariant: mk(), backend })
  k.admit(new Uint8Array([3]))
  await k.checkpoint()
  await k.close()
  // the default version is 1: stating it explicitly is the same configuration
  t.is(await codeOf(DurableKernel.open({ dir, invariant: mk({ version: 1 }), backend })), 'OK')
  for (const [o, what] of [
    [{ version: 2 }, /version/],
    [{ name: 'adder2' }, /adder2/],
    [{ class: 'group' as const }, /class/],
    [{ initial: new Uint8Array(8) }, /initial/],
  ] as const) {
    const e = await rejection(DurableKernel.open({ dir, invariant: mk(o), backend }))
    t.is(e.code, 'CONFIG_MISMATCH', e.message)
    t.regex(e.message, what)
  }
  t.throws(() => mk({ version: 0 }), { code: 'ERR_OUT_OF_RANGE' } as never)
  t.throws(() => mk({ version: 1.5 }), { code: 'ERR_OUT_OF_RANGE' } as never)
})

const CRC32C = (() => {
  const t = new Uint32Array(256)
  for (let i = 0; i < 256; i++) {
    let c = i
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1
    t[i] = c >>> 0
  }
  return t
})()
const crc32c = (b: Uint8Array): number => {
  let c = 0xffffffff
  for (const x of b) c = (CRC32C[(c ^ x) & 0xff] as number) ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}

/** Rewrites a segment in the format before fingerprints (1): a 32-byte header, the same records. */
function toFormat1(file: string): void {
  const b = readFileSync(file)
  const h = Buffer.alloc(32)
  b.copy(h, 0, 0, 8) // magic
  h.writeUInt32LE(1, 8)
  h.writeUInt32LE(32, 12)
  b.copy(h, 16, 16, 24) // first seq
  h.writeUInt32LE(crc32c(h.subarray(0, 28)), 28)
  writeFileSync(file, Buffer.concat([h, b.subarray(b.readUInt32LE(12))]))
}

test('format 1 (no fingerprint) is refused with CONFIG_MISMATCH until opened once with upgradeFormat', async (t) => {
  const dir = tempDir(t, 'ctfs-hard-v1-')
  const k0 = await DurableKernel.open({ dir, invariant: supply, backend, segmentBytes: 4096 })
  for (let i = 0; i < 100; i++) k0.admit(supply.delta(1n))
  await k0.close()
  for (const s of segments(dir)) toFormat1(join(dir, s))
  const e = await rejection(DurableKernel.open({ dir, invariant: supply, backend }))
  t.is(e.code, 'CONFIG_MISMATCH')
  t.regex(e.message, /format \(1\)/)
  t.regex(e.message, /upgradeFormat/)
  t.false(inspect(dir).healthy)
  await t.throwsAsync(DurableKernel.open({ dir, invariant: supply, upgradeFormat: 'yes' as never }), { code: 'ERR_INVALID_ARG_TYPE' } as never)
  const k = await DurableKernel.open({ dir, invariant: supply, backend, upgradeFormat: true })
  t.is(supply.read(k.state).balance, 100n)
  await k.close()
  t.true(segments(dir).every((s) => readFileSync(join(dir, s)).readUInt32LE(8) === 2))
  const again = await DurableKernel.open({ dir, invariant: supply, backend })
  t.is(again.stats.admitted, 100)
  await again.close()
  t.true(inspect(dir, { invariant: supply }).healthy)
  t.is((await rejection(DurableKernel.open({ dir, invariant: invariants.gCounter(), backend }))).code, 'CONFIG_MISMATCH')
})

// ---------------------------------------------------------------- item 2

/** 30 facts without deps (72-byte records), a checkpoint after the 20th. */
async function thirtyWithCheckpoint(t: ExecutionContext): Promise<string> {
  const dir = tempDir(t, 'ctfs-hard-trunc-')
  const k = await DurableKernel.open({ dir, invariant: supply, backend })
  for (let i = 0; i < 30; i++) {
    k.admit(supply.delta(BigInt(i + 1)), { id: hid('tc', i) })
    if (i === 19) await k.checkpoint()
  }
  await k.close()
  return dir
}

const REC = 72
const sum = (n: number): bigint => BigInt((n * (n + 1)) / 2)

test('damage covered by a checkpoint costs nothing: plain and truncateCorrupt opens keep all 30 facts', async (t) => {
  const dir = await thirtyWithCheckpoint(t)
  const [seg] = segments(dir)
  const file = join(dir, seg!)
  const size = statSync(file).size
  flipBit(file, headerLen(file) + 4 * REC + 40, 3) // inside record 5
  const copy = copyDir(t, dir)
  for (const [d, opts] of [
    [dir, {}],
    [copy, { truncateCorrupt: true }],
  ] as const) {
    const k = await DurableKernel.open({ dir: d, invariant: supply, backend, ...opts })
    t.is(k.stats.admitted, 30)
    t.is(supply.read(k.state).balance, sum(30))
    t.is(k.contains(hid('tc', 29)), 'yes')
    t.like(k.recovery, { checkpointSeq: 20, factsReplayed: 10, bytesCut: 0, truncatedAt: null, lastSeq: 30 })
    t.true(k.recovery.coveredDamage.length === 1 && k.recovery.coveredDamage[0]!.includes(seg!), k.recovery.coveredDamage.join('\n'))
    t.log(k.recovery.coveredDamage[0])
    k.admit(supply.delta(100n), { id: hid('tc', 30) })
    await k.close()
    t.is(statSync(join(d, seg!)).size, size + REC) // nothing cut, appends continue
    const again = await DurableKernel.open({ dir: d, invariant: supply, backend })
    t.is(again.stats.admitted, 31)
    await again.close()
    t.true(inspect(d).healthy)
  }
})

test('truncateCorrupt moves the bytes it removes aside (.corrupt), reports what and why, and the directory reopens', async (t) => {
  const dir = tempDir(t, 'ctfs-hard-trunc-')
  const k0 = await DurableKernel.open({ dir, invariant: supply, backend, segmentBytes: 4096 })
  for (let i = 0; i < 200; i++) k0.admit(supply.delta(1n), { id: hid('mv', i) })
  await k0.close()
  const segs = segments(dir)
  t.true(segs.length >= 3)
  const first = join(dir, segs[0]!)
  const original = readFileSync(first)
  const cut = headerLen(first) + 10 * REC
  flipBit(first, cut + 20, 0) // inside record 11
  const damaged = readFileSync(first)
  const later = segs.slice(1).map((s) => [s, readFileSync(join(dir, s))] as const)
  t.is((await rejection(DurableKernel.open({ dir, invariant: supply, backend }))).code, 'WAL_CORRUPT')

  const k = await DurableKernel.open({ dir, invariant: supply, backend, truncateCorrupt: true })
  const r = k.recovery
  t.is(k.stats.admitted, 10)
  t.truthy(r.truncatedAt)
  t.regex(r.truncateReason ?? '', /checksum/)
  t.is(r.movedAside.length, segs.length)
  t.is(r.bytesCut, original.length - cut + later.reduce((n, [, b]) => n + b.length, 0))
  t.log(JSON.stringify({ truncatedAt: r.truncatedAt, truncateReason: r.truncateReason, movedAside: r.movedAside }, null, 1))
  // every removed byte is still on disk, next to the log, in files the log does not read
  const aside = readdirSync(dir).filter((f) => f.endsWith('.corrupt'))
  t.is(aside.length, segs.length)
  const tail = aside.map((f) => readFileSync(join(dir, f)))
  t.true(tail.some((b) => b.equals(damaged.subarray(cut))), 'the cut tail of the first segment was kept')
  for (const [, bytes] of later) t.true(tail.some((b) => b.equals(bytes)), 'a later segment was kept whole')
  k.admit(supply.delta(5n), { id: hid('mv', 1000) })
  await k.close()
  const k2 = await DurableKernel.open({ dir, invariant: supply, backend })
  t.is(k2.stats.admitted, 11)
  await k2.close()
  t.true(inspect(dir).healthy)
})

test('truncateCorrupt after a checkpoint cuts only uncovered records and the directory reopens with any options', async (t) => {
  const dir = await thirtyWithCheckpoint(t)
  const [seg] = segments(dir)
  const file = join(dir, seg!)
  flipBit(file, headerLen(file) + 24 * REC + 40, 1) // record 25, after the checkpoint at 20
  const k = await DurableKernel.open({ dir, invariant: supply, backend, truncateCorrupt: true })
  t.is(k.stats.admitted, 24)
  t.is(supply.read(k.state).balance, sum(24))
  await k.close()
  for (const opts of [{}, { truncateCorrupt: true }]) {
    const again = await DurableKernel.open({ dir, invariant: supply, backend, ...opts })
    t.is(again.stats.admitted, 24)
    await again.close()
  }
})

// ---------------------------------------------------------------- item 3

async function thousand(t: ExecutionContext, checkpointAt?: number): Promise<string> {
  const dir = tempDir(t, 'ctfs-hard-insp-')
  const k = await DurableKernel.open({ dir, invariant: supply, backend, segmentBytes: 4096 })
  for (let i = 0; i < 1000; i++) {
    k.admit(supply.delta(1n), { id: hid('th', i) })
    if (i + 1 === checkpointAt) await k.checkpoint()
  }
  await k.close()
  return dir
}

test('inspect finds a missing first segment (no checkpoint): unhealthy, and `ctfs inspect` exits 1', async (t) => {
  const dir = await thousand(t)
  const segs = segments(dir)
  unlinkSync(join(dir, segs[0]!))
  const r = inspect(dir)
  t.false(r.healthy)
  t.true(r.damage.some((l) => /gap|missing/.test(l)), r.damage.join('\n'))
  t.log(r.damage.join('\n'))
  t.is(await codeOf(DurableKernel.open({ dir, invariant: supply, backend, segmentBytes: 4096 })), 'WAL_CORRUPT')
  const cli = join(here, '..', 'src', 'cli', 'main.ts')
  const code = await new Promise<number | null>((resolve) => {
    const c = spawn(process.execPath, ['--import', '@oxc-node/core/register', cli, 'inspect', dir], { stdio: 'ignore' })
    c.on('exit', resolve)
  })
  t.is(code, 1)
})

test('a crash between a roll\'s sync and the spare\'s rename: the spare with a valid header is the newest segment', async (t) => {
  // A roll onto the spare (`wal-spare.tmp`) acknowledges the segment's first
  // facts after one sync of header + records, then renames it: a crash in
  // between leaves acknowledged facts under the spare's name.
  const dir = await thousand(t)
  const segs = segments(dir)
  const newest = segs.at(-1)!
  const spare = join(dir, 'wal-spare.tmp')
  const bytes = readFileSync(join(dir, newest))
  const lost = copyDir(t, dir)
  const damaged = copyDir(t, dir)
  for (const d of [dir, lost, damaged]) unlinkSync(join(d, newest))
  writeFileSync(spare, bytes)
  t.true(inspect(dir).healthy, inspect(dir).damage.join('\n'))
  const k = await DurableKernel.open({ dir, invariant: supply, backend, segmentBytes: 4096 })
  t.is(k.stats.admitted, 1000)
  t.is(k.contains(hid('th', 999)), 'yes')
  t.false(existsSync(spare))
  t.deepEqual(segments(dir), segs, 'renamed to its segment\'s name')
  await k.close()
  // A header of zeros: no sync of it completed, so nothing in it was acknowledged.
  const zeroed = Buffer.from(bytes)
  zeroed.fill(0, 0, 32)
  writeFileSync(join(lost, 'wal-spare.tmp'), zeroed)
  const k2 = await DurableKernel.open({ dir: lost, invariant: supply, backend, segmentBytes: 4096 })
  t.is(k2.stats.admitted, Number(newest.slice(4, 24)) - 1)
  t.false(existsSync(join(lost, 'wal-spare.tmp')))
  await k2.close()
  // A damaged header (not zeros) with records after it: corruption, found by inspect and open alike.
  const bad = Buffer.from(bytes)
  bad[20] = (bad[20] as number) ^ 0x40
  writeFileSync(join(damaged, 'wal-spare.tmp'), bad)
  const r = inspect(damaged)
  t.false(r.healthy)
  t.true(r.damage.some((l) => l.includes('wal-spare.tmp')), r.damage.join('\n'))
  t.is(await codeOf(DurableKernel.open({ dir: damaged, invariant: supply, backend, segmentBytes: 4096 })), 'WAL_CORRUPT')
  t.true(existsSync(join(damaged, 'wal-spare.tmp')), 'a refused open changes nothing')
})

test('inspect(dir).healthy === (open succeeds) on damaged directories', async (t) => {
  const plain = await thousand(t)
  const ckpt = await thousand(t, 600)
  type Case = [string, (d: string) => void, InvariantSpec?]
  const seg = (d: string, i: number): string => join(d, segments(d).at(i)!)
  const firstSeq = (name: string): number => Number(name.slice(4, 24))
  /** The segment holding `seq`. */
  const segFor = (d: string, seq: number): string => join(d, segments(d).filter((s) => firstSeq(s) <= seq).at(-1)!)
  /** Removes every segment whose records all lie at or below `seq`. */
  const dropBefore = (d: string, seq: number): void => {
    const segs = segments(d)
    for (let i = 0; i + 1 < segs.length && firstSeq(segs[i + 1]!) <= seq + 1; i++) unlinkSync(join(d, segs[i]!))
  }
  const cases: Case[] = [
    ['healthy', () => {}],
    ['missing first segment', (d) => unlinkSync(seg(d, 0))],
    ['missing middle segment', (d) => unlinkSync(seg(d, 5))],
    ['corrupt middle record', (d) => flipBit(seg(d, 3), headerLen(seg(d, 3)) + REC * 2 + 30, 4)],
    ['torn tail', (d) => truncateSync(seg(d, -1), statSync(seg(d, -1)).size - 7)],
    ['header of the last segment torn', (d) => truncateSync(seg(d, -1), 20)],
    ['config from another invariant', () => {}, invariants.gCounter()],
  ]
  const ckptCases: Case[] = [
    ['checkpointed: healthy', () => {}],
    ['checkpointed: corrupt record covered by the checkpoint', (d) => flipBit(segFor(d, 300), headerLen(segFor(d, 300)) + 5, 2)],
    ['checkpointed: corrupt record after the checkpoint', (d) => flipBit(segFor(d, 700), headerLen(segFor(d, 700)) + 5, 2)],
    ['checkpointed: a segment before the checkpoint missing', (d) => unlinkSync(segFor(d, 300))],
    ['checkpointed: the segment after the checkpoint missing', (d) => unlinkSync(segFor(d, 700))],
    ['checkpointed: corrupt newest checkpoint, full log there', (d) => flipBit(join(d, checkpoints(d).at(-1)!), 100, 1)],
    ['checkpointed: every segment the checkpoint covers removed', (d) => dropBefore(d, 600)],
    ['checkpointed: the same, and the checkpoint corrupt', (d) => {
      dropBefore(d, 600)
      flipBit(join(d, checkpoints(d).at(-1)!), 100, 1)
    }],
    ['checkpointed: log segments after the checkpoint removed too', (d) => dropBefore(d, 900)],
    ['checkpointed: config from another invariant', () => {}, invariants.max()],
  ]
  const rows: string[] = []
  for (const [src, list] of [
    [plain, cases],
    [ckpt, ckptCases],
  ] as const) {
    for (const [label, damage, other] of list) {
      const d = copyDir(t, src)
      damage(d)
      const invariant = other ?? supply
      const report = inspect(d, { invariant })
      const opened = await codeOf(DurableKernel.open({ dir: d, invariant, backend, segmentBytes: 4096 }))
      rows.push(`${label}: inspect healthy=${report.healthy}, open ${opened}`)
      t.is(report.healthy, opened === 'OK', `${label}: inspect says healthy=${report.healthy} but open gave ${opened}\n${report.damage.join('\n')}`)
      if (!report.healthy) t.true(report.damage.length > 0, label)
    }
  }
  t.log(rows.join('\n'))
})

test('inspect reports the recorded configuration, and a mismatch only when given another one', (t) => {
  return (async () => {
    const dir = await boundedDir(t, true)
    const r = inspect(dir)
    t.true(r.healthy)
    t.regex(r.config ?? '', /totalSupply\{initial=0,min=0,max=∞\}/)
    t.regex(r.text, /totalSupply/)
    t.true(inspect(dir, { invariant: bounded() }).healthy)
    const bad = inspect(dir, { invariant: invariants.uniqueness() })
    t.false(bad.healthy)
    t.true(bad.damage.some((l) => /CONFIG_MISMATCH|configuration/.test(l)), bad.damage.join('\n'))
  })()
})

// ---------------------------------------------------------------- item 6

test('a DurableKernel dropped without close() is released after gc: fds, threads and the lock', async (t) => {
  const base = tempDir(t, 'ctfs-hard-gc-')
  const child = spawn(process.execPath, ['--expose-gc', '--import', '@oxc-node/core/register', join(here, 'fixtures', 'gc-child.ts'), base], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  child.stdout.on('data', (b: Buffer) => (out += b.toString()))
  child.stderr.on('data', (b: Buffer) => (err += b.toString()))
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  t.is(code, 0, err)
  const r = JSON.parse(out) as { start: { fds: number; threads: number }; open: { fds: number; threads: number }; after: { fds: number; threads: number }; reopened: number; facts: number }
  t.log(JSON.stringify(r))
  t.true(r.open.fds > r.start.fds + 20, 'the kernels were really open')
  t.true(r.after.fds <= r.start.fds + 3, `fds ${r.start.fds} -> ${r.after.fds}`)
  t.true(r.after.threads <= r.start.threads + 2, `threads ${r.start.threads} -> ${r.after.threads}`)
  t.is(r.reopened, 50) // every directory unlocked
  t.is(r.facts, 50) // and the fact queued before the drop was flushed
})

// ---------------------------------------------------------------- item 8

test('checkpoint() after the data directory was removed rejects with IO_ERROR', async (t) => {
  const dir = tempDir(t, 'ctfs-hard-rm-')
  const k = await DurableKernel.open({ dir, invariant: supply, backend })
  k.admit(supply.delta(1n))
  await k.flush()
  rmSync(dir, { recursive: true, force: true })
  t.false(existsSync(dir))
  const e = await t.throwsAsync(k.checkpoint(), { instanceOf: CtfsError })
  t.is(e.code, 'IO_ERROR')
  t.log(e.message)
  await k.close().catch(() => {})
})
