import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RateGovernor } from '#connectors/governor';
import { withInvocationSignal } from '#connectors/invocation';
import { RateLimiter } from '#local/standins/http-kit';

/**
 * The governor against a simulated target that counts like Okta (fixed windows) and answers
 * after some latency. Virtual time: vitest's fake timers drive both the target and the governor.
 */
function simulatedTarget(options: { limit: number; windowMs: number; latencyMs: number; governor: RateGovernor }) {
  const limiter = new RateLimiter({ limit: options.limit, windowMs: options.windowMs }, () => Date.now());
  const log = { served: 0, throttled: 0, inFlight: 0, maxInFlight: 0, arrivals: [] as number[] };
  const call = () =>
    options.governor.run(async () => {
      log.inFlight += 1;
      log.maxInFlight = Math.max(log.maxInFlight, log.inFlight);
      const arrivedAt = Date.now();
      log.arrivals.push(arrivedAt);
      const rate = limiter.take();
      await new Promise((r) => setTimeout(r, options.latencyMs));
      log.inFlight -= 1;
      if (rate.limited) {
        log.throttled += 1;
        options.governor.throttled(rate.resetAt);
        return 429;
      }
      log.served += 1;
      options.governor.observe({ limit: rate.limit, remaining: rate.remaining, resetAt: rate.resetAt });
      return 200;
    });
  return { call, log };
}

describe('RateGovernor', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(new Date('2030-01-01T00:00:00.250Z'));
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('never has more calls in flight than maxConcurrent, and runs them all', async () => {
    const governor = new RateGovernor({ maxConcurrent: 3, now: () => Date.now() });
    const target = simulatedTarget({ limit: 1000, windowMs: 60_000, latencyMs: 20, governor });
    const all = Promise.all(Array.from({ length: 20 }, () => target.call()));
    await vi.runAllTimersAsync();
    expect(await all).toEqual(Array(20).fill(200));
    expect(target.log.maxInFlight).toBe(3);
    expect(governor.stats.calls).toBe(20);
  });

  it('paces calls into the target windows from its headers, so nothing gets a 429', async () => {
    const governor = new RateGovernor({ maxConcurrent: 4, now: () => Date.now() });
    const target = simulatedTarget({ limit: 10, windowMs: 1000, latencyMs: 20, governor });
    const start = Date.now();
    const all = Promise.all(Array.from({ length: 45 }, () => target.call()));
    await vi.runAllTimersAsync();
    await all;
    expect(target.log.throttled).toBe(0);
    expect(target.log.served).toBe(45);
    // 45 calls at 10 per window need five windows: the governor waited for resets instead of
    // sending into a spent window.
    expect(governor.stats.waits).toBeGreaterThan(0);
    const windows = new Set(target.log.arrivals.map((t) => Math.floor(t / 1000)));
    expect(windows.size).toBe(5);
    for (const w of windows) {
      expect(target.log.arrivals.filter((t) => Math.floor(t / 1000) === w).length).toBeLessThanOrEqual(10);
    }
    expect(Date.now() - start).toBeLessThan(5000);
  });

  it('counts calls already in flight against the remaining budget it observes', async () => {
    const governor = new RateGovernor({ maxConcurrent: 4, now: () => Date.now() });
    // Headers arrive 50 ms after each call was counted: the calls sent meanwhile must be deducted.
    const target = simulatedTarget({ limit: 6, windowMs: 1000, latencyMs: 50, governor });
    const first = target.call(); // learn the headers first, as a real connector does on its first call
    await vi.runAllTimersAsync();
    await first;
    const all = Promise.all(Array.from({ length: 21 }, () => target.call()));
    await vi.runAllTimersAsync();
    await all;
    expect(target.log.throttled).toBe(0);
    expect(target.log.served).toBe(22);
    expect(target.log.maxInFlight).toBeLessThanOrEqual(4);
  });

  // Known gap (reported, governor.ts is shared): after a window resets, every waiter restarts the
  // budget optimistically until the new window's headers arrive, so when more calls wait than
  // the target allows per window (limit < maxConcurrent) the surplus gets 429s. Flip to `it`
  // once the governor waits for the first observation of a new window.
  it('keeps a window below its limit even when more calls wait than the limit allows', async () => {
    const governor = new RateGovernor({ maxConcurrent: 8, now: () => Date.now() });
    const target = simulatedTarget({ limit: 4, windowMs: 1000, latencyMs: 50, governor });
    const first = target.call();
    await vi.runAllTimersAsync();
    await first;
    const all = Promise.all(Array.from({ length: 11 }, () => target.call()));
    await vi.runAllTimersAsync();
    await all;
    expect(target.log.throttled).toBe(0);
  });

  it('sends nothing before the time a 429 named', async () => {
    const governor = new RateGovernor({ maxConcurrent: 2, now: () => Date.now() });
    const until = Date.now() + 1500;
    governor.throttled(until);
    const sentAt: number[] = [];
    const all = Promise.all(
      [1, 2, 3].map(() =>
        governor.run(async () => {
          sentAt.push(Date.now());
        }),
      ),
    );
    await vi.runAllTimersAsync();
    await all;
    expect(sentAt).toHaveLength(3);
    for (const t of sentAt) expect(t).toBeGreaterThanOrEqual(until);
    expect(governor.stats.throttled).toBe(1);
  });

  it('after a 429 it waits until the reset that 429 named, not the end of a longer window seen before', async () => {
    const governor = new RateGovernor({ maxConcurrent: 1, now: () => Date.now() });
    const start = Date.now();
    governor.observe({ limit: 600, remaining: 5, resetAt: start + 60_000 });
    const until = start + 1_000;
    governor.throttled(until);
    let sentAt = 0;
    const one = governor.run(async () => {
      sentAt = Date.now();
    });
    await vi.runAllTimersAsync();
    await one;
    expect(sentAt).toBeGreaterThanOrEqual(until);
    expect(sentAt - start).toBeLessThan(5_000);
  });

  it('without observed headers it does not wait (a target that sends none is not paced)', async () => {
    const governor = new RateGovernor({ maxConcurrent: 2, now: () => Date.now() });
    const start = Date.now();
    const all = Promise.all(Array.from({ length: 5 }, () => governor.run(async () => Date.now())));
    await vi.runAllTimersAsync();
    expect(await all).toEqual(Array(5).fill(start));
    expect(governor.stats.waits).toBe(0);
  });

  it('sends nothing for an invocation that has ended, also when it ended while the call waited for budget', async () => {
    const governor = new RateGovernor({ maxConcurrent: 1, now: () => Date.now() });
    // The target's window is spent until 1 s from now: a call asked for now waits.
    governor.observe({ limit: 10, remaining: 0, resetAt: Date.now() + 1000 });
    const ended = new AbortController();
    const sent: string[] = [];
    const waiting = withInvocationSignal(ended.signal, () => governor.run(async () => sent.push('waited')));
    const outcome = waiting.then(() => 'sent', (e: Error) => `${e.name}: ${e.message}`);
    await vi.advanceTimersByTimeAsync(500);
    ended.abort(); // the step timed out while its call waited
    await vi.runAllTimersAsync();
    expect(await outcome).toBe('InvocationEnded: target call: not sent, the invocation it was made for has ended (its step timed out)');
    await expect(withInvocationSignal(ended.signal, () => governor.run(async () => sent.push('late')))).rejects.toThrow(/not sent/);
    // Another invocation, still going, is served.
    await withInvocationSignal(new AbortController().signal, () => governor.run(async () => sent.push('live')));
    expect(sent).toEqual(['live']);
  });
});
