/**
 * The one entry point a fired one-time schedule calls — EventBridge Scheduler's target in AWS,
 * the local scheduler's `tick()` locally: `dispatchScheduled(deps, { name, at, action })`.
 *
 *  - `start-run` `{ runId, employeeId }` → the run's `scheduled-run` message on the FIFO queue
 *    (group = employeeId, so it queues behind that person's other events; deduplication id =
 *    schedule name + time, so a redelivered firing is one message);
 *  - `retention-delete` `{ employeeId, target, runId, terminationVersion }` → hard-deletes the
 *    leaver's account on that target, after re-checking that the person is still terminated at
 *    the very version the delete was scheduled for (a rehire, a withdrawn termination or any
 *    newer HR event cancels it; a pending rehire postpones it), with an evidence bundle; a
 *    failure opens an exception for the target's owner (transient ones are retried first);
 *  - `expire-bundle` `{ employeeId, bundle }` (a time-bound bundle) or `{ employeeId, grantId }`
 *    (an exception grant) → removes it at its end and records the removal;
 *  - `approval-reminder` `{ approvalId }` → `remindApproval`; `{ holdId }` → a lapsed bulk-guard
 *    hold gets a new release request;
 *  - `reconcile` `{ employeeId, reason }` → `reconcilePerson`; `{ scope: 'nightly' }` → the
 *    nightly `reconcile` workflow, once per UTC day.
 *
 * Errors keep their names: a throttled or unavailable target that the use case does not absorb
 * is thrown, so the platform retries the invocation and finally dead-letters it.
 */
import * as z from 'zod';
import type { DesiredTarget } from '#core/access';
import { converge } from '#connectors/converge';
import type { ExecutionStepEvidence, IdpEvidenceEntry, ReconciliationTarget } from '#core/evidence';
import { isRetryable } from '#core/errors';
import { TERMINAL_RUN_STATUSES, type ExceptionRecord } from '#core/ledger';
import { parseOrThrow } from '#core/validation';
import { remindApproval } from './approvals.ts';
import type { AppDeps, ScheduledAction } from './ports.ts';
import { accountProfile } from './profile.ts';
import { updatePerson } from './people.ts';
import { openException } from './exceptions.ts';
import { retentionScheduleName } from './runs.ts';
import { renewHold } from './bulk-guard.ts';
import { expireExceptionGrant, type GrantExpiryOutcome } from './exception-grants.ts';
import { expireBundle, retentionRetryScheduleName, type ExpiryOutcome } from './time-bound.ts';
import { recordSystemEvidence } from './system-evidence.ts';
import { reconcilePerson, type ReconcilePersonResult } from './reconcile.ts';
import { withTargetLease } from './target-lease.ts';

export interface FiredSchedule {
  /** The schedule's name (deterministic: it identifies what fired). */
  name: string;
  /** When it was due (ISO); absent when the platform does not say. */
  at?: string;
  action: ScheduledAction;
}

const id = z.string().min(1).max(256);
const StartRunPayload = z.object({ runId: id, employeeId: id });
const RetentionPayload = z.object({
  employeeId: id,
  target: id,
  runId: id,
  terminationVersion: z.string().min(1).max(64),
  /** Retries after transient failures (0 on the first firing). */
  attempt: z.number().int().min(0).max(100).optional(),
  failures: z.array(z.string().max(600)).max(20).optional(),
});
const ExpirePayload = z.union([z.object({ employeeId: id, grantId: id }), z.object({ employeeId: id, bundle: id })]);
const ReminderPayload = z.union([z.object({ approvalId: id }).loose(), z.object({ holdId: id })]);
const ReconcilePayload = z.union([z.object({ employeeId: id, reason: z.string().min(1).max(512).optional() }), z.object({ scope: z.string().min(1).max(64) }).loose()]);

export type ScheduledOutcome =
  | { kind: 'start-run'; queued: string }
  | ({ kind: 'retention-delete' } & RetentionOutcome)
  | ({ kind: 'expire-bundle' } & (ExpiryOutcome | GrantExpiryOutcome))
  | { kind: 'approval-reminder'; sent: boolean; reason: string }
  | { kind: 'reconcile'; runId?: string; outcome: string };

