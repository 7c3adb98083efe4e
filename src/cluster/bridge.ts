// Two transports as one: a bridge node (e.g. on the TCP mesh with some
// replicas and on NATS with the others). A peer is reachable when any part
// reaches it; frames to it go through the first part that does. At most one
// part may have a stream (its readers get the node's broadcast frames; the
// other peers get point-to-point pushes). Facts from one side reach the
// other by anti-entropy through the bridge (one probe period), not by push:
// a replica pushes only its own facts.
import type { PeerAddress } from './peers.ts'
import { ClusterError, type FactStream, type Transport, type TransportHandlers, type TransportStats } from './transport.ts'

/** A {@link Transport} over several transports (see the module comment). */
export class BridgeTransport implements Transport {
  readonly #parts: readonly Transport[]
  /** Per peer, the parts that reach it now. */
  readonly #up = new Map<bigint, Set<number>>()

  constructor(parts: readonly Transport[]) {
    if (parts.length === 0) throw new ClusterError('INVALID_ARGUMENT', 'a bridge needs at least one transport')
    this.#parts = parts
  }

  get address() {
    for (const p of this.#parts) if (p.address !== null) return p.address
    return null
  }

  get stream(): FactStream | null {
    for (const p of this.#parts) if (p.stream != null) return p.stream
    return null
  }

  get maxFrameBytes(): number | null {
    let m: number | null = null
    for (const p of this.#parts) {
      const v = p.maxFrameBytes
      if (typeof v === 'number') m = m === null ? v : Math.min(m, v)
    }
    return m
  }

  async start(handlers: TransportHandlers): Promise<void> {
    if (this.#parts.filter((p) => p.stream != null).length > 1) throw new ClusterError('INVALID_ARGUMENT', 'a bridge may have one stream transport at most')
    const started: Transport[] = []
    try {
      for (const [i, part] of this.#parts.entries()) {
        await part.start({
          frame: (data, source) => handlers.frame(data, source),
          peerUp: (peer) => {
            let via = this.#up.get(peer)
            if (via === undefined) this.#up.set(peer, (via = new Set()))
            const first = via.size === 0
            via.add(i)
            if (first) handlers.peerUp(peer)
          },
          peerDown: (peer, reason) => {
            const via = this.#up.get(peer)
            if (via === undefined || !via.delete(i)) return
            if (via.size === 0) handlers.peerDown(peer, reason)
            else if (reason !== null) handlers.error(reason)
          },
          error: (e) => handlers.error(e),
          settled: () => handlers.settled?.() ?? Promise.resolve(),
        })
        started.push(part)
      }
    } catch (e) {
      await Promise.allSettled(started.map((p) => p.close()))
      throw e
    }
  }

  #via(peer: bigint): Transport | undefined {
    const via = this.#up.get(peer)
    if (via === undefined) return undefined
    for (const i of via) return this.#parts[i]
    return undefined
  }

  send(peer: bigint, frame: Uint8Array): boolean {
    const t = this.#via(peer)
    return t !== undefined && t.send(peer, frame)
  }

  room(peer: bigint): number | null {
    return this.#via(peer)?.room(peer) ?? 0
  }

  /** Adds (or moves) a peer on the first part (the mesh: a peer with an address). */
  addPeer(peer: PeerAddress): void {
    this.#parts[0]!.addPeer(peer)
  }

  removePeer(peer: bigint): void {
    for (const p of this.#parts) p.removePeer(peer)
  }

  stats(): TransportStats {
    const all = this.#parts.map((p) => p.stats())
    const peers = all.flatMap((s) => s.peers).sort((a, b) => (a.peer < b.peer ? -1 : a.peer > b.peer ? 1 : 0))
    const refused: Record<string, number> = {}
    for (const s of all) for (const [k, v] of Object.entries(s.refused)) refused[k] = (refused[k] ?? 0) + v
    const out: TransportStats = {
      listening: all.find((s) => s.listening !== null)?.listening ?? null,
      peers,
      refused,
      pendingInbound: all.reduce((a, s) => a + s.pendingInbound, 0),
    }
    const stream = all.find((s) => s.stream !== undefined)?.stream
    if (stream !== undefined) out.stream = stream
    return out
  }

  async close(): Promise<void> {
    await Promise.all(this.#parts.map((p) => p.close()))
  }
}
