/**
 * The DynamoDB ledger against a real dynalite on 127.0.0.1: real SDK calls, real conditional
 * writes, real indexes. One dynalite for the file; each test gets its own table so lists and
 * status partitions are not shared between tests.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TargetConflict } from '#core/errors';
import { ConditionFailed, type ApprovalRecord, type ExceptionRecord, type PersonRecord, type RunRecord, type StepAttempt } from '#core/ledger';
import { DynamoLedger, LedgerItemTooLarge } from '#aws/ledger.dynamodb';
import { LAYOUT_ATTRIBUTES, keys } from '#aws/table';
import { ensureTable, repairIndexes, startDynalite, type LocalDynamo } from '#local/dynalite';
import { tearIndexWrite } from '../helpers/torn-write.ts';

let dynamo: LocalDynamo;
beforeAll(async () => {
  dynamo = await startDynalite();
});
afterAll(async () => {
  await dynamo?.close();
});

/** A settable clock, so expiry can be tested without waiting. */
class Clock {
  constructor(public ms = Date.parse('2030-03-01T09:00:00.000Z')) {}
  now = () => new Date(this.ms);
  advance(seconds: number) {
    this.ms += seconds * 1000;
  }
  iso() {
    return new Date(this.ms).toISOString();
  }
}

async function freshLedger(clock = new Clock()) {
  const tableName = `ledger-${randomUUID()}`;
  await ensureTable(dynamo.client, tableName);
  return { ledger: new DynamoLedger({ client: dynamo.ledgerClient, tableName, now: clock.now }), tableName, clock };
}

function person(employeeId: string, overrides: Partial<PersonRecord> = {}): PersonRecord {
  return {
    employeeId,
    worker: {
      employeeId,
      givenName: 'Ada',
      familyName: 'Lovelace',
      email: `${employeeId.toLowerCase()}@example.com`,
      department: 'Engineering',
      location: 'London',
      jobCode: 'ENG2',
      managerId: 'E0001',
      employmentType: 'employee',
      startDate: '2030-01-06',
    },
    status: 'active',
    version: '2030-01-01T08:00:00.000Z',
    lastRunId: 'run-0',
    links: {},
    grantedAt: { 'eng-baseline': '2030-01-06T09:00:00.000Z' },
    approvedBundles: ['eng-baseline'],
    rejectedBundles: [],
    updatedAt: '2030-01-01T08:00:00.000Z',
    ...overrides,
  };
}

function run(runId: string, overrides: Partial<RunRecord> = {}): RunRecord {
  return {
    runId,
    idempotencyKey: `key-${runId}`,
    employeeId: 'E1001',
    eventId: `evt-${runId}`,
    eventType: 'hire',
    lifecycle: 'joiner',
    status: 'RECEIVED',
    eventHash: 'a'.repeat(64),
    rawEvent: '{"eventId":"evt"}',
    event: { eventType: 'hire', worker: { employeeId: 'E1001', department: 'Engineering' } },
    effectiveAt: '2030-01-06T09:00:00.000Z',
    occurredAt: '2030-01-01T08:00:00.000Z',
    mappingVersion: 'sha256:policy',
    createdAt: '2030-01-01T08:00:01.000Z',
    updatedAt: '2030-01-01T08:00:01.000Z',
    ...overrides,
  };
}

function approval(approvalId: string, overrides: Partial<ApprovalRecord> = {}): ApprovalRecord {
  return {
    approvalId,
    runId: 'run-1',
    employeeId: 'E1001',
    requestId: 'baseline',
    approver: 'manager@example.com',
    approverRole: 'manager',
    taskToken: randomBytes(32).toString('base64url'),
    status: 'PENDING',
    requestedAt: '2030-03-01T08:00:00.000Z',
    expiresAt: '2030-03-04T08:00:00.000Z',
    request: { bundles: ['eng-baseline'], risk: 'low' },
    ...overrides,
  };
}

function exception(exceptionId: string, overrides: Partial<ExceptionRecord> = {}): ExceptionRecord {
  return {
    exceptionId,
    runId: 'run-1',
    employeeId: 'E1001',
    target: 'wiki',
    owner: 'wiki-owners@example.com',
    kind: 'step_failed',
    reason: 'wiki: HTTP 503 after 4 attempts',
    evidence: { requestIds: ['req-1', 'req-2'] },
    status: 'open',
    openedAt: '2030-03-01T09:00:00.000Z',
    ...overrides,
  };
}

function step(runId: string, stepId: string, overrides: Partial<StepAttempt> = {}): StepAttempt {
  return {
    runId,
    stepId,
    target: stepId.slice(4),
    phase: 'execute',
    startedAt: '2030-03-01T09:00:00.000Z',
    finishedAt: '2030-03-01T09:00:02.000Z',
    outcome: 'ok',
    changes: [{ target: stepId.slice(4), op: 'create', accountId: 'acc-1', changed: true, requestIds: ['r-1'] }],
    writes: 1,
    ...overrides,
  };
}

function expectNoLayout(record: object) {
  for (const attr of LAYOUT_ATTRIBUTES) expect(record).not.toHaveProperty(attr);
}

