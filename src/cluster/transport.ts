// What the cluster node needs from a transport: move opaque frames to and
// from peers, say when a peer is reachable, and report failures. The node
// (replication logic) never sees a socket; a transport never parses a
// frame. The TCP mesh (tcp.ts) is one implementation; the NATS JetStream
// transport (nats.ts: subjects per node, plus a stream of broadcast frames
// that every member reads) is another; bridge.ts combines two.
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
  /**
   * Resolves once everything admitted so far is durable (at once for an
   * in-memory kernel); rejects if it never will be. A stream transport
   * acknowledges a message only after this, so that a durable replica
   * restarted after a crash is sent again what it had not made durable.
   */
  settled?(): Promise<void>
}

/**
 * A stream that every member of the cluster reads (a message bus such as
 * NATS JetStream). The node then pushes its own facts once, as broadcast
 * frames (verifiable by every member) published here, whether or not a
 * peer is reachable: the stream keeps them for replicas that are away.
 */
export interface FactStream {
  /**
   * Queues a broadcast frame for the stream (the transport retries until
   * the stream acknowledges it). False when it was not queued (no room, or
   * closed): anti-entropy then carries its facts.
   */
  publish(frame: Uint8Array): boolean
  /** Bytes that can be published now (null: no limit); the node pushes no more than this. */
  room(): number | null
  /** The peers that read the stream: pushes to them go to the stream only. */
  readonly readers: readonly bigint[]
  /** True while this replica reads a backlog from the stream (it then does not ask peers for facts). */
  behind(): boolean
}

/** What {@link replicate} tells a {@link TransportFactory}. */
export interface TransportContext {
  /** This replica's node id. */
  local: bigint
  /** The peers this transport serves (every other node, or those the TCP mesh of a bridge does not list). */
  peers: readonly bigint[]
  /** The cluster name given to `replicate()`, if any. */
  cluster: string | undefined
  /** Largest frame the node sends or accepts unless the transport carries less. */
  maxFrameBytes: number
  /** A peer silent this long is unreachable. */
  peerTimeoutMs: number
  /**
   * The kernel keeps what it admitted across restarts (durable, with facts):
   * a stream consumer may resume where it left off. False: read the stream
   * from its start (an in-memory kernel starts empty).
   */
  resume: boolean
}

/** Builds a transport once `replicate()` knows the node (e.g. `natsTransport({ servers })`). */
export type TransportFactory = (ctx: TransportContext) => Transport

/** Counters of a {@link FactStream}. */
export interface StreamStats {
  /** The JetStream stream and the durable consumer of this replica. */
  stream: string
  consumer: string
  /** Subjects: broadcast frames (`<prefix>.<origin>`), point-to-point frames, presence. */
  subjects: { facts: string; node: string; hello: string }
  /** Broadcast frames queued, acknowledged by the stream (duplicates: dropped by its duplicate window), retried. */
  published: number
  publishedBytes: number
  acked: number
  duplicates: number
  retries: number
  /** Publications waiting for their acknowledgement now. */
  unacked: number
  unackedBytes: number
  /** Broadcast frames not queued (no room). */
  refused: number
  /** Stream messages delivered to this replica (its own included), and their bytes. */
  consumed: number
  consumedBytes: number
  /** Messages the stream still holds for this replica (as of the last delivery). */
  pending: number
  behind: boolean
  /** Messages acknowledged to the stream (after they were handled, and durable for a durable kernel). */
  consumerAcks: number
  /**
   * The client connection, both ways: messages and their payload and header
   * bytes (the client's counters), and the bytes read from and written to
   * its socket (protocol lines included; since the current connection, null
   * when the client's transport does not tell).
   */
  wire: { inMsgs: number; outMsgs: number; inBytes: number; outBytes: number; socketBytesIn: number | null; socketBytesOut: number | null }
  /** The stream's configuration and state when this replica attached. */
  config: { retention: string; storage: string; maxAgeMs: number; maxBytes: number; maxMsgs: number; duplicateWindowMs: number; replicas: number }
  connected: boolean
  /** Connection losses and reconnections to the NATS server. */
  disconnects: number
  reconnects: number
  lastError: string | null
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
  /** The stream, for a transport that has one. */
  stream?: StreamStats
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
  /** A stream every member reads, when the transport has one (a message bus). */
  readonly stream?: FactStream | null
  /**
   * The largest frame this transport carries, known after {@link start}
   * (e.g. the NATS server's `max_payload` less header room), or null: no
   * limit of its own. `replicate()` lowers its `maxFrameBytes` to it.
   */
  readonly maxFrameBytes?: number | null
  stats(): TransportStats
  /** Closes every connection and stops listening. */
  close(): Promise<void>
}
