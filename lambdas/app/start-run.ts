/**
 * The queue consumer's use case: turn a recorded HR event into a running workflow — or into a
 * STALE / SUPERSEDED / SCHEDULED / HELD run — exactly once per run id.
 *
 * Ordering: the FIFO queue keeps one person's events in order, and the person's `version`
 * (`occurredAt` of the last applied event) refuses an older event that arrives late. The person
 * record is updated only when the run actually starts (a future-dated event must not change
 * anybody's access early).
 *
 * Effective dates (docs/schedules.md):
 *  - a future change is scheduled under a deterministic name (`scheduleNameFor`) at its effective
 *    moment in the company time zone — a joiner `policy.joiner.leadTime` earlier; a backdated or
 *    immediate one runs now (no exact-day matching that could miss it);
 *  - a later-recorded event of the same kind replaces a pending one: the older SCHEDULED (or
 *    HELD) run is SUPERSEDED and the schedule moves (same name) or is deleted (the new one runs
 *    now). Movers are per effective date: a second, different change on another date is another
 *    run; the same worker record with a new date is a moved date;
 *  - a termination is withdrawn by any later event whose worker has no `terminationDate` (what
 *    BambooHR sends when a termination is cancelled, and what the canonical contract asks for):
 *    the pending leaver run is SUPERSEDED and its schedule deleted;
 *  - a termination supersedes pending runs that would take effect at or after it.
 * Runs that disable or strip access pass the bulk-change guard first (`./bulk-guard.ts`).
 */
import { durationMs, type Policy } from '#core/policy';
import { canonicalJson } from '#core/hash';
import { setsStatus, statusAfter, type HrEvent, type Lifecycle } from '#core/hr-event';
import { ConditionFailed, TERMINAL_RUN_STATUSES, type PersonRecord, type RunRecord, type RunStatus } from '#core/ledger';
import type { AppDeps, WorkflowName } from './ports.ts';
import { bumpTime } from './people.ts';
import { WORKFLOW_OF, retentionScheduleName } from './runs.ts';
import { admitRestrictingRun, readAdmission, restrictionOf } from './bulk-guard.ts';
import { reserveLeaverRestrict } from './call-budget.ts';
import { openException } from './exceptions.ts';
import { boundedName, retentionRetryScheduleName, scheduleBundleExpiries } from './time-bound.ts';
import type { PersonWithGrants } from './exception-grants.ts';

export type StartOutcome =
  | { outcome: 'started'; runId: string; workflow: string; alreadyStarted: boolean }
  | { outcome: 'scheduled'; runId: string; at: string }
  | { outcome: 'held'; runId: string; holdId: string }
  | { outcome: 'stale' | 'duplicate' | 'missing'; runId: string; reason: string };

/** Runs that a termination supersedes (not yet executing anything irreversible). */
const SUPERSEDABLE: readonly RunStatus[] = ['RECEIVED', 'SCHEDULED', 'HELD', 'PLANNED', 'AWAITING_APPROVAL'];
/** Runs waiting for their effective date or for the bulk-change guard's release. */
const PENDING: readonly RunStatus[] = ['SCHEDULED', 'HELD'];

/**
 * Deterministic schedule name of a person's pending run: one per lifecycle (a moved date moves
 * it), and for movers one per effective date (two different future changes are two runs).
 * EventBridge Scheduler names are at most 64 characters of `[0-9A-Za-z_.-]`; a longer one is
 * shortened with a hash so two people never share a name.
 */
export function scheduleNameFor(employeeId: string, lifecycle: string, effectiveDate?: string): string {
  const suffix = lifecycle === 'mover' && effectiveDate ? `${lifecycle}-${effectiveDate.replace(/-/g, '')}` : lifecycle;
  return boundedName('jml-run', employeeId, suffix);
}

function scheduleNameOfRun(run: RunRecord): string {
  const event = run.event as HrEvent;
  return scheduleNameFor(run.employeeId, event.lifecycle, event.effectiveDate);
}

/** Lifecycles whose run disables an account: their consumer starts the bulk guard's reads at once. */
const DISABLING: ReadonlySet<Lifecycle> = new Set(['leaver', 'leave_of_absence']);

