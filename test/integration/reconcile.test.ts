/**
 * Reconciliation on the local stack: the real reconcile.asl.json on aws-local-stepfunctions, its
 * Tasks on their real handlers, the ledger on dynalite, and the Okta, Graph and SCIM stand-ins as
 * targets. People are provisioned through the real connectors; drift, orphans and conflicts are
 * made the way an admin would make them — directly on the target, outside jml. Assertions are on
 * the targets' own state afterwards, the exceptions and mails, the report in the evidence store
 * and the path the execution took.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { acceptOktaEvents } from '#app/ingest';
import { accountProfile } from '#app/profile';
import { updatePerson } from '#app/people';
import { deltaLinkKey, managedEntitlements, MembershipSketch, reconcilePerson, type ReconciliationReport } from '#app/reconcile';
import { converge } from '#connectors/converge';
import { desiredState } from '#core/desired-state';
import { verifyBundle } from '#core/evidence';
import { verifyStoredBundle } from '#core/evidence-store';
import type { Worker } from '#core/hr-event';
import type { PersonRecord } from '#core/ledger';
import { startLocalStack, type LocalStack, type LocalStackOptions } from '#local/stack';
import { examplePolicyDocument, worker } from '../helpers/policy.ts';
import { waitFor } from '../helpers/stack.ts';

let stack: LocalStack;
afterEach(async () => {
  await stack?.close();
});

const tmp = mkdtempSync(join(tmpdir(), 'jml-reconcile-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The example policy with a change, as a file the local stack loads. */
function policyFile(mutate: (doc: Record<string, any>) => void, base = examplePolicyDocument()): string {
  mutate(base);
  const file = join(tmp, `policy-${randomUUID()}.yaml`);
  writeFileSync(file, stringify(base));
  return file;
}

async function start(options: LocalStackOptions = {}) {
  stack = await startLocalStack({ retryIntervalMs: 5, ...options });
  return stack;
}

const MARGARET = worker({ employeeId: 'E0100', givenName: 'Margaret', familyName: 'Hamilton', email: 'margaret@acme.example', jobCode: 'ENG-MGR', managerId: 'E0001' });
const GRACE = worker({ employeeId: 'E0001', givenName: 'Grace', familyName: 'Hopper', email: 'grace@acme.example', department: 'People', jobCode: 'CEO', managerId: undefined });
const KATHERINE = worker({ employeeId: 'E0200', givenName: 'Katherine', familyName: 'Johnson', email: 'katherine@acme.example', department: 'Finance', jobCode: 'FIN-MGR', managerId: 'E0001' });
const ADA = worker({ employeeId: 'E1001', startDate: '2026-01-05' });

/** A person in the ledger whose accounts jml provisioned: converged on every target, links stored. */
async function provision(w: Worker, over: Partial<PersonRecord> = {}): Promise<PersonRecord> {
  const { ledger } = stack.deps;
  const now = stack.clock.now().toISOString();
  const person: PersonRecord = {
    employeeId: w.employeeId,
    worker: w,
    status: 'active',
    version: '2026-01-01T00:00:00.000Z',
    lastRunId: 'seed',
    links: {},
    grantedAt: {},
    approvedBundles: [],
    rejectedBundles: [],
    updatedAt: now,
    ...over,
  };
  await ledger.putPerson(person, null);
  const desired = desiredState({ worker: w, status: 'active' }, stack.policy, { now });
  const links: Record<string, string> = {};
  for (const t of desired.targets) {
    if (t.account !== 'enabled') continue;
    // The accounts exist on the target whatever jml's mode there (a shadow target has them too).
    const r = await converge(stack.deps.connectors.get(t.target), await accountProfile(ledger, person), { ...t, mode: 'enforce' });
    links[t.target] = r.accountId!;
  }
  return (await updatePerson(ledger, w.employeeId, (p) => ({ ...p, links }), () => stack.clock.now()))!;
}

async function setStatus(employeeId: string, status: PersonRecord['status']) {
  await updatePerson(stack.deps.ledger, employeeId, (p) => ({ ...p, status }), () => stack.clock.now());
}

let nights = 0;
/** Runs the nightly state machine to its end; returns the run, the report and the bundle files. */
async function nightly(input: Record<string, unknown> = { scope: 'nightly' }) {
  const name = `nightly-test-${++nights}`;
  await stack.workflows.start('reconcile', name, input);
  const execution = await stack.workflows.wait(name, 30_000);
  const run = (await stack.deps.ledger.getRun(name))!;
  expect(run.evidence, `${name} closed with a report (${execution.status} ${execution.error?.message ?? ''})`).toBeDefined();
  const files = await stack.deps.evidence.loadBundle(run.evidence!.prefix);
  const report = JSON.parse(Buffer.from(files.get('findings.json')!).toString()) as ReconciliationReport;
  return { name, execution, run, files, report, path: stack.workflows.statesEntered(name) };
}

const okta = () => stack.targets.okta!.state;
const oktaUser = (employeeId: string) => okta().usersByEmployeeNumber(employeeId)[0]!;
const oktaGroups = (userId: string) => okta().groupNamesOf(userId).filter((g) => g !== 'Everyone').sort();
const scim = (app: string) => stack.targets.scim[app]!.state;
const scimUser = (app: string, employeeId: string) => scim(app).listUsers().filter((u) => u.externalId === employeeId) as Array<Record<string, any>>;
const scimGroups = (u: Record<string, any>) => ((u.groups ?? []) as Array<{ display: string }>).map((g) => g.display).sort();
const scimRoles = (u: Record<string, any>) => ((u.roles ?? []) as Array<{ value: string }>).map((r) => r.value).sort();

