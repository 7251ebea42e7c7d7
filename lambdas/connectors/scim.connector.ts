/**
 * The Connector port for SCIM 2.0 SaaS apps (RFC 7643 / RFC 7644).
 *
 * - Correlation: `externalId eq "<employeeId>"`, plus stored link ids read by `GET /Users/{id}`.
 * - Status: `active` true → enabled, false → disabled. SCIM has no suspended state
 *   (`capabilities.suspend = false`): a suspend request sets `active: false`.
 * - Entitlements: `group` = a Group's displayName; membership is changed on the Group
 *   (`members` add, `members[value eq "<id>"]` remove). `role` = a value of the user's `roles`.
 *   Apps flagged `putOnly` get whole-resource PUTs (with If-Match) instead of PATCH.
 * - Apps flagged `deleteOnDeactivate` delete a user when `active: false` is set; the disable
 *   change records that (after confirming the account is gone), later steps on the vanished
 *   account are no-ops, and a rehire re-creates it (converge plans `create` when none is found).
 * - Sessions: SCIM has no session API; revokeSessions changes nothing and says so.
 * - Audit: SCIM has no audit API. auditEvidence returns what the connector can prove itself: the
 *   account's `meta` (lastModified / version) and state as read back, or its absence (404).
 *
 * Every write first reads the current state and makes no call when the account is already as
 * wanted (`changed: false`), so converge and retries are idempotent. A membership or role PATCH
 * whose answer is lost (timeout, closed connection) is not sent again blind: the account is read
 * back and the write resent only if it did not land — an app that appends to the list would
 * otherwise hold the value twice. PATCH / PUT answers are not read (apps answer 200 with the
 * resource or 204 No Content, both fine); reads are validated.
 */
import * as z from 'zod';
import type { ActualAccount, EntitlementRef } from '#core/access';
import { AccountNotFound, PolicyViolation, TargetConflict, ValidationError } from '#core/errors';
import type { TargetCapabilities, TargetOp } from '#core/target-plan';
import type { AccountPage, AccountProfile, AuditEntry, ChangeRecord, Connector } from './connector.ts';
import { ScimClient, UnansweredWrite } from './scim-client.ts';
import { LANDED, sendOnce as sendOnceWith, type Sent } from './send-once.ts';
import {
  SCIM_ENTERPRISE_USER_SCHEMA,
  SCIM_GROUP_SCHEMA,
  SCIM_PATCH_OP,
  SCIM_USER_SCHEMA,
  scimGroupSchema,
  scimListResponseSchema,
  scimString,
  scimUserSchema,
  type ScimGroup,
  type ScimUser,
} from './scim-wire.ts';

export const scimQuirksSchema = z.object({
  /** The app deletes users when `active: false` is set (no disabled state). */
  deleteOnDeactivate: z.boolean().default(false),
  /** The app does not implement PATCH; write whole resources with PUT. */
  putOnly: z.boolean().default(false),
});

export const scimConnectorConfigSchema = z.object({
  name: z.string().min(1),
  baseUrl: z.url({ protocol: /^https?$/ }),
  token: z.string().min(1),
  quirks: scimQuirksSchema.prefault({}),
  maxConcurrent: z.int().min(1).max(64).default(4),
  requestTimeoutMs: z.int().min(50).max(120_000).default(10_000),
  maxRetries: z.int().min(0).max(10).default(3),
  retryBaseDelayMs: z.int().min(0).max(30_000).default(250),
  maxRetryAfterSeconds: z.int().min(0).max(900).default(30),
  /** `count` per page for listAccounts and lookups. */
  pageSize: z.int().min(1).max(1000).default(100),
});
export type ScimConnectorConfig = z.input<typeof scimConnectorConfigSchema>;

const userList = scimListResponseSchema(scimUserSchema);
const groupList = scimListResponseSchema(scimGroupSchema);

export const SCIM_NO_SESSION_API = 'target has no session API; access ends with active=false';

export interface ScimConnector extends Connector {
  /** The connector's rate governor (stats: calls, waits, throttled). */
  readonly governor: ScimClient['governor'];
}

