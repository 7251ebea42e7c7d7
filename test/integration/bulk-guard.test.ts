/**
 * The bulk-change guard under a burst, on the real ledger (dynalite): many consumers admitting
 * terminations at the same moment, with no active-people count cached yet.
 */
import { describe, expect, it } from 'vitest';
import { admitRestrictingRun, conflictApprovalId, GUARD_REQUEST_ID, slotApprovalId, windowAt } from '#app/bulk-guard';
import type { PersonRecord, RunRecord } from '#core/ledger';
import { testDeps, useDynalite } from '../helpers/deps.ts';
import { personRecord } from '../helpers/approvals-harness.ts';
import { worker } from '../helpers/policy.ts';

const dynamo = useDynalite();

const person = (i: number): PersonRecord => {
  const employeeId = `G${String(i).padStart(4, '0')}`;
  const w = worker({ employeeId, email: `g${i}@example.com`, familyName: `Person${i}` });
  return personRecord(w, { status: i % 10 === 0 ? 'terminated' : 'active' });
};

const leaverRun = (i: number): RunRecord => ({
  runId: `run-burst-${i}`,
  idempotencyKey: `key-${i}`,
  employeeId: person(i).employeeId,
  eventId: `evt-${i}`,
  eventType: 'termination',
  lifecycle: 'leaver',
  status: 'RECEIVED',
  eventHash: 'a'.repeat(64),
  rawEvent: '{}',
  event: { eventType: 'termination', worker: { employeeId: person(i).employeeId } },
  effectiveAt: '2026-11-20T09:00:00.000Z',
  occurredAt: '2026-11-20T08:59:00.000Z',
  mappingVersion: 'sha256:policy',
  createdAt: '2026-11-20T09:00:00.000Z',
  updatedAt: '2026-11-20T09:00:00.000Z',
}) as RunRecord;

describe('bulk-change guard under a burst', () => {
  it('40 consumers at once with no count cached: the people are counted once, and the limit holds exactly', async () => {
    const deps = await testDeps(dynamo());
    for (let i = 1; i <= 200; i++) await deps.ledger.putPerson(person(i), null);
    const policy = await deps.policy();
    policy.document.bulkGuard = { ...policy.document.bulkGuard, maxCount: 1000, maxPercent: 10, minCount: 1 };
    let scans = 0;
    const list = deps.ledger.listPersons.bind(deps.ledger);
    deps.ledger.listPersons = async (cursor, limit) => {
      if (!cursor) scans += 1;
      return list(cursor, limit);
    };

    const admissions = await Promise.all(Array.from({ length: 40 }, (_, i) => admitRestrictingRun(deps, policy, leaverRun(i + 1), 'termination')));

    expect(scans).toBe(1);
    // 180 active people (every tenth is terminated), 10 %: 18 admitted, the rest held.
    expect(admissions.filter((a) => a.outcome === 'admitted')).toHaveLength(18);
    expect(admissions.filter((a) => a.outcome === 'held')).toHaveLength(22);
    expect(deps.metrics.sum('BulkGuardRecount')).toBe(1);
    // Each admitted run's record is written while its consumer writes the person: one slot each.
    await Promise.all(admissions.map((a) => (a.outcome === 'admitted' ? a.recorded : undefined)));
    const slots = await Promise.all(admissions.map(async (_, i) => (await deps.ledger.listApprovals(`run-burst-${i + 1}`)).filter((r) => r.requestId === GUARD_REQUEST_ID && r.status === 'APPROVED')));
    expect(slots.flat().map((r) => (r.request as { slot: number }).slot).sort((x, y) => x - y)).toEqual(Array.from({ length: 18 }, (_, i) => i + 1));
  });

  it('a slot already recorded for another run (the counter lost counts): the run stays admitted, the count is corrected and the record names why', async () => {
    const deps = await testDeps(dynamo());
    for (let i = 1; i <= 3; i++) await deps.ledger.putPerson(person(i), null);
    const policy = await deps.policy();
    policy.document.bulkGuard = { ...policy.document.bulkGuard, maxCount: 1000, maxPercent: 100, minCount: 10 };
    const w = windowAt(policy, deps.clock.now().getTime());
    // Slot 1 of this window step is on record (the first run's), but the step's counter is gone.
    const now = deps.clock.now().toISOString();
    await deps.ledger.putApproval({
      approvalId: slotApprovalId(w.step, w.bucket, 1),
      runId: 'run-burst-1',
      employeeId: person(1).employeeId,
      requestId: GUARD_REQUEST_ID,
      approver: 'bulk-change-guard',
      approverRole: 'fallback',
      status: 'APPROVED',
      requestedAt: now,
      decidedAt: now,
      expiresAt: new Date(Date.parse(now) + 3_600_000).toISOString(),
      request: { kind: 'bulkGuard', slot: 1 },
    });
    const counterKey = `bulk-guard/admitted/${w.step}/${w.bucket}`;

    const second = await admitRestrictingRun(deps, policy, leaverRun(2), 'termination');
    if (second.outcome !== 'admitted') throw new Error(`expected admitted, got ${second.outcome}`);
    await second.recorded;
    expect(deps.metrics.sum('BulkGuardSlotConflict')).toBe(1);
    const record = await deps.ledger.getApproval(conflictApprovalId('run-burst-2'));
    expect(record).toMatchObject({ runId: 'run-burst-2', status: 'APPROVED', requestId: GUARD_REQUEST_ID });
    expect(record!.rationale).toContain('slot 1 was already recorded for another run, so the window\'s count was one short and was corrected');
    // Slot 1 is still the first run's; the count is back to the two runs admitted.
    expect((await deps.ledger.getApproval(slotApprovalId(w.step, w.bucket, 1)))!.runId).toBe('run-burst-1');
    expect(await deps.ledger.getCounters([counterKey])).toEqual([2]);
    // A retried start of the second run finds its record: admitted once, admitted again, no new count.
    const again = await admitRestrictingRun(deps, policy, leaverRun(2), 'termination');
    expect(again.outcome).toBe('admitted');
    expect(await deps.ledger.getCounters([counterKey])).toEqual([2]);
  });
});