/** Changes a SCIM group's members directly on the app (an admin in the app's console). */
function scimMembership(app: string, group: string, userId: string, add: boolean) {
  const g = [...scim(app).groups.values()].find((x) => x.data.displayName === group)!;
  const members = ((g.data.members ?? []) as Array<{ value: string }>).filter((m) => m.value !== userId);
  scim(app).update(g, { ...g.data, members: add ? [...members, { value: userId }] : members });
}

function scimAccount(app: string, data: Record<string, unknown>) {
  return scim(app).insert(scim(app).users, { schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], active: true, ...data });
}

const validateAsl = createRequire(import.meta.url)('asl-validator') as (definition: unknown, options?: { checkArn?: boolean; checkPaths?: boolean }) => {
  isValid: boolean;
  errors: unknown[];
};

const findingsOf = (report: ReconciliationReport, kind: string) => report.findings.filter((f) => f.kind === kind);
const mailsTo = (to: string) => stack.outbox.mails.filter((m) => m.to.includes(to));

describe('the state machine definition', () => {
  const definition = JSON.parse(readFileSync(new URL('../../statemachines/reconcile.asl.json', import.meta.url), 'utf8'));
  const all = (states: Record<string, any>): Array<[string, any]> =>
    Object.entries(states).flatMap(([name, s]) => [[name, s] as [string, any], ...(s.ItemProcessor ? all(s.ItemProcessor.States) : [])]);

  it('is valid ASL in the feature set aws-local-stepfunctions runs: JSONPath, inline Map only', () => {
    const substituted = JSON.parse(JSON.stringify(definition).replace(/\$\{([A-Za-z]+)FunctionArn\}/g, 'arn:aws:lambda:eu-west-1:123456789012:function:jml-$1'));
    const result = validateAsl(substituted);
    expect(result.errors).toEqual([]);
    expect(result.isValid).toBe(true);
    expect(definition.QueryLanguage ?? 'JSONPath').toBe('JSONPath');
    for (const [, s] of all(definition.States)) if (s.Type === 'Map') expect(s.ItemProcessor.ProcessorConfig.Mode).toBe('INLINE');
  });

  it('bounds every Task, retries throttling and outages with full jitter, and catches into a recorded failure', () => {
    const tasks = all(definition.States).filter(([, s]) => s.Type === 'Task');
    expect(tasks.map(([n]) => n).sort()).toEqual([
      'Finish', 'ReconcileGaps', 'ReconcileMembers', 'ReconcilePage', 'ReconcilePersons', 'ReconciliationFailed', 'StartReconciliation',
    ]);
    for (const [name, s] of tasks) {
      expect(s.TimeoutSeconds, name).toBeGreaterThan(0);
      const targetRetry = s.Retry.find((r: any) => r.ErrorEquals.includes('TargetThrottled') && r.ErrorEquals.includes('TargetUnavailable'));
      expect(targetRetry?.JitterStrategy, name).toBe('FULL');
      expect(s.Catch?.[0]?.ErrorEquals, name).toEqual(['States.ALL']);
    }
  });
});

