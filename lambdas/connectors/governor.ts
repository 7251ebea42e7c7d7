/**
 * Per-target concurrency limit and rate-limit pacing.
 *
 * Every adapter sends its calls through one governor per target. It caps calls in flight and
 * reads the target's rate-limit headers (Okta `X-Rate-Limit-*`, Graph/SCIM `Retry-After`) so the
 * connector slows down *before* the target answers 429: when the observed remaining budget,
 * less the calls already in flight, is spent, new calls wait for the window to reset.
 */

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
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly skewMs: number;
  readonly stats: GovernorStats = { calls: 0, waits: 0, waitedMs: 0, throttled: 0 };

  constructor(private readonly options: GovernorOptions) {
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.skewMs = options.skewMs ?? 50;
  }

  /** Runs `fn` when a slot and rate budget are free. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    await this.acquireSlot();
    try {
      await this.waitForBudget();
      this.stats.calls += 1;
      if (this.remaining !== undefined) this.remaining -= 1;
      return await fn();
    } finally {
      this.releaseSlot();
    }
  }

  /** Feed the rate-limit headers of every response. */
  observe(o: RateObservation): void {
    if (o.limit !== undefined) this.limit = o.limit;
    if (o.resetAt === undefined || o.remaining === undefined) return;
    if (o.resetAt > this.resetAt) {
      // A new window: trust its remaining count, less calls sent but not yet counted.
      this.resetAt = o.resetAt;
      this.remaining = o.remaining - Math.max(0, this.inFlight - 1);
    } else if (o.resetAt === this.resetAt && this.remaining !== undefined) {
      this.remaining = Math.min(this.remaining, o.remaining - Math.max(0, this.inFlight - 1));
    }
  }

  /** The target said 429: nothing goes out before `untilEpochMs`. */
  throttled(untilEpochMs: number): void {
    this.stats.throttled += 1;
    this.blockedUntil = Math.max(this.blockedUntil, untilEpochMs);
    this.remaining = 0;
    this.resetAt = Math.max(this.resetAt, untilEpochMs);
  }

  private async waitForBudget(): Promise<void> {
    for (;;) {
      const t = this.now();
      let until = 0;
      if (t < this.blockedUntil) until = this.blockedUntil;
      else if (this.remaining !== undefined && this.remaining <= 0 && t < this.resetAt + this.skewMs) {
        until = this.resetAt + this.skewMs;
      }
      if (!until) {
        if (this.remaining !== undefined && this.remaining <= 0) {
          // The window has reset; start the new one optimistically with the known limit.
          this.remaining = this.limit;
        }
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
