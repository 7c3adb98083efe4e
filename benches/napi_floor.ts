// napi_floor: the controls every JS suite is a ratio to — an empty JS
// function call, the empty N-API call, N-API calls taking 1 and 3 byte slices
// through napi-rs's generated glue, and the same two through raw N-API
// callbacks (`floorRaw()`: exactly the calling convention of the admission
// fast path, `admitWithId(domain, id, payload, deps)`), and the admission
// crossing itself refused before any index work: a kernel's `admitScratch`
// with the id and an 8-byte payload copied into the scratch, where the
// kernel's maxPayloadBytes is 4 (PAYLOAD_TOO_LARGE, checked first), so the
// row is the crossing, the two copies and the binding, with no admission.
import { ERROR_CODES } from '../src/errors.ts'
import { scratchShape } from '../src/kernel.ts'
import { native } from '../src/native.ts'
import { fmtNs, runTask, type Row, type Samples, type TimedTask } from './common.ts'

export const SUITE = 'napi_floor'

/** Calls per sample: these are ~ns operations, far below the timer's grain. */
const CALLS = 1000

let sink = 0
const PAYLOAD_TOO_LARGE = ERROR_CODES.indexOf('PAYLOAD_TOO_LARGE')

// A plain empty function. V8 is free to inline it (and usually does): this
// is the cost of a JS call as JS code actually pays it.
function emptyFn(): void {}

export function runNapiFloor(s: Samples, log: (line: string) => void): Row[] {
  const a = new Uint8Array(32).fill(1)
  const b = new Uint8Array(16).fill(2)
  const c = new Uint8Array(0)
  const { floorNoop, floorOneSlice, floorThreeSlices } = native
  const raw = native.floorRaw()
  const refusing = new native.NativeKernel({ invariant: { kind: 'gCounter', initial: 0n }, causality: 'exact', maxPayloadBytes: 4 })
  const target = refusing.fastTarget(0)
  const fast = native.fastPath()
  const scratch = fast.scratch
  const admitScratch = fast.admitScratch
  if (scratch === undefined || admitScratch === undefined) throw new Error('napi_floor: this runtime offers no admission scratch')
  const id = new Uint8Array(32 * CALLS).fill(3)
  const ids = Array.from({ length: CALLS }, (_, i) => id.subarray(i * 32, i * 32 + 32))
  const payload = new Uint8Array(8).fill(1)
  const shape = scratchShape(payload.length, 0, true)
  const tasks: TimedTask[] = [
    {
      name: 'empty JS fn',
      opsPerSample: CALLS,
      note: 'inlinable by V8',
      loop: () => {
        for (let i = 0; i < CALLS; i++) emptyFn()
      },
    },
    {
      name: 'N-API floorNoop()',
      opsPerSample: CALLS,
      loop: () => {
        for (let i = 0; i < CALLS; i++) floorNoop()
      },
    },
    {
      name: 'N-API floorOneSlice(32B)',
      opsPerSample: CALLS,
      loop: () => {
        let s = 0
        for (let i = 0; i < CALLS; i++) s += floorOneSlice(a)
        sink += s
      },
    },
    {
      name: 'N-API floorThreeSlices(32B,16B,0B)',
      opsPerSample: CALLS,
      loop: () => {
        let s = 0
        for (let i = 0; i < CALLS; i++) s += floorThreeSlices(a, b, c)
        sink += s
      },
    },
    {
      name: 'raw N-API noop()',
      opsPerSample: CALLS,
      note: 'fast-path calling convention',
      loop: () => {
        let s = 0
        for (let i = 0; i < CALLS; i++) s += raw.noop()
        sink += s
      },
    },
    {
      name: 'raw N-API slices(n,32B,16B,0B)',
      opsPerSample: CALLS,
      note: 'shape of admitWithId',
      loop: () => {
        let s = 0
        for (let i = 0; i < CALLS; i++) s += raw.slices(0, a, b, c)
        sink += s
      },
    },
    {
      name: 'admitScratch refused before the index',
      opsPerSample: CALLS,
      note: 'id + payload copied in, PAYLOAD_TOO_LARGE',
      loop: () => {
        let s = 0
        for (let i = 0; i < CALLS; i++) {
          scratch.set(ids[i]!)
          scratch.set(payload, 32)
          s += admitScratch(target, shape)
        }
        if (s !== CALLS * PAYLOAD_TOO_LARGE) throw new Error(`napi_floor: expected every call refused with PAYLOAD_TOO_LARGE, got a status sum of ${s}`)
        sink += s
      },
    },
  ]
  const rows: Row[] = []
  for (const t of tasks) {
    rows.push(runTask(SUITE, t, s))
    log(`napi_floor: ${t.name}: p50 ${fmtNs(rows[rows.length - 1]!.p50Ns)}/call`)
  }
  if (sink < 0) console.log(sink)
  return rows
}
