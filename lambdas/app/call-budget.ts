/**
 * Runs reserve the identity provider's calls before they make them (`#core/call-budget`): a
 * leaver's restrict step from the restrict lane when its workflow starts, the rest of its run
 * from the routine lane once the disable is done. The workflow waits for each slot in a `Wait`
 * state. Without a `rateLimit` on the IdP target nothing is reserved and every slot is "now".
 */
import { CALL_COSTS, leaverRemainderCalls, leaverRestrictCalls, slotNow, slotTimestamp, type CallLane } from '#core/call-budget';
import { desiredState } from '#core/desired-state';
import type { PersonRecord } from '#core/ledger';
import type { Policy } from '#core/policy';
import type { AppDeps } from './ports.ts';

export const callBudgetKey = (target: string) => `target:${target}`;

/** Reserves `calls` of the IdP's budget; the moment they may start (ISO), now when unbudgeted. */
export async function reserveIdpCalls(deps: Pick<AppDeps, 'ledger' | 'clock' | 'metrics'>, policy: Policy, lane: CallLane, calls: number): Promise<string> {
  const nowMs = deps.clock.now().getTime();
  const limit = policy.idp.rateLimit;
  if (!limit || calls <= 0) return slotNow(nowMs);
  const { startAtMs } = await deps.ledger.reserveCalls(callBudgetKey(policy.idp.name), {
    calls,
    requestsPerMinute: limit.requestsPerMinute,
    ...(limit.burst !== undefined ? { burst: limit.burst } : {}),
    lane,
    nowMs,
  });
  deps.metrics.put('CallBudgetWait', Math.max(0, startAtMs - nowMs), 'Milliseconds', { target: policy.idp.name, lane });
  return slotTimestamp(startAtMs, nowMs);
}

/** A leaver's restrict step: status read, disable, session revocation. */
export function reserveLeaverRestrict(deps: Pick<AppDeps, 'ledger' | 'clock' | 'metrics'>, policy: Policy): Promise<string> {
  return reserveIdpCalls(deps, policy, 'restrict', leaverRestrictCalls(CALL_COSTS[idpKind(policy)]));
}

/**
 * The rest of a leaver's run at the IdP. The entitlements to remove are estimated from what the
 * policy gives the person while active (the restrict step reads the status alone).
 */
export async function reserveLeaverRemainder(deps: Pick<AppDeps, 'ledger' | 'clock' | 'metrics'>, policy: Policy, person: PersonRecord): Promise<string> {
  const nowMs = deps.clock.now().getTime();
  if (!policy.idp.rateLimit) return slotNow(nowMs);
  const held = desiredState({ worker: person.worker, status: 'active' }, policy, { grantedAt: person.grantedAt, now: deps.clock.now().toISOString() })
    .targets.find((t) => t.target === policy.idp.name)?.entitlements.length ?? 0;
  try {
    return await reserveIdpCalls(deps, policy, 'routine', leaverRemainderCalls(CALL_COSTS[idpKind(policy)], held));
  } catch {
    // The disable is done and recorded: a budget that cannot be read must not fail the step (and
    // send it to DisableFailed). The run goes on unpaced; the connector's governor still paces it.
    deps.metrics.put('CallBudgetUnavailable', 1, 'Count', { target: policy.idp.name });
    return slotNow(nowMs);
  }
}

function idpKind(policy: Policy): 'okta' | 'entra' {
  const kind = policy.idp.kind;
  if (kind !== 'okta' && kind !== 'entra') throw new Error(`internal: identity provider ${policy.idp.name} has kind ${kind}`);
  return kind;
}