/**
 * `employeeId` (the queue message carries it) lets the run, the person and the person's runs be
 * read at once, in one round trip: a leaver's disable waits for every read made here. When the
 * message also says the run disables an account (`lifecycle`), the bulk guard's reads go out in
 * the same round trip.
 */
export async function startRun(
  deps: AppDeps,
  input: { runId: string; scheduled?: boolean; employeeId?: string; lifecycle?: Lifecycle },
): Promise<StartOutcome> {
  const { ledger } = deps;
  const early = input.employeeId
    ? { person: ledger.getPerson(input.employeeId), runs: ledger.listRunsByEmployee(input.employeeId) }
    : undefined;
  const admissionReads = input.lifecycle && DISABLING.has(input.lifecycle) ? deps.policy().then((p) => readAdmission(deps, p, input.runId)) : undefined;
  // Rejections of reads that turn out not to be needed are not unhandled.
  early?.person.catch(() => undefined);
  early?.runs.catch(() => undefined);
  admissionReads?.catch(() => undefined);
  const run = await ledger.getRun(input.runId);
  if (!run) return { outcome: 'missing', runId: input.runId, reason: 'no run record for this message' };
  if (TERMINAL_RUN_STATUSES.has(run.status) || run.executionName) {
    return { outcome: 'duplicate', runId: run.runId, reason: `run is already ${run.status}` };
  }
  if (run.status === 'SCHEDULED' && !input.scheduled) {
    return { outcome: 'duplicate', runId: run.runId, reason: 'run is scheduled for its effective date' };
  }
  if (run.status === 'HELD') {
    return { outcome: 'duplicate', runId: run.runId, reason: 'run is held by the bulk-change guard until the fallback approver releases it' };
  }
  const policy = await deps.policy();
  const event = run.event as HrEvent;
  const now = deps.clock.now();
  // The person and the person's runs (read once: the pending runs this event replaces, and those
  // a termination supersedes) in parallel.
  const reads = early && input.employeeId === run.employeeId ? early : { person: ledger.getPerson(run.employeeId), runs: ledger.listRunsByEmployee(run.employeeId) };
  reads.runs.catch(() => undefined);
  const person = await reads.person;
  const runsOfPerson = () => reads.runs;

  // A later-recorded event was applied already. A status event (a leave's start or end, a
  // termination) still stands when no later status event was applied: the later one was a change
  // of the worker record, and the status it left is this event's to set.
  let laterApplied = false;
  if (person && event.occurredAt < person.version) {
    laterApplied = setsStatus(event.eventType) && event.occurredAt > (person.statusVersion ?? person.version);
    if (!laterApplied && !input.scheduled) {
      await ledger.updateRun(run.runId, {
        status: 'STALE',
        statusReason: `event occurred at ${event.occurredAt}, before the person's applied version ${person.version}`,
      });
      return { outcome: 'stale', runId: run.runId, reason: 'older than the applied version' };
    }
    // A future-dated run that fires after a later-recorded change was applied. A termination
    // still stands (only an explicit withdrawal cancels it, and that would have superseded
    // this run); any other change would overwrite the newer record with an older one.
    if (!laterApplied && event.lifecycle !== 'leaver') return skipOutdatedScheduledRun(deps, policy, run, event, person);
    laterApplied = true;
  }

  if (!input.scheduled) {
    // Pending runs this event replaces (or that make this event the outdated one).
    const related = relatedPendingRuns(await runsOfPerson(), run, event);
    const newer = related.find((r) => r.occurredAt > event.occurredAt);
    if (newer) {
      await ledger.updateRun(run.runId, {
        status: 'STALE',
        supersededBy: newer.runId,
        statusReason: `a ${newer.lifecycle} event recorded later (${newer.occurredAt}) is already pending as run ${newer.runId}`,
      });
      return { outcome: 'stale', runId: run.runId, reason: 'a later-recorded event of the same kind is pending' };
    }
    for (const r of related) await supersede(deps, r, run, supersedeReason(event, r.event as HrEvent) ?? 'replaced');

    // Effective dating: a future change runs at its time (a joiner at the policy's lead time
    // before the start); a backdated one runs now.
    let at = Date.parse(event.effectiveAt);
    if (event.lifecycle === 'joiner' || event.lifecycle === 'rehire') at -= durationMs(policy.document.joiner.leadTime);
    if (at > now.getTime()) {
      const name = scheduleNameOfRun(run);
      await deps.scheduler.upsertOnce(name, new Date(at), { kind: 'start-run', payload: { runId: run.runId, employeeId: run.employeeId } });
      await ledger.updateRun(run.runId, {
        status: 'SCHEDULED',
        statusReason: `effective ${event.effectiveAt}; starts ${new Date(at).toISOString()} (schedule ${name})`,
        addTimeline: [{ phase: 'Scheduled', at: bumpTime(now), note: `starts ${new Date(at).toISOString()} (schedule ${name})` }],
      });
      return { outcome: 'scheduled', runId: run.runId, at: new Date(at).toISOString() };
    }
  }

  // A leaver's restrict step reserves its calls from the IdP's budget, while the checks below run.
  const restrictAt = event.lifecycle === 'leaver' ? reserveLeaverRestrict(deps, policy) : undefined;
  restrictAt?.catch(() => undefined);

  // The bulk-change guard: runs that disable or strip access are counted in a sliding window.
  const restriction = await restrictionOf(deps, policy, person, event);
  let slotRecorded: Promise<void> | undefined;
  if (restriction) {
    const admission = await admitRestrictingRun(deps, policy, run, restriction, admissionReads);
    if (admission.outcome === 'held') return { outcome: 'held', runId: run.runId, holdId: admission.holdId };
    if (admission.outcome === 'rejected') return { outcome: 'duplicate', runId: run.runId, reason: admission.reason };
    slotRecorded = admission.recorded;
    slotRecorded.catch(() => undefined); // awaited below, after the person is written beside it
  }

  if (event.lifecycle === 'leaver') await supersedePending(deps, run, await runsOfPerson());

  // The admission's record and the person in one round trip; both before the workflow starts.
  await Promise.all([applyToPerson(deps, run, event, person, laterApplied), slotRecorded]);
  const { workflow, ...started } = await startRunWorkflow(deps, policy, { runId: run.runId, employeeId: run.employeeId, lifecycle: event.lifecycle }, restrictAt);
  await ledger.updateRun(run.runId, {
    executionName: run.runId,
    addTimeline: [
      { phase: 'Ingest', at: bumpTime(now), note: `started ${workflow} workflow${laterApplied ? ` (a later-recorded change was applied first; the ${event.eventType.replace('_', ' ')} stands)` : ''}` },
    ],
  });
  // Time-bound bundles this run may grant get their expiry schedule (moved to the exact time
  // when the grant is recorded; see time-bound.ts).
  if (event.lifecycle !== 'leaver' && event.lifecycle !== 'leave_of_absence') await scheduleBundleExpiries(deps, { employeeId: run.employeeId });
  return { outcome: 'started', runId: run.runId, workflow, alreadyStarted: started.alreadyStarted };
}

