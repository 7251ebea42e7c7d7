/**
 * A SaaS app (Slack, over SCIM) is down for the whole run: every request to it answers 503.
 * Leavers are still disabled at the IdP at once, the Slack steps end in exceptions that name the
 * target and the reason, and when Slack is back the nightly reconciliation finishes the job.
 * The local stack runs the real handlers and ASL; Okta and Slack are the stand-ins.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReconciliationReport } from '#app/reconcile';
import type { RunRecord } from '#core/ledger';
import { startLocalStack, type LocalStack } from '#local/stack';
import { worker } from '../helpers/policy.ts';
import { approvalMail, decideByEmail, hrEvent, seedPeople, send, waitFor, waitForStatus } from '../helpers/stack.ts';

let stack: LocalStack;
const people = [
  worker({ employeeId: 'D2001', email: 'd2001@acme.example', startDate: '2026-09-01' }),
  worker({ employeeId: 'D2002', email: 'd2002@acme.example', startDate: '2026-09-01', department: 'Sales', jobCode: 'SLS-1' }),
];
const leavers: RunRecord[] = [];
let report: ReconciliationReport;
let slackRequestsWhileDown = 0;

const okta = () => stack.targets.okta!.state;
const slackUser = (employeeId: string) => stack.targets.scim.slack!.state.listUsers().find((u) => u.externalId === employeeId) as Record<string, any> | undefined;
const closedStatuses = ['COMPLETED', 'EXCEPTION_OPEN', 'FAILED'];

beforeAll(async () => {
  stack = await startLocalStack({ retryIntervalMs: 5 });
  await seedPeople(stack);
  for (const w of people) {
    const { runId } = await send(stack, hrEvent('hire', w, { effectiveDate: '2026-09-01', occurredAt: '2026-09-01T08:00:00.000Z' }));
    await decideByEmail(stack, (await approvalMail(stack, runId, 'baseline')).mail.links[0]!, 'approve');
    expect(await waitForStatus(stack, runId, closedStatuses, 60_000)).toBe('COMPLETED');
  }

  // Slack goes down and stays down for the leavers' whole runs.
  const slack = stack.targets.scim.slack!;
  slack.controls.faults.push({ kind: 'status', status: 503 });
  const before = slack.requestLog.length;
  for (const w of people) {
    const { runId } = await send(
      stack,
      hrEvent('termination', { ...w, terminationDate: '2026-11-03' }, { effectiveDate: '2026-11-03', occurredAt: '2026-11-03T08:00:00.000Z' }),
    );
    // The manager answers whatever the run asks (its data-handling approvals) until it closes.
    const answered = new Set<string>();
    await waitFor(`leaver ${runId} to close`, async () => {
      for (const a of await stack.deps.ledger.listApprovals(runId)) {
        const mail = stack.outbox.mails.find((m) => m.approvalId === a.approvalId);
        if (a.status !== 'PENDING' || !mail || answered.has(a.approvalId)) continue;
        answered.add(a.approvalId);
        await decideByEmail(stack, mail.links[0]!, 'approve');
      }
      return closedStatuses.includes((await stack.deps.ledger.getRun(runId))!.status);
    }, 90_000);
    leavers.push((await stack.deps.ledger.getRun(runId))!);
  }
  slackRequestsWhileDown = slack.requestLog.length - before;

  // Slack is back; the nightly reconciliation runs.
  slack.controls.faults.length = 0;
  await stack.workflows.start('reconcile', 'nightly-after-outage', { scope: 'nightly' });
  await stack.workflows.wait('nightly-after-outage', 60_000);
  const run = (await stack.deps.ledger.getRun('nightly-after-outage'))!;
  const files = await stack.deps.evidence.loadBundle(run.evidence!.prefix);
  report = JSON.parse(Buffer.from(files.get('findings.json')!).toString()) as ReconciliationReport;
}, 150_000);

afterAll(async () => {
  await stack?.close();
});

describe('a SaaS app down for the whole run', () => {
  it('still disables every leaver at the IdP and revokes their sessions', () => {
    for (const w of people) {
      const user = okta().usersByEmployeeNumber(w.employeeId)[0]!;
      expect(user.status).toBe('DEPROVISIONED');
      expect(okta().logs.some((e) => e.eventType === 'user.session.clear' && e.target.some((t) => t.id === user.id))).toBe(true);
    }
  });

  it('ends the Slack steps in open exceptions that name the target and the reason', async () => {
    expect(slackRequestsWhileDown).toBeGreaterThan(0); // it was tried (and retried), not skipped
    for (const run of leavers) {
      // Slack could not be read at Plan: the run goes on, Slack's own step fails after its
      // retries and opens the exception for Slack's owner, naming why.
      expect(run.status).toBe('EXCEPTION_OPEN');
      const exceptions = await stack.deps.ledger.listExceptions({ runId: run.runId });
      const slack = exceptions.filter((e) => e.target === 'slack');
      expect(slack.length, `${run.runId} ${run.status}: ${JSON.stringify(exceptions.map((e) => [e.target, e.kind, e.reason]))}`).toBe(1);
      expect(slack[0]!.reason).toMatch(/slack/);
      expect(slack[0]!.reason).toMatch(/TargetUnavailable|503/);
      expect(slack[0]!.status).toBe('open');
      // Nothing of the outage leaks into the IdP's outcome.
      expect(exceptions.filter((e) => e.target === 'okta')).toEqual([]);
    }
  });

  it('finishes the job when the app is back: the nightly reconciliation disables the leavers there', () => {
    for (const w of people) {
      expect(slackUser(w.employeeId)!.active).toBe(false);
      expect(report.findings.filter((f) => f.employeeId === w.employeeId && f.target === 'slack').map((f) => `${f.kind}:${f.action}`)).toContain('leaver_enabled:disabled');
    }
  });
});
