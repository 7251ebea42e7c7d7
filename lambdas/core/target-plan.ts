/**
 * Plan for one target and one person: desired − actual, as ordered operations.
 *
 * Order is the product's safety contract:
 *  - restricting the account (disable / suspend, then revoke sessions) comes first, so a leaver
 *    loses the ability to sign in before anything else happens;
 *  - removals come before additions, so a mover is never briefly the union of two roles;
 *  - re-enabling happens after stale entitlements are removed and before new ones are added.
 * A plan against a target that already matches is empty, which is what makes converge idempotent.
 */
import {
  entitlementKey,
  type ActualAccount,
  type DesiredTarget,
  type Entitlement,
  type EntitlementRef,
  type PresentStatus,
} from './access.ts';

export const TARGET_OPS = [
  'create',
  'disable',
  'suspend',
  'revokeSessions',
  'removeEntitlement',
  'enable',
  'unsuspend',
  'addEntitlement',
  'delete',
] as const;
export type TargetOp = (typeof TARGET_OPS)[number];

export interface PlannedOp {
  op: TargetOp;
  /** Set for add/remove. Additions carry their provenance; removals only the reference. */
  entitlement?: Entitlement | EntitlementRef;
  reason: string;
}

export interface TargetCapabilities {
  /** Whether the target has a suspended state distinct from disabled (Okta does; Entra and SCIM do not). */
  suspend: boolean;
}

export interface TargetPlanOptions {
  /** Revoke sessions even when the account is already restricted (a leaver run always does). */
  forceRevoke?: boolean;
}

/** The status a target can actually hold for a desired status. */
export function effectiveStatus(desired: PresentStatus, caps: TargetCapabilities): PresentStatus {
  return desired === 'suspended' && !caps.suspend ? 'disabled' : desired;
}

/**
 * `desired.entitlements` is unique by type + value (desiredState builds it from a map); the
 * target's list may not be, and is de-duplicated here.
 */
export function planTarget(
  desired: DesiredTarget,
  actual: ActualAccount | null,
  caps: TargetCapabilities,
  options: TargetPlanOptions = {},
): PlannedOp[] {
  const ops: PlannedOp[] = [];
  if (desired.account === 'absent') {
    if (!actual) return ops;
    if (actual.status === 'enabled') {
      ops.push({ op: 'disable', reason: 'account must be disabled before it is deleted' });
      ops.push({ op: 'revokeSessions', reason: 'end every session of an account being deleted' });
    }
    ops.push({ op: 'delete', reason: 'retention window over: hard delete' });
    return ops;
  }

  const wanted = desired.entitlements;
  if (!actual) {
    if (desired.account !== 'enabled') return ops; // never create an account only to restrict it
    ops.push({ op: 'create', reason: 'person has no account on this target' });
    for (const e of wanted) ops.push({ op: 'addEntitlement', entitlement: e, reason: grantReason(e) });
    return ops;
  }

  const target = effectiveStatus(desired.account, caps);
  const restricting = target !== 'enabled';
  if (restricting) {
    const alreadyRestricted = actual.status === 'disabled' || actual.status === target;
    if (!alreadyRestricted) {
      ops.push({ op: target === 'disabled' ? 'disable' : 'suspend', reason: `person is ${describe(desired.account)}` });
    }
    if (!alreadyRestricted || options.forceRevoke) {
      ops.push({ op: 'revokeSessions', reason: 'end sessions and refresh tokens of a restricted account' });
    }
  }

  const wantedKeys = new Set(wanted.map(entitlementKey));
  const actualKeys = new Set<string>();
  for (const e of actual.entitlements) {
    const key = entitlementKey(e);
    if (actualKeys.has(key)) continue; // a target listing one membership twice
    actualKeys.add(key);
    if (!wantedKeys.has(key)) {
      ops.push({ op: 'removeEntitlement', entitlement: { type: e.type, value: e.value }, reason: 'not in desired state' });
    }
  }
  if (!restricting && actual.status !== 'enabled') {
    ops.push({
      op: actual.status === 'suspended' ? 'unsuspend' : 'enable',
      reason: 'person is active',
    });
  }
  for (const e of wanted) {
    if (!actualKeys.has(entitlementKey(e))) ops.push({ op: 'addEntitlement', entitlement: e, reason: grantReason(e) });
  }
  return ops;
}

function grantReason(e: EntitlementRef): string {
  return 'rule' in e ? `granted by rule ${(e as Entitlement).rule} (bundle ${(e as Entitlement).bundle})` : 'desired';
}

function describe(status: DesiredTarget['account']): string {
  return status === 'disabled' ? 'a leaver' : status === 'suspended' ? 'on leave' : status;
}