describe('persons', () => {
  it('round-trips a person exactly, without key attributes', async () => {
    const { ledger } = await freshLedger();
    const p = person('E1001', { links: { okta: '00u1abc' }, rejectedBundles: ['admin'] });
    await ledger.putPerson(p, null);
    const read = await ledger.getPerson('E1001');
    expect(read).toEqual(p);
    expectNoLayout(read!);
    expect(await ledger.getPerson('E404')).toBeNull();
  });

  it('refuses a create over an existing person and an update from a stale version', async () => {
    const { ledger } = await freshLedger();
    const p = person('E1002');
    await ledger.putPerson(p, null);
    await expect(ledger.putPerson({ ...p, updatedAt: '2030-01-02T00:00:00.000Z' }, null)).rejects.toThrow(
      /person E1002 already exists/,
    );
    await ledger.putPerson({ ...p, status: 'on_leave', updatedAt: '2030-01-03T00:00:00.000Z' }, p.updatedAt);
    const stale = ledger.putPerson({ ...p, status: 'terminated', updatedAt: '2030-01-04T00:00:00.000Z' }, p.updatedAt);
    await expect(stale).rejects.toBeInstanceOf(ConditionFailed);
    await expect(stale).rejects.toThrow('person E1002 changed: updatedAt is 2030-01-03T00:00:00.000Z, expected 2030-01-01T08:00:00.000Z');
    expect((await ledger.getPerson('E1002'))?.status).toBe('on_leave');
    await expect(ledger.putPerson({ ...p, updatedAt: '2030-01-05T00:00:00.000Z' }, '2030-01-01T00:00:00.000Z').catch((e) => e.name)).resolves.toBe(
      'ConditionFailed',
    );
    await expect(ledger.putPerson(person('E404', { updatedAt: '2030-01-02T00:00:00.000Z' }), '2030-01-01T00:00:00.000Z')).rejects.toThrow(
      'person E404 does not exist',
    );
  });

  it('rejects a write that does not move updatedAt (it is the version)', async () => {
    const { ledger } = await freshLedger();
    const p = person('E1003');
    await ledger.putPerson(p, null);
    await expect(ledger.putPerson({ ...p, status: 'terminated' }, p.updatedAt)).rejects.toThrow(/updatedAt must change/);
  });

  it('two writers from the same version: exactly one wins, and the record is the winner’s', async () => {
    const { ledger } = await freshLedger();
    const base = person('E1004');
    await ledger.putPerson(base, null);
    for (let round = 0; round < 8; round++) {
      const current = (await ledger.getPerson('E1004'))!;
      const next = new Date(Date.parse(current.updatedAt) + 1000).toISOString();
      const writers = [
        { ...current, lastRunId: `run-a-${round}`, updatedAt: next },
        { ...current, lastRunId: `run-b-${round}`, updatedAt: next },
      ];
      const results = await Promise.allSettled(writers.map((w) => ledger.putPerson(w, current.updatedAt)));
      const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [writers[i]!] : []));
      const lost = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as Error] : []));
      expect(won).toHaveLength(1);
      expect(lost.map((e) => e.name)).toEqual(['ConditionFailed']);
      expect((await ledger.getPerson('E1004'))?.lastRunId).toBe(won[0]!.lastRunId);
    }
  });

  it('pages through persons only, bounded by the limit, with an opaque cursor', async () => {
    const { ledger } = await freshLedger();
    const ids = Array.from({ length: 7 }, (_, i) => `E20${i}`);
    for (const id of ids) await ledger.putPerson(person(id), null);
    await ledger.createRun(run('run-noise', { employeeId: 'E200' }));
    await ledger.putMeta('noise', { a: 1 });

    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await ledger.listPersons(cursor, 3);
      expect(page.persons.length).toBeLessThanOrEqual(3);
      page.persons.forEach(expectNoLayout);
      seen.push(...page.persons.map((p) => p.employeeId));
      cursor = page.nextCursor;
      pages++;
    } while (cursor && pages < 10);
    expect(seen.sort()).toEqual(ids);
    expect(pages).toBeGreaterThanOrEqual(3);
    await expect(ledger.listPersons('not-a-cursor', 3)).rejects.toThrow(/cursor/);
  });
});

describe('account links', () => {
  it('finds the person by account, follows a relink, and drops the old account', async () => {
    const { ledger } = await freshLedger();
    const p = person('E3001', { links: { okta: '00u-old', wiki: 'w-17' } });
    await ledger.putPerson(p, null);
    expect(await ledger.findPersonByAccount('okta', '00u-old')).toBe('E3001');
    expect(await ledger.findPersonByAccount('wiki', 'w-17')).toBe('E3001');
    expect(await ledger.findPersonByAccount('wiki', '00u-old')).toBeNull();

    await ledger.putPerson({ ...p, links: { okta: '00u-new' }, updatedAt: '2030-02-01T00:00:00.000Z' }, p.updatedAt);
    expect(await ledger.findPersonByAccount('okta', '00u-new')).toBe('E3001');
    expect(await ledger.findPersonByAccount('okta', '00u-old')).toBeNull();
    expect(await ledger.findPersonByAccount('wiki', 'w-17')).toBeNull();
  });

  it('given the record it replaces (as the caller just read it), writes without reading it again: same links, same refusals', async () => {
    const { tableName } = await freshLedger();
    let reads = 0;
    const counting = new Proxy(dynamo.ledgerClient, {
      get(target, prop, receiver) {
        if (prop !== 'send') return Reflect.get(target, prop, receiver);
        return (command: object, ...rest: unknown[]) => {
          if (command.constructor.name === 'GetItemCommand' || command.constructor.name === 'BatchGetItemCommand') reads += 1;
          return (target.send as (...a: unknown[]) => unknown).call(target, command, ...rest);
        };
      },
    });
    const ledger = new DynamoLedger({ client: counting, tableName });
    const p = person('E3002', { links: { okta: '00u-a', wiki: 'w-1' } });
    await ledger.putPerson(p, null);
    reads = 0;
    const v2 = { ...p, links: { okta: '00u-b' }, updatedAt: '2030-02-01T00:00:00.000Z' };
    await ledger.putPerson(v2, p);
    expect(reads).toBe(0);
    expect(await ledger.findPersonByAccount('okta', '00u-b')).toBe('E3002');
    expect(await ledger.findPersonByAccount('okta', '00u-a')).toBeNull();
    expect(await ledger.findPersonByAccount('wiki', 'w-1')).toBeNull();
    // A record that is no longer the stored version is refused, and nothing of it is written.
    const stale = ledger.putPerson({ ...p, status: 'terminated', updatedAt: '2030-02-02T00:00:00.000Z' }, p);
    await expect(stale).rejects.toThrow('person E3002 changed: updatedAt is 2030-02-01T00:00:00.000Z, expected 2030-01-01T08:00:00.000Z');
    expect(await ledger.getPerson('E3002')).toMatchObject({ status: v2.status, links: { okta: '00u-b' } });
    await expect(ledger.putPerson(person('E3003'), v2)).rejects.toThrow("person E3003: the record it replaces is E3002's");
  });

  it('refuses to link an account another person owns (a conflict, not a retryable race), and writes nothing for the newcomer', async () => {
    const { ledger } = await freshLedger();
    await ledger.putPerson(person('E3002', { links: { okta: '00u-shared' } }), null);
    const claim = ledger.putPerson(person('E3003', { links: { okta: '00u-shared' } }), null);
    await expect(claim).rejects.toBeInstanceOf(TargetConflict);
    await expect(claim).rejects.toThrow('okta: account 00u-shared is linked to employee E3002, not E3003');
    expect(await ledger.getPerson('E3003')).toBeNull();
    expect(await ledger.findPersonByAccount('okta', '00u-shared')).toBe('E3002');
  });

  it('a slow writer removing a link does not delete it after a newer version linked it again', async () => {
    const { ledger, tableName } = await freshLedger();
    const p = person('E3006', { links: { okta: '00u-back' } });
    await ledger.putPerson(p, null);

    // Writer A's client holds its link delete until the test lets it go.
    let deleteRequested!: () => void;
    const requested = new Promise<void>((r) => (deleteRequested = r));
    let releaseDelete!: () => void;
    const released = new Promise<void>((r) => (releaseDelete = r));
    const slowClient = {
      send: async (command: { constructor: { name: string } }) => {
        if (command.constructor.name === 'DeleteItemCommand') {
          deleteRequested();
          await released;
        }
        return dynamo.ledgerClient.send(command as never);
      },
    } as unknown as typeof dynamo.ledgerClient;
    const slow = new DynamoLedger({ client: slowClient, tableName });

    const v2 = { ...p, links: {}, updatedAt: '2030-02-01T00:00:00.000Z' };
    const writerA = slow.putPerson(v2, p.updatedAt);
    await requested; // A has written v2 (no links) and is about to delete the old link
    await ledger.putPerson({ ...v2, links: { okta: '00u-back' }, updatedAt: '2030-02-02T00:00:00.000Z' }, v2.updatedAt);
    releaseDelete();
    await writerA;

    expect((await ledger.getPerson('E3006'))?.links).toEqual({ okta: '00u-back' });
    expect(await ledger.findPersonByAccount('okta', '00u-back')).toBe('E3006');
  });

  it('ignores a link left behind by an interrupted write, and lets the real owner take it', async () => {
    const { ledger, tableName } = await freshLedger();
    // A link written before a person write that never happened (crash between the two writes).
    await dynamo.client.send(
      new PutCommand({
        TableName: tableName,
        Item: { ...keys.link('okta', '00u-orphan'), entity: 'link', target: 'okta', accountId: '00u-orphan', employeeId: 'E3004' },
      }),
    );
    expect(await ledger.findPersonByAccount('okta', '00u-orphan')).toBeNull();
    await ledger.putPerson(person('E3005', { links: { okta: '00u-orphan' } }), null);
    expect(await ledger.findPersonByAccount('okta', '00u-orphan')).toBe('E3005');
  });
});