describe('nightly reconciliation on Okta + SCIM apps', () => {
  it('an org that matches the policy reconciles clean: every account linked and correct, one call per Okta page and member page, a verifiable report', async () => {
    await start();
    for (const w of [GRACE, MARGARET, KATHERINE]) await provision(w);
    const oktaCallsBefore = stack.targets.okta!.requestLog.length;
    const mailsBefore = stack.outbox.mails.length;

    const { run, report, files, path, execution } = await nightly();

    expect(execution.status).toBe('SUCCEEDED');
    expect(run.status).toBe('COMPLETED');
    // Okta (13 managed groups, 10 member pages per invocation) goes on to its member pages; the SCIM apps' pages carry entitlements.
    expect(path).toEqual([
      'StartReconciliation', 'Accounts',
      'ReconcilePage', 'ReconcilePage', 'ReconcilePage', 'MorePages?', 'TargetDone', 'MorePages?', 'TargetDone', 'MorePages?',
      'ReconcileMembers', 'MoreMembers?', 'ReconcileMembers', 'MoreMembers?', 'TargetDone',
      'ReconcilePersons', 'MorePersons?', 'ReconcileGaps', 'MoreGaps?', 'Finish',
    ]);
    expect(report.findings).toEqual([]);
    expect(report.kpis).toEqual({ driftRatePercent: 0, orphanAccounts: 0, leaversStillEnabled: 0, revocationCompletenessPercent: 100 });
    const byTarget = Object.fromEntries(report.targets.map((t) => [t.target, t.counters]));
    expect(byTarget.okta).toMatchObject({ accounts: 3, managed: 3, correct: 3, drift: 0 });
    expect(byTarget.slack).toMatchObject({ accounts: 3, managed: 3, correct: 3 });
    expect(byTarget.netsuite).toMatchObject({ accounts: 1, managed: 1, correct: 1 });
    expect(report.targets.find((t) => t.target === 'okta')).toMatchObject({ entitlementsCompared: true, entitlementsVia: 'members' });
    expect(report.targets.find((t) => t.target === 'slack')).toMatchObject({ entitlementsCompared: true, entitlementsVia: 'pages' });
    // A clean Okta costs the list page and one page per managed group (and the name → id lookups
    // the connector has not cached yet): no per-user reads, no writes.
    const groups = managedEntitlements(stack.policy, 'okta');
    expect(groups).toHaveLength(13);
    const oktaCalls = stack.targets.okta!.requestLog.slice(oktaCallsBefore).map((r) => `${r.method} ${r.path}`);
    expect(oktaCalls.filter((c) => c !== 'GET /api/v1/groups')).toEqual([
      'GET /api/v1/users',
      ...groups.map((g) => `GET /api/v1/groups/${okta().groupByName(g.value)!.id}/users`),
    ]);
    expect(byTarget.okta).toMatchObject({ memberPages: 13, memberships: 3 + 4 + 3 /* Grace, Margaret, Katherine */, entitlementGaps: 0, retracted: 0 });
    expect(stack.outbox.mails.length).toBe(mailsBefore);
    // The report is evidence: standard files plus findings.json, all in the manifest, in a chain.
    expect([...files.keys()].sort()).toContain('findings.json');
    expect(verifyBundle(files).ok).toBe(true);
    expect((await verifyStoredBundle(stack.deps.evidence, run.runId)).ok).toBe(true);
    const metric = (name: string, dims: Record<string, string> = {}) =>
      stack.metrics.points.filter((p) => p.name === name && JSON.stringify(p.dimensions) === JSON.stringify(dims)).at(-1)?.value;
    expect(metric('DriftRate')).toBe(0);
    expect(metric('OrphanAccounts')).toBe(0);
    expect(metric('RevocationCompleteness', { Workflow: 'reconcile' })).toBe(100);
  });

  it('re-converges drift on an onDrift: converge target and raises it as one exception on an onDrift: exception target, night after night', async () => {
    await start();
    await provision(GRACE);
    const margaret = await provision(MARGARET);
    const katherine = await provision(KATHERINE);
    // Outside jml: Margaret loses "eng" and gains "finance" in Slack; Katherine becomes a NetSuite Administrator.
    scimMembership('slack', 'eng', margaret.links.slack!, false);
    scimMembership('slack', 'finance', margaret.links.slack!, true);
    const ns = scim('netsuite').users.get(katherine.links.netsuite!)!;
    scim('netsuite').update(ns, { ...ns.data, roles: [...((ns.data.roles as unknown[]) ?? []), { value: 'Administrator' }] });

    const first = await nightly();

    expect(first.run.status).toBe('EXCEPTION_OPEN');
    // The workflow state carried cursors and counters, not the accounts or their findings.
    const state = JSON.stringify(first.execution.output);
    expect(state).not.toContain(margaret.links.slack!);
    expect(state).not.toContain('Administrator');
    expect(state.length).toBeLessThan(8_000);
    expect(scimGroups(scimUser('slack', 'E0100')[0]!)).toEqual(['all-hands', 'eng']);
    const slackDrift = findingsOf(first.report, 'drift').find((f) => f.target === 'slack')!;
    expect(slackDrift).toMatchObject({ action: 'converged', employeeId: 'E0100', evidence: { missing: [{ type: 'group', value: 'eng' }], unexpected: [{ type: 'group', value: 'finance' }] } });
    expect(slackDrift.changes!.filter((c) => c.changed).map((c) => `${c.op}:${c.entitlement!.value}`)).toEqual(['removeEntitlement:finance', 'addEntitlement:eng']);
    // NetSuite asks its owner instead, and the role stays until they decide.
    expect(scimRoles(scimUser('netsuite', 'E0200')[0]!)).toEqual(['Administrator', 'Employee Center']);
    const exceptions = await stack.deps.ledger.listExceptions({ status: 'open' });
    const nsException = exceptions.find((e) => e.target === 'netsuite')!;
    expect(nsException).toMatchObject({ kind: 'drift', owner: 'finance-systems@acme.example', employeeId: 'E0200' });
    expect(nsException.reason).toContain('holds role "Administrator" outside the policy');
    expect(mailsTo('finance-systems@acme.example')).toHaveLength(1);
    expect(first.report.kpis.driftRatePercent).toBeCloseTo((100 * 2) / 7, 1);

    // The next night: Slack is clean, NetSuite still drifts — the same exception, no second mail.
    const second = await nightly();
    expect(findingsOf(second.report, 'drift').map((f) => `${f.target}:${f.action}`)).toEqual(['netsuite:exception']);
    expect(findingsOf(second.report, 'drift')[0]!.exceptionId).toBe(nsException.exceptionId);
    expect(await stack.deps.ledger.listExceptions({ status: 'open' })).toHaveLength(1);
    expect(mailsTo('finance-systems@acme.example')).toHaveLength(1);
  });

  it('reads an Okta account in full only when its status is wrong, then converges it', async () => {
    await start();
    await provision(GRACE);
    const margaret = await provision(MARGARET);
    const user = okta().findUser(margaret.links.okta!)!;
    okta().setStatus(user, 'SUSPENDED');
    okta().addMember(okta().groupByName('Sales')!.id, user.id);

    const { report } = await nightly();

    const f = findingsOf(report, 'drift').find((x) => x.target === 'okta')!;
    expect(f).toMatchObject({ action: 'converged', evidence: { accountStatus: 'suspended', entitlementsRead: true, unexpected: [{ type: 'group', value: 'Sales' }] } });
    expect(oktaUser('E0100').status).toBe('ACTIVE');
    expect(oktaGroups(user.id)).toEqual(['All Staff', 'Employees', 'Engineering', 'GitHub Users']);
  });

  it('disables a leaver still enabled at once, revokes sessions, counts a revocation-completeness failure and tells the owners', async () => {
    await start();
    await provision(GRACE);
    await provision(MARGARET);
    const ada = await provision(ADA);
    await setStatus('E1001', 'terminated'); // HR says gone; the accounts are still open

    const { report, run } = await nightly();

    expect(oktaUser('E1001').status).toBe('DEPROVISIONED');
    expect(okta().sessionsRevoked.some((s) => s.userId === ada.links.okta)).toBe(true);
    expect(oktaGroups(ada.links.okta!)).toEqual([]); // okta: onDrift converge takes the rest of the access too
    expect(scimUser('slack', 'E1001')[0]!.active).toBe(false);
    const leavers = findingsOf(report, 'leaver_enabled');
    expect(leavers.map((f) => `${f.target}:${f.action}`).sort()).toEqual(['okta:disabled', 'slack:disabled']);
    expect(report.kpis.leaversStillEnabled).toBe(2);
    expect(report.kpis.revocationCompletenessPercent).toBe(0);
    expect(run.kpis).toMatchObject({ leaversStillEnabled: 2, revocationEnumerated: 2 });
    const exceptions = await stack.deps.ledger.listExceptions({ status: 'open' });
    expect(exceptions.filter((e) => e.kind === 'leaver_enabled').map((e) => e.owner).sort()).toEqual(['collab-owners@acme.example', 'iam@acme.example']);
    const execLog = JSON.parse(Buffer.from((await stack.deps.evidence.getFile(run.evidence!.prefix, 'execution-log.json'))!).toString()) as {
      steps: Array<{ target: string; changes: Array<{ op: string; changed: boolean; requestIds: string[] }> }>;
    };
    const oktaFix = execLog.steps.find((s) => s.target === 'okta')!.changes;
    expect(oktaFix.slice(0, 2).map((c) => c.op)).toEqual(['disable', 'revokeSessions']); // access cut first, then the groups
    expect(oktaFix.every((c) => c.changed && c.requestIds.length > 0)).toBe(true);
    const metric = stack.metrics.points.filter((p) => p.name === 'LeaversStillEnabled' && !p.dimensions?.Target).at(-1);
    expect(metric?.value).toBe(2);

    // Fixed for good: the next night finds the leaver's accounts disabled.
    const again = await nightly();
    expect(findingsOf(again.report, 'leaver_enabled')).toEqual([]);
    expect(again.report.kpis.revocationCompletenessPercent).toBe(100);
  });

  it('opens one exception per orphan account for the target owner and leaves the account alone', async () => {
    await start();
    await provision(GRACE);
    okta().seed({ users: [{ profile: { login: 'svc-backup@acme.example' } }] });
    const ghost = scimAccount('slack', { userName: 'x999@acme.example', externalId: 'X999' });

    const first = await nightly();

    const orphans = findingsOf(first.report, 'orphan');
    expect(orphans.map((f) => `${f.target}:${f.userName}:${f.action}`).sort()).toEqual([
      'okta:svc-backup@acme.example:exception',
      'slack:x999@acme.example:exception',
    ]);
    expect(orphans.find((f) => f.target === 'slack')!.summary).toContain('correlation key "X999", which matches no person');
    expect(orphans.find((f) => f.target === 'okta')!.summary).toContain('no correlation key');
    const exceptions = await stack.deps.ledger.listExceptions({ status: 'open' });
    expect(exceptions.map((e) => `${e.kind}:${e.owner}`).sort()).toEqual(['orphan:collab-owners@acme.example', 'orphan:iam@acme.example']);
    expect(scim('slack').users.get(ghost.id)!.data.active).toBe(true);
    expect(first.report.kpis.orphanAccounts).toBe(2);

    await nightly();
    expect(await stack.deps.ledger.listExceptions({})).toHaveLength(2);
    expect(mailsTo('collab-owners@acme.example')).toHaveLength(1);
  });

  it('reports two accounts claiming one person as a conflict and touches neither', async () => {
    await start();
    await provision(GRACE);
    const margaret = await provision(MARGARET);
    const second = scimAccount('slack', { userName: 'margaret.hamilton@acme.example', externalId: 'E0100' });

    const { report } = await nightly();

    const conflicts = findingsOf(report, 'conflict');
    expect(conflicts).toHaveLength(1);
    expect(conflicts[0]!.accountIds).toEqual([margaret.links.slack!, second.id].sort());
    const [exception] = (await stack.deps.ledger.listExceptions({ status: 'open' })).filter((e) => e.kind === 'conflict');
    expect(exception).toMatchObject({ target: 'slack', owner: 'collab-owners@acme.example', employeeId: 'E0100' });
    expect(scimUser('slack', 'E0100').map((u) => u.active)).toEqual([true, true]);
  });

  it('creates a missing app account, but leaves a person whose own run is in flight to that run', async () => {
    await start();
    await provision(GRACE);
    const margaret = await provision(MARGARET);
    await stack.targets.scim.slack!.state.deleteUser(margaret.links.slack!); // an admin deleted it
    // Katherine's joiner run is waiting for her manager: reconciliation must not race it.
    await stack.deps.ledger.createRun({
      runId: 'run-katherine-joiner', idempotencyKey: 'k', employeeId: 'E0200', eventId: 'e', eventType: 'hire', lifecycle: 'joiner',
      status: 'AWAITING_APPROVAL', eventHash: 'h', rawEvent: '{}', event: {}, effectiveAt: '2026-11-01T00:00:00.000Z',
      occurredAt: '2026-11-01T00:00:00.000Z', mappingVersion: stack.policy.mappingVersion, createdAt: '2026-11-01T00:00:00.000Z', updatedAt: '2026-11-01T00:00:00.000Z',
    });
    await stack.deps.ledger.putPerson({ employeeId: 'E0200', worker: KATHERINE, status: 'active', version: '2026-11-01T00:00:00.000Z', lastRunId: 'run-katherine-joiner', links: {}, grantedAt: {}, approvedBundles: [], rejectedBundles: [], updatedAt: stack.clock.now().toISOString() }, null);

    const { report } = await nightly();

    const missing = findingsOf(report, 'missing_account');
    const margaretSlack = missing.find((f) => f.employeeId === 'E0100')!;
    expect(margaretSlack).toMatchObject({ target: 'slack', action: 'converged' });
    const recreated = scimUser('slack', 'E0100');
    expect(recreated).toHaveLength(1);
    expect(scimGroups(recreated[0]!)).toEqual(['all-hands', 'eng']);
    expect((await stack.deps.ledger.getPerson('E0100'))!.links.slack).toBe(recreated[0]!.id);
    const katherine = missing.filter((f) => f.employeeId === 'E0200');
    expect(katherine.map((f) => `${f.target}:${f.action}`).sort()).toEqual(['netsuite:deferred', 'okta:deferred', 'slack:deferred']);
    expect(katherine[0]!.evidence.runInFlight).toBe('run-katherine-joiner');
    expect(oktaUser('E0200')).toBeUndefined();
  });

  it('reports a target it cannot read as incomplete, tells its owner, and still reconciles the others', async () => {
    await start();
    await provision(GRACE);
    const margaret = await provision(MARGARET);
    scimMembership('slack', 'finance', margaret.links.slack!, true);
    stack.targets.scim.netsuite!.controls.faults.push({ kind: 'status', status: 503, method: 'GET', path: /\/Users$/ });

    const { run, report, path } = await nightly();

    expect(path).toContain('TargetIncomplete');
    expect(run.status).toBe('EXCEPTION_OPEN');
    const netsuite = report.targets.find((t) => t.target === 'netsuite')!;
    expect(netsuite.complete).toBe(false);
    expect(netsuite.error).toContain('TargetUnavailable');
    const [exception] = (await stack.deps.ledger.listExceptions({ status: 'open' })).filter((e) => e.target === 'netsuite');
    expect(exception).toMatchObject({ kind: 'step_failed', owner: 'finance-systems@acme.example' });
    // No "missing account" guesses for a target that was not read.
    expect(report.findings.filter((f) => f.target === 'netsuite')).toEqual([]);
    expect(scimGroups(scimUser('slack', 'E0100')[0]!)).toEqual(['all-hands', 'eng']);
  });
});

