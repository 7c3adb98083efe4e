#!/usr/bin/env node
// The `ctfs` command line.
import { inspect } from '../durable.ts'
import { isCtfsError } from '../errors.ts'
import { runDemo } from './demo.ts'
import { nodeCommand } from './node.ts'
import { clusterDemoCommand } from './cluster-demo.ts'

const USAGE = `usage: ctfs <command>

commands:
  demo [--facts N]   admit a stream of facts into bloom, exact and escalating kernels
                     and show what each one decides (default N = 300000)
  inspect <dir>      verify a durable kernel's data directory read-only (log segments,
                     sequence range, checkpoints) and print a report; exit code 0 when
                     healthy, 1 when damage was found, 2 on usage or I/O errors
  node [options]     run one replica of a cluster (ctfs node --help)
  cluster-demo       three replica processes on 127.0.0.1 converge through a crash (npm start)
  help               this text`

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv
  switch (cmd) {
    case 'demo': {
      const i = rest.indexOf('--facts')
      const facts = i >= 0 ? Number(rest[i + 1]) : 300_000
      if (!Number.isSafeInteger(facts) || facts < 1000) {
        console.error('--facts must be an integer >= 1000')
        return 2
      }
      await runDemo({ facts })
      return 0
    }
    case 'inspect': {
      if (rest.length !== 1 || rest[0]!.startsWith('-')) {
        console.error(`usage: ctfs inspect <dir>`)
        return 2
      }
      let report
      try {
        report = inspect(rest[0]!)
      } catch (e) {
        console.error(`ctfs inspect: ${isCtfsError(e) ? e.message : String(e)}`)
        return 2
      }
      console.log(report.text)
      return report.healthy ? 0 : 1
    }
    case 'node':
      return nodeCommand(rest)
    case 'cluster-demo':
      return clusterDemoCommand(rest)
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      console.log(USAGE)
      return cmd === undefined ? 2 : 0
    default:
      console.error(`unknown command '${cmd}'\n\n${USAGE}`)
      return 2
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(err)
    process.exit(1)
  },
)
