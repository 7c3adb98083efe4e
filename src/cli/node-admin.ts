// The local admin interface of `ctfs node`: JSON over HTTP on a loopback
// address (it has no authentication, so it never listens elsewhere).
//
//   POST /admit            one fact, or { facts: [...] } (a batch); durable
//                          kernels answer once the facts are durable
//                          (?durable=0: at once)
//   GET  /state            the decoded state and the digests
//   GET  /status           digests, counters, peers, quota, durability
//   POST /contains         { ids: [hex] } -> { missing: [hex] }
//   GET  /synced           waits for convergence (?timeoutMs=&peers=all)
//   POST /peers            { id, address } adds or moves a peer
//   DELETE /peers/<id>     removes a peer
//   POST /checkpoint       durable kernels: writes a checkpoint
//   POST /stop             closes the node and exits
import http, { type IncomingMessage, type ServerResponse } from 'node:http'

import { FactBatch, type AdmitOptions, type FactInput } from '../batch.ts'
import type { ClusterNode } from '../cluster/node.ts'
import { parsePeer } from '../cluster/peers.ts'
import { DurableKernel } from '../durable.ts'
import { CtfsError, isCtfsError } from '../errors.ts'
import { factIdFromHex, factIdToHex } from '../fact-id.ts'
import type { InvariantSpec } from '../invariants/index.ts'
import type { Kernel } from '../kernel.ts'
import { factFromJson, FactJsonError, stateJson, toJson } from './fact-json.ts'

/** What the admin interface serves. */
export interface AdminContext {
  kernel: Kernel<InvariantSpec>
  node: ClusterNode<InvariantSpec>
  /** Local admissions: admitted, refused by code, acknowledged durable. */
  counters: LocalCounters
  /** Everything about the node for /status. */
  status(): unknown
  /** Stops the node (POST /stop). */
  stop(): void
}

/** Counters of local admissions through the admin interface. */
export interface LocalCounters {
  admitted: number
  durable: number
  refused: Record<string, number>
}

const MAX_BODY = 16 << 20

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code = 'INVALID_ARGUMENT',
  ) {
    super(message)
  }
}

