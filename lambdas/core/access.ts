/**
 * The access vocabulary shared by the policy, the planner and the connectors.
 *
 * An entitlement is identified on its target by `type` + `value` (the name the target knows it
 * by: an Okta group name, an Entra license SKU part number, a SCIM group display name, an app
 * role value). Desired entitlements also carry their provenance — the bundle and the rule that
 * granted them — so every grant is explainable.
 */

export const TARGET_KINDS = ['okta', 'entra', 'scim'] as const;
export type TargetKind = (typeof TARGET_KINDS)[number];

export const ENTITLEMENT_TYPES = ['group', 'license', 'role', 'app'] as const;
export type EntitlementType = (typeof ENTITLEMENT_TYPES)[number];

export const TARGET_MODES = ['enforce', 'shadow'] as const;
export type TargetMode = (typeof TARGET_MODES)[number];

/** `absent` is only ever desired (hard delete after retention), never reported by a target. */
export type AccountStatus = 'enabled' | 'suspended' | 'disabled' | 'absent';
export type PresentStatus = Exclude<AccountStatus, 'absent'>;

export interface EntitlementRef {
  type: EntitlementType;
  value: string;
}

export interface Entitlement extends EntitlementRef {
  /** Bundle that carries the entitlement. */
  bundle: string;
  /** Id of the policy rule that selected the bundle ("why does this person get this"). */
  rule: string;
  privileged: boolean;
  /** Other bundles/rules that grant the same entitlement (provenance is complete, not first-wins). */
  alsoGrantedBy?: Array<{ bundle: string; rule: string }>;
  /** ISO timestamp after which a time-bound grant is removed. */
  expiresAt?: string;
}

/** What one target should look like for one person. */
export interface DesiredTarget {
  target: string;
  kind: TargetKind;
  mode: TargetMode;
  account: AccountStatus;
  entitlements: Entitlement[];
}

/** What one target reports for one account. */
export interface ActualAccount {
  /** The target's own id for the account (Okta user id, Entra object id, SCIM id). */
  id: string;
  /** The person key stored on the account (employeeNumber / employeeId / externalId), if any. */
  correlationKey?: string;
  userName?: string;
  status: PresentStatus;
  entitlements: EntitlementRef[];
}

export function entitlementKey(e: EntitlementRef): string {
  return `${e.type}:${e.value}`;
}

export function sameEntitlement(a: EntitlementRef, b: EntitlementRef): boolean {
  return a.type === b.type && a.value === b.value;
}
