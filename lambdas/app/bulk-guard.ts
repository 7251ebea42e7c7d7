/**
 * The bulk-change guard: a broken HR feed must not terminate the company.
 *
 * Runs that disable or strip access — leavers, leaves of absence, movers who lose entitlements —
 * are counted in a sliding window of `policy.bulkGuard.windowMinutes`. The limit is the smaller
 * of `maxCount` and `maxPercent` of the active people, and never below `minCount` (5 % of a small
 * company would hold its second leaver). A run that would go over it is HELD, and the fallback approver gets one email with
 * one link: approving releases every run held under that hold (they start in order, through the
 * queue); rejecting ends them (SUPERSEDED, with the approver's rationale as the reason) and
 * changes nobody's access.
 *
 * Counting without transactions, safe under concurrent consumers. The window is cut into steps
 * (`windowMinutes / 12`, at least a minute) and each step has a counter in the ledger. A run is
 * admitted by one conditional addition to the current step's counter — "add one unless the
 * count would pass the room the earlier steps leave" — so two consumers can never both take the
 * last place. What admission reads (this run's own guard records, every step's counter in one
 * batch read, the cached count of active people the limit derives from) is read at once, in one
 * round trip — with the consumer's own first reads when its message says the run disables an
 * account; the first run of a window never waits for a recount — then one conditional update,
 * which admits the run. Its record, an approval decided by the guard itself (`requestId:
 * 'bulk-guard'`, under the run, named after its slot), is written while the consumer writes the
 * person, so the run's evidence shows the guard's decision next to the others. A run admitted
 * once stays admitted: a retried start finds its record under its run id. A crash between the
 * addition and the writes counts a run that was never admitted: the guard errs towards holding,
 * never towards letting a burst through. (A crash after the person is written and before the
 * record is leaves an admitted, counted run without its record: the retried start finds the
 * person already restricted and has nothing left to guard.)
 */
import { createHash, randomUUID } from 'node:crypto';
import { entitlementKey } from '#core/access';
import { desiredState } from '#core/desired-state';
import { statusAfter, type HrEvent } from '#core/hr-event';
import { ConditionFailed, type ApprovalRecord, type PersonRecord, type RunRecord } from '#core/ledger';
import type { Policy } from '#core/policy';
import type { ApprovalDetails } from './approval-views.ts';
import type { AppDeps } from './ports.ts';
import { bumpTime } from './people.ts';
import { activeExceptionGrants } from './exception-grants.ts';
import { decisionToken, mailApprovalOnce, scheduleReminder } from './standalone-approvals.ts';

/** Approval request id of the guard's per-run decision (a slot, or a hold awaiting release). */
export const GUARD_REQUEST_ID = 'bulk-guard';
/** Approval request id of a hold's release request (one per hold, decided by the fallback approver). */
export const RELEASE_REQUEST_ID = 'bulk-release';
/** Who decides the admissions within the limit. */
export const GUARD_APPROVER = 'bulk-change-guard';

const OPEN_HOLD_KEY = 'bulk-guard/open-hold';
const ACTIVE_PEOPLE_KEY = 'bulk-guard/active-people';
/** The active-people count is recounted (a ledger scan) at most this often. */
const ACTIVE_PEOPLE_MAX_AGE_MS = 60 * 60_000;
/** One recount at a time; a recounter that died frees it after this long. */
const RECOUNT_LEASE = 'bulk-guard/recount';
const RECOUNT_LEASE_MS = 30_000;
/** A held run's guard record waits this long for a release at most (the hold's link is renewed meanwhile). */
const HELD_RECORD_DAYS = 400;

const hashId = (...parts: string[]) => `apr_${createHash('sha256').update(parts.join('\n')).digest('hex').slice(0, 32)}`;
export const slotApprovalId = (step: number, bucket: number, n: number) => hashId('bulk-guard-slot', String(step), String(bucket), String(n));
export const heldApprovalId = (runId: string) => hashId('bulk-guard-held', runId);
/** An admitted run's record when its slot turned out to be recorded already (see admitRestrictingRun). */
export const conflictApprovalId = (runId: string) => hashId('bulk-guard-slot-taken', runId);
export const releaseApprovalId = (holdId: string) => hashId('bulk-guard-release', holdId);

interface GuardWindow {
  minutes: number;
  /** Minutes per step. */
  step: number;
  /** Steps in the window (the current one included). */
  steps: number;
  /** Index of the current step since the epoch. */
  bucket: number;
}

