/**
 * The queue consumer's use case: turn a recorded HR event into a running workflow — or into a
 * STALE / SUPERSEDED / SCHEDULED run — exactly once per run id.
 *
 * Ordering: the FIFO queue keeps one person's events in order, and the person's `version`
 * (`occurredAt` of the last applied event) refuses an older event that arrives late. The person
 * record is updated only when the run actually starts (a future-dated event must not change
 * anybody's access early).
 */
import { durationMs } from '#core/policy';
import { statusAfter, type HrEvent } from '#core/hr-event';
import { ConditionFailed, TERMINAL_RUN_STATUSES, type PersonRecord, type RunRecord, type RunStatus } from '#core/ledger';
import type { AppDeps } from './ports.ts';
import { bumpTime } from './people.ts';
import { WORKFLOW_OF, retentionScheduleName } from './runs.ts';

export type StartOutcome =
  | { outcome: 'started'; runId: string; workflow: string; alreadyStarted: boolean }
  | { outcome: 'scheduled'; runId: string; at: string }
  | { outcome: 'stale' | 'duplicate' | 'missing'; runId: string; reason: string };

/** Runs that a termination supersedes (not yet executing anything irreversible). */
const SUPERSEDABLE: readonly RunStatus[] = ['RECEIVED', 'SCHEDULED', 'HELD', 'PLANNED', 'AWAITING_APPROVAL'];

export function scheduleNameFor(employeeId: string, lifecycle: string): string {
  return `jml-run-${employeeId}-${lifecycle}`.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 64);
}

export async function startRun(deps: AppDeps, input: { runId: string; scheduled?: boolean }): Promise<StartOutcome> {
  const { ledger } = deps;
  const run = await ledger.getRun(input.runId);
  if (!run) return { outcome: 'missing', runId: input.runId, reason: 'no run record for this message' };
  if (TERMINAL_RUN_STATUSES.has(run.status) || run.executionName) {
    return { outcome: 'duplicate', runId: run.runId, reason: `run is already ${run.status}` };
  }
  if (run.status === 'SCHEDULED' && !input.scheduled) {
    return { outcome: 'duplicate', runId: run.runId, reason: 'run is scheduled for its effective date' };
  }
  const policy = await deps.policy();
  const event = run.event as HrEvent;
  const now = deps.clock.now();
  const person = await ledger.getPerson(run.employeeId);

  if (person && event.occurredAt < person.version) {
    await ledger.updateRun(run.runId, {
      status: 'STALE',
      statusReason: `event occurred at ${event.occurredAt}, before the person's applied version ${person.version}`,
    });
    return { outcome: 'stale', runId: run.runId, reason: 'older than the applied version' };
  }

  // Effective dating: a future change runs at its time (a joiner at the policy's lead time before
  // the start); a backdated one runs now.
  if (!input.scheduled) {
    let at = Date.parse(event.effectiveAt);
    if (event.lifecycle === 'joiner' || event.lifecycle === 'rehire') at -= durationMs(policy.document.joiner.leadTime);
    if (at > now.getTime()) {
      const name = scheduleNameFor(run.employeeId, event.lifecycle);
      await deps.scheduler.upsertOnce(name, new Date(at), { kind: 'start-run', payload: { runId: run.runId, employeeId: run.employeeId } });
      await ledger.updateRun(run.runId, {
        status: 'SCHEDULED',
        statusReason: `effective ${event.effectiveAt}; starts ${new Date(at).toISOString()} (schedule ${name})`,
      });
      return { outcome: 'scheduled', runId: run.runId, at: new Date(at).toISOString() };
    }
  }

  if (event.lifecycle === 'leaver') await supersedePending(deps, run);

  await applyToPerson(deps, run, event, person);
  const workflow = WORKFLOW_OF[event.lifecycle];
  const started = await deps.workflows.start(workflow, run.runId, { runId: run.runId, employeeId: run.employeeId, lifecycle: event.lifecycle });
  await ledger.updateRun(run.runId, {
    executionName: run.runId,
    timeline: [...(run.timeline ?? []), { phase: 'Ingest', at: bumpTime(now), note: `started ${workflow} workflow` }],
  });
  return { outcome: 'started', runId: run.runId, workflow, alreadyStarted: started.alreadyStarted };
}

async function applyToPerson(deps: AppDeps, run: RunRecord, event: HrEvent, existing: PersonRecord | null): Promise<void> {
  const now = deps.clock.now();
  for (let attempt = 0; attempt < 8; attempt++) {
    const current = attempt === 0 ? existing : await deps.ledger.getPerson(run.employeeId);
    if (current && event.occurredAt < current.version) return; // a newer event won the race; stale handled by its own run
    const next: PersonRecord = {
      employeeId: run.employeeId,
      worker: event.worker,
      status: statusAfter(current?.status, event.eventType),
      version: event.occurredAt,
      lastRunId: run.runId,
      links: current?.links ?? {},
      grantedAt: current?.grantedAt ?? {},
      approvedBundles: event.lifecycle === 'rehire' ? [] : (current?.approvedBundles ?? []),
      rejectedBundles: event.lifecycle === 'rehire' ? [] : (current?.rejectedBundles ?? []),
      updatedAt: bumpTime(now, current?.updatedAt),
    };
    // A rehire re-derives access from the policy and re-validates it: nothing is restored blindly.
    if (event.lifecycle === 'rehire') next.grantedAt = {};
    try {
      await deps.ledger.putPerson(next, current?.updatedAt ?? null);
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
  for (const t of policy.managedTargets) await deps.scheduler.delete(retentionScheduleName(employeeId, t.name));
}

/** A termination supersedes the person's pending joiner / mover runs. */
async function supersedePending(deps: AppDeps, leaverRun: RunRecord): Promise<void> {
  const runs = await deps.ledger.listRunsByEmployee(leaverRun.employeeId);
  for (const r of runs) {
    if (r.runId === leaverRun.runId || !SUPERSEDABLE.includes(r.status) || r.lifecycle === 'leaver') continue;
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
    if (r.status === 'SCHEDULED') await deps.scheduler.delete(scheduleNameFor(r.employeeId, r.lifecycle));
    if (r.executionName) await deps.workflows.stop(r.executionName, `superseded by ${leaverRun.runId}`);
  }
}
