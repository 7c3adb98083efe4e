// The TCP mesh: one persistent connection per pair of replicas.
//
// - Who dials: both sides dial a peer whose address they know, but the
//   connection opened by the lower node id is the one kept; the higher id
//   dials only while it has no connection with that peer. So any one side
//   knowing the other's address is enough, and two replicas that dial each
//   other at the same moment settle on one connection.
// - An accepted connection does not know its peer until a frame on it
//   authenticates (the node verifies it and calls `authenticated`): until
//   then nothing is sent on it, and it must authenticate within
//   `handshakeTimeoutMs`. A connection whose frames fail (wrong key, another
//   cluster, garbage, a frame above the limit) is closed and reported once.
// - A peer from which no frame arrived for `peerTimeoutMs` (replicas probe
//   each other every anti-entropy period) is unreachable: its connection is
//   closed and, if we dial it, redialled with jittered exponential backoff.
import net, { type Server, type Socket } from 'node:net'

import { Backoff, type BackoffOptions } from './backoff.ts'
import { Connection } from './connection.ts'
import type { FramingError } from './framing.ts'
import { formatAddress, type Address, type PeerAddress } from './peers.ts'
import { ClusterError, type FrameSource, type Transport, type TransportHandlers, type TransportPeerStats, type TransportStats } from './transport.ts'

/** Options of {@link TcpTransport}. */
export interface TcpTransportOptions {
  /** This replica's node id. */
  local: bigint
  /** Where to accept connections (null: dial only). */
  listen: Address | null
  /** Peers with the address they listen on. */
  peers: PeerAddress[]
  /** Largest frame accepted (the length prefix is checked first). */
  maxFrameBytes: number
  /** Per-peer send queue bound, bytes (default 8 MiB). */
  sendQueueBytes?: number
  /** A peer silent this long is unreachable (default 5,000 ms). */
  peerTimeoutMs?: number
  /** Connection attempts give up after this long (default 3,000 ms). */
  connectTimeoutMs?: number
  /** An accepted connection must authenticate within this (default 10,000 ms). */
  handshakeTimeoutMs?: number
  /** Accepted connections not authenticated yet, at most (default 64). */
  maxPendingInbound?: number
  /** Reconnect delays (default 50 ms doubling to 5 s, jittered). */
  reconnect?: BackoffOptions
}

interface Peer {
  id: bigint
  address: Address | null
  link: Connection | null
  dialing: Connection | null
  timer: ReturnType<typeof setTimeout> | null
  backoff: Backoff
  /** An unreachable error was reported since the last success. */
  unreachableReported: boolean
  totals: { framesIn: number; bytesIn: number; framesOut: number; bytesOut: number; droppedFrames: number; droppedBytes: number }
  unsentFrames: number
  connects: number
  disconnects: number
  lastError: string | null
}

const noop = () => {}
/** Room kept for the 4-byte length prefixes of up to 1,024 frames. */
const PREFIX_ALLOWANCE = 4096

/** A {@link Transport} over a mesh of TCP connections. */
export class TcpTransport implements Transport {
  readonly #o: Required<Omit<TcpTransportOptions, 'reconnect' | 'listen' | 'peers'>> & { reconnect: BackoffOptions }
  readonly #listen: Address | null
  readonly #peers = new Map<bigint, Peer>()
  readonly #pending = new Set<Connection>()
  readonly #refused: Record<string, number> = {}
  /** Peers removed at run time: their connections are refused. */
  readonly #removed = new Set<bigint>()
  #handlers: TransportHandlers | null = null
  #server: Server | null = null
  #address: Address | null = null
  #watchdog: ReturnType<typeof setInterval> | null = null
  #lastWatch = 0
  #closing = false

