/**
 * Approvals by emailed link (DESIGN.md: `GET/POST /approvals/{id}`). Use cases only: the ports
 * in `./ports.ts` do the I/O, `#core/approval-link` the cryptography, `./approval-views.ts` the
 * markup.
 *
 * The workflow's approval Task is `lambda:invoke.waitForTaskToken`: `requestApproval` stores the
 * Step Functions task token on the approval record (server-side only — never in a URL or an
 * email), asks the approver(s) by email, and the workflow waits. The decision (`POST`) calls
 * back with `SendTaskSuccess` / `SendTaskFailure`. The waiting state's `TimeoutSeconds` is the
 * policy's approval window; on `States.Timeout` the workflow calls `requestApproval` again with
 * `escalation: true`, and when that lapses too, `expireApproval` opens an exception.
 *
 * One approval record, one approver and one link per request and round. With several app
 * owners the first eligible one is asked and the escalation goes to the next: one record per
 * wait keeps "decides exactly once" a single conditional write (several live records for one
 * task token would let two owners decide differently at the same moment, and the run reads
 * approvals from the ledger, not from the callback).
 *
 * The link expires a little *before* the workflow stops waiting (`expiryMargin`), so a decision
 * the ledger accepts always reaches a waiting task; `gone` then only means the run was stopped
 * or superseded, and the approver is told the request is no longer open.
 */
import { createHash } from 'node:crypto';
import * as z from 'zod';
import {
  APPROVAL_ID,
  MAX_LINK_TOKEN_LENGTH,
  readLinkToken,
  signCsrfToken,
  signLinkToken,
  verifyCsrfToken,
  verifyLinkToken,
  type CsrfFailure,
  type LinkFailure,
} from '#core/approval-link';
import { JmlError } from '#core/errors';
import { ConditionFailed, type ApprovalRecord, type PersonRecord, type RunRecord } from '#core/ledger';
import type { ApprovalRequest } from '#core/plan';
import type { Policy } from '#core/policy';
import { parseOrThrow } from '#core/validation';
import {
  ApprovalDetailsSchema,
  MAX_RATIONALE_CHARS,
  pageHeaders,
  renderApprovalEmail,
  renderConfirmationPage,
  renderResultPage,
  type ApprovalDetails,
  type Company,
  type EmailKind,
  type HttpResponse,
  type ResultKind,
} from './approval-views.ts';
import { openException, type NewException } from './exceptions.ts';
import type { AppDeps } from './ports.ts';

/** The run, its plan or its approval request cannot be found: the workflow asked for something that does not exist. */
export class ApprovalRequestInvalid extends JmlError {}

/** Longest user agent kept as evidence (some are very long; none needs more). */
const MAX_USER_AGENT_CHARS = 512;
/**
 * A recorded decision whose callback outcome is still unknown after this long was lost (the
 * API call that made it has long timed out), so a repeated POST may deliver it again.
 */
const REDELIVERY_GRACE_MS = 2 * 60_000;
/** Meta records about an approval (mail sent, callback outcome) outlive it by this long. */
const META_RETENTION_DAYS = 400;

// ---------------------------------------------------------------------------------------------
// Shared helpers.

const RequestApprovalInput = z.object({
  runId: z.string().min(1).max(256),
  requestId: z.string().min(1).max(256),
  // Step Functions task tokens are opaque and at most a few KiB.
  taskToken: z.string().min(1).max(8192),
  escalation: z.boolean().optional(),
  /** The waiting state's TimeoutSeconds (the workflow passes it): the link expires with the wait. */
  timeoutSeconds: z.number().int().positive().max(365 * 86_400).optional(),
});
export type RequestApprovalInput = z.input<typeof RequestApprovalInput>;

/** The part of a stored plan this module reads (the plan is opaque JSON on the run record). */
const StoredPlanSchema = z.looseObject({
  approvals: z.array(
    z.looseObject({
      id: z.string(),
      kind: z.enum(['bundle', 'dataHandling']),
      bundles: z.array(z.string()),
      dataHandling: z.looseObject({ id: z.string(), action: z.string(), description: z.string(), target: z.string().optional() }).optional(),
      approverRole: z.enum(['manager', 'appOwner']),
      approvers: z.array(z.string()),
      privileged: z.boolean(),
      entitlements: z.array(z.looseObject({ target: z.string(), type: z.string(), value: z.string() })),
      reason: z.string(),
    }),
  ),
});

