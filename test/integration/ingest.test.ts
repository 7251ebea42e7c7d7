/**
 * Ingest against the real DynamoDB ledger on dynalite: the run is recorded before the message is
 * sent, redeliveries are duplicates, and an event accepted halfway (recorded, not enqueued) is
 * finished by the redelivery or by the sweep. Then the whole path: webhook → queue → consumer →
 * workflow start, and the read API over what that left in the ledger.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { acceptHrEvent, requeueUnqueued } from '#app/ingest';
import type { EventQueue, QueueMessage } from '#app/ports';
import { createHrisWebhookHandler } from '#handlers/hris-webhook';
import { createReadApiHandler } from '#handlers/read-api';
import { createStartRunHandler } from '#handlers/start-run';
import type { RunRecord } from '#core/ledger';
import { signCanonical } from '#core/signature';
import { apiEvent, bodyOf } from '../helpers/api-gateway.ts';
import { testDeps, useDynalite, type TestDeps } from '../helpers/deps.ts';
import { worker } from '../helpers/policy.ts';

const dynamo = useDynalite();

const change = (over: Record<string, unknown> = {}, w: Record<string, unknown> = {}) =>
  JSON.stringify({
    eventId: 'wd-2001',
    eventType: 'change',
    effectiveDate: '2026-11-20',
    occurredAt: '2026-11-20T08:30:00Z',
    worker: { ...worker({ startDate: '2024-03-04' }), ...w },
    ...over,
  });

/** A queue that looks at the ledger at the moment of each send (was the run recorded first?). */
class LedgerCheckingQueue implements EventQueue {
  readonly seenAtSend: Array<RunRecord | null> = [];
  constructor(private readonly deps: TestDeps, private readonly inner: EventQueue) {}
  async send(message: QueueMessage, options: { groupId: string; deduplicationId: string }) {
    if (message.kind !== 'drift') this.seenAtSend.push(await this.deps.ledger.getRun(message.runId));
    await this.inner.send(message, options);
  }
}

