#!/usr/bin/env node
// The `ctfs` command line. Arguments are parsed with Node's util.parseArgs
// (strict: unknown options are errors). A usage error prints one line to
// stderr and exits 2; no stack traces unless CTFS_DEBUG=1.
import { createRequire } from 'node:module'
import { parseArgs, type ParseArgsConfig } from 'node:util'

import { inspect } from '../durable.ts'
import { isCtfsError } from '../errors.ts'
import { runDemo } from './demo.ts'
import { nodeCommand } from './node.ts'
import { clusterDemoCommand } from './cluster-demo.ts'

/** Bounds of `ctfs demo --facts`: below 1,000 nothing shows; above 2M the demo needs gigabytes. */
const DEMO_FACTS = { min: 1_000, max: 2_000_000, default: 300_000 }

const USAGE = `usage: ctfs <command> [options]

commands:
  demo [--facts N]   admit a stream of facts into bloom, exact and escalating kernels
                     and show what each one decides
  inspect <dir>      verify a durable kernel's data directory (read-only)
  node [options]     run one replica of a cluster (ctfs node --help)
  cluster-demo       three replica processes on 127.0.0.1 converge through a crash (npm start)
  help [command]     this text, or a command's

options:
  -h, --help         help (also after a command: ctfs demo --help)
  -v, --version      the version of ctfs

Exit codes: 0 success, 1 damage found (inspect) or an internal error, 2 usage or I/O error.`

type Options = NonNullable<ParseArgsConfig['options']>

interface Command {
  usage: string
  options: Options
  run(values: Record<string, string | boolean | (string | boolean)[] | undefined>, positionals: string[]): Promise<number>
  /** A command that parses its own arguments (with util.parseArgs). */
  raw?: (argv: string[]) => Promise<number>
}

/** A bad command line: printed as one line, `ctfs[ <command>]: <message>`, exit code 2. */
class UsageError extends Error {
  command: string | undefined
  constructor(message: string, command?: string) {
    super(message)
    this.command = command
  }
}

const help = { type: 'boolean', short: 'h' } as const

const COMMANDS: Record<string, Command> = {
  demo: {
    usage: `usage: ctfs demo [--facts N]

Admits one stream of N facts (random 32-byte ids, each depending on an earlier
fact) into a bloom, an exact and an escalating kernel, then tries an overdraft,
a missing dependency, a dependency on the first fact and a retry in each.

options:
  --facts N    facts in the stream, ${DEMO_FACTS.min}..${DEMO_FACTS.max} (default ${DEMO_FACTS.default})
  -h, --help   this text`,
    options: { facts: { type: 'string' }, help },
    async run(values, positionals) {
      if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`)
      const facts = values.facts === undefined ? DEMO_FACTS.default : integerArg('--facts', values.facts as string, DEMO_FACTS.min, DEMO_FACTS.max)
      await runDemo({ facts })
      return 0
    },
  },
  inspect: {
    usage: `usage: ctfs inspect <dir>

Verifies a durable kernel's data directory read-only — log segments, the
sequence range, checkpoints — and prints a report. Exit code 0 when healthy,
1 when damage was found, 2 on usage or I/O errors.

options:
  -h, --help   this text`,
    options: { help },
    async run(_values, positionals) {
      if (positionals.length !== 1) {
        throw new UsageError(`${positionals.length === 0 ? 'missing <dir>' : `expected one <dir>, got ${positionals.length}`} (usage: ctfs inspect <dir>)`)
      }
      let report
      try {
        report = inspect(positionals[0] as string)
      } catch (e) {
        const msg = oneLine(e)
        console.error(`ctfs inspect: ${isCtfsError(e) && !msg.startsWith(e.code) ? `${e.code} ${msg}` : msg}`)
        return 2
      }
      console.log(report.text)
      return report.healthy ? 0 : 1
    },
  },
  node: {
    usage: 'usage: ctfs node [options] (see ctfs node --help)',
    options: {},
    run: async () => 2,
    raw: nodeCommand,
  },
  'cluster-demo': {
    usage: 'usage: ctfs cluster-demo [options] (see ctfs cluster-demo --help)',
    options: {},
    run: async () => 2,
    raw: clusterDemoCommand,
  },
}

/** A decimal integer argument (underscores allowed: 1_000_000) in [min, max]. */
function integerArg(name: string, text: string, min: number, max: number): number {
  const n = /^\d[\d_]*$/.test(text) ? Number(text.replaceAll('_', '')) : NaN
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`${name} must be an integer from ${min} to ${max}; got '${text}'`)
  }
  return n
}

function version(): string {
  const pkg = createRequire(import.meta.url)('../../package.json') as { version: string }
  return pkg.version
}

function oneLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0] ?? ''
}

async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv
  if (first === undefined) {
    console.error(USAGE)
    return 2
  }
  if (first === '-v' || first === '--version' || first === 'version') {
    if (rest.length > 0) throw new UsageError(`${first} takes no arguments`)
    console.log(version())
    return 0
  }
  if (first === '-h' || first === '--help' || first === 'help') {
    const topic = rest[0]
    if (topic === undefined) console.log(USAGE)
    else if (Object.hasOwn(COMMANDS, topic)) console.log((COMMANDS[topic] as Command).usage)
    else throw new UsageError(`no help for '${topic}': the commands are ${Object.keys(COMMANDS).join(', ')}`)
    return 0
  }
  if (first.startsWith('-')) throw new UsageError(`unknown option '${first}' (see 'ctfs --help')`)
  if (!Object.hasOwn(COMMANDS, first)) throw new UsageError(`unknown command '${first}': the commands are ${Object.keys(COMMANDS).join(', ')} (see 'ctfs --help')`)
  const cmd = COMMANDS[first] as Command
  if (cmd.raw !== undefined) return cmd.raw(rest)
  let parsed
  try {
    parsed = parseArgs({ args: rest, options: cmd.options, allowPositionals: true, strict: true })
  } catch (e) {
    const unknown = /^Unknown option '([^']+)'/.exec(oneLine(e))
    throw new UsageError(`${unknown !== null ? `unknown option '${unknown[1]}'` : oneLine(e)} (see 'ctfs ${first} --help')`, first)
  }
  if (parsed.values.help === true) {
    console.log(cmd.usage)
    return 0
  }
  try {
    return await cmd.run(parsed.values, parsed.positionals)
  } catch (e) {
    if (e instanceof UsageError) e.command ??= first
    throw e
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof UsageError) {
      console.error(`ctfs${err.command !== undefined ? ` ${err.command}` : ''}: ${err.message}`)
      process.exit(2)
    }
    console.error(`ctfs: internal error: ${oneLine(err)}`)
    if (process.env.CTFS_DEBUG === '1') console.error(err)
    process.exit(1)
  },
)
