// A child process's output as whole lines: a pipe delivers chunks, and a
// chunk may end inside a line (or inside a multi-byte character).
import type { Readable } from 'node:stream'

/** Calls `onLine` for each non-empty line of `stream`, the last one (without a newline) at its end. */
export function eachLine(stream: Readable, onLine: (line: string) => void): void {
  let rest = ''
  const emit = (line: string) => {
    if (line.length > 0) onLine(line)
  }
  stream.setEncoding('utf8')
  stream.on('data', (text: string) => {
    const parts = (rest + text).split('\n')
    rest = parts.pop() ?? ''
    for (const line of parts) emit(line)
  })
  stream.on('end', () => emit(rest))
}