describe('policy variants', () => {
  it('a shadow-mode target only reports: no writes, no exceptions', async () => {
    await start({ policyFile: policyFile((doc) => (doc.targets.find((t: any) => t.name === 'slack').mode = 'shadow')) });
    await provision(GRACE);
    const margaret = await provision(MARGARET);
    scimMembership('slack', 'finance', margaret.links.slack!, true);
    scimAccount('slack', { userName: 'x999@acme.example', externalId: 'X999' });
    const writesBefore = stack.targets.scim.slack!.requestLog.filter((r) => r.method !== 'GET').length;

    const { report } = await nightly();

    expect(report.findings.filter((f) => f.target === 'slack').map((f) => `${f.kind}:${f.action}`).sort()).toEqual(['drift:reported', 'orphan:reported']);
    expect(stack.targets.scim.slack!.requestLog.filter((r) => r.method !== 'GET').length).toBe(writesBefore);
    expect(scimGroups(scimUser('slack', 'E0100')[0]!)).toEqual(['all-hands', 'eng', 'finance']);
    expect((await stack.deps.ledger.listExceptions({})).filter((e) => e.target === 'slack')).toEqual([]);
  });

  it('stops acting past the bulk-guard count and says so in one exception', async () => {
    await start({ policyFile: policyFile((doc) => (doc.bulkGuard = { maxPercent: 5, maxCount: 2, windowMinutes: 60 })) });
    await provision(GRACE);
    okta().seed({ users: ['a', 'b', 'c', 'd'].map((x) => ({ profile: { login: `svc-${x}@acme.example` } })) });

    const { report } = await nightly();

    const orphans = findingsOf(report, 'orphan');
    expect(orphans.map((f) => f.action).sort()).toEqual(['exception', 'exception', 'reported', 'reported']);
    const exceptions = await stack.deps.ledger.listExceptions({ status: 'open' });
    expect(exceptions.filter((e) => e.kind === 'orphan')).toHaveLength(2);
    const limit = exceptions.find((e) => e.reason.includes('over the automatic-action limit'))!;
    expect(limit).toMatchObject({ target: 'okta', owner: 'iam@acme.example' });
    expect(report.targets.find((t) => t.target === 'okta')!.counters.limited).toBe(2);
  });
});

