// Marks the package's command-line entry points (package.json "bin")
// executable after `tsc` wrote them: npm sets the bit when it links an
// installed package's bins, but `npx ctfs` inside a clone of this
// repository runs dist/cli/main.js as tsc left it, and fails with
// "Permission denied" when the bit is missing.
'use strict'
const { chmodSync, existsSync } = require('node:fs')
const { join } = require('node:path')

const root = join(__dirname, '..')
const pkg = require(join(root, 'package.json'))
const bins = typeof pkg.bin === 'string' ? [pkg.bin] : Object.values(pkg.bin ?? {})
for (const rel of bins) {
  const file = join(root, rel)
  if (!existsSync(file)) throw new Error(`bin ${rel} was not built (package.json "bin")`)
  if (process.platform !== 'win32') chmodSync(file, 0o755)
}
