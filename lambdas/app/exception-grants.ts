/**
 * Exception grants: when a mover's removal breaks business-critical access, an operator re-applies
 * a named bundle to that person for a bounded time, with a reason (`POST /exception-grants`,
 * `jml grant-exception`). The bundle's app owner approves by emailed link (the approvals
 * machinery, with a decision token instead of a task token — see `./standalone-approvals.ts`);
 * on approval the grant is stored on the person (`exceptionGrants`) and applied by converging the
 * bundle's targets to the desired state (`desiredState`'s `exceptionGrants` option), and an
 * `expire-bundle` schedule removes it at its end. Every step is recorded: the grant record (ledger
 * meta `exception-grant/{grantId}`), the approval, and an evidence bundle for the apply and the
 * removal.
 *
 * Rules: the bundle must exist and not already be granted by the policy's rules; the person must
 * be employed; a grant lasts at most 90 days; nobody approves a grant to themselves or one they
 * asked for (the next owner is asked, or the fallback approver). Grants end with the employment
 * (a termination or a rehire clears them).
 */
import { createHash } from 'node:crypto';
import * as z from 'zod';
import { desiredState, type ExceptionGrant } from '#core/desired-state';
import { JmlError, ValidationError } from '#core/errors';
import type { ApprovalRecord, PersonRecord } from '#core/ledger';
import { html } from '#core/html';
import type { Policy } from '#core/policy';
import { parseOrThrow } from '#core/validation';
import type { ApprovalDetails } from './approval-views.ts';
import type { AppDeps } from './ports.ts';
import { updatePerson } from './people.ts';
import { openException } from './exceptions.ts';
import { decisionToken, mailApprovalOnce, scheduleReminder } from './standalone-approvals.ts';
import { boundedName, convergeBundleTargets } from './time-bound.ts';
import { recordSystemEvidence } from './system-evidence.ts';

/** Longest grant. An exception that needs longer is a policy change. */
export const MAX_GRANT_DAYS = 90;
export const GRANT_REQUEST_ID = 'exception-grant';

/** An active grant as the person record holds it (what `desiredState` needs, plus its id). */
export type ActiveExceptionGrant = NonNullable<PersonRecord['exceptionGrants']>[number];

/** The person record with its active exception grants. */
export type PersonWithGrants = PersonRecord;

/**
 * The grants `desiredState` should apply now. Runs and reconciliation pass these as
 * `exceptionGrants` so a granted bundle is not taken away as drift while it lasts.
 */
export function activeExceptionGrants(person: PersonRecord, now: string): ExceptionGrant[] {
  const at = Date.parse(now);
  return ((person as PersonWithGrants).exceptionGrants ?? [])
    .filter((g) => Date.parse(g.expiresAt) > at)
    .map((g) => ({ bundle: g.bundle, reason: g.reason, expiresAt: g.expiresAt }));
}

export type GrantStatus = 'PENDING_APPROVAL' | 'ACTIVE' | 'REJECTED' | 'EXPIRED' | 'LAPSED';

export interface ExceptionGrantRecord {
  grantId: string;
  employeeId: string;
  bundle: string;
  reason: string;
  /** The operator who asked (an email). */
  requestedBy: string;
  /** The authenticated caller of the API (IAM principal ARN in AWS), when known. */
  caller?: string;
  requestedAt: string;
  /** When the grant ends (and is removed). */
  expiresAt: string;
  approvalId: string;
  approver: string;
  status: GrantStatus;
  decidedAt?: string;
  rationale?: string;
  appliedAt?: string;
  removedAt?: string;
  /** Evidence bundle prefixes (apply, removal). */
  evidence?: string[];
}

/** A named bundle or person does not exist (HTTP 404). */
export class GrantNotFound extends JmlError {}
/** The grant is not allowed as asked (HTTP 409); the message says why. */
export class GrantRefused extends JmlError {}

const EMPLOYEE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export const ExceptionGrantRequestSchema = z
  .object({
    employeeId: z.string().regex(EMPLOYEE_ID, { message: 'must be an employee id (letters, digits, . _ -)' }),
    bundle: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, { message: 'must be a bundle name from the policy' }).max(64),
    reason: z.string().trim().min(10, { message: 'say why in at least 10 characters' }).max(500),
    /** How long, in days (1–90) … */
    days: z.number().int().min(1).max(MAX_GRANT_DAYS).optional(),
    /** … or until when (an ISO date-time with its zone). */
    until: z.iso.datetime({ offset: true, message: 'must be an ISO date-time with a zone' }).optional(),
    /** The operator asking (recorded, and never the approver). */
    requestedBy: z.email({ message: 'must be an email address' }).transform((s) => s.toLowerCase()),
  })
  .strict()
  .superRefine((v, ctx) => {
    if ((v.days === undefined) === (v.until === undefined)) ctx.addIssue({ code: 'custom', path: ['days'], message: 'give either days or until' });
  });
