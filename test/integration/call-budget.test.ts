/**
 * The IdP's call budget: reservations on the real ledger (dynalite) from many consumers at once,
 * and a burst of leavers through the whole local stack with a rate limit on Okta.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { callBudgetKey } from '#app/call-budget';
import { desiredState } from '#core/desired-state';
import { loadPolicyText } from '#core/policy-yaml';
import { startLocalStack, type LocalStack } from '#local/stack';
import { testDeps, useDynalite } from '../helpers/deps.ts';
import { personRecord } from '../helpers/approvals-harness.ts';
import { examplePolicyDocument, worker } from '../helpers/policy.ts';
import { hrEvent, send, waitForStatus } from '../helpers/stack.ts';
import { oktaProfileOf } from '#local/standins/okta-state';

const dynamo = useDynalite();
const T0 = Date.UTC(2026, 10, 26, 9, 0, 0);

describe('call budget on the ledger', () => {
  it('30 reservations at the same moment each get their own slot, none lost', async () => {
    const { ledger } = await testDeps(dynamo());
    const key = callBudgetKey('okta-concurrent');
    const slots = await Promise.all(
      Array.from({ length: 30 }, () => ledger.reserveCalls(key, { calls: 3, requestsPerMinute: 600, burst: 0, lane: 'routine', nowMs: T0 })),
    );
    // 3 calls at 600 per minute = 300 ms each, one after another from T0.
    expect(slots.map((s) => s.startAtMs - T0).sort((a, b) => a - b)).toEqual(Array.from({ length: 30 }, (_, i) => i * 300));
    // A termination arriving now goes before all of them.
    const restrict = await ledger.reserveCalls(key, { calls: 3, requestsPerMinute: 600, burst: 0, lane: 'restrict', nowMs: T0 + 1000 });
    expect(restrict.startAtMs).toBe(T0 + 1000);
    // ... and counts: routine work asked for now starts after the 30 and the restrict.
    const after = await ledger.reserveCalls(key, { calls: 3, requestsPerMinute: 600, burst: 0, lane: 'routine', nowMs: T0 + 1000 });
    expect(after.startAtMs).toBe(T0 + 9300);
  });
});

describe('a burst of leavers with a rate limit on Okta', () => {
  const dir = mkdtempSync(join(tmpdir(), 'jml-call-budget-'));
  let stack: LocalStack | undefined;
  afterAll(async () => {
    await stack?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('disables every leaver first, then works off the rest at the rate, with no 429 and no step retried', async () => {
    // 600 calls per minute (100 ms per call) and no allowance ahead of the pace, so the order
    // shows with a handful of leavers; no data-handling approvals to wait for.
    const doc = examplePolicyDocument();
    const okta = doc.targets.find((t: { name: string }) => t.name === 'okta');
    okta.rateLimit = { requestsPerMinute: 600, burst: 0 };
    doc.leaver = { ...doc.leaver, dataHandling: [] };
    const policyFile = join(dir, 'policy.yaml');
    writeFileSync(policyFile, stringify(doc));
    const policy = loadPolicyText(stringify(doc));
    stack = await startLocalStack({ policyFile });
    const oktaStandIn = stack.targets.okta!;

    const workers = Array.from({ length: 5 }, (_, i) =>
      worker({ employeeId: `CB${i + 1}`, email: `cb${i + 1}@acme.example`, familyName: `Leaver${i + 1}`, department: 'Engineering', location: 'London', jobCode: 'SWE', startDate: '2024-01-08' }),
    );
    const groupsOf = (w: (typeof workers)[number]) =>
      desiredState({ worker: w, status: 'active' }, policy).targets.find((t) => t.target === 'okta')!.entitlements.map((e) => e.value);
    const ids = oktaStandIn.seed({
      users: workers.map((w) => ({
        status: 'ACTIVE' as const,
        profile: oktaProfileOf(w),
        groups: groupsOf(w),
      })),
    }).users;
    for (const w of workers) await stack.deps.ledger.putPerson(personRecord(w, { links: { okta: ids[w.email]! } }), null);
    oktaStandIn.controls.rateLimit = { limit: 600, windowMs: 60_000 };
    const logStart = oktaStandIn.requestLog.length;

    const accepted = await Promise.all(workers.map((w) => send(stack!, hrEvent('termination', { ...w, terminationDate: '2026-11-01' }))));
    for (const a of accepted) await waitForStatus(stack, a.runId, ['COMPLETED'], 60_000);

    const log = oktaStandIn.requestLog.slice(logStart);
    expect(log.filter((r) => r.status === 429)).toEqual([]);
    for (const w of workers) {
      const user = oktaStandIn.state.users.get(ids[w.email]!)!;
      expect(user.status).toBe('DEPROVISIONED');
      expect(oktaStandIn.state.groupsOf(user.id).map((g) => g.profile.name).filter((g) => g !== 'Everyone')).toEqual([]);
    }
    // Every disable went out before the first read of any run's remaining work.
    const lastDeactivate = Math.max(...log.filter((r) => r.path.endsWith('/lifecycle/deactivate')).map((r) => r.at));
    const firstGroupsRead = Math.min(...log.filter((r) => r.method === 'GET' && r.path.endsWith('/groups')).map((r) => r.at));
    expect(log.filter((r) => r.path.endsWith('/lifecycle/deactivate'))).toHaveLength(5);
    expect(lastDeactivate).toBeLessThan(firstGroupsRead);
    for (const a of accepted) {
      const path = stack.workflows.execution(a.runId)!.path;
      expect(stack.workflows.statesEntered(a.runId).slice(0, 4)).toEqual(['AwaitRestrictSlot', 'DisableAtIdp', 'AwaitRoutineSlot', 'Plan']);
      expect(path.filter((e) => e.type === 'StateRetried')).toEqual([]);
    }
    // Each run waited for its slot: the restricts one after another, the rest behind them all.
    const waits = stack.metrics.points.filter((p) => p.name === 'CallBudgetWait');
    expect(waits.filter((p) => p.dimensions.lane === 'restrict')).toHaveLength(5);
    expect(waits.filter((p) => p.dimensions.lane === 'routine')).toHaveLength(5);
    expect(Math.max(...waits.filter((p) => p.dimensions.lane === 'routine').map((p) => p.value))).toBeGreaterThan(0);
  }, 90_000);
});
