// The `ctfs` command line, spawned as a user runs it: --version, --help,
// <command> --help; a bad argument prints one line and exits 2, never a
// stack trace. (`ctfs inspect` on real directories is in durable.spec.ts.)
import { spawn } from 'node:child_process'
import net from 'node:net'
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import test from 'ava'

import { onFreePorts, writeKey } from '../src/cli/local-cluster.ts'
import { tempDir } from './helpers.ts'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const cli = join(root, 'src', 'cli', 'main.ts')
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }

function ctfs(...args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, ['--import', '@oxc-node/core/register', cli, ...args], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, CTFS_DEBUG: '' },
    })
    let out = ''
    let err = ''
    c.stdout.on('data', (b: Buffer) => (out += b.toString()))
    c.stderr.on('data', (b: Buffer) => (err += b.toString()))
    c.on('close', (code) => resolve({ code, out, err }))
  })
}

const lines = (s: string) => s.split('\n').filter((l) => l.length > 0)

test('ctfs --version / -v / version print the package version', async (t) => {
  for (const flag of ['--version', '-v', 'version']) {
    const r = await ctfs(flag)
    t.is(r.code, 0, flag)
    t.is(r.out.trim(), pkg.version, flag)
    t.is(r.err, '', flag)
  }
})

test('ctfs --help / -h / help list the commands and options; exit 0', async (t) => {
  for (const flag of ['--help', '-h', 'help']) {
    const r = await ctfs(flag)
    t.is(r.code, 0, flag)
    t.regex(r.out, /^usage: ctfs <command>/)
    for (const word of ['demo', 'inspect', '--version', '--help']) t.true(r.out.includes(word), `${flag}: ${word}`)
  }
  // no command at all: the usage on stderr, exit 2
  const none = await ctfs()
  t.is(none.code, 2)
  t.regex(none.err, /^usage: ctfs <command>/)
})

test('ctfs <command> --help and ctfs help <command>', async (t) => {
  for (const args of [['demo', '--help'], ['demo', '-h'], ['help', 'demo']]) {
    const r = await ctfs(...args)
    t.is(r.code, 0, args.join(' '))
    t.regex(r.out, /^usage: ctfs demo \[--facts N\]/, args.join(' '))
    t.regex(r.out, /--facts N {4}facts in the stream, 1000\.\.2000000/)
  }
  for (const args of [['inspect', '--help'], ['help', 'inspect']]) {
    const r = await ctfs(...args)
    t.is(r.code, 0, args.join(' '))
    t.regex(r.out, /^usage: ctfs inspect <dir>/, args.join(' '))
  }
})

// [arguments, the one line expected on stderr]
const bad: Array<[string[], RegExp]> = [
  [['demo', '--facts', '99999999999999'], /^ctfs demo: --facts must be an integer from 1000 to 2000000; got '99999999999999'$/],
  [['demo', '--facts', 'abc'], /^ctfs demo: --facts must be an integer from 1000 to 2000000; got 'abc'$/],
  [['demo', '--facts', '1e6'], /^ctfs demo: --facts must be an integer/],
  [['demo', '--facts', '-5'], /^ctfs demo: .*--facts/],
  [['demo', '--facts', '999'], /^ctfs demo: --facts must be an integer from 1000/],
  [['demo', '--facts'], /^ctfs demo: .*'--facts <value>' argument missing/],
  [['demo', '--fact', '5000'], /^ctfs demo: unknown option '--fact' \(see 'ctfs demo --help'\)$/],
  [['demo', 'now'], /^ctfs demo: unexpected argument 'now'$/],
  [['inspect'], /^ctfs inspect: missing <dir> \(usage: ctfs inspect <dir>\)$/],
  [['inspect', 'a', 'b'], /^ctfs inspect: expected one <dir>, got 2/],
  [['inspect', '--verbose', '.'], /^ctfs inspect: unknown option '--verbose'/],
  [['frobnicate'], /^ctfs: unknown command 'frobnicate': the commands are demo, inspect/],
  [['--frobnicate'], /^ctfs: unknown option '--frobnicate'/],
  [['help', 'frobnicate'], /^ctfs: no help for 'frobnicate'/],
  [['--version', 'extra'], /^ctfs: --version takes no arguments$/],
]

for (const [args, expected] of bad) {
  test(`ctfs ${args.join(' ')}: one line on stderr, exit 2, no stack trace`, async (t) => {
    const r = await ctfs(...args)
    t.is(r.code, 2, r.err)
    t.is(r.out, '')
    t.is(lines(r.err).length, 1, r.err)
    t.regex(r.err.trim(), expected)
    t.notRegex(r.err, /\n\s+at /)
  })
}

test('ctfs demo --facts 1_000 runs the demo (underscores allowed)', async (t) => {
  const r = await ctfs('demo', '--facts', '1_000')
  t.is(r.code, 0, r.err)
  t.regex(r.out, /── exact ──/)
  t.regex(r.out, /stream: 1,000 facts/)
})

test('ctfs node: a metrics port already taken is reported as such (the node closes what it opened, exits 1)', async (t) => {
  const busy = net.createServer()
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => busy.close(() => resolve())))
  const port = (busy.address() as net.AddressInfo).port
  const dir = tempDir(t, 'ctfs-cli-metrics-')
  const r = await ctfs('node', '--id', '1', '--listen', '127.0.0.1:0', '--peers', `2@127.0.0.1:${port}`, '--key-file', writeKey(dir), '--invariant', 'gCounter', '--admin', '127.0.0.1:0', '--metrics', `127.0.0.1:${port}`)
  t.is(r.code, 1, r.err)
  t.regex(r.err, /EADDRINUSE/)
  t.notRegex(r.err, /before initialization/)
})

test('onFreePorts: a start that finds a port taken runs again on new ports (three tries in all); other failures are not retried', async (t) => {
  const seen: number[][] = []
  const r = await onFreePorts(2, async (ports) => {
    seen.push(ports)
    if (seen.length < 3) throw new Error(seen.length === 1 ? `listen EADDRINUSE: address already in use 127.0.0.1:${ports[0]}` : 'bind: address already in use')
    return ports
  })
  t.is(seen.length, 3)
  t.deepEqual(r, seen[2])
  t.true(seen.flat().every((p) => p > 0))
  let tries = 0
  await t.throwsAsync(onFreePorts(1, async () => {
    tries++
    throw new Error('listen EADDRINUSE')
  }), { message: 'listen EADDRINUSE' })
  t.is(tries, 3, 'gives up after three tries')
  tries = 0
  await t.throwsAsync(onFreePorts(1, async () => {
    tries++
    throw new Error('something else')
  }), { message: 'something else' })
  t.is(tries, 1)
})
