// One TCP connection to a peer: length-prefixed frames in, a send queue
// bounded in bytes out. It respects `socket.write()`'s return value: once
// the socket buffer is above its high-water mark, frames wait in the queue
// until 'drain'; once the queue is full, frames are dropped and counted.
import type { Socket } from 'node:net'

import { FrameDecoder, lengthPrefix, LENGTH_PREFIX_BYTES, type FramingError } from './framing.ts'

/** Options of a {@link Connection}. */
export interface ConnectionOptions {
  maxFrameBytes: number
  /** Most bytes waiting for the socket (queue and socket buffer). */
  sendQueueBytes: number
}

/** What a connection reports to its owner. */
export interface ConnectionEvents {
  /** A complete frame; return false to stop reading (the connection is being closed). */
  frame(conn: Connection, data: Uint8Array): boolean
  /** The stream announced a frame above the limit (or of length 0): the connection is closed. */
  framing(conn: Connection, e: FramingError): void
  /** The socket closed (for whatever reason; `error` when it failed). */
  closed(conn: Connection, error: Error | undefined): void
}

let nextId = 1

/** A framed, bounded TCP connection. */
export class Connection {
  readonly id = nextId++
  readonly socket: Socket
  readonly direction: 'outbound' | 'inbound'
  /** `host:port` of the remote end. */
  readonly remote: string
  /** The peer this connection speaks for, once known. */
  peer: bigint | undefined
  /** When the connection was established, and the last frame received (ms). */
  openedAt: number
  lastFrameAt: number
  /** The owner reported a failure of this connection already. */
  reported = false
  closed = false
  /** Why this side closed it, if it did. */
  closeReason: string | null = null

  framesIn = 0
  bytesIn = 0
  framesOut = 0
  bytesOut = 0
  droppedFrames = 0
  droppedBytes = 0

  readonly #opts: ConnectionOptions
  readonly #events: ConnectionEvents
  readonly #decoder: FrameDecoder
  readonly #queue: Uint8Array[] = []
  #queueHead = 0
  #queuedBytes = 0
  #congested = false

  constructor(socket: Socket, direction: 'outbound' | 'inbound', remote: string, opts: ConnectionOptions, events: ConnectionEvents) {
    this.socket = socket
    this.direction = direction
    this.remote = remote
    this.#opts = opts
    this.#events = events
    this.#decoder = new FrameDecoder(opts.maxFrameBytes)
    this.openedAt = Date.now()
    this.lastFrameAt = this.openedAt
    socket.setNoDelay(true)
    socket.setKeepAlive(true, 10_000)
    socket.on('data', (chunk: Buffer) => this.#onData(chunk))
    socket.on('drain', () => this.#onDrain())
    socket.on('error', () => {
      /* 'close' follows with hadError; the error itself is read there */
    })
    let failure: Error | undefined
    socket.once('error', (e) => (failure = e))
    socket.on('close', () => {
      this.closed = true
      this.#queue.length = 0
      this.#queueHead = 0
      this.#queuedBytes = 0
      this.#events.closed(this, failure)
    })
  }

  /** Bytes waiting: the transport queue plus the socket's own buffer (0 once closed). */
  get queuedBytes(): number {
    return this.#queuedBytes + (this.closed ? 0 : this.socket.writableLength)
  }

  /** Marks the connection as established now (an outbound socket once connected). */
  established(): void {
    this.openedAt = Date.now()
    this.lastFrameAt = this.openedAt
  }

  #onData(chunk: Buffer): void {
    if (this.closed) return
    this.bytesIn += chunk.length
    const err = this.#decoder.push(chunk, (frame) => {
      this.framesIn++
      this.lastFrameAt = Date.now()
      return this.#events.frame(this, frame) && !this.closed
    })
    if (err !== null && !this.closed) {
      this.#events.framing(this, err)
      this.destroy(`framing: length ${err.length} (limit ${err.limit})`)
    }
  }

  /**
   * Queues one frame. False when it was dropped: the queue is full (the
   * peer reads too slowly) or the connection is closed.
   */
  send(frame: Uint8Array): boolean {
    if (this.closed) return false
    const size = frame.length + LENGTH_PREFIX_BYTES
    if (this.queuedBytes + size > this.#opts.sendQueueBytes) {
      this.droppedFrames++
      this.droppedBytes += frame.length
      return false
    }
    if (this.#congested) {
      // the frame's bytes may belong to a larger native buffer: copy so the
      // queue holds exactly what it accounts for
      this.#queue.push(Buffer.concat([lengthPrefix(frame.length), frame]))
      this.#queuedBytes += size
    } else {
      this.#write(lengthPrefix(frame.length), frame)
    }
    this.framesOut++
    this.bytesOut += size
    return true
  }

  #write(prefix: Uint8Array, frame: Uint8Array | null): void {
    let ok: boolean
    if (frame === null) {
      ok = this.socket.write(prefix)
    } else {
      this.socket.cork()
      this.socket.write(prefix)
      ok = this.socket.write(frame)
      this.socket.uncork()
    }
    if (!ok) this.#congested = true
  }

  #onDrain(): void {
    this.#congested = false
    while (!this.#congested && this.#queueHead < this.#queue.length) {
      const b = this.#queue[this.#queueHead] as Uint8Array
      this.#queue[this.#queueHead++] = EMPTY
      this.#queuedBytes -= b.length
      this.#write(b, null)
    }
    if (this.#queueHead === this.#queue.length) {
      this.#queue.length = 0
      this.#queueHead = 0
    }
  }

  /** Closes the connection now (queued frames are dropped). */
  destroy(reason: string): void {
    if (this.closed) return
    this.closed = true
    this.closeReason ??= reason
    this.#queue.length = 0
    this.#queueHead = 0
    this.#queuedBytes = 0
    this.socket.destroy()
  }
}

const EMPTY = new Uint8Array(0)
