// Reconnect delays: exponential with jitter, so replicas that lost a peer
// at the same moment do not all redial it in step.

/** Options of {@link Backoff}. */
export interface BackoffOptions {
  /** First delay, ms (default 50). */
  baseMs?: number
  /** Longest delay, ms (default 5,000). */
  maxMs?: number
  /** A random source in [0, 1) (default `Math.random`). */
  random?: () => number
}

/**
 * Delays `base · 2^attempt` capped at `max`, each drawn uniformly from the
 * upper half of that range ("equal jitter"): never below half the nominal
 * delay, never two peers in lockstep. `reset()` after a success.
 */
export class Backoff {
  readonly #base: number
  readonly #max: number
  readonly #random: () => number
  #attempt = 0

  constructor(o: BackoffOptions = {}) {
    this.#base = o.baseMs ?? 50
    this.#max = o.maxMs ?? 5_000
    this.#random = o.random ?? Math.random
  }

  /** Failures since the last reset. */
  get attempts(): number {
    return this.#attempt
  }

  /** The delay before the next attempt; counts a failure. */
  next(): number {
    const nominal = Math.min(this.#max, this.#base * 2 ** Math.min(this.#attempt, 30))
    this.#attempt++
    return Math.round(nominal / 2 + (this.#random() * nominal) / 2)
  }

  reset(): void {
    this.#attempt = 0
  }
}
