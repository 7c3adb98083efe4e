// Shared checks of JS arguments: byte arrays and option objects.
import { types } from 'node:util'

import { invalidArgValue } from './errors.ts'

/**
 * True only for a real Uint8Array (or Buffer): not a Proxy of one, not an
 * object whose prototype was set to `Uint8Array.prototype`, not another
 * typed array dressed as one. (`instanceof` accepts all three.)
 */
export const isUint8Array: (v: unknown) => v is Uint8Array = types.isUint8Array as (v: unknown) => v is Uint8Array

/**
 * Throws a TypeError (`ERR_INVALID_ARG_VALUE`) naming the first own key of
 * `options` that is not in `known`, with the closest known key as a
 * suggestion. Inherited keys are not checked.
 */
export function checkKeys(options: object, known: readonly string[], name = 'options'): void {
  for (const key in options) {
    if (!known.includes(key) && Object.hasOwn(options, key)) throw unknownKey(key, known, name)
  }
}

/** The error of an unknown option key (see {@link checkKeys}). */
export function unknownKey(key: string, known: readonly string[], name = 'options'): TypeError {
  const near = closest(key, known)
  const hint = near !== undefined ? `; did you mean '${near}'?` : ''
  const list = known.length > 0 ? ` (known keys: ${known.map((k) => `'${k}'`).join(', ')})` : ' (it takes no options)'
  return invalidArgValue(name, `has an unknown key '${key}'${hint}${list}`)
}

/** The known key nearest to `key` (case-insensitive edit distance ≤ 2, or a prefix), if any. */
function closest(key: string, known: readonly string[]): string | undefined {
  const k = key.toLowerCase()
  let best: string | undefined
  let bestD = 3
  for (const c of known) {
    const l = c.toLowerCase()
    const d = l === k ? 0 : l.startsWith(k) || k.startsWith(l) ? 1 : editDistance(k, l, bestD)
    if (d < bestD) {
      bestD = d
      best = c
    }
  }
  return best
}

/** Levenshtein distance, giving up (returning `limit`) once it reaches `limit`. */
function editDistance(a: string, b: string, limit: number): number {
  if (Math.abs(a.length - b.length) >= limit) return limit
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const cur = [i]
    let rowMin = i
    for (let j = 1; j <= b.length; j++) {
      const v = Math.min((prev[j] as number) + 1, (cur[j - 1] as number) + 1, (prev[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1))
      cur.push(v)
      if (v < rowMin) rowMin = v
    }
    if (rowMin >= limit) return limit
    prev = cur
  }
  return Math.min(prev[b.length] as number, limit)
}