describe('runs', () => {
  it('createRun is a conditional put: a duplicate returns false and the first record stays', async () => {
    const { ledger } = await freshLedger();
    const first = run('run-dup', {
      plan: { targets: [{ target: 'okta', ops: [{ op: 'create' }, { op: 'addEntitlement', value: 'g-eng' }] }] },
      desired: { okta: { groups: ['g-eng'] } },
      timeline: [{ phase: 'received', at: '2030-01-01T08:00:01.000Z' }],
    });
    expect(await ledger.createRun(first)).toBe(true);
    expect(await ledger.createRun({ ...first, status: 'PLANNED', eventHash: 'b'.repeat(64), plan: { targets: [] } })).toBe(false);
    const read = await ledger.getRun('run-dup');
    expect(read).toEqual(first);
    expectNoLayout(read!);
    expect(await ledger.getRun('run-missing')).toBeNull();
  });

  it('updateRun applies the patch and stamps updatedAt', async () => {
    const clock = new Clock();
    const { ledger } = await freshLedger(clock);
    await ledger.createRun(run('run-up'));
    await ledger.updateRun('run-up', { status: 'PLANNED', plan: { targets: ['okta'] }, kpis: { writes: 3 } }, ['RECEIVED']);
    const updated = await ledger.getRun('run-up');
    expect(updated).toMatchObject({ runId: 'run-up', status: 'PLANNED', plan: { targets: ['okta'] }, kpis: { writes: 3 }, updatedAt: clock.iso() });
    expectNoLayout(updated!);
  });

  it('updateRun from a wrong status fails and changes nothing; a missing run is not created', async () => {
    const { ledger } = await freshLedger();
    await ledger.createRun(run('run-st', { status: 'PLANNED' }));
    const wrong = ledger.updateRun('run-st', { status: 'COMPLETED' }, ['EXECUTING', 'RECONCILING']);
    await expect(wrong).rejects.toBeInstanceOf(ConditionFailed);
    await expect(wrong).rejects.toThrow('run run-st is PLANNED, expected one of EXECUTING, RECONCILING');
    expect((await ledger.getRun('run-st'))?.status).toBe('PLANNED');

    await expect(ledger.updateRun('run-ghost', { status: 'COMPLETED' })).rejects.toThrow('run run-ghost not found');
    expect(await ledger.getRun('run-ghost')).toBeNull();
    await expect(ledger.updateRun('run-st', { employeeId: 'E9' })).rejects.toThrow(/employeeId cannot change/);
  });

  it('appends to the timeline in the same write: concurrent appends from many writers are all kept, in write order per writer', async () => {
    const { ledger } = await freshLedger();
    await ledger.createRun(run('run-tl', { timeline: [{ phase: 'Ingest', at: '2030-01-01T08:00:00.000Z' }] }));
    // A run with no timeline yet gets one.
    await ledger.createRun(run('run-tl-empty'));
    await ledger.updateRun('run-tl-empty', { addTimeline: [{ phase: 'Plan', at: '2030-01-01T08:00:01.000Z', note: 'first' }] });
    expect((await ledger.getRun('run-tl-empty'))?.timeline).toEqual([{ phase: 'Plan', at: '2030-01-01T08:00:01.000Z', note: 'first' }]);

    // Twenty steps writing the run at once, each with its own entry and a field of its own.
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        ledger.updateRun('run-tl', { statusReason: `writer ${i}`, addTimeline: [{ phase: `Step${i}`, at: `2030-01-01T08:00:${String(i + 10)}.000Z` }] }),
      ),
    );
    const read = await ledger.getRun('run-tl');
    expect(read?.timeline?.[0]).toEqual({ phase: 'Ingest', at: '2030-01-01T08:00:00.000Z' });
    expect(read?.timeline?.map((t) => t.phase).sort()).toEqual(['Ingest', ...Array.from({ length: 20 }, (_, i) => `Step${i}`)].sort());
    // An update without entries leaves the timeline as it is.
    await ledger.updateRun('run-tl', { status: 'PLANNED' });
    expect((await ledger.getRun('run-tl'))?.timeline).toHaveLength(21);
    // The timeline is never set from a read: a patch that tries is refused before anything is written.
    await expect(ledger.updateRun('run-tl', { timeline: [] } as never)).rejects.toThrow('run-tl: the timeline is appended to (addTimeline), never set');
    expect((await ledger.getRun('run-tl'))?.timeline).toHaveLength(21);
  });

  it('the status index follows every status change, least recently updated first', async () => {
    const clock = new Clock();
    const { ledger } = await freshLedger(clock);
    for (const id of ['r1', 'r2', 'r3']) await ledger.createRun(run(id, { updatedAt: clock.iso() }));
    clock.advance(60);
    await ledger.updateRun('r2', { status: 'PLANNED' }, ['RECEIVED']);
    clock.advance(60);
    await ledger.updateRun('r1', { status: 'PLANNED' }, ['RECEIVED']);
    clock.advance(60);
    await ledger.updateRun('r3', { statusReason: 'waiting for start date' });

    expect((await ledger.listRunsByStatus('PLANNED')).map((r) => r.runId)).toEqual(['r2', 'r1']);
    expect((await ledger.listRunsByStatus('RECEIVED')).map((r) => r.runId)).toEqual(['r3']);

    await ledger.updateRun('r2', { status: 'EXECUTING' }, ['PLANNED']);
    expect((await ledger.listRunsByStatus('PLANNED')).map((r) => r.runId)).toEqual(['r1']);
    const executing = await ledger.listRunsByStatus('EXECUTING');
    expect(executing.map((r) => [r.runId, r.status])).toEqual([['r2', 'EXECUTING']]);
    executing.forEach(expectNoLayout);
    expect(await ledger.listRunsByStatus('COMPLETED')).toEqual([]);
  });

  it('lists an employee’s runs oldest first, and only theirs', async () => {
    const { ledger } = await freshLedger();
    await ledger.createRun(run('run-c', { createdAt: '2030-01-03T00:00:00.000Z' }));
    await ledger.createRun(run('run-a', { createdAt: '2030-01-01T00:00:00.000Z' }));
    await ledger.createRun(run('run-b', { createdAt: '2030-01-02T00:00:00Z' }));
    await ledger.createRun(run('run-other', { employeeId: 'E7777' }));
    expect((await ledger.listRunsByEmployee('E1001')).map((r) => r.runId)).toEqual(['run-a', 'run-b', 'run-c']);
    expect((await ledger.listRunsByEmployee('E7777')).map((r) => r.runId)).toEqual(['run-other']);
    expect(await ledger.listRunsByEmployee('E0000')).toEqual([]);
  });

  it('refuses an item over 400 KB before writing it, and maps DynamoDB’s own size refusal', async () => {
    const { ledger } = await freshLedger();
    const big = { blob: 'x'.repeat(420 * 1024) };
    const tooBig = ledger.createRun(run('run-big', { plan: big }));
    await expect(tooBig).rejects.toBeInstanceOf(LedgerItemTooLarge);
    await expect(tooBig).rejects.toThrow(/run run-big: item would be ≈ 4\d\d KB.*largest: plan/);
    expect(await ledger.getRun('run-big')).toBeNull();

    // Each half fits; together they do not: only DynamoDB knows the whole item.
    await ledger.createRun(run('run-half', { desired: { blob: 'd'.repeat(250 * 1024) } }));
    const update = ledger.updateRun('run-half', { plan: { blob: 'p'.repeat(250 * 1024) } });
    await expect(update).rejects.toBeInstanceOf(LedgerItemTooLarge);
    await expect(update).rejects.toThrow(/largest fields: plan/);
    expect((await ledger.getRun('run-half'))?.plan).toBeUndefined();
  });
});

