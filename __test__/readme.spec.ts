// Runs every ```ts example of README.md. Inside an example,
//   expr // => value      asserts deepStrictEqual(expr, value)
//   stmt // throws CODE   asserts that stmt throws an error with that code
// and `from 'ctfs'` resolves to this checkout's sources.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

import test from 'ava'

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..')
const outDir = join(here, '.readme')
const entry = pathToFileURL(join(root, 'src', 'index.ts')).href

export function examples(markdown: string): string[] {
  return [...markdown.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!)
}

export function instrument(code: string): string {
  const lines = code.split('\n').map((line) => {
    const eq = /^(\s*)(.+?)\s*\/\/\s*=>\s*(.+)$/.exec(line)
    if (eq) return `${eq[1]}assert.deepStrictEqual((${eq[2]}), (${eq[3]}))`
    const th = /^(\s*)(.+?)\s*\/\/\s*throws\s+([A-Z_]+)\s*$/.exec(line)
    if (th) return `${th[1]}assert.throws(() => { ${th[2]} }, (e: any) => e?.code === '${th[3]}')`
    return line
  })
  return `import assert from 'node:assert/strict'\n` + lines.join('\n').replaceAll(`from 'ctfs'`, `from '${entry}'`)
}

const blocks = examples(readFileSync(join(root, 'README.md'), 'utf8'))

test('the README has examples with assertions', (t) => {
  t.true(blocks.length >= 8)
  t.true(blocks.join('\n').split('// =>').length > 15)
})

mkdirSync(outDir, { recursive: true })
blocks.forEach((code, i) => {
  const first = code.split('\n').find((l) => l.trim() && !l.startsWith('import')) ?? ''
  test.serial(`README example ${i + 1}: ${first.slice(0, 60)}`, async (t) => {
    const file = join(outDir, `example-${i + 1}.ts`)
    writeFileSync(file, instrument(code))
    const log = console.log
    console.log = () => {}
    try {
      await import(pathToFileURL(file).href)
    } finally {
      console.log = log
    }
    t.pass()
  })
})
