/**
 * The bulk-change guard under a burst, on the real ledger (dynalite): many consumers admitting
 * terminations at the same moment, with no active-people count cached yet.
 */
import { describe, expect, it } from 'vitest';
import { admitRestrictingRun } from '#app/bulk-guard';
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
  });
});
