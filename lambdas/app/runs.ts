/**
 * The run's workflow tasks: Plan → (Approve) → Execute → Reconcile → CloseWithEvidence.
 * Each is one Lambda (one Step Functions Task) and reads what it needs from the ledger, so a
 * retried or resumed task recomputes from current state instead of trusting workflow payloads.
 */
import type { ActualAccount } from '#core/access';
import { changesBeforeFailure, converge } from '#connectors/converge';
import { EvidenceBundleExists } from '#core/evidence-store';
import { buildEvidenceBundle, type EvidenceApproval, type ReconciliationEvidence, type ReconciliationTarget } from '#core/evidence';
import { desiredState, type DesiredState } from '#core/desired-state';
import { AccountNotFound, JmlError, isRetryable } from '#core/errors';
import { durationMs, type Policy } from '#core/policy';
import { applyDecisions, plan as computePlan, type ActualState, type Plan } from '#core/plan';
import { planTarget, type TargetOp } from '#core/target-plan';
import type { ChangeRecord } from '#core/change';
import { html } from '#core/html';
import { toZonedIso, zonedTimeToEpoch } from '#core/time';
import { ConditionFailed, RUN_STATUSES, TERMINAL_RUN_STATUSES, type ApprovalRecord, type ExceptionRecord, type Ledger, type PersonRecord, type RunRecord, type RunStatus, type StepRecord, type TimelineEntry } from '#core/ledger';
import type { Lifecycle } from '#core/hr-event';
import type { AppDeps, WorkflowName } from './ports.ts';
import { accountProfile } from './profile.ts';
import { updatePerson } from './people.ts';
import { openException } from './exceptions.ts';
import { activeExceptionGrants } from './exception-grants.ts';
import { scheduleBundleExpiries } from './time-bound.ts';
import { withTargetLease } from './target-lease.ts';
import { reserveLeaverRemainder } from './call-budget.ts';
import { slotNow } from '#core/call-budget';

/** Which state machine runs which lifecycle. */
export const WORKFLOW_OF: Record<Lifecycle, WorkflowName> = {
  joiner: 'joiner',
  rehire: 'joiner',
  mover: 'mover',
  return: 'mover',
  leaver: 'leaver',
  leave_of_absence: 'leave',
};

export class RunNotFound extends JmlError {}

export interface PlanTaskOutput {
  runId: string;
  lifecycle: string;
  /** Nothing to run: stale, superseded or out of scope (the reason is on the run record). */
  skip: boolean;
  idp: string;
  apps: string[];
  /** Approval request ids the Approve map waits for. */
  approvals: string[];
  hasApprovals: boolean;
  approvalTimeoutSeconds: number;
}

interface RunContext {
  run: RunRecord;
  person: PersonRecord;
  policy: Policy;
}

/**
 * The run, its person and the policy. With `employeeId` (a leaver's first task gets it in its
 * input) the run and the person are read at once: one ledger round trip fewer before the disable.
 */
async function loadContext(deps: AppDeps, runId: string, employeeId?: string): Promise<RunContext> {
  const [run, early] = await Promise.all([deps.ledger.getRun(runId), employeeId ? deps.ledger.getPerson(employeeId) : null]);
  if (!run) throw new RunNotFound(`run ${runId} does not exist`);
  if (employeeId && run.employeeId !== employeeId) throw new RunNotFound(`run ${runId} is ${run.employeeId}'s, not ${employeeId}'s`);
  const person = early ?? (await deps.ledger.getPerson(run.employeeId));
  if (!person) throw new RunNotFound(`run ${runId}: person ${run.employeeId} is not in the ledger`);
  return { run, person, policy: await deps.policy() };
}

const nowIso = (deps: AppDeps) => deps.clock.now().toISOString();

/** `idp` names the policy's identity provider (the leaver's first state runs before Plan names it). */
function resolveTarget(target: string, policy: Policy): string {
  return target === 'idp' ? policy.idp.name : target;
}

/** A restrict step's search for the person's accounts at `target`, by employee id alone and status only (see `converge`'s `found`). */
function findAhead(deps: AppDeps, target: string, employeeId: string): Promise<ActualAccount[]> {
  return deps.policy().then((policy) => deps.connectors.get(resolveTarget(target, policy)).findAccounts({ employeeId, entitlements: false }));
}

/** Statuses of a run that is still going (planning may write over these, never over a terminal one). */
const OPEN_RUN_STATUSES: readonly RunStatus[] = RUN_STATUSES.filter((st) => !TERMINAL_RUN_STATUSES.has(st));