const sameAddress = (a: string, b: string) => a.trim().toLowerCase() === b.trim().toLowerCase();

function company(policy: Policy): Company {
  return { name: policy.document.company.name, timeZone: policy.document.company.timeZone };
}

async function linkKeys(deps: AppDeps): Promise<string[]> {
  const keys = await deps.secrets.get('linkSigning');
  if (keys.length === 0) throw new Error('linkSigning: no link-signing key configured');
  return keys;
}

function approvalUrl(deps: AppDeps, approvalId: string): string {
  return `${deps.publicBaseUrl.replace(/\/+$/, '')}/approvals/${encodeURIComponent(approvalId)}`;
}

function linkFor(deps: AppDeps, keys: readonly string[], approval: ApprovalRecord): string {
  const t = signLinkToken(keys, { approvalId: approval.approvalId, approver: approval.approver, expiresAt: approval.expiresAt });
  return `${approvalUrl(deps, approval.approvalId)}?t=${encodeURIComponent(t)}`;
}

function metaTtl(expiresAt: string): number {
  return Math.floor(Date.parse(expiresAt) / 1000) + META_RETENTION_DAYS * 86_400;
}

const mailKey = (approvalId: string, kind: EmailKind) => `approval-mail:${approvalId}:${kind}`;
const callbackKey = (approvalId: string) => `approval-callback:${approvalId}`;

/** What the decision's callback did: kept so a lost callback can be delivered again. */
interface CallbackOutcome {
  outcome: 'delivered' | 'gone';
  decision: 'APPROVED' | 'REJECTED';
  at: string;
}

function parseDetails(approval: ApprovalRecord): ApprovalDetails {
  return parseOrThrow(ApprovalDetailsSchema, approval.request, `approval ${approval.approvalId} request`);
}

/**
 * How much earlier than the workflow's timeout the link expires: the waiting state's clock
 * started before this Lambda ran (invocation latency, a cold start), and a decision must never
 * be accepted by the ledger after the task has timed out.
 */
export function expiryMarginSeconds(timeoutSeconds: number): number {
  return Math.min(60, Math.floor(timeoutSeconds / 10));
}

// ---------------------------------------------------------------------------------------------
// Approver resolution.

interface Approver {
  email: string;
  role: ApprovalRecord['approverRole'];
}

/** The person's manager when known, in the ledger, still employed and not the person themself. */
async function managerOf(deps: AppDeps, person: PersonRecord): Promise<PersonRecord | undefined> {
  const managerId = person.worker.managerId;
  if (!managerId || managerId === person.employeeId) return undefined;
  const manager = await deps.ledger.getPerson(managerId);
  if (!manager || manager.status === 'terminated') return undefined;
  return manager;
}

/**
 * Who decides. Nobody approves their own access: an approver whose address is the person's
 * (or a manager chain that loops back to them) is skipped for the fallback approver.
 *  - manager requests: the manager; on escalation (`escalateTo: managersManager`) the
 *    manager's manager;
 *  - app-owner requests: the first listed app owner; on escalation the app owner group: the
 *    next listed owner, else the owner of record of a target involved, not asked before;
 *  - `escalateTo: fallback`, or nobody suitable: the fallback approver.
 */
async function resolveApprover(
  deps: AppDeps,
  policy: Policy,
  person: PersonRecord,
  request: z.infer<typeof StoredPlanSchema>['approvals'][number],
  escalation: boolean,
  askedBefore: readonly string[],
): Promise<Approver> {
  const fallback: Approver = { email: policy.document.company.fallbackApprover, role: escalation ? 'escalation' : 'fallback' };
  const eligible = (email: string | undefined): email is string =>
    !!email && !sameAddress(email, person.worker.email) && !askedBefore.some((a) => sameAddress(a, email));

  if (escalation && policy.document.approvals.escalateTo === 'fallback') return fallback;

  if (request.approverRole === 'manager') {
    const manager = await managerOf(deps, person);
    if (!escalation) return eligible(manager?.worker.email) ? { email: manager.worker.email, role: 'manager' } : fallback;
    const skip = manager ? await managerOf(deps, manager) : undefined;
    const email = skip && skip.employeeId !== person.employeeId ? skip.worker.email : undefined;
    return eligible(email) ? { email, role: 'escalation' } : fallback;
  }

  const owners = escalation
    ? [...request.approvers, ...request.entitlements.map((e) => policy.targetsByName.get(e.target)?.owner.email)]
    : request.approvers;
  const first = owners.find(eligible);
  return first ? { email: first, role: escalation ? 'escalation' : 'appOwner' } : fallback;
}