export function windowAt(policy: Policy, nowMs: number): GuardWindow {
  const minutes = policy.document.bulkGuard.windowMinutes;
  const step = Math.max(1, Math.floor(minutes / 12));
  return { minutes, step, steps: Math.ceil(minutes / step), bucket: Math.floor(nowMs / (step * 60_000)) };
}

/**
 * Why this run takes access away (null when it does not): a leaver, a leave of absence, or a
 * mover whose new desired state drops an entitlement or an account.
 */
export async function restrictionOf(deps: AppDeps, policy: Policy, person: PersonRecord | null, event: HrEvent): Promise<string | null> {
  if (!person || person.status === 'terminated') return null; // nothing to take away
  switch (event.lifecycle) {
    case 'leaver':
      return 'termination (disables every account)';
    case 'leave_of_absence':
      return person.status === 'active' ? 'leave of absence (suspends the identity account)' : null;
    case 'mover': {
      const now = deps.clock.now().toISOString();
      const options = { grantedAt: person.grantedAt, exceptionGrants: activeExceptionGrants(person, now), now };
      const before = desiredState({ worker: person.worker, status: person.status }, policy, options);
      const after = desiredState({ worker: event.worker, status: statusAfter(person.status, event.eventType) }, policy, options);
      if (!before.inScope || !after.inScope) return null; // out of scope is left alone, never stripped
      let removed = 0;
      const disabled: string[] = [];
      for (const b of before.targets) {
        const a = after.targets.find((t) => t.target === b.target);
        const kept = new Set((a?.entitlements ?? []).map(entitlementKey));
        removed += b.entitlements.filter((e) => !kept.has(entitlementKey(e))).length;
        if (b.account === 'enabled' && a && a.account !== 'enabled') disabled.push(b.target);
      }
      if (!removed && !disabled.length) return null;
      return `role change (removes ${removed} entitlement${removed === 1 ? '' : 's'}${disabled.length ? `, disables ${disabled.join(', ')}` : ''})`;
    }
    default:
      return null;
  }
}

export type Admission =
  /** `recorded`: the run's slot record, being written (the caller writes beside it, then waits for both). */
  | { outcome: 'admitted'; approvalId: string; note: string; recorded: Promise<void> }
  | { outcome: 'held'; holdId: string }
  | { outcome: 'rejected'; reason: string };

interface Limit {
  limit: number;
  active: number;
  text: string;
}

/** What admission decides from, read at once: the run's own guard records, every step's counter, the cached active-people count. */
export interface AdmissionReads {
  /** The moment of admission: the window is the one at this time. */
  now: Date;
  approvals: ApprovalRecord[];
  counts: number[];
  counted: ActiveCount | null;
}

/**
 * Reads what admission decides from, in one round trip. Needs only the run id, so a consumer
 * whose message says the run may take access away starts these reads with its own first reads.
 */
export async function readAdmission(deps: AppDeps, policy: Policy, runId: string): Promise<AdmissionReads> {
  const now = deps.clock.now();
  const w = windowAt(policy, now.getTime());
  const steps = Array.from({ length: w.steps }, (_, i) => w.bucket - w.steps + 1 + i);
  const [approvals, counts, counted] = await Promise.all([
    deps.ledger.listApprovals(runId),
    deps.ledger.getCounters(steps.map((b) => counterKey(w.step, b))),
    deps.ledger.getMeta<ActiveCount>(ACTIVE_PEOPLE_KEY),
  ]);
  return { now, approvals, counts, counted };
}