/** Moves a run forward unless another task already moved it (a no-op then, not an error). */
async function advanceStatus(ledger: Ledger, runId: string, to: RunStatus, from: readonly RunStatus[]): Promise<void> {
  try {
    await ledger.updateRun(runId, { status: to }, from);
  } catch (e) {
    if (!(e instanceof ConditionFailed)) throw e;
  }
}

/** One timeline entry, for `addTimeline`. */
function entry(phase: string, at: string, note?: string): TimelineEntry[] {
  return [{ phase, at, ...(note ? { note } : {}) }];
}

function desiredFor(person: PersonRecord, policy: Policy, deps: AppDeps): DesiredState {
  const now = nowIso(deps);
  return desiredState({ worker: person.worker, status: person.status }, policy, {
    grantedAt: person.grantedAt,
    exceptionGrants: activeExceptionGrants(person, now),
    now,
  });
}

/** Bundles that need no new approval: approved before, or granted as an approved exception. */
function preApproved(person: PersonRecord, now: string): string[] {
  return [...person.approvedBundles, ...activeExceptionGrants(person, now).map((g) => g.bundle)];
}

/** Reads every managed target's accounts for the person (by correlation key and stored links). */
async function readActual(
  deps: AppDeps,
  person: PersonRecord,
  policy: Policy,
  targets = policy.managedTargets.map((t) => t.name),
  /** Returns true to go on without that target (planned as holding nothing). */
  tolerate: (target: string, err: unknown) => boolean = () => false,
) {
  const actual: ActualState = {};
  await Promise.all(
    targets.map(async (name) => {
      const link = person.links[name];
      try {
        actual[name] = await deps.connectors.get(name).findAccounts({ employeeId: person.employeeId, linkIds: link ? [link] : [] });
      } catch (err) {
        if (!tolerate(name, err)) throw err;
        actual[name] = [];
      }
    }),
  );
  return actual;
}


// ---------------------------------------------------------------------------------------------
// Plan

export async function planRun(deps: AppDeps, input: { runId: string }): Promise<PlanTaskOutput> {
  const { run, person, policy } = await loadContext(deps, input.runId);
  const base = {
    runId: run.runId,
    lifecycle: run.lifecycle,
    idp: policy.idp.name,
    apps: policy.managedTargets.filter((t) => t !== policy.idp).map((t) => t.name),
    approvalTimeoutSeconds: policy.document.approvals.windowHours * 3600,
  };
  if (run.status === 'SUPERSEDED' || run.status === 'STALE') {
    return { ...base, skip: true, approvals: [], hasApprovals: false };
  }
  const at = nowIso(deps);
  const desired = desiredFor(person, policy, deps);
  if (!desired.inScope) {
    await deps.ledger
      .updateRun(
        run.runId,
        {
          status: 'OUT_OF_SCOPE',
          statusReason: 'worker is outside the policy scope; recorded and left alone',
          desired,
          addTimeline: entry('Plan', at, 'out of scope'),
        },
        OPEN_RUN_STATUSES,
      )
      .catch((e: unknown) => {
        if (!(e instanceof ConditionFailed)) throw e;
      });
    return { ...base, skip: true, approvals: [], hasApprovals: false };
  }
  // A leaver's app that cannot be read now does not stop the run: its own execute step reads it
  // again (with retries) and, still down, opens the exception for that app's owner — so one app's
  // outage never keeps the leaver's other apps enabled. The IdP must be readable to plan, and a
  // joiner or mover (whose approvals depend on what is held) waits for every target.
  const unread: string[] = [];
  const actual = await readActual(deps, person, policy, policy.managedTargets.map((t) => t.name), (target, err) => {
    if (run.lifecycle !== 'leaver' || target === policy.idp.name || !isRetryable(err)) return false;
    unread.push(`${target} (${(err as Error).name})`);
    return true;
  });
  const plan = computePlan(desired, actual, policy, {
    lifecycle: run.lifecycle as Lifecycle,
    approvedBundles: preApproved(person, at),
  });
  const approvals = plan.approvals.map((a) => a.id);
  try {
    // Only while the run is still open: a termination that superseded it while this step read
    // the targets keeps it SUPERSEDED (an unconditional write would reopen it).
    await deps.ledger.updateRun(
      run.runId,
      {
        status: approvals.length ? 'AWAITING_APPROVAL' : 'PLANNED',
        plan,
        desired,
        mappingVersion: policy.mappingVersion,
        addTimeline: entry(
      'Plan',
      at,
      `${plan.stepCount} step(s), ${approvals.length} approval request(s)${unread.length ? `; not readable now, its step reads it again: ${unread.join(', ')}` : ''}`,
    ),
      },
      OPEN_RUN_STATUSES,
    );
  } catch (e) {
    if (!(e instanceof ConditionFailed)) throw e;
    return { ...base, skip: true, approvals: [], hasApprovals: false };
  }
  return { ...base, skip: false, approvals, hasApprovals: approvals.length > 0 };
}