describe('Okta entitlements at night (member pages and membership sketches)', () => {
  const oktaWrites = () => stack.targets.okta!.requestLog.filter((r) => r.method !== 'GET');
  const memberPageCalls = (from: number) => stack.targets.okta!.requestLog.slice(from).filter((r) => /^\/api\/v1\/(groups|apps)\/[^/]+\/users$/.test(r.path)).length;
  const group = (name: string) => okta().groupByName(name)!.id;

  it('removes a privileged group added outside jml to a healthy account, and counts the member pages it read', async () => {
    await start();
    await provision(GRACE);
    const margaret = await provision(MARGARET);
    okta().addMember(group('HRIS Admins'), margaret.links.okta!); // an admin, in the Okta console
    const callsBefore = stack.targets.okta!.requestLog.length;

    const { report, run } = await nightly();

    const [f, ...rest] = findingsOf(report, 'drift');
    expect(rest).toEqual([]);
    expect(f).toMatchObject({
      target: 'okta',
      employeeId: 'E0100',
      accountId: margaret.links.okta,
      action: 'converged',
      evidence: { accountStatus: 'enabled', entitlementsRead: true, unexpected: [{ type: 'group', value: 'HRIS Admins' }] },
    });
    expect(f!.changes!.filter((c) => c.changed).map((c) => `${c.op}:${c.entitlement?.value}`)).toEqual(['removeEntitlement:HRIS Admins']);
    expect(oktaGroups(margaret.links.okta!)).toEqual(['All Staff', 'Employees', 'Engineering', 'GitHub Users']);
    const t = report.targets.find((x) => x.target === 'okta')!;
    expect(t).toMatchObject({ entitlementsCompared: true, entitlementsVia: 'members' });
    // One member page per managed group (each has fewer than 1 000 members), counted in the report and on the timeline.
    expect(t.counters).toMatchObject({ memberPages: 13, memberships: 3 + 5, drift: 1, correct: 1, retracted: 1, fixed: 1 });
    expect(memberPageCalls(callsBefore)).toBe(13);
    expect(run.timeline!.find((e) => e.phase === 'Accounts:okta')!.note).toContain('8 membership(s) in 13 member page(s)');
    expect(report.kpis.driftRatePercent).toBeCloseTo((100 * 1) / 4, 1);

    // Fixed for good: the next night finds nothing.
    const again = await nightly();
    expect(again.report.findings).toEqual([]);
  });

  it('raises a group added outside jml as one exception naming the target and the group on an onDrift: exception IdP', async () => {
    await start({ policyFile: policyFile((doc) => (doc.targets.find((t: any) => t.name === 'okta').onDrift = 'exception')) });
    await provision(GRACE);
    const margaret = await provision(MARGARET);
    okta().addMember(group('Production Access'), margaret.links.okta!);
    const writesBefore = oktaWrites().length;

    const first = await nightly();

    expect(findingsOf(first.report, 'drift').map((f) => `${f.target}:${f.employeeId}:${f.action}`)).toEqual(['okta:E0100:exception']);
    const [exception] = (await stack.deps.ledger.listExceptions({ status: 'open' })).filter((e) => e.target === 'okta');
    expect(exception).toMatchObject({ kind: 'drift', owner: 'iam@acme.example', employeeId: 'E0100' });
    expect(exception!.reason).toContain('okta: account');
    expect(exception!.reason).toContain('holds group "Production Access" outside the policy');
    expect(oktaWrites().length).toBe(writesBefore); // the owner decides
    expect(oktaGroups(margaret.links.okta!)).toContain('Production Access');
    expect(mailsTo('iam@acme.example')).toHaveLength(1);

    const second = await nightly();
    expect(findingsOf(second.report, 'drift').map((f) => f.exceptionId)).toEqual([exception!.exceptionId]);
    expect(mailsTo('iam@acme.example')).toHaveLength(1);
  });

  it('re-adds a required group removed outside jml: the sketches name the person, who is read in full and converged', async () => {
    await start();
    await provision(GRACE);
    const margaret = await provision(MARGARET);
    await provision(KATHERINE);
    okta().removeMember(group('Engineering'), margaret.links.okta!);

    const { report, path } = await nightly();

    expect(path.filter((s) => s === 'ReconcileGaps')).toHaveLength(1);
    const [f, ...rest] = findingsOf(report, 'drift');
    expect(rest).toEqual([]);
    expect(f).toMatchObject({ target: 'okta', employeeId: 'E0100', action: 'converged', evidence: { entitlementsRead: true, missing: [{ type: 'group', value: 'Engineering' }] } });
    expect(oktaGroups(margaret.links.okta!)).toEqual(['All Staff', 'Employees', 'Engineering', 'GitHub Users']);
    expect(report.targets.find((t) => t.target === 'okta')!.counters).toMatchObject({ entitlementGaps: 1, drift: 1, correct: 2, retracted: 1 });
  });

  it('finds an app assignment made outside jml through the app\'s users and unassigns it', async () => {
    await start({
      policyFile: policyFile((doc) => {
        doc.bundles.sales.targets.okta.push({ app: 'Salesforce' });
      }),
    });
    await provision(GRACE);
    const margaret = await provision(MARGARET);
    const salesforce = okta().appByLabel('Salesforce')!;
    okta().assign(salesforce.id, margaret.links.okta!);
    const callsBefore = stack.targets.okta!.requestLog.length;

    const { report } = await nightly();

    expect(findingsOf(report, 'drift')).toMatchObject([
      { target: 'okta', employeeId: 'E0100', action: 'converged', evidence: { unexpected: [{ type: 'app', value: 'Salesforce' }] } },
    ]);
    expect(okta().appAssignments.get(salesforce.id)!.has(margaret.links.okta!)).toBe(false);
    expect(stack.targets.okta!.requestLog.slice(callsBefore).filter((r) => r.path === `/api/v1/apps/${salesforce.id}/users`)).toHaveLength(1);
    expect(report.targets.find((t) => t.target === 'okta')!.counters.memberPages).toBe(14);
  });

  it('on a shadow-mode IdP only reports extra and missing groups: no writes, no exceptions', async () => {
    await start({ policyFile: policyFile((doc) => (doc.targets.find((t: any) => t.name === 'okta').mode = 'shadow')) });
    await provision(GRACE);
    const margaret = await provision(MARGARET);
    const katherine = await provision(KATHERINE);
    okta().addMember(group('HRIS Admins'), margaret.links.okta!);
    okta().removeMember(group('Finance'), katherine.links.okta!);
    const writesBefore = oktaWrites().length;

    const { report } = await nightly();

    const okt = report.findings.filter((f) => f.target === 'okta');
    expect(okt.map((f) => `${f.kind}:${f.employeeId}:${f.action}`).sort()).toEqual(['drift:E0100:reported', 'drift:E0200:reported']);
    expect(okt.find((f) => f.employeeId === 'E0200')!.evidence.missing).toEqual([{ type: 'group', value: 'Finance' }]);
    expect(oktaWrites().length).toBe(writesBefore);
    expect((await stack.deps.ledger.listExceptions({})).filter((e) => e.target === 'okta')).toEqual([]);
    expect(oktaGroups(margaret.links.okta!)).toContain('HRIS Admins');
  });

  it('raises one exception with the count when a group the policy grants no longer exists on Okta', async () => {
    await start();
    await provision(GRACE);
    await provision(MARGARET);
    const eng = group('Engineering');
    okta().groups.delete(eng); // deleted in the Okta console (the connector still has its id cached)
    okta().memberships.delete(eng);

    const { report } = await nightly();

    const okt = report.findings.filter((f) => f.target === 'okta');
    expect(okt).toHaveLength(1);
    expect(okt[0]).toMatchObject({ kind: 'drift', action: 'exception', evidence: { missing: [{ type: 'group', value: 'Engineering' }] } });
    expect(okt[0]!.summary).toContain('grants group "Engineering" to 1 person(s), but it cannot be found on okta');
    const [exception] = (await stack.deps.ledger.listExceptions({ status: 'open' })).filter((e) => e.target === 'okta');
    expect(exception).toMatchObject({ kind: 'drift', owner: 'iam@acme.example', exceptionId: okt[0]!.exceptionId });
    expect(report.targets.find((t) => t.target === 'okta')).toMatchObject({ entitlementsCompared: true, counters: { entitlementGaps: 1 } }); // Margaret's, counted, not named
    // The next night: the same exception, no second mail.
    const again = await nightly();
    expect(again.report.findings.filter((f) => f.target === 'okta').map((f) => f.exceptionId)).toEqual([exception!.exceptionId]);
    expect(mailsTo('iam@acme.example')).toHaveLength(1);
  });

  it('reports an Okta whose members cannot be listed as entitlements not compared, tells its owner, and keeps the account findings', async () => {
    await start();
    await provision(GRACE);
    const margaret = await provision(MARGARET);
    okta().addMember(group('HRIS Admins'), margaret.links.okta!);
    stack.targets.okta!.controls.faults.push({ kind: 'status', status: 503, method: 'GET', path: /\/groups\/[^/]+\/users$/ });

    const { report, run, path } = await nightly();

    expect(path).toContain('MembersIncomplete');
    expect(run.status).toBe('EXCEPTION_OPEN');
    const t = report.targets.find((x) => x.target === 'okta')!;
    expect(t).toMatchObject({ complete: true, entitlementsCompared: false });
    expect(t.entitlementsError).toContain('TargetUnavailable');
    const [exception] = (await stack.deps.ledger.listExceptions({ status: 'open' })).filter((e) => e.target === 'okta');
    expect(exception).toMatchObject({ kind: 'step_failed', owner: 'iam@acme.example' });
    expect(exception!.reason).toContain('entitlement drift was not checked');
    // No missing-entitlement guesses without the members.
    expect(report.findings.filter((f) => f.target === 'okta')).toEqual([]);
  });
});

