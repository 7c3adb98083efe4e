// Runs every ```ts example of README.md. Inside an example,
//   expr // => value      asserts deepStrictEqual(expr, value)
//   stmt // throws CODE   asserts that stmt throws an error with that code
//   // prints: TEXT       asserts that the last console.log printed TEXT
//                         (`…` stands for a run of non-space characters, e.g. an id)
// and `from 'ctfs'` resolves to this checkout's sources.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { format } from 'node:util'

import test from 'ava'

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..')
const outDir = join(here, '.readme')
const entry = pathToFileURL(join(root, 'src', 'index.ts')).href
const prometheusEntry = pathToFileURL(join(root, 'src', 'prometheus.ts')).href

/** Where the examples' console.log output is collected while they run. */
const PRINTED = '__readmePrinted'

/** `new RegExp(...)` source matching TEXT exactly, `…` matching a run of non-space characters. */
export function printedPattern(text: string): string {
  const body = text
    .split('…')
    .map((part) => part.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&'))
    .join('\\S+?')
  return `new RegExp(${JSON.stringify(`^${body}$`)})`
}

export function examples(markdown: string): string[] {
  return [...markdown.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!)
}

export function instrument(code: string): string {
  const lines = code.split('\n').map((line) => {
    const eq = /^(\s*)(.+?)\s*\/\/\s*=>\s*(.+)$/.exec(line)
    if (eq) return `${eq[1]}assert.deepStrictEqual((${eq[2]}), (${eq[3]}))`
    const th = /^(\s*)(.+?)\s*\/\/\s*throws\s+([A-Z_]+)\s*$/.exec(line)
    if (th) return `${th[1]}assert.throws(() => { ${th[2]} }, (e: any) => e?.code === '${th[3]}')`
    const pr = /^(\s*)\/\/\s*prints:\s*(.+?)\s*$/.exec(line)
    if (pr) return `${pr[1]}assert.match(String((globalThis as any).${PRINTED}?.at(-1) ?? '(nothing printed)'), ${printedPattern(pr[2]!)})`
    return line
  })
  return `import assert from 'node:assert/strict'\n` + lines.join('\n').replaceAll(`from 'ctfs'`, `from '${entry}'`).replaceAll(`from 'ctfs/prometheus'`, `from '${prometheusEntry}'`)
}

const blocks = examples(readFileSync(join(root, 'README.md'), 'utf8'))

test('the README has examples with assertions', (t) => {
  t.true(blocks.length >= 8)
  t.true(blocks.join('\n').split('// =>').length > 15)
  t.true(blocks.join('\n').includes('// prints:'), 'the quick start shows a real error message')
})

test('a `// prints:` line checks the printed text, `…` standing for a run of non-space characters', (t) => {
  const re = (text: string) => new Function(`return ${printedPattern(text)}`)() as RegExp
  t.regex('INVARIANT_VIOLATION fact 3fa9c0 refused: 1 + (-5) = -4', re('INVARIANT_VIOLATION fact 3f… refused: 1 + (-5) = -4'))
  // the quick start's text before issue 8 did not match the real message
  t.notRegex('INVARIANT_VIOLATION fact 3fa9c0 refused: 1 + (-5) = -4', re('INVARIANT_VIOLATION fact 3f…: 1 + (-5) = -4'))
})

mkdirSync(outDir, { recursive: true })
blocks.forEach((code, i) => {
  const first = code.split('\n').find((l) => l.trim() && !l.startsWith('import')) ?? ''
  test.serial(`README example ${i + 1}: ${first.slice(0, 60)}`, async (t) => {
    const file = join(outDir, `example-${i + 1}.ts`)
    writeFileSync(file, instrument(code))
    const log = console.log
    const printed: string[] = []
    ;(globalThis as Record<string, unknown>)[PRINTED] = printed
    console.log = (...args: unknown[]) => void printed.push(format(...args))
    try {
      await import(pathToFileURL(file).href)
    } finally {
      console.log = log
      delete (globalThis as Record<string, unknown>)[PRINTED]
    }
    t.pass()
  })
})