// ---------------------------------------------------------------------------------------------
// Execute

/**
 * Bundles withheld in this run: those of approval requests that ended rejected or expired, or
 * are still undecided (a request without an approval never grants).
 */
export function withheldBundles(plan: Plan | undefined, approvals: ApprovalRecord[]): Set<string> {
  const withheld = new Set<string>();
  for (const req of plan?.approvals ?? []) {
    const records = approvals.filter((a) => a.requestId === req.id && a.status !== 'ESCALATED');
    const approved = records.some((a) => a.status === 'APPROVED');
    if (!approved) for (const b of req.bundles) withheld.add(b);
  }
  return withheld;
}

/**
 * Desired state with this run's decisions applied. Only `targets` are read from the targets (a
 * converge step needs its own target, not every target of the person).
 */
async function decidedDesired(deps: AppDeps, ctx: RunContext, targets?: string[]): Promise<{ desired: DesiredState; withheld: Set<string> }> {
  const desired = desiredFor(ctx.person, ctx.policy, deps);
  const approvals = await deps.ledger.listApprovals(ctx.run.runId);
  const withheld = withheldBundles(ctx.run.plan as Plan | undefined, approvals);
  const approved = preApproved(ctx.person, nowIso(deps));
  for (const b of ctx.person.rejectedBundles) if (!approved.includes(b)) withheld.add(b);
  if (!withheld.size) return { desired, withheld };
  const actual = await readActual(deps, ctx.person, ctx.policy, targets);
  return { desired: applyDecisions(desired, withheld, actual, ctx.policy), withheld };
}

export type ConvergePhase = 'restrict' | 'full';

export interface ConvergeTaskOutput {
  target: string;
  accountId?: string;
  writes: number;
  planned: number;
  /** A leaver's restrict step: when the rest of the run may spend the IdP's calls (call-budget.ts). */
  routineAt?: string;
}

const RESTRICT_OPS: readonly TargetOp[] = ['disable', 'suspend', 'revokeSessions'];

