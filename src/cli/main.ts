#!/usr/bin/env node
// The `ctfs` command line.
import { runDemo } from './demo.ts'

const USAGE = `usage: ctfs <command>

commands:
  demo [--facts N]   admit a stream of facts into bloom, exact and escalating kernels
                     and show what each one decides (default N = 300000)
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