export type ExceptionGrantRequest = z.input<typeof ExceptionGrantRequestSchema>;

const grantKey = (grantId: string) => `exception-grant/${grantId}`;
const hex = (s: string) => createHash('sha256').update(s).digest('hex');
export const grantScheduleName = (employeeId: string, grantId: string) => boundedName('jml-grant', employeeId, grantId.replace(/^grt_/, ''));

export async function getExceptionGrant(deps: AppDeps, grantId: string): Promise<ExceptionGrantRecord | null> {
  if (!/^grt_[0-9a-f]{24}$/.test(grantId)) return null;
  const grant = await deps.ledger.getMeta<ExceptionGrantRecord>(grantKey(grantId));
  if (!grant) return null;
  // An undecided request whose link expired, or whose grant time is over, lapsed.
  if (grant.status === 'PENDING_APPROVAL') {
    const approval = await deps.ledger.getApproval(grant.approvalId);
    const now = deps.clock.now().getTime();
    if (!approval || approval.status === 'EXPIRED' || now >= Date.parse(approval.expiresAt)) return { ...grant, status: 'LAPSED' };
  }
  return grant;
}

async function saveGrant(deps: AppDeps, grant: ExceptionGrantRecord): Promise<void> {
  // Kept a year past its end, for audit (the evidence bundles keep it for good).
  await deps.ledger.putMeta(grantKey(grant.grantId), grant, Math.floor(Date.parse(grant.expiresAt) / 1000) + 400 * 86_400);
}

function approverFor(policy: Policy, bundle: string, person: PersonRecord, requestedBy: string): { email: string; role: ApprovalRecord['approverRole'] } {
  const def = policy.document.bundles[bundle]!;
  const owners =
    def.approvers ?? [...new Set(Object.keys(def.targets).map((t) => policy.targetsByName.get(t)?.owner.email).filter((x): x is string => !!x))];
  const excluded = [person.worker.email, requestedBy].map((e) => e.trim().toLowerCase());
  const owner = owners.find((o) => !excluded.includes(o.trim().toLowerCase()));
  if (owner) return { email: owner, role: 'appOwner' };
  const fallback = policy.document.company.fallbackApprover;
  if (excluded.includes(fallback.toLowerCase())) throw new GrantRefused(`nobody but the requester could approve ${bundle}; ask another operator to request it`);
  return { email: fallback, role: 'fallback' };
}

function details(policy: Policy, person: PersonRecord, grant: ExceptionGrantRecord): ApprovalDetails {
  const def = policy.document.bundles[grant.bundle]!;
  const w = person.worker;
  const until = new Intl.DateTimeFormat('en-GB', { timeZone: policy.document.company.timeZone, dateStyle: 'medium', timeStyle: 'short' }).format(new Date(grant.expiresAt));
  return {
    kind: 'bundle',
    lifecycle: 'mover',
    person: { employeeId: person.employeeId, name: `${w.givenName} ${w.familyName}`, department: w.department, jobCode: w.jobCode, location: w.location, employmentType: w.employmentType, startDate: w.startDate },
    bundles: [{ name: grant.bundle, ...(def.description ? { description: def.description } : {}), privileged: def.kind === 'privileged' }],
    entitlements: (policy.bundleEntitlements.get(grant.bundle) ?? []).map((e) => ({
      target: e.target,
      targetName: policy.targetsByName.get(e.target)?.displayName ?? e.target,
      type: e.type,
      value: e.value,
    })),
    privileged: def.kind === 'privileged',
    reason: `Exception grant asked for by ${grant.requestedBy}: "${grant.reason}". It lasts until ${until} (${policy.document.company.timeZone}) and is removed automatically then; the policy's rules no longer grant it to this person.`,
    escalation: false,
  };
}

export interface GrantRequested {
  grant: ExceptionGrantRecord;
  /** True when the same request was made earlier today: nothing new was created. */
  duplicate: boolean;
}

