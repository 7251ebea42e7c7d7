/**
 * Per-target concurrency limit and rate-limit pacing.
 *
 * Every adapter sends its calls through one governor per target. It caps calls in flight and
 * reads the target's rate-limit headers (Okta `X-Rate-Limit-*`, Graph/SCIM `Retry-After`) so the
 * connector slows down *before* the target answers 429: when the observed remaining budget,
 * less the calls already in flight, is spent, new calls wait for the window to reset.
 */

import { InvocationEnded, invocationSignal } from './invocation.ts';

export interface RateObservation {
  limit?: number;
  remaining?: number;
  /** Epoch ms at which the target's window resets. */
  resetAt?: number;
}

export interface GovernorOptions {
  /** Calls in flight at once (per target). */
  maxConcurrent: number;
  /** Extra wait after a reset time, to absorb clock skew between us and the target. */
  skewMs?: number;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

export interface GovernorStats {
  calls: number;
  waits: number;
  waitedMs: number;
  throttled: number;
}

export class RateGovernor {
  private inFlight = 0;
  private readonly queue: Array<() => void> = [];
  private remaining: number | undefined;
  private limit: number | undefined;
  private resetAt = 0;
  private blockedUntil = 0;
  /** The budget was restarted at a reset without the new window's headers yet: don't restart it twice. */
  private optimistic = false;
  /** Calls granted budget and not yet finished (the ones whose headers are still to come). */
  private active = 0;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly skewMs: number;
  readonly stats: GovernorStats = { calls: 0, waits: 0, waitedMs: 0, throttled: 0 };

  constructor(private readonly options: GovernorOptions) {
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.skewMs = options.skewMs ?? 50;
  }

  /**
   * Runs `fn` when a slot and rate budget are free — unless the invocation it is made for has
   * ended meanwhile (`invocation.ts`): then nothing is sent.
   */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    const signal = invocationSignal();
    if (signal?.aborted) throw new InvocationEnded('target call');
    await this.acquireSlot();
    try {
      await this.waitForBudget();
      if (signal?.aborted) throw new InvocationEnded('target call');
      this.active += 1;
      try {
        return await fn();
      } finally {
        this.active -= 1;
      }
    } finally {
      this.releaseSlot();
    }
  }

  /** Feed the rate-limit headers of every response. */
  observe(o: RateObservation): void {
    if (o.limit !== undefined) this.limit = o.limit;
    if (o.resetAt === undefined || o.remaining === undefined) return;
    // Calls already granted and still running are not in the target's count yet (this
    // response's own call is one of them and is counted).
    const uncounted = Math.max(0, this.active - 1);
    const candidate = o.remaining - uncounted;
    if (o.resetAt > this.resetAt) {
      // A new window. If the budget was already restarted for it, never raise it: calls granted
      // from that budget may not have reached the target yet.
      this.remaining = this.optimistic && this.remaining !== undefined ? Math.min(this.remaining, candidate) : candidate;
      this.resetAt = o.resetAt;
      this.optimistic = false;
    } else if (o.resetAt === this.resetAt) {
      this.remaining = Math.min(this.remaining ?? candidate, candidate);
    }
  }

  /** The target said 429: nothing goes out before `untilEpochMs`. */
  throttled(untilEpochMs: number): void {
    this.stats.throttled += 1;
    this.blockedUntil = Math.max(this.blockedUntil, untilEpochMs);
    this.remaining = 0;
    // The 429's own reset is the current word on the window: an end seen earlier (a longer window
    // before the target changed its limits) must not keep the connector waiting past it.
    this.resetAt = untilEpochMs;
    this.optimistic = false;
  }

  private async waitForBudget(): Promise<void> {
    for (;;) {
      const t = this.now();
      let until = 0;
      if (t < this.blockedUntil) until = this.blockedUntil;
      else if (this.remaining !== undefined && this.remaining <= 0 && t < this.resetAt + this.skewMs) {
        until = this.resetAt + this.skewMs;
      }
      if (!until && this.remaining !== undefined && this.remaining <= 0) {
        if (this.optimistic && this.active > 0) {
          // The restarted budget is spent before the new window reported itself: wait for its headers.
          until = t + Math.max(10, this.skewMs / 2);
        } else {
          // The window has reset; start the new one once, optimistically, with the known limit.
          this.remaining = this.limit;
          this.optimistic = true;
        }
      }
      if (!until) {
        // Take the budget in the same synchronous step as the check, so concurrent callers
        // cannot all pass the check before any of them counts.
        this.stats.calls += 1;
        if (this.remaining !== undefined) this.remaining -= 1;
        return;
      }
      this.stats.waits += 1;
      this.stats.waitedMs += until - t;
      await this.sleep(until - t);
    }
  }

  private acquireSlot(): Promise<void> {
    if (this.inFlight < this.options.maxConcurrent) {
      this.inFlight += 1;
      return Promise.resolve();
    }
    return new Promise((resolve) =>
      this.queue.push(() => {
        this.inFlight += 1;
        resolve();
      }),
    );
  }

  private releaseSlot(): void {
    this.inFlight -= 1;
    this.queue.shift()?.();
  }
}
