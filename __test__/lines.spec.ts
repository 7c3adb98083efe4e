// eachLine: a child's output read as whole lines, whatever the chunks.
import { PassThrough } from 'node:stream'

import test from 'ava'

import { eachLine } from '../src/cli/lines.ts'

test('a line split across chunks, a character split across chunks, a last line without a newline', async (t) => {
  const s = new PassThrough()
  const got: string[] = []
  eachLine(s, (l) => got.push(l))
  const text = Buffer.from('admin http://127.0.0.1:4000\n\nlisten EADDRINUSE é€\nlast')
  // one byte per chunk: every line and every multi-byte character is cut
  for (const b of text) s.write(Buffer.from([b]))
  s.end()
  await new Promise((r) => s.on('end', r))
  t.deepEqual(got, ['admin http://127.0.0.1:4000', 'listen EADDRINUSE é€', 'last'])
})