function readBody(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (c: Buffer) => {
      size += c.length
      if (size > MAX_BODY) {
        reject(new HttpError(413, `body above ${MAX_BODY} bytes`))
        req.destroy()
        return
      }
      chunks.push(c)
    })
    req.on('error', reject)
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8')
      if (text.trim() === '') return resolve({})
      try {
        resolve(JSON.parse(text))
      } catch (e) {
        reject(new HttpError(400, `body is not JSON: ${(e as Error).message}`))
      }
    })
  })
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = toJson(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

function members(spec: InvariantSpec): number {
  return (spec as { names?: readonly string[] }).names?.length ?? 1
}

/** After INSUFFICIENT_QUOTA: ask a peer for more of every escrowed bound (the protocol sends one request per bound at a time). */
export function askQuota(ctx: Pick<AdminContext, 'kernel' | 'node'>): void {
  const r = ctx.kernel.replica
  if (r === null) return
  for (let m = 0; m < members(ctx.kernel.invariant); m++) {
    for (const side of ['down', 'up'] as const) {
      if (r.quotas(side, m) !== null) ctx.node.needQuota(1n, side, m)
    }
  }
}

function refused(ctx: AdminContext, code: string): void {
  ctx.counters.refused[code] = (ctx.counters.refused[code] ?? 0) + 1
  if (code === 'INSUFFICIENT_QUOTA') askQuota(ctx)
}

async function admitOne(ctx: AdminContext, body: unknown, durable: boolean): Promise<[number, unknown]> {
  const f = factFromJson(ctx.kernel.invariant, body)
  const k = ctx.kernel
  try {
    let id
    if (durable && k instanceof DurableKernel) {
      id = await k.admitDurable(f.payload, optionsOf(f))
      ctx.counters.admitted++
      ctx.counters.durable++
    } else {
      id = k.admit(f.payload, optionsOf(f))
      ctx.counters.admitted++
    }
    ctx.node.flushSoon()
    return [200, { id: factIdToHex(id), durable: durable && k instanceof DurableKernel }]
  } catch (e) {
    if (!isCtfsError(e)) throw e
    refused(ctx, e.code)
    return [409, { code: e.code, message: e.message }]
  }
}

/** The admission options of a parsed fact (its id and dependencies; not its payload). */
function optionsOf(f: FactInput): AdmitOptions {
  const o: AdmitOptions = {}
  if (f.id !== undefined) o.id = f.id
  if (f.deps !== undefined) o.deps = f.deps
  return o
}

async function admitMany(ctx: AdminContext, list: unknown[], durable: boolean): Promise<[number, unknown]> {
  const batch = new FactBatch()
  for (let i = 0; i < list.length; i++) {
    try {
      const f = factFromJson(ctx.kernel.invariant, list[i])
      batch.add(f.payload, optionsOf(f))
    } catch (e) {
      throw new HttpError(400, `facts[${i}]: ${(e as Error).message}`)
    }
  }
  const k = ctx.kernel
  const r = k.admitBatch(batch)
  ctx.counters.admitted += r.admitted
  const ids: Array<string | null> = []
  for (let i = 0; i < r.length; i++) ids.push(r.ok(i) ? factIdToHex(r.id(i)!) : null)
  const errors = r.errors.map(({ index, error }) => {
    refused(ctx, error.code)
    return { index, code: error.code, message: error.message }
  })
  const isDurable = durable && k instanceof DurableKernel
  if (isDurable) {
    await (k as DurableKernel<InvariantSpec>).flush()
    ctx.counters.durable += r.admitted
  }
  ctx.node.flushSoon()
  return [200, { admitted: r.admitted, ids, errors, durable: isDurable }]
}

async function route(ctx: AdminContext, req: IncomingMessage, url: URL): Promise<[number, unknown]> {
  const path = url.pathname
  const method = req.method ?? 'GET'
  if (method === 'POST' && path === '/admit') {
    const body = await readBody(req)
    const durable = url.searchParams.get('durable') !== '0'
    if (typeof body === 'object' && body !== null && Array.isArray((body as { facts?: unknown }).facts)) {
      return admitMany(ctx, (body as { facts: unknown[] }).facts, durable)
    }
    return admitOne(ctx, body, durable)
  }
  if (method === 'GET' && path === '/state') {
    return [200, { state: stateJson(ctx.kernel.read()), digests: ctx.node.digests }]
  }
  if (method === 'GET' && path === '/status') return [200, ctx.status()]
  if (method === 'POST' && path === '/contains') {
    const body = (await readBody(req)) as { ids?: unknown }
    if (!Array.isArray(body.ids)) throw new HttpError(400, 'expected { ids: [hex, ...] }')
    const missing: string[] = []
    for (const h of body.ids) {
      if (typeof h !== 'string') throw new HttpError(400, 'ids must be hex strings')
      if (ctx.kernel.contains(factIdFromHex(h)) !== 'yes') missing.push(h)
    }
    return [200, { checked: body.ids.length, missing }]
  }
  if (method === 'GET' && path === '/synced') {
    const timeoutMs = Number(url.searchParams.get('timeoutMs') ?? 30_000)
    const peers = url.searchParams.get('peers') === 'all' ? 'all' : 'reachable'
    try {
      return [200, await ctx.node.synced({ timeoutMs, peers })]
    } catch (e) {
      if (isCtfsError(e)) return [504, { code: e.code, message: e.message }]
      throw e
    }
  }
  if (method === 'POST' && path === '/peers') {
    const body = await readBody(req)
    ctx.node.addPeer(parsePeer(body as never, 'peer'))
    return [200, { peers: ctx.node.stats.transport.peers }]
  }
  const del = /^\/peers\/(\d+)$/.exec(path)
  if (method === 'DELETE' && del !== null) {
    ctx.node.removePeer(BigInt(del[1] as string))
    return [200, { peers: ctx.node.stats.transport.peers }]
  }
  if (method === 'POST' && path === '/checkpoint') {
    const k = ctx.kernel
    if (!(k instanceof DurableKernel)) throw new HttpError(400, 'this node keeps its kernel in memory (no --dir)')
    return [200, await (k as DurableKernel<InvariantSpec>).checkpoint()]
  }
  if (method === 'POST' && path === '/stop') {
    setImmediate(() => ctx.stop())
    return [200, { stopping: true }]
  }
  throw new HttpError(404, `no route ${method} ${path}`, 'NOT_FOUND')
}

/** Starts the admin server on a loopback `host:port`; resolves with the bound port. */
export async function startAdmin(ctx: AdminContext, host: string, port: number): Promise<{ server: http.Server; port: number }> {
  if (!/^(127\.\d+\.\d+\.\d+|localhost|::1)$/.test(host)) {
    throw new CtfsError('INVALID_ARGUMENT', `--admin must be a loopback address (127.x.x.x, localhost or ::1): the admin interface has no authentication; got ${host}`)
  }
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://admin')
    route(ctx, req, url).then(
      ([status, body]) => send(res, status, body),
      (e: unknown) => {
        if (e instanceof HttpError) send(res, e.status, { code: e.code, message: e.message })
        else if (e instanceof FactJsonError || e instanceof TypeError || e instanceof RangeError) send(res, 400, { code: 'INVALID_ARGUMENT', message: (e as Error).message })
        else if (isCtfsError(e)) send(res, 409, { code: e.code, message: e.message })
        else send(res, 500, { code: 'INTERNAL', message: String((e as Error)?.message ?? e) })
      },
    )
  })
  server.on('clientError', (_e, socket) => socket.destroy())
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen({ host, port }, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const a = server.address()
  return { server, port: typeof a === 'object' && a !== null ? a.port : port }
}