describe('steps', () => {
  it('lists a run’s steps in step order, one record per step', async () => {
    const { ledger } = await freshLedger();
    await ledger.createRun(run('run-s'));
    await ledger.recordStepAttempt(step('run-s', '003-wiki'));
    await ledger.recordStepAttempt(step('run-s', '002-scim'));
    await ledger.recordStepAttempt(step('run-s', '001-okta'));
    await ledger.recordStepAttempt(step('run-other', '001-okta'));
    const steps = await ledger.listSteps('run-s');
    expect(steps.map((s) => s.stepId)).toEqual(['001-okta', '002-scim', '003-wiki']);
    expect(steps[0]).toEqual({ ...step('run-s', '001-okta'), attempts: 1 });
    steps.forEach(expectNoLayout);
  });

  it('keeps every attempt’s changes: a retry does not hide what the attempt before it wrote', async () => {
    const { ledger } = await freshLedger();
    await ledger.createRun(run('run-r'));
    const created = { target: 'okta', op: 'create' as const, accountId: 'acc-1', changed: true, requestIds: ['r-1'] };
    const added = { target: 'okta', op: 'addEntitlement' as const, accountId: 'acc-1', changed: true, entitlement: { type: 'group' as const, value: 'g-1' }, requestIds: ['r-2'] };
    // First attempt: created the account, then the target failed.
    await ledger.recordStepAttempt(
      step('run-r', '001-okta', { changes: [created], writes: 1, outcome: 'error', error: { name: 'TargetUnavailable', message: 'okta: 503' } }),
    );
    // The retry finds the account already there and adds the group.
    await ledger.recordStepAttempt(
      step('run-r', '001-okta', {
        startedAt: '2030-03-01T09:00:05.000Z',
        finishedAt: '2030-03-01T09:00:06.000Z',
        changes: [{ ...created, changed: false, requestIds: ['r-3'] }, added],
        writes: 1,
      }),
    );
    const [s] = await ledger.listSteps('run-r');
    expect(s).toEqual({
      ...step('run-r', '001-okta'),
      startedAt: '2030-03-01T09:00:00.000Z',
      finishedAt: '2030-03-01T09:00:06.000Z',
      outcome: 'ok',
      changes: [created, { ...created, changed: false, requestIds: ['r-3'] }, added],
      writes: 2,
      attempts: 2,
    });
    expect(s).not.toHaveProperty('error');

    // Attempts recorded at once are all kept (one write each, no read).
    await Promise.all(Array.from({ length: 12 }, (_, i) => ledger.recordStepAttempt(step('run-r', '002-scim', { changes: [{ ...created, requestIds: [`c-${i}`] }] }))));
    const [, scim] = await ledger.listSteps('run-r');
    expect(scim?.attempts).toBe(12);
    expect(scim?.writes).toBe(12);
    expect(scim?.changes.flatMap((c) => c.requestIds).sort()).toEqual(Array.from({ length: 12 }, (_, i) => `c-${i}`).sort());
  });
});