export async function convergeTarget(
  deps: AppDeps,
  input: { runId: string; target: string; phase?: ConvergePhase; employeeId?: string },
): Promise<ConvergeTaskOutput> {
  const phase = input.phase ?? 'full';
  // A restrict step (a leaver's disable, a leave's suspension) searches the target for the
  // person's accounts while it reads the run and the person: the search needs only the employee
  // id, and nothing is written before both are back and the run is checked.
  const found = phase === 'restrict' && input.employeeId ? findAhead(deps, input.target, input.employeeId) : undefined;
  found?.catch(() => undefined); // not needed when the run turns out to be over
  const ctx = await loadContext(deps, input.runId, input.employeeId);
  const { run, person, policy } = ctx;
  const started = nowIso(deps);
  // The leaver workflow disables at the IdP before it plans anything, naming the target `idp`.
  input = { ...input, target: resolveTarget(input.target, policy) };
  if (phase === 'restrict' && (TERMINAL_RUN_STATUSES.has(run.status) || !desiredFor(person, policy, deps).inScope)) {
    return { target: input.target, writes: 0, planned: 0, ...(run.lifecycle === 'leaver' ? { routineAt: slotNow(deps.clock.now().getTime()) } : {}) };
  }
  if (run.status === 'PLANNED' || run.status === 'AWAITING_APPROVAL') {
    await advanceStatus(deps.ledger, run.runId, 'EXECUTING', ['PLANNED', 'AWAITING_APPROVAL']);
  }
  const { desired } = phase === 'restrict' ? { desired: desiredFor(person, policy, deps) } : await decidedDesired(deps, ctx, [input.target]);
  const target = desired.targets.find((t) => t.target === input.target);
  if (!target) throw new AccountNotFound(input.target, `target ${input.target} is not managed by the policy`);
  const connector = deps.connectors.get(input.target);
  // The restrict phase never creates an account, so it skips the manager read (only a create
  // writes the manager's email): one ledger round trip fewer before a leaver's disable.
  const { managerId: _manager, ...unmanaged } = person.worker;
  const profile = await accountProfile(deps.ledger, phase === 'restrict' ? { ...person, worker: unmanaged } : person);
  const leaverIdp = run.lifecycle === 'leaver' && input.target === policy.idp.name;
  const stepId = `${phase === 'restrict' ? '0' : policy.managedTargets.findIndex((t) => t.name === input.target) + 1}-${input.target}-${phase}`;
  // What the step changed, for its record when it fails: the converge's changes once it returned.
  let converged: ChangeRecord[] | undefined;
  // Once this attempt is on the step record, a later failure (the person update, the run's
  // timeline) must not fold it in a second time: its writes would count twice.
  let recorded = false;
  try {
    const write = () =>
      converge(connector, profile, target, {
        linkIds: person.links[input.target] ? [person.links[input.target]!] : [],
        forceRevoke: leaverIdp,
        ...(phase === 'restrict' ? { onlyOps: RESTRICT_OPS, statusOnly: true, ...(found ? { found } : {}) } : {}),
      });
    const result = phase === 'restrict' ? await write() : await withTargetLease(deps, { employeeId: person.employeeId, target: input.target, holder: `run ${run.runId}` }, write);
    converged = result.changes;
    const tap = await issueDayOneCredential(deps, ctx, input.target, result);
    if (tap) result.changes.push(tap);
    const finished = nowIso(deps);
    await deps.ledger.recordStepAttempt({
      runId: run.runId,
      stepId,
      target: input.target,
      phase,
      startedAt: started,
      finishedAt: finished,
      outcome: target.mode === 'shadow' ? 'skipped' : 'ok',
      changes: result.changes,
      writes: result.writes,
    });
    recorded = true;
    const added = result.changes.filter((c) => c.op === 'addEntitlement' && c.changed);
    await updatePerson(
      deps.ledger,
      person.employeeId,
      (p) => {
        let changed = false;
        if (result.accountId && p.links[input.target] !== result.accountId) {
          p.links[input.target] = result.accountId;
          changed = true;
        }
        for (const c of added) {
          const e = target.entitlements.find((x) => x.type === c.entitlement?.type && x.value === c.entitlement?.value);
          if (e && policy.document.bundles[e.bundle]?.expiresAfter && !p.grantedAt[e.bundle]) {
            p.grantedAt[e.bundle] = finished;
            changed = true;
          }
          if (e?.privileged && !p.approvedBundles.includes(e.bundle)) {
            p.approvedBundles.push(e.bundle);
            changed = true;
          }
        }
        return changed ? p : null;
      },
      () => deps.clock.now(),
    );
    if (leaverIdp || (run.lifecycle === 'leave_of_absence' && input.target === policy.idp.name)) {
      const fresh = (await deps.ledger.getRun(run.runId))!;
      if (!fresh.timeline?.some((t) => t.phase === 'IdpDisabled')) {
        await deps.ledger.updateRun(run.runId, {
          addTimeline: entry('IdpDisabled', finished, `${input.target}: account restricted and sessions revoked`),
        });
      }
    }
    // The rest of a leaver's run reserves its IdP calls now the disable is done: behind every
    // restrict step already reserved, so a burst's disables all go first.
    const routineAt = leaverIdp && phase === 'restrict' ? await reserveLeaverRemainder(deps, policy, person) : undefined;
    return { target: input.target, accountId: result.accountId, writes: result.writes, planned: result.planned.length, ...(routineAt ? { routineAt } : {}) };
  } catch (e) {
    if (recorded) throw e;
    const err = e as Error;
    // The writes made before the failure stay on record (the evidence shows what did change).
    const changes = converged ?? changesBeforeFailure(e);
    await deps.ledger.recordStepAttempt({
      runId: run.runId,
      stepId,
      target: input.target,
      phase,
      startedAt: started,
      finishedAt: nowIso(deps),
      outcome: 'error',
      changes,
      writes: changes.filter((c) => c.changed).length,
      error: { name: err.name, message: err.message },
    });
    throw e;
  }
}

/**
 * Entra joiners get a Temporary Access Pass for day one (no password to phish or to send): valid
 * from 08:00 on the start date in the company zone (or now, for a late run), for the policy's
 * lifetime (24 h by default). The secret goes only to the manager's email — never to logs, the
 * ledger or the evidence; the change record says a pass was issued, not what it is.
 */