  constructor(o: TcpTransportOptions) {
    this.#o = {
      local: o.local,
      maxFrameBytes: o.maxFrameBytes,
      sendQueueBytes: o.sendQueueBytes ?? 8 << 20,
      peerTimeoutMs: o.peerTimeoutMs ?? 5_000,
      connectTimeoutMs: o.connectTimeoutMs ?? 3_000,
      handshakeTimeoutMs: o.handshakeTimeoutMs ?? 10_000,
      maxPendingInbound: o.maxPendingInbound ?? 64,
      reconnect: o.reconnect ?? {},
    }
    this.#listen = o.listen
    for (const p of o.peers) this.#peer(p.id).address = p.address
  }

  get address(): Address | null {
    return this.#address
  }

  async start(handlers: TransportHandlers): Promise<void> {
    this.#handlers = handlers
    if (this.#listen !== null) {
      const server = net.createServer({ noDelay: true }, (s) => this.#accept(s))
      this.#server = server
      await new Promise<void>((resolve, reject) => {
        const fail = (e: Error) => reject(new ClusterError('IO_ERROR', `cannot listen on ${formatAddress(this.#listen as Address)}: ${e.message}`))
        server.once('error', fail)
        server.listen({ host: this.#listen!.host, port: this.#listen!.port }, () => {
          server.off('error', fail)
          resolve()
        })
      })
      server.on('error', (e) => this.#report(new ClusterError('IO_ERROR', `listening socket: ${e.message}`)))
      const a = server.address()
      if (a !== null && typeof a === 'object') this.#address = { host: a.address, port: a.port }
    }
    const every = Math.max(20, Math.min(250, Math.floor(this.#o.peerTimeoutMs / 4)))
    this.#lastWatch = Date.now()
    this.#watchdog = setInterval(() => this.#watch(), every)
    this.#watchdog.unref()
    for (const p of this.#peers.values()) this.#maybeDial(p)
  }

  send(peer: bigint, frame: Uint8Array): boolean {
    const p = this.#peers.get(peer)
    const link = p?.link
    if (p === undefined || link == null || link.closed) {
      if (p !== undefined) p.unsentFrames++
      return false
    }
    return link.send(frame)
  }

  room(peer: bigint): number {
    const link = this.#peers.get(peer)?.link
    if (link == null || link.closed) return 0
    // the protocol counts frame bytes; keep room for the length prefixes
    return Math.max(0, this.#o.sendQueueBytes - link.queuedBytes - PREFIX_ALLOWANCE)
  }

  addPeer(peer: PeerAddress): void {
    if (peer.id === this.#o.local) throw new ClusterError('INVALID_ARGUMENT', `node ${peer.id} is this replica`)
    this.#removed.delete(peer.id)
    const p = this.#peer(peer.id)
    const moved = p.address !== null && formatAddress(p.address) !== formatAddress(peer.address)
    p.address = peer.address
    if (moved && p.dialing !== null) p.dialing.destroy('peer moved')
    p.backoff.reset()
    if (p.timer !== null) {
      clearTimeout(p.timer)
      p.timer = null
    }
    this.#maybeDial(p)
  }

  removePeer(peer: bigint): void {
    this.#removed.add(peer)
    const p = this.#peers.get(peer)
    if (p === undefined) return
    this.#peers.delete(peer)
    if (p.timer !== null) clearTimeout(p.timer)
    const link = p.link
    p.link = null
    p.dialing?.destroy('peer removed')
    if (link !== null) {
      link.destroy('peer removed')
      this.#handlers?.peerDown(peer, null)
    }
  }

  stats(): TransportStats {
    const peers: TransportPeerStats[] = []
    for (const p of [...this.#peers.values()].sort((a, b) => (a.id < b.id ? -1 : 1))) {
      const l = p.link
      const live = (k: keyof Peer['totals']) => p.totals[k] + (l === null ? 0 : l[k])
      peers.push({
        peer: p.id,
        address: p.address === null ? null : formatAddress(p.address),
        connected: l !== null && !l.closed,
        direction: l === null ? null : l.direction,
        framesIn: live('framesIn'),
        bytesIn: live('bytesIn'),
        framesOut: live('framesOut'),
        bytesOut: live('bytesOut'),
        queuedBytes: l === null ? 0 : l.queuedBytes,
        droppedFrames: live('droppedFrames'),
        droppedBytes: live('droppedBytes'),
        unsentFrames: p.unsentFrames,
        connects: p.connects,
        disconnects: p.disconnects,
        lastError: p.lastError,
      })
    }
    return {
      listening: this.#address === null ? null : formatAddress(this.#address),
      peers,
      refused: { ...this.#refused },
      pendingInbound: this.#pending.size,
    }
  }

  async close(): Promise<void> {
    if (this.#closing) return
    this.#closing = true
    if (this.#watchdog !== null) clearInterval(this.#watchdog)
    for (const p of this.#peers.values()) {
      if (p.timer !== null) clearTimeout(p.timer)
      p.timer = null
      p.dialing?.destroy('closing')
      p.link?.destroy('closing')
    }
    for (const c of this.#pending) c.destroy('closing')
    const server = this.#server
    if (server !== null) await new Promise<void>((resolve) => server.close(() => resolve()))
  }

  // ---------------------------------------------------------------- peers

  #peer(id: bigint): Peer {
    let p = this.#peers.get(id)
    if (p === undefined) {
      p = {
        id,
        address: null,
        link: null,
        dialing: null,
        timer: null,
        backoff: new Backoff(this.#o.reconnect),
        unreachableReported: false,
        totals: { framesIn: 0, bytesIn: 0, framesOut: 0, bytesOut: 0, droppedFrames: 0, droppedBytes: 0 },
        unsentFrames: 0,
        connects: 0,
        disconnects: 0,
        lastError: null,
      }
      this.#peers.set(id, p)
    }
    return p
  }

  /** The lower node id's connection is the one kept. */
  #preferred(p: Peer): 'outbound' | 'inbound' {
    return this.#o.local < p.id ? 'outbound' : 'inbound'
  }

  #wantsDial(p: Peer): boolean {
    if (this.#closing || p.address === null || p.dialing !== null || this.#peers.get(p.id) !== p) return false
    if (p.link === null) return true
    return this.#preferred(p) === 'outbound' && p.link.direction !== 'outbound'
  }

  #maybeDial(p: Peer): void {
    if (p.timer === null && this.#wantsDial(p)) this.#dial(p)
  }

  #schedule(p: Peer): void {
    if (p.timer !== null || !this.#wantsDial(p)) return
    p.timer = setTimeout(() => {
      p.timer = null
      if (this.#wantsDial(p)) this.#dial(p)
    }, p.backoff.next())
    p.timer.unref()
  }

  #dial(p: Peer): void {
    const a = p.address as Address
    const remote = formatAddress(a)
    let socket: Socket
    try {
      socket = net.connect({ host: a.host, port: a.port })
    } catch (e) {
      this.#unreachable(p, remote, (e as Error).message)
      this.#schedule(p)
      return
    }
    const conn = this.#connection(socket, 'outbound', remote)
    conn.peer = p.id
    p.dialing = conn
    socket.setTimeout(this.#o.connectTimeoutMs, () => conn.destroy('connect timeout'))
    socket.once('connect', () => {
      socket.setTimeout(0)
      if (p.dialing !== conn) return
      p.dialing = null
      if (this.#peers.get(p.id) !== p || this.#closing) {
        conn.destroy('peer removed')
        return
      }
      conn.established()
      this.#setLink(p, conn)
    })
  }

  #unreachable(p: Peer, remote: string, why: string): void {
    p.lastError = why
    if (p.unreachableReported) return
    p.unreachableReported = true
    this.#report(new ClusterError('PEER_UNREACHABLE', `node ${p.id} at ${remote} is unreachable: ${why} (retrying with backoff)`, { peer: p.id, remote }))
  }

  /** Installs `conn` as the link to `p`, or refuses it when a preferred one exists. */
  #setLink(p: Peer, conn: Connection): boolean {
    const old = p.link
    if (old !== null && old !== conn && !old.closed) {
      const keepNew = conn.direction === old.direction || conn.direction === this.#preferred(p)
      if (!keepNew) {
        conn.destroy('duplicate connection')
        return false
      }
      this.#retire(p, old)
      old.destroy('replaced by a newer connection')
      p.link = conn
      p.connects++
      this.#handlers?.peerUp(p.id)
      return true
    }
    p.link = conn
    p.connects++
    this.#handlers?.peerUp(p.id)
    return true
  }

  /** Adds a connection's counters to the peer's totals. */
  #retire(p: Peer, c: Connection): void {
    const t = p.totals
    t.framesIn += c.framesIn
    t.bytesIn += c.bytesIn
    t.framesOut += c.framesOut
    t.bytesOut += c.bytesOut
    t.droppedFrames += c.droppedFrames
    t.droppedBytes += c.droppedBytes
    c.framesIn = c.bytesIn = c.framesOut = c.bytesOut = c.droppedFrames = c.droppedBytes = 0
  }

  // ---------------------------------------------------------- connections

  #connection(socket: Socket, direction: 'outbound' | 'inbound', remote: string): Connection {
    return new Connection(
      socket,
      direction,
      remote,
      { maxFrameBytes: this.#o.maxFrameBytes, sendQueueBytes: this.#o.sendQueueBytes },
      {
        frame: (c, data) => this.#frame(c, data),
        framing: (c, e) => this.#framing(c, e),
        closed: (c, err) => this.#closed(c, err),
      },
    )
  }

  #accept(socket: Socket): void {
    const remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`
    if (this.#closing || this.#pending.size >= this.#o.maxPendingInbound) {
      this.#count('TOO_MANY_CONNECTIONS')
      socket.on('error', noop)
      socket.destroy()
      return
    }
    const conn = this.#connection(socket, 'inbound', remote)
    this.#pending.add(conn)
  }

  #frame(conn: Connection, data: Uint8Array): boolean {
    const h = this.#handlers
    if (h === null || this.#closing) return false
    h.frame(data, this.#source(conn))
    return !conn.closed
  }

  #source(conn: Connection): FrameSource {
    return {
      peer: conn.peer,
      remote: conn.remote,
      authenticated: (peer) => this.#authenticated(conn, peer),
      refuse: (e) => this.#refuse(conn, e),
    }
  }

  #authenticated(conn: Connection, peer: bigint): boolean {
    if (conn.closed) return false
    if (conn.peer !== undefined) {
      if (conn.peer === peer) {
        const p = this.#peers.get(peer)
        if (p !== undefined && p.link === conn) {
          p.backoff.reset()
          p.unreachableReported = false
        }
        return true
      }
      this.#refuse(conn, new ClusterError('AUTH_FAILED', `connection to node ${conn.peer} at ${conn.remote} carries frames of node ${peer}`, { peer: conn.peer, remote: conn.remote }))
      return false
    }
    // an accepted connection learns its peer
    this.#pending.delete(conn)
    const known = this.#peers.get(peer)
    if (known === undefined && this.#removed.has(peer)) {
      this.#refuse(conn, new ClusterError('UNKNOWN_PEER', `node ${peer} was removed from this replica's peers`, { peer, remote: conn.remote }))
      return false
    }
    conn.peer = peer
    const p = this.#peer(peer)
    p.unreachableReported = false
    return this.#setLink(p, conn)
  }

  #refuse(conn: Connection, e: ClusterError): void {
    if (conn.closed) return
    this.#count(e.code)
    if (!conn.reported) {
      conn.reported = true
      const p = conn.peer === undefined ? undefined : this.#peers.get(conn.peer)
      if (p !== undefined) p.lastError = e.message
      this.#report(e)
    }
    conn.destroy(e.message)
  }

  #framing(conn: Connection, e: FramingError): void {
    const what = e.length === 0 ? 'an empty frame' : `a frame of ${e.length} bytes, above the limit of ${e.limit}`
    const err = new ClusterError('FRAME_TOO_LARGE', `${conn.peer !== undefined ? `node ${conn.peer}` : 'a connection'} from ${conn.remote} announced ${what}: connection closed`, {
      peer: conn.peer,
      remote: conn.remote,
    })
    if (e.length === 0) Object.assign(err, { code: 'MALFORMED_FRAME' })
    this.#refuse(conn, err)
  }

  #closed(conn: Connection, err: Error | undefined): void {
    this.#pending.delete(conn)
    const id = conn.peer
    if (id === undefined) return
    const p = this.#peers.get(id)
    if (p === undefined) return
    if (p.dialing === conn) {
      // never connected
      p.dialing = null
      this.#unreachable(p, conn.remote, err?.message ?? conn.closeReason ?? 'connection closed')
      this.#schedule(p)
      return
    }
    if (p.link !== conn) {
      this.#schedule(p)
      return
    }
    this.#retire(p, conn)
    p.link = null
    p.disconnects++
    const why = conn.closeReason ?? err?.message ?? 'closed by the peer'
    p.lastError = why
    const reason = this.#closing ? null : new ClusterError('PEER_UNREACHABLE', `connection to node ${id} (${conn.remote}) lost: ${why}`, { peer: id, remote: conn.remote })
    this.#handlers?.peerDown(id, reason)
    if (!this.#closing) this.#schedule(p)
  }

  /** Silent peers and slow handshakes. */
  #watch(): void {
    const now = Date.now()
    const late = now - this.#lastWatch
    this.#lastWatch = now
    // this process was stalled (GC, a long admission): frames may be waiting
    // unread in the socket buffers; judge nobody this round
    if (late > this.#o.peerTimeoutMs / 2) return
    for (const p of this.#peers.values()) {
      const l = p.link
      if (l !== null && !l.closed && now - l.lastFrameAt > this.#o.peerTimeoutMs) {
        this.#count('PEER_UNREACHABLE')
        l.destroy(`no frame for ${now - l.lastFrameAt} ms`)
      }
    }
    for (const c of this.#pending) {
      if (now - c.openedAt > this.#o.handshakeTimeoutMs) {
        this.#count('HANDSHAKE_TIMEOUT')
        c.destroy('no authenticated frame in time')
      }
    }
  }

  #count(code: string): void {
    this.#refused[code] = (this.#refused[code] ?? 0) + 1
  }

  #report(e: ClusterError): void {
    this.#handlers?.error(e)
  }
}