describe('membership sketches', () => {
  it('name exactly who differs between two sets of employee ids, and say when the difference is too large to name', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.stringMatching(/^[A-Z][0-9]{1,6}$/), { minLength: 0, maxLength: 400 }),
        fc.integer({ min: 0, max: 40 }),
        fc.integer({ min: 0, max: 3 }),
        (ids, missing, strangers) => {
          const wanted = new MembershipSketch();
          const held = new MembershipSketch();
          const gone = ids.slice(0, Math.min(missing, ids.length));
          for (const id of ids) wanted.add(id);
          for (const id of ids.slice(gone.length)) held.add(id);
          const extra = Array.from({ length: strangers }, (_, i) => `x-${i}`);
          for (const id of extra) held.add(id);
          const diff = MembershipSketch.from(JSON.parse(JSON.stringify(wanted))).merge(MembershipSketch.from(JSON.parse(JSON.stringify(held))), -1);
          expect(diff.count).toBe(gone.length - extra.length);
          const decoded = diff.decode();
          // It never names anyone who does not differ; complete, it names everyone who does.
          for (const id of decoded.added) expect(gone).toContain(id);
          for (const id of decoded.removed) expect(extra).toContain(id);
          if (decoded.complete) {
            expect(decoded.added).toEqual([...gone].sort());
            expect(decoded.removed).toEqual([...extra].sort());
          }
        },
      ),
      { numRuns: 100 },
    );
    // A hundred missing out of 20 000: named, every one.
    const wanted = new MembershipSketch();
    const held = new MembershipSketch();
    for (let i = 0; i < 20_000; i++) {
      wanted.add(`P${i}`);
      if (i % 200 !== 7) held.add(`P${i}`);
    }
    const named = wanted.merge(held, -1).decode();
    expect(named.complete).toBe(true);
    expect(named.added).toHaveLength(100);
    expect(named.added).toContain('P19807');
    const big = new MembershipSketch();
    for (let i = 0; i < 500; i++) big.add(`E${i}`);
    expect(big.decode().complete).toBe(false);
    expect(big.count).toBe(500);
    expect(JSON.stringify(big).length).toBeLessThan(8_000);
  });
});