async function issueDayOneCredential(
  deps: AppDeps,
  ctx: RunContext,
  target: string,
  result: { accountId?: string; changes: ChangeRecord[] },
): Promise<ChangeRecord | null> {
  const { run, person, policy } = ctx;
  if (target !== policy.idp.name || !(run.lifecycle === 'joiner' || run.lifecycle === 'rehire')) return null;
  const connector = deps.connectors.get(target);
  const created = result.changes.some((c) => (c.op === 'create' || c.op === 'enable') && c.changed);
  if (!connector.createTemporaryAccessPass || !created || !result.accountId) return null;
  const tz = policy.document.company.timeZone;
  const dayOne = zonedTimeToEpoch(person.worker.startDate, tz, '08:00:00');
  const start = Math.max(dayOne, deps.clock.now().getTime());
  const pass = await connector.createTemporaryAccessPass(
    result.accountId,
    policy.document.joiner.tapLifetimeMinutes,
    new Date(start).toISOString(),
  );
  const manager = person.worker.managerId ? await deps.ledger.getPerson(person.worker.managerId) : null;
  const to = manager && manager.employeeId !== person.employeeId ? manager.worker.email : policy.document.company.fallbackApprover;
  const name = `${person.worker.givenName} ${person.worker.familyName}`;
  const validFrom = toZonedIso(Date.parse(pass.startDateTime), tz);
  await deps.mailer.send({
    to: [to],
    subject: `Day-one sign-in code for ${name}`,
    text: [
      `${name} starts on ${person.worker.startDate}. Give them this Temporary Access Pass in person or by phone:`,
      '',
      `    ${pass.secret}`,
      '',
      `It is valid from ${validFrom} for ${Math.round(pass.lifetimeInMinutes / 60)} hours and lets them set up passwordless sign-in.`,
      'Do not forward this email.',
    ].join('\n'),
    html: String(html`<p>${name} starts on ${person.worker.startDate}. Give them this Temporary Access Pass in person or by phone:</p>
<p style="font-size:1.4em;font-family:monospace">${pass.secret}</p>
<p>It is valid from ${validFrom} for ${Math.round(pass.lifetimeInMinutes / 60)} hours and lets them set up passwordless sign-in. Do not forward this email.</p>`),
    links: [],
    runId: run.runId,
  });
  return { ...pass.change, detail: `${pass.change.detail ?? 'Temporary Access Pass issued'}; sent to the manager` };
}

/**
 * The Catch path of an execute step: after retries the target still fails. Opens an exception
 * for the target's owner and — on a joiner or mover — strips any privileged entitlement this run
 * added on that target, so a half-provisioned app never holds elevated access.
 */
export async function recordFailure(
  deps: AppDeps,
  input: { runId: string; target: string; error?: { Error?: string; Cause?: string } },
): Promise<{ exceptionId: string; rolledBack: string[] }> {
  const { run, person, policy } = await loadContext(deps, input.runId);
  input = { ...input, target: resolveTarget(input.target, policy) };
  const name = input.error?.Error ?? 'Unknown';
  const cause = parseCause(input.error?.Cause);
  const rolledBack: string[] = [];
  let rollbackError: string | undefined;
  const isApp = input.target !== policy.idp.name && policy.targetsByName.has(input.target);
  if (isApp && run.lifecycle !== 'leaver') {
    try {
      const steps = await deps.ledger.listSteps(run.runId);
      const added = steps
        .filter((s) => s.target === input.target)
        .flatMap((s) => s.changes)
        .filter((c) => c.op === 'addEntitlement' && c.changed && c.entitlement);
      const desired = desiredFor(person, policy, deps).targets.find((t) => t.target === input.target);
      const privileged = added.filter((c) =>
        desired?.entitlements.some((e) => e.privileged && e.type === c.entitlement!.type && e.value === c.entitlement!.value),
      );
      const connector = deps.connectors.get(input.target);
      for (const c of privileged) {
        await connector.removeEntitlement(c.accountId, c.entitlement!);
        rolledBack.push(`${c.entitlement!.type}:${c.entitlement!.value}`);
      }
    } catch (e) {
      rollbackError = `${(e as Error).name}: ${(e as Error).message}`;
    }
  }
  const target = policy.targetsByName.get(input.target);
  const exception = await openException(deps, {
    // One exception per run and target: the retry after the first Reconcile fails the same way
    // and must not mail the owner (or raise a ticket) a second time.
    exceptionId: `exc-step-${run.runId}-${input.target}`,
    runId: run.runId,
    employeeId: run.employeeId,
    target: input.target,
    owner: target?.owner.email ?? policy.document.company.fallbackApprover,
    kind: 'step_failed',
    reason: `${input.target}: ${name} — ${cause}`,
    evidence: {
      error: { name, cause },
      lifecycle: run.lifecycle,
      rolledBack,
      ...(rollbackError ? { rollbackError, note: 'rollback did not complete; reconciliation will remove the access' } : {}),
    },
  });
  return { exceptionId: exception.exceptionId, rolledBack };
}