/** Records the request, asks the app owner by emailed link and schedules the grant's end. */
export async function requestExceptionGrant(deps: AppDeps, input: unknown, options: { caller?: string } = {}): Promise<GrantRequested> {
  const req = parseOrThrow(ExceptionGrantRequestSchema, input);
  const policy = await deps.policy();
  const def = policy.document.bundles[req.bundle];
  if (!def) throw new GrantNotFound(`bundle: the policy has no bundle "${req.bundle}"`);
  const person = (await deps.ledger.getPerson(req.employeeId)) as PersonWithGrants | null;
  if (!person) throw new GrantNotFound(`employeeId: no person ${req.employeeId} in the ledger`);
  if (person.status === 'terminated') throw new GrantRefused(`${req.employeeId} has left; access is not granted to a leaver`);
  const now = deps.clock.now();
  const expiresAt = new Date(req.until ? Date.parse(req.until) : now.getTime() + req.days! * 86_400_000).toISOString();
  if (Date.parse(expiresAt) <= now.getTime()) throw new ValidationError(['until: must be in the future']);
  if (Date.parse(expiresAt) > now.getTime() + MAX_GRANT_DAYS * 86_400_000) throw new ValidationError([`until: at most ${MAX_GRANT_DAYS} days ahead`]);

  // Same request, same day: the same grant (a retried POST creates nothing new).
  const grantId = `grt_${hex([req.employeeId, req.bundle, req.requestedBy, req.reason, req.days ?? req.until, now.toISOString().slice(0, 10)].join('\n')).slice(0, 24)}`;
  const earlier = await getExceptionGrant(deps, grantId);
  if (earlier) return { grant: earlier, duplicate: true };

  const nowIso = now.toISOString();
  const byRule = desiredState({ worker: person.worker, status: person.status }, policy, { grantedAt: person.grantedAt, now: nowIso }).bundles.find((b) => b.bundle === req.bundle);
  if (byRule) throw new GrantRefused(`${req.employeeId} already has ${req.bundle} through rule ${byRule.rule}; no exception is needed`);
  const active = (person.exceptionGrants ?? []).find((g) => g.bundle === req.bundle && Date.parse(g.expiresAt) > now.getTime());
  if (active) throw new GrantRefused(`an exception grant of ${req.bundle} (${active.grantId}) is active until ${active.expiresAt}`);

  const approver = approverFor(policy, req.bundle, person, req.requestedBy);
  const approvalId = `apr_${hex(`exception-grant\n${grantId}`).slice(0, 32)}`;
  const grant: ExceptionGrantRecord = {
    grantId,
    employeeId: req.employeeId,
    bundle: req.bundle,
    reason: req.reason,
    requestedBy: req.requestedBy,
    ...(options.caller ? { caller: options.caller.slice(0, 512) } : {}),
    requestedAt: nowIso,
    expiresAt,
    approvalId,
    approver: approver.email,
    status: 'PENDING_APPROVAL',
  };
  const windowEnd = now.getTime() + policy.document.approvals.windowHours * 3_600_000;
  const approval: ApprovalRecord = {
    approvalId,
    runId: grantId,
    employeeId: req.employeeId,
    requestId: GRANT_REQUEST_ID,
    approver: approver.email,
    approverRole: approver.role,
    taskToken: decisionToken('exception-grant', grantId),
    status: 'PENDING',
    requestedAt: nowIso,
    expiresAt: new Date(Math.min(windowEnd, Date.parse(expiresAt))).toISOString(),
    request: details(policy, person, grant),
  };
  // The grant first: a decision can only ever find a grant it belongs to.
  await saveGrant(deps, grant);
  await deps.ledger.putApproval(approval);
  await mailApprovalOnce(deps, policy, approval, 'request');
  await scheduleReminder(deps, policy, approval);
  await deps.scheduler.upsertOnce(grantScheduleName(req.employeeId, grantId), new Date(expiresAt), {
    kind: 'expire-bundle',
    payload: { employeeId: req.employeeId, grantId },
  });
  deps.metrics.put('ExceptionGrantRequested', 1, 'Count', { Bundle: req.bundle });
  return { grant, duplicate: false };
}

/**
 * The app owner decided (delivered through the decision token). Approved: the grant goes on the
 * person and is applied now. Rejected: recorded, nothing changes. `gone` when the grant is no
 * longer waiting for this decision.
 */