describe('record first, then enqueue', () => {
  it('the run is in the ledger (RECEIVED, not yet enqueued) when the message is sent; enqueuedAt after', async () => {
    const deps = await testDeps(dynamo());
    const checking = new LedgerCheckingQueue(deps, deps.queue);
    const r = await acceptHrEvent({ ...deps, queue: checking }, { source: 'canonical', rawBody: change() });
    expect(checking.seenAtSend).toHaveLength(1);
    expect(checking.seenAtSend[0]).toMatchObject({ runId: r.runId, status: 'RECEIVED' });
    expect(checking.seenAtSend[0]!.enqueuedAt).toBeUndefined();
    expect((await deps.ledger.getRun(r.runId))!.enqueuedAt).toBe(deps.clock.now().toISOString());
    expect(await deps.ledger.listRunsByStatus('RECEIVED')).toEqual([expect.objectContaining({ runId: r.runId })]);
  });

  it('a redelivery is a duplicate with the same run id and sends nothing', async () => {
    const deps = await testDeps(dynamo());
    const first = await acceptHrEvent(deps, { source: 'canonical', rawBody: change() });
    deps.clock.advance(60_000);
    const again = await acceptHrEvent(deps, { source: 'canonical', rawBody: change({ eventId: 'wd-2001-redelivered' }) });
    expect(again).toEqual({ ...first, duplicate: true });
    expect(deps.queue.sent).toHaveLength(1);
    // The record is the first delivery's.
    expect((await deps.ledger.getRun(first.runId))!.eventId).toBe('wd-2001');
  });

  it('concurrent deliveries of one event: one run, one message delivered', async () => {
    const deps = await testDeps(dynamo());
    const results = await Promise.all(Array.from({ length: 6 }, () => acceptHrEvent(deps, { source: 'canonical', rawBody: change() })));
    expect(new Set(results.map((r) => r.runId)).size).toBe(1);
    expect(results.filter((r) => !r.duplicate)).toHaveLength(1);
    expect(await deps.ledger.listRunsByEmployee('E1001')).toHaveLength(1);
    // A duplicate that raced ahead of the first enqueue may send again; SQS FIFO dedupes on the key.
    expect(deps.queue.delivered()).toHaveLength(1);
  });

  it('crash before the send (SQS down): the redelivery enqueues it and answers duplicate', async () => {
    const deps = await testDeps(dynamo());
    deps.queue.failNext();
    await expect(acceptHrEvent(deps, { source: 'canonical', rawBody: change() })).rejects.toThrow('SQS SendMessage failed');
    const [stranded] = await deps.ledger.listRunsByEmployee('E1001');
    expect(stranded).toMatchObject({ status: 'RECEIVED' });
    expect(stranded!.enqueuedAt).toBeUndefined();
    expect(deps.queue.sent).toEqual([]);

    deps.clock.advance(30_000);
    const retry = await acceptHrEvent(deps, { source: 'canonical', rawBody: change() });
    expect(retry).toMatchObject({ runId: stranded!.runId, duplicate: true });
    expect(deps.queue.sent.map((s) => s.message)).toEqual([{ kind: 'hr-event', runId: stranded!.runId, employeeId: 'E1001', lifecycle: 'mover' }]);
    expect((await deps.ledger.getRun(stranded!.runId))!.enqueuedAt).toBe(deps.clock.now().toISOString());
  });

  it('crash after the send, before enqueuedAt is written: the redelivery sends again, SQS dedupes it', async () => {
    const deps = await testDeps(dynamo());
    const ledger = deps.ledger;
    let crash = true;
    const crashing = Object.create(ledger) as typeof ledger;
    crashing.updateRun = async (...args) => {
      if (crash) {
        crash = false;
        throw new Error('Lambda timed out');
      }
      return ledger.updateRun(...args);
    };
    await expect(acceptHrEvent({ ...deps, ledger: crashing }, { source: 'canonical', rawBody: change() })).rejects.toThrow('Lambda timed out');
    const retry = await acceptHrEvent({ ...deps, ledger: crashing }, { source: 'canonical', rawBody: change() });
    expect(retry.duplicate).toBe(true);
    expect(deps.queue.sent).toHaveLength(2);
    expect(new Set(deps.queue.sent.map((s) => s.deduplicationId))).toEqual(new Set([retry.idempotencyKey]));
    expect(deps.queue.delivered()).toHaveLength(1);
    expect((await ledger.getRun(retry.runId))!.enqueuedAt).toBeDefined();
  });

  it('a sender that never retries: the sweep enqueues runs left unqueued for over five minutes', async () => {
    const deps = await testDeps(dynamo());
    deps.queue.failNext();
    await expect(acceptHrEvent(deps, { source: 'canonical', rawBody: change() })).rejects.toThrow();
    const done = await acceptHrEvent(deps, { source: 'canonical', rawBody: change({ eventId: 'wd-2002' }, { employeeId: 'E1002', managerId: 'E0100' }) });
    expect(await requeueUnqueued(deps)).toEqual([]); // too recent: the sender may still retry
    deps.clock.advance(6 * 60_000);
    const [stranded] = await deps.ledger.listRunsByEmployee('E1001');
    expect(await requeueUnqueued(deps)).toEqual([stranded!.runId]);
    expect(deps.queue.sent.map((s) => s.message)).toEqual([
      { kind: 'hr-event', runId: done.runId, employeeId: 'E1002', lifecycle: 'mover' },
      { kind: 'hr-event', runId: stranded!.runId, employeeId: 'E1001', lifecycle: 'mover' },
    ]);
    expect(await requeueUnqueued(deps)).toEqual([]);
  });

  it('the policy version is part of the key: the same event under a new policy is a new run', async () => {
    const deps = await testDeps(dynamo());
    const first = await acceptHrEvent(deps, { source: 'canonical', rawBody: change() });
    const { withPolicy } = await import('../helpers/policy.ts');
    deps.currentPolicy = withPolicy((doc) => {
      doc.company.fallbackApprover = 'it-access-2@acme.example';
    });
    const second = await acceptHrEvent(deps, { source: 'canonical', rawBody: change() });
    expect(second.duplicate).toBe(false);
    expect(second.runId).not.toBe(first.runId);
    expect((await deps.ledger.getRun(second.runId))!.mappingVersion).toBe(deps.currentPolicy.mappingVersion);
  });
});