export function createScimConnector(input: ScimConnectorConfig): ScimConnector {
  const parsed = scimConnectorConfigSchema.safeParse(input);
  if (!parsed.success) {
    // Issue messages name the field and the rule, never the value (the token stays out).
    throw new ValidationError(parsed.error.issues.map((i) => `scim connector config ${i.path.join('.')}: ${i.message}`));
  }
  const config = parsed.data;
  const { name, quirks } = config;
  const client = new ScimClient({ ...config, target: name });
  /** Group displayName (lower-cased, SCIM displayName is caseExact false) → id, and back. */
  const groupIdByName = new Map<string, string>();
  const groupNameById = new Map<string, string>();

  const capabilities: TargetCapabilities = { suspend: false };

  const change = (
    op: TargetOp,
    accountId: string,
    changed: boolean,
    requestIds: string[],
    extra: { entitlement?: EntitlementRef; detail?: string } = {},
  ): ChangeRecord => ({ target: name, op, accountId, changed, requestIds, ...extra });

  const userPath = (id: string) => `/Users/${encodeURIComponent(id)}`;
  const groupPath = (id: string) => `/Groups/${encodeURIComponent(id)}`;

  async function readUser(id: string, trace: string[]): Promise<{ user: ScimUser; etag?: string }> {
    const reply = await client.call('GET', userPath(id), { schema: scimUserSchema, what: `SCIM User ${id}`, trace });
    return { user: reply.body, etag: reply.etag ?? reply.body.meta?.version };
  }

  async function readUserOrNull(id: string, trace: string[]) {
    try {
      return await readUser(id, trace);
    } catch (err) {
      if (err instanceof AccountNotFound) return null;
      throw err;
    }
  }

  /** Every user matching a filter, across pages. */
  async function searchUsers(filter: string, trace: string[]): Promise<ScimUser[]> {
    const found: ScimUser[] = [];
    for (let startIndex = 1; ; ) {
      const { body } = await client.call('GET', '/Users', {
        query: { filter, startIndex, count: config.pageSize },
        schema: userList,
        what: 'SCIM ListResponse of Users',
        trace,
      });
      const page = body.Resources ?? [];
      found.push(...page);
      startIndex += page.length;
      if (page.length === 0 || startIndex > body.totalResults) return found;
    }
  }

  async function groupName(id: string, trace: string[]): Promise<string> {
    const known = groupNameById.get(id);
    if (known !== undefined) return known;
    const { body } = await client.call('GET', groupPath(id), {
      query: { excludedAttributes: 'members' },
      schema: scimGroupSchema,
      what: `SCIM Group ${id}`,
      trace,
    });
    remember(body);
    return body.displayName;
  }

  function remember(g: Pick<ScimGroup, 'id' | 'displayName'>): void {
    groupIdByName.set(g.displayName.toLowerCase(), g.id);
    groupNameById.set(g.id, g.displayName);
  }

  function forget(id: string): void {
    const n = groupNameById.get(id);
    if (n !== undefined) groupIdByName.delete(n.toLowerCase());
    groupNameById.delete(id);
  }

  /** Group displayName → id (cached per instance). Missing group → AccountNotFound. */
  async function resolveGroup(displayName: string, trace: string[], fresh = false): Promise<string> {
    const cached = fresh ? undefined : groupIdByName.get(displayName.toLowerCase());
    if (cached) return cached;
    const { body } = await client.call('GET', '/Groups', {
      query: { filter: `displayName eq ${scimString(displayName)}`, excludedAttributes: 'members' },
      schema: groupList,
      what: 'SCIM ListResponse of Groups',
      trace,
    });
    const groups = body.Resources ?? [];
    if (groups.length === 0) throw new AccountNotFound(name, `group "${displayName}" does not exist on the target`);
    if (groups.length > 1) {
      throw new TargetConflict(name, `${groups.length} groups are named "${displayName}"`, groups.map((g) => g.id));
    }
    remember(groups[0]!);
    return groups[0]!.id;
  }

  async function toAccount(user: ScimUser, trace: string[]): Promise<ActualAccount> {
    const entitlements: EntitlementRef[] = [];
    for (const g of user.groups ?? []) {
      const display = g.display ?? (await groupName(g.value, trace));
      if (g.display) remember({ id: g.value, displayName: g.display });
      entitlements.push({ type: 'group', value: display });
    }
    for (const r of user.roles ?? []) entitlements.push({ type: 'role', value: r.value });
    return {
      id: user.id,
      ...(user.externalId !== undefined ? { correlationKey: user.externalId } : {}),
      userName: user.userName,
      status: user.active === false ? 'disabled' : 'enabled',
      entitlements,
    };
  }

  /** The user as a PUT body: readOnly attributes (id, meta, groups) dropped. */
  function replacement(user: ScimUser, changes: Partial<ScimUser>): Record<string, unknown> {
    const { id: _id, meta: _meta, groups: _groups, ...rest } = { ...user, ...changes };
    const schemas = new Set(rest.schemas ?? [SCIM_USER_SCHEMA]);
    schemas.add(SCIM_USER_SCHEMA);
    return { ...rest, schemas: [...schemas] };
  }

  function patchOp(...operations: Array<{ op: 'add' | 'replace' | 'remove'; path: string; value?: unknown }>) {
    return { schemas: [SCIM_PATCH_OP], Operations: operations };
  }

  const vanished = (accountId: string, op: TargetOp, trace: string[], extra: { entitlement?: EntitlementRef } = {}) =>
    change(op, accountId, false, trace, {
      ...extra,
      detail: 'account no longer exists on the target (the app deletes users on deactivation); nothing to do',
    });

  async function findManager(email: string, trace: string[]): Promise<string | undefined> {
    const users = await searchUsers(`userName eq ${scimString(email)} or emails[type eq "work" and value eq ${scimString(email)}]`, trace);
    return users.length === 1 ? users[0]!.id : undefined;
  }

  const connector: ScimConnector = {
    name,
    kind: 'scim',
    capabilities,
    governor: client.governor,

    async findAccounts({ employeeId, linkIds = [] }) {
      const trace: string[] = [];
      const users = await searchUsers(`externalId eq ${scimString(employeeId)}`, trace);
      const byId = new Map(users.map((u) => [u.id, u]));
      for (const id of linkIds) {
        if (byId.has(id)) continue;
        const linked = await readUserOrNull(id, trace);
        if (linked) byId.set(linked.user.id, linked.user);
      }
      const accounts: ActualAccount[] = [];
      for (const u of byId.values()) accounts.push(await toAccount(u, trace));
      return accounts;
    },

    async getAccount(accountId) {
      const trace: string[] = [];
      const { user } = await readUser(accountId, trace);
      return toAccount(user, trace);
    },

    async createAccount(profile, { enabled }) {
      const trace: string[] = [];
      const details: string[] = [];
      let managerId: string | undefined;
      if (profile.managerEmail) {
        managerId = await findManager(profile.managerEmail, trace);
        if (!managerId) details.push('manager has no account on this target; manager left unset');
      }
      const body = userResource(profile, enabled, managerId);
      try {
        const { body: user } = await client.call('POST', '/Users', { body, schema: scimUserSchema, what: 'SCIM User', trace });
        const account = await toAccount(user, trace);
        return { account, change: change('create', user.id, true, trace, details.length ? { detail: details.join('; ') } : {}) };
      } catch (err) {
        if (!(err instanceof TargetConflict)) throw err;
        // A retried POST whose first attempt succeeded, or a re-run after a lost response:
        // the account is this person's if it carries their externalId and the same userName.
        const mine = await searchUsers(`externalId eq ${scimString(profile.employeeId)}`, trace);
        const same = mine.filter((u) => u.userName.toLowerCase() === profile.userName.toLowerCase());
        if (mine.length === 1 && same.length === 1) {
          const account = await toAccount(same[0]!, trace);
          return {
            account,
            change: change('create', account.id, false, trace, { detail: 'account already existed for this employee' }),
          };
        }
        throw new TargetConflict(name, `userName ${profile.userName} is taken by another account (${err.message})`);
      }
    },

    async setStatus(accountId, status) {
      const trace: string[] = [];
      const op: TargetOp = status === 'enabled' ? 'enable' : status === 'suspended' ? 'suspend' : 'disable';
      const note = status === 'suspended' ? 'SCIM has no suspended state: active=false' : undefined;
      const current = await readUserOrNull(accountId, trace);
      if (!current) {
        if (quirks.deleteOnDeactivate && status !== 'enabled') return vanished(accountId, op, trace);
        throw new AccountNotFound(name, `account ${accountId} does not exist on the target`);
      }
      const active = status === 'enabled';
      if ((current.user.active !== false) === active) {
        return change(op, accountId, false, trace, note ? { detail: note } : {});
      }
      if (quirks.putOnly) {
        await client.call('PUT', userPath(accountId), {
          body: replacement(current.user, { active }),
          what: 'SCIM User',
          trace,
          ifMatch: current.etag,
        });
      } else {
        await client.call('PATCH', userPath(accountId), {
          body: patchOp({ op: 'replace', path: 'active', value: active }),
          what: 'SCIM User',
          trace,
        });
      }
      const details = note ? [note] : [];
      if (!active && quirks.deleteOnDeactivate) {
        const after = await readUserOrNull(accountId, trace);
        details.push(
          after
            ? 'the app is configured to delete users on deactivation, but the account is still present with active=false'
            : 'the app deletes users on deactivation: the account was deleted (GET answered 404)',
        );
      }
      return change(op, accountId, true, trace, details.length ? { detail: details.join('; ') } : {});
    },

    async revokeSessions(accountId) {
      return change('revokeSessions', accountId, false, [], { detail: SCIM_NO_SESSION_API });
    },

    async addEntitlement(accountId, entitlement) {
      return changeEntitlement(accountId, entitlement, 'addEntitlement');
    },

    async removeEntitlement(accountId, entitlement) {
      return changeEntitlement(accountId, entitlement, 'removeEntitlement');
    },

    async deleteAccount(accountId) {
      const trace: string[] = [];
      try {
        await client.call('DELETE', userPath(accountId), { what: `SCIM User ${accountId}`, trace });
        return change('delete', accountId, true, trace);
      } catch (err) {
        if (err instanceof AccountNotFound) return change('delete', accountId, false, trace, { detail: 'account already absent' });
        throw err;
      }
    },

    async listAccounts(cursor) {
      const startIndex = cursor === undefined ? 1 : Number(cursor);
      if (!Number.isInteger(startIndex) || startIndex < 1) throw new ValidationError([`cursor: expected a SCIM startIndex, got "${cursor}"`]);
      const trace: string[] = [];
      const { body } = await client.call('GET', '/Users', {
        query: { startIndex, count: config.pageSize },
        schema: userList,
        what: 'SCIM ListResponse of Users',
        trace,
      });
      const users = body.Resources ?? [];
      const accounts: ActualAccount[] = [];
      for (const u of users) accounts.push(await toAccount(u, trace));
      const next = startIndex + users.length;
      const page: AccountPage = { accounts };
      if (users.length > 0 && next <= body.totalResults) page.nextCursor = String(next);
      return page;
    },

    async auditEvidence(accountId, since) {
      const trace: string[] = [];
      const current = await readUserOrNull(accountId, trace);
      const readAt = new Date().toISOString();
      if (!current) {
        return [
          {
            id: `scim:${name}:${accountId}:absent:${trace.at(-1) ?? readAt}`,
            time: readAt,
            eventType: 'scim.user.absent',
            outcome: 'SUCCESS',
            targetIds: [accountId],
            summary: `GET /Users/${accountId} answered 404: the account does not exist on ${name}`,
          },
        ];
      }
      const { user } = current;
      const lastModified = user.meta?.lastModified;
      if (lastModified && Date.parse(lastModified) < Date.parse(since)) return [];
      const account = await toAccount(user, trace);
      const version = user.meta?.version;
      const access = account.entitlements.map((e) => `${e.type}:${e.value}`).join(', ') || 'none';
      const entry: AuditEntry = {
        id: `scim:${name}:${accountId}:${version ?? lastModified ?? readAt}`,
        time: lastModified ?? readAt,
        eventType: lastModified ? 'scim.user.lastModified' : 'scim.user.read',
        outcome: 'SUCCESS',
        targetIds: [accountId],
        summary:
          `read back from ${name} (request ${trace.at(-1) ?? 'n/a'}): active=${user.active !== false}, access: ${access}` +
          (version ? `, version ${version}` : ''),
      };
      return [entry];
    },
  };

  async function changeEntitlement(accountId: string, entitlement: EntitlementRef, op: 'addEntitlement' | 'removeEntitlement') {
    const trace: string[] = [];
    const ref = { type: entitlement.type, value: entitlement.value };
    if (ref.type !== 'group' && ref.type !== 'role') {
      throw new PolicyViolation(`${name}: SCIM targets carry group and role entitlements, not ${ref.type}`);
    }
    const adding = op === 'addEntitlement';
    const current = await readUserOrNull(accountId, trace);
    if (!current) {
      if (!adding && quirks.deleteOnDeactivate) return vanished(accountId, op, trace, { entitlement: ref });
      throw new AccountNotFound(name, `account ${accountId} does not exist on the target`);
    }
    const { user, etag } = current;

    if (ref.type === 'role') {
      const roles = user.roles ?? [];
      const has = roles.some((r) => r.value === ref.value);
      if (has === adding) return change(op, accountId, false, trace, { entitlement: ref });
      let sent: Sent = 'written';
      if (quirks.putOnly) {
        const next = adding ? [...roles, { value: ref.value }] : roles.filter((r) => r.value !== ref.value);
        await client.call('PUT', userPath(accountId), {
          body: replacement(user, { roles: next }),
          what: 'SCIM User',
          trace,
          ifMatch: etag,
        });
      } else {
        const patch = { path: userPath(accountId), what: 'SCIM User', list: 'roles', value: ref.value, adding, trace } as const;
        sent = await patchListOnce(patch, accountId, (u) => (u.roles ?? []).some((r) => r.value === ref.value));
      }
      return change(op, accountId, true, trace, { entitlement: ref, ...(sent === 'landed' ? { detail: LANDED } : {}) });
    }

    let groupId: string;
    try {
      groupId = await resolveGroup(ref.value, trace);
    } catch (err) {
      // Removing membership of a group that no longer exists leaves nothing to remove.
      if (!adding && err instanceof AccountNotFound) {
        return change(op, accountId, false, trace, { entitlement: ref, detail: `group "${ref.value}" no longer exists on the target` });
      }
      throw err;
    }
    const isMember = (user.groups ?? []).some((g) => g.value === groupId);
    if (isMember === adding) return change(op, accountId, false, trace, { entitlement: ref });
    let sent: Sent;
    try {
      sent = await writeMembership(groupId, accountId, adding, trace);
    } catch (err) {
      if (!(err instanceof AccountNotFound)) throw err;
      // The cached id is stale (the group was re-created): resolve by name once more.
      forget(groupId);
      groupId = await resolveGroup(ref.value, trace, true);
      sent = await writeMembership(groupId, accountId, adding, trace);
    }
    return change(op, accountId, true, trace, { entitlement: ref, ...(sent === 'landed' ? { detail: LANDED } : {}) });
  }

  /**
   * Adds `value` to, or removes it from, a multi-valued attribute (a group's `members`, a user's
   * `roles`) with one PATCH that is not sent twice blind (send-once.ts): when its answer is lost,
   * `userId`'s account is read back and `holds` says whether it has the value now.
   */
  function patchListOnce(
    w: { path: string; what: string; list: 'members' | 'roles'; value: string; adding: boolean; trace: string[] },
    userId: string,
    holds: (user: ScimUser) => boolean,
  ): Promise<Sent> {
    const body = w.adding
      ? patchOp({ op: 'add', path: w.list, value: [{ value: w.value }] })
      : patchOp({ op: 'remove', path: `${w.list}[value eq ${scimString(w.value)}]` });
    return sendOnceWith({
      write: () => client.call('PATCH', w.path, { body, what: w.what, trace: w.trace, resendUnanswered: false }),
      tookEffect: async () => {
        const user = (await readUserOrNull(userId, w.trace))?.user;
        return (user ? holds(user) : false) === w.adding;
      },
      unanswered: (e) => e instanceof UnansweredWrite,
      retries: config.maxRetries,
      baseDelayMs: config.retryBaseDelayMs,
    });
  }

  async function writeMembership(groupId: string, userId: string, adding: boolean, trace: string[]): Promise<Sent> {
    if (!quirks.putOnly) {
      const patch = { path: groupPath(groupId), what: `SCIM Group ${groupId}`, list: 'members', value: userId, adding, trace } as const;
      return patchListOnce(patch, userId, (u) => (u.groups ?? []).some((g) => g.value === groupId));
    }
    const reply = await client.call('GET', groupPath(groupId), { schema: scimGroupSchema, what: `SCIM Group ${groupId}`, trace });
    const group = reply.body;
    const members = (group.members ?? []).map((m) => ({ value: m.value }));
    const next = adding ? [...members, { value: userId }] : members.filter((m) => m.value !== userId);
    const { id: _id, meta: _meta, members: _members, ...rest } = group;
    await client.call('PUT', groupPath(groupId), {
      body: { ...rest, schemas: [SCIM_GROUP_SCHEMA], members: next },
      what: `SCIM Group ${groupId}`,
      trace,
      ifMatch: reply.etag ?? group.meta?.version,
    });
    return 'written';
  }

  return connector;
}

/** The SCIM User a joiner gets (RFC 7643 §4.1 + the enterprise extension §4.3). */
function userResource(profile: AccountProfile, enabled: boolean, managerId: string | undefined): Record<string, unknown> {
  return {
    schemas: [SCIM_USER_SCHEMA, SCIM_ENTERPRISE_USER_SCHEMA],
    userName: profile.userName,
    externalId: profile.employeeId,
    name: {
      givenName: profile.givenName,
      familyName: profile.familyName,
      formatted: `${profile.givenName} ${profile.familyName}`,
    },
    displayName: profile.displayName,
    emails: [{ value: profile.email, type: 'work', primary: true }],
    active: enabled,
    title: profile.jobCode,
    userType: profile.employmentType === 'contractor' ? 'Contractor' : 'Employee',
    [SCIM_ENTERPRISE_USER_SCHEMA]: {
      employeeNumber: profile.employeeId,
      department: profile.department,
      ...(managerId ? { manager: { value: managerId } } : {}),
    },
  };
}
