/**
 * The SQS FIFO consumer: partial batch failures the FIFO way (after the first failure, the rest of
 * the batch is failed unprocessed so SQS redelivers it in order), run starts, scheduled runs, and
 * drift messages becoming out-of-band-change exceptions for the IdP owner.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { acceptHrEvent, acceptOktaEvents } from '#app/ingest';
import { createStartRunHandler, parseQueueMessage } from '#handlers/start-run';
import type { PersonRecord } from '#core/ledger';
import { ValidationError } from '#core/errors';
import { sqsRecord, testDeps, useDynalite, type TestDeps } from '../helpers/deps.ts';
import { worker } from '../helpers/policy.ts';

const dynamo = useDynalite();

async function setup(now?: string) {
  const deps = await testDeps(dynamo(), now ? { now } : {});
  return { deps, consumer: createStartRunHandler(async () => deps) };
}

/** Records a change effective today for `employeeId` and returns its queued message as an SQS record. */
async function changeFor(deps: TestDeps, employeeId: string, over: { occurredAt?: string; jobCode?: string; effectiveDate?: string } = {}) {
  const before = deps.queue.sent.length;
  const r = await acceptHrEvent(deps, {
    source: 'canonical',
    rawBody: JSON.stringify({
      eventId: randomUUID(),
      eventType: 'change',
      effectiveDate: over.effectiveDate ?? '2026-11-20',
      occurredAt: over.occurredAt ?? '2026-11-20T08:00:00Z',
      worker: worker({ employeeId, email: `${employeeId.toLowerCase()}@acme.example`, startDate: '2024-01-08', jobCode: over.jobCode ?? 'ENG-2' }),
    }),
  });
  const [sent] = deps.queue.sent.slice(before);
  return { runId: r.runId, record: sqsRecord(sent!.message, { groupId: sent!.groupId, deduplicationId: sent!.deduplicationId }) };
}

const failedIds = (r: { batchItemFailures: Array<{ itemIdentifier: string }> }) => r.batchItemFailures.map((f) => f.itemIdentifier);