function buildDetails(
  policy: Policy,
  run: RunRecord,
  person: PersonRecord,
  request: z.infer<typeof StoredPlanSchema>['approvals'][number],
  escalation: boolean,
): ApprovalDetails {
  const targetName = (t: string) => policy.targetsByName.get(t)?.displayName ?? t;
  // The plan lists what the diff adds; an account-only step lists nothing, so show what the bundles grant.
  const entitlements = request.entitlements.length
    ? request.entitlements
    : request.bundles.flatMap((b) => (policy.bundleEntitlements.get(b) ?? []).map((e) => ({ target: e.target, type: e.type, value: e.value })));
  const w = person.worker;
  return {
    kind: request.kind,
    lifecycle: run.lifecycle,
    person: {
      employeeId: person.employeeId,
      name: `${w.givenName} ${w.familyName}`,
      department: w.department,
      jobCode: w.jobCode,
      location: w.location,
      employmentType: w.employmentType,
      startDate: w.startDate,
    },
    bundles: request.bundles.map((name) => {
      const def = policy.document.bundles[name];
      return { name, ...(def?.description ? { description: def.description } : {}), privileged: def?.kind === 'privileged' };
    }),
    entitlements: entitlements.map((e) => ({ target: e.target, targetName: targetName(e.target), type: e.type, value: e.value })),
    ...(request.dataHandling
      ? {
          dataHandling: {
            action: request.dataHandling.action,
            description: request.dataHandling.description,
            ...(request.dataHandling.target ? { target: request.dataHandling.target } : {}),
          },
        }
      : {}),
    privileged: request.privileged,
    reason: request.reason,
    escalation,
  };
}

/** Deterministic per (run, request, approver, round): a retried request step finds its own record. */
function approvalIdFor(runId: string, requestId: string, approver: string, escalation: boolean): string {
  const digest = createHash('sha256')
    .update([runId, requestId, approver.trim().toLowerCase(), escalation ? 'escalation' : 'first'].join('\n'))
    .digest('hex');
  return `apr_${digest.slice(0, 32)}`;
}

/** Sends a mail about `approval` once per kind; the marker is written after the send succeeds. */
async function mailOnce(deps: AppDeps, policy: Policy, keys: readonly string[], approval: ApprovalRecord, kind: EmailKind, escalatesTo?: string): Promise<boolean> {
  const key = mailKey(approval.approvalId, kind);
  if (kind !== 'reminder' && (await deps.ledger.getMeta(key))) return false;
  const link = linkFor(deps, keys, approval);
  const mail = renderApprovalEmail({
    company: company(policy),
    kind,
    approver: approval.approver,
    details: parseDetails(approval),
    expiresAt: approval.expiresAt,
    link,
    ...(escalatesTo ? { escalatesTo } : {}),
  });
  const { messageId } = await deps.mailer.send({
    to: [approval.approver],
    subject: mail.subject,
    text: mail.text,
    html: mail.html,
    links: [link],
    runId: approval.runId,
    approvalId: approval.approvalId,
  });
  await deps.ledger.putMeta(key, { messageId, sentAt: deps.clock.now().toISOString() }, metaTtl(approval.expiresAt));
  return true;
}

/** Who an escalation would go to, for the first email's "if you do not decide" line. */
function escalationHint(policy: Policy, request: { approverRole: 'manager' | 'appOwner' }): string {
  if (policy.document.approvals.escalateTo === 'fallback') return policy.document.company.fallbackApprover;
  return request.approverRole === 'manager' ? "the person's skip-level manager" : 'the app owner group';
}

// ---------------------------------------------------------------------------------------------
// requestApproval

/**
 * Records the approval (task token server-side), resolves the approver and emails them one
 * link. Safe to retry: approval ids are deterministic, a PENDING record is refreshed (a retried
 * Task carries a new task token) and each email is sent once.
 */
