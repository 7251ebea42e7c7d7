/**
 * A drift signal from the IdP (an Okta event hook event that jml did not cause): for now each
 * one opens an `out_of_band_change` exception for the IdP target's owner, naming who changed
 * what, with the IdP's own event as evidence. Bringing the person back to their desired state
 * is the reconciliation's job, not this one's.
 *
 * Exactly once per event, as far as the ledger allows: a marker keyed by the event id is written
 * after the exception is opened, and a redelivered message that finds it does nothing. A crash
 * between the two writes opens a second exception on the retry (a duplicate to resolve is
 * better than a change nobody hears about).
 */
import type { PersonRecord } from '#core/ledger';
import type { AppDeps, QueueMessage } from './ports.ts';
import { openException } from './exceptions.ts';
import { oktaEventMetaKey, type OktaEventEvidence } from './ingest.ts';

export type DriftMessage = Extract<QueueMessage, { kind: 'drift' }>;

export type DriftOutcome = { outcome: 'opened' | 'duplicate'; exceptionId: string };

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
    },
  });
  await ledger.putMeta(
    driftMarkerKey(message.eventId),
    { exceptionId: exception.exceptionId },
    Math.floor(deps.clock.now().getTime() / 1000) + MARKER_TTL_SECONDS,
  );
  deps.metrics.put('DriftDetected', 1, 'Count', { Target: message.target, EventType: message.eventType });
  return { outcome: 'opened', exceptionId: exception.exceptionId };
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
