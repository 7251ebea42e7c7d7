import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CALL_COSTS, callBudgetCases, leaverRemainderCalls, leaverRestrictCalls, reservationCostMs, reserveCalls, slotTimestamp, type CallSchedule } from '#core/call-budget';

const T0 = Date.UTC(2026, 10, 26, 9, 0, 0);

describe('call budget', () => {
  it('lets a lone run start at once and paces a burst at the rate after its allowance', () => {
    // 600 per minute: one call per 100 ms; a burst of 10 calls may go ahead of the pace.
    let s: CallSchedule | null = null;
    const starts: number[] = [];
    for (let i = 0; i < 5; i++) {
      const r = reserveCalls(s, { calls: 5, requestsPerMinute: 600, burst: 10, lane: 'routine', nowMs: T0 });
      starts.push(r.startAtMs - T0);
      s = r.schedule;
    }
    // 0–500 ms of calls are promised before the third asks: it may start 1,000 ms ahead of pace.
    expect(starts).toEqual([0, 0, 0, 500, 1000]);
    expect(s!.until - T0).toBe(2500);
  });

  it('serves restrict steps before a routine backlog, and routine work behind every restrict already promised', () => {
    let s: CallSchedule | null = null;
    const reserve = (lane: 'restrict' | 'routine', calls: number, atMs = 0) => {
      const r = reserveCalls(s, { calls, requestsPerMinute: 600, burst: 0, lane, nowMs: T0 + atMs });
      s = r.schedule;
      return r.startAtMs - T0;
    };
    // A backlog of routine work: 100 runs × 15 calls = 150 s of budget.
    for (let i = 0; i < 100; i++) reserve('routine', 15);
    expect(s!.until - T0).toBe(150_000);
    // A termination arrives: its restrict step starts now, not after the backlog.
    expect(reserve('restrict', 3, 1000)).toBe(1000);
    expect(reserve('restrict', 3, 1000)).toBe(1300);
    // Its calls still count: the rest of the runs move back by them.
    expect(s!.until - T0).toBe(150_600);
    expect(reserve('routine', 15, 2000)).toBe(150_600);
  });

  it('starts an idle target afresh: budget unused in the past is not saved up', () => {
    const first = reserveCalls(null, { calls: 20, requestsPerMinute: 60, burst: 0, lane: 'routine', nowMs: T0 });
    expect(first.schedule.until - T0).toBe(20_000);
    const later = reserveCalls(first.schedule, { calls: 20, requestsPerMinute: 60, burst: 0, lane: 'routine', nowMs: T0 + 600_000 });
    expect(later.startAtMs).toBe(T0 + 600_000);
    expect(later.schedule.until).toBe(T0 + 620_000);
  });

  it('never promises more than the rate, plus the allowance, in any window (routine lane)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 60, max: 1200 }),
        fc.integer({ min: 0, max: 50 }),
        fc.array(fc.record({ gapMs: fc.integer({ min: 0, max: 5_000 }), calls: fc.integer({ min: 1, max: 20 }) }), { minLength: 1, maxLength: 200 }),
        (perMinute, burst, asks) => {
          const step = 60_000 / perMinute;
          let s: CallSchedule | null = null;
          let now = T0;
          const calls: number[] = [];
          for (const a of asks) {
            now += a.gapMs;
            const r = reserveCalls(s, { calls: a.calls, requestsPerMinute: perMinute, burst, lane: 'routine', nowMs: now });
            expect(r.startAtMs).toBeGreaterThanOrEqual(now);
            s = r.schedule;
            // The reserved calls, each at its own place in the pace from the slot on.
            for (let i = 0; i < a.calls; i++) calls.push(r.startAtMs + i * step);
          }
          calls.sort((x, y) => x - y);
          // Any window of one minute holds at most a minute's budget plus the allowance and one
          // reservation's worth (a reservation is paced by the connector from its slot on).
          const bound = perMinute + burst + 20 + 1;
          for (let i = 0, j = 0; i < calls.length; i++) {
            while (calls[i]! - calls[j]! >= 60_000) j++;
            expect(i - j + 1).toBeLessThanOrEqual(bound);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('as conditional cases: exactly one holds for any schedule, and it moves the schedule as reserveCalls does', () => {
    fc.assert(
      fc.property(
        fc.option(fc.record({ until: fc.integer({ min: -100_000, max: 100_000 }), back: fc.integer({ min: 0, max: 100_000 }) }), { nil: null }),
        fc.constantFrom('restrict' as const, 'routine' as const),
        fc.integer({ min: 1, max: 30 }),
        (stored, lane, calls) => {
          const nowMs = T0;
          // What a store holds: until ≥ restrictUntil (every restrict counts in both), or nothing.
          const schedule = stored ? { until: T0 + stored.until, restrictUntil: T0 + stored.until - stored.back } : null;
          const r = { calls, requestsPerMinute: 600, burst: 0, lane, nowMs };
          const holds = (want: 'set' | 'unset' | undefined, v: number | undefined) => want === undefined || (want === 'set' ? v !== undefined && v >= nowMs : v === undefined || v < nowMs);
          const matching = callBudgetCases(lane).filter((c) => holds(c.until, schedule?.until) && holds(c.restrictUntil, schedule?.restrictUntil));
          expect(matching).toHaveLength(1);
          const cost = reservationCostMs(r);
          const move = (how: 'add' | 'restart' | undefined, v: number | undefined) => (how === 'add' ? v! + cost : how === 'restart' ? nowMs + cost : v);
          const expected = reserveCalls(schedule, r).schedule;
          expect(move(matching[0]!.moves.until, schedule?.until)).toBe(expected.until);
          if (matching[0]!.moves.restrictUntil || schedule) expect(move(matching[0]!.moves.restrictUntil, schedule?.restrictUntil) ?? nowMs).toBe(expected.restrictUntil);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('refuses a reservation that makes no sense, naming the numbers', () => {
    expect(() => reserveCalls(null, { calls: 0, requestsPerMinute: 600, lane: 'routine', nowMs: T0 })).toThrow(/calls > 0 and a rate > 0 \(got 0 at 600\/min\)/);
    expect(() => reserveCalls(null, { calls: 3, requestsPerMinute: 600, burst: -1, lane: 'routine', nowMs: T0 })).toThrow(/burst must be ≥ 0 \(got -1\)/);
  });

  it("counts a leaver's IdP calls as the connectors make them", () => {
    // Restrict: GET the user, deactivate, revoke sessions. The rest: Plan, converge and reconcile
    // each read the user, its groups and its app links; the converge revokes sessions again and
    // removes each group; close reads the system log.
    expect(leaverRestrictCalls(CALL_COSTS.okta)).toBe(3);
    expect(leaverRemainderCalls(CALL_COSTS.okta, 4)).toBe(15);
    // Entra: the disable reads accountEnabled first, each group removal reads the direct groups.
    expect(leaverRestrictCalls(CALL_COSTS.entra)).toBe(4);
    expect(leaverRemainderCalls(CALL_COSTS.entra, 4)).toBe(19);
  });
});

describe('slot timestamps for the Wait state', () => {
  it('are whole seconds: a future slot rounded up, a slot that has come rounded down', () => {
    const now = Date.UTC(2026, 10, 26, 9, 0, 0, 400);
    expect(slotTimestamp(now + 100, now)).toBe('2026-11-26T09:00:01Z');
    expect(slotTimestamp(now + 1600, now)).toBe('2026-11-26T09:00:02Z');
    expect(slotTimestamp(now - 5000, now)).toBe('2026-11-26T09:00:00Z');
    expect(slotTimestamp(now, now)).toBe('2026-11-26T09:00:00Z');
  });
});
