/**
 * Approvals that no workflow waits for: an exception grant (the app owner decides) and the release
 * of runs held by the bulk-change guard (the fallback approver decides).
 *
 * They reuse the approvals machinery end to end — the approval record in the ledger, the signed
 * single-use link, the confirmation page, "decides exactly once" — and differ in one place only:
 * what the decision wakes up. A workflow approval stores a Step Functions task token; these store
 * a *decision token* `jml-decision:{kind}:{id}`. `withDecisionCallbacks` wraps the `TaskCallbacks`
 * port so that `approvals.ts`'s delivery (`callbacks.succeed/fail(token)`) routes decision tokens
 * to the use case that applies the decision, and everything else to Step Functions unchanged.
 * The composition root wraps its callbacks once:
 *
 *     callbacks: withDecisionCallbacks(workflows, () => deps)
 *
 * A decision token is not a secret (it names a grant or a hold, which the approval record holds
 * anyway) and is never put in a URL or an email; like a task token it stays server-side.
 */
import { signLinkToken } from '#core/approval-link';
import type { ApprovalRecord } from '#core/ledger';
import type { Policy } from '#core/policy';
import { parseOrThrow } from '#core/validation';
import { ApprovalDetailsSchema, renderApprovalEmail, type EmailKind } from './approval-views.ts';
import type { AppDeps, TaskCallbacks } from './ports.ts';
import { decideExceptionGrant } from './exception-grants.ts';
import { decideHold } from './bulk-guard.ts';

export const DECISION_TOKEN_PREFIX = 'jml-decision:';
export const DECISION_KINDS = ['exception-grant', 'bulk-release'] as const;
export type DecisionKind = (typeof DECISION_KINDS)[number];

/** Meta records about an approval (mail sent) outlive it by this long (as in approvals.ts). */
const META_RETENTION_DAYS = 400;

export function decisionToken(kind: DecisionKind, id: string): string {
  return `${DECISION_TOKEN_PREFIX}${kind}:${id}`;
}

export function parseDecisionToken(token: string): { kind: DecisionKind; id: string } | null {
  if (!token.startsWith(DECISION_TOKEN_PREFIX)) return null;
  const rest = token.slice(DECISION_TOKEN_PREFIX.length);
  const colon = rest.indexOf(':');
  const kind = rest.slice(0, colon) as DecisionKind;
  const id = rest.slice(colon + 1);
  if (colon < 0 || !DECISION_KINDS.includes(kind) || !id) return null;
  return { kind, id };
}

const WRAPPED = Symbol.for('jml.decisionCallbacks');

/**
 * `TaskCallbacks` that deliver decision tokens to their use case and pass every other token to
 * `inner` (Step Functions). Wrapping twice is harmless.
 */
export function withDecisionCallbacks(inner: TaskCallbacks, deps: () => AppDeps | Promise<AppDeps>): TaskCallbacks {
  if ((inner as { [WRAPPED]?: boolean })[WRAPPED]) return inner;
  const wrapped: TaskCallbacks & { [WRAPPED]: boolean } = {
    [WRAPPED]: true,
    async succeed(token, output) {
      const parsed = parseDecisionToken(token);
      if (!parsed) return inner.succeed(token, output);
      return route(await deps(), token, parsed, (output as { approvalId?: unknown } | null)?.approvalId);
    },
    async fail(token, error, cause) {
      const parsed = parseDecisionToken(token);
      if (!parsed) return inner.fail(token, error, cause);
      let approvalId: unknown;
      try {
        approvalId = (JSON.parse(cause) as { approvalId?: unknown }).approvalId;
      } catch {
        approvalId = undefined;
      }
      return route(await deps(), token, parsed, approvalId);
    },
  };
  return wrapped;
}

async function route(deps: AppDeps, token: string, parsed: { kind: DecisionKind; id: string }, approvalId: unknown): Promise<'ok' | 'gone'> {
  if (typeof approvalId !== 'string') return 'gone';
  const approval = await deps.ledger.getApproval(approvalId);
  // The ledger's record is the decision; the callback only says which one to read.
  if (!approval || approval.taskToken !== token || (approval.status !== 'APPROVED' && approval.status !== 'REJECTED')) return 'gone';
  switch (parsed.kind) {
    case 'exception-grant':
      return decideExceptionGrant(deps, parsed.id, approval);
    case 'bulk-release':
      return decideHold(deps, parsed.id, approval);
  }
}

/** The approval link as approvals.ts builds it: `{publicBaseUrl}/approvals/{id}?t=…`. */
async function approvalLink(deps: AppDeps, approval: ApprovalRecord): Promise<string> {
  const keys = await deps.secrets.get('linkSigning');
  if (keys.length === 0) throw new Error('linkSigning: no link-signing key configured');
  const t = signLinkToken(keys, { approvalId: approval.approvalId, approver: approval.approver, expiresAt: approval.expiresAt });
  return `${deps.publicBaseUrl.replace(/\/+$/, '')}/approvals/${encodeURIComponent(approval.approvalId)}?t=${encodeURIComponent(t)}`;
}

/**
 * Emails the approver the link, once per approval and kind (the marker uses approvals.ts's key,
 * so `remindApproval` treats these approvals like any other).
 */
export async function mailApprovalOnce(deps: AppDeps, policy: Policy, approval: ApprovalRecord, kind: EmailKind, escalatesTo?: string): Promise<boolean> {
  const key = `approval-mail:${approval.approvalId}:${kind}`;
  if (kind !== 'reminder' && (await deps.ledger.getMeta(key))) return false;
  const details = parseOrThrow(ApprovalDetailsSchema, approval.request, `approval ${approval.approvalId} request`);
  const link = await approvalLink(deps, approval);
  const mail = renderApprovalEmail({
    company: { name: policy.document.company.name, timeZone: policy.document.company.timeZone },
    kind,
    approver: approval.approver,
    details,
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
    approvalId: approval.approvalId,
  });
  const ttl = Math.floor(Date.parse(approval.expiresAt) / 1000) + META_RETENTION_DAYS * 86_400;
  await deps.ledger.putMeta(key, { messageId, sentAt: deps.clock.now().toISOString() }, ttl);
  return true;
}

/** A reminder before the approval window closes, when the policy asks for one. */
export async function scheduleReminder(deps: AppDeps, policy: Policy, approval: ApprovalRecord): Promise<void> {
  const hours = policy.document.approvals.reminderHours;
  if (!hours) return;
  const at = Date.parse(approval.expiresAt) - hours * 3_600_000;
  if (at <= deps.clock.now().getTime()) return;
  await deps.scheduler.upsertOnce(`jml-remind-${approval.approvalId}`.slice(0, 64), new Date(at), {
    kind: 'approval-reminder',
    payload: { approvalId: approval.approvalId },
  });
}