export async function requestApproval(
  deps: AppDeps,
  rawInput: RequestApprovalInput,
): Promise<{ approvalId: string }> {
  const input = parseOrThrow(RequestApprovalInput, rawInput, 'requestApproval');
  const escalation = input.escalation ?? false;
  const run = await deps.ledger.getRun(input.runId);
  if (!run) throw new ApprovalRequestInvalid(`run ${input.runId} not found`);
  const plan = StoredPlanSchema.safeParse(run.plan);
  if (!plan.success) throw new ApprovalRequestInvalid(`run ${input.runId} has no plan with approval requests`);
  const request = plan.data.approvals.find((a) => a.id === input.requestId);
  if (!request) throw new ApprovalRequestInvalid(`run ${input.runId} has no approval request ${input.requestId}`);
  const person = await deps.ledger.getPerson(run.employeeId);
  if (!person) throw new ApprovalRequestInvalid(`person ${run.employeeId} of run ${input.runId} not found`);
  const policy = await deps.policy();
  const keys = await linkKeys(deps);
  const now = deps.clock.now();

  const firstRound = escalation
    ? (await deps.ledger.listApprovals(run.runId)).filter(
        (a) => a.requestId === request.id && a.approvalId === approvalIdFor(run.runId, request.id, a.approver, false),
      )
    : [];
  if (escalation) {
    // The first round lapsed: its link stops working (410 "escalated") before a new one goes out.
    for (const prev of firstRound) {
      if (prev.status !== 'PENDING') continue;
      try {
        await deps.ledger.putApproval({ ...prev, status: 'ESCALATED' });
      } catch (err) {
        if (!(err instanceof ConditionFailed)) throw err;
      }
    }
  }

  const approver = await resolveApprover(
    deps,
    policy,
    person,
    request,
    escalation,
    firstRound.map((a) => a.approver),
  );
  const details = buildDetails(policy, run, person, request, escalation);
  const timeoutSeconds = input.timeoutSeconds ?? policy.document.approvals.windowHours * 3600;
  const expiresAt = new Date(now.getTime() + (timeoutSeconds - expiryMarginSeconds(timeoutSeconds)) * 1000).toISOString();
  const escalationOf = firstRound[0]?.approvalId;

  const approvalId = approvalIdFor(run.runId, request.id, approver.email, escalation);
  const existing = await deps.ledger.getApproval(approvalId);
  if (existing && existing.status !== 'PENDING') {
    // Decided already (a run resumed after a restart, a retried task): nobody is asked again, and
    // the waiting task gets the recorded decision at once instead of waiting for a click that
    // will never come.
    if (existing.status === 'APPROVED') {
      await deps.callbacks.succeed(input.taskToken, { requestId: existing.requestId, approvalId, decision: 'approved' });
    } else if (existing.status === 'REJECTED') {
      await deps.callbacks.fail(input.taskToken, 'ApprovalRejected', JSON.stringify({ requestId: existing.requestId, approvalId }));
    }
    return { approvalId };
  }
  const record: ApprovalRecord = existing
    ? { ...existing, taskToken: input.taskToken }
    : {
        approvalId,
        runId: run.runId,
        employeeId: run.employeeId,
        requestId: request.id,
        approver: approver.email,
        approverRole: approver.role,
        taskToken: input.taskToken,
        status: 'PENDING',
        requestedAt: now.toISOString(),
        expiresAt,
        request: details,
        ...(escalationOf ? { escalationOf } : {}),
      };
  await deps.ledger.putApproval(record);
  await mailOnce(deps, policy, keys, record, escalation ? 'escalation' : 'request', escalation ? undefined : escalationHint(policy, request));
  if (!existing) deps.metrics.put('ApprovalRequested', 1, 'Count', { escalation: String(escalation), role: approver.role });
  await scheduleReminder(deps, policy, record);
  return { approvalId };
}

/** A reminder `reminderHours` (policy) before the window closes, when that is still ahead (deterministic name: idempotent). */
export async function scheduleReminder(deps: AppDeps, policy: Policy, approval: ApprovalRecord): Promise<void> {
  const hours = policy.document.approvals.reminderHours;
  if (!hours) return;
  const at = Date.parse(approval.expiresAt) - hours * 3_600_000;
  if (at <= deps.clock.now().getTime()) return;
  await deps.scheduler.upsertOnce(`jml-remind-${approval.approvalId}`.slice(0, 64), new Date(at), {
    kind: 'approval-reminder',
    payload: { approvalId: approval.approvalId, runId: approval.runId },
  });
}

