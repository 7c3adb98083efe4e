// Membership input: peer specs ('2@127.0.0.1:7002' or { id, address }),
// host:port addresses, and the small JSON cluster file.
import { readFileSync } from 'node:fs'

import { CtfsError, invalidArgType, outOfRange } from '../errors.ts'
import { nodeId } from '../escrow.ts'

/** A host and a TCP port. */
export interface Address {
  host: string
  port: number
}

/** A peer of the cluster: its node id and where it listens. */
export interface PeerAddress {
  id: bigint
  address: Address
}

/** How a peer may be given: `'2@127.0.0.1:7002'` or `{ id, address }`. */
export type PeerSpec = string | { id: bigint | number; address: string | Address }

/** Parses `host:port` (`[v6]:port` for IPv6); `port` may be 0 (any free port). */
export function parseAddress(v: string | Address, name = 'address'): Address {
  if (typeof v === 'object' && v !== null) {
    if (typeof v.host !== 'string' || v.host.length === 0) throw invalidArgType(`${name}.host`, 'a host name or IP address', v.host)
    return { host: v.host, port: checkPort(v.port, `${name}.port`) }
  }
  if (typeof v !== 'string') throw invalidArgType(name, "a 'host:port' string or { host, port }", v)
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(v.trim())
  if (m === null) throw outOfRange(name, "'host:port' (e.g. '127.0.0.1:7001')", v)
  return { host: (m[1] ?? m[2]) as string, port: checkPort(Number(m[3]), `${name} port`) }
}

function checkPort(p: unknown, name: string): number {
  if (typeof p !== 'number' || !Number.isInteger(p) || p < 0 || p > 65535) throw outOfRange(name, 'a port in [0, 65535]', p)
  return p
}

/** `host:port` of an address. */
export function formatAddress(a: Address): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`
}

/** Parses one peer: `'2@127.0.0.1:7002'` or `{ id: 2, address: '127.0.0.1:7002' }`. */
export function parsePeer(v: PeerSpec, name = 'peer'): PeerAddress {
  if (typeof v === 'string') {
    const at = v.indexOf('@')
    if (at <= 0) {
      throw outOfRange(name, "'id@host:port' (e.g. '2@127.0.0.1:7002'): node ids route frames, so every peer needs one", v)
    }
    const idText = v.slice(0, at).trim()
    if (!/^\d+$/.test(idText)) throw outOfRange(`${name} id`, 'a non-negative integer', idText)
    return { id: nodeId(BigInt(idText), `${name} id`), address: parseAddress(v.slice(at + 1), `${name} address`) }
  }
  if (typeof v !== 'object' || v === null) throw invalidArgType(name, "'id@host:port' or { id, address }", v)
  return { id: nodeId(v.id, `${name}.id`), address: parseAddress(v.address, `${name}.address`) }
}

/** Parses a list of peers; refuses duplicate ids and `local` itself. */
export function parsePeers(list: readonly PeerSpec[], local: bigint, name = 'peers'): PeerAddress[] {
  if (!Array.isArray(list)) throw invalidArgType(name, 'an array of peers', list)
  const seen = new Set<bigint>()
  return list.map((p, i) => {
    const peer = parsePeer(p, `${name}[${i}]`)
    if (peer.id === local) throw outOfRange(`${name}[${i}]`, `a node other than the local node ${local}`, p)
    if (seen.has(peer.id)) throw outOfRange(`${name}[${i}]`, 'a node listed once', p)
    seen.add(peer.id)
    return peer
  })
}

/**
 * The cluster file: every node with its address, and optionally the cluster
 * name and the key file, e.g.
 *
 * ```json
 * { "cluster": "demo", "keyFile": "./cluster.key",
 *   "nodes": [{ "id": 1, "address": "127.0.0.1:7001" }, { "id": 2, "address": "127.0.0.1:7002" }] }
 * ```
 *
 * `nodes` may also be a list of `'id@host:port'` strings.
 */
export interface ClusterFile {
  cluster?: string
  keyFile?: string
  nodes: PeerAddress[]
}

/** Reads and checks a {@link ClusterFile}. */
export function loadClusterFile(path: string): ClusterFile {
  let raw: unknown
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'))
  } catch (e) {
    throw new CtfsError('INVALID_ARGUMENT', `cluster file ${path}: ${(e as Error).message}`)
  }
  if (typeof raw !== 'object' || raw === null || !Array.isArray((raw as { nodes?: unknown }).nodes)) {
    throw new CtfsError('INVALID_ARGUMENT', `cluster file ${path}: expected { "nodes": [{ "id": 1, "address": "host:port" }, ...] }`)
  }
  const r = raw as { cluster?: unknown; keyFile?: unknown; nodes: PeerSpec[] }
  const seen = new Set<bigint>()
  const nodes = r.nodes.map((n, i) => {
    const p = parsePeer(n, `${path}: nodes[${i}]`)
    if (seen.has(p.id)) throw new CtfsError('INVALID_ARGUMENT', `cluster file ${path}: node ${p.id} is listed twice`)
    seen.add(p.id)
    return p
  })
  const out: ClusterFile = { nodes }
  if (r.cluster !== undefined) {
    if (typeof r.cluster !== 'string') throw new CtfsError('INVALID_ARGUMENT', `cluster file ${path}: "cluster" must be a string`)
    out.cluster = r.cluster
  }
  if (r.keyFile !== undefined) {
    if (typeof r.keyFile !== 'string') throw new CtfsError('INVALID_ARGUMENT', `cluster file ${path}: "keyFile" must be a path`)
    out.keyFile = r.keyFile
  }
  return out
}

/**
 * Reads a cluster key file: 64 hex characters (surrounding whitespace
 * ignored) or exactly 32 raw bytes.
 */
export function readKeyFile(path: string): Uint8Array {
  let bytes: Buffer
  try {
    bytes = readFileSync(path)
  } catch (e) {
    throw new CtfsError('IO_ERROR', `key file ${path}: ${(e as Error).message}`)
  }
  const text = bytes.toString('latin1').trim()
  if (/^[0-9a-fA-F]{64}$/.test(text)) return new Uint8Array(Buffer.from(text, 'hex'))
  if (bytes.length === 32) return new Uint8Array(bytes)
  throw new CtfsError('INVALID_ARGUMENT', `key file ${path}: expected 64 hex characters or 32 raw bytes, got ${bytes.length} bytes`)
}