describe('approvals', () => {
  it('decides once; a second decision fails with "already decided"', async () => {
    const { ledger } = await freshLedger();
    const a = approval('ap-1');
    await ledger.putApproval(a);
    expect(await ledger.getApproval('ap-1')).toEqual(a);
    const decided = await ledger.decideApproval(
      'ap-1',
      { status: 'APPROVED', decidedAt: '2030-03-01T10:00:00.000Z', rationale: 'ok', sourceIp: '203.0.113.9', userAgent: 'Mail/1' },
      '2030-03-01T10:00:00.000Z',
    );
    expect(decided).toEqual({ ...a, status: 'APPROVED', decidedAt: '2030-03-01T10:00:00.000Z', rationale: 'ok', sourceIp: '203.0.113.9', userAgent: 'Mail/1' });
    expectNoLayout(decided);

    const again = ledger.decideApproval('ap-1', { status: 'REJECTED', decidedAt: '2030-03-01T10:05:00.000Z' }, '2030-03-01T10:05:00.000Z');
    await expect(again).rejects.toBeInstanceOf(ConditionFailed);
    await expect(again).rejects.toThrow('approval ap-1 already decided (APPROVED at 2030-03-01T10:00:00.000Z)');
    expect((await ledger.getApproval('ap-1'))?.status).toBe('APPROVED');

    // A decided approval cannot be reset to PENDING by a retried request step.
    await expect(ledger.putApproval(a)).rejects.toThrow('approval ap-1 already decided (APPROVED)');
    expect((await ledger.getApproval('ap-1'))?.status).toBe('APPROVED');
  });

  it('refuses a decision after expiry, even when expiry was written without milliseconds', async () => {
    const { ledger } = await freshLedger();
    await ledger.putApproval(approval('ap-exp', { expiresAt: '2030-03-04T08:00:00Z' }));
    const late = ledger.decideApproval('ap-exp', { status: 'APPROVED', decidedAt: '2030-03-04T08:00:00.500Z' }, '2030-03-04T08:00:00.500Z');
    await expect(late).rejects.toBeInstanceOf(ConditionFailed);
    await expect(late).rejects.toThrow('approval ap-exp expired at 2030-03-04T08:00:00.000Z');
    expect((await ledger.getApproval('ap-exp'))?.status).toBe('PENDING');
    const inTime = await ledger.decideApproval('ap-exp', { status: 'REJECTED', decidedAt: '2030-03-04T07:59:59.999Z' }, '2030-03-04T07:59:59.999Z');
    expect(inTime.status).toBe('REJECTED');
    await expect(ledger.decideApproval('ap-none', { status: 'APPROVED' }, '2030-03-01T00:00:00.000Z')).rejects.toThrow('approval ap-none not found');
  });

  it('two concurrent decisions: exactly one succeeds, and the stored decision is that one', async () => {
    const { ledger } = await freshLedger();
    for (let i = 0; i < 10; i++) {
      const id = `ap-race-${i}`;
      await ledger.putApproval(approval(id));
      const decisions = [
        { status: 'APPROVED' as const, decidedAt: '2030-03-01T10:00:00.000Z', rationale: 'manager' },
        { status: 'REJECTED' as const, decidedAt: '2030-03-01T10:00:00.000Z', rationale: 'delegate' },
      ];
      const results = await Promise.allSettled(decisions.map((d) => ledger.decideApproval(id, d, '2030-03-01T10:00:00.000Z')));
      const ok = results.filter((r) => r.status === 'fulfilled');
      const failed = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as Error] : []));
      expect(ok).toHaveLength(1);
      expect(failed).toHaveLength(1);
      expect(failed[0]!.message).toMatch(/already decided/);
      const stored = await ledger.getApproval(id);
      expect(stored?.rationale).toBe((ok[0] as PromiseFulfilledResult<ApprovalRecord>).value.rationale);
    }
  });

  it('lists a run’s approvals in request order, not its exceptions', async () => {
    const { ledger } = await freshLedger();
    await ledger.putApproval(approval('ap-b', { requestId: 'bundle:admin', requestedAt: '2030-03-01T08:05:00.000Z' }));
    await ledger.putApproval(approval('ap-a', { requestedAt: '2030-03-01T08:00:00.000Z' }));
    await ledger.putApproval(approval('ap-x', { runId: 'run-2' }));
    await ledger.openException(exception('ex-run1'));
    const list = await ledger.listApprovals('run-1');
    expect(list.map((a) => a.approvalId)).toEqual(['ap-a', 'ap-b']);
    expect(list[1]?.request).toEqual({ bundles: ['eng-baseline'], risk: 'low' });
  });
});

describe('exceptions', () => {
  it('opens, resolves once, and lists by status and by run', async () => {
    const { ledger } = await freshLedger();
    await ledger.openException(exception('ex-1', { openedAt: '2030-03-01T09:00:00.000Z' }));
    await ledger.openException(exception('ex-2', { openedAt: '2030-03-01T09:01:00.000Z', target: 'okta' }));
    await ledger.openException(exception('ex-3', { runId: undefined, kind: 'orphan', openedAt: '2030-03-01T08:00:00.000Z' }));
    await ledger.openException(exception('ex-4', { runId: 'run-9', openedAt: '2030-03-01T07:00:00.000Z' }));

    const resolved = await ledger.resolveException('ex-1', {
      resolvedAt: '2030-03-02T09:00:00.000Z',
      resolution: 'retried after the outage',
      resolvedBy: 'wiki-owners@example.com',
    });
    expect(resolved).toEqual({
      ...exception('ex-1'),
      status: 'resolved',
      resolvedAt: '2030-03-02T09:00:00.000Z',
      resolution: 'retried after the outage',
      resolvedBy: 'wiki-owners@example.com',
    });
    expectNoLayout(resolved);

    const ids = (list: ExceptionRecord[]) => list.map((e) => e.exceptionId);
    expect(ids(await ledger.listExceptions({ status: 'open' }))).toEqual(['ex-4', 'ex-3', 'ex-2']);
    expect(ids(await ledger.listExceptions({ status: 'resolved' }))).toEqual(['ex-1']);
    expect(ids(await ledger.listExceptions({ runId: 'run-1' }))).toEqual(['ex-1', 'ex-2']);
    expect(ids(await ledger.listExceptions({ runId: 'run-1', status: 'open' }))).toEqual(['ex-2']);
    expect(ids(await ledger.listExceptions({}))).toEqual(['ex-4', 'ex-3', 'ex-1', 'ex-2']);

    await expect(
      ledger.resolveException('ex-1', { resolvedAt: '2030-03-03T00:00:00.000Z', resolution: 'again', resolvedBy: 'someone' }),
    ).rejects.toThrow('exception ex-1 already resolved at 2030-03-02T09:00:00.000Z by wiki-owners@example.com');
    await expect(ledger.resolveException('ex-none', { resolvedAt: 'x', resolution: 'y', resolvedBy: 'z' })).rejects.toThrow(
      'exception ex-none not found',
    );

    // Opening the same exception again (a retried step) leaves the record as it is.
    await ledger.openException(exception('ex-1'));
    expect(ids(await ledger.listExceptions({ status: 'resolved' }))).toEqual(['ex-1']);
  });

  it('records the ITSM ticket of an exception, and why raising it failed until it did', async () => {
    const { ledger } = await freshLedger();
    await ledger.openException(exception('ex-t'));
    await ledger.setExceptionTicket('ex-t', { ticketError: 'servicenow answered 503' });
    expect((await ledger.listExceptions({ runId: 'run-1' }))[0]).toMatchObject({ ticketError: 'servicenow answered 503' });

    const ticket = { system: 'servicenow' as const, id: 'a1b2', key: 'INC0010001', url: 'https://acme.service-now.com/x', openedAt: '2030-03-01T10:00:00.000Z' };
    await ledger.setExceptionTicket('ex-t', { ticket, ticketError: null });
    const [withTicket] = await ledger.listExceptions({ runId: 'run-1' });
    expect(withTicket!.ticket).toEqual(ticket);
    expect(withTicket).not.toHaveProperty('ticketError');
    expectNoLayout(withTicket!);

    await expect(ledger.setExceptionTicket('ex-none', { ticket })).rejects.toThrow('exception ex-none not found');
  });
});