export async function decideExceptionGrant(deps: AppDeps, grantId: string, approval: ApprovalRecord): Promise<'ok' | 'gone'> {
  const grant = await deps.ledger.getMeta<ExceptionGrantRecord>(grantKey(grantId));
  if (!grant || grant.status !== 'PENDING_APPROVAL' || grant.approvalId !== approval.approvalId) return 'gone';
  const policy = await deps.policy();
  const now = deps.clock.now();
  const decided = { decidedAt: approval.decidedAt ?? now.toISOString(), ...(approval.rationale ? { rationale: approval.rationale } : {}) };
  if (approval.status === 'REJECTED') {
    await saveGrant(deps, { ...grant, status: 'REJECTED', ...decided });
    await deps.scheduler.delete(grantScheduleName(grant.employeeId, grantId));
    await notifyRequester(deps, policy, grant, `rejected by ${approval.approver}${approval.rationale ? `: ${approval.rationale}` : ''}. Nothing was granted.`);
    deps.metrics.put('ExceptionGrantRejected', 1, 'Count', { Bundle: grant.bundle });
    return 'ok';
  }
  if (now.getTime() >= Date.parse(grant.expiresAt)) {
    await saveGrant(deps, { ...grant, status: 'LAPSED', ...decided });
    return 'gone';
  }
  const added = await updatePerson(
    deps.ledger,
    grant.employeeId,
    (p) => {
      const person = p as PersonWithGrants;
      if (person.status === 'terminated') return null;
      if ((person.exceptionGrants ?? []).some((g) => g.grantId === grantId)) return null;
      person.exceptionGrants = [...(person.exceptionGrants ?? []), { grantId, bundle: grant.bundle, reason: grant.reason, expiresAt: grant.expiresAt }];
      return person;
    },
    () => deps.clock.now(),
  );
  if (!added || added.status === 'terminated') {
    await saveGrant(deps, { ...grant, status: 'LAPSED', ...decided });
    return 'gone';
  }
  const active: ExceptionGrantRecord = { ...grant, status: 'ACTIVE', ...decided };
  await saveGrant(deps, active);

  const receivedAt = now.toISOString();
  const result = await convergeBundleTargets(deps, grant.employeeId, grant.bundle, 'grant');
  const exception = result.failures.length
    ? await openException(deps, {
        exceptionId: `exc-grant-${grantId}`,
        employeeId: grant.employeeId,
        target: result.failures[0]!.target,
        owner: policy.targetsByName.get(result.failures[0]!.target)?.owner.email ?? policy.document.company.fallbackApprover,
        kind: 'exception_grant',
        reason: `approved exception grant of ${grant.bundle} could not be applied on ${result.failures.map((f) => `${f.target} (${f.name}: ${f.message})`).join(', ')}; the next converge of this person applies it`,
        evidence: { grantId, bundle: grant.bundle, failures: result.failures },
      })
    : undefined;
  const writes = result.steps.reduce((n, s) => n + (s.writes ?? 0), 0);
  const evidence = await recordSystemEvidence(deps, {
    kind: 'grant',
    triggerKey: `${grantId}|apply`,
    person: result.person,
    lifecycle: 'mover',
    status: exception ? 'EXCEPTION_OPEN' : 'COMPLETED',
    trigger: { trigger: 'exception-grant', phase: 'apply', grantId, bundle: grant.bundle, reason: grant.reason, requestedBy: grant.requestedBy, requestedAt: grant.requestedAt, expiresAt: grant.expiresAt },
    receivedAt,
    desired: result.desired,
    approvals: [approval],
    steps: result.steps,
    ...(exception ? { exceptions: [exception] } : {}),
    timeline: [
      { phase: 'Requested', at: grant.requestedAt, note: `by ${grant.requestedBy}: ${grant.reason}` },
      { phase: 'Approved', at: decided.decidedAt, note: approval.approver },
      { phase: 'Execute', at: receivedAt, note: `${writes} write(s); removed at ${grant.expiresAt}` },
    ],
  });
  await saveGrant(deps, { ...active, appliedAt: deps.clock.now().toISOString(), evidence: [evidence.prefix] });
  await notifyRequester(deps, policy, grant, `approved by ${approval.approver} and applied; it is removed automatically at ${grant.expiresAt}.`);
  deps.metrics.put('ExceptionGrantApplied', 1, 'Count', { Bundle: grant.bundle });
  return 'ok';
}

export type GrantExpiryOutcome =
  | { outcome: 'removed' | 'failed'; evidence: string; exceptionId?: string }
  | { outcome: 'lapsed' | 'skipped'; reason: string }
  | { outcome: 'rescheduled'; at: string };