/** Admits the run within the limit (claiming a slot), or holds it. `reads`: admission's reads, when already started. */
export async function admitRestrictingRun(deps: AppDeps, policy: Policy, run: RunRecord, restriction: string, reads?: Promise<AdmissionReads>): Promise<Admission> {
  const { now, approvals, counts, counted } = await (reads ?? readAdmission(deps, policy, run.runId));
  const w = windowAt(policy, now.getTime());
  const mine = approvals.filter((a) => a.requestId === GUARD_REQUEST_ID);
  const admitted = mine.find((a) => a.status === 'APPROVED');
  if (admitted) return { outcome: 'admitted', approvalId: admitted.approvalId, note: admitted.rationale ?? 'admitted', recorded: Promise.resolve() };
  const rejected = mine.find((a) => a.status === 'REJECTED');
  if (rejected) return { outcome: 'rejected', reason: `the fallback approver rejected its release: ${rejected.rationale ?? ''}` };
  // Held once, held until the fallback approver decides (a retried start must not slip through).
  if (mine.some((a) => a.status === 'PENDING')) return hold(deps, policy, run, restriction, 'held earlier');

  const past = counts.slice(0, -1).reduce((a, b) => a + b, 0);
  // The first run of a window always passes (a limit below one would hold every leaver), so it
  // never waits for the active-people count when that is not cached: only a second run needs it.
  let limit = counted && isFresh(deps, counted) ? limitOf(policy, counted.count) : undefined;
  const windowEnd = new Date((w.bucket + w.steps) * w.step * 60_000).toISOString();
  const ttl = Math.floor(Date.parse(windowEnd) / 1000) + 86_400;
  for (;;) {
    const room = limit ? Math.max(1, limit.limit) - past : 1 - past;
    if (room < 1 && !limit) {
      limit = limitOf(policy, await activePeople(deps, counted));
      continue;
    }
    const added = room < 1 ? { added: false, value: counts.at(-1)! } : await deps.ledger.addToCounter(counterKey(w.step, w.bucket), 1, { max: room, ttlEpochSeconds: ttl });
    if (!added.added && !limit) {
      limit = limitOf(policy, await activePeople(deps, counted));
      continue;
    }
    if (!added.added) {
      deps.metrics.put('BulkGuardHeld', 1, 'Count', { Workflow: run.lifecycle });
      const total = past + added.value + 1;
      return hold(deps, policy, run, restriction, `${total} runs that take access away within ${w.minutes} minutes exceed the limit of ${limit!.limit} (${limit!.text})`);
    }
    // Admitted: the addition decided it. Its record is written while the caller writes the person.
    const slot = added.value;
    const approvalId = slotApprovalId(w.step, w.bucket, slot);
    const note = `within the bulk-change limit: run ${past + slot} of at most ${limit ? limit.limit : 'the limit'} that take access away within ${w.minutes} minutes`;
    const record = (id: string, rationale: string) =>
      deps.ledger.putApproval({
        approvalId: id,
        runId: run.runId,
        employeeId: run.employeeId,
        requestId: GUARD_REQUEST_ID,
        approver: GUARD_APPROVER,
        approverRole: 'fallback',
        status: 'APPROVED',
        requestedAt: now.toISOString(),
        decidedAt: now.toISOString(),
        expiresAt: windowEnd,
        rationale,
        request: { kind: 'bulkGuard', restriction, window: { minutes: w.minutes, step: w.step, bucket: w.bucket }, slot, ...(limit ? { limit: limit.limit, activePeople: limit.active } : {}) },
      });
    const recorded = record(approvalId, note).catch(async (e: unknown) => {
      if (!(e instanceof ConditionFailed)) throw e;
      // The slot is another run's: the counter lost counts (only a restore of the table can do
      // that). The run stays admitted; the counter gets the lost count back, so later runs are
      // held sooner, never later; the record goes under the run.
      deps.metrics.put('BulkGuardSlotConflict', 1, 'Count');
      await deps.ledger.addToCounter(counterKey(w.step, w.bucket), 1, { ttlEpochSeconds: ttl });
      await record(conflictApprovalId(run.runId), `${note}; slot ${slot} was already recorded for another run, so the window's count was one short and was corrected`);
    });
    return { outcome: 'admitted', approvalId, note, recorded };
  }
}

/** The counter of one window step: runs admitted in it. */
const counterKey = (step: number, bucket: number) => `bulk-guard/admitted/${step}/${bucket}`;

function limitOf(policy: Policy, active: number): Limit {
  const g = policy.document.bulkGuard;
  const limit = Math.max(g.minCount, Math.min(g.maxCount, Math.floor((active * g.maxPercent) / 100)));
  return { limit, active, text: `the smaller of ${g.maxCount} and ${g.maxPercent}% of ${active} active people, and never fewer than ${g.minCount}` };
}

interface ActiveCount {
  count: number;
  countedAt: string;
}

const isFresh = (deps: AppDeps, c: ActiveCount) => deps.clock.now().getTime() - Date.parse(c.countedAt) < ACTIVE_PEOPLE_MAX_AGE_MS;