describe('Entra: Graph /users/delta', () => {
  it('runs a full round, then only the changes, then a full resync once the stored delta link has expired', async () => {
    await start({ idp: 'entra' });
    await provision(GRACE);
    await provision(MARGARET);
    const graph = stack.targets.graph!;
    const entra = stack.policy.idp.name;

    const first = await nightly({ targets: [entra] });
    const t1 = first.report.targets[0]!;
    expect(t1).toMatchObject({ source: 'delta', round: 'full', resynced: false, complete: true });
    expect(t1.counters).toMatchObject({ accounts: 2, managed: 2, correct: 2 });
    expect(await stack.deps.ledger.getMeta(deltaLinkKey(entra))).toMatchObject({ reconciliationId: first.name });

    // An admin disables Margaret's account in Entra: the next round sees that one change only.
    const margaretId = (await stack.deps.ledger.getPerson('E0100'))!.links[entra]!;
    graph.state.patchUser(margaretId, { accountEnabled: false }, { appId: 'admin-portal', correlationId: randomUUID() });
    const second = await nightly({ targets: [entra] });
    const t2 = second.report.targets[0]!;
    expect(t2).toMatchObject({ round: 'incremental', resynced: false });
    expect(t2.counters.accounts).toBe(1);
    expect(findingsOf(second.report, 'drift')).toMatchObject([{ accountId: margaretId, action: 'converged', evidence: { accountStatus: 'disabled' } }]);
    expect(graph.state.users.get(margaretId)!.accountEnabled).toBe(true);

    // Eight days later the stored link has expired (Graph keeps them 7): a full resync, recorded.
    graph.advanceClock(8 * 24 * 3600 * 1000);
    const third = await nightly({ targets: [entra] });
    const t3 = third.report.targets[0]!;
    expect(t3).toMatchObject({ round: 'full', resynced: true, complete: true });
    expect(t3.counters.accounts).toBe(2);
    expect(third.run.timeline!.some((e) => e.note?.includes('delta link expired: full resync'))).toBe(true);
    expect(((await stack.deps.ledger.getMeta<{ reconciliationId: string }>(deltaLinkKey(entra)))!).reconciliationId).toBe(third.name);
  });
});

