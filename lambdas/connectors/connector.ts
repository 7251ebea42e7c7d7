/**
 * The Connector port: every operation a run needs on one target, for one account at a time.
 *
 * Contract for adapters (Okta, Entra via Graph, SCIM 2.0):
 *  - Every write is idempotent: a call that finds the account already in the wanted state makes
 *    no write and returns `changed: false`.
 *  - Every write returns the target's request id when the target sends one
 *    (Okta `X-Okta-Request-Id`, Graph `request-id`, SCIM apps vary) for the evidence log.
 *  - Failures are thrown as the typed errors in `#core/errors` (TargetThrottled, TargetUnavailable,
 *    TargetConflict, TargetRejected, AccountNotFound) so the workflow can retry or open an exception.
 *  - Entitlements are addressed by `type` + `value` (the name the target knows); the adapter
 *    resolves names to ids (and may cache that mapping per instance).
 *  - Secrets (tokens, TAP codes) never appear in errors, change records or audit entries.
 */
import type { ActualAccount, EntitlementRef, TargetKind } from '#core/access';
import type { TargetCapabilities } from '#core/target-plan';
import type { AuditEntry, ChangeRecord } from '#core/change';

/** The attributes a connector writes when it creates an account. */
export interface AccountProfile {
  employeeId: string;
  /** Login / userPrincipalName / SCIM userName. */
  userName: string;
  email: string;
  givenName: string;
  familyName: string;
  displayName: string;
  department: string;
  jobCode: string;
  location: string;
  employmentType: 'employee' | 'contractor';
  managerEmail?: string;
}

export type { AuditEntry, ChangeRecord } from '#core/change';

export interface AccountPage {
  accounts: ActualAccount[];
  /** Opaque cursor for the next page; absent on the last page. */
  nextCursor?: string;
}

/** One page of the accounts that hold one entitlement (`listEntitlementMembers`). */
export interface MemberPage {
  /** Member accounts: the target's account id and, when the listing carries it, the correlation key. */
  members: Array<{ accountId: string; correlationKey?: string }>;
  /** Opaque cursor for the next page; absent on the last page. */
  nextCursor?: string;
  /** Set when the entitlement does not exist on the target (or its name is ambiguous): why. No members. */
  unresolved?: string;
}

export interface TemporaryAccessPass {
  /** The one-time secret. Goes only to the manager's email; never logged, never in evidence. */
  secret: string;
  startDateTime: string;
  lifetimeInMinutes: number;
  change: ChangeRecord;
}

export interface AccountQuery {
  employeeId: string;
  linkIds?: string[];
  /**
   * `false`: the caller only needs the account and its status (a leaver's disable), so a target
   * that reads memberships with calls of their own (Okta: groups, app links) skips them and
   * reports `entitlements: []`. Default: read them.
   */
  entitlements?: boolean;
}

export interface Connector {
  /** Target name as in the policy (`okta`, `entra`, `slack`, …). */
  readonly name: string;
  readonly kind: TargetKind;
  readonly capabilities: TargetCapabilities;

  /**
   * Accounts that belong to the person: matched by correlation key (Okta profile.employeeNumber,
   * Entra employeeId, SCIM externalId) and by stored link ids. Several results mean a conflict;
   * the caller decides, the adapter never picks one.
   */
  findAccounts(query: AccountQuery): Promise<ActualAccount[]>;
  getAccount(accountId: string): Promise<ActualAccount>;
  createAccount(profile: AccountProfile, options: { enabled: boolean }): Promise<{ account: ActualAccount; change: ChangeRecord }>;
  setStatus(accountId: string, status: 'enabled' | 'suspended' | 'disabled'): Promise<ChangeRecord>;
  revokeSessions(accountId: string): Promise<ChangeRecord>;
  addEntitlement(accountId: string, entitlement: EntitlementRef): Promise<ChangeRecord>;
  removeEntitlement(accountId: string, entitlement: EntitlementRef): Promise<ChangeRecord>;
  deleteAccount(accountId: string): Promise<ChangeRecord>;
  /** One page of all accounts on the target (reconciliation, orphan detection). */
  listAccounts(cursor?: string): Promise<AccountPage>;
  /**
   * Optional: one page of the accounts that hold `entitlement` (Okta: the members of a group, the
   * users assigned to an app). Lets the nightly reconciliation compare entitlements at a cost of
   * pages per entitlement instead of reads per account (targets whose `listAccounts` pages carry
   * no entitlements).
   */
  listEntitlementMembers?(entitlement: EntitlementRef, cursor?: string): Promise<MemberPage>;
  /** The target's own audit entries about the account since `since` (ISO time). */
  auditEvidence(accountId: string, since: string): Promise<AuditEntry[]>;
  /** Entra only: a Temporary Access Pass for day one. */
  /** `startDateTime` (ISO) delays the pass's validity, e.g. to the morning of day one. */
  createTemporaryAccessPass?(accountId: string, lifetimeInMinutes: number, startDateTime?: string): Promise<TemporaryAccessPass>;
}