/**
 * Starts a run's workflow under the run's id. A leaver's input carries the slot its restrict step
 * waits for (`slots.restrictAt`, reserved here unless the caller already did).
 */
export async function startRunWorkflow(
  deps: AppDeps,
  policy: Policy,
  run: { runId: string; employeeId: string; lifecycle: Lifecycle },
  restrictAt?: Promise<string>,
): Promise<{ workflow: WorkflowName; executionId: string; alreadyStarted: boolean }> {
  const workflow = WORKFLOW_OF[run.lifecycle];
  const input = {
    runId: run.runId,
    employeeId: run.employeeId,
    lifecycle: run.lifecycle,
    ...(run.lifecycle === 'leaver' ? { slots: { restrictAt: await (restrictAt ?? reserveLeaverRestrict(deps, policy)) } } : {}),
  };
  return { workflow, ...(await deps.workflows.start(workflow, run.runId, input)) };
}

/** Lifecycles that share one pending slot per person. */
function family(lifecycle: Lifecycle): string {
  return lifecycle === 'rehire' ? 'joiner' : lifecycle;
}

/** Access-relevant worker record without its dates: equal means "the same change". */
function recordWithoutDates(w: HrEvent['worker']): string {
  const { startDate: _s, terminationDate: _t, lastDayWorked: _l, ...rest } = w;
  return canonicalJson(rest);
}

