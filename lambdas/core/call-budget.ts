/**
 * A target's call budget, shared by every run: who may spend the target's rate limit, and when.
 *
 * The connector's rate governor paces the calls of one process. That is not enough under a burst:
 * a thousand leavers' steps all start at once, every step's calls queue in the governor, and the
 * steps at the end of the line wait past their Task timeout, are retried, and their first
 * attempts' calls still spend the budget (and in AWS every Lambda has its own governor, so no one
 * sees the line at all). So a run reserves the calls it is about to make from one schedule per
 * target in the ledger before it starts them, and the workflow waits for its slot in a `Wait`
 * state — no Lambda running, no timeout, one state transition.
 *
 * The schedule is GCRA (the generic cell rate algorithm): `until` is the moment every call
 * already promised has been paced out at the target's rate; a reservation of n calls starts at
 * `max(now, until − burst × interval)` and moves `until` n intervals on. Two lanes: the restrict lane
 * (a leaver's disable and session revocation) is served before everything else — it waits only
 * behind earlier restricts (`restrictUntil`) while still counting in the common schedule, so a
 * termination never queues behind other runs' routine work.
 */

export type CallLane = 'restrict' | 'routine';

export interface CallSchedule {
  /** Epoch ms by which every call promised so far (both lanes) has been paced out. */
  until: number;
  /** The same, for the restrict lane alone. */
  restrictUntil: number;
}

export interface CallReservation {
  calls: number;
  requestsPerMinute: number;
  /** Calls that may start ahead of the exact pace (default: `defaultBurst`). */
  burst?: number;
  lane: CallLane;
  nowMs: number;
}

/**
 * A tenth of a minute's budget may go ahead of the exact pace: an idle target serves a run at
 * once, and a burst's first calls go out without waiting.
 */
export const defaultBurst = (requestsPerMinute: number) => Math.ceil(requestsPerMinute / 10);

const intervalMs = (requestsPerMinute: number) => 60_000 / requestsPerMinute;

/** Where a reservation starts, and the schedule after it. */
export function reserveCalls(schedule: CallSchedule | null, r: CallReservation): { startAtMs: number; schedule: CallSchedule } {
  if (!(r.calls > 0) || !(r.requestsPerMinute > 0)) throw new RangeError(`a reservation needs calls > 0 and a rate > 0 (got ${r.calls} at ${r.requestsPerMinute}/min)`);
  const step = intervalMs(r.requestsPerMinute);
  const burst = r.burst ?? defaultBurst(r.requestsPerMinute);
  if (!(burst >= 0)) throw new RangeError(`a reservation's burst must be ≥ 0 (got ${burst})`);
  const tolerance = burst * step;
  const s = schedule ?? { until: r.nowMs, restrictUntil: r.nowMs };
  const cost = reservationCostMs(r);
  if (r.lane === 'restrict') {
    const startAtMs = Math.max(r.nowMs, s.restrictUntil - tolerance);
    return {
      startAtMs,
      schedule: { restrictUntil: Math.max(s.restrictUntil, startAtMs) + cost, until: Math.max(s.until, r.nowMs) + cost },
    };
  }
  const startAtMs = Math.max(r.nowMs, s.until - tolerance);
  return { startAtMs, schedule: { restrictUntil: s.restrictUntil, until: Math.max(s.until, startAtMs) + cost } };
}

/**
 * A slot as the timestamp a Step Functions `Wait` state takes (RFC 3339, whole seconds: Step
 * Functions truncates milliseconds). A slot in the future is rounded up, so no run starts before
 * its calls are due; one that has come is rounded down, so it does not wait at all.
 */
export function slotTimestamp(startAtMs: number, nowMs: number): string {
  const seconds = startAtMs > nowMs ? Math.ceil(startAtMs / 1000) : Math.floor(nowMs / 1000);
  return new Date(seconds * 1000).toISOString().replace('.000Z', 'Z');
}

/** A slot that has come: the `Wait` state passes at once. */
export const slotNow = (nowMs: number) => slotTimestamp(nowMs, nowMs);

/**
 * `reserveCalls` as conditional updates, for a store that cannot read and write in one step
 * (DynamoDB): each case names what it requires of the stored schedule, relative to now, and how
 * it moves each end (`add`: the end moves by the reservation's cost; `restart`: it becomes now
 * plus the cost). Exactly one case holds for any stored schedule (`until` ≥ `restrictUntil`
 * always: every restrict counts in both), so a store tries them in turn; whichever applies, the
 * slot is `reserveCalls(the schedule before, reservation).startAtMs`.
 */
export interface CallBudgetCase {
  /** `set`: at or after now; `unset`: before now, or never written. Absent: any. */
  until?: 'set' | 'unset';
  restrictUntil?: 'set' | 'unset';
  moves: { until: 'add' | 'restart'; restrictUntil?: 'add' | 'restart' };
}

export function callBudgetCases(lane: CallLane): CallBudgetCase[] {
  return lane === 'routine'
    ? [
        { until: 'set', moves: { until: 'add' } },
        { until: 'unset', moves: { until: 'restart' } },
      ]
    : [
        { restrictUntil: 'set', moves: { until: 'add', restrictUntil: 'add' } },
        { restrictUntil: 'unset', until: 'set', moves: { until: 'add', restrictUntil: 'restart' } },
        { until: 'unset', moves: { until: 'restart', restrictUntil: 'restart' } },
      ];
}

/** The cost of a reservation in schedule time (ms). */
export const reservationCostMs = (r: Pick<CallReservation, 'calls' | 'requestsPerMinute'>) => r.calls * intervalMs(r.requestsPerMinute);

/**
 * The calls a target's connector makes per kind of request, for the reservations below: the
 * connectors' own request patterns. Okta reads a user with three requests (the user, its groups,
 * its app links) and only the user when it needs the status alone; every write is one request.
 * Entra reads the user and then its memberOf and licenseDetails in one `$batch`, which Graph
 * throttles as the requests inside it; it reads `accountEnabled` before it changes it, and a
 * user's direct groups before it removes one.
 */
export interface CallCosts {
  /** Reading an account with its entitlements. */
  read: number;
  /** Reading an account's status alone (the restrict phase). */
  statusRead: number;
  /** Disabling (or enabling) an account. */
  statusWrite: number;
  /** Revoking an account's sessions. */
  sessionRevoke: number;
  /** Removing one entitlement (a group membership; an Entra license takes one call, so the estimate errs high, the safe side). */
  entitlementRemove: number;
  /** The audit read at close (the IdP's log for the run's window). */
  auditRead: number;
}

export const CALL_COSTS: Record<'okta' | 'entra', CallCosts> = {
  okta: { read: 3, statusRead: 1, statusWrite: 1, sessionRevoke: 1, entitlementRemove: 1, auditRead: 1 },
  entra: { read: 3, statusRead: 1, statusWrite: 2, sessionRevoke: 1, entitlementRemove: 2, auditRead: 1 },
};

/** A leaver's restrict step at the IdP: read the status, disable, revoke every session. */
export function leaverRestrictCalls(costs: CallCosts): number {
  return costs.statusRead + costs.statusWrite + costs.sessionRevoke;
}

/**
 * The rest of a leaver's run at the IdP: the plan's read, the converge's read, its session
 * revocation and one removal per entitlement the person holds, the reconcile's read and the
 * close's audit read.
 */
export function leaverRemainderCalls(costs: CallCosts, entitlements: number): number {
  return 3 * costs.read + costs.sessionRevoke + costs.entitlementRemove * entitlements + costs.auditRead;
}