/** `expire-bundle` `{ employeeId, grantId }`: the grant's time is up — remove it (or lapse the request). */
export async function expireExceptionGrant(deps: AppDeps, input: { employeeId: string; grantId: string; schedule?: string }): Promise<GrantExpiryOutcome> {
  const grant = await deps.ledger.getMeta<ExceptionGrantRecord>(grantKey(input.grantId));
  if (!grant) return { outcome: 'skipped', reason: `no exception grant ${input.grantId}` };
  const now = deps.clock.now();
  if (grant.status === 'PENDING_APPROVAL') {
    await saveGrant(deps, { ...grant, status: 'LAPSED' });
    return { outcome: 'lapsed', reason: 'the app owner did not decide before the grant would have ended' };
  }
  if (grant.status !== 'ACTIVE') return { outcome: 'skipped', reason: `grant ${input.grantId} is ${grant.status}` };
  if (now.getTime() < Date.parse(grant.expiresAt)) {
    await deps.scheduler.upsertOnce(grantScheduleName(grant.employeeId, grant.grantId), new Date(grant.expiresAt), { kind: 'expire-bundle', payload: { employeeId: grant.employeeId, grantId: grant.grantId } });
    return { outcome: 'rescheduled', at: grant.expiresAt };
  }
  const policy = await deps.policy();
  const receivedAt = now.toISOString();
  const person = await updatePerson(
    deps.ledger,
    grant.employeeId,
    (p) => {
      const withGrants = p as PersonWithGrants;
      if (!(withGrants.exceptionGrants ?? []).some((g) => g.grantId === grant.grantId)) return null;
      withGrants.exceptionGrants = withGrants.exceptionGrants!.filter((g) => g.grantId !== grant.grantId);
      return withGrants;
    },
    () => deps.clock.now(),
  );
  if (!person || person.status === 'terminated') {
    await saveGrant(deps, { ...grant, status: 'EXPIRED', removedAt: receivedAt });
    return { outcome: 'skipped', reason: 'the person left; the leaver run removed all access' };
  }
  const result = await convergeBundleTargets(deps, grant.employeeId, grant.bundle, 'grant-expire');
  const exception = result.failures.length
    ? await openException(deps, {
        exceptionId: `exc-grant-end-${grant.grantId}`,
        employeeId: grant.employeeId,
        target: result.failures[0]!.target,
        owner: policy.targetsByName.get(result.failures[0]!.target)?.owner.email ?? policy.document.company.fallbackApprover,
        kind: 'exception_grant',
        reason: `exception grant of ${grant.bundle} ended at ${grant.expiresAt} but could not be removed from ${result.failures.map((f) => `${f.target} (${f.name}: ${f.message})`).join(', ')}; the nightly reconciliation removes it once the target answers`,
        evidence: { grantId: grant.grantId, bundle: grant.bundle, failures: result.failures },
      })
    : undefined;
  const evidence = await recordSystemEvidence(deps, {
    kind: 'grant',
    triggerKey: `${grant.grantId}|expire`,
    person: result.person,
    lifecycle: 'mover',
    status: exception ? 'EXCEPTION_OPEN' : 'COMPLETED',
    trigger: { trigger: 'expire-bundle', phase: 'expire', schedule: input.schedule ?? grantScheduleName(grant.employeeId, grant.grantId), grantId: grant.grantId, bundle: grant.bundle, expiresAt: grant.expiresAt },
    receivedAt,
    desired: result.desired,
    steps: result.steps,
    ...(exception ? { exceptions: [exception] } : {}),
    timeline: [
      { phase: 'Approved', at: grant.decidedAt ?? grant.requestedAt, note: `${grant.approver}: ${grant.bundle} until ${grant.expiresAt}` },
      { phase: 'Expired', at: grant.expiresAt },
      { phase: 'Execute', at: receivedAt, note: `${result.steps.reduce((n, s) => n + (s.writes ?? 0), 0)} write(s)` },
    ],
  });
  await saveGrant(deps, { ...grant, status: 'EXPIRED', removedAt: deps.clock.now().toISOString(), evidence: [...(grant.evidence ?? []), evidence.prefix] });
  deps.metrics.put('ExceptionGrantExpired', 1, 'Count', { Bundle: grant.bundle });
  return exception ? { outcome: 'failed', evidence: evidence.prefix, exceptionId: exception.exceptionId } : { outcome: 'removed', evidence: evidence.prefix };
}

async function notifyRequester(deps: AppDeps, policy: Policy, grant: ExceptionGrantRecord, what: string): Promise<void> {
  const subject = `[${policy.document.company.name}] Exception grant ${grant.bundle} for ${grant.employeeId}: ${what.split(' ')[0]}`;
  const text = `Your exception grant ${grant.grantId} (${grant.bundle} for ${grant.employeeId}, "${grant.reason}") was ${what}`;
  await deps.mailer.send({ to: [grant.requestedBy], subject, text, html: String(html`<p>${text}</p>`), links: [] });
}