describe('tickets due', () => {
  it('lists the exceptions marked due, oldest mark first, until each is cleared; a second mark keeps the first time', async () => {
    const clock = new Clock();
    const { ledger } = await freshLedger(clock);
    for (const id of ['ex-a', 'ex-b', 'ex-c']) await ledger.openException(exception(id));
    await ledger.markTicketDue('ex-b');
    clock.advance(1);
    await ledger.markTicketDue('ex-a');
    clock.advance(1);
    await ledger.markTicketDue('ex-b'); // again: still the oldest
    await ledger.markTicketDue('ex-gone'); // an exception never written (its step died first): skipped
    expect((await ledger.listTicketsDue()).map((e) => e.exceptionId)).toEqual(['ex-b', 'ex-a']);
    await ledger.clearTicketDue('ex-b');
    await ledger.clearTicketDue('ex-never-marked');
    expect((await ledger.listTicketsDue()).map((e) => e.exceptionId)).toEqual(['ex-a']);
    expect(await ledger.listExceptions({})).toHaveLength(3); // marks are not exceptions
    // A day on, the mark of an exception that was never written is dropped.
    clock.advance(86_401);
    await ledger.listTicketsDue();
    await ledger.openException(exception('ex-gone'));
    expect((await ledger.listTicketsDue()).map((e) => e.exceptionId)).toEqual(['ex-a']);
  });
});

describe('meta', () => {
  it('stores small values, and ignores them once their TTL has passed', async () => {
    const clock = new Clock();
    const { ledger, tableName } = await freshLedger(clock);
    const nowSeconds = Math.floor(clock.ms / 1000);
    await ledger.putMeta('okta:delta', { link: 'https://example.okta.com/delta?token=x', n: 3 });
    await ledger.putMeta('bulk-guard:okta', { disables: 12 }, nowSeconds + 60);
    expect(await ledger.getMeta('okta:delta')).toEqual({ link: 'https://example.okta.com/delta?token=x', n: 3 });
    expect(await ledger.getMeta('bulk-guard:okta')).toEqual({ disables: 12 });
    expect(await ledger.getMeta('absent')).toBeNull();

    clock.advance(59);
    expect(await ledger.getMeta('bulk-guard:okta')).toEqual({ disables: 12 });
    clock.advance(1);
    expect(await ledger.getMeta('bulk-guard:okta')).toBeNull();
    expect(await ledger.getMeta('okta:delta')).not.toBeNull();

    // dynalite keeps the item (no TTL process): the read path is what hides it.
    const raw = await dynamo.client.send(new GetCommand({ TableName: tableName, Key: keys.meta('bulk-guard:okta') }));
    expect(raw.Item?.expiresAt).toBe(nowSeconds + 60);

    await ledger.putMeta('bulk-guard:okta', { disables: 1 }, nowSeconds + 3600);
    expect(await ledger.getMeta('bulk-guard:okta')).toEqual({ disables: 1 });
  });
});

describe('counters', () => {
  it('adds up to the bound and no further, reporting the count that stood in the way', async () => {
    const clock = new Clock();
    const { ledger, tableName } = await freshLedger(clock);
    const ttl = Math.floor(clock.ms / 1000) + 3600;
    expect(await ledger.addToCounter('guard/5/100', 1, { max: 2, ttlEpochSeconds: ttl })).toEqual({ added: true, value: 1 });
    expect(await ledger.addToCounter('guard/5/100', 1, { max: 2, ttlEpochSeconds: ttl })).toEqual({ added: true, value: 2 });
    expect(await ledger.addToCounter('guard/5/100', 1, { max: 2, ttlEpochSeconds: ttl })).toEqual({ added: false, value: 2 });
    expect(await ledger.addToCounter('guard/5/100', 3, { max: 2 })).toEqual({ added: false, value: 2 });
    expect(await ledger.addToCounter('guard/5/100', 2)).toEqual({ added: true, value: 4 });
    const raw = await dynamo.client.send(new GetCommand({ TableName: tableName, Key: keys.meta('counter:guard/5/100') }));
    expect(raw.Item).toMatchObject({ count: 4, expiresAt: ttl });
  });

  it('concurrent additions never pass the bound together', async () => {
    const { ledger } = await freshLedger();
    const results = await Promise.all(Array.from({ length: 12 }, () => ledger.addToCounter('race', 1, { max: 5 })));
    expect(results.filter((r) => r.added).map((r) => r.value).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5]);
    expect(results.filter((r) => !r.added)).toHaveLength(7);
    expect(await ledger.getCounters(['race'])).toEqual([5]);
  });

  it('reads many counters in one call, in the order asked: 0 for absent and expired ones', async () => {
    const clock = new Clock();
    const { ledger } = await freshLedger(clock);
    const ttl = Math.floor(clock.ms / 1000) + 60;
    await ledger.addToCounter('a', 2);
    await ledger.addToCounter('b', 1, { ttlEpochSeconds: ttl });
    const many = Array.from({ length: 130 }, (_, i) => `k${i}`);
    await ledger.addToCounter('k129', 7);
    expect(await ledger.getCounters(['b', 'absent', 'a', 'a'])).toEqual([1, 0, 2, 2]);
    expect((await ledger.getCounters(many)).slice(-2)).toEqual([0, 7]);
    clock.advance(60);
    expect(await ledger.getCounters(['a', 'b'])).toEqual([2, 0]);
    expect(await ledger.getCounters([])).toEqual([]);
  });
});

describe('marshalling', () => {
  it('keeps writing items as top-level attributes after a Document client built with the shared options has sent (it changes the options object it is given)', async () => {
    const { ledger, tableName } = await freshLedger();
    // The local Document client is built with LEDGER_TRANSLATE_CONFIG, as scripts and tests build theirs.
    await dynamo.client.send(new PutCommand({ TableName: tableName, Item: { ...keys.meta('other'), entity: 'meta', value: '{}' } }));
    await ledger.putMeta('after', { n: 1 });
    const raw = await dynamo.client.send(new GetCommand({ TableName: tableName, Key: keys.meta('after') }));
    expect(raw.Item).toEqual({ ...keys.meta('after'), entity: 'meta', value: '{"n":1}' });
    expect(await ledger.getMeta('after')).toEqual({ n: 1 });
  });
});