/**
 * Emails the approver the link, once per approval and kind — for approvals outside a workflow
 * too (exception grants, bulk-guard releases), so every approval mail is built in one place.
 */
export async function mailApprovalOnce(deps: AppDeps, policy: Policy, approval: ApprovalRecord, kind: EmailKind, escalatesTo?: string): Promise<boolean> {
  return mailOnce(deps, policy, await linkKeys(deps), approval, kind, escalatesTo);
}

// ---------------------------------------------------------------------------------------------
// remindApproval

/** Sends the approver the same link again if the approval is still open. */
export async function remindApproval(deps: AppDeps, rawInput: { approvalId: string }): Promise<{ sent: boolean; reason: string }> {
  const input = parseOrThrow(z.object({ approvalId: z.string().regex(APPROVAL_ID) }), rawInput, 'remindApproval');
  const approval = await deps.ledger.getApproval(input.approvalId);
  if (!approval) return { sent: false, reason: 'no such approval' };
  if (approval.status !== 'PENDING') return { sent: false, reason: `approval is ${approval.status}` };
  if (deps.clock.now().getTime() >= Date.parse(approval.expiresAt)) return { sent: false, reason: 'approval has expired' };
  const policy = await deps.policy();
  await mailOnce(deps, policy, await linkKeys(deps), approval, 'reminder');
  return { sent: true, reason: 'reminder sent' };
}

// ---------------------------------------------------------------------------------------------
// expireApproval

/**
 * The escalated approval lapsed too: close what is still pending and open an `approval_expired`
 * exception owned by the owner of the target involved (or the fallback approver). The bundle is
 * not granted; the workflow continues with the rest.
 */
export async function expireApproval(
  deps: AppDeps,
  rawInput: { runId: string; requestId: string },
): Promise<{ requestId: string; decision: 'expired'; exceptionId: string }> {
  const input = parseOrThrow(z.object({ runId: z.string().min(1).max(256), requestId: z.string().min(1).max(256) }), rawInput, 'expireApproval');
  const policy = await deps.policy();
  const approvals = (await deps.ledger.listApprovals(input.runId)).filter((a) => a.requestId === input.requestId);
  for (const a of approvals) {
    if (a.status !== 'PENDING') continue;
    try {
      await deps.ledger.putApproval({ ...a, status: 'EXPIRED' });
    } catch (err) {
      if (!(err instanceof ConditionFailed)) throw err;
    }
  }
  const latest = approvals.at(-1);
  const details = latest ? ApprovalDetailsSchema.safeParse(latest.request) : undefined;
  const d = details?.success ? details.data : undefined;
  // The owner of the target involved; a request tied to no target (leaver data handling without
  // one) goes to the fallback approver, filed under the IdP.
  const involved = d?.entitlements[0]?.target ?? d?.dataHandling?.target;
  const target = involved ?? policy.idp.name;
  const owner = (involved && policy.targetsByName.get(involved)?.owner.email) || policy.document.company.fallbackApprover;
  const exceptionId = `approval_expired:${input.runId}:${input.requestId}`;
  const what = d ? (d.kind === 'dataHandling' ? d.dataHandling?.description ?? input.requestId : d.bundles.map((b) => b.name).join(', ')) : input.requestId;
  const exception: NewException = {
    exceptionId,
    runId: input.runId,
    ...(latest ? { employeeId: latest.employeeId } : {}),
    target,
    owner,
    kind: 'approval_expired',
    reason: `approval ${input.requestId} (${what}) was not decided in time, also after escalation: not granted`,
    evidence: {
      requestId: input.requestId,
      approvals: approvals.map((a) => ({
        approvalId: a.approvalId,
        approver: a.approver,
        approverRole: a.approverRole,
        requestedAt: a.requestedAt,
        expiresAt: a.expiresAt,
        status: a.status === 'PENDING' ? 'EXPIRED' : a.status,
        ...(a.escalationOf ? { escalationOf: a.escalationOf } : {}),
      })),
    },
  };
  // Like every exception: the owner is told, and the ITSM gets a ticket when one is configured.
  await openException(deps, exception);
  deps.metrics.put('ApprovalExpired', 1, 'Count');
  return { requestId: input.requestId, decision: 'expired', exceptionId };
}

// ---------------------------------------------------------------------------------------------
// The page and the decision.

type Method = 'GET' | 'HEAD' | 'POST';

interface Ctx {
  deps: AppDeps;
  policy: Policy;
  keys: string[];
  now: Date;
  method: Method;
}

