/**
 * Okta shapes the connector relies on, checked at the edge with zod, and the mapping between
 * Okta's user lifecycle and the product's account statuses.
 *
 * Only the fields the connector reads are checked, so Okta can add fields freely; a missing or
 * mistyped field fails with a message that names it (`users[0].status: …`).
 */
import * as z from 'zod';
import type { PresentStatus } from '#core/access';

export const OKTA_USER_STATUSES = [
  'STAGED',
  'PROVISIONED',
  'ACTIVE',
  'RECOVERY',
  'PASSWORD_EXPIRED',
  'LOCKED_OUT',
  'SUSPENDED',
  'DEPROVISIONED',
] as const;
export type OktaUserStatus = (typeof OKTA_USER_STATUSES)[number];

export const OktaUser = z.object({
  id: z.string().min(1),
  status: z.enum(OKTA_USER_STATUSES),
  profile: z.looseObject({
    login: z.string().min(1),
    employeeNumber: z.string().nullish(),
  }),
});
export type OktaUser = z.infer<typeof OktaUser>;

export const OktaGroup = z.object({
  id: z.string().min(1),
  type: z.enum(['OKTA_GROUP', 'APP_GROUP', 'BUILT_IN']),
  profile: z.looseObject({ name: z.string().min(1) }),
});
export type OktaGroup = z.infer<typeof OktaGroup>;

export const OktaAppLink = z.object({
  appInstanceId: z.string().min(1),
  label: z.string().min(1),
});

export const OktaApp = z.object({
  id: z.string().min(1),
  label: z.string().min(1),
  status: z.string().nullish(),
});

export const OktaLogEvent = z.object({
  uuid: z.string().min(1),
  published: z.iso.datetime({ offset: true }),
  eventType: z.string().min(1),
  displayMessage: z.string().nullish(),
  outcome: z.object({ result: z.string().nullish(), reason: z.string().nullish() }).nullish(),
  actor: z.object({ id: z.string().nullish(), alternateId: z.string().nullish(), displayName: z.string().nullish() }).nullish(),
  target: z.array(z.object({ id: z.string() })).nullish(),
  transaction: z.object({ id: z.string().nullish() }).nullish(),
});

/** Okta's error body (`ModelError`). */
export const OktaErrorBody = z.object({
  errorCode: z.string().optional(),
  errorSummary: z.string().optional(),
  errorCauses: z.array(z.object({ errorSummary: z.string().optional() })).optional(),
});

/** Okta lifecycle → product status. Anything that can still sign in (or finish activating) is enabled. */
export function toAccountStatus(status: OktaUserStatus): PresentStatus {
  switch (status) {
    case 'ACTIVE':
    case 'PROVISIONED':
    case 'RECOVERY':
    case 'PASSWORD_EXPIRED':
    case 'LOCKED_OUT':
      return 'enabled';
    case 'SUSPENDED':
      return 'suspended';
    case 'STAGED':
    case 'DEPROVISIONED':
      return 'disabled';
  }
}

export type LifecycleOp = 'activate' | 'unsuspend' | 'deactivate' | 'suspend';

/**
 * The lifecycle call that takes a user from `current` to `wanted`, or null when it is there
 * already. A deactivated (or never activated) user already satisfies `suspended`: Okta cannot
 * suspend it, and it is more restricted than suspended anyway (the planner treats it the same way).
 */
export function transitionFor(current: OktaUserStatus, wanted: PresentStatus): LifecycleOp | null {
  const now = toAccountStatus(current);
  switch (wanted) {
    case 'enabled':
      if (now === 'enabled') return null;
      return current === 'SUSPENDED' ? 'unsuspend' : 'activate';
    case 'disabled':
      return now === 'disabled' ? null : 'deactivate';
    case 'suspended':
      return now === 'enabled' ? 'suspend' : null;
  }
}

/** Formats zod issues as `path: message; …` so a bad response names the field. */
export function describeIssues(error: z.ZodError, root: string): string {
  return error.issues
    .map((i) => `${[root, ...i.path.map(String)].join('.').replace(/\.(\d+)(?=\.|$)/g, '[$1]')}: ${i.message}`)
    .join('; ');
}
