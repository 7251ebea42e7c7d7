/**
 * Effective dates, time-bound access, exception grants, retention deletes and the bulk-change
 * guard on the local stack: the real start-run consumer, the ASL workflows, the DynamoDB ledger
 * on dynalite, the Okta and SCIM stand-ins, and the local scheduler moved by the adjustable
 * clock (`tick()` fires what is due, exactly as EventBridge Scheduler would at that time).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { dispatchScheduled } from '#app/scheduled';
import { scheduleNameFor, supersedeReason } from '#app/start-run';
import { decisionToken, parseDecisionToken, withDecisionCallbacks } from '#app/standalone-approvals';
import { normaliseHrEvent } from '#core/hr-event';
import { verifyPersonChain } from '#core/evidence-store';
import type { Worker } from '#core/hr-event';
import { calendarDate, zonedTimeToEpoch } from '#core/time';
import { createApprovalsApiHandler } from '#handlers/approvals-api';
import { createExceptionGrantsHandler } from '#handlers/exception-grants';
import { toApiGatewayEvent } from '#local/api-gateway';
import { startLocalStack, type LocalStack, type LocalStackOptions } from '#local/stack';
import { grantExceptionCommand } from '../../bin/commands/grant-exception.ts';
import { examplePolicyDocument, worker } from '../helpers/policy.ts';
import { approvalMail, decideByEmail, hrEvent, seedPeople, send, waitFor, waitForStatus } from '../helpers/stack.ts';

const DAY = 86_400_000;
const TZ = 'Europe/London';

let stack: LocalStack | undefined;
const cleanups: Array<() => void | Promise<void>> = [];
const s = () => stack!;

async function start(options: LocalStackOptions = {}) {
  stack = await startLocalStack({ retryIntervalMs: 5, ...options });
  // What the composition root does: decisions on grants and holds reach their use case.
  stack.deps.callbacks = withDecisionCallbacks(stack.deps.callbacks, () => stack!.deps);
  await seedPeople(stack);
  return stack;
}

afterEach(async () => {
  await stack?.close();
  stack = undefined;
  for (const c of cleanups.splice(0)) await c();
});

/** Event times keep increasing across a test, however far the clock jumps. */
let recorded = Date.parse('2026-11-20T09:00:00.000Z');
const nextOccurredAt = () => new Date((recorded += 60_000)).toISOString();

const dateIn = (days: number) => calendarDate(s().clock.now().getTime() + days * DAY, TZ);
const midnight = (date: string) => zonedTimeToEpoch(date, TZ);

/**
 * Moves the clock, fires what is due and waits until the fired messages are consumed. Returns
 * the names of the schedules that fired (approval reminders fire too when days go by).
 */
async function jumpTo(ms: number): Promise<string[]> {
  const before = s().scheduler.fired.length;
  s().clock.set(new Date(ms));
  await s().scheduler.tick();
  await s().queue.drained();
  return s().scheduler.fired.slice(before).map((f) => f.name);
}
const except = (names: string[], prefix = 'jml-remind-') => names.filter((n) => !n.startsWith(prefix));

const okta = () => s().targets.okta!.state;
const oktaUser = (employeeId: string) => okta().usersByEmployeeNumber(employeeId)[0];
const oktaGroups = (employeeId: string) => okta().groupNamesOf(oktaUser(employeeId)!.id).filter((g) => g !== 'Everyone').sort();
const scimUser = (app: string, employeeId: string) =>
  s().targets.scim[app]!.state.listUsers().find((u) => u.externalId === employeeId) as Record<string, any> | undefined;
const run = async (runId: string) => (await s().deps.ledger.getRun(runId))!;
const schedulesOf = (prefix: string) => s().scheduler.list().filter((e) => e.name.startsWith(prefix));

async function closed(runId: string) {
  await waitForStatus(s(), runId, ['COMPLETED', 'EXCEPTION_OPEN', 'FAILED', 'SUPERSEDED', 'STALE', 'OUT_OF_SCOPE']);
  if (s().workflows.execution(runId)) await s().workflows.wait(runId);
  return run(runId);
}

function person(employeeId: string, over: Partial<Worker> = {}): Worker {
  return worker({ employeeId, email: `${employeeId.toLowerCase()}@acme.example`, startDate: '2026-10-01', ...over });
}

async function hired(w: Worker) {
  const accepted = await send(s(), hrEvent('hire', w, { effectiveDate: w.startDate, occurredAt: nextOccurredAt() }));
  for (const request of await requestsOf(accepted.runId)) await decideByEmail(s(), (await approvalMail(s(), accepted.runId, request)).mail.links[0]!, 'approve');
  expect((await closed(accepted.runId)).status).toBe('COMPLETED');
  return accepted.runId;
}