export async function dispatchScheduled(deps: AppDeps, fired: FiredSchedule): Promise<ScheduledOutcome> {
  const { action } = fired;
  const where = `schedule ${fired.name}`;
  switch (action.kind) {
    case 'start-run': {
      const p = parseOrThrow(StartRunPayload, action.payload, `${where} payload`);
      await deps.queue.send(
        { kind: 'scheduled-run', runId: p.runId, employeeId: p.employeeId },
        { groupId: p.employeeId, deduplicationId: `${fired.name}@${fired.at ?? deps.clock.now().toISOString()}` },
      );
      return { kind: 'start-run', queued: p.runId };
    }
    case 'retention-delete': {
      const p = parseOrThrow(RetentionPayload, action.payload, `${where} payload`);
      return { kind: 'retention-delete', ...(await retentionDelete(deps, p, fired)) };
    }
    case 'expire-bundle': {
      const p = parseOrThrow(ExpirePayload, action.payload, `${where} payload`);
      const outcome =
        'grantId' in p
          ? await expireExceptionGrant(deps, { employeeId: p.employeeId, grantId: p.grantId, schedule: fired.name })
          : await expireBundle(deps, { employeeId: p.employeeId, bundle: p.bundle, schedule: fired.name });
      return { kind: 'expire-bundle', ...outcome };
    }
    case 'approval-reminder': {
      const p = parseOrThrow(ReminderPayload, action.payload, `${where} payload`);
      if ('holdId' in p && !('approvalId' in p)) {
        const r = await renewHold(deps, p.holdId as string);
        return { kind: 'approval-reminder', sent: r.renewed, reason: r.reason };
      }
      return { kind: 'approval-reminder', ...(await remindApproval(deps, { approvalId: (p as { approvalId: string }).approvalId })) };
    }
    case 'reconcile': {
      const p = parseOrThrow(ReconcilePayload, action.payload, `${where} payload`);
      if ('employeeId' in p) {
        const r: ReconcilePersonResult = await reconcilePerson(deps, {
          employeeId: p.employeeId as string,
          reason: (p.reason as string | undefined) ?? `scheduled reconcile (${fired.name})`,
          trigger: 'schedule',
          requestId: `${fired.name}@${fired.at ?? ''}`,
        });
        return { kind: 'reconcile', runId: r.runId, outcome: r.outcome };
      }
      const day = deps.clock.now().toISOString().slice(0, 10);
      const started = await deps.workflows.start('reconcile', `nightly-${day}`, {
        scope: (p as { scope: string }).scope,
        trigger: fired.name,
        requestedAt: deps.clock.now().toISOString(),
      });
      return { kind: 'reconcile', runId: `nightly-${day}`, outcome: started.alreadyStarted ? 'already started' : 'started' };
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Retention deletes

/** How often a delete that met a throttled or unavailable target is tried again, and after how long. */
export const RETENTION_RETRIES = 5;
const retryDelayMs = (attempt: number) => Math.min(24, 2 ** attempt) * 3_600_000; // 1 h, 2 h, 4 h, … capped at a day


export type RetentionOutcome =
  | { outcome: 'deleted' | 'already-absent'; evidence: string; accountId?: string }
  | { outcome: 'cancelled'; reason: string }
  | { outcome: 'postponed' | 'retrying'; reason: string; at: string }
  | { outcome: 'failed'; reason: string; evidence: string; exceptionId: string };

type RetentionInput = z.infer<typeof RetentionPayload>;

export async function retentionDelete(deps: AppDeps, input: RetentionInput, fired: FiredSchedule): Promise<RetentionOutcome> {
  const policy = await deps.policy();
  const { employeeId, target } = input;
  const cancel = (reason: string): RetentionOutcome => {
    deps.metrics.put('RetentionDeleteCancelled', 1, 'Count', { Target: target });
    return { outcome: 'cancelled', reason };
  };
  // Re-check at the moment of deleting: the schedule was made weeks or months ago.
  const person = await deps.ledger.getPerson(employeeId);
  if (!person) return cancel(`person ${employeeId} is not in the ledger`);
  if (person.status !== 'terminated') return cancel(`${employeeId} is ${person.status} again (rehired or the termination was withdrawn): nothing is deleted`);
  if (person.version !== input.terminationVersion) {
    return cancel(`a newer HR event (version ${person.version}) was applied after the termination (version ${input.terminationVersion}): its own run decides`);
  }
  const t = policy.managedTargets.find((x) => x.name === target);
  if (!t) return cancel(`target ${target} is no longer managed by jml`);
  if (t.mode === 'shadow') return cancel(`target ${target} is in shadow mode: jml reports, it does not delete`);
  const now = deps.clock.now();
  const runs = await deps.ledger.listRunsByEmployee(employeeId);
  const rehire = runs.find((r) => (r.lifecycle === 'joiner' || r.lifecycle === 'rehire') && !TERMINAL_RUN_STATUSES.has(r.status));
  if (rehire) {
    // If the rehire goes ahead it cancels this delete; if it is withdrawn, the delete still happens.
    const at = new Date(Math.max(Date.parse(rehire.effectiveAt), now.getTime()) + 86_400_000);
    await deps.scheduler.upsertOnce(retentionScheduleName(employeeId, target), at, { kind: 'retention-delete', payload: { ...input } });
    deps.metrics.put('RetentionDeletePostponed', 1, 'Count', { Target: target });
    return { outcome: 'postponed', reason: `a ${rehire.lifecycle} run (${rehire.runId}, ${rehire.status}) is pending`, at: at.toISOString() };
  }

  const connector = deps.connectors.get(target);
  const linkIds = person.links[target] ? [person.links[target]!] : [];
  const desired: DesiredTarget = { target, kind: t.kind, mode: t.mode, account: 'absent', entitlements: [] };
  const receivedAt = now.toISOString();
  const attempt = input.attempt ?? 0;
  const priorFailures = input.failures ?? [];
  const trigger = { trigger: 'retention-delete', schedule: fired.name, at: fired.at ?? null, employeeId, target, leaverRunId: input.runId, terminationVersion: input.terminationVersion, retentionDays: t.retentionDays, attempt };
  const timeline = [
    { phase: 'Terminated', at: input.terminationVersion, note: `leaver run ${input.runId}` },
    ...priorFailures.map((f, i) => ({ phase: 'DeleteAttemptFailed', at: receivedAt, note: `attempt ${i + 1}: ${f}` })),
    { phase: 'RecheckedPerson', at: receivedAt, note: `still terminated at version ${person.version}; no rehire pending` },
  ];
  const startedAt = deps.clock.now().toISOString();
  let step: ExecutionStepEvidence;
  let accountId: string | undefined;
  let wasEnabled = false;
  try {
    const profile = await accountProfile(deps.ledger, person);
    const result = await withTargetLease(deps, { employeeId, target, holder: `retention delete ${fired.name}` }, () => converge(connector, profile, desired, { linkIds }));
    accountId = result.before?.id;
    wasEnabled = result.before?.status === 'enabled';
    step = { stepId: `1-${target}-retention-delete`, target, phase: 'retention-delete', startedAt, finishedAt: deps.clock.now().toISOString(), outcome: 'ok', changes: result.changes, writes: result.writes };
  } catch (e) {
    const err = e as Error;
    const failure = `${err.name}: ${err.message}`;
    if (isRetryable(err) && attempt < RETENTION_RETRIES) {
      const at = new Date(now.getTime() + retryDelayMs(attempt));
      await deps.scheduler.upsertOnce(retentionRetryScheduleName(employeeId, target), at, {
        kind: 'retention-delete',
        payload: { ...input, attempt: attempt + 1, failures: [...priorFailures, failure.slice(0, 600)].slice(-20) },
      });
      deps.metrics.put('RetentionDeleteRetry', 1, 'Count', { Target: target });
      return { outcome: 'retrying', reason: failure, at: at.toISOString() };
    }
    step = { stepId: `1-${target}-retention-delete`, target, phase: 'retention-delete', startedAt, finishedAt: deps.clock.now().toISOString(), outcome: 'error', changes: [], writes: 0, error: { name: err.name, message: err.message } };
    const exception = await openException(deps, {
      exceptionId: `exc-retention-${input.runId}-${target}`.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 128),
      employeeId,
      target,
      owner: t.owner.email,
      kind: 'step_failed',
      reason: `${target}: the retention hard delete of ${employeeId}'s account failed after ${attempt + 1} attempt(s) — ${failure}`,
      evidence: { trigger, failures: [...priorFailures, failure] },
    });
    const evidence = await recordSystemEvidence(deps, {
      kind: 'retention',
      triggerKey: `${employeeId}|${target}|${input.terminationVersion}`,
      person,
      lifecycle: 'leaver',
      status: 'EXCEPTION_OPEN',
      trigger,
      receivedAt,
      steps: [step],
      exceptions: [exception],
      timeline: [...timeline, { phase: 'Execute', at: step.finishedAt!, note: failure }],
    });
    deps.metrics.put('RetentionDeleteFailed', 1, 'Count', { Target: target });
    return { outcome: 'failed', reason: failure, evidence: evidence.prefix, exceptionId: exception.exceptionId };
  }

  // Verify: the account is gone (read again, never trusted from the write).
  let verification: ReconciliationTarget;
  try {
    const left = await connector.findAccounts({ employeeId, linkIds });
    verification = left.length
      ? { target, mode: t.mode, result: 'drift', desiredStatus: 'absent', accountId: left[0]!.id, actualStatus: left[0]!.status, note: 'the account still exists after the delete' }
      : { target, mode: t.mode, result: 'match', desiredStatus: 'absent', note: accountId ? `account ${accountId} deleted` : 'no account to delete' };
  } catch (e) {
    verification = { target, mode: t.mode, result: 'unreachable', desiredStatus: 'absent', note: `${(e as Error).name}: ${(e as Error).message}` };
  }
  const exceptions: ExceptionRecord[] = [];
  if (verification.result === 'drift') {
    exceptions.push(
      await openException(deps, {
        exceptionId: `exc-retention-${input.runId}-${target}`.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 128),
        employeeId,
        target,
        owner: t.owner.email,
        kind: 'step_failed',
        reason: `${target}: ${employeeId}'s account ${verification.accountId} still exists after its retention hard delete`,
        evidence: { trigger, verification },
      }),
    );
  }
  if (wasEnabled) {
    exceptions.push(
      await openException(deps, {
        exceptionId: `exc-retention-enabled-${input.runId}-${target}`.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 128),
        employeeId,
        target,
        owner: t.owner.email,
        kind: 'leaver_enabled',
        reason: `${target}: ${employeeId} left, yet account ${accountId} was enabled when its retention delete ran; it was disabled, its sessions revoked and deleted`,
        evidence: { trigger, changes: step.changes },
      }),
    );
  }
  // The account no longer exists: forget the link.
  const after =
    accountId && person.links[target] === accountId
      ? ((await updatePerson(deps.ledger, employeeId, (p) => (p.links[target] === accountId ? (delete p.links[target], p) : null), () => deps.clock.now())) ?? person)
      : person;
  const idpEvidence: IdpEvidenceEntry[] = [];
  if (accountId && target === policy.idp.name && step.writes) {
    try {
      for (const e of await connector.auditEvidence(accountId, new Date(now.getTime() - 60_000).toISOString())) idpEvidence.push({ ...e, target });
    } catch (e) {
      timeline.push({ phase: 'IdpEvidence', at: deps.clock.now().toISOString(), note: `IdP audit log not available: ${(e as Error).name}` });
    }
  }
  const evidence = await recordSystemEvidence(deps, {
    kind: 'retention',
    triggerKey: `${employeeId}|${target}|${input.terminationVersion}`,
    person: after,
    lifecycle: 'leaver',
    status: exceptions.length ? 'EXCEPTION_OPEN' : 'COMPLETED',
    trigger,
    receivedAt,
    steps: [step],
    idpEvidence,
    reconciliation: { checkedAt: deps.clock.now().toISOString(), targets: [verification], ...(exceptions.length ? { exceptionsOpened: exceptions.map((x) => x.exceptionId) } : {}) },
    exceptions,
    timeline: [...timeline, { phase: 'Execute', at: step.finishedAt!, note: step.writes ? `deleted ${accountId}` : 'no account left to delete' }],
  });
  deps.metrics.put('RetentionDeletes', step.writes ? 1 : 0, 'Count', { Target: target });
  return { outcome: step.writes ? 'deleted' : 'already-absent', evidence: evidence.prefix, ...(accountId ? { accountId } : {}) };
}
