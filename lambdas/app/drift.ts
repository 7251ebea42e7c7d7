/**
 * A drift signal from the IdP (an Okta event hook event that jml did not cause): it opens an
 * `out_of_band_change` exception for the IdP target's owner, naming who changed what (the event's
 * actor), with the IdP's own event as evidence — and then reconciles the person at once, in this
 * consumer (`reconcilePerson`, seconds: one full read per target), so a re-activated leaver is
 * disabled again and a group added outside jml is removed (or raised, per the target's
 * `onDrift`) without waiting for the nightly pass.
 *
 * Why in the consumer and not as a `reconcile` workflow: it is one person and a few reads, the
 * FIFO group keeps it in order with that person's HR events, and a failure retries through the
 * queue like any message. The reconcile is a run of its own (`reconcile-drift-<eventId>`, with
 * evidence in the person's chain); the exception's evidence names it. Fixes are not raised as a
 * second exception: the out-of-band one already tells the owner, and the run shows what jml did.
 *
 * Order and retries: exception (idempotent id) → reconcile (idempotent run id) → marker. The
 * owner hears first; throttling or an outage during the reconcile fails the message, and the
 * redelivery finds the exception already open (no second email) and resumes the same reconcile
 * run. A target that refuses the reads is recorded as a failed finding of that run (the nightly
 * reconciliation tries again); it does not block the person's queue. The marker, written last,
 * makes a later redelivery a no-op.
 */
import { JmlError, isRetryable } from '#core/errors';
import type { PersonRecord } from '#core/ledger';
import type { AppDeps, QueueMessage } from './ports.ts';
import { openException } from './exceptions.ts';
import { oktaEventMetaKey, type OktaEventEvidence } from './ingest.ts';
import { reconcilePerson, reconcileRunIdFor } from './reconcile.ts';

export type DriftMessage = Extract<QueueMessage, { kind: 'drift' }>;

export interface DriftReconcileOutcome {
  runId: string;
  outcome: string;
  /** What jml changed (per target: the kinds of finding and what was done). */
  findings: Array<{ target: string; kind: string; action: string }>;
  /** The reconcile could not run (a refusal that retrying cannot fix); the nightly pass will. */
  error?: { name: string; message: string };
}

export type DriftOutcome = { outcome: 'opened' | 'duplicate'; exceptionId: string; reconcile?: DriftReconcileOutcome };

const driftMarkerKey = (eventId: string) => `drift-handled/${eventId}`;
const MARKER_TTL_SECONDS = 90 * 24 * 3600;

export async function handleDrift(deps: AppDeps, message: DriftMessage): Promise<DriftOutcome> {
  const { ledger } = deps;
  const marker = await ledger.getMeta<{ exceptionId: string }>(driftMarkerKey(message.eventId));
  if (marker) return { outcome: 'duplicate', exceptionId: marker.exceptionId };

  const policy = await deps.policy();
  const target = policy.targetsByName.get(message.target);
  // A target that left the policy still has somebody accountable: the company's fallback approver.
  const owner = target?.owner.email ?? policy.document.company.fallbackApprover;
  const oktaEvent = await ledger.getMeta<OktaEventEvidence>(oktaEventMetaKey(message.eventId));
  const person = message.employeeId ? await ledger.getPerson(message.employeeId) : null;

  const requestId = `drift-${message.eventId}`;
  const exception = await openException(deps, {
    // Deterministic: a retry after a crash between opening and the marker finds the same exception.
    exceptionId: `exc-drift-${message.eventId.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 96)}`,
    ...(message.employeeId ? { employeeId: message.employeeId } : {}),
    target: message.target,
    owner,
    kind: 'out_of_band_change',
    reason: describeDrift(target?.displayName ?? message.target, message, person, oktaEvent),
    evidence: {
      source: 'okta-event-hook',
      eventId: message.eventId,
      eventType: message.eventType,
      published: message.published,
      actor: message.actor ?? null,
      accountId: message.accountId ?? null,
      personStatus: person?.status ?? null,
      event: oktaEvent,
      ...(message.employeeId ? { reconcileRunId: reconcileRunIdFor(requestId) } : {}),
    },
  });
  const reconcile = message.employeeId ? await reconcileSignalled(deps, message, message.employeeId, requestId) : undefined;
  await ledger.putMeta(
    driftMarkerKey(message.eventId),
    { exceptionId: exception.exceptionId },
    Math.floor(deps.clock.now().getTime() / 1000) + MARKER_TTL_SECONDS,
  );
  deps.metrics.put('DriftDetected', 1, 'Count', { Target: message.target, EventType: message.eventType });
  return { outcome: 'opened', exceptionId: exception.exceptionId, ...(reconcile ? { reconcile } : {}) };
}

/** Reconciles the signalled person now. Throttling and outages are thrown (the message is retried). */
async function reconcileSignalled(deps: AppDeps, m: DriftMessage, employeeId: string, requestId: string): Promise<DriftReconcileOutcome> {
  try {
    const r = await reconcilePerson(deps, {
      employeeId,
      reason: `drift signal ${m.eventType} on ${m.target} account ${m.accountId ?? '(unknown)'} (event ${m.eventId})`,
      ...(m.actor ? { actor: m.actor } : {}),
      requestId,
      trigger: 'drift',
      raiseFixedIncidents: false,
    });
    if (r.findings.some((f) => f.action === 'failed')) deps.metrics.put('DriftReconcileFailed', 1, 'Count', { Target: m.target });
    return { runId: r.runId, outcome: r.outcome, findings: r.findings.map((f) => ({ target: f.target, kind: f.kind, action: f.action })) };
  } catch (e) {
    if (!(e instanceof JmlError) || isRetryable(e)) throw e;
    deps.metrics.put('DriftReconcileFailed', 1, 'Count', { Target: m.target });
    return { runId: reconcileRunIdFor(requestId), outcome: 'failed', findings: [], error: { name: e.name, message: e.message } };
  }
}

/** One sentence: which account, what happened to it, who did it, when — and why it matters. */
export function describeDrift(targetName: string, m: DriftMessage, person: PersonRecord | null, event: OktaEventEvidence | null): string {
  const named = (type: string) => {
    const o = event?.target.find((t) => t.type === type);
    return o ? `"${o.displayName ?? o.alternateId ?? o.id}"` : undefined;
  };
  let what: string;
  switch (m.eventType) {
    case 'user.lifecycle.activate':
      what = 'was activated';
      break;
    case 'user.lifecycle.reactivate':
      what = 'was reactivated';
      break;
    case 'user.lifecycle.unsuspend':
      what = 'was unsuspended';
      break;
    case 'group.user_membership.add':
      what = `was added to group ${named('UserGroup') ?? '(unnamed)'}`;
      break;
    case 'application.user_membership.add':
      what = `was assigned app ${named('AppInstance') ?? '(unnamed)'}`;
      break;
    case 'user.account.privilege.grant':
      what = 'was granted an administrator privilege';
      break;
    default:
      what = `changed (${m.eventType})`;
  }
  const account = m.accountId ? `account ${m.accountId}` : 'an account';
  const whose = m.employeeId
    ? ` of ${m.employeeId}${person ? ` (${person.status === 'terminated' ? 'terminated' : person.status === 'on_leave' ? 'on leave' : 'active'} in HR)` : ''}`
    : ' (linked to no person in jml)';
  const by = m.actor ? ` by ${m.actor}` : ' by an unknown actor';
  return `${targetName}: ${account}${whose} ${what}${by} at ${m.published}, outside jml.`;
}