/**
 * People not terminated, from a ledger scan cached for an hour (the guard needs a size, not a
 * census). A burst of terminations asks for it from many consumers at once: one of them takes
 * the recount lease and scans; the others use the last count while it is stale, or — when there
 * has never been one — wait for that scan instead of each scanning every person themselves.
 * Called only when admission's own read of the count found it stale or absent.
 */
async function activePeople(deps: AppDeps, cached: ActiveCount | null): Promise<number> {
  // `cached` is what admission read with its counters (stale here, or absent): no second read.
  const holder = `recount ${randomUUID()}`;
  const at = deps.clock.now().getTime();
  const lease = await deps.ledger.acquireLease(RECOUNT_LEASE, holder, at + RECOUNT_LEASE_MS, at);
  if (!lease.acquired) {
    if (cached) return cached.count;
    for (const started = Date.now(); Date.now() - started < RECOUNT_LEASE_MS; ) {
      await new Promise((r) => setTimeout(r, 100));
      const counted = await deps.ledger.getMeta<ActiveCount>(ACTIVE_PEOPLE_KEY);
      if (counted) return counted.count;
    }
  }
  try {
    // Counted by the previous holder while this one waited for its turn: done.
    const recounted = await deps.ledger.getMeta<ActiveCount>(ACTIVE_PEOPLE_KEY);
    if (recounted && isFresh(deps, recounted)) return recounted.count;
    let count = 0;
    let cursor: string | undefined;
    do {
      const page = await deps.ledger.listPersons(cursor, 1000);
      count += page.persons.filter((p) => p.status !== 'terminated').length;
      cursor = page.nextCursor;
    } while (cursor);
    const now = deps.clock.now().getTime();
    await deps.ledger.putMeta(ACTIVE_PEOPLE_KEY, { count, countedAt: new Date(now).toISOString() }, Math.floor(now / 1000) + 86_400);
    deps.metrics.put('BulkGuardRecount', 1, 'Count');
    return count;
  } finally {
    if (lease.acquired) await deps.ledger.releaseLease(RECOUNT_LEASE, holder);
  }
}

// ---------------------------------------------------------------------------------------------
// Holds

interface HeldRequest {
  kind: 'bulkGuard';
  holdId: string;
  restriction: string;
  why: string;
}

async function hold(deps: AppDeps, policy: Policy, run: RunRecord, restriction: string, why: string): Promise<Admission> {
  const now = deps.clock.now();
  const fallback = policy.document.company.fallbackApprover;
  const recordId = heldApprovalId(run.runId);
  const existing = await deps.ledger.getApproval(recordId);
  const holdId = existing ? (existing.request as HeldRequest).holdId : await openHoldId(deps, policy);
  if (!existing) {
    // The run's own record first: a crash before the status change leaves a run that is held on
    // its next start, never one that slips through.
    await deps.ledger.putApproval({
      approvalId: recordId,
      runId: run.runId,
      employeeId: run.employeeId,
      requestId: GUARD_REQUEST_ID,
      approver: fallback,
      approverRole: 'fallback',
      status: 'PENDING',
      requestedAt: now.toISOString(),
      expiresAt: new Date(now.getTime() + HELD_RECORD_DAYS * 86_400_000).toISOString(),
      request: { kind: 'bulkGuard', holdId, restriction, why } satisfies HeldRequest,
    });
  }
  try {
    await deps.ledger.updateRun(
      run.runId,
      {
        status: 'HELD',
        statusReason: `held by the bulk-change guard (hold ${holdId}): ${why}; waiting for ${fallback} to release or reject`,
        addTimeline: [{ phase: 'HeldByBulkGuard', at: bumpTime(now), note: `${restriction}; hold ${holdId}` }],
      },
      ['RECEIVED', 'SCHEDULED'],
    );
  } catch (e) {
    if (!(e instanceof ConditionFailed)) throw e;
  }
  await requestRelease(deps, policy, holdId);
  return { outcome: 'held', holdId };
}