/**
 * Why a later-recorded `newer` event replaces the pending run of `pending`, or null when the
 * two are unrelated (both stay).
 */
export function supersedeReason(newer: HrEvent, pending: HrEvent): string | null {
  if (newer.lifecycle === 'leaver') {
    if (pending.lifecycle === 'leaver') return `termination replaced by a later record (effective ${newer.effectiveAt})`;
    if (Date.parse(pending.effectiveAt) >= Date.parse(newer.effectiveAt)) {
      return `the termination effective ${newer.effectiveAt} takes effect first`;
    }
    return null;
  }
  if (pending.lifecycle === 'leaver') {
    return newer.worker.terminationDate ? null : `termination withdrawn: the ${newer.eventType} recorded at ${newer.occurredAt} has no termination date`;
  }
  if (family(newer.lifecycle) !== family(pending.lifecycle)) return null;
  if (newer.lifecycle === 'mover') {
    if (pending.effectiveDate === newer.effectiveDate) return `replaced by a later record of the change effective ${newer.effectiveDate}`;
    if (recordWithoutDates(pending.worker) === recordWithoutDates(newer.worker)) return `the same change moved to ${newer.effectiveDate}`;
    return null;
  }
  return `replaced by a later record (effective ${newer.effectiveAt})`;
}

function relatedPendingRuns(runs: RunRecord[], run: RunRecord, event: HrEvent): RunRecord[] {
  return runs.filter((r) => {
    if (r.runId === run.runId || !PENDING.includes(r.status) || r.lifecycle === 'reconcile') return false;
    const other = r.event as HrEvent;
    // Relation is symmetric enough to ask in the direction of recording order.
    return r.occurredAt > event.occurredAt ? supersedeReason(other, event) !== null : supersedeReason(event, other) !== null;
  });
}

async function supersede(deps: AppDeps, pending: RunRecord, by: RunRecord, reason: string): Promise<void> {
  try {
    await deps.ledger.updateRun(pending.runId, { status: 'SUPERSEDED', supersededBy: by.runId, statusReason: `${reason} (run ${by.runId})` }, PENDING);
  } catch (e) {
    if (!(e instanceof ConditionFailed)) throw e;
    return; // it fired or was released in the meantime: that run goes its own way
  }
  if (pending.status === 'SCHEDULED') await deps.scheduler.delete(scheduleNameOfRun(pending));
}

/**
 * A scheduled non-leaver run whose record is older than one applied since: it is not applied (it
 * would put an older HR record back). An exception asks HR to confirm the future change.
 */
async function skipOutdatedScheduledRun(deps: AppDeps, policy: Policy, run: RunRecord, event: HrEvent, person: PersonRecord): Promise<StartOutcome> {
  const reason = `the ${event.lifecycle} change effective ${event.effectiveAt} (recorded ${event.occurredAt}) was not applied: a change recorded later (${person.version}, run ${person.lastRunId}) was applied first; HR should resend the future change if it still applies`;
  await deps.ledger.updateRun(run.runId, { status: 'STALE', statusReason: reason });
  await openException(deps, {
    exceptionId: `exc-outdated-${run.runId}`,
    runId: run.runId,
    employeeId: run.employeeId,
    target: policy.idp.name,
    owner: policy.document.company.fallbackApprover,
    kind: 'conflict',
    reason,
    evidence: { runId: run.runId, effectiveAt: event.effectiveAt, occurredAt: event.occurredAt, appliedVersion: person.version, appliedRunId: person.lastRunId },
  });
  return { outcome: 'stale', runId: run.runId, reason: 'a later-recorded change was applied before this scheduled run' };
}