function respond(ctx: Ctx, statusCode: number, body: string): HttpResponse {
  const origin = new URL(ctx.deps.publicBaseUrl).origin;
  return { statusCode, headers: pageHeaders(origin), body: ctx.method === 'HEAD' ? '' : body };
}

function result(ctx: Ctx, statusCode: number, kind: ResultKind, reason: string, extra: { details?: ApprovalDetails; rationale?: string } = {}): HttpResponse {
  return respond(ctx, statusCode, renderResultPage({ company: company(ctx.policy), kind, reason, ...extra }));
}

const LINK_REASON: Record<LinkFailure | 'missing', string> = {
  missing: 'The link is incomplete: its security token is missing.',
  malformed: 'The link is damaged or incomplete (it may have been cut or changed when it was copied).',
  tampered: 'The link has been changed: its signature does not match. Nothing was decided.',
  wrong_approval: 'This link belongs to a different approval request.',
  expired: 'The link has expired',
};

const CSRF_REASON: Record<CsrfFailure, string> = {
  missing: 'The form was submitted without its security token. Review the request and choose again.',
  invalid: 'The form could not be verified. Review the request and choose again.',
  stale: 'The page was open too long. Review the request and choose again.',
};

type Authenticated = { ok: true; approval: ApprovalRecord; details: ApprovalDetails; t: string } | { ok: false; response: HttpResponse };

/**
 * Who is asking, and may they: the link is genuine, for this approval, and the approval is still
 * open (not decided, escalated or expired, and no other approver decided first). Reads only.
 */
async function authenticate(ctx: Ctx, approvalId: string, t: string | undefined): Promise<Authenticated> {
  const fail = (statusCode: number, kind: ResultKind, reason: string, extra?: { details?: ApprovalDetails; rationale?: string }) =>
    ({ ok: false, response: result(ctx, statusCode, kind, reason, extra) }) as const;
  if (!APPROVAL_ID.test(approvalId)) return fail(404, 'not_found', 'This address does not name an approval request.');
  if (!t) return fail(403, 'invalid', LINK_REASON.missing);
  if (t.length > MAX_LINK_TOKEN_LENGTH) return fail(403, 'invalid', LINK_REASON.malformed);
  const claims = readLinkToken(t);
  if (!claims) return fail(403, 'invalid', LINK_REASON.malformed);

  const approval = await ctx.deps.ledger.getApproval(approvalId);
  const claimed = claims.approvalId === approvalId ? approval : await ctx.deps.ledger.getApproval(claims.approvalId);
  if (!claimed) {
    return claims.approvalId === approvalId
      ? fail(404, 'not_found', 'There is no approval request for this link (it may have been removed after its retention period).')
      : fail(403, 'invalid', LINK_REASON.tampered);
  }
  const verdict = verifyLinkToken({ t, approvalId, approver: claimed.approver, keys: ctx.keys, now: ctx.now });
  if (!verdict.ok && verdict.reason !== 'expired') return fail(403, 'invalid', LINK_REASON[verdict.reason]);
  if (!approval) return fail(404, 'not_found', 'There is no approval request for this link.');

  const details = parseDetails(approval);
  const closed = await closedReason(ctx, approval);
  if (closed) return fail(410, 'closed', closed.reason, { details, ...(closed.rationale ? { rationale: closed.rationale } : {}) });
  if (!verdict.ok || ctx.now.getTime() >= Date.parse(approval.expiresAt)) {
    return fail(410, 'closed', `${LINK_REASON.expired}: the deadline was ${formatWhen(ctx, approval.expiresAt)}. Nothing was decided.`, { details });
  }
  return { ok: true, approval, details, t };
}

function formatWhen(ctx: Ctx, iso: string): string {
  return new Intl.DateTimeFormat('en-GB', {
    timeZone: ctx.policy.document.company.timeZone,
    dateStyle: 'medium',
    timeStyle: 'short',
  }).format(new Date(iso)) + ` (${ctx.policy.document.company.timeZone})`;
}