/** The message inside a Step Functions `Cause` (a Lambda error's JSON), or the cause as is. */
export function parseCause(cause: string | undefined): string {
  if (!cause) return 'no detail';
  try {
    const parsed = JSON.parse(cause) as { errorMessage?: string; message?: string };
    return parsed.errorMessage ?? parsed.message ?? cause;
  } catch {
    return cause;
  }
}

// ---------------------------------------------------------------------------------------------
// Reconcile

export interface ReconcileTaskOutput {
  clean: boolean;
  /** Re-run only the missing steps once: the targets to converge again. */
  retry: boolean;
  retryTargets: string[];
}

export async function reconcileRun(deps: AppDeps, input: { runId: string }): Promise<ReconcileTaskOutput> {
  const ctx = await loadContext(deps, input.runId);
  const { run, person, policy } = ctx;
  await advanceStatus(deps.ledger, run.runId, 'RECONCILING', ['EXECUTING', 'PLANNED', 'AWAITING_APPROVAL']);
  const { desired } = await decidedDesired(deps, ctx);
  const targets: ReconciliationTarget[] = [];
  const retryTargets: string[] = [];
  for (const d of desired.targets) {
    const connector = deps.connectors.get(d.target);
    let accounts: ActualAccount[];
    try {
      accounts = await connector.findAccounts({
        employeeId: person.employeeId,
        linkIds: person.links[d.target] ? [person.links[d.target]!] : [],
      });
    } catch (e) {
      targets.push({ target: d.target, mode: d.mode, result: 'unreachable', note: `${(e as Error).name}: ${(e as Error).message}` });
      continue;
    }
    if (accounts.length > 1) {
      targets.push({ target: d.target, mode: d.mode, result: 'conflict', note: `accounts ${accounts.map((a) => a.id).join(', ')} claim this person` });
      continue;
    }
    const account = accounts[0] ?? null;
    const remaining = planTarget(d, account, connector.capabilities);
    const missing = remaining.filter((o) => o.op === 'addEntitlement').map((o) => ({ type: o.entitlement!.type, value: o.entitlement!.value }));
    const unexpected = remaining.filter((o) => o.op === 'removeEntitlement').map((o) => ({ type: o.entitlement!.type, value: o.entitlement!.value }));
    targets.push({
      target: d.target,
      mode: d.mode,
      result: remaining.length ? 'drift' : 'match',
      ...(account ? { accountId: account.id, actualStatus: account.status } : {}),
      desiredStatus: d.account,
      ...(missing.length ? { missing } : {}),
      ...(unexpected.length ? { unexpected } : {}),
      ...(remaining.some((o) => !['addEntitlement', 'removeEntitlement'].includes(o.op))
        ? { note: `status: ${remaining.filter((o) => !['addEntitlement', 'removeEntitlement'].includes(o.op)).map((o) => o.op).join(', ')} still needed` }
        : {}),
    });
    if (remaining.length && d.mode === 'enforce') retryTargets.push(d.target);
  }
  const attempts = (run.reconcileAttempts ?? 0) + 1;
  const retry = retryTargets.length > 0 && attempts === 1;
  const exceptionsOpened: string[] = [];
  if (!retry) {
    // A target whose step already failed has its exception (and owner, and ticket): the
    // mismatch found here is that same problem, referenced rather than opened twice.
    const openForTarget = new Map(
      (await deps.ledger.listExceptions({ runId: run.runId, status: 'open' })).map((e) => [e.target, e.exceptionId] as const),
    );
    for (const t of targets) {
      if (t.result === 'match' || t.mode === 'shadow') continue;
      const known = openForTarget.get(t.target);
      if (known) {
        exceptionsOpened.push(known);
        continue;
      }
      const owner = policy.targetsByName.get(t.target)?.owner.email ?? policy.document.company.fallbackApprover;
      const leaverEnabled = person.status === 'terminated' && t.actualStatus === 'enabled';
      const kind = t.result === 'conflict' ? 'conflict' : leaverEnabled ? 'leaver_enabled' : 'drift';
      const e = await openException(deps, {
        exceptionId: `exc-${kind}-${run.runId}-${t.target}`,
        runId: run.runId,
        employeeId: person.employeeId,
        target: t.target,
        owner,
        kind,
        reason:
          t.result === 'conflict'
            ? `${t.target}: ${t.note}`
            : t.result === 'unreachable'
              ? `${t.target}: could not be verified (${t.note})`
              : leaverEnabled
                ? `${t.target}: leaver's account is still enabled after execution`
                : `${t.target}: does not match the desired state after execution`,
        evidence: t,
      });
      exceptionsOpened.push(e.exceptionId);
    }
  }
  const reconciliation: ReconciliationEvidence = { checkedAt: nowIso(deps), targets, ...(exceptionsOpened.length ? { exceptionsOpened } : {}) };
  await deps.ledger.updateRun(run.runId, {
    reconciliation,
    reconcileAttempts: attempts,
    addTimeline: entry('Reconcile', reconciliation.checkedAt, retry ? `re-running ${retryTargets.join(', ')}` : `${targets.filter((t) => t.result === 'match').length}/${targets.length} targets match`),
  });
  return { clean: retryTargets.length === 0, retry, retryTargets: retry ? retryTargets : [] };
}