describe('reads at the same moment', () => {
  it('go out as one request, and each caller gets its own item: absent and expired ones as null', async () => {
    const clock = new Clock();
    const { tableName } = await freshLedger(clock);
    const sent: string[] = [];
    const counting = new Proxy(dynamo.ledgerClient, {
      get(target, prop, receiver) {
        if (prop !== 'send') return Reflect.get(target, prop, receiver);
        return (command: object, ...rest: unknown[]) => {
          sent.push(command.constructor.name);
          return (target.send as (...a: unknown[]) => unknown).call(target, command, ...rest);
        };
      },
    });
    const ledger = new DynamoLedger({ client: counting, tableName, now: () => new Date(clock.ms) });
    await ledger.putPerson(person('E4001'), null);
    await ledger.putMeta('count', { n: 3 });
    await ledger.putMeta('gone', { n: 1 }, Math.floor(clock.ms / 1000) + 60);
    await ledger.addToCounter('c1', 4);
    clock.advance(60);
    sent.length = 0;

    const [p, absent, count, gone, counters, again] = await Promise.all([
      ledger.getPerson('E4001'),
      ledger.getPerson('E4999'),
      ledger.getMeta<{ n: number }>('count'),
      ledger.getMeta('gone'),
      ledger.getCounters(['c0', 'c1']),
      ledger.getPerson('E4001'),
    ]);
    expect(sent).toEqual(['BatchGetItemCommand']);
    expect(p?.employeeId).toBe('E4001');
    expect(again).toEqual(p);
    expect(absent).toBeNull();
    expect(count).toEqual({ n: 3 });
    expect(gone).toBeNull();
    expect(counters).toEqual([0, 4]);

    // One read alone is a GetItem; reads one after another are requests of their own.
    sent.length = 0;
    expect((await ledger.getPerson('E4001'))?.employeeId).toBe('E4001');
    expect(await ledger.getMeta('count')).toEqual({ n: 3 });
    expect(sent).toEqual(['GetItemCommand', 'GetItemCommand']);
  });
});

describe('leases', () => {
  it('one holder at a time: a retry of the holder keeps it, a lapsed lease is taken over, and only the holder releases it', async () => {
    const { ledger } = await freshLedger();
    const now = Date.parse('2026-03-01T10:00:00Z');
    expect(await ledger.acquireLease('target:okta:E1', 'run A', now + 60_000, now)).toEqual({ acquired: true });
    expect(await ledger.acquireLease('target:okta:E1', 'run B', now + 60_000, now + 1000)).toEqual({ acquired: false, holder: 'run A', untilMs: now + 60_000 });
    expect(await ledger.acquireLease('target:okta:E1', 'run A', now + 90_000, now + 2000)).toEqual({ acquired: true });
    expect(await ledger.acquireLease('target:slack:E1', 'run B', now + 60_000, now)).toEqual({ acquired: true }); // another target: its own lease

    await ledger.releaseLease('target:okta:E1', 'run B'); // not B's: nothing happens
    expect(await ledger.acquireLease('target:okta:E1', 'run B', now + 60_000, now + 3000)).toMatchObject({ acquired: false, holder: 'run A' });
    // A holder that died: its lease runs out and the next writer takes it.
    expect(await ledger.acquireLease('target:okta:E1', 'run B', now + 200_000, now + 90_001)).toEqual({ acquired: true });
    await ledger.releaseLease('target:okta:E1', 'run A'); // the late holder cannot free B's lease
    expect(await ledger.acquireLease('target:okta:E1', 'run C', now + 200_000, now + 100_000)).toMatchObject({ acquired: false, holder: 'run B' });
    await ledger.releaseLease('target:okta:E1', 'run B');
    expect(await ledger.acquireLease('target:okta:E1', 'run C', now + 200_000, now + 100_000)).toEqual({ acquired: true });
  });

  it("a retry takes over its run's lease, and the attempt it took over from can no longer give it up", async () => {
    const { ledger } = await freshLedger();
    const now = Date.parse('2026-03-01T10:00:00Z');
    expect(await ledger.acquireLease('target:okta:E3', 'run A', now + 60_000, now, 'attempt 1')).toEqual({ acquired: true });
    // The step timed out; its retry re-enters the run's lease at once.
    expect(await ledger.acquireLease('target:okta:E3', 'run A', now + 90_000, now + 30_000, 'attempt 2')).toEqual({ acquired: true });
    // The first attempt winds down and lets go: not its lease any more, so nothing happens.
    await ledger.releaseLease('target:okta:E3', 'run A', 'attempt 1');
    expect(await ledger.acquireLease('target:okta:E3', 'run B', now + 90_000, now + 31_000, 'b')).toMatchObject({ acquired: false, holder: 'run A' });
    await ledger.releaseLease('target:okta:E3', 'run A', 'attempt 2');
    expect(await ledger.acquireLease('target:okta:E3', 'run B', now + 90_000, now + 32_000, 'b')).toEqual({ acquired: true });
  });

  it('concurrent writers: exactly one gets the lease', async () => {
    const { ledger } = await freshLedger();
    const now = Date.now();
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => ledger.acquireLease('target:okta:E2', `run ${i}`, now + 60_000, now)));
    expect(results.filter((r) => r.acquired)).toHaveLength(1);
    const winner = results.findIndex((r) => r.acquired);
    expect(new Set(results.filter((r) => !r.acquired).map((r) => (r as { holder: string }).holder))).toEqual(new Set([`run ${winner}`]));
  });
});

