/**
 * The run state machines end to end on the local stack: the real ASL files on
 * aws-local-stepfunctions, every Task on its real handler, DynamoDB on dynalite, and the Okta and
 * SCIM stand-ins as targets. Assertions are on the path taken and on the targets' own state.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { verifyBundle } from '#core/evidence';
import { startLocalStack, type LocalStack } from '#local/stack';
import { worker } from '../helpers/policy.ts';
import { approvalMail, decideByEmail, hrEvent, seedPeople, send, waitFor, waitForStatus } from '../helpers/stack.ts';

let stack: LocalStack;
beforeEach(async () => {
  stack = await startLocalStack({ retryIntervalMs: 5 });
  await seedPeople(stack);
});
afterEach(async () => {
  await stack?.close();
});

const okta = () => stack.targets.okta!.state;
const oktaUser = (employeeId: string) => okta().usersByEmployeeNumber(employeeId)[0];
const oktaGroups = (userId: string) => okta().groupNamesOf(userId).filter((g) => g !== 'Everyone').sort();
const scimUser = (app: string, employeeId: string) => stack.targets.scim[app]!.state.listUsers().find((u) => u.externalId === employeeId) as Record<string, any> | undefined;

async function closed(runId: string) {
  await waitForStatus(stack, runId, ['COMPLETED', 'EXCEPTION_OPEN', 'FAILED', 'SUPERSEDED', 'STALE', 'OUT_OF_SCOPE']);
  if (stack.workflows.execution(runId)) await stack.workflows.wait(runId);
  return (await stack.deps.ledger.getRun(runId))!;
}

/** Started in October, so a November termination is after the start date. */
const ada = (over: Parameters<typeof worker>[0] = {}) => worker({ startDate: '2026-10-01', ...over });

async function hire(w = ada()) {
  const accepted = await send(stack, hrEvent('hire', w));
  const { mail } = await approvalMail(stack, accepted.runId, 'baseline');
  expect(mail.to).toEqual(['margaret@acme.example']); // the manager from the person store
  const decided = await decideByEmail(stack, mail.links[0]!, 'approve');
  expect(decided.statusCode).toBe(200);
  return { accepted, run: await closed(accepted.runId) };
}

/** Ada's termination, effective 3 November. */
const terminate = () => send(stack, hrEvent('termination', { ...ada(), terminationDate: '2026-11-03' }, { effectiveDate: '2026-11-03', occurredAt: '2026-11-03T08:00:00.000Z' }));