/** Why an approval no longer takes decisions, or undefined while it does. */
async function closedReason(ctx: Ctx, approval: ApprovalRecord): Promise<{ reason: string; rationale?: string } | undefined> {
  const when = (iso?: string) => (iso ? ` on ${formatWhen(ctx, iso)}` : '');
  switch (approval.status) {
    case 'APPROVED':
    case 'REJECTED': {
      const late = await ctx.deps.ledger.getMeta<CallbackOutcome>(callbackKey(approval.approvalId));
      const verb = approval.status === 'APPROVED' ? 'approved' : 'rejected';
      const reason =
        late?.outcome === 'gone'
          ? `This link was already used: it was ${verb}${when(approval.decidedAt)}, after the request had closed, so the decision did not change the run.`
          : `This link was already used: the request was ${verb} by ${approval.approver}${when(approval.decidedAt)}. Each link decides once.`;
      return { reason, ...(approval.rationale ? { rationale: approval.rationale } : {}) };
    }
    case 'ESCALATED':
      return { reason: `The deadline passed and the request was escalated to another approver. This link no longer works.` };
    case 'EXPIRED':
      return { reason: `The request expired${when(approval.expiresAt)} without a decision and was closed. Nothing was granted.` };
    case 'PENDING':
      return undefined;
  }
}

async function context(deps: AppDeps, method: Method): Promise<Ctx> {
  const [policy, keys] = await Promise.all([deps.policy(), linkKeys(deps)]);
  return { deps, policy, keys, now: deps.clock.now(), method };
}

function confirmation(ctx: Ctx, auth: Extract<Authenticated, { ok: true }>, statusCode: number, extra: { error?: string; rationale?: string } = {}): HttpResponse {
  const csrf = signCsrfToken(ctx.keys, { approvalId: auth.approval.approvalId, t: auth.t, issuedAt: ctx.now });
  return respond(
    ctx,
    statusCode,
    renderConfirmationPage({
      company: company(ctx.policy),
      approval: auth.approval,
      details: auth.details,
      formAction: approvalUrl(ctx.deps, auth.approval.approvalId),
      t: auth.t,
      csrf,
      ...extra,
    }),
  );
}

/** `GET`/`HEAD /approvals/{id}?t=…`: the confirmation page. Reads only, whatever the link. */
export async function showApproval(
  deps: AppDeps,
  input: { approvalId: string; t: string | undefined; method: 'GET' | 'HEAD' },
): Promise<HttpResponse> {
  const ctx = await context(deps, input.method);
  const auth = await authenticate(ctx, input.approvalId, input.t);
  if (!auth.ok) return auth.response;
  return confirmation(ctx, auth, 200);
}

export interface DecideInput {
  approvalId: string;
  form: { t?: string; decision?: string; rationale?: string; csrf?: string };
  sourceIp?: string;
  userAgent?: string;
}

// Control characters other than line breaks and tabs have no place in evidence.
const STRIP_CONTROLS = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g;

/**
 * `POST /approvals/{id}`: decides exactly once (conditional write on the approval), then tells
 * the waiting workflow. A refused form re-renders the page with the reason and decides nothing.
 */