describe('drift signals and reconcilePerson', () => {
  it('an Okta re-activation of a leaver opens an exception naming the actor and is undone within seconds', async () => {
    await start();
    await provision(GRACE);
    const ada = await provision(ADA);
    await setStatus('E1001', 'terminated');
    const user = okta().findUser(ada.links.okta!)!;
    okta().setStatus(user, 'DEPROVISIONED');
    okta().setStatus(user, 'ACTIVE'); // an admin re-activates the leaver
    const uuid = randomUUID();
    const started = Date.now();

    await acceptOktaEvents(stack.deps, {
      eventType: 'com.okta.event_hook',
      data: {
        events: [
          {
            uuid,
            eventType: 'user.lifecycle.reactivate',
            published: stack.clock.now().toISOString(),
            actor: { id: '00uadmin1', type: 'User', alternateId: 'it.admin@acme.example', displayName: 'IT Admin' },
            target: [{ id: user.id, type: 'User', alternateId: 'ada.lovelace@acme.example', displayName: 'Ada Lovelace' }],
            outcome: { result: 'SUCCESS' },
          },
        ],
      },
    });
    await waitFor('the leaver disabled again', () => oktaUser('E1001').status === 'DEPROVISIONED', 10_000);
    expect(Date.now() - started).toBeLessThan(5_000);
    await stack.settle();

    const exceptions = await stack.deps.ledger.listExceptions({ status: 'open' });
    const signal = exceptions.find((e) => e.kind === 'out_of_band_change')!;
    expect(signal.reason).toContain('by it.admin@acme.example');
    expect(signal.evidence).toMatchObject({ actor: 'it.admin@acme.example', reconcileRunId: `reconcile-drift-${uuid}` });
    // One exception for one incident: the fix is recorded in the reconcile run, not mailed twice.
    expect(exceptions.filter((e) => e.kind === 'leaver_enabled')).toEqual([]);
    expect(okta().sessionsRevoked.some((s) => s.userId === user.id)).toBe(true);
    const run = (await stack.deps.ledger.getRun(`reconcile-drift-${uuid}`))!;
    expect(run).toMatchObject({ employeeId: 'E1001', lifecycle: 'reconcile', eventType: 'drift', status: 'COMPLETED' });
    const rec = run.reconciliation as { findings: Array<{ target: string; kind: string; action: string }> };
    expect(rec.findings.map((f) => `${f.target}:${f.kind}:${f.action}`).sort()).toEqual(['okta:leaver_enabled:disabled', 'slack:leaver_enabled:disabled']);
    expect(JSON.parse(run.rawEvent)).toMatchObject({ actor: 'it.admin@acme.example', trigger: 'drift' });
    // The reconcile's evidence is in the person's own chain.
    expect((await verifyStoredBundle(stack.deps.evidence, run.runId)).ok).toBe(true);
    expect((await stack.deps.evidence.personBundles('E1001')).map((b) => b.runId)).toContain(run.runId);
  });

  it('reconcilePerson never grants a bundle the person rejected, nor a privileged one nobody approved', async () => {
    await start();
    await provision(GRACE);
    const finance = worker({ employeeId: 'E1003', department: 'Finance', jobCode: 'FIN-SYSADMIN', managerId: 'E0200', email: 'f3@acme.example' });
    await provision(KATHERINE);
    await stack.deps.ledger.putPerson(
      { employeeId: 'E1003', worker: finance, status: 'active', version: '2026-01-01T00:00:00.000Z', lastRunId: 'seed', links: {}, grantedAt: {}, approvedBundles: [], rejectedBundles: ['finance'], updatedAt: stack.clock.now().toISOString() },
      null,
    );

    const r = await reconcilePerson(stack.deps, { employeeId: 'E1003', reason: 'operator check', requestId: 'op-1' });

    expect(r.outcome).toBe('reconciled');
    const created = r.findings.filter((f) => f.kind === 'missing_account');
    expect(created.map((f) => `${f.target}:${f.action}`).sort()).toEqual(['okta:exception', 'slack:converged']);
    const slack = scimUser('slack', 'E1003')[0]!;
    expect(scimGroups(slack)).toEqual(['all-hands']); // no "finance": rejected
    expect(scimUser('netsuite', 'E1003')).toEqual([]); // finance (rejected) and finance-system-admin (never approved) both withheld
    // The same request again is the same run: nothing is done twice.
    const again = await reconcilePerson(stack.deps, { employeeId: 'E1003', reason: 'operator check', requestId: 'op-1' });
    expect(again).toMatchObject({ outcome: 'duplicate', runId: r.runId });
    expect(scimUser('slack', 'E1003')).toHaveLength(1);
  });
});