describe('webhook → queue → consumer → workflow, and the read API', () => {
  it('a change effective today starts the mover workflow named by the run id; GET /runs shows it', async () => {
    const deps = await testDeps(dynamo());
    const provider = async () => deps;
    const webhook = createHrisWebhookHandler(provider);
    const consumer = createStartRunHandler(provider);
    const api = createReadApiHandler(provider);

    const body = change();
    const res = await webhook(
      apiEvent({ path: '/hris/events', headers: { 'Content-Type': 'application/json', ...signCanonical(deps.secrets.current('hrisWebhook'), body, deps.clock.seconds()) }, body }),
    );
    expect(res.statusCode).toBe(202);
    const { runId } = bodyOf(res);

    // Readable at once, before the consumer ran.
    const early = await api(apiEvent({ method: 'GET', path: `/runs/${runId}`, resource: '/runs/{runId}', pathParameters: { runId } }));
    expect(early.statusCode).toBe(200);
    expect(bodyOf(early)).toMatchObject({ runId, employeeId: 'E1001', eventType: 'change', status: 'RECEIVED', steps: [], approvals: [], exceptions: [] });

    const batch = await consumer({ Records: deps.queue.asSqsRecords() });
    expect(batch.batchItemFailures).toEqual([]);
    expect(deps.workflows.started).toEqual([{ workflow: 'mover', name: runId, input: { runId, employeeId: 'E1001', lifecycle: 'mover' } }]);
    expect((await deps.ledger.getPerson('E1001'))).toMatchObject({ status: 'active', lastRunId: runId });

    // The same message again (an SQS redelivery) starts nothing new.
    expect((await consumer({ Records: deps.queue.asSqsRecords() })).batchItemFailures).toEqual([]);
    expect(deps.workflows.started).toHaveLength(1);

    const detail = bodyOf(await api(apiEvent({ method: 'GET', path: `/runs/${runId}` })));
    expect(detail.executionName).toBe(runId);
    expect(detail.timeline.map((t: any) => t.phase)).toEqual(['Ingest', 'Ingest']);
    expect(detail).not.toHaveProperty('rawEvent');
  });

  it('GET /runs/{runId} hides task tokens and lists steps, exceptions and evidence; 404 otherwise', async () => {
    const deps = await testDeps(dynamo());
    const api = createReadApiHandler(async () => deps);
    const r = await acceptHrEvent(deps, { source: 'canonical', rawBody: change() });
    const token = randomBytes(48).toString('base64url');
    await deps.ledger.putApproval({
      approvalId: 'ap-1',
      runId: r.runId,
      employeeId: 'E1001',
      requestId: 'bundle:production-access',
      approver: 'platform-lead@acme.example',
      approverRole: 'appOwner',
      taskToken: token,
      status: 'PENDING',
      requestedAt: '2026-11-20T09:01:00.000Z',
      expiresAt: '2026-11-23T09:01:00.000Z',
      request: { bundles: ['production-access'] },
    });
    await deps.ledger.recordStepAttempt({
      runId: r.runId,
      stepId: '001-okta',
      target: 'okta',
      phase: 'execute',
      startedAt: '2026-11-20T09:02:00.000Z',
      finishedAt: '2026-11-20T09:02:01.000Z',
      outcome: 'ok',
      changes: [],
      writes: 0,
    });
    await deps.ledger.openException({
      exceptionId: 'exc-1',
      runId: r.runId,
      employeeId: 'E1001',
      target: 'slack',
      owner: 'collab-owners@acme.example',
      kind: 'step_failed',
      reason: 'slack: HTTP 503 after 4 attempts',
      evidence: { requestIds: ['req-1'] },
      status: 'open',
      openedAt: '2026-11-20T09:03:00.000Z',
    });
    await deps.ledger.updateRun(r.runId, { evidence: { prefix: `evidence/2026/11/${r.runId}/`, manifestSha256: 'f'.repeat(64) }, plan: { targets: ['okta'] } });

    const res = await api(apiEvent({ method: 'GET', path: `/runs/${r.runId}`, resource: '/runs/{runId}', pathParameters: { runId: r.runId } }));
    expect(res.statusCode).toBe(200);
    expect(res.body).not.toContain(token);
    const out = bodyOf(res);
    expect(out.approvals).toEqual([expect.objectContaining({ approvalId: 'ap-1', status: 'PENDING', approver: 'platform-lead@acme.example' })]);
    expect(out.approvals[0]).not.toHaveProperty('taskToken');
    expect(out.steps).toEqual([expect.objectContaining({ stepId: '001-okta', outcome: 'ok' })]);
    expect(out.exceptions).toEqual([expect.objectContaining({ exceptionId: 'exc-1', status: 'open' })]);
    expect(out.evidence).toEqual({ prefix: `evidence/2026/11/${r.runId}/`, manifestSha256: 'f'.repeat(64) });
    expect(out.plan).toEqual({ targets: ['okta'] });

    const missing = await api(apiEvent({ method: 'GET', path: '/runs/run-0000', resource: '/runs/{runId}', pathParameters: { runId: 'run-0000' } }));
    expect(missing.statusCode).toBe(404);
    expect(bodyOf(missing)).toEqual({ error: 'not_found', message: 'run run-0000 not found' });
  });

  it('GET /runs?employeeId= lists a person\'s runs; GET /exceptions filters by status; bad parameters are 400', async () => {
    const deps = await testDeps(dynamo());
    const api = createReadApiHandler(async () => deps);
    const a = await acceptHrEvent(deps, { source: 'canonical', rawBody: change() });
    deps.clock.advance(1000);
    const b = await acceptHrEvent(deps, { source: 'canonical', rawBody: change({ eventId: 'wd-2003' }, { jobCode: 'ENG-3' }) });
    await acceptHrEvent(deps, { source: 'canonical', rawBody: change({ eventId: 'wd-2004' }, { employeeId: 'E2002', managerId: 'E0100' }) });

    const list = await api(apiEvent({ method: 'GET', path: '/runs', query: { employeeId: 'E1001' } }));
    expect(list.statusCode).toBe(200);
    expect(bodyOf(list).runs.map((r: any) => r.runId)).toEqual([a.runId, b.runId]);
    expect(bodyOf(list).runs[0]).not.toHaveProperty('rawEvent');

    expect(bodyOf(await api(apiEvent({ method: 'GET', path: '/runs', query: { employeeId: 'E9999' } })))).toEqual({ runs: [] });
    const noParam = await api(apiEvent({ method: 'GET', path: '/runs' }));
    expect(noParam.statusCode).toBe(400);
    expect(bodyOf(noParam).message).toBe('employeeId query parameter is required');
    expect((await api(apiEvent({ method: 'GET', path: '/runs', query: { employeeId: 'E1 OR 1=1' } }))).statusCode).toBe(400);

    const base = { target: 'okta', owner: 'iam@acme.example', kind: 'out_of_band_change' as const, reason: 'r', evidence: {}, status: 'open' as const };
    await deps.ledger.openException({ ...base, exceptionId: 'exc-a', openedAt: '2026-11-20T09:00:01.000Z' });
    await deps.ledger.openException({ ...base, exceptionId: 'exc-b', openedAt: '2026-11-20T09:00:02.000Z' });
    await deps.ledger.resolveException('exc-a', { resolvedAt: '2026-11-20T10:00:00.000Z', resolution: 'expected', resolvedBy: 'iam@acme.example' });
    const ids = async (query?: Record<string, string>) =>
      bodyOf(await api(apiEvent({ method: 'GET', path: '/exceptions', ...(query ? { query } : {}) }))).exceptions.map((e: any) => e.exceptionId);
    expect(await ids({ status: 'open' })).toEqual(['exc-b']);
    expect(await ids({ status: 'resolved' })).toEqual(['exc-a']);
    expect(await ids()).toEqual(['exc-a', 'exc-b']);
    const bad = await api(apiEvent({ method: 'GET', path: '/exceptions', query: { status: 'closed' } }));
    expect(bad.statusCode).toBe(400);
    expect(bodyOf(bad).message).toBe('status: must be one of open, resolved');
    expect((await api(apiEvent({ method: 'DELETE', path: '/exceptions' }))).statusCode).toBe(405);
    expect((await api(apiEvent({ method: 'GET', path: '/nothing' }))).statusCode).toBe(404);
  });
});