describe('hr-event messages', () => {
  it('starts each run once, in batch order; redelivery is a no-op', async () => {
    const { deps, consumer } = await setup();
    const a = await changeFor(deps, 'E1001');
    const b = await changeFor(deps, 'E1002');
    const res = await consumer({ Records: [a.record, b.record] });
    expect(res.batchItemFailures).toEqual([]);
    expect(deps.workflows.started.map((s) => [s.workflow, s.name])).toEqual([
      ['mover', a.runId],
      ['mover', b.runId],
    ]);
    expect((await consumer({ Records: [a.record, b.record] })).batchItemFailures).toEqual([]);
    expect(deps.workflows.started).toHaveLength(2);
  });

  it('after the first failure the rest of the batch is failed unprocessed; redelivered, it runs in order', async () => {
    const { deps, consumer } = await setup();
    const a1 = await changeFor(deps, 'E1001', { occurredAt: '2026-11-20T08:00:00Z' });
    const a2 = await changeFor(deps, 'E1001', { occurredAt: '2026-11-20T08:05:00Z', jobCode: 'ENG-3' });
    const b1 = await changeFor(deps, 'E1002');
    const a3 = await changeFor(deps, 'E1001', { occurredAt: '2026-11-20T08:10:00Z', jobCode: 'ENG-4' });

    // Step Functions refuses the second start (throttled): a2 fails, b1 and a3 are not attempted.
    let starts = 0;
    const start = deps.workflows.start.bind(deps.workflows);
    deps.workflows.start = async (...args) => {
      if (++starts === 2) throw Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });
      return start(...args);
    };
    const res = await consumer({ Records: [a1.record, a2.record, b1.record, a3.record] });
    expect(failedIds(res)).toEqual([a2.record.messageId, b1.record.messageId, a3.record.messageId]);
    expect(deps.workflows.started.map((s) => s.name)).toEqual([a1.runId]);
    expect(starts).toBe(2);
    expect((await deps.ledger.getRun(b1.runId))!.status).toBe('RECEIVED');

    const again = await consumer({ Records: [a2.record, b1.record, a3.record] });
    expect(again.batchItemFailures).toEqual([]);
    expect(deps.workflows.started.map((s) => s.name)).toEqual([a1.runId, a2.runId, b1.runId, a3.runId]);
    expect((await deps.ledger.getPerson('E1001'))!.worker.jobCode).toBe('ENG-4');
  });

  it('a poison record (bad body, unknown run) fails with everything after it, and only those', async () => {
    const { deps, consumer } = await setup();
    const ok = await changeFor(deps, 'E1001');
    const later = await changeFor(deps, 'E1002');
    const garbage = sqsRecord('{"kind":"hr-event"', { groupId: 'E9' });
    const unknownKind = sqsRecord({ kind: 'refund', runId: 'x' }, { groupId: 'E9' });
    const missing = sqsRecord({ kind: 'hr-event', runId: 'run-00000000000000000000000000000000', employeeId: 'E9' }, { groupId: 'E9' });

    for (const poison of [garbage, unknownKind, missing]) {
      const res = await consumer({ Records: [ok.record, poison, later.record] });
      expect(failedIds(res)).toEqual([poison.messageId, later.record.messageId]);
    }
    expect(deps.workflows.started.map((s) => s.name)).toEqual([ok.runId]);
    // A batch of poison only reports every record (no throw: the response says it all).
    expect(failedIds(await consumer({ Records: [missing, garbage] }))).toEqual([missing.messageId, garbage.messageId]);
  });

  it('parseQueueMessage names the field that is wrong', () => {
    expect(() => parseQueueMessage('nope')).toThrow(ValidationError);
    expect(() => parseQueueMessage(JSON.stringify({ kind: 'hr-event', employeeId: 'E1' }))).toThrow('queue message: runId: required');
    expect(() => parseQueueMessage(JSON.stringify({ kind: 'hr-event', runId: 'r', employeeId: 'E1', extra: 1 }))).toThrow('unknown field(s) extra');
    // The lifecycle is optional (messages sent before it was added still parse) and checked.
    expect(parseQueueMessage(JSON.stringify({ kind: 'hr-event', runId: 'r', employeeId: 'E1' }))).toEqual({ kind: 'hr-event', runId: 'r', employeeId: 'E1' });
    expect(parseQueueMessage(JSON.stringify({ kind: 'hr-event', runId: 'r', employeeId: 'E1', lifecycle: 'leaver' }))).toMatchObject({ lifecycle: 'leaver' });
    expect(() => parseQueueMessage(JSON.stringify({ kind: 'hr-event', runId: 'r', employeeId: 'E1', lifecycle: 'fired' }))).toThrow('queue message: lifecycle:');
  });

  it('an event older than the applied version ends STALE (not a failure)', async () => {
    const { deps, consumer } = await setup();
    const newer = await changeFor(deps, 'E1001', { occurredAt: '2026-11-20T08:30:00Z', jobCode: 'ENG-3' });
    const older = await changeFor(deps, 'E1001', { occurredAt: '2026-11-20T08:00:00Z' });
    const res = await consumer({ Records: [newer.record, older.record] });
    expect(res.batchItemFailures).toEqual([]);
    expect((await deps.ledger.getRun(older.runId))!.status).toBe('STALE');
    expect(deps.workflows.started.map((s) => s.name)).toEqual([newer.runId]);
  });

  it('a future change is scheduled, and the scheduled-run message starts it on the day', async () => {
    const { deps, consumer } = await setup();
    const future = await changeFor(deps, 'E1001', { effectiveDate: '2026-12-01' });
    expect((await consumer({ Records: [future.record] })).batchItemFailures).toEqual([]);
    expect((await deps.ledger.getRun(future.runId))!.status).toBe('SCHEDULED');
    const schedules = [...deps.scheduler.schedules.values()];
    expect(schedules.map((s) => [s.at.toISOString(), s.action])).toEqual([
      ['2026-12-01T00:00:00.000Z', { kind: 'start-run', payload: { runId: future.runId, employeeId: 'E1001' } }],
    ]);
    expect(deps.workflows.started).toEqual([]);

    deps.clock.set('2026-12-01T00:00:05Z');
    const fired = sqsRecord({ kind: 'scheduled-run', runId: future.runId, employeeId: 'E1001' }, { groupId: 'E1001' });
    expect((await consumer({ Records: [fired] })).batchItemFailures).toEqual([]);
    expect(deps.workflows.started.map((s) => s.name)).toEqual([future.runId]);
  });
});