/** The approval requests a run's plan asks for (after Plan). */
async function requestsOf(runId: string): Promise<string[]> {
  const planned = await waitFor(`run ${runId} planned`, async () => {
    const r = await run(runId);
    return r.plan ? r : undefined;
  });
  return (planned.plan as { approvals: Array<{ id: string }> }).approvals.map((a) => a.id);
}

async function terminated(w: Worker, date: string) {
  const accepted = await send(s(), hrEvent('termination', { ...w, terminationDate: date }, { effectiveDate: date, occurredAt: nextOccurredAt() }));
  return accepted.runId;
}

async function approveAll(runId: string) {
  for (const request of await requestsOf(runId)) await decideByEmail(s(), (await approvalMail(s(), runId, request)).mail.links[0]!, 'approve');
}

describe('effective dates', () => {
  it('runs a backdated hire at once, and a future hire at 00:00 on its start date in the company zone minus the lead time', async () => {
    await start();
    const past = await send(s(), hrEvent('hire', person('E2001', { startDate: dateIn(-3) }), { effectiveDate: dateIn(-3), occurredAt: nextOccurredAt() }));
    await decideByEmail(s(), (await approvalMail(s(), past.runId, 'baseline')).mail.links[0]!, 'approve'); // started: the manager is asked
    expect(schedulesOf('jml-run-')).toEqual([]);
    expect((await closed(past.runId)).status).toBe('COMPLETED');

    const startDate = dateIn(20);
    const future = await send(s(), hrEvent('hire', person('E2002', { startDate }), { effectiveDate: startDate, occurredAt: nextOccurredAt() }));
    await waitForStatus(s(), future.runId, ['SCHEDULED']);
    const due = midnight(startDate) - DAY; // joiner.leadTime: P1D
    expect(schedulesOf('jml-run-')).toEqual([
      { name: 'jml-run-E2002-joiner', at: new Date(due).toISOString(), action: { kind: 'start-run', payload: { runId: future.runId, employeeId: 'E2002' } } },
    ]);
    expect(oktaUser('E2002')).toBeUndefined();

    expect(await jumpTo(due - 1000)).not.toContain('jml-run-E2002-joiner');
    expect((await run(future.runId)).status).toBe('SCHEDULED');
    expect(await jumpTo(due)).toContain('jml-run-E2002-joiner');
    await decideByEmail(s(), (await approvalMail(s(), future.runId, 'baseline')).mail.links[0]!, 'approve');
    expect((await closed(future.runId)).status).toBe('COMPLETED');
    expect(oktaUser('E2002')!.status).toBe('PROVISIONED'); // pre-hire provisioning, a day ahead
    expect(s().scheduler.fired.filter((f) => f.error)).toEqual([]);
  });

  it('a moved start date moves the one schedule and supersedes the older run; an older record arriving late is stale', async () => {
    await start();
    const first = dateIn(20);
    const moved = dateIn(27);
    const a = await send(s(), hrEvent('hire', person('E2201', { startDate: first }), { effectiveDate: first, occurredAt: nextOccurredAt() }));
    await waitForStatus(s(), a.runId, ['SCHEDULED']);
    const lateOccurredAt = nextOccurredAt();
    const b = await send(s(), hrEvent('hire', person('E2201', { startDate: moved }), { effectiveDate: moved, occurredAt: nextOccurredAt() }));
    await waitForStatus(s(), b.runId, ['SCHEDULED']);

    expect(await run(a.runId)).toMatchObject({ status: 'SUPERSEDED', supersededBy: b.runId });
    expect(schedulesOf('jml-run-E2201')).toEqual([
      { name: 'jml-run-E2201-joiner', at: new Date(midnight(moved) - DAY).toISOString(), action: { kind: 'start-run', payload: { runId: b.runId, employeeId: 'E2201' } } },
    ]);

    // Recorded between the two, delivered after both (an HRIS retry): it does not undo the move.
    const late = await send(s(), hrEvent('hire', person('E2201', { startDate: dateIn(24) }), { effectiveDate: dateIn(24), occurredAt: lateOccurredAt }));
    const stale = await closed(late.runId);
    expect(stale.status).toBe('STALE');
    expect(stale.statusReason).toContain(`pending as run ${b.runId}`);
    expect(schedulesOf('jml-run-E2201').map((e) => e.action.payload.runId)).toEqual([b.runId]);

    expect(except(await jumpTo(midnight(first)))).toEqual([]); // the old date passes: nothing happens
    expect(oktaUser('E2201')).toBeUndefined();
    expect(except(await jumpTo(midnight(moved) - DAY))).toEqual(['jml-run-E2201-joiner']);
    await decideByEmail(s(), (await approvalMail(s(), b.runId, 'baseline')).mail.links[0]!, 'approve');
    expect((await closed(b.runId)).status).toBe('COMPLETED');
  });

  it('a withdrawn termination deletes its schedule; nothing happens on the old date', async () => {
    await start();
    const w = person('E2301');
    await hired(w);
    const leaving = dateIn(10);
    const termination = await terminated(w, leaving);
    await waitForStatus(s(), termination, ['SCHEDULED']);
    expect(schedulesOf('jml-run-E2301').map((e) => e.name)).toEqual(['jml-run-E2301-leaver']);

    // HR cancels it: the next record of the worker has no termination date (BambooHR sends
    // exactly this when a termination is rescinded).
    const withdrawal = await send(s(), hrEvent('change', w, { effectiveDate: dateIn(0), occurredAt: nextOccurredAt() }));
    expect((await closed(withdrawal.runId)).status).toBe('COMPLETED');
    const cancelled = await run(termination);
    expect(cancelled).toMatchObject({ status: 'SUPERSEDED', supersededBy: withdrawal.runId });
    expect(cancelled.statusReason).toContain('termination withdrawn');
    expect(schedulesOf('jml-run-E2301')).toEqual([]);

    expect(except(await jumpTo(midnight(leaving) + DAY))).toEqual([]);
    expect(oktaUser('E2301')!.status).toBe('PROVISIONED');
    expect((await s().deps.ledger.getPerson('E2301'))!.status).toBe('active');
  });
});