async function applyToPerson(deps: AppDeps, run: RunRecord, event: HrEvent, existing: PersonRecord | null, laterApplied: boolean): Promise<void> {
  const now = deps.clock.now();
  for (let attempt = 0; attempt < 8; attempt++) {
    const current = (attempt === 0 ? existing : await deps.ledger.getPerson(run.employeeId)) as PersonWithGrants | null;
    const older = !!current && event.occurredAt < current.version;
    if (older && !laterApplied) return; // a newer event won the race; stale handled by its own run
    // The status's own version moves with status events only (never back: a termination that
    // stands over a later status event keeps that event's version).
    const lastStatus = current?.statusVersion ?? current?.version;
    const statusVersion = setsStatus(event.eventType) && !(lastStatus && lastStatus > event.occurredAt) ? event.occurredAt : lastStatus;
    const next: PersonWithGrants = {
      ...(current ?? {}),
      employeeId: run.employeeId,
      // A status event that stands over a later-recorded change keeps that change's record (a
      // termination adds its dates).
      worker: older && current
        ? event.eventType === 'termination'
          ? { ...current.worker, terminationDate: event.worker.terminationDate, lastDayWorked: event.worker.lastDayWorked }
          : current.worker
        : event.worker,
      status: statusAfter(current?.status, event.eventType),
      version: older && current ? current.version : event.occurredAt,
      ...(statusVersion ? { statusVersion } : {}),
      lastRunId: run.runId,
      links: current?.links ?? {},
      grantedAt: current?.grantedAt ?? {},
      approvedBundles: event.lifecycle === 'rehire' ? [] : (current?.approvedBundles ?? []),
      rejectedBundles: event.lifecycle === 'rehire' ? [] : (current?.rejectedBundles ?? []),
      updatedAt: bumpTime(now, current?.updatedAt),
    };
    if (!next.worker.terminationDate) delete next.worker.terminationDate;
    if (!next.worker.lastDayWorked) delete next.worker.lastDayWorked;
    // A rehire re-derives access from the policy and re-validates it: nothing is restored blindly.
    if (event.lifecycle === 'rehire') next.grantedAt = {};
    // Exception grants end with the employment.
    if (event.lifecycle === 'rehire' || event.lifecycle === 'leaver') delete next.exceptionGrants;
    try {
      await deps.ledger.putPerson(next, current ?? null);
      if (event.lifecycle === 'rehire' || event.lifecycle === 'joiner') await cancelRetentionDeletes(deps, run.employeeId);
      return;
    } catch (e) {
      if (!(e instanceof ConditionFailed)) throw e;
    }
  }
  throw new ConditionFailed(`person ${run.employeeId} kept changing while run ${run.runId} started`);
}

/** A rehired person's pending hard deletes must not fire. */
async function cancelRetentionDeletes(deps: AppDeps, employeeId: string): Promise<void> {
  const policy = await deps.policy();
  for (const t of policy.managedTargets) {
    await deps.scheduler.delete(retentionScheduleName(employeeId, t.name));
    await deps.scheduler.delete(retentionRetryScheduleName(employeeId, t.name));
  }
}

/**
 * A termination supersedes the person's pending joiner / mover runs. `runs` may have been read a
 * moment earlier: every change is conditional on the status read, so a run that moved on since
 * is left alone, and a run recorded since waits behind this one in the person's FIFO group.
 */
async function supersedePending(deps: AppDeps, leaverRun: RunRecord, runs: RunRecord[]): Promise<void> {
  for (const r of runs) {
    if (r.runId === leaverRun.runId || !SUPERSEDABLE.includes(r.status) || r.lifecycle === 'leaver' || r.lifecycle === 'reconcile') continue;
    try {
      await deps.ledger.updateRun(
        r.runId,
        { status: 'SUPERSEDED', supersededBy: leaverRun.runId, statusReason: `superseded by termination run ${leaverRun.runId}` },
        SUPERSEDABLE,
      );
    } catch (e) {
      if (!(e instanceof ConditionFailed)) throw e;
      continue;
    }
    if (r.status === 'SCHEDULED') await deps.scheduler.delete(scheduleNameOfRun(r));
    if (r.executionName) await deps.workflows.stop(r.executionName, `superseded by ${leaverRun.runId}`);
  }
}