describe('drift messages', () => {
  async function linked(deps: TestDeps, employeeId: string, oktaId: string, status: PersonRecord['status']) {
    await deps.ledger.putPerson(
      {
        employeeId,
        worker: worker({ employeeId }),
        status,
        version: '2026-11-01T00:00:00.000Z',
        lastRunId: 'run-0',
        links: { okta: oktaId },
        grantedAt: {},
        approvedBundles: [],
        rejectedBundles: [],
        updatedAt: '2026-11-01T00:00:00.000Z',
      },
      null,
    );
  }

  it('opens an out_of_band_change exception for the IdP owner naming actor and target, once', async () => {
    const { deps, consumer } = await setup();
    await linked(deps, 'E1001', '00u1001', 'terminated');
    const uuid = randomUUID();
    await acceptOktaEvents(deps, {
      eventType: 'com.okta.event_hook',
      data: {
        events: [
          {
            uuid,
            eventType: 'group.user_membership.add',
            published: '2026-11-20T08:59:30.000Z',
            actor: { id: '00uadmin1', type: 'User', alternateId: 'it.admin@acme.example', displayName: 'IT Admin' },
            target: [
              { id: '00u1001', type: 'User', alternateId: 'ada@acme.example', displayName: 'Ada Lovelace' },
              { id: '00gprod', type: 'UserGroup', alternateId: 'unknown', displayName: 'Production Access' },
            ],
            outcome: { result: 'SUCCESS', reason: null },
          },
        ],
      },
    });
    const records = deps.queue.asSqsRecords();
    expect(records).toHaveLength(1);
    expect((await consumer({ Records: records })).batchItemFailures).toEqual([]);

    const [exception] = await deps.ledger.listExceptions({ status: 'open' });
    expect(exception).toMatchObject({
      kind: 'out_of_band_change',
      target: 'okta',
      owner: 'iam@acme.example',
      employeeId: 'E1001',
      status: 'open',
      reason:
        'Okta (workforce identity): account 00u1001 of E1001 (terminated in HR) was added to group "Production Access" by it.admin@acme.example at 2026-11-20T08:59:30.000Z, outside jml.',
    });
    expect(exception!.evidence).toMatchObject({
      eventId: uuid,
      eventType: 'group.user_membership.add',
      actor: 'it.admin@acme.example',
      accountId: '00u1001',
      personStatus: 'terminated',
      event: { uuid, target: [expect.objectContaining({ id: '00u1001' }), expect.objectContaining({ displayName: 'Production Access' })] },
    });
    expect(deps.mailer.sent.map((m) => m.to)).toEqual([['iam@acme.example']]);
    expect(deps.metrics.sum('DriftDetected')).toBe(1);

    // SQS redelivers the message (a later record of its batch failed): nothing new.
    expect((await consumer({ Records: records })).batchItemFailures).toEqual([]);
    expect(await deps.ledger.listExceptions({})).toHaveLength(1);
    expect(deps.mailer.sent).toHaveLength(1);
  });

  it('an unknown account and no stored Okta event still produce a readable exception', async () => {
    const { deps, consumer } = await setup();
    const record = sqsRecord(
      { kind: 'drift', eventId: randomUUID(), target: 'okta', accountId: '00u5555', eventType: 'user.account.privilege.grant', actor: 'root@acme.example', published: '2026-11-20T08:00:00.000Z' },
      { groupId: 'okta-00u5555' },
    );
    expect((await consumer({ Records: [record] })).batchItemFailures).toEqual([]);
    const [exception] = await deps.ledger.listExceptions({ status: 'open' });
    expect(exception!.reason).toBe(
      'Okta (workforce identity): account 00u5555 (linked to no person in jml) was granted an administrator privilege by root@acme.example at 2026-11-20T08:00:00.000Z, outside jml.',
    );
    expect(exception!.employeeId).toBeUndefined();
  });
});