describe('leavers and retention', () => {
  it('runs a future termination at its moment in the company zone (standing over a later change), then hard-deletes each account after its retention, with evidence', async () => {
    await start();
    const w = person('E2101');
    await hired(w);
    // 15 July is in British Summer Time: the termination moment is 23:00 UTC the day before.
    const leaving = '2027-07-15';
    const moment = Date.parse('2027-07-14T23:00:00.000Z');
    const termination = await terminated(w, leaving);
    await waitForStatus(s(), termination, ['SCHEDULED']);
    expect(schedulesOf('jml-run-E2101')).toEqual([
      { name: 'jml-run-E2101-leaver', at: new Date(moment).toISOString(), action: { kind: 'start-run', payload: { runId: termination, employeeId: 'E2101' } } },
    ]);

    // A change during the notice period (it keeps the termination date): applied now; the
    // termination still happens on its date.
    const change = await send(s(), hrEvent('change', { ...w, location: 'Manchester', terminationDate: leaving }, { effectiveDate: dateIn(0), occurredAt: nextOccurredAt() }));
    expect((await closed(change.runId)).status).toBe('COMPLETED');
    expect((await run(termination)).status).toBe('SCHEDULED');

    expect(except(await jumpTo(moment - 1000))).toEqual([]);
    expect(oktaUser('E2101')!.status).toBe('PROVISIONED');
    expect(except(await jumpTo(moment))).toEqual(['jml-run-E2101-leaver']);
    await waitFor('IdP disabled', () => oktaUser('E2101')?.status === 'DEPROVISIONED');
    await approveAll(termination);
    const leaver = await closed(termination);
    expect(leaver.status).toBe('COMPLETED');
    const gone = (await s().deps.ledger.getPerson('E2101'))!;
    expect(gone).toMatchObject({ status: 'terminated', worker: { location: 'Manchester', terminationDate: leaving } });
    const oktaId = oktaUser('E2101')!.id;
    // Retention counts from the termination moment (or from the delete being scheduled, when the
    // leaver ran late — here a second or two for the data-handling approvals).
    const retention = schedulesOf('jml-retention-E2101');
    expect(retention.map((e) => e.name)).toEqual(['jml-retention-E2101-okta', 'jml-retention-E2101-slack', 'jml-retention-E2101-netsuite']);
    const base = Date.parse(retention[0]!.at) - 30 * DAY;
    expect(base - moment).toBeGreaterThanOrEqual(0);
    expect(base - moment).toBeLessThan(60_000);
    // One base for all targets: each delete lands exactly its retention after it.
    expect(retention.map((e) => (Date.parse(e.at) - base) / DAY)).toEqual([30, 90, 365]);
    expect(retention[0]!.action).toEqual({
      kind: 'retention-delete',
      payload: { employeeId: 'E2101', target: 'okta', runId: termination, terminationVersion: gone.version },
    });

    expect(except(await jumpTo(base + 30 * DAY - 1000))).toEqual([]);
    expect(except(await jumpTo(base + 30 * DAY))).toEqual(['jml-retention-E2101-okta']);
    expect(oktaUser('E2101')).toBeUndefined();
    expect(okta().logs.some((e) => e.eventType === 'user.lifecycle.delete.completed' || (e.eventType.includes('delete') && e.target.some((t) => t.id === oktaId)))).toBe(true);
    expect(scimUser('slack', 'E2101')).toMatchObject({ active: false }); // 90 days for Slack
    expect((await s().deps.ledger.getPerson('E2101'))!.links.okta).toBeUndefined();

    expect(except(await jumpTo(base + 90 * DAY))).toEqual(['jml-retention-E2101-slack']);
    expect(scimUser('slack', 'E2101')).toBeUndefined();
    expect(s().scheduler.fired.filter((f) => f.error)).toEqual([]);

    // Each delete is an evidence bundle in the person's hash chain.
    const chain = await s().deps.evidence.personBundles('E2101');
    const deletes = chain.filter((e) => e.runId.startsWith('retention-'));
    expect(deletes).toHaveLength(2);
    expect(await verifyPersonChain(s().deps.evidence, 'E2101')).toMatchObject({ ok: true });
    const files = await s().deps.evidence.loadBundle(deletes[0]!.prefix);
    const log = JSON.parse(Buffer.from(files.get('execution-log.json')!).toString());
    expect(log.steps[0].changes).toEqual([expect.objectContaining({ op: 'delete', accountId: oktaId, changed: true })]);
    const trigger = JSON.parse(Buffer.from(files.get('hr-event.json')!).toString());
    expect(JSON.parse(trigger.rawBody)).toMatchObject({ trigger: 'retention-delete', schedule: 'jml-retention-E2101-okta', leaverRunId: termination });
  });

  it('a rehire cancels the pending deletes, and a delete that fires anyway is refused by the re-check', async () => {
    await start();
    const w = person('E2401');
    await hired(w);
    const termination = await terminated(w, dateIn(0));
    await approveAll(termination);
    expect((await closed(termination)).status).toBe('COMPLETED');
    const pending = schedulesOf('jml-retention-E2401');
    expect(pending).toHaveLength(3);

    const rehire = await send(s(), hrEvent('rehire', { ...w, startDate: dateIn(0) }, { effectiveDate: dateIn(0), occurredAt: nextOccurredAt() }));
    const { mail } = await approvalMail(s(), rehire.runId, 'baseline');
    expect(schedulesOf('jml-retention-E2401')).toEqual([]);
    await decideByEmail(s(), mail.links[0]!, 'approve');
    expect((await closed(rehire.runId)).status).toBe('COMPLETED');

    // The okta delete had already been handed to the scheduler's target when the rehire arrived.
    const okta = pending.find((e) => e.name === 'jml-retention-E2401-okta')!;
    s().clock.set(new Date(Date.parse(okta.at)));
    const outcome = await dispatchScheduled(s().deps, okta);
    expect(outcome).toMatchObject({ kind: 'retention-delete', outcome: 'cancelled' });
    expect((outcome as { reason: string }).reason).toContain('E2401 is active again');
    expect(oktaUser('E2401')!.status).not.toBe('DEPROVISIONED');
  });
  it('retries a delete the target could not take, and opens an exception for the owner when the target refuses it', async () => {
    await start();
    const w = person('E2801');
    await hired(w);
    const termination = await terminated(w, dateIn(0));
    await approveAll(termination);
    expect((await closed(termination)).status).toBe('COMPLETED');
    const [oktaDelete, slackDelete] = schedulesOf('jml-retention-E2801');
    const oktaId = oktaUser('E2801')!.id;

    // Okta answers 503 to the delete (past the connector's own retries): tried again in an hour.
    s().targets.okta!.controls.faults.push({ kind: 'status', status: 503, method: 'DELETE', path: /^\/api\/v1\/users\// });
    expect(except(await jumpTo(Date.parse(oktaDelete!.at)))).toEqual(['jml-retention-E2801-okta']);
    expect(oktaUser('E2801')).toBeDefined();
    const [retry] = schedulesOf('jml-retention-retry-E2801');
    expect(retry).toMatchObject({ name: 'jml-retention-retry-E2801-okta', action: { payload: { attempt: 1, failures: [expect.stringContaining('TargetUnavailable')] } } });
    const wait = Date.parse(retry!.at) - Date.parse(oktaDelete!.at); // an hour after the attempt
    expect(wait).toBeGreaterThanOrEqual(3_600_000);
    expect(wait).toBeLessThan(3_660_000);
    s().targets.okta!.controls.faults.length = 0;
    expect(except(await jumpTo(Date.parse(retry!.at)))).toEqual(['jml-retention-retry-E2801-okta']);
    expect(oktaUser('E2801')).toBeUndefined();
    const deleted = (await s().deps.evidence.personBundles('E2801')).find((e) => e.runId.startsWith('retention-'))!;
    const log = JSON.parse(Buffer.from((await s().deps.evidence.loadBundle(deleted.prefix)).get('execution-log.json')!).toString());
    expect(log.steps[0].changes).toEqual([expect.objectContaining({ op: 'delete', accountId: oktaId, changed: true })]);

    // Slack refuses the delete outright: no retry, an exception for Slack's owner, evidence of the attempt.
    s().targets.scim.slack!.controls.faults.push({ kind: 'status', status: 400, method: 'DELETE', path: /\/Users\// });
    expect(except(await jumpTo(Date.parse(slackDelete!.at)))).toEqual(['jml-retention-E2801-slack']);
    expect(scimUser('slack', 'E2801')).toMatchObject({ active: false });
    expect(schedulesOf('jml-retention-retry-E2801')).toEqual([]);
    const [exception] = (await s().deps.ledger.listExceptions({ status: 'open' })).filter((e) => e.employeeId === 'E2801');
    expect(exception).toMatchObject({ target: 'slack', owner: 'collab-owners@acme.example', kind: 'step_failed' });
    expect(exception!.reason).toContain('retention hard delete');
    expect(exception!.reason).toContain('TargetRejected');
    const failed = (await s().deps.evidence.personBundles('E2801')).filter((e) => e.runId.startsWith('retention-'));
    expect(failed).toHaveLength(2);
    const attempt = await s().deps.evidence.loadBundle(failed[1]!.prefix);
    expect(JSON.parse(Buffer.from(attempt.get('reconciliation.json')!).toString()).exceptions).toEqual([expect.objectContaining({ exceptionId: exception!.exceptionId })]);
    expect(JSON.parse(Buffer.from(attempt.get('execution-log.json')!).toString()).steps[0]).toMatchObject({ outcome: 'error', error: { name: 'TargetRejected' } });
    expect(await verifyPersonChain(s().deps.evidence, 'E2801')).toMatchObject({ ok: true });
  });
});

describe('time-bound access', () => {
  it('removes a time-bound bundle when it expires, and records the removal', async () => {
    await start();
    const sre = person('E2501', { jobCode: 'SRE-2' });
    await hired(sre); // the manager and platform-lead (production-access) approve
    expect(oktaGroups('E2501')).toContain('Production Access');
    const granted = (await s().deps.ledger.getPerson('E2501'))!;
    const grantedAt = Date.parse(granted.grantedAt['production-access']!);
    expect(granted.approvedBundles).toContain('production-access');
    const [expiry] = schedulesOf('jml-expire-E2501');
    expect(expiry).toMatchObject({ name: 'jml-expire-E2501-production-access', action: { kind: 'expire-bundle', payload: { employeeId: 'E2501', bundle: 'production-access' } } });
    // Closing the run scheduled the removal at the exact end of the grant.
    expect(expiry!.at).toBe(new Date(grantedAt + 90 * DAY).toISOString());
    await jumpTo(grantedAt + 90 * DAY - 60_000);
    expect(oktaGroups('E2501')).toContain('Production Access');
    await jumpTo(grantedAt + 90 * DAY);
    expect(oktaGroups('E2501')).toEqual(['All Staff', 'Employees', 'Engineering', 'GitHub Users']);
    expect((await s().deps.ledger.getPerson('E2501'))!.approvedBundles).not.toContain('production-access');
    expect(s().scheduler.fired.filter((f) => f.error)).toEqual([]);

    const chain = await s().deps.evidence.personBundles('E2501');
    const removal = chain.find((e) => e.runId.startsWith('expiry-'))!;
    const log = JSON.parse(Buffer.from((await s().deps.evidence.loadBundle(removal.prefix)).get('execution-log.json')!).toString());
    expect(log.steps.flatMap((x: { changes: Array<{ op: string; changed: boolean; entitlement?: { value: string } }> }) => x.changes.filter((c) => c.changed))).toEqual([
      expect.objectContaining({ op: 'removeEntitlement', entitlement: { type: 'group', value: 'Production Access' } }),
    ]);
    expect(await verifyPersonChain(s().deps.evidence, 'E2501')).toMatchObject({ ok: true });
  });

  it('an exception grant asked for with the CLI is approved by the app owner by link, applied, and removed when it ends', async () => {
    await start();
    const w = person('E2601');
    await hired(w);
    const move = await send(s(), hrEvent('change', { ...w, department: 'Sales', jobCode: 'SLS-1' }, { effectiveDate: dateIn(0), occurredAt: nextOccurredAt() }));
    expect((await closed(move.runId)).status).toBe('COMPLETED');
    expect(oktaGroups('E2601')).toEqual(['All Staff', 'CRM Users', 'Employees', 'Sales']);

    const api = createExceptionGrantsHandler(async () => s().deps);
    const url = await serve(api);
    const previous = process.env.JML_URL;
    process.env.JML_URL = url;
    cleanups.push(() => {
      if (previous === undefined) delete process.env.JML_URL;
      else process.env.JML_URL = previous;
    });
    const printed: string[] = [];
    const log = vi.spyOn(console, 'log').mockImplementation((line: string) => void printed.push(line));
    cleanups.push(() => log.mockRestore());

    const code = await grantExceptionCommand([
      '--employee', 'E2601', '--bundle', 'engineering', '--days', '14',
      '--reason', 'Hand-over of the payments service to its new team',
      '--requested-by', 'ops.lead@acme.example',
    ]);
    expect(code).toBe(0);
    const grantId = /grt_[0-9a-f]{24}/.exec(printed.join('\n'))![0];
    expect(printed.join('\n')).toContain('approver iam@acme.example');

    // The owner of the first target the bundle lists decides, through the usual approval page.
    const { mail } = await approvalMail(s(), grantId);
    expect(mail.to).toEqual(['iam@acme.example']);
    expect(mail.text).toContain('Hand-over of the payments service');
    const decided = await decideByEmail(s(), mail.links[0]!, 'approve', 'Until the new team is trained');
    expect(decided.statusCode).toBe(200);
    expect(oktaGroups('E2601')).toEqual(['All Staff', 'CRM Users', 'Employees', 'Engineering', 'GitHub Users', 'Sales']);
    expect(scimUser('slack', 'E2601')!.groups.map((g: { display: string }) => g.display)).toContain('eng');

    const read = async () => JSON.parse((await api(toApiGatewayEvent({ method: 'GET', url: `/exception-grants/${grantId}` }))).body);
    const active = await read();
    expect(active).toMatchObject({ status: 'ACTIVE', bundle: 'engineering', approver: 'iam@acme.example', rationale: 'Until the new team is trained' });
    expect(s().outbox.mails.some((m) => m.to.includes('ops.lead@acme.example') && m.text.includes('approved by iam@acme.example'))).toBe(true);

    expect(except(await jumpTo(Date.parse(active.expiresAt) - 1000))).toEqual([]);
    expect(except(await jumpTo(Date.parse(active.expiresAt)))).toEqual([expect.stringMatching(/^jml-grant-E2601-/)]);
    expect(oktaGroups('E2601')).toEqual(['All Staff', 'CRM Users', 'Employees', 'Sales']);
    expect(scimUser('slack', 'E2601')!.groups.map((g: { display: string }) => g.display)).not.toContain('eng');
    const ended = await read();
    expect(ended.status).toBe('EXPIRED');
    expect(ended.evidence).toHaveLength(2);
    expect(await verifyPersonChain(s().deps.evidence, 'E2601')).toMatchObject({ ok: true });
  });

  it('refuses exception grants that are malformed, unknown or not needed, naming why', async () => {
    await start();
    const api = createExceptionGrantsHandler(async () => s().deps);
    const post = async (body: unknown) => {
      const r = await api(toApiGatewayEvent({ method: 'POST', url: '/exception-grants', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }));
      return { status: r.statusCode, body: JSON.parse(r.body) };
    };
    const base = { employeeId: 'E0100', bundle: 'sales', reason: 'Covering the sales desk this month', days: 14, requestedBy: 'ops.lead@acme.example' };
    const bad = await post({ ...base, days: 200, requestedBy: 'not-an-email' });
    expect(bad.status).toBe(400);
    expect(bad.body.issues).toEqual(['days: at most 90', 'requestedBy: must be an email address']);
    expect((await post({ ...base, bundle: 'no-such-bundle' })).status).toBe(404);
    expect(await post({ ...base, bundle: 'engineering' })).toMatchObject({ status: 409, body: { message: 'E0100 already has engineering through rule engineering; no exception is needed' } });
    const ok = await post(base);
    expect(ok).toMatchObject({ status: 202, body: { status: 'PENDING_APPROVAL', approver: 'iam@acme.example', duplicate: false } });
    expect(await post(base)).toMatchObject({ status: 200, body: { grantId: ok.body.grantId, duplicate: true } });
    expect(s().outbox.mails.filter((m) => m.approvalId === ok.body.approvalId)).toHaveLength(1);
  });
});

describe('bulk-change guard', () => {
  it('holds the 6th of at most 5 leavers in the window, mails one link to the fallback approver, and the release starts them; a rejection ends them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'jml-guard-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const doc = examplePolicyDocument();
    doc.bulkGuard = { maxCount: 5, maxPercent: 100, minCount: 1, windowMinutes: 60 };
    writeFileSync(join(dir, 'policy.yaml'), stringify(doc));
    await start({ policyFile: join(dir, 'policy.yaml') });
    const staff = Array.from({ length: 8 }, (_, i) => person(`E27${String(i + 1).padStart(2, '0')}`));
    await seedPeople(s(), staff);

    // A feed that terminates seven people at once: delivered concurrently (one FIFO group each).
    const runs = await Promise.all(staff.slice(0, 7).map((w) => terminated(w, dateIn(0))));
    await s().settle();
    const statuses = await Promise.all(runs.map(async (r) => (await run(r)).status));
    expect(statuses.filter((x) => x === 'COMPLETED')).toHaveLength(5);
    const held = runs.filter((_, i) => statuses[i] === 'HELD');
    expect(held).toHaveLength(2);
    for (const r of held) {
      expect((await run(r)).statusReason).toMatch(/^held by the bulk-change guard \(hold hold-5m-\d+\): 6 runs that take access away within 60 minutes exceed the limit of 5/);
      expect((await s().deps.ledger.getPerson((await run(r)).employeeId))!.status).toBe('active'); // nothing applied
    }
    const admitted = runs.filter((_, i) => statuses[i] === 'COMPLETED');
    for (const r of admitted) {
      expect((await s().deps.ledger.listApprovals(r)).filter((a) => a.requestId === 'bulk-guard')).toEqual([
        expect.objectContaining({ status: 'APPROVED', approver: 'bulk-change-guard' }),
      ]);
    }
    const releaseMails = s().outbox.mails.filter((m) => m.to.includes('it-access@acme.example'));
    expect(releaseMails).toHaveLength(1);
    expect(releaseMails[0]!.links).toHaveLength(1);
    // The email counts the runs held when it went out (the second may join a moment later); the
    // page behind its link lists every run the hold holds.
    expect(releaseMails[0]!.text).toMatch(/the release of [12] held runs? that take access away/);
    const link = new URL(releaseMails[0]!.links[0]!);
    const page = await createApprovalsApiHandler(async () => s().deps)(toApiGatewayEvent({ method: 'GET', url: link.pathname + link.search }));
    expect(page.statusCode).toBe(200);
    for (const r of held) expect(page.body).toContain((await run(r)).employeeId);

    // HR corrects one of them before anybody releases the hold: that termination is withdrawn.
    const [corrected, confirmed] = held as [string, string];
    const correctedId = (await run(corrected)).employeeId;
    const correction = await send(s(), hrEvent('change', person(correctedId), { effectiveDate: dateIn(0), occurredAt: nextOccurredAt() }));
    expect((await closed(correction.runId)).status).toBe('COMPLETED');
    expect(await run(corrected)).toMatchObject({ status: 'SUPERSEDED', supersededBy: correction.runId });

    const released = await decideByEmail(s(), releaseMails[0]!.links[0]!, 'approve', 'HR confirmed the site closure');
    expect(released.statusCode).toBe(200);
    await s().settle();
    expect((await run(corrected)).status).toBe('SUPERSEDED');
    expect((await s().deps.ledger.getPerson(correctedId))!.status).toBe('active');
    for (const r of [confirmed]) {
      expect((await closed(r)).status).toBe('COMPLETED');
      expect((await s().deps.ledger.listApprovals(r)).find((a) => a.requestId === 'bulk-guard')).toMatchObject({
        status: 'APPROVED',
        approver: 'it-access@acme.example',
        rationale: expect.stringContaining('HR confirmed the site closure'),
      });
    }
    expect((await s().deps.ledger.getPerson((await run(confirmed)).employeeId))!.status).toBe('terminated');

    // One more within the hour: a new hold, a new link — rejected, so nothing changes.
    const eighth = await terminated(staff[7]!, dateIn(0));
    await waitForStatus(s(), eighth, ['HELD']);
    const second = await waitFor('a second release mail', () => s().outbox.mails.filter((m) => m.to.includes('it-access@acme.example'))[1]);
    expect(second.links[0]).not.toBe(releaseMails[0]!.links[0]);
    const rejected = await decideByEmail(s(), second.links[0]!, 'reject', 'Feed error: E2708 is not leaving');
    expect(rejected.statusCode).toBe(200);
    const ended = await run(eighth);
    expect(ended.status).toBe('SUPERSEDED');
    expect(ended.statusReason).toBe('bulk-change guard: it-access@acme.example rejected the release: Feed error: E2708 is not leaving; no access was changed');
    expect((await s().deps.ledger.getPerson('E2708'))!.status).toBe('active');
  });
});

/** Serves an API handler on 127.0.0.1 (for the CLI, which speaks HTTP). */
async function serve(handler: ReturnType<typeof createExceptionGrantsHandler>): Promise<string> {
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const result = await handler(
        toApiGatewayEvent({ method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers as Record<string, string>, body: Buffer.concat(chunks), sourceIp: '127.0.0.1' }),
      );
      res.writeHead(result.statusCode, result.headers as Record<string, string>);
      res.end(result.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const address = server.address() as { port: number };
  return `http://127.0.0.1:${address.port}`;
}

describe('which pending run an event replaces', () => {
  const ev = (eventType: string, over: Partial<Worker>, effectiveDate: string) =>
    normaliseHrEvent({ eventId: `e-${eventType}-${effectiveDate}`, eventType, effectiveDate, occurredAt: '2026-11-20T10:00:00Z', worker: { ...worker(), ...over } }, { timeZone: TZ });
  const leaver = ev('termination', { terminationDate: '2026-12-15' }, '2026-12-15');

  it('same kind replaces; a termination replaces what would take effect after it; a record without a termination date withdraws one', () => {
    expect(supersedeReason(ev('hire', { startDate: '2026-12-08' }, '2026-12-08'), ev('hire', { startDate: '2026-12-01' }, '2026-12-01'))).toContain('replaced by a later record');
    expect(supersedeReason(ev('rehire', {}, '2026-12-08'), ev('hire', {}, '2026-12-01'))).not.toBeNull();
    expect(supersedeReason(leaver, ev('termination', { terminationDate: '2026-12-20' }, '2026-12-20'))).toContain('termination replaced');
    expect(supersedeReason(leaver, ev('change', { jobCode: 'ENG-3' }, '2027-01-01'))).toContain('takes effect first');
    expect(supersedeReason(leaver, ev('change', { jobCode: 'ENG-3' }, '2026-12-01'))).toBeNull();
    expect(supersedeReason(ev('change', { location: 'Leeds' }, '2026-11-20'), leaver)).toContain('termination withdrawn');
    expect(supersedeReason(ev('change', { location: 'Leeds', terminationDate: '2026-12-15' }, '2026-11-20'), leaver)).toBeNull();
    expect(supersedeReason(ev('leave_start', {}, '2027-01-01'), ev('hire', {}, '2026-12-01'))).toBeNull();
  });

  it('movers: the same day or the same record moves; a different change on another day is another run', () => {
    const promotion = ev('change', { jobCode: 'ENG-3' }, '2026-12-01');
    expect(supersedeReason(ev('change', { jobCode: 'ENG-4' }, '2026-12-01'), promotion)).toContain('later record of the change effective 2026-12-01');
    expect(supersedeReason(ev('change', { jobCode: 'ENG-3' }, '2027-01-01'), promotion)).toContain('moved to 2027-01-01');
    expect(supersedeReason(ev('change', { jobCode: 'ENG-3', location: 'Leeds' }, '2027-01-01'), promotion)).toBeNull();
    expect(scheduleNameFor('E1', 'mover', '2026-12-01')).toBe('jml-run-E1-mover-20261201');
    expect(scheduleNameFor('E1', 'joiner', '2026-12-01')).toBe('jml-run-E1-joiner');
  });

  it('schedule names stay within EventBridge Scheduler\'s 64 characters and apart for long ids', () => {
    const a = scheduleNameFor(`A${'x'.repeat(62)}`, 'mover', '2026-12-01');
    const b = scheduleNameFor(`A${'x'.repeat(62)}`, 'mover', '2026-12-02');
    expect(a).toMatch(/^[A-Za-z0-9_.-]{1,64}$/);
    expect(a).not.toBe(b);
    expect(parseDecisionToken(decisionToken('exception-grant', 'grt_0123'))).toEqual({ kind: 'exception-grant', id: 'grt_0123' });
    expect(parseDecisionToken('AAAAKgAAAAIAAAAAAAAAAQ-step-functions-token')).toBeNull();
    expect(parseDecisionToken('jml-decision:unknown:1')).toBeNull();
  });
});