// ---------------------------------------------------------------------------------------------
// Leaver: retention deletes

export async function scheduleRetention(deps: AppDeps, input: { runId: string }): Promise<{ scheduled: string[] }> {
  const { run, person, policy } = await loadContext(deps, input.runId);
  // One base for every target: the termination moment, or now when the leaver ran late.
  const base = Math.max(Date.parse(run.effectiveAt), deps.clock.now().getTime());
  const scheduled: string[] = [];
  for (const t of policy.managedTargets) {
    if (t.mode === 'shadow') continue;
    const at = new Date(base + durationMs(`P${t.retentionDays}D`));
    const name = retentionScheduleName(person.employeeId, t.name);
    await deps.scheduler.upsertOnce(name, at, {
      kind: 'retention-delete',
      payload: { employeeId: person.employeeId, target: t.name, runId: run.runId, terminationVersion: person.version },
    });
    scheduled.push(`${t.name}@${at.toISOString()}`);
  }
  await deps.ledger.updateRun(run.runId, { addTimeline: entry('ScheduleRetentionDelete', nowIso(deps), scheduled.join(', ')) });
  return { scheduled };
}

/** Deterministic, so a rehire can find and delete it and a repeat run moves it. */
export function retentionScheduleName(employeeId: string, target: string): string {
  return `jml-retention-${employeeId}-${target}`.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 64);
}

// ---------------------------------------------------------------------------------------------
// Close with evidence

export async function closeRun(deps: AppDeps, input: { runId: string; failed?: boolean }): Promise<{ status: string; evidence?: string }> {
  const { run, person, policy } = await loadContext(deps, input.runId);
  if (run.evidence) return { status: run.status, evidence: run.evidence.prefix };
  const closedAt = nowIso(deps);
  const [steps, approvals, exceptions] = await Promise.all([
    deps.ledger.listSteps(run.runId),
    deps.ledger.listApprovals(run.runId),
    deps.ledger.listExceptions({ runId: run.runId }),
  ]);
  const open = exceptions.filter((e) => e.status === 'open');
  const status =
    run.status === 'OUT_OF_SCOPE' || run.status === 'STALE' || run.status === 'SUPERSEDED'
      ? run.status
      : input.failed
        ? 'FAILED'
        : open.length
          ? 'EXCEPTION_OPEN'
          : 'COMPLETED';

  const idpEvidence = await collectIdpEvidence(deps, person, policy, run);
  const kpis = computeKpis(run, steps, exceptions, policy, closedAt);
  const closing: TimelineEntry[] = [...(idpEvidence.note ? entry('IdpEvidence', closedAt, idpEvidence.note) : []), ...entry('CloseWithEvidence', closedAt, status)];
  const bundle = buildEvidenceBundle({
    runId: run.runId,
    employeeId: run.employeeId,
    lifecycle: run.lifecycle as Lifecycle,
    status,
    closedAt,
    person: {
      displayName: `${person.worker.givenName} ${person.worker.familyName}`,
      department: person.worker.department,
      location: person.worker.location,
      jobCode: person.worker.jobCode,
      employmentType: person.worker.employmentType,
      ...(person.worker.managerId ? { managerId: person.worker.managerId } : {}),
    },
    rawEvent: { body: run.rawEvent, receivedAt: run.createdAt },
    plan: (run.plan as Plan | undefined) ?? null,
    desired: (run.desired as DesiredState | undefined) ?? null,
    approvals: approvals.map(toEvidenceApproval),
    executionLog: steps,
    idpEvidence: idpEvidence.entries,
    reconciliation: (run.reconciliation as ReconciliationEvidence | undefined) ?? null,
    exceptions,
    kpis,
    timeline: [...(run.timeline ?? []), ...closing],
    previousManifestSha256: await deps.evidence.latestManifestSha256(person.employeeId),
  });
  let stored = { prefix: bundle.prefix, manifestSha256: bundle.manifestSha256 };
  try {
    await deps.evidence.putBundle(bundle);
  } catch (e) {
    // A close that crashed after storing its bundle: keep the committed one (evidence is written once).
    if (!(e instanceof EvidenceBundleExists)) throw e;
    stored = e.existing;
  }
  await deps.ledger.updateRun(run.runId, {
    status,
    evidence: stored,
    kpis: Object.fromEntries(Object.entries(kpis).filter((e): e is [string, number] => typeof e[1] === 'number')),
    addTimeline: closing,
  });
  emitKpis(deps, run, status, kpis);
  // Time-bound bundles (and exception grants) the run granted get their removal scheduled.
  if (person.status !== 'terminated') await scheduleBundleExpiries(deps, { employeeId: person.employeeId });
  return { status, evidence: stored.prefix };
}