describe('joiner', () => {
  it('plans, waits for the manager, provisions the IdP then the apps, reconciles and closes with evidence', async () => {
    const { accepted, run } = await hire();
    expect(run.status).toBe('COMPLETED');
    expect(stack.workflows.statesEntered(accepted.runId)).toEqual([
      'Plan', 'Skip?', 'NeedsApproval?', 'Approve', 'ApprovalRequest', 'ApprovalApproved',
      'ExecuteIdp', 'ExecuteApps', 'AppConverge', 'AppConverge', 'Reconcile', 'Converged?', 'CloseWithEvidence',
    ]);
    const user = oktaUser('E1001')!;
    expect(user.status).toBe('PROVISIONED'); // activated without a password: the user sets one up on day one
    expect(oktaGroups(user.id)).toEqual(['All Staff', 'Employees', 'Engineering', 'GitHub Users']);
    const slack = scimUser('slack', 'E1001')!;
    expect(slack.active).toBe(true);
    expect(scimUser('netsuite', 'E1001')).toBeUndefined(); // an engineer gets no finance system account

    const files = await stack.deps.evidence.loadBundle(run.evidence!.prefix);
    expect([...files.keys()].sort()).toEqual([
      'approvals.json', 'execution-log.json', 'hr-event.json', 'idp-evidence.json', 'manifest.json', 'plan.json', 'reconciliation.json', 'summary.html',
    ]);
    expect(verifyBundle(files).ok).toBe(true);
    const approvals = JSON.parse(Buffer.from(files.get('approvals.json')!).toString());
    expect(JSON.stringify(approvals)).toContain('margaret@acme.example');
    expect(JSON.stringify(approvals)).not.toContain('local-'); // the task token never reaches evidence
    const idp = Buffer.from(files.get('idp-evidence.json')!).toString();
    expect(idp).toContain('user.lifecycle.create');
  });

  it('keeps the IdP account when an app fails, leaves no elevated access there and opens an exception for its owner', async () => {
    stack.targets.scim.netsuite!.controls.faults.push({ kind: 'status', status: 503, method: 'POST', path: /\/Users$/ });
    const finance = worker({ employeeId: 'E1002', department: 'Finance', jobCode: 'FIN-SYSADMIN', managerId: 'E0200', email: 'fin.admin@acme.example' });
    const accepted = await send(stack, hrEvent('hire', finance));
    const baseline = await approvalMail(stack, accepted.runId, 'baseline');
    await decideByEmail(stack, baseline.mail.links[0]!, 'approve');
    const privileged = await approvalMail(stack, accepted.runId, 'bundle:finance-system-admin');
    expect(privileged.mail.to).toEqual(['controller@acme.example']);
    await decideByEmail(stack, privileged.mail.links[0]!, 'approve');
    const run = await closed(accepted.runId);

    expect(run.status).toBe('EXCEPTION_OPEN');
    expect(stack.workflows.statesEntered(accepted.runId)).toContain('AppFailed');
    expect(oktaUser('E1002')!.status).toBe('PROVISIONED');
    expect(scimUser('netsuite', 'E1002')).toBeUndefined();
    const exceptions = await stack.deps.ledger.listExceptions({ runId: accepted.runId });
    const failure = exceptions.find((e) => e.kind === 'step_failed')!;
    expect(failure).toMatchObject({ target: 'netsuite', owner: 'finance-systems@acme.example', status: 'open' });
    // One problem, one exception: the retried step and the final Reconcile refer to it, not open more.
    expect(exceptions.map((e) => e.exceptionId)).toEqual([`exc-step-${accepted.runId}-netsuite`]);
    expect((run.reconciliation as { exceptionsOpened?: string[] } | undefined)?.exceptionsOpened).toEqual([`exc-step-${accepted.runId}-netsuite`]);
    expect(failure.reason).toContain('TargetUnavailable');
    expect(stack.outbox.mails.some((m) => m.to.includes('finance-systems@acme.example') && m.subject.includes('netsuite'))).toBe(true);
  });

  it('keeps what a failed attempt wrote on record when the retry finishes the step', async () => {
    // Slack creates the account, then refuses the group adds until the connector gives up; the
    // workflow's retry finds the account there and adds the groups.
    stack.targets.scim.slack!.controls.faults.push({ kind: 'status', status: 503, method: 'PATCH', path: /\/Groups\//, times: 3 });
    const { accepted, run } = await hire();
    expect(run.status).toBe('COMPLETED');
    expect(scimUser('slack', 'E1001')!.active).toBe(true);

    const slack = (await stack.deps.ledger.listSteps(accepted.runId)).find((s) => s.target === 'slack')!;
    expect(slack).toMatchObject({ outcome: 'ok', attempts: 2 });
    expect(slack).not.toHaveProperty('error');
    const creates = slack.changes.filter((c) => c.op === 'create');
    expect(creates.map((c) => c.changed)).toEqual([true]); // the first attempt's: the retry found the account
    expect(creates[0]!.requestIds.length).toBeGreaterThan(0);
    expect(slack.changes.filter((c) => c.op === 'addEntitlement' && c.changed).map((c) => c.entitlement?.value).sort()).toEqual(['all-hands', 'eng', 'member']);
    expect(slack.writes).toBe(4); // each write once, across both attempts

    const files = await stack.deps.evidence.loadBundle(run.evidence!.prefix);
    const log = JSON.parse(Buffer.from(files.get('execution-log.json')!).toString()) as { steps: Array<{ target: string; attempts?: number; writes: number }> };
    expect(log.steps.find((s) => s.target === 'slack')).toMatchObject({ attempts: 2, writes: 4 });
    expect(Buffer.from(files.get('summary.html')!).toString()).toContain('(2 attempts)');
  });

  it('counts an attempt once when the step fails after recording it (the person update refused)', async () => {
    // The Slack step converges and records its writes; linking the account to the person then
    // fails once (as a retryable error), so the workflow runs the step again.
    const ledger = stack.deps.ledger;
    const putPerson = ledger.putPerson.bind(ledger);
    let refused = 0;
    ledger.putPerson = async (person, expected) => {
      if (person.links.slack && refused++ === 0) throw Object.assign(new Error('slack link not written'), { name: 'TargetUnavailable' });
      return putPerson(person, expected);
    };
    const { accepted, run } = await hire();
    expect(run.status).toBe('COMPLETED');
    expect(refused).toBeGreaterThan(1);

    const slack = (await stack.deps.ledger.listSteps(accepted.runId)).find((s) => s.target === 'slack')!;
    expect(slack).toMatchObject({ outcome: 'ok', attempts: 2, writes: 4 }); // the retry found everything done
    expect(slack.changes.filter((c) => c.changed)).toHaveLength(4);
  });

  it('does not grant a rejected privileged bundle and completes the rest of the run', async () => {
    const finance = worker({ employeeId: 'E1003', department: 'Finance', jobCode: 'FIN-SYSADMIN', managerId: 'E0200', email: 'f3@acme.example' });
    const accepted = await send(stack, hrEvent('hire', finance));
    await decideByEmail(stack, (await approvalMail(stack, accepted.runId, 'baseline')).mail.links[0]!, 'approve');
    const rejected = await decideByEmail(stack, (await approvalMail(stack, accepted.runId, 'bundle:finance-system-admin')).mail.links[0]!, 'reject', 'Not before SOX training');
    expect(rejected.statusCode).toBe(200);
    const run = await closed(accepted.runId);
    expect(run.status).toBe('COMPLETED');
    expect(stack.workflows.statesEntered(accepted.runId)).toContain('ApprovalRejected');
    const netsuite = scimUser('netsuite', 'E1003')!;
    expect(netsuite.active).toBe(true);
    expect((netsuite.roles as Array<{ value: string }>).map((r) => r.value)).toEqual(['Employee Center']);
  });
});

describe('mover', () => {
  it('removes old-role access before adding the new role, without asking anyone for baseline access', async () => {
    await hire();
    const moved = ada({ department: 'Sales', jobCode: 'SLS-1' });
    const accepted = await send(stack, hrEvent('change', moved, { occurredAt: '2026-11-02T09:00:00.000Z' }));
    const run = await closed(accepted.runId);
    expect(run.status).toBe('COMPLETED');
    expect(stack.workflows.statesEntered(accepted.runId)).not.toContain('Approve');
    const user = oktaUser('E1001')!;
    expect(oktaGroups(user.id)).toEqual(['All Staff', 'CRM Users', 'Employees', 'Sales']);
    const steps = await stack.deps.ledger.listSteps(accepted.runId);
    const ops = steps.find((s) => s.target === 'okta')!.changes.filter((c) => c.changed).map((c) => `${c.op}:${c.entitlement?.value}`);
    expect(ops.indexOf('removeEntitlement:Engineering')).toBeLessThan(ops.indexOf('addEntitlement:Sales'));
    expect(ops.indexOf('removeEntitlement:GitHub Users')).toBeLessThan(ops.indexOf('addEntitlement:CRM Users'));
  });
});

describe('execution ended without closing its run', () => {
  it('fails the run and opens an exception, retrying when the ledger refuses the first time', async () => {
    const accepted = await send(stack, hrEvent('hire', ada()));
    await approvalMail(stack, accepted.runId, 'baseline'); // waiting for the manager
    // The first attempt to record the ended execution fails (a ledger write refused under load).
    const ledger = stack.deps.ledger;
    const openException = ledger.openException.bind(ledger);
    let refused = 0;
    ledger.openException = async (e) => {
      if (e.exceptionId.startsWith('exc-execution-') && refused++ === 0) throw new Error('ThrottlingException: rate of requests exceeds the allowed throughput');
      return openException(e);
    };
    await stack.workflows.stop(accepted.runId);
    expect(await waitForStatus(stack, accepted.runId, ['FAILED'], 15_000)).toBe('FAILED');
    expect(refused).toBe(2); // refused once, recorded on the retry
    const [exception] = await stack.deps.ledger.listExceptions({ runId: accepted.runId });
    expect(exception).toMatchObject({ exceptionId: `exc-execution-${accepted.runId}`, target: 'run', status: 'open' });
    expect(exception!.reason).toContain('the joiner workflow ended ABORTED');
  });
});

describe('leaver', () => {
  it('disables at the IdP and revokes sessions first, then waits only for data handling, deprovisions apps and schedules deletes', async () => {
    await hire();
    const accepted = await terminate();
    // Access is cut before anybody is asked anything.
    await waitFor('IdP disabled', () => oktaUser('E1001')?.status === 'DEPROVISIONED');
    const { mail } = await approvalMail(stack, accepted.runId, 'data:mailbox-delegation');
    expect(oktaUser('E1001')!.status).toBe('DEPROVISIONED');
    expect(mail.to).toEqual(['margaret@acme.example']);
    await decideByEmail(stack, mail.links[0]!, 'approve');
    await decideByEmail(stack, (await approvalMail(stack, accepted.runId, 'data:file-transfer')).mail.links[0]!, 'approve');
    const run = await closed(accepted.runId);

    expect(run.status).toBe('COMPLETED');
    const path = stack.workflows.statesEntered(accepted.runId);
    // Nothing is read or planned before the disable (the slot waits pass at once: no rate limit).
    expect(path.slice(0, 6)).toEqual(['AwaitRestrictSlot', 'DisableAtIdp', 'AwaitRoutineSlot', 'Plan', 'Skip?', 'NeedsApproval?']);
    expect(path.indexOf('DisableAtIdp')).toBeLessThan(path.indexOf('ApproveDataHandling'));
    expect(path).toContain('ScheduleRetentionDelete');
    const user = oktaUser('E1001')!;
    expect(oktaGroups(user.id)).toEqual([]);
    expect(okta().logs.some((e) => e.eventType === 'user.session.clear' && e.target.some((t) => t.id === user.id))).toBe(true);
    expect(scimUser('slack', 'E1001')!.active).toBe(false);
    expect(stack.scheduler.list().filter((s) => s.action.kind === 'retention-delete').map((s) => s.name).sort()).toEqual([
      'jml-retention-E1001-netsuite', 'jml-retention-E1001-okta', 'jml-retention-E1001-slack',
    ]);
    expect(run.kpis!.timeToDisableMs).toBeGreaterThanOrEqual(0);
    expect(run.kpis!.revocationEnumerated).toBe(2);
    expect(run.kpis!.revocationDisabledWithinSla).toBe(2);
    // Every phase is on the run's timeline, the workflow's start among them: its entry is written
    // while the first steps write theirs, and no write drops another's.
    const phases = run.timeline!.map((t) => t.phase);
    for (const phase of ['Ingest', 'IdpDisabled', 'Plan', 'Reconcile', 'ScheduleRetentionDelete', 'CloseWithEvidence']) expect(phases).toContain(phase);
    expect(run.timeline!.filter((t) => t.phase === 'Ingest').map((t) => t.note)).toEqual([expect.any(String), 'started leaver workflow']);
    expect(phases.at(-1)).toBe('CloseWithEvidence');
  });
});

describe("a leaver's first step", () => {
  /** Terminates Ada while `onRead` runs inside every read of her run once its workflow has started (the first step's read). */
  async function terminateWhileFirstStepReads(onRead: (runId: string, requests: () => string[]) => Promise<void>) {
    await hire();
    const mark = stack.targets.okta!.requestLog.length;
    const requests = () => stack.targets.okta!.requestLog.slice(mark).map((r) => `${r.method} ${r.path}${r.query}`);
    const ledger = stack.deps.ledger;
    stack.deps.ledger = new Proxy(ledger, {
      get(target, p, receiver) {
        const v = Reflect.get(target, p, receiver);
        if (p !== 'getRun') return typeof v === 'function' ? v.bind(target) : v;
        return async (runId: string) => {
          const run = await ledger.getRun(runId);
          if (run && stack.workflows.execution(runId)) await onRead(runId, requests);
          return run && stack.workflows.execution(runId) ? ledger.getRun(runId) : run;
        };
      },
    });
    const accepted = await terminate();
    await waitFor('the first step', () => {
      const execution = stack.workflows.execution(accepted.runId);
      return execution && (execution.status !== 'RUNNING' || stack.workflows.statesEntered(accepted.runId).includes('AwaitRoutineSlot'));
    });
    stack.deps.ledger = ledger;
    return { runId: accepted.runId, requests };
  }
  const searched = (log: string[]) => log.some((r) => r.startsWith('GET /api/v1/users?') && decodeURIComponent(r).includes('employeeNumber eq "E1001"'));

  it('searches the IdP for the account while it reads the run and the person, then disables it', async () => {
    let searchedDuringRead: boolean | undefined; // at the first step's read (later steps read the run too)
    const { runId, requests } = await terminateWhileFirstStepReads(async (_, requests) => {
      // The read answers only once the search has (or after 2 s, when the search waits for it).
      for (const started = Date.now(); !searched(requests()) && Date.now() - started < 2_000; ) await new Promise((r) => setTimeout(r, 5));
      searchedDuringRead ??= searched(requests());
    });
    expect(searchedDuringRead).toBe(true);
    expect(stack.workflows.statesEntered(runId).slice(0, 3)).toEqual(['AwaitRestrictSlot', 'DisableAtIdp', 'AwaitRoutineSlot']);
    expect(oktaUser('E1001')!.status).toBe('DEPROVISIONED');
    const id = oktaUser('E1001')!.id;
    expect(requests().filter((r) => !r.startsWith('GET')).slice(0, 2)).toEqual([`POST /api/v1/users/${id}/lifecycle/deactivate?sendEmail=false`, `DELETE /api/v1/users/${id}/sessions?oauthTokens=true`]);
  });

  it('changes nothing when the run was withdrawn by the time its reads are back, though it searched', async () => {
    const { runId, requests } = await terminateWhileFirstStepReads(async (id) => {
      await stack.deps.ledger.updateRun(id, { status: 'SUPERSEDED', supersededBy: 'run-withdrawal' });
    });
    await stack.workflows.wait(runId).catch(() => undefined);
    expect(searched(requests())).toBe(true);
    expect(requests().filter((r) => !r.startsWith('GET'))).toEqual([]);
    expect(oktaUser('E1001')!.status).toBe('PROVISIONED');
  });

  it("still finds and disables the linked account when the IdP's employee number no longer names the person", async () => {
    await hire();
    const user = oktaUser('E1001')!;
    user.profile.employeeNumber = 'E1001-old'; // changed by an IdP admin: the search finds nobody
    const mark = stack.targets.okta!.requestLog.length;
    const accepted = await terminate();
    await waitFor('IdP disabled', async () => (await stack.deps.ledger.getRun(accepted.runId))?.timeline?.some((t) => t.phase === 'IdpDisabled'));
    expect(okta().users.get(user.id)!.status).toBe('DEPROVISIONED');
    // The search ahead found nobody, so the step looked again with the person's link.
    const first = stack.targets.okta!.requestLog.slice(mark).map((r) => `${r.method} ${r.path}`).slice(0, 5);
    expect(first).toEqual(['GET /api/v1/users', 'GET /api/v1/users', `GET /api/v1/users/${user.id}`, `POST /api/v1/users/${user.id}/lifecycle/deactivate`, `DELETE /api/v1/users/${user.id}/sessions`]);
  });
});

describe('ordering and duplicates', () => {
  it('records one run for a redelivered event', async () => {
    const event = hrEvent('change', worker({ employeeId: 'E0100', givenName: 'Margaret', familyName: 'Hamilton', email: 'margaret@acme.example', jobCode: 'ENG-MGR', managerId: 'E0001' }));
    const first = await send(stack, event);
    const again = await send(stack, event);
    expect(again).toMatchObject({ runId: first.runId, duplicate: true });
    await closed(first.runId);
    expect((await stack.deps.ledger.listRunsByEmployee('E0100')).length).toBe(1);
  });

  it('ends an event older than the applied version as STALE without touching targets', async () => {
    const newer = await send(stack, hrEvent('change', MANAGER_CHANGE('Sales'), { occurredAt: '2026-11-05T10:00:00.000Z' }));
    await closed(newer.runId);
    const requestsBefore = stack.targets.okta!.requestLog.length;
    const older = await send(stack, hrEvent('change', MANAGER_CHANGE('Support'), { occurredAt: '2026-11-04T10:00:00.000Z' }));
    const run = await closed(older.runId);
    expect(run.status).toBe('STALE');
    expect(run.statusReason).toContain('before the person');
    expect(stack.targets.okta!.requestLog.length).toBe(requestsBefore);
  });

  it("a leave's end that a later change overtook still ends the leave; the change's record stays", async () => {
    const w = ada({ employeeId: 'E1012', email: 'e1012@acme.example', department: 'Engineering' });
    await seedPeople(stack, [w]);
    const leave = await send(stack, hrEvent('leave_start', w, { effectiveDate: '2026-11-06', occurredAt: '2026-11-06T10:00:00.000Z' }));
    await closed(leave.runId);
    // Recorded on the 8th, delivered before the return recorded on the 7th (an HRIS retry).
    const change = await send(stack, hrEvent('change', { ...w, department: 'Sales', jobCode: 'AE' }, { effectiveDate: '2026-11-08', occurredAt: '2026-11-08T10:00:00.000Z' }));
    await closed(change.runId);
    expect(await stack.deps.ledger.getPerson('E1012')).toMatchObject({ status: 'on_leave', version: '2026-11-08T10:00:00.000Z' });

    const back = await send(stack, hrEvent('leave_end', w, { effectiveDate: '2026-11-07', occurredAt: '2026-11-07T10:00:00.000Z' }));
    const run = await closed(back.runId);
    expect(run.status).toBe('COMPLETED');
    const person = (await stack.deps.ledger.getPerson('E1012'))!;
    expect(person).toMatchObject({ status: 'active', version: '2026-11-08T10:00:00.000Z', statusVersion: '2026-11-07T10:00:00.000Z' });
    expect(person.worker).toMatchObject({ department: 'Sales', jobCode: 'AE' });

    // Another leave recorded before the return, delivered only now, is older than the status
    // it would change: stale.
    const again = await send(stack, hrEvent('leave_start', w, { effectiveDate: '2026-11-05', occurredAt: '2026-11-06T11:00:00.000Z' }));
    expect((await closed(again.runId)).status).toBe('STALE');
    expect((await stack.deps.ledger.getPerson('E1012'))!.status).toBe('active');
  });

  it('supersedes a joiner still waiting for approval when a termination arrives', async () => {
    const w = ada({ employeeId: 'E1009', email: 'e1009@acme.example' });
    const joiner = await send(stack, hrEvent('hire', w, { occurredAt: '2026-11-01T09:00:00.000Z' }));
    await approvalMail(stack, joiner.runId, 'baseline');
    const leaver = await send(stack, hrEvent('termination', { ...w, terminationDate: '2026-11-01' }, { occurredAt: '2026-11-01T12:00:00.000Z' }));
    const superseded = await closed(joiner.runId);
    expect(superseded).toMatchObject({ status: 'SUPERSEDED', supersededBy: leaver.runId });
    expect(stack.workflows.execution(joiner.runId)!.status).toBe('ABORTED');
    await closed(leaver.runId);
    expect(oktaUser('E1009')).toBeUndefined(); // never provisioned
  });

  it('a run superseded while its Plan step reads the targets stays SUPERSEDED', async () => {
    const w = ada({ employeeId: 'E1010', email: 'e1010@acme.example' });
    const registry = stack.deps.connectors;
    let runId = '';
    // The termination lands while Plan is reading Okta (what the start-run consumer writes then).
    stack.deps.connectors = {
      get(target) {
        const c = registry.get(target);
        if (target !== 'okta') return c;
        return Object.assign(Object.create(c) as typeof c, {
          findAccounts: async (q: Parameters<typeof c.findAccounts>[0]) => {
            if (q.employeeId === 'E1010' && runId) {
              await stack.deps.ledger.updateRun(runId, { status: 'SUPERSEDED', supersededBy: 'run-termination' });
              await stack.deps.workflows.stop(runId, 'superseded by run-termination');
              runId = '';
            }
            return c.findAccounts(q);
          },
        });
      },
    };
    const accepted = await send(stack, hrEvent('hire', w));
    runId = accepted.runId;
    const run = await closed(accepted.runId);
    stack.deps.connectors = registry;
    expect(run).toMatchObject({ status: 'SUPERSEDED', supersededBy: 'run-termination' });
    expect(run.plan).toBeUndefined();
    expect(await stack.deps.ledger.listApprovals(accepted.runId)).toEqual([]);
  });
});

const MANAGER_CHANGE = (department: string) =>
  worker({ employeeId: 'E0100', givenName: 'Margaret', familyName: 'Hamilton', email: 'margaret@acme.example', jobCode: 'ENG-MGR', managerId: 'E0001', department });
