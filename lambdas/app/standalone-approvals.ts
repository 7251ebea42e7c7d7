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
import type { AppDeps, TaskCallbacks } from './ports.ts';
import { decideExceptionGrant } from './exception-grants.ts';
import { decideHold } from './bulk-guard.ts';

export const DECISION_TOKEN_PREFIX = 'jml-decision:';
export const DECISION_KINDS = ['exception-grant', 'bulk-release'] as const;
export type DecisionKind = (typeof DECISION_KINDS)[number];


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

export { mailApprovalOnce, scheduleReminder } from './approvals.ts';
