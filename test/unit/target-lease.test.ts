import { describe, expect, it } from 'vitest';
import type { Ledger, LeaseResult } from '#core/ledger';
import { TargetBusy } from '#core/errors';
import { targetLeaseKey, withTargetLease } from '#app/target-lease';

/** The two lease calls of the ledger, with the DynamoDB adapter's rule (tested on dynalite in ledger.test.ts). */
function leases() {
  const held = new Map<string, { holder: string; untilMs: number }>();
  const ledger = {
    async acquireLease(key: string, holder: string, untilMs: number, nowMs: number): Promise<LeaseResult> {
      const l = held.get(key);
      if (l && l.holder !== holder && l.untilMs >= nowMs) return { acquired: false, ...l };
      held.set(key, { holder, untilMs });
      return { acquired: true };
    },
    async releaseLease(key: string, holder: string) {
      if (held.get(key)?.holder === holder) held.delete(key);
    },
  } as unknown as Ledger;
  const metrics: Array<{ name: string; value: number }> = [];
  const deps = { ledger, clock: { now: () => new Date() }, metrics: { put: (name: string, value: number) => void metrics.push({ name, value }), flush() {} } };
  return { deps, held, metrics };
}

describe('one writer per person and target', () => {
  it('a second run waits for the first and then runs: the two never overlap', async () => {
    const { deps, held, metrics } = leases();
    const trace: string[] = [];
    const step = (name: string, ms: number) => async () => {
      trace.push(`${name} reads`);
      await new Promise((r) => setTimeout(r, ms));
      trace.push(`${name} writes`);
      return name;
    };
    const lease = (holder: string) => ({ employeeId: 'E1', target: 'okta', holder });
    const results = await Promise.all([withTargetLease(deps, lease('run A'), step('A', 80)), withTargetLease(deps, lease('run B'), step('B', 5))]);
    expect(results).toEqual(['A', 'B']);
    expect(trace).toEqual(['A reads', 'A writes', 'B reads', 'B writes']);
    expect(held.size).toBe(0); // both released
    expect(metrics.map((m) => m.name)).toEqual(['TargetLeaseWait']);
  });

  it('another target, or another person, does not wait', async () => {
    const { deps } = leases();
    const trace: string[] = [];
    const slow = (name: string) => async () => {
      trace.push(`${name} starts`);
      await new Promise((r) => setTimeout(r, 30));
      trace.push(`${name} ends`);
    };
    await Promise.all([
      withTargetLease(deps, { employeeId: 'E1', target: 'okta', holder: 'run A' }, slow('okta E1')),
      withTargetLease(deps, { employeeId: 'E1', target: 'slack', holder: 'run B' }, slow('slack E1')),
      withTargetLease(deps, { employeeId: 'E2', target: 'okta', holder: 'run C' }, slow('okta E2')),
    ]);
    expect(trace.slice(0, 3).every((t) => t.endsWith('starts'))).toBe(true);
  });

  it('gives up after its wait with TargetBusy naming the holder (the workflow retries it), and releases even when the write fails', async () => {
    const { deps, held } = leases();
    let release!: () => void;
    const first = withTargetLease(deps, { employeeId: 'E1', target: 'okta', holder: 'run A' }, () => new Promise<void>((r) => (release = r)));
    const second = withTargetLease(deps, { employeeId: 'E1', target: 'okta', holder: 'run B' }, async () => 'never', 100);
    await expect(second).rejects.toThrow(TargetBusy);
    await expect(second).rejects.toThrow("okta: run A is changing E1's account; retry when it is done");
    release();
    await first;
    await expect(withTargetLease(deps, { employeeId: 'E1', target: 'okta', holder: 'run B' }, async () => Promise.reject(new Error('okta: HTTP 500')))).rejects.toThrow('HTTP 500');
    expect(held.has(targetLeaseKey('E1', 'okta'))).toBe(false);
  });
});