describe('local dynalite', () => {
  it('closes the LevelDB iterator of every query, on disk and in memory (left open, each kept memory the store would free)', async () => {
    // The iterator classes dynalite's stores use (one abstract-level in the tree).
    const { AbstractIterator } = createRequire(createRequire(import.meta.url).resolve('dynalite'))('abstract-level');
    const base = Object.getPrototypeOf(AbstractIterator.prototype) as { close(): Promise<void> };
    const close = base.close;
    let closed = 0;
    base.close = function (this: unknown) {
      closed += 1;
      return close.call(this);
    };
    const dir = await mkdtemp(join(tmpdir(), 'jml-dynalite-'));
    try {
      for (const store of [{ path: join(dir, 'db') }, {}]) {
        const d = await startDynalite(store);
        try {
          await ensureTable(d.client, 'jml-ledger');
          const ledger = new DynamoLedger({ client: d.ledgerClient, tableName: 'jml-ledger' });
          await ledger.createRun(run('run-q', { employeeId: 'E7001' }));
          closed = 0;
          for (let i = 0; i < 40; i++) expect((await ledger.listRunsByEmployee('E7001')).map((r) => r.runId)).toEqual(['run-q']);
          expect(closed, `iterators closed after 40 queries (${store.path ? 'on disk' : 'in memory'})`).toBeGreaterThanOrEqual(40);
        } finally {
          await d.close();
        }
      }
    } finally {
      base.close = close;
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('ensureTable is idempotent and safe to call concurrently', async () => {
    const tableName = `ledger-${randomUUID()}`;
    await Promise.all([ensureTable(dynamo.client, tableName), ensureTable(dynamo.client, tableName)]);
    await ensureTable(dynamo.client, tableName);
    const ledger = new DynamoLedger({ client: dynamo.ledgerClient, tableName });
    expect(await ledger.createRun(run('run-t'))).toBe(true);
  });

  it('keeps data across a restart when given a path, in this process or in its own', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'jml-dynalite-'));
    try {
      const first = await startDynalite({ path: join(dir, 'db') });
      try {
        await ensureTable(first.client, 'jml-ledger');
        const ledger = new DynamoLedger({ client: first.ledgerClient, tableName: 'jml-ledger' });
        await ledger.putPerson(person('E5001', { links: { okta: '00u-persist' } }), null);
        await ledger.createRun(run('run-persist'));
      } finally {
        await first.close();
      }

      // The second time in a process of its own (as the time-to-disable benchmark runs it).
      const second = await startDynalite({ path: join(dir, 'db'), ownProcess: true });
      try {
        expect(second.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
        await ensureTable(second.client, 'jml-ledger');
        const ledger = new DynamoLedger({ client: second.ledgerClient, tableName: 'jml-ledger' });
        expect(await ledger.getPerson('E5001')).toEqual(person('E5001', { links: { okta: '00u-persist' } }));
        expect(await ledger.findPersonByAccount('okta', '00u-persist')).toBe('E5001');
        expect((await ledger.getRun('run-persist'))?.status).toBe('RECEIVED');
        expect(await ledger.createRun(run('run-persist'))).toBe(false);
      } finally {
        await second.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('closes under load: writes it was working on are answered first, none after, and nothing throws', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'jml-dynalite-'));
    const uncaught: unknown[] = [];
    const onUncaught = (e: unknown) => uncaught.push(e);
    process.on('uncaughtException', onUncaught);
    try {
      const first = await startDynalite({ path: join(dir, 'db') });
      await ensureTable(first.client, 'jml-ledger');
      // Another process's client (a runtime's Lambdas): closing does not stop it sending.
      const other = DynamoDBDocumentClient.from(
        new DynamoDBClient({ endpoint: first.endpoint, region: 'local', credentials: { accessKeyId: 'local', secretAccessKey: randomBytes(16).toString('hex') }, maxAttempts: 1 }),
      );
      // Updates: dynalite reads, then writes the item and its index entries, one LevelDB call after another.
      const writes = Array.from({ length: 300 }, (_, i) =>
        other
          .send(
            new UpdateCommand({
              TableName: 'jml-ledger',
              Key: keys.meta(`load-${i}`),
              UpdateExpression: 'SET #v = :v',
              ConditionExpression: 'attribute_not_exists(pk)',
              ExpressionAttributeNames: { '#v': 'value' },
              ExpressionAttributeValues: { ':v': '{}' },
            }),
          )
          .then(
            () => i,
            () => -1,
          ),
      );
      await Promise.race(writes);
      await first.close();
      const answered = (await Promise.all(writes)).filter((i) => i >= 0);
      other.destroy();
      await new Promise((r) => setTimeout(r, 200));
      expect(uncaught).toEqual([]);

      const second = await startDynalite({ path: join(dir, 'db') });
      try {
        const ledger = new DynamoLedger({ client: second.ledgerClient, tableName: 'jml-ledger' });
        for (const i of answered) expect(await ledger.getMeta(`load-${i}`)).toEqual({});
      } finally {
        await second.close();
      }
    } finally {
      process.off('uncaughtException', onUncaught);
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('mends its indexes at start after a write torn by a kill: a run missing from its status, an entry for a status the run never got', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'jml-dynalite-'));
    const path = join(dir, 'db');
    try {
      const first = await startDynalite({ path });
      let updatedAt: string;
      try {
        await ensureTable(first.client, 'jml-ledger');
        const ledger = new DynamoLedger({ client: first.ledgerClient, tableName: 'jml-ledger' });
        await ledger.createRun(run('run-torn'));
        await ledger.createRun(run('run-whole'));
        await ledger.putMeta('not-indexed', { n: 1 });
        updatedAt = (await ledger.getRun('run-torn'))!.updatedAt;
      } finally {
        await first.close();
      }
      await tearIndexWrite(path, 'jml-ledger', keys.run('run-torn'), { status: 'EXECUTING', gsi2pk: 'STATUS#EXECUTING', gsi2sk: '2030-01-02T00:00:00.000Z#run-torn' });
      // An item that is in no index, torn into one.
      await tearIndexWrite(path, 'jml-ledger', keys.meta('not-indexed'), { gsi2pk: 'STATUS#EXECUTING', gsi2sk: '2030-01-03T00:00:00.000Z#meta' });

      const second = await startDynalite({ path });
      try {
        expect(second.mended).toEqual({ reindexed: ['gsi2 RUN#run-torn RUN'], orphansRemoved: ['gsi2 RUN#run-torn RUN', 'gsi2 META#not-indexed META'] });
        const ledger = new DynamoLedger({ client: second.ledgerClient, tableName: 'jml-ledger' });
        const listed = async (status: 'RECEIVED' | 'EXECUTING') => (await ledger.listRunsByStatus(status)).map((r) => `${r.runId} ${r.status}`);
        const raw = await second.client.send(new GetCommand({ TableName: 'jml-ledger', Key: keys.meta('not-indexed') }));
        expect(raw.Item).not.toHaveProperty('gsi2pk');
        expect(await ledger.getMeta('not-indexed')).toEqual({ n: 1 });
        expect((await listed('RECEIVED')).sort()).toEqual(['run-torn RECEIVED', 'run-whole RECEIVED']);
        expect(await listed('EXECUTING')).toEqual([]);
        expect(await repairIndexes(second.client, 'jml-ledger')).toEqual({ reindexed: [], orphansRemoved: [] });
        // The runs themselves are untouched.
        expect((await ledger.getRun('run-torn'))?.updatedAt).toBe(updatedAt);
      } finally {
        await second.close();
      }
      // Closed cleanly this time: the next start scans nothing.
      const third = await startDynalite({ path });
      expect(third.mended).toBeUndefined();
      await third.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