function toEvidenceApproval(a: ApprovalRecord): EvidenceApproval {
  const { taskToken: _token, ...rest } = a;
  return { ...rest, approver: a.approver };
}

async function collectIdpEvidence(deps: AppDeps, person: PersonRecord, policy: Policy, run: RunRecord) {
  const accountId = person.links[policy.idp.name];
  if (!accountId) return { entries: [], note: 'no IdP account linked: no IdP audit entries to collect' };
  try {
    const entries = await deps.connectors.get(policy.idp.name).auditEvidence(accountId, run.createdAt);
    return { entries: entries.map((e) => ({ ...e, target: policy.idp.name })), note: undefined };
  } catch (e) {
    return { entries: [], note: `IdP audit log not available: ${(e as Error).name}: ${(e as Error).message}` };
  }
}

function computeKpis(run: RunRecord, steps: StepRecord[], exceptions: ExceptionRecord[], policy: Policy, closedAt: string) {
  const kpis: Record<string, number> = {
    runDurationMs: Date.parse(closedAt) - Date.parse(run.createdAt),
    exceptionCount: exceptions.length,
    writes: steps.reduce((n, s) => n + s.writes, 0),
  };
  const disabled = run.timeline?.find((t) => t.phase === 'IdpDisabled');
  if (run.lifecycle === 'leaver' && disabled) {
    const effective = Date.parse(run.effectiveAt);
    const accepted = Date.parse(run.createdAt);
    kpis.timeToDisableMs = Math.max(0, Date.parse(disabled.at) - Math.max(effective, accepted));
    kpis.timeToDisableFromEffectiveMs = Math.max(0, Date.parse(disabled.at) - effective);
    kpis.disableSlaMs = policy.document.sla.timeToDisableMinutes * 60_000;
  }
  const rec = run.reconciliation as ReconciliationEvidence | undefined;
  if (rec) {
    kpis.driftCount = rec.targets.reduce((n, t) => n + (t.unexpected?.length ?? 0) + (t.missing?.length ?? 0), 0);
    if (run.lifecycle === 'leaver') {
      const enumerated = rec.targets.filter((t) => t.accountId).length;
      const restricted = rec.targets.filter((t) => t.accountId && t.actualStatus !== 'enabled').length;
      kpis.revocationEnumerated = enumerated;
      kpis.revocationDisabledWithinSla =
        kpis.timeToDisableMs !== undefined && kpis.timeToDisableMs <= (kpis.disableSlaMs ?? Infinity) ? restricted : 0;
    }
  }
  return kpis;
}

function emitKpis(deps: AppDeps, run: RunRecord, status: string, kpis: Record<string, number>): void {
  const dims = { Workflow: run.lifecycle };
  deps.metrics.put('RunsClosed', 1, 'Count', { ...dims, Status: status });
  deps.metrics.put('ExceptionsOpened', kpis.exceptionCount ?? 0, 'Count', dims);
  if (kpis.timeToDisableMs !== undefined) deps.metrics.put('TimeToDisable', kpis.timeToDisableMs / 1000, 'Seconds', dims);
  if (kpis.revocationEnumerated) {
    deps.metrics.put('RevocationCompleteness', (100 * (kpis.revocationDisabledWithinSla ?? 0)) / kpis.revocationEnumerated, 'Percent', dims);
  }
  if (kpis.driftCount !== undefined) deps.metrics.put('DriftEntitlements', kpis.driftCount, 'Count', dims);
}