/** The hold new runs join: the open one while its request is pending, else a new one. */
async function openHoldId(deps: AppDeps, policy: Policy): Promise<string> {
  const now = deps.clock.now();
  const isOpen = (a: ApprovalRecord | null) => !a || (a.status === 'PENDING' && now.getTime() < Date.parse(a.expiresAt));
  const open = await deps.ledger.getMeta<{ holdId: string }>(OPEN_HOLD_KEY);
  if (open?.holdId && isOpen(await deps.ledger.getApproval(releaseApprovalId(open.holdId)))) return open.holdId;
  // Named after the window step, so runs held at the same moment by different consumers share it.
  const w = windowAt(policy, now.getTime());
  for (let i = 0; ; i++) {
    const holdId = `hold-${w.step}m-${w.bucket}${i ? `-${i}` : ''}`;
    if (isOpen(await deps.ledger.getApproval(releaseApprovalId(holdId)))) {
      await deps.ledger.putMeta(OPEN_HOLD_KEY, { holdId }, Math.floor(now.getTime() / 1000) + HELD_RECORD_DAYS * 86_400);
      return holdId;
    }
  }
}

interface Member {
  run: RunRecord;
  record: ApprovalRecord;
}

/** HELD runs waiting under this hold. */
export async function heldMembers(deps: AppDeps, holdId: string): Promise<Member[]> {
  const out: Member[] = [];
  for (const run of await deps.ledger.listRunsByStatus('HELD')) {
    const record = await deps.ledger.getApproval(heldApprovalId(run.runId));
    if (record?.status === 'PENDING' && (record.request as HeldRequest | undefined)?.holdId === holdId) out.push({ run, record });
  }
  return out;
}

function describeRun(run: RunRecord): string {
  return `${run.employeeId} (${run.lifecycle}, effective ${run.effectiveAt.slice(0, 10)})`;
}

function releaseDetails(policy: Policy, holdId: string, members: Member[]): ApprovalDetails {
  const g = policy.document.bulkGuard;
  const n = members.length;
  const listed = members.slice(0, 20).map((m) => describeRun(m.run));
  const why = (members[0]?.record.request as HeldRequest | undefined)?.why ?? 'too many runs that take access away at once';
  return {
    kind: 'dataHandling',
    lifecycle: 'bulk hold',
    person: { employeeId: holdId, name: `${n} ${n === 1 ? 'person' : 'people'}`, department: 'several', jobCode: 'several', location: 'several', employmentType: 'several' },
    bundles: [],
    entitlements: [],
    dataHandling: { action: 'bulkRelease', description: `the release of ${n} held run${n === 1 ? '' : 's'} that take access away` },
    privileged: true,
    reason:
      `The bulk-change guard held these runs: ${why}. A broken HR feed looks like this. ` +
      `Approving starts them now (accounts are disabled or access removed as HR says); rejecting ends them and changes nobody's access. ` +
      `Held: ${listed.join(', ')}${n > listed.length ? ` and ${n - listed.length} more` : ''}. ` +
      `Limit: ${g.maxCount} runs or ${g.maxPercent}% of active people within ${g.windowMinutes} minutes.`,
    escalation: false,
  };
}

/** Creates (or refreshes, while pending) the hold's release request and mails its link once. */
async function requestRelease(deps: AppDeps, policy: Policy, holdId: string): Promise<void> {
  const now = deps.clock.now();
  const approvalId = releaseApprovalId(holdId);
  const existing = await deps.ledger.getApproval(approvalId);
  if (existing && existing.status !== 'PENDING') return;
  const members = await heldMembers(deps, holdId);
  const fallback = policy.document.company.fallbackApprover;
  const record: ApprovalRecord = {
    ...(existing ?? {
      approvalId,
      runId: holdId,
      employeeId: holdId,
      requestId: RELEASE_REQUEST_ID,
      approver: fallback,
      approverRole: 'fallback' as const,
      status: 'PENDING' as const,
      requestedAt: now.toISOString(),
      expiresAt: new Date(now.getTime() + policy.document.approvals.windowHours * 3_600_000).toISOString(),
    }),
    taskToken: decisionToken('bulk-release', holdId),
    request: releaseDetails(policy, holdId, members),
  };
  try {
    await deps.ledger.putApproval(record);
  } catch (e) {
    if (!(e instanceof ConditionFailed)) throw e;
    return; // decided in the meantime
  }
  if (await mailApprovalOnce(deps, policy, record, 'request')) {
    await scheduleReminder(deps, policy, record);
    // When the link lapses undecided, the held runs get a new request (they are never released
    // or dropped by a timeout).
    await deps.scheduler.upsertOnce(`jml-hold-${holdId}`.slice(0, 64), new Date(record.expiresAt), { kind: 'approval-reminder', payload: { holdId } });
    deps.metrics.put('BulkGuardHoldOpened', 1, 'Count');
  }
}

