// What the cluster node needs from a transport: move opaque frames to and
// from peers, say when a peer is reachable, and report failures. The node
// (replication logic) never sees a socket; a transport never parses a
// frame. The TCP mesh (tcp.ts) is one implementation; a message-bus
// transport (e.g. NATS subjects per node) can be another.
import { CtfsError, type CtfsErrorCode } from '../errors.ts'
import type { Address, PeerAddress } from './peers.ts'

/** A {@link CtfsError} about a peer or a connection. */
export class ClusterError extends CtfsError {
  /** The peer concerned, when known. */
  readonly peer?: bigint
  /** The remote address (`host:port`), when there is one. */
  readonly remote?: string

  constructor(code: CtfsErrorCode, message: string, where: { peer?: bigint | undefined; remote?: string | undefined } = {}) {
    super(code, message)
    if (where.peer !== undefined) this.peer = where.peer
    if (where.remote !== undefined) this.remote = where.remote
  }
}

/**
 * Where a received frame came from. A source may not know its peer yet (an
 * accepted TCP connection learns it from the first frame that
 * authenticates); the node tells it with {@link authenticated}, or refuses
 * it with {@link refuse}.
 */
export interface FrameSource {
  /** The node this source speaks for, once known. */
  readonly peer: bigint | undefined
  /** A description for logs, e.g. the remote `host:port`. */
  readonly remote: string
  /**
   * A frame from this source authenticated as sent by `peer`. Returns false
   * when the source may not speak for `peer` (it is then being closed).
   */
  authenticated(peer: bigint): boolean
  /** Refuses the source (a TCP connection is closed); `error` is reported once. */
  refuse(error: ClusterError): void
}

/** Callbacks of a transport, set by the node at {@link Transport.start}. */
export interface TransportHandlers {
  /** One complete frame. */
  frame(data: Uint8Array, source: FrameSource): void
  /** `peer` became reachable: frames to it can be sent. */
  peerUp(peer: bigint): void
  /** `peer` is no longer reachable (`reason`: why, when it is a failure). */
  peerDown(peer: bigint, reason: ClusterError | null): void
  /** A failure that concerns no frame: a peer unreachable, a connection refused. */
  error(e: ClusterError): void
}

/** Per-peer counters of a transport. */
export interface TransportPeerStats {
  peer: bigint
  /** Where the peer is dialled, if known. */
  address: string | null
  connected: boolean
  /** Who opened the current connection. */
  direction: 'outbound' | 'inbound' | null
  framesIn: number
  bytesIn: number
  framesOut: number
  bytesOut: number
  /** Bytes waiting to be written to the peer now (transport queue and socket buffer). */
  queuedBytes: number
  /** Frames not sent because the peer's send queue was full (anti-entropy repairs them). */
  droppedFrames: number
  droppedBytes: number
  /** Frames not sent because the peer was not connected. */
  unsentFrames: number
  /** Connections established / lost. */
  connects: number
  disconnects: number
  /** The last failure with this peer. */
  lastError: string | null
}

/** Counters of a transport. */
export interface TransportStats {
  /** Where it listens, if it does. */
  listening: string | null
  peers: TransportPeerStats[]
  /** Connections refused or closed, by error code (AUTH_FAILED, FRAME_TOO_LARGE, ...). */
  refused: Record<string, number>
  /** Accepted connections that have not authenticated yet. */
  pendingInbound: number
}

/** A way to move frames between the replicas of a cluster. */
export interface Transport {
  /** Starts listening and connecting; frames and events go to `handlers`. */
  start(handlers: TransportHandlers): Promise<void>
  /**
   * Queues `frame` for `peer`. False when it was not queued: the peer is not
   * reachable, or its send queue is full (a slow peer is caught up later by
   * anti-entropy). Never blocks, never throws for a network failure.
   */
  send(peer: bigint, frame: Uint8Array): boolean
  /**
   * Bytes that can be queued for `peer` now without dropping (0 when it is
   * not reachable; null: no limit). The node hands it to the protocol so
   * that bulk transfers (anti-entropy rounds, snapshot chunks) fit.
   */
  room(peer: bigint): number | null
  /** Adds (or moves) a peer at run time. */
  addPeer(peer: PeerAddress): void
  /** Forgets a peer: its connection is closed and not reopened. */
  removePeer(peer: bigint): void
  /** The address it listens on (the real port when 0 was asked), or null. */
  readonly address: Address | null
  stats(): TransportStats
  /** Closes every connection and stops listening. */
  close(): Promise<void>
}