export async function decideApproval(deps: AppDeps, input: DecideInput): Promise<HttpResponse> {
  const ctx = await context(deps, 'POST');
  const { form } = input;
  const auth = await authenticate(ctx, input.approvalId, form.t);
  if (!auth.ok) {
    await redeliverLostCallback(ctx, input.approvalId, form.t);
    return auth.response;
  }
  const rationale = (form.rationale ?? '').replace(STRIP_CONTROLS, '').replace(/\r\n?/g, '\n').trim();
  const keep = rationale ? { rationale } : {};

  const csrf = verifyCsrfToken({ csrf: form.csrf, approvalId: auth.approval.approvalId, t: auth.t, keys: ctx.keys, now: ctx.now });
  if (!csrf.ok) return confirmation(ctx, auth, 403, { error: CSRF_REASON[csrf.reason], ...keep });
  if (form.decision !== 'approve' && form.decision !== 'reject') {
    return confirmation(ctx, auth, 400, { error: 'Choose Approve or Reject.', ...keep });
  }
  if ([...rationale].length > MAX_RATIONALE_CHARS) {
    return confirmation(ctx, auth, 400, {
      error: `The rationale is ${[...rationale].length} characters long; at most ${MAX_RATIONALE_CHARS} are accepted. Shorten it and choose again.`,
      ...keep,
    });
  }
  if (form.decision === 'reject' && !rationale) {
    return confirmation(ctx, auth, 400, { error: 'A rationale is required to reject. Say why, then choose Reject again.' });
  }

  const status = form.decision === 'approve' ? 'APPROVED' : 'REJECTED';
  const nowIso = ctx.now.toISOString();
  let decided: ApprovalRecord;
  try {
    decided = await deps.ledger.decideApproval(
      auth.approval.approvalId,
      {
        status,
        decidedAt: nowIso,
        ...keep,
        ...(input.sourceIp ? { sourceIp: input.sourceIp.slice(0, 64) } : {}),
        ...(input.userAgent ? { userAgent: input.userAgent.slice(0, MAX_USER_AGENT_CHARS) } : {}),
      },
      nowIso,
    );
  } catch (err) {
    if (!(err instanceof ConditionFailed)) throw err;
    // Someone (a second click, another tab) decided first, or the window closed just now.
    const again = await authenticate(ctx, input.approvalId, form.t);
    return again.ok ? result(ctx, 410, 'closed', 'This request is no longer open.', { details: auth.details }) : again.response;
  }

  const outcome = await deliver(ctx, decided);
  if (outcome === 'gone') {
    return result(
      ctx,
      410,
      'closed',
      'This request is no longer open: the run stopped waiting for a decision (it was stopped or superseded by a newer HR change). Your decision was recorded but did not change the run.',
      { details: auth.details, ...keep },
    );
  }
  deps.metrics.put('ApprovalDecided', 1, 'Count', { decision: status.toLowerCase() });
  const who = auth.details.person.name;
  return status === 'APPROVED'
    ? result(ctx, 200, 'approved', `Thank you. Your approval was recorded and the run for ${who} continues.`, { details: auth.details, ...keep })
    : result(ctx, 200, 'rejected', `Thank you. Your rejection was recorded; this access will not be granted to ${who}. The rest of the run proceeds.`, {
        details: auth.details,
        ...keep,
      });
}

/** Passes the decision to the waiting workflow and records what happened. */
async function deliver(ctx: Ctx, decided: ApprovalRecord): Promise<'ok' | 'gone'> {
  const decision = decided.status as 'APPROVED' | 'REJECTED';
  const token = decided.taskToken;
  const outcome = !token
    ? 'gone'
    : decision === 'APPROVED'
      ? await ctx.deps.callbacks.succeed(token, { requestId: decided.requestId, approvalId: decided.approvalId, decision: 'approved' })
      : await ctx.deps.callbacks.fail(token, 'ApprovalRejected', JSON.stringify({ requestId: decided.requestId, approvalId: decided.approvalId }));
  const record: CallbackOutcome = { outcome: outcome === 'ok' ? 'delivered' : 'gone', decision, at: ctx.deps.clock.now().toISOString() };
  await ctx.deps.ledger.putMeta(callbackKey(decided.approvalId), record, metaTtl(decided.expiresAt));
  if (outcome === 'gone') ctx.deps.metrics.put('ApprovalDecisionTooLate', 1, 'Count');
  return outcome;
}

/**
 * A decision is recorded but its callback never completed (the process died or the callback
 * threw between the two): a repeated POST with a genuine link delivers the recorded decision
 * (never the new form's), once. Step Functions answers `gone` if the task already finished.
 */
async function redeliverLostCallback(ctx: Ctx, approvalId: string, t: string | undefined): Promise<void> {
  if (!t || !APPROVAL_ID.test(approvalId)) return;
  const approval = await ctx.deps.ledger.getApproval(approvalId);
  if (!approval || (approval.status !== 'APPROVED' && approval.status !== 'REJECTED')) return;
  // A decision still in flight (a double click) is not lost: leave its delivery alone.
  if (!approval.decidedAt || ctx.now.getTime() - Date.parse(approval.decidedAt) < REDELIVERY_GRACE_MS) return;
  const verdict = verifyLinkToken({ t, approvalId, approver: approval.approver, keys: ctx.keys, now: ctx.now });
  if (!verdict.ok && verdict.reason !== 'expired') return;
  if (await ctx.deps.ledger.getMeta(callbackKey(approvalId))) return;
  await deliver(ctx, approval);
}

/** For the handler: a request body too large or of the wrong type never reaches the use case. */
export function plainResult(deps: AppDeps, policy: Policy, statusCode: number, reason: string, method: Method = 'GET'): HttpResponse {
  const ctx: Ctx = { deps, policy, keys: [], now: deps.clock.now(), method };
  return result(ctx, statusCode, 'invalid', reason);
}