/**
 * The hold's link lapsed without a decision: the runs stay held under a new hold with a new
 * request and email (never released or dropped by a timeout).
 */
export async function renewHold(deps: AppDeps, holdId: string): Promise<{ renewed: boolean; holdId?: string; reason: string }> {
  const policy = await deps.policy();
  const approval = await deps.ledger.getApproval(releaseApprovalId(holdId));
  if (!approval || approval.status !== 'PENDING') return { renewed: false, reason: `hold ${holdId} is ${approval?.status ?? 'unknown'}` };
  if (deps.clock.now().getTime() < Date.parse(approval.expiresAt)) return { renewed: false, reason: `hold ${holdId} is still open` };
  const members = await heldMembers(deps, holdId);
  try {
    await deps.ledger.putApproval({ ...approval, status: 'EXPIRED' });
  } catch (e) {
    if (!(e instanceof ConditionFailed)) throw e;
    return { renewed: false, reason: `hold ${holdId} was decided just now` };
  }
  if (!members.length) return { renewed: false, reason: `no run is held under ${holdId} any more` };
  const next = await openHoldId(deps, policy);
  for (const m of members) {
    await deps.ledger.putApproval({ ...m.record, request: { ...(m.record.request as HeldRequest), holdId: next } });
    await deps.ledger.updateRun(m.run.runId, { statusReason: `${m.run.statusReason ?? 'held by the bulk-change guard'} — moved to hold ${next} after ${holdId} lapsed` }, ['HELD']);
  }
  await requestRelease(deps, policy, next);
  return { renewed: true, holdId: next, reason: `${members.length} held run(s) moved to ${next}` };
}

/**
 * The fallback approver decided: release (each held run returns to RECEIVED and is queued in its
 * person's group; the start finds the run's guard record approved) or reject (each ends
 * SUPERSEDED with the rationale). Each run's own guard record is decided with a conditional
 * write, so a run is released or rejected once even if the decision is delivered twice.
 */
export async function decideHold(deps: AppDeps, holdId: string, approval: ApprovalRecord): Promise<'ok' | 'gone'> {
  const now = deps.clock.now();
  const released = approval.status === 'APPROVED';
  const who = approval.approver;
  const because = approval.rationale ? `: ${approval.rationale}` : '';
  let changed = 0;
  for (const { run } of await heldMembers(deps, holdId)) {
    try {
      await deps.ledger.decideApproval(
        heldApprovalId(run.runId),
        { status: approval.status, decidedAt: approval.decidedAt ?? now.toISOString(), rationale: `${released ? 'released' : 'release rejected'} by ${who} (hold ${holdId})${because}` },
        now.toISOString(),
      );
    } catch (e) {
      if (!(e instanceof ConditionFailed)) throw e;
      continue;
    }
    try {
      if (released) {
        await deps.ledger.updateRun(
          run.runId,
          {
            status: 'RECEIVED',
            statusReason: `released by ${who} (hold ${holdId})`,
            addTimeline: [{ phase: 'ReleasedByApprover', at: bumpTime(now), note: `${who}${because}` }],
          },
          ['HELD'],
        );
        await deps.queue.send({ kind: 'scheduled-run', runId: run.runId, employeeId: run.employeeId }, { groupId: run.employeeId, deduplicationId: `release-${run.runId}` });
      } else {
        await deps.ledger.updateRun(
          run.runId,
          {
            status: 'SUPERSEDED',
            supersededBy: approval.approvalId,
            statusReason: `bulk-change guard: ${who} rejected the release${because}; no access was changed`,
            addTimeline: [{ phase: 'ReleaseRejected', at: bumpTime(now), note: `${who}${because}` }],
          },
          ['HELD'],
        );
      }
      changed += 1;
    } catch (e) {
      if (!(e instanceof ConditionFailed)) throw e;
    }
  }
  const open = await deps.ledger.getMeta<{ holdId: string }>(OPEN_HOLD_KEY);
  if (open?.holdId === holdId) await deps.ledger.putMeta(OPEN_HOLD_KEY, null);
  await deps.scheduler.delete(`jml-hold-${holdId}`.slice(0, 64));
  deps.metrics.put(released ? 'BulkGuardReleased' : 'BulkGuardRejected', changed, 'Count');
  return changed ? 'ok' : 'gone';
}
